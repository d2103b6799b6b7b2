"""Promised ids: each message or bundle file names the id its writer's next file of the stream will have.

Why: Drive's listings lag behind creates (docs/drive-assumptions.md row 10; the strict fake shows
each file as it was up to a second ago), and an exchange of N messages waits for the slowest of N
files to list, twice (the server's bundle reaching the clients, their replies reaching the server).
A file fetched by its id is current (row 11). Every file we create already has an id from
``files.generateIds``; a writer that reserves its stream's *next* id one message ahead and writes
it on the file (``sfg_nx``, ``layout.P_NEXT``) lets its reader fetch that next file by id the
moment it exists.

A *stream* is what one writer sends one reader through one place: its direct messages to me
(its outbox folder to me), or its bundles (the folder it announced for them, read by all its
peers). The book below is the reader's side; the writer's side is :class:`.writes.Writer`.

A stream's *first* file is promised too: the writer stamps the id its next file will have on its
outbox folder (``sfg_nx``, ``sfg_bnx``, with the time in ``sfg_hat``), folded into a write it makes
anyway (a server's run announcement, a client's keys, a client's first sight of a run), and the
reader reads that folder by id (:mod:`.discovery`). So no stream waits for a listing to find its
first file either; a stamp older than a file already seen is stale and ignored.

A promise is only a hint where to look: the transport accepts a file found at a promised id only
if Drive says the promising peer owns it and it lies in that peer's folder for the stream, the
checks a listed file passes. Promises are taken only from files that passed those checks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from dataclasses import field
from typing import Literal

StreamKind = Literal["direct", "bundle"]
Stream = tuple[str, StreamKind, str]  # (app, kind, peer)
LINKS_KEPT = 64  # a stream's recent files remembered (id -> its promise), to follow a chain that listed at once


@dataclass
class _Chain:
    head: str | None = None  # the id promised for the stream's next file (None: no promise outstanding)
    at: float = float("-inf")  # created-at of the newest file that promised (the writer's clock)
    links: dict[str, str | None] = field(default_factory=dict)  # recent files of the stream -> what each promised


class PromiseBook:
    """A reader's promises: per stream, the newest promise not fulfilled yet."""

    def __init__(self) -> None:
        self._chains: dict[Stream, _Chain] = {}
        self._refused: set[str] = set()  # ids whose file failed the checks: never fetched again
        self._lock = threading.Lock()

    def seen(self, stream: Stream, handle: str, created_at: float, promised: str | None) -> None:
        """A file of ``stream`` that passed the checks (listed or fetched) and what it promised.

        Its promise becomes the stream's if it is the promised file itself or newer than the file
        that made the current promise (a listing may show old files, or several at once); then the
        chain is followed through files already seen."""
        with self._lock:
            chain = self._chains.setdefault(stream, _Chain())
            if handle in chain.links:
                return
            chain.links[handle] = promised
            while len(chain.links) > LINKS_KEPT:
                del chain.links[next(iter(chain.links))]
            if handle == chain.head or created_at >= chain.at:
                chain.head, chain.at = promised, max(chain.at, created_at)
            hops = 0
            while chain.head is not None and chain.head in chain.links and hops < LINKS_KEPT:
                chain.head, hops = chain.links[chain.head], hops + 1

    def stamped(self, stream: Stream, head: str, at: float) -> None:
        """A head the stream's writer stamped on its folder at ``at`` (its clock): the id of the stream's next
        file after every file it made before ``at``. Taken like a promise of a file made at ``at``."""
        with self._lock:
            chain = self._chains.setdefault(stream, _Chain())
            if at < chain.at or (head == chain.head and at == chain.at):
                return  # a file made after the stamp promised something newer (or nothing changed)
            chain.head, chain.at = head, at
            hops = 0
            while chain.head is not None and chain.head in chain.links and hops < LINKS_KEPT:
                chain.head, hops = chain.links[chain.head], hops + 1

    def outstanding(self, app: str) -> dict[str, Stream]:
        """Promised ids of ``app`` whose files were not seen yet -> their streams."""
        with self._lock:
            return {
                c.head: s
                for s, c in self._chains.items()
                if s[0] == app and c.head is not None and c.head not in self._refused and c.head not in c.links
            }

    def refuse(self, handle: str) -> None:
        """The file at a promised id failed the checks: drop the promise; the stream's next listed file renews it."""
        with self._lock:
            self._refused.add(handle)
            for chain in self._chains.values():
                if chain.head == handle:
                    chain.head = None
