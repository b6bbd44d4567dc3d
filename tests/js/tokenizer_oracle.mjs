// tokenizer_oracle.mjs — reference token ids from @lenml/tokenizers (transformers.js' tokenizer code)
// for a deterministic corpus, one JSON object per line: {"text", "ids", "decoded", "decoded_skip"}
// (decoded: special tokens rendered; decoded_skip: hidden).
//
//   node tokenizer_oracle.mjs <llama3|qwen3|llama2> [n_strings]
//
// The corpus mixes multilingual text, emoji (ZWJ, flags, skin tones), code, whitespace runs, digits,
// contractions, combining marks and the model's special tokens, drawn with a fixed-seed PRNG so
// every run produces the same strings. Encoding adds no BOS/EOS (add_special_tokens: false); added
// tokens written in the text are matched, as Hugging Face always does.
import { createRequire } from 'module';
import { fileURLToPath } from 'url';
import path from 'path';

const require = createRequire(import.meta.url);
const fs = require('fs');
const here = path.dirname(fileURLToPath(import.meta.url));
const { TokenizerLoader } = require('@lenml/tokenizers');

const model = process.argv[2] || 'llama3';
const nStrings = parseInt(process.argv[3] || '1200', 10);
const dir = path.join(here, 'node_modules', '@lenml', `tokenizer-${model}`, 'models');
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
  tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
});

let seed = 0x9e3779b9;
function rnd() {   // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];

const SPECIAL = {
  llama3: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>',
           '<|reserved_special_token_0|>'],
  llama2: ['<s>', '</s>', '<unk>'],
  qwen3: ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<think>', '</think>', '<tool_call>', '<|fim_prefix|>'],
}[model] || [];

const FRAGMENTS = [
  // English, contractions, case
  'Hello world', 'The quick brown fox jumps over the lazy dog.', "I'm sure you'll see it's what we'd've done",
  "DON'T SHOUT, I'M HERE", "'s 't 're 've 'm 'll 'd", 'Once upon a time, there was a little girl named Lily.',
  'tokenization', 'supercalifragilisticexpialidocious', 'HTTP/1.1 200 OK', 'e.g. i.e. etc. U.S.A.',
  // European languages
  'Äpfel und Öl über Straße', 'Ça va très bien, merci !', 'El niño comió piñata', 'Crème brûlée à la carte',
  'Ελληνικά γράμματα', 'Привет, как дела? Всё хорошо.', 'Zażółć gęślą jaźń', 'İstanbul ığdır şişe',
  // CJK and others
  '我想在apple工作1314151天～', '日本語のテキストです。', '한국어 문장입니다', 'ภาษาไทยไม่มีช่องว่าง',
  'العربية من اليمين إلى اليسار', 'עברית', 'हिन्दी भाषा', 'ქართული', 'Հայերեն', 'ᏣᎳᎩ', 'ខ្មែរ',
  // emoji
  '🦙', '🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅', '👩‍👩‍👧‍👦', '🇺🇸🇫🇷🇯🇵', '👍🏽👋🏿', '❤️‍🔥', '🙂🙃😉',
  // code
  'int main(void) { return 0; }', 'def f(x):\n    return x ** 2\n', '{"key": [1, 2.5, null, true]}',
  '<div class="a">&nbsp;</div>', 'for (i = 0; i < n; ++i) a[i] += b[i];', '#include <stdio.h>', 'x=>x*2;//done',
  '$ git commit -m "fix"', 'SELECT * FROM t WHERE id=42;', '\tif (a && b || !c) {\n\t\treturn;\n\t}',
  // whitespace runs
  ' ', '  ', '   ', '\t', '\n', '\n\n', '\n\n\n', '\t\n', ' \n \n', '\r\n', '    Hello', '   \t  \n  x',
  '\u00a0non-breaking\u00a0space', 'ideographic\u3000space', 'thin\u2009space', 'trailing   ',
  // digits
  '3', '33', '333', '3333', '33333', '333333', '1234567890', '3.14159', '1,000,000', '2024-01-01T12:00:00Z',
  '٣٤٥', '१२३', '①②③', 'v1.2.3-rc4', '0x7FFF_FFFF',
  // punctuation
  '!!!!!!', '...', '???', '——', '«quoted»', '(parenthesised)', '[brackets]', '~~~', '@#$%^&*', "' era",
  // combining marks (NFC matters)
  'e\u0301', 'cafe\u0301', 'n\u0303o', 'A\u030a', '\u1e9b\u0323', 'Å',
];

const SEPS = ['', ' ', ' ', ' ', '\n', '  ', '\t', '. ', ', '];

const corpus = [];
for (const f of FRAGMENTS) corpus.push(f);
for (const s of SPECIAL) { corpus.push(s); corpus.push(`a${s}b`); corpus.push(` ${s} `); }
while (corpus.length < nStrings) {
  const k = 1 + Math.floor(rnd() * 5);
  let s = '';
  for (let i = 0; i < k; i++) {
    const r = rnd();
    let part;
    if (r < 0.08 && SPECIAL.length) part = pick(SPECIAL);
    else if (r < 0.15) part = String(Math.floor(rnd() * 10 ** (1 + Math.floor(rnd() * 9))));
    else if (r < 0.2) part = ' '.repeat(1 + Math.floor(rnd() * 6));
    else part = pick(FRAGMENTS);
    s += (i ? pick(SEPS) : '') + part;
  }
  corpus.push(s);
}

const out = [];
for (const text of corpus) {
  const ids = tok.encode(text, { add_special_tokens: false });
  const decoded = tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  const decoded_skip = tok.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  out.push(JSON.stringify({ text, ids, decoded, decoded_skip }));
}
process.stdout.write(out.join('\n') + '\n');
