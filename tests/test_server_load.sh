#!/usr/bin/env bash
# test_server_load.sh BIN SHARED — bounded load: 32 concurrent streaming clients x 4 requests, some
# disconnecting mid-stream, against a real `tinyvllm serve` with a small running batch (so requests
# queue and get preempted); afterwards /metrics must show 0 running and every KV block free
# (tests/js/server_load.test.mjs, node built-ins only).
set -u
. "$(dirname "$0")/test_server_common.bash"
srv_setup "$1" "$2"
srv_start --chat-template "$SRV_TPL" --max-num-seqs 8 --max-queue 256
rc=0
(cd "$SRV_JS" && node --test --test-reporter=spec server_load.test.mjs) || rc=1
srv_stop || rc=1
exit $rc
