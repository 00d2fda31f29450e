"""examples/sft_then_dpo.sh runs as written at tiny size: SFT on demo-sft teaches the demo pattern (held-out pairs'
log-prob accuracy 1.0, where the untrained model scores about 0.5: tests/test_quickstart.py), DPO from the SFT run
starts at rewards 0 against it and beats it on held-out reward accuracy, and the merged base+SFT+DPO model answers
held-out questions with the taught opener."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_sft_then_dpo_recipe(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("NPROC_PER_NODE", "CUDA_VISIBLE_DEVICES")}
    env.update(PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"], OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="",
               OUT=str(tmp_path / "out"))
    proc = subprocess.run(["bash", str(ROOT / "examples" / "sft_then_dpo.sh")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    root = tmp_path / "out"
    sft = json.loads((root / "sft_eval.json").read_text())["metrics"]
    assert sft["pairs"] == 60 and sft["accuracy_avg"] >= 0.95
    assert "reference: the SFT model" in out
    first = json.loads((root / "dpo" / "logging.jsonl").read_text().splitlines()[0])
    assert first["rewards/chosen"] == 0 and first["rewards/rejected"] == 0
    lineage = json.loads((root / "dpo" / "args.json").read_text())["lineage"]
    assert [s["stage"] for s in lineage] == ["base", "sft", "dpo"]
    followed, total = map(int, re.search(r"chosen pattern: (\d+)/(\d+)", out).groups())
    assert total == 60 and followed / total >= 0.9
