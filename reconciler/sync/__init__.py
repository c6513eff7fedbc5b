"""Plan and apply one app on one cluster (plan, then act; both return data, nothing here logs)."""
