"""The Drive ``q`` search grammar: parse once, evaluate against file views.

Real Drive rejects malformed queries with ``400 invalid``; the fake does the same (with a
message that says what was wrong) so that a bad query fails in offline tests instead of
in production. Semantics follow Drive's documentation, including the surprising ones:
``name contains`` is *prefix* matching on whitespace-separated name tokens
(case-insensitive), not substring matching.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from .exceptions import ApiError

ROLE_RANK = {"reader": 1, "commenter": 2, "writer": 3, "owner": 4}


class FileView(Protocol):
    """What the evaluator needs to know about one file, from one user's point of view."""

    name: str
    mime_type: str
    parents: list[str]

    @property
    def properties(self) -> dict[str, str]: ...  # read-only: a view may hide them from a search

    @property
    def description(self) -> str: ...  # read-only: a view may compute it

    @property
    def app_properties(self) -> dict[str, str]: ...  # read-only: the calling app's share, for a view

    created: float
    modified: float
    owner: str

    def is_trashed(self) -> bool: ...
    def is_starred(self) -> bool: ...
    def is_shared_with_me(self) -> bool: ...
    def role_of(self, email: str) -> int: ...


class QueryError(ApiError):
    """A malformed or unsupported ``q``: Drive answers 400 ``invalid``."""

    def __init__(self, detail: str, query: str) -> None:
        super().__init__(
            400, "invalid", f"Invalid Value: q ({detail}): {query}", location="q", locationType="parameter"
        )


# ---------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Tok:
    kind: str  # "str", "word", "op", "(", ")", "{", "}", "end"
    text: str
    pos: int


_OPS = ("!=", "<=", ">=", "=", "<", ">")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def tokenize(q: str) -> list[Tok]:
    """Split ``q`` into tokens; string literals honour ``\\'`` and ``\\\\`` only."""
    toks: list[Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
            continue
        if c == "'":
            start, i, out = i, i + 1, []
            while True:
                if i >= n:
                    raise QueryError(f"unterminated string at {start}", q)
                c = q[i]
                if c == "\\":
                    if i + 1 >= n or q[i + 1] not in ("'", "\\"):
                        raise QueryError(f"bad escape at {i} (only \\' and \\\\ are allowed)", q)
                    out.append(q[i + 1])
                    i += 2
                elif c == "'":
                    i += 1
                    break
                else:
                    out.append(c)
                    i += 1
            toks.append(Tok("str", "".join(out), start))
            continue
        if c in "(){}":
            toks.append(Tok(c, c, i))
            i += 1
            continue
        op = next((o for o in _OPS if q.startswith(o, i)), None)
        if op:
            toks.append(Tok("op", op, i))
            i += len(op)
            continue
        m = _WORD.match(q, i)
        if m:
            toks.append(Tok("word", m.group(0), i))
            i = m.end()
            continue
        raise QueryError(f"unexpected character {c!r} at {i}", q)
    toks.append(Tok("end", "", n))
    return toks


# ---------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str
    value: str | bool | float


@dataclass(frozen=True)
class In:
    value: str
    collection: str  # parents / owners / writers / readers


@dataclass(frozen=True)
class Has:
    field: str  # appProperties / properties
    key: str
    value: str


Node = And | Or | Not | Cmp | In | Has

_STRING_FIELDS = {"name": {"=", "!=", "contains"}, "mimeType": {"=", "!=", "contains"}, "fullText": {"contains"}}
_TIME_FIELDS = {"createdTime", "modifiedTime"}
_BOOL_FIELDS = {"trashed", "starred", "sharedWithMe"}
_COLLECTIONS = {"parents", "owners", "writers", "readers"}
_MAP_FIELDS = {"appProperties", "properties"}


class _Parser:
    def __init__(self, q: str) -> None:
        self.q = q
        self.toks = tokenize(q)
        self.i = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_kw(self, word: str) -> bool:
        t = self.peek()
        return t.kind == "word" and t.text.lower() == word

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            self.fail(f"expected '{word}'")
        self.take()

    def expect(self, kind: str) -> Tok:
        if self.peek().kind != kind:
            self.fail(f"expected {kind!r}")
        return self.take()

    def fail(self, what: str) -> None:
        t = self.peek()
        got = "end of query" if t.kind == "end" else repr(t.text)
        raise QueryError(f"{what} at position {t.pos}, got {got}", self.q)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            self.fail("empty query")
        node = self.expr()
        if self.peek().kind != "end":
            self.fail("expected 'and', 'or' or end of query")
        return node

    def expr(self) -> Node:
        return self.chain("or", self.conj, Or)

    def conj(self) -> Node:
        return self.chain("and", self.unary, And)

    def chain(self, keyword: str, operand: Callable[[], Node], combine: Callable[[tuple[Node, ...]], Node]) -> Node:
        """``operand (keyword operand)*``: one node, or ``combine`` of all of them ("and" binds tighter than "or")."""
        parts = [operand()]
        while self.is_kw(keyword):
            self.take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else combine(tuple(parts))

    def unary(self) -> Node:
        if self.is_kw("not"):
            self.take()
            return Not(self.unary())
        if self.peek().kind == "(":
            self.take()
            node = self.expr()
            self.expect(")")
            return node
        return self.term()

    def term(self) -> Node:
        t = self.peek()
        if t.kind == "str":  # 'value' in collection
            self.take()
            self.expect_kw("in")
            coll = self.expect("word").text
            if coll not in _COLLECTIONS:
                raise QueryError(f"'in' needs one of {sorted(_COLLECTIONS)}, not {coll!r}", self.q)
            return In(t.text, coll)
        if t.kind != "word":
            self.fail("expected a search term")
        field = self.take().text
        if field in _MAP_FIELDS:
            return self.has(field)
        if field in _BOOL_FIELDS and self.peek().kind != "op":
            return Cmp(field, "=", True)  # bare boolean term, e.g. `sharedWithMe`
        op_tok = self.peek()
        if op_tok.kind == "op":
            op = self.take().text
        elif self.is_kw("contains"):
            self.take()
            op = "contains"
        else:
            self.fail(f"expected an operator after {field!r}")
        return Cmp(field, op, self.value(field, op))

    def value(self, field: str, op: str) -> str | bool | float:
        t = self.take()
        if field in _STRING_FIELDS:
            if op not in _STRING_FIELDS[field]:
                raise QueryError(f"operator {op!r} is not supported for {field}", self.q)
            if t.kind != "str":
                raise QueryError(f"{field} needs a quoted string", self.q)
            return t.text
        if field in _TIME_FIELDS:
            if op == "contains":
                raise QueryError(f"operator 'contains' is not supported for {field}", self.q)
            if t.kind != "str":
                raise QueryError(f"{field} needs a quoted RFC 3339 date-time", self.q)
            try:
                return parse_time(t.text)
            except ValueError:
                raise QueryError(f"bad date-time {t.text!r}", self.q) from None
        if field in _BOOL_FIELDS:
            if op not in ("=", "!="):
                raise QueryError(f"operator {op!r} is not supported for {field}", self.q)
            if t.kind != "word" or t.text.lower() not in ("true", "false"):
                raise QueryError(f"{field} needs true or false", self.q)
            return t.text.lower() == "true"
        raise QueryError(f"unknown or unsupported search field {field!r}", self.q)

    def has(self, field: str) -> Node:
        self.expect_kw("has")
        self.expect("{")
        self.expect_kw("key")
        if self.take().text != "=":
            self.fail("expected '='")
        key = self.expect("str").text
        self.expect_kw("and")
        self.expect_kw("value")
        if self.take().text != "=":
            self.fail("expected '='")
        value = self.expect("str").text
        self.expect("}")
        return Has(field, key, value)


def parse(q: str) -> Node:
    """Parse a Drive query; raises :class:`QueryError` (a 400 ``invalid``) when malformed."""
    return _Parser(q).parse()


def parse_time(text: str) -> float:
    """RFC 3339 (``2024-01-02T03:04:05.678Z``; naive means UTC) to epoch seconds."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    d = _dt.datetime.fromisoformat(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return d.timestamp()


# ---------------------------------------------------------------------------- evaluation


def name_contains(name: str, needle: str) -> bool:
    """Drive's ``name contains``: case-insensitive prefix of the name or of a later
    whitespace-separated token (``'Hello'`` matches ``HelloWorld``, ``'World'`` does not)."""
    n, s = name.casefold(), needle.casefold()
    if n.startswith(s):
        return True
    return any(n[i - 1].isspace() and not n[i].isspace() and n.startswith(s, i) for i in range(1, len(n)))


def _ms(t: float) -> int:
    return int(round(t * 1000))


def _cmp(a: Any, op: str, b: Any) -> bool:
    """``a op b`` for a query's comparison; the parser only pairs values of one kind (strings, numbers)."""
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def evaluate(node: Node, f: FileView, resolve_id: Callable[[str], str] = lambda s: s, me: str = "") -> bool:
    """Does file ``f`` match ``node``? ``resolve_id`` maps aliases such as ``root``;
    ``me`` is the caller's email, which Drive lets queries write as ``'me' in owners``."""
    if isinstance(node, And):
        return all(evaluate(p, f, resolve_id, me) for p in node.parts)
    if isinstance(node, Or):
        return any(evaluate(p, f, resolve_id, me) for p in node.parts)
    if isinstance(node, Not):
        return not evaluate(node.part, f, resolve_id, me)
    if isinstance(node, Has):
        m = f.app_properties if node.field == "appProperties" else f.properties
        return m.get(node.key) == node.value
    if isinstance(node, In):
        if node.collection == "parents":
            return resolve_id(node.value) in f.parents
        email = node.value.lower()
        if email == "me" and me:
            email = me
        if node.collection == "owners":
            return f.owner == email
        need = ROLE_RANK["writer"] if node.collection == "writers" else ROLE_RANK["reader"]
        return f.role_of(email) >= need
    field, op, v = node.field, node.op, node.value
    if field == "name":
        return name_contains(f.name, str(v)) if op == "contains" else _cmp(f.name, op, v)
    if field == "mimeType":
        return str(v).casefold() in f.mime_type.casefold() if op == "contains" else _cmp(f.mime_type, op, v)
    if field == "fullText":
        return str(v).casefold() in f"{f.name}\n{f.description}".casefold()
    if field in _TIME_FIELDS:
        t = f.created if field == "createdTime" else f.modified
        return _cmp(_ms(t), op, _ms(float(v)))  # the parser gives time fields a float
    if field == "trashed":
        return _cmp(f.is_trashed(), op, v)
    if field == "starred":
        return _cmp(f.is_starred(), op, v)
    if field == "sharedWithMe":
        return _cmp(f.is_shared_with_me(), op, v)
    raise AssertionError(field)  # the parser only produces the fields handled above


def parent_candidates(node: Node) -> set[str] | None:
    """Parent ids one of which every match must have, or None when the query does not
    pin the parents; lets the store scan one folder instead of every file."""
    if isinstance(node, In) and node.collection == "parents":
        return {node.value}
    if isinstance(node, And):
        sets = [s for s in (parent_candidates(p) for p in node.parts) if s is not None]
        if not sets:
            return None
        out = sets[0]
        for s in sets[1:]:
            out = out & s
        return out
    if isinstance(node, Or):
        union: set[str] = set()
        for part in node.parts:
            found = parent_candidates(part)
            if found is None:
                return None
            union |= found
        return union
    return None


def escape(value: str) -> str:
    """Quote a value for use in ``q`` (escapes backslash and single quote)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
