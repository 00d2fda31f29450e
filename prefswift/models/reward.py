"""Reward models (`prefswift rm`): the scalar score of a sequence, and loading a saved reward model for other code.

The reward of a sequence is the score head's output at its last non-padding token, as transformers'
`*ForSequenceClassification` reads it (the rightmost token that is not `config.pad_token_id`; rows are right-padded
with that id by `prefswift.scoring.collators.PairCollator`). A run of `prefswift rm` saves either a LoRA adapter
(`<run>/adapter`, with args.json; the score head is saved whole in it, modules_to_save) or a full model
(`<run>/final`, or a `prefswift merge-lora` result): `load_reward_model` takes any of them, or the run dir.
"""
from pathlib import Path
from typing import Tuple, Union

import torch

SEQUENCE_CLASSIFICATION = "sequence_classification"


def sequence_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[N] rewards of N right-padded sequences (differentiable)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return out.logits.squeeze(-1)


@torch.no_grad()
def score_token_ids(model, sequences, pad_token_id: int, batch_size: int = 8) -> torch.Tensor:
    """Rewards ([N], float32, on the CPU) of token-id lists (prompt + response, as the template encodes them)."""
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


__all__ = ["sequence_rewards", "score_token_ids", "load_reward_model", "SEQUENCE_CLASSIFICATION"]
