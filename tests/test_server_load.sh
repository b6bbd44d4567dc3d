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

# back-pressure: at most 2 sequences in flight
srv_start --max-num-seqs 1 --max-queue 1
(cd "$SRV_JS" && node --test --test-reporter=spec server_backpressure.test.mjs) || rc=1
srv_stop || rc=1

# SIGTERM while 32 streams run: the server must still exit 0 (streams end with finish_reason
# "abort" or lose their connection; the clients only must not hang)
srv_start --max-num-seqs 4
(cd "$SRV_JS" && node -e '
  const u = process.env.SRV_URL;
  const one = async (i) => {
    try {
      const r = await fetch(`${u}/v1/completions`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt: `Once ${i}`, max_tokens: 100, ignore_eos: true, stream: true }) });
      for await (const _ of r.body) {}
      return "ended";
    } catch (e) { return "dropped"; }
  };
  (async () => {
    for (let round = 0; ; round++) {
      const res = await Promise.all(Array.from({ length: 32 }, (_, i) => one(i)));
      if (res.includes("dropped") || round > 1000) { console.log(`clients: round ${round}: ${res.filter((x) => x === "ended").length} ended, ${res.filter((x) => x === "dropped").length} dropped`); break; }
    }
  })();
' > "$SRV_TMP/clients.log" 2>&1) &
CLIENTS=$!
sleep 1
srv_stop || rc=1
wait "$CLIENTS" || { echo "FAIL: clients failed"; rc=1; }
cat "$SRV_TMP/clients.log"
exit $rc
