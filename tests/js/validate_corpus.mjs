// validate_corpus.mjs OUT.jsonl — the independent check of `tinyvllm bench structured --out`: every line
// {"schema": path, "output": text} must parse as JSON and validate under ajv (+ ajv-formats)
// against the schema file. Prints the counts; exits 1 on any invalid output.
import { readFileSync } from 'node:fs';
import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean);
let ok = 0, bad = 0, skipped = 0;
for (const line of lines) {
  const { schema: path, output } = JSON.parse(line);
  let schema = JSON.parse(readFileSync(path, 'utf8'));
  if (schema && typeof schema === 'object' && schema.schema !== undefined && Array.isArray(schema.tests))
    schema = schema.schema;   // MaskBench's layout: {"schema", "tests"}
  const draft2020 = typeof schema.$schema === 'string' && /2019|2020/.test(schema.$schema);
  const ajv = draft2020 ? new Ajv2020({ strict: false, validateFormats: true }) : new Ajv({ strict: false, validateFormats: true });
  addFormats(ajv);
  let validate;
  try {
    delete schema.$schema;   // ajv refuses meta-schemas it does not bundle (draft-04, ...)
    validate = ajv.compile(schema);
  } catch (e) { skipped++; continue; }   // ajv cannot compile it: nothing to compare with
  let value;
  try { value = JSON.parse(output); } catch (e) { bad++; console.log(`NOT JSON ${path}: ${output.slice(0, 200)}`); continue; }
  if (validate(value)) ok++;
  else { bad++; console.log(`INVALID ${path}: ${output.slice(0, 300)}\n  ${JSON.stringify(validate.errors).slice(0, 300)}`); }
}
console.log(`validated ${ok}, invalid ${bad}, ajv could not compile ${skipped}`);
process.exit(bad ? 1 : 0);
