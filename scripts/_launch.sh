# Sourced by the launchers in scripts/*/: torchrun on $GPUS processes (1 node; set NNODES/NODE_RANK/
# MASTER_ADDR/MASTER_PORT for more), every path quoted so folders with spaces work.
# Usage inside a launcher: launch run_pretraining.py --config CONFIG [flags...] "$@"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPUS=${GPUS:-1}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

require() {  # require VAR "what it is"
  if [ -z "${!1:-}" ]; then echo "set $1: $2" >&2; exit 2; fi
}

launch() {
  local script="$1"; shift
  set -x
  "$PYTHON" -m torch.distributed.run --nproc_per_node="$GPUS" --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" "$REPO/$script" "$@"
}
