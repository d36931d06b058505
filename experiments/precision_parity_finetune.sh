#!/usr/bin/env bash
# Does an RSR fine-tune in bf16 give the same adapter as in fp32? (docs/lab/precision_parity.md, the RSR fine-tune)
#   experiments/precision_parity_finetune.sh RUNS
# The paper-protocol RSR fine-tune of the bundled base (configs/finetune_rsr.yaml: layers 2,3, 2 experts,
# 2 latent steps, rank 8, 600 steps, seed 1), two processes of one thread each as every fine-tune of the
# record, trained three times: fp32 seed 1, bf16 seed 1 (same batches and noise as fp32 seed 1), and fp32
# seed 2, the extra reading: how far two fp32 seeds differ, to read the precision difference against.
# Then every adapter and the base sampled in fp32 on the committed GenEval set (image k of prompt i from
# noise seed i * n + k in every arm), scored by the exact evaluator, paired differences to rsr_fp32 and
# to the base (prompts resampled within tasks). Writes experiments/results/precision_parity_finetune.json.
# Finished fine-tunes (their adapter exported) are kept; interrupted ones resume.
# Knobs (environment): STEPS (600), IMAGES per prompt (2), PROMPTS (data/eval/geneval.jsonl), OUT.
source "$(dirname "$0")/_common.sh"
R=$RUNS/precision_parity_finetune
STEPS=${STEPS:-600}
IMAGES=${IMAGES:-2}
PROMPTS=${PROMPTS:-data/eval/geneval.jsonl}
OUT=${OUT:-experiments/results/precision_parity_finetune.json}
ft() {  # NAME PRECISION SEED
  [ -d "$R/$1/adapter" ] || $DDP finetune --output_dir "$R/$1" --precision "$2" seed="$3" steps="$STEPS"
}
ft fp32 fp32 1
ft bf16 bf16 1
ft fp32_seed2 fp32 2
python -m benchmarks.compare_adapters --model shapes-base --arm base --arm rsr_fp32="$R/fp32/adapter:2" \
    --arm rsr_bf16="$R/bf16/adapter:2" --arm rsr_fp32_seed2="$R/fp32_seed2/adapter:2" \
    --versus rsr_fp32 --versus base --prompts "$PROMPTS" --images-per-prompt "$IMAGES" --seed 0 \
    --work "$R/compare" --out "$OUT"
