"""The ``dir`` transport: message files in a directory every participant can reach.

Suits a folder synced by Drive for desktop or Dropbox, an NFS share, or tests.
Each participant writes only under its own subfolder, named by its email;
whose subfolder a file is in is what this transport reports as its owner::

    ROOT/<email>/<app folder>/announce.json          current run and public keys (peers read it), signed
    ROOT/<email>/<app folder>/to/<peer>/<id>.msg     one message: a JSON routing line, then the body
    ROOT/<email>/<app folder>/blobs/<locator>.bin    shared blobs (content is already encrypted)

``<email>`` is the address exactly as ``canonical_email`` spells it (lower case; a gmail address
without dots, at gmail.com): that is the folder this transport writes, and the only one it reads
as that participant's. A look-alike (``DS@x.com``, ``d.s@gmail.com``) is ignored, with one log line.

Every file is written to a temporary name in its folder and moved into place with
``os.replace``, so a reader (or a sync client) never sees half a file. Polling lists
folders and reads each message's first line; bodies are read only when asked.

Nothing found in the directory is trusted to be what its name says: files are opened through
``untrusted_files`` (no link followed, nothing but regular files, never blocking on a FIFO, every
file of the uid that owns its participant's folder, read no further than the size checked).

Trust: the owner is whoever's subfolder holds the file, so use a directory where each
participant's subfolder is writable only by them (file permissions, per-folder shares);
with encryption on (the default) a forged file also fails its signature check, and an
announcement must carry its writer's signature (``signed_announcements``).
Options: ``SYFT_FLWR_DIR`` (the shared directory; required).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import BinaryIO
from typing import ClassVar

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import option_env
from syft_flwr_gdrive.base.logsafe import printable
from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.base.segments import SeekableReader
from syft_flwr_gdrive.base.segments import as_reader
from syft_flwr_gdrive.transport.contract import Announcement
from syft_flwr_gdrive.transport.contract import AnnouncementSigner
from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.contract import Check
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.untrusted_files import OwnedFolder
from syft_flwr_gdrive.transport.untrusted_files import UnsafeFile
from syft_flwr_gdrive.transport.untrusted_files import copy_at_most
from syft_flwr_gdrive.transport.untrusted_files import open_owned
from syft_flwr_gdrive.transport.untrusted_files import owned_folder

logger = logging.getLogger(__name__)

OPTION_DIR = "dir"  # SYFT_FLWR_DIR
# The layout of the directory and of its files' routing line, versioned apart from the message format.
LAYOUT_VERSION = 1  # what this build writes
LAYOUT_READS = frozenset({1})  # what it reads
MAX_HEADER = 4096  # a routing line is a few hundred bytes; anything longer is not ours
CHUNK = 1 << 20
ANNOUNCE = "announce.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")  # message ids (as the envelope checks them)
_LOCATOR = re.compile(r"^[0-9a-f]{32}$")


def app_folder(app: str) -> str:
    """A folder name for ``app``: readable, and distinct for distinct apps."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", app)[:60]
    return f"{readable}-{hashlib.sha256(app.encode('utf-8')).hexdigest()[:12]}"


def write_atomic(path: Path, chunks: Iterator[bytes]) -> int:
    """Write ``chunks`` to ``path`` via a temporary file in the same folder and ``os.replace``; returns the size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    size = 0
    try:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def _reader_chunks(reader: Any) -> Iterator[bytes]:
    reader.seek(0)
    while chunk := reader.read(CHUNK):
        yield chunk


class DirectoryTransport(Transport):
    """Transport over a shared directory; one instance per participant."""

    name: ClassVar[str] = "dir"
    shares_blobs: ClassVar[bool] = True
    signed_announcements: ClassVar[bool] = True  # a folder's name is all that says who wrote announce.json

    def __init__(self, root: Path | str, email: str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError(
                f"The shared directory {self.root} does not exist. Create it (mkdir -p {self.root}) "
                f"or point {option_env(OPTION_DIR)} at the folder every participant shares."
            )
        self.email = canonical_email(email)
        self.home = self.root / self.email
        self._signers: dict[str, AnnouncementSigner] = {}  # app -> what signs my announcements of it
        self._announcing: dict[str, dict[str, Any]] = {}  # app -> what I announce (kept here, never read back)
        self._warned: set[tuple[str, str]] = set()  # (path, reason) already logged

    @classmethod
    def from_settings(cls, settings: Settings) -> DirectoryTransport:
        root = settings.transport_options.get(OPTION_DIR, "").strip()
        if not root:
            raise ConfigError(
                f"The dir transport needs the shared directory: set {option_env(OPTION_DIR)}=/path/to/folder, "
                "the same folder (synced, or on a share) for every participant."
            )
        return cls(Path(root).expanduser(), settings.email)

    @classmethod
    def diagnose(cls, settings: Settings) -> list[Check]:
        """The directory exists, and my subfolder of it is mine: spelled as peers look for it, owned by me."""
        try:
            transport = cls.from_settings(settings)
        except ConfigError as exc:
            return [Check("directory", False, str(exc), f"set {option_env(OPTION_DIR)} to an existing shared folder")]
        try:
            transport.home.mkdir(exist_ok=True)
            transport.check_my_folder(transport.home)
        except OSError as exc:
            return [
                Check(
                    "directory",
                    False,
                    f"cannot write into {transport.home}: {exc}",
                    "give this account write access to its own subfolder of the shared directory",
                )
            ]
        except ConfigError as exc:
            return [Check("directory", False, str(exc), "see the text above")]
        return [Check("directory", True, f"shared directory {transport.root}, my subfolder {transport.home.name}")]

    # -- primitives --------------------------------------------------------------------

    def prepare(self, app: str, peers: Sequence[str]) -> None:
        """Make my folder of ``app`` and check that it is mine (see :meth:`check_my_folder`)."""
        self._count("prepare")
        base = self.home / app_folder(app)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(f"could not create {base}: {exc}") from exc
        self.check_my_folder(base)

    def check_my_folder(self, base: Path) -> None:
        """Raise ``ConfigError`` unless my folder (and ``base`` in it) is what peers will trust as mine.

        Peers read only a real folder named exactly my canonical address, and only files of the uid that owns it.
        A folder made by someone else before me (or a look-alike spelling on a case-insensitive disk) would make
        every file I write there be ignored or refused: say so now, with the fix, rather than go unheard.
        """
        listed = [n for n in os.listdir(self.root) if canonical_email(n) == self.email]
        if self.email not in listed:
            raise ConfigError(
                f"My folder in the shared directory is listed as {', '.join(map(repr, listed)) or 'nothing'}, not "
                f"{self.email!r}: peers trust only the exact canonical address (on a case-insensitive disk a "
                "look-alike made by someone else takes its place). Remove that folder and start again."
            )
        if not stat.S_ISDIR(self.home.lstat().st_mode):
            raise ConfigError(
                f"{self.home} is not a folder (a link?): peers refuse it. Remove it and start again, so that it is "
                "created as a folder of this account."
            )
        probe = base / f".probe-{uuid.uuid4().hex}"
        write_atomic(probe, iter([b"ok"]))
        try:
            mine = probe.lstat().st_uid
        finally:
            probe.unlink(missing_ok=True)
        for folder in dict.fromkeys((self.home, base)):
            owner = folder.lstat().st_uid
            if owner != mine:
                raise ConfigError(
                    f"{folder} belongs to uid {owner}, but the files I write there belong to uid {mine}: peers "
                    "refuse every file whose uid differs from the uid of its participant's folder (someone else "
                    f"may have created it). Fix: remove it and start again, or `chown -R {mine} {self.home}`."
                )

    def announce_run(self, app: str, run_id: int) -> None:
        self._update_announcement(app, run_id=run_id)

    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        self._update_announcement(app, keys=dict(keys))

    def sign_announcements(self, app: str, signer: AnnouncementSigner) -> None:
        self._signers[app] = signer

    def send(self, routing: Routing, body: Buffer | Sequence[Buffer] | BinaryIO | SeekableReader) -> str:
        self._count("write")
        if not _SAFE_ID.match(routing.message_id):
            raise TransportError(
                f"message id {routing.message_id!r} cannot name a file (1-64 of A-Z a-z 0-9 . _ @ + -)"
            )
        recipient = canonical_email(routing.recipient)
        path = self.home / app_folder(routing.app) / "to" / recipient / f"{routing.kind}-{routing.message_id}.msg"
        header = json.dumps({"layout": LAYOUT_VERSION, **routing.as_dict()}, sort_keys=True).encode("utf-8") + b"\n"
        reader = as_reader(body)
        try:
            write_atomic(path, _chain([header], _reader_chunks(reader)))
        except OSError as exc:
            raise TransportError(f"could not write {path}: {exc}") from exc
        return self._handle(path)

    def poll(self, app: str) -> Listing:
        self._count("list")
        folder = app_folder(app)
        inbound: list[Posting] = []
        announcements: list[Announcement] = []
        try:
            names = sorted(n for n in os.listdir(self.root) if not n.startswith("."))
        except OSError as exc:
            raise TransportError(f"could not list {self.root}: {exc}") from exc
        for owner in names:
            if owner == self.email or not self._participant_folder(owner):
                continue
            inbound.extend(self._postings([owner, folder, "to", self.email], owner))
            state = self._announcement(owner, folder)
            if state is not None:
                announcements.append(Announcement(owner, state["run_id"], state["keys"], state["signature"]))
        outbound = [p for box in self._boxes(self.email, folder) for p in self._postings(box, self.email)]
        return Listing(tuple(inbound), tuple(outbound), tuple(announcements))

    def read_to(self, posting: Posting, out: BinaryIO, *, max_bytes: int | None = None) -> int:
        self._count("read")
        parts = self._parts(posting.handle)

        def check(size: int) -> None:
            if max_bytes is not None and size > max_bytes:
                raise TransportError(f"message file {posting.handle} is {size} bytes, over the {max_bytes}-byte limit")

        return self._copy_body(
            parts,
            out,
            header=True,
            check=check,
            gone=TransportError(f"message file {posting.handle} is gone"),
            unsafe=lambda why: TransportError(f"message file {posting.handle} is refused: {why}"),
        )

    def delete(self, handles: Sequence[str]) -> None:
        self._count("delete")
        for handle in handles:
            if "/" in handle:
                path = self.root.joinpath(*self._parts(handle))
                if handle.split("/")[0] != self.email:
                    raise TransportError(f"{self.email} may not delete {handle}: it is not in my subfolder")
                targets = [path]
            elif _LOCATOR.match(handle):
                targets = list(self.home.glob(f"*/blobs/{handle}.bin"))
            else:
                raise TransportError(f"{handle!r} is neither a message handle nor a blob locator of this transport")
            try:
                for target in targets:
                    target.unlink(missing_ok=True)
            except OSError as exc:
                raise TransportError(f"could not delete {handle}: {exc}") from exc

    def my_postings(self, app: str | None = None) -> list[Posting]:
        apps = [app_folder(app)] if app is not None else [p.name for p in self._subfolders(self.home)]
        return [
            p for folder in apps for box in self._boxes(self.email, folder) for p in self._postings(box, self.email)
        ]

    # -- shared blobs ----------------------------------------------------------------------

    def put_blob(self, app: str, data: Buffer | BinaryIO | SeekableReader) -> str:
        self._count("put_blob")
        locator = uuid.uuid4().hex
        try:
            write_atomic(self.home / app_folder(app) / "blobs" / f"{locator}.bin", _reader_chunks(as_reader(data)))
        except OSError as exc:
            raise TransportError(f"could not store a shared blob: {exc}") from exc
        return locator

    def get_blob(
        self, app: str, locator: str, *, owner: str, size: int, out: BinaryIO, appear_within: float = 0.0
    ) -> int:
        """Read a blob only from ``owner``'s blobs folder of ``app``, and only if it is a regular file of ``owner``'s
        of ``size`` bytes (stored whole: never reserved, so ``appear_within`` has nothing to wait for)."""
        self._count("get_blob")
        if not _LOCATOR.match(locator):
            raise BlobRefused(f"{locator!r} is not a blob locator of the dir transport")

        def check(found: int) -> None:
            if found != size:
                raise BlobRefused(f"blob {locator} is {found} bytes, not the {size} its message says")

        return self._copy_body(
            [canonical_email(owner), app_folder(app), "blobs", f"{locator}.bin"],
            out,
            header=False,
            check=check,
            gone=BlobRefused(f"blob {locator} is not one of {owner}'s blobs of this app (or is gone)"),
            unsafe=lambda why: BlobRefused(f"blob {locator} of {owner} is refused: {why}"),
        )

    def list_my_blobs(self, app: str) -> list[str]:
        return sorted(p.stem for p in (self.home / app_folder(app) / "blobs").glob("*.bin") if _LOCATOR.match(p.stem))

    # -- internals ---------------------------------------------------------------------------

    def _handle(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @staticmethod
    def _parts(handle: str) -> list[str]:
        """A handle's path inside the root (``owner/app/to/peer/file``: nothing else, no ``..``)."""
        parts = handle.split("/")
        if len(parts) != 5 or parts[2] != "to" or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            raise TransportError(f"{handle!r} is not a message handle of the dir transport")
        return parts

    def _warn_once(self, where: str, reason: str) -> None:
        if (where, reason) in self._warned:
            return
        self._warned.add((where, reason))
        logger.warning("ignoring %s in the shared directory: %s", printable(where), printable(reason, 600))

    def _participant_folder(self, name: str) -> bool:
        """Whether the folder ``name`` may be a participant's: only one spelled exactly as an address is spelled
        here. Another spelling of a peer's address is a look-alike (anyone can make one): never trusted."""
        if "@" not in name:
            return False  # not a participant's folder at all
        canonical = canonical_email(name)
        if name != canonical:
            self._warn_once(
                name,
                f"a look-alike of {canonical!r}: a participant's folder is named exactly by its canonical address, "
                "so no file in this one is read",
            )
            return False
        return True

    @staticmethod
    def _subfolders(path: Path) -> list[Path]:
        try:
            return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise TransportError(f"could not list {path}: {exc}") from exc

    def _boxes(self, owner: str, folder: str) -> list[list[str]]:
        """The outboxes (``to/<peer>``) of ``owner``'s folder of an app, as paths inside the root."""
        parts = [owner, folder, "to"]
        try:
            with owned_folder(self.root, parts) as to:
                names = sorted(n for n in to.names() if not n.startswith("."))
        except FileNotFoundError:
            return []
        except UnsafeFile as exc:
            self._warn_once("/".join(parts), str(exc))
            return []
        except OSError as exc:
            raise TransportError(f"could not list {self.root.joinpath(*parts)}: {exc}") from exc
        return [[*parts, name] for name in names]

    def _postings(self, box: list[str], owner: str) -> list[Posting]:
        """Message files in one folder (a path inside the root); a file whose routing line cannot be read has
        ``routing=None``, and one that must not be read (not a regular file of the folder owner's) says why."""
        try:
            with owned_folder(self.root, box) as folder:
                names = sorted(n for n in folder.names() if n.endswith(".msg") and not n.startswith("."))
                found = [self._posting(folder, box, name, owner) for name in names]
        except FileNotFoundError:
            return []
        except UnsafeFile as exc:
            self._warn_once("/".join(box), str(exc))
            return []
        except OSError as exc:
            raise TransportError(f"could not list {self.root.joinpath(*box)}: {exc}") from exc
        return [p for p in found if p is not None]

    @staticmethod
    def _posting(folder: OwnedFolder, box: list[str], name: str, owner: str) -> Posting | None:
        handle = "/".join([*box, name])
        try:
            with folder.open(name) as (f, size):
                header = f.readline(MAX_HEADER)
        except FileNotFoundError:
            return None  # deleted since the listing
        except UnsafeFile as exc:  # listed all the same, so that the mailbox says once why it is skipped
            return Posting(handle, owner, None, 0, name, unreadable=f"{exc}; refused unread")
        except OSError:
            return None  # unreadable: another poll will tell
        routing, problem = _routing(header)
        return Posting(handle, owner, routing, size - len(header), name, unreadable=problem)

    def _announcement(self, owner: str, folder: str) -> dict[str, Any] | None:
        parts = [owner, folder, ANNOUNCE]
        try:
            with open_owned(self.root, parts) as (f, size):
                if size > MAX_HEADER:
                    raise UnsafeFile(f"{size} bytes, where an announcement is a few hundred")
                raw = f.read(size)
        except FileNotFoundError:
            return None
        except UnsafeFile as exc:
            self._warn_once("/".join(parts), str(exc))
            return None
        except OSError:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        run_id, keys, signature = data.get("run_id"), data.get("keys"), data.get("signature")
        return {
            "run_id": run_id if isinstance(run_id, int) and not isinstance(run_id, bool) else None,
            "keys": ({str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else None),
            "signature": signature if isinstance(signature, str) else "",
        }

    def _update_announcement(self, app: str, **changes: Any) -> None:
        """Write my announcement of ``app``: what this process announced (never what the file holds: whoever can
        write into my folder could have changed it, and I would sign their words), signed if I have a signer."""
        self._count("announce")
        base = self.home / app_folder(app)
        state = self._announcing.setdefault(app, {"run_id": None, "keys": None})
        state.update(changes)
        signer = self._signers.get(app)
        written = {**state, "signature": signer(state["run_id"], state["keys"])} if signer is not None else state
        try:
            write_atomic(base / ANNOUNCE, iter([json.dumps(written, sort_keys=True).encode("utf-8")]))
        except OSError as exc:
            raise TransportError(f"could not write {base / ANNOUNCE}: {exc}") from exc

    def _copy_body(
        self,
        parts: Sequence[str],
        out: BinaryIO,
        *,
        header: bool,
        check: Callable[[int], None],
        gone: Exception,
        unsafe: Callable[[str], Exception],
    ) -> int:
        """Copy a file (after its routing line when ``header``) into ``out`` once ``check(size)`` passed; returns the
        size. Only the size checked is read: a file that grows meanwhile is cut there; one that shrinks is an error.

        A missing file raises ``gone``; one that must not be read ``unsafe(why)``; another I/O error a
        ``TransportError`` naming the path.
        """
        try:
            with open_owned(self.root, parts) as (f, stored):
                skipped = len(f.readline(MAX_HEADER)) if header else 0
                size = stored - skipped
                check(size)
                copied = copy_at_most(f, out, size, CHUNK)
        except FileNotFoundError:
            raise gone from None
        except UnsafeFile as exc:
            raise unsafe(str(exc)) from None
        except OSError as exc:
            raise TransportError(f"could not read {self.root.joinpath(*parts)}: {exc}") from exc
        if copied != size:
            raise TransportError(f"{'/'.join(parts)} shrank from {size} to {copied} bytes while being read")
        return size


def _routing(header: bytes) -> tuple[Routing | None, str]:
    """The routing line's fields, or None and (for a layout version this build cannot read) why."""
    if not header.endswith(b"\n"):
        return None, ""
    try:
        data = json.loads(header)
    except ValueError:
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    found = data.get("layout")
    if isinstance(found, bool) or found not in LAYOUT_READS:
        readable = ", ".join(str(v) for v in sorted(LAYOUT_READS))
        return None, (
            f"directory layout version {found!r} is not one this build reads (it reads {readable}, writes "
            f"{LAYOUT_VERSION}): its writer runs a different syft-flwr-gdrive release. Fix: upgrade, so "
            "that every participant runs the same release (pip install -U syft-flwr-gdrive)"
        )
    return Routing.from_dict(data), ""


def _chain(*parts: Any) -> Iterator[bytes]:
    for part in parts:
        yield from part
