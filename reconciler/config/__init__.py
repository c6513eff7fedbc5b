"""The config repo: its schema, files, loading and validation into frozen types."""
