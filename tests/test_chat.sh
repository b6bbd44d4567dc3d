#!/usr/bin/env bash
# test_chat.sh — `tinyvllm chat` end to end on a synthetic model with a real vocabulary
# (Llama-2 SentencePiece, BOS "<s>") and the Llama-3.2 chat template:
#   turns, /reset, /quit; the prompt chat builds is byte-identical to what `tinyvllm template`
#   renders for the same messages (the Hugging Face-compatible renderer), and it tokenizes to one
#   BOS (written by the template, added by the vocabulary: one, not doubled); history truncation on
#   a small --ctx keeps the system prompt and the newest message; a message too long for the
#   context is an error line and the chat continues; the plain fallback is announced once; greedy
#   and seeded runs are deterministic.
# usage: bash test_chat.sh <tinyvllm-binary> <shared-dir>     (exit 77 = skipped)
set -u
BIN=${1:?tinyvllm binary}
SHARED=${2:-}
VOCAB=$SHARED/vocab/ggml-vocab-llama-spm.gguf
TPL=$SHARED/chat-templates/meta-llama-Llama-3.2-3B-Instruct.jinja
if [[ -z $SHARED || ! -f $VOCAB || ! -f $TPL ]]; then echo "skip: shared data absent ($SHARED)"; exit 77; fi

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

"$BIN" synth --preset tiny --vocab "$VOCAB" -o "$W/m.gguf" >/dev/null || { echo "FAIL: synth"; exit 1; }
CHAT=("$BIN" chat -m "$W/m.gguf" -t 1)

# ---- 1. two replies, /reset acknowledged and effective, /quit ends before later lines ----
printf 'hello\n/reset\nagain\n/quit\nnever sent\n' |
    "${CHAT[@]}" --chat-template "$TPL" -n 12 --temp 0 --dump-prompt "$W/r" >"$W/r.out" 2>"$W/r.err"
rc=$?
n_replies=$(grep -c 'tok/s | reply' "$W/r.err")
if [[ $rc -eq 0 && $n_replies -eq 2 ]] && grep -q 'history cleared' "$W/r.err"; then ok "two replies, /reset acknowledged, exit 0"
else fail "basic session: rc=$rc replies=$n_replies"; cat "$W/r.err"; fi
# after /reset the second prompt is the first one with the new message: nothing of turn 1 is left
if [[ -f $W/r-1.txt && -f $W/r-2.txt ]] && cmp -s <(sed 's/hello/again/' "$W/r-1.txt") "$W/r-2.txt"; then ok "/reset clears the history"
else fail "/reset: second prompt is not the first one with the new message"; fi
[[ -f $W/r-3.txt ]] && fail "/quit did not stop reading"
grep -q 'plain' "$W/r.err" && fail "template given, yet the plain fallback was announced"

# ---- 2. a 2-turn prompt is what `tinyvllm template` renders; one BOS after tokenization ----
printf 'hello\nhow are you?\n' | "${CHAT[@]}" --chat-template "$TPL" -n 12 --temp 0 --dump-prompt "$W/t" >"$W/t.out" 2>"$W/t.err"
"$BIN" template --template "$TPL" --messages "$W/t-2.json" --bos-token '<s>' --eos-token '</s>' >"$W/ref.txt"
if cmp -s "$W/ref.txt" "$W/t-2.txt"; then ok "turn-2 prompt byte-identical to tinyvllm template"
else fail "turn-2 prompt differs from tinyvllm template"; diff "$W/ref.txt" "$W/t-2.txt" | head; fi
# the messages behind it: user, assistant (the first reply as shown), user
if command -v python3 >/dev/null; then
    if python3 - "$W/t-2.json" "$W/t.out" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))
shown = open(sys.argv[2], encoding="utf-8", errors="replace").read()
assert [x["role"] for x in m] == ["user", "assistant", "user"], m
assert m[0]["content"] == "hello" and m[2]["content"] == "how are you?", m
assert m[1]["content"] and shown.startswith(m[1]["content"]), (m[1]["content"], shown[:80])
EOF
    then ok "turn-2 history: user, assistant (= reply 1 as shown), user"; else fail "turn-2 history contents"; fi
fi
ids=$("$BIN" tokenize -m "$W/m.gguf" --special --no-bos --file "$W/t-2.txt")
read -r -a arr <<<"$ids"
n_prompt=$(grep -o 'prompt [0-9]* tok' "$W/t.err" | sed -n 2p | grep -o '[0-9]*')
if [[ ${arr[0]} == 1 && ${arr[1]} != 1 && ${#arr[@]} == "$n_prompt" ]]; then ok "turn-2 prompt: $n_prompt tokens, one BOS"
else fail "turn-2 tokens: first ${arr[0]} ${arr[1]}, ${#arr[@]} ids vs chat's '$n_prompt'"; fi

# ---- 2b. --chat-template-kwargs reach the template (Qwen3 without thinking: an empty think block) ----
QWEN3=$SHARED/chat-templates/Qwen-Qwen3-0.6B.jinja
if [[ -f $QWEN3 ]]; then
    printf 'hello\n' | "${CHAT[@]}" --chat-template "$QWEN3" --chat-template-kwargs '{"enable_thinking": false}' -n 4 --temp 0 \
        --dump-prompt "$W/q" >/dev/null 2>"$W/q.err"
    printf '{"enable_thinking": false}' >"$W/kw.json"
    "$BIN" template --template "$QWEN3" --messages "$W/q-1.json" --bos-token '<s>' --eos-token '</s>' --kwargs "$W/kw.json" >"$W/qref.txt"
    if cmp -s "$W/qref.txt" "$W/q-1.txt" && [[ $(tail -c 19 "$W/q-1.txt" | head -c 7) == '<think>' ]]; then
        ok "--chat-template-kwargs: the prompt ends with Qwen3's empty think block, as tinyvllm template --kwargs renders it"
    else fail "--chat-template-kwargs prompt"; cat "$W/q.err"; tail -c 80 "$W/q-1.txt"; fi
    "${CHAT[@]}" --chat-template "$QWEN3" --chat-template-kwargs '[1]' </dev/null >/dev/null 2>"$W/qbad.err"
    if [[ $? -eq 1 ]] && grep -q 'expected a JSON object' "$W/qbad.err"; then ok "--chat-template-kwargs not an object: refused"
    else fail "--chat-template-kwargs '[1]' accepted"; fi
fi

# ---- 3. history truncation on a small context ----
# ctx 200, 16 new tokens per reply -> the prompt may take 184 tokens; the system prompt and the
# template's date header take ~120, so the third exchange has to push out the oldest.
msgs='the first question about rivers\nthe second question about mountains\nthe third question about oceans\n'
printf "$msgs" | "${CHAT[@]}" --chat-template "$TPL" --ctx 200 -n 16 --temp 0 --system 'You are terse.' \
    --dump-prompt "$W/h" >"$W/h.out" 2>"$W/h.err"
rc=$?
if [[ $rc -eq 0 ]] && grep -q 'context full: dropped the oldest' "$W/h.err" && [[ $(grep -c 'tok/s | reply' "$W/h.err") -eq 3 ]]
then ok "truncation notice, three replies"; else fail "truncation: rc=$rc"; cat "$W/h.err"; fi
last=$(ls "$W"/h-*.txt | sort -V | tail -1)
if grep -q 'You are terse.' "$last" && grep -q 'oceans' "$last" && ! grep -q 'rivers' "$last"; then
    ok "after truncation: system prompt and newest message kept, oldest dropped"
else fail "truncated prompt content"; fi
while read -r n; do (( n <= 184 )) || fail "a prompt of $n tokens exceeds the 184-token budget"; done < <(grep -o 'prompt [0-9]* tok' "$W/h.err" | grep -o '[0-9]*')

# a single message too long for the context: an error line, and the chat goes on
long=$(for i in $(seq 1 150); do printf 'word%d ' "$i"; done)
printf 'hi\n%s\nstill here\n' "$long" | "${CHAT[@]}" --chat-template "$TPL" --ctx 200 -n 16 --temp 0 >"$W/l.out" 2>"$W/l.err"
rc=$?
if [[ $rc -eq 0 ]] && grep -q 'message not sent' "$W/l.err" && [[ $(grep -c 'tok/s | reply' "$W/l.err") -eq 2 ]]; then
    ok "too-long message: error line, chat continues"
else fail "too-long message: rc=$rc"; cat "$W/l.err"; fi

# a line that is not UTF-8: an error that points into the line, and the chat goes on
printf 'caf\xe9\nok\n' | "${CHAT[@]}" -n 4 --temp 0 >/dev/null 2>"$W/b.err"; rc=$?
if [[ $rc -eq 0 ]] && grep -q 'your message: invalid UTF-8 at byte offset 3' "$W/b.err" && [[ $(grep -c 'tok/s | reply' "$W/b.err") -eq 1 ]]; then
    ok "invalid UTF-8 line: error with its offset, chat continues"
else fail "invalid UTF-8 line: rc=$rc"; cat "$W/b.err"; fi

# ---- 4. plain fallback for a model without a template, announced once ----
printf 'hello\nagain\n' | "${CHAT[@]}" -n 8 --temp 0 --dump-prompt "$W/p" >"$W/p.out" 2>"$W/p.err"
rc=$?
if [[ $rc -eq 0 && $(grep -c 'plain' "$W/p.err") -eq 1 ]] && head -c 12 "$W/p-2.txt" | grep -q '^User: hello' &&
   [[ $(tail -c 11 "$W/p-2.txt") == $'\nAssistant:' ]]; then ok "plain fallback: notice once, User:/Assistant: transcript"
else fail "plain fallback: rc=$rc"; cat "$W/p.err"; fi

# ---- 5. determinism: greedy, and sampling with a seed ----
for args in "--temp 0" "--temp 0.9 --seed 7"; do
    # shellcheck disable=SC2086
    printf 'hello\nagain\n' | "${CHAT[@]}" --chat-template "$TPL" -n 16 $args >"$W/d1.out" 2>/dev/null
    # shellcheck disable=SC2086
    printf 'hello\nagain\n' | "${CHAT[@]}" --chat-template "$TPL" -n 16 $args >"$W/d2.out" 2>/dev/null
    if [[ -s $W/d1.out ]] && cmp -s "$W/d1.out" "$W/d2.out"; then ok "deterministic ($args)"; else fail "not deterministic ($args)"; fi
done

# ---- 6. usage errors ----
"${CHAT[@]}" --bogus </dev/null >/dev/null 2>"$W/u.err"; rc=$?
[[ $rc -eq 2 && $(wc -l <"$W/u.err") -eq 1 ]] && ok "unknown flag: exit 2, one line" || fail "unknown flag: rc=$rc"
"${CHAT[@]}" -n 256 </dev/null >/dev/null 2>"$W/u.err"; rc=$?
[[ $rc -eq 2 ]] && ok "-n >= context: exit 2" || fail "-n >= context: rc=$rc"
"${CHAT[@]}" --chat-template "$W/none.jinja" </dev/null >/dev/null 2>"$W/u.err"; rc=$?
[[ $rc -eq 1 ]] && grep -q 'none.jinja' "$W/u.err" && ok "missing template file: exit 1" || fail "missing template: rc=$rc"

# a template that refuses the conversation's shape is reported once, at start
GEMMA=$SHARED/chat-templates/google-gemma-2-2b-it.jinja
if [[ -f $GEMMA ]]; then
    echo hello | "${CHAT[@]}" --chat-template "$GEMMA" --system 'Be brief.' >/dev/null 2>"$W/u.err"; rc=$?
    [[ $rc -eq 1 && $(wc -l <"$W/u.err") -eq 1 ]] && grep -q 'System role not supported' "$W/u.err" &&
        ok "template rejecting a system prompt: one line at start, exit 1" || fail "gemma --system: rc=$rc"
fi

# ---- 7. Ctrl-C: during a reply it aborts that reply; at the prompt it quits (exit 0) ----
# A bigger model (~150 tok/s on one core) so that 400 tokens take seconds; SIGINT goes out as
# soon as the first reply text shows up.
"$BIN" synth --preset demo --vocab "$VOCAB" -o "$W/demo.gguf" >/dev/null 2>&1 || fail "synth demo"
mkfifo "$W/in"
"$BIN" chat -m "$W/demo.gguf" -t 1 -n 400 --temp 0 <"$W/in" >"$W/c.out" 2>"$W/c.err" &
pid=$!
exec 3>"$W/in"
printf 'hello\n' >&3
wait_for() {   # wait_for CMD...: poll up to 60 s
    for _ in $(seq 1 6000); do "$@" && return 0; sleep 0.01; done
    return 1
}
n_finish() { [[ $(grep -c 'finish' "$W/c.err") -ge $1 ]]; }
grew() { [[ $(stat -c %s "$W/c.out") -gt $1 ]]; }
wait_for grew 0 && kill -INT "$pid"
wait_for n_finish 1
size=$(stat -c %s "$W/c.out")
printf 'again\n' >&3
wait_for grew "$size" && kill -INT "$pid"
wait_for n_finish 2
kill -INT "$pid" 2>/dev/null
exited() { [[ ! -e /proc/$pid ]] || grep -qs '^[0-9]* (.*) Z' "/proc/$pid/stat"; }
wait_for exited; quit_by_sigint=$?   # stdin is still open: only the Ctrl-C can end it
exec 3>&-
wait "$pid"
rc=$?
if [[ $rc -eq 0 && $quit_by_sigint -eq 0 && $(grep -c 'finish aborted' "$W/c.err") -eq 2 ]]; then
    ok "Ctrl-C aborts a reply (twice, the chat goes on), Ctrl-C at the prompt quits with 0"
else fail "Ctrl-C: rc=$rc, quit at the prompt: $quit_by_sigint"; cat "$W/c.err"; fi

if [[ $fails -ne 0 ]]; then echo "$fails failure(s)"; exit 1; fi
echo "all chat tests passed"
