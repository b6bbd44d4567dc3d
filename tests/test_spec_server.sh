#!/usr/bin/env bash
# test_spec_server.sh BIN SHARED — `tinyvllm serve --draft-model` over a real socket: stories260K
# with its first 3 layers as the draft (`convert layers`); 8 concurrent greedy completions (curl)
# and one through the official `openai` npm client (when tests/js/node_modules has it) give the
# text of a server without speculation, with the load gate and with --spec-always; a sampled
# request completes; /metrics shows the load gate's decisions and series, and (every round
# speculating) the vllm:spec_decode_* counters moving (per position too).
set -u
. "$(dirname "$0")/test_server_common.bash"
srv_setup "$1" "$2"
M=$SRV_SHARED/models/stories260K.gguf
[ -f "$M" ] || srv_skip "$M is absent"
SRV_MODEL_ARGS=(-m "$M")
"$SRV_BIN" convert layers "$M" --layers 3 -o "$SRV_TMP/draft3.gguf" >/dev/null 2>&1 || { echo "FAIL: convert layers"; exit 1; }
bad=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }
BODY='{"prompt":"Once upon a time","max_tokens":48,"temperature":0}'
text_of() { sed -E 's/.*"text":"(([^"\\]|\\.)*)".*/\1/' "$1"; }

srv_start --max-num-seqs 8
curl -s -H 'Content-Type: application/json' -d "$BODY" "$SRV_URL/v1/completions" >"$SRV_TMP/plain.json" || fail "plain completion"
srv_stop || bad=$((bad + 1))
want=$(text_of "$SRV_TMP/plain.json")
[ -n "$want" ] || fail "no text from the plain server: $(cat "$SRV_TMP/plain.json")"

metric() { grep -E "^$1(\{[^}]*\})? " "$SRV_TMP/metrics" | grep -F "$2" | awk '{print $2}'; }
# twice: with the load gate (its decisions come from this machine's round times: the text must not
# depend on them) and with --spec-always (every round speculates: the counters must move)
for how in gate always; do
    extra=()
    [ $how = always ] && extra=(--spec-always)
    srv_start --model-alias spec-test --max-num-seqs 8 --draft-model "$SRV_TMP/draft3.gguf" --spec-tokens 4 "${extra[@]}"
    pids=()
    for i in 1 2 3 4 5 6 7 8; do
        curl -s -H 'Content-Type: application/json' -d "$BODY" "$SRV_URL/v1/completions" >"$SRV_TMP/spec$i.json" &
        pids+=($!)
    done
    wait "${pids[@]}"   # (a bare wait would wait for the server too)
    for i in 1 2 3 4 5 6 7 8; do
        [ "$(text_of "$SRV_TMP/spec$i.json")" = "$want" ] || fail "request $i with the draft model ($how): $(cat "$SRV_TMP/spec$i.json")"
    done
    curl -s -H 'Content-Type: application/json' -d '{"prompt":"Once upon a time","max_tokens":32,"temperature":0.9,"seed":7}' \
        "$SRV_URL/v1/completions" >"$SRV_TMP/sampled.json"
    grep -q '"finish_reason":"\(length\|stop\)"' "$SRV_TMP/sampled.json" || fail "sampled request ($how): $(cat "$SRV_TMP/sampled.json")"
    if [ $how = always ] && [ -d "$SRV_JS/node_modules/openai" ]; then
        got=$(cd "$SRV_JS" && node --input-type=module -e '
            import OpenAI from "openai";
            const c = new OpenAI({ baseURL: process.env.SRV_URL + "/v1", apiKey: "none" });
            const r = await c.completions.create({ model: "spec-test", prompt: "Once upon a time", max_tokens: 48, temperature: 0 });
            process.stdout.write(JSON.stringify(r.choices[0].text).slice(1, -1));') || fail "openai client"
        [ "$got" = "$want" ] || fail "openai client with the draft model: '$got', want '$want'"
    elif [ $how = always ]; then
        echo "note: tests/js/node_modules/openai missing: the openai client check is skipped"
    fi
    curl -s "$SRV_URL/metrics" >"$SRV_TMP/metrics"
    if [ $how = gate ]; then   # every round with guesses decided, one way or the other
        rounds=$(metric tinyvllm:spec_decode_rounds_total 'decision="speculate"')
        plain=$(metric tinyvllm:spec_decode_rounds_total 'decision="plain"')
        echo "load gate: $rounds rounds speculated, $plain plain"
        [ $((${rounds:-0} + ${plain:-0})) -gt 0 ] && grep -qE '^tinyvllm:spec_decode_enabled\{[^}]*\} [01]$' "$SRV_TMP/metrics" &&
            grep -qE '^tinyvllm:spec_decode_round_tokens\{[^}]*\} [0-4]$' "$SRV_TMP/metrics" &&
            grep -qE '^tinyvllm:spec_decode_predicted_tokens_per_second\{[^}]*decision="plain"\} [0-9]' "$SRV_TMP/metrics" ||
            fail "load gate metrics: $(grep spec_decode "$SRV_TMP/metrics")"
    else
        drafts=$(metric vllm:spec_decode_num_drafts_total model_name)
        accepted=$(metric vllm:spec_decode_num_accepted_tokens_total model_name)
        pos0=$(metric vllm:spec_decode_num_accepted_tokens_per_pos_total 'position="0"')
        echo "metrics: $drafts verifications, $accepted accepted, $pos0 at position 0"
        [ "${drafts:-0}" -gt 0 ] && [ "${accepted:-0}" -gt 0 ] && [ "${pos0:-0}" -gt 0 ] ||
            fail "spec counters did not move: $(grep spec_decode "$SRV_TMP/metrics")"
    fi
    [ $how = always ] || { srv_stop || bad=$((bad + 1)); }
done
srv_stop || bad=$((bad + 1))
[ $bad = 0 ] && echo "spec server: ok"
exit $((bad > 0))
