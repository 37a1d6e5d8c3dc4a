"""Pod-level activities: probes of one pod (node, UID, status, replacement) and deletes."""
