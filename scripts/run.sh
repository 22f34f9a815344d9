#!/usr/bin/env bash
# Builds unifnd and runs it on its embedded default (127.0.0.1:8080, the example functions).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)" --target unifnd unifn_examples
exec build/unifnd "$@"
