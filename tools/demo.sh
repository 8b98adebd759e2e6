#!/usr/bin/env bash
# `make demo`: the main job end to end in simulation, on the embedded defaults:
#   1. collect episodes through the ROS graph (simulated WSG over TCP, DSA over a pseudo-terminal, arm),
#   2. train PLAS offline on the shipped dataset plus those episodes (evaluated in the in-process simulator),
#   3. deploy the trained policy through the same graph and record its episodes,
#   4. print the evaluation returns of the deployed policy next to the data it learned from.
# Output goes to $PLAS_DEMO_OUT (default out/demo); every run starts afresh there. Each step runs its launch file
# through `rosrun plas_ros run`, which refuses a wrong argument, takes relative paths from here and exits with the
# job's status; seeds are the jobs' defaults (config/run.yaml seeds: collection and deployment differ).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${PLAS_DEMO_OUT:-out/demo}"
EPISODES="${PLAS_DEMO_EPISODES:-3}"
rm -rf "$OUT" && mkdir -p "$OUT"
export ROS_HOME="$(cd "$OUT" && pwd)/ros_home"  # (OUT may be relative or absolute)
step() { printf '\n== %s\n' "$*"; }

step "1/4 collect $EPISODES episodes with the behaviour schedule, through ROS, simulated devices"
rosrun plas_ros run collect episodes:="$EPISODES" output:="$OUT/collected.h5" \
    > "$OUT/collect.log" 2>&1 || { tail -n 40 "$OUT/collect.log"; exit 1; }
python3 -m plas_ros.data info "$OUT/collected.h5"

step "2/4 train PLAS offline (appendix-A robot preset), evaluating in the in-process simulator"
rosrun plas_ros run train_offline dataset:="data/cloth_sim_small.h5 $OUT/collected.h5" \
    algo:=plas out:="$OUT/plas" eval_every:=600 > "$OUT/train.log" 2>&1 \
    || { tail -n 40 "$OUT/train.log"; exit 1; }
grep -E '^(training|done)' "$OUT/train.log"

step "3/4 deploy the policy through ROS for $EPISODES episodes, recording them"
rosrun plas_ros run deploy checkpoint:="$OUT/plas" episodes:="$EPISODES" \
    record:="$OUT/deployed.h5" > "$OUT/deploy.log" 2>&1 || { tail -n 40 "$OUT/deploy.log"; exit 1; }

step "4/4 evaluation returns of the deployed policy (and of the data it learned from)"
python3 -m plas_ros.data info "$OUT/deployed.h5"
python3 -m plas_ros.data info data/cloth_sim_small.h5 | grep -E 'return|success'
echo
echo "TensorBoard: tensorboard --logdir $OUT/plas/tb    logs: $OUT/*.log"
