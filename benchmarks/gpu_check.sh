#!/usr/bin/env bash
# The GPU check (docs/GPU.md): on one H100/H200 with torch and accelerate but no package index, in under 8 minutes,
# the CUDA-only tests (gsplat against the torch rasteriser, with the 65,536-Gaussian render time; xformers' attention),
# one bf16 training step of each base stage with samples/s and MFU, and the README's main command on the GPU,
# written up as one Markdown report.
#
#   bash benchmarks/gpu_wheels.sh                        # here first: wheels and data into .gpu/carry, and the calls
#   bash benchmarks/gpu_check.sh [--out REPORT.md]       # there, once per carried part, back to back
#   bash benchmarks/gpu_check.sh --dry-run               # here, no CUDA: what it carries exists, every command parses
#   bash benchmarks/gpu_check.sh --check-carry           # here: only the carried parts (after gpu_wheels.sh)
#
# Each call carries one part of .gpu/carry and its MANIFEST; the parts wait in /tmp/zoetrope-gpu while the machine
# stays warm. The call that brings part-00 installs the small wheels and starts gsplat's CUDA build in the
# background; the call that completes the set runs the checks and writes REPORT.md (default $OUT/gpu_check.md,
# else runs/gpu_check.md), the full log beside it, and the README command's meta.json and orbit.mp4.
# Options: --carry-dir DIR (default .gpu/carry), --budget SECONDS (default 470, the checks' share of the 8 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
CARRY=.gpu/carry
REPORT=${OUT:-runs}/gpu_check.md
BUDGET=470
DRY=0
while (($#)); do
    case $1 in
        --dry-run) DRY=1 ;;
        --check-carry) DRY=2 ;;
        --carry-dir) CARRY=${2:?--carry-dir needs a folder}; shift ;;
        --out) REPORT=${2:?--out needs a file name}; shift ;;
        --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
        -h | --help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

LIMIT=$((64 * 1024 * 1024))  # the device tool's limit on what one call sends
STASH=/tmp/zoetrope-gpu      # survives between calls while the machine stays warm
SITE=$STASH/site
SHARDS=$STASH/unpacked/shards/train
GPU_TESTS=(tests/test_render.py tests/test_model.py)
TRAIN_DIFFUSION=(--data "$SHARDS" --stages diffusion --presets base --steps 2 --batch-size 4 --grad-checkpointing --num-workers 4)
TRAIN_RECON=(--data "$SHARDS" --stages recon --presets base --steps 2 --batch-size 1 --num-workers 4)
USES=(README.md infer.py train.py benchmarks/bench_train.py benchmarks/bench_model.py benchmarks/gpu_commands.py
      benchmarks/gpu_wheels.sh "${GPU_TESTS[@]}" pretrained/zoetrope4d-cpu-small/diffusion/pipeline.json
      pretrained/zoetrope4d-cpu-small/recon/config.json)

say() { echo "gpu_check: $*"; }

tree_bytes() {  # what the device tool sends besides the carried paths: tracked and untracked, not ignored, files
    git ls-files -z -co --exclude-standard | xargs -0 stat -c %s | awk '{s += $1} END {print s + 0}'
}

check_carry() {  # every part the MANIFEST lists is here, unchanged, and fits one call beside the working tree
    [[ -f $CARRY/MANIFEST ]] || { say "problem: $CARRY/MANIFEST not found: run bash benchmarks/gpu_wheels.sh first"; return 1; }
    (cd "$CARRY" && sha256sum --quiet --strict -c MANIFEST) || { say "problem: parts in $CARRY are missing or changed"; return 1; }
    local largest tree
    largest=$(cd "$CARRY" && awk '{print $2}' MANIFEST | xargs stat -c %s | sort -n | tail -1)
    tree=$(tree_bytes)
    if ((tree + largest + $(stat -c %s "$CARRY/MANIFEST") > LIMIT)); then
        say "problem: the working tree ($tree bytes) and the largest part ($largest) exceed a call's $LIMIT bytes: run gpu_wheels.sh again"
        return 1
    fi
    say "ok: $(wc -l < "$CARRY/MANIFEST") parts in $CARRY, each call $(((tree + largest) / 1048576)) MiB of 64"
}

dry_run() {
    local problems=0 file
    for file in "${USES[@]}"; do [[ -f $file ]] || { say "problem: $file is missing"; problems=$((problems + 1)); }; done
    check_carry || problems=$((problems + 1))
    bash -n "$0" && bash -n benchmarks/gpu_wheels.sh || problems=$((problems + 1))
    "$PY" -m py_compile infer.py train.py benchmarks/bench_train.py benchmarks/bench_model.py benchmarks/gpu_commands.py \
        || problems=$((problems + 1))
    "$PY" -m benchmarks.gpu_commands parse --train "${TRAIN_DIFFUSION[*]}" --train "${TRAIN_RECON[*]}" --tests "${GPU_TESTS[@]}" \
        || problems=$((problems + 1))
    ((problems == 0)) && { say "dry run: ok"; return 0; }
    say "dry run: $problems problem(s)"
    return 1
}

install_wheels() {  # install_wheels WHEEL...: into $SITE, no index, no dependencies (the image has the rest)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$@"
}

start_gsplat_build() {  # gsplat compiles its CUDA kernels on first use; start that now, in its own session, to outlive the call
    local arch
    arch=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())") || return 1
    say "building gsplat's CUDA kernels for sm_${arch/./} in the background ($STASH/gsplat-build.log)"
    TORCH_CUDA_ARCH_LIST=$arch MAX_JOBS=$(nproc) setsid bash -c "start=\$SECONDS; \"$PY\" -c 'from gsplat.cuda._backend import _C; assert _C is not None, \"no CUDA toolkit\"' \
        > $STASH/gsplat-build.log 2>&1; echo \"\$? \$((SECONDS - start))\" > $STASH/gsplat-build.rc" < /dev/null > /dev/null 2>&1 &
}

receive() {  # keep the parts this call carried; unpack and install what is complete; 0 once every part is here
    [[ -f $CARRY/MANIFEST ]] || { say "error: carry $CARRY/MANIFEST with every part (see benchmarks/gpu_wheels.sh)"; exit 1; }
    cmp -s "$CARRY/MANIFEST" "$STASH/parts/MANIFEST" || rm -rf "$STASH"  # parts of another preparation: start afresh
    mkdir -p "$STASH/parts" "$STASH/unpacked" "$SITE"
    cp "$CARRY/MANIFEST" "$CARRY"/part-* "$STASH/parts/" 2>/dev/null
    (cd "$STASH/parts" && sha256sum --quiet --ignore-missing -c MANIFEST 2>/dev/null) || { say "error: a carried part is corrupt"; exit 1; }
    if [[ -f $STASH/parts/part-00.tar && ! -f $STASH/unpacked/.small ]]; then
        tar xf "$STASH/parts/part-00.tar" -C "$STASH/unpacked" && install_wheels "$STASH"/unpacked/wheels/*.whl \
            && touch "$STASH/unpacked/.small" && start_gsplat_build
    fi
    local missing
    missing=$(cd "$STASH/parts" && awk '{print $2}' MANIFEST | while read -r p; do [[ -f $p ]] || echo "$p"; done)
    if [[ -n $missing ]]; then
        say "have $(cd "$STASH/parts" && echo part-*); still to carry: $(echo $missing)"
        say "next: run(command='bash benchmarks/gpu_check.sh', carry=['$CARRY/$(echo $missing | cut -d' ' -f1)', '$CARRY/MANIFEST'])"
        return 1
    fi
    if [[ ! -f $STASH/unpacked/.large ]]; then
        local wheels
        wheels=$(cat "$STASH"/parts/part-[0-9][0-9] | tar xvf - -C "$STASH/unpacked" | sed "s|^|$STASH/unpacked/|")
        install_wheels $wheels && touch "$STASH/unpacked/.large"
    fi
}

# ----------------------------------------------------------------------------- the checks, each within the budget

step() {  # step TITLE CAP COMMAND...: run it for at most CAP seconds and what is left of the budget; output in $STEP_OUT
    local title=$1 cap=$2 left start rc
    shift 2
    left=$((DEADLINE - SECONDS))
    ((left < cap)) && cap=$left
    if ((cap < 20)); then
        echo "not run: the 8-minute budget is spent" > "$STEP_OUT"
        SUMMARY+=("| $title | not run (out of time) | 0 |")
        return 1
    fi
    echo "== $title: $*" >> "$LOG"
    start=$SECONDS
    STEP_CAP=$cap
    if declare -F "$1" > /dev/null; then "$@"; else timeout "$cap" "$@"; fi > "$STEP_OUT" 2>&1  # functions time themselves
    rc=$?
    cat "$STEP_OUT" >> "$LOG"
    case $rc in 0) status=passed ;; 124) status="timed out after $cap s" ;; *) status="failed (exit $rc)" ;; esac
    SUMMARY+=("| $title | $status | $((SECONDS - start)) |")
    return $rc
}

section() {  # section TITLE PATTERN RC: the step's lines matching PATTERN, or its last lines when it did not pass
    { echo; echo "## $1"; echo; echo '```'
      if (($3)); then tail -n 20 "$STEP_OUT"; else grep -E "$2" "$STEP_OUT"; fi | cut -c1-300
      echo '```'; } >> "$BODY"
}

wait_for_gsplat() {  # for the build the first call started, leaving the checks after it at least 4 minutes
    local until=$((SECONDS + STEP_CAP < DEADLINE - 240 ? SECONDS + STEP_CAP : DEADLINE - 240))
    while [[ ! -f $STASH/gsplat-build.rc ]] && ((SECONDS < until)); do sleep 5; done
    [[ -f $STASH/gsplat-build.rc ]] || { echo "gsplat's CUDA build still running; see $STASH/gsplat-build.log"; return 1; }
    read -r rc seconds < "$STASH/gsplat-build.rc"
    echo "gsplat CUDA build: exit $rc after $seconds s"
    tail -n 5 "$STASH/gsplat-build.log"
    return "$rc"
}

machine() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    timeout "$STEP_CAP" "$PY" - <<'EOF'
import importlib.metadata as m, platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), {torch.cuda.get_device_name()}")
print(", ".join(f"{n} {m.version(n)}" for n in ("accelerate", "transformers", "diffusers", "gsplat", "xformers", "webdataset")))
EOF
}

readme_run() {  # the README's main command with this machine's python, its outputs kept for the report
    local command
    mapfile -t command < <("$PY" -m benchmarks.gpu_commands readme)
    timeout "$STEP_CAP" "$PY" "${command[@]:1}" && cp outputs/walker/meta.json outputs/walker/orbit.mp4 "$(dirname "$REPORT")/"
}

run_checks() {
    DEADLINE=$((SECONDS + BUDGET))
    SUMMARY=() STEP_OUT=$STASH/step.out BODY=$STASH/body.md LOG=${REPORT%.md}.log
    mkdir -p "$(dirname "$REPORT")" && : > "$LOG" && : > "$BODY"
    step "machine" 60 machine; section "Machine" "." $?
    step "gsplat CUDA build" 300 wait_for_gsplat; section "gsplat's CUDA build (JIT, started by the first call)" "." $?
    # ZOETROPE_CI=1: a skipped test fails (tests/conftest.py), so a missing xformers cannot pass as "passed"
    step "CUDA-only tests" 150 env ZOETROPE_CI=1 "$PY" -m pytest -q -s -rA -p no:cacheprovider -m gpu "${GPU_TESTS[@]}"
    section "CUDA-only tests: gsplat against the torch rasteriser, the 65,536-Gaussian render, xformers" \
        "torch path vs gsplat|65,536|PASSED|FAILED|SKIPPED|passed|failed" $?
    step "bf16 step, base diffusion" 150 "$PY" -m benchmarks.bench_train "${TRAIN_DIFFUSION[@]}"
    section "One bf16 training step, base diffusion (batch 4, gradient checkpointing)" "^device|^stage|^diffusion|Error" $?
    step "bf16 step, base recon" 120 "$PY" -m benchmarks.bench_train "${TRAIN_RECON[@]}"
    section "One bf16 training step, base recon (batch 1)" "^device|^stage|^recon|Error" $?
    step "README main command" 150 readme_run
    section "The README's main command on the GPU" "^wrote|Error|error" $?
    { echo "# zoetrope4d GPU check"; echo; echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nvidia-smi --query-gpu=name --format=csv,noheader)"
      echo; echo "| check | result | seconds |"; echo "|---|---|---|"; printf '%s\n' "${SUMMARY[@]}"; cat "$BODY"; } > "$REPORT"
    say "wrote $REPORT and $LOG"
}

case $DRY in
    1) dry_run; exit $? ;;
    2) check_carry; exit $? ;;
esac
# The carried packages, and gsplat's kernels where its build (started by an earlier call) puts them.
export PYTHONPATH=$SITE:$PWD TORCH_EXTENSIONS_DIR=$STASH/torch_extensions PYTHONUNBUFFERED=1
receive || exit 0  # parts still to come: this call's work is done
run_checks
