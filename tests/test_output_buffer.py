"""A run's output buffer and the splitter that feeds it: numbering that survives the cap, and
chunks cut anywhere giving the same lines as one whole read."""

from __future__ import annotations

import random
import sys
import threading

from jobtui import Run, RunOutput
from jobtui.engine.capture import LineSplitter


def test_since_numbers_lines_from_the_first_and_skips_what_was_dropped():
    output = RunOutput(head_bytes=100, tail_bytes=100)
    for n in range(1000):
        output.append("stdout", f"line {n:04}", float(n))  # 10 bytes a line with its newline
    assert output.total_lines == 1000
    lines, following = output.since(0, 5)
    assert [line.text for line in lines] == [f"line {n:04}" for n in range(5)]
    assert following == 5
    # The head ends at line 9; lines 10..989 were dropped; asking inside the gap reads on
    # from the first kept line, and the numbers say how many were skipped.
    lines, following = output.since(10, 1000)
    assert [line.text for line in lines] == [f"line {n:04}" for n in range(990, 1000)]
    assert following == 1000
    assert output.since(1000, 10) == ([], 1000)  # nothing new yet
    lines, following = output.since(-3, 3)  # the newest three
    assert [line.text for line in lines] == ["line 0997", "line 0998", "line 0999"]
    assert output.dropped_lines == 980


def test_a_live_reader_follows_the_log_with_absolute_numbers():
    output = RunOutput(head_bytes=0, tail_bytes=50)
    seen: list[str] = []
    start = 0
    for n in range(40):
        output.append("stdout", f"l{n:02}", 0.0)  # 4 bytes a line with its newline
        if n % 7 == 0:
            lines, start = output.since(start, 100)
            seen.extend(line.text for line in lines)
    lines, start = output.since(start, 100)
    seen.extend(line.text for line in lines)
    assert start == 40
    assert seen == sorted(set(seen)) and seen[-1] == "l39"  # in order, nothing twice


def feed_in_pieces(data: bytes, sizes: list[int], max_line: int = 64) -> Run:
    run = Run("job", "run", 0.0, output_limits=(1 << 20, 1 << 20))
    run.output.max_line = max_line
    splitter = LineSplitter(run, "stdout", lambda: 0.0)
    position = 0
    for size in sizes:
        splitter.feed(data[position : position + size])
        position += size
    splitter.feed(data[position:])
    splitter.finish()
    return run


def test_chunks_cut_anywhere_give_the_same_lines_progress_and_status():
    rng = random.Random(7)
    parts = []
    for n in range(2000):
        kind = rng.random()
        if kind < 0.02:
            parts.append(f"::progress {n / 2000:.3f}")
        elif kind < 0.03:
            parts.append(f"::status step {n}")
        elif kind < 0.05:
            parts.append("x" * rng.randrange(60, 300))  # longer than max_line (64)
        elif kind < 0.06:
            parts.append(f"crlf {n}\r")
        else:
            parts.append(f"line {n}")
    data = ("\n".join(parts) + "\nlast without newline").encode()
    expected = []
    for part in [*parts, "last without newline"]:
        if part.startswith("::"):
            continue
        if len(part) > 64:
            part = part[:64] + f" [... {len(part) - 64} bytes cut from this line]"
        expected.append(part.rstrip("\r"))
    whole = feed_in_pieces(data, [])
    assert [line.text for line in whole.output.lines()] == expected
    for _ in range(20):
        sizes = [rng.randrange(1, 400) for _ in range(rng.randrange(1, 200))]
        run = feed_in_pieces(data, sizes)
        assert [line.text for line in run.output.lines()] == expected
        assert run.progress == whole.progress and run.status_message == whole.status_message
    assert whole.status_message.startswith("step ")


async def test_prints_from_python_jobs_running_at_once_each_land_in_their_own_run(
    scheduler, clock, recorder
):
    both_started = threading.Barrier(2, timeout=10)

    def talk(word: str) -> None:
        both_started.wait()  # the two threads print at the same time
        for n in range(200):
            print(f"{word} {n}", end="" if n % 3 else "\n")
            print(f"{word} half", file=sys.stderr)

    async def shout() -> None:
        print("from the loop")

    scheduler.add_job(talk, id="left", every="1h", args=["left"])
    scheduler.add_job(talk, id="right", every="1h", args=["right"])
    scheduler.add_job(shout, id="shout", every="1h")
    async with scheduler:
        await clock.advance(3600)
        await recorder.wait_for(lambda: len(recorder.finished()) == 3)
    for word in ("left", "right"):
        (run,) = recorder.finished(word)
        text = run.output.text()
        assert ("right" if word == "left" else "left") not in text
        assert text.count(f"{word} half") == 200
        assert f"{word} 199" in text
    assert recorder.finished("shout")[0].output.text() == "from the loop"
