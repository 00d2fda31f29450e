"""Preference accuracy: how often a model prefers the chosen response over the rejected one (`prefswift eval`).

For every pair the response log-probabilities are computed with the training forward (`pair_forward`):
  * summed log-prob  = sum over response tokens of log p(token | prompt, previous tokens)
  * average log-prob = summed / number of response tokens (what ORPO/SimPO optimise)
accuracy_avg / accuracy_sum = share of pairs where chosen > rejected (strictly) by that measure;
margin_avg / margin_sum = mean of (chosen - rejected). An untrained model on a balanced set scores about 0.5.
With the run's objective and reference (`rewards`, `reference`) every pair also gets the implicit rewards training
logs (see `prefswift.evaluate.rewards`). Pairs come from `prefswift.data.selection.select_pairs` (e.g.
`--dataset demo` = the demo's held-out pairs, `--load_dataset_config true` = the run's own eval split). Results: a
table on stdout and a JSON file (<ckpt>/eval_result/<time>.json, or --infer_output).
"""
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from ..arguments.fields import LOGPROB_CHUNK_SIZE
from ..files import write_json_atomic
from ..scoring.collators import PairCollator
from ..scoring.forward import PairLogps, pair_forward

EVAL_BATCH_SIZE = 4


# (policy log-probs of a batch, its reference log-probs or None) -> implicit rewards ([B] chosen, [B] rejected)
RewardFn = Callable[[PairLogps, Optional[Tuple[torch.Tensor, torch.Tensor]]], Tuple[torch.Tensor, torch.Tensor]]
# a batch's log-probs -> the ([B] chosen, [B] rejected) sequence log-probs the objective compares with the reference
ReduceFn = Callable[[PairLogps], Tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def pair_logps(model, rows: List[dict], pad_token_id: int, *, batch_size: int = EVAL_BATCH_SIZE,
               chunk_size: int = LOGPROB_CHUNK_SIZE, rewards: Optional[RewardFn] = None,
               reference: Optional[List[Dict[str, float]]] = None, nll_all: bool = False,
               reduce: Optional[ReduceFn] = None) -> List[Dict[str, float]]:
    """Per pair: chosen/rejected summed log-probs and response token counts. `reduce`: the objective's sequence
    log-probs (`Objective.sequence_logps`: LD-weighted with --ld_alpha), added as chosen_seq_logp / rejected_seq_logp
    — what a reward compares, for the policy and the reference alike, exactly as in training. `reference`: the
    reference's pair_logps of the same rows (its summed log-probs added as ref_chosen_logp / ref_rejected_logp; the
    rewards use its chosen_seq_logp / rejected_seq_logp when it has them); `rewards`: the run's implicit rewards
    (added as reward_chosen / reward_rejected); `nll_all`: the forward ORPO with --orpo_nll_scope all trained with."""
    collate = PairCollator(pad_token_id=pad_token_id)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start:start + batch_size])
        batch = batch.to(device)
        res = pair_forward(model, batch, chunk_size=chunk_size, nll_all=nll_all)
        seq = reduce(res) if reduce is not None else None
        ref = ref_sums = None
        if reference is not None:
            refs = reference[start:start + batch_size]

            def column(key):
                return torch.tensor([r[key] for r in refs], dtype=res.chosen_logps.dtype,
                                    device=res.chosen_logps.device)

            ref_sums = column("chosen_logp"), column("rejected_logp")
            ref = ((column("chosen_seq_logp"), column("rejected_seq_logp")) if "chosen_seq_logp" in refs[0]
                   else ref_sums)
        reward_c, reward_r = rewards(res, ref) if rewards is not None else (None, None)
        for i in range(res.chosen_logps.shape[0]):
            rec = {"chosen_logp": float(res.chosen_logps[i]), "rejected_logp": float(res.rejected_logps[i]),
                   "chosen_tokens": int(res.chosen_tokens[i]), "rejected_tokens": int(res.rejected_tokens[i])}
            if seq is not None:
                rec.update(chosen_seq_logp=float(seq[0][i]), rejected_seq_logp=float(seq[1][i]))
            if ref is not None:
                rec.update(ref_chosen_logp=float(ref_sums[0][i]), ref_rejected_logp=float(ref_sums[1][i]))
            if reward_c is not None:
                rec.update(reward_chosen=float(reward_c[i]), reward_rejected=float(reward_r[i]))
            out.append(rec)
    return out


def preference_metrics(pairs: List[Dict[str, float]]) -> Dict[str, float]:
    """Accuracies and mean margins from per-pair numbers (pure function; see the module docstring)."""
    n = len(pairs)
    if n == 0:
        return {"pairs": 0}
    sum_m = [p["chosen_logp"] - p["rejected_logp"] for p in pairs]
    avg_c = [p["chosen_logp"] / max(p["chosen_tokens"], 1) for p in pairs]
    avg_r = [p["rejected_logp"] / max(p["rejected_tokens"], 1) for p in pairs]
    avg_m = [c - r for c, r in zip(avg_c, avg_r)]
    return {
        "pairs": n,
        "accuracy_avg": sum(m > 0 for m in avg_m) / n,
        "accuracy_sum": sum(m > 0 for m in sum_m) / n,
        "margin_avg": sum(avg_m) / n,
        "margin_sum": sum(sum_m) / n,
        "chosen_avg_logp": sum(avg_c) / n,
        "rejected_avg_logp": sum(avg_r) / n,
        "chosen_sum_logp": sum(p["chosen_logp"] for p in pairs) / n,
        "rejected_sum_logp": sum(p["rejected_logp"] for p in pairs) / n,
    }


def eval_record(metrics: Dict[str, float], pairs: List[Dict[str, float]], rows: List[dict], *, model: str,
                ckpt_dir, base_model, template: str, data: str, seconds: float, **extra) -> dict:
    """The JSON written by `prefswift eval`: what was evaluated on what, the metrics, and every pair's numbers
    (`extra`: the objective, the reference, a comparison)."""
    return {
        "model": model, "ckpt_dir": str(ckpt_dir) if ckpt_dir else None, "base_model": str(base_model),
        "template": template, "data": data, "metrics": metrics, "seconds": round(seconds, 2), **extra,
        "pairs": [dict(p, prompt=r["example"].prompt) for p, r in zip(pairs, rows)],
    }


def write_json(path: Path, record: dict) -> Path:
    """Write atomically (`files.write_json_atomic`): never a half-written result."""
    return write_json_atomic(path, record)


__all__ = ["pair_logps", "preference_metrics", "eval_record", "write_json", "RewardFn", "ReduceFn"]
