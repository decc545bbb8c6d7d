"""bench_observe's own count of the log lines that reached the stream: the check that a telemetry
which silently dropped lines cannot look cheap, counted outside the timed part of a round."""

from __future__ import annotations

from bench.bench_observe import CountingDevNull


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
