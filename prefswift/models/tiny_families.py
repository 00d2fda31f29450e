"""A tiny random model of any registered family's architecture, built from a transformers config (no download).

`build_family_model("gemma2", out_dir, chat_template=...)` writes a normal model directory: config.json of the
family's architecture (Gemma 2's soft-capping and sliding windows, Phi-3's fused qkv/gate_up, tied embeddings where
the family ties them, all read back from that config by transformers), a byte-level BPE tokenizer trained on
`tiny.CORPUS` that carries the family's special tokens, the chat template given (the official one, in tests) and
seeded random weights. Families whose architecture needs the repo's own Python code (`trust_remote_code`) cannot be
built without it and are refused.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional, Tuple

from prefswift.errors import ArgumentError
from prefswift.models.tiny import (LLAMA3_REGEX, MARKER_FILE, TinyModelSpec, _seeded_weights, _tokenizer_config,
                                   _write_json, build_tokenizer)

# small enough that a 2-step DPO run takes about a second on a CPU
DIMS = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            head_dim=16, max_position_embeddings=1024)


@dataclass(frozen=True)
class TinyArch:
    config_class: str                   # transformers config class
    extra: Tuple[Tuple[str, object], ...] = ()  # config fields beyond DIMS (the family's traits)


ARCHITECTURES: Dict[str, TinyArch] = {
    "LlamaForCausalLM": TinyArch("LlamaConfig", (("rope_theta", 500000.0),)),
    "Qwen2ForCausalLM": TinyArch("Qwen2Config", (("use_sliding_window", False),)),
    "Qwen3ForCausalLM": TinyArch("Qwen3Config", (("tie_word_embeddings", True),)),
    # soft-capped attention and final logits, sliding window on every other layer, tied embeddings
    "Gemma2ForCausalLM": TinyArch("Gemma2Config", (("sliding_window", 64), ("final_logit_softcapping", 30.0),
                                                   ("attn_logit_softcapping", 50.0), ("query_pre_attn_scalar", 16))),
    "Gemma3ForCausalLM": TinyArch("Gemma3TextConfig", (("sliding_window", 64), ("query_pre_attn_scalar", 16),
                                                       ("layer_types", ["sliding_attention", "full_attention"]))),
    "Phi3ForCausalLM": TinyArch("Phi3Config", ()),  # fused qkv_proj and gate_up_proj
    "MistralForCausalLM": TinyArch("MistralConfig", (("sliding_window", None),)),
    "Glm4ForCausalLM": TinyArch("Glm4Config", (("partial_rotary_factor", 0.5),)),  # fused gate_up_proj
    "Olmo2ForCausalLM": TinyArch("Olmo2Config", ()),
}

_LLAMA3 = ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
           ("<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>"))
_CHATML = (None, "<|im_end|>", "<|im_end|>", "<|endoftext|>", ("<|im_start|>",))
# family -> (bos, config eos, tokenizer eos, pad, other special tokens)
FAMILY_TOKENS: Dict[str, tuple] = {
    "llama3": _LLAMA3, "llama3.1": _LLAMA3, "llama3.2": _LLAMA3, "llama3.3": _LLAMA3,
    "qwen1.5": _CHATML, "qwen2": _CHATML, "qwen2.5": _CHATML, "qwen2.5-coder": _CHATML, "qwen2.5-math": _CHATML,
    "qwen3": _CHATML, "yi": ("<|startoftext|>", "<|im_end|>", "<|im_end|>", "<unk>", ("<|im_start|>",)),
    "yi1.5": ("<|startoftext|>", "<|im_end|>", "<|im_end|>", "<unk>", ("<|im_start|>",)),
    "smollm2": (None, "<|im_end|>", "<|im_end|>", "<|endoftext|>", ("<|im_start|>",)),
    "gemma2": ("<bos>", "<eos>", "<eos>", "<pad>", ("<start_of_turn>", "<end_of_turn>")),
    "gemma3": ("<bos>", "<eos>", "<end_of_turn>", "<pad>", ("<start_of_turn>",)),
    "phi3": ("<s>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>", ("<|system|>", "<|user|>", "<|assistant|>",
                                                                         "<|end|>")),
    "phi4": (None, "<|im_end|>", "<|im_end|>", "<|dummy_85|>", ("<|im_start|>", "<|im_sep|>", "<|endoftext|>")),
    "mistral": ("<s>", "</s>", "</s>", "</s>", ("[INST]", "[/INST]")),
    "deepseek-r1-distill": ("<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>",
                            "<\uff5cend\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>",
                            ("<\uff5cUser\uff5c>", "<\uff5cAssistant\uff5c>", "<think>", "</think>")),
    "glm4": (None, "<|endoftext|>", "<|endoftext|>", "<|endoftext|>", ("[gMASK]", "<sop>", "<|system|>", "<|user|>",
                                                                       "<|assistant|>")),
    "olmo2": (None, "<|endoftext|>", "<|endoftext|>", "<|pad|>", ("<|system|>", "<|user|>", "<|assistant|>")),
}
FAMILY_TOKENS["deepseek-r1-distill-llama"] = FAMILY_TOKENS["deepseek-r1-distill"]


def family_spec(family: str):
    """The registry's ModelSpec that stands for `family` (its first model type)."""
    from prefswift.registry.models import list_models

    for spec in list_models():
        if spec.family == family:
            return spec
    raise ArgumentError(f"unknown model family {family!r} — `prefswift list models` shows the families")


def build_family_model(family: str, out_dir: Path, chat_template: Optional[str] = None, seed: int = 7) -> Path:
    """Write a tiny random model of `family`'s architecture into out_dir (created; see the module docstring)."""
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, GenerationConfig

    spec = family_spec(family)
    if spec.trust_remote_code or spec.architecture not in ARCHITECTURES:
        raise ArgumentError(f"family {family}: its architecture {spec.architecture} needs the model repo's own code "
                            "(trust_remote_code); no tiny model can be built from transformers alone")
    bos, config_eos, eos, pad, extra = FAMILY_TOKENS[family]
    specials = tuple(dict.fromkeys(t for t in (bos, config_eos, eos, pad, *extra) if t))
    tiny = TinyModelSpec(name=f"tiny-{family}", model_type=spec.architecture, template=spec.template or "auto",
                         special_tokens=specials, bos_token=bos, config_bos_token=bos or config_eos, eos_token=eos,
                         pad_token=pad, generation_eos=tuple(dict.fromkeys((eos, config_eos))),
                         chat_template=chat_template or "", tokenizer_class="PreTrainedTokenizerFast",
                         pretokenize_regex=LLAMA3_REGEX, nfc=False, add_bos_token=False, seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(tiny)
    tok.save(str(out_dir / "tokenizer.json"))
    tok_config = _tokenizer_config(replace(tiny, model_type="family"), tok)
    if not chat_template:
        tok_config.pop("chat_template")
    _write_json(out_dir / "tokenizer_config.json", tok_config)

    arch = ARCHITECTURES[spec.architecture]
    ids = {t: tok.token_to_id(t) for t in specials}
    config = getattr(transformers, arch.config_class)(
        vocab_size=tok.get_vocab_size(with_added_tokens=True), bos_token_id=ids[bos or config_eos],
        eos_token_id=ids[config_eos], pad_token_id=ids[pad], **DIMS, **dict(arch.extra))
    config.architectures = [spec.architecture]
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = _seeded_weights(model, seed)
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    model.load_state_dict(state, strict=False)
    config.save_pretrained(str(out_dir))
    GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=[ids[t] for t in tiny.generation_eos],
                     pad_token_id=config.pad_token_id).save_pretrained(str(out_dir))
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out_dir / MARKER_FILE, {"name": tiny.name, "family": family, "seed": seed})
    return out_dir
