"""End to end against tests/mock_hub.py with the real client libraries (modelscope, huggingface_hub).

Each scenario runs prefswift in a subprocess (the clients read their endpoint settings at import), pointed at the
mock by the clients' own settings (MODELSCOPE_ENDPOINT, HF_ENDPOINT) and with HTTP(S)_PROXY = the mock, so any
request for another host is caught in `hub.escaped` instead of leaving the machine.
"""
import gzip
import io
import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from mock_hub import GOOD_TOKEN, MockHub  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "datasets")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HH_SUBSETS = ("hh_rlhf", "harmless_base_cn", "harmless_base_en", "helpful_base_cn", "helpful_base_en")


def fixture_bytes(name: str) -> bytes:
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def parquet_bytes(jsonl_name: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in fixture_bytes(jsonl_name).decode().splitlines() if line.strip()]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def card(configs: str) -> bytes:
    return f"---\nlicense: mit\nconfigs:\n{configs}---\n# Dataset card\n".encode()


def make_hub(model_dir) -> MockHub:
    """The real repo ids, in the real layouts, holding the fixture rows and the built-in tiny Qwen."""
    hub = MockHub()
    model = {str(p.relative_to(model_dir)): p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    model["pytorch_model.bin"] = b"pickled weights prefswift must not download"
    model["original/consolidated.00.pth"] = b"Meta's checkpoint prefswift must not download"
    hub.add("modelscope", "model", "qwen/Qwen2.5-0.5B-Instruct", model)
    hub.add("hf", "model", "Qwen/Qwen2.5-0.5B-Instruct", model)
    hub.add("modelscope", "model", "LLM-Research/Meta-Llama-3-8B-Instruct", model, gated=True)
    hub.add("modelscope", "model", "01ai/Yi-6B-Chat", model)  # the seeds' model types, as tiny stand-ins
    from prefswift.models.tiny import ensure_tiny_model

    llama = ensure_tiny_model("tiny-llama3")
    hub.add("modelscope", "model", "LLM-Research/Meta-Llama-3-8B",
            {str(p.relative_to(llama)): p.read_bytes() for p in llama.rglob("*") if p.is_file()})
    hub.add("hf", "model", "meta-llama/Meta-Llama-3-8B-Instruct", model, gated=True)
    hh = fixture_bytes("hh_rlhf_cn.jsonl")  # hh_rlhf_cn (= dikw/hh_rlhf_cn): flat SUBSET_train/test.jsonl files
    files = {"README.md": b"# hh_rlhf_cn\n", "hh_rlhf_prompt.jsonl": b"not preference data: never downloaded"}
    for subset in HH_SUBSETS:
        files[f"{subset}_train.jsonl"] = hh
        files[f"{subset}_test.jsonl"] = hh.splitlines(keepends=True)[0]
    hub.add("modelscope", "dataset", "AI-ModelScope/hh_rlhf_cn", files)
    anthropic = {"README.md": b"# hh-rlhf\n"}  # Anthropic/hh-rlhf: one folder per subset, gzipped JSON lines
    for subset in ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"):
        anthropic[f"{subset}/train.jsonl.gz"] = gzip.compress(fixture_bytes("hh_rlhf.jsonl"))
        anthropic[f"{subset}/test.jsonl.gz"] = gzip.compress(fixture_bytes("hh_rlhf.jsonl").splitlines(True)[0])
    anthropic["red-team-attempts/red_team_attempts.jsonl.gz"] = gzip.compress(b'{"transcript": "not pairs"}\n')
    hub.add("hf", "dataset", "Anthropic/hh-rlhf", anthropic)
    uf = {"README.md": card("- config_name: default\n  data_files:\n  - split: train_prefs\n"
                            "    path: data/train_prefs-*\n  - split: test_prefs\n    path: data/test_prefs-*\n"
                            "  - split: train_sft\n    path: data/train_sft-*\n"),
          "data/train_prefs-00000-of-00001.parquet": parquet_bytes("ultrafeedback_train_prefs.jsonl"),
          "data/test_prefs-00000-of-00001.parquet": parquet_bytes("ultrafeedback_test_prefs.jsonl"),
          "data/train_sft-00000-of-00001.parquet": b"not needed: never downloaded"}
    hub.add("hf", "dataset", "HuggingFaceH4/ultrafeedback_binarized", uf)
    mix = {"README.md": card("- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"),
           "data/train-00000-of-00001.parquet": parquet_bytes("orpo_dpo_mix_40k.jsonl")}
    hub.add("hf", "dataset", "mlabonne/orpo-dpo-mix-40k", mix)
    hub.add("modelscope", "dataset", "AI-ModelScope/orpo-dpo-mix-40k", mix)
    hub.add("hf", "dataset", "Intel/orca_dpo_pairs", {"orca_rlhf.jsonl": fixture_bytes("orca_dpo_pairs.jsonl")},
            gated=True)
    return hub.start()


@pytest.fixture
def hub(tiny_qwen_dir):
    h = make_hub(tiny_qwen_dir)
    yield h
    h.stop()


def run(hub: MockHub, cache, args, *, script=None, env=None, timeout=300):
    """prefswift ARGS (or python -c SCRIPT) in a subprocess talking to `hub` only, caches under `cache`."""
    full = {k: v for k, v in os.environ.items()
            if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "USE_HF", "HF_TOKEN",
                         "MODELSCOPE_API_TOKEN")}
    full.update(hub.env(), MODELSCOPE_CACHE=str(cache / "ms"), MODELSCOPE_HOME=str(cache / "ms_home"),
                HF_HOME=str(cache / "hf"),
                HF_DATASETS_CACHE=str(cache / "hf_datasets"), PYTHONPATH=ROOT, **(env or {}))
    cmd = [sys.executable, "-c", script] if script else [sys.executable, "-m", "prefswift", *args]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=timeout, cwd=str(cache))


def error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def train_args(out, *extra):
    return ["dpo", "--model_type", "qwen2.5-0.5b-instruct", "--max_steps", "2", "--output_dir", str(out),
            "--lora_target_modules", "ALL", *extra]


def fetched(hub: MockHub, needle: str) -> list:
    return [p for m, p in hub.requests if m == "GET" and needle in p]


# ---------------------------------------------------------------- ModelScope (the default hub)

@pytest.mark.slow  # ModelScope end to end, then the cache: test_hub_blackhole runs the same command by default
def test_dpo_seed_command_end_to_end_on_modelscope_then_from_the_cache_with_the_hub_gone(hub, tmp_path):
    proc = run(hub, tmp_path, train_args(tmp_path / "out", "--dataset", "hh-rlhf-cn:harmless_base_cn"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "out" / "adapter").is_dir()
    assert hub.escaped == [] and hub.requests
    # the model's safetensors came from the ModelScope API; the pickles and original/ were skipped
    assert fetched(hub, "/api/v1/models/qwen/Qwen2.5-0.5B-Instruct/repo?") and \
        any("model.safetensors" in p for p in fetched(hub, "/api/v1/models/qwen/"))
    assert not [p for _, p in hub.requests if ".bin" in p or ".pth" in p or "original" in p]
    # only the requested subset's files
    data = fetched(hub, "/api/v1/datasets/AI-ModelScope/hh_rlhf_cn/repo?")
    assert data and all("harmless_base_cn" in p or "README" in p for p in data)
    steps = [json.loads(x) for x in (tmp_path / "out" / "logging.jsonl").read_text().splitlines()]
    assert any("loss" in s for s in steps)

    hub.stop()  # second run: nothing answers any more; everything comes from the clients' caches
    quick = {"MODELSCOPE_API_MAX_RETRIES": "1", "MODELSCOPE_REPO_TREE_PAGE_MAX_ATTEMPTS": "1"}  # fail fast
    proc = run(hub, tmp_path, train_args(tmp_path / "out2", "--dataset", "hh-rlhf-cn:harmless_base_cn"), env=quick)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "out2" / "adapter").is_dir()

    # a dead network without a cache: one clear line naming the way to work offline
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    line = error_line(run(hub, fresh, train_args(fresh / "out", "--dataset", "hh-rlhf-cn:harmless_base_cn"),
                          env=quick))
    assert "qwen/Qwen2.5-0.5B-Instruct" in line and "--model_id_or_path" in line


# ---------------------------------------------------------------- Hugging Face

@pytest.mark.slow  # Hugging Face end to end: test_the_orpo_papers_hh_rlhf_from_hugging_face
def test_dpo_end_to_end_on_hugging_face_with_an_hf_dataset(hub, tmp_path):
    proc = run(hub, tmp_path, train_args(tmp_path / "out", "--hub", "hf", "--dataset", "ultrafeedback"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "out" / "adapter").is_dir() and hub.escaped == []
    assert fetched(hub, "/api/models/Qwen/Qwen2.5-0.5B-Instruct/revision/main")
    got = fetched(hub, "/datasets/HuggingFaceH4/ultrafeedback_binarized/resolve/")
    assert any("train_prefs" in p for p in got) and any("test_prefs" in p for p in got)
    assert not any("train_sft" in p for p in got)
    assert not [p for _, p in hub.requests if ".bin" in p or ".pth" in p]
    assert not [p for _, p in hub.requests if p.startswith("/api/v1/")]  # ModelScope never asked

    # USE_HF=1 picks Hugging Face too; orpo-dpo-mix-40k's parquet shard per the card's `configs:`
    proc = run(hub, tmp_path, train_args(tmp_path / "out2", "--dataset", "orpo-dpo-mix-40k"), env={"USE_HF": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert fetched(hub, "/datasets/mlabonne/orpo-dpo-mix-40k/resolve/") and hub.escaped == []


# ---------------------------------------------------------------- errors, tokens, the cache without asking

SCRIPT = r"""
import json, sys
from prefswift.errors import PrefswiftError
from prefswift.models.loader import resolve_model
from prefswift.data import loader
from prefswift.data.datasets import get_dataset_spec
out = {}
def attempt(key, fn):
    try:
        fn(); out[key] = "ok"
    except PrefswiftError as e:
        out[key] = str(e)
attempt("gated_ms", lambda: resolve_model("llama3-8b-instruct", None, hub="modelscope"))
attempt("gated_hf", lambda: resolve_model("llama3-8b-instruct", None, hub="hf"))
attempt("missing_ms", lambda: resolve_model(None, "qwen/Qwen2.5-0.5B-Instruc", hub="modelscope"))
attempt("missing_hf", lambda: resolve_model(None, "Qwen/Qwen2.5-05B-Instruct", hub="hf"))
attempt("token_hf", lambda: resolve_model("llama3-8b-instruct", None, hub="hf", token=sys.argv[1]))
attempt("token_ms", lambda: resolve_model("llama3-8b-instruct", None, hub="modelscope", token=sys.argv[1]))
attempt("gated_data", lambda: loader.load_registered(get_dataset_spec("orca-dpo-pairs"), "default", "train",
                                                     dataset_dir=None, hub="hf"))
attempt("missing_data", lambda: loader.load_registered(get_dataset_spec("orpo-dpo-mix-40k"), "default", "train",
                                                       dataset_dir=None, hub="modelscope") and
        loader.load_registered(get_dataset_spec("dpo-en-zh-20k"), "en", "train", dataset_dir=None, hub="hf"))
print("RESULT" + json.dumps(out))
"""


def test_gated_missing_and_token_errors_are_one_clear_line(hub, tmp_path):
    proc = run(hub, tmp_path, None, script=SCRIPT.replace("sys.argv[1]", repr(GOOD_TOKEN)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert all("\n" not in v for v in out.values())
    assert "LLM-Research/Meta-Llama-3-8B-Instruct" in out["gated_ms"] and "--hub_token" in out["gated_ms"]
    assert "modelscope login" in out["gated_ms"]
    assert "meta-llama/Meta-Llama-3-8B-Instruct" in out["gated_hf"] and "--hub_token" in out["gated_hf"]
    assert "huggingface-cli login" in out["gated_hf"]
    assert "404" in out["missing_ms"] and "did you mean qwen/Qwen2.5-0.5B-Instruct" in out["missing_ms"]
    assert "404" in out["missing_hf"] and "did you mean Qwen/Qwen2.5-0.5B-Instruct" in out["missing_hf"]
    assert out["token_hf"] == "ok" and out["token_ms"] == "ok"
    assert "Intel/orca_dpo_pairs" in out["gated_data"] and "--hub_token" in out["gated_data"]
    assert "hiyouga/DPO-En-Zh-20k does not exist on Hugging Face (404)" in out["missing_data"]
    assert hub.escaped == []


CACHED = r"""
from prefswift.models.loader import download
print("PATH", download("qwen/Qwen2.5-0.5B-Instruct", None, "modelscope", check_latest=CHECK))
print("PATH", download("Qwen/Qwen2.5-0.5B-Instruct", "main", "hf", check_latest=CHECK))
"""


def test_check_model_is_latest_false_never_asks_the_hub_when_cached(hub, tmp_path):
    proc = run(hub, tmp_path, None, script=CACHED.replace("CHECK", "True"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = len(hub.requests)
    assert seen and (tmp_path / "ms").is_dir()
    proc = run(hub, tmp_path, None, script=CACHED.replace("CHECK", "False"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(hub.requests) == seen, hub.requests[seen:]
    paths = [ln.split(" ", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("PATH")]
    assert len(paths) == 2 and all(os.path.isfile(os.path.join(p, "model.safetensors")) for p in paths)
    assert not any(os.path.exists(os.path.join(p, "pytorch_model.bin")) for p in paths)
    proc = run(hub, tmp_path, None, script=CACHED.replace("CHECK", "True"))  # default: asks the hub again
    assert proc.returncode == 0 and len(hub.requests) > seen


# ---------------------------------------------------------------- --push_to_hub

PUSH = r"""
import sys
from prefswift.models.push import check_push, push_folder
for hub in ("hf", "modelscope"):
    check_push(True, "mock-user/my-adapter", hub, TOKEN)
    print("URL", push_folder(FOLDER, "mock-user/my-adapter", hub=hub, token=TOKEN, private=True))
"""


def test_push_to_hub_lands_the_folder_in_the_mock_repo_on_both_hubs(hub, tmp_path):
    folder = tmp_path / "adapter"
    (folder / "sub").mkdir(parents=True)
    files = {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": os.urandom(30000),
             "sub/notes.txt": b"hello"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    script = PUSH.replace("TOKEN", repr(GOOD_TOKEN)).replace("FOLDER", repr(str(folder)))
    proc = run(hub, tmp_path, None, script=script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hub.uploads[("hf", "mock-user/my-adapter")] == files
    assert hub.uploads[("modelscope", "mock-user/my-adapter")] == files
    assert hub.escaped == []
    # a wrong token: one line that says how to log in
    proc = run(hub, tmp_path, None, script=script.replace(repr(GOOD_TOKEN), "'wrong'").replace(
        'for hub in ("hf", "modelscope")', 'for hub in ("hf",)'))
    assert proc.returncode != 0 and "could not push" in proc.stderr and "--hub_token" in proc.stderr


def test_push_is_refused_before_training_without_id_or_token(monkeypatch):
    from prefswift.errors import ArgumentError
    from prefswift.models import push

    push.check_push(False, None, "hf", None)  # not pushing: nothing to check
    with pytest.raises(ArgumentError, match="--hub_model_id OWNER/NAME"):
        push.check_push(True, None, "hf", "tok")
    with pytest.raises(ArgumentError, match="expected OWNER/NAME"):
        push.check_push(True, "just-a-name", "modelscope", "tok")
    monkeypatch.setattr(push, "stored_token", lambda hub: None)
    with pytest.raises(ArgumentError, match="no Hugging Face token .*--hub_token"):
        push.check_push(True, "me/model", "hf", None)
    with pytest.raises(ArgumentError, match="no ModelScope token .*modelscope login"):
        push.check_push(True, "me/model", "modelscope", None)
    push.check_push(True, "me/model", "hf", "tok")


@pytest.mark.slow  # pushing: test_push_to_hub_lands_the_folder_in_the_mock_repo_on_both_hubs
def test_train_and_merge_lora_push_their_results_with_the_token_kept_out_of_args_json(hub, tmp_path):
    """The seed commands' `--push_to_hub true --hub_model_id ID --hub_token T`: the adapter after training, then the
    merged model from merge-lora, land in the mock's repos; the token is never written to args.json."""
    out = tmp_path / "out"
    proc = run(hub, tmp_path, train_args(out, "--dataset", "hh-rlhf-cn:harmless_base_cn", "--push_to_hub", "true",
                                         "--hub_model_id", "mock-user/dpo-adapter", "--hub_token", GOOD_TOKEN))
    assert proc.returncode == 0, proc.stderr[-4000:]
    pushed = hub.uploads[("modelscope", "mock-user/dpo-adapter")]
    assert pushed["adapter_model.safetensors"] == (out / "adapter" / "adapter_model.safetensors").read_bytes()
    for args_json in out.rglob("args.json"):
        assert GOOD_TOKEN not in args_json.read_text() and "hub_token" not in json.loads(args_json.read_text())
    proc = run(hub, tmp_path, ["merge-lora", "--ckpt_dir", str(out / "adapter"), "--push_to_hub", "true",
                               "--hub_model_id", "mock-user/dpo-merged", "--hub_token", GOOD_TOKEN])
    assert proc.returncode == 0, proc.stderr[-4000:]
    merged = hub.uploads[("modelscope", "mock-user/dpo-merged")]
    assert "config.json" in merged and any(name.endswith(".safetensors") for name in merged)
    assert hub.escaped == []


def test_push_without_an_id_is_refused_before_anything_loads(hub, tmp_path):
    proc = run(hub, tmp_path, train_args(tmp_path / "out", "--dataset", "hh-rlhf-cn:harmless_base_cn",
                                         "--push_to_hub", "true"))
    assert "--hub_model_id" in error_line(proc)
    assert not hub.requests and not (tmp_path / "out").exists()


def test_the_orpo_papers_hh_rlhf_from_hugging_face(hub, tmp_path):
    """Anthropic/hh-rlhf: gzipped dialogues per subset folder; only the asked subset is fetched."""
    proc = run(hub, tmp_path, train_args(tmp_path / "out", "--dataset", "hh-rlhf:harmless-base", "--hub", "hf"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "out" / "adapter").is_dir() and hub.escaped == []
    got = [p for m, p in hub.requests if m == "GET" and "Anthropic/hh-rlhf" in p and ".jsonl.gz" in p]
    assert got and all("harmless-base" in p for p in got)


def _example_argv(name: str) -> list:
    """The prefswift command line of examples/NAME.sh (its `prefswift ...` words, without the launch variables)."""
    import shlex

    text = open(os.path.join(ROOT, "examples", f"{name}.sh"), encoding="utf-8").read()
    text = text.replace("$(expr 16 / $nproc_per_node)", "8")  # the 2-process recipe's 16 / 2
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)  # the tiny-size overrides unset: their defaults
    text = re.sub(r"\$\{MAX_STEPS:\+[^}]*\}", "", text)
    return shlex.split(text.split("prefswift ", 1)[1].replace("\\\n", " ").split('"$@"')[0])


def test_seed_004_swift_dpo_line_runs_against_the_mock(hub, tmp_path):
    """ms-swift's DPO line (yi-6b-chat, its own reference type, hh-rlhf-cn:harmless_base_cn), one process."""
    argv = _example_argv("mp_ddp_4gpu_dpo")
    assert argv[:3] == ["dpo", "--model_type", "yi-6b-chat"] and "hh-rlhf-cn:harmless_base_cn" in argv
    argv = [w if w != "output" else str(tmp_path / "out") for w in argv]
    proc = run(hub, tmp_path, [*argv, "--max_steps", "2"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "out" / "adapter").is_dir() and hub.escaped == []
    assert fetched(hub, "/api/v1/models/01ai/Yi-6B-Chat/")


def test_seed_002_qlora_orpo_line_runs_against_the_mock(hub, tmp_path):
    """The Llama 3 8B QLoRA ORPO tutorial's line (examples/qlora_orpo_llama3.sh), on this CPU: the paged 8-bit
    optimizer is CUDA-only, so the one change besides --max_steps is --optim adamw_torch."""
    argv = _example_argv("qlora_orpo_llama3")
    assert argv[:3] == ["orpo", "--model_type", "llama3-8b"] and "--use_4bit" in argv
    argv = [str(tmp_path / "out") if w == "output/llama3-8b-orpo-qlora" else w for w in argv]
    argv[argv.index("paged_adamw_8bit")] = "adamw_torch"
    proc = run(hub, tmp_path, [*argv, "--max_steps", "2"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((tmp_path / "out" / "args.json").read_text())["quantization_bit"] == 4
    assert hub.escaped == []
