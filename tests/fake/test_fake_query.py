"""The q grammar on its own: parsing, escapes, Drive's matching rules, clear 400s."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

import pytest

from syft_flwr_gdrive.fake import query as q


@dataclass
class F:
    name: str = "report"
    mime_type: str = "application/octet-stream"
    description: str = ""
    parents: list = field(default_factory=lambda: ["P1"])
    app_properties: dict = field(default_factory=dict)
    properties: dict = field(default_factory=dict)
    created: float = 1_700_000_000.0
    modified: float = 1_700_000_100.0
    owner: str = "alice@example.com"
    trashed: bool = False
    roles: dict = field(default_factory=dict)

    def is_trashed(self):
        return self.trashed

    def is_starred(self):
        return False

    def is_shared_with_me(self):
        return False

    def role_of(self, email):
        return 4 if email == self.owner else self.roles.get(email, 0)


def match(text: str, f: F) -> bool:
    return q.evaluate(q.parse(text), f)


@pytest.mark.parametrize(
    "name,needle,expected",
    [
        ("HelloWorld", "Hello", True),
        ("HelloWorld", "hello", True),  # case-insensitive
        ("HelloWorld", "World", False),  # prefix of tokens, not substring
        ("Hello World", "World", True),  # a later whitespace-separated token
        ("Hello World", "lo W", False),
        ("msg_abc_123.json", "msg_abc", True),
        ("msg_abc_123.json", "abc", False),
    ],
)
def test_name_contains_is_token_prefix_match(name, needle, expected):
    assert match(f"name contains {q.escape(needle)}", F(name=name)) is expected


def test_escapes_quote_and_backslash_round_trip():
    tricky = "it's a \\ path\\'"
    assert q.tokenize(q.escape(tricky))[0].text == tricky
    assert match(f"name = {q.escape(tricky)}", F(name=tricky))
    assert not match(f"name = {q.escape(tricky)}", F(name="it's a path"))


def test_precedence_not_and_or_parentheses():
    f = F(name="a", mime_type="text/plain")
    assert match("name = 'x' or name = 'a' and mimeType = 'text/plain'", f)
    assert not match("(name = 'x' or name = 'a') and mimeType = 'image/png'", f)
    assert match("not name = 'x' and not trashed", f)
    assert not match("not (name = 'a')", f)


def test_collections_and_properties():
    f = F(app_properties={"kind": "msg", "run": "r1"}, roles={"bob@example.com": 3, "carol@example.com": 1})
    assert match("'P1' in parents and 'alice@example.com' in owners", f)
    assert match("'ALICE@example.com' in owners", f)  # emails compare case-insensitively
    assert not match("'bob@example.com' in owners", f)
    assert match("'bob@example.com' in writers and 'carol@example.com' in readers", f)
    assert not match("'carol@example.com' in writers", f)
    assert match("appProperties has { key='kind' and value='msg' }", f)
    assert not match("appProperties has { key='kind' and value='other' }", f)
    assert not match("properties has { key='kind' and value='msg' }", f)


def test_times_and_booleans():
    f = F(created=1_700_000_000.5)
    assert match("createdTime > '2023-11-14T22:13:20Z'", f)
    assert match("createdTime = '2023-11-14T22:13:20.500Z'", f)
    assert match("modifiedTime >= '2023-11-14T22:15:00'", f)  # naive means UTC
    assert match("trashed = false", f)
    assert not match("trashed = true", f)
    assert match("trashed != true and sharedWithMe = false", f)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "name = ",
        "name = 'unterminated",
        "name == 'x'",
        "name contains x",
        "name = 'a' and",
        "(name = 'a'",
        "size > '3'",
        "trashed = 'yes'",
        "createdTime > 'yesterday'",
        "name < 'x'",
        "'a' in name",
        "appProperties has { key='k' }",
        "name = 'bad \\x escape'",
        "name = 'a' name = 'b'",
    ],
)
def test_bad_queries_raise_drive_400_invalid(bad):
    with pytest.raises(q.QueryError) as e:
        q.parse(bad)
    assert e.value.status == 400 and e.value.reason == "invalid"
    assert e.value.body()["error"]["errors"][0]["location"] == "q"


def test_parent_candidates_narrow_only_when_every_match_is_pinned():
    assert q.parent_candidates(q.parse("'A' in parents and name = 'x'")) == {"A"}
    assert q.parent_candidates(q.parse("'A' in parents or 'B' in parents")) == {"A", "B"}
    assert q.parent_candidates(q.parse("'A' in parents or name = 'x'")) is None
    assert q.parent_candidates(q.parse("not 'A' in parents")) is None
