import threading

import pytest

from syft_flwr_gdrive.transport.drive.ratelimit import BURST
from syft_flwr_gdrive.transport.drive.ratelimit import SAFETY
from syft_flwr_gdrive.transport.drive.ratelimit import QuotaLimiter
from syft_flwr_gdrive.transport.drive.ratelimit import units_for


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now += seconds


def test_units_follow_drive_costs():
    assert (
        units_for("files.list"),
        units_for("files.get"),
        units_for("media.download"),
        units_for("files.create"),
    ) == (100, 5, 200, 50)


def test_spending_in_any_minute_stays_under_the_budget():
    clock = FakeClock()
    limiter = QuotaLimiter(6000, clock=clock, sleep=clock.sleep)
    spent: list[tuple[float, int]] = []
    for i in range(2000):
        units = units_for(("files.list", "files.create", "media.download", "files.get")[i % 4])
        limiter.acquire(units)
        spent.append((clock.now, units))
    assert clock.now > 60  # it had to wait
    for start, _ in spent:
        window = sum(u for t, u in spent if start <= t < start + 60)
        assert window <= (SAFETY + BURST) * 6000 + 200


def test_threads_share_one_bucket():
    limiter = QuotaLimiter(30_000)  # 425 units/s after a 3000-unit burst
    done = []

    def worker():
        for _ in range(5):
            limiter.acquire(200)
        done.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(done) == 4 and limiter.waited > 0  # 4000 units > the 3000-unit burst: someone waited


def test_bounded_wait():
    clock = FakeClock()
    limiter = QuotaLimiter(100, clock=clock, sleep=clock.sleep)
    limiter.acquire(200)
    with pytest.raises(TimeoutError, match="quota pacing"):
        limiter.acquire(200, timeout=1)
