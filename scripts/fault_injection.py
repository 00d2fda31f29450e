#!/usr/bin/env python
"""Fault injection: a training run killed with SIGKILL again and again ends with the adapter of an uninterrupted run.

    python scripts/fault_injection.py --kills 10 --seed 0

An uninterrupted run is trained first (`ref/`). Then the same command with `--resume_from_checkpoint latest` is started
into `run/` and killed `--kills` times, each time at a moment drawn from `--seed` (see `killer`): mid-training, mid-save
or just after the last step's checkpoint ("cut short" in the report when a kill left a checkpoint unmarked). After the
last kill the command runs to its end. The final adapter must be byte-identical to the uninterrupted run's, and the
logged losses and learning rates of every step equal. Exit code 0 when they are, 1 when not (with what differs).
tests/test_fault_injection.py runs a short version in the test suite.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = "checkpoint_complete.json"  # prefswift.run.checkpoints.MARKER (read here without importing torch)


def command(out: Path, model_type: str, max_steps: int, save_steps: int):
    return [sys.executable, "-m", "prefswift", "orpo", "--model_type", model_type, "--dataset", "demo#64",
            "--eval_ratio", "0", "--lora_target_modules", "q_proj,v_proj", "--learning_rate", "1e-3",
            "--lr_scheduler_type", "cosine", "--warmup_steps", "1", "--batch_size", "2", "--logging_steps", "1",
            "--max_steps", str(max_steps), "--save_steps", str(save_steps), "--save_total_limit", "2",
            "--output_dir", str(out), "--resume_from_checkpoint", "latest"]


def environment():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def saves(out: Path, since_ns: int):
    """(checkpoint this process is writing now, checkpoint whose trainer_state.json it wrote), by file times newer
    than `since_ns`. Writing: a file newer than the completion marker (prefswift's last file) or no marker yet."""
    writing = saved = None
    try:
        dirs = sorted((p for p in out.iterdir() if p.name.startswith("checkpoint-")),
                      key=lambda p: int(p.name.split("-")[-1]))
        for ckpt in dirs:
            times = {f.name: f.stat().st_mtime_ns for f in ckpt.iterdir()}
            marker_ns = times.pop(MARKER, 0)
            if times and max(times.values()) > since_ns and marker_ns < max(times.values()):
                writing = ckpt.name
            if times.get("trainer_state.json", 0) > since_ns:
                saved = ckpt.name
    except (OSError, ValueError):  # a file went away between listing and stat (rotation): look again
        pass
    return writing, saved


def run_once(cmd, env, log_path: Path, kill=None):
    """Run `cmd`; with `kill` (a function of the Popen that returns when it is time), SIGKILL it then.
    Returns (exit code, what the kill hit)."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        hit = None
        if kill is not None:
            moment = kill(proc)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            if moment is not None:
                hit, ckpt = moment
                if ckpt is not None and ckpt.is_dir() and not (ckpt / MARKER).is_file():
                    hit += ", cut short"
        code = proc.wait()
    return code, hit


MODES = ("step", "save", "last")


def killer(rng: random.Random, out: Path, timeout: float, max_steps: int, mode=None):
    """A kill moment (`mode`, else drawn): 'step' up to 0.5 s after this process wrote a checkpoint's
    trainer_state.json (the Trainer's last file: training goes on, or that save is finishing); 'save' up to 10 ms after
    it began writing a checkpoint; 'last' up to 20 ms after it wrote the last step's trainer_state.json (the end of
    the run: its last checkpoint, the final adapter)."""
    mode = mode or rng.choice(MODES)
    delay = {"step": rng.uniform(0, 0.5), "save": rng.uniform(0, 0.01), "last": rng.uniform(0, 0.02)}[mode]
    last = f"checkpoint-{max_steps}"

    def wait(proc):
        start, since = time.monotonic(), time.time_ns()
        while proc.poll() is None and time.monotonic() - start < timeout:
            writing, saved = saves(out, since)
            if mode == "save" and writing:
                time.sleep(delay)
                return f"during the save of {writing} (+{delay * 1000:.1f} ms)", out / writing
            if (mode == "step" and saved) or (mode == "last" and saved == last):
                time.sleep(delay)
                return f"{delay * 1000:.0f} ms after {saved}'s trainer_state.json", out / saved
            time.sleep(0.001)
        return None

    return wait


def step_rows(out: Path):
    rows = [json.loads(line) for line in (out / "logging.jsonl").read_text(encoding="utf-8").splitlines()]
    return [(r["step"], r["loss"], r["learning_rate"]) for r in rows if "loss" in r]


def fault_injection(workdir: Path, kills: int, seed: int, model_type: str = "tiny-llama3", max_steps: int = 12,
                    save_steps: int = 2, timeout: float = 300.0, modes=None, log=print) -> dict:
    """Train `ref/` whole, then `run/` with `kills` SIGKILLs and resumes (`modes`: the kind of each kill moment, else
    drawn from MODES); returns what happened and whether the two runs' adapters and logged steps are identical."""
    env = environment()
    ref, run = workdir / "ref", workdir / "run"
    code, _ = run_once(command(ref, model_type, max_steps, save_steps), env, workdir / "ref.log")
    if code != 0:
        raise RuntimeError(f"the uninterrupted run failed (exit {code}): see {workdir / 'ref.log'}")
    rng = random.Random(seed)
    hits = []
    for i in range(kills):
        code, hit = run_once(command(run, model_type, max_steps, save_steps), env, workdir / "run.log",
                             kill=killer(rng, run, timeout, max_steps, modes[i] if modes else None))
        if hit is None and code == 0:
            log(f"kill {i + 1}: the run ended before the kill")
            break
        if code not in (-signal.SIGKILL, 0):
            raise RuntimeError(f"attempt {i + 1} failed (exit {code}): see {workdir / 'run.log'}")
        hits.append(hit or "(no moment reached: killed at the time limit)")
        log(f"kill {i + 1}: {hits[-1]}")
    code, _ = run_once(command(run, model_type, max_steps, save_steps), env, workdir / "run.log")
    if code != 0:
        raise RuntimeError(f"the last resume failed (exit {code}): see {workdir / 'run.log'}")
    same_adapter = ((ref / "adapter" / "adapter_model.safetensors").read_bytes()
                    == (run / "adapter" / "adapter_model.safetensors").read_bytes())
    same_steps = step_rows(ref) == step_rows(run)
    return {"kills": hits, "same_adapter": same_adapter, "same_steps": same_steps,
            "ref_steps": step_rows(ref), "run_steps": step_rows(run)}


def main(argv=None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model_type", default="tiny-llama3")
    p.add_argument("--max_steps", type=int, default=12)
    p.add_argument("--save_steps", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=None, help="default: a new temporary directory (kept)")
    a = p.parse_args(argv)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="prefswift-faults-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = fault_injection(workdir, a.kills, a.seed, a.model_type, a.max_steps, a.save_steps)
    ok = result["same_adapter"] and result["same_steps"]
    short = sum("cut short" in k for k in result["kills"])
    print(f"{len(result['kills'])} kills, {short} cutting a save short; final adapter "
          f"{'identical' if result['same_adapter'] else 'DIFFERENT'}, logged steps "
          f"{'identical' if result['same_steps'] else 'DIFFERENT'} ({workdir})")
    if not result["same_steps"]:
        for r, f in zip(result["ref_steps"], result["run_steps"]):
            print(f"  ref {r}  faulted {f}{'' if r == f else '  <--'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
