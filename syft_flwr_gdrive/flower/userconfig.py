"""``--node-config`` / ``--run-config`` strings and the run info a server sends its clients.

Both options take what Flower's own commands take (``flwr run --run-config``,
``flower-supernode --node-config``): space-separated ``key=value`` pairs with
TOML values (``partition-id=0 data-path="/data/a.csv"``), parsed by Flower's
own ``parse_config_args``; or a ``.toml`` file; or, as before, a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from syft_flwr_gdrive.base.config import ConfigError

_SCALARS = (bool, int, float, str)
MAX_RUN_CONFIG_KEYS = 1000
MAX_VALUE_CHARS = 10_000


def parse_user_config(text: str | None, *, option: str) -> dict[str, Any]:
    """A flat ``{key: bool|int|float|str}`` from Flower's ``k=v k2=v2`` form, a .toml file, or JSON."""
    if text is None or not text.strip():
        return {}
    raw = text.strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{option} looks like JSON but is not valid JSON ({exc}).") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{option} must be a JSON object, e.g. '{{\"partition-id\": 0}}'.")
        from flwr.common.config import flatten_dict

        try:
            return check_user_config(flatten_dict(data), what=option)
        except ValueError as exc:
            raise ConfigError(f"{option}: {exc}") from None
    from click import ClickException
    from flwr.common.config import parse_config_args

    try:
        parsed = parse_config_args([raw])
    except ClickException:
        raise ConfigError(
            f"{option} {raw!r} is not valid: use space-separated key=value pairs with TOML values, strings quoted, "
            f"e.g. {option} 'partition-id=0 num-partitions=2 data-path=\"/data/a.csv\"' (or a JSON object)."
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{option} {raw!r}: {exc}") from None
    if not parsed:
        raise ConfigError(f"{option} {raw!r} has no key=value pair; e.g. {option} 'partition-id=0 num-partitions=2'.")
    return check_user_config(parsed, what=option)


def check_user_config(data: Any, *, what: str) -> dict[str, Any]:
    """Flower's UserConfig: a flat mapping of string keys to bool, int, float or str (bounded)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} must be a mapping of keys to values.")
    if len(data) > MAX_RUN_CONFIG_KEYS:
        raise ConfigError(f"{what} has {len(data)} keys; at most {MAX_RUN_CONFIG_KEYS} are accepted.")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key or len(key) > 200:
            raise ConfigError(f"{what}: keys must be non-empty strings of at most 200 characters.")
        if not isinstance(value, _SCALARS) or (isinstance(value, str) and len(value) > MAX_VALUE_CHARS):
            raise ConfigError(f"{what}: {key!r} must be a bool, int, float or string (got {type(value).__name__}).")
        out[key] = value
    return out


def run_info(run_config: Mapping[str, Any], app: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What every request carries: the server's effective run config (and the app's fingerprint)."""
    info: dict[str, Any] = {"config": dict(run_config)}
    if app is not None:
        info["app"] = dict(app)
    return info


def run_config_of(info: Any) -> dict[str, Any] | None:
    """The run config in a peer's run info, validated; None if it sent none (an older server)."""
    if not isinstance(info, Mapping) or "config" not in info:
        return None
    return check_user_config(info["config"], what="the server's run config")
