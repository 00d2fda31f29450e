"""Generation with a template's stops: greedy or sampled, optionally streamed token by token."""
from typing import List

import torch

from ..models.checkpoint import LoadedModel
from ..templates import Template
from ..templates.stops import stop_tokens


def generation_config(infer, tokenizer, template: Template, model=None):
    from transformers import GenerationConfig

    eos_ids, stop_strings = stop_tokens(tokenizer, template, model)
    kwargs = dict(max_new_tokens=infer.max_new_tokens, do_sample=infer.do_sample,
                  repetition_penalty=infer.repetition_penalty, eos_token_id=eos_ids,
                  pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0])
    if infer.do_sample:
        kwargs.update(temperature=infer.temperature, top_p=infer.top_p, top_k=infer.top_k)
    else:  # greedy: say so explicitly so a model's own sampling defaults do not leak in
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if stop_strings:
        kwargs["stop_strings"] = stop_strings
    return GenerationConfig(**kwargs)


def cut_at_stop(text: str, stop_strings: List[str]) -> str:
    cut = len(text)
    for s in stop_strings:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


class Generator:
    """Greedy / sampled generation from prompt ids with the template's stops; optional token streaming."""

    def __init__(self, loaded: LoadedModel, infer):
        self.loaded = loaded
        self.infer = infer
        self.config = generation_config(infer, loaded.tokenizer, loaded.template, loaded.model)
        self.eos_ids, self.stop_strings = stop_tokens(loaded.tokenizer, loaded.template, loaded.model)

    @property
    def device(self):
        return next(self.loaded.model.parameters()).device

    @torch.no_grad()
    def generate_ids(self, prompt_ids: List[int], streamer=None) -> List[int]:
        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                      generation_config=self.config, streamer=streamer)
        if self.stop_strings:
            kwargs["tokenizer"] = self.loaded.tokenizer
        out = self.loaded.model.generate(**kwargs)
        new = out[0, len(prompt_ids):].tolist()
        while new and new[-1] in self.eos_ids:
            new.pop()
        return new

    def decode(self, ids: List[int]) -> str:
        text = self.loaded.tokenizer.decode(ids, skip_special_tokens=True)
        return cut_at_stop(text, self.stop_strings)

    def generate(self, prompt_ids: List[int], streamer=None) -> str:
        return self.decode(self.generate_ids(prompt_ids, streamer=streamer))


def set_seed(seed: int) -> None:
    from transformers import set_seed as hf_set_seed

    hf_set_seed(seed)


__all__ = ["generation_config", "cut_at_stop", "Generator", "set_seed", "stop_tokens"]
