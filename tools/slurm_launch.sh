#!/usr/bin/env bash
# srun one of our tools as a Slurm job step, one task per GPU:
#   slurm_launch.sh PARTITION JOB_NAME SCRIPT [args]
# Used by slurm_train.sh and slurm_test.sh; the tasks take their rank and
# world size from Slurm (--launcher slurm, mmengine's init_dist). Set in
# the environment: GPUS (tasks in all, default 8), GPUS_PER_NODE (default
# the smaller of GPUS and 8), CPUS_PER_TASK (default 5), SRUN_ARGS (more
# srun options, split on spaces) and PYTHON (default python).
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
read -ra EXTRA <<<"${SRUN_ARGS:-}"
exec srun -p "$PARTITION" --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 "${EXTRA[@]}" \
    "${PYTHON:-python}" -u "$SCRIPT" "${@:4}" --launcher slurm
