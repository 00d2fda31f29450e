"""`<result>-margins.png`: the distribution of per-pair margins, and the margins against the length difference."""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .rewards import margin_kind, margins


def margin_plot(path: Path, pairs: List[Dict[str, float]], other: Optional[List[Dict[str, float]]] = None,
                names: Sequence[str] = ("this model", "compare_to")) -> Path:
    """Left: histogram of the margins (implicit reward margins when the pairs have rewards, else summed log-prob
    margins), the compared model overlaid; right: margin vs length difference (chosen - rejected tokens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = margin_kind(pairs)
    series = [(names[0], pairs)] + ([(names[1], other)] if other is not None else [])
    fig, (hist, scatter) = plt.subplots(1, 2, figsize=(11, 4))
    every = [m for _, ps in series for m in margins(ps)]
    low, high = min(every), max(every)
    n_bins = min(30, max(5, len(pairs) // 2))
    width = (high - low) / n_bins or 1.0  # shared bins, so the two models' histograms line up
    bins = [low + i * width for i in range(n_bins + 1)]
    for name, ps in series:
        ms = margins(ps)
        hist.hist(ms, bins=bins, alpha=0.55, label=name)
        scatter.scatter([p["chosen_tokens"] - p["rejected_tokens"] for p in ps], ms, s=12, alpha=0.7, label=name)
    hist.axvline(0, color="grey", lw=0.8)
    scatter.axhline(0, color="grey", lw=0.8)
    hist.legend()
    scatter.legend()
    hist.set_title(f"{kind} margin (chosen - rejected), {len(pairs)} pairs")
    hist.set_xlabel("margin")
    hist.set_ylabel("pairs")
    scatter.set_title("margin vs length difference")
    scatter.set_xlabel("chosen - rejected response tokens")
    scatter.set_ylabel("margin")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["margin_plot"]
