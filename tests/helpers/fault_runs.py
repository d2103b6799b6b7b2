"""The clean and the faulty federation of tests/reliability/test_faults.py, run in the background.

Both run the digest app on their own fake Drive; the faulty one under injected faults (see test_faults.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.localrun.federation import LocalFederation
from tests.helpers.reliability import DIGEST_APP
from tests.helpers.reliability import DRIVE_PROFILE
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import file_props
from tests.helpers.reliability import leftover_message_files
from tests.helpers.reliability import make_federation
from tests.helpers.reliability import owned_files

ROUNDS = 5
FAULTS = dict(error_rate=0.2, drop_rate=0.05, list_lag=2.0, seed=20240611)


@dataclass
class RunPair:
    clean: LocalFederation
    faulty: LocalFederation
    clean_left: dict[str, int]
    faulty_left: dict[str, int]
    faulty_stop_files: list[dict]
    faults: dict[str, int]
    seconds: float


def _run(fed: LocalFederation, timeout: float, box: dict) -> None:
    fed.start_all()
    box["ok"] = fed.wait(timeout)


class PairOfRuns:
    """The clean and the faulty run, in a background thread (they mostly wait on lag and backoff).

    The session fixture ``fault_runs`` (tests/reliability/conftest.py) starts it at the first
    reliability test when tests of test_faults.py are selected, which run last, so the other
    reliability tests run meanwhile; the ``runs`` fixture waits for the result.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.feds: list[LocalFederation] = []
        self.result: RunPair | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="reliability-fault-runs", daemon=True)

    def start(self) -> PairOfRuns:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Kill every participant process (idempotent); used at session end whatever happened."""
        for fed in self.feds:
            fed.stop()
        self._thread.join(30)

    def wait(self, timeout: float = 280) -> RunPair:  # within pytest-timeout's 300 s per test
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.stop()
            raise AssertionError(f"the fault runs did not finish within {timeout:.0f}s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def _main(self) -> None:
        try:
            self.result = self._pair()
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def _pair(self) -> RunPair:
        started = time.monotonic()
        with (
            FakeDriveServer(profile=DRIVE_PROFILE) as clean_drive,
            FakeDriveServer(faults=FaultConfig(**FAULTS), profile=DRIVE_PROFILE) as faulty_drive,
        ):
            clean = make_federation(self.base / "clean", clean_drive, DIGEST_APP)
            faulty = make_federation(self.base / "faulty", faulty_drive, DIGEST_APP)
            self.feds += [clean, faulty]
            boxes: dict[str, dict] = {"clean": {}, "faulty": {}}
            try:
                threads = [
                    threading.Thread(target=_run, args=(fed, 200, boxes[name]), daemon=True)
                    for name, fed in (("clean", clean), ("faulty", faulty))
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(220)
            finally:
                clean.stop()
                faulty.stop()
            assert boxes["clean"].get("ok"), "clean run did not finish:\n" + clean.server().log_text()[-3000:]
            assert boxes["faulty"].get("ok"), "faulty run did not finish:\n" + faulty.server().log_text()[-3000:]
            faults = faulty_drive.stats()["faults"]
            faulty_drive.faults = FaultConfig()
            stop_files = [f for f in owned_files(faulty_drive, SERVER) if file_props(f).get("sfg_kind") == "stop"]
            return RunPair(
                clean,
                faulty,
                leftover_message_files(clean_drive),
                leftover_message_files(faulty_drive),
                stop_files,
                faults,
                time.monotonic() - started,
            )
