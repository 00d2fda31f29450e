"""`prefswift infer`: loading ckpt / merged / plain models, greedy merged == unmerged, chat through a pipe
(history, clear, reset-system, exit), streaming, dataset mode output, stop words, seeds."""
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prefswift.arguments import parse_command
from prefswift.errors import ArgumentError
from test_merge import make_adapter

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft vs transformers 5

REPO = Path(__file__).resolve().parents[1]
ROWS = [{"prompt": f"What is {i} plus {i}?", "chosen": f"Sure! It is {2 * i}.", "rejected": f"No. It is {2 * i}."}
        for i in range(1, 11)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A fake training run: args.json with a local dataset and an eval split, checkpoint-4 and adapter/."""
    root = tmp_path_factory.mktemp("infer")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    run = root / "run"
    argv = ["--dataset", str(data), "--eval_ratio", "0.3", "--dataset_seed", "3"]
    make_adapter("tiny-llama3", run / "checkpoint-4", train_argv=argv)
    make_adapter("tiny-llama3", run / "adapter", train_argv=argv, seed=5)
    parse_command("orpo", ["--model_type", "tiny-llama3", *argv]).save(run)
    return run


def infer_args(*argv):
    return parse_command("infer", [str(a) for a in argv])


def load(*argv):
    """(loaded model, its in-process engine, the engine's parameters for these infer options)."""
    from prefswift.generation.local import LocalEngine, sampling_params
    from prefswift.models.checkpoint import load_for_inference, resolve_source

    args = infer_args(*argv)
    loaded = load_for_inference(resolve_source(args))
    return loaded, LocalEngine(loaded), sampling_params(args.infer)


def token_ids(engine, params, ids):
    return engine.generate([ids], params)[0][0].token_ids


def test_resolve_sources(run_dir):
    from prefswift.models.checkpoint import resolve_source
    from prefswift.models.tiny import ensure_tiny_model

    base = ensure_tiny_model("tiny-llama3")
    ckpt = run_dir / "checkpoint-4"
    src = resolve_source(infer_args("--ckpt_dir", ckpt))
    assert src.adapter_dir == ckpt and src.base.path == base and src.base.template == "llama3"
    # LLaMA-Factory's form (seed 003): base + adapter + template
    src = resolve_source(infer_args("--model_name_or_path", base, "--adapter_name_or_path", ckpt, "--template",
                                    "llama3"))
    assert src.adapter_dir == ckpt and src.base.path == base and src.pre_adapter is None
    # a run dir: its final adapter/
    assert resolve_source(infer_args("--ckpt_dir", run_dir)).adapter_dir == run_dir / "adapter"
    # a plain model
    src = resolve_source(infer_args("--model_type", "tiny-qwen"))
    assert src.adapter_dir is None and src.base.template == "qwen" and src.ckpt_dir is None
    with pytest.raises(ArgumentError, match="no such directory"):
        resolve_source(infer_args("--ckpt_dir", run_dir / "missing"))
    moved = run_dir.parent / "moved"  # args.json naming a base model dir that is not there any more
    shutil.copytree(ckpt, moved)
    flat = json.loads((moved / "args.json").read_text())
    (moved / "args.json").write_text(json.dumps(dict(flat, model_id_or_path=str(run_dir / "gone"))))
    with pytest.raises(ArgumentError, match="names the base model .*--model_id_or_path"):
        resolve_source(infer_args("--ckpt_dir", moved))
    assert resolve_source(infer_args("--ckpt_dir", moved, "--model_id_or_path", base)).base.path == base
    shutil.rmtree(moved)
    with pytest.raises(ArgumentError, match="neither a LoRA adapter"):
        resolve_source(infer_args("--ckpt_dir", run_dir.parent))


def test_stop_words_come_from_the_template(run_dir):
    loaded, engine, params = load("--ckpt_dir", run_dir / "checkpoint-4")
    tok = loaded.tokenizer
    assert tok.convert_tokens_to_ids("<|eot_id|>") in engine.eos_ids
    assert tok.convert_tokens_to_ids("<|end_of_text|>") in engine.eos_ids
    assert params.temperature == 0  # greedy unless --do_sample true
    qloaded, qengine, _ = load("--model_type", "tiny-qwen")
    assert qloaded.tokenizer.convert_tokens_to_ids("<|im_end|>") in qengine.eos_ids


def test_merged_and_unmerged_greedy_outputs_are_identical(run_dir, tmp_path):
    from prefswift.commands.infer import run_infer

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:4]))
    ckpt = run_dir / "checkpoint-4"
    common = ["--ckpt_dir", ckpt, "--dataset", data, "--max_new_tokens", 12]
    quiet = lambda *a, **k: None  # noqa: E731
    a = run_infer(infer_args(*common, "--infer_output", tmp_path / "unmerged.jsonl"), log=quiet)
    b = run_infer(infer_args(*common, "--merge_lora", "true", "--infer_output", tmp_path / "merged.jsonl"),
                  log=quiet)
    assert (run_dir / "checkpoint-4-merged" / "config.json").is_file()
    ra = [json.loads(line) for line in a.read_text().splitlines()]
    rb = [json.loads(line) for line in b.read_text().splitlines()]
    assert len(ra) == 4 and [r["prompt"] for r in ra] == [r["prompt"] for r in ROWS[:4]]
    assert [r["response"] for r in ra] == [r["response"] for r in rb]
    assert {"prompt", "response", "chosen", "rejected"} <= set(ra[0]) and ra[0]["chosen"] == ROWS[0]["chosen"]
    # token level too, on the merged dir given directly
    lm, e_adapter, params = load("--ckpt_dir", ckpt, "--max_new_tokens", 12)
    _, e_merged, _ = load("--ckpt_dir", run_dir / "checkpoint-4-merged", "--max_new_tokens", 12)
    ids = lm.template.encode_prompt(lm.tokenizer, None, [], "Tell me a joke")
    assert token_ids(e_adapter, params, ids) == token_ids(e_merged, params, ids)


def test_sampling_is_reproducible_with_seed(run_dir):
    import dataclasses

    lm, engine, params = load("--ckpt_dir", run_dir / "checkpoint-4", "--do_sample", "true", "--temperature", "1.5",
                              "--top_k", "50", "--top_p", "1.0", "--max_new_tokens", 8)
    assert (params.temperature, params.top_k, params.top_p, params.max_tokens) == (1.5, 50, 1.0, 8)
    ids = lm.template.encode_prompt(lm.tokenizer, None, [], "Hi")
    outs = [token_ids(engine, dataclasses.replace(params, seed=seed), ids) for seed in (7, 7, 8)]
    assert outs[0] == outs[1] and outs[0] != outs[2]


def test_chat_session_streams_and_keeps_history(run_dir):
    from prefswift.infer.chat import ChatSession, run_chat

    lm, engine, params = load("--ckpt_dir", run_dir / "checkpoint-4", "--max_new_tokens", 6)
    session = ChatSession(engine, params)
    out = io.StringIO()
    n = run_chat(session, inp=io.StringIO("first line \\\nsecond line\nagain\n"), out=out, err=io.StringIO(),
                 interactive=True)
    assert n == 2
    (q1, r1), (q2, r2) = session.history
    assert q1 == "first line \nsecond line" and q2 == "again"
    text = out.getvalue()
    assert r1 in text and r2 in text and "<<< " in text and "... " in text
    # the second prompt is exactly the conversation so far
    assert session.prompt_ids("next") == lm.template.encode_prompt(lm.tokenizer, None, [(q1, r1), (q2, r2)], "next")
    # too long for max_length: the oldest turn is dropped
    session.max_length = len(lm.template.encode_prompt(lm.tokenizer, None, [(q2, r2)], "next")) + 6
    session.prompt_ids("next")
    assert session.history == [(q2, r2)] and session.dropped_turns == 1


def test_interactive_infer_through_a_pipe(run_dir):
    """The real command with stdin from a pipe: JSON lines out, history (--keep_history true), clear, reset-system,
    exit."""
    from prefswift.models.loader import load_tokenizer
    from prefswift.templates import get_template

    ckpt = run_dir / "checkpoint-4"
    lines = ["Hello", "How are you?", "clear", "Hi", "reset-system", "You are a pirate.", "Ahoy", "And then?",
             "exit", "never answered"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "prefswift", "infer", "--ckpt_dir", str(ckpt), "--max_new_tokens",
                           "5", "--system", "Be brief.", "--keep_history", "true"], input="\n".join(lines) + "\n",
                          capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout: only JSON lines
    assert [r["query"] for r in replies] == ["Hello", "How are you?", "Hi", "Ahoy", "And then?"]
    assert [r["turn"] for r in replies] == [1, 2, 1, 1, 2]
    assert "[history cleared]" in proc.stderr
    tok, tmpl = load_tokenizer(ckpt), get_template("llama3")
    r = {x["query"]: x["response"] for x in replies}
    expected = [
        tmpl.encode_prompt(tok, "Be brief.", [], "Hello"),
        tmpl.encode_prompt(tok, "Be brief.", [("Hello", r["Hello"])], "How are you?"),
        tmpl.encode_prompt(tok, "Be brief.", [], "Hi"),                        # history cleared
        tmpl.encode_prompt(tok, "You are a pirate.", [], "Ahoy"),              # new system, history cleared
        tmpl.encode_prompt(tok, "You are a pirate.", [("Ahoy", r["Ahoy"])], "And then?"),
    ]
    assert [x["prompt_tokens"] for x in replies] == [len(e) for e in expected]
    tokens = [x["prompt_tokens"] for x in replies]
    assert tokens[1] > tokens[0] and tokens[2] < tokens[1] and tokens[4] > tokens[3]  # grows, then clear


def test_dataset_mode_recovers_the_runs_eval_split(run_dir):
    from prefswift.arguments import load_args_json, section_from_flat
    from prefswift.arguments.fields import DataArguments
    from prefswift.data.pipeline import build_preference_data
    from prefswift.commands.infer import run_infer

    ckpt = run_dir / "checkpoint-4"
    loaded, _, _ = load("--ckpt_dir", ckpt)
    data = build_preference_data(section_from_flat(DataArguments, load_args_json(ckpt)), loaded.template,
                                 loaded.tokenizer, log=lambda *a, **k: None)
    want = [r["example"].prompt for r in data.eval]
    assert len(want) == 3
    path = run_infer(infer_args("--ckpt_dir", ckpt, "--load_dataset_config", "true", "--max_new_tokens", 4),
                     log=lambda *a, **k: None)
    assert path.parent == ckpt / "infer_result" and path.suffix == ".jsonl"
    got = [json.loads(line) for line in path.read_text().splitlines()]
    assert [g["prompt"] for g in got] == want
    path2 = run_infer(infer_args("--ckpt_dir", ckpt, "--load_dataset_config", "true", "--val_dataset_sample", 2,
                                 "--max_new_tokens", 4, "--infer_output", run_dir / "two"), log=lambda *a, **k: None)
    assert path2.parent == run_dir / "two" and len(path2.read_text().splitlines()) == 2
    with pytest.raises(ArgumentError, match="no args.json with a dataset"):
        run_infer(infer_args("--model_type", "tiny-qwen", "--load_dataset_config", "true"), log=lambda *a, **k: None)


def test_piped_lines_are_independent_prompts_by_default(run_dir):
    """`printf 'q1\\nq2\\n' | prefswift infer ...`: every line is answered on its own (no growing conversation)."""
    ckpt = run_dir / "checkpoint-4"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "prefswift", "infer", "--ckpt_dir", str(ckpt), "--max_new_tokens",
                           "4", "--temperature", "0.7"], input="Hello\nHello\nHello\n", capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["turn"] for r in replies] == [1, 1, 1]
    assert len({r["prompt_tokens"] for r in replies}) == 1
    assert "--temperature 0.7 has no effect without --do_sample true" in proc.stderr


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])  # stdin read with surrogateescape, and strict UTF-8
def test_piped_bytes_that_are_not_utf8_are_replaced_and_every_line_answered(run_dir, locale):
    """`printf 'What is 2?\\nhello \\xff world\\nWhat is 3?\\n' | prefswift infer ...`: three answers, one warning."""
    ckpt = run_dir / "checkpoint-4"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), LC_ALL=locale)
    env.pop("PYTHONIOENCODING", None)
    proc = subprocess.run([sys.executable, "-m", "prefswift", "infer", "--ckpt_dir", str(ckpt), "--max_new_tokens",
                           "3"], input=b"What is 2?\nhello \xff world\nWhat is 3?\n", capture_output=True, env=env,
                          timeout=300)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    replies = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert [r["query"] for r in replies] == ["What is 2?", "hello \ufffd world", "What is 3?"]
    assert stderr.count("warning: the input is not valid UTF-8") == 1
