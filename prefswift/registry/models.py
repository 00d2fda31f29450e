"""Model registry: one declarative entry per model type (hub ids, template, LoRA targets, requirements)."""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..errors import ArgumentError, unknown_name

LLAMA_LIKE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelSpec:
    model_type: str
    ms_id: Optional[str]            # ModelScope id (the default hub)
    hf_id: Optional[str]            # Hugging Face id (USE_HF=1 / --hub hf)
    template: Optional[str]         # default chat template; None: the model's own chat template decides
    lora_target_modules: Tuple[str, ...] = LLAMA_LIKE_TARGETS  # what --lora_target_modules DEFAULT means
    requires: Tuple[str, ...] = ()  # pip requirements beyond the core ones
    support_flash_attn: bool = True
    builtin: bool = False           # built locally by prefswift.models.tiny (no hub)
    description: str = ""
    family: str = ""                # e.g. "llama3.1", "gemma2" (`prefswift list models --family`)
    architecture: str = ""          # transformers class named in config.json "architectures"
    size: str = ""                  # parameter count as the model name gives it: "8B", "270M"
    trust_remote_code: bool = False  # the model's own Python code from its repo runs (--trust_remote_code true)


_MODELS: Dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, *, overwrite: bool = False) -> ModelSpec:
    if spec.model_type in _MODELS and not overwrite:
        raise ArgumentError(f"model type {spec.model_type!r} is already registered (pass overwrite=True to replace)")
    _MODELS[spec.model_type] = spec
    return spec


def find_model_spec(model_type: str) -> Optional[ModelSpec]:
    """The registered spec of `model_type`, or None."""
    return _MODELS.get(model_type) or _MODELS.get(model_type.lower())


def get_model_spec(model_type: str) -> ModelSpec:
    spec = _MODELS.get(model_type) or _MODELS.get(model_type.lower())
    if spec is None:
        raise unknown_name("--model_type", model_type, _MODELS, "`prefswift list models` shows them all, or pass "
                           "--model_id_or_path DIR with --template NAME")
    return spec


def list_models() -> List[ModelSpec]:
    return list(_MODELS.values())


def default_lora_targets(config) -> Tuple[str, ...]:
    """What --lora_target_modules DEFAULT means for a model without a model type: the targets of the registered
    family whose architecture its config names (Phi-3's fused qkv_proj/gate_up_proj ...), else Llama's."""
    names = set(getattr(config, "architectures", None) or [])
    for spec in _MODELS.values():
        if spec.architecture in names and not spec.builtin:
            return spec.lora_target_modules
    return LLAMA_LIKE_TARGETS


def list_families() -> List[str]:
    return sorted({s.family for s in _MODELS.values() if s.family})


def _r(model_type, ms_id, hf_id, template, **kw):
    register_model(ModelSpec(model_type, ms_id, hf_id, template, **kw))


_LLAMA3 = dict(family="llama3", architecture="LlamaForCausalLM", size="8B")
_MISTRAL = dict(family="mistral", architecture="MistralForCausalLM", size="7B")


_r("tiny-llama3", None, None, "llama3", builtin=True, support_flash_attn=True, family="tiny",
   architecture="LlamaForCausalLM", size="0.2M",
   description="built-in 2-layer Llama (random weights, Llama 3 tokens + chat template), for tests and the demo")
_r("tiny-qwen", None, None, "qwen", builtin=True, family="tiny", architecture="Qwen2ForCausalLM", size="0.2M",
   description="built-in 2-layer Qwen2 (random weights, ChatML), for tests")
_r("yi-6b-chat", "01ai/Yi-6B-Chat", "01-ai/Yi-6B-Chat", "yi", family="yi", architecture="LlamaForCausalLM", size="6B")
_r("yi-6b", "01ai/Yi-6B", "01-ai/Yi-6B", "default", family="yi", architecture="LlamaForCausalLM", size="6B")
_r("llama3-8b", "LLM-Research/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B", "default",
   requires=("transformers>=4.40",), **_LLAMA3)
_r("llama3-8b-instruct", "LLM-Research/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-8B-Instruct", "llama3",
   requires=("transformers>=4.40",), **_LLAMA3)
_r("qwen1.5-7b-chat", "qwen/Qwen1.5-7B-Chat", "Qwen/Qwen1.5-7B-Chat", "qwen", requires=("transformers>=4.37",),
   family="qwen1.5", architecture="Qwen2ForCausalLM", size="7B")
_r("qwen2-7b-instruct", "qwen/Qwen2-7B-Instruct", "Qwen/Qwen2-7B-Instruct", "qwen", requires=("transformers>=4.37",),
   family="qwen2", architecture="Qwen2ForCausalLM", size="7B")
for _size in ("0.5b", "1.5b", "7b"):
    _name = f"Qwen2.5-{_size.upper()}-Instruct"
    _r(f"qwen2.5-{_size}-instruct", f"qwen/{_name}", f"Qwen/{_name}", "qwen2_5", requires=("transformers>=4.37",),
       family="qwen2.5", architecture="Qwen2ForCausalLM", size=_size.upper())
_r("qwen3-4b-base", "Qwen/Qwen3-4B-Base", "Qwen/Qwen3-4B-Base", "qwen3", requires=("transformers>=4.51",),
   family="qwen3", architecture="Qwen3ForCausalLM", size="4B")
_r("qwen3-8b", "Qwen/Qwen3-8B", "Qwen/Qwen3-8B", "qwen3", requires=("transformers>=4.51",), family="qwen3",
   architecture="Qwen3ForCausalLM", size="8B")
_r("mistral-7b", "AI-ModelScope/Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", "default",
   requires=("transformers>=4.34",), **_MISTRAL)
_r("mistral-7b-instruct", "AI-ModelScope/Mistral-7B-Instruct-v0.2", "mistralai/Mistral-7B-Instruct-v0.2", "mistral",
   requires=("transformers>=4.34",), **_MISTRAL)
_r("llama3-70b-instruct", "LLM-Research/Meta-Llama-3-70B-Instruct", "meta-llama/Meta-Llama-3-70B-Instruct", "llama3",
   requires=("transformers>=4.40",), **dict(_LLAMA3, size="70B"))


def _register_catalog() -> None:
    """The families of `model_catalog` (hub ids read from ms-swift's and LLaMA-Factory's registries)."""
    from .model_catalog import FAMILIES

    for fam in FAMILIES:
        for model_type, size, ms_id, hf_id in fam.models:
            _r(model_type, ms_id, hf_id, fam.templates.get(model_type, fam.template),
               lora_target_modules=fam.lora_target_modules, requires=fam.requires, family=fam.name,
               architecture=fam.architectures.get(model_type, fam.architecture), size=size, trust_remote_code=fam.trust_remote_code,
               description=fam.description)


_register_catalog()
