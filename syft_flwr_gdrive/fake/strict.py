"""Rules of the strict profile that are pure functions: gmail address equivalence and
query complexity.

Drive's documentation does not say how complex a ``q`` may be; client-library trackers
report 400 "The query is too complex" for long queries and for ``or`` across different
collection terms. The strict fake rejects both so that code must cope (see
docs/drive-assumptions.md).
"""

from __future__ import annotations

from collections.abc import Callable

from . import query as q
from .exceptions import ApiError

GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


def gmail_key(email: str) -> str:
    """One key per Google account address: gmail ignores dots and accepts googlemail.com."""
    email = email.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or domain not in GMAIL_DOMAINS:
        return email
    return local.replace(".", "") + "@gmail.com"


def too_complex(detail: str) -> ApiError:
    return ApiError(400, "invalid", f"The query is too complex. ({detail})", location="q", locationType="parameter")


def _terms(node: q.Node) -> int:
    if isinstance(node, (q.And, q.Or)):
        return sum(_terms(p) for p in node.parts)
    if isinstance(node, q.Not):
        return _terms(node.part)
    return 1


def _collections(node: q.Node) -> set[str]:
    """The collection-valued terms a (sub)query uses: parents, owners, properties..."""
    if isinstance(node, (q.And, q.Or)):
        out: set[str] = set()
        for p in node.parts:
            out |= _collections(p)
        return out
    if isinstance(node, q.Not):
        return _collections(node.part)
    if isinstance(node, q.In):
        return {node.collection}
    if isinstance(node, q.Has):
        return {node.field}
    return set()


def _mixed_or(node: q.Node) -> str | None:
    if isinstance(node, q.Or):
        kinds = [_collections(p) for p in node.parts]
        used = set().union(*kinds)
        if len(used) > 1:
            return f"'or' across {', '.join(sorted(used))}"
    parts = node.parts if isinstance(node, (q.And, q.Or)) else (node.part,) if isinstance(node, q.Not) else ()
    for p in parts:
        found = _mixed_or(p)
        if found:
            return found
    return None


def check_complexity(node: q.Node | None, max_terms: int, reject_mixed_or: bool) -> None:
    """Raise 400 "The query is too complex" where the strict profile says so."""
    if node is None:
        return
    if max_terms and _terms(node) > max_terms:
        raise too_complex(f"{_terms(node)} terms, at most {max_terms}")
    if reject_mixed_or:
        mixed = _mixed_or(node)
        if mixed:
            raise too_complex(mixed)


def map_emails(node: q.Node, account: Callable[[str], str]) -> q.Node:
    """The query with each ``'x' in owners|readers|writers`` address replaced by its account's form."""
    if isinstance(node, q.And):
        return q.And(tuple(map_emails(p, account) for p in node.parts))
    if isinstance(node, q.Or):
        return q.Or(tuple(map_emails(p, account) for p in node.parts))
    if isinstance(node, q.Not):
        return q.Not(map_emails(node.part, account))
    if isinstance(node, q.In) and node.collection != "parents" and node.value.lower() != "me":
        return q.In(account(node.value), node.collection)
    return node
