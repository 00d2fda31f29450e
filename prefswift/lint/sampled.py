"""Sampled preference files (`prefswift sample`, or any rows with a `samples` list of K completions): lint reads their
K-way groups and score columns next to the pairs, and flags prompts whose samples are all the same text (the policy
gave no choice: sampling too cold, or a collapsed model)."""
import math
from collections import Counter
from typing import List, Tuple

from ..arguments.fields import DataArguments
from ..data import dataset_info
from ..data.datasets import parse_dataset_arg
from ..data.loader import read_local_file
from ..data.sampled import is_sampled_row
from .checks import EXAMPLES, Check
from .text import normalize


def sampled_rows(data: DataArguments) -> List[Tuple[str, dict]]:
    """(where, row) of every sampled row in the local files of --dataset / --val_dataset (registered datasets are
    never sampled files)."""
    found = []
    for text in list(data.dataset) + list(data.val_dataset):
        ref = parse_dataset_arg(text)
        declared = None if ref.local else dataset_info.lookup(data.dataset_dir, ref.name)
        if not (ref.local or declared):
            continue
        source = read_local_file(ref.name if ref.local else declared[0])
        found += [(source.locate(i), row) for i, row in enumerate(source.rows) if is_sampled_row(row)]
    return found


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def identical_samples(rows: List[Tuple[str, dict]], limit: float) -> Check:
    """Groups whose K samples are one text (after case and spacing are normalised); the detail describes the groups
    (K, distinct samples, score columns, chosen-minus-rejected score margins)."""
    if not rows:
        return Check("identical_samples", 0, 0, limit, "no sampled rows (no `samples` column)", {"groups": 0})
    flagged, distinct, sizes, margins, misordered = [], Counter(), Counter(), [], []
    columns = Counter()
    for where, row in rows:
        texts = {normalize(s) if isinstance(s, str) else repr(s) for s in row["samples"]}
        sizes[len(row["samples"])] += 1
        distinct[len(texts)] += 1
        if len(texts) == 1:
            flagged.append(where)
        columns.update(k for k in ("chosen_score", "rejected_score", "scores") if k in row)
        c, r = row.get("chosen_score"), row.get("rejected_score")
        if _number(c) and _number(r):
            margins.append(c - r)
            if c <= r:
                misordered.append(where)
    detail = {"groups": len(rows), "k": dict(sorted(sizes.items())), "distinct_samples": dict(sorted(distinct.items())),
              "score_columns": dict(columns), "chosen_not_above_rejected": len(misordered)}
    if margins:
        margins.sort()
        detail["score_margin"] = {"min": round(margins[0], 4), "p50": round(margins[len(margins) // 2], 4),
                                  "max": round(margins[-1], 4)}
    ks = "/".join(str(k) for k in sorted(sizes))
    summary = f"{len(flagged)} of {len(rows)} {ks}-way groups have one text" if flagged else \
        f"{len(rows)} {ks}-way groups, none of one text"
    if misordered:
        summary += f"; chosen_score not above rejected_score in {len(misordered)}"
    if "score_margin" in detail:
        summary += f"; score margin p50 {detail['score_margin']['p50']:g}"
    return Check("identical_samples", len(flagged), len(rows), limit, summary, detail,
                 (flagged + [f"score order: {w}" for w in misordered])[:EXAMPLES])


__all__ = ["sampled_rows", "identical_samples"]
