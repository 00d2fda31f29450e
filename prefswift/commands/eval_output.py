"""What every `prefswift eval` mode writes: the JSON record (atomically) and, when there are pairs, the margin plot
beside it, with one line saying where."""
import time
from pathlib import Path

from ..data.selection import result_path
from ..evaluate import eval_record, write_json
from ..evaluate.plot import margin_plot


def write_eval(args, source, metrics, records, rows, origin, start: float, pairs, other_pairs, log, **extra) -> Path:
    """`records`: the per-pair (or per-row) numbers stored in the JSON; `pairs` / `other_pairs`: what the margin
    plot draws (none: no plot); `extra`: the objective, the reference, a comparison."""
    record = eval_record(metrics, records, rows, model=source.describe(), ckpt_dir=source.ckpt_dir,
                         base_model=source.base.path, template=source.base.template, data=origin,
                         seconds=time.time() - start, **extra)
    path = write_json(result_path(args.infer.infer_output, source.ckpt_dir, "eval_result", ".json"), record)
    note = ""
    if pairs:
        plot = margin_plot(path.with_name(path.stem + "-margins.png"), pairs, other_pairs)
        note = f" (margin plot {plot.name})"
    log(f"[prefswift] eval results written to {path}{note}")
    return path
