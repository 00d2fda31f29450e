"""Win rate with a judge model (`prefswift eval --mode winrate`): the pairwise judgment and its statistics.

The judge is any local causal LM, asked in its own chat template which of two answers to a question is better
(`JUDGE_PROMPT`). It does not generate: its verdict is the option among A, B and C (tie) with the highest log-prob as
the start of its reply (the letter's tokens in the judge's template, usually one; the three probabilities,
renormalised over the options, are kept). Every prompt is
judged in both orders — the model's answer as A, then as B — to cancel position bias: the model wins when both
orders prefer its answer, loses when both prefer the opponent's, and anything else (a tie verdict, or the two orders
disagreeing, which is what a position-biased judge does) is a tie.

win rate = (wins + ties / 2) / prompts, with a 95% Wilson score interval over prompts with ties counted as half a
win. The Wilson interval treats every prompt as a win or a loss; ties have less variance than that, so with ties
the interval is conservative (wider than needed), and it stays inside [0, 1] for a handful of prompts.
"""
import math
from typing import Callable, Dict, List, Sequence

import torch

from ..errors import ArgumentError

JUDGE_PROMPT = ("Which answer to the question below is better: more helpful, correct and clear? Reply with one "
                "letter: A if Answer A is better, B if Answer B is better, C if they are equally good.\n\n"
                "Question:\n{question}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}")
OPTIONS = ("A", "B", "C")   # C: a tie
Z95 = 1.959963984540054


class Judge:
    """A causal LM that compares two answers by the log-prob of replying A, B or C (see the module docstring)."""

    def __init__(self, model, tokenizer, template):
        self.model, self.tokenizer, self.template = model, tokenizer, template

    def _context_and_replies(self, query: str):
        """The prompt ids (plus any tokens all three replies share first) and each option's own reply tokens (the
        template's end-of-turn tokens, the same for all three, left out)."""
        tok, tmpl = self.tokenizer, self.template
        text = tmpl.render_prompt(None, [], query)
        prompt_ids = tmpl.encode_prompt(tok, None, [], query)
        replies = [tmpl.encode_pair(tok, text, prompt_ids, option) for option in OPTIONS]
        shortest = min(map(len, replies))
        k = 0
        while k < shortest and len({r[k] for r in replies}) == 1:
            k += 1
        s = 0
        while s < shortest - k and len({r[len(r) - 1 - s] for r in replies}) == 1:
            s += 1
        own = [r[k:len(r) - s] for r in replies]
        if not all(own):
            raise ArgumentError(f"judge: the replies {', '.join(OPTIONS)} cannot be told apart in the template "
                                f"{tmpl.name}; use another --judge_model")
        return prompt_ids + replies[0][:k], own

    def _reply_logps(self, context: List[int], replies: List[List[int]]) -> torch.Tensor:
        """log p(reply | context) of each reply: one forward when every reply is one token (the usual case)."""
        device = next(self.model.parameters()).device

        def forward(ids, keep):
            ids = torch.tensor([ids], dtype=torch.long, device=device)
            logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=keep).logits[0]
            return torch.log_softmax(logits.float(), -1)

        if all(len(r) == 1 for r in replies):
            return forward(context, 1)[-1][[r[0] for r in replies]]
        out = []
        for reply in replies:  # positions len(context)-1 ... predict the reply's tokens
            logps = forward(context + reply, len(reply) + 1)[:-1]
            out.append(logps.gather(-1, torch.tensor(reply, device=device)[:, None]).sum())
        return torch.stack(out)

    @torch.no_grad()
    def probabilities(self, question: str, answer_a: str, answer_b: str) -> Dict[str, float]:
        """{"A": p, "B": p, "tie": p}: the judge's reply probabilities renormalised over the three options."""
        context, replies = self._context_and_replies(JUDGE_PROMPT.format(question=question, a=answer_a, b=answer_b))
        p = torch.softmax(self._reply_logps(context, replies), -1).tolist()
        return {"A": p[0], "B": p[1], "tie": p[2]}


def verdict(probs: Dict[str, float]) -> str:
    """"A", "B" or "tie": the most probable option (ties between options go to "tie")."""
    best = max(probs.values())
    winners = [k for k, v in probs.items() if v == best]
    return winners[0] if len(winners) == 1 else "tie"


def judge_both_orders(judge: Judge, question: str, answer: str, opponent: str) -> dict:
    """The model's answer judged as A and then as B; the outcome for the model: win, tie or loss."""
    judgments = []
    for order, (a, b) in (("model_first", (answer, opponent)), ("opponent_first", (opponent, answer))):
        probs = judge.probabilities(question, a, b)
        pick = verdict(probs)
        picked = "tie" if pick == "tie" else ("model" if (pick == "A") == (order == "model_first") else "opponent")
        judgments.append({"order": order, "probs": probs, "verdict": pick, "prefers": picked})
    prefs = {j["prefers"] for j in judgments}
    outcome = "win" if prefs == {"model"} else "loss" if prefs == {"opponent"} else "tie"
    return {"judgments": judgments, "outcome": outcome}


def wilson(score: float, n: int, z: float = Z95):
    """(low, high): the Wilson score interval of a proportion `score / n` (score may count ties as halves)."""
    if n == 0:
        return None, None
    p = score / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(outcomes: Sequence[str]) -> Dict[str, float]:
    """Counts, win rate (ties = half a win) and its 95% Wilson interval."""
    n = len(outcomes)
    wins, ties, losses = (sum(o == k for o in outcomes) for k in ("win", "tie", "loss"))
    score = wins + ties / 2
    low, high = wilson(score, n)
    return {"prompts": n, "wins": wins, "ties": ties, "losses": losses,
            "win_rate": score / n if n else None, "ci95_low": low, "ci95_high": high}


def format_winrate(summary: Dict[str, float], title: str, notes: Sequence[str] = ()) -> str:
    if not summary["prompts"]:
        return "no prompts judged"
    n = summary["prompts"]
    lines = [title, *notes]
    for key in ("wins", "ties", "losses"):
        lines.append(f"  {key:<8}{summary[key]:>6}  ({summary[key] / n:.1%})")
    lines.append(f"  win rate {summary['win_rate']:.4f}  (ties count half; 95% Wilson interval "
                 f"{summary['ci95_low']:.4f} - {summary['ci95_high']:.4f}, {n} prompts)")
    return "\n".join(lines)


def judge_all(judge: Judge, items: List[dict], write: Callable[[dict], None], log=print) -> List[str]:
    """Judge every {"prompt", "answer", "opponent_answer"} item in both orders; `write` gets each item with its
    judgments (one JSONL row); returns the outcomes."""
    outcomes = []
    for i, item in enumerate(items):
        result = judge_both_orders(judge, item["prompt"], item["answer"], item["opponent_answer"])
        write({**item, **result})
        outcomes.append(result["outcome"])
        log(f"[{i + 1}/{len(items)}] {item['prompt'][:60]!r}: {result['outcome']}")
    return outcomes


__all__ = ["Judge", "JUDGE_PROMPT", "OPTIONS", "verdict", "judge_both_orders", "wilson", "summarize",
           "format_winrate", "judge_all"]
