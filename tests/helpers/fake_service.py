"""A real googleapiclient Drive service, or the product's DriveApi, authenticated as any account of a fake Drive."""

from __future__ import annotations

import json
from typing import Any

import google_auth_httplib2
from google.oauth2.credentials import Credentials
from googleapiclient import discovery_cache
from googleapiclient.discovery import build_from_document
from googleapiclient.http import build_http

from syft_flwr_gdrive.fake import fake_token_for
from syft_flwr_gdrive.transport.drive.api import DriveApi

FOLDER = "application/vnd.google-apps.folder"
_DOC = json.loads(discovery_cache.get_static_doc("drive", "v3"))


def drive_service(url: str, email: str, token: str | None = None):
    """A real Drive v3 service whose every URL (API, upload, batch) points at ``url``."""
    doc = dict(_DOC, rootUrl=url, mtlsRootUrl=url)
    creds = Credentials(token=token or fake_token_for(email))
    return build_from_document(doc, http=google_auth_httplib2.AuthorizedHttp(creds, http=build_http()))


def drive_api_for(url: str, email: str, **kwargs: Any) -> DriveApi:
    """A DriveApi on the fake Drive at ``url`` acting as ``email``, by the fake's never-expiring ``fake:`` token.

    Participants reach a fake Drive through its token endpoint instead (``connect.drive_api``); tests
    use this so their counts and timings hold only Drive calls."""
    return DriveApi(Credentials(token=fake_token_for(email)), base_url=url, **kwargs)


def http_error(exc) -> tuple[int, str]:
    """(status, Drive reason) of a googleapiclient HttpError."""
    body = json.loads(exc.content)
    return exc.resp.status, body["error"]["errors"][0]["reason"]
