#!/usr/bin/env bash
# Does RSR improve the class-conditional DiT? (docs/lab/class_track.md)
#   experiments/class_track.sh RUNS
# The re-measurement with the fixed evaluator: the bundled shapes-dit, the LoRA, paper-default RSR and
# rsr_best adapters, 35 images per class (840 per arm), each judged by both evaluators. About 75
# minutes on two cores. The full seven-arm table: benchmarks/run_class_track.sh (about 4 h).
source "$(dirname "$0")/_common.sh"
PER_CLASS=35 BASE=shapes-dit LANE_A="rsr_best" LANE_B="rsr lora" bash benchmarks/run_class_track.sh $RUNS/class_track
cp $RUNS/class_track/class_table.json benchmarks/results/class_table.json
