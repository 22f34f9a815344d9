#!/usr/bin/env bash
# Installs the Debian 12 packages unifn needs to build, test and benchmark (run as root).
set -euo pipefail
pkgs=(build-essential cmake pkg-config git curl
      libboost-dev libyaml-cpp-dev libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev catch2 libsystemd-dev prometheus-cpp-dev
      musl-dev musl-tools libssl-dev libopenblas-dev libopencv-imgproc-dev libstb-dev
      libonnx-dev libprotobuf-dev libonnx-testdata libdnnl-dev
      python3-torch python3-onnx python3-pil dataset-fashion-mnist nginx haproxy
      clang clang-format libclang-rt-14-dev wrk lighttpd qemu-system-x86 hyperfine runsc)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
  echo "install-deps: note: /dev/kvm is not usable by $(id -un): unifnd will run functions on its sandbox platform" >&2
fi
