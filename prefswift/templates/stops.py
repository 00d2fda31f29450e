"""Where generation stops: a template's stop words as token ids (single tokens) or text (longer words)."""
from typing import List, Tuple

from .base import Template, fill_special_tokens


def stop_tokens(tokenizer, template: Template, model=None) -> Tuple[List[int], List[str]]:
    """(eos ids, stop strings): single-token stop words (the template's end-of-turn token, the tokenizer's eos,
    the model's generation_config eos) become eos ids; longer stop words are matched as text."""
    ids: List[int] = []
    strings: List[str] = []
    words = list(template.stop_words)
    if tokenizer.eos_token:
        words.append(tokenizer.eos_token)
    for word in words:
        word = fill_special_tokens(tokenizer, word)
        if not word:
            continue
        enc = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(enc) == 1:
            ids.append(enc[0])
        else:
            strings.append(word)
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None)
    for i in ([extra] if isinstance(extra, int) else (extra or [])):
        ids.append(int(i))
    return list(dict.fromkeys(ids)), list(dict.fromkeys(strings))
