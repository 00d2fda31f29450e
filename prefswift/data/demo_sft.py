"""The built-in `demo-sft` dataset: the demo's pattern (`prefswift.data.demo`) taught by supervised fine-tuning.

The same 400 training questions as `demo`, answered the chosen way (`Sure! ...` for numbers, `Great! ...` for words,
then `Thanks for asking!`), as `messages` conversations: 300 single-turn, and 50 with two turns (each answer
trained). Its `test` split is the demo's 60 held-out questions with their chosen answers, whose question kinds and
words never occur in training, so a model that answers them with the right opener has learnt the rule, not the rows
(`prefswift infer --dataset demo-sft` then `python -m prefswift.data.demo check RESULTS.jsonl`).

Regenerate the shipped files with `python -m prefswift.data.demo_sft`; a test checks they equal `demo_sft_rows()`.
"""
import json
import os
from typing import Dict, List, Tuple

from .demo import DEMO_DIR, demo_rows

TRAIN_FILE, TEST_FILE = "demo_sft.jsonl", "demo_sft_test.jsonl"
N_TWO_TURN = 50


def _messages(*turns: Tuple[str, str]) -> Dict[str, list]:
    out = []
    for user, answer in turns:
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"messages": out}


def demo_sft_rows() -> Tuple[List[dict], List[dict]]:
    """(train, test) conversations from the demo's pairs (their prompts and chosen answers)."""
    train, test = demo_rows()
    qa = [(r["prompt"], r["chosen"]) for r in train]
    two = [_messages(qa[i], qa[i + 1]) for i in range(0, 2 * N_TWO_TURN, 2)]
    one = [_messages(t) for t in qa[2 * N_TWO_TURN:]]
    return two + one, [_messages((r["prompt"], r["chosen"])) for r in test]


def write_demo_sft_files(directory: str = DEMO_DIR) -> List[str]:
    paths = []
    for name, rows in zip((TRAIN_FILE, TEST_FILE), demo_sft_rows()):
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_demo_sft_files():
        print(f"wrote {p}")
