"""What a payment's recorded events and its result must say together, whatever happened to the
process in between (crash recovery included):

* every ``StepAttempted`` has its outcome (``StepSucceeded`` or ``StepFailed`` for the same step
  and attempt number) later in the log: every attempt is settled in the log itself
  (ARCHITECTURE.md decision 3);
* each step result is what the log says of its step: its ``attempts`` are the step's
  ``StepAttempted`` events; a charged step names a processor that recorded the charge; a failed
  step that made attempts names the processor of its last attempt and a recorded error, and one
  that made none has the ``StepFailed`` with attempt 0 that names its processor and error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.events import DomainEvent, StepAttempted, StepFailed, StepSucceeded
from engine.results import Result


@dataclass(frozen=True)
class StepView:
    """The parts of a step result the log speaks to, from a ``Result`` or its JSON."""

    step_index: int
    processor_id: str
    success: bool
    attempts: int
    error_code: str | None

    @classmethod
    def of(cls, result: Result) -> StepView:
        error = None if result.error_code is None else result.error_code.value
        return cls(result.step_index, result.processor_id, result.success, result.attempts, error)

    @classmethod
    def from_json(cls, document: Mapping[str, object]) -> StepView:
        error = document["error_code"]
        return cls(
            int(str(document["step_index"])),
            str(document["processor_id"]),
            document["success"] is True,
            int(str(document["attempts"])),
            None if error is None else str(error),
        )


def attempts_without_outcome(events: Sequence[DomainEvent]) -> list[StepAttempted]:
    """The attempts with no outcome after them, in log order."""
    settled: set[tuple[int, int]] = set()
    missing: list[StepAttempted] = []
    for event in reversed(events):
        if type(event) is StepSucceeded or type(event) is StepFailed:
            settled.add((event.step_index, event.attempt))
        elif type(event) is StepAttempted and (event.step_index, event.attempt) not in settled:
            missing.append(event)
    return missing[::-1]


def disagreements(
    steps: Sequence[StepView], events: Sequence[DomainEvent], *, last_error: bool = True
) -> list[str]:
    """How the step results contradict the log (none: they agree).

    ``last_error``: a failed step names its last attempt's error (so does every step recovery
    finishes); else any error recorded for the step will do (the router reports a step it left in
    doubt with the error that put it there, not a later one)."""
    found: list[str] = []
    for step in steps:
        at = step.step_index
        attempts = [e for e in events if type(e) is StepAttempted and e.step_index == at]
        if step.attempts != len(attempts):
            found.append(f"step {at}: {step.attempts} attempts, the log has {len(attempts)}")
        if step.success:
            charged = {e.processor_id for e in events if type(e) is StepSucceeded and e.step_index == at}
            if step.processor_id not in charged:
                found.append(f"step {at}: charged at {step.processor_id}, the log at {sorted(charged)}")
            continue
        if not attempts:
            # A step that made no attempt (its circuits open, or a crash before it began) has
            # its StepFailed with attempt 0, saying what the result does.
            said = [e for e in events if type(e) is StepFailed and e.step_index == at and e.attempt == 0]
            if [(e.processor_id, e.error_code.value) for e in said] != [(step.processor_id, step.error_code)]:
                found.append(f"step {at}: failed without an attempt, the log's attempt-0 events: {said}")
            continue
        last = attempts[-1]
        if step.processor_id != last.processor_id:
            found.append(f"step {at}: failed at {step.processor_id}, last attempted at {last.processor_id}")
        if last_error:
            outcomes = [e for e in events if _outcome_of(e, at, last.attempt)]
            ended = outcomes[-1] if outcomes else None
            errors = [ended.error_code.value] if type(ended) is StepFailed else []
        else:
            errors = [e.error_code.value for e in events if type(e) is StepFailed and e.step_index == at]
        if step.error_code not in errors:
            found.append(f"step {at}: error {step.error_code}, the log has {errors}")
    return found


def _outcome_of(event: DomainEvent, step_index: int, attempt: int) -> bool:
    kind = type(event)
    return (kind is StepSucceeded or kind is StepFailed) and (
        event.step_index,  # type: ignore[attr-defined]
        event.attempt,  # type: ignore[attr-defined]
    ) == (step_index, attempt)
