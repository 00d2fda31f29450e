"""What an algorithm's spec means for its rows and batches: one dispatch from `AlgorithmSpec.data` and `.head`.

`rows_of(algo)` is the one place that reads the spec's data kind: the data pipeline, the trainer's sampling, eval
and the collator ask it instead of comparing `data` themselves. `batch_layout(algo, pref)` picks the batch layout:
the spec's data kind first, then its head — a sequence classifier (`head` "sequence_classification", e.g. rm) reads
one sequence per row at its last token, so its batches are chosen rows then rejected rows, never prefix-shared or
packed — and only then the --prefix_sharing / --packing options of a causal LM.
"""
from dataclasses import dataclass
from typing import Dict

from ..arguments.algorithms import get_spec


@dataclass(frozen=True)
class Rows:
    unpaired: bool             # (prompt, completion, label) rows; pairs are split into both (KTO)
    sequential_batches: bool   # batches in data order: a row's KL completion comes from its own batch (KTO)
    conversations: bool = False  # whole conversations, the NLL of their answers (SFT: data/sft_pipeline.py)


ROWS: Dict[str, Rows] = {
    "paired": Rows(unpaired=False, sequential_batches=False),
    "unpaired": Rows(unpaired=True, sequential_batches=True),
    "sft": Rows(unpaired=False, sequential_batches=False, conversations=True),
}

# batch layouts (prefswift.train.collate builds each)
UNPAIRED, CONVERSATIONS, SEQUENCES, PREFIX_SHARED, PAIRS = ("unpaired", "conversations", "sequences", "prefix_shared",
                                                            "pairs")


def rows_of(algo: str) -> Rows:
    return ROWS[get_spec(algo).data]


def batch_layout(algo: str, pref) -> str:
    """UNPAIRED, CONVERSATIONS (SFT), SEQUENCES (one unpacked sequence per row: a sequence classifier),
    PREFIX_SHARED or PAIRS (chosen rows then rejected rows, packed with --packing)."""
    rows = rows_of(algo)
    if rows.unpaired:
        return UNPAIRED
    if rows.conversations:
        return CONVERSATIONS
    if get_spec(algo).head == "sequence_classification":
        return SEQUENCES
    return PREFIX_SHARED if pref.prefix_sharing else PAIRS


__all__ = ["Rows", "ROWS", "rows_of", "batch_layout", "UNPAIRED", "CONVERSATIONS", "SEQUENCES", "PREFIX_SHARED",
           "PAIRS"]
