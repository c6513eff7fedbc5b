"""reconciler: GitOps delivery of the same applications to many Kubernetes clusters."""

__version__ = "0.1.0"

FIELD_MANAGER = "reconciler"
APP_LABEL = "reconciler.io/app"
API_VERSION = "reconciler.io/v1alpha1"
