"""Every argument prefswift accepts: one dataclass tree, the single source of truth.

The CLI, a YAML/JSON config file (`--config f.yaml`) and `args.json` all go through these fields.
Each field lists its alternative spellings (`aliases`): the ms-swift 2.x flag and the ORPO-script flag
for the same thing. `value_aliases` are flags that set this field to a fixed value when true
(`--use_4bit True` == `--quantization_bit 4`).
"""
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Dict, List, Optional

from ..errors import ArgumentError, did_you_mean
from . import choices as C
from .algorithms import F_DIVERGENCE_SHORT, F_DIVERGENCES, command_default, loss_type_help
from .device_map import check_device_map
from .values import Section


# Tokens per LM-head chunk when computing log-probs: the [chunk, vocab] logits are the only vocab-sized tensor.
# CPU: 256, measured on this project's 2-core CPU (scripts/benchmark_child.py, DPO, 128K vocabulary, hidden 512,
# UltraFeedback-like lengths, 4 pairs): 1024 was 5% faster at 1.66x the peak memory, 2048 the same at 2.4x, 4096
# slower. GPU: a memory budget for one chunk's fp32 logits instead, because on an H200 (Qwen2.5-1.5B shapes, bf16)
# 256 tokens made DPO 0.86x TRL's speed while 1024 gave 1.56x and 4096 1.63x (issue 12); 1 GiB is ~1,700 tokens of a
# 152K vocabulary, ~2,000 of a 128K one.
LOGPROB_CHUNK_SIZE = 256
GPU_LOGITS_BUDGET = 1 << 30

# The commands that load model weights; the options that only shape loading weights act for these alone (`lint` and
# `preview` load a tokenizer at most).
WEIGHT_COMMANDS = ("@train", "infer", "eval", "merge-lora", "sample", "deploy", "export")
# the data options that shape pairs or held-out splits: `sample` reads prompts only (it refuses them)
PAIR_DATA_COMMANDS = ("@train", "preview", "infer", "eval", "lint")

# `prefswift lint` checks and the most each may flag before --strict fails: a share of the pairs (of the rows read, for
# `dropped`); length_bias limits |Cohen's d| of chosen vs rejected lengths; identical_samples is a share of the K-way
# groups of a sampled file (`prefswift sample`). Overridden with --thresholds.
LINT_LIMITS = {
    "dropped": 0.0, "empty_answers": 0.0, "chosen_equals_rejected": 0.0, "duplicates": 0.01,
    "near_duplicates": 0.05, "eval_overlap": 0.0, "truncated": 0.05, "length_bias": 0.5, "prompt_in_answer": 0.01,
    "special_tokens": 0.0, "script_mismatch": 0.05, "identical_samples": 0.0,
}


def arg(default: Any = None, help: str = "", aliases=(), choices=None, value_aliases=None, list_type=False,
        ge=None, gt=None, le=None, lt=None, commands=None, tokens=False, check=None):
    """A field with CLI metadata. `list_type` fields take several values (space or comma separated); `choices` (a
    tuple, or a function returning one, evaluated when checked) and the bounds ge/gt/le/lt (>=, >, <=, <) are checked
    whenever a value is set (`values.check_value`; `tokens`: each space-separated word of the value). `commands`: the
    commands the field acts for (default: every command that has its section); the others refuse it and leave it out
    of their --help. `check(flag, value)`: a value check of the field's own that raises ArgumentError."""
    meta = {"help": help, "aliases": tuple(aliases),
            "choices": choices if callable(choices) or choices is None else tuple(choices),
            "value_aliases": dict(value_aliases or {}), "list": list_type, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "commands": tuple(commands) if commands else None, "tokens": tokens, "check": check}  # help: str or a
    # function returning one (read when --help prints it: plugins' loss types are registered by then)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelArguments(Section):
    model_type: Optional[str] = arg(None, "Registered model type (see `prefswift list models`).")
    model_id_or_path: Optional[str] = arg(
        None, "Local model dir or hub id; with --model_type a local dir works offline.",
        aliases=("model_name_or_path",))
    model_revision: Optional[str] = arg(None, "Hub revision (branch, tag or commit); `master` = the hub default.")
    hub: str = arg("auto", "Where to download weights: modelscope (default), hf, or auto (hf when USE_HF=1).",
                   choices=("auto", "modelscope", "hf"))
    template: Optional[str] = arg(None, "Chat template (default: the model type's own).",
                                  aliases=("template_type",))
    dtype: str = arg("AUTO", "Weights dtype: AUTO (bf16 where supported, else fp16 on GPU, fp32 on CPU).",
                     aliases=("torch_dtype",), choices=("AUTO", "bf16", "fp16", "fp32", "auto", "bfloat16",
                                                        "float16", "float32"),
                     value_aliases={"bf16": "bf16", "fp16": "fp16"},  # LLaMA-Factory's `bf16: true`
                     commands=WEIGHT_COMMANDS)
    use_flash_attention: bool = arg(
        False, "Use flash_attention_2 when installed and usable; otherwise sdpa with one warning.",
        aliases=("use_flash_attn", "flash_attn"), commands=WEIGHT_COMMANDS)
    quantization_bit: int = arg(0, "Load the base model in 4 or 8 bit (bitsandbytes, CUDA only) for QLoRA.",
                                choices=(0, 4, 8), value_aliases={"use_4bit": 4, "use_8bit": 8},
                                commands=WEIGHT_COMMANDS)
    bnb_4bit_quant_type: str = arg("nf4", "4-bit quantization type.", choices=("nf4", "fp4"),
                                   commands=WEIGHT_COMMANDS)
    bnb_4bit_use_double_quant: bool = arg(True, "Double quantization for 4-bit.", commands=WEIGHT_COMMANDS)
    bnb_4bit_compute_dtype: str = arg("AUTO", "Compute dtype for 4-bit layers (AUTO = --dtype).",
                                      commands=WEIGHT_COMMANDS)
    check_model_is_latest: bool = arg(True, "Ask the hub for the newest snapshot; false = use a cached snapshot "
                                      "without any network request when one exists.")
    ref_model_type: Optional[str] = arg(None, "DPO/KTO: a separate reference model (registered type); eval: the "
                                        "reference rewards are measured against (default: the run's own).",
                                        commands=("@reference", "eval"))
    ref_model_id_or_path: Optional[str] = arg(None, "DPO/KTO: a separate reference model (dir or hub id); eval: the "
                                              "reference rewards are measured against (default: the run's own).",
                                              commands=("@reference", "eval"))
    adapter_name_or_path: Optional[str] = arg(
        None, "Start from this LoRA adapter: an SFT run dir (`prefswift sft`), its adapter/ or a checkpoint; merged "
        "into the base, a new adapter trained on top (or --continue_adapter true); for DPO/KTO the SFT model is the "
        "reference.",
        aliases=("sft_run",), commands=WEIGHT_COMMANDS)  # issue 29 spells it `prefswift dpo --sft_run DIR`
    continue_adapter: bool = arg(
        False, "With --adapter_name_or_path: train that (SFT) adapter further, its frozen copy the reference, instead "
        "of merging it into the base and training a new adapter on top (the default).", commands=("@train",))
    ref_model: str = arg("start", "DPO/KTO: `start` = the model the run starts from (the SFT model with "
                         "--adapter_name_or_path); `base` = the bare base model even then.", choices=("start", "base"),
                         commands=("@reference",))
    ref_adapter_name_or_path: Optional[str] = arg(
        None, "DPO with LoRA: the reference is the base model with this LoRA adapter, loaded next to the trained one "
        "as adapter \"ref\" (TRL's ref adapter, ms-swift's --ref_adapters).", aliases=("ref_adapters",),
        commands=("@settings",))
    custom_register_path: Optional[str] = arg(None, "A Python file that registers models/templates/datasets.")
    device_map: Optional[str] = arg(None, "Model placement: auto, balanced, balanced_low_0, sequential, cpu, cuda, "
                                    "cuda:N, mps, xpu, or a JSON object {module: device}.", commands=WEIGHT_COMMANDS,
                                    check=check_device_map)
    hub_token: Optional[str] = arg(None, "Hub access token for gated/private repos and --push_to_hub (default: the "
                                   "client's own login, HF_TOKEN or MODELSCOPE_API_TOKEN).")
    trust_remote_code: bool = arg(False, "Run the Python code a model repo ships (GLM-4-9B-chat, InternLM 2.5, "
                                  "Baichuan 2 need it; `prefswift list models` marks them).")


@dataclass
class DataArguments(Section):
    dataset: List[str] = arg([], "Datasets: registered `name:subset1/subset2#N` or local .json/.jsonl/.parquet.",
                             aliases=("train_file", "datasets"), list_type=True)
    val_dataset: List[str] = arg([], "Evaluation data (else the dataset's test split, else --eval_ratio).",
                                 aliases=("eval_file", "val_file"), list_type=True, commands=PAIR_DATA_COMMANDS)
    dataset_dir: Optional[str] = arg(None, "Local copies of registered datasets (offline use).")
    eval_ratio: float = arg(0.05, "Share of training rows held out for evaluation (0 = none).",
                            aliases=("dataset_test_ratio", "val_size"), ge=0, lt=1, commands=PAIR_DATA_COMMANDS)
    dataset_seed: int = arg(42, "Seed for the eval split and dataset sampling.")
    max_length: int = arg(2048, "Max tokens of prompt + response.", aliases=("cutoff_len",), ge=2,
                          commands=PAIR_DATA_COMMANDS)
    max_prompt_length: Optional[int] = arg(None, "Max prompt tokens (default: max_length / 2); a longer prompt loses "
                                           "its oldest turns, then the start of its last message (the template's "
                                           "headers stay).", ge=1, commands=PAIR_DATA_COMMANDS)
    truncation_strategy: str = arg("keep_end", "keep_end: cut the prompt's oldest content / the responses' end; "
                                   "delete: drop pairs that are too long (counted).", choices=("keep_end", "delete"),
                                   commands=PAIR_DATA_COMMANDS)
    check_dataset_strategy: str = arg("none", "Bad rows: error stops; discard/warning/none drop and count them.",
                                      choices=("none", "discard", "error", "warning"))
    columns: Optional[Dict[str, str]] = arg(None, "Column mapping JSON, e.g. '{\"instruction\": \"prompt\"}'.")
    system: Optional[str] = arg(None, "System prompt for every row (and for infer).", aliases=("default_system",))
    train_dataset_sample: int = arg(-1, "Use only N training rows (-1 = all).", aliases=("max_samples",), ge=-1)
    val_dataset_sample: int = arg(-1, "Use only N evaluation rows (-1 = all).", ge=-1, commands=PAIR_DATA_COMMANDS)


@dataclass
class TuningArguments(Section):
    sft_type: str = arg("lora", "lora or full fine-tuning.", aliases=("finetuning_type", "train_type"),
                        choices=("lora", "full"))
    tuner_backend: str = arg("peft", "LoRA backend; `swift` is accepted and means peft.", choices=("peft", "swift"))
    lora_rank: int = arg(8, "LoRA rank.", aliases=("lora_r",), ge=1)
    lora_alpha: int = arg(32, "LoRA alpha.", ge=1)
    lora_dropout_p: float = arg(0.05, "LoRA dropout.", aliases=("lora_dropout",), ge=0, lt=1)
    lora_target_modules: List[str] = arg(
        ["DEFAULT"], "ALL or all-linear (every linear but the head), DEFAULT (the model's set), or module names.",
        aliases=("lora_target",), list_type=True)
    lora_modules_to_save: List[str] = arg([], "Extra modules trained fully and saved with the adapter.",
                                          list_type=True)
    use_rslora: bool = arg(False, "Rank-stabilised LoRA scaling.")
    gradient_checkpointing: bool = arg(True, "Recompute activations in backward to save memory.")


@dataclass
class TrainArguments(Section):
    output_dir: str = arg("output", "Run directory: checkpoints, adapter/, logging.jsonl, images/, args.json.")
    overwrite_output_dir: bool = arg(False, "Start a new run in an output_dir that holds an earlier run.")
    lora_adapter_dir: Optional[str] = arg(None, "Also save the final adapter here (always in output_dir/adapter).")
    resume_from_checkpoint: Optional[str] = arg(None, "`latest` or a checkpoint path.")
    num_train_epochs: float = arg(1.0, "Epochs.", gt=0)
    max_steps: int = arg(-1, "Stop after N optimizer steps (overrides epochs).", ge=-1)
    batch_size: int = arg(1, "Pairs (KTO: rows, default 8) per device per step.",
                          aliases=("per_device_train_batch_size",), ge=1)
    eval_batch_size: Optional[int] = arg(None, "Pairs per device in eval (default: batch_size).",
                                         aliases=("per_device_eval_batch_size",), ge=1)
    gradient_accumulation_steps: int = arg(1, "Micro-batches per optimizer step.", ge=1)
    skip_nonfinite_steps: int = arg(0, "Skip (not apply) up to N optimizer steps whose loss or gradients are nan/inf; "
                                    "0: the first one stops the run with an error (nothing non-finite is saved).", ge=0)
    learning_rate: float = arg(5e-5, "Peak learning rate.", aliases=("lr",), ge=0)
    weight_decay: float = arg(0.0, "AdamW weight decay.", ge=0)
    adam_beta1: float = arg(0.9, "AdamW beta1.", ge=0, lt=1)
    adam_beta2: float = arg(0.999, "AdamW beta2.", ge=0, lt=1)
    adam_epsilon: float = arg(1e-8, "AdamW epsilon.", gt=0)
    max_grad_norm: float = arg(1.0, "Gradient clipping.", ge=0)
    lr_scheduler_type: str = arg("linear", "linear, cosine, constant, constant_with_warmup, ... (transformers').",
                                 choices=C.scheduler_types)
    warmup_ratio: float = arg(0.0, "Warm-up share of steps.", ge=0, le=1)
    warmup_steps: int = arg(0, "Warm-up steps (overrides warmup_ratio).", ge=0)
    optim: str = arg("adamw_torch", "Optimizer name as in transformers (adamw_torch, paged_adamw_8bit, ...).",
                     choices=C.optimizers)
    logging_steps: int = arg(5, "Log every N steps (to the terminal and logging.jsonl).", ge=1)
    eval_steps: Optional[float] = arg(None, "Evaluate every N steps, or a fraction of the run below 1 (0.2 = every "
                                      "fifth of it); default: save_steps.", gt=0)
    save_steps: float = arg(500, "Save a checkpoint every N steps, or a fraction of the run below 1.", gt=0)
    save_strategy: str = arg("steps", "When to save: steps (every --save_steps), epoch, or no.",
                             choices=("steps", "epoch", "no"))
    eval_strategy: Optional[str] = arg(None, "When to evaluate: steps, epoch or no (default: steps when there is "
                                       "eval data, else no).", choices=("steps", "epoch", "no"))
    save_total_limit: Optional[int] = arg(None, "Keep only the newest N checkpoints.", ge=1)
    save_only_model: bool = arg(False, "Checkpoints without optimizer state (cannot resume exactly).")
    seed: int = arg(42, "Training seed.")
    dataloader_num_workers: int = arg(0, "Worker processes for batching (0 = in the main process).", ge=0)
    report_to: List[str] = arg(["none"], "none, tensorboard, wandb, ...", list_type=True, choices=C.report_targets)
    deepspeed: Optional[str] = arg(None, "zero2, zero3, zero2_offload, zero3_offload or a JSON path.")
    fsdp: Optional[str] = arg(None, "FSDP2 (fully_shard, CUDA): full_shard or shard_grad_op, optionally with offload.",
                              choices=C.fsdp_options, tokens=True)
    fsdp_config: Optional[str] = arg(None, "With --fsdp: a JSON file (or inline JSON) of FSDP2 settings "
                                     "(transformer_layer_cls_to_wrap, activation_checkpointing, cpu_offload, ...).")
    ddp_backend: Optional[str] = arg(None, "nccl, gloo, ... (default: gloo on CPU, nccl on GPU).",
                                     choices=C.DDP_BACKENDS)
    ddp_timeout: int = arg(600, "Seconds a collective (DDP's gradient all-reduce, gathers, on gloo and NCCL) waits for "
                           "a rank that is alive but stuck before the run stops. Rank 0 saving a checkpoint or the "
                           "result, or uploading it, is not bounded by it: the other ranks wait for that beating, as "
                           "long as rank 0 lives. Also bounds (at most 60 s) how long the others wait once a rank is "
                           "gone before they stop with one line.", ge=1)
    dry_run: bool = arg(False, "Print the launch and device plan, then exit without loading weights.")


@dataclass
class PreferenceArguments(Section):
    beta: Optional[float] = arg(None, "DPO beta / ORPO lambda / SimPO beta (default 0.1; simpo 2.0).",
                                aliases=("pref_beta", "orpo_alpha"), gt=0, commands=("@train",))
    loss_type: Optional[str] = arg(None, lambda: "Loss variant, " + loss_type_help() + " (orpo and simpo have one). "
                                   "DPO combines several, comma-separated, weighted by --loss_weights (MPO: "
                                   "sigmoid,bco_pair,sft).", aliases=("pref_loss",), commands=("@train",))
    loss_weights: List[float] = arg([], "DPO: one weight per --loss_type (default: 1 each), e.g. 1,0.5.",
                                    list_type=True, commands=("@settings",))
    label_smoothing: float = arg(0.0, "Label smoothing / flip probability where the loss has one: dpo robust "
                                 "(< 0.5), exo_pair (> 0 needed), aot, aot_unpaired; cpo sigmoid, simpo; simpo.",
                                 ge=0, lt=1, commands=("@settings",))
    rpo_alpha: Optional[float] = arg(None, "DPO: add rpo_alpha x chosen NLL (LLaMA-Factory's pref_ftx; = "
                                     "--loss_type sigmoid,sft --loss_weights 1,rpo_alpha).",
                                     aliases=("pref_ftx", "sft_beta"), ge=0, commands=("@settings",))
    discopop_tau: float = arg(0.05, "DPO discopop: temperature of the log-ratio modulation (paper: 0.05).", gt=0,
                              commands=("@settings",))
    ld_alpha: Optional[float] = arg(None, "DPO LD-DPO: weight of the response tokens past the shorter response's "
                                    "length (1 = plain DPO, 0 = only the shared length counts).", ge=0, le=1,
                                    commands=("@settings",))
    use_weighting: bool = arg(False, "DPO WPO: weight each pair's loss by the policy's length-normalised "
                              "probability of its chosen and rejected responses (not with aot/aot_unpaired).",
                              commands=("@settings",))
    f_divergence_type: str = arg("reverse_kl", "DPO f-divergence regulariser: " + ", ".join(F_DIVERGENCES) +
                                 " (js, alpha for short); all but reverse_kl work with sigmoid, sigmoid_norm, hinge, "
                                 "ipo, exo_pair, robust, discopop, sft.",
                                 choices=F_DIVERGENCES + tuple(F_DIVERGENCE_SHORT), commands=("@settings",))
    f_alpha_divergence_coef: float = arg(0.5, "DPO: alpha of --f_divergence_type alpha_divergence (1 = reverse_kl).",
                                         commands=("@settings",))
    sync_ref_model: bool = arg(False, "DPO TR-DPO, full fine-tuning: mix the policy into the reference every "
                               "--ref_model_sync_steps steps (ref = a x policy + (1 - a) x ref).",
                               commands=("@settings",))
    ref_model_mixup_alpha: float = arg(0.6, "DPO --sync_ref_model: the a of the mix.", ge=0, le=1,
                                       commands=("@settings",))
    ref_model_sync_steps: int = arg(512, "DPO --sync_ref_model: optimizer steps between two mixes.", ge=1,
                                    commands=("@settings",))
    simpo_gamma: float = arg(0.5, "SimPO target reward margin.", commands=("@settings",))
    cpo_alpha: Optional[float] = arg(None, "Weight of the chosen NLL added to the loss: default 1.0 for cpo (TRL's "
                                     "CPOTrainer), 0 for simpo (the SimPO paper's loss; --cpo_alpha 1 = TRL's "
                                     "CPO-SimPO).", ge=0, commands=("@settings",))
    orpo_nll_scope: str = arg("response", "ORPO NLL over the chosen response (paper) or the whole sequence"
                              " (`all`, TRL's experimental ORPOTrainer).", choices=("response", "all"),
                              commands=("@settings",))
    center_rewards_coefficient: Optional[float] = arg(None, "rm: add coefficient x mean((r_chosen + r_rejected)^2) "
                                                      "to the loss, pushing rewards towards mean zero (TRL's "
                                                      "RewardConfig; the paper suggests 0.01). Default: off.", ge=0,
                                                      commands=("@settings",))
    precompute_ref_log_probs: bool = arg(False, "DPO/KTO: compute reference log-probs once before training.",
                                         commands=("@reference",))
    desirable_weight: float = arg(1.0, "KTO: weight of the desirable (label true) rows' losses; with unequal "
                                  "counts TRL suggests desirable_weight * n_desirable ~ undesirable_weight * "
                                  "n_undesirable (up to 4:3).", aliases=("kto_chosen_weight",), gt=0,
                                  commands=("@settings",))
    undesirable_weight: float = arg(1.0, "KTO: weight of the undesirable (label false) rows' losses.",
                                    aliases=("kto_rejected_weight",), gt=0, commands=("@settings",))
    logprob_chunk_size: int = arg(0, "Tokens per lm_head chunk when computing log-probs; 0 = auto: 256 on CPU, on a "
                                  "GPU as many as 1 GiB of fp32 logits holds (about 1,700 for a 152K vocabulary).",
                                  ge=0, commands=("@train", "eval"))
    prefix_sharing: bool = arg(True, "One row per pair (prompt once, then chosen, then rejected, 4D mask) instead of "
                               "two rows; same numbers, less compute. Runs on SDPA even with --use_flash_attention "
                               "(faster); false = chosen and rejected rows (with flash_attention_2 when asked for).",
                               commands=("@paired",))
    packing: bool = arg(True, "Pack a batch's sequences into fewer rows (rows as long as its longest pair, positions "
                        "restarting per pair, a block-diagonal mask): less padding, same numbers. With "
                        "--prefix_sharing false: padding-free rows (one row of all sequences on flash_attention_2's "
                        "varlen kernels). sft: padding-free rows of whole conversations. false = one pair (or "
                        "sequence) per row.", commands=("@paired", "sft"))
    max_tokens_per_batch: int = arg(0, "Batches by tokens instead of pairs: each batch takes as many pairs of similar "
                                    "length as fit in N tokens as the forward gets them (rows x row length, padding "
                                    "included, in the layout --prefix_sharing/--packing choose); a longer pair gets "
                                    "a batch of its own; replaces --per_device_train_batch_size. 0 = off.", ge=0,
                                    commands=("@paired", "sft"))
    loss_on: str = arg("all", "sft: train on every assistant answer of a conversation (all) or only its last one.",
                       choices=("all", "last"), commands=("@settings",))


@dataclass
class InferArguments(Section):
    ckpt_dir: Optional[str] = arg(None, "A checkpoint / adapter dir / merged dir with args.json.",
                                  commands=("infer", "eval", "merge-lora", "sample", "deploy", "export"))
    merge_lora: bool = arg(False, "infer: merge the adapter first.", commands=("infer",))
    merge_device_map: str = arg("cpu", "Where to merge: cpu or auto (any --device_map value).",
                                commands=("infer", "merge-lora", "export"), check=check_device_map)
    merge_output_dir: Optional[str] = arg(None, "merge-lora: where the merged model goes (default <ckpt_dir>-merged).",
                                          aliases=("output_dir",), commands=("merge-lora",))
    overwrite: bool = arg(False, "merge-lora: replace a non-empty output dir; sample: replace an earlier sample "
                          "output; export: replace an earlier export (only one prefswift wrote).",
                          commands=("infer", "merge-lora", "sample", "export"))
    max_new_tokens: int = arg(512, "Longest answer in tokens (deploy: a chat request's default max_tokens).", ge=1,
                              commands=("infer", "eval", "sample", "deploy"))
    temperature: float = arg(0.3, "Sampling temperature (with --do_sample true; sample always samples, default 1.0).",
                             ge=0, commands=("infer", "eval", "sample"))
    top_p: float = arg(0.7, "Nucleus sampling (with --do_sample true; sample: default 1.0).", gt=0, le=1,
                       commands=("infer", "eval", "sample"))
    top_k: int = arg(20, "Top-k sampling (with --do_sample true; 0 = off; sample: default 0).", ge=0,
                     commands=("infer", "eval", "sample"))
    repetition_penalty: float = arg(1.0, "Penalty > 1 discourages repeats.", gt=0,
                                    commands=("infer", "eval", "sample"))
    do_sample: bool = arg(False, "Sample instead of greedy decoding.", commands=("infer", "eval"))
    seed: int = arg(42, "Random seed for sampling (infer, eval --mode winrate; sample: with the prompt's block "
                    "index, so a resumed run draws what an uninterrupted one does).",
                   commands=("infer", "eval", "sample"))
    stream: bool = arg(True, "Stream tokens in interactive mode.", commands=("infer",))
    keep_history: bool = arg(False, "stdin from a pipe: one conversation across the lines (default: every line is a "
                             "prompt of its own, as in dataset mode).", commands=("infer",))
    load_dataset_config: bool = arg(False, "Use the run's own eval split (from args.json).",
                                    commands=("infer", "eval"))
    infer_output: Optional[str] = arg(None, "Where results go: a .jsonl/.json file or a directory (default: "
                                      "<ckpt>/infer_result or <ckpt>/eval_result).", aliases=("output_dir",),
                                      commands=("infer", "eval"))
    mode: str = arg("pairs", "eval: pairs (implicit-reward and log-prob accuracy on preference pairs) or winrate "
                    "(answers of the model and an opponent, compared by --judge_model).",
                    choices=("pairs", "winrate"), commands=("eval",))
    compare_to: Optional[str] = arg(None, "eval: a second model or checkpoint (dir, model type or hub id), scored "
                                    "on the same pairs against the same reference, side by side; with --mode "
                                    "winrate the opponent (default: the reference, else the base model).",
                                    commands=("eval",))
    judge_model: Optional[str] = arg(None, "eval --mode winrate, sample: the judge, any local causal LM (dir, model "
                                     "type or hub id); it picks A, B or tie by log-prob, both orders.",
                                     commands=("eval", "sample"))


SAMPLE_PAIR_STRATEGIES = ("best_worst", "best_random")


@dataclass
class SampleArguments(Section):
    num_samples: int = arg(4, "sample: completions drawn per prompt (K).", aliases=("k",), ge=2, le=64)
    reward_model: Optional[str] = arg(None, "sample: score completions with this sequence-classification model dir "
                                      "(a reward model; the reward is its logit on the prompt + completion in the "
                                      "policy's chat template). Exclusive with --judge_model.")
    pair_strategy: str = arg("best_worst", "sample: chosen = the best-scored completion, rejected = the worst "
                             "(best_worst) or another one drawn at random (best_random).",
                             choices=SAMPLE_PAIR_STRATEGIES)
    output_file: str = arg("sample_result/samples.jsonl", "sample: the preference file (JSONL; next to it "
                           "<name>.dropped.jsonl and <name>.summary.json).", aliases=("sample_output",))
    resume: bool = arg(False, "sample: continue an interrupted --output_file (same options) after its last whole "
                       "prompt.")
    max_prompts: int = arg(-1, "sample: stop after the first N prompts (-1 = all); a later --resume true run "
                           "continues.", ge=-1)
    sample_batch_size: int = arg(8, "sample: prompts per generation batch (each with --num_samples completions); "
                                 "part of what a resumed run must keep.", ge=1)
    score_batch_size: int = arg(16, "sample: sequences per reward-model forward.", ge=1)
    sample_engine: str = arg("auto", "sample: the generator: vllm when it is installed and a GPU is present (auto), "
                             "else transformers (prefswift's engine, the one deploy serves with).",
                             choices=("auto", "transformers", "vllm"))


def _check_adapter_pair(flag: str, value) -> None:
    for item in value if isinstance(value, list) else [value]:
        name, eq, path = str(item).partition("=")
        if not eq or not name or not path:
            raise ArgumentError(f"{flag} {item!r}: give NAME=PATH (the name requests use as `model`, the adapter, "
                                "checkpoint or run dir)")


@dataclass
class DeployArguments(Section):
    host: str = arg("127.0.0.1", "deploy, web: the address to listen on; any other than 127.0.0.1/localhost/::1 needs "
                    "--api_key or --allow_unauthenticated true.")
    port: int = arg(8000, "deploy, web: the port to listen on.", ge=1, le=65535)
    api_key: Optional[str] = arg(None, "deploy, web: the key every /v1 (web: /api) request must send as "
                                 "`Authorization: Bearer KEY` "
                                 "(default: the PREFSWIFT_API_KEY environment variable, else none).")
    allow_unauthenticated: bool = arg(False, "deploy, web: listen beyond this machine without an API key (anyone who "
                                      "reaches the port may use the model).")
    adapters: List[str] = arg([], "deploy: more LoRA runs on the same base, NAME=PATH each (a run, adapter or "
                              "checkpoint dir); a request picks one by its `model` field.", list_type=True,
                              check=_check_adapter_pair, commands=("deploy",))
    served_model_name: Optional[str] = arg(None, "deploy: the `model` name of --ckpt_dir / the model (default: the "
                                           "run dir's name, else the model's).", commands=("deploy",))
    max_batch_size: int = arg(32, "deploy: most sequences generated at once (continuous batching).", ge=1,
                              commands=("deploy",))
    max_queue: int = arg(256, "deploy: most requests waiting for a slot; beyond it a request gets 429 with "
                         "Retry-After.", ge=1, commands=("deploy",))


@dataclass
class PushArguments(Section):
    push_to_hub: bool = arg(False, "Upload the result (training: the final adapter or full model; merge-lora: the "
                                   "merged model; export: the export folder) to --hub_model_id on --hub; refused "
                                   "before any work when the id or a token is missing.")
    hub_model_id: Optional[str] = arg(None, "OWNER/NAME of the repo --push_to_hub creates or updates.")
    hub_private_repo: bool = arg(False, "Create the --push_to_hub repo as private.")


EXPORT_TARGETS = ("gguf", "gguf-lora", "ollama", "safetensors")
# what the gguf package writes itself; the K-quants and other llama.cpp-only types are answered with the
# llama-quantize command to run on an f16 export
GGUF_OUTTYPES = ("f16", "bf16", "f32", "q8_0", "q4_0", "q5_0")
LLAMA_QUANTIZE_TYPES = ("q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
                        "iq4_nl", "iq4_xs", "q4_1", "q5_1")


@dataclass
class ExportArguments(Section):
    to: str = arg("gguf", "export: gguf (adapters merged first), gguf-lora (the LoRA adapter alone, for llama.cpp "
                  "--lora / Ollama ADAPTER), ollama (GGUF + Modelfile) or safetensors (with --quant).",
                  choices=EXPORT_TARGETS)
    outtype: str = arg("f16", "export: GGUF tensor type: " + ", ".join(GGUF_OUTTYPES) + " (K-quants such as q4_k_m "
                       "print the llama-quantize command to run on the f16 file).",
                       choices=GGUF_OUTTYPES + LLAMA_QUANTIZE_TYPES)
    quant: Optional[str] = arg(None, "export: bnb-4bit or bnb-8bit: quantized safetensors that load with plain "
                               "transformers (implies --to safetensors).", choices=("bnb-4bit", "bnb-8bit"))
    export_dir: Optional[str] = arg(None, "export: where the export goes (default <ckpt_dir>-<to>); replaced only "
                                    "with --overwrite true and only when an earlier export wrote it.",
                                    aliases=("output_dir",))


@dataclass
class PreviewArguments(Section):
    n: int = arg(3, "How many pairs to show (`-n 3`).", aliases=("num",), ge=1)
    json: bool = arg(False, "Print ids, labels and texts as JSON.")


@dataclass
class WebArguments(Section):
    runs_dir: str = arg("output", "prefswift web: the folder whose training runs the pages show (searched 4 levels "
                        "deep).")
    votes_file: Optional[str] = arg(None, "The arena's votes (JSONL, appended; `prefswift dpo --dataset` trains on "
                                    "it). Default: <runs_dir>/arena/votes.jsonl.")
    prompt_file: Optional[str] = arg(None, "Prompts the arena can draw from: a data file or a registered dataset "
                                     "(read as `prefswift sample` reads --dataset: pairs or prompt-only rows).")


def _limits_help() -> str:
    return ", ".join(f"{k} {v:g}" for k, v in LINT_LIMITS.items())


@dataclass
class LintArguments(Section):
    output_dir: str = arg("lint_result", "Where lint_report.json goes (replaced atomically).")
    strict: bool = arg(False, "Exit with code 1 when a check exceeds its limit (to gate a pipeline).")
    thresholds: Optional[Dict[str, float]] = arg(
        None, "Limits that replace the defaults, as JSON, e.g. '{\"near_duplicates\": 0.1}'. Shares of the pairs "
        "(of the rows read for dropped); length_bias is |Cohen's d|. Defaults: " + _limits_help() + ".")
    near_duplicate_similarity: float = arg(0.8, "Two pairs are near duplicates from this Jaccard similarity of their "
                                           "word 3-grams on.", gt=0, lt=1)

    def __post_init__(self):
        super().__post_init__()
        for name, value in (self.thresholds or {}).items():
            if name not in LINT_LIMITS:
                raise ArgumentError(f"--thresholds: unknown check {name!r}{did_you_mean(name, LINT_LIMITS)} — "
                                    f"checks: {', '.join(LINT_LIMITS)}")
            top = None if name == "length_bias" else 1
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
                    (top is not None and value > top):
                raise ArgumentError(f"--thresholds: {name} must be a number from 0 to {top or 'any'}, got {value!r}")

    def limits(self) -> Dict[str, float]:
        """Every check's limit: the defaults with --thresholds applied."""
        return {**LINT_LIMITS, **{k: float(v) for k, v in (self.thresholds or {}).items()}}


SECTIONS = {
    "model": ModelArguments,
    "data": DataArguments,
    "tuning": TuningArguments,
    "train": TrainArguments,
    "pref": PreferenceArguments,
    "infer": InferArguments,
    "preview": PreviewArguments,
    "sample": SampleArguments,
    "push": PushArguments,
    "lint": LintArguments,
    "deploy": DeployArguments,
    "export": ExportArguments,
    "web": WebArguments,
}


def field_default(f, command: str = ""):
    """The field's default for `command`: an algorithm's own (its spec's `defaults`, e.g. KTO's batch size 8) or the
    shared one."""
    shared = f.default if f.default is not MISSING else f.default_factory()
    return command_default(command, f.name, shared)


def iter_fields(section_names):
    for name in section_names:
        for f in fields(SECTIONS[name]):
            yield name, f
