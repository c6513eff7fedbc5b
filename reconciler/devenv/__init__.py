"""Local real Kubernetes control planes for the demo and the e2e tests."""
