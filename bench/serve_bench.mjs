#!/usr/bin/env node
// serve_bench.mjs — load benchmark for any OpenAI-compatible server (tinyvllm serve, vLLM,
// llama-server), in the spirit of `vllm bench serve`: C concurrent streaming clients send N
// requests with seeded prompts of P tokens and ask for exactly T output tokens (ignore_eos), and we
// report requests/s, output tokens/s, TTFT, TPOT, ITL and end-to-end latency (mean, p50, p99) as a
// table and as JSON. Node >= 18, no dependencies (plain fetch).
//
//   node bench/serve_bench.mjs --url http://127.0.0.1:8080 -c 8 -n 64 -p 128 -t 64 [--json out.json]
//
// Prompts: a seeded pseudo-random word text is tokenized once through the server's /tokenize
// (vLLM-style {prompt} -> {tokens}, or llama-server-style {content} -> {tokens}); each request
// sends a P-token slice of it as a token-id prompt, so every server sees exactly P prompt tokens.
// With --prompt-mode text (or when no /tokenize exists) it sends text of about P words instead.

const HELP = `usage: node bench/serve_bench.mjs [options]
  --url URL            server base URL (default http://127.0.0.1:8080)
  --model NAME         model id (default: the first of GET /v1/models)
  --api-key KEY        bearer token (default: env OPENAI_API_KEY, if set)
  -c, --concurrency C  concurrent clients (default 4)
  -n, --num-requests N requests in total (default 32)
  -p, --prompt-tokens P prompt length in tokens (default 128)
  -t, --output-tokens T output tokens per request (default 64)
  --seed S             prompt seed (default 1)
  --endpoint E         completions | chat (default completions; chat sends text prompts)
  --prompt-mode M      ids | text (default ids)
  --request-rate R     Poisson arrivals at R requests/s (seeded), still at most C in flight
                       (default: inf = every client sends its next request at once)
  --warmup W           requests sent (sequentially) before measuring (default 1)
  --json FILE          also write the results as JSON to FILE ("-" = stdout)
  --label NAME         a name for this run in the output (default: the model id)`;

function parseArgs(argv) {
  const o = { url: 'http://127.0.0.1:8080', model: null, apiKey: process.env.OPENAI_API_KEY || null, c: 4, n: 32,
    p: 128, t: 64, seed: 1, endpoint: 'completions', promptMode: 'ids', warmup: 1, json: null, label: null,
    rate: Infinity };
  const num = (v, name) => { const x = Number(v); if (!Number.isInteger(x) || x < 0) die(`bad value for ${name}: ${v}`); return x; };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    switch (a) {
      case '-h': case '--help': console.log(HELP); process.exit(0);
      case '--url': o.url = v.replace(/\/+$/, ''); i++; break;
      case '--model': o.model = v; i++; break;
      case '--api-key': o.apiKey = v; i++; break;
      case '-c': case '--concurrency': o.c = num(v, a); i++; break;
      case '-n': case '--num-requests': o.n = num(v, a); i++; break;
      case '-p': case '--prompt-tokens': o.p = num(v, a); i++; break;
      case '-t': case '--output-tokens': o.t = num(v, a); i++; break;
      case '--seed': o.seed = num(v, a); i++; break;
      case '--endpoint': o.endpoint = v; i++; break;
      case '--prompt-mode': o.promptMode = v; i++; break;
      case '--warmup': o.warmup = num(v, a); i++; break;
      case '--request-rate': o.rate = v === 'inf' ? Infinity : Number(v); if (!(o.rate > 0)) die(`bad --request-rate ${v}`); i++; break;
      case '--json': o.json = v; i++; break;
      case '--label': o.label = v; i++; break;
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  if (!['completions', 'chat'].includes(o.endpoint)) die('--endpoint must be completions or chat');
  if (!['ids', 'text'].includes(o.promptMode)) die('--prompt-mode must be ids or text');
  if (o.c < 1 || o.n < 1 || o.p < 1 || o.t < 1) die('-c, -n, -p and -t must be >= 1');
  if (o.endpoint === 'chat') o.promptMode = 'text';
  return o;
}

function die(msg) { console.error(`serve_bench: ${msg}`); process.exit(2); }

// xorshift32: the same prompts for the same seed on every server
function rng(seed) {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}
const WORDS = ('the of and to in is was for on that with as by at from it his an were are which be this has had ' +
  'not but also their one first after new two its who other they been more time over into only during year may ' +
  'city most world such where later three when many some state before through all between would people however ' +
  'school made them well known while since because under river house music small large early until each both')
  .split(' ');
function words(r, n) { const w = []; for (let i = 0; i < n; i++) w.push(WORDS[Math.floor(r() * WORDS.length)]); return w.join(' '); }

function headers(o) {
  const h = { 'Content-Type': 'application/json' };
  if (o.apiKey) h.Authorization = `Bearer ${o.apiKey}`;
  return h;
}

async function tokenize(o, text) {
  for (const [path, body] of [['/tokenize', { model: o.model, prompt: text, add_special_tokens: false }],
    ['/tokenize', { content: text }]]) {
    try {
      const r = await fetch(`${o.url}${path}`, { method: 'POST', headers: headers(o), body: JSON.stringify(body) });
      if (!r.ok) continue;
      const j = await r.json();
      const toks = Array.isArray(j.tokens) ? j.tokens.map((t) => (typeof t === 'number' ? t : t.id)) : null;
      if (toks && toks.length && toks.every(Number.isInteger)) return toks;
    } catch { /* next form */ }
  }
  return null;
}

async function buildPrompts(o) {
  const r = rng(o.seed);
  if (o.promptMode === 'ids') {
    const pool = await tokenize(o, words(r, Math.max(4 * o.p, 512) + 64));
    if (pool && pool.length >= o.p + 1) {
      const out = [];
      for (let i = 0; i < o.n + o.warmup; i++) {
        const off = Math.floor(r() * (pool.length - o.p));
        out.push(pool.slice(off, off + o.p));
      }
      return { prompts: out, mode: 'ids' };
    }
    console.error('serve_bench: no usable /tokenize on this server; sending text prompts of about P words');
  }
  const out = [];
  for (let i = 0; i < o.n + o.warmup; i++) out.push(words(r, o.p));
  return { prompts: out, mode: 'text' };
}

// One streaming request; resolves to per-request timings (ms) or { error }.
async function run(o, prompt) {
  const body = { model: o.model, max_tokens: o.t, ignore_eos: true, temperature: 0, stream: true,
    stream_options: { include_usage: true } };
  if (o.endpoint === 'chat') body.messages = [{ role: 'user', content: prompt }];
  else body.prompt = prompt;
  const t0 = performance.now();
  let ttft = null, last = null, chunks = 0, usage = null;
  const itl = [];
  try {
    const r = await fetch(`${o.url}/v1/${o.endpoint === 'chat' ? 'chat/' : ''}completions`,
      { method: 'POST', headers: headers(o), body: JSON.stringify(body) });
    if (!r.ok) return { error: `HTTP ${r.status}: ${(await r.text()).slice(0, 200)}` };
    const dec = new TextDecoder();
    let buf = '';
    for await (const part of r.body) {
      buf += dec.decode(part, { stream: true });
      let i;
      while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === '\r' ? 4 : 2));
        const line = ev.split(/\r?\n/).find((l) => l.startsWith('data:'));
        if (!line) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') continue;
        const j = JSON.parse(data);
        if (j.usage) usage = j.usage;
        const c = j.choices && j.choices[0];
        const text = c ? (c.text ?? (c.delta && c.delta.content) ?? '') : '';
        if (text) {
          const now = performance.now();
          if (ttft === null) ttft = now - t0; else itl.push(now - last);
          last = now;
          chunks++;
        }
      }
    }
  } catch (e) {
    return { error: String(e && e.message || e) };
  }
  const e2e = performance.now() - t0;
  const out = usage && usage.completion_tokens ? usage.completion_tokens : chunks;
  if (ttft === null) return { error: 'no tokens received' };
  return { ttft, e2e, itl, out, prompt: usage ? usage.prompt_tokens : null,
    tpot: out > 1 ? (e2e - ttft) / (out - 1) : null };
}

function stats(xs) {
  const v = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return { mean: null, p50: null, p99: null };
  const q = (p) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
  return { mean: v.reduce((a, b) => a + b, 0) / v.length, p50: q(0.5), p99: q(0.99) };
}

// tinyvllm's pipeline counters from GET /metrics (null when the server has none: another server, or
// no --pp): bytes across a stage boundary, bytes of replies to rank 0, tokens generated.
async function pipelineCounters(o) {
  try {
    const r = await fetch(`${o.url}/metrics`, { headers: headers(o) });
    if (!r.ok) return null;
    const txt = await r.text();
    const get = (name) => { const m = txt.match(new RegExp(`^tinyvllm:${name}\\{[^}]*\\} (\\S+)$`, 'm')); return m ? Number(m[1]) : null; };
    const c = { boundary: get('pipeline_boundary_bytes_total'), replies: get('pipeline_reply_bytes_total'), gen: get('generation_tokens_total') };
    return c.boundary === null || c.gen === null ? null : c;
  } catch { return null; }
}

async function main() {
  const o = parseArgs(process.argv);
  if (!o.model) {
    const r = await fetch(`${o.url}/v1/models`, { headers: headers(o) }).catch((e) => die(`cannot reach ${o.url}: ${e.message}`));
    if (!r.ok) die(`GET /v1/models: HTTP ${r.status}`);
    const j = await r.json();
    if (!j.data || !j.data.length) die('the server lists no models');
    o.model = j.data[0].id;
  }
  const { prompts, mode } = await buildPrompts(o);
  for (let i = 0; i < o.warmup; i++) {
    const w = await run(o, prompts[o.n + i]);
    if (w.error) die(`warm-up request failed: ${w.error}`);
  }
  const results = new Array(o.n);
  // arrival times (ms from start): all at 0, or a seeded Poisson process at o.rate
  const arrive = new Array(o.n).fill(0);
  if (Number.isFinite(o.rate)) {
    const r = rng(o.seed + 7919);
    for (let i = 1; i < o.n; i++) arrive[i] = arrive[i - 1] - Math.log(1 - r()) * 1000 / o.rate;
  }
  let next = 0;
  const pc0 = await pipelineCounters(o);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(o.c, o.n) }, async () => {
    while (next < o.n) {
      const i = next++;
      const wait = t0 + arrive[i] - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      results[i] = await run(o, prompts[i]);
    }
  }));
  const dur = (performance.now() - t0) / 1000;
  const pc1 = pc0 ? await pipelineCounters(o) : null;
  const gen = pc1 ? pc1.gen - pc0.gen : 0;
  const pipeline = pc1 && pc1.boundary > pc0.boundary && gen > 0
    ? { bytes_per_token_per_boundary: (pc1.boundary - pc0.boundary) / gen, reply_bytes_per_token: (pc1.replies - pc0.replies) / gen }
    : null;
  const ok = results.filter((r) => !r.error), failed = results.filter((r) => r.error);
  const outTok = ok.reduce((a, r) => a + r.out, 0);
  const inTok = ok.reduce((a, r) => a + (r.prompt ?? o.p), 0);
  const res = {
    label: o.label || o.model, url: o.url, model: o.model, endpoint: o.endpoint, prompt_mode: mode,
    concurrency: o.c, request_rate: Number.isFinite(o.rate) ? o.rate : 'inf', num_requests: o.n, prompt_tokens: o.p, output_tokens: o.t,
    completed: ok.length, failed: failed.length, duration_s: dur,
    request_throughput: ok.length / dur, output_throughput: outTok / dur, total_token_throughput: (inTok + outTok) / dur,
    ttft_ms: stats(ok.map((r) => r.ttft)), tpot_ms: stats(ok.map((r) => r.tpot)),
    itl_ms: stats(ok.flatMap((r) => r.itl)), e2e_ms: stats(ok.map((r) => r.e2e)),
    errors: failed.slice(0, 5).map((r) => r.error),
    ...(pipeline ? { pipeline } : {}),
  };
  const f = (x, d = 2) => (x === null ? '-' : x.toFixed(d));
  const lines = [
    `============ serve_bench: ${res.label} ============`,
    `server ${o.url}  model ${o.model}  endpoint /v1/${o.endpoint === 'chat' ? 'chat/' : ''}completions  prompts ${mode}`,
    `concurrency ${o.c}  rate ${Number.isFinite(o.rate) ? o.rate + ' req/s' : 'inf'}  requests ${o.n}  prompt ${o.p} tok  output ${o.t} tok`,
    `completed ${res.completed}  failed ${res.failed}  duration ${f(dur)} s`,
    `request throughput      ${f(res.request_throughput, 3)} req/s`,
    `output token throughput ${f(res.output_throughput)} tok/s`,
    `total token throughput  ${f(res.total_token_throughput)} tok/s`,
    '-----------------------------------------------------------',
    'metric (ms)        mean        p50        p99',
  ];
  for (const [name, s] of [['TTFT', res.ttft_ms], ['TPOT', res.tpot_ms], ['ITL', res.itl_ms], ['E2E', res.e2e_ms]])
    lines.push(`${name.padEnd(12)} ${f(s.mean).padStart(10)} ${f(s.p50).padStart(10)} ${f(s.p99).padStart(10)}`);
  if (pipeline)
    lines.push(`pipeline: ${f(pipeline.bytes_per_token_per_boundary, 0)} bytes per generated token per stage boundary, ` +
      `${f(pipeline.reply_bytes_per_token, 0)} bytes per token back to rank 0`);
  if (failed.length) lines.push(`first errors: ${res.errors.join(' | ')}`);
  console.log(lines.join('\n'));
  if (o.json) {
    const txt = JSON.stringify(res, null, 2);
    if (o.json === '-') console.log(txt);
    else (await import('node:fs')).writeFileSync(o.json, `${txt}\n`);
  }
  process.exit(failed.length ? 1 : 0);
}

main();
