"""The one generation engine (`prefswift.generation`) against oracles the project did not write: transformers' own
logits processors on a fixed logits vector (hand-checked too), and `prefswift infer`'s greedy answers against plain
`transformers` `model.generate` on the tiny model, with and without a repetition penalty."""
import json
import math

import pytest
import torch

from prefswift.arguments import parse_command
from prefswift.generation.sampler import keep_top_k, penalize_repeats, sampling_probs
from prefswift.generation.types import SamplingParams

LOGITS = torch.tensor([2.0, -1.0, 0.5, 3.0, -0.5, 1.0])
SEEN = [0, 1, 1, 4]   # prompt and generated ids so far (a repeat included)


def test_repetition_penalty_matches_transformers_by_hand():
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    ours = penalize_repeats(LOGITS, SEEN, 1.5)
    # hand: seen positive logits / 1.5, seen negative * 1.5, unseen unchanged
    assert ours.tolist() == pytest.approx([2.0 / 1.5, -1.5, 0.5, 3.0, -0.75, 1.0])
    theirs = RepetitionPenaltyLogitsProcessor(1.5)(torch.tensor([SEEN]), LOGITS[None].clone())[0]
    assert torch.allclose(ours, theirs)
    assert LOGITS[0] == 2.0 and penalize_repeats(LOGITS, SEEN, 1.0) is LOGITS   # no copy changed, 1.0 is off


def test_top_k_top_p_and_temperature_match_transformers():
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    inf = float("-inf")
    assert keep_top_k(LOGITS, 2).tolist() == [2.0, inf, inf, 3.0, inf, inf]            # by hand
    assert torch.equal(keep_top_k(LOGITS, 2), TopKLogitsWarper(2)(None, LOGITS[None].clone())[0])
    ties = torch.tensor([1.0, 2.0, 2.0, 0.0])
    assert torch.equal(keep_top_k(ties, 1), TopKLogitsWarper(1)(None, ties[None].clone())[0])   # both 2.0 kept
    assert keep_top_k(LOGITS, 0) is LOGITS
    for temperature, top_k, top_p in ((0.7, 3, 1.0), (1.3, 0, 0.8), (2.0, 4, 0.6)):
        ours = sampling_probs(LOGITS, SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p))
        scores = TemperatureLogitsWarper(temperature)(None, LOGITS[None].clone())   # generate's warper order
        if top_k:
            scores = TopKLogitsWarper(top_k)(None, scores)
        scores = TopPLogitsWarper(top_p)(None, scores)
        assert torch.allclose(ours, torch.softmax(scores[0], -1), atol=1e-6), (temperature, top_k, top_p)
    # by hand, top_k 2 at temperature 1: softmax over {3.0, 2.0} only
    probs = sampling_probs(LOGITS, SamplingParams(temperature=1.0, top_k=2))
    assert probs[3].item() == pytest.approx(1 / (1 + math.exp(-1))) and probs[[1, 2, 4, 5]].sum() == 0


PROMPTS = ["What is 2 plus 2?", "Tell me a story about a cat who lives on the moon and eats cheese.", "Hi"]


def test_greedy_infer_equals_transformers_generate(tmp_path, tiny_llama3_dir):
    """`prefswift infer --dataset` (the engine, all prompts batched together) == transformers' greedy `generate` on
    each prompt alone, with no repetition penalty and with one (which changes the answers)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefswift.commands.infer import run_infer
    from prefswift.templates import get_template

    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "chosen": "a", "rejected": "b"}) + "\n" for p in PROMPTS))
    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama3_dir).eval()
    eos = [tok.convert_tokens_to_ids("<|eot_id|>"), tok.eos_token_id]
    answers = {}
    for penalty in ("1.0", "1.3"):
        args = parse_command("infer", ["--model_id_or_path", str(tiny_llama3_dir), "--template", "llama3",
                                       "--dataset", str(data), "--max_new_tokens", "12", "--repetition_penalty",
                                       penalty, "--infer_output", str(tmp_path / f"out{penalty}.jsonl")])
        path = run_infer(args, log=lambda *a, **k: None)
        got = [json.loads(line)["response"] for line in path.read_text().splitlines()]
        want = []
        for prompt in PROMPTS:
            ids = torch.tensor([get_template("llama3").encode_prompt(tok, None, [], prompt)])
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12,
                                 repetition_penalty=float(penalty), eos_token_id=eos, pad_token_id=eos[0])
            new = out[0, ids.shape[1]:].tolist()
            new = new[:next((i for i, t in enumerate(new) if t in eos), len(new))]
            want.append(tok.decode(new, skip_special_tokens=True))
        assert got == want, penalty
        assert any(len(w) > 5 for w in want)   # something was generated
        answers[penalty] = got
    assert answers["1.0"] != answers["1.3"]   # the penalty acted


@pytest.fixture(scope="module")
def tiny_loaded(tiny_llama3_dir):
    from prefswift.models.checkpoint import load_for_inference, resolve_source

    return load_for_inference(resolve_source(parse_command("infer", ["--model_id_or_path", str(tiny_llama3_dir),
                                                                     "--template", "llama3"])))


def test_sampled_tokens_stay_in_the_top_k(tiny_loaded):
    """Through the whole engine: with top_k 2 every drawn token is one of the model's two most likely (its reported
    top log-probs), whatever the temperature; the same seed draws the same tokens."""
    from prefswift.generation.local import LocalEngine

    engine = LocalEngine(tiny_loaded)
    ids = tiny_loaded.template.encode_prompt(tiny_loaded.tokenizer, None, [], "Hi")
    params = SamplingParams(max_tokens=16, temperature=5.0, top_k=2, n=3, seed=11, logprobs=True, top_logprobs=2)
    try:
        [choices] = engine.generate([ids], params)
        [again] = engine.generate([ids], params)
    finally:
        engine.close()
    drawn = [(lp.token_id, {t.token_id for t in lp.top}) for c in choices for lp in c.logprobs]
    assert len(drawn) >= 16 and all(token in top for token, top in drawn)
    assert any(lp.token_id != max(lp.top, key=lambda t: t.logprob).token_id for c in choices for lp in c.logprobs)
    assert [c.token_ids for c in choices] == [c.token_ids for c in again]


def test_sample_batches_draw_the_same_whatever_ran_before(tiny_loaded):
    """`prefswift sample`'s sampler (the engine, K choices per prompt): a batch drawn with a seed gives the same K
    samples fresh and after another batch ran; another seed gives others."""
    from prefswift.infer.sampling import EngineSampler

    infer = parse_command("sample", ["--max_new_tokens", "8"]).infer
    tok, tmpl = tiny_loaded.tokenizer, tiny_loaded.template
    batch = [tmpl.encode_prompt(tok, None, [], p) for p in ("Hi", "What is 2 plus 2?")]
    sampler = EngineSampler(tiny_loaded, infer, 3)
    try:
        first = sampler.sample(batch, 5)
        sampler.sample([tmpl.encode_prompt(tok, None, [], "Something else entirely")] * 3, 6)
        assert sampler.sample(batch, 5) == first
        assert sampler.sample(batch, 9) != first
    finally:
        sampler.close()
    assert [len(g) for g in first] == [3, 3] and all(len(set(g)) > 1 for g in first)
