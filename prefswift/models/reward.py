"""Reward models (`prefswift rm`): the scalar score of a sequence, and loading a saved reward model for other code.

One pooling for every path (training, `eval` of a reward model, `sample --reward_model`, adapters, merged and full
models): the reward of a sequence is the score head's output at its last real token, the rightmost position whose
attention mask is 1 — the last token of the sequence as it would be scored alone, unpadded (`sequence_rewards`). Rows
may be right- or left-padded (left-padded rows get position ids counted from their first real token).

transformers' `*ForSequenceClassification` pools at the rightmost token that is not `config.pad_token_id`: with a
tokenizer whose pad is its EOS (Llama 3, Mistral) a sequence ending in EOS would be read one token early, and a merged
model and its adapter could be read at different positions. So prefswift reads the head's per-position output itself
(a forward hook on the `score` module, the model's own forward otherwise unchanged) and picks the last real token by
the attention mask. A classifier without a `score` module (an encoder with its own pooling, e.g. a CLS head) is run
one unpadded sequence at a time and its own pooled output is taken.

A run of `prefswift rm` saves either a LoRA adapter (`<run>/adapter`, with args.json; the score head is saved whole
in it, modules_to_save) or a full model (`<run>/final`, or a `prefswift merge-lora` result): `load_reward_model` takes
any of them, or the run dir.
"""
from pathlib import Path
from typing import Optional, Tuple, Union

import torch

SEQUENCE_CLASSIFICATION = "sequence_classification"


def score_head(model) -> Optional[torch.nn.Module]:
    """The per-position score head (`score`) of a sequence classifier, through DDP/DeepSpeed (`.module`), PEFT
    (`get_base_model`) and torch.compile wrappers; None for another head layout."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        head = getattr(model, "score", None)
        if isinstance(head, torch.nn.Module):
            return head
        for unwrap in ("module", "_orig_mod"):
            inner = getattr(model, unwrap, None)
            if isinstance(inner, torch.nn.Module):
                model = inner
                break
        else:
            if hasattr(model, "get_base_model"):
                model = model.get_base_model()
    return None


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """[N] index of each row's last real token: the rightmost position whose mask is 1 (right or left padding)."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * (attention_mask != 0)).argmax(-1)


def sequence_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[N] rewards of N padded sequences (differentiable): the score at each row's last real token (module doc)."""
    head = score_head(model)
    if head is None:
        return _one_at_a_time(model, input_ids, attention_mask)
    kwargs = {}
    if bool((attention_mask[:, 0] == 0).any()):  # left padding: each row's positions start at its first real token
        kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    captured = []
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kwargs)
    finally:
        hook.remove()
    scores = captured[-1]  # [N, T, 1]: the head applied at every position
    rows = torch.arange(input_ids.shape[0], device=scores.device)
    return scores[rows, last_token_index(attention_mask).to(scores.device), 0]


def _one_at_a_time(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    out = []
    for ids, mask in zip(input_ids, attention_mask):
        one = ids[mask != 0].unsqueeze(0)
        out.append(model(input_ids=one, attention_mask=torch.ones_like(one)).logits[0, 0])
    return torch.stack(out)


@torch.no_grad()
def score_token_ids(model, sequences, pad_token_id: int, batch_size: int = 8) -> torch.Tensor:
    """Rewards ([N], float32, on the CPU) of token-id lists (prompt + response, as the template encodes them),
    right-padded into batches of `batch_size`."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(sequences), batch_size):
        chunk = [list(s) for s in sequences[start:start + batch_size]]
        length = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), length), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), length), dtype=torch.long)
        for i, s in enumerate(chunk):
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, :len(s)] = 1
        out.append(sequence_rewards(model, ids.to(device), mask.to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def load_reward_model(path: Union[str, Path], *, device_map="default") -> Tuple[object, object, object]:
    """(model, tokenizer, template) of a saved reward model: a `prefswift rm` run dir, its adapter/ or final/ dir, or
    a merged dir. The model is in eval mode (a PeftModel for an adapter); its score for a conversation is
    `score_token_ids(model, [template-encoded prompt + response ids], tokenizer.pad_token_id)`.
    Raises ArgumentError for a directory that is not a reward model."""
    from ..arguments import RunArgs
    from ..arguments.fields import InferArguments, ModelArguments
    from ..errors import ArgumentError
    from .checkpoint import load_for_inference, resolve_source

    source = resolve_source(RunArgs(command="eval", model=ModelArguments(), infer=InferArguments(ckpt_dir=str(path)),
                                    explicit=frozenset()))
    if source.head != SEQUENCE_CLASSIFICATION:
        raise ArgumentError(f"{path}: not a reward model (its args.json says it was trained with "
                            f"{source.saved.get('command') or 'no prefswift command'}; train one with prefswift rm)")
    loaded = load_for_inference(source, device_map=device_map)
    return loaded.model, loaded.tokenizer, loaded.template


__all__ = ["sequence_rewards", "score_token_ids", "score_head", "last_token_index", "load_reward_model",
           "SEQUENCE_CLASSIFICATION"]
