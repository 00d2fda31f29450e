"""The child side of scripts/benchmark.py: builds one trainer (prefswift or TRL) on seeded inputs, trains it and
prints its measurements as one JSON line. Run only by scripts/benchmark.py (`--child IMPL ALGO`).
"""
from __future__ import annotations

import json
import math
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time

MARKER = "BENCHMARK_RESULT "
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SPECIAL = {"<pad>": 0, "<s>": 1, "</s>": 2}
# UltraFeedback-like token lengths (log-normal: median, sigma): prompts ~150 tokens, answers ~250-300, long tails
REALISTIC = {"prompt": (150, 0.9), "chosen": (290, 0.6), "rejected": (250, 0.65)}


# ------------------------------------------------------------------------------------------------ child: inputs


def make_tokenizer(vocab_size: int):
    """Word-level tokenizer: "w<id>" is token <id>; BOS added to single texts, specials split out of text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = dict(SPECIAL, **{f"w{i}": i for i in range(len(SPECIAL), vocab_size)})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<pad>")


def make_pairs(n: int, args, seed: int):
    """n pairs of random token ids. `fixed`: prompt ~1/4 of seq_len, responses of nearly the longest length.
    `realistic`: log-normal lengths like UltraFeedback (REALISTIC), each pair cut to seq_len tokens as a
    keep_end truncation would (responses first, then the prompt's start)."""
    rng = random.Random(seed)
    lo, vocab_size, seq_len = len(SPECIAL), args.vocab, args.seq_len
    pairs = []
    for i in range(n):
        if args.lengths == "fixed":
            prompt_len = max(2, seq_len // 4)
            room = seq_len - 1 - prompt_len - 1  # BOS + prompt + response + EOS
            lens = [room - rng.randint(0, room // 6) for _ in range(2)]
            if i % 2 == 0:
                lens[rng.randint(0, 1)] = room
        else:
            prompt_len, *lens = (max(2, int(rng.lognormvariate(math.log(med), sigma)))
                                 for med, sigma in REALISTIC.values())
            prompt_len = min(prompt_len, seq_len // 2)
            room = seq_len - 1 - prompt_len - 1
            lens = [min(k, room) for k in lens]
        prompt, chosen, rejected = ([rng.randrange(lo, vocab_size) for _ in range(k)] for k in (prompt_len, *lens))
        pairs.append((prompt, chosen, rejected))
    return pairs


def data_tokens(pairs) -> int:
    """Tokens in the data (BOS + prompt + chosen + EOS + rejected + EOS): what both sides are given to learn from."""
    return sum(len(p) + len(c) + len(r) + 3 for p, c, r in pairs)


def prefswift_rows(pairs):
    bos, eos = SPECIAL["<s>"], SPECIAL["</s>"]
    return [{"prompt_input_ids": [bos] + p, "chosen_input_ids": c + [eos], "rejected_input_ids": r + [eos]}
            for p, c, r in pairs]


def text_dataset(pairs):
    from datasets import Dataset

    def words(ids):
        return " ".join(f"w{i}" for i in ids)

    return Dataset.from_dict({"prompt": [words(p) for p, _, _ in pairs],
                              "chosen": [" " + words(c) for _, c, _ in pairs],
                              "rejected": [" " + words(r) for _, _, r in pairs]})


def make_model(args):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = args.heads or max(1, args.hidden // 64)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                         intermediate_size=args.intermediate or (args.hidden * 8 // 3 + 15) // 16 * 16,
                         num_hidden_layers=args.layers, num_attention_heads=heads,
                         num_key_value_heads=args.kv_heads or heads, max_position_embeddings=max(2048, args.seq_len),
                         tie_word_embeddings=args.tied, pad_token_id=SPECIAL["<pad>"], bos_token_id=SPECIAL["<s>"],
                         eos_token_id=SPECIAL["</s>"])
    torch.manual_seed(args.seed)
    return LlamaForCausalLM(config).to(torch.bfloat16 if args.dtype == "bf16" else torch.float32)


def lora_config(args):
    from peft import LoraConfig

    return LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules=LORA_TARGETS,
                      task_type="CAUSAL_LM")


def set_adapter_weights(model, seed: int, std: float = 0.05) -> int:
    """The same non-zero LoRA weights on both sides, whoever wrapped the model."""
    import torch

    g = torch.Generator().manual_seed(seed)
    params = sorted((n, p) for n, p in model.named_parameters() if "lora_" in n)
    with torch.no_grad():
        for _, p in params:
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return len(params)


# ------------------------------------------------------------------------------------------------ child: trainers


def common_training_kwargs(args, output_dir: str) -> dict:
    import torch

    return dict(output_dir=output_dir, per_device_train_batch_size=args.batch, max_steps=args.warmup + args.steps,
                learning_rate=5e-5, lr_scheduler_type="constant", logging_strategy="no", save_strategy="no",
                report_to="none", use_cpu=not torch.cuda.is_available(), seed=args.seed, data_seed=args.seed,
                dataloader_num_workers=0, disable_tqdm=True, gradient_checkpointing=False, bf16=args.dtype == "bf16",
                fp16=False)


def loss_recording(cls):
    """A subclass of a Trainer class that keeps the loss of every training step (no other change)."""

    class Recording(cls):
        def training_step(self, *a, **k):
            loss = super().training_step(*a, **k)
            self.bench_losses.append(float(loss.detach().float().item()))
            return loss

    Recording.__name__ = f"Recording{cls.__name__}"
    return Recording


def build_prefswift(args, algo, model, tok, pairs, out):
    import torch
    from peft import get_peft_model
    from transformers import TrainingArguments

    from prefswift.scoring.collators import ListDataset, PairCollator, PrefixSharedCollator
    from prefswift.scoring.logprobs import resolve_chunk_size
    from prefswift.algorithms.dpo import DPO
    from prefswift.algorithms.orpo import ORPO
    from prefswift.train.trainer import PreferenceTrainer

    model = get_peft_model(model, lora_config(args))
    objective = DPO(beta=0.1, loss_type="sigmoid") if algo == "dpo" else ORPO(beta=0.1, orpo_nll_scope="all")
    targs = TrainingArguments(**common_training_kwargs(args, out), remove_unused_columns=False)
    collator = (PrefixSharedCollator(pad_token_id=tok.pad_token_id, packing=args.packing) if args.layout == "prefix"
                else PairCollator(pad_token_id=tok.pad_token_id))
    return loss_recording(PreferenceTrainer)(
        model=model, args=targs, objective=objective, ref_model=None,
        logprob_chunk_size=resolve_chunk_size(args.chunk_size, args.vocab,
                                              "cuda" if torch.cuda.is_available() else "cpu"),
        train_dataset=ListDataset(prefswift_rows(pairs)), data_collator=collator, processing_class=tok)


def build_trl(args, algo, model, tok, pairs, out):
    dataset = text_dataset(pairs)
    max_length = args.seq_len + 8  # no truncation on the TRL side
    if algo == "dpo":
        from trl import DPOConfig, DPOTrainer

        config = DPOConfig(**common_training_kwargs(args, out), beta=0.1, loss_type=["sigmoid"], max_length=max_length,
                           disable_dropout=True, precompute_ref_log_probs=args.precompute_ref)
        return loss_recording(DPOTrainer)(model=model, ref_model=None, args=config, train_dataset=dataset,
                                          processing_class=tok, peft_config=lora_config(args))
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    config = ORPOConfig(**common_training_kwargs(args, out), beta=0.1, max_length=max_length, disable_dropout=True,
                        remove_unused_columns=False)
    return loss_recording(ORPOTrainer)(model=model, args=config, train_dataset=dataset, processing_class=tok,
                                       peft_config=lora_config(args))


def assert_same_batch(trainer, algo, tok, pairs):
    """TRL's own collated batch of the first pairs must hold exactly prefswift's token ids and masks."""
    import torch

    from prefswift.scoring.collators import PairCollator

    ours = PairCollator(pad_token_id=tok.pad_token_id)(prefswift_rows(pairs[:2]))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    if algo == "dpo":
        same = all(torch.equal(ours[k], batch[k]) for k in ("input_ids", "attention_mask", "completion_mask"))
    else:
        cat = trainer.concatenated_inputs(batch, padding_value=tok.pad_token_id)
        same = (torch.equal(ours["input_ids"], cat["concatenated_input_ids"])
                and torch.equal(ours["attention_mask"], cat["concatenated_attention_mask"])
                and torch.equal(ours["completion_mask"].bool(), cat["concatenated_labels"] != -100))
    if not same:
        raise SystemExit(f"benchmark: TRL's {algo} batch differs from prefswift's PairCollator batch")


# ------------------------------------------------------------------------------------------------ child: measuring


class RssSampler:
    """Peak resident set size over a block, sampled in a background thread (psutil), with ru_maxrss as fallback."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        try:
            import psutil

            self._proc = psutil.Process()
        except ImportError:
            self._proc = None

    def rss(self) -> int:
        if self._proc is not None:
            return self._proc.memory_info().rss
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.baseline = self.rss()
        self.peak = self.baseline
        self.maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
        self.maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return False


def step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.ends, self.cpu_ends = [], []

        def _mark(self):
            self.ends.append(time.perf_counter())
            self.cpu_ends.append(time.process_time())

        def on_train_begin(self, args, state, control, **kw):
            self._mark()

        def on_step_end(self, args, state, control, **kw):
            self._mark()

    return StepTimer()


def run_child(args, impl: str, algo: str) -> dict:
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tok = make_tokenizer(args.vocab)
    pairs = make_pairs(args.batch * (args.warmup + args.steps), args, args.seed)
    with tempfile.TemporaryDirectory(prefix="prefswift-bench-") as out:
        model = make_model(args)
        build = build_prefswift if impl == "prefswift" else build_trl
        trainer = build(args, algo, model, tok, pairs, out)
        if impl == "trl":
            assert_same_batch(trainer, algo, tok, pairs)
        n_lora = set_adapter_weights(trainer.model, args.seed + 1)
        if impl == "prefswift" and args.precompute_ref and algo == "dpo":  # TRL precomputes in its __init__
            trainer.precompute_reference(trainer.train_dataset.rows, trainer.data_collator, args.batch)
        trainer.bench_losses = []
        timer = step_timer()
        trainer.add_callback(timer)
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            cuda_base = torch.cuda.memory_allocated()
        with RssSampler() as mem:
            trainer.train()
        steps = [b - a for a, b in zip(timer.ends, timer.ends[1:])]
        cpu_steps = [b - a for a, b in zip(timer.cpu_ends, timer.cpu_ends[1:])]
    return {
        "impl": impl, "algo": algo, "s_per_step": statistics.median(steps[args.warmup:]), "step_seconds": steps,
        "cpu_s_per_step": statistics.median(cpu_steps[args.warmup:]), "step_cpu_seconds": cpu_steps,
        "peak_mb": (mem.peak - mem.baseline) / 2**20,
        "maxrss_growth_mb": max(0, mem.maxrss_after - mem.maxrss_before) / 2**20,
        "baseline_rss_mb": mem.baseline / 2**20,
        "cuda_peak_mb": (torch.cuda.max_memory_allocated() - cuda_base) / 2**20 if cuda else None,
        "losses": trainer.bench_losses, "lora_tensors": n_lora,
        "tokens_per_step": data_tokens(pairs) / (args.warmup + args.steps),
        "flops_per_token": flops_per_token(trainer.model, algo, args.precompute_ref),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": _version("trl"), "peft": _version("peft")},
    }


def flops_per_token(model, algo: str, precompute_ref: bool) -> float:
    """Model FLOPs per data token for a LoRA step: 2 x (weights of every linear layer and the LM head) per pass; a
    LoRA step makes a forward and a backward for the activations (the frozen weights get no gradient), DPO one
    more forward for the reference unless precomputed. Attention scores and the LoRA matmuls are left out (small
    here), the same for both sides: the MFU ratio equals the speed ratio."""
    import torch

    linear = sum(m.weight.numel() for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and "lora_" not in name)
    passes = 2 + (1 if algo == "dpo" and not precompute_ref else 0)
    return 2.0 * linear * passes


def matmul_roof(dtype: str, threads: int) -> float:
    """FLOP/s of the best of a few square matmuls in the benchmark's dtype on this device (the roof for MFU)."""
    import torch

    torch.set_num_threads(threads)
    cuda = torch.cuda.is_available()
    n = 8192 if cuda else 1024
    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, dtype=kind, device="cuda" if cuda else "cpu")
    b = torch.randn_like(a)
    best = 0.0
    for _ in range(8):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if cuda:
            torch.cuda.synchronize()
        best = max(best, 4 * 2 * n ** 3 / (time.perf_counter() - start))
    return best


def _version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "?"




def main() -> int:
    from benchmark import parse_args  # one set of options for parent and child

    args = parse_args(sys.argv[1:])
    impl, algo = args.child
    print(MARKER + json.dumps(run_child(args, impl, algo)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
