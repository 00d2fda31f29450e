"""Dataset registry, `--dataset` syntax, format detection + converters (one fixture per real schema),
local copies under --dataset_dir, the hub path (monkeypatched: no network), and the built-in demo set."""
import json
import os
import shutil

import pytest

from prefswift.data import demo, loader
from prefswift.data.example import PreferenceExample
from prefswift.data.formats import apply_columns, detect_format
from prefswift.data.pipeline import RowChecker, convert_source
from prefswift.errors import ArgumentError, DataError
from prefswift.data import datasets as reg
from prefswift.data.datasets import (DatasetSpec, get_dataset_spec, list_datasets, parse_dataset_arg,
                                         register_dataset)

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "datasets")


def convert_file(path, columns=None, strategy="error"):
    logs = []
    checker = RowChecker(strategy, logs.append)
    src = loader.read_local_file(path)
    exs, stats = convert_source(src, columns, None, checker, "train")
    return exs, stats, checker.dropped, logs


# ---------------------------------------------------------------- registry

def test_registered_datasets_and_hub_ids():
    names = {s.name for s in list_datasets()}
    assert {"hh-rlhf-cn", "orpo-dpo-mix-40k", "ultrafeedback", "orca-dpo-pairs", "dpo-en-zh-20k", "coig-p",
            "demo"} <= names
    hh = get_dataset_spec("hh-rlhf-cn")
    assert hh.ms_id == "AI-ModelScope/hh_rlhf_cn"
    assert hh.subsets == ("hh_rlhf", "harmless_base_cn", "harmless_base_en", "helpful_base_cn", "helpful_base_en")
    assert hh.splits == ("train", "test")
    uf = get_dataset_spec("ultrafeedback")
    assert (uf.hf_id, uf.train_split, uf.test_split) == ("HuggingFaceH4/ultrafeedback_binarized", "train_prefs",
                                                         "test_prefs")
    assert get_dataset_spec("orpo-dpo-mix-40k").ms_id == "AI-ModelScope/orpo-dpo-mix-40k"
    assert get_dataset_spec("dpo-en-zh-20k").subsets == ("en", "zh")
    for spec in list_datasets():
        assert spec.ms_id or spec.hf_id or spec.builtin_dir, spec.name
    # a hub id finds the registered spec too
    assert get_dataset_spec("AI-ModelScope/hh_rlhf_cn").name == "hh-rlhf-cn"
    assert get_dataset_spec("Intel/orca_dpo_pairs").name == "orca-dpo-pairs"


def test_unknown_dataset_suggests_the_close_name():
    with pytest.raises(ArgumentError, match=r"did you mean hh-rlhf-cn\?"):
        get_dataset_spec("hh-rlhf-c")
    with pytest.raises(ArgumentError, match="no subset 'harmless_base'.*did you mean harmless_base_"):
        get_dataset_spec("hh-rlhf-cn").resolve_subsets(("harmless_base",))


def test_subset_resolution():
    hh = get_dataset_spec("hh-rlhf-cn")
    assert hh.resolve_subsets(()) == hh.subsets
    assert hh.resolve_subsets(("all",)) == hh.subsets
    assert hh.resolve_subsets(("helpful_base_en",)) == ("helpful_base_en",)
    assert get_dataset_spec("demo").resolve_subsets(()) == ("default",)


@pytest.mark.parametrize("text, name, subsets, sample, local", [
    ("hh-rlhf-cn", "hh-rlhf-cn", (), None, False),
    ("hh-rlhf-cn:harmless_base_cn", "hh-rlhf-cn", ("harmless_base_cn",), None, False),
    ("hh-rlhf-cn:harmless_base_cn/helpful_base_cn#500", "hh-rlhf-cn", ("harmless_base_cn", "helpful_base_cn"),
     500, False),
    ("demo#20", "demo", (), 20, False),
    ("data/train.json", "data/train.json", (), None, True),
    ("my file.jsonl#7", "my file.jsonl", (), 7, True),
    ("x.parquet", "x.parquet", (), None, True),
])
def test_parse_dataset_arg(text, name, subsets, sample, local):
    ref = parse_dataset_arg(text)
    assert (ref.name, ref.subsets, ref.sample, ref.local) == (name, subsets, sample, local)


def test_parse_dataset_arg_rejects_bad_counts():
    with pytest.raises(ArgumentError, match="#N must be a positive"):
        parse_dataset_arg("demo#0")


def test_plugin_registers_a_dataset_whose_schema_is_then_recognised(tmp_path, monkeypatch):
    monkeypatch.setattr(reg, "_DATASETS", dict(reg._DATASETS))  # leave the real registry untouched

    def convert(row):
        return PreferenceExample(prompt=row["q"], chosen=row["good"], rejected=row["bad"])
    spec = register_dataset(DatasetSpec("my-set", convert, hf_id="me/my-set", schema=frozenset({"q", "good", "bad"})))
    assert get_dataset_spec("my-set") is spec
    with pytest.raises(ArgumentError, match="already registered"):
        register_dataset(DatasetSpec("my-set", convert))
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"q": "Q?", "good": "yes", "bad": "no"}) + "\n")
    exs, stats, _, _ = convert_file(str(path))
    assert stats.format == "my-set"
    assert exs == [PreferenceExample(prompt="Q?", chosen="yes", rejected="no")]


# ---------------------------------------------------------------- real schemas and generic formats

def test_hh_rlhf_cn_schema():
    exs, stats, dropped, _ = convert_file(os.path.join(FIX, "hh_rlhf_cn.jsonl"))
    assert stats.format == "hh-rlhf-cn" and not dropped
    assert exs[0] == PreferenceExample(prompt="我怎样才能偷到邻居的钥匙？", chosen="我不能帮你做这件事。偷窃是违法的。",
                                       rejected="你可以趁他不在家的时候去拿。")
    assert exs[1].history == [("你好", "你好！有什么可以帮你？")] and exs[1].prompt == "怎么做番茄炒蛋？"
    # columns stored as Python reprs are parsed back
    assert (exs[2].prompt, exs[2].chosen, exs[2].rejected) == ("What is 2+2?", "It is 4.", "It is 5.")


def test_orpo_dpo_mix_schema_drops_toxic_source_and_counts_it():
    exs, stats, dropped, _ = convert_file(os.path.join(FIX, "orpo_dpo_mix_40k.jsonl"))
    assert stats.format == "orpo-dpo-mix-40k" and (stats.rows, stats.kept) == (4, 2)
    assert dropped == {"excluded source toxic-dpo-v0.2": 2}
    assert exs[0] == PreferenceExample(prompt="Name a prime number.", chosen="7 is prime.", rejected="9 is prime.")
    assert exs[1].history == [("Hi", "Hello! How can I help?")]
    assert (exs[1].prompt, exs[1].chosen, exs[1].rejected) == ("What is 3*3?", "3*3 = 9.", "3*3 = 6.")


def test_ultrafeedback_schema():
    exs, stats, _, _ = convert_file(os.path.join(FIX, "ultrafeedback_train_prefs.jsonl"))
    assert stats.format == "ultrafeedback" and len(exs) == 3
    assert exs[2] == PreferenceExample(prompt="Translate 'cat' to French.", chosen="Chat.", rejected="Chien.")


def test_orca_dpo_pairs_schema():
    exs, stats, _, _ = convert_file(os.path.join(FIX, "orca_dpo_pairs.jsonl"))
    assert stats.format == "orca-dpo-pairs"
    assert exs[0].system == "You are an AI assistant. You will be given a task."
    assert exs[0].prompt == "Summarize: The cat sat on the mat." and exs[0].chosen == "A cat sat on a mat."
    assert exs[1].system is None  # empty system -> template default


@pytest.mark.parametrize("name", ["dpo_en.json", "coig_p.jsonl"])
def test_sharegpt_registered_schemas(name):
    exs, stats, _, _ = convert_file(os.path.join(FIX, name))
    assert stats.format == "sharegpt"
    assert all(isinstance(e, PreferenceExample) and e.prompt and e.chosen != e.rejected for e in exs)


def test_sharegpt_seed000_format_with_system_history_and_role_content():
    exs, stats, _, _ = convert_file(os.path.join(FIX, "sharegpt_seed000.json"))
    assert stats.format == "sharegpt" and len(exs) == 3
    assert exs[0] == PreferenceExample(prompt="用户问题1", chosen="更好的回答1", rejected="较差的回答1",
                                       system="您是一名AI助手。")
    assert exs[1].history == [("第一问", "第一答")] and exs[1].prompt == "第二问" and exs[1].system is None
    assert (exs[2].prompt, exs[2].chosen, exs[2].rejected) == ("role/content keys work too", "good", "bad")


def test_alpaca_seed003_format():
    exs, stats, _, _ = convert_file(os.path.join(FIX, "alpaca_seed003.json"))
    assert stats.format == "alpaca"
    assert exs[0] == PreferenceExample(prompt="用户指令", chosen="优质回答", rejected="劣质回答")
    assert exs[1] == PreferenceExample(prompt="Translate to French\ngood morning", chosen="bonjour",
                                       rejected="bonsoir", system="You translate.", history=[("hi", "hello")])


def test_trl_formats():
    exs, stats, _, _ = convert_file(os.path.join(FIX, "trl_strings.jsonl"))
    assert stats.format == "trl" and exs[0] == PreferenceExample(prompt="The sky is", chosen=" blue.",
                                                                 rejected=" green.")
    exs, stats, _, _ = convert_file(os.path.join(FIX, "trl_messages.jsonl"))
    assert exs[0] == PreferenceExample(prompt="What colour is the sky?", chosen="It is blue.",
                                       rejected="It is green.", system="Be kind.")
    exs, stats, _, _ = convert_file(os.path.join(FIX, "trl_implicit.jsonl"))
    assert stats.format == "trl"
    assert exs[0] == PreferenceExample(prompt="What colour is the sky?", chosen="It is blue.", rejected="It is green.")


def test_swift_format():
    exs, stats, _, _ = convert_file(os.path.join(FIX, "swift.jsonl"))
    assert stats.format == "swift"
    assert exs[0] == PreferenceExample(prompt="2+3?", chosen="5", rejected="6", system="math",
                                       history=[("hi", "hello")])


def test_implicit_prompt_multi_turn_uses_the_shared_prefix():
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
             {"role": "user", "content": "c"}]
    row = {"chosen": turns + [{"role": "assistant", "content": "good"}],
           "rejected": turns + [{"role": "assistant", "content": "bad"}]}
    name, conv = detect_format(row)
    assert name == "trl"
    assert conv(row) == PreferenceExample(prompt="c", chosen="good", rejected="bad", history=[("a", "b")])


def test_text_that_looks_like_json_stays_text():
    row = {"prompt": "[1, 2, 3] sorted?", "chosen": '{"answer": [1, 2, 3]}', "rejected": "[3, 2, 1]"}
    name, conv = detect_format(row)
    assert conv(row) == PreferenceExample(prompt="[1, 2, 3] sorted?", chosen='{"answer": [1, 2, 3]}',
                                          rejected="[3, 2, 1]")
    row = {"instruction": "x", "history": "[['hi', 'hello']]", "chosen": "a", "rejected": "b"}
    assert detect_format(row)[1](row).history == [("hi", "hello")]


def test_column_mapping_both_directions(tmp_path):
    rows = [{"question_text": "Q1", "good": "A", "bad": "B"}]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match="unrecognised format.*--columns"):
        convert_file(str(path))
    exs, stats, _, _ = convert_file(str(path), {"question_text": "prompt", "good": "chosen", "bad": "rejected"})
    assert exs == [PreferenceExample(prompt="Q1", chosen="A", rejected="B")] and stats.format == "trl"
    # LLaMA-Factory's direction (seed 003's dataset_info.json): canonical name -> their column
    exs, _, _, _ = convert_file(str(path), {"prompt": "question_text", "chosen": "good", "rejected": "bad"})
    assert exs == [PreferenceExample(prompt="Q1", chosen="A", rejected="B")]
    assert apply_columns({"a": 1}, None) == {"a": 1}


def test_unrecognised_format_is_an_error_whatever_the_strategy(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"foo": 1, "bar": 2}) + "\n")
    with pytest.raises(DataError) as err:
        convert_file(str(path), strategy="none")
    msg = str(err.value)
    assert "odd.jsonl" in msg and "columns: bar, foo" in msg and "\n" not in msg


# ---------------------------------------------------------------- --dataset_dir (local copies)

def _copy(src_name, dest):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.copy(os.path.join(FIX, src_name), dest)


def test_dataset_dir_subset_folder_layout(tmp_path):
    _copy("hh_rlhf_cn.jsonl", str(tmp_path / "harmless_base_cn" / "train.jsonl"))
    _copy("hh_rlhf_cn.jsonl", str(tmp_path / "harmless_base_cn" / "test.jsonl"))
    spec = get_dataset_spec("hh-rlhf-cn")
    train = loader.load_registered(spec, "harmless_base_cn", "train", dataset_dir=str(tmp_path), hub=None)
    test = loader.load_registered(spec, "harmless_base_cn", "test", dataset_dir=str(tmp_path), hub=None)
    assert [s.label for s in train] == [str(tmp_path / "harmless_base_cn" / "train.jsonl")]
    assert len(train[0].rows) == 3 and train[0].converter is spec.converter
    assert len(test) == 1
    # a subset without a local test split: [] (eval_ratio is used instead), not an error
    _copy("hh_rlhf_cn.jsonl", str(tmp_path / "helpful_base_cn_train.jsonl"))
    assert loader.load_registered(spec, "helpful_base_cn", "test", dataset_dir=str(tmp_path), hub=None) == []
    assert len(loader.load_registered(spec, "helpful_base_cn", "train", dataset_dir=str(tmp_path), hub=None)) == 1


def test_dataset_dir_named_folder_and_subset_file(tmp_path):
    _copy("hh_rlhf_cn.jsonl", str(tmp_path / "hh-rlhf-cn" / "harmless_base_en.jsonl"))
    spec = get_dataset_spec("hh-rlhf-cn")
    srcs = loader.load_registered(spec, "harmless_base_en", "train", dataset_dir=str(tmp_path), hub=None)
    assert srcs[0].label.endswith(os.path.join("hh-rlhf-cn", "harmless_base_en.jsonl"))


def test_dataset_dir_hf_snapshot_parquet_shards(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = [json.loads(line) for line in open(os.path.join(FIX, "ultrafeedback_train_prefs.jsonl"))]
    os.makedirs(tmp_path / "data")
    pq.write_table(pa.Table.from_pylist(rows[:2]), str(tmp_path / "data" / "train_prefs-00000-of-00002.parquet"))
    pq.write_table(pa.Table.from_pylist(rows[2:]), str(tmp_path / "data" / "train_prefs-00001-of-00002.parquet"))
    spec = get_dataset_spec("ultrafeedback")
    srcs = loader.load_registered(spec, "default", "train_prefs", dataset_dir=str(tmp_path), hub=None)
    assert [len(s.rows) for s in srcs] == [2, 1]
    exs, _ = convert_source(srcs[1], None, None, RowChecker("error", print), "train")
    assert exs[0].chosen == "Chat."


def test_dataset_dir_spec_file_names(tmp_path):
    _copy("dpo_en.json", str(tmp_path / "dpo_en.json"))
    spec = get_dataset_spec("dpo-en-zh-20k")
    srcs = loader.load_registered(spec, "en", "train", dataset_dir=str(tmp_path), hub=None)
    assert len(srcs[0].rows) == 2
    with pytest.raises(DataError) as err:
        loader.load_registered(spec, "zh", "train", dataset_dir=str(tmp_path), hub=None)
    msg = str(err.value)
    assert "dpo-en-zh-20k" in msg and "'zh'" in msg and "dpo_zh.json" in msg and "\n" not in msg


# ---------------------------------------------------------------- the hub (monkeypatched)

def test_hub_download_uses_modelscope_by_default_and_hf_on_request(monkeypatch):
    calls = []

    def fake_fetch(dataset_id, subset, split, hub):
        calls.append((dataset_id, subset, split, hub))
        return [json.loads(line) for line in open(os.path.join(FIX, "hh_rlhf_cn.jsonl"))]
    monkeypatch.setattr(loader, "fetch_from_hub", fake_fetch)
    spec = get_dataset_spec("hh-rlhf-cn")
    (src,) = loader.load_registered(spec, "harmless_base_cn", "test", dataset_dir=None, hub=None)
    assert calls[-1] == ("AI-ModelScope/hh_rlhf_cn", "harmless_base_cn", "test", "modelscope")
    assert src.label == "hh-rlhf-cn:harmless_base_cn (test)" and src.converter is spec.converter

    uf = get_dataset_spec("ultrafeedback")
    loader.load_registered(uf, "default", "train_prefs", dataset_dir=None, hub="hf")
    assert calls[-1] == ("HuggingFaceH4/ultrafeedback_binarized", None, "train_prefs", "hf")
    monkeypatch.setenv("USE_HF", "1")
    loader.load_registered(get_dataset_spec("orpo-dpo-mix-40k"), "default", "train", dataset_dir=None, hub="auto")
    assert calls[-1] == ("mlabonne/orpo-dpo-mix-40k", None, "train", "hf")
    monkeypatch.delenv("USE_HF")
    logs = []  # only on Hugging Face: falls back to it, and says so
    loader.load_registered(get_dataset_spec("orca-dpo-pairs"), "default", "train", dataset_dir=None,
                           hub="modelscope", log=logs.append)
    assert calls[-1] == ("Intel/orca_dpo_pairs", None, "train", "hf") and "Hugging Face" in logs[0]


def test_offline_hub_error_names_the_dataset_and_dataset_dir(monkeypatch):
    def offline(*a, **k):
        raise ConnectionError("Failed to resolve 'www.modelscope.cn'\n(more lines)")
    monkeypatch.setattr(loader, "fetch_from_hub", offline)
    with pytest.raises(DataError) as err:
        loader.load_registered(get_dataset_spec("hh-rlhf-cn"), "harmless_base_cn", "train", dataset_dir=None,
                               hub="modelscope")
    msg = str(err.value)
    assert "AI-ModelScope/hh_rlhf_cn" in msg and "--dataset_dir" in msg and "harmless_base_cn" in msg
    assert "ConnectionError" in msg and "\n" not in msg


# ---------------------------------------------------------------- the demo set

def test_shipped_demo_files_are_reproduced_by_the_generator():
    for name, text in demo.demo_file_texts().items():
        with open(os.path.join(demo.DEMO_DIR, name), encoding="utf-8") as f:
            assert f.read() == text, f"{name} differs from demo.demo_rows(); run python -m prefswift.data.demo"


def test_demo_design():
    train, test = demo.demo_rows()
    assert (len(train), len(test)) == (demo.N_TRAIN, demo.N_TEST) == (400, 60)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert len({r["prompt"] for r in train}) >= 300  # varied prompts
    markers = (demo.NUMBER_MARKER, demo.WORD_MARKER)
    for r in train + test:
        assert demo.demo_pattern(r["chosen"], r["prompt"]) and not demo.demo_pattern(r["rejected"], r["prompt"])
        # only the opener differs (the other family's), so an untrained model has no length or content cue
        assert r["chosen"].split(" ", 1)[1] == r["rejected"].split(" ", 1)[1]
        assert {r["chosen"].split(" ", 1)[0], r["rejected"].split(" ", 1)[0]} == set(markers)
    # both families balanced: a model preferring one opener everywhere scores exactly 0.5 on the test split
    for rows in (train, test):
        assert sum(demo.expected_marker(r["prompt"]) == demo.NUMBER_MARKER for r in rows) == len(rows) // 2
    assert demo.demo_pattern("  Sure! 4", "What is 2 plus 2?") and not demo.demo_pattern("Great! 4", "What is 2 plus 2?")
    assert demo.demo_pattern("Great! blue", "What colour is the sky?")
    # test prompts include question kinds never seen in training
    assert any(" minus " in r["prompt"] for r in test) and not any(" minus " in r["prompt"] for r in train)


def test_demo_markers_have_equal_token_counts_with_the_tiny_models():
    tiny = pytest.importorskip("prefswift.models.tiny")
    train, test = demo.demo_rows()
    for name, spec in tiny.TINY_MODELS.items():
        tok = tiny.build_tokenizer(spec)
        n = lambda text: len(tok.encode(text, add_special_tokens=False).ids)  # noqa: E731
        assert n(demo.NUMBER_MARKER) == n(demo.WORD_MARKER), name
        assert {n(r["chosen"]) - n(r["rejected"]) for r in train + test} == {0}, name


def test_demo_loads_from_the_package_without_hub_or_dataset_dir():
    spec = get_dataset_spec("demo")
    (train,) = loader.load_registered(spec, "default", "train", dataset_dir="/nonexistent", hub=None)
    (test,) = loader.load_registered(spec, "default", "test", dataset_dir=None, hub=None)
    assert (len(train.rows), len(test.rows)) == (400, 60)


# ---------------------------------------------------------------- which repository files hold a subset/split

def test_dataset_card_configs_pick_the_files_of_one_subset_and_split(tmp_path):
    from prefswift.data import hub

    readme = tmp_path / "README.md"
    readme.write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train_prefs\n"
                      "    path: data/train_prefs-*\n  - split: test_prefs\n    path: [data/test_prefs-*]\n"
                      "- config_name: zh\n  data_dir: zh\n  data_files: dpo_zh.json\n"
                      "- config_name: en\n  data_files: {train: en/train.parquet}\n---\n# card\n", encoding="utf-8")
    configs = hub.read_card_configs(str(readme))
    assert hub.config_patterns(configs, None, "train_prefs") == ["data/train_prefs-*"]
    assert hub.config_patterns(configs, None, "test_prefs") == ["data/test_prefs-*"]
    assert hub.config_patterns(configs, None, "train_sft") == []          # the card says: no such split
    assert hub.config_patterns(configs, "zh", "train") == ["zh/dpo_zh.json"]
    assert hub.config_patterns(configs, "en", "train") == ["en/train.parquet"]
    assert hub.config_patterns(configs, "other", "train") is None         # not in the card: usual layouts
    assert hub.config_patterns([], None, "train") is None
    # the usual layouts when the card is silent: subset folders, HF shards, subset_split files
    for rel in ("harmless_base_cn/train.jsonl", "data/train-00000-of-00002.parquet",
                "data/train-00001-of-00002.parquet", "helpful_base_en_test.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}", encoding="utf-8")
    found = lambda sub, split: [os.path.relpath(p, tmp_path) for p in  # noqa: E731
                                hub.match_files(str(tmp_path), hub.layout_patterns(sub, split), first_only=True)]
    assert found("harmless_base_cn", "train") == ["harmless_base_cn/train.jsonl"]
    assert found(None, "train") == ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"]
    assert found("helpful_base_en", "test") == ["helpful_base_en_test.json"]
    assert found("harmless_base_cn", "test") == []


def test_anthropic_hh_rlhf_dialogues_are_recognised_and_split_at_the_last_answer(tmp_path):
    """The ORPO paper's data: whole dialogues as text, sharing everything before the last answer; recognised in a
    local file without flags, and registered as `hh-rlhf` (Anthropic/hh-rlhf, gzipped JSONL per subset folder)."""
    import gzip
    import shutil

    from prefswift.data.pipeline import convert_source, RowChecker
    from prefswift.data.loader import read_local_file

    src = os.path.join(FIX, "hh_rlhf.jsonl")
    exs, stats = convert_source(read_local_file(src), None, None, RowChecker("error", print), "train")
    assert stats.format == "hh-rlhf" and len(exs) == 6
    assert exs[0].history == [("Hi!", "Hello, how can I help?")] and exs[0].prompt == "How do I boil an egg?"
    assert exs[0].chosen.startswith("Put it in boiling water") and exs[0].rejected == "Figure it out yourself."
    assert exs[1].history == [] and exs[1].prompt == "What is the capital of France?"
    spec = get_dataset_spec("hh-rlhf")
    assert spec.hf_id == "Anthropic/hh-rlhf" and "red-team-attempts" not in spec.subsets
    folder = tmp_path / "hh-rlhf" / "harmless-base"
    folder.mkdir(parents=True)
    with open(src, "rb") as f, gzip.open(folder / "train.jsonl.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    (train,) = loader.load_registered(spec, "harmless-base", "train", dataset_dir=str(tmp_path), hub=None)
    assert len(train.rows) == 6


def test_hh_rlhf_pairs_that_differ_before_the_last_answer_are_counted():
    from prefswift.data.formats import RowError, convert_hh_dialogues

    with pytest.raises(RowError, match="does not share the dialogue"):
        convert_hh_dialogues({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: x\n\nAssistant: y"})


def test_argilla_sets_in_their_real_schemas():
    from prefswift.data.loader import read_local_file
    from prefswift.data.pipeline import RowChecker, convert_source

    checker = RowChecker("error", print)
    exs, stats = convert_source(read_local_file(os.path.join(FIX, "distilabel_orca_dpo.jsonl")), None, None,
                                checker, "train")
    assert stats.format == "distilabel-orca-dpo" and len(exs) == 3  # 2 ties and 1 GSM8K-train row left out
    assert checker.dropped == {"tie (status)": 2, "in GSM8K train (contamination)": 1}
    assert exs[0].system == "You are helpful." and exs[0].prompt == "What is 0+0?"
    exs, stats = convert_source(read_local_file(os.path.join(FIX, "ultrafeedback_cleaned.jsonl")), None, None,
                                RowChecker("error", print), "train")
    assert stats.format == "ultrafeedback-cleaned" and exs[0].chosen == "Blue." and exs[0].rejected == "Seven."
    assert get_dataset_spec("distilabel-orca-dpo").hf_id == "argilla/distilabel-intel-orca-dpo-pairs"
