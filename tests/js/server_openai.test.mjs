// server_openai.test.mjs — the official `openai` client against a running `tinyvllm serve`.
// Env: SRV_URL (http://127.0.0.1:PORT), TV_API_KEY, TV_MODEL_ID. Run by tests/test_server_openai.sh.
// The oracle is the client library itself (it parses and types every response and maps HTTP errors
// to its error classes) plus consistency laws that hold for any correct server: greedy decoding is
// deterministic, streaming concatenates to the non-streamed text, a stop string truncates the
// greedy text at its first occurrence, n seeded choices equal single requests with seed, seed+1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const URL_ = process.env.SRV_URL;
const KEY = process.env.TV_API_KEY;
const MODEL = process.env.TV_MODEL_ID;
if (!URL_ || !KEY || !MODEL) throw new Error('SRV_URL, TV_API_KEY and TV_MODEL_ID must be set');

const client = new OpenAI({ baseURL: `${URL_}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
const PROMPT = 'Once upon a time';
const MESSAGES = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Tell me a story.' }];

async function tokenize(body) {
  const r = await fetch(`${URL_}/tokenize`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200);
  return r.json();
}

async function greedy(extra = {}) {
  return client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 16, temperature: 0, ...extra });
}

test('models.list serves the alias', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, [MODEL]);
  const one = await client.models.retrieve(MODEL);
  assert.equal(one.id, MODEL);
});

test('completion: shape, usage, greedy determinism', async () => {
  const a = await greedy();
  assert.equal(a.object, 'text_completion');
  assert.equal(a.model, MODEL);
  assert.equal(a.choices.length, 1);
  assert.equal(a.choices[0].index, 0);
  assert.equal(typeof a.choices[0].text, 'string');
  assert.ok(a.choices[0].text.length > 0);
  assert.equal(a.choices[0].finish_reason, 'length');
  const tok = await tokenize({ model: MODEL, prompt: PROMPT });
  assert.equal(a.usage.prompt_tokens, tok.count);
  assert.equal(a.usage.completion_tokens, 16);
  assert.equal(a.usage.total_tokens, tok.count + 16);
  const b = await greedy();
  assert.equal(b.choices[0].text, a.choices[0].text);
  assert.notEqual(b.id, a.id);
});

test('completion: token-id prompts and prompt lists', async () => {
  const tok = await tokenize({ model: MODEL, prompt: PROMPT });
  const byText = await greedy();
  const byIds = await greedy({ prompt: tok.tokens });
  assert.equal(byIds.choices[0].text, byText.choices[0].text);
  const multi = await greedy({ prompt: [PROMPT, tok.tokens] });
  assert.equal(multi.choices.length, 2);
  assert.deepEqual(multi.choices.map((c) => c.index), [0, 1]);
  assert.equal(multi.choices[0].text, byText.choices[0].text);
  assert.equal(multi.choices[1].text, byText.choices[0].text);
  assert.equal(multi.usage.prompt_tokens, 2 * tok.count);
  assert.equal(multi.usage.completion_tokens, 32);
});

test('completion: streaming concatenates to the same text, usage chunk last', async () => {
  const ref = await greedy();
  const stream = await client.completions.create({
    model: MODEL, prompt: PROMPT, max_tokens: 16, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '', finish = null, usage = null, n = 0;
  for await (const chunk of stream) {
    n++;
    assert.equal(chunk.object, 'text_completion');
    if (chunk.usage) { usage = chunk.usage; assert.equal(chunk.choices.length, 0); continue; }
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(n >= 2);
  assert.equal(text, ref.choices[0].text);
  assert.equal(finish, 'length');
  assert.deepEqual(usage, ref.usage);
});

test('completion: stop string truncates the greedy text at its first occurrence', async () => {
  const full = (await greedy({ max_tokens: 24 })).choices[0].text;
  // a stop string taken from the middle of the greedy text; the output must end right before it
  const stop = full.slice(6, 8);
  assert.equal(stop.length, 2);
  const cut = full.indexOf(stop);
  const r = await greedy({ max_tokens: 24, stop: [stop, 'NEVER-APPEARS'] });
  assert.equal(r.choices[0].text, full.slice(0, cut));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await greedy({ max_tokens: 24, stop });
  assert.equal(s.choices[0].text, full.slice(0, cut));
});

test('completion: seeds reproduce, n>1 uses seed, seed+1, ...', async () => {
  const ask = (seed, n = 1) => client.completions.create({
    model: MODEL, prompt: PROMPT, max_tokens: 12, temperature: 1.0, seed, n,
  });
  const a = await ask(42), b = await ask(42), c = await ask(43);
  assert.equal(a.choices[0].text, b.choices[0].text);
  const both = await ask(42, 2);
  assert.equal(both.choices.length, 2);
  assert.equal(both.choices[0].text, a.choices[0].text);
  assert.equal(both.choices[1].text, c.choices[0].text);
  assert.equal(both.usage.completion_tokens, 24);
  const tok = await tokenize({ model: MODEL, prompt: PROMPT });
  assert.equal(both.usage.prompt_tokens, tok.count);  // the prompt counts once for n choices
  const three = await ask(7, 3);
  assert.deepEqual(three.choices.map((x) => x.index), [0, 1, 2]);
});

test('completion: logprobs', async () => {
  const r = await greedy({ max_tokens: 6, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 6);
  assert.equal(lp.token_logprobs.length, 6);
  assert.equal(lp.top_logprobs.length, 6);
  assert.equal(lp.tokens.join(''), r.choices[0].text);
  for (let i = 0; i < 6; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    const alts = Object.entries(lp.top_logprobs[i]);
    assert.ok(alts.length >= 1 && alts.length <= 2);
    // greedy: the chosen token is the most likely one
    const best = Math.max(...alts.map(([, v]) => v));
    assert.ok(Math.abs(best - lp.token_logprobs[i]) < 1e-5);
  }
});

test('chat: shape, usage, streaming equals non-streaming', async () => {
  const a = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 10, temperature: 0 });
  assert.equal(a.object, 'chat.completion');
  assert.equal(a.choices[0].message.role, 'assistant');
  assert.equal(typeof a.choices[0].message.content, 'string');
  assert.equal(a.choices[0].finish_reason, 'length');
  const tok = await tokenize({ model: MODEL, messages: MESSAGES, add_generation_prompt: true });
  assert.equal(a.usage.prompt_tokens, tok.count);
  assert.equal(a.usage.completion_tokens, 10);

  const stream = await client.chat.completions.create({
    model: MODEL, messages: MESSAGES, max_completion_tokens: 10, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let content = '', role = null, finish = null, usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) content += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(content, a.choices[0].message.content);
  assert.equal(finish, 'length');
  for (const k of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(usage[k], a.usage[k]);
  // the same prompt again: its full KV blocks come from the prefix cache
  const cached = usage.prompt_tokens_details?.cached_tokens ?? 0;
  assert.ok(cached > 0 && cached < usage.prompt_tokens, `cached_tokens ${cached} of ${usage.prompt_tokens}`);
});

test('chat: logprobs, n and seed', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: MESSAGES, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 5);
  assert.equal(content.map((t) => t.token).join(''), r.choices[0].message.content);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, 'utf8')]);
  }
  const ask = (n) => client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 8, seed: 5, n });
  const one = await ask(1), two = await ask(2);
  assert.equal(two.choices.length, 2);
  assert.equal(two.choices[0].message.content, one.choices[0].message.content);
});

test('errors: typed by the client', async () => {
  const bad = new OpenAI({ baseURL: `${URL_}/v1`, apiKey: 'wrong-key', maxRetries: 0 });
  await assert.rejects(bad.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 1 }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  await assert.rejects(greedy({ temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature');
  await assert.rejects(greedy({ n: 0 }), (e) => e instanceof OpenAI.BadRequestError);
  await assert.rejects(greedy({ model: 'no-such-model' }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found');
  await assert.rejects(client.models.retrieve('no-such-model'), (e) => e instanceof OpenAI.NotFoundError);
  // prompt + max_tokens beyond the context: 400 that names the numbers
  const ctx = (await client.models.retrieve(MODEL)).max_model_len;
  assert.ok(Number.isInteger(ctx) && ctx > 0);
  await assert.rejects(greedy({ max_tokens: ctx }),
    (e) => e instanceof OpenAI.BadRequestError && e.message.includes(String(ctx)) && e.code === 'context_length_exceeded');
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  if (process.env.TV_TPL_STRICT === '1') {  // tests/data/chat_simple.jinja raises on unknown roles
    await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [{ role: 'wizard', content: 'x' }] }),
      (e) => e instanceof OpenAI.BadRequestError && /wizard/.test(e.message));
  }
});

test('chat: tools reach the template', { skip: process.env.TV_TPL_TOOLS !== '1' }, async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const plain = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 1 });
  const withTools = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 1, tools });
  assert.ok(withTools.usage.prompt_tokens > plain.usage.prompt_tokens + 10);
});
