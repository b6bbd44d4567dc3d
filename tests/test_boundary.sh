#!/usr/bin/env bash
# test_boundary.sh — the library is sealed: its users see include/ only.
#   bash tests/test_boundary.sh <tinyvllm-binary> [shared-dir]
# 1. cli/ and src/server/ include nothing but include/*.h, system headers and their own folder's
#    headers (the build enforces it too: those targets have only include/ on their include path).
# 2. The library reads no environment variable (getenv in src/ outside src/server/).
# 3. `tv_` means public: every global function or variable the library defines with the tv_ prefix
#    is declared in a header under include/, and every other one carries a subsystem prefix.
# 4. docs/architecture.md's include graph is the tree's (scripts/include_graph.sh), edge for edge.
# Each check prints what it found; any finding fails the test.
set -u
BIN=${1:?usage: test_boundary.sh <tinyvllm-binary> [shared-dir]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$(dirname "$BIN")" && pwd)
cd "$ROOT" || exit 1
bad=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }

# 1. includes
for f in $(find cli src/server -name '*.[ch]'); do
  d=$(dirname "$f")
  for inc in $(grep -hoE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[^"]+"' "$f" | sed -E 's/.*"([^"]+)".*/\1/'); do
    [ -f "include/$inc" ] && continue
    case "$inc" in */* | ..*) ;; *) [ -f "$d/$inc" ] && continue ;; esac
    fail "$f includes \"$inc\", which is not a public header (include/) nor one of $d/"
  done
done
n_inc=$bad
echo "includes: $(find cli src/server -name '*.[ch]' | wc -l) files of cli/ and src/server/ checked, $n_inc outside include/"

# 2. environment
while read -r hit; do
  [ -n "$hit" ] && fail "the library reads the environment: $hit"
done < <(grep -rnE '\b(secure_)?getenv[[:space:]]*\(' src | grep -v '^src/server/')

# 3. exported symbols
if [ ! -f "$BUILD/libtinyvllm_core.a" ]; then
  fail "no $BUILD/libtinyvllm_core.a to check the exported symbols of"
else
  syms=$(nm -g --defined-only "$BUILD"/libtinyvllm_*.a 2>/dev/null | awk '$2 ~ /^[TDBRC]$/ {print $3}' | sort -u)
  n_pub=0
  for s in $syms; do
    case "$s" in
      tv_*)
        n_pub=$((n_pub + 1))
        grep -qE "\\b$s\\b" include/*.h || fail "$s is exported with the public prefix but declared in no include/ header" ;;
      TV_* | _*) fail "$s: exported with a reserved or macro-like name" ;;
    esac
  done
  for h in include/*.h; do   # every public function is defined (no stale declarations)
    # tinyvllm_dist.h is the optional MPI library's (built only when CMake found MPI)
    [ "$h" = include/tinyvllm_dist.h ] && [ ! -f "$BUILD/libtinyvllm_dist.a" ] && continue
    for s in $(grep -hoE '\btv_[a-z0-9_]+\(' "$h" | tr -d '(' | sort -u); do
      echo "$syms" | grep -qx "$s" || fail "$h declares $s but the library does not define it"
    done
  done
  echo "symbols: $(echo "$syms" | wc -l) exported by the libraries, $n_pub public (tv_)"
fi

# 4. the documented include graph
doc_graph=$(sed -n '/<!-- include-graph:begin -->/,/<!-- include-graph:end -->/p' docs/architecture.md | grep -- ' -> ')
tree_graph=$(bash scripts/include_graph.sh)
if [ -z "$doc_graph" ]; then
  fail "docs/architecture.md has no include graph between <!-- include-graph:begin/end --> markers"
elif [ "$doc_graph" != "$tree_graph" ]; then
  fail "docs/architecture.md's include graph differs from the tree's (< doc, > tree):"
  diff <(echo "$doc_graph") <(echo "$tree_graph") | grep '^[<>]'
else
  echo "include graph: $(echo "$tree_graph" | wc -l) edges, as documented"
fi

if [ "$bad" -eq 0 ]; then echo "boundary: ok"; exit 0; fi
echo "boundary: $bad findings"
exit 1
