"""Per-round metrics as Flower itself produces them, recorded in the server process with no help from the app.

Flower keeps a run's figures in one of two places. A Message-API strategy's ``Strategy.start`` fills a
``Result`` round by round (``train_metrics_clientapp``, ``evaluate_metrics_clientapp``,
``evaluate_metrics_serverapp``); the legacy path's ``Server.fit`` and ``DefaultWorkflow`` add losses and
metrics to a ``History``. Neither reaches the caller of a ServerApp (an ``@app.main`` keeps its Result to
itself, the legacy ServerApp drops its History), so while a run is recorded every ``Result`` and ``History``
created on its thread is noted as it is made, and read whenever a snapshot is asked for: during the run (the
live view) and at its end (the report and the plot). The number of rounds planned comes from the call that
starts them: ``Strategy.start``'s ``num_rounds``, ``Server.fit``'s, or a ``LegacyContext``'s ``ServerConfig``.

Nothing of Flower is changed but five methods wrapped for the recording's lifetime (constructors and
entry points, each calling the original first), so the app runs exactly as it would without it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import threading
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.history import History
from flwr.server.server import Server
from flwr.serverapp.strategy import Result
from flwr.serverapp.strategy import Strategy

# The phases of a round, as the report names them, and where Flower keeps each.
TRAIN, EVALUATE, SERVER_EVALUATE = "train", "evaluate", "server_evaluate"
_RESULT_FIELDS = {
    TRAIN: "train_metrics_clientapp",
    EVALUATE: "evaluate_metrics_clientapp",
    SERVER_EVALUATE: "evaluate_metrics_serverapp",
}


class RoundMetrics:
    """The Results and Histories one ServerApp run builds, and the rounds it planned; read at any time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: list[Result] = []
        self._histories: list[History] = []
        self.planned_rounds: int | None = None

    def note_result(self, result: Result) -> None:
        with self._lock:
            self._results.append(result)

    def note_history(self, history: History) -> None:
        with self._lock:
            self._histories.append(history)

    def note_plan(self, num_rounds: Any) -> None:
        if isinstance(num_rounds, int) and not isinstance(num_rounds, bool) and num_rounds >= 0:
            self.planned_rounds = num_rounds

    def rounds(self) -> list[dict[str, Any]]:
        """``[{"round": 1, "train": {...}, "evaluate": {...}, "server_evaluate": {...}}, ...]`` by round.

        A phase Flower kept no record of is left out (one with an empty record is ``{}``); round 0 is a
        centralized evaluation of the initial model (legacy ``Server.fit`` and a Message-API ``evaluate_fn``)."""
        table: dict[int, dict[str, dict[str, Any]]] = {}

        def put(rnd: int, phase: str, key: str, value: Any) -> None:
            table.setdefault(int(rnd), {}).setdefault(phase, {})[str(key)] = jsonable(value)

        with self._lock:
            results, histories = list(self._results), list(self._histories)
        for result in results:
            for phase, name in _RESULT_FIELDS.items():
                for rnd, record in dict(getattr(result, name)).items():
                    table.setdefault(int(rnd), {}).setdefault(phase, {})  # a round Flower kept, with no metrics
                    for key, value in dict(record).items():
                        put(rnd, phase, key, value)
        for history in histories:
            for rnd, loss in list(history.losses_distributed):
                put(rnd, EVALUATE, "loss", loss)
            for rnd, loss in list(history.losses_centralized):
                put(rnd, SERVER_EVALUATE, "loss", loss)
            for phase, by_key in (
                (TRAIN, history.metrics_distributed_fit),
                (EVALUATE, history.metrics_distributed),
                (SERVER_EVALUATE, history.metrics_centralized),
            ):
                for key, entries in dict(by_key).items():
                    for rnd, value in list(entries):
                        put(rnd, phase, key, value)
        return [{"round": rnd, **table[rnd]} for rnd in sorted(table)]

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: ``{"planned_rounds": N or None, "rounds": [...]}`` (see ``rounds``)."""
        return {"planned_rounds": self.planned_rounds, "rounds": self.rounds()}


def jsonable(value: Any) -> Any:
    """A metric value as JSON can hold it: non-finite floats become None, bytes a size, others their text."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    try:
        return jsonable(float(value))  # numpy scalars
    except (TypeError, ValueError):
        return str(value)


# -- the recording: which RoundMetrics a Flower object made on this thread belongs to ---------------------------

_registry_lock = threading.Lock()
_by_thread: dict[int, RoundMetrics] = {}
_originals: dict[tuple[type, str], Callable[..., Any]] = {}


def _current() -> RoundMetrics | None:
    """The recording of this thread; else the only one running (an app that trains on a thread of its own)."""
    with _registry_lock:
        found = _by_thread.get(threading.get_ident())
        if found is None and len(_by_thread) == 1:
            found = next(iter(_by_thread.values()))
        return found


def _after_init(note: Callable[[RoundMetrics, Any], None]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def wrap(init: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(init)
        def recorded_init(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            recorder = _current()
            if recorder is not None:
                note(recorder, self)

        return recorded_init

    return wrap


def _planning(arg: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Note the ``arg`` a round-running method is called with (its default when not given)."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(method)

        @functools.wraps(method)
        def planned(self: Any, *args: Any, **kwargs: Any) -> Any:
            recorder = _current()
            if recorder is not None:
                with contextlib.suppress(TypeError):  # a wrong call is Flower's to report, below
                    bound = signature.bind(self, *args, **kwargs)
                    bound.apply_defaults()
                    recorder.note_plan(bound.arguments.get(arg))
            return method(self, *args, **kwargs)

        return planned

    return wrap


def _note_legacy_context(recorder: RoundMetrics, context: Any) -> None:
    recorder.note_plan(getattr(getattr(context, "config", None), "num_rounds", None))
    # Its History was made inside __init__, so already noted.


_HOOKS: Mapping[tuple[type, str], Callable[[Callable[..., Any]], Callable[..., Any]]] = {
    (Result, "__init__"): _after_init(RoundMetrics.note_result),
    (History, "__init__"): _after_init(RoundMetrics.note_history),
    (LegacyContext, "__init__"): _after_init(_note_legacy_context),
    (Strategy, "start"): _planning("num_rounds"),
    (Server, "fit"): _planning("num_rounds"),
}


def _install() -> None:
    for (cls, name), hook in _HOOKS.items():
        original = cls.__dict__[name]
        _originals[(cls, name)] = original
        setattr(cls, name, hook(original))


def _uninstall() -> None:
    for (cls, name), original in _originals.items():
        setattr(cls, name, original)
    _originals.clear()


@contextlib.contextmanager
def recording() -> Iterator[RoundMetrics]:
    """Record what the ServerApp run on this thread builds; Flower is as it was once the last recording ends."""
    recorder = RoundMetrics()
    me = threading.get_ident()
    with _registry_lock:
        if me in _by_thread:
            raise RuntimeError("a ServerApp run is already being recorded on this thread")
        if not _by_thread:
            _install()
        _by_thread[me] = recorder
    try:
        yield recorder
    finally:
        with _registry_lock:
            del _by_thread[me]
            if not _by_thread:
                _uninstall()
