"""What a model does to its logits after the LM head, read from its config: a scale and a soft-cap.

Some causal LMs do not return `lm_head(hidden)` as their logits:

| config field (text config)          | models              | logits                      |
|-------------------------------------|---------------------|-----------------------------|
| `logit_scale`                       | Cohere, Cohere 2    | z * logit_scale             |
| `logits_scaling`                    | Granite, MiniCPM3   | z / logits_scaling          |
| `final_logit_softcapping`           | Gemma 2, Gemma 3    | tanh(z / cap) * cap         |

The chunked LM head (`prefswift.scoring.logprobs.token_logps`) never calls the model's own head code, so it must
apply the same transform or every log-prob it returns is that of another distribution. The fields are read the way
TRL 1.16 reads them for its fused head (`trl.trainer.utils`): the scale from `logit_scale`, else `output_multiplier`,
else `lm_head_multiplier`, else `1 / logits_scaling` (`logits_scaling` itself for HyperCLOVA X); a missing (None)
scale is 1. The scale is applied before the soft-cap.
"""
from typing import Optional, Tuple


def text_config(config):
    """The language model's config (vision-language models keep the head's fields on `text_config`)."""
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


def logit_transform(config) -> Tuple[float, Optional[float]]:
    """(scale, soft-cap or None) that the model applies to `lm_head(hidden)` to give its logits."""
    cfg = text_config(config)
    scale = getattr(cfg, "logit_scale", None)
    if scale is None:
        scale = getattr(cfg, "output_multiplier", None)
    if scale is None:
        scale = getattr(cfg, "lm_head_multiplier", None)
    if scale is None and getattr(cfg, "logits_scaling", None) is not None:
        scaling = cfg.logits_scaling
        scale = scaling if getattr(cfg, "model_type", None) == "hyperclovax" else 1 / scaling
    scale = 1.0 if scale is None else float(scale)
    cap = getattr(cfg, "final_logit_softcapping", None)
    return scale, (float(cap) if cap is not None else None)


__all__ = ["logit_transform", "text_config"]
