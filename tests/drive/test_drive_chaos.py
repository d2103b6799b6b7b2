"""200 mixed operations under injected 429/500/503 and dropped connections end in the
same Drive state as a clean run: the retry policy, probes and idempotent creates work."""

from __future__ import annotations

import hashlib
import random

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.errors import DrivePermissionDenied
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from tests.helpers.fake_service import drive_api_for

ALICE = "alice@example.com"
KIB = 1024
POLICY = RetryPolicy(max_attempts=20, max_total=60, initial_wait=0.0005, max_wait=0.005, max_retry_after=0.005)
CHAOS = dict(
    seed=1234,
    error_rate=0.3,
    error_kinds=["429", "500", "503"],
    error_after_fraction=0.5,
    drop_rate=0.1,
    drop_after_fraction=0.5,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_operations(api: DriveApi, n_ops: int = 200, seed: int = 99) -> dict[str, str]:
    """Apply a seeded sequence of operations, checking every answer against a local model.

    The sequence depends only on the seed and the model, never on faults, so a clean and
    a faulty run perform the same logical operations.
    """
    rng = random.Random(seed)
    ids = iter(api.generate_ids(n_ops + 10))
    root = api.create_folder("chaos", file_id=next(ids))
    side = api.create_folder("side", file_id=next(ids))
    model: dict[str, dict] = {}  # file id -> {"name", "data", "parent", "props"}
    counter = 0
    q_live = f"'{root['id']}' in parents and trashed = false"

    def live_in(parent: str) -> list[str]:
        return sorted(m["name"] for m in model.values() if m["parent"] == parent)

    for _ in range(n_ops):
        op = rng.choices(
            [
                "upload",
                "stream",
                "list",
                "get",
                "download",
                "rename",
                "props",
                "move",
                "trash",
                "delete",
                "delete_many",
            ],
            weights=[24, 4, 8, 10, 12, 8, 6, 4, 3, 8, 3],
        )[0]
        existing = sorted(model, key=lambda k: model[k]["seq"])  # ids differ between runs
        if op not in ("upload", "stream", "list") and not existing:
            op = "upload"
        if op in ("upload", "stream"):
            counter += 1
            fid = next(ids)
            if op == "stream":  # resumable: several 256 KiB chunks, last one partial
                data = rng.randbytes(2 * 256 * KIB + rng.randrange(1, 50_000))
            else:
                data = rng.randbytes(rng.randrange(0, 3000))
            name = f"file-{counter:03d} o'k \\ {op}"
            props = {"n": str(counter)}
            out = api.upload_bytes(name, data, parent_id=root["id"], properties=props, file_id=fid)
            assert out["id"] == fid and out["name"] == name and int(out["size"]) == len(data)
            model[fid] = {"name": name, "data": data, "parent": root["id"], "props": props, "seq": counter}
        elif op == "list":
            assert sorted(f["name"] for f in api.list_files(q_live, fields="id,name")) == live_in(root["id"])
        elif op == "get":
            fid = rng.choice(existing)
            got = api.get(fid)
            assert got["name"] == model[fid]["name"] and got["parents"] == [model[fid]["parent"]]
            assert got["properties"] == model[fid]["props"]
            assert got["md5Checksum"] == hashlib.md5(model[fid]["data"]).hexdigest()
        elif op == "download":
            fid = rng.choice(existing)
            assert api.download_bytes(fid) == model[fid]["data"]
        elif op == "rename":
            fid = rng.choice(existing)
            new = model[fid]["name"] + " (r)"
            assert api.update(fid, name=new)["name"] == new
            model[fid]["name"] = new
        elif op == "props":
            fid = rng.choice(existing)
            model[fid]["props"] = {**model[fid]["props"], "state": f"s{rng.randrange(100)}"}
            assert api.update(fid, properties=model[fid]["props"])["properties"] == model[fid]["props"]
        elif op == "move":
            fid = rng.choice(existing)
            src = model[fid]["parent"]
            dst = side["id"] if src == root["id"] else root["id"]
            assert api.update(fid, add_parents=[dst], remove_parents=[src])["parents"] == [dst]
            model[fid]["parent"] = dst
        elif op == "trash":
            fid = rng.choice(existing)
            assert api.update(fid, trashed=True)["trashed"] is True
            del model[fid]
        elif op == "delete":
            fid = rng.choice(existing)
            api.delete(fid)
            del model[fid]
            with pytest.raises(DriveNotFound):
                api.get(fid, fields="id")
        elif op == "delete_many":
            chosen = rng.sample(existing, min(3, len(existing)))
            assert api.delete_many(chosen) == {fid: None for fid in chosen}
            for fid in chosen:
                del model[fid]

    # End state, read back from Drive: names and content hashes in both folders.
    state: dict[str, str] = {}
    for parent, label in ((root["id"], "root"), (side["id"], "side")):
        files = api.list_files(f"'{parent}' in parents and trashed = false", fields="id,name")
        assert sorted(f["name"] for f in files) == live_in(parent)
        for f in files:
            state[f"{label}/{f['name']}"] = sha(api.download_bytes(f["id"]))
    expected = {
        f"{'root' if m['parent'] == root['id'] else 'side'}/{m['name']}": sha(m["data"]) for m in model.values()
    }
    assert state == expected
    return state


@pytest.mark.slow  # 200 operations with retries
def test_200_operations_under_faults_match_a_clean_run():
    with FakeDriveServer() as clean:
        clean_api = drive_api_for(clean.url, ALICE, retry=POLICY, chunk_size=256 * KIB)
        clean_state = run_operations(clean_api)
        assert clean_api.calls.retries == 0
    assert len(clean_state) > 20

    with FakeDriveServer(faults=FaultConfig(**CHAOS)) as faulty:
        api = drive_api_for(faulty.url, ALICE, retry=POLICY, chunk_size=256 * KIB)
        faulty_state = run_operations(api)
        injected = faulty.stats()["faults"]
        wire = sum(faulty.stats()["requests"].values())

    assert faulty_state == clean_state
    # The faults really happened, of every kind, and every re-send was the policy's.
    for kind in ("error_429", "error_500", "error_503", "drop_before", "drop_after"):
        assert injected.get(kind, 0) > 3, injected
    assert api.calls.retries > 50
    assert api.calls.total == sum(api.calls.snapshot().values())
    # Batch parts are calls too on the fake's side; everything else is one request each.
    assert api.calls.total <= wire


def test_non_transient_errors_are_raised_at_once_even_under_faults():
    # Faults on every route except the ones under test: the 404 / 403 answers come back first try.
    faults = FaultConfig(**{**CHAOS, "routes": ["files.list", "files.create", "upload.create"]})
    with FakeDriveServer(faults=faults) as srv:
        alice = drive_api_for(srv.url, ALICE, retry=POLICY)
        bob = drive_api_for(srv.url, "bob@example.com", retry=POLICY)
        folder = alice.create_folder("f", file_id=alice.generate_ids(1)[0])
        srv.faults.routes = ["files.list"]
        alice.share(folder["id"], "bob@example.com", role="writer")
        mine = alice.upload_bytes("mine", b"x", parent_id=folder["id"])
        bob_retries = bob.calls.retries
        with pytest.raises(DrivePermissionDenied) as denied:
            bob.delete(mine["id"])
        with pytest.raises(DriveNotFound) as missing:
            bob.get("no-such-file")
        assert denied.value.retries == 0 and missing.value.retries == 0
        assert bob.calls.retries == bob_retries == 0
        assert bob.calls.snapshot() == {"files.delete": 1, "files.get": 1}
