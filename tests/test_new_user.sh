#!/usr/bin/env bash
# test_new_user.sh — a new user's session, scripted: each of issue 19's ten points as a user meets it.
#   bash tests/test_new_user.sh <tinyvllm-binary> <shared-dir>      (exit 77 = skipped)
#  1/10. `make run MODEL=.. TOKENIZER=..` on a ../shared model: no build noise, the command shown,
#        the timing line on a line of its own when everything goes to one pipe (Release builds only:
#        make configures BUILD as Release)
#  2. bench / synth draw a progress line on a terminal (script(1) gives them one), none into a pipe
#     or with --quiet
#  3. the test summary lists skipped tests and unit cases with reasons, and counts them
#  4. aidreams260K.bin and its GGUF conversion stop at the same token, and chat never shows "</s>"
#  5. serve with a template-less model warns at start and answers /v1/chat/completions (200)
#  6. llama.cpp flags: -c, --n-predict, -s, -f FILE and -f - (stdin), --temperature; --version
#  7. chat in a terminal (tmux): arrow keys recall history (no escape bytes reach the model), an
#     unknown /command is answered locally, Ctrl-C stops a reply and the chat goes on, Ctrl-C at the
#     prompt quits with status 0
#  8. wrong-kind files are named for what they are
#  9. clamped values are noted; detokenize without ids is a usage error
set -u
BIN=$(cd "$(dirname "${1:?usage: test_new_user.sh <tinyvllm-binary> <shared-dir>}")" && pwd)/$(basename "$1")
SHARED=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(dirname "$BIN")
M=$SHARED/models
AID=$M/aidreams260K.bin AIDTOK=$M/aidreams260K.tok512.bin STORIES=$M/stories260K.gguf
if [ ! -f "$AID" ] || [ ! -f "$AIDTOK" ] || [ ! -f "$STORIES" ]; then
  echo "skip: the ../shared models are absent ($M)"; exit 77
fi
W=$(mktemp -d)
TMUX_SESSION=chat
TMUX_SOCKET=tv-new-user-$$   # a tmux server of its own (tmux -L)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  tmux -L "$TMUX_SOCKET" kill-server 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
bad=0 bad_before=0
fail() { echo "FAIL: $*"; bad=$((bad + 1)); }
ok() { [ "$bad" -eq "$bad_before" ] && echo "ok: $*"; bad_before=$bad; }

# ---- 1 / 10: make run
if grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$BUILD/CMakeCache.txt" 2>/dev/null && command -v make >/dev/null; then
  # (lines "setup: ..." say that scripts/setup.sh installed something: only when something was missing)
  make -s -C "$ROOT" run BUILD="$BUILD" MODEL="$AID" TOKENIZER="$AIDTOK" N=24 ARGS="--temp 0" >"$W/run-all.txt" 2>&1 \
    || fail "make run MODEL=aidreams260K.bin TOKENIZER=...: exit $?: $(cat "$W/run-all.txt")"
  grep -v '^setup: ' "$W/run-all.txt" >"$W/run.txt"
  first=$(head -1 "$W/run.txt")
  [[ $first == "\$ $BUILD/tinyvllm generate -m $AID --tokenizer $AIDTOK"* ]] || fail "make run: the first line is not the command: $first"
  [ "$(wc -l <"$W/run.txt")" -eq 3 ] || fail "make run: want 3 lines (command, text, timing), got: $(cat "$W/run.txt")"
  grep -qE '^tinyvllm: load .* \| finish ' "$W/run.txt" || fail "make run: the timing line is not on a line of its own: $(cat "$W/run.txt")"
  make -s -C "$ROOT" run BUILD="$BUILD" MODEL="$M/stories260K.bin" N=4 >"$W/run2.txt" 2>&1 && fail "make run on a .bin without TOKENIZER succeeded"
  grep -q "TOKENIZER=" "$W/run2.txt" || fail "make run on a .bin without a tokenizer does not say TOKENIZER=: $(cat "$W/run2.txt")"
  ok "make run: quiet build, the command shown, timing on its own line, TOKENIZER= hint"
else
  echo "skipped the make run part: $BUILD is not a Release build (make would reconfigure it)"
fi

# ---- 2: progress lines on a terminal only
on_tty() { script -qec "$1" /dev/null >"$2" 2>&1; }
on_tty "$BIN bench -m $STORIES -p 16 -n 8 -r 2" "$W/bench-tty.txt" || fail "bench on a terminal failed: $(cat "$W/bench-tty.txt")"
grep -q $'\rbench: rep 1/2: running pp16' "$W/bench-tty.txt" || fail "bench on a terminal: no progress line"
on_tty "$BIN bench -m $STORIES -p 16 -n 8 -r 2 --quiet" "$W/bench-q.txt"
grep -q 'bench: rep' "$W/bench-q.txt" && fail "bench --quiet drew a progress line"
"$BIN" bench -m "$STORIES" -p 16 -n 8 -r 2 >"$W/bench-pipe.txt" 2>&1 || fail "bench into a pipe failed"
grep -q 'bench: rep' "$W/bench-pipe.txt" && fail "bench drew a progress line into a pipe"
on_tty "$BIN synth --preset tiny -o $W/tiny.gguf" "$W/synth-tty.txt" || fail "synth on a terminal failed"
grep -q $'\rsynth: writing' "$W/synth-tty.txt" || fail "synth on a terminal: no progress line"
"$BIN" synth --preset tiny -o "$W/tiny.gguf" 2>&1 | grep -q 'synth: writing' && fail "synth drew a progress line into a pipe"
ok "progress lines: bench and synth on a terminal, none into a pipe or with --quiet"

# ---- 3: the test summary
mkdir -p "$W/sum/Testing/Temporary"
cat >"$W/sum/Testing/ctest.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite tests="3" failures="0" skipped="1">
  <testcase name="test_a" status="run"><system-out>x</system-out></testcase>
  <testcase name="sh_b" status="notrun"><skipped message="SKIP_RETURN_CODE=77"/><system-out>skip: node missing
</system-out></testcase>
  <testcase name="test_c" status="run"><system-out>y</system-out></testcase>
</testsuite>
XML
cat >"$W/sum/Testing/Temporary/LastTest.log" <<'LOG'
1/3 Test: test_a
Command: "test_a"
Output:
----------------------------------------------------------
[==========] Running 2 test(s).
[ RUN      ] case_one
skipped: ../shared is absent
[  SKIPPED ] case_one
[ RUN      ] case_two
[       OK ] case_two
[==========] 2 test(s) run.
[  SKIPPED ] 1 test(s), listed below:
[  SKIPPED ] case_one
<end of output>
LOG
python3 "$ROOT/scripts/test_summary.py" "$W/sum" >"$W/sum.txt" || fail "test_summary.py failed"
grep -q "sh_b: the whole test: skip: node missing" "$W/sum.txt" || fail "summary: the skipped test's reason is missing: $(cat "$W/sum.txt")"
grep -q "test_a: 1 case skipped (case_one): skipped: ../shared is absent" "$W/sum.txt" || fail "summary: the skipped case is missing: $(cat "$W/sum.txt")"
grep -q "tests: 2 ran (2 passed, 0 failed), 1 skipped; unit cases skipped inside tests that ran: 1" "$W/sum.txt" || fail "summary counts: $(cat "$W/sum.txt")"
ok "test summary: skipped tests and cases with reasons, counts"

# ---- 4: end of generation, .bin vs its GGUF conversion
"$BIN" convert llama2c "$AID" "$AIDTOK" -o "$W/aid.gguf" >/dev/null || fail "convert aidreams260K.bin failed"
for seed in 2 3; do   # these seeds end the text with "</s>"
  "$BIN" generate -m "$AID" --tokenizer "$AIDTOK" -p Once -s $seed -n 120 --json 2>/dev/null >"$W/bin.json"
  "$BIN" generate -m "$W/aid.gguf" -p Once -s $seed -n 120 --json 2>/dev/null >"$W/gguf.json"
  python3 - "$W/bin.json" "$W/gguf.json" <<'PY' || fail "seed $seed: the .bin and the .gguf differ, or show </s>"
import json, sys
b, g = (json.load(open(p)) for p in sys.argv[1:3])
assert b["generated_ids"] == g["generated_ids"], (b["generated_ids"][-4:], g["generated_ids"][-4:])
assert b["finish_reason"] == g["finish_reason"] == "stop" and b["generated_ids"][-1] == 2, b
assert "</s>" not in b["text"] and "</s>" not in g["text"]
PY
done
printf 'Once upon a time\nTell me more\n' | "$BIN" chat -m "$AID" --tokenizer "$AIDTOK" -s 3 -n 100 >"$W/chat-aid.txt" 2>/dev/null
grep -q '</s>' "$W/chat-aid.txt" && fail "chat showed a literal </s>: $(cat "$W/chat-aid.txt")"
ok "end of generation: aidreams .bin and .gguf stop at </s> alike; chat shows no </s>"

# ---- 5: serve without a template
"$BIN" serve -m "$STORIES" --port 0 2>"$W/serve.err" &
SERVER_PID=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$W/serve.err")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "serve did not start: $(cat "$W/serve.err")"
grep -q 'warning: the model has no chat template; using a plain "User: ...\\nAssistant:" transcript' "$W/serve.err" \
  || fail "serve does not warn about the plain transcript: $(cat "$W/serve.err")"
code=$(curl -s -o "$W/chat.json" -w '%{http_code}' "http://127.0.0.1:$port/v1/chat/completions" \
  -d '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16,"temperature":0}')
[ "$code" = 200 ] || fail "chat completion without a template: HTTP $code: $(cat "$W/chat.json")"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=
ok "serve: warns about the plain transcript, chat completions answer 200"

# ---- 6: llama.cpp flags, --version
"$BIN" generate -m "$STORIES" -p "Once upon a time" --n-predict 12 -c 64 -s 7 --temperature 0 >"$W/g1.txt" 2>/dev/null || fail "generate with llama.cpp flags failed"
printf 'Once upon a time' >"$W/prompt.txt"
"$BIN" generate -m "$STORIES" -f "$W/prompt.txt" -n 12 --temp 0 >"$W/g2.txt" 2>/dev/null || fail "generate -f FILE failed"
printf 'Once upon a time' | "$BIN" generate -m "$STORIES" -f - -n 12 --temp 0 >"$W/g3.txt" 2>/dev/null || fail "generate -f - failed"
cmp -s "$W/g1.txt" "$W/g2.txt" && cmp -s "$W/g2.txt" "$W/g3.txt" || fail "-p, -f FILE and -f - give different text"
"$BIN" --version >"$W/version.txt" || fail "tinyvllm --version failed"
grep -qE '^tinyvllm [0-9a-f]{7,}' "$W/version.txt" && grep -qE '^kernels: (generic|avx2|avx512|amx)' "$W/version.txt" \
  || fail "--version lacks the revision or the kernel path: $(cat "$W/version.txt")"
ok "llama.cpp flags (-c, --n-predict, -s, --temperature, -f FILE, -f -) and --version"

# ---- 7: chat in a terminal
pane() { tmux -L "$TMUX_SOCKET" capture-pane -p -t "$TMUX_SESSION"; }
wait_for() {   # wait_for FILE-or-"pane" PATTERN: up to 60 s (the machine may be loaded)
  for _ in $(seq 600); do
    if [ "$1" = pane ]; then pane | grep -q -- "$2" && return 0; else grep -q -- "$2" "$1" 2>/dev/null && return 0; fi
    sleep 0.1
  done
  return 1
}
chat_in_terminal() {   # chat_in_terminal ROUND: 2 = a lost race with Ctrl-C, start again
  local round=$1 t try interrupted sent
  tmux -L "$TMUX_SOCKET" kill-server 2>/dev/null
  rm -rf "$W/home" "$W"/turn-* "$W/chat.err" "$W/chat.rc"
  mkdir -p "$W/home"
  tmux -L "$TMUX_SOCKET" new-session -d -s "$TMUX_SESSION" -x 200 -y 50 \
    "HOME='$W/home' '$BIN' chat -m '$STORIES' --temp 0 -n 1500 --dump-prompt '$W/turn' 2>'$W/chat.err'; echo \"EXIT \$?\" >'$W/chat.rc'"
  wait_for pane '^>' || fail "chat: no prompt in the terminal: $(pane)"
  tmux -L "$TMUX_SOCKET" send-keys -t "$TMUX_SESSION" "Once upon a time" Enter
  wait_for "$W/chat.err" 'finish' || fail "chat: no reply to the first message"
  tmux -L "$TMUX_SOCKET" send-keys -t "$TMUX_SESSION" "/bogus" Enter
  wait_for "$W/chat.err" "unknown command '/bogus' (not sent); commands: /reset" || fail "chat: /bogus not answered locally"
  tmux -L "$TMUX_SOCKET" send-keys -t "$TMUX_SESSION" Up Up Enter   # history: "/bogus", then "Once upon a time"
  wait_for "$W/turn-2.txt" 'User' || fail "chat: the recalled line was not sent"
  grep -q $'\e' "$W/turn-2.json" && fail "chat: escape bytes reached the model"
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); assert m[-1]['content']=='Once upon a time', m" "$W/turn-2.json" \
    || fail "chat: Up Up did not recall the first message"
  # Ctrl-C mid-reply. The 1,500-token stories260K reply takes ~0.5 s, so on a loaded machine it can
  # end before the key arrives: a reply that already finished is not interrupted, the message is sent
  # again (up to 5 times); a Ctrl-C that lands at the prompt anyway quits the chat, which is a lost
  # race, not a failure of Ctrl-C, and then the whole chat is started again (up to 3 times).
  interrupted=0 sent=0
  for try in 1 2 3 4 5; do
    t=$((try + 2))
    tmux -L "$TMUX_SOCKET" send-keys -t "$TMUX_SESSION" "Tell me a long story" Enter
    wait_for "$W/turn-$t.txt" 'long story' || { fail "chat: message $t was not sent"; return 1; }
    [ "$(grep -c finish "$W/chat.err")" -ge "$t" ] && continue   # the reply ended first: try again
    tmux -L "$TMUX_SOCKET" send-keys -t "$TMUX_SESSION" C-c
    sent=1
    for _ in $(seq 600); do
      grep -q 'finish aborted' "$W/chat.err" && { interrupted=1; break; }
      [ -f "$W/chat.rc" ] && break
      sleep 0.1
    done
    break
  done
  if [ $interrupted = 0 ]; then
    [ $sent = 1 ] || { fail "chat: each of 5 replies ended before Ctrl-C could be sent"; return 1; }
    if [ -f "$W/chat.rc" ] && grep -q 'EXIT 0' "$W/chat.rc" && [ "$round" -lt 3 ]; then
      return 2   # the reply ended just before the key arrived and Ctrl-C quit at the prompt: start over
    fi
    fail "chat: Ctrl-C did not stop the reply: $(tail -3 "$W/chat.err")"
    return 1
  fi
  t=$((t + 1))
  tmux -L "$TMUX_SOCKET" send-keys -t "$TMUX_SESSION" "And then" Enter
  wait_for "$W/turn-$t.json" 'And then' || fail "chat: no turn after Ctrl-C"
  python3 -c "import json,sys; json.load(open(sys.argv[1], encoding='utf-8', errors='strict'))" "$W/turn-$t.json" \
    || fail "chat: the history after Ctrl-C is not valid UTF-8 JSON"
  # Ctrl-C: stops this reply if it still runs (then a second Ctrl-C at the prompt), else quits
  tmux -L "$TMUX_SOCKET" send-keys -t "$TMUX_SESSION" C-c
  for _ in $(seq 600); do [ -f "$W/chat.rc" ] || [ "$(grep -c finish "$W/chat.err")" -ge "$t" ] && break; sleep 0.1; done
  sleep 0.3
  [ -f "$W/chat.rc" ] || tmux -L "$TMUX_SOCKET" send-keys -t "$TMUX_SESSION" C-c
  wait_for "$W/chat.rc" 'EXIT' || fail "chat: Ctrl-C at the prompt did not quit"
  grep -q 'EXIT 0' "$W/chat.rc" 2>/dev/null || fail "chat: exit status after Ctrl-C at the prompt: $(cat "$W/chat.rc" 2>/dev/null)"
  grep -q 'Once\\040upon' "$W/home/.tinyvllm_history" 2>/dev/null || fail "chat: no history file"
}
if command -v tmux >/dev/null; then
  for round in 1 2 3; do chat_in_terminal $round; [ $? = 2 ] || break; echo "chat: the reply ended as Ctrl-C arrived (round $round); again"; done
  ok "chat in a terminal: history recall, local /commands, Ctrl-C mid-reply and at the prompt"
else
  echo "skipped the chat-in-a-terminal part: tmux is missing (scripts/setup.sh installs it)"
fi

# ---- 8: wrong-kind files
expect_err() {   # expect_err STATUS NEEDLE ARGS...
  local want=$1 needle=$2; shift 2
  "$BIN" "$@" >/dev/null 2>"$W/err.txt"; local rc=$?
  [ $rc -eq "$want" ] || fail "tinyvllm $*: exit $rc, want $want"
  grep -qF -- "$needle" "$W/err.txt" || fail "tinyvllm $*: stderr lacks '$needle': $(cat "$W/err.txt")"
}
expect_err 1 "is a llama2.c model checkpoint (dim 64, 4 layers, vocab 512), not a tokenizer" tokenize -m "$AID" -p hi
"$BIN" convert llama2c "$AID" -o "$W/novocab.gguf" >/dev/null
expect_err 1 "is a GGUF model (llama, 38 tensors, without a tokenizer), not a tokenizer file" generate -m "$STORIES" --tokenizer "$W/novocab.gguf" -p hi
cp "$ROOT/README.md" "$W/README.gguf"
expect_err 1 'is a text file (starts "# tinyvllm"), not a model' generate -m "$W/README.gguf" -p hi
ok "wrong-kind files are named for what they are"

# ---- 9: clamped values, detokenize without ids
"$BIN" generate -m "$AID" --tokenizer "$AIDTOK" -p Once -n 500 -c 5000 -t 1024 --temp 0 >/dev/null 2>"$W/notes.txt" \
  || fail "generate with values to clamp failed: $(cat "$W/notes.txt")"
grep -q "note: -n 500: the prompt's .* tokens leave room for" "$W/notes.txt" || fail "no note for -n past the context: $(cat "$W/notes.txt")"
grep -q "note: -c 5000 is above the model's context of 128 tokens; using 128" "$W/notes.txt" || fail "no note for -c: $(cat "$W/notes.txt")"
[ "$(nproc)" -ge 1024 ] || grep -q "note: -t 1024 is more than the .* online cores" "$W/notes.txt" || fail "no note for -t: $(cat "$W/notes.txt")"
expect_err 2 "no token ids given" detokenize -m "$STORIES"
ok "clamped values noted; detokenize without ids is an error"

[ "$bad" -eq 0 ] || { echo "test_new_user: $bad failures"; exit 1; }
echo "test_new_user: ok"
