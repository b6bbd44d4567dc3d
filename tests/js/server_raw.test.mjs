// server_raw.test.mjs — raw-socket HTTP tests against a running `tinyvllm serve` (no npm deps).
// Env: SRV_URL. Run by tests/test_server_http.sh (the server has no API key there).
// Hostile and odd requests must get the right status (RFC 9110 / OpenAI error format) and the
// server must keep serving afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

const U = new URL(process.env.SRV_URL);
const HOST = U.hostname, PORT = Number(U.port);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Sends pieces (strings/Buffers) with optional pauses, half-closes never, reads until the server
// closes or `timeoutMs`. Returns { status, headers, body, raw }.
function raw(pieces, { pauseMs = 0, closeAfterSend = false, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(PORT, HOST);
    const chunks = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      const text = buf.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const sep = text.indexOf('\r\n\r\n');
      const headers = {};
      if (sep > 0) {
        for (const line of text.slice(0, sep).split('\r\n').slice(1)) {
          const i = line.indexOf(':');
          if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
      }
      resolve({ status: m ? Number(m[1]) : 0, headers, body: sep > 0 ? buf.subarray(sep + 4).toString('utf8') : '', raw: text });
    };
    const timer = setTimeout(() => { sock.destroy(); finish(); }, timeoutMs);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', (e) => { if (e.code === 'ECONNRESET' || e.code === 'EPIPE') finish(); else reject(e); });
    sock.on('connect', async () => {
      for (const p of pieces) {
        if (sock.destroyed) return;
        sock.write(p);
        if (pauseMs) await sleep(pauseMs);
      }
      if (closeAfterSend) sock.destroy();
    });
  });
}

function post(path, body, extraHeaders = '') {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return raw([`POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${b.length}\r\n${extraHeaders}\r\n`, b]);
}

function errorOf(r) {
  const j = JSON.parse(r.body);
  assert.equal(typeof j.error.message, 'string');
  assert.equal(typeof j.error.type, 'string');
  assert.ok('param' in j.error && 'code' in j.error);
  return j.error;
}

async function healthy() {
  const r = await raw(['GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
  assert.equal(r.status, 200);
}

test('malformed JSON and wrong types -> 400 in OpenAI format', async () => {
  const cases = [
    ['/v1/completions', '{"prompt": "a", ', null],
    ['/v1/completions', '[1,2,3]', null],
    ['/v1/completions', '{"prompt": "a"} trailing', null],
    ['/v1/completions', '', null],
    ['/v1/completions', '{"prompt": 5}', 'prompt'],
    ['/v1/completions', '{"prompt": []}', 'prompt'],
    ['/v1/completions', '{"prompt": [1, "x"]}', 'prompt'],
    ['/v1/completions', '{"prompt": [99999999]}', 'prompt'],
    ['/v1/completions', '{"prompt": "a", "max_tokens": "10"}', 'max_tokens'],
    ['/v1/completions', '{"prompt": "a", "max_tokens": 0}', 'max_tokens'],
    ['/v1/completions', '{"prompt": "a", "max_tokens": 1.5}', 'max_tokens'],
    ['/v1/completions', '{"prompt": "a", "temperature": -1}', 'temperature'],
    ['/v1/completions', '{"prompt": "a", "top_p": 0}', 'top_p'],
    ['/v1/completions', '{"prompt": "a", "n": 1000}', 'n'],
    ['/v1/completions', '{"prompt": "a", "stop": 3}', 'stop'],
    ['/v1/completions', '{"prompt": "a", "logprobs": true}', 'logprobs'],
    ['/v1/completions', '{"prompt": "a", "logit_bias": {"abc": 1}}', 'logit_bias'],
    ['/v1/completions', '{"prompt": "a", "logit_bias": {"1": 500}}', 'logit_bias'],
    ['/v1/completions', '{"prompt": "a", "stream_options": {"include_usage": true}}', 'stream_options'],
    ['/v1/completions', '{"prompt": "a", "seed": "x"}', 'seed'],
    ['/v1/chat/completions', '{"messages": "hi"}', 'messages'],
    ['/v1/chat/completions', '{"messages": [{"content": "hi"}]}', 'messages[0]'],
    ['/v1/chat/completions', '{"messages": [{"role": "user", "content": 7}]}', 'messages[0]'],
    ['/v1/chat/completions', '{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}', 'top_logprobs'],
    ['/tokenize', '{"prompt": 3}', 'prompt'],
    ['/detokenize', '{"tokens": "x"}', 'tokens'],
  ];
  for (const [path, body, param] of cases) {
    const r = await post(path, body);
    assert.equal(r.status, 400, `${path} ${body}: got ${r.status} ${r.body}`);
    const e = errorOf(r);
    assert.equal(e.type, 'invalid_request_error');
    if (param) assert.equal(e.param, param, `${body}: ${JSON.stringify(e)}`);
  }
  // invalid UTF-8 in a prompt is the tokenizer's to reject
  const bad = Buffer.concat([Buffer.from('{"prompt": "a'), Buffer.from([0xff, 0xfe]), Buffer.from('", "max_tokens": 1}')]);
  assert.equal((await post('/v1/completions', bad)).status, 400);
  // an error quoting client bytes is still valid UTF-8 JSON
  const badModel = Buffer.concat([Buffer.from('{"model": "x'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('", "prompt": "a"}')]);
  const r404 = await post('/v1/completions', badModel);
  assert.equal(r404.status, 404);
  assert.equal(errorOf(r404).code, 'model_not_found');
  const bodyBytes = Buffer.from(r404.raw.slice(r404.raw.indexOf('\r\n\r\n') + 4), 'latin1');
  assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(bodyBytes));
  await healthy();
});

test('routes, methods, HEAD and OPTIONS', async () => {
  let r = await raw(['GET /v2/whatever HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
  assert.equal(r.status, 404);
  assert.equal(errorOf(r).code, 'not_found');
  r = await raw(['GET /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
  assert.equal(r.status, 405);
  assert.match(r.headers.allow, /POST/);
  r = await raw(['DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
  assert.equal(r.status, 405);
  assert.match(r.headers.allow, /GET/);
  r = await raw(['HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
  assert.equal(r.status, 200);
  assert.equal(r.body, '');
  r = await raw(['OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n' +
    'Origin: http://example.com\r\nAccess-Control-Request-Method: POST\r\n\r\n']);
  assert.equal(r.status, 204);
  assert.match(r.headers.allow, /POST/);
  assert.equal(r.headers['access-control-allow-origin'], '*');
  r = await raw(['GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain/);
  assert.match(r.body, /^tinyvllm:num_requests_running\{/m);
  // two requests on one keep-alive connection
  r = await raw(['GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
  assert.equal((r.raw.match(/HTTP\/1\.1 200/g) || []).length, 2);
  await healthy();
});

test('bodies over the limit -> 413', async () => {
  // declared too large: answered before the body is read
  let r = await raw(['POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
    `Content-Length: ${64 << 20}\r\n\r\n`, '{"prompt":']);
  assert.equal(r.status, 413);
  assert.equal(errorOf(r).code, 'request_too_large');
  // chunked, no length: counted as it arrives
  const piece = Buffer.alloc(1 << 20, 'a');
  const pieces = ['POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n'];
  for (let i = 0; i < 9; i++) pieces.push(`${piece.length.toString(16)}\r\n`, piece, '\r\n');
  pieces.push('0\r\n\r\n');
  r = await raw(pieces);
  assert.equal(r.status, 413);
  await healthy();
});

test('slow, partial and abandoned requests; the server keeps serving', async () => {
  // a request trickled in a few bytes at a time is still answered
  const body = '{"prompt": "Once", "max_tokens": 2, "temperature": 0}';
  const req = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  const pieces = [];
  for (let i = 0; i < req.length; i += 7) pieces.push(req.slice(i, i + 7));
  const r = await raw(pieces, { pauseMs: 5 });
  assert.equal(r.status, 200, r.raw);
  assert.equal(JSON.parse(r.body).usage.completion_tokens, 2);
  // half a request line, then gone
  await raw(['POST /v1/compl'], { closeAfterSend: true });
  // headers promise 100 bytes, 10 arrive, then gone
  await raw(['POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prompt":'], { closeAfterSend: true });
  // garbage that is not HTTP
  const g = await raw(['\x00\x01\x02 not http at all\r\n\r\n'], { timeoutMs: 1000 });
  assert.ok(g.status === 0 || g.status === 400, `garbage -> ${g.status}`);
  // a streaming request abandoned before its first byte is read
  const sb = '{"prompt": "Once", "max_tokens": 50, "stream": true}';
  await raw([`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${sb.length}\r\n\r\n${sb}`], { closeAfterSend: true });
  await healthy();
  // and a normal request still works
  const ok = await post('/v1/completions', '{"prompt": "Once", "max_tokens": 3}');
  assert.equal(ok.status, 200);
});

test('SSE framing on the wire', async () => {
  const r = await post('/v1/chat/completions',
    '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": true, "temperature": 0}');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  // MHD frames the unknown-length body with chunked encoding; undo it
  const events = r.body.split('\n\n').filter((s) => s.includes('data: '));
  const last = events[events.length - 1];
  assert.match(last, /data: \[DONE\]$/);
  const json = events.slice(0, -1).map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6).split('\r\n')[0]));
  assert.equal(json[0].choices[0].delta.role, 'assistant');
  assert.equal(json[json.length - 1].choices[0].finish_reason, 'length');
});
