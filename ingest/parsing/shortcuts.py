"""The parser's shortcuts: fast paths for the shapes most requests have, and their off switch.

Most requests are clean: exact field names, an integer amount, an upper-case code, a canonical
method, short plain metadata, and the same few warnings (``merchant_id`` missing, currency
``defaulted``) again and again. The general readers handle such a request correctly but slowly,
so each reader first tries a shortcut for these shapes.

Rules every shortcut keeps:

- It never changes a result: with shortcuts on or off, :func:`parse_payment_request` returns an
  equal :class:`ParsedRequest` (same readings, same issues in the same order, same texts).
- It either answers from a table or cache the general path itself filled (so it says exactly
  what the general path said), or it takes a shape whose general reading is plainly known (text
  with nothing to clean, mask or cut), and hands everything else to the general path.
- Anything it remembers is immutable and bounded: ``functools.lru_cache`` with a maximum size,
  keyed on short texts only.

The shortcuts, each explained in its module's docstring:

- ``body``: one shared JSON decoder; a table of common content types; no depth walk when the
  text has too few brackets to nest too deep.
- ``values``: an object without repeated keys is copied in one ``dict.update``.
- ``fields``: a body of distinct canonical names is sorted without looking at spellings.
- ``identifiers``: the readings of no merchant id and of the authenticated id are cached.
- ``amount``: a positive integer, and plain digits with an optional decimal point, are read
  directly; an integer within the merchant's maximum is settled directly.
- ``currency``, ``method``: readings of short strings are cached.
- ``metadata``: a plain string entry is kept without running each rule.
- ``issues``: plain text is not cleaned; short issues are cached.
- ``masking``: digits alone are checked as one group; the masking loop stops once no thirteen
  digits are left; the Luhn check of ASCII digits uses a table.

Not switched (they hold on both paths): the common path's readings (sorted fields, a settled
integer amount, a key) and the :class:`~ingest.parsing.ParsedRequest` are built by
:func:`engine.unchecked.unchecked` constructors, which skip a frozen dataclass's ``__init__`` (and
the request's invariant check, which the tests run); an absent metadata field or key gives one
shared reading.

:data:`ENABLED` exists for the tests, which parse generated bodies both ways and compare the
results (``tests/ingest/parsing/test_shortcuts.py``). Production code never changes it.
"""

from __future__ import annotations

#: Whether the readers take their shortcuts; the tests turn them off to get the general path.
ENABLED = True
