"""Pushes that arrive together from many threads become one push; each caller gets its own ids."""

from __future__ import annotations

import threading
import time

import pytest

from syft_flwr_gdrive.flower.coalesce import Coalescer


def pusher(log):
    def push(items):
        log.append(list(items))
        return [f"id-{x}" for x in items]

    return push


def run_threads(coalescer, groups):
    results, errors = {}, {}
    start = threading.Barrier(len(groups))

    def call(i, items):
        start.wait()
        try:
            results[i] = coalescer.submit(items)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            errors[i] = exc

    threads = [threading.Thread(target=call, args=(i, g)) for i, g in enumerate(groups)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results, errors


def test_callers_that_arrive_together_share_one_push_and_get_their_own_ids():
    log = []
    coalescer = Coalescer(pusher(log), lambda items: len(items) >= 8, window=1.0, max_wait=5.0)
    results, errors = run_threads(coalescer, [[i] for i in range(8)])
    assert errors == {} and coalescer.pushes == 1 and sorted(log[0]) == list(range(8))
    assert results == {i: [f"id-{i}"] for i in range(8)}


def test_an_incomplete_batch_goes_after_the_quiet_window_not_before():
    log = []
    coalescer = Coalescer(pusher(log), lambda items: False, window=0.05, max_wait=5.0)
    started = time.monotonic()
    assert coalescer.submit(["a", "b"]) == ["id-a", "id-b"]
    assert time.monotonic() - started >= 0.05 and log == [["a", "b"]]
    assert coalescer.submit(["c"]) == ["id-c"] and coalescer.pushes == 2  # a new batch after the last one went


def test_a_complete_push_does_not_wait():
    coalescer = Coalescer(pusher([]), lambda items: len(items) == 3, window=30.0, max_wait=30.0)
    started = time.monotonic()
    assert coalescer.submit([1, 2, 3]) == ["id-1", "id-2", "id-3"]
    assert time.monotonic() - started < 5.0  # far below the 30 s window: it went at once


def test_a_failed_push_fails_every_caller_of_its_batch():
    def push(items):
        raise RuntimeError("Drive refused")

    coalescer = Coalescer(push, lambda items: len(items) >= 3, window=1.0, max_wait=5.0)
    results, errors = run_threads(coalescer, [[1], [2], [3]])
    assert results == {} and sorted(errors) == [0, 1, 2]
    assert all(isinstance(e, RuntimeError) and "Drive refused" in str(e) for e in errors.values())
    with pytest.raises(RuntimeError):
        coalescer.submit([4])
