"""Reward models, MOSLIM classifiers and orchestrators are transformers models: AutoModelForSequenceClassification
loads a folder preforch saved and gives the scores / class logits / weights preforch's own models give."""

import shutil
from pathlib import Path
import subprocess
import sys

import pytest
import torch

from preforch.rewards.config import RewardModelConfig
from preforch.rewards.formatting import encode_pairs
from preforch.rewards.sources import HFRewardModel
from preforch.rewards.training import train_reward_model, train_reward_models
from tests.conftest import objective_pair_files, read_card

PROMPTS = [({"role": "user", "content": "how do I hurt someone"},), ({"role": "user", "content": "explain tides"},)]
REPLIES = ["No.", "Tides come from the moon's pull on the oceans."]


@pytest.fixture(scope="module")
def trained_rm(tiny_encoder_dir, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("export")
    files = objective_pair_files(folder, 16)
    cfg = RewardModelConfig(base_model=tiny_encoder_dir, train_data=files, eval_data=[], batch_size=4, max_length=48,
                            output_dir=str(folder / "rm"))
    train_reward_model(cfg)
    return str(folder / "rm")


def test_a_trained_reward_model_loads_with_auto_classes_and_scores_as_preforch_does(trained_rm):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import preforch.modeling_preforch  # noqa: F401  (registers model_type "preforch")

    ours = HFRewardModel(trained_rm, device="cpu", bf16=False)
    model = AutoModelForSequenceClassification.from_pretrained(trained_rm).eval()
    tok = AutoTokenizer.from_pretrained(trained_rm)
    assert model.config.id2label == {0: "helpful", 1: "harmless"} and model.config.num_labels == 2
    norm = model.config.normalization
    assert len(norm["mean"]) == 2 and all(s > 0 for s in norm["std"]) and norm["replies"] == 32
    with torch.no_grad():
        logits = model(**encode_pairs(tok, PROMPTS, REPLIES, model.config.input_tokens, model.config.prompt_max_tokens)).logits
    assert torch.allclose(logits, ours.score(PROMPTS, REPLIES), atol=1e-5)


def test_without_preforch_it_loads_with_trust_remote_code(trained_rm, tmp_path):
    """A fresh interpreter that never imports preforch: the folder's own modeling_preforch.py is the code."""
    copy = tmp_path / "elsewhere"
    shutil.copytree(trained_rm, copy)
    code = ("import sys, torch\nassert 'preforch' not in sys.modules\n"
            "from transformers import pipeline\n"
            f"p = pipeline('text-classification', model={str(copy)!r}, trust_remote_code=True, function_to_apply='none', top_k=None)\n"
            "out = p({'text': 'Human: explain tides', 'text_pair': 'The moon pulls the sea.'})\n"
            "print(sorted(d['label'] for d in out))\nassert 'preforch' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "['harmless', 'helpful']" in run.stdout


def test_an_orchestrator_loads_with_auto_classes_and_gives_its_weights(tiny_encoder_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import preforch.modeling_preforch  # noqa: F401
    from preforch.orchestrator.model import PreferenceOrchestrator
    from preforch.rewards.formatting import encode_prompts

    orch = PreferenceOrchestrator.from_encoder(tiny_encoder_dir, ["helpful", "harmless", "conciseness"])
    torch.nn.init.normal_(orch.head.weight, std=0.5)
    orch.set_temperature(0.7)
    orch.save_pretrained(tmp_path / "orch")
    ours = PreferenceOrchestrator.from_pretrained(tmp_path / "orch", device="cpu").predict(PROMPTS)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "orch").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "orch")
    with torch.no_grad():
        weights = model(**encode_prompts(tok, PROMPTS, model.config.input_tokens)).logits.softmax(-1)
    assert model.config.kind == "orchestrator" and model.config.weight_temperature == pytest.approx(0.7)
    assert torch.allclose(weights, ours, atol=1e-5)


def test_a_model_card_describes_the_folder_and_push_to_hub_uploads_it(trained_rm, tiny_encoder_dir, tmp_path, monkeypatch):
    import yaml
    from huggingface_hub import HfApi

    from preforch.cli import main

    card = (Path(trained_rm) / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "transformers" and "preforch" in meta["tags"]
    assert "## Training" in card and "Bradley-Terry" in card and "AutoModelForSequenceClassification" in card
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw["repo_id"],
                                                                                  sorted(p.name for p in Path(kw["folder_path"]).iterdir()))))
    files = objective_pair_files(tmp_path, 8)
    out = tmp_path / "rm"
    assert main(["train-rm", "--base_model", tiny_encoder_dir, "--train_data", *files, "--eval_data", *files,
                 "--batch_size", "4", "--max_length", "32", "--output_dir", str(out), "--push_to_hub", "true",
                 "--hub_model_id", "me/rm"]) == 0
    assert calls[0] == ("create", "me/rm") and calls[1][:2] == ("upload", "me/rm")
    assert {"README.md", "config.json", "modeling_preforch.py", "head.safetensors", "encoder"} <= set(calls[1][2])
    meta = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert meta["model-index"][0]["results"][0]["metrics"][0]["name"] == "helpful pairwise accuracy (held out)"


def test_push_to_hub_without_a_repo_is_refused_before_training(capsys):
    from preforch.cli import main

    assert main(["train-orchestrator", "--push_to_hub", "true"]) == 2
    assert "push_to_hub: needs hub_model_id" in capsys.readouterr().err


def test_a_pipeline_on_raw_text_gives_preforchs_own_weights_and_scores(trained_rm, tiny_encoder_dir, tmp_path):
    """The folder's tokenizer formats a raw prompt as preforch does ('Human: ...'), so pipeline users need no step."""
    from transformers import pipeline

    import preforch.modeling_preforch  # noqa: F401
    from preforch.orchestrator.model import PreferenceOrchestrator

    orch = PreferenceOrchestrator.from_encoder(tiny_encoder_dir, ["helpful", "harmless", "conciseness"])
    torch.nn.init.normal_(orch.head.weight, std=0.5)
    orch.save_pretrained(tmp_path / "orch")
    prompt, reply = "how do I hurt someone", "No."
    ours = PreferenceOrchestrator.from_pretrained(tmp_path / "orch", device="cpu").predict(PROMPTS[:1])[0]
    weights = {d["label"]: d["score"] for d in pipeline("text-classification", model=str(tmp_path / "orch"), top_k=None)([prompt])[0]}
    assert [weights[o] for o in ("helpful", "harmless", "conciseness")] == pytest.approx(ours.tolist(), abs=1e-5)

    scores = pipeline("text-classification", model=trained_rm, function_to_apply="none", top_k=None)(
        [{"text": prompt, "text_pair": reply}])[0]
    expected = HFRewardModel(trained_rm, device="cpu", bf16=False).score(PROMPTS[:1], [reply])[0]
    assert [{d["label"]: d["score"] for d in scores}[o] for o in ("helpful", "harmless")] == pytest.approx(expected.tolist(), abs=1e-5)


def test_a_classifier_loads_with_auto_classes_and_gives_its_class_logits(tiny_classifier_dir):
    """Raw class logits of every head, concatenated; config.num_levels splits them, id2label names each class."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    import preforch.modeling_preforch  # noqa: F401
    from preforch.rewards.classifier import ClassifierRewardModel

    ours = ClassifierRewardModel.from_pretrained(tiny_classifier_dir, device="cpu")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    config = model.config
    assert config.kind == "classifier" and config.num_levels == [2, 2, 5] and config.num_labels == 9
    assert [config.id2label[i] for i in (0, 1, 2, 4, 8)] == ["helpful/0", "helpful/1", "harmless/0", "quality/0", "quality/4"]
    assert config.level_stats["num_samples"] == ours.stats.num_samples
    assert torch.allclose(torch.tensor(config.level_stats["mean"]), ours.stats.mean)
    with torch.no_grad():
        logits = model(**encode_pairs(tok, PROMPTS, REPLIES, config.input_tokens, config.prompt_max_tokens)).logits
        expected = ours.level_logits(encode_pairs(ours.tokenizer, PROMPTS, REPLIES, ours.max_length, ours.prompt_max_tokens))
    assert logits.shape == (2, 9) and torch.allclose(logits, expected, atol=1e-5)
    scores = pipeline("text-classification", model=tiny_classifier_dir, function_to_apply="none", top_k=None)(
        [{"text": "how do I hurt someone", "text_pair": REPLIES[0]}])[0]  # a raw prompt, formatted by the tokenizer
    by_label = {d["label"]: d["score"] for d in scores}
    assert [by_label[config.id2label[i]] for i in range(9)] == pytest.approx(expected[0].tolist(), abs=1e-5)


def test_a_trained_classifier_carries_a_card_and_push_to_hub_uploads_it(tiny_encoder_dir, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    uploaded = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: uploaded.extend(
        p.name for p in Path(kw["folder_path"]).iterdir()))
    files = objective_pair_files(tmp_path, 8)
    cfg = RewardModelConfig(base_model=tiny_encoder_dir, objectives=["helpful", "harmless"], levels=[2, 2],
                            train_data=files, eval_data=files, batch_size=4, max_length=32, output_dir=str(tmp_path / "rm"),
                            push_to_hub=True, hub_model_id="me/classifier")
    _, metrics = train_reward_models(cfg)
    heads = metrics[cfg.output_dir]["heads"]
    meta, held_out, card, code = read_card(cfg.output_dir)
    assert "moslim" in meta["tags"] and "MOSLIM classification" in card and "levels helpful 2, harmless 2" in card
    assert held_out == {f"{o} {name} accuracy (held out)": pytest.approx(heads[o][f"{key}_accuracy"], abs=1e-4)
                        for o in ("helpful", "harmless") for name, key in (("pairwise", "pairwise"), ("exact level", "exact"))}
    assert {"README.md", "config.json", "modeling_preforch.py"} <= set(uploaded)
    run = {"FOLDER": cfg.output_dir, "dialogue_tail": "Human: explain tides", "reply": "The moon pulls the sea."}
    exec(code, run)  # the card's own snippet
    assert [tuple(p.shape) for p in run["levels"]] == [(1, 2), (1, 2)]
    assert all(float(p.detach().sum()) == pytest.approx(1.0) for p in run["levels"])


def test_a_decoder_classifier_renders_prompt_and_reply_with_its_chat_template(tiny_policy_dir, tmp_path):
    """A classifier's tokenizer takes the reward model's path: (prompt, reply) through the chat template."""
    from transformers import pipeline

    import preforch.modeling_preforch  # noqa: F401
    from preforch.rewards.classifier import ClassifierRewardModel

    torch.manual_seed(0)
    ClassifierRewardModel.from_encoder(tiny_policy_dir, ["helpful", "quality"], [2, 3]).save_pretrained(tmp_path / "clf")
    ours = ClassifierRewardModel.from_pretrained(tmp_path / "clf", device="cpu")
    with torch.no_grad():
        expected = ours.level_logits(encode_pairs(ours.tokenizer, PROMPTS[:1], REPLIES[:1], ours.max_length,
                                                  ours.prompt_max_tokens))[0]
    scores = pipeline("text-classification", model=str(tmp_path / "clf"), function_to_apply="none", top_k=None)(
        [{"text": "how do I hurt someone", "text_pair": REPLIES[0]}])[0]
    by_label = {d["label"]: d["score"] for d in scores}
    labels = ["helpful/0", "helpful/1", "quality/0", "quality/1", "quality/2"]
    assert [by_label[label] for label in labels] == pytest.approx(expected.tolist(), abs=1e-5)
