"""The shipped digits data and its partitions."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
from fl_common.data import DEFAULT_DATA_PATH
from fl_common.data import load_dataset
from fl_common.data import load_partition
from fl_common.data import partition_indices

SHA256_GZ = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_shipped_file_is_the_documented_one():
    assert DEFAULT_DATA_PATH.stat().st_size < 1_000_000
    assert hashlib.sha256(DEFAULT_DATA_PATH.read_bytes()).hexdigest() == SHA256_GZ


def test_dataset_shape_and_ranges():
    x, y = load_dataset()
    assert x.shape == (1797, 64) and y.shape == (1797,)
    assert x.dtype == np.float64 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_partitions_are_deterministic():
    a = load_partition(1, 3)
    b = load_partition(1, 3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    # A different seed gives a different split.
    c = load_partition(1, 3, seed=1)
    assert len(c[1]) != len(a[1]) or not np.array_equal(c[1], a[1])


def test_partition_indices_cover_every_row_exactly_once():
    _, y = load_dataset()
    for non_iid in (True, False):
        parts = partition_indices(y, 3, non_iid=non_iid, seed=0)
        allidx = np.concatenate(parts)
        assert len(allidx) == len(y)
        assert len(np.unique(allidx)) == len(y)


def test_partitions_are_disjoint_and_train_test_disjoint():
    # Check the arrays handed out (the digits file has no duplicate image, so rows
    # identify samples): train and test of a partition, and partitions pairwise,
    # share no row, and together they are the whole file.
    x, _ = load_dataset()
    assert len(_rows(x)) == len(x)
    seen = []
    for pid in range(3):
        xtr, ytr, xte, yte = load_partition(pid, 3)
        assert len(xtr) == len(ytr) > 0 and len(xte) == len(yte) > 0
        assert not _rows(xtr) & _rows(xte)
        seen.append(_rows(xtr) | _rows(xte))
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert seen[0] | seen[1] | seen[2] == _rows(x)


def test_partitions_are_label_skewed_but_cover_all_classes():
    dists = []
    for pid in range(3):
        _, ytr, _, yte = load_partition(pid, 3)
        counts = np.bincount(ytr, minlength=10)
        # Every class is present in train (>= 4 rows) and test (>= 1 row).
        assert counts.min() >= 4
        assert np.bincount(yte, minlength=10).min() >= 1
        dists.append(counts / counts.sum())
    # Clearly non-IID: label distributions differ a lot (total variation distance).
    for i in range(3):
        for j in range(i + 1, 3):
            assert 0.5 * np.abs(dists[i] - dists[j]).sum() > 0.25
    # The IID option is close to uniform.
    for pid in range(3):
        counts = np.bincount(load_partition(pid, 3, non_iid=False)[1], minlength=10)
        assert counts.min() > 0.5 * counts.max()


def test_partition_arguments_are_checked():
    with pytest.raises(ValueError):
        load_partition(3, 3)
    with pytest.raises(ValueError):
        load_partition(-1, 3)
    with pytest.raises(TypeError):
        load_partition("0", 3)  # type: ignore[arg-type]


def test_own_csv_file_plain_gzip_and_header(tmp_path):
    with gzip.open(DEFAULT_DATA_PATH, "rt") as fh:
        lines = fh.read().splitlines()[:200]
    plain = tmp_path / "mine.csv"
    plain.write_text("\n".join(lines) + "\n")
    header = tmp_path / "with_header.csv"
    header.write_text(",".join(f"p{i}" for i in range(64)) + ",label\n" + "\n".join(lines) + "\n")
    zipped = tmp_path / "mine.csv.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    ref_x, ref_y = load_dataset(plain)
    assert ref_x.shape == (200, 64)
    for path in (header, zipped):
        x, y = load_dataset(path)
        np.testing.assert_array_equal(x, ref_x)
        np.testing.assert_array_equal(y, ref_y)
    xtr, ytr, xte, yte = load_partition(0, 2, data_path=plain)
    assert 0 < len(ytr) + len(yte) < 200


@pytest.mark.parametrize(
    "content",
    ["1,2,3\n4,5,6\n", ",".join(["0"] * 64) + ",10\n", ",".join(["17"] * 64) + ",1\n", "a,b\nx,y\n"],
)
def test_malformed_files_are_rejected(tmp_path, content):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(ValueError):
        load_dataset(bad)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_partition(0, 3, data_path=tmp_path / "nope.csv")
