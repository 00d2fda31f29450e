"""Nothing lost: a run never deletes or replaces what prefswift did not write, never overwrites a finished run
without --overwrite_output_dir true, holds its run dir alone (a lock), and refuses an output dir it cannot use in one
line, leaving nothing behind."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import TrainerCallback

from prefswift.arguments import parse_command
from prefswift.commands.train import run_training
from prefswift.errors import ArgumentError

REPO = Path(__file__).parent.parent
BASE = ["--model_type", "tiny-llama3", "--dataset", "demo#8", "--eval_ratio", "0", "--logging_steps", "1",
        "--max_steps", "1", "--save_strategy", "no", "--lora_target_modules", "q_proj,v_proj",
        "--gradient_checkpointing", "false"]


def train(out, *extra, algo="orpo", callbacks=()):
    return run_training(parse_command(algo, [*BASE, "--output_dir", str(out), *extra]), algo,
                        log=lambda *a, **k: None, callbacks=callbacks)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- --lora_adapter_dir

def test_lora_adapter_dir_holding_other_files_is_refused_before_training(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(ArgumentError) as err:
        train(tmp_path / "run", "--lora_adapter_dir", str(keep))
    assert "notes.txt" in str(err.value) and "\n" not in str(err.value)
    assert (keep / "notes.txt").read_text() == "precious" and sorted(os.listdir(keep)) == ["notes.txt"]
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_lora_adapter_dir_replaces_only_an_adapter_prefswift_saved(tmp_path):
    keep = tmp_path / "keep"
    train(tmp_path / "a", "--lora_adapter_dir", str(keep))
    assert snapshot(keep) == snapshot(tmp_path / "a" / "adapter")
    (keep / "mine.txt").write_text("a file of the user's, next to the adapter")
    with pytest.raises(ArgumentError, match="mine.txt"):
        train(tmp_path / "b", "--lora_adapter_dir", str(keep), "--seed", "7")
    (keep / "mine.txt").unlink()
    train(tmp_path / "b", "--lora_adapter_dir", str(keep), "--seed", "7")  # our own adapter: replaced
    assert snapshot(keep) == snapshot(tmp_path / "b" / "adapter")
    assert snapshot(keep) != snapshot(tmp_path / "a" / "adapter")


# ---------------------------------------------------------------------------------------------- finished runs

def test_a_finished_run_without_checkpoints_is_never_overwritten(tmp_path):
    out = tmp_path / "run"
    train(out, algo="dpo")
    assert not list(out.glob("checkpoint-*")) and (out / "complete.json").is_file()
    (out / "notes.txt").write_text("the user's")
    plots = sorted(p.name for p in (out / "images").iterdir())  # what the run wrote there, as listed on disk
    assert "overview.png" in plots and "loss.png" in plots, plots
    (out / "images" / "my_annotated_loss.png").write_bytes(b"the user's own picture")
    before = snapshot(out)
    with pytest.raises(ArgumentError) as err:
        train(out, algo="orpo")
    assert "already holds a run" in str(err.value) and "--overwrite_output_dir true" in str(err.value)
    assert snapshot(out) == before  # adapter, logging.jsonl, args.json (still dpo) untouched
    assert json.loads((out / "args.json").read_text())["command"] == "dpo"
    # issue 27: starting over removed the whole images/ folder, the user's picture with it
    from prefswift.run.directory import prepare_run_dir

    said = []
    prepare_run_dir(out.resolve(), None, overwrite=True, is_main=True, log=said.append)
    assert snapshot(out) == {"notes.txt": b"the user's", "images/my_annotated_loss.png": b"the user's own picture"}
    assert len(said) == 1 and "did not write" in said[0] and "images/my_annotated_loss.png" in said[0], said
    train(out, "--overwrite_output_dir", "true", algo="orpo")
    assert json.loads((out / "args.json").read_text())["command"] == "orpo"
    assert (out / "notes.txt").read_text() == "the user's"  # starting over removes the run's files only
    assert (out / "images" / "my_annotated_loss.png").read_bytes() == b"the user's own picture"


@pytest.mark.parametrize("content", ["complete.json", "adapter", "final", "logging.jsonl", "checkpoint-3"])
def test_every_kind_of_run_result_is_kept_without_overwrite(tmp_path, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / "args.json").write_text(json.dumps(parse_command("dpo", [*BASE, "--output_dir", str(out)]).to_flat_dict()))
    target = out / content
    if "." in content:
        target.write_text("{}\n")
    else:
        target.mkdir()
        (target / "adapter_model.safetensors").write_text("x")  # a name a save writes (a folder holding only the
        # user's files is no result: run/saved_files.py)
    before = snapshot(out)
    with pytest.raises(ArgumentError, match=f"already holds a run \\({content}"):
        train(out)
    assert snapshot(out) == before


def test_an_output_dir_with_files_prefswift_did_not_write_is_not_replaced(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "args.json").write_text('{"lr": 3}\n')  # someone else's args.json
    with pytest.raises(ArgumentError, match="did not write"):
        train(out, "--overwrite_output_dir", "true")
    assert (out / "args.json").read_text() == '{"lr": 3}\n'
    (out / "args.json").unlink()
    (out / "logging.jsonl").write_text("my own log\n")  # a run's file name, but no prefswift run
    with pytest.raises(ArgumentError, match="did not write|without the args.json"):
        train(out, "--overwrite_output_dir", "true")
    assert (out / "logging.jsonl").read_text() == "my own log\n"


# ---------------------------------------------------------------------------------------------- one run at a time

def prefswift(*argv, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "prefswift", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout)


class SecondRun(TrainerCallback):
    """While this run trains, the same command into the same output dir."""

    def __init__(self, out):
        self.out, self.proc = out, None

    def on_step_end(self, args, state, control, **kwargs):
        if self.proc is None:
            self.proc = prefswift("orpo", *BASE, "--output_dir", str(self.out))


def test_a_second_run_into_a_busy_output_dir_exits_2_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    second = SecondRun(out)
    train(out, callbacks=[second])
    assert second.proc.returncode == 2, second.proc.stderr[-2000:]
    err = second.proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"pid {os.getpid()}" in err[0]
    assert "Traceback" not in second.proc.stderr
    rows = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1]  # only this run's rows
    assert not (out / ".prefswift.lock").exists()  # released at the end


def test_a_lock_left_by_a_killed_run_is_stale(tmp_path):
    """A process holding the run dir's lock is killed (-9): the next run takes the dir over."""
    from prefswift.run.lock import LOCK_FILE, claimed_run_dir

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(out / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('held', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ArgumentError, match=f"in use by another prefswift run \\(pid {holder.pid}\\)"):
            with claimed_run_dir(out, True):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / LOCK_FILE).exists()  # left behind by the killed process
    with claimed_run_dir(out, True):
        assert (out / LOCK_FILE).read_text().splitlines()[0] == str(os.getpid())  # the pid first, as before


def test_the_lock_names_its_host_and_beats_while_held(tmp_path, monkeypatch):
    """A reader on another machine judges the run by its lock file: the holder's host on the second line, and the
    file's time refreshed while the run holds it (the heartbeat)."""
    import socket
    import time

    from prefswift.run import lock

    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.05)
    out = tmp_path / "run"
    with lock.claimed_run_dir(out, True):
        path = out / lock.LOCK_FILE
        assert path.read_text().splitlines() == [str(os.getpid()), socket.gethostname()]
        os.utime(path, (time.time() - 3600, time.time() - 3600))
        deadline = time.time() + 10
        while time.time() - path.stat().st_mtime > 60 and time.time() < deadline:
            time.sleep(0.05)
        assert time.time() - path.stat().st_mtime < 60
    assert not path.exists()


# ---------------------------------------------------------------------------------------------- unusable output dirs

def test_an_output_dir_that_is_a_file_or_below_one_is_one_error_line(tmp_path, capsys):
    import typer

    from prefswift.commands.train import main

    a_file = tmp_path / "results.txt"
    a_file.write_text("x")
    for out, words in ((a_file, "is a file"), (a_file / "run", "below the file")):
        with pytest.raises(typer.Exit) as stop:  # the command's own exit (a raw OSError before)
            main("orpo", [*BASE, "--output_dir", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.exit_code == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0]
    assert sorted(os.listdir(tmp_path)) == ["results.txt"] and a_file.read_text() == "x"


def test_an_output_dir_on_a_read_only_file_system_is_one_error_line(tmp_path, monkeypatch):
    """Writing on a read-only file system fails with EROFS whoever asks, root included: simulated by the folder
    creation failing so (as a non-root user a read-only folder is tried for real too)."""
    import errno

    out = tmp_path / "ro" / "run"
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if self == out or out in self.parents or self in out.parents and not self.exists():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(ArgumentError, match="Read-only file system"):
        train(out)
    assert not (tmp_path / "ro").exists()
    monkeypatch.undo()
    if os.geteuid() != 0:
        place = tmp_path / "locked"
        place.mkdir()
        place.chmod(0o555)
        with pytest.raises(ArgumentError, match="not writable"):
            train(place / "run")
        assert not (place / "run").exists()


def test_a_refused_run_leaves_no_empty_output_dir(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(ArgumentError):
        run_training(parse_command("orpo", [*BASE, "--output_dir", str(out), "--lora_target_modules", "no_such_proj"]),
                     "orpo", log=lambda *a, **k: None)
    assert not (tmp_path / "new").exists()
