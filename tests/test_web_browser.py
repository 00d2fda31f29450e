"""`prefswift web` in a real browser: headless Debian chromium driven by Selenium through the system chromedriver.

One server (uvicorn, 127.0.0.1, a free port) over a folder holding a finished tiny run, a damaged copy of it (a
half-written logging.jsonl line, a checkpoint deleted, another with its weights deleted) and a run that trains while
the page watches (a `prefswift dpo` subprocess). The oracles are the run's own files as the test reads them and what
the browser shows. Screenshots of each page go to $PREFSWIFT_WEB_SCREENSHOTS (docs/images for the README) or a tmp dir.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
if not (shutil.which("chromium") and os.path.exists("/usr/bin/chromedriver")):
    pytest.skip("chromium / chromedriver not installed (scripts/test.sh installs them)", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from prefswift.arguments import parse_command  # noqa: E402
from prefswift.commands.train import run_training  # noqa: E402
from web_server import Served, free_port  # noqa: E402

STEPS = 60  # the live run's steps
TINY = ["--model_type", "tiny-llama3", "--lora_target_modules", "q_proj,v_proj", "--gradient_checkpointing", "false",
        "--logging_steps", "1"]


def Server(root: Path, port: int, votes: Path) -> Served:
    """The page's server over `root` (a new WebState: a new Server on the same port is a server restart)."""
    from prefswift.web.app import WebState

    return Served(WebState(root, votes, ["Name a colour.", "Count to three."], None), port)


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_llama3_dir):
    root = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    # the run the page watches while it trains: started first, its start-up overlaps the rest of the set-up
    live = subprocess.Popen([sys.executable, "-m", "prefswift", "dpo", *TINY, "--dataset", "demo#64", "--eval_ratio",
                             "0", "--max_steps", str(STEPS), "--save_strategy", "no",
                             "--output_dir", str(root / "live")],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(root / "live.err", "w"))
    paused = threading.Event()  # the live run is held (SIGSTOP) at its first logged step until the page watches it
    threading.Thread(target=hold_at_first_step, args=(live, root / "live" / "logging.jsonl", paused),
                     daemon=True).start()
    run_training(parse_command("dpo", [*TINY, "--dataset", "demo#16", "--eval_ratio", "0.25", "--max_steps", "4",
                                       "--save_steps", "2", "--eval_steps", "2", "--output_dir", str(root / "done")]),
                 "dpo", log=lambda *a, **k: None)
    from prefswift.commands.eval import run_eval

    # a real `prefswift eval` result under the run: the run and compare pages show it
    held_out = root / "held_out.jsonl"
    held_out.write_text("".join(json.dumps({"prompt": f"Count to {n}.", "chosen": "Sure! " + " ".join(map(str, range(
        1, n + 1))), "rejected": "Great! no"}) + "\n" for n in (2, 3, 4, 5)))
    run_eval(parse_command("eval", ["--ckpt_dir", str(root / "done"), "--dataset", str(held_out)]),
             log=lambda *a, **k: None)
    broken = root / "broken"
    shutil.copytree(root / "done", broken)
    with open(broken / "logging.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 5, "loss": 0.69')  # a line cut mid-write
    shutil.rmtree(broken / "checkpoint-4")
    (broken / "checkpoint-2" / "adapter_model.safetensors").unlink()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1360,1000",
                 "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options)
    shots = Path(os.environ.get("PREFSWIFT_WEB_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    shots.mkdir(parents=True, exist_ok=True)
    port, votes = free_port(), root / "arena" / "votes.jsonl"
    server = Server(root, port, votes)
    state = {"root": root, "driver": driver, "server": server, "port": port, "votes": votes, "live": live,
             "shots": shots, "paused": paused}
    yield state
    driver.quit()
    state["server"].stop()
    if live.poll() is None:
        live.send_signal(signal.SIGCONT)
        live.kill()
    live.wait()


def hold_at_first_step(process, log: Path, paused: threading.Event) -> None:
    """SIGSTOP `process` once its log has a training row, so the page sees it mid-run however slow the set-up is."""
    while process.poll() is None:
        if log.exists() and '"loss"' in log.read_text(encoding="utf-8"):
            process.send_signal(signal.SIGSTOP)
            paused.set()
            return
        time.sleep(0.02)


def wait(driver, condition, timeout=60, what="the page"):
    """Until `condition(driver)` is truthy; elements the page redraws meanwhile (live charts) are looked up again."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
                         ).until(lambda d: condition(d), f"waiting for {what}")


def loss_points(drv) -> int:
    """How many points the loss chart draws (its data-points attribute), -1 while it is not there."""
    try:
        charts = drv.find_elements(By.CSS_SELECTOR, '#charts .chart[data-metric="loss"]')
        return int(charts[0].get_attribute("data-points")) if charts else -1
    except StaleElementReferenceException:
        return -1


def log_rows(run: Path):
    return [json.loads(line) for line in (run / "logging.jsonl").read_text().splitlines()]


def no_page_errors(driver):
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not severe, severe


def test_runs_page_follows_a_training_run_and_a_refresh_or_restart_keeps_its_curve(site):
    d, url = site["driver"], site["server"].url
    d.get(url + "/#/runs")

    def live_step(drv):
        cells = drv.find_elements(By.CSS_SELECTOR, 'tr[data-run="live"] td.step')
        state = drv.find_elements(By.CSS_SELECTOR, 'tr[data-run="live"] .badge')
        if cells and state and state[0].text == "running":
            step = int(cells[0].text.split("/")[0])
            return step if step >= 1 else False
        return False

    assert site["paused"].wait(120), (site["root"] / "live.err").read_text()[-2000:]
    first = wait(d, live_step, 60, "the live run's first logged step")  # held there: it cannot finish unseen
    site["live"].send_signal(signal.SIGCONT)

    def step_now(drv):
        cells = drv.find_elements(By.CSS_SELECTOR, 'tr[data-run="live"] td.step')
        return int(cells[0].text.split("/")[0]) if cells else 0

    second = wait(d, lambda drv: (s := step_now(drv)) > first and s, 60, "its step counter to advance")
    assert second > first  # the counter moved without a reload: server-sent events
    assert d.find_element(By.CSS_SELECTOR, 'tr[data-run="done"] .badge').text == "finished"
    d.save_screenshot(str(site["shots"] / "web-runs.png"))

    d.get(url + "/#/run/live")
    wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, '#charts .chart[data-metric="loss"]'), 30, "the curves")
    start = wait(d, lambda drv: int(drv.find_element(By.ID, "run-step").text) + 1, 10, "the step") - 1
    points = wait(d, lambda drv: loss_points(drv) + 2, 10, "the curve") - 2
    if start < STEPS:  # still training when the page opened: its step and curve grow without a reload
        wait(d, lambda drv: int(drv.find_element(By.ID, "run-step").text) > start, 60, "the run page's step to move")
        wait(d, lambda drv: loss_points(drv) > points, 30, "the curve to grow")
    assert site["live"].wait(180) == 0, (site["root"] / "live.err").read_text()[-2000:]
    wait(d, lambda drv: drv.find_element(By.CSS_SELECTOR, "#page .badge").text == "finished", 30, "finished")
    d.save_screenshot(str(site["shots"] / "web-run.png"))

    expected = sum(1 for r in log_rows(site["root"] / "live") for k in ("loss", "eval_loss") if k in r)
    assert expected >= STEPS  # a point per logged step at least: the whole curve
    wait(d, lambda drv: loss_points(drv) == expected, 20, "the whole curve before a refresh")
    d.refresh()
    wait(d, lambda drv: loss_points(drv) == expected, 20, "the whole curve after a refresh")
    site["server"].stop()  # a restart of the server: the page reads everything from the run's files again
    site["server"] = Server(site["root"], site["port"], site["votes"])
    d.refresh()
    wait(d, lambda drv: loss_points(drv) == expected, 20, "the whole curve after a server restart")
    no_page_errors(d)


def test_a_damaged_run_shows_clear_notes_not_a_broken_page(site):
    d = site["driver"]
    d.get(site["server"].url + "/#/run/broken")
    notes = wait(d, lambda drv: [n.text for n in drv.find_elements(By.CSS_SELECTOR, "#notes .note")] or False, 30,
                 "the notes")
    text = "\n".join(notes)
    assert "logging.jsonl line" in text and "not a whole JSON row" in text, text
    assert "checkpoint-4 is missing (deleted?)" in text, text
    assert "checkpoint-2" in text and "adapter_model.safetensors" in text, text
    # the rest of the page is whole: every finished row's curve point is drawn (the cut line is not)
    whole = [r for r in log_rows(site["root"] / "done") if "loss" in r or "eval_loss" in r]
    chart = d.find_element(By.CSS_SELECTOR, '#charts .chart[data-metric="loss"]')
    assert int(chart.get_attribute("data-points")) == len(whole)
    d.save_screenshot(str(site["shots"] / "web-run-damaged.png"))
    d.get(site["server"].url + "/#/compare?runs=done,live")
    wait(d, lambda drv: drv.find_elements(By.ID, "eval-table") or drv.find_elements(By.CSS_SELECTOR, "#charts .chart"),
         30, "the comparison")
    wait(d, lambda drv: drv.find_elements(By.ID, "eval-table"), 30, "the eval table")
    record = json.loads(next((site["root"] / "done").glob("*/eval_result/*.json")).read_text())
    table = {row.find_elements(By.TAG_NAME, "td")[0].text: [c.text for c in row.find_elements(By.TAG_NAME, "td")[1:]]
             for row in d.find_elements(By.CSS_SELECTOR, "#eval-table tr")[1:]}
    numeric = {k: v for k, v in record["metrics"].items() if isinstance(v, float) and math.isfinite(v)}
    assert numeric  # done's column: every number eval wrote (shown to 4 significant digits)
    for k, v in numeric.items():
        assert float(table[f"pairs: {k}"][0]) == pytest.approx(v, rel=1e-3, abs=1e-9), k
    assert all(cells[1] == "" for cells in table.values())  # live has no eval result: its column is empty
    legend = d.find_element(By.CSS_SELECTOR, '#charts .chart[data-metric="loss"] .legend').text
    assert "done: loss" in legend and "live: loss" in legend
    d.save_screenshot(str(site["shots"] / "web-compare.png"))
    no_page_errors(d)


def test_chat_streams_an_answer(site):
    d = site["driver"]
    d.get(site["server"].url + "/#/chat")
    Select(wait(d, lambda drv: drv.find_element(By.ID, "chat-run"), 30, "the chat")).select_by_value("done")
    d.find_element(By.ID, "chat-max").clear()
    d.find_element(By.ID, "chat-max").send_keys("12")
    d.find_element(By.ID, "chat-input").send_keys("Hello, who are you?")
    d.find_element(By.ID, "chat-send").click()
    wait(d, lambda drv: drv.find_element(By.CSS_SELECTOR, "#chatlog .reply").text.strip() and
         drv.find_element(By.ID, "chat-send").is_enabled(), 60, "the streamed answer")
    assert not d.find_elements(By.CSS_SELECTOR, "#chat-status .error")
    d.save_screenshot(str(site["shots"] / "web-chat.png"))


def wilson(score, n, z=1.959963984540054):
    """The Wilson score interval, as textbooks write it (E. B. Wilson, 1927)."""
    p = score / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def test_three_arena_votes_are_three_rows_that_dpo_trains_on(site, capsys):
    d, votes = site["driver"], site["votes"]
    d.get(site["server"].url + "/#/arena")
    wait(d, lambda drv: drv.find_elements(By.ID, "arena-go"), 30, "the arena")
    d.find_element(By.ID, "annotator").send_keys("ada")
    Select(d.find_element(By.ID, "arena-a")).select_by_value("broken")
    Select(d.find_element(By.ID, "arena-b")).select_by_value("done")
    d.find_element(By.ID, "arena-max").clear()
    d.find_element(By.ID, "arena-max").send_keys("8")
    d.find_element(By.ID, "arena-sample").click()  # sampled, each side with its own seed: two different answers
    shown = []
    for k, choice in enumerate(("A", "B", "tie")):
        prompt = d.find_element(By.ID, "arena-prompt")
        if k == 1:
            d.find_element(By.ID, "arena-draw").click()  # drawn from the prompt file
            wait(d, lambda drv: drv.find_element(By.ID, "arena-prompt").get_attribute("value"), 10, "a drawn prompt")
        else:
            prompt.clear()
            prompt.send_keys(f"Tell me something about the number {k + 7}.")
        d.find_element(By.ID, "arena-go").click()
        wait(d, lambda drv: drv.find_elements(By.ID, "vote-A"), 60, "both answers")
        shown.append((d.find_element(By.ID, "arena-prompt").get_attribute("value"),
                      d.find_element(By.ID, "answer-a").text, d.find_element(By.ID, "answer-b").text))
        if k == 2:
            d.save_screenshot(str(site["shots"] / "web-arena.png"))
        d.find_element(By.ID, f"vote-{choice}").click()
        wait(d, lambda drv: drv.find_elements(By.ID, "reveal"), 20, "the reveal")
    wait(d, lambda drv: drv.find_elements(By.ID, "winrate-table"), 20, "the win-rate table")
    rows = [json.loads(line) for line in votes.read_text().splitlines()]
    assert len(rows) == 3
    assert [r["winner"] for r in rows] == ["model_a", "model_b", "tie"]
    for row, (prompt, a, b) in zip(rows, shown):
        assert row["prompt"] == prompt.strip() and row["annotator"] == "ada"
        assert {row["model_a"], row["model_b"]} == {"broken", "done"}
        assert row["response_a"].strip() == a.strip() and row["response_b"].strip() == b.strip()
        assert row["time"].endswith("Z") and row["tstamp"] > 0
    assert rows[1]["prompt"] in ("Name a colour.", "Count to three.")
    # the table: broken's wins over done, ties half (the two ties of one vote), the Wilson interval by hand
    wins = sum((r["winner"] == "model_a") == (r["model_a"] == "broken") for r in rows[:2])
    cells = [c.text for c in d.find_elements(By.CSS_SELECTOR, "#winrate-table tr:nth-child(2) td")]
    low, high = wilson(wins + 0.5, 3)
    assert cells[:7] == ["broken", "done", "3", str(wins), "1", "0", str(2 - wins)]
    assert cells[7] == f"{(wins + 0.5) / 3:.3f}" and cells[8] == f"{low:.3f} – {high:.3f}"
    d.save_screenshot(str(site["shots"] / "web-arena-voted.png"))
    no_page_errors(d)

    # `prefswift dpo --dataset votes.jsonl`, no data flags: two pairs, the tie counted and skipped
    from prefswift.data.pipeline import build_preference_data
    from prefswift.models.loader import load_tokenizer, resolve_model
    from prefswift.templates import get_template

    args = parse_command("dpo", [*TINY, "--dataset", str(votes), "--eval_ratio", "0", "--max_steps", "1",
                                 "--save_strategy", "no", "--output_dir", str(site["root"] / "from_votes")])
    resolved = resolve_model("tiny-llama3", None)
    data = build_preference_data(args.data, get_template(resolved.template), load_tokenizer(resolved.path),
                                 log=print)
    pairs = sorted((r["example"].prompt, r["example"].chosen, r["example"].rejected) for r in data.train)
    assert pairs == sorted([(shown[0][0].strip(), rows[0]["response_a"], rows[0]["response_b"]),
                            (rows[1]["prompt"], rows[1]["response_b"], rows[1]["response_a"])])
    assert "arena vote: tie" in capsys.readouterr().out
    run_training(args, "dpo", log=lambda *a, **k: None)
    trained = [r for r in log_rows(site["root"] / "from_votes") if "loss" in r]
    assert [r["step"] for r in trained] == [1] and math.isfinite(trained[0]["loss"])
