"""Which processes a process started, and whether they still run, read from /proc (Linux; no psutil)."""

from __future__ import annotations

import time
from pathlib import Path


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name, in parentheses, may hold spaces
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running (a zombie, ended but not yet reaped, does not count)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def wait_for_children(pid: int, count: int, timeout: float) -> list[int]:
    """The pids of ``count`` running children of ``pid``, once there are that many."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children_of(pid)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"pid {pid} has {len(children_of(pid))} children after {timeout} s, expected {count}")


def seconds_until_gone(pids: list[int], timeout: float) -> float:
    """How long until none of ``pids`` runs; AssertionError naming the survivors after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not any(alive(pid) for pid in pids):
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"still running after {timeout} s: {[p for p in pids if alive(p)]}")
