"""The checks of `prefswift lint`, each a pure function of the pairs (and of the pipeline's drop counts) returning one
`Check`: how many rows it flags, out of how many, the limit, details and where the first flagged rows are."""
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data.example import PreferenceExample
from ..data.pipeline import kept_lengths
from .near_duplicates import near_duplicate_groups
from .text import NO_LETTERS, dominant_scripts, normalize, words

EXAMPLES = 3            # flagged rows named per check
MIN_LEAK_CHARS = 20     # shorter prompts appear inside answers by chance ("Hi", "Why?")
EMPTY_REASONS = ("empty chosen", "empty rejected")
EQUAL_REASONS = ("chosen == rejected", "chosen == rejected as tokens")


@dataclass
class Check:
    name: str
    count: int                  # rows flagged
    total: int                  # rows looked at
    limit: float
    summary: str = ""           # one line: what was found
    detail: dict = field(default_factory=dict)
    examples: List[str] = field(default_factory=list)
    value: Optional[float] = None  # what the limit applies to (default: the share count / total); None = skipped

    def __post_init__(self):
        if self.value is None and self.total >= 0:
            self.value = self.count / self.total if self.total else 0.0

    @property
    def status(self) -> str:
        if self.total < 0:
            return "skipped"
        if self.value > self.limit + 1e-12:
            return "FAIL"
        return "warn" if self.count and self.name != "length_bias" else "ok"


@dataclass
class Pairs:
    """The pairs a run would train and evaluate on, with their normalised texts."""
    examples: List[PreferenceExample]
    in_eval: np.ndarray         # bool per pair
    prompt: List[str] = field(init=False)
    chosen: List[str] = field(init=False)
    rejected: List[str] = field(init=False)

    def __post_init__(self):
        self.prompt = [normalize(ex.prompt) for ex in self.examples]
        self.chosen = [normalize(ex.chosen) for ex in self.examples]
        self.rejected = [normalize(ex.rejected) for ex in self.examples]

    def __len__(self):
        return len(self.examples)

    def where(self, indices) -> List[str]:
        return [self.examples[i].origin or f"pair {i}" for i in list(indices)[:EXAMPLES]]


@dataclass
class TokenLengths:
    """Tokens of each pair before truncation (as training encodes it) and the limits it is truncated to."""
    prompt: np.ndarray
    chosen: np.ndarray
    rejected: np.ndarray
    max_length: int
    max_prompt_length: int
    strategy: str


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------- what the pipeline drops

def dropped(counts: Dict[str, int], first: Dict[str, str], rows: int, limit: float) -> Check:
    reasons = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return Check("dropped", sum(reasons.values()), rows, limit, ", ".join(f"{k} {v}" for k, v in reasons.items()),
                 {"reasons": reasons}, [f"{k}: {first[k]}" for k in reasons if k in first][:EXAMPLES])


def empty_answers(counts: Dict[str, int], first: Dict[str, str], rows: int, limit: float) -> Check:
    found = {k.split()[1]: counts.get(k, 0) for k in EMPTY_REASONS}
    return Check("empty_answers", sum(found.values()), rows, limit,
                 ", ".join(f"{v} {k}" for k, v in found.items() if v), found,
                 [first[k] for k in EMPTY_REASONS if k in first])


def chosen_equals_rejected(pairs: Pairs, counts: Dict[str, int], first: Dict[str, str], rows: int,
                           limit: float) -> Check:
    alike = [i for i, (c, r) in enumerate(zip(pairs.chosen, pairs.rejected)) if c == r]
    found = {"identical text (dropped)": counts.get(EQUAL_REASONS[0], 0),
             "identical tokens (dropped)": counts.get(EQUAL_REASONS[1], 0),
             "differ only in case or spacing (kept)": len(alike)}
    return Check("chosen_equals_rejected", sum(found.values()), rows, limit,
                 ", ".join(f"{v} {k}" for k, v in found.items() if v), found,
                 ([first[k] for k in EQUAL_REASONS if k in first] + pairs.where(alike))[:EXAMPLES])


# ---------------------------------------------------------------- repeats

def duplicate_groups(pairs: Pairs, similarity: float) -> tuple:
    """(exact group of each pair: the index of its first copy; near group of each pair: the smallest first-copy
    index of its near-duplicate group)."""
    first: Dict[tuple, int] = {}
    keys = ((normalize(ex.system or ""), tuple(normalize(str(t)) for turn in ex.history for t in turn), p, c, r)
            for ex, p, c, r in zip(pairs.examples, pairs.prompt, pairs.chosen, pairs.rejected))
    exact = np.array([first.setdefault(key, i) for i, key in enumerate(keys)], dtype=np.int64)
    unique = np.unique(exact)

    def doc(k: int) -> List[str]:  # the words of prompt, chosen and rejected, fields kept apart by separators
        i = unique[k]
        return words(pairs.prompt[i]) + ["\x01"] + words(pairs.chosen[i]) + ["\x02"] + words(pairs.rejected[i])

    labels = unique[near_duplicate_groups(len(unique), doc, similarity)]
    near = labels[np.searchsorted(unique, exact)]
    return exact, near


def duplicates(pairs: Pairs, exact: np.ndarray, limit: float) -> Check:
    repeats = np.flatnonzero(exact != np.arange(len(exact)))
    sizes = Counter(exact.tolist())
    groups = sum(1 for n in sizes.values() if n > 1)
    return Check("duplicates", len(repeats), len(pairs), limit,
                 f"{len(repeats)} repeating an earlier pair ({_plural(groups, 'group')}, largest "
                 f"{max(sizes.values(), default=0)})" if len(repeats) else "",
                 {"groups": groups, "largest_group": max(sizes.values(), default=0)},
                 [f"{pairs.where([i])[0]} repeats {pairs.where([exact[i]])[0]}" for i in repeats[:EXAMPLES]])


def near_duplicates(pairs: Pairs, exact: np.ndarray, near: np.ndarray, similarity: float, limit: float) -> Check:
    firsts = np.flatnonzero(exact == np.arange(len(exact)))           # one pair per exact group
    extra = firsts[near[firsts] != firsts]                            # ... that is not the first of its near group
    groups = len(set(near[extra].tolist()))
    return Check("near_duplicates", len(extra), len(pairs), limit,
                 f"{len(extra)} nearly repeating an earlier pair ({_plural(groups, 'group')}, word "
                 f"3-gram Jaccard >= {similarity:g})" if len(extra) else "",
                 {"groups": groups, "similarity": similarity},
                 [f"{pairs.where([i])[0]} ~ {pairs.where([near[i]])[0]}" for i in extra[:EXAMPLES]])


def eval_overlap(pairs: Pairs, near: np.ndarray, limit: float) -> Check:
    seen = set(near[~pairs.in_eval].tolist())
    leaked = [i for i in np.flatnonzero(pairs.in_eval) if near[i] in seen]
    return Check("eval_overlap", len(leaked), int(pairs.in_eval.sum()), limit,
                 f"{len(leaked)} eval pairs (nearly) repeating a training pair" if leaked else "",
                 {}, pairs.where(leaked))


# ---------------------------------------------------------------- lengths

def truncated(pairs: Pairs, tokens: Optional[TokenLengths], limit: float) -> Check:
    if tokens is None:
        return Check("truncated", 0, -1, limit, "skipped: no tokenizer (pass --model_type or --model_id_or_path "
                     "to count tokens)")
    kept = np.array([kept_lengths(p, c, r, tokens.max_length, tokens.max_prompt_length)
                     for p, c, r in zip(tokens.prompt, tokens.chosen, tokens.rejected)], dtype=np.int64)
    kept = kept.reshape(-1, 3)
    cut = np.stack([tokens.prompt, tokens.chosen, tokens.rejected], axis=1) - kept
    hit = np.flatnonzero(cut.sum(1) > 0)
    detail = {"strategy": tokens.strategy, "max_length": tokens.max_length,
              "max_prompt_length": tokens.max_prompt_length}
    for k, name in enumerate(("prompt", "chosen", "rejected")):
        lost = cut[cut[:, k] > 0, k]
        detail[name] = {"pairs_cut": len(lost), "mean_tokens_cut": round(float(lost.mean()), 1) if len(lost) else 0.0,
                        "max_tokens_cut": int(lost.max()) if len(lost) else 0}
    action = "dropped (truncation_strategy delete)" if tokens.strategy == "delete" else "cut"
    summary = (f"{len(hit)} over max_length {tokens.max_length} / max_prompt_length "
               f"{tokens.max_prompt_length}, {action}: " + ", ".join(
                   f"{name} of {detail[name]['pairs_cut']} by {detail[name]['mean_tokens_cut']:g} tokens on average "
                   f"(max {detail[name]['max_tokens_cut']})"
                   for name in ("prompt", "chosen", "rejected") if detail[name]["pairs_cut"])) if len(hit) else ""
    return Check("truncated", len(hit), len(tokens.prompt), limit, summary, detail, pairs.where(hit))


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a - mean b) / pooled standard deviation (sample variances); 0 for fewer than 2 pairs or no spread."""
    if len(a) < 2:
        return 0.0
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else 0.0


def length_bias(pairs: Pairs, tokens: Optional[TokenLengths], limit: float) -> Check:
    unit = "tokens" if tokens is not None else "characters"
    if tokens is not None:
        c, r = tokens.chosen.astype(np.float64), tokens.rejected.astype(np.float64)
    else:
        c = np.array([len(ex.chosen) for ex in pairs.examples], dtype=np.float64)
        r = np.array([len(ex.rejected) for ex in pairs.examples], dtype=np.float64)
    longer, shorter = int((c > r).sum()), int((c < r).sum())
    d = cohens_d(c, r)
    n = max(len(c), 1)
    return Check("length_bias", longer, len(c), limit,
                 f"chosen longer in {longer / n:.1%} of pairs, shorter in {shorter / n:.1%}; Cohen's d {d:+.2f} "
                 f"({unit})", {"unit": unit, "chosen_longer": longer, "chosen_shorter": shorter,
                               "same_length": len(c) - longer - shorter, "cohens_d": round(d, 4),
                               "mean_chosen": round(float(c.mean()), 1) if len(c) else 0.0,
                               "mean_rejected": round(float(r.mean()), 1) if len(r) else 0.0},
                 value=abs(d))


# ---------------------------------------------------------------- content

def prompt_in_answer(pairs: Pairs, limit: float) -> Check:
    found = {"chosen": [], "rejected": []}
    for i, p in enumerate(pairs.prompt):
        if len(p) >= MIN_LEAK_CHARS:
            for name, answers in (("chosen", pairs.chosen), ("rejected", pairs.rejected)):
                if p in answers[i]:
                    found[name].append(i)
    hit = sorted(set(found["chosen"]) | set(found["rejected"]))
    detail = {k: len(v) for k, v in found.items()}
    return Check("prompt_in_answer", len(hit), len(pairs), limit,
                 f"the prompt is repeated in {detail['chosen']} chosen and {detail['rejected']} rejected answers "
                 f"(prompts of {MIN_LEAK_CHARS}+ characters)" if hit else "", detail, pairs.where(hit))


def special_tokens(pairs: Pairs, markers: Sequence[str], limit: float) -> Check:
    if not markers:
        return Check("special_tokens", 0, len(pairs), limit, "no special tokens known", {"tokens": []})
    pattern = re.compile("|".join(re.escape(m) for m in sorted(set(markers), key=len, reverse=True)))
    per_field: Dict[str, int] = Counter()
    seen: Counter = Counter()
    hit = []
    for i, ex in enumerate(pairs.examples):
        fields = {"system": ex.system or "", "history": " ".join(str(t) for turn in ex.history for t in turn),
                  "prompt": ex.prompt, "chosen": ex.chosen, "rejected": ex.rejected}
        flagged = False
        for name, text in fields.items():
            found = pattern.findall(text)
            if found:
                per_field[name] += 1
                seen.update(found)
                flagged = True
        if flagged:
            hit.append(i)
    return Check("special_tokens", len(hit), len(pairs), limit,
                 "in " + ", ".join(f"{v} {k}" for k, v in per_field.items()) + ": " + ", ".join(
                     f"{t} x{n}" for t, n in seen.most_common(5)) if hit else "",
                 {"fields": dict(per_field), "found": dict(seen.most_common()), "tokens": list(markers)},
                 pairs.where(hit))


def script_mismatch(pairs: Pairs, limit: float) -> Check:
    scripts = {name: dominant_scripts([getattr(ex, name) for ex in pairs.examples])
               for name in ("prompt", "chosen", "rejected")}
    kinds = {"prompt/chosen": ("prompt", "chosen"), "prompt/rejected": ("prompt", "rejected"),
             "chosen/rejected": ("chosen", "rejected")}
    counts = {k: 0 for k in kinds}
    hit = []
    for i in range(len(pairs)):
        flagged = False
        for kind, (a, b) in kinds.items():
            sa, sb = scripts[a][i], scripts[b][i]
            if sa != sb and NO_LETTERS not in (sa, sb):
                counts[kind] += 1
                flagged = True
        if flagged:
            hit.append(i)
    mix = {name: dict(Counter(s).most_common()) for name, s in scripts.items()}
    return Check("script_mismatch", len(hit), len(pairs), limit,
                 "different scripts in " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) if hit else "",
                 {"pairs": counts, "scripts": mix}, pairs.where(hit))
