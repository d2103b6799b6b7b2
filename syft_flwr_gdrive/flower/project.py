"""A Flower project directory: its apps, its run config, and its ``[tool.syft_flwr]`` section."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.clientapp import ClientApp
from flwr.common.config import fuse_dicts
from flwr.common.config import get_fused_config_from_dir
from flwr.common.config import get_project_config
from flwr.serverapp import ServerApp
from flwr.supercore.object_ref import load_app
from packaging.specifiers import InvalidSpecifier
from packaging.specifiers import SpecifierSet

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.flower.userconfig import mistyped


class ProjectError(ConfigError):
    """The Flower project cannot be loaded; the text says what to fix."""


def check_requires_python(path: Path, requirement: Any, version: Sequence[int] = tuple(sys.version_info[:3])) -> None:
    """Refuse a project whose ``requires-python`` this interpreter does not meet, as pip does when ``flwr run``
    installs it (pre-releases count as their release: 3.13.0rc1 meets ``>=3.13``)."""
    if requirement is None:
        return
    pyproject = path / "pyproject.toml"
    try:
        wanted = SpecifierSet(str(requirement))
    except InvalidSpecifier:
        raise ProjectError(f"{pyproject}: requires-python = {requirement!r} is not a version specifier.") from None
    current = ".".join(str(part) for part in version)
    if not wanted.contains(current, prereleases=True):
        raise ProjectError(
            f"{pyproject} requires Python {requirement}, but this is Python {current} ({sys.executable}). "
            "Run it with an interpreter that meets requires-python (pip and `flwr run` refuse it too), "
            "or change requires-python if the project works here."
        )


@dataclass(frozen=True)
class FlowerProject:
    path: Path
    components: dict[str, str]
    run_config: dict[str, Any]
    syft: ProjectConfig
    name: str

    @classmethod
    def load(cls, path: Path | str, override_config: dict[str, Any] | None = None) -> FlowerProject:
        path = Path(path).expanduser().resolve()
        if not path.is_dir():
            raise ProjectError(
                f"Flower project directory {path} does not exist. Pass the folder holding its pyproject.toml."
            )
        try:
            config = get_project_config(path)
            defaults = dict(get_fused_config_from_dir(path, {}))
        except FileNotFoundError:
            raise ProjectError(
                f"No pyproject.toml in {path}; is this a Flower project (`flwr new` creates one)?"
            ) from None
        except ValueError as exc:
            raise ProjectError(f"{path / 'pyproject.toml'} is not a valid Flower project: {exc}") from None
        check_requires_python(path, config.get("project", {}).get("requires-python"))
        unknown = sorted(set(override_config or {}) - set(defaults))
        if unknown:  # Flower's fuse_dicts refuses them too; say which and what is there
            raise ProjectError(
                f"--run-config sets {', '.join(unknown)}, which {path / 'pyproject.toml'} does not declare in "
                f"[tool.flwr.app.config] (it has: {', '.join(sorted(defaults)) or 'nothing'})."
            )
        wrong = mistyped(defaults, override_config or {})
        if wrong:  # datasites refuse a run config of other types than their project declares: say so here
            raise ProjectError(
                f"--run-config gives {'; '.join(wrong)} in {path / 'pyproject.toml'}'s [tool.flwr.app.config]: "
                "datasites refuse values of another type than declared. Pass the declared types (strings quoted, "
                'e.g. name="x"; an int may stand for a float).'
            )
        run_config = dict(fuse_dicts(defaults, dict(override_config or {})))
        components = dict(config["tool"]["flwr"]["app"]["components"])
        return cls(
            path=path,
            components=components,
            run_config=run_config,
            syft=ProjectConfig.load(path),
            name=str(config.get("project", {}).get("name", path.name)),
        )

    @property
    def app_name(self) -> str:
        return self.syft.app_name or self.name

    def load_server_app(self) -> ServerApp:
        return self._load("serverapp", ServerApp)

    def load_client_app(self) -> ClientApp:
        return self._load("clientapp", ClientApp)

    def _load(self, key: str, kind: type) -> Any:
        ref = self.components.get(key)
        if not ref:
            raise ProjectError(
                f"{self.path / 'pyproject.toml'} lacks [tool.flwr.app.components] {key} = 'module:attr'."
            )
        try:
            obj = load_app(ref, ProjectError, self.path)
        except ModuleNotFoundError as exc:
            raise ProjectError(f"cannot import {ref!r} from {self.path}: {exc}") from None
        if not isinstance(obj, kind):
            raise ProjectError(f"{ref!r} is a {type(obj).__name__}, not a flwr {kind.__name__}.")
        return obj


def role_in_project(project_dir: Path | str, environ: Mapping[str, str] | None = None) -> str:
    """``"server"`` or ``"client"``: what this participant (``SYFTBOX_EMAIL``) is in the project's
    ``[tool.syft_flwr]`` (its aggregator, or one of its datasites); a ConfigError naming the fix otherwise.

    What a syft-flwr ``main.py`` decided before running the server or a client; ``migrate`` writes a
    ``main.py`` that asks this, then runs ``syft-flwr-gdrive server`` or ``client``."""
    syft = ProjectConfig.load(project_dir)
    me = Settings.from_env(environ, project=syft).email
    if syft.aggregator == me:
        return "server"
    if me in syft.datasites:
        return "client"
    raise ConfigError(
        f"{me} is neither the aggregator ({syft.aggregator or 'none set'}) nor a datasite "
        f"({', '.join(syft.datasites) or 'none set'}) of {Path(project_dir) / 'pyproject.toml'}. Set SYFTBOX_EMAIL "
        "to your account, or run `syft-flwr-gdrive bootstrap` to name the aggregator and datasites."
    )
