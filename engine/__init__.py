"""payorch's domain: value types, the payment plan, results, events and contracts.

Nothing in this package performs I/O or imports a web, database or dataframe library; the
outside world reaches it through the protocols in :mod:`engine.ports`.
"""
