"""Speed and memory of prefswift's training step against TRL 1.16's, reported as ratios.

    /work/venv/bin/python scripts/benchmark.py                 # DPO and ORPO, one round (~1-3 min on 2 CPU cores)
    /work/venv/bin/python scripts/benchmark.py --repeat 3 --layout concat --chunk_size 256

The parent process runs one child process per (implementation, algorithm), strictly one after another (never two at
once): prefswift DPO, TRL DPO, prefswift ORPO, TRL ORPO. With --repeat R the pairs run R times, alternating which
side goes first, and the table shows the median of the R per-round ratios. Absolute seconds depend on whatever else
the machine is doing; the ratios of neighbouring runs are what the benchmark reports.

Every child builds the same thing from the same seed: a random-weight LlamaForCausalLM (default vocab 32000, hidden
256, 4 layers, fp32), LoRA r=8 on all seven linear layers of every block (the adapter weights are then set to the same
seeded random values on both sides, so the DPO policy differs from its adapter-off reference from the first step on),
and the same preference pairs of random tokens (~seq_len tokens per sequence). A word-level tokenizer ("w123" is token
123) lets TRL tokenize text into exactly the token ids prefswift gets pre-tokenized; each TRL child first asserts that
its collated batch equals prefswift's `PairCollator` batch.

Both sides train through `Trainer.train()` with identical TrainingArguments (fp32, no gradient checkpointing, batch of
`--batch` pairs, constant LR, no logging or saving): prefswift's `PreferenceTrainer` (LoRA: reference = adapter off)
against `trl.DPOTrainer` (loss_type sigmoid, LoRA via peft_config: reference = adapter off) and
`trl.experimental.orpo.ORPOTrainer`, with prefswift's ORPO in `orpo_nll_scope="all"` (TRL's NLL over prompt + response).
prefswift batches pairs the way the CLI does by default (`--layout prefix`: one row per pair, the prompt once, a 4D
mask) or as chosen rows + rejected rows like TRL (`--layout concat`).

Measured per child: seconds per optimizer step = median interval between consecutive `on_step_end` callbacks after
`--warmup` steps (so data collation, forward, backward and the optimizer step all count), in wall-clock and in process
CPU seconds; peak memory = peak RSS (sampled every 2 ms with psutil, else /proc/self/statm) minus the RSS right before
`train()` (the ru_maxrss growth is kept in the JSON too); on a GPU also torch.cuda.max_memory_allocated over the
allocation before `train()`. The loss of every step is recorded; the first-step losses of both sides must agree to
1e-4 (relative to max(1, |loss|)) or the script exits with status 1.

On a CPU shared with other jobs, two torch threads per child slow down far more than 2x whenever another process
takes a core (threads wait for each other); `--threads 1` is steadier there, at about half the speed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from prefswift.arguments import PreferenceArguments  # noqa: E402  (defaults come from the CLI's own fields)

MARKER = "BENCHMARK_RESULT "
IMPLS = ("prefswift", "trl")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SPECIAL = {"<pad>": 0, "<s>": 1, "</s>": 2}
LOSS_TOL = 1e-4


# ------------------------------------------------------------------------------------------------ options


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="dpo,orpo", help="comma-separated: dpo, orpo")
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per child")
    p.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps before the timed ones")
    p.add_argument("--seq_len", type=int, default=384, help="tokens of the longest sequence (prompt + response)")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--batch", type=int, default=2, help="preference pairs per step (2x sequences per forward)")
    p.add_argument("--lora_r", type=int, default=8)
    p.add_argument("--chunk_size", type=int, default=PreferenceArguments().logprob_chunk_size,
                   help="prefswift --logprob_chunk_size (default: the CLI's, 0 = auto for the device)")
    p.add_argument("--layout", choices=("prefix", "concat"), default="prefix",
                   help="prefswift's batch layout: prefix = PrefixSharedCollator (the CLI default without "
                        "flash_attention_2), concat = PairCollator (chosen rows then rejected rows, like TRL)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of children; the median ratio is reported")
    p.add_argument("--threads", type=int, default=2, help="torch threads per child")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: weights in bf16 and bf16 autocast on both sides (a GPU run); the first-step loss "
                        "check then allows bf16 rounding (2e-2)")
    p.add_argument("--json", default=None, help="also write every child's result to this file")
    p.add_argument("--child", nargs=2, metavar=("IMPL", "ALGO"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    for a in args.algos:
        if a not in ("dpo", "orpo"):
            p.error(f"--algos: unknown algorithm {a!r}; use dpo and/or orpo")
    if args.steps < 1 or args.warmup < 1 or args.repeat < 1:
        p.error("--steps, --warmup and --repeat must be >= 1")
    if args.seq_len < 16 or args.vocab < 100:
        p.error("--seq_len must be >= 16 and --vocab >= 100")
    return args


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


def make_pairs(n: int, seq_len: int, vocab_size: int, seed: int):
    """n pairs of random token ids: prompt ~1/4 of seq_len, responses of different lengths (longest row = seq_len)."""
    import random

    rng = random.Random(seed)
    lo = len(SPECIAL)
    prompt_len = max(2, seq_len // 4)
    pairs = []
    for i in range(n):
        room = seq_len - 1 - prompt_len - 1  # BOS + prompt + response + EOS
        lens = [room - rng.randint(0, room // 6) for _ in range(2)]
        if i % 2 == 0:
            lens[rng.randint(0, 1)] = room
        prompt, chosen, rejected = ([rng.randrange(lo, vocab_size) for _ in range(k)] for k in (prompt_len, *lens))
        pairs.append((prompt, chosen, rejected))
    return pairs


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

    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=(args.hidden * 8 // 3 + 15)
                         // 16 * 16, num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
                         num_key_value_heads=max(1, args.hidden // 64), max_position_embeddings=max(2048, args.seq_len),
                         tie_word_embeddings=False, pad_token_id=SPECIAL["<pad>"], bos_token_id=SPECIAL["<s>"],
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
    from prefswift.train.objectives import Objective
    from prefswift.train.trainer import PreferenceTrainer

    model = get_peft_model(model, lora_config(args))
    objective = (Objective(algo="dpo", beta=0.1, loss_type="sigmoid") if algo == "dpo" else
                 Objective(algo="orpo", beta=0.1, loss_type="orpo", orpo_nll_scope="all"))
    targs = TrainingArguments(**common_training_kwargs(args, out), remove_unused_columns=False)
    collator = (PrefixSharedCollator if args.layout == "prefix" else PairCollator)(pad_token_id=tok.pad_token_id)
    return loss_recording(PreferenceTrainer)(
        model=model, args=targs, objective=objective, ref_model=None,
        logprob_chunk_size=resolve_chunk_size(args.chunk_size, args.vocab,
                                              "cuda" if torch.cuda.is_available() else "cpu"),
        train_dataset=ListDataset(prefswift_rows(pairs)), data_collator=collator, processing_class=tok)


def build_trl(args, algo, model, tok, pairs, out):
    dataset = text_dataset(pairs)
    max_length = max(1024, args.seq_len + 8)
    if algo == "dpo":
        from trl import DPOConfig, DPOTrainer

        config = DPOConfig(**common_training_kwargs(args, out), beta=0.1, loss_type=["sigmoid"], max_length=max_length,
                           disable_dropout=True)
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
    pairs = make_pairs(args.batch * (args.warmup + args.steps), args.seq_len, args.vocab, args.seed)
    with tempfile.TemporaryDirectory(prefix="prefswift-bench-") as out:
        model = make_model(args)
        build = build_prefswift if impl == "prefswift" else build_trl
        trainer = build(args, algo, model, tok, pairs, out)
        if impl == "trl":
            assert_same_batch(trainer, algo, tok, pairs)
        n_lora = set_adapter_weights(trainer.model, args.seed + 1)
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
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": _version("trl"), "peft": _version("peft")},
    }


def _version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "?"


# ------------------------------------------------------------------------------------------------ parent


def child_command(args, impl, algo):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", impl, algo]
    for opt in ("steps", "warmup", "seq_len", "vocab", "hidden", "layers", "batch", "lora_r", "chunk_size", "layout",
                "threads", "seed"):
        cmd += [f"--{opt}", str(getattr(args, opt))]
    return cmd


def spawn(args, impl, algo) -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    proc = subprocess.run(child_command(args, impl, algo), capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"benchmark: the {impl} {algo} child failed (exit {proc.returncode})")
    result = json.loads(lines[-1][len(MARKER):])
    print(f"  {impl:9s} {algo:4s}: {result['s_per_step']:.3f} s/step, peak +{result['peak_mb']:.0f} MB, "
          f"first loss {result['losses'][0]:.6f} ({time.perf_counter() - started:.0f} s wall)", flush=True)
    return result


def losses_agree(a: float, b: float, dtype: str = "fp32") -> bool:
    return abs(a - b) <= (LOSS_TOL if dtype == "fp32" else 2e-2) * max(1.0, abs(b))


def summarize(algo, rounds, dtype="fp32"):
    """rounds: [{impl: result}] for one algorithm -> one table row (medians over rounds)."""
    med = statistics.median
    speed = med(r["trl"]["s_per_step"] / r["prefswift"]["s_per_step"] for r in rounds)
    cpu_speed = med(r["trl"]["cpu_s_per_step"] / r["prefswift"]["cpu_s_per_step"] for r in rounds)
    memory = med(r["trl"]["peak_mb"] / max(r["prefswift"]["peak_mb"], 1e-9) for r in rounds)
    first = [(r["prefswift"]["losses"][0], r["trl"]["losses"][0]) for r in rounds]
    every = [abs(a - b) for r in rounds for a, b in zip(r["prefswift"]["losses"], r["trl"]["losses"])]
    return {
        "algo": algo, "ours_s": med(r["prefswift"]["s_per_step"] for r in rounds),
        "trl_s": med(r["trl"]["s_per_step"] for r in rounds), "speed_ratio": speed, "cpu_speed_ratio": cpu_speed,
        "ours_mb": med(r["prefswift"]["peak_mb"] for r in rounds), "trl_mb": med(r["trl"]["peak_mb"] for r in rounds),
        "memory_ratio": memory, "first_loss": first[0], "loss_ok": all(losses_agree(a, b, dtype) for a, b in first),
        "max_step_loss_diff": max(every),
        "cuda_memory_ratio": med(r["trl"]["cuda_peak_mb"] / max(r["prefswift"]["cuda_peak_mb"], 1e-9) for r in rounds)
        if rounds[0]["trl"]["cuda_peak_mb"] is not None else None,
    }


def print_table(rows, args):
    print(f"\nLlama {args.layers}x{args.hidden}, vocab {args.vocab}, ~{args.seq_len} tokens/sequence, "
          f"{args.batch} pairs per step, fp32, LoRA r={args.lora_r} (all linear), {args.threads} threads; "
          f"prefswift layout {args.layout}, chunk {args.chunk_size}; median of {args.steps} timed steps after "
          f"{args.warmup} warm-up, {args.repeat} round(s)")
    print("speed ratio = TRL s/step / prefswift s/step (wall clock); memory ratio = TRL peak / prefswift peak; "
          "CPU-time ratio = the same as the speed ratio with process CPU seconds (less sensitive to other load); "
          "> 1: prefswift is faster / smaller\n")
    head = ["algorithm", "prefswift s/step", "TRL s/step", "speed ratio (TRL/prefswift)", "prefswift peak MB",
            "TRL peak MB", "memory ratio", "CPU-time ratio", "first-step loss (prefswift / TRL)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        a, b = r["first_loss"]
        print(f"| {r['algo']} | {r['ours_s']:.3f} | {r['trl_s']:.3f} | **{r['speed_ratio']:.2f}x** | "
              f"{r['ours_mb']:.0f} | {r['trl_mb']:.0f} | **{r['memory_ratio']:.2f}x** | {r['cpu_speed_ratio']:.2f}x | "
              f"{a:.6f} / {b:.6f} {'ok' if r['loss_ok'] else 'MISMATCH'} |")
    print("\nmax |loss difference| over all steps: " +
          ", ".join(f"{r['algo']} {r['max_step_loss_diff']:.1e}" for r in rows))
    for r in rows:
        if r["cuda_memory_ratio"] is not None:
            print(f"{r['algo']}: CUDA max_memory_allocated ratio (TRL / prefswift) {r['cuda_memory_ratio']:.2f}x")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        impl, algo = args.child
        print(MARKER + json.dumps(run_child(args, impl, algo)), flush=True)
        return 0
    started = time.perf_counter()
    results = {algo: [] for algo in args.algos}
    for rnd in range(args.repeat):
        order = IMPLS if rnd % 2 == 0 else IMPLS[::-1]  # alternate who goes first: drift hits both sides alike
        print(f"round {rnd + 1}/{args.repeat}", flush=True)
        for algo in args.algos:
            results[algo].append({impl: spawn(args, impl, algo) for impl in order})
    rows = [summarize(algo, rounds, args.dtype) for algo, rounds in results.items()]
    print_table(rows, args)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "rows": rows}, indent=1))
    if not all(r["loss_ok"] for r in rows):
        print(f"benchmark: first-step losses differ by more than {LOSS_TOL} — the comparison is not like for like",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
