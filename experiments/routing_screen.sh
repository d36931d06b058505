#!/usr/bin/env bash
# Can RSR's routing learn, and is its recursion used? (docs/lab/routing_levers.md)
#   experiments/routing_screen.sh RUNS
# The screen: one lever at a time on the fixed 1,000-sample composition pool, 300 steps x 8, seed 1,
# then the instruments at each run's last validation record. 1-5 minutes per run on two cores.
# No results file: the table is printed from the runs' metrics.jsonl.
source "$(dirname "$0")/_common.sh"
R=$RUNS/routing_screen
COMMON="steps=300 batch_size=8 data_pool=1000 data_mix=two_object=1,counting=1,position=1,color_attr=1
        validate_every=100 log_every=25 ckpt_every=100 threads=2 optim.warmup_steps=50"
L=layers=2,3,experts=2,latent_steps=2,rank=8
thinkpix finetune --output_dir $R/s0_default    --rsr $L $COMMON
thinkpix finetune --output_dir $R/s1_g05_tau1   --rsr $L,gate_init_std=0.5,tau=1 $COMMON
thinkpix finetune --output_dir $R/s2_anneal     --rsr $L,gate_init_std=0.5,tau=5,temperature_end=1 finetune.gate_lr_mult=10 $COMMON
thinkpix finetune --output_dir $R/s3_base_every --rsr $L,gate_init_std=0.5,tau=1,base_every_step=true $COMMON
thinkpix finetune --output_dir $R/s4_explr      --rsr $L,gate_init_std=0.5,tau=1 finetune.expert_lr_mult=3 $COMMON
thinkpix finetune --output_dir $R/s5_m1         --rsr layers=2,3,experts=1,latent_steps=2,rank=8 $COMMON
thinkpix finetune --output_dir $R/s6_lb         --rsr $L,gate_init_std=0.5,tau=1,load_balance_weight=0.01 $COMMON
thinkpix finetune --output_dir $R/s8_orth       --rsr $L,gate_init_std=0.5,tau=1,expert_init=orthogonal $COMMON
thinkpix finetune --output_dir $R/s7_lora --method lora --rsr $L $COMMON
# The gradient measurement of "why the paper's set-up cannot route" (20 steps x 16).
thinkpix finetune --output_dir $R/timing16 --rsr $L steps=20 batch_size=16 data_pool=1000 \
    data_mix=two_object=1,counting=1,position=1,color_attr=1 validate_every=20 log_every=10
python -m benchmarks.inspect_adapter --run $R/s0_default $R/s1_g05_tau1 $R/s2_anneal $R/s3_base_every \
    $R/s4_explr $R/s5_m1 $R/s6_lb $R/s8_orth $R/s7_lora
