"""PNG plots of logged metrics, like ms-swift's images/ and LLaMA-Factory's plot_loss.

`images/overview.png`: one figure with loss, rewards/chosen vs rewards/rejected, rewards/accuracies and
rewards/margins; train (raw points + an exponentially smoothed curve) and eval on the same axes. Besides it one PNG
per metric (`images/loss.png`, `images/rewards_margins.png`, ...). No axis uses offset notation ("+6.9"): metrics
with a tiny range get their real values on the ticks.
"""
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..run.ownership import OVERVIEW_PLOT, PLOTTED, plot_file  # what a run writes into images/ (and may remove)

# (title, train keys): the panels of overview.png; each key's eval twin ("eval_" + key) goes on the same axes
OVERVIEW = (
    ("loss", ("loss",)),
    ("rewards: chosen vs rejected", ("rewards/chosen", "rewards/rejected")),
    ("rewards/accuracies", ("rewards/accuracies",)),
    ("rewards/margins", ("rewards/margins",)),
)
Series = Dict[str, List[Tuple[int, float]]]


def _wanted() -> set:
    keys = set(PLOTTED)
    for _, train_keys in OVERVIEW:
        keys.update(train_keys)
        keys.update("eval_" + k for k in train_keys)
    return keys


def read_series(log_path: Path) -> Series:
    """{metric: [(step, value), ...]} from logging.jsonl, for the plotted metrics (rows that are not JSON, and
    values that are not finite numbers, are skipped)."""
    wanted = _wanted()
    series: Series = {}
    for line in Path(log_path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            continue
        for key in wanted:
            value = row.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                series.setdefault(key, []).append((row["step"], float(value)))
    return series


def smooth(values: Sequence[float]) -> List[float]:
    """Exponential moving average whose weight grows with the number of points (LLaMA-Factory's `smooth`):
    weight = 1.8 * (sigmoid(0.05 * n) - 0.5), s_0 = x_0, s_i = weight * s_{i-1} + (1 - weight) * x_i."""
    if not values:
        return []
    weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)
    out, last = [], float(values[0])
    for v in values:
        last = last * weight + (1 - weight) * float(v)
        out.append(last)
    return out


def _no_offset(ax) -> None:
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):
        formatter = ScalarFormatter(useOffset=False)
        axis.set_major_formatter(formatter)


def _draw(ax, points: List[Tuple[int, float]], label: str, color, *, smoothed: bool) -> None:
    steps, values = zip(*points)
    if smoothed and len(points) > 1:
        ax.plot(steps, values, color=color, alpha=0.35, linewidth=1, marker="o" if len(points) < 30 else None,
                markersize=3, label=f"{label} (raw)")
        ax.plot(steps, smooth(values), color=color, linewidth=2, label=f"{label} (smoothed)")
    else:
        ax.plot(steps, values, color=color, marker="o", linewidth=1.5, label=label)


def overview_figure(series: Series):
    """The overview figure (2x2 panels, see OVERVIEW); panels without data say so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (title, keys) in zip(axes.flat, OVERVIEW):
        drawn = 0
        for i, key in enumerate(keys):
            name = key.split("/")[-1] if len(keys) > 1 else "train"
            if series.get(key):
                _draw(ax, series[key], name, colors[(2 * i) % len(colors)], smoothed=True)
                drawn += 1
            if series.get("eval_" + key):
                eval_name = f"eval {name}" if len(keys) > 1 else "eval"
                color = colors[(2 * i) % len(colors)] if len(keys) > 1 else colors[1]  # chosen/rejected: its hue
                ax.plot(*zip(*series["eval_" + key]), color=color, marker="s",
                        linestyle="--", linewidth=1.5, label=eval_name)
                drawn += 1
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        _no_offset(ax)
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout()
    return fig


def write_plots(log_path: Path, out_dir: Path) -> List[Path]:
    """overview.png plus one PNG per logged metric of PLOTTED; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series = read_series(log_path)
    written = []
    if any(series.get(k) for _, keys in OVERVIEW for k in keys):
        fig = overview_figure(series)
        path = out_dir / OVERVIEW_PLOT
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    for key in PLOTTED:
        points = series.get(key)
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        _draw(ax, points, key, "C0", smoothed=not key.startswith("eval_"))
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        _no_offset(ax)
        if len(points) > 1 and not key.startswith("eval_"):
            ax.legend(fontsize=8)
        path = out_dir / plot_file(key)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
