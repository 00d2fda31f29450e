"""PreferenceTrainer: transformers.Trainer + an algorithm's objective.

The Trainer brings accelerate (DDP, DeepSpeed, FSDP), checkpointing, schedulers and `report_to`. This class adds:
the objective (`prefswift.algorithms.base.BatchObjective`: it scores each batch, the pair forward included), the
model the reference is scored with (adapter-disabled base, a reference adapter, a separate frozen model; or
precomputed columns), TRL-style metric averaging between log steps, and the precomputed reference pass. The objective
sees only a `ScoringContext` (chunk size, the reference, the collectives), never this class.
"""
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from typing import Dict, List, Optional

import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from ..algorithms.base import BatchObjective, ScoringContext
from ..arguments.fields import LOGPROB_CHUNK_SIZE
from ..scoring.forward import unwrap_wrappers
from ..models.lora import reference_weights
from .collate import token_budget_sampler


class PreferenceTrainer(Trainer):
    def __init__(self, *args, objective: BatchObjective, ref_model=None, logprob_chunk_size: int = LOGPROB_CHUNK_SIZE,
                 max_tokens_per_batch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.max_tokens_per_batch = max_tokens_per_batch
        self.chunk_size = logprob_chunk_size
        self.ref_model = ref_model
        if ref_model is not None and not getattr(ref_model, "hf_device_map", None):
            # also under DeepSpeed ZeRO-1/2, where every rank holds the whole (frozen) reference: on the training
            # device, not where it was loaded (ZeRO-3 with a separate reference is refused unless precomputed)
            self.ref_model = ref_model.to(self.args.device)
        # our loss is a per-batch mean: let the Trainer scale it by gradient accumulation itself
        self.model_accepts_loss_kwargs = False
        self._metrics: Dict[str, Dict[str, List[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._step_losses: List[torch.Tensor] = []  # this optimizer step's micro-batch losses (`take_step_losses`)

    def get_train_dataloader(self):
        """With --max_tokens_per_batch: batches whose tensors, as the collator lays them out, hold at most that many
        tokens (`token_budget_sampler`); accelerate deals them out to the ranks (each rank the same number, cycling
        at the end) as with any batch sampler."""
        if not self.max_tokens_per_batch:
            return super().get_train_dataloader()
        sampler = token_budget_sampler(self.train_dataset.rows, self.data_collator, self.max_tokens_per_batch,
                                       seed=self.args.seed)
        loader = DataLoader(self.train_dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
        return self.accelerator.prepare(loader)

    # ---- reference ------------------------------------------------------------------------------------------
    @contextmanager
    def reference(self, model):
        """The model to score the reference with, without gradient: the separate reference model, else the policy
        with its reference adapter (--ref_adapter_name_or_path) or with its LoRA adapter switched off (the base),
        else the policy itself (full fine-tuning before training starts: precomputation)."""
        with torch.no_grad():
            if self.ref_model is not None:
                yield self.ref_model
                return
            policy = unwrap_wrappers(model)
            with reference_weights(policy):
                yield policy

    def scoring(self) -> ScoringContext:
        accelerator = self.accelerator
        return ScoringContext(chunk_size=self.chunk_size, reference=self.reference, gather=accelerator.gather,
                              reduce_sum=lambda t: accelerator.reduce(t, reduction="sum"),
                              world_size=accelerator.num_processes)

    def reference_values(self, model, batch) -> Dict[str, torch.Tensor]:
        """The reference columns of one batch ({column: [B]}), for precomputation."""
        return self.objective.reference_values(self.scoring(), model, batch)

    # ---- loss ------------------------------------------------------------------------------------------------
    def batch_loss(self, model, batch, mode: str):
        """The loss of one batch, its metrics kept for the next log line."""
        loss, metrics = self.objective.batch_loss(self.scoring(), model, batch)
        self.record_metrics(metrics, mode)
        return loss

    def record_metrics(self, metrics: Dict[str, torch.Tensor], mode: str) -> None:
        """Keep each metric's batch mean (over all ranks) for the next log line, where they are averaged.

        Over ranks: the mean of the ranks' batch means, weighted like the loss (DDP averages the ranks' losses), so N
        processes log what one process logs over the same batches with gradient accumulation. Ranks may hold batches
        of different sizes (--max_tokens_per_batch): their sizes are exchanged first, and only equal-sized values
        are gathered whole (`gather_for_metrics` drops the samples accelerate repeated to even out the last eval
        batch); uneven ones are reduced as means — gathering tensors of different lengths breaks the collective."""
        values = {name: value.detach().float().reshape(-1) for name, value in metrics.items()}
        world = self.accelerator.num_processes
        if world > 1 and values:
            first = next(iter(values.values()))
            sizes = torch.tensor([v.numel() for v in values.values()], device=first.device)
            even = (self.accelerator.gather(sizes).reshape(world, -1) == sizes).all(dim=0).tolist()
        else:
            even = [True] * len(values)
        for (name, value), same in zip(values.items(), even):
            if world > 1 and not same:
                mean = self.accelerator.reduce(value.mean().reshape(1), reduction="mean")
            else:
                mean = self.accelerator.gather_for_metrics(value).mean()
            self._metrics[mode][name].append(mean.item())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if model.training else "eval"
        if mode == "train" and "num_tokens" in inputs:  # tokens in the data, summed over ranks
            self.state.num_input_tokens_seen += int(self.accelerator.gather(inputs["num_tokens"].reshape(1)).sum())
        loss = self.batch_loss(model, inputs, mode)
        return (loss, {}) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step_losses.append(loss.detach().reshape(-1)[:1])
        return loss

    def take_step_losses(self) -> List[float]:
        """The losses of the micro-batches since the last call (one optimizer step), as floats: one device sync."""
        losses, self._step_losses = self._step_losses, []
        return torch.cat(losses).float().tolist() if losses else []

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.batch_loss(model, inputs, "eval")
        return loss.detach(), None, None

    def log(self, logs: Dict[str, float], start_time: Optional[float] = None) -> None:
        mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        metrics = {k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v}
        if mode == "eval":
            metrics = {f"eval_{k}": v for k, v in metrics.items()}
        logs.update(metrics)
        self._metrics[mode].clear()
        super().log(logs, start_time)

    # ---- precomputed reference -------------------------------------------------------------------------------
    @torch.no_grad()
    def precompute_reference(self, rows: List[dict], collator, batch_size: int) -> None:
        """Add the reference columns (pairs: ref_chosen_logps / ref_rejected_logps; KTO: ref_logps / ref_kl_logps)
        to every row (one pass, before training). Each rank computes every world_size-th row on its training device;
        the results are exchanged so every rank has all of them."""
        model = self.model
        source = self.ref_model if self.ref_model is not None else model
        partitioned = any(getattr(p, "ds_id", None) is not None for p in source.parameters())
        if getattr(source, "hf_device_map", None):
            device = next(source.parameters()).device   # a device_map: inputs go where the embeddings are
        else:
            device = self.args.device
            if not partitioned:  # e.g. ZeRO-1/2 before its engine: still where it was loaded (ZeRO-3: gathered below)
                source.to(device)
        rank, world = self.args.process_index, self.args.world_size
        mine = rows[rank::world]
        was_training = model.training
        model.eval()
        try:
            with _gathered_model(source, partitioned):
                for start in range(0, len(mine), batch_size):
                    chunk = mine[start:start + batch_size]
                    batch = collator([{k: v for k, v in r.items() if not k.startswith("ref_")} for r in chunk])
                    batch = batch.to(device)
                    for key, column in self.reference_values(model, batch).items():
                        for row, value in zip(chunk, column.tolist()):
                            row[key] = value
        finally:
            model.train(was_training)
        if world > 1:
            import torch.distributed as dist

            shards = [None] * world
            dist.all_gather_object(shards, [{k: v for k, v in r.items() if k.startswith("ref_")} for r in mine])
            for r, shard in enumerate(shards):
                for row, values in zip(rows[r::world], shard):
                    row.update(values)


def _gathered_model(model, partitioned: bool):
    """Under ZeRO-3 before the engine exists the weights are partitioned (shape [0]): gather them for the pass."""
    if not partitioned:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None)


__all__ = ["PreferenceTrainer"]
