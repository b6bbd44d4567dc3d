#!/usr/bin/env bash
# test_family_templates.sh — the chat templates of the model families we run, rendered by
# `tinyvllm template` with each family's real bos_token / eos_token strings and the template
# variables its users pass (chat_template_kwargs: Qwen3's and Gemma 4's enable_thinking, Granite's
# thinking), over every conversation in tests/js/conversations (system, multi-turn, tools, reasoning,
# ...) × add_generation_prompt {true,false}: byte-identical to @huggingface/jinja
# (tests/js/render_template.mjs --jobs); a conversation the reference rejects must fail cleanly here.
# Templates: <shared>/chat-templates, and tests/data/phi3-mini-4k-instruct.jinja (Phi-3's, not in shared).
# Usage: bash test_family_templates.sh <tinyvllm-binary> <shared-dir>   (exit 77: skipped)
set -u
BIN=${1:?usage: test_family_templates.sh <tinyvllm> <shared-dir>}
SHARED=${2:?usage: test_family_templates.sh <tinyvllm> <shared-dir>}
HERE=$(cd "$(dirname "$0")" && pwd)
JS="$HERE/js"
TPLS="$SHARED/chat-templates"
if [ ! -x "$BIN" ]; then echo "FAIL: $BIN is not an executable"; exit 1; fi
if [ ! -d "$TPLS" ]; then echo "skip: $TPLS missing"; exit 77; fi
if [ ! -d "$JS/node_modules/@huggingface/jinja" ]; then echo "skip: run scripts/setup.sh (npm install in tests/js)"; exit 77; fi
if ! command -v node >/dev/null; then echo "skip: node missing"; exit 77; fi
export TZ=UTC
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# family ! template ! bos_token ! eos_token ! kwargs variants (JSON objects separated by ';')
FAMILIES=(
  "qwen3!$TPLS/Qwen-Qwen3-0.6B.jinja!<|endoftext|>!<|im_end|>!{};{\"enable_thinking\": false};{\"enable_thinking\": true}"
  "qwen2.5!$TPLS/Qwen-Qwen2.5-7B-Instruct.jinja!<|endoftext|>!<|im_end|>!{}"
  "gemma2!$TPLS/google-gemma-2-2b-it.jinja!<bos>!<eos>!{}"
  "gemma4!$TPLS/google-gemma-4-31B-it-interleaved.jinja!<bos>!<eos>!{};{\"enable_thinking\": true}"
  "granite3.3!$TPLS/ibm-granite-granite-3.3-2B-Instruct.jinja!<|end_of_text|>!<|end_of_text|>!{};{\"thinking\": true}"
  "granite4.1!$TPLS/ibm-granite-granite-4.1.jinja!<|end_of_text|>!<|end_of_text|>!{}"
  "llama3.1!$TPLS/meta-llama-Llama-3.1-8B-Instruct.jinja!<|begin_of_text|>!<|eot_id|>!{}"
  "llama3.2!$TPLS/meta-llama-Llama-3.2-3B-Instruct.jinja!<|begin_of_text|>!<|eot_id|>!{}"
  "llama3.3!$TPLS/meta-llama-Llama-3.3-70B-Instruct.jinja!<|begin_of_text|>!<|eot_id|>!{}"
  "mistral-small-3.2!$TPLS/Mistral-Small-3.2-24B-Instruct-2506.jinja!<s>!</s>!{}"
  "ministral-3!$TPLS/mistralai-Ministral-3-14B-Reasoning-2512.jinja!<s>!</s>!{}"
  "phi3!$HERE/data/phi3-mini-4k-instruct.jinja!<s>!<|endoftext|>!{}"
)

# one job per family × kwargs variant × conversation × generation prompt: a line of jobs.tsv and a
# <name>.job file (the same fields) for the comparison loop
for f in "${FAMILIES[@]}"; do
  IFS='!' read -r fam tpl bos eos variants <<<"$f"
  if [ ! -f "$tpl" ]; then echo "FAIL: $tpl missing"; exit 1; fi
  IFS=';' read -r -a kws <<<"$variants"
  for k in "${!kws[@]}"; do
    printf '%s' "${kws[$k]}" >"$WORK/$fam.k$k.kwargs.json"
    for conv in "$JS"/conversations/*.json; do
      c=$(basename "$conv" .json)
      for gen in true false; do
        out="$WORK/$fam.k$k.$c.$gen"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tpl" "$conv" "$bos" "$eos" "$WORK/$fam.k$k.kwargs.json" "$gen" "$out" \
          | tee "$out.job" >>"$WORK/jobs.tsv"
      done
    done
  done
done
jobs="$WORK/jobs.json"
node -e '
const fs = require("fs");
const jobs = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => {
  const [template, context, bos_token, eos_token, kw, gen, out] = l.split("\t");
  return { template, context, bos_token, eos_token, kwargs: JSON.parse(fs.readFileSync(kw, "utf8")),
           add_generation_prompt: gen === "true", out };
});
fs.writeFileSync(process.argv[2], JSON.stringify(jobs));' "$WORK/jobs.tsv" "$jobs" || { echo "FAIL: job list"; exit 1; }
node "$JS/render_template.mjs" --jobs "$jobs" || { echo "FAIL: oracle crashed"; exit 1; }

total=0; pass=0; raised=0; fails=0
for job in "$WORK"/*.job; do
  base=${job%.job}
  IFS=$'\t' read -r tpl conv bos eos kw gen _ <"$job"
  flag=(); [ "$gen" = false ] && flag=(--no-generation-prompt)
  total=$((total + 1))
  "$BIN" template --template "$tpl" --messages "$conv" --bos-token "$bos" --eos-token "$eos" --kwargs "$kw" "${flag[@]}" \
      >"$WORK/out" 2>"$WORK/err"
  rc=$?
  name=$(basename "$base")
  if [ -f "$base.err" ]; then
    if [ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] && grep -q '^tinyvllm template: ' "$WORK/err"; then
      pass=$((pass + 1)); raised=$((raised + 1))
    else
      fails=$((fails + 1)); echo "FAIL $name: the reference raised ($(head -c 200 "$base.err")), tinyvllm: rc $rc $(head -c 200 "$WORK/err")"
    fi
  elif [ $rc -ne 0 ]; then
    fails=$((fails + 1)); echo "FAIL $name: tinyvllm failed: $(head -c 300 "$WORK/err")"
  elif cmp -s "$WORK/out" "$base.out"; then
    pass=$((pass + 1))
  else
    fails=$((fails + 1)); echo "FAIL $name: output differs"; diff "$base.out" "$WORK/out" | head -8
  fi
done
echo "family templates: $pass/$total identical to @huggingface/jinja ($raised raising in both), $fails failing"
[ $total -gt 0 ] && [ $fails -eq 0 ]
