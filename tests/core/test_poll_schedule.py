"""The adaptive poll schedule: backoff shape, the idle ceiling, the off switch, quota room.

Pure: a fake clock drives the schedule; nothing sleeps and nothing is timed.
"""

from __future__ import annotations

import pytest

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.flower.poll_schedule import BACKOFF
from syft_flwr_gdrive.flower.poll_schedule import FAST
from syft_flwr_gdrive.flower.poll_schedule import HOLD
from syft_flwr_gdrive.flower.poll_schedule import LEAD_MEMORY
from syft_flwr_gdrive.flower.poll_schedule import LEAD_SHARE
from syft_flwr_gdrive.flower.poll_schedule import PollPolicy
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.transport.drive.options import DriveOptions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gaps_after_expect(policy: PollPolicy, polls: int, *, poll_takes: float = 0.0) -> list[float]:
    """Gaps between successive polls of a participant that polls exactly when due, after one expect()."""
    clock = Clock()
    sched = PollSchedule(policy, clock=clock)
    sched.polled()  # an idle poll long ago
    clock.now += 100.0
    sched.expect()
    times = []
    for _ in range(polls):
        clock.now += sched.due_in()
        assert sched.is_due()
        times.append(clock.now)
        clock.now += poll_takes
        sched.polled()
    return [b - a for a, b in zip(times, times[1:])]


def test_fast_then_doubling_then_the_interval() -> None:
    policy = PollPolicy(interval=3.0)
    gaps = gaps_after_expect(policy, 12)
    fast = [g for g in gaps if g == pytest.approx(FAST)]
    assert len(fast) >= int(HOLD / FAST)  # the hold: a second of polls at the fast gap
    grown = gaps[len(fast) :]
    assert grown[-1] == pytest.approx(3.0) and gaps[-2] == pytest.approx(3.0)  # back at the idle cadence
    backing_off = [g for g in grown if g < 3.0]
    assert backing_off, gaps
    for prev, nxt in zip([fast[-1], *backing_off], backing_off):
        assert nxt == pytest.approx(prev * BACKOFF)  # each gap doubles
    assert gaps == sorted(gaps)  # never faster again without a new expectation
    assert max(gaps) == pytest.approx(3.0)


def test_the_interval_is_the_ceiling_whatever_happens() -> None:
    for interval in (0.1, 0.25, 1.0, 3.0, 30.0):
        for poll_takes in (0.0, 0.1, 5.0):
            gaps = gaps_after_expect(PollPolicy(interval=interval), 30, poll_takes=poll_takes)
            assert all(g <= interval + poll_takes + 1e-9 for g in gaps)
    # an interval below the fast gap: the fast phase cannot poll faster than the interval
    assert gaps_after_expect(PollPolicy(interval=0.1), 5) == pytest.approx([0.1] * 4)


def test_idle_polls_at_the_interval_and_first_poll_is_due_at_once() -> None:
    clock = Clock()
    sched = PollSchedule(PollPolicy(interval=3.0), clock=clock)
    assert sched.due_in() == 0.0 and sched.is_due()
    for _ in range(5):
        assert sched.polled() == pytest.approx(3.0)
        clock.now += 1.0
        assert not sched.is_due()
        clock.now += 2.0
        assert sched.is_due()
    assert sched.gap() == 3.0


def test_off_switch_polls_at_the_interval_even_when_expecting() -> None:
    policy = PollPolicy(interval=3.0, adaptive=False)
    assert gaps_after_expect(policy, 6) == pytest.approx([3.0] * 5)
    clock = Clock()
    sched = PollSchedule(policy, clock=clock)
    sched.polled()
    clock.now += 1.0
    sched.expect()
    sched.arrived(at=clock.now)
    assert sched.due_in() == pytest.approx(2.0) and sched.lead is None
    assert PollPolicy.for_settings(Settings.from_env({}, email="a@x.com", adaptive_poll=False)).adaptive is False


def test_expect_brings_the_next_poll_forward_never_back() -> None:
    clock = Clock()
    sched = PollSchedule(PollPolicy(interval=3.0), clock=clock)
    sched.polled()
    clock.now += 1.0
    sched.expect()  # was due in 2 s: now due in one fast gap
    assert sched.due_in() == pytest.approx(FAST)
    sched.polled()
    clock.now += 0.01
    sched.expect()  # due sooner already than a fresh fast gap from now? keep the sooner
    assert sched.due_in() <= FAST


def test_something_arriving_restarts_the_fast_phase() -> None:
    clock = Clock()
    sched = PollSchedule(PollPolicy(interval=3.0), clock=clock)
    sched.expect()
    clock.now += 20.0
    assert sched.polled() == pytest.approx(3.0)  # long expectation: backed off to the interval
    sched.expect()
    assert sched.due_in() == pytest.approx(FAST)
    assert sched.polled() == pytest.approx(FAST)


def test_the_first_poll_of_a_phase_comes_at_a_share_of_the_learned_lead() -> None:
    clock = Clock()
    sched = PollSchedule(PollPolicy(interval=3.0), clock=clock)
    sched.expect()
    assert sched.lead is None and sched.due_in() == pytest.approx(FAST)  # nothing learned yet: fast at once
    clock.now += 2.0
    sched.polled()
    sched.arrived(at=clock.now)  # found 2 s after the expectation
    assert sched.lead == pytest.approx(2.0)
    clock.now += 0.5
    sched.polled()
    sched.expect()
    assert sched.due_in() == pytest.approx(LEAD_SHARE * 2.0)
    assert sched.polled() == pytest.approx(LEAD_SHARE * 2.0)  # a poll before the phase's first keeps its due time
    clock.now += LEAD_SHARE * 2.0
    assert sched.is_due()
    assert sched.polled() == pytest.approx(FAST)  # then the fast phase as usual


def test_lead_is_the_least_of_the_last_few_and_never_beyond_the_interval() -> None:
    clock = Clock()
    sched = PollSchedule(PollPolicy(interval=3.0), clock=clock)
    for lead in (0.4, 9.0, 9.0, 9.0):
        sched.expect()
        clock.now += lead
        sched.arrived(at=clock.now)
        sched.polled()
    assert sched.lead == pytest.approx(0.4)
    sched.expect()
    clock.now += 9.0
    sched.arrived(at=clock.now)  # the 0.4 s lead is now more than LEAD_MEMORY phases ago
    assert LEAD_MEMORY == 4 and sched.lead == pytest.approx(9.0)
    sched.polled()
    sched.expect()
    assert sched.due_in() == pytest.approx(3.0)  # 0.75 x 9 s, capped at the interval


def test_only_the_first_arrival_after_expect_is_a_lead() -> None:
    clock = Clock()
    sched = PollSchedule(PollPolicy(interval=3.0), clock=clock)
    sched.arrived(at=clock.now)  # nothing was expected: nothing to learn
    assert sched.lead is None
    sched.expect()
    clock.now += 1.0
    sched.polled()
    sched.arrived(at=clock.now)
    clock.now += 5.0
    sched.polled()
    sched.arrived(at=clock.now)  # a later reply of the same batch: not a lead
    assert sched.lead == pytest.approx(1.0)
    assert sched.due_in() == pytest.approx(FAST)  # and it keeps the cadence fast for the rest


def test_quota_pacing_widens_the_fast_gap() -> None:
    def policy(quota: int) -> PollPolicy:
        settings = Settings.from_env(
            {"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_POLL_INTERVAL": "3", "SYFT_FLWR_QUOTA_UNITS_PER_MIN": str(quota)}
        )
        return PollPolicy.for_settings(settings, min_gap=DriveOptions.from_settings(settings).min_poll_gap())

    roomy = policy(325_000)
    assert roomy.fast == FAST
    tight = policy(8_000)
    # fast polls (files.list, 100 units) alone may use at most a quarter of the budget
    assert 60.0 / tight.fast * 100 <= 0.25 * 8_000 + 1e-6
    assert tight.gap(0.0) == 3.0  # so tight that the fast phase is the interval itself


def test_settings_flag_from_env() -> None:
    assert Settings.from_env({"SYFTBOX_EMAIL": "a@x.com"}).adaptive_poll is True
    assert Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_ADAPTIVE_POLL": "false"}).adaptive_poll is False
    with pytest.raises(ValueError, match="SYFT_FLWR_ADAPTIVE_POLL"):
        Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_ADAPTIVE_POLL": "sometimes"})


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        PollPolicy(interval=0.0)
    with pytest.raises(ValueError, match="backoff"):
        PollPolicy(interval=3.0, backoff=0.5)
