"""Write ``[tool.syft_flwr]`` into a Flower project's pyproject.toml, keeping everything else as it is.

Keys of the section that bootstrap does not set (an ``app_name`` written by syft-flwr, a
``msg_timeout``, anything else) are kept; ``aggregator``, ``datasites`` and ``transport`` (and
``app_name`` when given) are replaced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import tomli_w

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import tomllib
from syft_flwr_gdrive.base.config import validate_email
from syft_flwr_gdrive.transport.registry import available_transports

_SECTION = re.compile(r"^\[tool\.syft_flwr\]\s*$", re.MULTILINE)
_NEXT_HEADER = re.compile(r"^\[", re.MULTILINE)


def bootstrap(
    project_dir: Path,
    *,
    aggregator: str,
    datasites: Sequence[str],
    app_name: str | None = None,
    transport: str = "p2p",
) -> Path:
    """Create or replace the section; returns the pyproject path. Validates before writing."""
    path = Path(project_dir) / "pyproject.toml"
    if not path.is_file():
        raise ConfigError(
            f"No pyproject.toml in {project_dir}. Point --project at a Flower project (`flwr new` creates one)."
        )
    aggregator = validate_email(aggregator, what="--aggregator")
    sites = [validate_email(d, what="--datasites") for d in datasites]
    if not sites:
        raise ConfigError("--datasites is empty: list the data owners' emails, comma-separated.")
    if aggregator in sites:
        raise ConfigError(f"{aggregator} is both the aggregator and a datasite; use distinct accounts.")
    if transport not in available_transports():
        raise ConfigError(f"Unknown transport {transport!r}; installed: {', '.join(sorted(available_transports()))}.")
    text = path.read_text(encoding="utf-8")
    try:
        existing = tomllib.loads(text).get("tool", {}).get("syft_flwr", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix it before bootstrapping.") from None
    inline = [k for k, v in existing.items() if isinstance(v, dict) and f"[tool.syft_flwr.{k}]" not in text]
    if inline:  # the section's text is rewritten; an inline table in it would be lost
        raise ConfigError(
            f"{path}: [tool.syft_flwr] holds inline tables ({', '.join(inline)}); move them to "
            f"[tool.syft_flwr.<name>] tables of their own, then bootstrap again."
        )
    section: dict[str, object] = {k: v for k, v in existing.items() if not isinstance(v, dict)}  # subtables stay put
    section.update(aggregator=aggregator, datasites=sites, transport=transport)
    if app_name:
        section["app_name"] = app_name
    rendered = "[tool.syft_flwr]\n" + tomli_w.dumps(section)
    match = _SECTION.search(text)
    if match:
        nxt = _NEXT_HEADER.search(text, match.end())
        end = nxt.start() if nxt else len(text)
        text = text[: match.start()] + rendered + ("\n" if nxt else "") + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + rendered
    path.write_text(text, encoding="utf-8")
    ProjectConfig.load(project_dir)  # what we wrote must read back cleanly
    return path
