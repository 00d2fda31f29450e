"""Truncation keeps the question: with a long system prompt the last user message is the last thing cut, a system
prompt over budget is cut from its end (down to none), and a pair whose question cannot fit is dropped with a count —
never trained on an empty question.

Hand-worked token counts on the tiny Llama 3 tokenizer (its llama3 chat template, rendered by the tokenizer's own
apply_chat_template, is the oracle for every kept prompt):
  with a system prompt of S tokens: <|begin_of_text|> 1 + system header 1+5+1+2 + S + <|eot_id|> 1
      + user header 1+2+1+2 + question + <|eot_id|> 1 + assistant header 1+4+1+2      = 26 + S + question
  without one:                     1 + user header 6 + question + 1 + assistant header 8 = 16 + question
QUESTION is 7 tokens ('What', ' is', ' the', ' capital', ' of', ' France', '?'); SYSTEM is 40 ('You', ' are', ' the',
then 37 x ' the'). The whole prompt is 26 + 40 + 7 = 73 tokens.
"""
import pytest

from prefswift.arguments.fields import DataArguments
from prefswift.data.example import PreferenceExample
from prefswift.data.pipeline import RowChecker, encode_examples
from prefswift.models.loader import load_tokenizer
from prefswift.templates import get_template

QUESTION = "What is the capital of France?"
SYSTEM = "You are the" + " the" * 37


@pytest.fixture(scope="module")
def tok(tiny_llama3_dir):
    return load_tokenizer(tiny_llama3_dir)


def chat(tok, system, question):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return list(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"])


def encode(tok, budget, history=()):
    checker = RowChecker("none", lambda *a: None)
    ex = PreferenceExample(prompt=QUESTION, chosen="Paris.", rejected="Rome.", system=SYSTEM, history=list(history))
    rows, _ = encode_examples([ex], get_template("llama3"), tok,
                              DataArguments(max_length=budget + 64, max_prompt_length=budget), checker,
                              {"prompt": [], "chosen": [], "rejected": []})
    return rows, checker


def test_the_hand_worked_counts(tok):
    assert len(chat(tok, SYSTEM, QUESTION)) == 73 and len(chat(tok, None, QUESTION)) == 23
    assert len(chat(tok, "You are the" + " the" * 32, QUESTION)) == 68


def test_a_five_token_overshoot_cuts_the_system_prompts_end_not_the_question(tok):
    rows, checker = encode(tok, 68)  # 73 - 5
    assert len(rows) == 1 and not checker.dropped
    # the question whole; the system prompt keeps its first 35 tokens: 26 + 35 + 7 = 68
    assert rows[0]["prompt_input_ids"] == chat(tok, "You are the" + " the" * 32, QUESTION)
    assert rows[0]["truncated"]["prompt"] == 5


def test_earlier_turns_go_before_the_system_prompt_is_cut(tok):
    history = [("Hi", "Hello!")]
    rows, _ = encode(tok, 73, history)  # the whole prompt without the earlier turn is 73 tokens
    assert rows[0]["prompt_input_ids"] == chat(tok, SYSTEM, QUESTION)
    assert rows[0]["truncated"]["turns"] == 1


def test_a_system_prompt_over_budget_goes_whole_and_the_question_stays(tok):
    rows, _ = encode(tok, 30)  # any system block needs 26 + S + 7 > 30; the question alone is 23
    assert rows[0]["prompt_input_ids"] == chat(tok, None, QUESTION)


def test_the_question_is_cut_last_from_its_start_and_never_to_nothing(tok):
    rows, _ = encode(tok, 20)  # no system prompt, 20 - 16 = 4 tokens of the question at most
    ids = rows[0]["prompt_input_ids"]
    text = tok.decode(ids)
    kept = text.split("user<|end_header_id|>\n\n", 1)[1].split("<|eot_id|>", 1)[0]
    assert kept and QUESTION.endswith(kept) and QUESTION[-len(kept) - 1] == " "  # a word boundary
    assert ids == chat(tok, None, kept) and len(ids) <= 20 and kept.endswith("France?")

    rows, checker = encode(tok, 16)  # 16 tokens hold only an empty question: the pair is dropped and counted
    assert rows == [] and sum(checker.dropped.values()) == 1
    assert "question" in next(iter(checker.dropped))
