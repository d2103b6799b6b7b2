"""Batch answers keep no caller's frame alive.

googleapiclient raises and catches each failed part's HttpError inside ``BatchHttpRequest.execute``
and hands it to our callback; kept with its traceback, it holds that frame and, through ``f_back``,
every caller's frame and locals (a poll's decoded replies: a whole model) until the cyclic garbage
collector happens to run. ``bench/large_payload.py`` saw the server at 2.1x the model instead of
1.16x in some repetitions once polls fetched promised ids (404 parts) in batches.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from tests.helpers.fake_service import drive_api_for

DS = "ds@x.com"


@pytest.fixture(scope="module")
def drive():
    with FakeDriveServer() as server:
        yield server


class _Payload:
    """Stands for the caller's big locals (a decoded reply)."""


def _caller_frame_outlives_the_call(call) -> bool:
    """Run ``call`` in a frame that holds a payload; True if the payload survives the frame
    (with the cyclic GC off, only a reference chain, e.g. a kept traceback, can keep it)."""
    ref: weakref.ref | None = None

    def caller():
        nonlocal ref
        payload = _Payload()
        ref = weakref.ref(payload)
        return call()

    kept = caller()  # noqa: F841 - the answer stays alive, as a poll's answers do
    assert ref is not None
    return ref() is not None


@pytest.mark.parametrize(
    "method, kwargs",
    [("get_many", {"fields": "id"}), ("delete_many", {})],  # delete_many: not missing_ok, each part a 404 error
)
def test_batch_answers_hold_no_frames(drive, method, kwargs):
    api = drive_api_for(drive.url, DS)
    missing = api.generate_ids(2)
    gc.collect()
    gc.disable()
    try:
        answers: dict = {}

        def call():
            answers.update(getattr(api, method)(missing, **kwargs))
            return answers

        assert not _caller_frame_outlives_the_call(call)
    finally:
        gc.enable()
    assert all(isinstance(answers[m], DriveNotFound) for m in missing)
