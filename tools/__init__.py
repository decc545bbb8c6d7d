"""Developer tools: binding generation and schema checks for the ``proto/`` module."""
