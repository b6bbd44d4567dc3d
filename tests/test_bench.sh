#!/usr/bin/env bash
# test_bench.sh <tinyvllm-binary> <shared-dir> — `tinyvllm bench` end to end on a tiny model:
# the JSON has every field with sane values (no speed thresholds), the KV accounting adds up, and
# --compare parses llama-bench's JSON and markdown output (samples in the documented formats).
# Exit 77 = skipped.
set -u
unset TV_SCHEMA_CORPUS   # bench structured would take it as its corpus
BIN=${1:?usage: test_bench.sh TINYVLLM SHARED_DIR}
SHARED=${2:-}
command -v node >/dev/null 2>&1 || { echo "SKIP: node is needed to check the JSON"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

MODEL="$TMP/tiny.gguf"
if ! "$BIN" synth --preset tiny -o "$MODEL" >"$TMP/synth.log" 2>&1; then
  if [ -n "$SHARED" ] && [ -f "$SHARED/models/stories260K.bin" ]; then
    echo "note: 'tinyvllm synth' unavailable ($(head -c 200 "$TMP/synth.log")); using stories260K.bin"
    MODEL="$SHARED/models/stories260K.bin"
  else
    echo "SKIP: no 'tinyvllm synth' and no shared stories260K.bin"; exit 77
  fi
fi

fail() { echo "FAIL: $*"; exit 1; }

# ---- usage errors: exit 2 with one line naming the command ----
"$BIN" bench >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 2 ] || fail "bench without -m: exit $rc, want 2"
grep -q '^tinyvllm bench: ' "$TMP/err" || fail "usage error line: $(cat "$TMP/err")"
"$BIN" bench -m "$MODEL" --no-such-flag >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "unknown flag: exit $rc, want 2"
"$BIN" bench -m "$MODEL" --compare nonsense >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "--compare without '=': exit $rc, want 2"
"$BIN" bench -m "$TMP/missing.gguf" -p 16 -n 8 >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 1 ] || fail "missing model: exit $rc, want 1"

# ---- peer outputs in llama-bench's formats ----
cat >"$TMP/peer.json" <<'EOF'
[
  {"build_commit": "0000000", "model_type": "llama ?B F32", "n_threads": 2, "n_prompt": 16, "n_gen": 0,
   "n_depth": 0, "avg_ns": 1000000, "stddev_ns": 0, "avg_ts": 250.5, "stddev_ts": 1.5},
  {"build_commit": "0000000", "model_type": "llama ?B F32", "n_threads": 2, "n_prompt": 16, "n_gen": 0,
   "n_depth": 512, "avg_ns": 1000000, "stddev_ns": 0, "avg_ts": 9999.0, "stddev_ts": 1.5},
  {"build_commit": "0000000", "model_type": "llama ?B F32", "n_threads": 2, "n_prompt": 0, "n_gen": 8,
   "n_depth": 0, "avg_ns": 1000000, "stddev_ns": 0, "avg_ts": 125.25, "stddev_ts": 0.5}
]
EOF
cat >"$TMP/peer.md" <<'EOF'
| model                          |       size |     params | backend    |    threads | test       |              t/s |
| ------------------------------ | ---------: | ---------: | ---------- | ---------: | ---------- | ---------------: |
| llama ?B F32                   |   1.00 MiB |     0.26 M | CPU        |          2 | pp 16      |     40.00 ± 0.07 |
| llama ?B F32                   |   1.00 MiB |     0.26 M | CPU        |          2 |   tg8 @ d512 |    9.00 ± 0.02 |
| llama ?B F32                   |   1.00 MiB |     0.26 M | CPU        |          2 |        tg8 |     20.00 ± 0.02 |
EOF

OUT="$TMP/out.json"
"$BIN" bench -m "$MODEL" -t 2 -p 16 -n 8 --batch 4 -r 2 --roofline --json \
  --compare "jsonpeer=cat $TMP/peer.json" --compare "mdpeer=cat $TMP/peer.md" >"$OUT" 2>"$TMP/err" \
  || fail "bench exit $?: $(cat "$TMP/err")"

node - "$OUT" <<'EOF' || exit 1
const fs = require('fs');
const text = fs.readFileSync(process.argv[2], 'utf8').trim();
const lines = text.split('\n');
if (lines.length !== 1) { console.log('FAIL: want one JSON line, got ' + lines.length); process.exit(1); }
const j = JSON.parse(text);
const bad = [];
const pos = ['pp_tok_s', 'tg_tok_s', 'batch_decode_tok_s', 'load_ms', 'peak_rss_mb', 'mem_bw_gbs',
             'int8_peak_gops', 'fp32_peak_gflops', 'tg_frac_of_bw', 'pp_frac_of_int8_peak'];
for (const k of pos)
  if (typeof j[k] !== 'number' || !isFinite(j[k]) || !(j[k] > 0)) bad.push(`${k}=${j[k]} (want > 0)`);
if (j.load_ms < 0) bad.push('load_ms negative');
if (j.batch !== 4) bad.push(`batch=${j.batch}`);
for (const k of ['pp', 'tg', 'batch_decode'])
  if (!(j[k + '_tok_s_min'] <= j[k + '_tok_s'] && j[k + '_tok_s'] <= j[k + '_tok_s_max'])) bad.push(`${k}: min <= median <= max`);
// pp can't beat the int8 peak by an order of magnitude (tg can beat DRAM bandwidth when a tiny
// model sits in cache, so its fraction has no upper bound here)
if (!(j.pp_frac_of_int8_peak < 10)) bad.push(`pp_frac_of_int8_peak=${j.pp_frac_of_int8_peak} implausible`);
// KV: allocated slots cover the tokens held, waste below one block per sequence
const w = j.kv_wasted_slots_per_seq;
if (typeof w !== 'number' || w < 0 || w >= j.kv_block_size) bad.push(`kv_wasted_slots_per_seq=${w} (block ${j.kv_block_size})`);
if (!(j.kv_slots_allocated >= j.kv_slots_used)) bad.push('kv allocated < used');
if (Math.abs((j.kv_slots_allocated - j.kv_slots_used) / 4 - w) > 1e-9) bad.push('kv waste != (allocated - used) / batch');
// 4 sequences with batch_prompt-token prompts (128 unless the context is smaller): at least
// 4*(P+1) tokens held at full batch, at most 4*(P+8)
const P = j.batch_prompt;
if (!(P >= 1 && P <= 128)) bad.push(`batch_prompt=${P}`);
if (!(j.kv_slots_used >= 4 * (P + 1) && j.kv_slots_used <= 4 * (P + 8))) bad.push(`kv_slots_used=${j.kv_slots_used}`);
if (j.kv_slots_allocated % j.kv_block_size !== 0) bad.push('allocated slots not whole blocks');
// peers: depth-0 rows only, numbers as printed
const peers = Object.fromEntries((j.peers || []).map(p => [p.name, p]));
const jp = peers.jsonpeer, mp = peers.mdpeer;
if (!jp || !jp.ok || jp.pp_tok_s !== 250.5 || jp.tg_tok_s !== 125.25 || jp.pp_n !== 16 || jp.tg_n !== 8)
  bad.push('json peer parsed as ' + JSON.stringify(jp));
if (!jp || Math.abs(jp.pp_ratio - j.pp_tok_s / 250.5) > 1e-9 * jp.pp_ratio || Math.abs(jp.tg_ratio - j.tg_tok_s / 125.25) > 1e-9 * jp.tg_ratio)
  bad.push('peer ratios ' + JSON.stringify(jp));
if (!mp || !mp.ok || mp.pp_tok_s !== 40 || mp.tg_tok_s !== 20 || mp.pp_n !== 16 || mp.tg_n !== 8)
  bad.push('markdown peer parsed as ' + JSON.stringify(mp));
if (bad.length) { console.log('FAIL: ' + bad.join('; ')); console.log(text); process.exit(1); }
console.log(`ok: pp ${j.pp_tok_s.toFixed(1)} tok/s, tg ${j.tg_tok_s.toFixed(1)} tok/s, batch4 ${j.batch_decode_tok_s.toFixed(1)} tok/s, ` +
            `bw ${j.mem_bw_gbs.toFixed(1)} GB/s, int8 ${j.int8_peak_gops.toFixed(0)} GOPS, kv waste ${w}/seq`);
EOF

# ---- the human table carries the same tests and the comparison ----
"$BIN" bench -m "$MODEL" -t 1 -p 16 -n 8 -r 1 --compare "mdpeer=cat $TMP/peer.md" >"$TMP/table" 2>"$TMP/err" \
  || fail "table run: $(cat "$TMP/err")"
grep -q '^pp16 ' "$TMP/table" && grep -q '^tg8 ' "$TMP/table" || fail "table rows: $(cat "$TMP/table")"
grep -q 'mdpeer' "$TMP/table" || fail "no comparison column: $(cat "$TMP/table")"

# ---- a failing peer: results still printed, exit 1, the reason on stderr ----
"$BIN" bench -m "$MODEL" -t 1 -p 16 -n 8 -r 1 --compare "broken=exit 3" >"$TMP/table" 2>"$TMP/err"; rc=$?
[ $rc -eq 1 ] || fail "failing peer: exit $rc, want 1"
grep -q 'broken' "$TMP/err" || fail "failing peer not named: $(cat "$TMP/err")"
grep -q '^pp16 ' "$TMP/table" || fail "results missing when a peer fails"

# ---- --json-schema: the batch again with every sequence constrained (structured output's cost) ----
HERE=$(cd "$(dirname "$0")" && pwd)
"$BIN" bench -m "$MODEL" -t 2 -p 0 -n 8 --batch 4 -r 1 --json-schema "$HERE/../bench/structured_e2e.json" --json \
  >"$TMP/sb.json" 2>"$TMP/err" || fail "bench --json-schema: $(cat "$TMP/err")"
node - "$TMP/sb.json" <<'EOF' || fail "bench --json-schema JSON: $(cat "$TMP/sb.json")"
const j = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const s = j.structured, ok = (c, m) => { if (!c) { console.error(m); process.exit(1); } };
ok(s && s.batch_decode_tok_s > 0 && Math.abs(s.ratio_to_free - s.batch_decode_tok_s / j.batch_decode_tok_s) < 1e-9, 'constrained tok/s, ratio');
ok(s.masks >= 4 * 8 && s.masks_overlapped <= s.masks, `masks ${s.masks} (one per constrained token), overlapped ${s.masks_overlapped}`);
console.log(`bench --json-schema: ${(100 * s.ratio_to_free).toFixed(1)}% of free, ${s.masks} masks (${s.masks_overlapped} overlapped)`);
EOF
echo '{"type":"boolean"}' >"$TMP/short.json"
"$BIN" bench -m "$MODEL" -t 1 -p 0 -n 8 --batch 2 -r 1 --json-schema "$TMP/short.json" >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 1 ] && grep -q 'cannot end within -n' "$TMP/err" || fail "a schema that ends early: exit $rc, $(cat "$TMP/err")"
"$BIN" bench -m "$MODEL" -n 8 --json-schema "$TMP/short.json" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "--json-schema without --batch: exit $rc, want 2"

# ---- --batch-prompt: the batch test's prompt length (llama-batched-bench's -npp) ----
"$BIN" bench -m "$MODEL" -t 1 -p 0 -n 4 --batch 3 --batch-prompt 24 -r 1 --json >"$TMP/bp.json" 2>"$TMP/err" \
  || fail "bench --batch-prompt: $(cat "$TMP/err")"
node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (j.batch_prompt !== 24 || !(j.batch_decode_tok_s > 0) || j.kv_slots_used < 3 * 25 || j.kv_slots_used > 3 * 28)
    { console.error(`batch_prompt ${j.batch_prompt}, kv_slots_used ${j.kv_slots_used}`); process.exit(1); }' "$TMP/bp.json" \
  || fail "--batch-prompt 24: $(cat "$TMP/bp.json")"
"$BIN" bench -m "$MODEL" -n 8 --batch-prompt 24 >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "--batch-prompt without --batch: exit $rc, want 2"

# ---- bench structured: the built-in schema set over a real vocabulary, masks verified ----
VOCAB="$SHARED/vocab/ggml-vocab-gpt-2.gguf"
if [ -n "$SHARED" ] && [ -f "$VOCAB" ]; then
  "$BIN" bench structured >/dev/null 2>"$TMP/err"; rc=$?
  [ $rc -eq 2 ] || fail "bench structured without --tokenizer: exit $rc, want 2"
  "$BIN" bench structured --tokenizer "$VOCAB" --steps 30 --verify --json --out "$TMP/outs.jsonl" >"$TMP/sj" 2>"$TMP/err" \
    || fail "bench structured: $(cat "$TMP/err")"
  node - "$TMP/sj" "$TMP/outs.jsonl" <<'EOF' || fail "bench structured JSON: $(cat "$TMP/sj")"
const fs = require('fs');
const j = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ok = (c, m) => { if (!c) { console.error(m); process.exit(1); } };
ok(j.schemas === 10 && j.compiled === 10, 'built-in set: 10 schemas, all compiled');
ok(j.masks > 0 && j.mask_mean_us > 0 && j.mask_p99_us >= j.mask_p50_us && j.mask_max_us >= j.mask_p99_us, 'mask stats');
ok(j.compile_p50_ms > 0 && j.plain_walk_mean_us > 0, 'compile / walk stats');
ok(j.llguidance_maskbench.mask_mean_us === 64 && j.llguidance_maskbench.mask_p99_us === 533, 'peer figures');
const lines = fs.readFileSync(process.argv[3], 'utf8').trim().split('\n').filter(Boolean);
ok(lines.length === j.completed, `outputs ${lines.length} vs completed ${j.completed}`);
for (const l of lines) JSON.parse(JSON.parse(l).output);   // every completed output is JSON
console.log(`bench structured: ${j.masks} masks, mean ${j.mask_mean_us.toFixed(1)} us, p99 ${j.mask_p99_us.toFixed(1)} us, ${j.completed} outputs`);
EOF
  # MaskBench's method: a file in its layout, the valid instances stepped token by token
  mkdir -p "$TMP/mb"
  cat >"$TMP/mb/a.json" <<'EOF'
{"description": "x", "schema": {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name"]},
 "tests": [{"description": "ok", "data": {"name": "caf\u00e9 \"x\"\n", "n": -12}, "valid": true},
           {"description": "invalid: skipped", "data": {"n": 1}, "valid": false},
           {"description": "another order than declared", "data": {"n": 1, "name": "a"}, "valid": true}]}
EOF
  "$BIN" bench structured --tokenizer "$VOCAB" --corpus "$TMP/mb" --instances --verify --json >"$TMP/mj" 2>"$TMP/err" \
    || fail "bench structured --instances: $(cat "$TMP/err")"
  node - "$TMP/mj" <<'EOF' || fail "bench structured --instances JSON: $(cat "$TMP/mj")"
const j = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const ok = (c, m) => { if (!c) { console.error(m); process.exit(1); } };
ok(j.compiled === 1 && j.instances === 2 && j.instances_whole === 1 && j.instances_refused === 1, 'instances: 2 run, 1 whole, 1 refused');
ok(j.masks >= 10 && j.mask_mean_us > 0, `token steps ${j.masks}`);
EOF
  # --grammars: a folder of GBNF grammars, random walks, masks verified, outputs in the language
  mkdir -p "$TMP/gb"
  printf 'root ::= "[" num ("," num)* "]"\nnum ::= "-"? [0-9]+\n' >"$TMP/gb/ints.gbnf"
  printf 'root ::= item+\nitem ::= "- " [a-z ]+ "\\n"\n' >"$TMP/gb/list.gbnf"
  "$BIN" bench structured --tokenizer "$VOCAB" --grammars >/dev/null 2>&1; rc=$?
  [ $rc -eq 2 ] || fail "--grammars without --corpus: exit $rc, want 2"
  "$BIN" bench structured --tokenizer "$VOCAB" --corpus "$TMP/gb" --grammars --steps 60 --verify --json --out "$TMP/go.jsonl" \
    >"$TMP/gj" 2>"$TMP/err" || fail "bench structured --grammars: $(cat "$TMP/err")"
  node - "$TMP/gj" "$TMP/go.jsonl" <<'EOF' || fail "bench structured --grammars JSON: $(cat "$TMP/gj")"
const fs = require('fs');
const j = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const ok = (c, m) => { if (!c) { console.error(m); process.exit(1); } };
ok(j.schemas === 2 && j.compiled === 2 && j.completed > 0, `grammars: ${j.compiled} of ${j.schemas} compiled, ${j.completed} completed`);
const re = {'ints.gbnf': /^\[-?[0-9]+(,-?[0-9]+)*\]$/, 'list.gbnf': /^(- [a-z ]+\n)+$/};
for (const l of fs.readFileSync(process.argv[3], 'utf8').trim().split('\n').filter(Boolean)) {
  const o = JSON.parse(l), name = o.schema.split('/').pop();
  ok(re[name].test(o.output), `${name}: output ${JSON.stringify(o.output)} not in the language`);
}
console.log(`bench structured --grammars: ${j.completed} outputs in the language`);
EOF
else
  echo "note: $VOCAB absent; bench structured not checked"
fi
echo "PASS"
