# Sourced by the experiment scripts: RUNS (absolute), the repository as the working directory, and
# THINKPIX_RUNS so the results files store paths relative to RUNS (thinkpix.files.portable).
set -euo pipefail
if [ -z "${1:-}" ]; then echo "usage: $0 RUNS   (a folder for the runs, outside the repository)" >&2; exit 2; fi
mkdir -p "$1"
RUNS=$(cd "$1" && pwd)
export THINKPIX_RUNS="$RUNS"
cd "$(dirname "$0")/.."
# The multi-process runs of the record: two processes, one thread each, on the 2-core machine.
DDP="env OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m thinkpix.cli"
