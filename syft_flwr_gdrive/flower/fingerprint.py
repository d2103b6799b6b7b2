"""Project identity: a fingerprint of the Flower app a participant runs, in the spirit of Flower's FAB hash.

The server announces its app's fingerprint (and a per-file manifest) with every instruction;
a data owner whose local project differs refuses to run it, naming the files that differ, so
a data owner runs only the code they have looked at. The files are chosen by Flower's own
FAB rules (``flwr build``: ``*.py``, ``*.toml``, ``*.md``, ... minus ``.gitignore``d files,
``__pycache__``, tests, virtualenvs, ``fab-include``/``fab-exclude``), and hashed together with
the project's ``[tool.flwr.app]`` section. Its ``config`` table is left out on purpose: the
server sends its effective run config with the run, so differing defaults cannot change what
the ClientApp sees, and a data owner with an older pyproject must still be able to take part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import tomllib

MAX_MANIFEST_FILES = 500  # beyond this only the fingerprint travels (no per-file diff)
APP_SECTION = "[tool.flwr.app]"


@dataclass(frozen=True)
class AppIdentity:
    fingerprint: str
    files: dict[str, str]  # relative path -> SHA-256 (16 hex digits), plus APP_SECTION

    def as_run_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"fingerprint": self.fingerprint}
        if len(self.files) <= MAX_MANIFEST_FILES:
            info["files"] = dict(self.files)
        return info


def app_identity(project_dir: Path | str) -> AppIdentity:
    """The identity of the Flower project in ``project_dir`` (Flower's FAB file rules)."""
    from flwr.cli.build import get_filtered_fab_paths
    from flwr.cli.utils import collect_files
    from flwr.cli.utils import filter_paths_for_publish

    root = Path(project_dir).expanduser().resolve()
    try:
        config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        files = filter_paths_for_publish(collect_files(root))
        paths = sorted(get_filtered_fab_paths(dict(files), config))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot fingerprint the Flower project in {root}: {exc}") from None
    manifest = {path: hashlib.sha256((root / path).read_bytes()).hexdigest()[:16] for path in paths}
    section = dict(config.get("tool", {}).get("flwr", {}).get("app", {}))
    section.pop("config", None)
    manifest[APP_SECTION] = hashlib.sha256(json.dumps(section, sort_keys=True, default=str).encode()).hexdigest()[:16]
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return AppIdentity(digest, manifest)


def differences(mine: AppIdentity, theirs: Any) -> list[str] | None:
    """None if the server's announced app (``run_info["app"]``) is mine; else what differs, for a person."""
    if not isinstance(theirs, Mapping) or not isinstance(theirs.get("fingerprint"), str):
        return None  # an older server announces nothing: nothing to compare
    if theirs["fingerprint"] == mine.fingerprint:
        return None
    files = theirs.get("files")
    if not isinstance(files, Mapping):
        return [
            f"the app's fingerprint differs (server {str(theirs['fingerprint'])[:16]}, mine {mine.fingerprint[:16]})"
        ]
    out: list[str] = []
    for path in sorted(set(files) | set(mine.files), key=str)[:50]:
        name = _printable(str(path))
        if path not in mine.files:
            out.append(f"{name}: only on the server")
        elif path not in files:
            out.append(f"{name}: only here")
        elif files[path] != mine.files[path]:
            out.append(f"{name}: changed")
    return out or ["the app's fingerprint differs"]


def _printable(text: str, limit: int = 200) -> str:
    """Paths come from the server: never let them forge log lines."""
    return repr(text[:limit])[1:-1] if not text.isprintable() or len(text) > limit else text
