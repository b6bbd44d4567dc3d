#!/usr/bin/env bash
# test_chat_templates.sh — every chat template in <shared>/chat-templates × every conversation in
# tests/js/conversations × add_generation_prompt {true,false} rendered by `tinyvllm template` must be
# byte-identical to @huggingface/jinja (tests/js/render_template.mjs, HF's own renderer). A template
# that raises in the oracle must fail in tinyvllm too (and vice versa).
# Usage: bash test_chat_templates.sh <tinyvllm-binary> <shared-dir>   (exit 77: skipped)
set -u
BIN=${1:?usage: test_chat_templates.sh <tinyvllm> <shared-dir>}
SHARED=${2:?usage: test_chat_templates.sh <tinyvllm> <shared-dir>}
HERE=$(cd "$(dirname "$0")" && pwd)
JS="$HERE/js"
TPLS="$SHARED/chat-templates"
if [ ! -x "$BIN" ]; then echo "FAIL: $BIN is not an executable"; exit 1; fi
if [ ! -d "$TPLS" ]; then echo "skip: $TPLS missing"; exit 77; fi
if [ ! -d "$JS/node_modules/@huggingface/jinja" ]; then echo "skip: run scripts/setup.sh (npm install in tests/js)"; exit 77; fi
if ! command -v node >/dev/null; then echo "skip: node missing"; exit 77; fi
export TZ=UTC   # strftime_now: both renderers use local time
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/oracle"
node "$JS/render_template.mjs" --batch "$WORK/oracle" "$TPLS"/*.jinja -- "$JS"/conversations/*.json || { echo "FAIL: oracle crashed"; exit 1; }

total=0; pass=0; both_raise=0; fails=0
for tpl in "$TPLS"/*.jinja; do
  t=$(basename "$tpl" .jinja)
  for conv in "$JS"/conversations/*.json; do
    c=$(basename "$conv" .json)
    for gen in gen nogen; do
      total=$((total + 1))
      base="$WORK/oracle/${t}__${c}__${gen}"
      flag=(); [ "$gen" = nogen ] && flag=(--no-generation-prompt)
      "$BIN" template --template "$tpl" --messages "$conv" --bos-token "<s>" --eos-token "</s>" "${flag[@]}" \
          >"$WORK/out" 2>"$WORK/err"
      rc=$?
      if [ -f "$base.err" ]; then
        # a clean error: exit status 1 and one "tinyvllm template: ..." line (a crash or sanitizer report is not)
        if [ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] && grep -q '^tinyvllm template: ' "$WORK/err"; then
          pass=$((pass + 1)); both_raise=$((both_raise + 1)); continue
        fi
        if [ $rc -ne 0 ]; then
          fails=$((fails + 1)); echo "FAIL $t × $c × $gen: oracle raised but tinyvllm did not fail cleanly (rc $rc): $(head -c 300 "$WORK/err")"
          continue
        fi
        fails=$((fails + 1)); echo "FAIL $t × $c × $gen: oracle raised ($(head -c 200 "$base.err" | tr '\n' ' ')) but tinyvllm rendered"
        continue
      fi
      if [ $rc -ne 0 ]; then
        fails=$((fails + 1)); echo "FAIL $t × $c × $gen: tinyvllm failed: $(head -c 300 "$WORK/err")"; continue
      fi
      if cmp -s "$WORK/out" "$base.out"; then pass=$((pass + 1)); else
        fails=$((fails + 1)); echo "FAIL $t × $c × $gen: output differs"
        diff <(cat "$base.out") <(cat "$WORK/out") | head -8
      fi
    done
  done
done
echo "chat templates: $pass/$total identical to @huggingface/jinja ($both_raise raise in both), $fails failing"
[ $fails -eq 0 ]
