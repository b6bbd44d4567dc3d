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

// ---- tools ----
const TOOLS = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Oslo', 'Lima'] },
      unit: { type: 'string', enum: ['C', 'F'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
    required: ['city', 'unit'], additionalProperties: false } } },
  { type: 'function', function: { name: 'add', parameters: { type: 'object',
    properties: { a: { type: 'integer', minimum: -99, maximum: 99 }, b: { type: 'integer', minimum: -99, maximum: 99 } },
    required: ['a', 'b'], additionalProperties: false } } },
];
const PARAMS = Object.fromEntries(TOOLS.map((t) => [t.function.name, t.function.parameters]));

function checkCalls(calls, only) {
  assert.ok(Array.isArray(calls) && calls.length >= 1, `tool_calls: ${JSON.stringify(calls)}`);
  for (const c of calls) {
    assert.equal(c.type, 'function');
    assert.match(c.id, /^call_/);
    assert.ok(PARAMS[c.function.name], c.function.name);
    if (only) assert.equal(c.function.name, only);
    const args = JSON.parse(c.function.arguments);
    const validate = ajv.compile(PARAMS[c.function.name]);
    assert.ok(validate(args), `${c.function.arguments}: ${JSON.stringify(validate.errors)}`);
  }
}

test('tools: tool_choice required and named give valid arguments in tool_calls', async () => {
  let n = 0;
  for (let seed = 0; seed < 6; seed++) {
    const r = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 200, temperature: 1, seed,
      tools: TOOLS, tool_choice: 'required', parallel_tool_calls: seed % 2 === 0 });
    const ch = r.choices[0];
    if (ch.finish_reason === 'length') continue;
    n++;
    assert.equal(ch.finish_reason, 'tool_calls');
    assert.equal(ch.message.content, null);
    checkCalls(ch.message.tool_calls);
    if (seed % 2 === 1) assert.equal(ch.message.tool_calls.length, 1);
    const named = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 120, temperature: 1, seed,
      tools: TOOLS, tool_choice: { type: 'function', function: { name: 'add' } } });
    if (named.choices[0].finish_reason === 'length') continue;
    assert.equal(named.choices[0].finish_reason, 'tool_calls');
    checkCalls(named.choices[0].message.tool_calls, 'add');
    assert.equal(named.choices[0].message.tool_calls.length, 1);
  }
  assert.ok(n >= 3, `only ${n} finished`);
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 5, tools: TOOLS,
    tool_choice: { type: 'function', function: { name: 'nope' } } }), (e) => e instanceof OpenAI.BadRequestError && /nope/.test(e.message));
});

test('tools: streamed tool calls reassembled by the client', async () => {
  let done = 0;
  for (let seed = 0; seed < 4 && done < 2; seed++) {
    const runner = client.chat.completions.stream({ model: MODEL, messages: MESSAGES, max_tokens: 200, temperature: 1, seed,
      tools: TOOLS, tool_choice: 'required' });
    const final = await runner.finalChatCompletion();
    const ch = final.choices[0];
    if (ch.finish_reason !== 'tool_calls') continue;
    done++;
    checkCalls(ch.message.tool_calls);
    assert.ok(!ch.message.content, `content leaked: ${ch.message.content}`);
  }
  assert.ok(done >= 1);
});

test('tools: Hermes <tool_call> markup in an auto reply is parsed, not leaked (stream and not)', async () => {
  const grammar = 'root ::= "Sure. <tool_call>{\\"name\\": \\"add\\", \\"arguments\\": {\\"a\\": " d ", \\"b\\": " d "}}</tool_call>"\nd ::= [1-9]';
  const body = { model: MODEL, messages: MESSAGES, max_tokens: 100, temperature: 1, seed: 1, tools: TOOLS,
    structured_outputs: { grammar } };
  const r = await client.chat.completions.create(body);
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(r.choices[0].message.content, 'Sure. ');
  checkCalls(r.choices[0].message.tool_calls, 'add');
  const final = await client.chat.completions.stream(body).finalChatCompletion();
  assert.equal(final.choices[0].message.content, 'Sure. ');
  assert.deepEqual(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments),
    JSON.parse(r.choices[0].message.tool_calls[0].function.arguments));
  const none = await client.chat.completions.create({ ...body, tool_choice: 'none' });
  assert.match(none.choices[0].message.content, /<tool_call>/);
  assert.equal(none.choices[0].message.tool_calls, undefined);
});

test('reasoning_content: <think> split out (stream and not), switchable off', async () => {
  const grammar = 'root ::= "<think>" [a-z ]{1,20} "</think>" "Answer: " [a-z]{1,5}';
  const body = { model: MODEL, messages: MESSAGES, max_tokens: 60, temperature: 1, seed: 2, structured_outputs: { grammar } };
  const r = await client.chat.completions.create(body);
  const m = r.choices[0].message;
  assert.match(m.reasoning_content, /^[a-z ]{1,20}$/);
  assert.match(m.content, /^Answer: [a-z]{1,5}$/);
  const stream = await client.chat.completions.create({ ...body, stream: true });
  let reasoning = '', content = '';
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta;
    if (d?.reasoning_content) reasoning += d.reasoning_content;
    if (d?.content) content += d.content;
  }
  assert.equal(reasoning, m.reasoning_content);
  assert.equal(content, m.content);
  const off = await client.chat.completions.create({ ...body, reasoning_format: 'none' });
  assert.equal(off.choices[0].message.content, `<think>${m.reasoning_content}</think>${m.content}`);
  assert.equal(off.choices[0].message.reasoning_content, undefined);
});
