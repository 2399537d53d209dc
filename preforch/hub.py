"""Sharing a trained model: a model card (README.md with YAML metadata) beside the weights, and an upload to the
Hugging Face Hub (`--push_to_hub`, `--hub_model_id`), as TRL's trainers do for policies.

A card's code (LOADERS, USAGE) is a `str.format` template per kind: `{base}` is the base model's Hub id and
`{objectives}` the objectives' list, so the code's own braces are doubled."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import yaml

from preforch.errors import ConfigError
from preforch.io import atomic_write_text

_SEQUENCE_CLASSIFIER = (
    "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
    "model = AutoModelForSequenceClassification.from_pretrained(FOLDER, trust_remote_code=True)  # or: import preforch.modeling_preforch\n"
    "tok = AutoTokenizer.from_pretrained(FOLDER)")
LOADERS = {  # how a folder of each kind loads outside preforch (FOLDER: its path or Hub id)
    "reward": _SEQUENCE_CLASSIFIER, "orchestrator": _SEQUENCE_CLASSIFIER, "classifier": _SEQUENCE_CLASSIFIER,
    "policy": "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
              "model, tok = AutoModelForCausalLM.from_pretrained(FOLDER), AutoTokenizer.from_pretrained(FOLDER)",
    "mahalo": "import torch\nfrom safetensors.torch import load_file\n"
              "from transformers import AutoModelForCausalLM, AutoTokenizer\nfrom transformers.utils import cached_file\n"
              "lm, tok = AutoModelForCausalLM.from_pretrained(FOLDER), AutoTokenizer.from_pretrained(FOLDER)  # the shared "
              "trunk; its own lm_head is the starting model's (the DPO reference)\n"
              "heads = load_file(cached_file(FOLDER, 'heads.safetensors'))['heads'].to(lm.dtype)  # [K, V, H]: the output "
              "matrix of each of {objectives}",
    "experts": "from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
               "objectives = {objectives}  # one LoRA adapter each, in experts/<objective>\n"
               "base, tok = AutoModelForCausalLM.from_pretrained({base!r}), AutoTokenizer.from_pretrained({base!r})\n"
               "model = PeftModel.from_pretrained(base, FOLDER, subfolder=f'experts/{{objectives[0]}}',\n"
               "                                  adapter_name=objectives[0])\n"
               "for o in objectives[1:]:\n    model.load_adapter(FOLDER, adapter_name=o, subfolder=f'experts/{{o}}')",
}
USAGE = {  # what to do with it once loaded
    "reward": "scores = model(**tok(dialogue_tail, reply, return_tensors='pt')).logits  # [1, K], one per objective\n"
              "# z-scores as preforch's ensemble: (scores - model.config.normalization['mean']) / model.config.normalization['std']",
    "orchestrator": "weights = model(**tok(prompt, return_tensors='pt')).logits.softmax(-1)  # [1, K], the preference",
    "classifier": "logits = model(**tok(dialogue_tail, reply, return_tensors='pt')).logits  # [1, sum of num_levels]: "
                  "every head's class logits (id2label '<objective>/<level>')\n"
                  "levels = [head.softmax(-1) for head in logits.split(model.config.num_levels, -1)]  # each objective's "
                  "level probabilities",
    "policy": "",
    "mahalo": "w = torch.full((len(heads),), 1 / len(heads))  # a preference: one weight per objective, summing to 1\n"
              "text = tok.apply_chat_template([{{'role': 'user', 'content': 'How do I pick a lock?'}}], tokenize=False, "
              "add_generation_prompt=True)\n"
              "hidden = lm.get_decoder()(**tok(text, return_tensors='pt', add_special_tokens=False)).last_hidden_state\n"
              "next_token_logits = hidden[:, -1] @ torch.einsum('k,kvh->vh', w, heads).T  # the heads mixed by w\n"
              "# with head adapters (adapter_up in heads.safetensors) use preforch's MultiHeadLM.from_pretrained(FOLDER)",
    "experts": "model.set_adapter(objectives[0])  # one expert alone\n"
               "model.add_weighted_adapter(objectives, [1 / len(objectives)] * len(objectives), 'soup',\n"
               "                           combination_type='cat')\n"
               "model.set_adapter('soup')  # Rewarded Soups: the experts' weight deltas summed by the preference's weights",
}
IN_PREFORCH = {
    "reward": "`preforch build-ensemble --reward_models FOLDER`",
    "orchestrator": "`--orchestrator FOLDER` (generate, serve, train-policy, evaluate)",
    "classifier": "`preforch train-policy --method moslim --classifier FOLDER`, or `preforch build-ensemble "
                  "--reward_models FOLDER` (one score per objective: its expected level)",
    "policy": "`--policy FOLDER` (generate, serve, evaluate)",
    "mahalo": "`preforch serve --policy FOLDER --method mahalo` or `preforch generate --policy FOLDER --method mahalo` "
              "(the heads mixed by `--weights` or the orchestrator's weights per prompt); "
              "`preforch.generation.multi_head.MultiHeadLM.from_pretrained(FOLDER)` in Python",
    "experts": "`preforch serve --policy FOLDER --method soups` (Rewarded Soups: the experts merged in weight space by "
               "the weights) or `--method mod` (MOD: their next-token log-probs mixed at decoding), likewise in generate "
               "and evaluate",
}
WHAT = {"reward": "a multi-head reward model: one score per objective",
        "orchestrator": "a Preference Orchestrator: it reads a prompt and predicts the weight of each objective",
        "classifier": "MOSLIM's classification reward model: one head per objective sorts a reply into ordinal "
                      "intensity levels",
        "policy": "a policy aligned to several objectives at once",
        "mahalo": "a MAHALO multi-head DPO policy: one shared trunk and one output head per objective, the heads mixed "
                  "by a preference's weights at decoding time",
        "experts": "one LoRA expert per objective on one base model, combined by a preference's weights as Rewarded "
                   "Soups in weight space or as MOD at decoding time"}
TAGS = {"reward": ("reward-model",), "orchestrator": ("preference-orchestrator",),
        "classifier": ("reward-model", "moslim"), "policy": ("multi-objective-rl",),
        "mahalo": ("multi-objective-rl", "mahalo", "dpo"),
        "experts": ("multi-objective-rl", "rewarded-soups", "lora")}
GENERATORS = ("policy", "mahalo", "experts")  # kinds that generate text rather than classify it


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
    """README.md of a preforch folder (kind: a key of WHAT): Hub metadata (library, base model, datasets, tags, held-out
    metrics), what it is, how it was trained (`how`), its held-out results and how to load it."""
    base = HUB_IDS.get(base_model, base_model)
    meta = {"library_name": "peft" if kind == "experts" else "transformers", "base_model": base,
            "datasets": hub_datasets(datasets),
            "tags": ["preforch", "multi-objective-alignment", *TAGS[kind]],
            "pipeline_tag": "text-generation" if kind in GENERATORS else "text-classification"}
    if metrics:
        meta["model-index"] = [{"name": f"preforch {kind}", "results": [
            {"task": {"type": "text-classification"}, "metrics": [
                {"type": "accuracy", "name": name, "value": round(float(v), 4)} for name, v in metrics.items()]}]}]
    code = "\n".join(c for c in (LOADERS[kind], USAGE[kind]) if c).format(base=base, objectives=list(objectives))
    return "\n".join([
        "---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "",
        f"# preforch {kind}: {', '.join(objectives)}", "",
        f"Trained with preforch (prompt-aware multi-objective alignment), {WHAT[kind]} ({', '.join(objectives)}).", "",
        "## Training", "", how, "",
        "## Held-out results", "",
        *([f"- {name}: {v:.3f}" for name, v in metrics.items()] or ["None were measured in this run."]), "",
        "## Use", "",
        "```python", code, "```", "",
        f"In preforch: {IN_PREFORCH[kind]}.", ""])


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
