"""`prefswift web` without a browser: the arena's votes as training data, its win-rate table (hand-worked Wilson
interval), and the server's answers to bad requests and missing keys. The pages themselves: test_web_browser.py."""
import json
import urllib.error
import urllib.request

import pytest

from prefswift.data.formats import RowError, RowFiltered, convert_arena, detect_format
from prefswift.web.arena import Match, VoteError, vote_row, winrate_table
from web_server import Served


def vote(a, b, winner):
    return {"prompt": "p", "response_a": f"{a} says", "response_b": f"{b} says", "model_a": a, "model_b": b,
            "winner": winner, "annotator": "ada", "tstamp": 1.0}


def test_a_vote_row_is_a_preference_pair_and_ties_are_skipped_with_their_reason():
    assert detect_format(vote("x", "y", "model_a"))[0] == "arena"
    ex = convert_arena(vote("x", "y", "model_a"))
    assert (ex.prompt, ex.chosen, ex.rejected) == ("p", "x says", "y says")
    ex = convert_arena(vote("x", "y", "model_b"))
    assert (ex.chosen, ex.rejected) == ("y says", "x says")
    for winner, reason in (("tie", "arena vote: tie"), ("tie (bothbad)", "arena vote: both bad")):
        with pytest.raises(RowFiltered, match=reason):
            convert_arena(vote("x", "y", winner))
    with pytest.raises(RowError, match="'model_c'"):
        convert_arena(vote("x", "y", "model_c"))


def test_a_vote_records_what_was_shown_where_and_refuses_a_bad_choice():
    match = Match(prompt="Hi", left=("run1", 0, "left text"), right=("run2", 0, "right text"))
    row = vote_row(match, "B", "ada", now=0.0)
    assert (row["response_a"], row["model_a"], row["response_b"], row["model_b"]) == \
        ("left text", "run1", "right text", "run2")
    assert row["winner"] == "model_b" and row["time"] == "1970-01-01T00:00:00Z"
    with pytest.raises(VoteError, match="choice"):
        vote_row(match, "C", "ada")
    with pytest.raises(VoteError, match="annotator"):
        vote_row(match, "A", " ")


def test_the_win_rate_table_counts_ties_half_with_a_wilson_interval():
    """x against y: 2 wins, 1 loss, 1 tie, 1 both-bad (a tie) -> n = 5, score 3, win rate 0.6.
    Wilson by hand (z = 1.96): denom = 1 + 3.8416/5 = 1.76832; centre = (0.6 + 0.38416)/1.76832 = 0.556546;
    half = 1.96 * sqrt(0.24/5 + 3.8416/100) / 1.76832 = 1.96 * 0.293966 / 1.76832 = 0.325834 -> 0.2307 .. 0.8824.
    Votes between two samples of one run have no pair and are left out."""
    rows = [vote("x", "y", "model_a"), vote("y", "x", "model_b"), vote("x", "y", "model_b"),
            vote("y", "x", "tie"), vote("x", "y", "tie (bothbad)"), vote("x", "x", "model_a")]
    (table,) = winrate_table(rows)
    assert (table["run"], table["opponent"], table["prompts"]) == ("x", "y", 5)
    assert (table["wins"], table["ties"], table["losses"], table["both_bad"]) == (2, 2, 1, 1)
    assert table["win_rate"] == pytest.approx(0.6)
    assert table["ci95_low"] == pytest.approx(0.2307, abs=2e-4)
    assert table["ci95_high"] == pytest.approx(0.8824, abs=2e-4)


@pytest.fixture
def server(tmp_path):
    from prefswift.web.app import WebState

    served = Served(WebState(tmp_path, tmp_path / "votes.jsonl", [], "sekret"))
    yield served.url
    served.stop()


def call(url, body=None, key="sekret"):
    req = urllib.request.Request(url, data=None if body is None else body.encode(), method="POST" if body else "GET",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_bad_requests_get_a_4xx_with_one_message_and_the_server_keeps_serving(server):
    assert call(server + "/api/runs", key=None)[0] == 401
    assert call(server + "/api/runs", key="wrong")[0] == 401
    cases = [
        (server + "/api/run?name=nope", None, 404, "no run 'nope'"),
        (server + "/api/run?name=../../etc", None, 404, "not under --runs_dir"),
        (server + "/api/arena/vote", "{not json", 400, "JSON"),
        (server + "/api/arena/vote", '{"id": "x", "choice": "A"}', 404, "no open match"),
        (server + "/api/arena/match", '{"run_a": "a", "run_b": "b"}', 400, "prompt"),
        (server + "/api/arena/match", '{"run_a": "a", "run_b": "b", "prompt": "hi", "options": {"max_new_tokens": 0}}',
         400, "max_new_tokens"),
        (server + "/api/arena/match", '{"run_a": "a", "run_b": "b", "prompt": "hi", "options": {"top_k": -1}}',
         400, "top_k"),
        (server + "/api/arena/match", '{"run_a": "a", "run_b": "b", "prompt": "hi", "options": {"min_p": 0.1}}',
         400, "min_p"),
        (server + "/api/chat", '{"run": "a", "messages": []}', 400, "messages"),
        (server + "/api/chat", '{"run": "a", "messages": [{"role": "user", "content": "hi"}]}', 404, "'a'"),
        (server + "/api/arena/prompt", None, 404, "--prompt_file"),
    ]
    for url, body, status, words in cases:
        code, answer = call(url, body)
        assert (code, list(answer)) == (status, ["error"]) and words in answer["error"], (url, body, answer)
    assert call(server + "/api/runs") == (200, {"runs_dir": call(server + "/api/runs")[1]["runs_dir"], "runs": []})


def test_web_refuses_to_listen_beyond_this_machine_without_a_key(tmp_path, capsys):
    import typer

    from prefswift.commands.web import main

    with pytest.raises(typer.Exit) as stop:
        main(["--runs_dir", str(tmp_path), "--host", "0.0.0.0"])
    assert stop.value.exit_code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--api_key" in err[0] and "--allow_unauthenticated true" in err[0]


def test_a_run_whose_lock_names_another_host_is_judged_by_its_writes_not_called_interrupted(server, tmp_path):
    """A multi-node job's rank 0 holds the lock on another machine: this machine cannot ask whether that pid lives
    (the same pid here means nothing), so the run is `running` while it wrote within FRESH_S (300 s), `unknown` after,
    naming the host and how long ago, and `finished` once complete.json is there — never `interrupted`."""
    import os
    import time

    from prefswift.arguments import parse_command
    from prefswift.run.state import read_run

    run = tmp_path / "multi"
    run.mkdir()
    args = parse_command("dpo", ["--model_type", "tiny-llama3", "--output_dir", str(run), "--max_steps", "8"])
    (run / "args.json").write_text(json.dumps(args.to_flat_dict()))
    log, lock = run / "logging.jsonl", run / ".prefswift.lock"
    log.write_text('{"step": 1, "loss": 0.69}\n{"step": 2, "loss": 0.68}\n')
    lock.write_text(f"{os.getpid()}\nnode-b.cluster\n")  # a pid that lives here too: not the one that counts
    now = time.time()

    def at(path, seconds_ago):
        os.utime(path, (now - seconds_ago, now - seconds_ago))

    def listed():
        code, answer = call(server + "/api/runs")
        assert code == 200
        return next(r for r in answer["runs"] if r["name"] == "multi")

    at(lock, 5), at(log, 400)  # the lock's heartbeat is fresh
    info = read_run(run)
    assert (info.state, info.host, info.running_pid, info.step) == ("running", "node-b.cluster", os.getpid(), 2)
    row = listed()
    assert (row["state"], row["host"]) == ("running", "node-b.cluster") and "node-b.cluster" in row["state_note"]
    at(lock, 3600), at(log, 60)  # no heartbeat seen (a lock written before heartbeats), but a row logged a minute ago
    assert read_run(run).state == "running"
    at(lock, 3600), at(log, 600)  # nothing for ten minutes
    info = read_run(run)
    assert (info.state, info.host) == ("unknown", "node-b.cluster") and abs(info.last_write_s - 600) < 5
    row = listed()
    assert row["state"] == "unknown" and row["host"] == "node-b.cluster"
    assert "node-b.cluster" in row["state_note"] and "10 min ago" in row["state_note"], row["state_note"]
    (run / "complete.json").write_text('{"global_step": 8, "max_steps": 8}\n')  # its end, left with a stale lock
    info = read_run(run)
    assert (info.state, info.host, info.step) == ("finished", None, 8)
    assert listed()["state"] == "finished"


@pytest.fixture(scope="module")
def one_trained_run(tmp_path_factory):
    from prefswift.arguments import parse_command
    from prefswift.commands.train import run_training

    root = tmp_path_factory.mktemp("arena_runs")
    run_training(parse_command("orpo", ["--model_type", "tiny-llama3", "--dataset", "demo#8", "--eval_ratio", "0",
                                        "--max_steps", "1", "--save_strategy", "no", "--gradient_checkpointing",
                                        "false", "--lora_target_modules", "q_proj,v_proj", "--output_dir",
                                        str(root / "r")]), "orpo", log=lambda *a, **k: None)
    return root


def test_a_match_shown_before_a_server_restart_is_voted_on_after_it(one_trained_run):
    """The page shows a match, the server restarts (a new process state: nothing of the first one's memory), the
    person votes: the row is appended with what the page was shown; the same vote again is refused, and nothing of
    the match is left beside the votes file."""
    from prefswift.web.app import WebState

    root = one_trained_run
    votes = root / "arena" / "votes.jsonl"
    first = Served(WebState(root, votes, [], None))
    try:
        code, match = call(first.url + "/api/arena/match", json.dumps({
            "run_a": "r", "run_b": "r", "prompt": "Name a colour.", "options": {"max_new_tokens": 4}}), key=None)
    finally:
        first.stop()
    assert code == 200, match
    second = Served(WebState(root, votes, [], None))
    try:
        body = json.dumps({"id": match["id"], "choice": "B", "annotator": "ada"})
        code, answer = call(second.url + "/api/arena/vote", body, key=None)
        assert code == 200, answer  # before: 404 "no open match ... (or the server restarted)"
        rows = [json.loads(line) for line in votes.read_text().splitlines()]
        assert len(rows) == 1
        row = rows[0]
        assert (row["prompt"], row["response_a"], row["response_b"]) == ("Name a colour.", match["A"], match["B"])
        assert (row["model_a"], row["model_b"], row["winner"], row["annotator"]) == ("r", "r", "model_b", "ada")
        assert row["match_id"] == match["id"] and {row["sample_a"], row["sample_b"]} == {0, 1}
        code, again = call(second.url + "/api/arena/vote", body, key=None)
        assert code == 409 and "already voted" in again["error"], again
        for bad in ("0123456789abcdef", "../votes"):
            code, answer = call(second.url + "/api/arena/vote", json.dumps({"id": bad, "choice": "A",
                                                                            "annotator": "ada"}), key=None)
            assert code == 404 and list(answer) == ["error"], answer
        assert len(votes.read_text().splitlines()) == 1
    finally:
        second.stop()
    assert sorted(p.name for p in votes.parent.iterdir()) == ["votes.jsonl"]
