"""Project identity: Flower's FAB file rules, [tool.flwr.app] without its config, a diff that names files."""

from __future__ import annotations

import shutil
from pathlib import Path

from syft_flwr_gdrive.flower.fingerprint import APP_SECTION
from syft_flwr_gdrive.flower.fingerprint import app_identity
from syft_flwr_gdrive.flower.fingerprint import differences

APP = Path(__file__).resolve().parents[2] / "fixtures" / "compat" / "numpy_legacy"


def test_fingerprint_follows_code_and_components_not_config_or_caches(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(APP, project, ignore=shutil.ignore_patterns("__pycache__"))
    base = app_identity(project)
    assert set(base.files) == {
        "numpy_legacy/__init__.py",
        "numpy_legacy/client_app.py",
        "numpy_legacy/server_app.py",
        "numpy_legacy/task.py",
        APP_SECTION,
    }
    (project / "numpy_legacy" / "__pycache__").mkdir()
    (project / "numpy_legacy" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (project / "data.bin").write_bytes(b"not code")
    toml = project / "pyproject.toml"
    toml.write_text(
        toml.read_text().replace("num-server-rounds = 2", "num-server-rounds = 9")
        + '\n[tool.syft_flwr]\naggregator = "ds@x.com"\n'
    )
    assert app_identity(project) == base  # caches, data, run config defaults and [tool.syft_flwr] do not count

    task = project / "numpy_legacy" / "task.py"
    task.write_text(task.read_text() + "\n# edited\n")
    (project / "numpy_legacy" / "extra.py").write_text("x = 1\n")
    changed = app_identity(project)
    assert changed.fingerprint != base.fingerprint
    assert differences(changed, base.as_run_info()) == [
        "numpy_legacy/extra.py: only here",
        "numpy_legacy/task.py: changed",
    ]
    assert differences(changed, changed.as_run_info()) is None
    assert differences(changed, None) is None  # an older server announces nothing
    toml.write_text(toml.read_text().replace("numpy_legacy.client_app:app", "numpy_legacy.task:app"))
    assert "[tool.flwr.app]: changed" in differences(app_identity(project), changed.as_run_info())


def test_hostile_paths_are_printed_escaped():
    mine = app_identity(APP)
    theirs = {"fingerprint": "0" * 64, "files": {"evil\n2026 INFO fake line": "ab"}}
    [line, *_] = [d for d in differences(mine, theirs) if "evil" in d]
    assert "\n" not in line and "only on the server" in line
