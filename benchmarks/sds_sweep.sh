#!/usr/bin/env bash
# The measured comparison with score distillation in the README (issue 18), on this repository's held-out shards
# (shards/v1, made by the README's data build): video-to-4D on four held-out clips (the two real assets and two
# procedural ones) with SDS scored at 100, 300, 1,000 and 2,000 iterations of one run per clip; then image- and
# text-to-4D on the real stag, and DreamGaussian4D's recipe on video-to-4D, at 100 and 300 iterations.
# Two single-thread processes run at a time, one per core; on a shared machine run it under its lock:
#
#   flock /work/cpu.lock bash benchmarks/sds_sweep.sh runs/sweep
#   python benchmark.py report runs/sweep/*/results.json --plot benchmarks/results/quality_vs_seconds.png
set -euo pipefail
OUT=${1:-runs/sweep}
COMMON=(--model pretrained/zoetrope4d-cpu-small --train-manifest shards/v1/manifest.json --sds-gaussians 1000 --quiet
        --save-gaussians)
export OMP_NUM_THREADS=1

both() {  # two compare runs side by side; fails if either fails
    python benchmark.py compare "${COMMON[@]}" $1 & first=$!
    python benchmark.py compare "${COMMON[@]}" $2 & second=$!
    wait $first && wait $second
}

both "--data shards/v1/val/{QuaterniusStag,SimpleSkin}.tar --max-clips 2 --tasks video --sds-iters 100 300 1000 2000 --out $OUT/video-real" \
     "--data shards/v1/val/{proc-ball-00032,proc-biped-00010}.tar --max-clips 2 --tasks video --sds-iters 100 300 1000 2000 --out $OUT/video-procedural"
both "--data shards/v1/val/QuaterniusStag.tar --max-clips 1 --tasks image --sds-iters 100 300 --out $OUT/image" \
     "--data shards/v1/val/QuaterniusStag.tar --max-clips 1 --tasks text --sds-iters 100 300 --out $OUT/text"
both "--data shards/v1/val/QuaterniusStag.tar --max-clips 1 --tasks video --sds-recipe dg4d --sds-iters 100 300 --out $OUT/dg4d-real" \
     "--data shards/v1/val/proc-ball-00032.tar --max-clips 1 --tasks video --sds-recipe dg4d --sds-iters 100 300 --out $OUT/dg4d-procedural"
