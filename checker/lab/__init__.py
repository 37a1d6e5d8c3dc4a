"""The local lab: a StatefulSet-like MySQL/MariaDB topology on one machine, with faults."""
