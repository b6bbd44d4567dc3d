#!/usr/bin/env bash
# test_server_openai.sh BIN SHARED — the official `openai` npm client, unmodified, against a real
# `tinyvllm serve` on loopback (tests/js/server_openai.test.mjs). Exit 77 when node_modules or the
# shared model is missing.
set -u
. "$(dirname "$0")/test_server_common.bash"
srv_setup "$1" "$2"
[ -d "$SRV_JS/node_modules/openai" ] || srv_skip "tests/js/node_modules/openai missing (run scripts/setup.sh)"
export TV_API_KEY=test-key-123
rc=0
# 1) a real trained llama2.c model (aidreams260K, 512-token vocab)
srv_start --api-key "$TV_API_KEY" --model-alias tiny-test --chat-template "$SRV_TPL" --max-num-seqs 8
(cd "$SRV_JS" && TV_MODEL_ID=tiny-test TV_TPL_STRICT=1 node --test --test-reporter=spec server_openai.test.mjs) || rc=1
srv_stop || rc=1
# 2) a synthesized GGUF with the real Llama-2 SentencePiece vocab (32000 tokens), served under its
#    own name (general.name),
#    and a real model's chat template (Qwen2.5's, with tool support) from shared/chat-templates
if srv_use_synth; then
    tpl=$SRV_SHARED/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja
    strict=0 tools=1
    [ -f "$tpl" ] || { tpl=$SRV_TPL; strict=1; tools=0; }
    srv_start --api-key "$TV_API_KEY" --chat-template "$tpl" --max-num-seqs 8
    (cd "$SRV_JS" && TV_MODEL_ID=tinyvllm-synth-tiny TV_TPL_STRICT=$strict TV_TPL_TOOLS=$tools \
        node --test --test-reporter=spec server_openai.test.mjs) || rc=1
    srv_stop || rc=1
else
    echo "note: tinyvllm synth or the Llama-2 vocab unavailable; the GGUF pass is skipped"
fi
exit $rc
