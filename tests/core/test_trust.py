"""Pinned keys: a changed key is refused and remembered; `trust` lists it and accepts it explicitly;
`doctor` shows my own fingerprint."""

from __future__ import annotations

from typer.testing import CliRunner

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.cli.app import app
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import sealer_for

PEER = "alice@example.com"


def test_a_changed_key_is_refused_remembered_and_accepted_explicitly(tmp_path):
    store = PinStore(tmp_path / "peer-keys.json")
    old, new = Identity.ephemeral().public, Identity.ephemeral().public
    assert store.check(PEER, old)
    assert not store.check(PEER, new)
    assert store.refused() == {PEER: new} and store.pinned() == {PEER: old}
    assert store.accept(PEER) == new
    again = PinStore(tmp_path / "peer-keys.json")  # persisted
    assert again.pinned() == {PEER: new} and again.refused() == {}
    assert again.check(PEER, new) and not again.check(PEER, old)


def test_trust_and_doctor_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("SYFTBOX_EMAIL", "ds@example.com")
    monkeypatch.setenv("SYFT_FLWR_STATE_DIR", str(tmp_path))
    runner = CliRunner()
    empty = runner.invoke(app, ["trust"])
    assert empty.exit_code == 0 and "no keys yet" in empty.output and "no peer keys pinned" in empty.output

    state = Settings.from_env().participant_state_dir()
    sealer = sealer_for(state, enabled=True)  # what a run creates
    assert sealer is not None
    old, new = Identity.ephemeral().public, Identity.ephemeral().public
    sealer.pins.check(PEER, old)
    sealer.pins.check(PEER, new)

    listing = runner.invoke(app, ["trust"])
    assert listing.exit_code == 0
    assert f"fingerprint {sealer.identity.public.fingerprint()}" in listing.output
    assert (
        f"pinned {old.fingerprint()}" in listing.output
        and f"REFUSED a different key {new.fingerprint()}" in listing.output
    )
    accepted = runner.invoke(app, ["trust", "--accept", PEER])
    assert accepted.exit_code == 0 and new.fingerprint() in accepted.output
    assert f"pinned {new.fingerprint()}" in runner.invoke(app, ["trust"]).output
    nothing = runner.invoke(app, ["trust", "--accept", "bob@example.com"])
    assert nothing.exit_code == 2 and "no refused key of bob@example.com" in nothing.output

    doctor = runner.invoke(app, ["doctor", "--drive-url", "http://127.0.0.1:9"])
    assert f"my key fingerprint {sealer.identity.public.fingerprint()}" in doctor.output


def test_unreadable_key_files_are_named_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("SYFTBOX_EMAIL", "ds@example.com")
    monkeypatch.setenv("SYFT_FLWR_STATE_DIR", str(tmp_path))
    state = Settings.from_env().participant_state_dir()
    state.mkdir(parents=True)
    (state / "keys.json").write_text("{not json")
    result = CliRunner().invoke(app, ["trust"])
    assert result.exit_code == 2 and "keys.json" in result.output and "Traceback" not in result.output
