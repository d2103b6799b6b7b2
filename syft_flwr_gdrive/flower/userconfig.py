"""``--node-config`` / ``--run-config`` strings, the run info a server sends its clients, and how a client
merges the server's run config into its own.

Both options take what Flower's own commands take (``flwr run --run-config``,
``flower-supernode --node-config``): space-separated ``key=value`` pairs with
TOML values (``partition-id=0 data-path="/data/a.csv"``), parsed by Flower's
own ``parse_config_args``; or a ``.toml`` file; or, as before, a JSON object.

The server's run config reaches the ClientApp the way Flower's SuperNode builds it
(``flwr.common.config.fuse_dicts``): the data owner's own ``[tool.flwr.app.config]`` with the
server's values for the keys it declares. A key the project does not declare is refused, as
Flower refuses it; so is a value of another type than the declared default (Flower does not check
types; a ClientApp reading ``float(lr)`` or ``Path(out)`` is entitled to what its project declares).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.logsafe import printable

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


class RunConfigRefused(ConfigError):
    """The server's run config does not fit this project's declared run config.

    The text (for the data owner's log) names the keys, the types and the fix; ``for_peer`` says the same
    without anything of the data owner's but the declared types, to send back in the error reply."""

    def __init__(self, message: str, *, for_peer: str) -> None:
        super().__init__(message)
        self.for_peer = for_peer


def run_config_of(info: Any) -> dict[str, Any] | None:
    """The run config in a peer's run info, validated; None if it sent none (an older server).

    Raises ``RunConfigRefused`` if it is not a flat mapping of keys to bool, int, float or str."""
    if not isinstance(info, Mapping) or "config" not in info:
        return None
    try:
        return check_user_config(info["config"], what="the server's run config")
    except ConfigError as exc:
        raise RunConfigRefused(
            f"{exc} Fix: the data scientist runs the project through syft-flwr-gdrive, unchanged",
            for_peer="its run config is not a flat mapping of keys to bool, int, float or str values",
        ) from None


def fits(value: Any, declared: Any) -> bool:
    """Whether ``value`` may stand where ``declared`` is the default: the same type, or an int for a float
    (TOML reads ``lr=1`` as an int). A bool is never an int here, nor an int a bool."""
    if isinstance(declared, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(declared, bool)
    if isinstance(declared, float):
        return isinstance(value, (int, float))
    return type(value) is type(declared)


def mistyped(declared: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    """``key (a str where a float is declared)`` for each override of a declared key whose type does not fit."""
    return [
        f"{printable(key, 60)!r} (a {type(value).__name__} where a {type(declared[key]).__name__} is declared)"
        for key, value in sorted(overrides.items())
        if key in declared and not fits(value, declared[key])
    ]


def merge_run_config(declared: Mapping[str, Any], sent: Mapping[str, Any]) -> dict[str, Any]:
    """The ClientApp's run config: ``declared`` (this project's ``[tool.flwr.app.config]``, flattened) overridden
    by the server's ``sent`` values, merged by Flower's own ``fuse_dicts``.

    Raises ``RunConfigRefused`` naming every key the project does not declare, or whose value does not fit
    the declared type (:func:`fits`)."""
    undeclared = sorted(set(sent) - set(declared))
    if undeclared:
        names = ", ".join(repr(printable(k, 60)) for k in undeclared[:10]) + (", ..." if len(undeclared) > 10 else "")
        raise RunConfigRefused(
            f"the server's run config sets {names}, which this project does not declare in "
            "[tool.flwr.app.config] (Flower refuses undeclared keys too). Fix: if you approved a version of the "
            "project that declares them, update your copy; otherwise the data scientist runs another project "
            "than yours: ask them to run the one you approved",
            for_peer=f"the data owner's project does not declare {names} in [tool.flwr.app.config]",
        )
    wrong = mistyped(declared, sent)
    if wrong:
        listed = "; ".join(wrong[:10]) + ("; ..." if len(wrong) > 10 else "")
        raise RunConfigRefused(
            f"the server's run config gives {listed}. Fix: the data scientist passes values of the declared "
            "types (--run-config 'lr=0.1', strings quoted), or you update your copy of the project if you "
            "approved a version that declares other types",
            for_peer=f"wrong types for the data owner's [tool.flwr.app.config]: {listed}",
        )
    from flwr.common.config import fuse_dicts

    return dict(fuse_dicts(dict(declared), dict(sent)))
