"""migrate: syft-flwr projects (written the way syft-flwr's notebooks are, tests/ops/projects) become projects
that run here; the diff is shown, a dry run writes nothing, a second run changes nothing, unknown syft imports
are listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import tomllib
from syft_flwr_gdrive.cli.app import app
from syft_flwr_gdrive.flower import app_paths
from syft_flwr_gdrive.flower.model_saving import FedAvgWithModelSaving
from syft_flwr_gdrive.flower.project import role_in_project
from syft_flwr_gdrive.ops.project_migration import MAIN_PY
from syft_flwr_gdrive.ops.project_migration import migrate_pyproject
from syft_flwr_gdrive.ops.project_migration import plan_migration
from syft_flwr_gdrive.ops.project_migration import rewrite_python

PROJECTS = Path(__file__).resolve().parent / "projects"


def copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(PROJECTS / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def files(project: Path) -> dict[str, str]:
    return {p.relative_to(project).as_posix(): p.read_text() for p in sorted(project.rglob("*")) if p.is_file()}


def test_a_bootstrapped_syft_flwr_project_is_migrated_and_the_diff_shown(tmp_path):
    project = copy(tmp_path, "diabetes_like")
    before = files(project)
    migration = plan_migration(project)
    assert files(project) == before  # planning writes nothing
    assert sorted(migration.changes) == [
        "diabetes_like/client_app.py",
        "diabetes_like/server_app.py",
        "diabetes_like/task.py",
        "main.py",
        "pyproject.toml",
    ]
    assert migration.leftovers == []
    diff = migration.diff()
    assert "--- a/pyproject.toml\n+++ b/pyproject.toml\n" in diff
    assert '-transport = "syftbox"\n+transport = "p2p"\n' in diff
    assert "-    from syft_flwr.utils import run_syft_flwr\n" in diff
    assert "+    from syft_flwr_gdrive.flower.app_paths import has_data_dir as run_syft_flwr\n" in diff
    assert "+        import syft_flwr_gdrive.flower.app_paths as sc\n" in diff
    assert "+    from syft_flwr_gdrive.flower.model_saving import FedAvgWithModelSaving\n" in diff
    assert "+    output_dir = str(app_output_dir())\n" in diff

    migration.write()
    after = files(project)
    config = tomllib.loads(after["pyproject.toml"])
    assert config["project"]["dependencies"] == ["flwr>=1.41", "numpy>=1.26", "syft-flwr-gdrive"]
    assert "uv" not in config.get("tool", {})  # syft-flwr's source table went with its only entry
    syft = ProjectConfig.load(project)
    assert (syft.transport, syft.aggregator, syft.datasites) == (
        "p2p",
        "ds@example.com",
        ("do1@example.com", "do2@example.com"),
    )
    assert syft.app_name == "ds@example.com_diabetes-like_1700000000"  # kept
    assert after["main.py"] == MAIN_PY
    for rel, text in after.items():
        if rel.endswith(".py"):
            compile(text, rel, "exec")
            assert "syft_flwr." not in text and "syft_client" not in text.replace("syft-client", "")
    # Everything but the changed lines is as it was.
    assert (
        after["diabetes_like/task.py"]
        .replace("import syft_flwr_gdrive.flower.app_paths as sc", "import syft_client as sc")
        .replace(
            "from syft_flwr_gdrive.flower.app_paths import data_dir as get_syftbox_dataset_path",
            "from syft_flwr.utils import get_syftbox_dataset_path",
        )
        == before["diabetes_like/task.py"]
    )
    # Idempotent: nothing more to change.
    assert plan_migration(project).changes == {}


def test_a_project_syft_flwr_never_bootstrapped_keeps_what_it_has(tmp_path):
    project = copy(tmp_path, "analytics_like")
    migration = plan_migration(project)
    assert sorted(migration.changes) == ["analytics_like/client_app.py", "pyproject.toml"]  # no main.py made
    migration.write()
    text = (project / "analytics_like" / "client_app.py").read_text()
    assert "from syft_flwr_gdrive.flower.app_paths import data_dir as get_syftbox_dataset_path\n" in text
    assert "syft_flwr" not in tomllib.loads((project / "pyproject.toml").read_text()).get("tool", {})
    assert plan_migration(project).changes == {}


def test_the_command_shows_the_diff_and_a_dry_run_writes_nothing(tmp_path):
    project = copy(tmp_path, "diabetes_like")
    before = files(project)
    runner = CliRunner()
    dry = runner.invoke(app, ["migrate", "-p", str(project), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "+++ b/main.py" in dry.stdout and "nothing written" in dry.output
    assert files(project) == before
    done = runner.invoke(app, ["migrate", "-p", str(project)])
    assert done.exit_code == 0 and "wrote 5 file(s)" in done.output
    again = runner.invoke(app, ["migrate", "-p", str(project)])
    assert again.exit_code == 0 and again.stdout == "" and "nothing to change" in again.output


def test_unknown_syft_imports_are_listed_not_silently_left(tmp_path):
    project = copy(tmp_path, "analytics_like")
    extra = project / "analytics_like" / "extra.py"
    extra.write_text(
        "import syft_rds\n"
        "from syft_flwr.utils import run_syft_flwr, str_to_int\n"
        "import syft_client as sc\n\n"
        "sc.login('x')\n"
    )
    result = CliRunner().invoke(app, ["migrate", "-p", str(project)])
    assert result.exit_code == 2, result.output
    assert "analytics_like/extra.py:1: import syft_rds" in result.output
    assert "analytics_like/extra.py:2: from syft_flwr.utils import str_to_int" in result.output
    assert "analytics_like/extra.py:5: sc.login" in result.output
    assert "3 syft import(s) or use(s) to change by hand" in result.output
    text = extra.read_text()  # the known ones were still mapped, the unknown ones kept as they were
    assert "from syft_flwr_gdrive.flower.app_paths import has_data_dir as run_syft_flwr\n" in text
    assert "from syft_flwr.utils import str_to_int\n" in text and "import syft_rds\n" in text


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            "from syft_flwr.fl_orchestrator import syftbox_flwr_server as serve\n",
            "from syft_flwr_gdrive import syftbox_flwr_server as serve\n",
        ),
        (
            "def f():\n    from syft_flwr.strategy.fedavg import FedAvgWithModelSaving\n    return 1\n",
            "def f():\n    from syft_flwr_gdrive.flower.model_saving import FedAvgWithModelSaving\n    return 1\n",
        ),
        ("import os, syft_client\n", "import os\nimport syft_flwr_gdrive.flower.app_paths as syft_client\n"),
        (
            "from syft_flwr_gdrive.flower.app_paths import data_dir\n",
            "from syft_flwr_gdrive.flower.app_paths import data_dir\n",
        ),
    ],
)
def test_imports_point_at_their_equivalents_under_the_names_the_code_uses(source, expected):
    assert rewrite_python(source).text == expected


def test_reading_output_dir_uses_a_name_the_module_does_not_use():
    source = '"""Doc."""\nimport os\n\napp_output_dir = 1\nout = os.environ.get("OUTPUT_DIR", "/tmp")\n'
    rewritten = rewrite_python(source).text
    assert rewritten == (
        '"""Doc."""\nimport os\nfrom syft_flwr_gdrive.flower.app_paths import output_dir as app_output_dir_\n\n'
        "app_output_dir = 1\nout = str(app_output_dir_())\n"
    )


def test_pyproject_dependencies_and_a_broken_file():
    text = '[project]\nname = "x"\ndependencies = ["flwr", "syft-flwr>=0.5", "syft_client", "syft-flwr-gdrive"]\n'
    assert '"syft-flwr-gdrive",\n]' in migrate_pyproject(text)
    assert "syft_client" not in migrate_pyproject(text) and "syft-flwr>=" not in migrate_pyproject(text)
    with pytest.raises(ConfigError, match="not valid TOML"):
        migrate_pyproject("[project\n")
    with pytest.raises(ConfigError, match="No pyproject.toml"):
        plan_migration("/nonexistent/project")


# -- the equivalents the rewritten imports point at -------------------------------------------------------------


def test_data_dir_follows_syft_flwrs_DATA_DIR_convention(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATA_DIR", raising=False)
    assert not app_paths.has_data_dir()
    with pytest.raises(FileNotFoundError, match="set DATA_DIR"):
        app_paths.data_dir()
    (tmp_path / ".data").mkdir()  # syft-flwr's default when DATA_DIR is unset
    assert app_paths.data_dir() == Path(".data/")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "mine"))
    assert not app_paths.has_data_dir()
    (tmp_path / "mine").mkdir()
    assert app_paths.has_data_dir() and app_paths.data_dir() == tmp_path / "mine"
    assert app_paths.resolve_path("syft://private/syft_datasets/diabetes/train.csv") == tmp_path / "mine" / "train.csv"
    with pytest.raises(ValueError, match="only syft://private/syft_datasets/"):
        app_paths.resolve_path("syft://alice@x.com/public/file.csv")


def test_output_dir_is_OUTPUT_DIR_else_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OUTPUT_DIR", raising=False)
    assert app_paths.output_dir() == Path("outputs") and (tmp_path / "outputs").is_dir()
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "results"))
    assert app_paths.output_dir() == tmp_path / "results" and (tmp_path / "results").is_dir()


def test_fedavg_with_model_saving_keeps_each_rounds_model(tmp_path):
    from flwr.common import ndarrays_to_parameters

    strategy = FedAvgWithModelSaving(save_path=tmp_path / "weights", min_available_clients=1)
    weights = [np.arange(3.0), np.ones((2, 2))]
    assert strategy.evaluate(2, ndarrays_to_parameters(weights)) is None  # FedAvg's own: no evaluate_fn
    saved = np.load(tmp_path / "weights" / "parameters_round_2.npz")
    assert sorted(saved) == ["layer_0", "layer_1"] and np.array_equal(saved["layer_1"], weights[1])


def test_main_py_runs_the_role_the_project_names(tmp_path):
    project = copy(tmp_path, "diabetes_like")
    plan_migration(project).write()
    assert role_in_project(project, {"SYFTBOX_EMAIL": "ds@example.com"}) == "server"
    assert role_in_project(project, {"SYFTBOX_EMAIL": "do2@example.com"}) == "client"
    with pytest.raises(ConfigError, match="neither the aggregator"):
        role_in_project(project, {"SYFTBOX_EMAIL": "eve@example.com"})
