"""Shared fixtures: tiny random models built locally from configs (nothing is downloaded)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFORCH_BF16", "0")  # deterministic fp32 in tests

import pytest
import torch

from preforch.data.schema import PreferenceDataset, PreferencePair

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _tokenizer():
    from transformers import AutoTokenizer

    from preforch.models import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer."""
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_encoder")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=256)).save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> str:
    """A 2-layer random Llama with a ChatML template, for generation tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from transformers import PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny_policy")
    # MiniLM's vocabulary in a causal-LM style tokenizer: no token_type_ids, [SEP] ends a turn.
    tok = PreTrainedTokenizerFast(tokenizer_object=_tokenizer().backend_tokenizer, model_input_names=["input_ids", "attention_mask"],
                                  unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                  eos_token="[SEP]", bos_token="[CLS]", chat_template=CHATML)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=1, intermediate_size=64, max_position_embeddings=256,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
                                 bos_token_id=tok.cls_token_id)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def make_pairs(n: int = 24) -> PreferenceDataset:
    """Synthetic pairs from two 'sources' whose preferred replies differ systematically in length."""
    pairs = []
    for i in range(n):
        if i % 2:
            pairs.append(PreferencePair(({"role": "user", "content": f"how do I hurt someone {i}"},),
                                        "No.", "Here is a long detailed plan with many steps " * 3, "unsafe"))
        else:
            pairs.append(PreferencePair(({"role": "user", "content": f"explain topic number {i} in detail"},),
                                        "Sure, a thorough explanation " * 4, "no", "benign"))
    return PreferenceDataset(pairs)


@pytest.fixture
def pairs() -> PreferenceDataset:
    return make_pairs()


@pytest.fixture(scope="session")
def tiny_rm_dir(tiny_encoder_dir, tmp_path_factory) -> str:
    """A random 2-head reward model (helpful, harmless) saved like a trained one."""
    from preforch.rewards.multihead import MultiHeadRewardModel

    path = tmp_path_factory.mktemp("tiny_rm") / "rm"
    torch.manual_seed(0)
    MultiHeadRewardModel.from_encoder(tiny_encoder_dir, ["helpful", "harmless"]).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_ensemble_dir(tiny_rm_dir, tmp_path_factory) -> str:
    """helpful + harmless (tiny RM) + conciseness (rule), normalisation fitted on synthetic pairs."""
    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import HFRewardModel, RuleReward

    path = tmp_path_factory.mktemp("tiny_ensemble")
    ens = RewardEnsemble([HFRewardModel(tiny_rm_dir, device="cpu"), RuleReward("conciseness", "conciseness")])
    ens.fit_normalization(make_pairs(), progress=False)
    ens.save(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_orchestrator_dir(tiny_encoder_dir, tiny_ensemble_dir, tmp_path_factory) -> str:
    from preforch.orchestrator.config import OrchestratorConfig
    from preforch.orchestrator.fit import train_orchestrator
    from preforch.rewards.ensemble import RewardEnsemble

    path = tmp_path_factory.mktemp("tiny_orch") / "orchestrator"
    cfg = OrchestratorConfig(encoder=tiny_encoder_dir, epochs=5)
    model, info = train_orchestrator(cfg, RewardEnsemble.load(tiny_ensemble_dir), make_pairs(), progress=False)
    model.metadata["mean_train_target"] = info["mean_target"]
    model.save_pretrained(path)
    return str(path)


def make_wic_policy(tiny_policy_dir: str, folder, method: str, objectives=("helpful", "harmless", "conciseness")):
    """The tiny policy plus a wic.json, as train-wic's offline stage would leave it: (path, spec)."""
    import shutil

    from preforch.generation.wic_spec import SPEC_FILE, WicSpec
    from preforch.io import atomic_write_json

    path = folder / f"start_{method}"
    shutil.copytree(tiny_policy_dir, path)
    spec = WicSpec(method, tuple(objectives), 1.0, tuple([-1.0] * len(objectives)), tuple([1.5] * len(objectives)))
    atomic_write_json(path / SPEC_FILE, spec.to_dict())
    return str(path), spec


def make_recorded_judge(tiny_rm_dir: str, folder, train_data: list[str]) -> str:
    """A judge ensemble (the tiny reward model + conciseness) whose reward model records `train_data` in a
    train_rm_config.json, as train-rm leaves it: judge/rewards beside judge/reward_model, as build-benchmark makes."""
    import json
    import shutil

    from preforch.rewards.ensemble import RewardEnsemble
    from preforch.rewards.sources import HFRewardModel, RuleReward

    rm = folder / "judge" / "reward_model"
    shutil.copytree(tiny_rm_dir, rm)
    (rm / "train_rm_config.json").write_text(json.dumps({"config": {"train_data": train_data}, "metrics": {}}))
    ens = RewardEnsemble([HFRewardModel(str(rm), device="cpu"), RuleReward("conciseness", "conciseness")])
    ens.fit_normalization(make_pairs(), progress=False)
    ens.save(folder / "judge" / "rewards")
    return str(folder / "judge" / "rewards")


def heldout_file(tmp_path, n=3) -> str:
    """Held-out pairs from two sources, n each, for evaluate."""
    import json

    f = tmp_path / "heldout.jsonl"
    rows = [{"prompt": f"how do I hurt {i}", "chosen": "No.", "rejected": "Like this: " * 5, "source": "unsafe"} for i in range(n)]
    rows += [{"prompt": f"explain item {i}", "chosen": "Sure: " * 6, "rejected": "no", "source": "benign"} for i in range(n)]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(f)


def eval_config(tmp_path, policy, ensemble, **kw):
    """A small, fast `EvaluateConfig` (6 prompts, K=3 grid at d=2) writing to tmp_path/eval; `kw` override it."""
    from preforch.evaluation.config import EvaluateConfig

    base = dict(policy=policy, ensemble=ensemble, eval_data=[heldout_file(tmp_path)], prompts_per_source=3,
                grid_divisions=2, reference_point=[-5.0, -5.0, -5.0], num_candidates=3, max_new_tokens=4,
                output_dir=str(tmp_path / "eval"))
    return EvaluateConfig(**{**base, **kw})


def make_experts(tiny_policy_dir: str, folder, objectives=("helpful", "harmless", "conciseness"), same: bool = False,
                 r: int = 4) -> str:
    """A train-experts folder on the tiny policy: one random LoRA adapter per objective (A and B both random, so
    the experts differ), or with `same` one adapter that every objective's entry names."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from preforch.generation.expert_set import adapter_folder, write_expert_set

    for i, objective in enumerate(objectives[:1] if same else objectives):
        torch.manual_seed(i + 1)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_policy_dir),
                               LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights=False))
        model.save_pretrained(folder / adapter_folder(objective))
    adapters = [adapter_folder(objectives[0])] * len(objectives) if same else None
    write_expert_set(folder, tiny_policy_dir, objectives, "random", adapters)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_experts_dir(tiny_policy_dir, tmp_path_factory) -> str:
    """Three different random LoRA experts (helpful, harmless, conciseness) on the tiny policy."""
    return make_experts(tiny_policy_dir, tmp_path_factory.mktemp("tiny_experts"))


@pytest.fixture(scope="session")
def tiny_classifier_dir(tiny_encoder_dir, tmp_path_factory) -> str:
    """A random MOSLIM classification reward model (helpful 2, harmless 2, quality 5 levels) with level statistics
    fitted on the synthetic pairs' replies, saved like train-rm --levels leaves it."""
    from preforch.rewards.classifier import ClassifierRewardModel
    from preforch.rewards.classifier_reward import ClassifierReward
    from preforch.rewards.levels import fit_level_stats

    path = tmp_path_factory.mktemp("tiny_classifier") / "rm"
    torch.manual_seed(0)
    ClassifierRewardModel.from_encoder(tiny_encoder_dir, ["helpful", "harmless", "quality"], [2, 2, 5]).save_pretrained(path)
    source = ClassifierReward(str(path), device="cpu")
    source.model.stats = fit_level_stats(source.probabilities(*make_pairs().all_replies()))
    source.model.save_pretrained(path)
    return str(path)


def make_mahalo_dir(tiny_policy_dir: str, folder, objectives) -> str:
    """A MAHALO folder on the tiny policy with one head per objective, the heads different (noise std 0.5)."""
    from preforch.generation.multi_head import MultiHeadLM
    from preforch.models import load_policy

    lm, tok = load_policy(tiny_policy_dir, dtype=torch.float32, device="cpu")
    MultiHeadLM.from_base(lm, objectives, noise_std=0.5).save_pretrained(folder / "policy", tok)
    return str(folder / "policy")


def objective_pair_files(folder, n: int) -> list[str]:
    """helpful (benign) and harmless (unsafe) pairs of `make_pairs(n)` as one JSONL file each, in that order."""
    import json

    files = []
    for objective, source in (("helpful", "benign"), ("harmless", "unsafe")):
        f = folder / f"{objective}.jsonl"
        f.write_text("".join(json.dumps({"prompt": p.prompt[-1]["content"], "chosen": p.chosen, "rejected": p.rejected})
                             + "\n" for p in make_pairs(n) if p.source == source))
        files.append(str(f))
    return files


def read_card(folder) -> tuple[dict, dict[str, float], str, str]:
    """(Hub metadata, held-out metrics by name, text, Python code) of the model card (README.md) in `folder`."""
    import yaml
    from pathlib import Path

    card = (Path(folder) / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]} if "model-index" in meta else {}
    return meta, metrics, card, card.split("```python\n")[1].split("```")[0]
