"""The record type's helpers: trimming a dialogue to a token budget, oldest turns first."""

from preforch.data.schema import trim_dialogue


def _count_words(messages) -> int:
    return sum(len(m["content"].split()) for m in messages)


def test_trim_dialogue_drops_whole_exchanges_from_the_start_and_keeps_the_system_message():
    dialogue = [{"role": "system", "content": "be kind"},
                {"role": "user", "content": "one two three"}, {"role": "assistant", "content": "four five"},
                {"role": "user", "content": "six seven"}, {"role": "assistant", "content": "eight"},
                {"role": "user", "content": "nine ten"}]
    trimmed = trim_dialogue(dialogue, _count_words, max_tokens=7)
    assert trimmed == (dialogue[0], *dialogue[3:]), "system kept, the first exchange dropped, a user turn leads"
    assert trim_dialogue(dialogue, _count_words, max_tokens=100) == tuple(dialogue)


def test_trim_dialogue_always_keeps_the_last_user_turn_even_when_it_alone_is_too_long():
    dialogue = [{"role": "user", "content": "a b"}, {"role": "assistant", "content": "c"},
                {"role": "user", "content": "d e f g h"}]
    assert trim_dialogue(dialogue, _count_words, max_tokens=2) == (dialogue[-1],)
