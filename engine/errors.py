"""The engine's one error tree.

Every error raised by the domain at a caller is a :class:`DomainError`; none is a bare
``Exception``, ``ValueError`` or ``KeyError``::

    PayorchError
    └── DomainError
        ├── InvalidFieldError          a field holds a value that breaks its rule
        │   ├── InvalidAmountError     money: negative, not an integer, too large
        │   ├── UnknownCurrencyError   not an active ISO 4217 currency
        │   ├── UnknownPaymentMethodError
        │   ├── UnknownErrorCodeError
        │   ├── InvalidIdentifierError ids, keys and names
        │   └── InvalidTimestampError  naive or missing timestamps
        ├── CurrencyMismatchError      arithmetic across two currencies
        ├── PlanInvariantError         a PaymentPlan or PaymentStep that breaks an invariant
        ├── ResultInvariantError       a Result or CompositeResult that breaks an invariant
        ├── ConfigError                a platform or merchant configuration that is inconsistent
        ├── UnknownContractError       a contract id missing from the registry
        └── DoubleChargeError          (engine.ledger) a simulated processor charged a key twice
"""

from __future__ import annotations

from typing import Any

_MAX_SHOWN = 80


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


class PayorchError(Exception):
    """Root of every error payorch raises on purpose."""


class DomainError(PayorchError):
    """A domain rule was broken; the message names the field and the value."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={_show(value)}: {reason}")


class InvalidFieldError(DomainError):
    """A field holds a value that breaks its rule."""


class InvalidAmountError(InvalidFieldError):
    """An amount of money that is not a non-negative integer number of minor units in range."""


class UnknownCurrencyError(InvalidFieldError):
    """A currency that is not an active ISO 4217 currency with minor units."""


class UnknownPaymentMethodError(InvalidFieldError):
    """A payment method outside the supported set."""


class UnknownErrorCodeError(InvalidFieldError):
    """An error code outside the documented set."""


class InvalidIdentifierError(InvalidFieldError):
    """An id, key or name that is empty, too long or badly formed."""


class InvalidTimestampError(InvalidFieldError):
    """A timestamp that is not timezone-aware."""


class CurrencyMismatchError(DomainError):
    """Arithmetic or comparison between amounts in two different currencies."""


class PlanInvariantError(DomainError):
    """A payment plan or step that breaks one of the plan's invariants."""


class ResultInvariantError(DomainError):
    """A step result or composite result whose figures contradict each other."""


class ConfigError(DomainError):
    """A configuration whose parts contradict each other."""


class UnknownContractError(DomainError):
    """A contract id that the registry does not list: a programming error."""
