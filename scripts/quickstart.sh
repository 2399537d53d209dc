#!/usr/bin/env bash
# The README's main job: install (once), then run the PRO quickstart on the bundled defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/preforch quickstart "$@"
