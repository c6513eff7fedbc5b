"""The daemon: follow a branch of a config repo and keep every cluster reconciled to it."""
