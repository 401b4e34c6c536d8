# Sourced by scripts/test.sh and scripts/quickstart.sh: create or reuse .venv and install snappix.
# Installs only when requirements*.txt, pyproject.toml or this file changed (stamp in .venv).
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "snappix needs Python >= 3.10 (found $("$PY" --version 2>&1))" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "[snappix] creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
stamp=.venv/.snappix-installed
want=$(cat requirements.txt pyproject.toml scripts/_venv.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[snappix] installing requirements into .venv (first run downloads torch: a few minutes)"
  python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
  # torchvision's PyPI wheel is built against the PyPI torch wheel, which runs on CPU and GPU.
  # Some machines keep a local '+cpu' torch build in pip's find-links that torchvision cannot
  # load against; '===' asks for the exact PyPI release and excludes such local builds.
  torch_pin=$(sed -n 's/^torch==\([0-9][0-9.]*\).*/\1/p' requirements.txt)
  python -m pip install --quiet "torch===${torch_pin}" 2>&1 | grep -v "is ignored" || true
  python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "is ignored" || true
  python -m pip install --quiet --no-deps -e . 2>&1 | grep -v -e "is ignored" -e BuildBackendWarning || true
  python -c "import torch, torchvision, timm, decord, av, cv2" || {
    echo "[snappix] installation incomplete: a core package does not import" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
if [ "${SNAPPIX_EXTRA:-0}" = 1 ]; then
  python -m pip install --quiet -r requirements-extra.txt 2>&1 | grep -v "is ignored" || true
fi
