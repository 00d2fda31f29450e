"""prefswift: align LLMs with human preferences (ORPO, DPO, SimPO, CPO) from the command line."""

__version__ = "0.1.0"

from . import third_party as _third_party  # noqa: E402  (before any torch/peft/bitsandbytes import)

_third_party.apply()
