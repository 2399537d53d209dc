"""The shipped accelerate configs parse with accelerate's own loader (they are not run here: no GPUs)."""

from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).parents[1] / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_loads(path):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(path))
    assert cfg.mixed_precision == "bf16" and not cfg.use_cpu
    if "zero" in path.stem:
        assert str(cfg.distributed_type).endswith("DEEPSPEED")
        assert cfg.deepspeed_config["zero_stage"] == int(path.stem[-1])


def test_all_three_are_shipped():
    assert {p.stem for p in CONFIGS} == {"multi_gpu", "deepspeed_zero2", "deepspeed_zero3"}
