"""The batch layout follows the spec: its data kind first, then its head (a sequence classifier reads one unpacked
sequence per row, whatever --prefix_sharing / --packing say), then the options of a causal LM."""
import dataclasses

import torch

from prefswift.arguments import parse_command
from prefswift.arguments.algorithms import DATA_KINDS
from prefswift.algorithms.layout import ROWS
from prefswift.scoring.collators import PairCollator, PrefixSharedCollator
from prefswift.scoring.unpaired import UnpairedCollator
from prefswift.train.collate import make_collator

ROW = {"prompt_input_ids": [5, 6, 7], "chosen_input_ids": [8, 9], "rejected_input_ids": [10]}


def collator(algo, **pref):
    args = parse_command(algo, ["--dataset", "demo"])
    return make_collator(dataclasses.replace(args, pref=dataclasses.replace(args.pref, **pref)), pad_token_id=0)


def test_a_sequence_classifier_gets_one_sequence_per_row_whatever_the_options():
    for options in ({}, {"prefix_sharing": True, "packing": True}, {"prefix_sharing": False, "packing": True}):
        c = collator("rm", **options)
        assert type(c) is PairCollator and not c.packing, options
        batch = c([ROW, ROW])
        # hand-made: chosen rows then rejected rows, right-padded with 0, one sequence per row
        assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 6, 7, 8, 9], [5, 6, 7, 10, 0], [5, 6, 7, 10, 0]]
        assert torch.equal(batch["attention_mask"], (batch["input_ids"] != 0).long())


def test_causal_lm_layouts_and_unpaired_rows():
    assert type(collator("dpo", prefix_sharing=True)) is PrefixSharedCollator
    c = collator("dpo", prefix_sharing=False, packing=True)
    assert type(c) is PairCollator and c.packing
    assert type(collator("kto")) is UnpairedCollator
    assert type(collator("sft")).__name__ == "SftCollator"
    assert set(ROWS) == set(DATA_KINDS)  # every data kind a spec may have is dispatched
