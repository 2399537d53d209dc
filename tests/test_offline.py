"""A Hub id that is not cached fails once, in one line, when the Hub cannot be reached (no network) or
HF_HUB_OFFLINE=1: no retries."""

import os
import socket
import subprocess
import sys
import time

import pytest

import preforch.offline as offline


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once closed: a connection is refused at once


def _no_network_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
           and "proxy" not in k.lower()}
    return {**env, "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", **extra}


@pytest.mark.parametrize("argv, names", [
    (["train-rm", "--objectives", "helpful", "--train_data", "someone/not-cached-data:train", "--eval_data",
      "someone/not-cached-data:test"], "someone/not-cached-data:train: could not load it with datasets.load_dataset (offline"),
    (["train-orchestrator", "--encoder", "someone/not-cached-model", "--ensemble", "{ensemble}", "--train_data",
      "{data}", "--eval_data", "{data}"], "could not be loaded (offline: only models in the local Hugging Face cache load)"),
])
@pytest.mark.parametrize("how", ["no network", "HF_HUB_OFFLINE=1"])
def test_a_hub_id_not_in_the_cache_fails_once_in_one_line(argv, names, how, tiny_ensemble_dir, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "hi", "chosen": "hello", "rejected": "go away"}\n' * 4)
    argv = [a.format(ensemble=tiny_ensemble_dir, data=data) for a in argv] + ["--output_dir", str(tmp_path / "out")]
    env = _no_network_env(**({"HF_HUB_OFFLINE": "1"} if how == "HF_HUB_OFFLINE=1" else {}))
    t = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "preforch", *argv], capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - t
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Retry" not in run.stderr and "Retrying" not in run.stdout, run.stderr[-2000:]
    assert [line for line in lines if "not-cached" in line] == lines[-1:] and names in lines[-1], lines
    assert not (tmp_path / "out").exists()
    assert seconds < 120  # the retries alone took ~27 s; a loaded 2-core machine imports torch in ~10-20 s


def test_the_hub_is_asked_once_and_an_unreachable_one_puts_the_process_offline(monkeypatch):
    import huggingface_hub.constants as hub

    calls = []

    def refused(*args, **kwargs):
        calls.append(args)
        raise ConnectionRefusedError("no network")

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(offline, "_reachable", None)
    monkeypatch.setattr(socket, "create_connection", refused)
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # restored after the test (go_offline sets it)
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    assert offline.hub_offline() and offline.hub_offline()
    assert len(calls) == 1 and hub.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_with_hf_hub_offline_set_nothing_is_asked(monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(offline, "_reachable", None)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("the Hub was asked"))
    assert offline.hub_offline()
