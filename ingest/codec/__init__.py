"""Codecs between domain values and their wire forms (protobuf and JSON).

Decoding never trusts the wire: every problem raises an :class:`engine.errors.DomainError`
naming the field, never a bare ``ValueError`` or ``KeyError``.
"""
