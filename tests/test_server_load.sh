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

# SIGTERM while 32 streams run: the server must exit 0, and every stream it accepted (HTTP 200)
# must end properly with "data: [DONE]" (finish_reason "abort" when cut short), never mid-stream.
srv_start --max-num-seqs 2
(cd "$SRV_JS" && node -e '
  const u = process.env.SRV_URL;
  const one = async (i) => {
    let r;
    try {
      r = await fetch(`${u}/v1/completions`, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt: `Once ${i}`, max_tokens: 110, ignore_eos: true, stream: true }) });
    } catch (e) { return "refused"; }
    if (r.status !== 200) { await r.text(); return r.status === 503 ? "refused" : `HTTP ${r.status}`; }
    let body = "";
    try { for await (const p of r.body) body += Buffer.from(p).toString(); } catch (e) { return "cut"; }
    if (!body.endsWith("data: [DONE]\n\n")) return "cut";
    return body.includes("\"finish_reason\":\"abort\"") ? "aborted" : "ended";
  };
  (async () => {
    const tally = {};
    for (let round = 0; round < 1000; round++) {
      const res = await Promise.all(Array.from({ length: 32 }, (_, i) => one(i)));
      for (const x of res) tally[x] = (tally[x] || 0) + 1;
      if (res.includes("refused")) break;
    }
    console.log("clients:", JSON.stringify(tally));
    process.exit(Object.keys(tally).every((k) => ["ended", "aborted", "refused"].includes(k)) ? 0 : 1);
  })();
' > "$SRV_TMP/clients.log" 2>&1) &
CLIENTS=$!
sleep 1
srv_stop || rc=1
wait "$CLIENTS" || { echo "FAIL: a stream was cut or failed during shutdown"; rc=1; }
cat "$SRV_TMP/clients.log"
exit $rc
