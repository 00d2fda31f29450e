"""examples/iterative_dpo.sh runs two rounds of sample -> dpo -> eval on tiny models: each round samples from the
previous round's model (merged), trains DPO on its own samples ranked by the reward model, and starts from and is
referenced against that model; every round's held-out reward is printed from the sampled scores."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


# slow, covered by an example script chaining commands: test_sft_then_dpo.py::test_sft_then_dpo_recipe; sample ->
#   dpo: test_sample.py
@pytest.mark.slow
def test_two_rounds_of_on_policy_dpo(tmp_path):
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps({"prompt": f"Name a colour, number {i}."}) + "\n" for i in range(6)))
    env = {k: v for k, v in os.environ.items() if k not in ("NPROC_PER_NODE", "CUDA_VISIBLE_DEVICES")}
    env.update(PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"], OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="",
               ROUNDS="2", K="2", RM_STEPS="10", DPO_STEPS="3", MAX_NEW_TOKENS="6", MAX_PROMPTS="8",
               HELDOUT=str(heldout), OUT=str(tmp_path / "out"))
    proc = subprocess.run(["bash", str(ROOT / "examples" / "iterative_dpo.sh")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    rewards = {int(r): float(v) for r, v in re.findall(r"round (\d+)(?: \(base model\))? held-out reward: (-?[\d.]+)",
                                                       out)}
    assert sorted(rewards) == [0, 1, 2] and all(math.isfinite(v) for v in rewards.values()), out[-3000:]
    root = tmp_path / "out"
    for k in (1, 2):
        rows = [json.loads(line) for line in (root / f"round{k}" / "pairs.jsonl").read_text().splitlines()]
        assert rows and all(r["chosen_score"] > r["rejected_score"] for r in rows)
        logged = [json.loads(line) for line in (root / f"round{k}" / "dpo" / "logging.jsonl").read_text().splitlines()]
        assert [r["loss"] for r in logged if "loss" in r], "the round trained"
        assert json.loads((root / f"round{k}" / "eval.json").read_text())["metrics"]
        saved = json.loads((root / f"round{k}" / "dpo" / "args.json").read_text())
        if k == 2:  # round 2 starts from (and is referenced against) round 1's merged model, and samples from it
            assert saved["model_id_or_path"] == str((root / "round1" / "merged").resolve())
            assert str(root / "round1" / "merged") in rows[0]["policy"]
    # the printed held-out reward is the mean of the scores the reward model gave round 2's answers
    sampled = [json.loads(line) for name in ("heldout.jsonl", "heldout.dropped.jsonl")
               if (root / "round2" / name).exists() for line in (root / "round2" / name).read_text().splitlines()]
    scores = [s for r in sampled for s in r["scores"]]
    assert len(scores) == 12 and abs(sum(scores) / len(scores) - rewards[2]) < 1e-4
