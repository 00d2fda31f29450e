"""Time `prefswift lint` on synthetic preference data (issue: 100k rows in under a minute, no model).

    python scripts/benchmark_lint.py                          # 100,000 rows, characters only
    python scripts/benchmark_lint.py --rows 20000 --model_type tiny-llama3   # tokens too (tokenizer only)

Rows are generated from a fixed seed: English prompts of ~40 words, answers of ~120 (chosen) and ~100 (rejected) words
from a 20,000-word vocabulary, with a share of planted problems (exact and near duplicates, chosen == rejected, empty
answers, prompts repeated in answers, special tokens, answers in another script), written to a JSONL file in a
temporary directory. The script runs the real command (`prefswift lint --dataset FILE`) in this process, prints its
table, the wall-clock seconds of the lint itself (reading the file included, writing the rows not) and the planted
counts next to what lint found.
"""
import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

PLANTED = ("duplicates", "near_duplicates", "chosen_equals_rejected", "empty_answers", "prompt_in_answer",
           "special_tokens", "script_mismatch")


def synthetic_rows(n: int, seed: int = 0):
    """(rows, planted counts): one problem at most per planted row, every 1 in 50 rows for each problem."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(20000)]
    text = lambda k: " ".join(rng.choices(vocab, k=k)).capitalize() + "."  # noqa: E731
    rows, clean, planted = [], [], dict.fromkeys(PLANTED, 0)
    for i in range(n):
        kind = PLANTED[i // 50 % len(PLANTED)] if i % 50 == 49 else None
        if kind == "duplicates":
            rows.append(dict(rows[rng.choice(clean)]))
        elif kind == "near_duplicates":
            src = rows[rng.choice(clean)]
            words = src["chosen"].split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
            rows.append({**src, "chosen": " ".join(words)})
        else:
            row = {"prompt": text(rng.randint(20, 60)), "chosen": text(rng.randint(60, 180)),
                   "rejected": text(rng.randint(50, 150))}
            if kind == "chosen_equals_rejected":
                row["rejected"] = row["chosen"]
            elif kind == "empty_answers":
                row["rejected"] = " "
            elif kind == "prompt_in_answer":
                row["chosen"] = row["prompt"] + " " + row["chosen"]
            elif kind == "special_tokens":
                row["chosen"] += "<|im_end|>"
            elif kind == "script_mismatch":
                row["rejected"] = "这是一个用中文写的回答，" * 10
            else:
                clean.append(len(rows))
            rows.append(row)
        if kind:
            planted[kind] += 1
    return rows, planted


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model_type", default=None, help="count tokens with this registered model's tokenizer")
    a = p.parse_args(argv)

    from prefswift.arguments import parse_command
    from prefswift.commands.lint import run_lint

    rows, planted = synthetic_rows(a.rows, a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        size = path.stat().st_size
        argv = ["--dataset", str(path), "--output_dir", tmp] + (["--model_type", a.model_type] if a.model_type else [])
        start = time.perf_counter()
        report, _ = run_lint(parse_command("lint", argv))
        seconds = time.perf_counter() - start
    found = {c.name: c.count for c in report.checks}
    print(f"\n{a.rows} rows ({size / 1e6:.0f} MB of JSONL) linted in {seconds:.1f} s")
    for name in PLANTED:
        print(f"  {name:<24} planted {planted[name]:>6}   found {found[name]:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
