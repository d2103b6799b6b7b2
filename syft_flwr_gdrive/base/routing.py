"""Routing: who sends which message of which run to whom, and until when. Defined once, here.

Its fields drive everything that carries them: the envelope header (``Envelope`` extends
it), a storage's metadata (Drive properties, the directory transport's routing line) and
the authenticated data sealing binds to (:meth:`Routing.authenticated_data`). A field added
here reaches all of them; tests check that each encoding covers every field.
No Flower, no storage, no crypto: everything may import it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping

_TYPES = {"int": int, "str": str, "float": float}

# What a message is: the server's instruction, a datasite's answer, the end of a run, and its acknowledgement.
KIND_REQUEST = "request"
KIND_REPLY = "reply"
KIND_STOP = "stop"
KIND_STOP_ACK = "stop-ack"
# What travels on the apps channel: an aggregator offers its app to a data owner, who answers (approve or reject).
KIND_OFFER = "offer"
KIND_ANSWER = "answer"
KINDS = frozenset({KIND_REQUEST, KIND_REPLY, KIND_STOP, KIND_STOP_ACK, KIND_OFFER, KIND_ANSWER})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Routing:
    """Routing metadata stored beside a body, readable without downloading it.

    The field order is the order of the authenticated data: do not reorder.
    """

    app: str
    run_id: int
    message_id: str
    reply_to: str = ""
    kind: str
    sender: str
    recipient: str
    created_at: float = dataclasses.field(default_factory=time.time)
    ttl: float = 43200.0

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Routing's own fields, in order (a subclass's extra fields are not routing)."""
        return tuple(f.name for f in dataclasses.fields(Routing))

    def routing(self) -> Routing:
        """Just the routing part (of an envelope, say)."""
        return Routing(**{name: getattr(self, name) for name in Routing.field_names()})

    def as_dict(self) -> dict[str, str | int | float]:
        """The routing fields by name (JSON-ready)."""
        return {name: getattr(self, name) for name in Routing.field_names()}

    def as_text(self) -> dict[str, str]:
        """The routing fields as strings (for storage metadata); floats exactly, as ``repr``."""
        return {name: str(value) for name, value in self._exact().items()}

    def authenticated_data(self) -> bytes:
        """What sealing binds a payload to: every field, in order, floats exactly (as ``repr``)."""
        return json.dumps(list(self._exact().values()), separators=(",", ":")).encode("utf-8")

    def _exact(self) -> dict[str, str | int]:
        """The fields in order, float fields as ``repr(float(...))`` (exact, and the same for 5 and 5.0)."""
        return {
            f.name: repr(float(getattr(self, f.name))) if f.type == "float" else getattr(self, f.name)
            for f in dataclasses.fields(Routing)
        }

    def disagreement(self, other: Routing) -> list[str]:
        """Names of the routing fields on which ``other`` says something else."""
        return [name for name in Routing.field_names() if getattr(self, name) != getattr(other, name)]

    @classmethod
    def from_dict(cls, data: object) -> Routing | None:
        """From :meth:`as_dict`'s form; None unless every field is there with its type and times are sane."""
        if not isinstance(data, dict):
            return None
        values: dict[str, object] = {}
        for f in dataclasses.fields(Routing):
            value = data.get(f.name)
            if f.type == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not _TYPES[str(f.type)]:
                return None
            values[f.name] = value
        # values holds every Routing field, each type checked above; mypy cannot follow a dict of mixed types
        return _sane(Routing(**values))  # type: ignore[arg-type]

    @classmethod
    def from_text(cls, text: Mapping[str, object]) -> Routing | None:
        """From :meth:`as_text`'s form (strings, e.g. storage metadata); None if a field is missing or malformed."""
        values: dict[str, object] = {}
        try:
            for f in dataclasses.fields(Routing):
                raw = text[f.name]
                if not isinstance(raw, str):
                    return None
                values[f.name] = _TYPES[str(f.type)](raw)
        except (KeyError, ValueError, OverflowError):
            return None
        # values holds every Routing field, each type checked above; mypy cannot follow a dict of mixed types
        return _sane(Routing(**values))  # type: ignore[arg-type]


def _sane(routing: Routing) -> Routing | None:
    if not (math.isfinite(routing.created_at) and math.isfinite(routing.ttl) and routing.ttl > 0):
        return None
    return routing
