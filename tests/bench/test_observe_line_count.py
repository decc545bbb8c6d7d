"""bench_observe's own parts: its count of the log lines that reached the stream (the check that a
telemetry which silently dropped lines cannot look cheap, counted outside the timed part of a
round), and the paired overhead its headline reports."""

from __future__ import annotations

import pytest

from bench.bench_observe import BenchError, CountingDevNull, paired_overhead


def test_every_line_written_is_counted_once_however_it_is_read() -> None:
    stream = CountingDevNull()
    try:
        assert stream.lines == 0
        batch = bytearray(b'{"event":"a"}\n{"event":"b"}\n')
        stream.write(memoryview(batch))
        batch[:] = b"\n" * len(batch)  # the writer reuses its buffer: what was written is counted
        stream.write(b'{"event":"c"}\n')
        assert stream.lines == 3
        assert stream.lines == 3  # read again: nothing counted twice
        stream.write(memoryview(b'{"event":"d"}\n{"event":"e"}\n')[14:])
        assert stream.lines == 4
    finally:
        stream.close()


def test_the_overhead_is_the_median_of_paired_differences_with_their_quartiles() -> None:
    # The pairs drift together (the machine slowed between them): their differences do not.
    on = [110.0, 150.0, 131.0, 300.0, 112.0]
    off = [50.0, 90.0, 70.0, 100.0, 49.0]
    assert paired_overhead(on, off) == (61.0, 60.0, 63.0)
    assert paired_overhead([5.0], [2.0]) == (3.0, 3.0, 3.0)


def test_samples_that_are_not_pairs_are_refused() -> None:
    with pytest.raises(BenchError, match="not pairs"):
        paired_overhead([1.0, 2.0], [1.0])
    with pytest.raises(BenchError, match="not pairs"):
        paired_overhead([], [])
