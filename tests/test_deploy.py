"""`prefswift deploy` end to end: a real server process on 127.0.0.1 asked with the real `openai` client.

Oracles: plain transformers + PEFT (greedy `generate`, one forward's log_softmax, the base with the adapter disabled
for DPO's reference), `tokenizer.apply_chat_template` and `prefswift preview` for the prompt's token ids.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from prefswift.arguments import parse_command
from test_merge import adapter_model, make_adapter

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")

openai = pytest.importorskip("openai")
KEY = "test-key"
HELLO = [{"role": "user", "content": "Hello, who are you?"}]
BETA = 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_run(root: Path, name: str, seed: int, algo: str, *extra) -> Path:
    run = root / name
    make_adapter("tiny-llama3", run / "adapter", seed=seed, scale=3.0)
    for d in (run, run / "adapter"):
        parse_command(algo, ["--model_type", "tiny-llama3", "--dataset", "demo", *extra]).save(d)
    return run


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    runs = {"runA": make_run(root, "runA", 1, "dpo", "--beta", str(BETA)), "runB": make_run(root, "runB", 2, "orpo"),
            "runC": make_run(root, "runC", 3, "orpo")}
    port = free_port()
    cmd = [sys.executable, "-m", "prefswift", "deploy", "--ckpt_dir", str(runs["runA"]), "--adapters",
           f"runB={runs['runB']}", "--port", str(port), "--api_key", KEY, "--max_batch_size", "8", "--max_queue", "16"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read())
            time.sleep(0.25)
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    yield {"url": url, "client": client, "proc": proc, "runs": runs}
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def oracle(server):
    """runA and runB as plain PEFT models on the tiny base, and the tokenizer."""
    from transformers import AutoTokenizer

    from prefswift.models.tiny import ensure_tiny_model

    base = ensure_tiny_model("tiny-llama3")
    models = {name: adapter_model(server["runs"][name] / "adapter", base) for name in ("runA", "runB")}
    return models, AutoTokenizer.from_pretrained(str(base))


def post(server, path, body, key=KEY, raw=None, method="POST"):
    """(status, json body, headers) of a raw request."""
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(server["url"] + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def greedy(model, tok, messages, n_tokens, **generate_kwargs):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=n_tokens, do_sample=False,
                             eos_token_id=[tok.convert_tokens_to_ids("<|eot_id|>"),
                                           tok.convert_tokens_to_ids("<|end_of_text|>")], pad_token_id=999,
                             **generate_kwargs)
    return ids, out[0, len(ids):].tolist()


def test_chat_greedy_and_prompt_ids_match_transformers_and_preview(server, oracle, tmp_path):
    from prefswift.commands.preview import run_preview

    models, tok = oracle
    c = server["client"]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What is 2 plus 2?"}]
    r = c.chat.completions.create(model="runA", messages=messages, max_tokens=16, temperature=0,
                                  extra_body={"return_token_ids": True})
    prompt_ids, want = greedy(models["runA"], tok, messages, 16)
    assert r.model_extra["prompt_token_ids"] == prompt_ids
    assert r.choices[0].model_extra["token_ids"] == want
    assert r.choices[0].message.content == tok.decode(want, skip_special_tokens=True)
    assert r.usage.prompt_tokens == len(prompt_ids) and r.usage.completion_tokens == len(want)
    # the same conversation as a preference row: what `prefswift preview` (= training) shows
    data = tmp_path / "conv.jsonl"
    data.write_text(json.dumps({"system": "Be brief.", "history": [["Hi", "Hello!"]], "prompt": "What is 2 plus 2?",
                                "chosen": "4", "rejected": "5"}) + "\n")
    shown = json.loads(run_preview(parse_command("preview", ["--model_type", "tiny-llama3", "--dataset", str(data)]),
                                   n=1, as_json=True))
    assert shown["pairs"][0]["prompt_input_ids"] == prompt_ids
    # streamed: the same text, piece by piece, one finish_reason
    chunks = list(c.chat.completions.create(model="runA", messages=messages, max_tokens=16, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == r.choices[0].message.content
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.completion_tokens == len(want)


def test_two_adapters_by_name_answer_differently(server, oracle):
    models, tok = oracle
    answers = {}
    for name in ("runA", "runB", "tiny-llama3"):
        r = server["client"].chat.completions.create(model=name, messages=HELLO, max_tokens=12, temperature=0)
        answers[name] = r.choices[0].message.content
    assert len(set(answers.values())) == 3
    for name in ("runA", "runB"):
        assert answers[name] == tok.decode(greedy(models[name], tok, HELLO, 12)[1], skip_special_tokens=True)
    assert {m.id for m in server["client"].models.list()} == {"runA", "runB", "tiny-llama3"}


def test_vllms_top_k_and_repetition_penalty_act(server, oracle):
    """vLLM's extra parameters: top_k 1 is greedy whatever the temperature; repetition_penalty answers as transformers'
    generate with that penalty (and differently from without it)."""
    models, tok = oracle
    c = server["client"]
    plain = greedy(models["runA"], tok, HELLO, 24)[1]
    r = c.chat.completions.create(model="runA", messages=HELLO, max_tokens=24, temperature=1.5, seed=3,
                                  extra_body={"top_k": 1, "return_token_ids": True})
    assert r.choices[0].model_extra["token_ids"] == plain
    penalised = greedy(models["runA"], tok, HELLO, 24, repetition_penalty=1.5)[1]
    r = c.chat.completions.create(model="runA", messages=HELLO, max_tokens=24, temperature=0,
                                  extra_body={"repetition_penalty": 1.5, "return_token_ids": True})
    assert r.choices[0].model_extra["token_ids"] == penalised != plain
    for bad in ({"top_k": -2}, {"top_k": 1.5}, {"repetition_penalty": 0}):
        code, body, _ = post(server, "/v1/chat/completions", {"model": "runA", "messages": HELLO, **bad})
        assert code == 400 and body["error"]["param"] == next(iter(bad)), body


def test_n_seed_logprobs_and_stop(server, oracle):
    models, tok = oracle
    c = server["client"]
    kw = dict(model="runB", messages=HELLO, max_tokens=8, temperature=1.0, n=3, seed=7, logprobs=True, top_logprobs=3,
              extra_body={"return_token_ids": True})
    a, b = c.chat.completions.create(**kw), c.chat.completions.create(**kw)
    assert [x.message.content for x in a.choices] == [x.message.content for x in b.choices]  # seeded
    assert len({x.message.content for x in a.choices}) == 3 and [x.index for x in a.choices] == [0, 1, 2]
    ids = tok.apply_chat_template(HELLO, add_generation_prompt=True, return_dict=False)
    with torch.no_grad():
        logp = torch.log_softmax(models["runB"](input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)
    best = logp.topk(3)
    for choice in a.choices:
        first, first_id = choice.logprobs.content[0], choice.model_extra["token_ids"][0]
        assert first.logprob == pytest.approx(float(logp[first_id]), abs=1e-4)
        assert [t.logprob for t in first.top_logprobs] == pytest.approx(best.values.tolist(), abs=1e-4)
        assert first.top_logprobs[0].token == tok.decode([int(best.indices[0])])
    # stop: the greedy answer cut before the stop string, finish_reason "stop", streamed or not
    full = c.chat.completions.create(model="runA", messages=HELLO, max_tokens=20, temperature=0).choices[0]
    stop = full.message.content[5:8]
    cut = c.chat.completions.create(model="runA", messages=HELLO, max_tokens=20, temperature=0, stop=[stop]).choices[0]
    assert cut.message.content == full.message.content[:full.message.content.find(stop)]
    assert cut.finish_reason == "stop"
    streamed = c.chat.completions.create(model="runA", messages=HELLO, max_tokens=20, temperature=0, stop=stop,
                                         stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in streamed if ch.choices) == cut.message.content


def test_completions_streaming_and_not(server, oracle):
    models, tok = oracle
    c = server["client"]
    r = c.completions.create(model="runA", prompt="The sky is", max_tokens=6, temperature=0, logprobs=2)
    ids = tok("The sky is")["input_ids"]
    x = torch.tensor([ids])
    with torch.no_grad():
        want = models["runA"].generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=6,
                                       do_sample=False, eos_token_id=[-1], pad_token_id=999)[0, len(ids):].tolist()
    assert r.choices[0].text == tok.decode(want, skip_special_tokens=True)
    assert len(r.choices[0].logprobs.tokens) == 6 and all(len(t) == 2 for t in r.choices[0].logprobs.top_logprobs)
    s = c.completions.create(model="runA", prompt="The sky is", max_tokens=6, temperature=0, stream=True)
    assert "".join(ch.choices[0].text for ch in s) == r.choices[0].text


def test_bad_requests_are_4xx_with_one_message(server):
    chat = "/v1/chat/completions"
    cases = [
        (post(server, chat, None, raw=b"{not json"), 400),
        (post(server, chat, {"model": "nope", "messages": HELLO}), 404),
        (post(server, chat, {"model": "runA", "messages": HELLO, "max_tokens": -3}), 400),
        (post(server, chat, {"model": "runA", "messages": HELLO}, key=None), 401),
        (post(server, chat, {"model": "runA", "messages": HELLO}, key="wrong"), 401),
        (post(server, chat, {"model": "runA", "messages": HELLO, "frequency_penalty": 1.5}), 400),
        (post(server, chat, {"model": "runA", "messages": HELLO, "top_logprobs": 2}), 400),
        (post(server, chat, {"model": "runA", "messages": [{"role": "assistant", "content": "x"}]}), 400),
        (post(server, chat, {"model": "runA", "messages": HELLO, "temperature": "hot"}), 400),
        (post(server, "/v1/completions", {"model": "runA", "prompt": "x", "echo": True}), 400),
    ]
    for (status, body, _), want in cases:
        assert status == want, body
        assert set(body) == {"error"} and isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert "\n" not in body["error"]["message"] and "Traceback" not in body["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        server["client"].chat.completions.create(model="nope", messages=HELLO)
    assert post(server, "/health", None, method="GET", raw=b"")[0] == 200   # still serving


def test_adapter_added_and_dropped_while_serving(server):
    c = server["client"]
    status, body, _ = post(server, "/v1/adapters", {"name": "runC", "path": str(server["runs"]["runC"])})
    assert status == 200, body
    assert "runC" in {m.id for m in c.models.list()}
    answer_c = c.chat.completions.create(model="runC", messages=HELLO, max_tokens=8, temperature=0)
    answer_b = c.chat.completions.create(model="runB", messages=HELLO, max_tokens=8, temperature=0)
    assert answer_c.choices[0].message.content != answer_b.choices[0].message.content
    assert post(server, "/v1/adapters", {"name": "runC", "path": str(server["runs"]["runC"])})[0] == 409
    assert post(server, "/v1/adapters", {"name": "x", "path": "/no/such/dir"})[0] == 400
    assert post(server, "/v1/adapters/runC", None, raw=b"", method="DELETE")[0] == 200
    assert "runC" not in {m.id for m in c.models.list()}
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="runC", messages=HELLO, max_tokens=4)


def test_preference_endpoint_gives_dpo_margin_of_a_direct_computation(server, oracle):
    models, tok = oracle
    prompt, chosen, rejected = "What is 2 plus 2?", "It is 4.", "Five."
    status, got, _ = post(server, "/v1/preference", {"model": "runA", "prompt": prompt, "chosen": chosen,
                                                      "rejected": rejected})
    assert status == 200, got
    model = models["runA"]
    p_ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                    return_dict=False)

    def logp(answer, disabled):
        full = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                                       return_dict=False)
        x = torch.tensor([full])
        with torch.no_grad():
            if disabled:
                with model.disable_adapter():
                    lp = torch.log_softmax(model(input_ids=x).logits[0].double(), -1)
            else:
                lp = torch.log_softmax(model(input_ids=x).logits[0].double(), -1)
        return lp[len(p_ids) - 1:-1].gather(-1, x[0, len(p_ids):, None]).sum().item()

    pc, pr, rc, rr = logp(chosen, False), logp(rejected, False), logp(chosen, True), logp(rejected, True)
    assert got["policy"]["chosen_logp"] == pytest.approx(pc, abs=1e-3)
    assert got["reference"]["rejected_logp"] == pytest.approx(rr, abs=1e-3)
    assert got["rewards"]["margin"] == pytest.approx(BETA * ((pc - rc) - (pr - rr)), abs=1e-3)


def test_load_64_requests_at_concurrency_16_nothing_lost(server, oracle):
    """Two adapters mixed in one continuously-batched run; every answer checked against PEFT's own greedy generate of
    that request alone (at most a few may differ where batched float sums flip a near-tie of this random model)."""
    models, tok = oracle
    c = server["client"]

    def messages(i):
        return [{"role": "user", "content": f"Question {i}: " + "why? " * (i % 5)}]

    def ask(i):
        r = c.chat.completions.create(model=("runA", "runB")[i % 2], max_tokens=4 + i % 9, temperature=0,
                                      messages=messages(i), extra_body={"return_token_ids": True})
        return r.choices[0].finish_reason, r.choices[0].model_extra["token_ids"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(ask, range(64)))
    assert len(results) == 64 and all(reason in ("stop", "length") and ids for reason, ids in results)
    same = sum(ids == greedy(models[("runA", "runB")[i % 2]], tok, messages(i), 4 + i % 9)[1]
               for i, (_, ids) in enumerate(results))
    assert same >= 60


def test_full_queue_is_429_with_retry_after_and_disconnect_frees_the_slot(server):
    body = {"model": "runA", "messages": HELLO, "max_tokens": 120, "temperature": 0}
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda _: post(server, "/v1/chat/completions", body), range(40)))
    codes = [a[0] for a in answers]
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes
    assert all(int(h["Retry-After"]) >= 1 for code, _, h in answers if code == 429)
    # a streaming client that leaves after two chunks: its request is cancelled, nothing stays in flight
    with server["client"].chat.completions.create(model="runA", messages=HELLO, max_tokens=1500, temperature=0,
                                                  stream=True) as stream:
        for i, _ in zip(range(2), stream):
            pass
    for _ in range(40):
        if post(server, "/health", None, method="GET", raw=b"")[1]["in_flight"] == 0:
            break
        time.sleep(0.25)
    assert post(server, "/health", None, method="GET", raw=b"")[1]["in_flight"] == 0


def test_sigterm_finishes_in_flight_and_exits_0(server):
    """Last in the module: stops the server."""
    result = {}

    def ask():
        r = server["client"].chat.completions.create(model="runA", messages=HELLO, max_tokens=300, temperature=0)
        result["r"] = r.choices[0].finish_reason, r.usage.completion_tokens

    t = threading.Thread(target=ask)
    t.start()
    for _ in range(240):  # the request is in flight (however loaded the machine) before the signal
        if post(server, "/health", None, method="GET", raw=b"")[1]["in_flight"] >= 1:
            break
        time.sleep(0.05)
    server["proc"].send_signal(signal.SIGTERM)
    t.join(60)
    assert result["r"] == ("length", 300)
    assert server["proc"].wait(30) == 0


def test_listening_beyond_localhost_needs_a_key():
    from prefswift.commands.deploy import run_deploy
    from prefswift.errors import ArgumentError

    with pytest.raises(ArgumentError, match="--api_key"):
        run_deploy(parse_command("deploy", ["--model_type", "tiny-llama3", "--host", "0.0.0.0"]))
    with pytest.raises(ArgumentError, match="NAME=PATH"):
        parse_command("deploy", ["--model_type", "tiny-llama3", "--adapters", "nopath"])


def test_deploy_says_when_the_dirs_own_chat_template_is_not_trainings(tiny_llama3_dir):
    """At start, deploy checks the tokenizer's own jinja against the run's template (rendered by transformers'
    apply_chat_template): silent when they agree, one line naming the template when they do not."""
    from transformers import AutoTokenizer

    from prefswift.commands.deploy import template_note
    from prefswift.templates import get_template

    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    llama3, chatml = get_template("llama3"), get_template("chatml")
    assert tok.chat_template and template_note(tok, llama3) is None
    note = template_note(tok, chatml)
    assert note.startswith("the model dir's chat template: chat template differs from training's (template chatml)")
    assert "\n" not in note and "deploy formats prompts with training's template chatml" in note
