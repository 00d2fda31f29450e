"""Which hub to download from: the one helper for models and datasets alike.

`--hub modelscope|hf|auto` (checked by the argument parser); `auto` means Hugging Face when the environment has
USE_HF=1 (ms-swift's switch), else ModelScope (ms-swift's default).
"""
import os
from typing import Optional

HUB_NAMES = {"modelscope": "ModelScope", "hf": "Hugging Face"}


def which_hub(hub: Optional[str]) -> str:
    """'modelscope' or 'hf' for a --hub value (None = auto)."""
    if hub in ("modelscope", "hf"):
        return hub
    return "hf" if os.environ.get("USE_HF", "").strip().lower() in ("1", "true", "yes") else "modelscope"
