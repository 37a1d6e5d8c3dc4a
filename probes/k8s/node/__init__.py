"""Node-level faults: stopping and restoring kubelet (commands, kubelet), the taints."""
