"""K sampled completions for each prompt of a batch (`prefswift sample`): transformers' generate on the model's device,
or vLLM where it is installed and a GPU is present (the same texts come back: template stops cut, special tokens
left out). Each batch is drawn from its own seed, so a batch draws the same completions whatever ran before it."""
import dataclasses
import importlib.util
from typing import List

import torch

from ..errors import ArgumentError
from .generate import cut_at_stop, generation_config, set_seed, stop_tokens


class TransformersSampler:
    """One `generate` call per batch of prompts (left-padded), `k` sequences each."""

    engine = "transformers"

    def __init__(self, loaded, infer, k: int):
        self.loaded, self.k = loaded, k
        self.config = generation_config(dataclasses.replace(infer, do_sample=True), loaded.tokenizer, loaded.template,
                                        loaded.model)
        self.config.num_return_sequences = k
        self.eos_ids, self.stop_strings = stop_tokens(loaded.tokenizer, loaded.template, loaded.model)

    @torch.no_grad()
    def sample(self, prompts: List[List[int]], seed: int) -> List[List[str]]:
        tok, model = self.loaded.tokenizer, self.loaded.model
        device = next(model.parameters()).device
        pad = self.config.pad_token_id
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long, device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=device)
        set_seed(seed)
        kwargs = dict(input_ids=ids, attention_mask=mask, generation_config=self.config)
        if self.stop_strings:
            kwargs["tokenizer"] = tok
        out = model.generate(**kwargs)[:, width:].tolist()
        texts = []
        for new in out:
            end = next((i for i, t in enumerate(new) if t in self.eos_ids), len(new))
            texts.append(cut_at_stop(tok.decode(new[:end], skip_special_tokens=True), self.stop_strings))
        return [texts[i * self.k:(i + 1) * self.k] for i in range(len(prompts))]


class VllmSampler:  # untested here: vLLM is not installed on the project's CPU machines
    """vLLM's batched sampling; every prompt gets its own seed drawn from the batch's."""

    engine = "vllm"

    def __init__(self, model_dir, tokenizer, template, infer, k: int):
        from vllm import LLM

        self.llm = LLM(model=str(model_dir), tokenizer=str(model_dir), seed=infer.seed)
        self.infer, self.k = infer, k
        self.eos_ids, self.stop_strings = stop_tokens(tokenizer, template, None)

    def sample(self, prompts: List[List[int]], seed: int) -> List[List[str]]:
        from vllm import SamplingParams

        i = self.infer
        params = [SamplingParams(n=self.k, temperature=i.temperature, top_p=i.top_p, top_k=i.top_k or -1,
                                 repetition_penalty=i.repetition_penalty, max_tokens=i.max_new_tokens,
                                 stop=self.stop_strings or None, stop_token_ids=self.eos_ids, seed=(seed + j) % 2 ** 32)
                  for j in range(len(prompts))]
        outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], params, use_tqdm=False)
        return [[o.text for o in out.outputs] for out in outs]


def vllm_usable() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def pick_engine(requested: str, has_adapter: bool) -> str:
    """"vllm" or "transformers" for --sample_engine (auto: vLLM when installed, on a GPU, for a full model)."""
    if requested == "vllm":
        if not vllm_usable():
            raise ArgumentError("--sample_engine vllm: needs the vllm package and a CUDA GPU; use --sample_engine "
                                "transformers")
        if has_adapter:
            raise ArgumentError("--sample_engine vllm: runs full models only; merge the adapter first "
                                "(prefswift merge-lora) or use --sample_engine transformers")
        return "vllm"
    return "vllm" if requested == "auto" and vllm_usable() and not has_adapter else "transformers"


__all__ = ["TransformersSampler", "VllmSampler", "vllm_usable", "pick_engine"]
