#!/usr/bin/env bash
# include_graph.sh — which part of the tree includes which: one "from -> to" line per edge, sorted.
# Parts: cli, server (src/server), include (the public headers), and each folder under src/.
# Run from the project root. docs/architecture.md holds its output; tests/test_boundary.sh compares.
set -eu
part_of() {   # path of a file -> its part
  case "$1" in
    cli/*) echo cli ;; include/*) echo include ;; src/server/*) echo server ;;
    src/*/*) p=${1#src/}; echo "${p%%/*}" ;;
  esac
}
for f in $(find cli include src -name '*.[ch]' | sort); do
  from=$(part_of "$f")
  for inc in $(grep -hoE '^[[:space:]]*#[[:space:]]*include[[:space:]]+"[^"]+"' "$f" | sed -E 's/.*"([^"]+)".*/\1/'); do
    if [ -f "include/$inc" ]; then to=include
    elif [ -f "src/$inc" ]; then to=$(part_of "src/$inc")
    elif [ -f "$(dirname "$f")/$inc" ]; then to=$from
    else continue; fi
    [ "$to" != "$from" ] && echo "$from -> $to"
  done
done | sort -u
