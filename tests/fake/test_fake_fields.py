"""Partial responses (``fields``): parsing, selection and Drive's 400 on unknown fields."""

from __future__ import annotations

import pytest

from syft_flwr_gdrive.fake import fields
from syft_flwr_gdrive.fake.exceptions import ApiError

DOC = {
    "kind": "drive#fileList",
    "nextPageToken": "t",
    "files": [
        {"id": "1", "name": "a", "owners": [{"emailAddress": "x@y", "displayName": "x"}], "appProperties": {"k": "v"}},
        {"id": "2", "name": "b", "owners": []},
    ],
}


def test_nested_selection_filters_lists_elementwise():
    out = fields.select(DOC, "nextPageToken, files(id,owners(emailAddress))", "FileList", "*")
    assert out == {
        "nextPageToken": "t",
        "files": [{"id": "1", "owners": [{"emailAddress": "x@y"}]}, {"id": "2", "owners": []}],
    }


def test_slash_paths_star_and_defaults():
    assert fields.select(DOC, "files/name", "FileList", "*") == {"files": [{"name": "a"}, {"name": "b"}]}
    assert fields.select(DOC, "*", "FileList", "kind") == DOC
    assert fields.select(DOC, None, "FileList", "kind") == {"kind": "drive#fileList"}
    assert fields.select(DOC, "files(*)", "FileList", "*") == {"files": DOC["files"]}
    assert fields.select(DOC, " files ( id , name ) ", "FileList", "*") == {
        "files": [{"id": "1", "name": "a"}, {"id": "2", "name": "b"}]
    }


@pytest.mark.parametrize("bad", ["files(nope)", "bogus", "files(id", "files(owners(color))", ",", "files()"])
def test_unknown_or_malformed_selection_is_400(bad):
    with pytest.raises(ApiError) as e:
        fields.select(DOC, bad, "FileList", "*")
    assert e.value.status == 400
