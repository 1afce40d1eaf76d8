#!/usr/bin/env bash
# Build the extension with -fsanitize=address,undefined (CMake option TCONV_SANITIZE) and the
# micro-kernels' precondition checks (TCONV_ASSERTS) into its own build dir and run a fast
# subset of the test suite against it.  Fails on any sanitizer report or failed check.
# Usage: tools/sanitize.sh [pytest args...]  (default: the fast subset below)
#
#   BUILD_DIR   build directory            (default: build-sanitize)
#   PYTHON      interpreter                (default: python3)
#   TCONV_FUZZ_EXAMPLES  fuzz examples     (default here: 120)
#   TCONV_BOUNDARY_QUICK boundary sweep: c-1, c, c+1 of the cheap geometries (default here: 1)
#
# Python itself is not instrumented, so the ASan runtime is LD_PRELOADed; the interpreter's own
# (intentional) leaks at exit are not ours, so leak detection is off (detect_leaks=0) -- use
# tools/memcheck.sh for leaks.  UBSan errors are fatal (-fno-sanitize-recover, halt_on_error).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
builddir=${BUILD_DIR:-build-sanitize}

cmake -S . -B "$builddir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTCONV_SANITIZE=ON -DTCONV_ASSERTS=ON \
  -DPython_EXECUTABLE="$(command -v "$py")" \
  -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$builddir"

# A private copy of the package holding the instrumented _core, so ./python stays untouched.
pkg="$(cd "$builddir" && pwd)/pkg"
rm -rf "$pkg" && mkdir -p "$pkg/tconv"
cp python/tconv/*.py "$pkg/tconv/"
cp "$builddir"/_core*.so "$pkg/tconv/"
if ! nm -D "$pkg"/tconv/_core*.so | grep __asan_init >/dev/null; then
  echo "sanitize.sh: $builddir/_core is not instrumented (TCONV_SANITIZE had no effect)" >&2
  exit 1
fi

# libstdc++ too: ASan's __cxa_throw interceptor must find the real one when it starts, or the
# first C++ exception (a ValueError from the binding) aborts the non-C++ python executable
asan_rt="$(gcc -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
log="$builddir/sanitize.log"
if [ "$#" -eq 0 ]; then
  set -- tests/test_reference.py tests/test_identities.py tests/test_errors.py \
    tests/test_fuzz.py tests/test_core_fuzz.py tests/test_concurrency.py tests/test_determinism.py \
    tests/test_numerics.py tests/test_crash_regressions.py tests/test_boundaries.py \
    tests/test_ukernels.py tests/test_stream_stores.py tests/test_packed_sorted.py \
    -k "not torch"
fi
existing=()
for arg in "$@"; do
  case "$arg" in tests/*.py) [ -e "$arg" ] && existing+=("$arg") ;; *) existing+=("$arg") ;; esac
done

# the tests must import the instrumented copy, not an installed or in-tree tconv
LD_PRELOAD="$asan_rt" ASAN_OPTIONS=detect_leaks=0 PYTHONPATH="$pkg" "$py" -c "
import sys, tconv._core as c
sys.exit('sanitize.sh: imported ' + c.__file__ if not c.__file__.startswith('$pkg') else
         0 if c._asserts() else 'sanitize.sh: the build does not check TCONV_ASSERT')"

echo "== sanitizer run: ${existing[*]}"
# Reports go to files, not stderr: pytest captures stderr and the abort would lose them; files
# also catch reports from child processes (test_errors runs every bad input in a child).
reports="$(cd "$builddir" && pwd)/reports"
rm -rf "$reports" && mkdir -p "$reports"
status=0
env LD_PRELOAD="$asan_rt" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:check_initialization_order=1:log_path=$reports/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
  PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}" \
  TCONV_FUZZ_EXAMPLES="${TCONV_FUZZ_EXAMPLES:-120}" TCONV_BOUNDARY_QUICK="${TCONV_BOUNDARY_QUICK:-1}" TCONV_FUZZ_REPORT="$builddir/fuzz-report.json" \
  "$py" -m pytest -q -p no:cacheprovider "${existing[@]}" 2>&1 | tee "$log" || status=$?

if compgen -G "$reports/*" >/dev/null ||
   grep -Eq "AddressSanitizer|runtime error:|LeakSanitizer|UndefinedBehaviorSanitizer" "$log"; then
  echo "sanitize.sh: sanitizer report(s) found:" >&2
  for f in "$reports"/*; do [ -e "$f" ] && { echo "--- $f" >&2; head -60 "$f" >&2; }; done
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "sanitize.sh: tests failed under the sanitizers (exit $status), see $log" >&2
  exit "$status"
fi
echo "sanitize.sh: clean (no sanitizer reports)"
