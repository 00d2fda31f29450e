"""Models whose logits are not `lm_head(hidden)`: Gemma 2's final soft-cap, Cohere's logit_scale, Granite's
logits_scaling. prefswift's chunked head must give the log-probs and gradients of the model's own forward
(`log_softmax(model(...).logits)`, plain transformers, one unpadded sequence at a time) in every layout, with a
trainable head (checkpointed chunks) and a frozen one (the hand-written backward LoRA / ZeRO-3 use)."""
import logging
import shutil

import pytest
import torch
from transformers import (CohereConfig, CohereForCausalLM, Gemma2Config, Gemma2ForCausalLM, GraniteConfig,
                          GraniteForCausalLM)

from prefswift.arguments import parse_command
from prefswift.models.loader import load_model
from prefswift.scoring.collators import PairCollator, PrefixSharedCollator
from prefswift.scoring.forward import completion_logps, pair_forward
from prefswift.scoring.head_transform import logit_transform

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

VOCAB = 1000  # the tiny models' tokenizer size, so a built model directory also trains from the CLI
SIZES = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16, initializer_range=0.3, tie_word_embeddings=False)
# big initial weights, so the logits are large and the transform changes every log-prob a lot
MODELS = {
    "gemma2": (Gemma2Config, Gemma2ForCausalLM, dict(final_logit_softcapping=2.0, attn_logit_softcapping=5.0)),
    "cohere": (CohereConfig, CohereForCausalLM, dict(logit_scale=0.25)),
    "granite": (GraniteConfig, GraniteForCausalLM, dict(logits_scaling=3.0)),
}
SHAPES = [(5, 3, 4), (9, 6, 1), (2, 7, 7), (3, 1, 2)]  # prompt, chosen, rejected lengths


def build(kind, out_dir, tokenizer_dir=None):
    config_cls, model_cls, extra = MODELS[kind]
    torch.manual_seed(0)
    model = model_cls(config_cls(**SIZES, **extra, bos_token_id=994, eos_token_id=998, pad_token_id=999))
    model.save_pretrained(out_dir)
    if tokenizer_dir is not None:
        for f in tokenizer_dir.iterdir():
            if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
                shutil.copy(f, out_dir / f.name)
    return out_dir


def rows(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"prompt_input_ids": torch.randint(3, VOCAB, (p,), generator=g).tolist(),
             "chosen_input_ids": torch.randint(3, VOCAB, (c,), generator=g).tolist(),
             "rejected_input_ids": torch.randint(3, VOCAB, (r,), generator=g).tolist()} for p, c, r in SHAPES]


def oracle(model, data):
    """Per pair: chosen / rejected sums of log_softmax(model(seq).logits) over the response tokens, the WPO
    statistic mean(log p - log sum_v p^2), all from the model's own logits of one unpadded sequence."""
    out = {"chosen": [], "rejected": [], "chosen_wpo": [], "rejected_wpo": []}
    for r in data:
        p = r["prompt_input_ids"]
        for key in ("chosen", "rejected"):
            seq = torch.tensor([p + r[f"{key}_input_ids"]])
            logp = torch.log_softmax(model(input_ids=seq).logits[0], -1)[len(p) - 1:-1]
            tok = logp.gather(-1, seq[0, len(p):, None]).squeeze(-1)
            out[key].append(tok.sum())
            out[f"{key}_wpo"].append((tok - torch.logsumexp(2 * logp, -1)).detach().mean())
    return {k: torch.stack(v) for k, v in out.items()}


def objective(chosen, rejected):
    return (chosen * torch.tensor([1.0, -0.5, 2.0, 0.3], dtype=chosen.dtype)).sum() - 0.7 * rejected.sum()


@pytest.mark.parametrize("kind", list(MODELS))
def test_logps_and_gradients_equal_the_models_own_logits(tmp_path, kind, caplog, monkeypatch):
    from prefswift.models import loader

    monkeypatch.setattr(loader, "_SAID_EAGER", set())  # the eager line is said once per architecture and process
    path = build(kind, tmp_path / kind)
    with caplog.at_level(logging.WARNING, logger="prefswift"):
        model = load_model(path, parse_command("dpo", ["--dtype", "fp32"]).model)  # the loader training uses
    model.double()  # float64: the comparison measures the formula, not float32 rounding
    assert (kind == "gemma2") == any("eager attention" in r.getMessage() for r in caplog.records)
    assert model.config._attn_implementation == ("eager" if kind == "gemma2" else "sdpa")
    scale, cap = logit_transform(model.config)
    assert (scale, cap) == {"gemma2": (1.0, 2.0), "cohere": (0.25, None), "granite": (1 / 3, None)}[kind]
    data = rows()
    named = dict(model.named_parameters())
    for frozen_head in (False, True):
        model.get_output_embeddings().requires_grad_(not frozen_head)
        model.zero_grad()
        want = oracle(model, data)
        objective(want["chosen"], want["rejected"]).backward()
        want_grads = {n: p.grad.clone() for n, p in named.items() if p.requires_grad}
        for collator in (PairCollator(0), PrefixSharedCollator(0), PrefixSharedCollator(0, packing=True)):
            model.zero_grad()
            got = pair_forward(model, collator(data), chunk_size=5, wpo=True)
            torch.testing.assert_close(got.chosen_logps, want["chosen"].detach(), atol=1e-5, rtol=1e-6)
            torch.testing.assert_close(got.rejected_logps, want["rejected"].detach(), atol=1e-5, rtol=1e-6)
            torch.testing.assert_close(got.chosen_wpo_mean, want["chosen_wpo"], atol=1e-5, rtol=1e-6)
            torch.testing.assert_close(got.rejected_wpo_mean, want["rejected_wpo"], atol=1e-5, rtol=1e-6)
            objective(got.chosen_logps, got.rejected_logps).backward()
            for n, g in want_grads.items():
                # relative to the tensor's largest entry (Gemma's norms and rotary tables run in float32)
                assert (named[n].grad - g).abs().max() <= 1e-5 * g.abs().max().clamp(min=1e-6), (kind, n)
    with torch.no_grad():  # the unpaired (KTO) forward: chosen rows of the concatenated batch
        batch = PairCollator(0)(data)
        b = len(data)
        got, _ = completion_logps(model, batch["input_ids"][:b], batch["attention_mask"][:b],
                                  batch["completion_mask"][:b], chunk_size=5)
    torch.testing.assert_close(got, want["chosen"].detach(), atol=1e-5, rtol=1e-6)


def test_gemma2_trains_from_the_cli(tmp_path, tiny_llama3_dir):
    """Gemma 2 has no SDPA attention in transformers: prefswift loads it with eager attention and trains; policy ==
    reference at step 1, so the DPO loss is ln 2."""
    import json

    from prefswift.commands.train import run_training

    path = build("gemma2", tmp_path / "gemma2", tiny_llama3_dir)
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {i}.", "chosen": f"{i} it is.", "rejected": "No."}) + "\n"
                            for i in range(4)))
    args = parse_command("dpo", ["--model_id_or_path", str(path), "--template", "llama3", "--dataset", str(data),
                                 "--max_steps", "1", "--batch_size", "2", "--eval_ratio", "0", "--logging_steps", "1",
                                 "--output_dir", str(tmp_path / "run")])
    run_training(args, "dpo", log=lambda *a, **k: None)
    logged = [json.loads(line) for line in (tmp_path / "run" / "logging.jsonl").read_text().splitlines()]
    assert next(r for r in logged if "loss" in r)["loss"] == pytest.approx(0.693147, abs=1e-5)


def test_prefix_sharing_refuses_sequences_past_a_sliding_window(tmp_path):
    """Gemma 2's sliding layers: a 4D mask is applied as given, so past the window prefix sharing is refused; below
    it the numbers are the model's own (test above)."""
    from prefswift.errors import PrefswiftError

    config_cls, model_cls, extra = MODELS["gemma2"]
    model = model_cls(config_cls(**SIZES, **extra, sliding_window=8, pad_token_id=0))
    short = [{"prompt_input_ids": [5, 6], "chosen_input_ids": [7, 8], "rejected_input_ids": [9]}]
    pair_forward(model, PrefixSharedCollator(0)(short))
    with pytest.raises(PrefswiftError, match="sliding attention window"):
        pair_forward(model, PrefixSharedCollator(0)(rows()))
