"""The one canonical form every preference dataset is converted to."""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple


@dataclass
class PreferenceExample:
    """One preference pair.

    `history` holds earlier (user, assistant) turns; `prompt` is the last user turn that both
    `chosen` and `rejected` answer. `system` is None when the data has no system prompt (the
    template's default system prompt then applies).
    """

    prompt: str
    chosen: str
    rejected: str
    system: Optional[str] = None
    history: List[Tuple[str, str]] = field(default_factory=list)
    # where the row came from (`file.jsonl (line 3)`, `file.parquet row 2`), for reports; not part of the pair
    origin: Optional[str] = field(default=None, compare=False, repr=False)
