"""The folder listing is the architecture: each folder of the package is a layer, and imports point down.

Read from the source (the AST), so an import added anywhere in a module, even inside a function,
is caught. The layers, top to bottom (docs/architecture.md draws the same tree):

    cli        the command line
    localrun   one machine's federation: participant processes on the embedded fake Drive
    flower     the Flower side (grid, client loop, codec, entry points)   ops   set-up and housekeeping
    mailbox    trust, encryption, de-duplication over any transport
    transport  the contract, the registry, memory and directory transports; transport/drive below it
    crypto     keys, pins, seals
    base       routing, segments, settings, accounts, state files

A module may import its own folder and any folder below its own; ``flower`` and ``ops`` are side by
side and import neither each other. ``transport/drive`` may import ``transport`` (the contract it
implements), never the other way round. ``fake/`` imports nothing else of the package, and only the
commands that start it (``cli``, ``localrun``) import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "syft_flwr_gdrive"
TOP = "syft_flwr_gdrive"

# Rank of each layer: a module imports only layers of a lower rank (and its own folder).
RANK = {"base": 1, "crypto": 2, "transport": 3, "transport.drive": 3.5, "mailbox": 4, "flower": 5, "ops": 5}
RANK |= {"localrun": 6, "cli": 7}
FAKE = "fake"
STARTS_THE_FAKE = {"cli", "localrun"}


def layer_of(dotted: str) -> str | None:
    """The layer a dotted module name of the package belongs to (None: the package itself)."""
    parts = dotted.split(".")
    if parts[0] != TOP or len(parts) < 2 or parts[1] in ("__init__", "__main__"):
        return None
    if parts[1] == "transport" and len(parts) > 2 and parts[2] == "drive":
        return "transport.drive"
    return parts[1]


def module_name(path: Path) -> str:
    return ".".join([TOP, *path.relative_to(PACKAGE).with_suffix("").parts])


def imports_of(path: Path) -> set[str]:
    """Dotted names a module of the package imports."""
    return imports_in(path.read_text(encoding="utf-8"), [TOP, *path.relative_to(PACKAGE).parent.parts])


def imports_in(source: str, package: list[str]) -> set[str]:
    """Dotted names ``source`` imports anywhere (``from . import x`` resolved against ``package``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def wrong_way(importer: str, imported: str) -> bool:
    """True if a module of layer ``importer`` must not import one of layer ``imported``."""
    if importer == imported:
        return False
    if FAKE in (importer, imported):
        return importer == FAKE or importer not in STARTS_THE_FAKE
    return RANK[imported] >= RANK[importer]


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if layer_of(module_name(p)) is not None)


def test_every_folder_is_a_known_layer_and_the_root_holds_no_module():
    assert {layer_of(module_name(p)) for p in MODULES} == set(RANK) | {FAKE}
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path: Path):
    mine = layer_of(module_name(path))
    assert mine is not None
    bad = sorted(
        name
        for name in imports_of(path)
        if (theirs := layer_of(name)) is not None and theirs in RANK | {FAKE: 0} and wrong_way(mine, theirs)
    )
    assert bad == [], f"{mine} must not import these (docs/architecture.md)"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if layer_of(module_name(p)) in ("base", "crypto", "transport", "transport.drive", "mailbox")],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_below_the_flower_layer_nothing_imports_flower(path: Path):
    assert sorted(n for n in imports_of(path) if n.split(".")[0] == "flwr") == []


def test_no_module_name_is_used_twice():
    """A name says what a module holds: two ``errors.py`` (or ``server.py``) in two folders trip a newcomer."""
    names = [p.name for p in MODULES if p.name not in ("__init__.py", "__main__.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_no_import_cycle_between_modules():
    graph = {module_name(p): {n for n in imports_of(p) if n.startswith(TOP + ".")} for p in MODULES}
    # ``from pkg.mod import name`` names pkg.mod.name too: keep only names that are modules
    graph = {
        m: {n if n in graph else n.rsplit(".", 1)[0] for n in deps} & set(graph) - {m} for m, deps in graph.items()
    }
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_client_entry_point_does_not_import_the_server():
    assert not any("syftbox_server" in n for n in imports_of(PACKAGE / "flower" / "syftbox_client.py"))


@pytest.mark.parametrize("name", ["grid.py", "client_loop.py", "shared_blobs.py"])
def test_the_flower_side_talks_to_the_mailbox_not_to_its_transport(name):
    tree = ast.parse((PACKAGE / "flower" / name).read_text(encoding="utf-8"))
    reaches = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "transport"
        and isinstance(node.value, (ast.Name, ast.Attribute))
        and (getattr(node.value, "id", None) or getattr(node.value, "attr", "")).endswith("mailbox")
    ]
    assert reaches == [], f"{name} reaches into mailbox.transport on lines {reaches}"


@pytest.mark.parametrize(
    "path",
    [p for p in (PACKAGE / "transport" / "drive").glob("*.py") if p.name not in ("transport.py", "__init__.py")],
    ids=lambda p: p.name,
)
def test_the_drive_transports_parts_never_import_the_class_that_composes_them(path):
    """transport/drive/transport.py composes folders, discovery, listing, polling, writes and connect."""
    assert [n for n in imports_of(path) if n.startswith(f"{TOP}.transport.drive.transport")] == []


def test_the_checker_sees_imports_inside_functions_relative_ones_and_wrong_ways():
    source = "def f():\n    from syft_flwr_gdrive.flower.codec import x\n    import flwr.app\nfrom ..grid import G\n"
    names = imports_in(source, [TOP, "transport", "drive"])
    assert {"flwr.app", f"{TOP}.flower.codec.x", f"{TOP}.transport.grid.G"} <= names
    assert wrong_way("mailbox", "flower") and wrong_way("transport", "transport.drive") and wrong_way("base", "crypto")
    assert wrong_way("flower", "ops") and wrong_way("ops", "flower") and wrong_way("transport.drive", FAKE)
    assert not wrong_way("transport.drive", "transport") and not wrong_way("cli", FAKE)
    assert layer_of(f"{TOP}.transport.drive.api") == "transport.drive" and layer_of(TOP) is None
