"""What replicas share through the management cluster, as data (pure: no clock, no network).

``status`` is one member cluster's published status (sync, health, revision, last error, open
drift and what rollouts need to judge its targets); ``rollout`` is one app's shared rollout
(its state, the operators' commands waiting for the driver, the pins).
"""
