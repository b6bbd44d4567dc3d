// server_structured.test.mjs — structured output through the official `openai` client against a
// running `tinyvllm serve` (random-weight model): response_format json_schema / json_object,
// vLLM's structured_outputs (regex, choice, grammar), llama-server's json_schema, streaming, and the
// 400s for bad specs. The independent oracle is ajv (with ajv-formats): every output that finished
// with "stop" must validate. Env: SRV_URL, TV_API_KEY, TV_MODEL_ID (tests/test_server_structured.sh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const URL_ = process.env.SRV_URL;
const KEY = process.env.TV_API_KEY;
const MODEL = process.env.TV_MODEL_ID;
if (!URL_ || !KEY || !MODEL) throw new Error('SRV_URL, TV_API_KEY and TV_MODEL_ID must be set');
const client = new OpenAI({ baseURL: `${URL_}/v1`, apiKey: KEY, maxRetries: 0, timeout: 120_000 });
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const MESSAGES = [{ role: 'user', content: 'Give me a person as JSON.' }];

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    email: { type: 'string', format: 'email' },
    born: { type: 'string', format: 'date' },
    tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, maxItems: 3 },
    pet: { anyOf: [{ type: 'null' }, { $ref: '#/$defs/pet' }] },
  },
  required: ['name', 'age', 'email', 'born'],
  additionalProperties: false,
  $defs: { pet: { type: 'object', properties: { kind: { const: 'cat' }, lives: { type: 'integer', minimum: 1, maximum: 9 } }, required: ['kind'] } },
};

function checkJson(schema, text, finish) {
  if (finish !== 'stop') return false;   // cut by max_tokens: nothing to validate
  const value = JSON.parse(text);
  const validate = ajv.compile(schema);
  assert.ok(validate(value), `ajv rejects ${text}: ${JSON.stringify(validate.errors)}`);
  return true;
}

test('chat response_format json_schema: every finished output validates (16 seeds)', async () => {
  let n_stop = 0;
  const runs = await Promise.all([...Array(16).keys()].map((seed) => client.chat.completions.create({
    model: MODEL, messages: MESSAGES, max_tokens: 220, temperature: 1, seed,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } },
  })));
  for (const r of runs) if (checkJson(PERSON, r.choices[0].message.content, r.choices[0].finish_reason)) n_stop++;
  assert.ok(n_stop >= 8, `only ${n_stop} of 16 finished`);
});

test('chat response_format json_object gives a JSON object', async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 200, temperature: 1, seed: 3,
    response_format: { type: 'json_object' } });
  if (r.choices[0].finish_reason === 'stop') {
    const v = JSON.parse(r.choices[0].message.content);
    assert.equal(typeof v, 'object');
    assert.ok(v !== null && !Array.isArray(v));
  }
});

test('streaming json_schema: the deltas concatenate to a valid document', async () => {
  const schema = { type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'number', minimum: 0, maximum: 5 } }, required: ['ok', 'n'] };
  const stream = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 200, temperature: 1, seed: 5,
    stream: true, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
  let text = '', finish = null;
  for await (const chunk of stream) {
    const c = chunk.choices[0];
    if (c?.delta?.content) text += c.delta.content;
    if (c?.finish_reason) finish = c.finish_reason;
  }
  assert.equal(finish, 'stop');
  checkJson(schema, text, finish);
});

test('completions: structured_outputs regex, choice and grammar; llama-server json_schema', async () => {
  for (let seed = 0; seed < 4; seed++) {
    const r = await client.completions.create({ model: MODEL, prompt: 'Phone:', max_tokens: 40, temperature: 1, seed,
      structured_outputs: { regex: '\\+[0-9]{2} [0-9]{3}-[0-9]{4}' } });
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.match(r.choices[0].text, /^\+[0-9]{2} [0-9]{3}-[0-9]{4}$/);
    const c = await client.completions.create({ model: MODEL, prompt: 'Mood:', max_tokens: 20, temperature: 1, seed,
      structured_outputs: { choice: ['happy', 'sad', 'happy-go-lucky'] } });
    assert.ok(['happy', 'sad', 'happy-go-lucky'].includes(c.choices[0].text), c.choices[0].text);
    const g = await client.completions.create({ model: MODEL, prompt: 'Sum:', max_tokens: 40, temperature: 1, seed,
      structured_outputs: { grammar: 'root ::= num (" + " num){1,3}\nnum ::= [1-9] [0-9]?' } });
    assert.equal(g.choices[0].finish_reason, 'stop');
    assert.match(g.choices[0].text, /^[1-9][0-9]?( \+ [1-9][0-9]?){1,3}$/);
    const schema = { type: 'array', items: { type: 'integer', minimum: -5, maximum: 5 }, minItems: 2, maxItems: 4 };
    const j = await client.completions.create({ model: MODEL, prompt: 'List:', max_tokens: 60, temperature: 1, seed, json_schema: schema });
    checkJson(schema, j.choices[0].text, j.choices[0].finish_reason);
  }
});

test('bad specs are 400s that say where', async () => {
  const cases = [
    [{ structured_outputs: { regex: '[0-9' } }, /offset 0/],
    [{ structured_outputs: { grammar: 'root ::= "a" (\n' } }, /line 1, column 14/],
    [{ json_schema: { type: 'object', properties: { a: { not: { type: 'null' } } } } }, /\/properties\/a: keyword 'not'/],
    [{ json_schema: { type: 'integer', minimum: 10, maximum: 1 } }, /unsatisfiable/],
    [{ json_schema: { type: 'object', properties: { a: false }, required: ['a'] } }, /unsatisfiable/],
  ];
  for (const [extra, re] of cases) {
    await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 5, ...extra }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.match(e.message, re);
      return true;
    });
  }
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 5,
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '(' } } } }),
  (e) => e instanceof OpenAI.BadRequestError && /offset/.test(e.message));
});
