"""Speed and memory of prefswift's training step against TRL 1.16's, reported as ratios, on lengths like real data.

    .venv/bin/python scripts/benchmark.py                    # DPO + ORPO, 128K vocabulary, UltraFeedback-like lengths
    .venv/bin/python scripts/benchmark.py --vocab 128256,151936 --repeat 3
    .venv/bin/python scripts/benchmark.py --lengths fixed --seq_len 384 --vocab 32000 --hidden 256
    .venv/bin/python scripts/benchmark.py --precompute_ref            # DPO with precomputed reference log-probs
    .venv/bin/python scripts/benchmark.py --startup                   # --help / argument errors vs `trl dpo --help`
    .venv/bin/python scripts/benchmark.py --serve                     # prefswift deploy vs transformers serve

The parent process runs one child process (`scripts/benchmark_child.py`) per (vocabulary, implementation,
algorithm), strictly one after another (never two at once). With --repeat R the pairs run R times, alternating which
side goes first, and the table shows the median of the R per-round ratios. Absolute seconds depend on whatever else
the machine is doing; the ratios of neighbouring runs are what the benchmark reports.

Every child builds the same thing from the same seed: a random-weight LlamaForCausalLM (default: vocab 128256 as
Llama 3, hidden 512, 4 layers, untied head; fp32, or bf16 with --dtype bf16), LoRA on all seven linear layers of
every block (identical seeded non-zero adapter weights on both sides, so the DPO policy differs from its adapter-off
reference from the first step on), and the same preference pairs of random tokens. Lengths: `realistic` (default)
draws log-normal lengths like UltraFeedback (prompt median ~150 tokens, answers ~250-290, long tails; cut to
--seq_len), `fixed` makes every pair nearly --seq_len long. A word-level tokenizer ("w123" is token 123) lets TRL
tokenize text into exactly the token ids prefswift gets pre-tokenized; each TRL child first asserts that its collated
batch equals prefswift's `PairCollator` batch.

Both sides train through `Trainer.train()` with identical TrainingArguments (no gradient checkpointing, batch of
`--batch` pairs, constant LR, no logging or saving): prefswift's `PreferenceTrainer` with the CLI's defaults (prefix
sharing, packing, the log-prob chunk of the device) against `trl.DPOTrainer` (loss_type sigmoid, reference = adapter
off) and `trl.experimental.orpo.ORPOTrainer` (prefswift's ORPO in `orpo_nll_scope="all"`, TRL's NLL).

Measured per child: seconds per optimizer step = median interval between consecutive `on_step_end` callbacks after
`--warmup` steps (collation, forward, backward and the optimizer step all count), in wall-clock and process CPU
seconds; tokens/s = the tokens in the data (BOS + prompt + chosen + EOS + rejected + EOS, the same count for both
sides) per second; MFU = model FLOPs per data token (2 x linear weights per pass: forward + activation backward, +1
forward for DPO's reference) x tokens/s / the matmul roof measured on the spot (square matmuls, same dtype and
threads); peak memory = peak RSS growth during train() (sampled every 2 ms), and on a GPU peak
torch.cuda.max_memory_allocated growth. First-step losses of both sides must agree to 1e-4 (bf16: 2e-2) or the script
exits with status 1.

On a CPU shared with other jobs, two torch threads per child slow down far more than 2x whenever another process
takes a core; `--threads 1` is steadier there, at about half the speed. The CPU-time ratio is less sensitive to load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from prefswift.arguments import PreferenceArguments  # noqa: E402  (defaults come from the CLI's own fields)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_serve  # noqa: E402  (--serve)

HERE = Path(__file__).resolve().parent
MARKER = "BENCHMARK_RESULT "
IMPLS = ("prefswift", "trl")
LOSS_TOL = 1e-4
CHILD_OPTIONS = ("steps", "warmup", "seq_len", "hidden", "layers", "intermediate", "heads", "kv_heads", "tied", "batch",
                 "lora_r", "chunk_size", "layout", "threads", "seed", "dtype", "lengths", "packing", "precompute_ref")
# --shape: model shapes of real checkpoints (random weights); a Llama block with these sizes
SHAPES = {
    "qwen2.5-0.5b": dict(vocab="151936", hidden=896, layers=24, intermediate=4864, heads=14, kv_heads=2, tied=True),
    "qwen2.5-1.5b": dict(vocab="151936", hidden=1536, layers=28, intermediate=8960, heads=12, kv_heads=2, tied=True),
    "llama3-8b": dict(vocab="128256", hidden=4096, layers=32, intermediate=14336, heads=32, kv_heads=8, tied=False),
}


# ------------------------------------------------------------------------------------------------ options


def parse_args(argv=None):
    defaults = PreferenceArguments()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="dpo,orpo", help="comma-separated: dpo, orpo")
    p.add_argument("--steps", type=int, default=3, help="timed optimizer steps per child")
    p.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps before the timed ones")
    p.add_argument("--lengths", choices=("realistic", "fixed"), default="realistic",
                   help="realistic: UltraFeedback-like log-normal lengths; fixed: every pair ~seq_len tokens")
    p.add_argument("--seq_len", type=int, default=2048, help="max tokens of prompt + response (the cut)")
    p.add_argument("--vocab", default="128256", help="vocabulary size(s), comma-separated: 128256 = Llama 3, "
                                                     "151936 = Qwen2.5")
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=0, help="MLP width (0: 8/3 x hidden)")
    p.add_argument("--heads", type=int, default=0, help="attention heads (0: hidden / 64)")
    p.add_argument("--kv_heads", type=int, default=0, help="key/value heads (0: = heads)")
    p.add_argument("--tied", action="store_true", help="tie the LM head to the embeddings")
    p.add_argument("--shape", choices=sorted(SHAPES), help="a real model's shape (sets vocab, hidden, layers, ...)")
    p.add_argument("--batch", type=int, default=4, help="preference pairs per step")
    p.add_argument("--lora_r", type=int, default=8)
    p.add_argument("--chunk_size", type=int, default=defaults.logprob_chunk_size,
                   help="prefswift --logprob_chunk_size (default: the CLI's, 0 = auto for the device)")
    p.add_argument("--layout", choices=("prefix", "concat"), default="prefix" if defaults.prefix_sharing else "concat",
                   help="prefswift's batch layout: prefix = PrefixSharedCollator (the CLI default), concat = "
                        "PairCollator (chosen rows then rejected rows, like TRL)")
    p.add_argument("--packing", choices=("true", "false"), default=str(defaults.packing).lower(),
                   help="prefswift --packing (prefix layout): several pairs per row")
    p.add_argument("--precompute_ref", action="store_true",
                   help="DPO with reference log-probs computed before training on both sides")
    p.add_argument("--repeat", type=int, default=1, help="rounds of children; the median ratio is reported")
    p.add_argument("--threads", type=int, default=2, help="torch threads per child")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: weights in bf16 and bf16 autocast on both sides (a GPU run); the first-step loss "
                        "check then allows bf16 rounding (2e-2)")
    p.add_argument("--json", default=None, help="also write every child's result to this file")
    p.add_argument("--startup", action="store_true",
                   help="instead: seconds until `--help` / an argument error answers, prefswift vs TRL's `trl` CLI")
    benchmark_serve.add_arguments(p)
    p.add_argument("--child", nargs=2, metavar=("IMPL", "ALGO"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, value in SHAPES.get(args.shape, {}).items():
        setattr(args, key, value)
    args.algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    for a in args.algos:
        if a not in ("dpo", "orpo"):
            p.error(f"--algos: unknown algorithm {a!r}; use dpo and/or orpo")
    try:
        args.vocabs = [int(v) for v in str(args.vocab).split(",") if v.strip()]
    except ValueError:
        p.error(f"--vocab: {args.vocab!r} is not a comma-separated list of integers")
    args.vocab = args.vocabs[0]
    args.packing = args.packing == "true" if isinstance(args.packing, str) else args.packing
    if args.steps < 1 or args.warmup < 1 or args.repeat < 1:
        p.error("--steps, --warmup and --repeat must be >= 1")
    if args.seq_len < 16 or min(args.vocabs) < 100:
        p.error("--seq_len must be >= 16 and --vocab >= 100")
    return args


# ------------------------------------------------------------------------------------------------ parent


def child_command(args, impl, algo, vocab):
    cmd = [sys.executable, str(HERE / "benchmark_child.py"), "--child", impl, algo, "--vocab", str(vocab)]
    for opt in CHILD_OPTIONS:
        value = getattr(args, opt)
        if isinstance(value, bool):
            cmd += [f"--{opt}", str(value).lower()] if opt == "packing" else ([f"--{opt}"] if value else [])
        else:
            cmd += [f"--{opt}", str(value)]
    return cmd


def spawn(args, impl, algo, vocab) -> dict:
    root = str(HERE.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    started = time.perf_counter()
    proc = subprocess.run(child_command(args, impl, algo, vocab), capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith(MARKER)]
    # CUDA out of memory, or the kernel's OOM killer (SIGKILL) on host memory
    if proc.returncode in (-9, 137) or (proc.returncode != 0 and "OutOfMemoryError" in proc.stderr):
        print(f"  vocab {vocab} {impl:9s} {algo:4s}: out of memory", flush=True)
        return {"oom": True}
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise SystemExit(f"benchmark: the {impl} {algo} child failed (exit {proc.returncode})")
    result = json.loads(lines[-1][len(MARKER):])
    print(f"  vocab {vocab} {impl:9s} {algo:4s}: {result['s_per_step']:.3f} s/step, peak +{result['peak_mb']:.0f} MB,"
          f" first loss {result['losses'][0]:.6f} ({time.perf_counter() - started:.0f} s wall)", flush=True)
    return result


def losses_agree(a: float, b: float, dtype: str = "fp32") -> bool:
    return abs(a - b) <= (LOSS_TOL if dtype == "fp32" else 2e-2) * max(1.0, abs(b))


def summarize(algo, vocab, rounds, roof, dtype="fp32"):
    """rounds: [{impl: result}] for one (vocabulary, algorithm) -> one table row (medians over rounds); a side
    that ran out of memory gives a row that says so."""
    med = statistics.median
    oom = [impl for impl in IMPLS if any(r[impl].get("oom") for r in rounds)]
    if oom:
        return {"algo": algo, "vocab": vocab, "oom": oom, "loss_ok": "prefswift" not in oom}

    def tok_s(r):
        return r["tokens_per_step"] / r["s_per_step"]

    ours, trl = (med(tok_s(r[impl]) for r in rounds) for impl in IMPLS)
    first = [(r["prefswift"]["losses"][0], r["trl"]["losses"][0]) for r in rounds]
    every = [abs(a - b) for r in rounds for a, b in zip(r["prefswift"]["losses"], r["trl"]["losses"])]
    flops = rounds[0]["prefswift"]["flops_per_token"]
    cuda = rounds[0]["trl"]["cuda_peak_mb"] is not None
    mem_key = "cuda_peak_mb" if cuda else "peak_mb"
    return {
        "algo": algo, "vocab": vocab, "ours_tok_s": ours, "trl_tok_s": trl,
        "speed_ratio": med(tok_s(r["prefswift"]) / tok_s(r["trl"]) for r in rounds),
        "cpu_speed_ratio": med(r["trl"]["cpu_s_per_step"] / r["prefswift"]["cpu_s_per_step"] for r in rounds),
        "ours_mb": med(r["prefswift"][mem_key] for r in rounds), "trl_mb": med(r["trl"][mem_key] for r in rounds),
        "memory_ratio": med(r["prefswift"][mem_key] / max(r["trl"][mem_key], 1e-9) for r in rounds),
        "memory_kind": "CUDA peak allocated" if cuda else "peak RSS",
        "ours_mfu": ours * flops / roof, "trl_mfu": trl * flops / roof,
        "first_loss": first[0], "loss_ok": all(losses_agree(a, b, dtype) for a, b in first),
        "max_step_loss_diff": max(every),
    }


def print_table(rows, args, roof):
    tying = "tied" if args.tied else "untied"
    print(f"\n{args.shape or 'Llama'} {args.layers}x{args.hidden} ({tying} head), {args.lengths} lengths (cut at "
          f"{args.seq_len}), "
          f"{args.batch} pairs per step, {args.dtype}, LoRA r={args.lora_r} (all linear), {args.threads} threads"
          f"{', precomputed reference' if args.precompute_ref else ''}; prefswift layout {args.layout}, packing "
          f"{str(args.packing).lower()}, chunk {args.chunk_size or 'auto'}; median of {args.steps} timed steps after "
          f"{args.warmup} warm-up, {args.repeat} round(s); matmul roof {roof / 1e9:.1f} GFLOP/s")
    print("speed = prefswift tokens/s / TRL tokens/s (tokens in the data); memory = prefswift peak / TRL peak; "
          "> 1 speed and < 1 memory: prefswift is faster / smaller\n")
    head = ["vocab", "algorithm", "prefswift tok/s", "TRL tok/s", "speed (x TRL)", "CPU-time speed",
            "prefswift MFU", "TRL MFU", "prefswift peak MB", "TRL peak MB", "memory (x TRL)",
            "first-step loss (prefswift / TRL)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        if r.get("oom"):
            print(f"| {r['vocab']} | {r['algo']} | " + " | ".join(["out of memory: " + ", ".join(r["oom"])] +
                                                                 [""] * (len(head) - 3)) + " |")
            continue
        a, b = r["first_loss"]
        print(f"| {r['vocab']} | {r['algo']} | {r['ours_tok_s']:.0f} | {r['trl_tok_s']:.0f} | "
              f"**{r['speed_ratio']:.2f}x** | {r['cpu_speed_ratio']:.2f}x | {100 * r['ours_mfu']:.0f}% | "
              f"{100 * r['trl_mfu']:.0f}% | {r['ours_mb']:.0f} | {r['trl_mb']:.0f} | **{r['memory_ratio']:.2f}x** | "
              f"{a:.6f} / {b:.6f} {'ok' if r['loss_ok'] else 'MISMATCH'} |")
    done = [r for r in rows if not r.get("oom")]
    if done:
        print(f"\nmemory: {done[0]['memory_kind']} growth during train(); max |loss difference| over all steps: " +
              ", ".join(f"{r['vocab']} {r['algo']} {r['max_step_loss_diff']:.1e}" for r in done))


def measure_roof(args) -> float:
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from benchmark_child import matmul_roof; "
            f"print(matmul_roof({args.dtype!r}, {args.threads}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


STARTUP = (("prefswift --version", ["--version"]), ("prefswift dpo --help", ["dpo", "--help"]),
           ("prefswift dpo --bogus 1", ["dpo", "--bogus", "1"]), ("prefswift infer --help", ["infer", "--help"]),
           ("prefswift list models", ["list", "models"]))


def startup(repeat: int) -> int:
    """Median wall seconds of commands that must answer before any heavy import, one process after another, next to
    `trl dpo --help` (TRL's CLI) run the same way; ratio = prefswift / TRL."""
    import statistics
    import subprocess
    import time

    def median_seconds(cmd):
        times = []
        for _ in range(max(3, repeat)):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, timeout=300)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    trl = median_seconds([sys.executable, "-c", "import sys; from trl.cli import main; sys.argv[0] = 'trl'; sys.exit(main())",
                          "dpo", "--help"])
    print(f"{'command':32} {'seconds':>8} {'vs trl dpo --help':>18}")
    print(f"{'trl dpo --help':32} {trl:8.2f} {1.0:18.2f}")
    for name, argv in STARTUP:
        ours = median_seconds([sys.executable, "-m", "prefswift", *argv])
        print(f"{name:32} {ours:8.2f} {ours / trl:18.2f}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.startup:
        return startup(args.repeat)
    if args.serve:
        return benchmark_serve.main(args)
    started = time.perf_counter()
    roof = measure_roof(args)
    results = {(vocab, algo): [] for vocab in args.vocabs for algo in args.algos}
    for rnd in range(args.repeat):
        order = IMPLS if rnd % 2 == 0 else IMPLS[::-1]  # alternate who goes first: drift hits both sides alike
        print(f"round {rnd + 1}/{args.repeat}", flush=True)
        for vocab, algo in results:
            results[(vocab, algo)].append({impl: spawn(args, impl, algo, vocab) for impl in order})
    rows = [summarize(algo, vocab, rounds, roof, args.dtype) for (vocab, algo), rounds in results.items()]
    print_table(rows, args, roof)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "roof_flops": roof, "rows": rows,
                                               "results": {f"{v}/{a}": r for (v, a), r in results.items()}},
                                              indent=1))
    if not all(r["loss_ok"] for r in rows):
        print(f"benchmark: first-step losses differ by more than {LOSS_TOL} — the comparison is not like for like",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
