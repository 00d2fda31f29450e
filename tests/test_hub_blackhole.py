"""A bad network never hangs a run: the mock hub in black-hole mode accepts every connection and never answers (a
firewall that drops packets, a hub that hangs). With the model and dataset cached, --check_model_is_latest false makes
no request at all; the default falls back to the cache after PREFSWIFT_HUB_TIMEOUT seconds with one warning; an
uncached download fails with one `error:` line. Each within a bound far below the 10 minutes it used to hang."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from test_hub_mock import error_line, hub, run, train_args  # noqa: E402,F401  (hub: the fixture)

TIMEOUT = "3"  # PREFSWIFT_HUB_TIMEOUT for these runs: seconds without an answer before a hub counts as unreachable


def timed(hub, cache, args, **kw):
    start = time.monotonic()
    proc = run(hub, cache, args, env={"PREFSWIFT_HUB_TIMEOUT": TIMEOUT}, timeout=300, **kw)
    return proc, time.monotonic() - start


def test_a_hub_that_never_answers_costs_a_bounded_wait_and_never_a_hang(hub, tmp_path):
    data = ["--dataset", "hh-rlhf-cn:harmless_base_cn", "--max_steps", "1", "--save_strategy", "no"]
    proc = run(hub, tmp_path, train_args(tmp_path / "warm", *data))  # fills the caches
    assert proc.returncode == 0, proc.stderr[-3000:]
    hub.black_hole = True

    proc, took = timed(hub, tmp_path, train_args(tmp_path / "cached", *data, "--check_model_is_latest", "false"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hub.swallowed == [], "with everything cached and --check_model_is_latest false, no request at all"

    proc, took = timed(hub, tmp_path, train_args(tmp_path / "default", *data))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hub.swallowed, "the default asks the hub"
    warnings = [ln for ln in proc.stderr.splitlines() if "unreachable" in ln or "did not answer" in ln]
    assert warnings and all(ln.startswith("[prefswift] warning:") for ln in warnings), proc.stderr[-3000:]
    assert took < 120, f"{took:.0f} s with a {TIMEOUT} s hub timeout"

    empty = tmp_path / "empty"  # caches with nothing in them
    empty.mkdir()
    proc, took = timed(hub, empty, ["dpo", "--model_id_or_path", "qwen/Qwen2.5-7B-Instruct", "--dataset", "demo",
                                    "--max_steps", "1", "--output_dir", str(empty / "out")])
    line = error_line(proc)
    assert "qwen/Qwen2.5-7B-Instruct" in line and took < 120, (line, took)
    assert not (empty / "out").exists(), "a refused run leaves no output dir behind"
