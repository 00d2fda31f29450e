"""Scorers of `prefswift sample`: K completions of one prompt in, K numbers out (higher = better).

* `RewardScorer` (--reward_model DIR): any sequence-classification model with one output (num_labels 1); the text
  scored is the prompt + completion in the policy's chat template (encoded as training encodes a pair, with the
  reward model's tokenizer), the reward is the output at the last token of that text (`models.reward`: the same
  pooling as training, whatever the tokenizer's pad token).
* `JudgeScorer` (--judge_model): the pairwise log-prob judge of `eval --mode winrate` on every pair of completions,
  both orders; a completion's score is its mean probability of being preferred over each other one (the judge's A
  probability when it stands first and its B probability when it stands second, averaged), so position bias cancels.
  The question shown is the prompt after the conversation's earlier turns.

A new scorer needs only `name` and `score(item, completions)` (`Scorer`).
"""
from pathlib import Path
from typing import List, Protocol

import torch

from ..errors import ArgumentError
from ..models.reward import score_token_ids
from .winrate import Judge


class Scorer(Protocol):
    name: str  # what each row records as its `scorer`

    def score(self, item, completions: List[str]) -> List[float]:
        """One number per completion of `item` (a `data.prompts.PromptItem`)."""


class RewardScorer:
    """A sequence-classification model's scalar output on prompt + completion (see the module docstring)."""

    def __init__(self, model, tokenizer, template, name: str, batch_size: int = 16):
        labels = getattr(model.config, "num_labels", 1)
        if labels != 1:
            raise ArgumentError(f"--reward_model {name}: a reward model has one output (num_labels 1), this one has "
                                f"{labels}")
        self.model, self.tokenizer, self.template = model.eval(), tokenizer, template
        self.name, self.batch_size = name, batch_size

    def encode(self, item, completion: str) -> List[int]:
        tmpl, tok = self.template, self.tokenizer
        text = tmpl.render_prompt(item.system, list(item.history), item.prompt)
        prompt_ids = tmpl.encode_prompt(tok, item.system, list(item.history), item.prompt)
        return prompt_ids + tmpl.encode_pair(tok, text, prompt_ids, completion)

    def rewards(self, sequences: List[List[int]]) -> List[float]:
        """The score at each sequence's last token, as training reads it (`models.reward.sequence_rewards`: one
        pooling for an adapter, a merged or full rm and a third-party classifier)."""
        return score_token_ids(self.model, sequences, self.tokenizer.pad_token_id, self.batch_size).tolist()

    def score(self, item, completions: List[str]) -> List[float]:
        return self.rewards([self.encode(item, c) for c in completions])


class JudgeScorer:
    """Every pair of completions judged in both orders (see the module docstring)."""

    def __init__(self, judge: Judge, name: str):
        self.judge, self.name = judge, name

    @staticmethod
    def question(item) -> str:
        """The prompt, after the earlier turns of a multi-turn conversation (the system prompt is not shown)."""
        if not item.history:
            return item.prompt
        turns = "".join(f"User: {u}\nAssistant: {a}\n" for u, a in item.history)
        return f"{turns}User: {item.prompt}"

    def score(self, item, completions: List[str]) -> List[float]:
        k = len(completions)
        won = [0.0] * k
        question = self.question(item)
        for i in range(k):
            for j in range(i + 1, k):
                first = self.judge.probabilities(question, completions[i], completions[j])
                second = self.judge.probabilities(question, completions[j], completions[i])
                won[i] += (first["A"] + second["B"]) / 2
                won[j] += (first["B"] + second["A"]) / 2
        return [w / (k - 1) for w in won]


def load_reward_scorer(path: str, template, *, batch_size: int = 16, dtype=None, device=None) -> RewardScorer:
    """--reward_model DIR: a `prefswift rm` run (its run dir, adapter/, final/ or merged dir: scored in the chat
    template it was trained with), or any full sequence-classification model dir with its tokenizer (scored in the
    policy's template, `template`)."""
    from transformers import AutoModelForSequenceClassification

    from ..arguments import load_args_json
    from ..arguments.algorithms import model_head
    from ..models.loader import load_tokenizer
    from ..models.reward import SEQUENCE_CLASSIFICATION, load_reward_model

    d = Path(path).expanduser()
    if not d.is_dir():
        raise ArgumentError(f"--reward_model {path}: no such directory")
    saved = load_args_json(d) or {}
    if (d / "adapter_config.json").is_file() or model_head(saved.get("command")) == SEQUENCE_CLASSIFICATION:
        model, tokenizer, rm_template = load_reward_model(d)
        if device is not None:
            model.to(device)
        return RewardScorer(model, tokenizer, rm_template, f"reward_model {d.resolve()}", batch_size)
    if not (d / "config.json").is_file():
        raise ArgumentError(f"--reward_model {path}: not a model dir (no config.json) nor a prefswift rm run")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(d), dtype=dtype or torch.float32)
    except (ValueError, OSError, KeyError) as e:
        raise ArgumentError(f"--reward_model {path}: cannot load it as a sequence-classification model "
                            f"({str(e).splitlines()[0][:200]})") from None
    if device is not None:
        model.to(device)
    return RewardScorer(model, load_tokenizer(d), template, f"reward_model {d.resolve()}", batch_size)


__all__ = ["Scorer", "RewardScorer", "JudgeScorer", "load_reward_scorer"]
