#!/usr/bin/env bash
# test_cli_help.sh — the help texts list every flag the code accepts, and the README's table of
# llama.cpp flags names spellings the commands accept.
#   bash tests/test_cli_help.sh <tinyvllm-binary> [shared-dir]
# 1. The candidates are every string literal in cli/*.c that looks like an option ("-m", "--ctx-size",
#    "-ctk"): the option tables and each strcmp, so a flag added anywhere is a candidate. A command
#    accepts a candidate when `tinyvllm CMD OPT` does not answer "unknown option"; then the option
#    must appear as a word in `tinyvllm CMD --help`.
# 2. Every spelling in the second column of README.md's "Flags for llama.cpp users" table is
#    accepted by each command of its third column.
set -u
BIN=${1:?usage: test_cli_help.sh <tinyvllm-binary> [shared-dir]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
bad=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }

CMDS=$("$BIN" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
[ -n "$CMDS" ] || { echo "FAIL: no commands in tinyvllm --help"; exit 1; }
CANDS=$(grep -ohE '"--?[a-zA-Z][a-zA-Z0-9-]*"' "$ROOT"/cli/*.c | tr -d '"' | sort -u)

# accepts CMD OPT: the command does not call OPT unknown (it may still fail: no -m, no value, ...)
# A probe that runs out of time says nothing (on a loaded machine even an error exit can take 10 s):
# it is run again with more time, and a second timeout is a failure, not an "accepted".
accepts() {
  local rc
  for limit in 10 60; do
    timeout "$limit" "$BIN" "$1" "$2" </dev/null >/dev/null 2>"$W/err"; rc=$?
    [ $rc -eq 124 ] || break
  done
  [ $rc -eq 124 ] && { fail "tinyvllm $1 $2 did not finish in 60 s"; return 1; }
  ! grep -qi "unknown option\|unknown or incomplete option" "$W/err"
}
in_help() { grep -qE -- "(^|[^a-zA-Z0-9-])$2([^a-zA-Z0-9-]|\$)" "$W/help-$1"; }

n_checked=0
for cmd in $CMDS; do
  "$BIN" "$cmd" --help >"$W/help-$cmd" 2>&1 || fail "tinyvllm $cmd --help exits non-zero"
  accepts "$cmd" --definitely-not-an-option && fail "tinyvllm $cmd accepts --definitely-not-an-option (the probe cannot tell)"
  for opt in $CANDS; do
    accepts "$cmd" "$opt" || continue
    n_checked=$((n_checked + 1))
    in_help "$cmd" "$opt" || fail "tinyvllm $cmd accepts $opt but its --help does not list it"
  done
done
"$BIN" --help | grep -q -- "--version" || fail "tinyvllm --help does not mention --version"
echo "help: $n_checked accepted (command, option) pairs, each listed in the command's --help"

# 2. the README table: | llama.cpp | `tinyvllm spellings` | commands |
n_readme=0
while IFS='|' read -r _ _ ours cmds _; do
  for opt in $(grep -oE '`-[-a-zA-Z][^`]*`' <<<"$ours" | tr -d '`' | awk '{print $1}'); do
    n_readme=$((n_readme + 1))
    if [[ $cmds == *"(all)"* ]]; then
      "$BIN" "$opt" >/dev/null 2>&1 || fail "README: tinyvllm $opt fails"
      continue
    fi
    for cmd in $cmds; do
      accepts "$cmd" "$opt" || fail "README lists $opt for $cmd, but tinyvllm $cmd does not accept it"
    done
  done
done < <(awk '/^## Flags for llama.cpp users/ {on = 1; next} on && /^## / {on = 0} on && /^\| `/' "$ROOT/README.md")
[ "$n_readme" -gt 40 ] || fail "README: only $n_readme spellings found in the llama.cpp flag table"
echo "README: $n_readme tinyvllm spellings in the llama.cpp flag table, each accepted"
[ "$bad" -eq 0 ] || { echo "test_cli_help: $bad failures"; exit 1; }
echo "test_cli_help: ok"
