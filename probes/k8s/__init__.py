"""The Kubernetes internals of `probes.kubernetes`, the public activity module."""
