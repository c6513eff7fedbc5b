"""`reconciler plan`: what a change to the config repo does, for pull-request review."""
