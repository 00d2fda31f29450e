"""`scripts/benchmark.py --serve`: prefswift deploy against `transformers serve` (with and without its
--continuous-batching) on the same model, one server at a time, on this machine.

The model: a random-weight Llama (default hidden 256, 4 layers, 4 heads, MLP 688) with the tiny-llama3 tokenizer and
chat template (`prefswift.models.tiny`), written once to --model_dir. Every server gets the same requests: chat
completions of distinct prompts (~20-30 tokens), greedy, `max_tokens` --max_tokens, non-streaming, sent by
--concurrency worker threads (1, 8, 32: each keeps one request open at a time) — `rounds` x concurrency requests per
level after two warm-up requests. Reported per server and level: generated tokens/s (the completion_tokens of every
answer's `usage` / wall-clock seconds of the level) and the p50 / p99 request latency; then prefswift's throughput
over each peer's. Both servers run on the CPU (or the GPU when one is present) with the same torch threads.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_model(model_dir: Path, hidden: int, layers: int) -> Path:
    """A random Llama with the tiny-llama3 tokenizer (its chat template included); reused when already there."""
    if (model_dir / "config.json").is_file():
        return model_dir
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    sys.path.insert(0, str(ROOT))
    from prefswift.models.tiny import ensure_tiny_model

    tiny = ensure_tiny_model("tiny-llama3")
    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(tiny, tmp)
    config = AutoConfig.from_pretrained(str(tiny))
    config.hidden_size, config.num_hidden_layers = hidden, layers
    config.intermediate_size = int(hidden * 8 / 3) // 8 * 8
    config.num_attention_heads = config.num_key_value_heads = max(hidden // 64, 1)
    config.head_dim = hidden // config.num_attention_heads
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(str(tmp))
    tmp.rename(model_dir)
    return model_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def servers(model_dir: Path, port: int, max_batch: int):
    py = sys.executable
    tf = [str(Path(py).with_name("transformers")), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
          "--log-level", "warning"]
    yield "prefswift deploy", [py, "-m", "prefswift", "deploy", "--model_id_or_path", str(model_dir), "--template",
                               "llama3", "--port", str(port), "--max_batch_size", str(max_batch),
                               "--served_model_name", str(model_dir)]
    yield "transformers serve", tf
    yield "transformers serve --continuous-batching", tf + ["--continuous-batching"]


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def wait_ready(url: str, proc, timeout: float = 300) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not answer in time")


def run_level(url: str, model: str, concurrency: int, rounds: int, max_tokens: int, offset: int) -> dict:
    def one(i):
        body = {"model": model, "max_tokens": max_tokens, "temperature": 0, "messages": [
            {"role": "user", "content": f"Request {offset + i}: tell me everything about topic number {i * 7 % 97}."}]}
        start = time.perf_counter()
        out = post(url + "/v1/chat/completions", body)
        return time.perf_counter() - start, out["usage"]["completion_tokens"]

    n = rounds * concurrency
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    lat = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {"concurrency": concurrency, "requests": n, "tokens": tokens, "seconds": wall, "tok_s": tokens / wall,
            "p50_s": statistics.median(lat), "p99_s": lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]}


def bench_server(name, cmd, port, model, levels, rounds, max_tokens, threads) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads),
               PYTHONPATH=str(ROOT))
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(url, proc)
        for i in range(2):
            run_level(url, model, 1, 1, 8, 10_000 + i)
        rows = [run_level(url, model, c, rounds, max_tokens, 1000 * c) for c in levels]
        return {"server": name, "levels": rows}
    except Exception as e:  # noqa: BLE001 — a peer that fails is reported, the others still run
        err = proc.stderr.read()[-800:] if proc.poll() is not None else ""
        return {"server": name, "error": f"{type(e).__name__}: {e} {err}".strip()}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def print_table(results, levels) -> None:
    print(f"\n{'server':42s} {'conc':>4s} {'tok/s':>9s} {'p50 s':>8s} {'p99 s':>8s}")
    for r in results:
        if "error" in r:
            print(f"{r['server']:42s} failed: {r['error']}")
            continue
        for lv in r["levels"]:
            print(f"{r['server']:42s} {lv['concurrency']:>4d} {lv['tok_s']:>9.1f} {lv['p50_s']:>8.3f} "
                  f"{lv['p99_s']:>8.3f}")
    ours = next((r for r in results if r["server"] == "prefswift deploy" and "levels" in r), None)
    if ours is None:
        return
    print("\nthroughput ratio prefswift deploy / peer:")
    for r in results:
        if r is ours or "levels" not in r:
            continue
        ratios = [f"c={a['concurrency']}: {a['tok_s'] / b['tok_s']:.2f}x" for a, b in zip(ours["levels"], r["levels"])]
        print(f"  vs {r['server']:40s} " + "  ".join(ratios))


def main(args) -> int:
    model_dir = build_model(Path(args.serve_model_dir).expanduser().resolve(), args.serve_hidden, args.serve_layers)
    levels = [int(c) for c in args.serve_concurrency.split(",")]
    results = []
    for name, cmd in servers(model_dir, free_port(), max(levels)):
        port = int(cmd[cmd.index("--port") + 1])
        print(f"[benchmark --serve] {name} ...", flush=True)
        results.append(bench_server(name, cmd, port, str(model_dir), levels, args.serve_rounds, args.serve_max_tokens,
                                    args.threads))
    print(f"model: random Llama hidden {args.serve_hidden}, {args.serve_layers} layers, vocab 1000 ({model_dir}); "
          f"greedy, max_tokens {args.serve_max_tokens}, {args.serve_rounds} x concurrency requests per level, "
          f"{args.threads} torch threads")
    print_table(results, levels)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all("levels" in r for r in results[:1]) else 1


def add_arguments(p) -> None:
    p.add_argument("--serve", action="store_true", help="benchmark prefswift deploy against transformers serve")
    p.add_argument("--serve_model_dir", default=str(ROOT / ".cache" / "bench-serve-llama"))
    p.add_argument("--serve_hidden", type=int, default=256)
    p.add_argument("--serve_layers", type=int, default=4)
    p.add_argument("--serve_concurrency", default="1,8,32")
    p.add_argument("--serve_rounds", type=int, default=2, help="requests per level = rounds x concurrency")
    p.add_argument("--serve_max_tokens", type=int, default=64)
