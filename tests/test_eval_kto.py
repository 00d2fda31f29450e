"""`prefswift eval` on a KTO run: the implicit rewards, KL estimate and log-prob columns its training logged
(eval_rewards/*, eval_kl, eval_logps/*) on the same rows, and the accuracy over the pairs the rows came from."""
import json

import pytest

from prefswift.arguments import parse_command
from test_eval_reference import write_rows

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
QUIET = dict(log=lambda *a, **k: None)


@pytest.mark.parametrize("loss_type", ["kto", "apo_zero_unpaired"])
def test_kto_eval_reports_what_training_logged(tmp_path, loss_type):
    from prefswift.commands.eval import run_eval
    from prefswift.commands.train import run_training

    data = write_rows(tmp_path / "pairs.jsonl")  # 6 pairs: 3 held out = 6 unpaired eval rows, one eval batch
    run = tmp_path / "kto"
    argv = ["--model_type", "tiny-llama3", "--dataset", str(data), "--output_dir", str(run), "--eval_ratio", "0.5",
            "--max_steps", "2", "--save_steps", "2", "--eval_steps", "2", "--logging_steps", "1", "--batch_size", "2",
            "--eval_batch_size", "6", "--learning_rate", "5e-2", "--lora_target_modules", "ALL",
            "--gradient_checkpointing", "false", "--beta", "0.3", "--loss_type", loss_type]
    run_training(parse_command("kto", argv), "kto", **QUIET)
    logged = [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]
    (last,) = [r for r in logged if "eval_rewards/chosen" in r and r["step"] == 2]
    lines = []
    path = run_eval(parse_command("eval", ["--ckpt_dir", str(run / "adapter"), "--load_dataset_config", "true"]),
                    log=lines.append)
    result = json.loads(path.read_text())
    m = result["metrics"]
    assert (m["rows"], m["desirable_rows"], m["undesirable_rows"], m["pairs"]) == (6, 3, 3, 3)
    for ours, theirs in (("reward_chosen", "eval_rewards/chosen"), ("reward_rejected", "eval_rewards/rejected"),
                         ("reward_margin", "eval_rewards/margins"), ("chosen_sum_logp", "eval_logps/chosen"),
                         ("rejected_sum_logp", "eval_logps/rejected"), ("kl", "eval_kl")):
        if loss_type == "apo_zero_unpaired" and ours == "kl":
            assert "kl" not in m and last[theirs] == 0
            continue
        assert m[ours] == pytest.approx(last[theirs], abs=1e-5), ours
    assert abs(m["reward_margin"]) > 1e-4
    # accuracy over the 3 held-out pairs, from the per-row rewards (chosen = the desirable row of the same prompt)
    rows = result["pairs"]
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], {})[r["label"]] = r["reward"]
        assert r["reward"] == pytest.approx(0.3 * (r["logp"] - r["ref_logp"]), abs=1e-6)
    wins = [v[True] > v[False] for v in by_prompt.values()]
    assert len(wins) == 3 and m["reward_accuracy"] == pytest.approx(sum(wins) / 3)
    assert any("reward accuracy" in line for line in lines) and any("kto (beta 0.3" in line for line in lines)
