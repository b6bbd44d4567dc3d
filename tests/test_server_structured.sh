#!/usr/bin/env bash
# test_server_structured.sh BIN SHARED — structured output through the official `openai` npm client,
# unmodified, against a real `tinyvllm serve`; every constrained output is validated by ajv
# (tests/js/server_structured.test.mjs). Random weights (a synthesized GGUF with the Llama-2 vocab)
# are the hard case: only the mask keeps the output valid. Exit 77 when node_modules or the models
# are missing.
set -u
. "$(dirname "$0")/test_server_common.bash"
srv_setup "$1" "$2"
[ -d "$SRV_JS/node_modules/openai" ] && [ -d "$SRV_JS/node_modules/ajv" ] || srv_skip "tests/js/node_modules (openai, ajv) missing (run scripts/setup.sh)"
export TV_API_KEY=test-key-123
rc=0
srv_use_synth || echo "note: synth or the Llama-2 vocab unavailable; using aidreams260K"
srv_start --api-key "$TV_API_KEY" --model-alias tiny-test --chat-template "$SRV_TPL" --max-num-seqs 16
(cd "$SRV_JS" && TV_MODEL_ID=tiny-test node --test --test-reporter=spec server_structured.test.mjs) || rc=1
srv_stop || rc=1
exit $rc
