"""The plot of a local run: Flower's per-round metrics (``report["metrics"]``), one panel per figure.

Any strategy's metrics, with no convention on the app's side: a panel per metric name, with a line per
phase that reported it (clients' training, clients' evaluation, the server's evaluation). ``train_loss``
and an evaluation's ``loss`` share the panel ``loss``. Counts (integer-valued series such as
``num_clients`` or ``num-examples``) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PHASES = {"train": "train (clients)", "evaluate": "evaluate (clients)", "server_evaluate": "evaluate (server)"}
_PREFIXES = ("train_", "train-", "eval_", "eval-", "evaluate_", "val_", "val-", "test_", "test-")
MAX_PANELS = 6

Series = dict[str, tuple[list[int], list[float]]]  # line label -> (rounds, values)


def panel_of(key: str) -> str:
    """The panel a metric goes in: its name without a phase prefix (``train_loss`` -> ``loss``)."""
    for prefix in _PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            return key[len(prefix) :]
    return key


def series(metrics: Mapping[str, Any]) -> dict[str, Series]:
    """Panel -> line -> (rounds, values), from ``RoundMetrics.snapshot`` rounds; counts dropped."""
    panels: dict[str, Series] = {}
    integral: dict[tuple[str, str], bool] = {}
    for entry in metrics.get("rounds") or []:
        for phase, phase_label in PHASES.items():
            for key, value in (entry.get(phase) or {}).items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    continue
                panel = panel_of(key)
                label = phase_label if key == panel else f"{phase_label}: {key}"
                rounds, values = panels.setdefault(panel, {}).setdefault(label, ([], []))
                rounds.append(int(entry["round"]))
                values.append(float(value))
                integral[(panel, label)] = integral.get((panel, label), True) and isinstance(value, int)
    for (panel, label), counts in integral.items():
        if counts:
            del panels[panel][label]
    return {panel: lines for panel, lines in panels.items() if lines}


def write_plot(report: Mapping[str, Any], path: Path) -> str | None:
    """PNG of the run's per-round metrics; None (and no file) without metrics or without matplotlib."""
    panels = series(report.get("metrics") or {})
    if not panels:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    chosen = list(panels.items())[:MAX_PANELS]
    columns = min(3, len(chosen))
    rows = math.ceil(len(chosen) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax, (panel, lines) in zip(axes.flat, chosen):
        for label, (rounds, values) in lines.items():
            ax.plot(rounds, values, marker="o", label=label)
        ax.set(title=panel, xlabel="round")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_xticks(sorted({r for rounds, _ in lines.values() for r in rounds}))
    for ax in list(axes.flat)[len(chosen) :]:
        ax.set_visible(False)
    storage = "Google Drive (fake)" if report.get("transport", "p2p") == "p2p" else "a shared directory"
    fig.suptitle(f"{report.get('clients')} data owners over {storage}, {report.get('app')}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
