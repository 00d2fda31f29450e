"""`prefswift eval` of a KTO run: its implicit rewards on unpaired rows (prompt, completion, desirable or not).

Exactly what KTO training logs (`prefswift.algorithms.kto.kto_metrics`), over all the rows evaluated instead of per
batch:
  * reward_chosen / reward_rejected: the mean over desirable / undesirable rows of beta * (log pi - log pi_ref) of the
    completion (summed log-probs); reward_margin: their difference (when both kinds are there);
  * chosen_sum_logp / rejected_sum_logp (training's logps/chosen, logps/rejected) and the per-token averages;
  * kl: KTO's KL estimate z = max(0, mean over the mismatched KL rows of log pi - log pi_ref) (loss type kto; its
    KL rows are built as training builds them, in runs of the training batch size);
  * where the rows hold pairs — a prompt (with its system and history) that has exactly one desirable and one
    undesirable completion, as pairs split for KTO do — reward_accuracy over those pairs (desirable reward >
    undesirable reward, strictly), their margins and the length-bias split.
"""
from collections import defaultdict
from typing import Dict, List, Optional

import torch

from ..arguments.fields import LOGPROB_CHUNK_SIZE
from ..scoring.unpaired import UnpairedCollator, unpaired_forward
from .pairs import EVAL_BATCH_SIZE
from .rewards import length_bias


@torch.no_grad()
def row_logps(model, rows: List[dict], pad_token_id: int, *, kl: bool, batch_size: int = EVAL_BATCH_SIZE,
              chunk_size: int = LOGPROB_CHUNK_SIZE) -> List[Dict[str, float]]:
    """Per row: the completion's summed log-prob, its token count and (with `kl`) the KL row's summed log-prob."""
    collate = UnpairedCollator(pad_token_id=pad_token_id)
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = [{k: v for k, v in r.items() if not k.startswith("ref_")} for r in rows[start:start + batch_size]]
        batch = collate(chunk).to(device)
        res = unpaired_forward(model, batch, chunk_size=chunk_size, kl=kl)
        for i in range(res.logps.shape[0]):
            rec = {"label": bool(batch["label"][i]), "logp": float(res.logps[i]), "tokens": int(res.tokens[i])}
            if res.kl_logps is not None:
                rec["kl_logp"] = float(res.kl_logps[i])
            out.append(rec)
    return out


def with_rewards(scored: List[Dict[str, float]], reference: List[Dict[str, float]], beta: float
                 ) -> List[Dict[str, float]]:
    """The policy's rows with the reference's log-probs and the implicit reward beta * (log pi - log pi_ref)."""
    out = []
    for pol, ref in zip(scored, reference):
        rec = dict(pol, ref_logp=ref["logp"], reward=beta * (pol["logp"] - ref["logp"]))
        if "kl_logp" in pol:
            rec["ref_kl_logp"] = ref["kl_logp"]
        out.append(rec)
    return out


def _key(example) -> tuple:
    return example.prompt, example.system, repr(example.history or [])


def matched_pairs(records: List[Dict[str, float]], rows: List[dict]) -> List[Dict[str, float]]:
    """Pairs of rows sharing a prompt (+ system, history) with exactly one desirable and one undesirable completion,
    as pair records (chosen = desirable)."""
    groups = defaultdict(list)
    for rec, row in zip(records, rows):
        groups[_key(row["example"])].append(rec)
    pairs = []
    for group in groups.values():
        good = [r for r in group if r["label"]]
        bad = [r for r in group if not r["label"]]
        if len(good) == 1 and len(bad) == 1:
            (c,), (r,) = good, bad
            pairs.append({"chosen_logp": c["logp"], "rejected_logp": r["logp"], "chosen_tokens": c["tokens"],
                          "rejected_tokens": r["tokens"], "reward_chosen": c["reward"],
                          "reward_rejected": r["reward"]})
    return pairs


def _mean(values) -> Optional[float]:
    values = list(values)
    return sum(values) / len(values) if values else None


def kto_eval_metrics(records: List[Dict[str, float]], pairs: List[Dict[str, float]]) -> Dict[str, float]:
    """Everything `prefswift eval` reports for a KTO run (see the module docstring)."""
    des = [r for r in records if r["label"]]
    und = [r for r in records if not r["label"]]
    out: Dict[str, float] = {"rows": len(records), "desirable_rows": len(des), "undesirable_rows": len(und),
                             "pairs": len(pairs)}
    for name, group in (("chosen", des), ("rejected", und)):
        if group:
            out[f"reward_{name}"] = _mean(r["reward"] for r in group)
            out[f"{name}_sum_logp"] = _mean(r["logp"] for r in group)
            out[f"{name}_avg_logp"] = _mean(r["logp"] / max(r["tokens"], 1) for r in group)
    if des and und:
        out["reward_margin"] = out["reward_chosen"] - out["reward_rejected"]
    if records and "kl_logp" in records[0]:
        out["kl"] = max(0.0, _mean(r["kl_logp"] - r["ref_kl_logp"] for r in records))
    if pairs:
        out["reward_accuracy"] = sum(p["reward_chosen"] > p["reward_rejected"] for p in pairs) / len(pairs)
        out["pair_reward_margin"] = _mean(p["reward_chosen"] - p["reward_rejected"] for p in pairs)
        out.update(length_bias(pairs))
    return out


__all__ = ["row_logps", "with_rewards", "matched_pairs", "kto_eval_metrics"]
