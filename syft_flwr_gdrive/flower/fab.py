"""The app as it travels to a data owner: a FAB built by Flower's own builder, and its safe unpacking.

A FAB is the zip ``flwr build`` makes (``flwr.cli.build.build_fab_from_disk``): the files chosen by
Flower's FAB rules, the project's ``pyproject.toml`` (``[tool.flwr.federations]`` dropped) and
``.info/CONTENT`` (path, SHA-256 and size of every file). The project fingerprint
(``fingerprint.app_identity``) is taken by the same rules, so the tree a data owner unpacks has the
fingerprint of the aggregator's project, which the client checks on every request.

Unpacking trusts nothing in the zip: no absolute path, no ``..``, no backslash, no link or device,
at most ``MAX_FILES`` files and ``UNPACKED_PER_PACKED`` times the offer cap in all, every file exactly
as ``.info/CONTENT`` says and nothing it does not list, files written read-only; and the unpacked
tree must have the fingerprint the aggregator signed, or the FAB is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from pathlib import PurePosixPath
from typing import Any

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import tomllib
from syft_flwr_gdrive.flower.fingerprint import AppIdentity
from syft_flwr_gdrive.flower.fingerprint import app_identity

CONTENT = ".info/CONTENT"
PYPROJECT = "pyproject.toml"
MAX_FILES = 2000  # a Flower app is tens of files; a FAB of thousands is not one
UNPACKED_PER_PACKED = 8  # unpacked bytes allowed per byte of the offer cap: text compresses ~4x, bombs far more


class FabRefused(ValueError):
    """A FAB that must not be installed; the text says why, for the data owner and the aggregator."""


@dataclass(frozen=True)
class FabInfo:
    """What a person needs to judge an app before it runs: who made it, what it is, what it needs."""

    name: str
    version: str
    publisher: str
    dependencies: tuple[str, ...]
    files: dict[str, int]  # path -> size in bytes (pyproject.toml included, .info/CONTENT not)
    fab_hash: str  # SHA-256 of the FAB's bytes (Flower's FAB id)
    size: int  # the FAB's bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "publisher": self.publisher,
            "dependencies": list(self.dependencies),
            "files": dict(self.files),
            "fab_hash": self.fab_hash,
            "size": self.size,
        }


def build_fab(project_dir: Path | str, *, max_bytes: int) -> bytes:
    """The project's FAB, as ``flwr build`` makes it; a ConfigError that says why if it cannot be, or if it is
    over ``max_bytes`` (SYFT_FLWR_MAX_OFFER_MB)."""
    from flwr.cli.build import build_fab_from_disk

    root = Path(project_dir).expanduser().resolve()
    try:
        fab = build_fab_from_disk(root)
    except (OSError, ValueError) as exc:  # Flower's own refusals (bad pyproject, too big, patterns) are ValueErrors
        raise ConfigError(f"cannot build the Flower app in {root} into a FAB: {exc}") from None
    if len(fab) > max_bytes:
        raise ConfigError(
            f"the app in {root} is a {len(fab):,}-byte FAB, over the offer limit of {max_bytes:,} bytes "
            "(SYFT_FLWR_MAX_OFFER_MB). Leave data and outputs out of it (fab-exclude in [tool.flwr.app], "
            ".gitignore), or raise SYFT_FLWR_MAX_OFFER_MB on both sides."
        )
    return fab


def fab_hash(fab: bytes) -> str:
    return hashlib.sha256(fab).hexdigest()


def _safe_name(name: str) -> str | None:
    """Why a zip member's name is not a plain relative path inside the folder, or None."""
    if not name or "\\" in name or "\x00" in name or not name.isprintable():
        return "an unprintable or Windows-style path"
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        return "an absolute path"
    if any(part in ("..", "") for part in name.rstrip("/").split("/")):
        return "a path that climbs out of its folder (..)"
    if ":" in path.parts[0]:
        return "a drive-letter path"
    return None


def _member_kind(info: zipfile.ZipInfo) -> str | None:
    """Why a member is not a regular file or folder (links, devices), from its Unix mode bits if it has them."""
    mode = info.external_attr >> 16
    if not mode:
        return None
    kind = stat.S_IFMT(mode)
    if kind in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    return "a symbolic link" if kind == stat.S_IFLNK else "a device, pipe or socket"


def read_fab(fab: bytes, *, max_bytes: int) -> dict[str, bytes]:
    """The FAB's files by path, checked: sizes, names, kinds, and every file exactly as ``.info/CONTENT`` lists it.

    Raises FabRefused naming the first thing wrong."""
    if len(fab) > max_bytes:
        raise FabRefused(
            f"the FAB is {len(fab):,} bytes, over the offer limit of {max_bytes:,} (SYFT_FLWR_MAX_OFFER_MB)"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(fab))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise FabRefused(f"not a FAB (zip) file: {exc}") from None
    members = archive.infolist()
    if len(members) > MAX_FILES:
        raise FabRefused(f"the FAB holds {len(members)} files, more than {MAX_FILES}")
    budget = max_bytes * UNPACKED_PER_PACKED
    files: dict[str, bytes] = {}
    with archive:
        for info in members:
            why = _safe_name(info.filename) or _member_kind(info)
            if why:
                raise FabRefused(f"the FAB holds {info.filename[:100]!r}: {why}")
            if info.is_dir():
                continue
            if info.filename in files:
                raise FabRefused(f"the FAB holds {info.filename!r} twice")
            if info.file_size > budget:
                raise FabRefused(f"the FAB unpacks to more than {budget:,} bytes")
            with archive.open(info) as member:
                data = member.read(budget + 1)
            budget -= len(data)
            if budget < 0:
                raise FabRefused(f"the FAB unpacks to more than {max_bytes * UNPACKED_PER_PACKED:,} bytes")
            files[info.filename] = data
    content = files.pop(CONTENT, None)
    if content is None:
        raise FabRefused(f"the FAB has no {CONTENT} (not built by `flwr build`)")
    listed: dict[str, tuple[str, int]] = {}
    for line in content.decode("utf-8", "replace").splitlines():
        path, _, rest = line.partition(",")
        digest, _, bits = rest.partition(",")
        if not path or not digest or not bits.isdigit():
            raise FabRefused(f"{CONTENT} has a malformed line {line[:100]!r}")
        listed[path] = (digest, int(bits))
    if set(listed) != set(files):
        odd = sorted(set(listed) ^ set(files))[:5]
        raise FabRefused(f"{CONTENT} and the FAB's files disagree on {', '.join(map(repr, odd))}")
    for path, data in files.items():
        want_digest, want_bits = listed[path]
        if hashlib.sha256(data).hexdigest() != want_digest or len(data) * 8 != want_bits:
            raise FabRefused(f"{path!r} differs from its hash in {CONTENT} (altered after it was built)")
    if PYPROJECT not in files:
        raise FabRefused("the FAB has no pyproject.toml")
    return files


def describe(fab: bytes, files: dict[str, bytes]) -> FabInfo:
    """Name, version, publisher and declared dependencies, from the FAB's pyproject.toml."""
    try:
        config = tomllib.loads(files[PYPROJECT].decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FabRefused(f"the FAB's pyproject.toml is not valid TOML: {exc}") from None
    project = config.get("project", {}) if isinstance(config.get("project"), dict) else {}
    app = config.get("tool", {}).get("flwr", {}).get("app", {})
    deps = project.get("dependencies", [])
    return FabInfo(
        name=str(project.get("name", "")),
        version=str(project.get("version", "")),
        publisher=str(app.get("publisher", "")) if isinstance(app, dict) else "",
        dependencies=tuple(str(d) for d in deps) if isinstance(deps, list) else (),
        files={path: len(data) for path, data in sorted(files.items())},
        fab_hash=fab_hash(fab),
        size=len(fab),
    )


def unpack(files: dict[str, bytes], dest: Path) -> None:
    """Write checked files under ``dest`` (which must not exist), read-only, folders too."""
    dest.mkdir(parents=True)
    root = dest.resolve()
    for path, data in sorted(files.items()):
        target = (root / path).resolve()
        if root not in target.parents:  # belt and braces: _safe_name already refused anything that climbs
            raise FabRefused(f"{path!r} would land outside its folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    for folder, _dirs, _files in os.walk(root, topdown=False):
        os.chmod(folder, 0o555)


def remove_tree(path: Path) -> None:
    """Remove an unpacked (read-only) tree."""
    if not path.exists():
        return
    for folder, _dirs, _files in os.walk(path):
        os.chmod(folder, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def install(fab: bytes, fingerprint: str, dest: Path, *, max_bytes: int) -> tuple[FabInfo, AppIdentity]:
    """Check and unpack a FAB into ``dest`` (kept if already there); refuse it unless the unpacked tree has
    the ``fingerprint`` its sender signed. Returns what it is and its identity."""
    files = read_fab(fab, max_bytes=max_bytes)
    info = describe(fab, files)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=dest.parent))
    try:
        tree = staging / "app"
        unpack(files, tree)
        try:
            identity = app_identity(tree)
        except ConfigError as exc:
            raise FabRefused(f"the unpacked app cannot be fingerprinted: {exc}") from None
        if identity.fingerprint != fingerprint:
            raise FabRefused(
                f"the FAB's contents have fingerprint {identity.fingerprint[:16]}, not the {fingerprint[:16]} its "
                "sender signed: refused"
            )
        if not dest.exists():
            os.chmod(staging, 0o755)
            os.replace(tree, dest)
    finally:
        remove_tree(staging)
    return info, identity


def unpack_to(fab: bytes, dest: Path, *, max_bytes: int) -> list[str]:
    """Unpack a FAB read-only into a new folder ``dest`` (for a person to review); returns its file list."""
    files = read_fab(fab, max_bytes=max_bytes)
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest} exists and is not empty; name a new folder")
    if dest.exists():
        dest.rmdir()
    unpack(files, dest)
    return sorted(files)
