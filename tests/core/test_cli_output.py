"""What the commands print: server/client keep stdout for the JSON outcome, and run's report tables."""

from __future__ import annotations

import os
import sys

import pytest

from syft_flwr_gdrive.cli.app_output import app_output_to_stderr
from syft_flwr_gdrive.cli.live_view import _explain_failure
from syft_flwr_gdrive.cli.live_view import _progress_table
from syft_flwr_gdrive.cli.live_view import method_name
from syft_flwr_gdrive.localrun.supervisor import Progress


def test_what_the_app_writes_goes_to_stderr_and_stdout_is_left_for_the_outcome(capfd):
    with app_output_to_stderr():
        print("a print of the app")
        os.write(1, b"a native library's write to fd 1\n")
    print('{"completed": true}')
    sys.stdout.flush()
    out, err = capfd.readouterr()
    assert out == '{"completed": true}\n'
    assert "a print of the app\n" in err and "a native library's write to fd 1\n" in err


def test_a_captured_stdout_without_a_descriptor_still_goes_to_stderr(capsys):
    with app_output_to_stderr():
        print("inside")
    out, err = capsys.readouterr()
    assert out == "" and "inside" in err


def test_two_drive_methods_never_show_the_same_name():
    names = [method_name(k) for k in ("files.create", "permissions.create", "files.list", "media.download")]
    assert names == ["create", "permissions.create", "list", "media.download"]


def test_the_round_label_has_no_question_mark_for_a_query_app():
    def label(progress: Progress) -> str:
        return str(_progress_table(progress, "x").columns[0]._cells[0])

    progress = Progress(round=3, rounds=0, answered={"a@x.org": 3}, done=True)
    assert label(progress) == "3 done"
    progress = Progress(round=2, rounds=5, answered={"a@x.org": 2})
    assert label(progress) == "2/5"


@pytest.mark.parametrize(
    "failure, code",
    [
        ({"reason": "the server s@x exited with code 2 (bad input)", "exit_code": 2}, 2),
        ({"reason": "a client c@x exited with code -9 (killed by SIGKILL)", "exit_code": -9}, 137),
        ({"reason": "the run did not finish within --timeout 30 s", "exit_code": None}, 4),
        (None, 4),
    ],
)
def test_run_exits_with_the_code_of_what_went_wrong(failure, code, capsys):
    assert _explain_failure({"failure": failure}) == code
    if failure:
        assert failure["reason"] in capsys.readouterr().err
