"""The memory of recent attempts expires and stays bounded."""

from ingest.processors.recent_attempts import Attempt, RecentAttempts


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_charged_key_remembers_its_intent_until_the_window_passes() -> None:
    clock = ManualClock()
    recent = RecentAttempts(clock, window_s=60.0)

    recent.charged("k", "pi_1")
    clock.now += 59.0
    assert recent.get("k") == Attempt(100.0, "pi_1", in_doubt=False)
    clock.now += 2.0
    assert recent.get("k") is None


def test_doubt_keeps_a_known_intent_and_a_definitive_answer_clears_doubt() -> None:
    recent = RecentAttempts(ManualClock())

    recent.charged("charged", "pi_1")
    recent.in_doubt("charged")
    recent.in_doubt("declined")
    recent.settled("declined")
    recent.settled("never_seen")

    assert recent.get("charged") == Attempt(100.0, "pi_1", in_doubt=True)
    assert recent.get("declined") == Attempt(100.0, None, in_doubt=False)
    assert recent.get("never_seen") is None


def test_the_oldest_keys_are_forgotten_beyond_the_bound() -> None:
    recent = RecentAttempts(ManualClock(), max_entries=2)

    for key in ("a", "b", "c"):
        recent.in_doubt(key)

    assert [recent.get(key) is not None for key in ("a", "b", "c")] == [False, True, True]
