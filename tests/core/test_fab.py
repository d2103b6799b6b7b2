"""The FAB: built by Flower's builder, unpacked only if every file is what its signed fingerprint says."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.flower.fab import FabRefused
from syft_flwr_gdrive.flower.fab import build_fab
from syft_flwr_gdrive.flower.fab import install
from syft_flwr_gdrive.flower.fab import read_fab
from syft_flwr_gdrive.flower.fab import remove_tree
from syft_flwr_gdrive.flower.fingerprint import app_identity
from tests.helpers.e2e import REPO

APP = REPO / "fixtures" / "quickstart_app"
LIMIT = 10 * 1024 * 1024


def rezip(fab: bytes, change) -> bytes:
    """The FAB's members, passed through ``change(name, data) -> list of (ZipInfo or name, data)``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(fab)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            for target, data in change(info.filename, src.read(info)):
                dst.writestr(target, data)
    return out.getvalue()


@pytest.fixture
def fab() -> bytes:
    return build_fab(APP, max_bytes=LIMIT)


def test_installed_tree_has_the_projects_fingerprint_and_is_read_only(tmp_path, fab):
    fingerprint = app_identity(APP).fingerprint
    info, identity = install(fab, fingerprint, tmp_path / "app", max_bytes=LIMIT)
    assert identity.fingerprint == fingerprint
    assert info.name == "quickstart-linreg" and info.version == "1.0.0" and info.publisher == "syft-flwr-gdrive"
    assert info.dependencies == ("flwr>=1.41,<1.43", "numpy>=1.26")
    assert "quickstart_linreg/task.py" in info.files and ".info/CONTENT" not in info.files
    client = tmp_path / "app" / "quickstart_linreg" / "client_app.py"
    assert not client.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".unpacking")]
    remove_tree(tmp_path / "app")
    assert not (tmp_path / "app").exists()


def test_flowers_own_installer_accepts_it(tmp_path, fab):
    """`flwr install` could install what we ship: Flower's own checks of a FAB pass."""
    from flwr.cli.install import install_from_fab

    installed = install_from_fab(fab, tmp_path / "flwr-apps", skip_prompt=True)
    assert (Path(installed) / "quickstart_linreg" / "client_app.py").is_file()


def test_a_fab_whose_contents_differ_from_the_signed_fingerprint_is_refused(tmp_path, fab):
    with pytest.raises(FabRefused, match="fingerprint"):
        install(fab, "0" * 64, tmp_path / "app", max_bytes=LIMIT)
    assert not (tmp_path / "app").exists()


def test_a_file_altered_after_the_build_is_refused(fab):
    tampered = rezip(fab, lambda n, d: [(n, d + b"\nimport os; os.system('x')\n" if n.endswith("task.py") else d)])
    with pytest.raises(FabRefused, match="differs from its hash"):
        read_fab(tampered, max_bytes=LIMIT)


def test_a_file_not_listed_in_content_is_refused(fab):
    extra = rezip(fab, lambda n, d: [(n, d)] + ([("sitecustomize.py", b"x = 1")] if n == "pyproject.toml" else []))
    with pytest.raises(FabRefused, match="disagree"):
        read_fab(extra, max_bytes=LIMIT)


@pytest.mark.parametrize(
    ("name", "why"),
    [("../evil.py", "climbs"), ("/etc/evil.py", "absolute"), ("a/../../evil.py", "climbs"), ("a\\evil.py", "Windows")],
)
def test_paths_that_escape_the_folder_are_refused(fab, name, why):
    bad = rezip(fab, lambda n, d: [(n, d)] + ([(name, b"x")] if n == "pyproject.toml" else []))
    with pytest.raises(FabRefused, match=why):
        read_fab(bad, max_bytes=LIMIT)


def test_a_symlink_is_refused(fab):
    link = zipfile.ZipInfo("quickstart_linreg/link.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    bad = rezip(fab, lambda n, d: [(n, d)] + ([(link, b"/etc/passwd")] if n == "pyproject.toml" else []))
    with pytest.raises(FabRefused, match="symbolic link"):
        read_fab(bad, max_bytes=LIMIT)


def test_oversize_offers_and_zip_bombs_are_refused(fab):
    with pytest.raises(FabRefused, match="over the offer limit"):
        read_fab(fab, max_bytes=len(fab) - 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.py", b"0" * (9 * 65536))
    with pytest.raises(FabRefused, match="unpacks to more than"):
        read_fab(out.getvalue(), max_bytes=65536)


def test_not_a_zip_and_no_content_are_refused():
    with pytest.raises(FabRefused, match="not a FAB"):
        read_fab(b"hello", max_bytes=LIMIT)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("pyproject.toml", b"[project]\n")
    with pytest.raises(FabRefused, match="CONTENT"):
        read_fab(out.getvalue(), max_bytes=LIMIT)


def test_an_app_over_the_offer_limit_is_a_clear_error():
    with pytest.raises(ConfigError, match="SYFT_FLWR_MAX_OFFER_MB"):
        build_fab(APP, max_bytes=1000)
