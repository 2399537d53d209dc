"""Sharing a trained reward model or orchestrator: a model card (README.md with YAML metadata) beside the weights,
and an upload to the Hugging Face Hub (`--push_to_hub`, `--hub_model_id`), as TRL's trainers do for policies."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import yaml

from preforch.errors import ConfigError
from preforch.io import atomic_write_text

USAGE = {
    "reward": ("scores = model(**tok(dialogue_tail, reply, return_tensors='pt')).logits  # [1, K], one per objective\n"
               "# z-scores as preforch's ensemble: (scores - config.normalization['mean']) / config.normalization['std']"),
    "orchestrator": "weights = model(**tok(prompt, return_tensors='pt')).logits.softmax(-1)  # [1, K], the preference",
}
LOADERS = {"reward": "AutoModelForSequenceClassification", "orchestrator": "AutoModelForSequenceClassification",
           "policy": "AutoModelForCausalLM"}
TAGS = {"reward": "reward-model", "orchestrator": "preference-orchestrator", "policy": "multi-objective-rl"}


# what the bundled aliases and data sets are on the Hub, for a card's metadata
HUB_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2", "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
           "hh-helpful": "Anthropic/hh-rlhf", "hh-harmless": "Anthropic/hh-rlhf",
           "ultrafeedback": "trl-lib/ultrafeedback_binarized"}


def hub_datasets(specs: Sequence[str]) -> list[str]:
    """The Hub datasets behind data specs: bundled sets by origin, Hub ids as given, local files left out."""
    out = []
    for spec in specs:
        name = spec.split(":")[0].split("@")[0]
        hub = HUB_IDS.get(name) or (name if "/" in name and not Path(name).exists() else None)
        if hub and hub not in out:
            out.append(hub)
    return out


def model_card(kind: str, base_model: str, datasets: Sequence[str], objectives: Sequence[str], metrics: dict[str, float],
               how: str) -> str:
    """README.md of a preforch folder (kind: reward | orchestrator | policy): Hub metadata (library, base model,
    datasets, tags, held-out metrics), what it is, how it was trained (`how`) and how to load it with transformers."""
    meta = {"library_name": "transformers", "base_model": HUB_IDS.get(base_model, base_model),
            "datasets": hub_datasets(datasets),
            "tags": ["preforch", "multi-objective-alignment", TAGS[kind]],
            "pipeline_tag": "text-generation" if kind == "policy" else "text-classification",
            "model-index": [{"name": f"preforch {kind}", "results": [
                {"task": {"type": "text-classification"}, "metrics": [
                    {"type": "accuracy", "name": name, "value": round(float(v), 4)} for name, v in metrics.items()]}]}]}
    what = {"reward": "a multi-head reward model: one score per objective",
            "orchestrator": "a Preference Orchestrator: it reads a prompt and predicts the weight of each objective",
            "policy": "a policy aligned to several objectives at once"}[kind]
    use = (["from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model, tok = AutoModelForCausalLM.from_pretrained(FOLDER), AutoTokenizer.from_pretrained(FOLDER)"]
           if kind == "policy" else
           ["from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "model = AutoModelForSequenceClassification.from_pretrained(FOLDER, trust_remote_code=True)  # or: import preforch.modeling_preforch",
            "tok = AutoTokenizer.from_pretrained(FOLDER)", USAGE[kind]])
    return "\n".join([
        "---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
        f"# preforch {kind}: {', '.join(objectives)}", "",
        f"Trained with preforch (prompt-aware multi-objective alignment), {what} ({', '.join(objectives)}).", "",
        "## Training", "", how, "",
        "## Held-out results", "",
        *(f"- {name}: {v:.3f}" for name, v in metrics.items()), "",
        "## Use", "",
        "```python", *use, "```", "",
        "Or in preforch: `--reward_models FOLDER` (build-ensemble), `--orchestrator FOLDER`, `--policy FOLDER`.", ""])


def write_model_card(folder: str | Path, *args, **kwargs) -> None:
    atomic_write_text(Path(folder) / "README.md", model_card(*args, **kwargs))


def push_folder(folder: str | Path, repo_id: str | None, private: bool = False) -> str:
    """Upload `folder` to the Hub repo `repo_id` (created if missing); returns its URL. A clear error without an id."""
    if not repo_id:
        raise ConfigError("--push_to_hub needs --hub_model_id (e.g. your-name/preforch-reward-model)")
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload from preforch")
    return f"https://huggingface.co/{repo_id}"
