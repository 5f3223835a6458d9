#!/bin/bash
# A sharded evaluation on Slurm: the substitute once, K array tasks, then the merge, chained by dependencies.
#   bash deploy/slurm/evaluate.sh            (from a checkout where `tfdefense` is installed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sub=$(sbatch --parsable "$here/substitute.sbatch")
shards=$(sbatch --parsable --dependency=afterok:"$sub" "$here/evaluate.sbatch")
sbatch --dependency=afterok:"$shards" "$here/merge.sbatch"
