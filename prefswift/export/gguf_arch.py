"""Which Hugging Face model families a GGUF file can hold, and how their weights and config map into it.

Keyed on the checkpoint's own `config.json` (`model_type`, falling back to `architectures`), so it works for any
registered model type and for a plain model directory alike. Each family names llama.cpp's architecture (the
`general.architecture` key and the `<arch>.*` metadata prefix), the value transforms llama.cpp's reader expects,
and the config fields written as metadata. Tensor names come from the `gguf` package's own `TensorNameMap`.

The transforms, each one the inverse of what transformers' GGUF loader undoes when it reads the file back:
  * llama / mistral: the rows of q_proj and k_proj are reordered from Hugging Face's "rotate half" rotary layout
    into the interleaved pairs llama.cpp's rope kernel uses (`rotary_rows_interleaved`).
  * gemma2: llama.cpp stores RMSNorm scales as (1 + w) (Gemma computes x * (1 + w)), so 1 is added.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from ..errors import ArgumentError


@dataclass(frozen=True)
class GGUFFamily:
    arch: str                         # llama.cpp's architecture name (gguf.MODEL_ARCH_NAMES value)
    rotary_interleave: bool = False   # q/k rows reordered for llama.cpp's rope (llama arch)
    norm_plus_one: bool = False       # RMSNorm weights written as 1 + w (gemma)
    head_dim_keys: bool = False       # write attention.key_length / value_length (gemma2)
    rope_dim: bool = True             # write rope.dimension_count
    name_hint: str = ""               # put into general.name (transformers tells mistral from llama by it)


# model_type -> family. llama.cpp writes Mistral (and Yi, a llama) under the llama architecture.
FAMILIES: Dict[str, GGUFFamily] = {
    "llama": GGUFFamily("llama", rotary_interleave=True),
    "mistral": GGUFFamily("llama", rotary_interleave=True, name_hint="mistral"),
    "qwen2": GGUFFamily("qwen2", rope_dim=False),
    "qwen3": GGUFFamily("qwen3", head_dim_keys=True),
    "gemma2": GGUFFamily("gemma2", norm_plus_one=True, head_dim_keys=True, rope_dim=False),
    "phi3": GGUFFamily("phi3"),
}
# Architectures (config.json) of those families, for a config without model_type.
ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                 "Qwen3ForCausalLM": "qwen3", "Gemma2ForCausalLM": "gemma2", "Phi3ForCausalLM": "phi3"}


def family_of(config: dict, where: str = "the model") -> Tuple[str, GGUFFamily]:
    """(model_type, family) of a config.json dict; one-line refusal for a family this export cannot map."""
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        for arch in config.get("architectures") or ():
            if arch in ARCHITECTURES:
                model_type = ARCHITECTURES[arch]
                break
    if model_type not in FAMILIES:
        raise ArgumentError(f"{where}: model family {config.get('model_type')!r} cannot be exported to GGUF by "
                            f"prefswift (supported: {', '.join(FAMILIES)}); export safetensors with --quant or "
                            "merge-lora and convert with llama.cpp's convert_hf_to_gguf.py")
    return model_type, FAMILIES[model_type]


def _rope_theta(config: dict) -> Optional[float]:
    params = config.get("rope_parameters") or {}
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return theta if theta is not None else config.get("rope_theta")


def head_dim(config: dict) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def rotary_rows_interleaved(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder a q/k projection's output rows, per head, from [x_0..x_{d/2-1}, y_0..y_{d/2-1}] (the halves
    Hugging Face's rotate_half pairs up) to [x_0, y_0, x_1, y_1, ...] (the adjacent pairs llama.cpp rotates)."""
    rows = weight.shape[0]
    half = rows // n_heads // 2
    return weight.reshape(n_heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def tensor_transform(family: GGUFFamily, config: dict) -> Callable[[str, np.ndarray], np.ndarray]:
    """fn(hf_name, array) -> the array as llama.cpp stores it."""
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_heads

    def transform(name: str, data: np.ndarray) -> np.ndarray:
        if family.rotary_interleave and name.endswith(("q_proj.weight", "q_proj.bias")):
            return rotary_rows_interleaved(data, n_heads)
        if family.rotary_interleave and name.endswith(("k_proj.weight", "k_proj.bias")):
            return rotary_rows_interleaved(data, n_kv)
        if family.norm_plus_one and name.endswith("norm.weight"):
            return data + 1
        return data

    return transform


def write_hparams(writer, family: GGUFFamily, config: dict) -> None:
    """The `<arch>.*` metadata transformers and llama.cpp read the model's shape from."""
    writer.add_context_length(int(config.get("max_position_embeddings") or 4096))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps") or 1e-6))
    writer.add_vocab_size(int(config["vocab_size"]))
    theta = _rope_theta(config)
    if theta is not None:
        writer.add_rope_freq_base(float(theta))
    if family.rope_dim:
        writer.add_rope_dimension_count(head_dim(config))
    if family.head_dim_keys:
        writer.add_key_length(head_dim(config))
        writer.add_value_length(head_dim(config))
    if config.get("sliding_window") and family.arch == "gemma2":
        writer.add_sliding_window(int(config["sliding_window"]))
    for key, add in (("attn_logit_softcapping", "add_attn_logit_softcapping"),
                     ("final_logit_softcapping", "add_final_logit_softcapping")):
        if config.get(key) is not None and family.arch == "gemma2":
            getattr(writer, add)(float(config[key]))


__all__ = ["GGUFFamily", "FAMILIES", "family_of", "tensor_transform", "write_hparams", "rotary_rows_interleaved"]
