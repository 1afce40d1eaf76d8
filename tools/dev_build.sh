#!/usr/bin/env bash
# Developer build: compile the extension in ./build and drop it into python/tconv so that
# `PYTHONPATH=python pytest` works without reinstalling.  Extra args go to cmake configure.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
builddir=${BUILD_DIR:-build}
cmake -S . -B "$builddir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$py")" \
  -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" "$@" >/dev/null
cmake --build "$builddir"
# copy then rename: overwriting the .so in place would SIGBUS any process that has it loaded
for so in "$builddir"/_core*.so; do
  cp "$so" "python/tconv/.$(basename "$so").tmp"
  mv -f "python/tconv/.$(basename "$so").tmp" "python/tconv/$(basename "$so")"
done
