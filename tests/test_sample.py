"""`prefswift sample`: pair choice by hand, the reward model against transformers' own pooling, the judge's both-order
scores, prompt-only rows, refused options, and the whole path on tiny models — a stopped-then-resumed run writes the
same bytes as an uninterrupted one, and training reads the file without flags."""
import json
import random
import shutil

import pytest
import torch

from prefswift.arguments import parse_command
from prefswift.data.prompts import PromptItem, collect_prompts
from prefswift.data.sampled import ALL_EQUAL, FEW, IDENTICAL, TIE, choose_pair, mix_seed
from prefswift.errors import ArgumentError, DataError

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory, tiny_llama3_dir):
    """A tiny sequence-classification model (the tiny Llama's config, one label) with the tiny Llama's tokenizer."""
    from transformers import AutoConfig, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("rm")
    config = AutoConfig.from_pretrained(tiny_llama3_dir)
    config.num_labels, config.architectures = 1, ["LlamaForSequenceClassification"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForSequenceClassification(config)
        with torch.no_grad():
            model.score.weight.normal_(0.0, 1.0)  # rewards of a visible spread
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny_llama3_dir / name, out / name)
    return out


def test_choose_pair_by_hand():
    rng = random.Random(0)
    assert choose_pair(["a", "b", "c"], [0.5, 2.0, -1.0], "best_worst", rng) == ((1, 2), None)
    assert choose_pair(["a", "b", "c", "d"], [3.0, 3.0, 1.0, 1.0], "best_worst", rng) == ((0, 2), None)  # firsts
    assert choose_pair([" x", "x ", "x"], [1.0, 2.0, 3.0], "best_worst", rng) == (None, IDENTICAL)
    assert choose_pair(["a", "b"], [1.0, 1.0], "best_worst", rng) == (None, ALL_EQUAL)
    assert choose_pair(["a", " ", ""], [1.0, 5.0, 9.0], "best_worst", rng) == (None, FEW)  # empties never chosen
    assert choose_pair(["a", "", "b"], [1.0, 9.0, 0.0], "best_worst", rng) == ((0, 2), None)
    assert choose_pair(["a", "b", "c"], [2.0, 2.0, 0.0], "best_random", random.Random(1)) in (
        ((0, 1), None), ((0, 2), None), (None, TIE))
    picks = {choose_pair(["a", "b", "c"], [2.0, 2.0, 0.0], "best_random", random.Random(s)) for s in range(20)}
    assert picks == {(None, TIE), ((0, 2), None)}  # the random other ties with the best half of the time
    assert mix_seed(42, 0) != mix_seed(42, 1) and mix_seed(42, 3) == mix_seed(42, 3) and mix_seed(42, 3) < 2 ** 32


def test_reward_scorer_is_the_models_own_last_token_logit(reward_dir, tiny_llama3_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from prefswift.evaluate.scorers import load_reward_scorer
    from prefswift.templates import get_template

    scorer = load_reward_scorer(str(reward_dir), get_template("llama3"), batch_size=3)
    item = PromptItem("What is 2 plus 2?", system="Be brief.", history=(("Hi", "Hello!"),))
    answers = ["4", "It is four, of course.", "", "Five? Maybe six."]
    got = scorer.score(item, answers)  # right-padded batches of 3 and 1
    model = AutoModelForSequenceClassification.from_pretrained(reward_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    for answer, value in zip(answers, got):  # the shipped chat template, one unpadded sequence at a time
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": item.prompt},
                    {"role": "assistant", "content": answer}]
        ids = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        with torch.no_grad():
            expected = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
        assert value == pytest.approx(expected, abs=1e-5)
    assert len(set(got)) == 4


class TextJudge:
    """Prefers the longer answer wherever it stands, with a position bias on top."""

    def probabilities(self, question, a, b):
        pa = 0.5 + 0.1 + (0.2 if len(a) > len(b) else -0.2 if len(a) < len(b) else 0.0)  # A gets +0.1 for position
        return {"A": pa, "B": 0.9 - pa, "tie": 0.1}


class FirstJudge:
    def probabilities(self, question, a, b):
        return {"A": 0.7, "B": 0.2, "tie": 0.1}


def test_judge_scores_average_both_orders():
    from prefswift.evaluate.scorers import JudgeScorer

    item = PromptItem("q")
    scores = JudgeScorer(TextJudge(), "judge t").score(item, ["aa", "a", "aaa"])
    # pair (aa, a): aa first 0.8, second: B of (a, aa) = 0.9 - 0.4 = 0.5 -> 0.65; a: (0.1 + 0.4) / 2 = 0.25
    # pair (aa, aaa): aa 0.4 / B of (aaa, aa) = 0.9 - 0.8 = 0.1 -> 0.25; aaa: (0.5 + 0.8) / 2 = 0.65
    # pair (a, aaa): a 0.25; aaa 0.65.  Means over the 2 others:
    assert scores == pytest.approx([(0.65 + 0.25) / 2, (0.25 + 0.25) / 2, (0.65 + 0.65) / 2])
    assert len(set(JudgeScorer(FirstJudge(), "judge f").score(item, ["x", "y", "z"]))) == 1  # bias alone: all equal


def test_prompts_from_prompt_only_and_paired_rows(tmp_path):
    rows = [{"prompt": "One?"}, {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Two?"},
                                              {"role": "assistant", "content": "answer"}]},
            {"instruction": "Three", "input": "now"}, {"query": "Four?", "history": [["h", "a"]]},
            {"prompt": "Five?", "chosen": "y", "rejected": "n"}, {"prompt": "One?"}, {"other": 1},
            {"prompt": "Six?", "completion": "c", "label": True}]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = parse_command("sample", ["--dataset", str(path), "--reward_model", "x"])
    got = collect_prompts(args.data, log=lambda *a: None)
    assert [(p.system, p.history, p.prompt) for p in got.items] == [
        (None, (), "One?"), ("S", (), "Two?"), (None, (), "Three\nnow"), (None, (("h", "a"),), "Four?"),
        (None, (), "Five?"), (None, (), "Six?")]
    assert got.repeats == 1 and got.dropped == {"no prompt": 1} and got.rows == 8
    strict = parse_command("sample", ["--dataset", str(path), "--reward_model", "x", "--check_dataset_strategy",
                                      "error"])
    with pytest.raises(DataError, match="line 7"):
        collect_prompts(strict.data, log=lambda *a: None)


def test_refused_options(tmp_path):
    from prefswift.commands.sample import check_options

    base = ["--model_type", "tiny-llama3", "--dataset", "demo"]
    for extra, match in ((["--reward_model", "r", "--judge_model", "j"], "not both"), ([], "one scorer"),
                         (["--reward_model", "r", "--temperature", "0"], "above 0"),
                         (["--reward_model", "r", "--output_file", "x.json"], ".jsonl")):
        with pytest.raises(ArgumentError, match=match):
            check_options(parse_command("sample", base + extra))
    for flag in (["--do_sample", "true"], ["--val_dataset", "x.jsonl"], ["--eval_ratio", "0.1"],
                 ["--infer_output", "x"], ["--max_length", "10"]):
        with pytest.raises(ArgumentError, match="unknown option"):
            parse_command("sample", base + flag)
    args = parse_command("sample", base + ["--reward_model", "r"])
    assert (args.infer.temperature, args.infer.top_p, args.infer.top_k) == (1.0, 1.0, 0)  # sample's own defaults
    assert parse_command("infer", base).infer.temperature == 0.3  # the others keep theirs


def _run(tmp_path, reward_dir, out, *extra):
    from prefswift.commands.sample import run_sample

    argv = ["--model_type", "tiny-llama3", "--dataset", "demo", "--train_dataset_sample", "6", "--num_samples", "4",
            "--reward_model", str(reward_dir), "--max_new_tokens", "5", "--sample_batch_size", "4",
            "--output_file", str(out), *extra]
    return run_sample(parse_command("sample", argv), log=lambda *a: None)


def test_sample_resumes_to_the_same_bytes_and_training_reads_it(tmp_path, reward_dir):
    from prefswift.data.datasets import match_schema
    from prefswift.data.pipeline import collect_examples
    from prefswift.commands.train import run_training
    from prefswift.data.sampled import side_files
    from prefswift.data.unpaired import unpair
    from prefswift.evaluate.scorers import load_reward_scorer
    from prefswift.templates import get_template

    whole = _run(tmp_path, reward_dir, tmp_path / "a" / "s.jsonl")
    part = tmp_path / "b" / "s.jsonl"
    _run(tmp_path, reward_dir, part, "--max_prompts", "3")  # stops inside the first block of 4
    assert json.loads(side_files(part)[1].read_text())["finished"] is False
    with open(part, "a", encoding="utf-8") as f:
        f.write('{"prompt": "torn')  # a run killed mid-line
    with pytest.raises(ArgumentError, match="--resume true continues it"):
        _run(tmp_path, reward_dir, part)
    _run(tmp_path, reward_dir, part, "--resume", "true")
    for a, b in zip((whole, *side_files(whole)[:1]), (part, *side_files(part)[:1])):
        assert a.read_bytes() == b.read_bytes()
    with pytest.raises(ArgumentError, match="other settings.*num_samples"):
        _run(tmp_path, reward_dir, part, "--resume", "true", "--num_samples", "3")
    _run(tmp_path, reward_dir, part, "--overwrite", "true", "--seed", "7")  # replaced: other draws
    assert part.read_bytes() != whole.read_bytes()
    alien = tmp_path / "c" / "s.jsonl"
    alien.parent.mkdir()
    alien.write_text("{}\n")
    with pytest.raises(ArgumentError, match="not written by prefswift sample"):
        _run(tmp_path, reward_dir, alien, "--overwrite", "true")
    assert alien.read_text() == "{}\n"  # never replaced: prefswift did not write it

    rows = [json.loads(line) for line in whole.read_text().splitlines()]
    dropped = [json.loads(line) for line in side_files(whole)[0].read_text().splitlines()]
    summary = json.loads(side_files(whole)[1].read_text())
    assert sorted(r["prompt_index"] for r in rows + dropped) == list(range(6))
    assert summary["finished"] and summary["pairs"] == len(rows) and sum(summary["dropped"].values()) == len(dropped)
    assert len(rows) >= 4
    scorer = load_reward_scorer(str(reward_dir), get_template("llama3"))
    for row in rows:
        assert len(row["samples"]) == 4 and row["chosen"] != row["rejected"] and match_schema(row) is None
        assert row["chosen_score"] == max(row["scores"]) and row["rejected_score"] == min(row["scores"])
        assert row["chosen"] == row["samples"][row["scores"].index(max(row["scores"]))]
        assert row["policy"] == "tiny-llama3" and row["scorer"].startswith("reward_model ")
    first = rows[0]
    assert scorer.score(PromptItem(first["prompt"]), first["samples"]) == pytest.approx(first["scores"], abs=1e-5)

    data = parse_command("dpo", ["--dataset", str(whole), "--eval_ratio", "0"]).data
    got = collect_examples(data, log=lambda *a: None)
    assert [(e.prompt, e.chosen, e.rejected) for e in got.train] == [(r["prompt"], r["chosen"], r["rejected"])
                                                                      for r in rows]
    assert len(unpair(collect_examples(data, log=lambda *a: None, unpaired=True).train)) == 2 * len(rows)  # kto
    for algo in ("dpo", "kto"):  # train on it with no data flags
        argv = ["--model_type", "tiny-llama3", "--dataset", str(whole), "--output_dir", str(tmp_path / algo),
                "--max_steps", "1", "--batch_size", "2", "--save_strategy", "no"]
        run_dir = run_training(parse_command(algo, argv), algo, log=lambda *a, **k: None)
        assert (run_dir / "adapter" / "adapter_config.json").is_file()


def test_lint_reads_sampled_groups_and_flags_identical_samples(tmp_path):
    from prefswift.commands.lint import run_lint

    def row(i, samples, c, r, cs, rs):
        return {"prompt": f"Question number {i}?", "chosen": c, "rejected": r, "chosen_score": cs,
                "rejected_score": rs, "scores": [cs, rs, 0.0], "samples": samples, "policy": "p", "scorer": "s",
                "prompt_index": i}

    rows = [row(0, ["Same answer", "same  ANSWER", "Same answer"], "Same answer", "same  ANSWER", 1.0, 0.5),
            row(1, ["Yes.", "No.", "Maybe."], "No.", "Yes.", 0.2, 0.7),  # chosen scored below rejected
            row(2, ["Red.", "Blue.", "Green."], "Red.", "Blue.", 2.0, -1.0)]
    path = tmp_path / "sampled.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report, _ = run_lint(parse_command("lint", ["--dataset", str(path), "--eval_ratio", "0", "--output_dir",
                                                str(tmp_path / "lint")]), log=lambda *a: None)
    check = {c.name: c for c in report.checks}["identical_samples"]
    assert (check.count, check.total, check.status) == (1, 3, "FAIL") and "identical_samples" in report.failed
    assert check.detail["k"] == {3: 3} and check.detail["distinct_samples"] == {1: 1, 3: 2}
    assert check.detail["chosen_not_above_rejected"] == 1 and check.detail["score_margin"]["p50"] == 0.5
    assert check.examples[0].endswith("(line 1)") and "score order" in check.examples[1]
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"prompt": "Hi there?", "chosen": "Hello.", "rejected": "Go."}) + "\n")
    report, _ = run_lint(parse_command("lint", ["--dataset", str(plain), "--eval_ratio", "0", "--output_dir",
                                                str(tmp_path / "lint2")]), log=lambda *a: None)
    check = {c.name: c for c in report.checks}["identical_samples"]
    assert (check.count, check.total, check.status) == (0, 0, "ok")


def test_sample_with_a_judge_model_from_a_checkpoint(tmp_path):
    from prefswift.commands.sample import run_sample
    from test_merge import make_adapter

    ckpt = make_adapter("tiny-llama3", tmp_path / "run" / "checkpoint-2", scale=3.0)
    out = tmp_path / "j.jsonl"
    run_sample(parse_command("sample", ["--ckpt_dir", str(ckpt), "--dataset", "demo", "--train_dataset_sample",
                                        "2", "--num_samples", "3", "--judge_model", "tiny-qwen", "--max_new_tokens",
                                        "4", "--output_file", str(out), "--pair_strategy", "best_random"]),
               log=lambda *a: None)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    dropped = out.with_name("j.dropped.jsonl").read_text().splitlines()
    assert len(rows) + len(dropped) == 2
    for row in rows:  # scores: mean preference probabilities, in [0, 1]
        assert row["policy"] == str(ckpt) and row["scorer"] == "judge tiny-qwen"
        assert all(0 <= s <= 1 for s in row["scores"])
        assert row["chosen_score"] == max(row["scores"]) and row["rejected_score"] < row["chosen_score"]


def test_the_judge_sees_earlier_turns():
    from prefswift.evaluate.scorers import JudgeScorer

    assert JudgeScorer.question(PromptItem("Why?", history=(("Hi", "Hello!"),))) == \
        "User: Hi\nAssistant: Hello!\nUser: Why?"
    assert JudgeScorer.question(PromptItem("Why?")) == "Why?"
