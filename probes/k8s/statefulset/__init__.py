"""StatefulSet probes: settled and every pod Ready."""
