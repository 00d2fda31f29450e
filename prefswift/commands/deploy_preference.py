"""POST /v1/preference of `prefswift deploy`: one prompt and two responses scored with the numbers `prefswift eval`
reports for a pair — the policy's and the reference's summed response log-probs and the run's implicit rewards
(DPO: beta * (log pi - log pi_ref)), whose difference is the reward margin.

It is eval's own code on the served weights: `commands.eval.run_objective` (the run's objective, from args.json),
`models.reference.resolve_reference` (the run's reference: the base with the adapter disabled, for LoRA),
`commands.eval.reference_logps` and `evaluate.pair_logps` (the training forward). It runs on the engine's thread,
between two generation steps (`Engine.run_exclusive`).

Body: {"model": NAME, "prompt": TEXT or "messages": [...] (ending with the user turn), "chosen": TEXT,
"rejected": TEXT}.
"""
from contextlib import contextmanager
from typing import Dict

from ..arguments.fields import LOGPROB_CHUNK_SIZE, ModelArguments
from ..data.example import PreferenceExample
from ..evaluate import pair_logps
from ..models.checkpoint import LoadedModel
from ..models.reference import resolve_reference
from ..generation.engine import BASE_ADAPTER
from ..generation.prompts import chat_to_turns
from ..generation.types import EngineError
from .eval import reference_logps, run_objective

FIELDS = {"model", "prompt", "messages", "chosen", "rejected"}


def _example(body: Dict, default_system) -> PreferenceExample:
    unknown = set(body) - FIELDS
    if unknown:
        raise EngineError(400, f"unknown fields {sorted(unknown)}; send model, prompt (or messages), chosen, rejected",
                          param=sorted(unknown)[0])
    for key in ("chosen", "rejected"):
        if not isinstance(body.get(key), str):
            raise EngineError(400, f"{key} must be the text of a response", param=key)
    if ("prompt" in body) == ("messages" in body):
        raise EngineError(400, "send either prompt (a text) or messages (a chat ending with the user turn)",
                          param="prompt")
    if "prompt" in body:
        if not isinstance(body["prompt"], str):
            raise EngineError(400, "prompt must be a text", param="prompt")
        system, history, query = None, [], body["prompt"]
    else:
        system, history, query = chat_to_turns(body["messages"])
    return PreferenceExample(query, body["chosen"], body["rejected"], system=default_system if system is None
                             else system, history=history)


@contextmanager
def _active(model, adapter):
    """The served model's weights active for a plain forward (generation picks adapters per row instead)."""
    if adapter is None:
        yield
    elif adapter == BASE_ADAPTER:
        with model.disable_adapter():
            yield
    else:
        before = model.active_adapter
        model.set_adapter(adapter)
        try:
            yield
        finally:
            model.set_adapter(before)


class PairScorer:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._runs = {}

    def _run(self, served):
        """(objective, reference) of the served model's run, worked out once per model."""
        if served.name not in self._runs:
            objective = run_objective(served.source, ModelArguments())
            reference = resolve_reference(served.source, ModelArguments()) \
                if objective is not None and objective.needs_reference else None
            self._runs[served.name] = objective, reference
        return self._runs[served.name]

    def __call__(self, served, body: Dict, model) -> Dict:
        ex = _example(body, served.system)
        rows = [served.template.encode_example(self.tokenizer, ex)]
        objective, reference = self._run(served)
        reduce = objective.sequence_logps if objective is not None else None
        pad = self.tokenizer.pad_token_id
        loaded = LoadedModel(model, self.tokenizer, served.template, served.source)
        with _active(model, served.adapter):
            ref = reference_logps(reference, loaded, rows, LOGPROB_CHUNK_SIZE, reduce) if reference else None
            pair = pair_logps(model, rows, pad, chunk_size=LOGPROB_CHUNK_SIZE, reference=ref, reduce=reduce,
                              rewards=objective.rewards if objective is not None else None,
                              nll_all=bool(objective is not None and objective.nll_all))[0]
        out = {"policy": {k: pair[k] for k in ("chosen_logp", "rejected_logp", "chosen_tokens", "rejected_tokens")},
               "reference": None, "rewards": None,
               "objective": objective.describe() if objective is not None else None,
               "reference_model": reference.note if reference is not None else None}
        if "ref_chosen_logp" in pair:
            out["reference"] = {"chosen_logp": pair["ref_chosen_logp"], "rejected_logp": pair["ref_rejected_logp"]}
        if "reward_chosen" in pair:
            out["rewards"] = {"chosen": pair["reward_chosen"], "rejected": pair["reward_rejected"],
                              "margin": pair["reward_chosen"] - pair["reward_rejected"]}
        return out


__all__ = ["PairScorer"]
