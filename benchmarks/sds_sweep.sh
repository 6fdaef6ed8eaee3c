#!/usr/bin/env bash
# The measured comparison with score distillation in the README (issue 18), on the held-out shards of shards/v1
# (made by the README's data build), in three parts of at most about 75 minutes each on 2 cores:
#   video-a  video-to-4D on the real stag and a procedural ball: the feed-forward model, and one SDS run ("offsets"
#            recipe) of 2,000 iterations per clip scored at 100, 300, 1,000 and 2,000;
#   video-b  the same on the second real asset (SimpleSkin) and a procedural biped;
#   other    image- and text-to-4D on the stag at 100 and 300 iterations, beside DreamGaussian4D's recipe on
#            video-to-4D (the stag and the ball) at 100 and 300;
#   floor    the four video clips at 1 SDS iteration (SDS's starting point), which also records the empty render of
#            the stag's and the ball's held-out views (video-a's rows were rescored from saved .ply files, which has none);
#   real-v2  video-to-4D on the nine real held-out assets of shards/v2 (one clip each: animals, a mech, a tank, a
#            skull, an astronaut, a skinned tube) with the model as shipped then (refined against the video, as infer.py
#            does) and SDS at 100 and 300 iterations; then image-to-4D on the same clips (the first frame of the
#            video given) with SDS at 100 iterations.
# One compare run per clip, each into its own folder (a stopped part keeps the clips it finished), two single-thread
# runs at a time (one per core). On a shared machine run each part under its lock, then make the tables and plot:
#
#   flock /work/cpu.lock bash benchmarks/sds_sweep.sh runs/sweep video-a     # (or video-b, other, floor, real-v2; all: every shards/v1 part)
#   python benchmark.py report runs/sweep/*/results.json --plot quality_vs_seconds.png
#
# The committed files are each run's results.json/.csv copied to benchmarks/results/<date>-sweep/<run>.json/.csv
# (the floor runs to <date>-floor/); `python benchmark.py report --readme README.md` then regenerates the README's table.
set -euo pipefail
OUT=${1:-runs/sweep}
PART=${2:-all}
case $PART in video-a|video-b|floor|other|real-v2|all) ;; *) echo "unknown part $PART: video-a, video-b, floor, other, real-v2 or all" >&2; exit 2;; esac
DATA=shards/v1
[[ $PART == real-v2 ]] && DATA=shards/v2
export OMP_NUM_THREADS=1 OUT DATA

compare() {  # compare NAME SHARD OPTIONS...: one held-out clip of $DATA/val/SHARD.tar into OUT/NAME
    local name=$1 shard=$2
    shift 2
    python benchmark.py compare --model pretrained/zoetrope4d-cpu-small --train-manifest "$DATA/manifest.json" \
        --data "$DATA/val/$shard.tar" --max-clips 1 --sds-gaussians 1000 --quiet --save-gaussians --out "$OUT/$name" "$@"
}
export -f compare

both() {  # two lists of runs side by side, each list in turn (runs joined by &&); fails if either fails
    bash -c "$1" & first=$!
    bash -c "$2" & second=$!
    wait $first && wait $second
}

VIDEO="--tasks video --sds-iters 100 300 1000 2000"
DG4D="--tasks video --sds-recipe dg4d --sds-iters 100 300"
if [[ $PART == video-a || $PART == all ]]; then
    both "compare video-stag QuaterniusStag $VIDEO" "compare video-ball proc-ball-00032 $VIDEO"
fi
if [[ $PART == video-b || $PART == all ]]; then
    both "compare video-simpleskin SimpleSkin $VIDEO" "compare video-biped proc-biped-00010 $VIDEO"
fi
if [[ $PART == floor || $PART == all ]]; then
    for clip in QuaterniusStag:stag proc-ball-00032:ball SimpleSkin:simpleskin proc-biped-00010:biped; do
        compare "floor-${clip#*:}" "${clip%:*}" --tasks video --sds-iters 1
    done
fi
if [[ $PART == other || $PART == all ]]; then
    both "compare image-stag QuaterniusStag --tasks image --sds-iters 100 300 && compare text-stag QuaterniusStag --tasks text --sds-iters 100 300" \
         "compare dg4d-stag QuaterniusStag $DG4D && compare dg4d-ball proc-ball-00032 $DG4D"
fi
queue() {  # queue PREFIX "OPTIONS" NAME:SHARD...: one compare run per clip into OUT/PREFIX-NAME, one after another
    local prefix=$1 options=$2 line=""
    shift 2
    for clip in "$@"; do line+="compare $prefix-${clip%%:*} ${clip#*:} $options && "; done
    echo "${line% && }"
}

if [[ $PART == real-v2 ]]; then  # the nine real held-out assets, one queue per core
    A=(stag:QuaterniusStag stegosaurus:dinosaurs-Stegosaurus stan:mech-Stan skull:platformer_game-Skull simpleskin:SimpleSkin)
    B=(piranha:cute_fish-Piranha frog:easy_enemies-Frog tank3:tank-Tank3 astronaut:ultimate_space-Astronaut_RaeTheRedPanda)
    for run in "real|--tasks video --sds-iters 100 300" "image|--tasks image --sds-iters 100"; do
        both "$(queue "${run%%|*}" "${run#*|}" "${A[@]}")" "$(queue "${run%%|*}" "${run#*|}" "${B[@]}")"
    done
fi
