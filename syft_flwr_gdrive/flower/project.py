"""A Flower project directory: its apps, its run config, and its ``[tool.syft_flwr]`` section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.clientapp import ClientApp
from flwr.common.config import fuse_dicts
from flwr.common.config import get_fused_config_from_dir
from flwr.common.config import get_project_config
from flwr.serverapp import ServerApp
from flwr.supercore.object_ref import load_app

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.flower.userconfig import mistyped


class ProjectError(ConfigError):
    """The Flower project cannot be loaded; the text says what to fix."""


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
