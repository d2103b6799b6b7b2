"""``migrate``: turn a syft-flwr project into one that runs here, as a diff to review before it is written.

What changes, and nothing else (every other byte of every file stays as it is):

- ``pyproject.toml``: ``[tool.syft_flwr] transport = "syftbox"`` becomes ``"p2p"`` (aggregator, datasites,
  app_name and any other key stay); syft packages leave ``[project] dependencies`` (syft-flwr pins a Flower
  this package cannot run beside) and ``syft-flwr-gdrive`` joins them; a ``[tool.uv.sources]`` entry for
  syft-flwr goes.
- ``main.py`` written by syft-flwr's bootstrap (it calls ``syftbox_run_flwr_client/server``) is replaced by one
  that runs ``syft-flwr-gdrive server`` or ``client`` by the same rule (the aggregator serves, a datasite runs
  its client).
- Python imports of syft-flwr and syft-client names with an equivalent here point at it, under the name the
  code already uses (``from syft_flwr.utils import run_syft_flwr`` becomes
  ``from syft_flwr_gdrive.flower.app_paths import has_data_dir as run_syft_flwr``), so no call site changes;
  ``os.getenv("OUTPUT_DIR")`` becomes this package's ``output_dir()`` (``OUTPUT_DIR``, else ``outputs/``).
- Any other ``syft*`` import (or attribute of a mapped module) is listed with its file and line, and left as
  it is: there is no equivalent to point it at.

Running it again changes nothing (``syft_flwr_gdrive`` is not a syft-flwr import).
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import tomllib

APP_PATHS = "syft_flwr_gdrive.flower.app_paths"
MODEL_SAVING = "syft_flwr_gdrive.flower.model_saving"
PACKAGE = "syft-flwr-gdrive"
MAIN_MARKER = "Written by `syft-flwr-gdrive migrate`"


@dataclass(frozen=True)
class Equivalent:
    """Where a syft-flwr name lives here."""

    module: str
    name: str


# (syft module, name) -> its equivalent here. Documented in docs/coming-from-syft-flwr.md.
NAMES: dict[tuple[str, str], Equivalent] = {
    ("syft_flwr.utils", "run_syft_flwr"): Equivalent(APP_PATHS, "has_data_dir"),
    ("syft_flwr.utils", "get_syftbox_dataset_path"): Equivalent(APP_PATHS, "data_dir"),
    ("syft_flwr.strategy", "FedAvgWithModelSaving"): Equivalent(MODEL_SAVING, "FedAvgWithModelSaving"),
    ("syft_flwr.strategy.fedavg", "FedAvgWithModelSaving"): Equivalent(MODEL_SAVING, "FedAvgWithModelSaving"),
    ("syft_flwr.fl_orchestrator", "syftbox_flwr_server"): Equivalent("syft_flwr_gdrive", "syftbox_flwr_server"),
    ("syft_client", "resolve_path"): Equivalent(APP_PATHS, "resolve_path"),
}
# ``import <syft module> [as x]``: the module that stands in for it, and the attributes it has.
MODULES: dict[str, tuple[str, frozenset[str]]] = {"syft_client": (APP_PATHS, frozenset({"resolve_path"}))}
# Known names that cannot be pointed elsewhere as they are: what to do instead.
HINTS: dict[tuple[str, str], str] = {
    ("syft_flwr.fl_orchestrator", "syftbox_flwr_client"): (
        "syftbox_flwr_client here takes (client_app, app_name, aggregator=..., node_config=...); "
        "or run `syft-flwr-gdrive client -p .`"
    ),
    ("syft_flwr.run", "syftbox_run_flwr_client"): "run `syft-flwr-gdrive client -p .` (the new main.py does)",
    ("syft_flwr.run", "syftbox_run_flwr_server"): "run `syft-flwr-gdrive server -p .` (the new main.py does)",
    ("syft_flwr", "bootstrap"): "run `syft-flwr-gdrive bootstrap -p . --aggregator DS --datasites DO1,DO2`",
    ("syft_flwr", "run"): "run `syft-flwr-gdrive run -p . --clients N --data-dir 'mock/{i}'`",
}
_OUTPUT_DIR_READS = (("os", "getenv"), ("os.environ", "get"))
_SYFT_DEPENDENCY = re.compile(r"^\s*syft[-_.]", re.IGNORECASE)
_SECTION_HEADER = re.compile(r"^\[[^\]]+\][ \t]*$", re.MULTILINE)
_SKIPPED_DIRS = {".venv", "venv", ".git", "__pycache__", "build", "dist", ".tox", "node_modules", ".ipynb_checkpoints"}

MAIN_PY = f'''"""Run this Flower project as its [tool.syft_flwr] names you: the aggregator serves the ServerApp, a
datasite runs the ClientApp (SYFTBOX_EMAIL says who you are). {MAIN_MARKER} in place of
syft-flwr's main.py; the same as `syft-flwr-gdrive server -p .` or `syft-flwr-gdrive client -p .`, and any
option after `python main.py` is passed on (e.g. --node-config 'data-path="/data/mine.csv"').
"""

import sys
from pathlib import Path

from syft_flwr_gdrive.cli.app import app
from syft_flwr_gdrive.flower.project import role_in_project

if __name__ == "__main__":
    project_dir = Path(__file__).resolve().parent
    app([role_in_project(project_dir), "--project", str(project_dir), *sys.argv[1:]])
'''


@dataclass(frozen=True)
class Leftover:
    """A syft import (or attribute) with no equivalent here: the user's to change."""

    path: str
    line: int
    text: str
    hint: str = ""


@dataclass
class Migration:
    """The planned changes: each file's text before and after, what was mapped, what is left."""

    project: Path
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)  # relative path -> (old, new)
    mapped: list[str] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)

    def diff(self) -> str:
        """One unified diff of every change (``a/`` and ``b/`` paths, as git shows them)."""
        out: list[str] = []
        for rel, (old, new) in sorted(self.changes.items()):
            out.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"a/{rel}" if old else "/dev/null",
                    tofile=f"b/{rel}",
                )
            )
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out)

    def write(self) -> None:
        for rel, (_, new) in self.changes.items():
            (self.project / rel).write_text(new, encoding="utf-8")


def plan_migration(project_dir: Path | str) -> Migration:
    """Read a syft-flwr project and work out every change; writes nothing."""
    project = Path(project_dir).expanduser().resolve()
    pyproject = project / "pyproject.toml"
    if not pyproject.is_file():
        raise ConfigError(f"No pyproject.toml in {project}: pass the syft-flwr project's folder with -p.")
    migration = Migration(project)
    old = pyproject.read_text(encoding="utf-8")
    new = migrate_pyproject(old, str(pyproject))
    if new != old:
        migration.changes["pyproject.toml"] = (old, new)
    main = project / "main.py"
    if main.is_file():
        text = main.read_text(encoding="utf-8")
        if MAIN_MARKER not in text and re.search(r"syftbox_run_flwr_(client|server)", text):
            migration.changes["main.py"] = (text, MAIN_PY)
            migration.mapped.append("main.py: syftbox_run_flwr_client/server -> syft-flwr-gdrive client/server")
    for path in python_files(project):
        rel = path.relative_to(project).as_posix()
        if rel in migration.changes:
            continue
        text = path.read_text(encoding="utf-8")
        try:
            rewritten = rewrite_python(text, rel)
        except SyntaxError as exc:
            migration.leftovers.append(Leftover(rel, exc.lineno or 0, "not valid Python: not migrated"))
            continue
        migration.mapped.extend(rewritten.mapped)
        migration.leftovers.extend(rewritten.leftovers)
        if rewritten.text != text:
            migration.changes[rel] = (text, rewritten.text)
    return migration


def python_files(project: Path) -> Iterator[Path]:
    for path in sorted(project.rglob("*.py")):
        if not _SKIPPED_DIRS.intersection(path.relative_to(project).parts[:-1]):
            yield path


# -- pyproject.toml ---------------------------------------------------------------------------------------------


def migrate_pyproject(text: str, source: str = "pyproject.toml") -> str:
    """The pyproject with transport p2p, syft packages out of the dependencies (this one in), syft-flwr's
    uv source gone; the rest as it was. Raises ConfigError if the result would not load."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML ({exc}); fix it before migrating.") from None
    text = _in_section(
        text,
        "tool.syft_flwr",
        lambda body: re.sub(r'^([ \t]*transport[ \t]*=[ \t]*)["\']syftbox["\']', r'\1"p2p"', body, flags=re.MULTILINE),
    )
    dependencies = data.get("project", {}).get("dependencies")
    if isinstance(dependencies, list):
        kept = [d for d in dependencies if not _SYFT_DEPENDENCY.match(str(d))]
        if not any(re.match(r"^\s*syft[-_]flwr[-_]gdrive\b", str(d), re.IGNORECASE) for d in kept):
            kept.append(PACKAGE)
        if kept != dependencies:
            text = _in_section(text, "project", lambda body: _replace_array(body, "dependencies", kept))
    text = _in_section(
        text,
        "tool.uv.sources",
        lambda body: re.sub(r"^[ \t]*syft[-_]flwr[ \t]*=.*\n?", "", body, flags=re.MULTILINE | re.IGNORECASE),
        drop_if_empty=True,
    )
    try:
        migrated = tomllib.loads(text)
        ProjectConfig.from_mapping(migrated.get("tool", {}).get("syft_flwr", {}), source=source)
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        raise ConfigError(f"{source} could not be migrated ({exc}); edit it by hand.") from None
    return text


def _in_section(text: str, name: str, change: Callable[[str], str], *, drop_if_empty: bool = False) -> str:
    """Apply ``change`` to the body of ``[name]`` (up to the next table header), if present; ``drop_if_empty``:
    remove the table if the change left it without a key (its header, comments and blank lines with it)."""
    header = re.search(rf"^\[{re.escape(name)}\][ \t]*$", text, re.MULTILINE)
    if header is None:
        return text
    nxt = _SECTION_HEADER.search(text, header.end())
    end = nxt.start() if nxt else len(text)
    body = text[header.end() : end]
    changed = change(body)
    if changed == body:
        return text
    if drop_if_empty and not any(line.strip() and not line.strip().startswith("#") for line in changed.splitlines()):
        return text[: header.start()] + text[end:]
    return text[: header.end()] + changed + text[end:]


def _replace_array(body: str, key: str, values: list[str]) -> str:
    """Rewrite ``key = [ ... ]`` in a section body as a one-item-per-line array of ``values``."""
    match = re.search(rf"^{re.escape(key)}\s*=\s*\[", body, re.MULTILINE)
    if match is None:
        return body
    depth, i = 1, match.end()
    while i < len(body) and depth:
        if body[i] in "\"'":  # skip a string (basic or literal; no array brackets inside count)
            quote = body[i]
            i += 1
            while i < len(body) and body[i] != quote:
                i += 2 if body[i] == "\\" and quote == '"' else 1
        elif body[i] == "[":
            depth += 1
        elif body[i] == "]":
            depth -= 1
        i += 1
    items = "".join(f"    {json.dumps(v)},\n" for v in values)
    return body[: match.start()] + f"{key} = [\n{items}]" + body[i:]


# -- Python -----------------------------------------------------------------------------------------------------


@dataclass
class Rewritten:
    text: str
    mapped: list[str] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)


def is_syft_module(module: str) -> bool:
    """syft-flwr's and its siblings' modules (``syft_flwr``, ``syft_client``, ``syft_core``, ``syft_rds``, ...),
    not this package."""
    top = module.split(".")[0]
    return (top == "syft" or top.startswith("syft_")) and top != "syft_flwr_gdrive"


def rewrite_python(source: str, rel: str = "<file>") -> Rewritten:
    """Point a module's syft imports at their equivalents; list what has none."""
    tree = ast.parse(source)
    data = source.encode("utf-8")
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    edits: list[tuple[int, int, str]] = []
    out = Rewritten(source)
    used_names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    stand_ins: dict[str, tuple[str, frozenset[str]]] = {}  # local name of an imported syft module -> (module, attrs)

    def span(node: ast.stmt | ast.expr) -> tuple[int, int]:
        assert node.end_lineno is not None and node.end_col_offset is not None
        return starts[node.lineno - 1] + node.col_offset, starts[node.end_lineno - 1] + node.end_col_offset

    def joined(node: ast.stmt, statements: list[str]) -> str:
        line = data[starts[node.lineno - 1] : starts[node.lineno - 1] + node.col_offset].decode("utf-8")
        return ("\n" + line if not line.strip() else "; ").join(statements)

    def leftover(node: ast.AST, text: str, hint: str = "") -> None:
        out.leftovers.append(Leftover(rel, getattr(node, "lineno", 0), text, hint))

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and is_syft_module(node.module):
            statements, unknown = [], []
            for alias in node.names:
                equivalent = NAMES.get((node.module, alias.name))
                local = alias.asname or alias.name
                if equivalent is None:
                    unknown.append(alias)
                    text = f"from {node.module} import {alias.name}"
                    leftover(node, text, HINTS.get((node.module, alias.name), ""))
                    continue
                statements.append(
                    f"from {equivalent.module} import {equivalent.name}"
                    + (f" as {local}" if local != equivalent.name else "")
                )
                out.mapped.append(
                    f"{rel}:{node.lineno}: {node.module}.{alias.name} -> {equivalent.module}.{equivalent.name}"
                )
            if statements:
                if unknown:  # kept as they were, so the module still fails loudly where it used them
                    names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in unknown)
                    statements.append(f"from {node.module} import {names}")
                edits.append((*span(node), joined(node, statements)))
        elif isinstance(node, ast.Import) and any(is_syft_module(a.name) for a in node.names):
            statements, changed = [], False
            for alias in node.names:
                stand_in = MODULES.get(alias.name)
                if is_syft_module(alias.name) and stand_in is not None:
                    local = alias.asname or alias.name
                    statements.append(f"import {stand_in[0]} as {local}")
                    stand_ins[local] = stand_in
                    changed = True
                    out.mapped.append(f"{rel}:{node.lineno}: {alias.name} -> {stand_in[0]}")
                else:
                    if is_syft_module(alias.name):
                        leftover(node, f"import {alias.name}", HINTS.get((alias.name, ""), ""))
                    statements.append(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
            if changed:
                edits.append((*span(node), joined(node, statements)))
    for node in ast.walk(tree):  # what the code uses of a stand-in module
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in stand_ins:
            module, attributes = stand_ins[node.value.id]
            if node.attr not in attributes:
                leftover(node, f"{node.value.id}.{node.attr}", f"{module} has only {', '.join(sorted(attributes))}")
    reads = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _reads_output_dir(n)]
    if reads:
        helper = _free_name("app_output_dir", used_names)
        for call in reads:
            edits.append((*span(call), f"str({helper}())"))
            out.mapped.append(f"{rel}:{call.lineno}: os.getenv('OUTPUT_DIR') -> {APP_PATHS}.output_dir()")
        at = _import_point(tree, starts)
        newline = "\n" if at == len(data) and data and not data.endswith(b"\n") else ""
        edits.append((at, at, f"{newline}from {APP_PATHS} import output_dir as {helper}\n"))
    for start, end, replacement in sorted(edits, reverse=True):
        data = data[:start] + replacement.encode("utf-8") + data[end:]
    out.text = data.decode("utf-8")
    return out


def _reads_output_dir(call: ast.Call) -> bool:
    """``os.getenv("OUTPUT_DIR"[, default])`` or ``os.environ.get("OUTPUT_DIR"[, default])``."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and call.args):
        return False
    first = call.args[0]
    if not (isinstance(first, ast.Constant) and first.value == "OUTPUT_DIR"):
        return False
    return (ast.unparse(func.value), func.attr) in _OUTPUT_DIR_READS


def _free_name(wanted: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    name = wanted
    while name in taken:
        name += "_"
    return name


def _import_point(tree: ast.Module, starts: list[int]) -> int:
    """Where a new top-level import goes: after the module's last top-level import, else after its docstring."""
    last: ast.stmt | None = None
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) or (
            i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        ):
            last = stmt
    if last is None or last.end_lineno is None:
        return 0
    return starts[last.end_lineno]
