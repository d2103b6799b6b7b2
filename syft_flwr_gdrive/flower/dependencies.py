"""An offered app's declared dependencies, and which of them this machine lacks.

Nothing is installed on its own: the data owner is shown the pip command and decides.
"""

from __future__ import annotations

import importlib.metadata
import shlex
import sys
from collections.abc import Iterable

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement


def missing_dependencies(declared: Iterable[str]) -> list[str]:
    """The declared requirements this Python environment does not satisfy (absent, or of another version)."""
    out: list[str] = []
    for text in declared:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            out.append(text)  # unreadable: a person must look at it
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue  # not for this platform or Python
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            out.append(text)
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            out.append(text)
    return out


def pip_command(missing: Iterable[str]) -> str:
    """The command that would add them to the Python the node runs apps with (empty if nothing is missing)."""
    reqs = [shlex.quote(m) for m in missing]
    return f"{shlex.quote(sys.executable)} -m pip install {' '.join(reqs)}" if reqs else ""
