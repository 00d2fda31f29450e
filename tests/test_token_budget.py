"""--max_tokens_per_batch bounds the tensors the forward gets, in every layout (prefix-shared or chosen/rejected rows,
packed or not, padded to a multiple), and DDP with uneven per-rank batches logs what one process logs over the same
batches. The oracle for the bound is the shape of the collated tensors, not the sampler's own count."""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from prefswift.scoring.collators import PairCollator, PrefixSharedCollator
from prefswift.train.collate import token_budget_sampler

ROOT = Path(__file__).parent.parent

LAYOUTS = {
    "prefix-shared packed": PrefixSharedCollator(pad_token_id=0, packing=True),
    "prefix-shared one pair per row": PrefixSharedCollator(pad_token_id=0, packing=False),
    "prefix-shared padded to 8": PrefixSharedCollator(pad_token_id=0, packing=False, pad_to_multiple_of=8),
    "chosen/rejected rows packed": PairCollator(pad_token_id=0, packing=True),
    "chosen/rejected rows one per row": PairCollator(pad_token_id=0, packing=False),
    "chosen/rejected one row (varlen)": PairCollator(pad_token_id=0, packing=True, one_row=True),
}


def synthetic_rows(n=300, seed=0):
    rng = random.Random(seed)
    return [{"prompt_input_ids": [5] * rng.randint(1, 60), "chosen_input_ids": [6] * rng.randint(1, 40),
             "rejected_input_ids": [7] * rng.randint(1, 40)} for _ in range(n)]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_batch_the_forward_sees_fits_the_budget(name):
    collator, rows, budget = LAYOUTS[name], synthetic_rows(), 400
    sampler = token_budget_sampler(rows, collator, budget, seed=1)
    seen = []
    for batch in sampler:
        tensors = collator([rows[i] for i in batch])
        shape = tuple(tensors["input_ids"].shape)
        assert shape[0] * shape[1] <= budget or len(batch) == 1, (batch, shape)
        if "attention_mask" in tensors and tensors["attention_mask"].dim() == 4:  # [R, 1, T, T]: the same R x T
            assert tuple(tensors["attention_mask"].shape[::3]) == shape
        seen += batch
    assert sorted(seen) == list(range(len(rows)))  # every pair once per epoch
    assert len(sampler) < 0.75 * len(rows)  # and batches of several pairs, not one pair each


def test_a_pair_longer_than_the_budget_gets_a_batch_of_its_own():
    rows = synthetic_rows(40) + [{"prompt_input_ids": [5] * 300, "chosen_input_ids": [6], "rejected_input_ids": [7]}]
    sampler = token_budget_sampler(rows, PrefixSharedCollator(pad_token_id=0), 200, seed=0)
    assert [40] in list(sampler)


# ---- real runs ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def varied_pairs(tmp_path_factory):
    path = tmp_path_factory.mktemp("budget") / "pairs.jsonl"
    rows = []
    for i in range(24):  # one long pair: its row leaves room for two short ones when packed, not when unpacked
        words = " ".join(f"w{j}" for j in range(80 if i == 1 else 1 + (i * 7) % 23))
        rows.append({"prompt": f"Q{i}: {words}?" if i % 3 else f"Q{i}?",
                     "chosen": f"A good answer {i}" + " yes" * ((i * 5) % 11),
                     "rejected": "no" + " bad" * ((i * 3) % 13)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_training_run_batches_within_the_budget_without_packing(tmp_path, varied_pairs):
    """The issue's case: --packing false with prefix sharing, one pair per row: the budget bounds rows x length."""
    from transformers import TrainerCallback

    from prefswift.arguments import parse_command
    from prefswift.commands.train import run_training

    class Shapes(TrainerCallback):
        shapes = []

        def on_train_end(self, args, state, control, train_dataloader=None, **kwargs):
            self.shapes += [(tuple(b["input_ids"].shape), int(b["pred_index"].shape[0])) for b in train_dataloader]

    argv = ["--model_type", "tiny-llama3", "--dataset", str(varied_pairs), "--output_dir", str(tmp_path / "run"),
            "--eval_ratio", "0", "--max_steps", "1", "--save_strategy", "no", "--max_tokens_per_batch", "560",
            "--packing", "false"]
    shapes = Shapes()
    run_training(parse_command("dpo", argv), "dpo", log=lambda *a, **k: None, callbacks=[shapes])
    assert sum(pairs for _, pairs in shapes.shapes) == 24
    assert any(pairs > 1 for _, pairs in shapes.shapes)
    for (rows, length), pairs in shapes.shapes:
        assert rows * length <= 560 or pairs == 1, shapes.shapes


def _train(data, out, nproc, extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("NPROC_PER_NODE", None)
    if nproc > 1:
        env["NPROC_PER_NODE"] = str(nproc)
    argv = [sys.executable, "-m", "prefswift", "dpo", "--model_type", "tiny-llama3", "--dataset", str(data),
            "--output_dir", str(out), "--max_steps", "3", "--save_strategy", "no", "--logging_steps", "1",
            "--eval_ratio", "0", "--learning_rate", "0.1", "--optim", "sgd", "--lora_dropout_p", "0",
            "--gradient_checkpointing", "false", "--max_tokens_per_batch", "160", *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines() if '"loss"' in line]


# slow, covered by two processes equal one: test_distributed.py::test_two_process_ddp_equals_one_process[dpo]; the
#   budget: the other tests here
@pytest.mark.slow
def test_two_processes_with_a_token_budget_log_what_one_process_logs(tmp_path, varied_pairs):
    """Rank r takes batches r, r+2, ... (ranks hold different numbers of pairs); one process with 2 accumulation
    steps takes the same batches as its micro-batches: the same global batches, so the same losses and metrics."""
    one = _train(varied_pairs, tmp_path / "one", 1, ["--gradient_accumulation_steps", "2"])
    two = _train(varied_pairs, tmp_path / "two", 2, [])
    assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2, 3]
    keys = ["loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
            "logps/rejected"]
    for a, b in zip(one, two):
        for key in keys:
            assert a[key] == pytest.approx(b[key], abs=1e-5), (a["step"], key, a[key], b[key])
