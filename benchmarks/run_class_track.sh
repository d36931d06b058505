#!/bin/bash
# The class-conditional track of docs/class_track.md, end to end, on a 2-core CPU machine (~1 h 40 min):
# DiT base (bundled as shapes-dit, fp16), feature network, RSR and LoRA adapters, 5,040 images per arm
# (two processes side by side, one thread each), then the table and its figure.
#   bash benchmarks/run_class_track.sh [RUNS_DIR]      (default runs/; every step resumes or reuses)
set -euo pipefail
R=${1:-runs}
torchrun --standalone --nproc_per_node 2 -m thinkpix.cli train configs/dit_demo.yaml out_dir=$R/dit_demo
python - "$R" <<'PY'
import sys, torch
from thinkpix.models.c2i import ClassToImage
ClassToImage.load(f"{sys.argv[1]}/dit_demo/final").save("src/thinkpix/bundled/shapes-dit", dtype=torch.float16,
    extra_meta={"training": {"config": "configs/dit_demo.yaml", "seed": 0, "steps": 6000, "batch_size": 64,
    "images_seen": 384000, "weights": "EMA (decay 0.999), stored fp16",
    "command": "torchrun --standalone --nproc_per_node 2 -m thinkpix.cli train configs/dit_demo.yaml"}})
PY
T="python -m benchmarks.class_table --model shapes-dit --per-class 210 --work $R/class_table"
( thinkpix train configs/features_demo.yaml --export $R/features_demo/final out_dir=$R/features_demo
  $T --features - --threads 1 --sample-only --arm base ) &
( thinkpix finetune --config configs/finetune_dit.yaml --out $R/ft_dit_rsr
  thinkpix finetune --config configs/finetune_dit.yaml --method lora --out $R/ft_dit_lora ) &
wait
$T --features - --threads 1 --sample-only --arm rsr=$R/ft_dit_rsr/adapter &
$T --features - --threads 1 --sample-only --arm lora=$R/ft_dit_lora/adapter &
wait
$T --features $R/features_demo/final --arm base --arm lora=$R/ft_dit_lora/adapter --arm rsr=$R/ft_dit_rsr/adapter \
   --out benchmarks/results/class_table.json
python -m benchmarks.make_figures class-arms --work $R/class_table --arm base --arm lora --arm rsr
