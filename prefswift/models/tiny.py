"""Two built-in tiny chat models for tests, demos and offline smoke runs: `tiny-llama3` and `tiny-qwen`.

Each is built locally on first use — no network: a byte-level BPE tokenizer trained deterministically
on a small built-in English + Chinese corpus (about 1000 tokens including the family's special tokens),
the family's real chat template, and a 2-layer model with random weights from a fixed seed. The result
is a normal Hugging Face model directory that AutoModelForCausalLM / AutoTokenizer load offline.
Building is deterministic: every build writes the same bytes.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from prefswift.errors import ArgumentError, did_you_mean

RECIPE_VERSION = 2
MARKER_FILE = "prefswift_tiny.json"
VOCAB_SIZE = 1000  # including special tokens

# Llama 3 (tiktoken-style) and Qwen2 pre-tokenizer patterns: Llama 3 groups digits by up to three.
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The chat templates shipped by Meta-Llama-3-8B-Instruct and Qwen2-7B-Instruct (tokenizer_config.json).
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    name: str
    model_type: str                    # "llama" | "qwen2"
    template: str                      # the prefswift template whose ids the chat template reproduces
    special_tokens: Tuple[str, ...]    # appended after the BPE vocabulary, in this order
    bos_token: Optional[str]           # the tokenizer's BOS (Qwen has none)
    config_bos_token: str              # config.json bos_token_id (Qwen2 names <|endoftext|> there)
    eos_token: str
    pad_token: str
    generation_eos: Tuple[str, ...]    # generation_config.json eos_token_id, in this order
    chat_template: str
    tokenizer_class: str
    pretokenize_regex: str
    nfc: bool                          # Qwen2's tokenizer NFC-normalizes text
    add_bos_token: bool                # the tokenizer adds BOS by itself (Llama 3 does, Qwen does not)
    seed: int


TINY_MODELS: Dict[str, TinyModelSpec] = {
    "tiny-llama3": TinyModelSpec(
        name="tiny-llama3",
        model_type="llama",
        template="llama3",
        special_tokens=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>", "<|finetune_right_pad_id|>"),
        bos_token="<|begin_of_text|>",
        config_bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        generation_eos=("<|end_of_text|>", "<|eot_id|>"),
        chat_template=LLAMA3_CHAT_TEMPLATE,
        tokenizer_class="PreTrainedTokenizerFast",
        pretokenize_regex=LLAMA3_REGEX,
        nfc=False,
        add_bos_token=True,
        seed=1234,
    ),
    "tiny-qwen": TinyModelSpec(
        name="tiny-qwen",
        model_type="qwen2",
        template="qwen",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        bos_token=None,
        config_bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        generation_eos=("<|im_end|>", "<|endoftext|>"),
        chat_template=QWEN2_CHAT_TEMPLATE,
        tokenizer_class="Qwen2Tokenizer",
        pretokenize_regex=QWEN2_REGEX,
        nfc=True,
        add_bos_token=False,
        seed=4321,
    ),
}

MODEL_SIZE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128, max_position_embeddings=2048, tie_word_embeddings=False)

# A small fixed corpus; the tokenizer is trained on it, so never edit it without bumping RECIPE_VERSION.
CORPUS = """\
You are a helpful assistant. Answer the question briefly and honestly.
The user asked how to train a language model with human preferences, and the assistant explained it.
Direct preference optimization compares a chosen answer with a rejected answer for the same prompt.
Odds ratio preference optimization adds a penalty on the rejected answer to the usual language model loss.
A reference model keeps the policy close to where it started, so the answers do not drift too far.
Please write a short poem about the sea, the wind, the moon and the stars.
What is the capital of France? The capital of France is Paris.
What is the capital of China? The capital of China is Beijing.
How many days are there in a week? There are seven days in a week.
Count from one to ten: one, two, three, four, five, six, seven, eight, nine, ten.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 24 36 48 64 100 128 256 512 1024 2048 2024 3.14 0.5 -1
Translate the following sentence into Chinese: I like reading books in the morning.
Summarize the text in one sentence and keep the important facts.
The quick brown fox jumps over the lazy dog. A lazy dog sleeps in the warm sun.
Water boils at one hundred degrees Celsius at sea level, and freezes at zero.
def add(a, b):
    return a + b

for i in range(10):
    print(i * i)
{"prompt": "Hello", "chosen": "Hi! How can I help you today?", "rejected": "Go away."}
Thank you very much! You're welcome. I'm happy to help. Let's think step by step.
It's a good idea to check the data before training; otherwise the model learns the wrong things.
Learning rate, batch size, number of epochs and the random seed all change the results.
The weather today is sunny with a light breeze; tomorrow it will rain in the afternoon.
She opened the window, looked at the garden, and smiled at the flowers.
Why is the sky blue? Sunlight is scattered by the air, and blue light is scattered the most.
Good morning! Good afternoon! Good evening! Good night!
hello world! what do you think about this? which one is better, and why? where is it? who wrote it?
Hello, how are you? I am fine, thanks. Can you help me with my homework? Yes, of course.
你好！我是一个乐于助人的助手。请问有什么可以帮你的？
今天天气很好，我们去公园散步吧。
中国的首都是北京，法国的首都是巴黎。
请用一句话总结这段文字，并保留重要的信息。
学习语言模型需要数据、算力和耐心。
人类偏好对齐让模型的回答更加有用、诚实和安全。
谢谢你的帮助！不客气，很高兴能帮到你。
一年有十二个月，一周有七天，一天有二十四小时。
春天来了，花开了，小鸟在树上唱歌。
我喜欢在早上读书，晚上听音乐。
这个问题很好，让我们一步一步地思考。
水在一百摄氏度沸腾，在零度结冰。
"""


def prefswift_home() -> Path:
    """$PREFSWIFT_HOME, or ~/.cache/prefswift."""
    env = os.environ.get("PREFSWIFT_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prefswift"


def _spec(name: str) -> TinyModelSpec:
    spec = TINY_MODELS.get(name)
    if spec is None:
        raise ArgumentError(f"unknown tiny model '{name}'{did_you_mean(name, TINY_MODELS, show=repr)} — built-in "
                            f"tiny models: {', '.join(TINY_MODELS)}")
    return spec


def _is_complete(path: Path) -> bool:
    try:
        marker = json.loads((path / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("recipe_version") == RECIPE_VERSION


def ensure_tiny_model(name: str, root: Optional[Path] = None) -> Path:
    """Return <root>/models/<name>/ (root defaults to prefswift_home()), building it on first use.

    The model is built in a temporary directory next to the target and moved into place with
    os.replace, so a reader never sees a half-written directory and two racing processes are safe.
    """
    spec = _spec(name)
    models_dir = Path(root if root is not None else prefswift_home()).expanduser() / "models"
    target = models_dir / name
    if _is_complete(target):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=models_dir))
    try:
        build_tiny_model(spec, tmp)
        if target.exists() and not _is_complete(target):
            # A stale build (older recipe) or a leftover: move it aside, then take its place.
            trash = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=models_dir))
            try:
                os.replace(target, trash / name)
            except OSError:
                pass
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete(target):  # lost a race with a build that is not finished: should not happen
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------
def build_tokenizer(spec: TinyModelSpec):
    """A `tokenizers.Tokenizer`: byte-level BPE trained on CORPUS, special tokens at the end of the vocab."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, fuse_unk=False, byte_fallback=False))
    if spec.nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(spec.pretokenize_regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(spec.special_tokens),
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer=trainer)
    tok.add_special_tokens(list(spec.special_tokens))
    if spec.add_bos_token:
        bos_id = tok.token_to_id(spec.bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos_token}:0 $A:0",
            pair=f"{spec.bos_token}:0 $A:0 {spec.bos_token}:1 $B:1",
            special_tokens=[(spec.bos_token, bos_id)],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _tokenizer_config(spec: TinyModelSpec, tok) -> dict:
    added = {
        str(tok.token_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                  "single_word": False, "special": True}
        for t in spec.special_tokens
    }
    config = {
        "add_bos_token": spec.add_bos_token,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "bos_token": spec.bos_token,
        "chat_template": spec.chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": spec.eos_token,
        "errors": "replace",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": MODEL_SIZE["max_position_embeddings"],
        "pad_token": spec.pad_token,
        "split_special_tokens": False,
        "tokenizer_class": spec.tokenizer_class,
        "unk_token": None,
    }
    if spec.model_type == "qwen2":
        config["extra_special_tokens"] = ["<|im_start|>", "<|im_end|>"]
    return config


def _model_config(spec: TinyModelSpec, tok):
    from transformers import LlamaConfig, Qwen2Config

    ids = {t: tok.token_to_id(t) for t in spec.special_tokens}
    common = dict(
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        bos_token_id=ids[spec.config_bos_token],
        eos_token_id=ids[spec.eos_token],
        pad_token_id=ids[spec.pad_token],
        rms_norm_eps=1e-6,
        initializer_range=0.02,
        **MODEL_SIZE,
    )
    if spec.model_type == "llama":
        config = LlamaConfig(rope_theta=500000.0, **common)
        config.architectures = ["LlamaForCausalLM"]
    else:
        config = Qwen2Config(rope_theta=1000000.0, use_sliding_window=False, **common)
        config.architectures = ["Qwen2ForCausalLM"]
    return config


def build_tiny_model(spec: TinyModelSpec, out_dir: Path) -> Path:
    """Write the complete model directory for `spec` into out_dir (which must exist)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, GenerationConfig

    out_dir = Path(out_dir)
    tok = build_tokenizer(spec)
    tok.save(str(out_dir / "tokenizer.json"), pretty=True)
    _write_json(out_dir / "tokenizer_config.json", _tokenizer_config(spec, tok))
    _write_json(out_dir / "special_tokens_map.json", {
        k: v for k, v in (("bos_token", spec.bos_token), ("eos_token", spec.eos_token),
                          ("pad_token", spec.pad_token)) if v
    })

    config = _model_config(spec, tok)
    with torch.random.fork_rng(devices=[]):  # model construction draws from the global RNG: leave it as it was
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = _seeded_weights(model, spec.seed)
    model.load_state_dict(state, strict=True)  # proves the names match what from_pretrained will look for
    config.save_pretrained(str(out_dir))
    GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=[tok.token_to_id(t) for t in spec.generation_eos],
        pad_token_id=config.pad_token_id,
    ).save_pretrained(str(out_dir))
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out_dir / MARKER_FILE, {"name": spec.name, "recipe_version": RECIPE_VERSION,
                                        "template": spec.template, "seed": spec.seed})
    return out_dir


def _seeded_weights(model, seed: int) -> dict:
    """Every weight drawn from a private generator in name order: the same bytes on every build, whatever
    transformers' own initialisation does and whichever thread builds. Norm weights 1, biases 0."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in sorted(model.state_dict().items()):
        if name.endswith("norm.weight"):
            value = torch.ones(tensor.shape, dtype=torch.float32)
        elif name.endswith(".bias"):
            value = torch.zeros(tensor.shape, dtype=torch.float32)
        else:
            value = torch.empty(tensor.shape, dtype=torch.float32).normal_(0.0, 0.02, generator=gen)
        state[name] = value.contiguous()
    return state


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
