"""Peer-chosen text in log lines: escaped, bounded, so nobody can forge a line or flood the log."""

from __future__ import annotations


def printable(text: object, limit: int = 200) -> str:
    """``text`` as is when it is short and printable; otherwise its escaped repr, cut at ``limit``.

    File names, message ids, emails, Flower message types and error texts can come from a
    peer or a stranger: a newline in any of them would otherwise write a line of its own.
    """
    value = str(text)
    if value.isprintable() and len(value) <= limit:
        return value
    return repr(value[:limit])[1:-1] + ("..." if len(value) > limit else "")
