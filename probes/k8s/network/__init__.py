"""Network faults: a deny-all NetworkPolicy partition of one pod."""
