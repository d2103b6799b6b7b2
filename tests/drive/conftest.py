"""Fixtures for the Drive layer tests; helpers live in tests/helpers/scripted_http.py."""

from __future__ import annotations

from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.service import _HookedAuthorizedHttp
from tests.helpers.scripted_http import TINY
from tests.helpers.scripted_http import ScriptedHttp


@pytest.fixture
def scripted(monkeypatch):
    """Factory: a DriveApi whose every HTTP request is answered by a ScriptedHttp."""

    def make(script: list[Any], **kwargs: Any) -> tuple[DriveApi, ScriptedHttp]:
        kwargs.setdefault("retry", TINY)
        api = DriveApi(Credentials(token="fake:unit@example.com"), base_url="http://drive.test/", **kwargs)
        http = ScriptedHttp(script)
        monkeypatch.setattr(
            api,
            "_new_http",
            lambda: _HookedAuthorizedHttp(api.credentials, http, api._on_http_request),
        )
        return api, http

    return make
