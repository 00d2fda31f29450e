"""The official chat templates in tests/fixtures/chat_templates/, as their models ship them."""
import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"


def official(name: str) -> str:
    """The fixture's jinja without its first-line source comment (`{#- source: ... -#}`, which renders nothing)."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return re.sub(r"\A\{#-.*?-#\}\n?", "", text, count=1, flags=re.S)
