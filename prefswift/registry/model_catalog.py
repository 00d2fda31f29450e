"""The model families people fine-tune, as data: one `Family` (architecture, template, LoRA targets, remote code) and
its model types (size, ModelScope id, Hugging Face id).

Where the ids come from: every (ModelScope, Hugging Face) pair below was read from ms-swift's model registration
source (swift/model/models/*.py, commit 3602360a5) or LLaMA-Factory's (src/llamafactory/extras/constants.py, commit
ff6d4d12e); SmolLM2 from LLaMA-Factory (same id on both hubs there). OLMo 2 is in neither: its Hugging Face ids were
read from public repositories that use them, and it has no ModelScope id here (USE_HF=1 / --hub hf).

template None = the model's own chat template decides: the built-in that renders it identically, else `auto`
(`prefswift.templates.detect`). A name is given only where a fixture of that model's official jinja checks it.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PHI3_FUSED = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")


@dataclass(frozen=True)
class Family:
    name: str
    architecture: str                      # config.json "architectures"[0]
    template: Optional[str]                # None: the model's own chat template decides
    models: List[Tuple[str, str, Optional[str], Optional[str]]]  # (model_type, size, ms_id, hf_id)
    lora_target_modules: Tuple[str, ...] = LLAMA_LIKE
    trust_remote_code: bool = False
    requires: Tuple[str, ...] = ()
    templates: dict = field(default_factory=dict)  # model_type -> template, where one differs from the family's
    architectures: dict = field(default_factory=dict)  # model_type -> architecture, where one differs
    description: str = ""


def _qwen(prefix: str, sizes, suffix: str = "-Instruct", type_suffix: str = "-instruct"):
    return [(f"{prefix.lower()}-{s.lower()}{type_suffix}", s.upper(), f"Qwen/{prefix}-{s}{suffix}",
             f"Qwen/{prefix}-{s}{suffix}") for s in sizes]


FAMILIES: List[Family] = [
    Family("llama3.1", "LlamaForCausalLM", "llama3_1", [
        ("llama3.1-8b-instruct", "8B", "LLM-Research/Meta-Llama-3.1-8B-Instruct",
         "meta-llama/Meta-Llama-3.1-8B-Instruct"),
        ("llama3.1-70b-instruct", "70B", "LLM-Research/Meta-Llama-3.1-70B-Instruct",
         "meta-llama/Meta-Llama-3.1-70B-Instruct"),
        ("llama3.1-405b-instruct", "405B", "LLM-Research/Meta-Llama-3.1-405B-Instruct",
         "meta-llama/Meta-Llama-3.1-405B-Instruct"),
        ("llama3.1-8b", "8B", "LLM-Research/Meta-Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B"),
    ], requires=("transformers>=4.43",), templates={"llama3.1-8b": "default"},
        description="Llama 3.1: the Llama 3 format plus a system header with the knowledge-cutoff date"),
    Family("llama3.2", "LlamaForCausalLM", None, [
        ("llama3.2-1b-instruct", "1B", "LLM-Research/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-1B-Instruct"),
        ("llama3.2-3b-instruct", "3B", "LLM-Research/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"),
        ("llama3.2-1b", "1B", "LLM-Research/Llama-3.2-1B", "meta-llama/Llama-3.2-1B"),
        ("llama3.2-3b", "3B", "LLM-Research/Llama-3.2-3B", "meta-llama/Llama-3.2-3B"),
    ], requires=("transformers>=4.45",), templates={"llama3.2-1b": "default", "llama3.2-3b": "default"},
        description="Llama 3.2 text models; the chat template dates the system header with today's date (auto)"),
    Family("llama3.3", "LlamaForCausalLM", None, [
        ("llama3.3-70b-instruct", "70B", "LLM-Research/Llama-3.3-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct"),
    ], requires=("transformers>=4.45",)),
    Family("qwen2.5", "Qwen2ForCausalLM", "qwen2_5",
           _qwen("Qwen2.5", ("3B", "14B", "32B", "72B")) +
           [(f"qwen2.5-{s.lower()}", s, f"Qwen/Qwen2.5-{s}", f"Qwen/Qwen2.5-{s}") for s in ("0.5B", "1.5B", "7B")],
           requires=("transformers>=4.37",),
           templates={f"qwen2.5-{s}": "default" for s in ("0.5b", "1.5b", "7b")},
           description="Qwen2.5 (0.5B, 1.5B and 7B Instruct are registered with the Qwen1.5/2 types)"),
    Family("qwen2.5-coder", "Qwen2ForCausalLM", None,
           _qwen("Qwen2.5-Coder", ("0.5B", "1.5B", "3B", "7B", "14B", "32B")), requires=("transformers>=4.37",)),
    Family("qwen2.5-math", "Qwen2ForCausalLM", None,
           _qwen("Qwen2.5-Math", ("1.5B", "7B", "72B")), requires=("transformers>=4.37",)),
    Family("qwen3", "Qwen3ForCausalLM", "qwen3",
           [(f"qwen3-{s.lower()}", s, f"Qwen/Qwen3-{s}", f"Qwen/Qwen3-{s}")
            for s in ("0.6B", "1.7B", "4B", "14B", "32B")]
           + [(f"qwen3-{s.lower()}-thinking", s, f"Qwen/Qwen3-{s}", f"Qwen/Qwen3-{s}")
              for s in ("0.6B", "1.7B", "4B", "8B", "14B", "32B")],
           requires=("transformers>=4.51",),
           templates={f"qwen3-{s}-thinking": "auto" for s in ("0.6b", "1.7b", "4b", "8b", "14b", "32b")},
           description="Qwen3: the plain type trains non-thinking answers (template qwen3); -thinking renders with "
                       "the model's own template in thinking mode (auto)"),
    Family("gemma2", "Gemma2ForCausalLM", "gemma", [
        ("gemma2-2b-it", "2B", "LLM-Research/gemma-2-2b-it", "google/gemma-2-2b-it"),
        ("gemma2-9b-it", "9B", "LLM-Research/gemma-2-9b-it", "google/gemma-2-9b-it"),
        ("gemma2-27b-it", "27B", "LLM-Research/gemma-2-27b-it", "google/gemma-2-27b-it"),
    ], requires=("transformers>=4.42",),
        description="Gemma 2 it: logit soft-capping, alternating sliding-window layers, tied embeddings"),
    Family("gemma3", "Gemma3ForCausalLM", "gemma", [
        ("gemma3-270m-it", "270M", "google/gemma-3-270m-it", "google/gemma-3-270m-it"),
        ("gemma3-1b-it", "1B", "LLM-Research/gemma-3-1b-it", "google/gemma-3-1b-it"),
        ("gemma3-4b-it", "4B", "LLM-Research/gemma-3-4b-it", "google/gemma-3-4b-it"),
        ("gemma3-12b-it", "12B", "LLM-Research/gemma-3-12b-it", "google/gemma-3-12b-it"),
        ("gemma3-27b-it", "27B", "LLM-Research/gemma-3-27b-it", "google/gemma-3-27b-it"),
    ], requires=("transformers>=4.50",),
        architectures={f"gemma3-{s}-it": "Gemma3ForConditionalGeneration" for s in ("4b", "12b", "27b")},
        description="Gemma 3 it (4B and up ship a vision tower too: Gemma3ForConditionalGeneration)"),
    Family("phi3", "Phi3ForCausalLM", None, [
        ("phi3-mini-4k-instruct", "3.8B", "LLM-Research/Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct"),
        ("phi3-mini-128k-instruct", "3.8B", "LLM-Research/Phi-3-mini-128k-instruct",
         "microsoft/Phi-3-mini-128k-instruct"),
        ("phi3-medium-4k-instruct", "14B", "LLM-Research/Phi-3-medium-4k-instruct",
         "microsoft/Phi-3-medium-4k-instruct"),
        ("phi3-medium-128k-instruct", "14B", "LLM-Research/Phi-3-medium-128k-instruct",
         "microsoft/Phi-3-medium-128k-instruct"),
        ("phi3.5-mini-instruct", "3.8B", "LLM-Research/Phi-3.5-mini-instruct", "microsoft/Phi-3.5-mini-instruct"),
    ], lora_target_modules=PHI3_FUSED, requires=("transformers>=4.41",),
        templates={"phi3-mini-4k-instruct": "phi3", "phi3.5-mini-instruct": "phi3"},
        description="Phi-3 / 3.5: fused qkv_proj and gate_up_proj"),
    Family("phi4", "Phi3ForCausalLM", None, [
        ("phi4", "14B", "LLM-Research/phi-4", "microsoft/phi-4"),
        ("phi4-mini-instruct", "3.8B", "LLM-Research/Phi-4-mini-instruct", "microsoft/Phi-4-mini-instruct"),
    ], lora_target_modules=PHI3_FUSED, requires=("transformers>=4.49",)),
    Family("mistral", "MistralForCausalLM", None, [
        ("mistral-7b-instruct-v0.3", "7B", "LLM-Research/Mistral-7B-Instruct-v0.3",
         "mistralai/Mistral-7B-Instruct-v0.3"),
        ("mistral-nemo-instruct-2407", "12B", "AI-ModelScope/Mistral-Nemo-Instruct-2407",
         "mistralai/Mistral-Nemo-Instruct-2407"),
        ("mistral-small-instruct-2409", "22B", "AI-ModelScope/Mistral-Small-Instruct-2409",
         "mistralai/Mistral-Small-Instruct-2409"),
        ("mistral-small-24b-instruct-2501", "24B", "mistralai/Mistral-Small-24B-Instruct-2501",
         "mistralai/Mistral-Small-24B-Instruct-2501"),
    ], requires=("transformers>=4.42",), description="Mistral 7B v0.3, Nemo, Small"),
    Family("deepseek-r1-distill", "Qwen2ForCausalLM", "deepseek_r1", [
        ("deepseek-r1-distill-qwen-1.5b", "1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
         "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"),
        ("deepseek-r1-distill-qwen-7b", "7B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
         "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
        ("deepseek-r1-distill-qwen-14b", "14B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
         "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"),
        ("deepseek-r1-distill-qwen-32b", "32B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
         "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
    ], requires=("transformers>=4.37",),
        description="DeepSeek-R1 distilled into Qwen2.5: the answer is trained after the prompt's '<think>\\n'"),
    Family("deepseek-r1-distill-llama", "LlamaForCausalLM", "deepseek_r1", [
        ("deepseek-r1-distill-llama-8b", "8B", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
         "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"),
        ("deepseek-r1-distill-llama-70b", "70B", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
         "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"),
    ], requires=("transformers>=4.43",)),
    Family("glm4", "Glm4ForCausalLM", None, [
        ("glm4-9b-0414", "9B", "ZhipuAI/GLM-4-9B-0414", "zai-org/GLM-4-9B-0414"),
    ], lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"),
        requires=("transformers>=4.51",), description="GLM-4-0414: native transformers, fused gate_up_proj"),
    Family("glm4-chat", "ChatGLMModel", None, [
        ("glm4-9b-chat", "9B", "ZhipuAI/glm-4-9b-chat", "zai-org/glm-4-9b-chat"),
        ("glm4-9b-chat-1m", "9B", "ZhipuAI/glm-4-9b-chat-1m", "zai-org/glm-4-9b-chat-1m"),
    ], lora_target_modules=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"), trust_remote_code=True,
        description="GLM-4-9B-chat: remote code (ChatGLM), fused query_key_value"),
    Family("internlm2.5", "InternLM2ForCausalLM", None, [
        ("internlm2.5-1.8b-chat", "1.8B", "Shanghai_AI_Laboratory/internlm2_5-1_8b-chat",
         "internlm/internlm2_5-1_8b-chat"),
        ("internlm2.5-7b-chat", "7B", "Shanghai_AI_Laboratory/internlm2_5-7b-chat", "internlm/internlm2_5-7b-chat"),
        ("internlm2.5-20b-chat", "20B", "Shanghai_AI_Laboratory/internlm2_5-20b-chat", "internlm/internlm2_5-20b-chat"),
    ], lora_target_modules=("wqkv", "wo", "w1", "w2", "w3"), trust_remote_code=True,
        description="InternLM 2.5: remote code, fused wqkv"),
    Family("yi1.5", "LlamaForCausalLM", None, [
        ("yi1.5-6b-chat", "6B", "01ai/Yi-1.5-6B-Chat", "01-ai/Yi-1.5-6B-Chat"),
        ("yi1.5-9b-chat", "9B", "01ai/Yi-1.5-9B-Chat", "01-ai/Yi-1.5-9B-Chat"),
        ("yi1.5-34b-chat", "34B", "01ai/Yi-1.5-34B-Chat", "01-ai/Yi-1.5-34B-Chat"),
        ("yi1.5-9b-chat-16k", "9B", "01ai/Yi-1.5-9B-Chat-16K", "01-ai/Yi-1.5-9B-Chat-16K"),
    ]),
    Family("baichuan2", "BaichuanForCausalLM", None, [
        ("baichuan2-7b-chat", "7B", "baichuan-inc/Baichuan2-7B-Chat", "baichuan-inc/Baichuan2-7B-Chat"),
        ("baichuan2-13b-chat", "13B", "baichuan-inc/Baichuan2-13B-Chat", "baichuan-inc/Baichuan2-13B-Chat"),
    ], lora_target_modules=("W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"), trust_remote_code=True,
        description="Baichuan 2: remote code, fused W_pack"),
    Family("smollm2", "LlamaForCausalLM", None, [
        ("smollm2-135m-instruct", "135M", "HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ("smollm2-360m-instruct", "360M", "HuggingFaceTB/SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct"),
        ("smollm2-1.7b-instruct", "1.7B", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct"),
    ], description="SmolLM2 instruct (tied embeddings)"),
    Family("olmo2", "Olmo2ForCausalLM", None, [
        ("olmo2-7b-instruct", "7B", None, "allenai/OLMo-2-1124-7B-Instruct"),
        ("olmo2-13b-instruct", "13B", None, "allenai/OLMo-2-1124-13B-Instruct"),
    ], requires=("transformers>=4.47",), description="OLMo 2 (Hugging Face only)"),
]
