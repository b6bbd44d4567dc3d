#!/usr/bin/env bash
# test_pp_serve.sh — `mpirun -np N tinyvllm serve --pp N` (N = 2, 3) on this host:
#   - 64 mixed completion requests, 16 at a time, greedy, in a KV pool small enough to preempt
#     (--kv-mem 1: 816 tokens for up to ~350-token prompts):
#     every text identical to one process's, and the pipeline's preemptions and traffic (bytes per
#     generated token per stage boundary and back to rank 0) show in /metrics;
#   - a stage that hangs (SIGSTOP): the client gets 503 within --pp-timeout + a little, the
#     server says why and the whole job ends;
#   - a stage that dies (SIGKILL) mid-stream: the client's stream ends with an error promptly and
#     the job ends; nothing hangs.
# Skipped (77) without mpirun or curl, or when built without MPI.
#   bash tests/test_pp_serve.sh <tinyvllm-binary> <shared-dir>
set -u
BIN=${1:?usage: test_pp_serve.sh <tinyvllm-binary> <shared-dir>}
SHARED=${2:?shared dir}
M="$SHARED/models/stories260K.gguf"
[ -r "$M" ] || { echo "skipped: $M is absent"; exit 77; }
command -v mpirun >/dev/null || { echo "skipped: mpirun is not installed (scripts/setup.sh installs openmpi-bin)"; exit 77; }
command -v curl >/dev/null || { echo "skipped: curl is not installed"; exit 77; }
W=$(mktemp -d)
MPID=
cleanup() { [ -n "$MPID" ] && kill -KILL "$MPID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
"$BIN" generate -m "$M" -p x -n 1 --pp 2 >/dev/null 2>"$W/probe"
grep -q "built without MPI" "$W/probe" && { echo "skipped: $(cat "$W/probe")"; exit 77; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# under ASan (make asan) leak checks are off for the MPI processes: Open MPI keeps allocations until
# exit in plugins it has unloaded, which no suppression can name; test_pipeline checks the pipelined
# engine for leaks in one process
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
bad=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }

# start NP ARGS...: serve on a free port (mpirun when NP > 1); sets URL, MPID, LOG
N_START=0
start() {
  local np=$1
  shift
  N_START=$((N_START + 1))
  LOG=$W/serve.$N_START.log   # a fresh file: the previous job's log must not be read
  : >"$LOG"
  if [ "$np" = 1 ]; then
    "$BIN" serve -m "$M" --host 127.0.0.1 --port 0 -t 1 --no-cache "$@" >"$LOG" 2>&1 &
  else
    mpirun --oversubscribe -np "$np" "$BIN" serve -m "$M" --host 127.0.0.1 --port 0 -t 1 --no-cache --pp "$np" "$@" >"$LOG" 2>&1 &
  fi
  MPID=$!
  for _ in $(seq 1 300); do
    grep -q "listening on http://" "$LOG" && break
    kill -0 "$MPID" 2>/dev/null || { echo "server exited at start:"; cat "$LOG"; exit 1; }
    sleep 0.1
  done
  URL=http://127.0.0.1:$(grep -o 'listening on http://[^ ]*' "$LOG" | sed 's/.*://')
}

# stop: SIGTERM to the job (mpirun forwards it; the stages wait for rank 0's stop), all processes gone
stop() {
  kill -TERM "$MPID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$MPID" 2>/dev/null && fail "the job did not end 10 s after SIGTERM" && kill -KILL "$MPID"
  wait "$MPID" 2>/dev/null
  MPID=
}

# rank R's pid in the job started last
rank_pid() {
  local p
  for p in $(pgrep -P "$MPID"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && echo "$p"
  done
}

# 64 prompts of 1..100 words, 1..50 new tokens, 16 at a time -> one line per request in $1
run64() {
  seq 0 63 | xargs -P 16 -I{} bash -c '
    i={}; words=$(( (i * 37) % 100 + 1 )); n=$(( (i * 13) % 50 + 1 ))
    p=$(for w in $(seq 1 $words); do printf "w%d " $(( (w * 7 + i) % 50 )); done)
    r=$(curl -s --max-time 60 "$0/v1/completions" -H "Content-Type: application/json" \
        -d "{\"prompt\":\"Once upon a time $p\",\"max_tokens\":$n,\"temperature\":0}")
    echo "$i $(echo "$r" | sed -E "s/.*\"text\":(\"([^\"\\\\]|\\\\.)*\").*/\1/")"' "$URL" | sort -n >"$1"
}

start 1 --kv-mem 1
run64 "$W/one.txt"
stop
[ "$(grep -c '^[0-9]* "' "$W/one.txt")" = 64 ] || fail "one process: not 64 answers: $(head -3 "$W/one.txt")"
for np in 2 3; do
  start "$np" --kv-mem 1
  run64 "$W/pp$np.txt"
  curl -s "$URL/metrics" >"$W/metrics.txt"
  pre=$(awk '/^[a-z]*:num_preemptions_total[{ ]/ {print $NF}' "$W/metrics.txt")
  sent=$(awk '/^tinyvllm:pipeline_boundary_bytes_total[{ ]/ {print $NF}' "$W/metrics.txt")
  back=$(awk '/^tinyvllm:pipeline_reply_bytes_total[{ ]/ {print $NF}' "$W/metrics.txt")
  gen=$(awk '/^tinyvllm:generation_tokens_total[{ ]/ {print $NF}' "$W/metrics.txt")
  stop
  awk -v s="${sent:-0}" -v b="${back:-0}" -v g="${gen:-0}" 'BEGIN { exit !(s > 0 && b > 0 && g > 0) }' ||
    fail "--pp $np: /metrics has no pipeline traffic (${sent:-none} / ${back:-none} bytes, ${gen:-none} tokens)"
  echo "--pp $np: $(awk -v s="${sent:-0}" -v b="${back:-0}" -v g="${gen:-1}" 'BEGIN { printf "%.0f bytes per generated token per boundary, %.0f back", s / g, b / g }')"
  if cmp -s "$W/one.txt" "$W/pp$np.txt"; then echo "--pp $np: 64 requests, same texts as one process ($pre preemptions)"
  else fail "--pp $np: texts differ from one process: $(diff "$W/one.txt" "$W/pp$np.txt" | head -4)"; fi
  awk -v p="${pre:-0}" 'BEGIN { exit !(p > 0) }' || fail "--pp $np: no preemption happened (${pre:-none})"
done

# a stage that hangs: 503 within the timeout (+ 3 s), the job ends
start 2 --pp-timeout 2
R1=$(rank_pid 1)
[ -n "$R1" ] || fail "no rank 1 process under mpirun $MPID"
kill -STOP "$R1"
t0=$(date +%s.%N)
code=$(curl -s -o "$W/hang.json" -w "%{http_code}" --max-time 30 "$URL/v1/completions" -d '{"prompt":"Once","max_tokens":8}')
dt=$(echo "$(date +%s.%N) - $t0" | bc)
[ "$code" = 503 ] && grep -q "rank 1 .*died or hangs" "$W/hang.json" || fail "hung stage: HTTP $code $(cat "$W/hang.json")"
awk -v t="$dt" 'BEGIN { exit !(t < 5) }' || fail "hung stage: the answer took $dt s"
for _ in $(seq 1 150); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$MPID" 2>/dev/null && fail "hung stage: the job still runs 15 s later" && kill -KILL "$MPID"
grep -q "ending the job" "$LOG" || fail "hung stage: no message: $(cat "$LOG")"
echo "hung stage: HTTP $code after $dt s, job ended"
wait "$MPID" 2>/dev/null
MPID=

# a stage that dies mid-stream: the stream ends with an error promptly, the job ends
start 2 --pp-timeout 2
curl -sN --max-time 60 "$URL/v1/completions" -d '{"prompt":"Once","max_tokens":1500,"stream":true,"ignore_eos":true}' \
  >"$W/stream.txt" 2>&1 &
CURL=$!
sleep 1
t0=$(date +%s.%N)
R1=$(rank_pid 1)
[ -n "$R1" ] || fail "no rank 1 process under mpirun $MPID"
kill -KILL "$R1"
wait "$CURL"
dt=$(echo "$(date +%s.%N) - $t0" | bc)
grep -q '"text"' "$W/stream.txt" || fail "killed stage: the stream had not started"
grep -q '"finish_reason":"length"' "$W/stream.txt" && fail "killed stage: the stream finished normally"
grep -q '"error"' "$W/stream.txt" || ! grep -q '\[DONE\]' "$W/stream.txt" || fail "killed stage: the stream ended as if all went well"
awk -v t="$dt" 'BEGIN { exit !(t < 10) }' || fail "killed stage: the client waited $dt s"
for _ in $(seq 1 150); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$MPID" 2>/dev/null && fail "killed stage: the job still runs 15 s later" && kill -KILL "$MPID"
echo "killed stage: the client's stream ended after $dt s ($(tail -c 120 "$W/stream.txt" | tr '\n' ' ')), job ended"
wait "$MPID" 2>/dev/null
MPID=

[ $bad = 0 ] && echo "test_pp_serve: ok" || echo "test_pp_serve: $bad failures"
exit $((bad > 0))
