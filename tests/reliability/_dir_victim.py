"""The victim of the special-file scenarios, in a process of its own with bounded memory.

``python _dir_victim.py TASK`` (TASK: JSON) sets its address space to ``memory_mib``, then, as ``me``
on the shared directory ``root``:

* ``"poll"``: polls its mailbox of ``APP`` twice (encryption off: the files' bodies are what counts),
  and answers the message ids each poll delivered and every warning logged;
* ``"blob"``: reads ``owner``'s blob ``locator`` of ``size`` bytes, and answers what it got or why not.

Prints one JSON line. A hang (a FIFO opened for reading) or memory exhaustion (``/dev/zero`` read to
its end) is seen by the parent as a timeout or a death.
"""

from __future__ import annotations

import io
import json
import logging
import resource
import sys


def main() -> None:
    task = json.loads(sys.argv[1])
    limit = task["memory_mib"] * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    from syft_flwr_gdrive.mailbox.ledger import Ledger
    from syft_flwr_gdrive.mailbox.mailbox import Mailbox
    from syft_flwr_gdrive.transport.contract import TransportError
    from syft_flwr_gdrive.transport.directory import DirectoryTransport
    from tests.helpers.dir_attacks import APP

    warnings: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logging.getLogger().addHandler(Keep())
    logging.getLogger().setLevel(logging.INFO)
    transport = DirectoryTransport(task["root"], task["me"])
    if task["action"] == "poll":
        mailbox = Mailbox(transport, APP, task["peers"], Ledger(None), max_payload=64 * 1024 * 1024)
        polls = []
        for _ in range(2):
            result = mailbox.poll()
            polls.append(sorted(d.envelope.message_id for d in result.deliveries))
            for d in result.deliveries:
                d.close()
        print(json.dumps({"outcome": "done", "polls": polls, "warnings": warnings}))
    elif task["action"] == "blob":
        out = io.BytesIO()
        try:
            got = transport.get_blob(APP, task["locator"], owner=task["owner"], size=task["size"], out=out)
            answer = {"outcome": "done", "read": got, "bytes": len(out.getvalue())}
        except TransportError as exc:
            answer = {"outcome": "done", "refused": str(exc)}
        print(json.dumps(answer))


if __name__ == "__main__":
    main()
