"""Rules of the strict profile that are pure functions: gmail address equivalence, query
complexity, and which folders an OR'ed parent listing shows.

Drive's documentation does not say how complex a ``q`` may be; client-library trackers
report 400 "The query is too complex" for long queries and for ``or`` across different
collection terms. The strict fake rejects both so that code must cope (see
docs/drive-assumptions.md). Field reports (rclone's ``drive.go`` and its issues #3114, #4289
and #9810; Google's issue tracker 149522397) show a ``q`` that ORs several ``'<id>' in parents``
terms answering only some folders' files, or none, with ``incompleteSearch: false`` and no
error: :func:`or_listing_folders` is that, as a fault a test can switch on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from collections.abc import Sequence

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


def map_emails(node: q.Node, account: Callable[[str], str], *, owners: bool = True) -> q.Node:
    """The query with each ``'x' in owners|readers|writers`` address replaced by its account's form
    (``owners=False``: owners terms keep the address as written, so only the registered form matches)."""
    if isinstance(node, q.And):
        return q.And(tuple(map_emails(p, account, owners=owners) for p in node.parts))
    if isinstance(node, q.Or):
        return q.Or(tuple(map_emails(p, account, owners=owners) for p in node.parts))
    if isinstance(node, q.Not):
        return q.Not(map_emails(node.part, account, owners=owners))
    if isinstance(node, q.In) and node.collection != "parents" and node.value.lower() != "me":
        if node.collection == "owners" and not owners:
            return q.In(node.value.strip().lower(), node.collection)
        return q.In(account(node.value), node.collection)
    return node


def or_parent_terms(node: q.Node) -> list[str] | None:
    """The folders of the first ``or`` in ``node`` that joins two or more ``'<id>' in parents`` terms, in
    the order the query names them; None if no ``or`` does (one folder per query is never cut short)."""
    if isinstance(node, q.Or):
        folders = [p.value for p in node.parts if isinstance(p, q.In) and p.collection == "parents"]
        if len(folders) >= 2:
            return folders
    parts = node.parts if isinstance(node, (q.And, q.Or)) else (node.part,) if isinstance(node, q.Not) else ()
    for part in parts:
        found = or_parent_terms(part)
        if found is not None:
            return found
    return None


def _draw(*words: str) -> int:
    """A stable pseudo-random byte for ``words``: the same answer for the same caller and folder, always."""
    return hashlib.sha256("|".join(words).encode()).digest()[0]


def or_listing_folders(mode: str, folders: Sequence[str], caller: str, owner_of: Callable[[str], str]) -> set[str]:
    """The folders whose files an OR'ed parent listing answers (``FaultConfig.or_listing``).

    ``subset``: the folders ``caller`` owns, and of the others a fixed subset per caller (each folder by a
    stable draw; one caller in three gets none of them). The same query always answers the same files."""
    if mode == "first":
        return set(folders[:1])
    if mode == "none":
        return set()
    if mode == "subset":
        if _draw("none", caller) % 3 == 0:
            return {f for f in folders if owner_of(f) == caller}
        return {f for f in folders if owner_of(f) == caller or _draw(caller, f) % 2 == 0}
    return set(folders)
