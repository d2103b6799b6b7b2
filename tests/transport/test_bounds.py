"""What a long run keeps stays bounded, and the bounds never let a message be handled twice (bench/soak.py).

The ledger keeps each sender's newest entries and compacts the rest into the sender's floor (mailbox/ledger.py);
the poller, the skip log, the bundle reader and the server's reply store keep their newest notes only.
"""

import time
from dataclasses import replace

import pytest
from flwr.app import Message
from flwr.app import Metadata
from flwr.app import RecordDict
from flwr.app.message.message import make_message

from syft_flwr_gdrive.base.recent import RecentSet
from syft_flwr_gdrive.flower.replies import SENT_REMEMBERED
from syft_flwr_gdrive.flower.replies import Pending
from syft_flwr_gdrive.flower.replies import ReplyStore
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.skips import SKIPS_REMEMBERED
from syft_flwr_gdrive.mailbox.skips import SkipLog
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.envelopes import body_for
from tests.helpers.routings import request_routing

APP = "flwr/t"
ME, PEER, OTHER = "me@x.com", "peer@x.com", "other@x.com"


def fill(ledger: Ledger, sender: str, count: int, start: float = 1000.0) -> None:
    for i in range(count):
        assert ledger.add(f"m{i}", sender, start + i)


# -- the ledger ------------------------------------------------------------------------------------


def test_ledger_file_and_memory_stay_bounded_whatever_the_number_of_messages(tmp_path):
    path = tmp_path / "ledger.log"
    ledger = Ledger(path, keep_per_sender=8)
    fill(ledger, PEER, 500)
    assert len(ledger) <= 2 * 8
    assert len(path.read_text().splitlines()) <= 2 * 8 + 1  # the kept entries and one floor line
    sizes = []
    for i in range(500, 1000):
        ledger.add(f"m{i}", PEER, 1000.0 + i)
        sizes.append(path.stat().st_size)
    assert max(sizes) <= 2 * min(sizes[len(sizes) // 2 :])  # no growth trend: it saws between keep and 2 keep


def test_compacted_ledger_still_refuses_a_replay_of_an_entry_it_kept(tmp_path):
    ledger = Ledger(tmp_path / "ledger.log", keep_per_sender=8)
    fill(ledger, PEER, 100)
    assert ledger.floor(PEER) is not None
    newest = "m99"
    assert ledger.handled(newest, PEER, 1099.0)
    assert not ledger.add(newest, PEER, 1099.0)
    assert ledger.handled(newest, PEER)  # kept by id: no time needed


def test_a_message_compacted_away_cannot_be_redelivered(tmp_path):
    """A replay carries the same signed created_at, at or below the sender's floor: refused as handled."""
    ledger = Ledger(tmp_path / "ledger.log", keep_per_sender=8)
    fill(ledger, PEER, 100)
    floor = ledger.floor(PEER)
    assert floor is not None and floor >= 1000.0
    assert ledger.handled("m0", PEER, 1000.0)
    assert not ledger.add("m0", PEER, 1000.0)
    assert not ledger.add("m50", PEER, 1050.0)


def test_the_floor_is_per_sender_and_newer_messages_pass(tmp_path):
    ledger = Ledger(tmp_path / "ledger.log", keep_per_sender=8)
    fill(ledger, PEER, 100)
    assert not ledger.handled("m0", OTHER, 1000.0)  # another sender's message of the same id and time
    assert ledger.add("m0", OTHER, 1000.0)
    assert not ledger.handled("new", PEER, 5000.0)
    assert ledger.add("new", PEER, 5000.0)


def test_floor_and_kept_entries_survive_a_restart(tmp_path):
    path = tmp_path / "ledger.log"
    ledger = Ledger(path, keep_per_sender=8)
    fill(ledger, PEER, 100)
    again = Ledger(path, keep_per_sender=8)
    assert again.floor(PEER) == ledger.floor(PEER)
    assert again.handled("m99", PEER)
    assert again.handled("m0", PEER, 1000.0)
    assert not again.handled("fresh", PEER, 9999.0)


def test_an_old_ledger_file_still_loads_and_counts(tmp_path):
    """Lines of a bare id and of an id/sender without a time (files of earlier versions) count as handled."""
    path = tmp_path / "ledger.log"
    path.write_text(f"bare1\nold1/{PEER}\n")
    ledger = Ledger(path, keep_per_sender=8)
    assert ledger.handled("bare1", OTHER)
    assert ledger.handled("old1", PEER)
    fill(ledger, PEER, 100)  # compaction keeps undated entries: no floor stands for them
    again = Ledger(path, keep_per_sender=8)
    assert again.handled("bare1", OTHER) and again.handled("old1", PEER)


def test_a_big_file_is_compacted_when_loaded(tmp_path):
    path = tmp_path / "ledger.log"
    path.write_text("".join(f"m{i}/{PEER} {1000.0 + i!r}\n" for i in range(100)))
    ledger = Ledger(path, keep_per_sender=8)
    assert len(ledger) == 8
    assert ledger.handled("m3", PEER, 1003.0)
    assert len(path.read_text().splitlines()) == 9


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_time_that_is_no_number_is_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        Ledger(tmp_path / "ledger.log").add("m1", PEER, bad)


def test_a_replayed_message_file_is_not_delivered_after_compaction(tmp_path):
    """End to end on the in-memory transport: the first of many handled messages is posted again (a lagging
    listing, a copy); its id was compacted out of the ledger, yet the mailbox does not deliver it."""
    hub = MemoryHub()
    ledger = Ledger(tmp_path / "ledger.log", keep_per_sender=4)
    box = Mailbox(MemoryTransport(ME, hub), APP, [PEER], ledger)
    now = time.time()
    first = replace(request_routing(5, "m0", sender=PEER, recipient=ME, app=APP, ttl=86400.0), created_at=now - 500)
    for i in range(40):
        r = replace(first, message_id=f"m{i}", created_at=now - 500 + i)
        handle = hub.put(PEER, r, body_for(r))
        (delivery,) = box.poll().deliveries
        assert delivery.envelope.message_id == f"m{i}"
        box.mark_handled(delivery.envelope.message_id, delivery.envelope.sender, delivery.envelope.created_at)
        delivery.close()
        MemoryTransport(PEER, hub).delete([handle])
    assert len(ledger) <= 8 and not ledger.handled("m0", PEER)  # the id itself is gone from the ledger
    hub.put(PEER, first, body_for(first))
    assert box.poll().deliveries == ()
    fresh = replace(first, message_id="fresh", created_at=now)
    hub.put(PEER, fresh, body_for(fresh))
    assert [d.envelope.message_id for d in box.poll().deliveries] == ["fresh"]


def test_the_signed_header_time_decides_not_the_listed_one(tmp_path):
    """A file whose listed time is new but whose header says it was made at or below the floor is not delivered."""
    hub = MemoryHub()
    ledger = Ledger(tmp_path / "ledger.log", keep_per_sender=4)
    box = Mailbox(MemoryTransport(ME, hub), APP, [PEER], ledger)
    now = time.time()
    fill(ledger, PEER, 20, start=now - 500)
    old = replace(request_routing(5, "m0", sender=PEER, recipient=ME, app=APP, ttl=86400.0), created_at=now - 500)
    hub.put(PEER, replace(old, created_at=now), body_for(old))
    assert box.poll().deliveries == ()


# -- in-memory notes -------------------------------------------------------------------------------


def test_recent_set_forgets_its_oldest_members():
    seen: RecentSet[str] = RecentSet(3)
    seen.update(["a", "b", "c"])
    seen.add("a")  # the newest again
    seen.add("d")
    assert "b" not in seen and {"a", "c", "d"} == set(seen)
    assert len(seen) == 3


def test_skip_log_is_bounded_and_a_forgotten_refusal_is_refused_again():
    skips = SkipLog()
    postings = [
        Posting(handle=f"h{i}", owner=PEER, routing=None, size=1, name=f"n{i}") for i in range(SKIPS_REMEMBERED + 10)
    ]
    for p in postings:
        assert skips.refuse(p, "malformed")
    assert not skips.is_refused("h0") and skips.is_refused(f"h{SKIPS_REMEMBERED + 9}")
    assert skips.refuse(postings[0], "malformed")  # vetted again, refused again: never accepted


def _reply(request_id: str) -> Message:
    meta = Metadata(
        run_id=1,
        message_id="r" + request_id,
        src_node_id=2,
        dst_node_id=0,
        reply_to_message_id=request_id,
        group_id="1",
        created_at=time.time(),
        ttl=60.0,
        message_type="train",
    )
    return make_message(metadata=meta, content=RecordDict())


def test_reply_store_forgets_old_request_ids_but_never_takes_a_late_reply():
    store = ReplyStore()
    for i in range(SENT_REMEMBERED + 50):
        store.sent(f"q{i}", Pending(recipient=PEER, handle=f"f{i}", expires_at=time.time() + 60))
        assert store.answer(f"q{i}", PEER, _reply(f"q{i}")) is not None
    assert not store.was_sent("q0")  # forgotten: a late reply to it is only "not recorded yet"...
    assert store.expected_from("q0") is None
    assert store.answer("q0", PEER, _reply("q0")) is None  # ...and is never filed
    assert store.was_sent(f"q{SENT_REMEMBERED + 49}")


def test_reply_store_never_forgets_a_request_still_pending():
    store = ReplyStore()
    store.sent("waiting", Pending(recipient=PEER, handle="fw", expires_at=time.time() + 60))
    for i in range(SENT_REMEMBERED + 50):
        store.sent(f"q{i}", Pending(recipient=PEER, handle=f"f{i}", expires_at=time.time() + 60))
        store.answer(f"q{i}", PEER, _reply(f"q{i}"))
    assert store.was_sent("waiting") and store.expected_from("waiting") == PEER


def test_bundle_reader_remembers_only_its_newest_bundles(tmp_path):
    """A forgotten bundle listed again is read again; my part is then refused by the ledger (see the tests above)."""
    from syft_flwr_gdrive.mailbox.bundles import BUNDLES_REMEMBERED
    from syft_flwr_gdrive.mailbox.bundles import BundleReader

    reader = BundleReader(
        me=ME,
        peers=frozenset({PEER}),
        ledger=Ledger(tmp_path / "ledger.log"),
        skips=SkipLog(),
        read=lambda posting, limit: b"",
        ignore=lambda handle: None,
    )
    listed = [Posting(handle=f"b{i}", owner=PEER, routing=None, size=1) for i in range(BUNDLES_REMEMBERED + 5)]
    for i, posting in enumerate(listed):
        reader._remember(posting.handle, f"part{i}")
    assert reader.part_ids(listed[:5]) == set()
    assert reader.part_ids(listed[-2:]) == {f"part{BUNDLES_REMEMBERED + 3}", f"part{BUNDLES_REMEMBERED + 4}"}


def test_poller_remembers_only_its_newest_gone_files():
    from syft_flwr_gdrive.transport.drive.polling import GONE_REMEMBERED
    from syft_flwr_gdrive.transport.drive.polling import Poller

    poller = Poller(api=None, email=ME, owners=None)  # type: ignore[arg-type]  # bookkeeping only: no Drive
    poller.deleted([f"f{i}" for i in range(GONE_REMEMBERED + 10)])
    assert len(poller.gone) == GONE_REMEMBERED
    assert "f0" not in poller.gone and f"f{GONE_REMEMBERED + 9}" in poller.gone
