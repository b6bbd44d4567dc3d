// server_backpressure.test.mjs — a server started with --max-num-seqs 1 --max-queue 1 (two
// sequences in flight at most) under 48 concurrent requests: every answer is either a complete 200
// or a 429 in OpenAI's error format with Retry-After; a request that can never fit is a 400; the
// engine ends idle with every KV block free. Env: SRV_URL. (How many 429s depends on timing, so it
// is printed, not asserted.)
import { test } from 'node:test';
import assert from 'node:assert/strict';

const URL_ = process.env.SRV_URL;
const post = (body) => fetch(`${URL_}/v1/completions`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
});

test('n beyond the server capacity is a 400, not a 429', async () => {
  const r = await post({ prompt: 'Once', max_tokens: 2, n: 3 });
  assert.equal(r.status, 400);
  const j = await r.json();
  assert.equal(j.error.param, 'n');
});

test('overload answers 429 with Retry-After, everything else completes', async () => {
  let ok = 0, limited = 0;
  await Promise.all(Array.from({ length: 48 }, async (_, i) => {
    const r = await post({ prompt: `Once upon a time ${i}`, max_tokens: 60, ignore_eos: true, seed: i });
    const j = await r.json();
    if (r.status === 200) {
      assert.equal(j.usage.completion_tokens, 60);
      assert.equal(j.choices[0].finish_reason, 'length');
      ok++;
    } else {
      assert.equal(r.status, 429, JSON.stringify(j));
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(j.error.code, 'rate_limit_exceeded');
      assert.equal(typeof j.error.message, 'string');
      limited++;
    }
  }));
  console.log(`200: ${ok}, 429: ${limited}`);
  assert.equal(ok + limited, 48);
  assert.ok(ok >= 1);
  const m = await (await fetch(`${URL_}/metrics`)).text();
  const g = (n) => Number(new RegExp(`^tinyvllm:${n}\\{[^}]*\\} (\\S+)$`, 'm').exec(m)[1]);
  assert.equal(g('num_requests_running'), 0);
  assert.equal(g('num_kv_blocks_free'), g('num_kv_blocks_total'));
});
