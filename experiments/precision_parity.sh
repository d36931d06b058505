#!/usr/bin/env bash
# Does training in bf16 (the fast path) give the same base as fp32? (docs/lab/precision_parity.md)
#   experiments/precision_parity.sh RUNS
# The bundled base's recipe (configs/base_demo.yaml) cut to 400 steps (warm-up cut in proportion,
# 500 -> 20), trained once in fp32 and once in bf16 with the same seed (same batches and noise), one
# after the other, one thread each. Then the loss curves and the fp32 validation loss of both EMA
# models (paired), and both models sampled in fp32 on the committed GenEval set (paired intervals).
# Writes experiments/results/precision_parity_loss.json and precision_parity_geneval.json.
# About 25 CPU minutes; on the shared 2-core machine it took much longer (docs/lab/precision_parity.md).
source "$(dirname "$0")/_common.sh"
R=$RUNS/precision_parity
SHORT="steps=400 optim.warmup_steps=20 log_every=10 validate_every=50 ckpt_every=100 sample_every=100000 threads=1"
for p in fp32 bf16; do  # a finished run (its model exported) is kept
  [ -d $R/$p/final ] || python -m thinkpix.cli train configs/base_demo.yaml out_dir=$R/$p precision=$p $SHORT
done
python -m benchmarks.precision_parity --arm fp32=$R/fp32 --arm bf16=$R/bf16 \
    --out experiments/results/precision_parity_loss.json
python -m benchmarks.compare_adapters --model $R/fp32/final --arm fp32 --arm bf16 --arm-model bf16=$R/bf16/final \
    --images-per-prompt 1 --seed 0 --work $R/compare --out experiments/results/precision_parity_geneval.json
