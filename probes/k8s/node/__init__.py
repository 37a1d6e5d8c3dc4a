"""Node-level activities: stop and restore kubelet (commands, kubelet, actions, probes) and
the out-of-service taint."""
