#!/usr/bin/env bash
# Run tools/memcheck_script.py (every kernel entry point, small sizes) under valgrind memcheck.
# Fails if valgrind reports a definite leak or an invalid read/write/uninitialised use whose
# stack passes through tconv's extension; the interpreter's own one-time allocations are
# reported but not ours.  Usage: tools/memcheck.sh   (PYTHON=..., MEMCHECK_LOG=...; tests the
# in-tree package if tools/dev_build.sh has built it, else the installed tconv)
set -euo pipefail
cd "$(dirname "$0")/.."
# the real interpreter, not a wrapper script (pyenv shims): valgrind does not follow exec
py=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
command -v valgrind >/dev/null || { echo "memcheck.sh: valgrind not installed" >&2; exit 2; }
log=${MEMCHECK_LOG:-${TMPDIR:-/tmp}/tconv-memcheck.log}

# the in-tree package when tools/dev_build.sh has built it, else the installed one
if [ -z "${PYTHONPATH:-}" ] && compgen -G "python/tconv/_core*.so" >/dev/null; then
  export PYTHONPATH=python
fi
"$py" -c "import tconv._core as c; print('memcheck.sh: testing', c.__file__)"

# PYTHONMALLOC=malloc: let valgrind see every allocation (no pymalloc arenas).
PYTHONMALLOC=malloc OMP_WAIT_POLICY=passive \
  valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --num-callers=40 --log-file="$log" \
  "$py" tools/memcheck_script.py

# Split the log into records (blank-line separated) and keep those that touch tconv.
ours=$(sed 's/^==[0-9]*== \?//' "$log" | awk 'BEGIN{RS=""} /_core\.cpython|tconv::|bindings\.cpp|pybind11/' |
       grep -E "definitely lost|Invalid (read|write|free)|uninitialised|Mismatched free" || true)
summary=$(grep -E "definitely lost:|indirectly lost:|ERROR SUMMARY" "$log" | sed 's/^==[0-9]*== *//' || true)
echo "$summary"
if [ -n "$ours" ]; then
  echo "memcheck.sh: valgrind reports involving tconv (see $log):" >&2
  echo "$ours" >&2
  exit 1
fi
echo "memcheck.sh: clean: no definite leak or memory error in tconv's code (full log: $log)"
