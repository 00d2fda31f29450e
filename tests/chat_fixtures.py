"""The official chat templates in tests/fixtures/chat_templates/, as their models ship them."""
import re
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"


def official(name: str) -> str:
    """The fixture's jinja without its first-line source comment (`{#- source: ... -#}`, which renders nothing)."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return re.sub(r"\A\{#-.*?-#\}\n?", "", text, count=1, flags=re.S)


CONVERSATIONS = [
    # (system, history, query, response)
    (None, [], "What is the capital of France?", "The capital of France is Paris."),
    ("You are a pirate.", [], "Hello, how are you?", "Arr, I am fine!"),
    (None, [("hello world", "Hi! How can I help you today?"), ("Count to three.", "one, two, three")],
     "And to five?", "one, two, three, four, five"),
    ("Answer in Chinese.", [("你好", "你好！我是一个乐于助人的助手。"), ("What is 2+2?", "4")],
     "中国的首都是哪里？", "中国的首都是北京。"),
    ("  Be brief.  ", [(" spaced user ", " spaced answer ")], "Why is the sky blue? ", " Sunlight scatters. "),
]


def messages(system, history, query, response=None, fold=False):
    """The conversation as a user hands it to apply_chat_template: no system message when system is None; `fold`
    puts the system prompt before the first user message (how a template without a system role gets one)."""
    out = [{"role": "system", "content": system}] if system is not None else []
    for user, answer in history:
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    out.append({"role": "user", "content": query})
    if response is not None:
        out.append({"role": "assistant", "content": response})
    if fold and system is not None:
        out = out[1:]
        out[0] = {"role": "user", "content": f"{system}\n\n{out[0]['content']}"}
    return out
