"""`prefswift lint`: each check's count on small crafted files, nothing on clean data, the same drop counts as
training, truncation numbers from the tokenizer, --strict's exit code, thresholds, and the pieces (MinHash groups,
scripts, Cohen's d)."""
import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from prefswift.arguments import parse_command
from prefswift.cli import app
from prefswift.commands.lint import run_lint
from prefswift.data.pipeline import kept_lengths, truncate_pair
from prefswift.errors import ArgumentError
from prefswift.lint.checks import cohens_d
from prefswift.lint.near_duplicates import NUM_PERM, band_rows, near_duplicate_groups
from prefswift.lint.text import dominant_scripts, normalize, words

RNG = random.Random(7)
VOCAB = sorted({"".join(RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5)) for _ in range(3000)})


def sentence(n: int) -> str:
    """n five-letter words: the length in characters depends on n only (6 n)."""
    return " ".join(RNG.choice(VOCAB) for _ in range(n)).capitalize() + "."


def clean_rows(n: int):
    """Pairs with nothing to report: distinct texts, Latin script, chosen and rejected of equal length."""
    return [{"prompt": sentence(6), "chosen": sentence(25), "rejected": sentence(25)} for _ in range(n)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def lint(*argv, log=lambda *a: None):
    return run_lint(parse_command("lint", list(argv)), log=log)


def checks_of(report):
    return {c.name: c for c in report.checks}


# ---------------------------------------------------------------- crafted files


def problem_rows():
    rows = clean_rows(6)
    a, b = rows[0], rows[1]
    rows += [dict(a), {"prompt": a["prompt"].upper(), "chosen": "  " + a["chosen"], "rejected": a["rejected"]}]
    b_words = b["chosen"].split()
    b_words[10] = "zzzzz"
    rows.append({**b, "chosen": " ".join(b_words)})                                        # near duplicate of b
    rows.append({"prompt": sentence(6), "chosen": "   ", "rejected": sentence(25)})          # empty chosen
    rows.append({"prompt": sentence(6), "chosen": sentence(25), "rejected": ""})             # empty rejected
    same = sentence(25)
    rows.append({"prompt": sentence(6), "chosen": same, "rejected": same})                   # chosen == rejected
    rows.append({"prompt": sentence(6), "chosen": same.upper(), "rejected": same.lower()})   # equal but for case
    rows.append({"prompt": sentence(6), "chosen": sentence(25)})                             # missing rejected
    p = sentence(6)
    rows.append({"prompt": p, "chosen": p + " " + sentence(20), "rejected": sentence(25)})  # prompt in the answer
    rows.append({"prompt": sentence(6), "chosen": sentence(25), "rejected": sentence(24) + "<|eot_id|>"})
    rows.append({"prompt": sentence(6), "chosen": sentence(25), "rejected": "这是一个用中文写的回答。" * 3})
    return rows


def test_each_problem_is_flagged_with_its_count(tmp_path):
    rows = problem_rows()
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    report, path = lint("--dataset", data, "--eval_ratio", "0", "--output_dir", str(tmp_path / "out"))
    c = checks_of(report)
    kept = len(rows) - 4
    assert (report.rows_read, report.train_pairs, report.eval_pairs) == (len(rows), kept, 0)
    assert c["dropped"].count == 4 and c["dropped"].detail["reasons"] == {
        "empty chosen": 1, "empty rejected": 1, "chosen == rejected": 1, "missing rejected": 1}
    assert c["dropped"].total == len(rows) and c["dropped"].status == "FAIL"
    assert c["empty_answers"].count == 2 and c["empty_answers"].detail == {"chosen": 1, "rejected": 1}
    assert c["empty_answers"].examples == [f"{data} (line 10)", f"{data} (line 11)"]
    assert c["chosen_equals_rejected"].count == 2
    assert c["chosen_equals_rejected"].detail["differ only in case or spacing (kept)"] == 1
    assert c["duplicates"].count == 2  # the upper-cased copy is a duplicate too, unlike in the training summary
    assert c["duplicates"].detail == {"groups": 1, "largest_group": 3, "exact_in_training_summary": 1}
    assert c["duplicates"].examples[0] == f"{data} (line 7) repeats {data} (line 1)"
    assert c["near_duplicates"].count == 1 and c["near_duplicates"].examples == [f"{data} (line 9) ~ {data} (line 2)"]
    assert c["prompt_in_answer"].count == 1 and c["prompt_in_answer"].detail == {"chosen": 1, "rejected": 0}
    assert c["special_tokens"].count == 1 and c["special_tokens"].detail["fields"] == {"rejected": 1}
    assert c["special_tokens"].detail["found"] == {"<|eot_id|>": 1}
    assert c["script_mismatch"].count == 1
    assert c["script_mismatch"].detail["pairs"] == {"prompt/chosen": 0, "prompt/rejected": 1, "chosen/rejected": 1}
    assert c["script_mismatch"].detail["scripts"]["rejected"] == {"Latin": kept - 1, "Han": 1}
    assert c["eval_overlap"].count == 0 and c["truncated"].status == "skipped"
    # length bias in characters over the pairs kept, Cohen's d with the pooled sample standard deviation
    good = [r for r in rows if isinstance(r.get("rejected"), str) and r["chosen"].strip() and r["rejected"].strip()
            and r["chosen"].strip() != r["rejected"].strip()]
    ch, rj = np.array([len(r["chosen"]) for r in good], float), np.array([len(r["rejected"]) for r in good], float)
    d = (ch.mean() - rj.mean()) / np.sqrt((ch.var(ddof=1) + rj.var(ddof=1)) / 2)
    assert c["length_bias"].count == int((ch > rj).sum()) and c["length_bias"].value == pytest.approx(abs(d))
    assert sorted(report.failed) == sorted(["dropped", "empty_answers", "chosen_equals_rejected", "duplicates",
                                            "near_duplicates", "prompt_in_answer", "special_tokens",
                                            "script_mismatch"])
    saved = json.loads(path.read_text())
    assert saved["failed"] == report.failed and saved["checks"]["duplicates"]["count"] == 2
    assert saved["token_checks"] is False and saved["lengths"]["unit"] == "characters"


def test_clean_data_reports_nothing(tmp_path):
    data = write_jsonl(tmp_path / "clean.jsonl", clean_rows(40))
    report, _ = lint("--dataset", data, "--output_dir", str(tmp_path))
    assert report.eval_pairs == 2 and report.train_pairs == 38
    assert {c.name: (c.count, c.status) for c in report.checks if c.name != "truncated"} == {
        c.name: (0, "ok") for c in report.checks if c.name != "truncated"}
    assert not report.failed


def test_a_file_whose_rows_are_all_dropped_is_reported(tmp_path):
    rows = [{"prompt": "a b c", "chosen": "x", "rejected": "x"}, {"prompt": "d e f", "chosen": " ", "rejected": "y"}]
    report, _ = lint("--dataset", write_jsonl(tmp_path / "bad.jsonl", rows), "--output_dir", str(tmp_path))
    assert (report.train_pairs, checks_of(report)["dropped"].count) == (0, 2)
    assert report.failed == ["dropped", "empty_answers", "chosen_equals_rejected"]


def test_eval_pairs_that_repeat_training_pairs(tmp_path):
    train = clean_rows(10)
    near = train[3]["chosen"].split()
    near[5] = "zzzzz"
    val = [dict(train[1]), {**train[3], "chosen": " ".join(near)}, clean_rows(1)[0]]
    report, _ = lint("--dataset", write_jsonl(tmp_path / "t.jsonl", train), "--val_dataset",
                     write_jsonl(tmp_path / "v.jsonl", val), "--output_dir", str(tmp_path))
    c = checks_of(report)
    assert (c["eval_overlap"].count, c["eval_overlap"].total) == (2, 3)
    assert c["eval_overlap"].examples == [f"{tmp_path / 'v.jsonl'} (line 1)", f"{tmp_path / 'v.jsonl'} (line 2)"]


# ---------------------------------------------------------------- with a tokenizer


def test_truncation_counts_and_cuts_in_tokens(tmp_path, tiny_llama3_dir):
    from prefswift.data.example import PreferenceExample
    from prefswift.models.loader import load_tokenizer
    from prefswift.templates import get_template

    rows = clean_rows(6)
    rows[1]["prompt"] = sentence(40)
    rows[2]["chosen"] = sentence(90)
    data = write_jsonl(tmp_path / "long.jsonl", rows)
    report, _ = lint("--dataset", data, "--model_type", "tiny-llama3", "--max_length", "400", "--max_prompt_length",
                     "100", "--eval_ratio", "0", "--output_dir", str(tmp_path))
    tok, tmpl = load_tokenizer(tiny_llama3_dir), get_template("llama3")
    ids = [tmpl.encode_example(tok, PreferenceExample(**r)) for r in rows]
    p1 = len(ids[1]["prompt_input_ids"])
    p2, c2 = len(ids[2]["prompt_input_ids"]), len(ids[2]["chosen_input_ids"])
    assert p1 > 100 and p2 <= 100 and c2 > 400 - p2  # the rows are as meant: one long prompt, one long answer
    t = checks_of(report)["truncated"]
    assert (t.count, t.total, t.status) == (2, 6, "FAIL")
    assert t.detail["prompt"] == {"pairs_cut": 1, "mean_tokens_cut": p1 - 100, "max_tokens_cut": p1 - 100}
    cut = c2 - (400 - p2)
    assert t.detail["chosen"] == {"pairs_cut": 1, "mean_tokens_cut": cut, "max_tokens_cut": cut}
    assert t.detail["rejected"]["pairs_cut"] == 0
    assert report.length_unit == "tokens" and report.lengths["prompt"]["max"] == p1


def test_drops_are_the_training_runs_counts(tmp_path, tiny_llama3_dir):
    from prefswift.data.pipeline import build_preference_data
    from prefswift.models.loader import load_tokenizer
    from prefswift.templates import get_template

    rows = problem_rows()
    rows[0]["chosen"] = sentence(90)
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    argv = ["--dataset", data, "--max_length", "400", "--truncation_strategy", "delete"]
    report, _ = lint(*argv, "--model_type", "tiny-llama3", "--output_dir", str(tmp_path))
    trained = build_preference_data(parse_command("lint", argv).data, get_template("llama3"),
                                    load_tokenizer(tiny_llama3_dir), log=lambda *a: None)
    c = checks_of(report)
    assert c["dropped"].detail["reasons"] == trained.summary.dropped
    assert c["duplicates"].detail["exact_in_training_summary"] == trained.summary.duplicates
    assert trained.summary.dropped["too long (truncation_strategy delete)"] == c["truncated"].count == 1
    assert (report.train_pairs, report.eval_pairs) == (len(trained.train), len(trained.eval))


# ---------------------------------------------------------------- the command


def test_strict_exit_code_and_the_json_report(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", problem_rows())
    clean = write_jsonl(tmp_path / "clean.jsonl", clean_rows(20))
    runner = CliRunner()
    out = tmp_path / "out"
    failing = runner.invoke(app, ["lint", "--dataset", bad, "--output_dir", str(out), "--strict"])
    assert failing.exit_code == 1, failing.output
    assert "checks over their limit" in failing.output and (out / "lint_report.json").is_file()
    assert runner.invoke(app, ["lint", "--dataset", bad, "--output_dir", str(out)]).exit_code == 0
    passing = runner.invoke(app, ["lint", "--dataset", clean, "--output_dir", str(out), "--strict", "true"])
    assert passing.exit_code == 0 and "every check within its limit" in passing.output
    assert json.loads((out / "lint_report.json").read_text())["failed"] == []


def test_thresholds_replace_the_default_limits(tmp_path):
    rows = clean_rows(30)
    rows.append(dict(rows[0]))
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    report, _ = lint("--dataset", data, "--output_dir", str(tmp_path))
    assert report.failed == ["duplicates"]  # 1 of 31 pairs > the default 1%
    relaxed, _ = lint("--dataset", data, "--output_dir", str(tmp_path), "--thresholds", '{"duplicates": 0.05}')
    assert relaxed.failed == [] and checks_of(relaxed)["duplicates"].status == "warn"


@pytest.mark.parametrize("value,message", [
    ('{"duplicate": 0.1}', "unknown check 'duplicate' (did you mean duplicates?)"),
    ('{"duplicates": 2}', "duplicates must be a number from 0 to 1"),
    ('{"length_bias": -1}', "length_bias must be a number from 0 to any"),
    ('{"truncated": "a lot"}', "truncated must be a number"),
])
def test_bad_thresholds_are_refused_when_parsed(value, message):
    with pytest.raises(ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse_command("lint", ["--thresholds", value])


def test_options_that_do_not_act_for_lint_are_refused(tmp_path):
    for flag, value in (("--dtype", "bf16"), ("--quantization_bit", "4"), ("--adapter_name_or_path", "x")):
        with pytest.raises(ArgumentError, match=f"unknown option {flag} for `prefswift lint`"):
            parse_command("lint", [flag, value])
    with pytest.raises(ArgumentError, match="--template shapes token counts"):
        lint("--dataset", write_jsonl(tmp_path / "c.jsonl", clean_rows(3)), "--template", "chatml")


# ---------------------------------------------------------------- pieces


def jaccard(a, b):
    sa, sb = ({tuple(d[i:i + 3]) for i in range(len(d) - 2)} for d in (a, b))
    return len(sa & sb) / len(sa | sb)


def test_near_duplicate_groups_follow_exact_jaccard():
    rng = random.Random(3)
    base = [[rng.choice(VOCAB) for _ in range(60)] for _ in range(30)]
    docs = list(base)
    for k, changes in enumerate((1, 2, 3, 8, 20)):
        d = list(base[k])
        for i in range(changes):
            d[5 + 10 * i % 55] = "zzzzz"
        docs.append(d)
    labels = near_duplicate_groups(len(docs), lambda i: docs[i], 0.8)
    for k in range(5):
        similar = jaccard(docs[k], docs[30 + k]) >= 0.8
        assert (labels[30 + k] == k) == similar
    outcomes = [jaccard(docs[k], docs[30 + k]) >= 0.8 for k in range(5)]
    assert outcomes[:2] == [True, True] and outcomes[-2:] == [False, False]  # both sides of the threshold tested
    assert list(labels[:30]) == list(range(30))


@pytest.mark.parametrize("threshold,changes", [(0.8, 2), (0.5, 6)])
def test_minhash_finds_pairs_just_above_the_threshold(threshold, changes):
    """200 pairs of 60-word documents, each just above the threshold: LSH is tuned to find 99% of them."""
    rng = random.Random(threshold)
    docs = []
    for _ in range(200):
        d = [rng.choice(VOCAB) for _ in range(60)]
        e = list(d)
        for i in range(changes):
            e[3 + 7 * i] = "zzzzz"
        docs += [d, e]
    assert all(jaccard(docs[k], docs[k + 1]) >= threshold for k in range(0, 400, 2))
    labels = near_duplicate_groups(len(docs), lambda i: docs[i], threshold)
    found = sum(labels[k + 1] == k for k in range(0, 400, 2))
    assert found >= 196 and len(set(labels.tolist())) == 400 - found  # no unrelated document joins a group
    rows = band_rows(threshold)
    assert NUM_PERM % rows == 0 and 1 - (1 - threshold ** rows) ** (NUM_PERM // rows) >= 0.99


def test_scripts_and_words():
    assert dominant_scripts(["Hello there", "12 + 3", "你好，世界", "こんにちは、世界", "Привет", "مرحبا بالعالم",
                             "안녕하세요", "Ça va très bien"]) == [
        "Latin", "none", "Han", "Japanese", "Cyrillic", "Arabic", "Hangul", "Latin"]
    assert normalize("  Ｈello\tWORLD \n") == "hello world"
    assert words("it's 3.5, 你好!") == ["it", "s", "3", "5", "你", "好"]
    assert words("it's 3.5, ok!") == ["it", "s", "3", "5", "ok"]


def test_cohens_d_numbers():
    a, b = np.array([10.0, 12, 14, 16]), np.array([8.0, 9, 10, 11])
    pooled = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    assert cohens_d(a, b) == pytest.approx((13 - 9.5) / pooled)
    assert cohens_d(np.array([5.0, 5]), np.array([5.0, 5])) == 0.0


def test_kept_lengths_are_what_truncate_pair_keeps():
    rng = random.Random(0)
    for _ in range(300):
        p, c, r = rng.randint(0, 40), rng.randint(1, 40), rng.randint(1, 40)
        kept = truncate_pair(list(range(p)), list(range(c)), list(range(r)), 32, 12)
        assert kept_lengths(p, c, r, 32, 12) == tuple(map(len, kept))
