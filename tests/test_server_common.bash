# test_server_common.bash — sourced by tests/test_server_*.sh: start `tinyvllm serve` on a free
# loopback port with a real model from ../shared, stop it with SIGTERM and check it exits 0.
# (Not a test itself: ctest only runs tests/*.sh.)

srv_skip() { echo "SKIP: $*"; exit 77; }

# srv_setup BIN SHARED: checks what the tests need; sets SRV_MODEL_ARGS, SRV_TPL, SRV_JS.
srv_setup() {
    SRV_BIN=$1
    SRV_SHARED=$2
    SRV_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    SRV_JS=$SRV_HERE/js
    [ -x "$SRV_BIN" ] || srv_skip "no tinyvllm binary at '$SRV_BIN'"
    command -v node >/dev/null || srv_skip "node is not installed"
    command -v curl >/dev/null || srv_skip "curl is not installed"
    local m=$SRV_SHARED/models/aidreams260K.bin t=$SRV_SHARED/models/aidreams260K.tok512.bin
    [ -f "$m" ] && [ -f "$t" ] || srv_skip "shared model $m (and its tokenizer) not present"
    SRV_MODEL_ARGS=(-m "$m" --tokenizer "$t")
    SRV_TPL=$SRV_HERE/data/chat_simple.jinja
    SRV_TMP=$(mktemp -d)
    trap srv_cleanup EXIT
}

# srv_use_synth: switch to a synthesized tiny GGUF (random weights) with the real Llama-2
# SentencePiece vocab; returns 1 (and keeps the current model) when synth or the vocab is missing.
srv_use_synth() {
    local vocab=$SRV_SHARED/vocab/ggml-vocab-llama-spm.gguf
    [ -f "$vocab" ] || return 1
    "$SRV_BIN" synth --preset tiny --vocab "$vocab" -o "$SRV_TMP/tiny.gguf" >/dev/null 2>&1 || return 1
    SRV_MODEL_ARGS=(-m "$SRV_TMP/tiny.gguf")
}

srv_cleanup() {
    if [ -n "${SRV_PID:-}" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill -KILL "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    fi
    [ -n "${SRV_TMP:-}" ] && rm -rf "$SRV_TMP"
}

# srv_start EXTRA_ARGS...: starts the server on port 0 and reads the port it picked from its log.
srv_start() {
    SRV_LOG=$SRV_TMP/server.log
    "$SRV_BIN" serve "${SRV_MODEL_ARGS[@]}" --host 127.0.0.1 --port 0 -t 1 "$@" >"$SRV_LOG" 2>&1 &
    SRV_PID=$!
    local i
    for i in $(seq 1 300); do
        if grep -q "listening on http://" "$SRV_LOG"; then break; fi
        if ! kill -0 "$SRV_PID" 2>/dev/null; then echo "server exited at start:"; cat "$SRV_LOG"; exit 1; fi
        sleep 0.1
    done
    SRV_PORT=$(grep -o 'listening on http://[^ ]*' "$SRV_LOG" | sed 's/.*://')
    [ -n "$SRV_PORT" ] || { echo "server did not report its port:"; cat "$SRV_LOG"; exit 1; }
    SRV_URL=http://127.0.0.1:$SRV_PORT
    export SRV_URL
    echo "server pid $SRV_PID at $SRV_URL"
}

# srv_stop: SIGTERM, then the server must exit 0 on its own.
srv_stop() {
    kill -TERM "$SRV_PID"
    local rc=0
    wait "$SRV_PID" || rc=$?
    SRV_PID=
    if [ "$rc" != 0 ]; then echo "FAIL: server exited $rc after SIGTERM"; cat "$SRV_LOG"; return 1; fi
    echo "server stopped cleanly (exit 0)"
}
