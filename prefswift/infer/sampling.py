"""K sampled completions for each prompt of a batch (`prefswift sample`): prefswift's engine (`prefswift.generation`,
the one `deploy` serves with) on the model's device, or vLLM where it is installed and a GPU is present (the same texts
come back: template stops cut, special tokens left out). Each batch is drawn from its own seed, so a batch draws the
same completions whatever ran before it: prompt j of a batch with seed s draws its K choices with seeds s + j*K + i."""
import dataclasses
import importlib.util
from typing import List

import torch

from ..errors import ArgumentError
from ..generation.local import LocalEngine, sampling_params
from ..templates.stops import stop_tokens


class EngineSampler:
    """All prompts of a batch submitted to the engine together, `k` choices each."""

    engine = "transformers"

    def __init__(self, loaded, infer, k: int):
        self.k = k
        self.local = LocalEngine(loaded, max_batch_size=max(32, k))
        self.params = sampling_params(infer, n=k, do_sample=True)

    def sample(self, prompts: List[List[int]], seed: int) -> List[List[str]]:
        each = [dataclasses.replace(self.params, seed=seed + j * self.k) for j in range(len(prompts))]
        return [[c.text for c in choices] for choices in self.local.generate(prompts, each)]

    def close(self) -> None:
        self.local.close()


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

    def close(self) -> None:
        pass


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


__all__ = ["EngineSampler", "VllmSampler", "vllm_usable", "pick_engine"]
