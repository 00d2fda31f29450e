"""`--precompute_ref_log_probs`: reference log-probs computed once, cached next to the run, reused on resume."""
import hashlib
import json
from pathlib import Path

import torch

# the token columns a row's reference log-probs depend on (pairs, then KTO's unpaired rows), in hashing order
ROW_KEYS = ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids", "completion_input_ids",
            "kl_completion_input_ids", "label")
# caches written before KTO stored the pair columns under these names
LEGACY_COLUMNS = {"chosen": "ref_chosen_logps", "rejected": "ref_rejected_logps"}


def _fingerprint(rows, trainer) -> str:
    h = hashlib.sha256()
    h.update(str(trainer.objective.algo).encode())
    ld_alpha = getattr(trainer.objective, "ld_alpha", None)  # pair objectives; KTO has none
    if ld_alpha is not None:  # LD-DPO weights the reference's log-probs too
        h.update(f"ld_alpha={ld_alpha}".encode())
    for r in rows:
        for key in ROW_KEYS:
            if key in r:
                value = r[key]
                h.update(json.dumps(list(value) if key != "label" else bool(value)).encode())
    return h.hexdigest()[:16]


def precompute_or_load(trainer, data, collator, run_dir: Path, batch_size: int, log=None) -> None:
    """Fill the reference columns (ref_chosen_logps / ref_rejected_logps, or KTO's ref_logps / ref_kl_logps) in
    data.train and data.eval (rank 0 writes the cache)."""
    for name, rows in (("train", data.train), ("eval", data.eval)):
        if not rows:
            continue
        path = run_dir / f"ref_logps_{name}_{_fingerprint(rows, trainer)}.pt"
        if path.is_file():
            cached = torch.load(path)
            for column, values in cached.items():
                for row, value in zip(rows, values):
                    row[LEGACY_COLUMNS.get(column, column)] = value
            if log:
                log(f"[prefswift] reference log-probs ({name}) loaded from {path}")
            continue
        trainer.precompute_reference(rows, collator, batch_size)
        if trainer.is_world_process_zero():
            tmp = path.with_suffix(".tmp")
            columns = [k for k in rows[0] if k.startswith("ref_")]
            torch.save({column: [r[column] for r in rows] for column in columns}, tmp)
            tmp.replace(path)
        if log:
            log(f"[prefswift] reference log-probs ({name}, {len(rows)} {data.summary.unit}) computed once, cached at "
                f"{path}")
