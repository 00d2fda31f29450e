"""A merged causal LM (+ its tokenizer and training template) as one GGUF file.

Everything that can refuse does so before the file is opened: the family (`gguf_arch.family_of`), the tokenizer
(`gguf_tokenizer.gguf_vocab`), a weight with no GGUF name, a weight that is not finite.
"""
from pathlib import Path
from typing import Dict, List

import numpy as np

from ..errors import ArgumentError
from ..templates import Template
from ..templates.jinja import runtime_jinja
from ..templates.ollama import starts_with_bos
from .gguf_arch import family_of, tensor_transform, write_hparams
from .gguf_file import GGUFOut, file_type, map_state_dict
from .gguf_tokenizer import gguf_vocab, write_vocab

GENERATOR = "prefswift"


def float_state(model) -> Dict[str, np.ndarray]:
    """The model's tensors as float32 numpy arrays (tied weights once: the embedding)."""
    import torch

    out = {}
    seen = {}
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape))
        if key in seen and tensor.data_ptr() != 0:
            continue
        seen[key] = name
        out[name] = tensor.detach().to(torch.float32).cpu().numpy()
    return out


def check_finite(state: Dict[str, np.ndarray], where: str) -> None:
    for name, data in state.items():
        if not np.isfinite(data).all():
            raise ArgumentError(f"{where}: weight {name} holds nan/inf; the model is broken (a diverged run or a bad "
                                "merge) and is not exported — use an earlier checkpoint")


def plan_gguf(model, tokenizer, config: dict, eos_ids: List[int], where: str):
    """Everything to write, checked: (family, mapped tensors, vocab)."""
    model_type, family = family_of(config, where)
    vocab = gguf_vocab(tokenizer, int(config["vocab_size"]), where)
    state = float_state(model)
    check_finite(state, where)
    tied = bool(config.get("tie_word_embeddings"))
    mapped, unmapped = map_state_dict(state, family.arch, int(config["num_hidden_layers"]),
                                      tensor_transform(family, config),
                                      skip=lambda n: tied and n == "lm_head.weight"
                                      or n.endswith("rotary_emb.inv_freq"))
    if unmapped:
        raise ArgumentError(f"{where}: {len(unmapped)} weights have no GGUF name for {model_type} (first: "
                            f"{unmapped[0]}); prefswift cannot export this variant")
    return model_type, family, mapped, vocab


def write_gguf(path: Path, model, tokenizer, template: Template, config: dict, outtype: str, eos_ids: List[int],
               name: str, where: str = "the model") -> Dict[str, int]:
    """Write `path`; returns {ggml type name: tensor count}."""
    model_type, family, mapped, vocab = plan_gguf(model, tokenizer, config, eos_ids, where)
    out = GGUFOut(path, family.arch)
    w = out.writer
    w.add_name(f"{family.name_hint} {name}".strip() if family.name_hint and family.name_hint not in name else name)
    w.add_string("general.generator", GENERATOR)
    w.add_file_type(file_type(outtype))
    w.add_quantization_version(2)
    write_hparams(w, family, config)
    vocab.add_bos = starts_with_bos(template, tokenizer)  # llama.cpp adds BOS exactly when training's prompts had it
    write_vocab(w, tokenizer, vocab, eos_ids)
    w.add_chat_template(runtime_jinja(template, tokenizer))
    w.add_string("prefswift.template", template.name)
    for gguf_name, _, data in mapped:
        out.add(gguf_name, data, outtype)
    out.finish()
    counts: Dict[str, int] = {}
    for t in out.types.values():
        counts[t] = counts.get(t, 0) + 1
    return counts


__all__ = ["write_gguf", "plan_gguf", "float_state", "check_finite", "GENERATOR"]
