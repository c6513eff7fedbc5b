"""Embedded SQLite state of the daemon: revisions, status, drift history, the source."""
