"""Guard: in the drive package, requests are only sent from inside DriveApi._execute."""

from __future__ import annotations

import ast
from pathlib import Path

import syft_flwr_gdrive.transport.drive as drive_pkg

SENDERS = {"execute", "next_chunk"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_execute":
            allowed.update(id(n) for n in ast.walk(node))
        # lambdas handed to self._execute(..., call=lambda ...) run inside it
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "_execute":
            for kw in node.keywords:
                if kw.arg == "call" and isinstance(kw.value, ast.Lambda):
                    allowed.update(id(n) for n in ast.walk(kw.value))
    bad = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SENDERS
            and id(node) not in allowed
        ):
            bad.append(f"{path.name}:{node.lineno} .{node.func.attr}()")
        if isinstance(node, ast.keyword) and node.arg == "num_retries":
            if not (isinstance(node.value, ast.Constant) and node.value.value == 0):
                bad.append(f"{path.name}:{node.value.lineno} num_retries must be 0")
    return bad


def test_no_raw_execute_escapes_the_retry_policy():
    root = Path(drive_pkg.__file__).parent
    modules = sorted(root.glob("*.py"))  # every module of the drive package, present and future
    assert {p.name for p in modules} >= {"api.py", "auth.py", "retry.py", "errors.py", "service.py"}
    problems = [v for path in modules for v in _violations(path)]
    assert problems == []


def test_guard_catches_a_raw_execute(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(svc):\n    return svc.files().list().execute(num_retries=3)\n")
    assert len(_violations(bad)) == 2
