"""SFT rows: every format becomes the same conversation; the token ids are the chat template's own
(`tokenizer.apply_chat_template`, tiny-qwen: a default system prompt, `<|im_end|>\\n` after each turn); the trained
tokens decode to exactly each answer plus its end of turn (`<|im_end|>\\n`, what prefswift's DPO trains too); bad
rows are one line naming file, line and field."""
import json

import pytest
from transformers import AutoTokenizer

from prefswift.arguments import parse_command
from prefswift.data.sft import convert_sft_alpaca, convert_sft_messages, detect_sft_format, encode_sft
from prefswift.data.sft_pipeline import build_sft_data
from prefswift.errors import DataError
from prefswift.templates import get_template

CONVERSATION = [("What is 2 plus 3?", "It is 5."), ("And 4 plus 4?", "It is 8.")]


def test_formats_give_one_conversation():
    rows = [
        {"messages": [{"role": "user", "content": q} if i == 0 else {"role": "assistant", "content": a}
                      for q, a in CONVERSATION for i in (0, 1)]},
        {"conversations": [{"from": "human" if i == 0 else "gpt", "value": q if i == 0 else a}
                           for q, a in CONVERSATION for i in (0, 1)]},
        {"instruction": "And 4 plus 4?", "output": "It is 8.", "history": [list(CONVERSATION[0])]},
        {"query": "And 4 plus 4?", "response": "It is 8.", "history": [list(CONVERSATION[0])]},
    ]
    for row in rows:
        name, convert = detect_sft_format(row)
        assert convert(row).turns == CONVERSATION, name
    pc = {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]}
    assert detect_sft_format(pc)[0] == "prompt-completion"
    pair = {"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}
    assert detect_sft_format(pair)[1](pair).turns == [("Hi", "Hello")]


@pytest.mark.parametrize("loss_on", ["all", "last"])
def test_ids_are_the_chat_templates_and_only_answers_train(tiny_qwen_dir, loss_on):
    tok = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    ex = convert_sft_alpaca({"instruction": CONVERSATION[1][0], "output": CONVERSATION[1][1],
                             "history": [list(CONVERSATION[0])]})
    ids, mask = encode_sft(get_template("qwen"), tok, ex, loss_on)
    messages = [{"role": r, "content": t} for q, a in CONVERSATION for r, t in (("user", q), ("assistant", a))]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    spans, run = [], []
    for i, m in zip(ids, mask):
        if m:
            run.append(i)
        elif run:
            spans.append(tok.decode(run))
            run = []
    spans += [tok.decode(run)] if run else []
    expected = [f"{a}<|im_end|>\n" for _, a in CONVERSATION]  # the answer and its turn's end, as DPO trains them
    assert spans == (expected if loss_on == "all" else expected[-1:])


def test_bad_row_is_one_line_naming_file_line_and_field(tmp_path, tiny_qwen_dir):
    path = tmp_path / "sft.jsonl"
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    bad = {"messages": [{"role": "user", "content": "Hi"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    args = parse_command("sft", ["--model_type", "tiny-qwen", "--dataset", str(path), "--eval_ratio", "0",
                                 "--check_dataset_strategy", "error"])
    tok = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    with pytest.raises(DataError) as err:
        build_sft_data(args.data, get_template("qwen"), tok, log=lambda *a: None)
    line = str(err.value)
    assert "\n" not in line and "line 2" in line and "messages" in line and "assistant answer" in line
    args = parse_command("sft", ["--model_type", "tiny-qwen", "--dataset", str(path), "--eval_ratio", "0"])
    data = build_sft_data(args.data, get_template("qwen"), tok, log=lambda *a: None)
    assert len(data.train) == 1 and sum(data.summary.dropped.values()) == 1
