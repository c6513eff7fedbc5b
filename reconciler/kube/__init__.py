"""The kube layer: the only package that imports `kubernetes` (client, kubeconfig, client pool)."""
