"""Every shipped YAML recipe loads into its command's config (a new recipe must be added here)."""

from pathlib import Path

import pytest

import preforch
from preforch.alignment.config import MahaloConfig, PolicyConfig, WicConfig
from preforch.cli.parsing import parse_config
from preforch.evaluation.config import EvaluateConfig
from preforch.orchestrator.config import OrchestratorConfig
from preforch.pipelines.config import (BenchmarkConfig, HeadlineConfig, QuickstartConfig, RLComparisonConfig,
                                       RobustnessConfig, WicComparisonConfig)
from preforch.rewards.config import EnsembleConfig, RewardModelConfig

RECIPES = Path(preforch.__file__).parent / "recipes"
KIND = {"reward_models_": RewardModelConfig, "ensemble_": EnsembleConfig, "orchestrator_": OrchestratorConfig,
        "quickstart": QuickstartConfig, "evaluate_": EvaluateConfig, "policy_": PolicyConfig,
        "rl_compare": RLComparisonConfig, "wic_": WicConfig, "wic_compare": WicComparisonConfig,
        "mahalo_": MahaloConfig, "mixed_intent": BenchmarkConfig, "rl_compare_mixed": RLComparisonConfig,
        "headline_": HeadlineConfig, "robustness_": RobustnessConfig}


def _kind(path: Path):
    matches = [prefix for prefix in KIND if path.stem.startswith(prefix)]
    assert matches, f"{path.name}: add its config class to KIND in this test"
    return KIND[max(matches, key=len)]  # wic_compare is a WicComparisonConfig, wic_pro_offline a WicConfig


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_recipe_loads_and_every_key_takes_effect(recipe):
    import yaml

    cls = _kind(recipe)
    cfg = parse_config(cls, ["--config", str(recipe)], prog="test")
    for key, value in yaml.safe_load(recipe.read_text()).items():
        assert getattr(cfg, key) == value, f"{recipe.name}: {key}"


def test_quickstart_recipe_matches_the_defaults():
    cfg = parse_config(QuickstartConfig, ["--config", str(RECIPES / "quickstart.yaml")], prog="test")
    assert cfg == QuickstartConfig()
