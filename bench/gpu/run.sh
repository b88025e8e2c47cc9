#!/usr/bin/env bash
# Run on the H200 device machine from the repository root, with carry [".gl", "bench/gpu/carry"]
# (filled by bench/gpu/prepare.sh here): installs the carried Vulkan loader and Deno, prints the
# adapter, runs the kernel benches and the PyTorch comparison (every config, PyTorch on CUDA) and the SML
# overhead (ours and PyTorch's), and writes each log under $OUT. Every stage has its own timeout so the
# whole fits an 8-minute run (about 7.5 minutes at worst); a stage that times out leaves its partial log.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-bench-out}
mkdir -p "$OUT"
export NO_COLOR=1 XDG_RUNTIME_DIR=/tmp PYTHONUNBUFFERED=1 DENO_WEBGPU_BACKEND=vulkan

stage() { # stage NAME SECONDS COMMAND...: runs COMMAND with a timeout, output to the screen and $OUT/NAME.txt
  local name=$1 seconds=$2
  shift 2
  echo "=== $name (timeout ${seconds}s): $*" | tee -a "$OUT/$name.txt"
  timeout -k 5 "$seconds" "$@" 2>&1 | tee -a "$OUT/$name.txt"
  local code=${PIPESTATUS[0]}
  [ "$code" = 0 ] || echo "=== $name exited $code (124: timed out)" | tee -a "$OUT/$name.txt"
}

# Vulkan loader: unpacked into / as the device README prescribes; NVIDIA's ICD where the driver mount
# keeps it, when the loader would not find one by itself.
for deb in .gl/*.deb; do [ -e "$deb" ] && dpkg -x "$deb" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES=$icd
fi

deno=/tmp/deno-bin/deno
mkdir -p /tmp/deno-bin
# python3's lzma where the image has no xz.
if command -v xz >/dev/null; then
  xz -dc bench/gpu/carry/deno.xz >"$deno"
else
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    bench/gpu/carry/deno.xz "$deno"
fi
chmod +x "$deno" && "$deno" --version >/dev/null || { echo "run.sh: no usable Deno from bench/gpu/carry" >&2; exit 1; }
export DENO_DIR=/tmp/deno-cache

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
  "$deno" --version
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
} 2>&1 | tee "$OUT/environment.txt"

# The adapter WebGPU gets (the line also heads every bench's output).
stage adapter 30 "$deno" eval --ext=ts \
  'import { describeAdapter, initGpu } from "./src/gpu/device.ts";
   const g = await initGpu();
   console.log(describeAdapter(g.adapter), "timestamps:", g.hasTimestamps, "f16:", g.hasF16);'

# Kernel benches (data.bench.ts is the CPU data loader: no GPU work). Their tables print at load time,
# before Deno.bench's own timing. --no-check: type-checking needs node_modules/@types (not carried;
# `deno check` runs here).
for bench in linear conv2d batch_norm lif kernels; do
  stage benches 35 "$deno" bench -A --no-check "bench/$bench.bench.ts"
done

# This project against the machine's own PyTorch (python3 here holds the CUDA build).
stage compare 150 "$deno" run -A bench/compare/step.ts --config all --steps 5 --warmup 2 \
  --python "$(command -v python3)"
stage overhead 50 "$deno" run -A bench/compare/step.ts --config headline --steps 5 --warmup 2 --sml-overhead \
  --python "$(command -v python3)"

ls -l "$OUT"
