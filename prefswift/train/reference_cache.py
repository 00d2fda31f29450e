"""`--precompute_ref_log_probs`: reference log-probs computed once, cached next to the run, reused on resume.

A cache file is named by a fingerprint of everything its numbers depend on: the rows' token ids, what the objective
keeps of the reference (algorithm, --ld_alpha, KTO's KL column) and the reference itself (`reference_identity`: which
weights — path or hub id + revision, a fingerprint of the config and the weights' safetensors headers
(`prefswift.models.identity`) —, the adapters, dtype, quantization, template and max lengths). Another model, even
a copy with changed weights, therefore never reads another's cache. `--overwrite_output_dir` removes the caches an
earlier run wrote (`prefswift.run.ownership.remove_caches`: only files named `ref_logps_*`).
"""
import hashlib
import json
from pathlib import Path
from typing import Optional

import torch

from ..models.identity import weights_fingerprint

# the token columns a row's reference log-probs depend on (pairs, then KTO's unpaired rows), in hashing order
ROW_KEYS = ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids", "completion_input_ids",
            "kl_completion_input_ids", "label")
# caches written before KTO stored the pair columns under these names
LEGACY_COLUMNS = {"chosen": "ref_chosen_logps", "rejected": "ref_rejected_logps"}




def _path_or_id(value: Optional[str]) -> Optional[str]:
    """A local path made absolute (the same directory named two ways is one model); a hub id as given."""
    if value and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def _adapter(value: Optional[str]):
    return None if not value else [_path_or_id(value), weights_fingerprint(Path(value))]


def _dtype_of(model) -> Optional[str]:
    if model is None:
        return None
    return next((str(p.dtype) for p in model.parameters() if p.is_floating_point()), None)


def reference_identity(args, models, trainer) -> dict:
    """What the reference's log-probs depend on besides the token ids (see the module docstring)."""
    m = args.model
    separate = models.reference_dir is not None
    weights = models.reference_dir if separate else models.resolved.path
    return {
        "weights": str(weights), "fingerprint": weights_fingerprint(weights),
        "model": [m.ref_model_type, _path_or_id(m.ref_model_id_or_path)] if separate
        else [m.model_type, _path_or_id(m.model_id_or_path)],
        "revision": m.model_revision, "hub": m.hub,
        "adapter": None if separate else _adapter(m.adapter_name_or_path),
        "ref_adapter": _adapter(m.ref_adapter_name_or_path),
        "sft_type": args.tuning.sft_type, "dtype": m.dtype,
        "weights_dtype": _dtype_of(trainer.ref_model if trainer.ref_model is not None else trainer.model),
        "quantization": [m.quantization_bit, m.bnb_4bit_quant_type, m.bnb_4bit_use_double_quant,
                         m.bnb_4bit_compute_dtype] if m.quantization_bit else None,
        "template": models.resolved.template, "system": args.data.system,
        "max_length": args.data.max_length, "max_prompt_length": args.data.max_prompt_length,
    }


def _fingerprint(rows, trainer, identity: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(identity, sort_keys=True, default=str).encode())
    # the algorithm, and what it keeps of the reference (LD-DPO's --ld_alpha, KTO's KL column)
    h.update(trainer.objective.reference_key().encode())
    for r in rows:
        for key in ROW_KEYS:
            if key in r:
                value = r[key]
                h.update(json.dumps(list(value) if key != "label" else bool(value)).encode())
    return h.hexdigest()[:16]


def precompute_or_load(trainer, data, collator, run_dir: Path, batch_size: int, identity: dict, log=None) -> None:
    """Fill the reference columns (ref_chosen_logps / ref_rejected_logps, or KTO's ref_logps / ref_kl_logps) in
    data.train and data.eval (rank 0 writes the cache). `identity`: `reference_identity` of the run."""
    for name, rows in (("train", data.train), ("eval", data.eval)):
        if not rows:
            continue
        path = run_dir / f"ref_logps_{name}_{_fingerprint(rows, trainer, identity)}.pt"
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
