"""One class per batch layout, so the forward dispatches on what a batch is instead of guessing from its keys.

Each is a dict of tensors (the Trainer, accelerate and the DataLoader move and pin a Mapping as `type(batch)(...)`,
so the class survives the trip to the device); its docstring lists the keys. All may carry `num_tokens` (the tokens in
the data, for the console's tokens/s) and the precomputed reference columns.

| class              | collator                                 | rows                                          |
|--------------------|------------------------------------------|-----------------------------------------------|
| PaddedPairs        | PairCollator(packing=False)              | chosen rows then rejected rows, right-padded  |
| PackedPairs        | PairCollator(packing=True)               | the 2B sequences packed without padding       |
| PrefixSharedPairs  | PrefixSharedCollator                     | prompt, chosen, rejected blocks + a 4D mask   |
| UnpairedRows       | UnpairedCollator                         | prompt + completion per row (+ its KL row)    |
"""

class Batch(dict):
    """A collated batch of one layout (see the module docstring)."""

    def to(self, device) -> "Batch":
        return type(self)({k: v.to(device) for k, v in self.items()})


class PaddedPairs(Batch):
    """input_ids, attention_mask, completion_mask [2B, T]: B chosen rows then B rejected rows, right-padded."""


class PackedPairs(Batch):
    """input_ids, position_ids, completion_mask, seq_id [R, T]: the 2B sequences packed into R rows without padding
    between them (positions restart per sequence; seq_id: chosen i = i, rejected i = B + i, -1 = padding)."""


class PrefixSharedPairs(Batch):
    """input_ids, position_ids [R, T] and a 4D boolean attention_mask: each pair's prompt once, then its chosen, then
    its rejected block (one or several pairs per row); pred_index, target_ids, score_seg [B, K]: per pair, the flat
    position that predicts each scored token, the token, and its segment (`collators.Segment`)."""


class UnpairedRows(Batch):
    """input_ids, attention_mask, completion_mask [B, T], label [B] (bool); kl_input_ids, kl_attention_mask,
    kl_completion_mask when the rows carry KL completions."""
