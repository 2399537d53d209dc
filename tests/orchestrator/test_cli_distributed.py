import json
import shutil
import subprocess
import sys
from pathlib import Path

from preforch.orchestrator.model import PreferenceOrchestrator


def test_train_orchestrator_fine_tunes_under_torchrun(tiny_encoder_dir, tiny_ensemble_dir, tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"question {i}", "chosen": "yes " * (i % 5 + 1), "rejected": "no"})
                              for i in range(16)))
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else shutil.which("torchrun"), "--standalone", "--nproc_per_node", "2",
           "-m", "preforch", "train-orchestrator", "--ensemble", tiny_ensemble_dir, "--encoder", tiny_encoder_dir,
           "--train_data", str(data), "--eval_data", str(data), "--output_dir", str(tmp_path / "orch"),
           "--train_encoder", "true", "--epochs", "2", "--batch_size", "8"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    model = PreferenceOrchestrator.from_pretrained(tmp_path / "orch", device="cpu")
    assert model.objectives == ("helpful", "harmless", "conciseness")
