"""Shared TRL pieces: the per-step memory release that keeps long CPU RL runs bounded (issue 15)."""

import preforch.alignment.trl_utils as trl_utils
from preforch.models import CPU_BF16_LENGTH_BUCKET


def _turns(n: int) -> list[dict]:
    """A dialogue of n user/assistant exchanges ending with a user turn: u0 a0 u1 a1 ... u{n-1}."""
    out = []
    for i in range(n):
        out += [{"role": "user", "content": f"question number {i} " * 5}, {"role": "assistant", "content": f"answer {i} " * 5}]
    return out[:-1]


def _length(tok, messages) -> int:
    return len(tok(tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False),
                   add_special_tokens=False)["input_ids"])


def test_fit_prompts_drops_the_oldest_turns_and_keeps_the_last_question(tiny_policy_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    long, short = _turns(6), _turns(1)
    fitted_long, fitted_short = trl_utils.fit_prompts(tok, [long, short], max_tokens=60)
    assert _length(tok, long) > 60 >= _length(tok, fitted_long)
    assert fitted_long[0]["role"] == "user" and list(fitted_long) == long[-len(fitted_long):]
    assert list(fitted_short) == short, "a prompt that fits is untouched"
    assert [list(p) for p in trl_utils.fit_prompts(tok, [long], max_tokens=0)] == [long], "0 keeps prompts whole"


def test_fit_prompts_cuts_an_overlong_last_question_from_its_start(tiny_policy_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    question = " ".join(f"word{i}" for i in range(200))
    (fitted,) = trl_utils.fit_prompts(tok, [[{"role": "user", "content": question}]], max_tokens=40)
    assert len(fitted) == 1 and _length(tok, fitted) <= 40
    assert fitted[0]["content"].replace(" ", "").endswith("word199"), "the end of the question is what stays"


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_the_trainer_callback_releases_memory_after_every_step(monkeypatch):
    calls = []
    monkeypatch.setattr(trl_utils, "release_memory", lambda: calls.append(1))
    callback = trl_utils.memory_releaser()
    for _ in range(3):
        callback.on_step_end(None, None, None)
    assert calls == [1, 1, 1]


def test_release_memory_returns_fragmented_free_heap_to_the_os():
    blocks = [bytearray(4096) for _ in range(25_000)]  # ~100 MB through malloc
    kept = blocks[::16]  # live blocks scattered through the heap: free() alone cannot shrink it
    del blocks
    held = rss_mb()
    trl_utils.release_memory()
    assert held - rss_mb() > 50, "malloc_trim should hand back most of the ~94 MB freed"
    assert len(kept) == 1563


def test_batches_are_bucketed_on_cpu_with_bf16_only(monkeypatch):
    # oneDNN keeps kernels per input shape under CPU bf16: free lengths grow memory every RL step
    monkeypatch.setenv("PREFORCH_BF16", "1")
    assert trl_utils.device_args()["pad_to_multiple_of"] == CPU_BF16_LENGTH_BUCKET
    assert trl_utils.device_args(64)["pad_to_multiple_of"] == 64
    monkeypatch.setenv("PREFORCH_BF16", "0")
    args = trl_utils.device_args()
    assert args["pad_to_multiple_of"] == "auto" and args["bf16"] is False


def test_bucketed_lengths_reach_the_trl_config(monkeypatch):
    from trl import GRPOConfig

    monkeypatch.setenv("PREFORCH_BF16", "1")
    config = GRPOConfig(output_dir="unused", **trl_utils.device_args())
    assert config.pad_to_multiple_of == CPU_BF16_LENGTH_BUCKET and config.bf16


def test_a_bucket_below_one_token_is_refused():
    import pytest

    from preforch.alignment.config import PolicyConfig
    from preforch.errors import ConfigError

    with pytest.raises(ConfigError, match="pad_to_multiple_of: expected a positive"):
        PolicyConfig(pad_to_multiple_of=0)
