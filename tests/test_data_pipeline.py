"""build_preference_data: validation strategies, always-errors, splits, sampling, truncation, summary numbers.

Uses a tiny character-level fake template/tokenizer so every length below is checkable by hand."""
import json
import os
import shutil

import pytest

from prefswift.data import loader
from prefswift.data.example import PreferenceExample
from prefswift.arguments.fields import DataArguments
from prefswift.data.pipeline import (DataSummary, PreparedData, build_preference_data, length_percentiles,
                                     sample_rows, split_by_ratio, truncate_pair)
from prefswift.errors import ArgumentError, DataError

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "datasets")
EOS = 0


class CharTokenizer:
    def encode(self, text):
        return [ord(c) for c in text]

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": self.encode(text)}

    def decode(self, ids, skip_special_tokens=False):
        return "".join(map(chr, ids))


class FakeTemplate:
    """prompt = '[system]' + 'Uq|Aa|' per history turn + 'U<prompt>|A'; responses = chars + EOS."""

    def resolve_system(self, system):
        return system or ""

    def render_prompt(self, system, history, query):
        return (f"[{system}]" if system else "") + "".join(f"U{u}|A{a}|" for u, a in history) + f"U{query}|A"

    def encode_prompt(self, tokenizer, system, history, query):
        return tokenizer.encode(self.render_prompt(system, history, query))

    def encode_response(self, tokenizer, response):
        return tokenizer.encode(response) + [EOS]

    def encode_pair(self, tokenizer, prompt_text, prompt_ids, response):
        return self.encode_response(tokenizer, response)

    def encode_example(self, tokenizer, ex):
        return {"prompt_input_ids": self.encode_prompt(tokenizer, ex.system, ex.history, ex.prompt),
                "chosen_input_ids": self.encode_response(tokenizer, ex.chosen),
                "rejected_input_ids": self.encode_response(tokenizer, ex.rejected)}


def make_args(dataset, **kw):
    base = dict(dataset=dataset, val_dataset=[], dataset_dir=None, eval_ratio=0.05, dataset_seed=42,
                max_length=2048, max_prompt_length=1024, truncation_strategy="keep_end",
                check_dataset_strategy="none", columns=None, system=None, train_dataset_sample=-1,
                val_dataset_sample=-1)
    return DataArguments(**{**base, **kw})


def build(dataset, log=None, hub="modelscope", **kw):
    logs = [] if log is None else log
    return build_preference_data(make_args(dataset, **kw), FakeTemplate(), CharTokenizer(), hub=hub,
                                 log=logs.append)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return str(path)


def good_rows(n, prefix="q"):
    return [{"prompt": f"{prefix}{i}", "chosen": f"yes {i}", "rejected": f"no {i}"} for i in range(n)]


# ---------------------------------------------------------------- pure helpers

@pytest.mark.parametrize("p, c, r, expect", [
    (8, 3, 2, (6, 3, 2)),    # prompt cut to max_prompt_length from the left; responses fit
    (8, 6, 1, (4, 6, 1)),    # prompt gives up more tokens so prompt + longest response fits
    (8, 5, 5, (5, 5, 5)),
    (3, 12, 2, (3, 7, 2)),   # short prompt kept whole; responses cut on the right
    (9, 12, 12, (4, 6, 6)),  # prompt never below max_length - max_prompt_length = 4; then responses cut
    (2, 3, 3, (2, 3, 3)),    # fits: untouched
])
def test_truncate_pair_keep_end_numbers(p, c, r, expect):
    prompt, chosen, rejected = list(range(100, 100 + p)), list(range(200, 200 + c)), list(range(300, 300 + r))
    tp, tc, tr = truncate_pair(prompt, chosen, rejected, max_length=10, max_prompt_length=6)
    assert (len(tp), len(tc), len(tr)) == expect
    assert tp == prompt[len(prompt) - len(tp):]  # the prompt keeps its end
    assert tc == chosen[:len(tc)] and tr == rejected[:len(tr)]  # responses keep their start
    assert len(tp) + max(len(tc), len(tr)) <= 10


def test_sample_rows_subsets_and_repeats_deterministically():
    items = list(range(10))
    a = sample_rows(items, 4, seed=1)
    assert a == sample_rows(items, 4, seed=1) and len(set(a)) == 4 and a == sorted(a)
    assert sample_rows(items, 4, seed=2) != a or sample_rows(items, 4, seed=3) != a
    big = sample_rows([1, 2, 3], 7, seed=0)  # ms-swift style: every row twice + 1 sampled
    assert len(big) == 7 and all(big.count(x) >= 2 for x in (1, 2, 3))
    assert sample_rows([1, 2, 3], 7, seed=0, repeat=False) == [1, 2, 3]
    assert sample_rows(items, -1, seed=0) == items and sample_rows(items, None, seed=0) == items


def test_split_by_ratio():
    items = list(range(100))
    train, held = split_by_ratio(items, 0.05, seed=42)
    assert (len(train), len(held)) == (95, 5) and not set(train) & set(held)
    assert split_by_ratio(items, 0.05, seed=42) == (train, held)
    assert split_by_ratio(items, 0.05, seed=7)[1] != held
    assert split_by_ratio(items, 0.0, seed=42) == (items, [])
    assert split_by_ratio(list(range(3)), 0.01, seed=0)[1].__len__() == 1  # at least one eval row
    assert split_by_ratio([1], 0.5, seed=0) == ([1], [])


def test_length_percentiles():
    assert length_percentiles(list(range(1, 101))) == {"p50": 50, "p90": 90, "p99": 99, "max": 100}
    assert length_percentiles([7]) == {"p50": 7, "p90": 7, "p99": 7, "max": 7}
    assert length_percentiles([]) == {"p50": 0, "p90": 0, "p99": 0, "max": 0}


# ---------------------------------------------------------------- output shape and encoding

def test_rows_hold_template_ids_and_example(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", good_rows(3))
    data = build([path], eval_ratio=0)
    assert isinstance(data, PreparedData) and isinstance(data.summary, DataSummary)
    row = data.train[0]
    assert set(row) == {"prompt_input_ids", "chosen_input_ids", "rejected_input_ids", "example"}
    assert row["example"] == PreferenceExample(prompt="q0", chosen="yes 0", rejected="no 0")
    assert row["prompt_input_ids"] == [ord(c) for c in "Uq0|A"]
    assert row["chosen_input_ids"] == [ord(c) for c in "yes 0"] + [EOS]


def test_system_override_applies_to_every_row():
    data = build([os.path.join(FIX, "sharegpt_seed000.json")], eval_ratio=0, system="SYS")
    assert [r["example"].system for r in data.train] == ["SYS"] * 3
    assert data.train[0]["prompt_input_ids"][:5] == [ord(c) for c in "[SYS]"]


# ---------------------------------------------------------------- bad rows and strategies

BAD_ROWS = [
    {"prompt": "p0", "chosen": "a", "rejected": "b"},
    {"prompt": "p1", "rejected": "b"},                        # row 1, line 2: missing chosen
    "",                                                       # blank line: skipped, not a row
    {"prompt": "p2", "chosen": "a", "rejected": "  "},        # row 2, line 4: empty rejected
    {"prompt": "p3", "chosen": "same", "rejected": "same"},   # row 3: chosen == rejected
    {"prompt": "p4", "chosen": 123, "rejected": "b"},         # row 4: wrong type
    "[1, 2]",                                                 # row 5: not an object
    {"prompt": "p6", "chosen": "a", "rejected": "b"},
]
EXPECTED_DROPS = {"missing chosen": 1, "empty rejected": 1, "chosen == rejected": 1, "wrong type in chosen": 1,
                  "row is not an object": 1}


def test_error_strategy_stops_at_the_first_bad_row_with_file_row_field(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS)
    with pytest.raises(DataError) as err:
        build([path], check_dataset_strategy="error")
    msg = str(err.value)
    assert msg.startswith(f"{path} (line 2), row 1, field 'chosen': is missing")
    path = write_jsonl(tmp_path / "bad2.jsonl", BAD_ROWS[:1] + BAD_ROWS[5:6])
    with pytest.raises(DataError, match=r"row 1, field 'chosen': expected a string or a list of messages, got int"):
        build([path], check_dataset_strategy="error")
    assert "--columns" in msg and "\n" not in msg


def test_error_strategy_names_each_problem(tmp_path):
    cases = [({"prompt": "p", "chosen": "a", "rejected": ""}, "field 'rejected': is empty"),
             ({"prompt": "p", "chosen": "x", "rejected": "x"}, "field 'rejected': is identical to chosen"),
             ({"prompt": "p", "chosen": ["x"], "rejected": "y"}, "field 'chosen'"),
             ({"conversations": [{"from": "alien", "value": "hi"}], "chosen": "a", "rejected": "b"},
              "field 'conversations': unknown role 'alien'")]
    for i, (row, expect) in enumerate(cases):
        path = write_jsonl(tmp_path / f"c{i}.jsonl", [row])
        with pytest.raises(DataError, match="row 0, " + expect.replace("(", r"\(")):
            build([path], check_dataset_strategy="error")


@pytest.mark.parametrize("strategy", ["discard", "none", "warning"])
def test_drop_strategies_count_every_reason(tmp_path, strategy):
    path = write_jsonl(tmp_path / "bad.jsonl", BAD_ROWS)
    logs = []
    data = build([path], log=logs, check_dataset_strategy=strategy, eval_ratio=0)
    assert data.summary.dropped == EXPECTED_DROPS
    assert [r["example"].prompt for r in data.train] == ["p0", "p6"]
    assert (data.summary.sources[0].rows, data.summary.sources[0].kept) == (7, 2)
    warnings = [line for line in logs if line.startswith("[prefswift] warning: ") and "dropping every row like" in line]
    assert len(warnings) == (5 if strategy == "warning" else 0)  # one line per reason, not per row
    text = data.summary.format()
    assert "dropped 5 rows" in text and "chosen == rejected" in text and "missing chosen" in text
    assert any("5 of 7 rows dropped" in line for line in logs)  # most of a file lost: said out loud


@pytest.mark.parametrize("name, content, expect", [
    ("broken.json", '[{"prompt": "a", "chosen": "b", "rejected": "c"},\n {"prompt": "a"', "malformed JSON at line 2"),
    ("broken.jsonl", '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "x", "chosen": \n',
     r"broken.jsonl \(line 2\), row 1: broken JSON line"),
    ("empty.jsonl", "\n\n", "the file is empty"),
    ("empty.json", "[]", "holds no rows"),
    ("scalar.json", "42", "expected a JSON list of rows"),
])
def test_syntax_errors_and_empty_files_are_always_errors(tmp_path, name, content, expect):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=expect) as err:
        build([str(tmp_path / name)], check_dataset_strategy="none")
    assert "\n" not in str(err.value)


def test_missing_file_and_all_rows_dropped_are_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        build([str(tmp_path / "nope.jsonl")])
    path = write_jsonl(tmp_path / "allbad.jsonl", [{"prompt": "p", "chosen": "x", "rejected": "x"}] * 3)
    with pytest.raises(DataError, match=r"no training rows left: 3 rows read, 3 dropped \(chosen == rejected: 3\)"):
        build([path], check_dataset_strategy="discard")


def test_json_lines_saved_as_json_are_read(tmp_path):
    path = write_jsonl(tmp_path / "lines.json", good_rows(2))
    assert len(build([path], eval_ratio=0).train) == 2


def test_bad_arguments(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", good_rows(2))
    with pytest.raises(ArgumentError, match="check_dataset_strategy"):
        build([path], check_dataset_strategy="ignore")
    with pytest.raises(ArgumentError, match="truncation_strategy"):
        build([path], truncation_strategy="middle")
    with pytest.raises(ArgumentError, match="max_prompt_length"):
        build([path], max_length=100, max_prompt_length=100)
    with pytest.raises(ArgumentError, match="eval_ratio"):
        build([path], eval_ratio=1.5)
    with pytest.raises(ArgumentError, match="--dataset demo"):
        build([])


# ---------------------------------------------------------------- truncation through the pipeline

def test_keep_end_truncation_and_delete_counts(tmp_path):
    rows = [{"prompt": "p" * 30, "chosen": "c" * 30, "rejected": "r" * 5},   # prompt 33, chosen 31 tokens
            {"prompt": "short", "chosen": "ok", "rejected": "no"}]          # prompt 8, responses 3
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    data = build([path], eval_ratio=0, max_length=40, max_prompt_length=20)
    long_row = data.train[0]
    assert len(long_row["prompt_input_ids"]) == 20  # min(33, 20, max(40-31, 40-20))
    assert len(long_row["chosen_input_ids"]) == 20 and long_row["chosen_input_ids"] == [ord("c")] * 20
    assert long_row["prompt_input_ids"][-2:] == [ord("|"), ord("A")]  # the prompt keeps its end
    assert long_row["prompt_input_ids"] == [ord(c) for c in "U" + "p" * 17 + "|A"]  # and its head: content is cut
    assert long_row["truncated"] == {"prompt": 13, "turns": 0, "parts": ["question"], "chosen": 11, "rejected": 0}
    assert data.summary.truncated == 1
    assert data.summary.lengths["prompt"]["max"] == 33  # lengths are reported before truncation

    deleted = build([path], eval_ratio=0, max_length=40, max_prompt_length=20, truncation_strategy="delete")
    assert len(deleted.train) == 1 and deleted.summary.dropped == {"too long (truncation_strategy delete)": 1}


def test_pairs_identical_after_truncation_are_dropped_and_counted(tmp_path):
    rows = [{"prompt": "p", "chosen": "same start" + "A" * 20, "rejected": "same start" + "B" * 20},
            {"prompt": "q", "chosen": "y", "rejected": "n"}]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    data = build([path], eval_ratio=0, max_length=12, max_prompt_length=4)
    assert data.summary.dropped == {"chosen == rejected after truncation": 1} and len(data.train) == 1


# ---------------------------------------------------------------- splits and sampling

def test_eval_ratio_split_is_deterministic(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", good_rows(40))
    a = build([path], eval_ratio=0.1)
    b = build([path], eval_ratio=0.1)
    c = build([path], eval_ratio=0.1, dataset_seed=7)
    prompts = lambda d: [r["example"].prompt for r in d.eval]  # noqa: E731
    assert (len(a.train), len(a.eval)) == (36, 4) and prompts(a) == prompts(b) != prompts(c)
    assert not {r["example"].prompt for r in a.train} & set(prompts(a))
    assert a.summary.eval_from == f"{path} eval_ratio 0.1"
    none = build([path], eval_ratio=0)
    assert (len(none.train), len(none.eval), none.summary.eval_from) == (40, 0, "none")


def test_val_dataset_replaces_the_split(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", good_rows(20))
    val = write_jsonl(tmp_path / "val.jsonl", good_rows(3, prefix="v"))
    data = build([train], val_dataset=[val], eval_ratio=0.5)
    assert len(data.train) == 20 and [r["example"].prompt for r in data.eval] == ["v0", "v1", "v2"]
    assert data.summary.eval_from == f"{val} (--val_dataset)"
    assert [s.role for s in data.summary.sources] == ["train", "eval"]


def test_own_test_split_is_used_for_the_demo():
    data = build(["demo"])
    assert (len(data.train), len(data.eval)) == (400, 60) and data.summary.eval_from == "demo test split"
    train_prompts = {r["example"].prompt for r in data.train}
    assert not train_prompts & {r["example"].prompt for r in data.eval}
    assert data.summary.dropped == {}


def test_registered_dataset_from_dataset_dir_with_its_test_split(tmp_path):
    os.makedirs(tmp_path / "harmless_base_cn")
    shutil.copy(os.path.join(FIX, "hh_rlhf_cn.jsonl"), tmp_path / "harmless_base_cn" / "train.jsonl")
    write_jsonl(tmp_path / "harmless_base_cn" / "test.jsonl",
                [{"context": [{"role": "human", "text": "测试问题"}], "chosen": {"role": "assistant", "text": "好"},
                  "rejected": {"role": "assistant", "text": "坏"}}])
    data = build(["hh-rlhf-cn:harmless_base_cn"], dataset_dir=str(tmp_path))
    assert (len(data.train), len(data.eval)) == (3, 1)
    assert data.eval[0]["example"].prompt == "测试问题" and data.summary.eval_from == "hh-rlhf-cn test split"
    # no local test split: falls back to eval_ratio, and says so
    os.remove(tmp_path / "harmless_base_cn" / "test.jsonl")
    logs = []
    data = build(["hh-rlhf-cn:harmless_base_cn"], log=logs, dataset_dir=str(tmp_path), eval_ratio=0.34)
    assert (len(data.train), len(data.eval)) == (2, 1) and any("no local 'test' split" in x for x in logs)


def test_hub_unreachable_through_the_pipeline(monkeypatch):
    def offline(*a, **k):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(loader, "fetch_from_hub", offline)
    with pytest.raises(DataError, match=r"dataset 'hh-rlhf-cn': cannot load ModelScope dataset "
                                        r"AI-ModelScope/hh_rlhf_cn .*--dataset_dir"):
        build(["hh-rlhf-cn:harmless_base_cn"])


def test_sampling_syntax_and_sample_limits(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", good_rows(10))
    assert len(build([f"{path}#4"], eval_ratio=0).train) == 4
    assert len(build([f"{path}#25"], eval_ratio=0).train) == 25  # repeats, like ms-swift
    data = build(["demo#50"])
    assert (len(data.train), len(data.eval)) == (50, 60)  # #N samples the train split only
    data = build(["demo"], train_dataset_sample=30, val_dataset_sample=10)
    assert (len(data.train), len(data.eval)) == (30, 10)
    assert build(["demo"], train_dataset_sample=1000).summary.train_size == 400  # no repetition here


def test_multiple_datasets_and_columns(tmp_path):
    mine = write_jsonl(tmp_path / "mine.jsonl", [{"q": f"x{i}", "good": "g", "bad": "b"} for i in range(4)])
    data = build([mine, os.path.join(FIX, "trl_strings.jsonl")], eval_ratio=0,
                 columns={"q": "prompt", "good": "chosen", "bad": "rejected"})
    assert len(data.train) == 6 and [s.format for s in data.summary.sources] == ["trl", "trl"]
    # a single string and a JSON string (as typed on the command line) work too
    data = build(mine, eval_ratio=0, columns='{"q": "prompt", "good": "chosen", "bad": "rejected"}')
    assert len(data.train) == 4
    with pytest.raises(ArgumentError, match="--columns"):
        build([mine], columns="{q: prompt}")


def test_summary_format_reports_sources_splits_and_lengths(tmp_path):
    rows = [{"prompt": "p" * n, "chosen": "c" * n, "rejected": "r"} for n in range(1, 11)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    logs = []
    data = build([path], log=logs, eval_ratio=0.2)
    s = data.summary
    assert (s.train_size, s.eval_size) == (8, 2)
    assert s.lengths["prompt"] == {"p50": 8, "p90": 12, "p99": 13, "max": 13}  # 'U' + n + '|A'
    assert s.lengths["chosen"] == {"p50": 6, "p90": 10, "p99": 11, "max": 11}
    assert s.lengths["rejected"]["max"] == 2
    text = s.format()
    assert text == logs[-1]
    assert f"{path}" in text and "10 rows" in text and "train 8 pairs, eval 2 pairs" in text
    assert "p50" in text and "dropped: none" in text
    assert s.to_dict()["train_size"] == 8


def test_sampling_with_repeats_never_puts_a_pair_on_both_sides_of_the_split(tmp_path):
    """`file#N` with N above the row count repeats rows; the eval split is drawn first, so no eval pair is also a
    training pair, and a file's own duplicates stay together on one side (counted in the summary)."""
    rows = good_rows(10) + good_rows(10)[:3]  # 3 exact duplicates
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    data = build([f"{path}#100"], eval_ratio=0.2)
    key = lambda r: (r["example"].prompt, r["example"].chosen, r["example"].rejected)  # noqa: E731
    train, held = {key(r) for r in data.train}, {key(r) for r in data.eval}
    assert held and not (train & held)
    assert len(data.train) == round(100 * (13 - len(data.eval)) / 13) and data.summary.duplicates == 3
    assert "duplicates: 3 rows repeat an earlier pair" in data.summary.format()
    plain = build([path], eval_ratio=0.3)
    assert not ({key(r) for r in plain.train} & {key(r) for r in plain.eval})


def test_csv_gzip_and_dataset_folders_are_read(tmp_path):
    import csv
    import gzip

    rows = good_rows(6)
    with open(tmp_path / "d.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "chosen", "rejected"])
        writer.writeheader()
        writer.writerows(rows)
    assert len(build([str(tmp_path / "d.csv")], eval_ratio=0).train) == 6
    with gzip.open(tmp_path / "d.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    assert len(build([str(tmp_path / "d.jsonl.gz")], eval_ratio=0).train) == 6
    folder = tmp_path / "my_set" / "data"
    folder.mkdir(parents=True)
    write_jsonl(folder / "train-00000-of-00001.jsonl", rows)
    assert len(build([str(tmp_path / "my_set")], eval_ratio=0).train) == 6


@pytest.mark.parametrize("name,content,needle", [
    ("d.xlsx", b"PK\x03\x04", r"not a data file prefswift reads \(\.xlsx\)"),
    ("d.jsonl.gz", b"not gzip at all", "not a readable gzip file"),
])
def test_files_that_are_not_data_say_what_they_are(tmp_path, name, content, needle):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=needle):
        build([str(tmp_path / name)])


def test_a_folder_without_a_training_split_says_so(tmp_path):
    (tmp_path / "empty_set").mkdir()
    (tmp_path / "empty_set" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="a directory without a training split"):
        build([str(tmp_path / "empty_set")])


def test_a_sampled_file_in_hub_layout_is_read_without_its_side_files(tmp_path):
    """Issue 27: `prefswift sample --output_file DIR/data/train-00000-of-00001.jsonl` leaves
    train-00000-of-00001.dropped.jsonl and .summary.json next to it (README: `<name>.dropped.jsonl`,
    `<name>.summary.json`); the folder's `data/train-*` layout matched them too, so dropped rows and the summary were
    read as pairs. The oracle is the rows written here by hand."""
    folder = tmp_path / "sampled"
    (folder / "data").mkdir(parents=True)
    rows = [dict(r, chosen_score=1.0, rejected_score=0.0, prompt_index=i) for i, r in enumerate(good_rows(6))]
    write_jsonl(folder / "data" / "train-00000-of-00001.jsonl", rows)
    write_jsonl(folder / "data" / "train-00000-of-00001.dropped.jsonl",
                [{"prompt": "q9", "samples": ["a", "a"], "scores": [1.0, 1.0], "reason": "all samples identical"}])
    (folder / "data" / "train-00000-of-00001.summary.json").write_text(json.dumps({"pairs": 6, "dropped": 1}))
    logs = []
    data = build([str(folder)], log=logs, eval_ratio=0, check_dataset_strategy="error")
    assert sorted(r["example"].prompt for r in data.train) == [f"q{i}" for i in range(6)]
    assert not any(".dropped.jsonl" in line or ".summary.json" in line for line in logs), logs
    # a bad row among several files of one folder: the error names its file and line, not the folder
    write_jsonl(folder / "data" / "train-00001-of-00002.jsonl", good_rows(2, "r") + [{"prompt": "r2", "chosen": "x"}])
    with pytest.raises(DataError) as err:
        build([str(folder)], eval_ratio=0, check_dataset_strategy="error")
    assert str(err.value).startswith(f"{folder / 'data' / 'train-00001-of-00002.jsonl'} (line 3), "), str(err.value)
