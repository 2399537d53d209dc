"""Formatted prompt texts (what OpenRLHF and vLLM-style clients send) read back into chat messages."""

from __future__ import annotations

import pytest

from preforch.errors import ConfigError
from preforch.serving.server.prompt_text import TemplateReader, split_query

# A Llama-3-like template that writes a default system message when there is none
HEADERS = ("{{ bos_token }}{% if messages[0]['role'] != 'system' %}<|start_header_id|>system<|end_header_id|>\n\n"
           "Default.<|eot_id|>{% endif %}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>"
           "\n\n{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
           "<|end_header_id|>\n\n{% endif %}")

CONVERSATIONS = [
    [{"role": "user", "content": "How do I bake bread?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What is 2 + 2?\nAnswer: N"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
]


@pytest.fixture(scope="module", params=["chatml", "headers"])
def tokenizer(request, tiny_policy_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    if request.param == "headers":
        tok.chat_template = HEADERS
        tok.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    return tok


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_a_templated_prompt_reads_back_into_its_messages(tokenizer, messages):
    reader = TemplateReader.from_tokenizer(tokenizer)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert reader.messages(text) == tuple(messages)


def test_text_no_template_made_is_one_user_message(tokenizer):
    assert TemplateReader.from_tokenizer(tokenizer).messages(" Just a question ") == (
        {"role": "user", "content": "Just a question"},)
    assert TemplateReader().messages("<|im_start|>user\nhi") == ({"role": "user", "content": "<|im_start|>user\nhi"},)


def test_the_reply_is_what_follows_the_prompt_without_padding_or_end_of_turn(tokenizer):
    reader = TemplateReader.from_tokenizer(tokenizer)
    prompt = tokenizer.apply_chat_template(CONVERSATIONS[0], tokenize=False, add_generation_prompt=True)
    query = tokenizer.pad_token * 3 + prompt + "Flour, water, salt." + tokenizer.eos_token + tokenizer.pad_token * 2
    assert split_query(query, prompt, reader, "query.0") == (prompt, "Flour, water, salt.")
    assert split_query(query, None, reader, "query.0") == (prompt, "Flour, water, salt.")  # found by the template
    with pytest.raises(ConfigError, match=r"^query.1: does not contain its prompt"):
        split_query("something else", prompt, reader, "query.1")
    with pytest.raises(ConfigError, match=r"^query.2: no prompt given and no chat template"):
        split_query(query, None, TemplateReader(), "query.2")
