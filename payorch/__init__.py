"""The ``payorch`` command line: the one composition root that starts each process."""
