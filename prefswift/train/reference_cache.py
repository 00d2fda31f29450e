"""`--precompute_ref_log_probs`: reference log-probs computed once, cached next to the run, reused on resume."""
import hashlib
import json
from pathlib import Path

import torch


def _fingerprint(rows, trainer) -> str:
    h = hashlib.sha256()
    h.update(str(trainer.objective.algo).encode())
    if trainer.objective.ld_alpha is not None:  # LD-DPO weights the reference's log-probs too
        h.update(f"ld_alpha={trainer.objective.ld_alpha}".encode())
    for r in rows:
        for key in ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids"):
            h.update(json.dumps(list(r[key])).encode())
    return h.hexdigest()[:16]


def precompute_or_load(trainer, data, collator, run_dir: Path, batch_size: int, log=None) -> None:
    """Fill ref_chosen_logps / ref_rejected_logps in data.train and data.eval (rank 0 writes the cache)."""
    for name, rows in (("train", data.train), ("eval", data.eval)):
        if not rows:
            continue
        path = run_dir / f"ref_logps_{name}_{_fingerprint(rows, trainer)}.pt"
        if path.is_file():
            cached = torch.load(path)
            for row, chosen, rejected in zip(rows, cached["chosen"], cached["rejected"]):
                row["ref_chosen_logps"], row["ref_rejected_logps"] = chosen, rejected
            if log:
                log(f"[prefswift] reference log-probs ({name}) loaded from {path}")
            continue
        trainer.precompute_reference(rows, collator, batch_size)
        if trainer.is_world_process_zero():
            tmp = path.with_suffix(".tmp")
            torch.save({"chosen": [r["ref_chosen_logps"] for r in rows],
                        "rejected": [r["ref_rejected_logps"] for r in rows]}, tmp)
            tmp.replace(path)
        if log:
            log(f"[prefswift] reference log-probs ({name}, {len(rows)} pairs) computed once, cached at {path}")
