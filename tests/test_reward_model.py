"""`prefswift rm`: a Bradley-Terry reward model (tiny Llama 3, fp32).

Parity: one batch through prefswift's objective (`PreferenceTrainer.batch_loss`, PairCollator) and through TRL 1.16's
RewardTrainer (`compute_loss` on a batch its own collator made from pre-tokenized `chosen_ids`/`rejected_ids` rows,
which it uses as they are): the two batches hold the same ids and masks, and loss, every metric both log and every
gradient agree to 1e-5 (relative to scale, as tests/test_parity_trl.py) — plain, with TRL's `margin` column, and with
center_rewards_coefficient.

End to end: `prefswift rm` on the demo data (its accuracy rises), `prefswift eval --ckpt_dir` (pairwise accuracy and
every pair's rewards checked against plain transformers + PEFT scoring each sequence alone, without padding), the
adapter loaded with plain PEFT, the merge-lora result and a full fine-tuning result loaded with plain
AutoModelForSequenceClassification give the same scores as `prefswift.models.reward.load_reward_model`.
"""
import copy
import json

import pytest
import torch

trl = pytest.importorskip("trl")
peft = pytest.importorskip("peft")

from datasets import Dataset  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments  # noqa: E402
from trl import RewardConfig, RewardTrainer  # noqa: E402

from prefswift.algorithms.reward import RewardModel  # noqa: E402
from prefswift.arguments import parse_command  # noqa: E402
from prefswift.errors import ArgumentError  # noqa: E402
from prefswift.models.reward import load_reward_model, score_token_ids  # noqa: E402
from prefswift.scoring.collators import PairCollator  # noqa: E402
from prefswift.train.trainer import PreferenceTrainer  # noqa: E402
from prefswift.train.validation import validate  # noqa: E402
from test_parity_trl import PAIRS, _close, _compare, _step  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.*:FutureWarning")
TRL_METRICS = ("accuracy", "margin", "min_reward", "mean_reward", "max_reward")
MARGINS = [0.5, 0.0, -0.25]


# ------------------------------------------------------------------------------------------------ parity


@pytest.fixture(scope="module")
def env(tiny_llama3_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama3_dir, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tok.pad_token_id
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a score head with some spread, so rewards, margins and the loss are not ~0 and log(2)
        model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=g))
    rows = []
    for prompt, chosen, rejected in PAIRS:
        p = tok(prompt)["input_ids"]
        row = {"prompt_input_ids": p}
        for key, answer in (("chosen_input_ids", chosen), ("rejected_input_ids", rejected)):
            row[key] = tok(prompt + answer)["input_ids"][len(p):] + [tok.eos_token_id]
        rows.append(row)
    return {"tok": tok, "model": model, "rows": rows}


def _trl_batch(env, tmp_path, margin, center):
    examples = [{"chosen_ids": r["prompt_input_ids"] + r["chosen_input_ids"],
                 "rejected_ids": r["prompt_input_ids"] + r["rejected_input_ids"]} for r in env["rows"]]
    if margin:
        for example, m in zip(examples, MARGINS):
            example["margin"] = m
    args = RewardConfig(output_dir=str(tmp_path / "trl"), report_to=[], use_cpu=True, bf16=False,
                        gradient_checkpointing=False, disable_dropout=True, dataloader_num_workers=0,
                        center_rewards_coefficient=center)
    model = copy.deepcopy(env["model"])
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                            processing_class=env["tok"])
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(examples))])
    return trainer, batch


@pytest.mark.parametrize("margin,center", [(False, None), (True, None), (False, 0.01), (True, 0.3)])
def test_loss_metrics_and_gradients_match_trl_reward_trainer(env, tmp_path, margin, center):
    rows = [dict(r, margin=m) for r, m in zip(env["rows"], MARGINS)] if margin else env["rows"]
    ours_model = copy.deepcopy(env["model"])
    ours = PreferenceTrainer(model=ours_model, args=TrainingArguments(output_dir=str(tmp_path / "ours"),
                                                                      report_to=[], use_cpu=True),
                             objective=RewardModel(center_rewards_coefficient=center))
    batch = PairCollator(pad_token_id=env["tok"].pad_token_id)(rows)
    theirs, trl_batch = _trl_batch(env, tmp_path, margin, center)
    for key in ("input_ids", "attention_mask"):
        assert torch.equal(batch[key], trl_batch[key]), key
    assert ("margin" in batch) == ("margin" in trl_batch) == margin
    if margin:
        assert torch.equal(batch["margin"], trl_batch["margin"])

    a = _step(ours.model, lambda: ours.batch_loss(ours.model, batch, "train"))
    b = _step(theirs.model, lambda: theirs.compute_loss(theirs.model, dict(trl_batch)))
    our_metrics = {k: v[-1] for k, v in ours._metrics["train"].items()}
    trl_metrics = {k: v[-1] for k, v in theirs._metrics["train"].items()}
    _compare(a, b, our_metrics, trl_metrics, TRL_METRICS)
    assert "score.weight" in a[1]  # the head trains
    _close(our_metrics["rewards/accuracies"], trl_metrics["accuracy"], "rewards/accuracies")
    _close(our_metrics["rewards/margins"], trl_metrics["margin"], "rewards/margins")


# ------------------------------------------------------------------------------------------------ options


def _validate(argv):
    args = parse_command("rm", ["--model_type", "tiny-llama3", "--dataset", "demo"] + argv)
    return validate(args, "rm")


def test_options_that_do_not_act_are_refused():
    assert _validate([]).center_rewards_coefficient is None
    assert _validate(["--center_rewards_coefficient", "0.01"]).center_rewards_coefficient == 0.01
    for argv, words in ((["--beta", "0.5"], "--beta"), (["--prefix_sharing", "true"], "--prefix_sharing true"),
                        (["--packing", "true"], "--packing true"), (["--logprob_chunk_size", "64"], "--logprob")):
        with pytest.raises(ArgumentError, match=words):
            _validate(argv)
    for argv in (["--precompute_ref_log_probs", "true"], ["--rpo_alpha", "1"], ["--loss_type", "sigmoid"]):
        with pytest.raises(ArgumentError):
            parse_command("rm", argv)
    with pytest.raises(ArgumentError, match="center_rewards_coefficient"):
        parse_command("dpo", ["--center_rewards_coefficient", "0.01"])


# ------------------------------------------------------------------------------------------------ end to end


def _cli(argv, capsys, ok=True):
    from prefswift.cli import main

    with pytest.raises(SystemExit) as done:  # typer's standalone mode
        main(argv)
    captured = capsys.readouterr()
    assert (done.value.code in (0, None)) == ok, captured.out + captured.err
    return captured.out + captured.err


def _train(tmp_path, name, capsys, *extra):
    run = tmp_path / name
    _cli(["rm", "--model_type", "tiny-llama3", "--dataset", "demo", "--logging_steps", "1", "--save_strategy", "no",
          "--eval_strategy", "no", "--gradient_checkpointing", "false",
          "--output_dir", str(run), *extra], capsys)
    return run


def _plain_scores(model, pairs):
    """Each sequence scored alone (no padding) by a plain transformers / PEFT model: [(chosen, rejected)]."""
    out = []
    with torch.no_grad():
        for prompt, chosen, rejected in pairs:
            out.append(tuple(model(input_ids=torch.tensor([prompt + answer])).logits[0, 0].item()
                             for answer in (chosen, rejected)))
    return out


def _eval_pairs(tiny_llama3_dir, n):
    """The demo's held-out pairs as prefswift's eval encodes them (llama3 template)."""
    from prefswift.data.selection import select_pairs
    from prefswift.templates import get_template

    args = parse_command("eval", ["--model_type", "tiny-llama3", "--dataset", "demo"])
    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    rows, _ = select_pairs(args, get_template("llama3"), tok, saved={}, ckpt_dir=None, log=lambda *a, **k: None)
    return [(list(r["prompt_input_ids"]), list(r["chosen_input_ids"]), list(r["rejected_input_ids"]))
            for r in rows[:n]]


def test_cli_train_eval_and_plain_loading(tiny_llama3_dir, tmp_path, capsys):
    from peft import PeftModel

    # LoRA, 80 steps of 8 pairs (~10 s): held-out pairwise accuracy 0.5 -> ~0.9 (the demo's rule reads the prompt)
    run = _train(tmp_path, "lora", capsys, "--max_steps", "80", "--batch_size", "8", "--learning_rate", "5e-3")
    logs = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    acc = [r["rewards/accuracies"] for r in logs if "rewards/accuracies" in r]
    assert len(acc) == 80 and {"accuracy", "margin", "min_reward", "max_reward"} <= set(logs[0])
    assert sum(acc[-10:]) / 10 > sum(acc[:10]) / 10 + 0.25, acc  # it learns the demo's preference

    out = _cli(["eval", "--ckpt_dir", str(run), "--dataset", "demo"], capsys)
    assert "pairwise accuracy" in out
    result = json.loads(sorted((run / "adapter" / "eval_result").glob("*.json"))[-1].read_text())
    pairs = _eval_pairs(tiny_llama3_dir, len(result["pairs"]))
    assert len(pairs) == result["metrics"]["pairs"] > 0

    # brute force with plain transformers + PEFT: the saved adapter on a fresh one-label classifier
    base = AutoModelForSequenceClassification.from_pretrained(tiny_llama3_dir, num_labels=1, dtype=torch.float32)
    plain = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    scores = _plain_scores(plain, pairs)
    for (c, r), rec in zip(scores, result["pairs"]):
        _close(rec["reward_chosen"], c, "reward_chosen")
        _close(rec["reward_rejected"], r, "reward_rejected")
    accuracy = sum(c > r for c, r in scores) / len(scores)
    assert result["metrics"]["pairwise_accuracy"] == accuracy > 0.75
    _close(result["metrics"]["reward_margin"], sum(c - r for c, r in scores) / len(scores), "reward_margin")

    # load_reward_model (the door other commands use) gives the same scores
    model, tok, template = load_reward_model(run)
    assert template.name == "llama3" and tok.pad_token_id == model.config.pad_token_id
    ours = score_token_ids(model, [p + c for p, c, _ in pairs[:8]], tok.pad_token_id)
    for got, (want, _) in zip(ours.tolist(), scores[:8]):
        _close(got, want, "load_reward_model score")

    # merge-lora: a plain sequence classifier with the same scores
    _cli(["merge-lora", "--ckpt_dir", str(run)], capsys)
    merged = AutoModelForSequenceClassification.from_pretrained(run / "adapter-merged").eval()
    for got, want in zip(_plain_scores(merged, pairs[:8]), scores[:8]):
        _close(got[0], want[0], "merged chosen")
        _close(got[1], want[1], "merged rejected")

    # eval of the merged dir, compared with the adapter run on the same pairs: the same numbers
    _cli(["eval", "--ckpt_dir", str(run / "adapter-merged"), "--dataset", "demo", "--compare_to", str(run)], capsys)
    merged_result = json.loads(sorted((run / "adapter-merged" / "eval_result").glob("*.json"))[-1].read_text())
    assert merged_result["metrics"]["pairwise_accuracy"] == accuracy
    assert merged_result["compare_to"]["metrics"]["pairwise_accuracy"] == accuracy
    assert abs(merged_result["compare_to"]["deltas"]["reward_margin"]) < 1e-5

    refused = _cli(["infer", "--ckpt_dir", str(run), "--dataset", "demo"], capsys, ok=False)
    assert "is a reward model" in refused and "Traceback" not in refused  # a reward model writes no text


def test_full_fine_tuning_saves_a_plain_sequence_classifier(tiny_llama3_dir, tmp_path, capsys):
    run = _train(tmp_path, "full", capsys, "--max_steps", "2", "--batch_size", "4", "--sft_type", "full",
                 "--learning_rate", "1e-3")
    plain = AutoModelForSequenceClassification.from_pretrained(run / "final").eval()
    assert plain.config.num_labels == 1 and plain.config.pad_token_id is not None
    pairs = _eval_pairs(tiny_llama3_dir, 4)
    model, tok, _ = load_reward_model(run / "final")
    ours = score_token_ids(model, [p + r for p, _, r in pairs], tok.pad_token_id)
    for got, (_, want) in zip(ours.tolist(), _plain_scores(plain, pairs)):
        _close(got, want, "full fine-tuning score")
