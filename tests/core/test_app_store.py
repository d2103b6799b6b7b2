"""The data owner's app store: offers and decisions on disk, shared by the node and other terminals."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.flower.app_review import approve_offer
from syft_flwr_gdrive.flower.app_review import list_apps
from syft_flwr_gdrive.flower.app_review import reject_offer
from syft_flwr_gdrive.flower.app_review import review_offer
from syft_flwr_gdrive.flower.app_store import AUTO_CONFIG_ONLY
from syft_flwr_gdrive.flower.app_store import AppStore
from syft_flwr_gdrive.flower.fab import build_fab
from syft_flwr_gdrive.flower.fab import install
from syft_flwr_gdrive.flower.fingerprint import app_identity
from tests.helpers.e2e import REPO

APP = REPO / "fixtures" / "quickstart_app"
DS = "ds@example.com"
LIMIT = 10 * 1024 * 1024


def offer(store: AppStore, project: Path, message_id: str = "m1", auto: str = "none"):
    """Receive ``project`` as the node does: install (checked), then record."""
    fab = build_fab(project, max_bytes=LIMIT)
    fingerprint = app_identity(project).fingerprint
    from syft_flwr_gdrive.flower.fab import fab_hash

    info, _ = install(fab, fingerprint, store.installed_dir / fab_hash(fab), max_bytes=LIMIT)
    meta = {**info.as_dict(), "fingerprint": fingerprint}
    return store.receive(sender=DS, message_id=message_id, meta=meta, fab=fab, auto=auto)


def changed_copy(tmp_path: Path, name: str, edit) -> Path:
    project = tmp_path / name
    shutil.copytree(APP, project)
    edit(project)
    return project


def test_a_new_offer_is_pending_and_approval_pins_its_fab(tmp_path):
    store = AppStore(tmp_path / "apps")
    first = offer(store, APP)
    assert first.state == "pending" and first.answer_due
    listed = list_apps(store)
    assert [a["id"] for a in listed] == [first.id] and listed[0]["missing_dependencies"] == []
    approved = approve_offer(store, first.id[:4], {"data-path": "/data/a.csv"})
    assert approved.state == "approved" and approved.node_config == {"data-path": "/data/a.csv"}
    assert [o.id for o in store.runnable()] == [first.id]
    again = offer(store, APP, message_id="m2")  # offered again: same FAB, same decision, answered again
    assert again.id == first.id and again.state == "approved" and again.answer_due and again.message_id == "m2"
    changed = offer(store, changed_copy(tmp_path, "p2", lambda p: (p / "README.md").write_text("# new\n")), "m3")
    assert changed.id != first.id and changed.state == "pending"
    assert [o.id for o in store.runnable()] == [first.id]  # the approved version runs until the new one is


def test_review_shows_files_and_the_diff_against_the_last_approved_version(tmp_path):
    store = AppStore(tmp_path / "apps")
    first = offer(store, APP)
    shown = review_offer(store, first.id)
    assert shown["previous_approved"] is None and "quickstart_linreg/task.py" in shown["file_list"]
    approve_offer(store, first.id)

    def edit(project: Path) -> None:
        task = project / "quickstart_linreg" / "task.py"
        task.write_text(task.read_text().replace("TRUE_BIAS = 0.3", "TRUE_BIAS = 0.4"))

    second = offer(store, changed_copy(tmp_path, "p2", edit), "m2")
    shown = review_offer(store, second.id, tmp_path / "review")
    assert shown["previous_approved"] == first.id
    assert "-TRUE_BIAS = 0.3" in shown["diff"] and "+TRUE_BIAS = 0.4" in shown["diff"]
    assert (tmp_path / "review" / "quickstart_linreg" / "task.py").is_file()
    with pytest.raises(ConfigError, match="not empty"):
        review_offer(store, second.id, tmp_path / "review")


def test_reject_needs_a_reason_and_unknown_ids_say_what_there_is(tmp_path):
    store = AppStore(tmp_path / "apps")
    first = offer(store, APP)
    with pytest.raises(ConfigError, match="say why"):
        reject_offer(store, first.id, "  ")
    assert reject_offer(store, first.id, "no network calls please").reason == "no network calls please"
    with pytest.raises(ConfigError, match=first.id):
        store.get("zzz")


def test_auto_approval_config_only_is_off_by_default(tmp_path):
    store = AppStore(tmp_path / "apps")
    approve_offer(store, offer(store, APP).id, {"partition-id": 1})

    def config(project: Path) -> None:
        toml = project / "pyproject.toml"
        toml.write_text(toml.read_text().replace("local-epochs = 5", "local-epochs = 7"))

    def code(project: Path) -> None:
        (project / "quickstart_linreg" / "extra.py").write_text("X = 1\n")

    assert offer(store, changed_copy(tmp_path, "c0", config), "m2").state == "pending"
    store2 = AppStore(tmp_path / "apps2")
    approve_offer(store2, offer(store2, APP).id, {"partition-id": 1})
    auto = offer(store2, changed_copy(tmp_path, "c1", config), "m2", auto=AUTO_CONFIG_ONLY)
    assert (
        auto.state == "approved" and auto.decided_by == "auto: config-only" and auto.node_config == {"partition-id": 1}
    )
    assert offer(store2, changed_copy(tmp_path, "c2", code), "m3", auto=AUTO_CONFIG_ONLY).state == "pending"


def _approve_in_another_process(root: str, oid: str, index: int) -> None:
    AppStore(Path(root)).decide(oid, "approved", node_config={"k": index})


@pytest.mark.slow  # starts processes (spawn: a fresh interpreter each)
def test_decisions_from_other_processes_are_never_lost(tmp_path):
    """The node marks answers sent while `approve` runs in another terminal: neither write undoes the other."""
    store = AppStore(tmp_path / "apps")
    first = offer(store, APP)
    read_before = store.get(first.id)  # what the node read, then sent ("pending")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_approve_in_another_process, args=(str(store.root), first.id, i)) for i in range(4)]
    for p in procs:
        p.start()
    for _ in range(50):
        store.answered(read_before)  # the node's stale "pending was sent" must not clear the approval's answer
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    final = store.get(first.id)
    assert final.state == "approved" and final.answer_due and final.node_config["k"] in range(4)
    store.answered(final)
    assert not store.get(first.id).answer_due
