#!/usr/bin/env bash
# test_chat_templates.sh — every chat template in <shared>/chat-templates × every conversation in
# tests/js/conversations × add_generation_prompt {true,false} rendered by `tinyvllm template` must be
# byte-identical to @huggingface/jinja (tests/js/render_template.mjs, HF's own renderer). A template
# that raises in the oracle must fail in tinyvllm too (and vice versa) — except where tinyvllm's
# Python-compatible extensions (str.format, tuple unpacking in for, |min/|max) render what
# @huggingface/jinja cannot: those must match Python Jinja2 set up as transformers sets it up
# (tests/js/render_template_py.py; counted as unverified when python3-jinja2 is missing).
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
have_py=0
if python3 -c 'import jinja2' 2>/dev/null; then
  mkdir -p "$WORK/py"
  python3 "$JS/render_template_py.py" --batch "$WORK/py" "$TPLS"/*.jinja -- "$JS"/conversations/*.json && have_py=1
fi

total=0; pass=0; both_raise=0; fails=0; ext=0; unverified=0
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
        py="$WORK/py/${t}__${c}__${gen}"
        if [ $have_py = 0 ]; then unverified=$((unverified + 1)); continue; fi
        if [ -f "$py.out" ] && cmp -s "$WORK/out" "$py.out"; then pass=$((pass + 1)); ext=$((ext + 1)); continue; fi
        fails=$((fails + 1)); echo "FAIL $t × $c × $gen: @huggingface/jinja raised ($(head -c 200 "$base.err" | tr '\n' ' ')), tinyvllm rendered, Python Jinja2 $([ -f "$py.out" ] && echo "renders differently" || echo "raised too")"
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
echo "chat templates: $pass/$total pass: identical to @huggingface/jinja, $both_raise of them raising in both; $ext rendered by extensions identically to Python Jinja2 (HF transformers); $unverified unverified (no python3-jinja2); $fails failing"
[ $fails -eq 0 ]
