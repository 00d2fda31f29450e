"""Metrics over scored pairs beyond raw log-prob accuracy: implicit rewards, the distance to the reference, length bias.

Every pair (from `pairs.pair_logps`) may carry the run's implicit rewards (`reward_chosen`, `reward_rejected`: exactly
what training logs as rewards/chosen and rewards/rejected — DPO: beta * (log pi - log pi_ref) of the summed response
log-probs; ORPO/SimPO: beta * average log-prob; CPO: beta * summed or average log-prob) and the reference's summed
log-probs (`ref_chosen_logp`, `ref_rejected_logp`).

* reward_accuracy: share of pairs with reward_chosen > reward_rejected (strictly; TRL's rewards/accuracies);
  reward_margin / reward_chosen / reward_rejected: means over pairs.
* kl_chosen_seq / kl_chosen_token: the mean over the chosen responses of sum_t (log pi - log pi_ref), per response
  and per token. This is the sampled estimate of KL(pi || pi_ref) evaluated on the dataset's chosen responses — an
  exact KL would need both models' full next-token distributions, and a true sampled KL would need responses drawn
  from pi. Because the chosen responses were not sampled from pi it can be negative; it measures how far the policy
  moved on the responses it was trained to prefer.
* Length bias (the first check when DPO "learns" to prefer long answers), by response tokens: the share of pairs whose
  chosen response is the longer one (how much length alone would score), the accuracy on the pairs where the chosen
  response is longer / shorter / of equal length, and the Pearson correlation of the margin with the length
  difference (chosen - rejected tokens). The margin is the implicit reward margin when there are rewards, else the
  summed log-prob margin.
"""
import math
from typing import Dict, List, Optional, Sequence

from .pairs import preference_metrics


def pearson(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
    """Pearson correlation; None when either side is constant (or fewer than 2 points)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def reward_metrics(pairs: List[Dict[str, float]]) -> Dict[str, float]:
    """Implicit-reward accuracy and means; the log-ratio to the reference on chosen responses when there is one."""
    n = len(pairs)
    out: Dict[str, float] = {}
    if n == 0:
        return out
    if "reward_chosen" in pairs[0]:
        margins = [p["reward_chosen"] - p["reward_rejected"] for p in pairs]
        out.update(reward_accuracy=sum(m > 0 for m in margins) / n, reward_margin=sum(margins) / n,
                   reward_chosen=sum(p["reward_chosen"] for p in pairs) / n,
                   reward_rejected=sum(p["reward_rejected"] for p in pairs) / n)
    if "ref_chosen_logp" in pairs[0]:
        ratios = [p["chosen_logp"] - p["ref_chosen_logp"] for p in pairs]
        out.update(kl_chosen_seq=sum(ratios) / n,
                   kl_chosen_token=sum(ratios) / max(sum(p["chosen_tokens"] for p in pairs), 1))
    return out


def margins(pairs: List[Dict[str, float]]) -> List[float]:
    """Per pair: the implicit reward margin when the pairs have rewards, else the summed log-prob margin."""
    if pairs and "reward_chosen" in pairs[0]:
        return [p["reward_chosen"] - p["reward_rejected"] for p in pairs]
    return [p["chosen_logp"] - p["rejected_logp"] for p in pairs]


def margin_kind(pairs: List[Dict[str, float]]) -> str:
    return "implicit reward" if pairs and "reward_chosen" in pairs[0] else "summed log-prob"


def length_bias(pairs: List[Dict[str, float]]) -> Dict[str, float]:
    """Accuracy split by which response is longer, and corr(margin, length difference); see the module docstring."""
    n = len(pairs)
    if n == 0:
        return {}
    ms = margins(pairs)
    diffs = [p["chosen_tokens"] - p["rejected_tokens"] for p in pairs]
    out: Dict[str, float] = {"chosen_longer_share": sum(d > 0 for d in diffs) / n}
    for name, keep in (("chosen_longer", lambda d: d > 0), ("chosen_shorter", lambda d: d < 0),
                       ("equal_length", lambda d: d == 0)):
        group = [m for m, d in zip(ms, diffs) if keep(d)]
        out[f"pairs_{name}"] = len(group)
        out[f"accuracy_{name}"] = sum(m > 0 for m in group) / len(group) if group else None
    out["margin_length_corr"] = pearson(ms, diffs)
    return out


def evaluation_metrics(pairs: List[Dict[str, float]]) -> Dict[str, float]:
    """Everything `prefswift eval` reports for one model: log-prob accuracy, rewards, KL estimate, length bias."""
    out = preference_metrics(pairs)
    out.update(reward_metrics(pairs))
    out.update(length_bias(pairs))
    return out


COUNTS = ("pairs", "pairs_chosen_longer", "pairs_chosen_shorter", "pairs_equal_length")


def deltas(this: Dict[str, float], other: Dict[str, float]) -> Dict[str, float]:
    """this - other for every metric both have a number for (pair counts are properties of the data, not deltas)."""
    return {k: this[k] - other[k] for k in this
            if k not in COUNTS and isinstance(this[k], (int, float)) and isinstance(other.get(k), (int, float))}


__all__ = ["evaluation_metrics", "reward_metrics", "length_bias", "margins", "margin_kind", "pearson", "deltas"]
