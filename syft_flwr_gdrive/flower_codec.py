"""Flower Message <-> bytes, with Flower's own protobuf serde, and node ids from emails."""

from __future__ import annotations

import hashlib

from flwr.app import Message
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module

SERVER_NODE_ID = SUPERLINK_NODE_ID


class PayloadError(ValueError):
    """A payload is not a Flower message."""


def message_to_bytes(message: Message) -> bytes:
    return message_to_proto(message).SerializeToString()


def message_from_bytes(payload: bytes) -> Message:
    proto = ProtoMessage()
    try:
        proto.ParseFromString(payload)
        return message_from_proto(proto)
    except Exception as exc:  # protobuf raises DecodeError, serde may raise ValueError/KeyError
        raise PayloadError(f"payload is not a Flower message ({type(exc).__name__})") from None


def node_id_for(email: str) -> int:
    """A stable 63-bit Flower node id for a participant's email.

    Derived, not assigned, so the server and every client agree on it without
    talking; never 0 and never the server's own id.
    """
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).digest()
    node_id = int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)
    return node_id if node_id > SERVER_NODE_ID else node_id + 2
