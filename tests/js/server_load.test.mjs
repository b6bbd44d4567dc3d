// server_load.test.mjs — bounded load against a running `tinyvllm serve` (node built-ins only).
// 32 concurrent streaming clients x 4 requests each (completions and chat), every 5th one
// disconnecting mid-stream. Asserts: no unexpected errors; every stream that ran to the end is
// well-formed SSE with exactly max_tokens tokens (ignore_eos) and a usage chunk; afterwards the
// engine is idle with every KV block free, and every engine request was counted finished exactly
// once (stop + length + abort == requests sent). Env: SRV_URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';

const URL_ = process.env.SRV_URL;
const CLIENTS = 32, PER_CLIENT = 4, MAX_TOKENS = 40;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function metrics() {
  const r = await fetch(`${URL_}/metrics`);
  assert.equal(r.status, 200);
  const text = await r.text();
  const get = (name, labels = '') => {
    const re = new RegExp(`^tinyvllm:${name}\\{[^}]*${labels}[^}]*\\} (\\S+)$`, 'm');
    const m = re.exec(text);
    return m ? Number(m[1]) : NaN;
  };
  return {
    running: get('num_requests_running'), waiting: get('num_requests_waiting'),
    total: get('num_kv_blocks_total'), free: get('num_kv_blocks_free'), usage: get('kv_cache_usage_perc'),
    stop: get('request_success_total', 'finished_reason="stop"'),
    length: get('request_success_total', 'finished_reason="length"'),
    abort: get('request_success_total', 'finished_reason="abort"'),
  };
}

// One streaming request; returns { completed, tokens } or throws on anything unexpected.
async function one(client, k) {
  const chat = (client + k) % 3 === 0;
  const disconnect = (client * PER_CLIENT + k) % 5 === 0;
  const body = chat
    ? { messages: [{ role: 'user', content: `story ${client}.${k}` }], max_tokens: MAX_TOKENS, ignore_eos: true,
        stream: true, stream_options: { include_usage: true }, seed: client * 100 + k }
    : { prompt: `Once upon a time ${client} ${k}`, max_tokens: MAX_TOKENS, ignore_eos: true, stream: true,
        stream_options: { include_usage: true }, seed: client * 100 + k };
  const ac = new AbortController();
  const r = await fetch(`${URL_}/v1/${chat ? 'chat/' : ''}completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: ac.signal,
  });
  if (r.status !== 200) throw new Error(`client ${client} req ${k}: HTTP ${r.status}: ${await r.text()}`);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '', events = 0, done = false, usage = null, finish = null;
  try {
    for (;;) {
      const { value, done: eof } = await reader.read();
      if (eof) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        assert.ok(ev.startsWith('data: '), `bad SSE event: ${JSON.stringify(ev)}`);
        const data = ev.slice(6);
        if (data === '[DONE]') { done = true; continue; }
        assert.ok(!done, 'event after [DONE]');
        const j = JSON.parse(data);
        events++;
        if (j.usage) usage = j.usage;
        for (const c of j.choices) if (c.finish_reason) finish = c.finish_reason;
        if (disconnect && events === 3) { ac.abort(); return { completed: false }; }
      }
    }
  } catch (e) {
    if (disconnect && e.name === 'AbortError') return { completed: false };
    throw e;
  }
  assert.ok(done, 'stream ended without [DONE]');
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, MAX_TOKENS);
  return { completed: true };
}

test('32 concurrent streaming clients x 4 requests, some disconnecting', async () => {
  const before = await metrics();
  const sentBefore = before.stop + before.length + before.abort;
  let completed = 0, dropped = 0;
  const errors = [];
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    for (let k = 0; k < PER_CLIENT; k++) {
      try {
        const r = await one(c, k);
        if (r.completed) completed++; else dropped++;
      } catch (e) {
        errors.push(`client ${c} req ${k}: ${e.message || e}`);
      }
    }
  }));
  assert.deepEqual(errors.slice(0, 3), [], `${errors.length} errors`);
  assert.equal(completed + dropped, CLIENTS * PER_CLIENT);
  assert.ok(dropped > 0);

  // The engine drains: poll (no timing threshold; the deadline only bounds a hang).
  let m;
  for (let i = 0; i < 600; i++) {
    m = await metrics();
    const finished = m.stop + m.length + m.abort - sentBefore;
    if (m.running === 0 && m.waiting === 0 && m.free === m.total && finished === CLIENTS * PER_CLIENT) break;
    await sleep(100);
  }
  console.log(`completed ${completed}, disconnected ${dropped}, engine aborts ${m.abort - before.abort}, ` +
    `KV ${m.free}/${m.total} free`);
  assert.equal(m.running, 0);
  assert.equal(m.waiting, 0);
  assert.ok(m.total > 0);
  assert.equal(m.free, m.total);
  assert.equal(m.usage, 0);
  assert.equal(m.stop + m.length + m.abort - sentBefore, CLIENTS * PER_CLIENT);
  assert.ok(m.abort - before.abort <= dropped);

  // The exposition is well-formed Prometheus text and the histograms agree with the counters.
  const text = await (await fetch(`${URL_}/metrics`)).text();
  const series = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const mm = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\} (\S+)$/.exec(line);
    assert.ok(mm, `bad exposition line: ${line}`);
    assert.ok(!Number.isNaN(Number(mm[3])), line);
    series.set(`${mm[1]}{${mm[2]}}`, Number(mm[3]));
  }
  for (const h of ['time_to_first_token_seconds', 'time_per_output_token_seconds', 'inter_token_latency_seconds',
    'e2e_request_latency_seconds', 'request_queue_time_seconds', 'request_prompt_tokens', 'request_generation_tokens']) {
    const buckets = [...series.entries()].filter(([k]) => k.startsWith(`tinyvllm:${h}_bucket{`)).map(([, v]) => v);
    assert.ok(buckets.length > 2, h);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], `${h} buckets not cumulative`);
    const count = [...series.entries()].find(([k]) => k.startsWith(`tinyvllm:${h}_count{`))[1];
    assert.equal(buckets[buckets.length - 1], count, `${h}: +Inf bucket != count`);
  }
  const e2e = [...series.entries()].find(([k]) => k.startsWith('tinyvllm:e2e_request_latency_seconds_count{'))[1];
  assert.equal(e2e, m.stop + m.length);  // every request that ran to its end, and only those

  // and it still serves
  const r = await fetch(`${URL_}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once', max_tokens: 2 }),
  });
  assert.equal(r.status, 200);
});
