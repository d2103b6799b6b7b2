"""Loading a Flower project: requires-python is checked as pip checks it before `flwr run` installs a project."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from syft_flwr_gdrive.flower.project import FlowerProject
from syft_flwr_gdrive.flower.project import ProjectError
from syft_flwr_gdrive.flower.project import check_requires_python

MESSAGE_APP = Path(__file__).resolve().parents[2] / "fixtures" / "message_app"


@pytest.mark.parametrize(
    "requirement, version, met",
    [
        (">=3.12", (3, 11, 4), False),
        (">=3.10", (3, 11, 4), True),
        (">=3.13", (3, 13, 0), True),
        (">=3.9,<3.11", (3, 11, 0), False),
        ("~=3.11.0", (3, 11, 9), True),
        ("==3.11.*", (3, 12, 1), False),
        (None, (3, 11, 0), True),
    ],
)
def test_requires_python_is_checked_like_pip(requirement, version, met):
    if met:
        check_requires_python(Path("/p"), requirement, version)
    else:
        with pytest.raises(ProjectError, match=r"/p/pyproject.toml requires Python .* but this is Python"):
            check_requires_python(Path("/p"), requirement, version)


def test_a_requirement_that_is_no_specifier_is_named():
    with pytest.raises(ProjectError, match="'3.12 or newer' is not a version specifier"):
        check_requires_python(Path("/p"), "3.12 or newer")


def test_a_project_this_python_cannot_run_is_refused_when_loaded(tmp_path):
    project = tmp_path / "app"
    shutil.copytree(MESSAGE_APP, project)
    text = (project / "pyproject.toml").read_text()
    too_new = f">={sys.version_info.major}.{sys.version_info.minor + 1}"
    (project / "pyproject.toml").write_text(text.replace('license = "Apache-2.0"', f'requires-python = "{too_new}"'))
    with pytest.raises(ProjectError, match=f"requires Python {too_new}"):
        FlowerProject.load(project)
    (project / "pyproject.toml").write_text(text.replace('license = "Apache-2.0"', 'requires-python = ">=3.10"'))
    assert FlowerProject.load(project).name == "message-digits"
