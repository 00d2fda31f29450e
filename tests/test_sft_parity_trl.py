"""`prefswift sft` against TRL 1.16's own SFTTrainer on the tiny Llama 3 model (fp32): the loss and the gradient of
every parameter on the same batch, for the three loss masks TRL has.

* assistant-only: `messages` conversations (two assistant turns, a system prompt), SFTConfig(assistant_only_loss=True)
  — TRL swaps in its Llama 3 training template with {% generation %} markers and takes the mask from
  `apply_chat_template(return_assistant_tokens_mask=True)`;
* completion-only: conversational prompt-completion rows (TRL's default completion_only_loss for them);
* packing: the assistant-only rows with SFTConfig(packing=True) — TRL's BFD packing, padding-free, all sequences in
  one row with restarting position ids — against our packed rows (as long as the batch's longest sequence, so the
  layouts differ): equal numbers mean no attention or position leaks across packed sequences.

TRL tokenizes its dataset itself; every test first asserts that its batch holds our token ids and our trained-token
mask (TRL's labels != -100), then compares one compute_loss + backward per side. Tolerance as tests/test_parity_trl.py:
1e-5 relative for the loss, max|ga - gb| <= 1e-5 * max|gb| per gradient tensor.
"""
import copy

import pytest
import torch

trl = pytest.importorskip("trl")

from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from prefswift.algorithms.sft import SFT  # noqa: E402
from prefswift.data.sft import convert_sft_messages, convert_sft_prompt_completion, encode_sft  # noqa: E402
from prefswift.scoring.sft import SftCollator  # noqa: E402
from prefswift.templates import get_template  # noqa: E402
from prefswift.train.trainer import PreferenceTrainer  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
TOL = 1e-5


def _m(role, content):
    return {"role": role, "content": content}


MESSAGES = [
    [_m("user", "Hello world"), _m("assistant", "yes it is"), _m("user", "What is two plus three?"),
     _m("assistant", "five")],
    [_m("system", "Be brief."), _m("user", "Tell me a short story about a cat."),
     _m("assistant", "Once upon a time a small cat slept in the sun.")],
    [_m("user", "Name a colour."), _m("assistant", "Blue.")],
]
PROMPT_COMPLETION = {
    "prompt": [[_m("user", "Hello world"), _m("assistant", "yes it is"), _m("user", "And now?")],
               [_m("user", "What is two plus three?")], [_m("system", "Be brief."), _m("user", "Name a colour.")]],
    "completion": [[_m("assistant", "still yes")], [_m("assistant", "five, I think")], [_m("assistant", "Blue.")]],
}


@pytest.fixture(scope="module")
def env(tiny_llama3_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama3_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama3_dir, dtype=torch.float32)
    return {"tok": tok, "model": model, "template": get_template("llama3")}


def _trl_batch(env, tmp_path, dataset, **config):
    cfg = SFTConfig(output_dir=str(tmp_path / "trl"), report_to=[], use_cpu=True, per_device_train_batch_size=3,
                    dataloader_num_workers=0, gradient_checkpointing=False, max_length=1024, **config)
    model = copy.deepcopy(env["model"])
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=dataset, processing_class=env["tok"])
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, model, batch


def _trl_sequences(batch):
    """(ids, trained mask) of every sequence of TRL's batch (padding-free: cut at the position restarts)."""
    ids, labels = batch["input_ids"], batch["labels"]
    out = []
    if "position_ids" in batch:
        pos = batch["position_ids"][0].tolist()
        starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
        for a, b in zip(starts, starts[1:]):
            out.append((ids[0, a:b].tolist(), (labels[0, a:b] != -100).long().tolist()))
        return out
    for row, lab, att in zip(ids, labels, batch["attention_mask"]):
        n = int(att.sum())
        out.append((row[:n].tolist(), (lab[:n] != -100).long().tolist()))
    return out


def _step(model, loss_fn):
    model.train()
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    return loss.detach().item(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("case", ["assistant_only", "completion_only", "packing"])
def test_sft_loss_and_gradients_match_trl(env, tmp_path, case):
    if case == "completion_only":
        dataset = Dataset.from_dict(PROMPT_COMPLETION)
        examples = [convert_sft_prompt_completion({"prompt": p, "completion": c})
                    for p, c in zip(PROMPT_COMPLETION["prompt"], PROMPT_COMPLETION["completion"])]
        trainer, trl_model, batch = _trl_batch(env, tmp_path, dataset)
        # the first row's prompt holds an earlier answer, which completion-only loss leaves untrained
        assert examples[0].trained == (1,)
    else:
        dataset = Dataset.from_dict({"messages": MESSAGES})
        examples = [convert_sft_messages({"messages": m}) for m in MESSAGES]
        trainer, trl_model, batch = _trl_batch(env, tmp_path, dataset, assistant_only_loss=True,
                                               packing=case == "packing")
        if case == "packing":
            assert batch["input_ids"].shape[0] == 1 and "position_ids" in batch  # TRL packed them padding-free
    rows = [dict(zip(("input_ids", "loss_mask"), encode_sft(env["template"], env["tok"], ex))) for ex in examples]
    ours = sorted((r["input_ids"], r["loss_mask"]) for r in rows)
    assert sorted(_trl_sequences(batch)) == ours  # same token ids, same trained tokens
    assert sum(sum(m) for _, m in ours) > 0

    theirs = _step(trl_model, lambda: trainer.compute_loss(trl_model, dict(batch)))
    our_model = copy.deepcopy(env["model"])
    ptrainer = PreferenceTrainer(model=our_model, args=TrainingArguments(output_dir=str(tmp_path / "ours"),
                                                                         report_to=[], use_cpu=True),
                                 objective=SFT(), logprob_chunk_size=7)  # several LM-head chunks per batch
    collated = SftCollator(pad_token_id=env["tok"].pad_token_id, packing=case == "packing")(rows)
    if case == "packing":
        assert collated["input_ids"].shape[0] > 1  # our rows are laid out differently from TRL's single row
    mine = _step(our_model, lambda: ptrainer.batch_loss(our_model, collated, "train"))

    assert abs(mine[0] - theirs[0]) <= TOL * max(1.0, abs(theirs[0])), (mine[0], theirs[0])
    assert mine[1].keys() == theirs[1].keys()
    for name, gb in theirs[1].items():
        err = (mine[1][name] - gb).abs().max().item()
        assert err <= TOL * gb.abs().max().item() + 1e-12, f"grad {name}: max err {err:.3g}"
