"""`prefswift eval --mode winrate`: verdicts from both orders, the Wilson interval, and the whole path on tiny models
(generation by the checkpoint and its adapter-disabled base, a tiny judge, one JSONL row per prompt)."""
import json

import pytest
import torch

from prefswift.arguments import parse_command
from test_eval import ROWS
from test_eval_reference import write_rows
from test_merge import adapter_model, make_adapter

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # peft vs transformers 5


class ScriptedJudge:
    """Answers by the order it is asked in: position-biased, or preferring one text wherever it stands."""

    def __init__(self, favourite=None):
        self.favourite = favourite
        self.calls = []

    def probabilities(self, question, a, b):
        self.calls.append((a, b))
        if self.favourite is None:   # always the first position
            return {"A": 0.6, "B": 0.3, "tie": 0.1}
        if self.favourite == "tie":
            return {"A": 0.2, "B": 0.2, "tie": 0.6}
        return {"A": 0.7, "B": 0.2, "tie": 0.1} if a == self.favourite else {"A": 0.2, "B": 0.7, "tie": 0.1}


def test_both_orders_decide_and_the_wilson_interval_by_hand():
    from prefswift.evaluate.winrate import judge_both_orders, summarize, verdict, wilson

    judge = ScriptedJudge("mine")
    res = judge_both_orders(judge, "q", "mine", "theirs")
    assert judge.calls == [("mine", "theirs"), ("theirs", "mine")]  # both orders, the model's answer first then second
    assert [j["order"] for j in res["judgments"]] == ["model_first", "opponent_first"]
    assert [j["verdict"] for j in res["judgments"]] == ["A", "B"] and res["outcome"] == "win"
    assert judge_both_orders(ScriptedJudge("theirs"), "q", "mine", "theirs")["outcome"] == "loss"
    assert judge_both_orders(ScriptedJudge(None), "q", "mine", "theirs")["outcome"] == "tie"  # position bias
    assert judge_both_orders(ScriptedJudge("tie"), "q", "mine", "theirs")["outcome"] == "tie"
    assert verdict({"A": 0.4, "B": 0.4, "tie": 0.2}) == "tie"

    low, high = wilson(5, 10)  # textbook: 0.5 of 10 -> 0.2366 .. 0.7634
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(0, 10)[0] == pytest.approx(0.0)
    s = summarize(["win", "win", "tie", "loss", "win"])
    assert (s["wins"], s["ties"], s["losses"], s["prompts"]) == (3, 1, 1, 5)
    assert s["win_rate"] == pytest.approx(3.5 / 5)
    assert (s["ci95_low"], s["ci95_high"]) == pytest.approx(wilson(3.5, 5))


def test_winrate_end_to_end_on_tiny_models(tmp_path, tiny_llama3_dir, capsys):
    from prefswift.commands.eval import run_eval
    from prefswift.evaluate.winrate import JUDGE_PROMPT, Judge
    from prefswift.models.checkpoint import load_for_inference
    from prefswift.models.reference import resolve_named
    from prefswift.models.loader import load_tokenizer
    from prefswift.templates import get_template

    data = write_rows(tmp_path / "pairs.jsonl")
    ckpt = make_adapter("tiny-llama3", tmp_path / "run" / "checkpoint-3", scale=3.0)
    out = tmp_path / "wr"
    path = run_eval(parse_command("eval", ["--mode", "winrate", "--ckpt_dir", str(ckpt), "--dataset", str(data),
                                           "--val_dataset_sample", "3", "--judge_model", "tiny-qwen",
                                           "--max_new_tokens", "6", "--output_dir", str(out)]))
    summary = json.loads(path.read_text())
    rows = [json.loads(line) for line in (out / (path.stem + "-judgments.jsonl")).read_text().splitlines()]
    prompts = [r["prompt"] for r in rows]
    assert len(rows) == 3 == summary["prompts"] == len(set(prompts)) and set(prompts) <= {r["prompt"] for r in ROWS}
    assert "adapter disabled" in summary["opponent"] and "tiny-qwen" in summary["judge"]
    assert summary["judge_is_compared_model"] is None  # another model judges
    outcomes = [r["outcome"] for r in rows]
    assert [summary[k] for k in ("wins", "ties", "losses")] == [outcomes.count(k) for k in ("win", "tie", "loss")]
    assert summary["ci95_low"] <= summary["win_rate"] <= summary["ci95_high"]
    printed = capsys.readouterr().out
    assert "win rate" in printed and "Wilson" in printed

    # the answers are the checkpoint's and its base's greedy answers
    tok = load_tokenizer(ckpt)
    tmpl = get_template("llama3")
    model = adapter_model(ckpt, tiny_llama3_dir)
    ids = torch.tensor([tmpl.encode_prompt(tok, None, [], rows[0]["prompt"])])
    with torch.no_grad():
        mine = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        with model.disable_adapter():
            theirs = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)

    def text(out):
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    assert rows[0]["answer"] and text(mine).startswith(rows[0]["answer"])  # the run's stops may end it earlier
    assert text(theirs).startswith(rows[0]["opponent_answer"]) and rows[0]["answer"] != rows[0]["opponent_answer"]

    # the judge's reply probabilities from its full next-token distribution, renormalised over A, B, C
    judge_loaded = load_for_inference(resolve_named(parse_command("eval", []), "tiny-qwen"))
    jtok, jtmpl = judge_loaded.tokenizer, judge_loaded.template
    query = JUDGE_PROMPT.format(question=rows[0]["prompt"], a=rows[0]["answer"], b=rows[0]["opponent_answer"])
    with torch.no_grad():
        logits = judge_loaded.model(input_ids=torch.tensor([jtmpl.encode_prompt(jtok, None, [], query)])).logits
    options = [jtok(letter, add_special_tokens=False)["input_ids"][0] for letter in "ABC"]
    want = torch.softmax(torch.log_softmax(logits[0, -1].double(), -1)[options], -1).tolist()
    assert list(rows[0]["judgments"][0]["probs"].values()) == pytest.approx(want, abs=1e-5)

    # both orders judged, with the answers swapped
    judge = Judge(judge_loaded.model, jtok, jtmpl)
    for r in rows:
        first, second = r["judgments"]
        assert (first["order"], second["order"]) == ("model_first", "opponent_first")
        assert first["probs"] == pytest.approx(judge.probabilities(r["prompt"], r["answer"], r["opponent_answer"]))
        assert second["probs"] == pytest.approx(judge.probabilities(r["prompt"], r["opponent_answer"], r["answer"]))
        assert sum(first["probs"].values()) == pytest.approx(1.0)



def test_judge_scores_whole_replies_when_a_letter_is_several_tokens(tiny_qwen_dir):
    """In the mistral template the replies are " A", " B", " C" (with this tokenizer not all one token): each is
    scored as log p(all its tokens | judge prompt), from the full logits of prompt + reply."""
    from transformers import AutoModelForCausalLM

    from prefswift.evaluate.winrate import JUDGE_PROMPT, Judge
    from prefswift.models.loader import load_tokenizer
    from prefswift.templates import get_template

    tok, tmpl = load_tokenizer(tiny_qwen_dir), get_template("mistral")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_qwen_dir), dtype=torch.float32).eval()
    query = JUDGE_PROMPT.format(question="What is 2+2?", a="4", b="five")
    prompt_text = tmpl.render_prompt(None, [], query)
    prompt_ids = tmpl.encode_prompt(tok, None, [], query)
    want, lengths = [], []
    for letter in "ABC":
        full = tok(prompt_text + " " + letter, add_special_tokens=False)["input_ids"]
        assert full[:len(prompt_ids)] == prompt_ids
        reply = full[len(prompt_ids):]
        lengths.append(len(reply))
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].double(), -1)
        want.append(sum(logp[len(prompt_ids) - 1 + i, t].item() for i, t in enumerate(reply)))
    assert max(lengths) > 1  # the multi-token path is the one tested
    want = torch.softmax(torch.tensor(want), -1).tolist()
    got = Judge(model, tok, tmpl).probabilities("What is 2+2?", "4", "five")
    assert list(got.values()) == pytest.approx(want, abs=1e-5)


def test_a_judge_that_is_one_of_the_compared_models_is_named_in_one_warning_and_the_result(tmp_path, capsys):
    from prefswift.commands.eval import run_eval

    data = write_rows(tmp_path / "pairs.jsonl")
    ckpt = make_adapter("tiny-llama3", tmp_path / "run" / "checkpoint-3", scale=3.0)
    common = ["--mode", "winrate", "--ckpt_dir", str(ckpt), "--dataset", str(data), "--val_dataset_sample", "1",
              "--max_new_tokens", "2"]
    # the opponent is the adapter-disabled tiny-llama3: the same weights as the judge
    path = run_eval(parse_command("eval", [*common, "--judge_model", "tiny-llama3", "--output_dir",
                                           str(tmp_path / "a")]))
    assert json.loads(path.read_text())["judge_is_compared_model"] == "opponent"
    warned = [line for line in capsys.readouterr().out.splitlines() if "self-preference" in line]
    assert len(warned) == 1 and "--judge_model tiny-llama3" in warned[0] and "opponent" in warned[0]
    # the judge is the checkpoint itself
    path = run_eval(parse_command("eval", [*common, "--judge_model", str(ckpt), "--compare_to", "tiny-qwen",
                                           "--output_dir", str(tmp_path / "b")]))
    assert json.loads(path.read_text())["judge_is_compared_model"] == "model"
