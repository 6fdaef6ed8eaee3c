#!/usr/bin/env bash
# Equal-budget ablation of the diffusion model's design options (issue 14): one exported model (INIT; default the
# shipped one) continued for STEPS steps on the same shards (DATA; default shards/v1/train), seed and schedule, once per
# arm: plain, and with each option. All arms run at once on one thread each, so they share the CPU equally. Each arm's
# model lands in runs/abl-ARM/model; score it on the validation split of the same build with
#   benchmark.py eval --model DIR --data shards/v1/val --clips-per-asset 1
# where DIR holds diffusion/ (that model) and recon/ (the shipped head).
#   ARMS="base camera" STEPS=100 BATCH=2 benchmarks/ablate_diffusion.sh     # the first ablation in the model card
#   ARMS="base camera" STEPS=160 BATCH=4 DATA=shards/v2/train INIT=checkpoints/diffusion-v4-in-progress/diffusion \
#       benchmarks/ablate_diffusion.sh                                    # the second, from v4 on data v2
#   ARMS="base canonical" STEPS=400 BATCH=4 DATA=shards/v2/train VAL=shards/v2/val \
#       INIT=checkpoints/diffusion-v4-in-progress/diffusion benchmarks/ablate_diffusion.sh   # rings turned to view 0 at azimuth 0
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-100}
common=(--preset cpu-small --data "${DATA:-shards/v1/train}" --init-from "${INIT:-pretrained/zoetrope4d-cpu-small/diffusion}"
        --prediction sample --steps "$STEPS" --batch-size "${BATCH:-2}" --lr 2e-4 --warmup 20 --save-every "$STEPS"
        --sample-every 100000 --log-every 10 --num-workers 0 --seed 0)
val=(--val-every 100000)  # VAL: held-out shards, scored once at the end (the same fixed noise for every arm)
[[ -n "${VAL:-}" ]] && val=(--val-data "$VAL" --val-every "$STEPS")
declare -A flags=([base]="" [camera]="--camera-conditioning" [motion]="--motion-conditioning" [refiner]="--output-refiner"
                  [canonical]="--canonical-ring")
mkdir -p runs
for arm in ${ARMS:-base camera motion refiner}; do
  OMP_NUM_THREADS=1 python train.py diffusion "${common[@]}" "${val[@]}" ${flags[$arm]} --out "runs/abl-$arm" > "runs/abl-$arm.log" 2>&1 &
done
wait
