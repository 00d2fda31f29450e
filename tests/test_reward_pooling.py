"""One reward pooling for every path, with a tokenizer whose pad token is its EOS (as Llama 3 and Mistral set it).

A reward model's score is its head at the last token of the sequence. The oracle is transformers' own
AutoModelForSequenceClassification (the merged model) and PEFT's PeftModel (the adapter) run on each sequence alone,
unpadded, with `config.pad_token_id` unset so transformers reads the last position (with pad == EOS its own pooling
would read the rightmost token that is not EOS, one token early, since every templated pair ends in EOS).
Checked against it: training's `RewardModel.pair_rewards` on a PairCollator batch, eval's `reward_pairs`, sample's
`RewardScorer` (adapter and `load_reward_scorer` of the merged dir) and `sequence_rewards` on right- and left-padded
batches of 4 sequences of different lengths.
"""
import json
import shutil

import pytest
import torch

peft = pytest.importorskip("peft")

from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from prefswift.algorithms.reward import RewardModel  # noqa: E402
from prefswift.commands.eval_rm import reward_pairs  # noqa: E402
from prefswift.data.prompts import PromptItem  # noqa: E402
from prefswift.evaluate.scorers import RewardScorer, load_reward_scorer  # noqa: E402
from prefswift.models.reward import sequence_rewards  # noqa: E402
from prefswift.scoring.collators import PairCollator  # noqa: E402
from prefswift.templates import get_template  # noqa: E402

ANSWERS = ["4", "It is four, of course.", "Five? Maybe six or seven, I am not sure at all.", "four"]


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_llama3_dir):
    """(base dir with pad = EOS, adapter dir, merged dir): a LoRA reward model with a trained-looking score head."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("pad_eos")
    base = root / "base"
    shutil.copytree(tiny_llama3_dir, base)
    tok_cfg = json.loads((base / "tokenizer_config.json").read_text())
    tok_cfg["pad_token"] = tok_cfg["eos_token"]
    (base / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    special = base / "special_tokens_map.json"
    if special.is_file():
        (special.write_text(json.dumps(dict(json.loads(special.read_text()), pad_token=tok_cfg["eos_token"]))))
    tok = AutoTokenizer.from_pretrained(base)
    assert tok.pad_token_id == tok.eos_token_id
    cfg = json.loads((base / "config.json").read_text())
    cfg["pad_token_id"] = tok.eos_token_id
    (base / "config.json").write_text(json.dumps(cfg))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
        with torch.no_grad():
            model.score.weight.normal_(0.0, 1.0)
        lora = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, init_lora_weights=False,
                                                target_modules=["q_proj", "v_proj", "down_proj"]))
    lora.save_pretrained(root / "adapter")
    merged = lora.merge_and_unload()
    merged.save_pretrained(root / "merged")
    tok.save_pretrained(root / "merged")
    return base, root / "adapter", root / "merged"


def _sequences(tok):
    scorer = RewardScorer(_NoModel(), tok, get_template("llama3"), "x")
    item = PromptItem("What is 2 plus 2?", system="Be brief.", history=())
    seqs = [scorer.encode(item, a) for a in ANSWERS]
    assert len({len(s) for s in seqs}) == 4 and all(s[-1] == tok.eos_token_id == tok.pad_token_id for s in seqs)
    return seqs


class _NoModel(torch.nn.Module):
    config = type("C", (), {"num_labels": 1})()


def _alone(model, seqs):
    """The oracle: each sequence alone, unpadded, read at its last position by the model's own forward."""
    model.config.pad_token_id = None  # transformers then reads position -1 of a one-row batch
    with torch.no_grad():
        return [model(input_ids=torch.tensor([s])).logits[0, 0].item() for s in seqs]


def _padded(seqs, pad, left):
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span], mask[i, span] = torch.tensor(s), 1
    return ids, mask


def _ours(model, tok, seqs, pad):
    """Every project path's rewards of `seqs`: {path: [rewards]}."""
    out = {"scorer": RewardScorer(model, tok, get_template("llama3"), "rm", batch_size=3).rewards(seqs)}
    with torch.no_grad():
        for left in (False, True):
            out[f"sequence_rewards left={left}"] = sequence_rewards(model, *_padded(seqs, pad, left)).tolist()
        prompt = 9  # any split into prompt + response: training scores prompt + response as one sequence
        rows = [{"prompt_input_ids": seqs[i][:prompt], "chosen_input_ids": seqs[i][prompt:],
                 "rejected_input_ids": seqs[i + 1][prompt:]} for i in (0, 2)]
        chosen, rejected = RewardModel().pair_rewards(model, PairCollator(pad_token_id=pad)(rows))
        out["training"] = [chosen[0].item(), rejected[0].item(), chosen[1].item(), rejected[1].item()]
        evaluated = reward_pairs(model, rows, pad)
        out["eval"] = [v for p in evaluated for v in (p["reward_chosen"], p["reward_rejected"])]
    return out


def test_every_path_reads_the_last_token_with_pad_equal_to_eos(models):
    from peft import PeftModel

    base, adapter, merged = models
    tok = AutoTokenizer.from_pretrained(merged)
    seqs = _sequences(tok)
    pad = tok.pad_token_id

    oracle = _alone(AutoModelForSequenceClassification.from_pretrained(merged, dtype=torch.float32).eval(), seqs)
    plain = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    peft_oracle = _alone(PeftModel.from_pretrained(plain, str(adapter)).eval(), seqs)
    assert peft_oracle == pytest.approx(oracle, abs=1e-4)  # the merge is the adapter
    assert len({round(v, 3) for v in oracle}) == 4

    # transformers' own pooling with pad == EOS reads another token (the reason for prefswift's own pooling)
    own = AutoModelForSequenceClassification.from_pretrained(merged, dtype=torch.float32).eval()
    with torch.no_grad():
        pooled = own(*_padded(seqs, pad, left=False)).logits[:, 0].tolist()
    assert pooled != pytest.approx(oracle, abs=1e-3)

    merged_model = AutoModelForSequenceClassification.from_pretrained(merged, dtype=torch.float32).eval()
    adapter_model = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32),
        str(adapter)).eval()
    third_party = load_reward_scorer(str(merged), get_template("llama3"), batch_size=3)  # sample's loading door
    results = {"load_reward_scorer merged": third_party.rewards(seqs)}
    for name, model in (("merged", merged_model), ("adapter", adapter_model)):
        results.update({f"{name} {path}": got for path, got in _ours(model, tok, seqs, pad).items()})
    want = {path: ([oracle[0], oracle[1], oracle[2], oracle[3]]) for path in results}
    for path, got in results.items():
        assert got == pytest.approx(want[path], abs=1e-4), path
