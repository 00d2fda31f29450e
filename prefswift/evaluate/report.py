"""What `prefswift eval` prints: one table of metrics, a second model side by side with the deltas when compared."""
from typing import Dict, Optional, Sequence

# (metric key, label); a row is shown when the first model has the metric
ROWS = (
    ("pairwise_accuracy", "pairwise accuracy (r_chosen > r_rejected)"),
    ("reward_accuracy", "reward accuracy (chosen > rejected)"),
    ("reward_margin", "reward margin, mean"),
    ("reward_chosen", "reward of chosen, mean"),
    ("reward_rejected", "reward of rejected, mean"),
    ("kl", "KL estimate z (KTO: KL rows, clamped at 0)"),
    ("kl_chosen_token", "log pi - log pi_ref on chosen, per token (KL est.)"),
    ("kl_chosen_seq", "log pi - log pi_ref on chosen, per response"),
    ("accuracy_avg", "accuracy (chosen > rejected), avg log-prob"),
    ("accuracy_sum", "accuracy (chosen > rejected), sum log-prob"),
    ("margin_avg", "mean margin (chosen - rejected), avg log-prob"),
    ("margin_sum", "mean margin (chosen - rejected), sum log-prob"),
    ("chosen_avg_logp", "mean chosen, avg log-prob"),
    ("rejected_avg_logp", "mean rejected, avg log-prob"),
    ("chosen_sum_logp", "mean chosen, sum log-prob"),
    ("rejected_sum_logp", "mean rejected, sum log-prob"),
    ("chosen_longer_share", "length: share of pairs with the longer chosen"),
    ("accuracy_chosen_longer", "length: accuracy when chosen is longer ({pairs_chosen_longer})"),
    ("accuracy_chosen_shorter", "length: accuracy when chosen is shorter ({pairs_chosen_shorter})"),
    ("accuracy_equal_length", "length: accuracy at equal length ({pairs_equal_length})"),
    ("margin_length_corr", "length: corr(margin, length difference)"),
)


def _num(value, signed: bool = False) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def format_table(metrics: Dict[str, float], title: str = "", other: Optional[Dict[str, float]] = None,
                 names: Sequence[str] = ("this model", "compare_to"), notes: Sequence[str] = ()) -> str:
    """`metrics` (and `other`, with a delta column this - other) as aligned rows; `notes`: lines under the title."""
    if not metrics.get("pairs") and not metrics.get("rows"):  # rows: KTO's unpaired rows
        return "no pairs evaluated"
    header = ("", names[0]) if other is None else ("", names[0], names[1], "delta")
    rows = [header]
    for key, label in ROWS:
        if key not in metrics:
            continue
        row = [label.format(**metrics), _num(metrics[key])]
        if other is not None:
            theirs = other.get(key)
            delta = metrics[key] - theirs if isinstance(metrics[key], (int, float)) and \
                isinstance(theirs, (int, float)) else None
            row += [_num(theirs), _num(delta, signed=True)]
        rows.append(tuple(row))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [title] if title else []
    if "rows" not in metrics:
        lines.append(f"pairs: {metrics['pairs']}")
    lines += list(notes)
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return "\n".join(lines)


__all__ = ["format_table", "ROWS"]
