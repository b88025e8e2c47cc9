#!/usr/bin/env bash
# Run on THIS machine, from anywhere, before a device run: fills the ignored folders that travel with
# `carry` (.gitignore ignores both) with what the bare H200 machine lacks:
#   bench/gpu/carry/deno.xz  this checkout's Deno binary (x86-64), xz'd to fit the 64 MiB carry limit
#   .gl/libvulkan1_*.deb     the Vulkan loader (the machine has NVIDIA's ICD but maybe no loader)
# Then call the device tool with carry [".gl", "bench/gpu/carry"] and command "bash bench/gpu/run.sh".
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(uname -m)" != x86_64 ]; then
  echo "prepare.sh: this machine is $(uname -m); the device machine needs an x86-64 Deno" >&2
  exit 1
fi

mkdir -p bench/gpu/carry
if [ ! -s bench/gpu/carry/deno.xz ] || [ node_modules/deno/deno -nt bench/gpu/carry/deno.xz ]; then
  xz -T1 -6 -c node_modules/deno/deno >bench/gpu/carry/deno.xz.tmp
  mv bench/gpu/carry/deno.xz.tmp bench/gpu/carry/deno.xz
fi
node_modules/deno/deno --version | head -1 >bench/gpu/carry/deno-version.txt

# The loader as the device README says: amd64 package lists of their own, so this machine's apt state
# is left alone, and only the Vulkan loader (WebGPU needs no GL/EGL).
mkdir -p .gl /tmp/amd64/partial
apt_options=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  apt-get "${apt_options[@]}" update -qq
  (cd .gl && apt-get "${apt_options[@]}" download libvulkan1)
fi

du -ch .gl bench/gpu/carry | tail -1 | sed 's/total/carried in all (limit 64 MiB with the working tree)/'
