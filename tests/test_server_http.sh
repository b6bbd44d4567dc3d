#!/usr/bin/env bash
# test_server_http.sh BIN SHARED — raw HTTP against a real `tinyvllm serve`: malformed JSON, wrong
# types, huge bodies, slow/partial/abandoned requests, unknown routes, HEAD/OPTIONS
# (tests/js/server_raw.test.mjs, node built-ins only), plus curl checks of the basics.
set -u
. "$(dirname "$0")/test_server_common.bash"
srv_setup "$1" "$2"
srv_start --chat-template "$SRV_TPL" --max-num-seqs 4
rc=0
check() {  # check NAME EXPECTED_STATUS curl-args...
    local name=$1 want=$2; shift 2
    local got
    got=$(curl -s -o "$SRV_TMP/body" -w '%{http_code}' "$@")
    if [ "$got" != "$want" ]; then echo "FAIL $name: status $got, want $want: $(head -c 300 "$SRV_TMP/body")"; rc=1
    else echo "ok   $name ($got)"; fi
}
check health 200 "$SRV_URL/health"
check models 200 "$SRV_URL/v1/models"
check completion 200 "$SRV_URL/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":4}'
check malformed 400 "$SRV_URL/v1/completions" -d '{"prompt":'
check unknown-route 404 "$SRV_URL/v1/nothing"
check wrong-method 405 -X PUT "$SRV_URL/v1/models"
check head 200 -I "$SRV_URL/v1/models"
check too-long-prompt 400 "$SRV_URL/v1/completions" -d "{\"prompt\":\"$(printf 'once upon a time %.0s' $(seq 1 40))\"}"
(cd "$SRV_JS" && node --test --test-reporter=spec server_raw.test.mjs) || rc=1
check still-serving 200 "$SRV_URL/v1/completions" -d '{"prompt":"Once","max_tokens":2}'
srv_stop || rc=1
exit $rc
