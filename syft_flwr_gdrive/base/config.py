"""Typed settings, read from the environment and a Flower project's pyproject.

This is the only module that reads environment variables, so that every knob
is documented in one place and validated once with an error that names the fix.

Precedence (highest first): explicit keyword arguments, environment variables,
``[tool.syft_flwr]`` in the Flower project's ``pyproject.toml``, defaults.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.accounts import canonical_email

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_MSG_TIMEOUT = 120.0
DEFAULT_POLL_INTERVAL = 3.0
DEFAULT_TRANSPORT = "p2p"
DEFAULT_MAX_MESSAGE_MB = 2048  # admits a 1 GiB model with room to spare; bounds what a peer can make you store
# An offered app (a FAB) is at most Flower's own FAB limit (flwr.common.constant.FAB_MAX_SIZE, 10 MiB): `flwr build`
# refuses bigger ones, so a bigger offer cannot be an app Flower could install.
DEFAULT_MAX_OFFER_MB = 10
DEFAULT_BLOB_PART_MB = 64  # a model of at least twice this goes in parts that download while the next uploads
MAX_EMAIL_LENGTH = 100  # Drive properties hold key + value in 124 bytes

ENV_EMAIL = "SYFTBOX_EMAIL"
ENV_MSG_TIMEOUT = "SYFT_FLWR_MSG_TIMEOUT"
ENV_POLL_INTERVAL = "SYFT_FLWR_POLL_INTERVAL"
ENV_STATE_DIR = "SYFT_FLWR_STATE_DIR"
ENV_AGGREGATOR = "SYFT_FLWR_AGGREGATOR"
ENV_TRANSPORT = "SYFT_FLWR_TRANSPORT"
ENV_ENCRYPTION = "SYFT_FLWR_ENCRYPTION_ENABLED"
ENV_MAX_MESSAGE_MB = "SYFT_FLWR_MAX_MESSAGE_MB"
ENV_BLOB_PART_MB = "SYFT_FLWR_BLOB_PART_MB"
ENV_MAX_OFFER_MB = "SYFT_FLWR_MAX_OFFER_MB"
ENV_ADAPTIVE_POLL = "SYFT_FLWR_ADAPTIVE_POLL"
ENV_BUNDLES = "SYFT_FLWR_BUNDLES"
ENV_PREFIX = "SYFT_FLWR_"
# The folders of syft-flwr's app convention (read by the app, not by this package's participants): a data owner's
# dataset folder and the data scientist's output folder (flower/app_paths.py).
ENV_DATA_DIR = "DATA_DIR"
ENV_OUTPUT_DIR = "OUTPUT_DIR"
# Read into the shared Settings; every other SYFT_FLWR_<NAME> variable is option <name> of the transport.
_SHARED_ENV = frozenset(
    {
        ENV_EMAIL,
        ENV_MSG_TIMEOUT,
        ENV_POLL_INTERVAL,
        ENV_STATE_DIR,
        ENV_AGGREGATOR,
        ENV_TRANSPORT,
        ENV_ENCRYPTION,
        ENV_MAX_MESSAGE_MB,
        ENV_BLOB_PART_MB,
        ENV_MAX_OFFER_MB,
        ENV_ADAPTIVE_POLL,
        ENV_BUNDLES,
    }
)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# Deliberately simple: one "@", a dot in the domain, no spaces or slashes.
# Apostrophes and plus signs are legal in Google account names and must pass.
_EMAIL_RE = re.compile(r"^[^@\s/\\]+@[^@\s/\\]+\.[^@\s/\\]+$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


SYFTBOX_TRANSPORT = "syftbox"


def syftbox_transport_error(source: str) -> str:
    """What to say to a project bootstrapped by syft-flwr for SyftBox."""
    return (
        f'{source} sets transport = "syftbox" (syft-flwr\'s SyftBox transport). This package carries '
        f'messages over Google Drive: set transport = "p2p" under [tool.syft_flwr] (or re-run '
        f"`syft-flwr-gdrive bootstrap`, which keeps your other keys). See docs/coming-from-syft-flwr.md."
    )


def validate_email(value: str, *, what: str = ENV_EMAIL) -> str:
    """Return the canonical email (stripped, lower-cased, gmail without dots) or raise ConfigError."""
    email = (value or "").strip()
    if not email:
        raise ConfigError(
            f"{what} is empty. Set it to the Google account email of this participant, "
            f"e.g. `export {ENV_EMAIL}=alice@example.com`."
        )
    if not _EMAIL_RE.match(email):
        raise ConfigError(
            f"{what}={email!r} is not a valid email address. Use the Google account "
            "email of the participant, like alice@example.com."
        )
    if len(email) > MAX_EMAIL_LENGTH:
        raise ConfigError(
            f"{what}={email[:40]!r}... is {len(email)} characters long; Drive's file metadata holds emails of at most "
            f"{MAX_EMAIL_LENGTH}. Use a shorter alias of the Google account."
        )
    return canonical_email(email)


def option_env(option: str) -> str:
    """The environment variable of a transport option: ``drive_url`` is ``SYFT_FLWR_DRIVE_URL``."""
    return ENV_PREFIX + option.upper()


def positive_float(raw: str | float, name: str, *, unit: str = "seconds", example: str = "3.0") -> float:
    """A positive, finite number, or a ConfigError naming the setting, the unit and an example."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not a number. Set it to {unit}, e.g. {name}={example}.") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a positive, finite number of {unit}.")
    return value


def _megabytes(raw: str, name: str, example: int = DEFAULT_MAX_MESSAGE_MB) -> int:
    """A size in MiB (fractions allowed) as bytes; at least 1 MiB."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={raw!r} is not a number. Set it to megabytes, e.g. {name}={example}.") from None
    if not 1 <= value < 2**40 or value != value:
        raise ConfigError(f"{name}={raw!r} must be at least 1 (megabytes), e.g. {name}={example}.")
    return int(value * 1024 * 1024)


def _flag(raw: str, name: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not true or false.")


@dataclass(frozen=True)
class ProjectConfig:
    """What ``[tool.syft_flwr]`` in a Flower project's pyproject.toml says."""

    app_name: str | None = None
    aggregator: str | None = None
    datasites: tuple[str, ...] = ()
    transport: str = DEFAULT_TRANSPORT
    msg_timeout: float | None = None
    poll_interval: float | None = None

    @classmethod
    def load(cls, project_dir: Path | str) -> ProjectConfig:
        """Read a project directory's pyproject; a missing section means defaults."""
        path = Path(project_dir) / "pyproject.toml"
        if not path.is_file():
            raise ConfigError(
                f"No pyproject.toml in {Path(project_dir)}. Point project_dir at a Flower "
                "project directory, or run `syft-flwr-gdrive bootstrap` there first."
            )
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}). Fix the file and retry.") from None
        section: Mapping[str, Any] = data.get("tool", {}).get("syft_flwr", {})
        return cls.from_mapping(section, source=str(path))

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any], *, source: str = "[tool.syft_flwr]") -> ProjectConfig:
        datasites = section.get("datasites", [])
        if not isinstance(datasites, (list, tuple)):
            raise ConfigError(f"{source}: datasites must be a list of emails.")
        aggregator = section.get("aggregator")
        transport = str(section.get("transport", DEFAULT_TRANSPORT))
        if transport == SYFTBOX_TRANSPORT:
            raise ConfigError(syftbox_transport_error(source))
        return cls(
            app_name=section.get("app_name"),
            aggregator=validate_email(aggregator, what=f"{source} aggregator") if aggregator else None,
            datasites=tuple(validate_email(d, what=f"{source} datasites") for d in datasites),
            transport=transport,
            msg_timeout=positive_float(section["msg_timeout"], "msg_timeout") if "msg_timeout" in section else None,
            poll_interval=positive_float(section["poll_interval"], "poll_interval")
            if "poll_interval" in section
            else None,
        )


@dataclass(frozen=True)
class Settings:
    """Everything a participant process needs to talk to its peers."""

    # This participant's Google account email, canonical (accounts.canonical_email), and where its state lives.
    email: str
    state_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "syft_flwr_gdrive")
    # Longest wait for replies to one batch, and the idle gap between polls, in seconds.
    msg_timeout: float = DEFAULT_MSG_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    # The transport plugin by name (plugin.py); its own options are in transport_options.
    transport: str = DEFAULT_TRANSPORT
    aggregator: str | None = None
    # True when msg_timeout came from the user (env or pyproject), not the default.
    msg_timeout_explicit: bool = False
    # End-to-end encryption and signatures of every payload (on unless explicitly switched off).
    encryption: bool = True
    # Largest message accepted from a peer, shared blobs included (bytes); larger ones are refused unread.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_MB * 1024 * 1024
    # Stored bytes per part of a model sent in parts (rounded up to whole 1 MiB encryption chunks): smaller
    # parts overlap upload and download more, at one Drive write each.
    blob_part_bytes: int = DEFAULT_BLOB_PART_MB * 1024 * 1024
    # Largest app (FAB) offered or accepted over Drive (bytes): an aggregator cannot offer a bigger one, and a data
    # owner's node refuses a bigger offer unread.
    max_offer_bytes: int = DEFAULT_MAX_OFFER_MB * 1024 * 1024
    # Poll faster while a reply or the next request is due, never slower than poll_interval (poll_schedule.py).
    adaptive_poll: bool = True
    # The server sends a push of N messages as one bundle file per distinct content (mailbox/bundles.py).
    bundles: bool = True
    # Options only the chosen transport understands: SYFT_FLWR_<NAME> variables beyond the shared ones, as
    # {"name": value} (SYFT_FLWR_DRIVE_URL is "drive_url", SYFT_FLWR_DIR "dir"); the transport validates its own.
    transport_options: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        project: ProjectConfig | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from the environment, a project config and explicit overrides."""
        env = os.environ if environ is None else environ
        project = project or ProjectConfig()

        email_raw = overrides.pop("email", None) or env.get(ENV_EMAIL)
        if not email_raw:
            raise ConfigError(
                f"{ENV_EMAIL} is not set. Every participant is known by its Google account "
                f"email: `export {ENV_EMAIL}=you@example.com` (the account whose Drive is used)."
            )
        email = validate_email(email_raw)

        timeout_explicit = True
        if ENV_MSG_TIMEOUT in env:
            msg_timeout = positive_float(env[ENV_MSG_TIMEOUT], ENV_MSG_TIMEOUT)
        elif project.msg_timeout is not None:
            msg_timeout = project.msg_timeout
        else:
            msg_timeout, timeout_explicit = DEFAULT_MSG_TIMEOUT, False

        if ENV_POLL_INTERVAL in env:
            poll_interval = positive_float(env[ENV_POLL_INTERVAL], ENV_POLL_INTERVAL)
        else:
            poll_interval = project.poll_interval or DEFAULT_POLL_INTERVAL

        aggregator_raw = env.get(ENV_AGGREGATOR) or project.aggregator
        settings = cls(
            email=email,
            msg_timeout=msg_timeout,
            poll_interval=poll_interval,
            transport=env.get(ENV_TRANSPORT) or project.transport,
            state_dir=(
                Path(env[ENV_STATE_DIR]).expanduser()
                if env.get(ENV_STATE_DIR)
                else Path.home() / ".cache" / "syft_flwr_gdrive"
            ),
            aggregator=validate_email(aggregator_raw, what=ENV_AGGREGATOR) if aggregator_raw else None,
            msg_timeout_explicit=timeout_explicit,
            encryption=_flag(env.get(ENV_ENCRYPTION, "true"), ENV_ENCRYPTION),
            adaptive_poll=_flag(env.get(ENV_ADAPTIVE_POLL, "true"), ENV_ADAPTIVE_POLL),
            bundles=_flag(env.get(ENV_BUNDLES, "true"), ENV_BUNDLES),
            max_message_bytes=_megabytes(env.get(ENV_MAX_MESSAGE_MB, str(DEFAULT_MAX_MESSAGE_MB)), ENV_MAX_MESSAGE_MB),
            blob_part_bytes=_megabytes(
                env.get(ENV_BLOB_PART_MB, str(DEFAULT_BLOB_PART_MB)), ENV_BLOB_PART_MB, DEFAULT_BLOB_PART_MB
            ),
            max_offer_bytes=_megabytes(
                env.get(ENV_MAX_OFFER_MB, str(DEFAULT_MAX_OFFER_MB)), ENV_MAX_OFFER_MB, DEFAULT_MAX_OFFER_MB
            ),
            transport_options={
                k[len(ENV_PREFIX) :].lower(): v
                for k, v in env.items()
                if k.startswith(ENV_PREFIX) and k not in _SHARED_ENV
            },
        )
        if overrides:
            if "msg_timeout" in overrides:
                overrides["msg_timeout"] = positive_float(overrides["msg_timeout"], "msg_timeout")
                overrides.setdefault("msg_timeout_explicit", True)
            if "transport_options" in overrides:  # added to those of the environment
                overrides["transport_options"] = {**settings.transport_options, **overrides["transport_options"]}
            if "poll_interval" in overrides:
                overrides["poll_interval"] = positive_float(overrides["poll_interval"], "poll_interval")
            settings = replace(settings, **overrides)
        return settings

    def participant_state_dir(self) -> Path:
        """Per-account local state (processed ids, folder ids); survives restarts."""
        safe = re.sub(r"[^a-z0-9._+-]", "_", self.email)
        return self.state_dir / safe


def app_folder(variable: str) -> str | None:
    """The folder an app-convention variable (``ENV_DATA_DIR``, ``ENV_OUTPUT_DIR``) names; None when unset or empty."""
    return os.environ.get(variable) or None
