"""Dependencies point one way: CLI -> Flower adapter -> mailbox -> transport contract <- transports.

Read from the source (the AST), so an import added anywhere in a module, even inside a
function, is caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "syft_flwr_gdrive"
# The Flower adapter and everything above it: what the mailbox, the contract and the transports never import.
ADAPTER = {
    "grid",
    "client_loop",
    "flower_codec",
    "blobs",
    "client",
    "server",
    "participant",
    "cli",
    "demo",
    "federation",
    "project",
    "identity",
    "userconfig",
    "tally",
    "peercheck",
    "bootstrap",
    "doctor",
    "maintenance",
    "plugin",
}


def imports_of(path: Path) -> set[str]:
    """Dotted names a module of the package imports."""
    return imports_in(path.read_text(encoding="utf-8"), ["syft_flwr_gdrive", *path.relative_to(PACKAGE).parent.parts])


def imports_in(source: str, package: list[str]) -> set[str]:
    """Dotted names ``source`` imports anywhere (``from . import x`` resolved against ``package``)."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


def offending(names: set[str], banned: set[str]) -> list[str]:
    return sorted(
        name
        for name in names
        if name.split(".")[0] == "flwr" or any(name == b or name.startswith(b + ".") for b in banned)
    )


@pytest.mark.parametrize("path", modules("drive") + modules("transport"), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_storage_and_mailbox_import_no_flower_and_no_adapter(path):
    banned = {f"syft_flwr_gdrive.{m}" for m in ADAPTER}
    if path.parent.name == "transport":
        banned.add("syft_flwr_gdrive.transport.drive")  # the contract and the mailbox know no transport
    assert offending(imports_of(path), banned) == []


@pytest.mark.parametrize("path", modules("fake"), ids=lambda p: p.name)
def test_the_fake_drive_imports_nothing_else_of_the_package(path):
    assert [
        n for n in imports_of(path) if n.startswith("syft_flwr_gdrive") and not n.startswith("syft_flwr_gdrive.fake")
    ] == []


def test_client_does_not_import_server():
    assert not any(n.startswith("syft_flwr_gdrive.flower.syftbox_server") for n in imports_of(PACKAGE / "client.py"))


@pytest.mark.parametrize("name", ["grid.py", "client_loop.py", "blobs.py"])
def test_the_adapter_talks_to_the_mailbox_not_to_its_transport(name):
    tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
    reaches = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "transport"
        and isinstance(node.value, (ast.Name, ast.Attribute))
        and (getattr(node.value, "id", None) or getattr(node.value, "attr", "")).endswith("mailbox")
    ]
    assert reaches == [], f"{name} reaches into mailbox.transport on lines {reaches}"


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    source = "def f():\n    from syft_flwr_gdrive.flower.codec import x\n    import flwr.app\nfrom ..grid import G\n"
    names = imports_in(source, ["syft_flwr_gdrive", "drive"])
    assert offending(names, {"syft_flwr_gdrive.flower.codec", "syft_flwr_gdrive.flower.grid"}) == [
        "flwr.app",
        "syft_flwr_gdrive.flower.codec",
        "syft_flwr_gdrive.flower.codec.x",
        "syft_flwr_gdrive.flower.grid",
        "syft_flwr_gdrive.flower.grid.G",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "grid",
        "client_loop",
        "client",
        "server",
        "participant",
        "blobs",
        "flower_codec",
        "poll_schedule",
        "tally",
        "identity",
        "userconfig",
        "crypto",
        "multiseal",
        "peercheck",
        "maintenance",
        "doctor",
    ],
)
def test_the_adapter_knows_no_particular_transport(name):
    """Above the contract nothing imports drive/: Drive's quota reaches the poll schedule as Transport.min_poll_gap."""
    assert [n for n in imports_of(PACKAGE / f"{name}.py") if n.startswith("syft_flwr_gdrive.transport.drive")] == []


@pytest.mark.parametrize("name", ["routing", "segments", "accounts"])
def test_leaves_import_nothing_of_the_package(name):
    assert [n for n in imports_of(PACKAGE / f"{name}.py") if n.startswith("syft_flwr_gdrive")] == []


def test_no_cycle_through_crypto():
    """The mailbox (transport/) uses crypto, so crypto uses nothing of transport/ (routing and segments are leaves)."""
    assert [n for n in imports_of(PACKAGE / "crypto.py") if n.startswith("syft_flwr_gdrive.transport")] == []


@pytest.mark.parametrize("path", [p for p in modules("drive") if p.name != "transport.py"], ids=lambda p: p.name)
def test_the_drive_transports_parts_never_import_the_class_that_composes_them(path):
    """drive/transport.py composes folders, discovery, listing, polling, writes and connect; they import it never."""
    assert [n for n in imports_of(path) if n.startswith("syft_flwr_gdrive.transport.drive.transport")] == []
