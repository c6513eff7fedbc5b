"""Progressive rollouts: which clusters take a new revision when, and what to do on failure.

Pure: no clock, no network, no store. ``stages`` turns a strategy into an ordered plan,
``machine`` advances a rollout from observations, ``codec`` turns its state into JSON and back.
"""
