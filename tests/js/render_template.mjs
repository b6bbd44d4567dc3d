// render_template.mjs — the chat-template oracle: renders a Jinja chat template exactly as Hugging Face's
// apply_chat_template does in transformers.js, i.e. with @huggingface/jinja's Template class (which
// tokenizes with trim_blocks and lstrip_blocks) and a context of
//   { messages, add_generation_prompt, bos_token, eos_token, tools, documents } (tools/documents null
// when not given, as Python's apply_chat_template passes them).
//
// Usage:
//   node render_template.mjs TEMPLATE.jinja CONTEXT.json          -> rendered text on stdout
//   node render_template.mjs --batch OUTDIR TEMPLATE.jinja... -- CONTEXT.json...
//        renders every template x context x add_generation_prompt (true: "gen", false: "nogen") with
//        bos_token "<s>" and eos_token "</s>", writing OUTDIR/<template>__<context>__<gen|nogen>.out
//        (the rendered text) or .err (the exception text)
//   node render_template.mjs --jobs JOBS.json
//        JOBS.json: [{template, context, add_generation_prompt, bos_token, eos_token, kwargs, out}, ...];
//        renders each (kwargs: extra variables, chat_template_kwargs, set last as transformers does)
//        into out + ".out" or out + ".err"
// A CONTEXT.json is an object with "messages" (and optionally "tools", "add_generation_prompt",
// "bos_token", "eos_token"); keys it lacks get HF's defaults (add_generation_prompt false, tokens "").
// Exit status: 0 rendered, 1 the template raised (message on stderr), 2 usage.
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { Template } from "@huggingface/jinja";

function context(ctxFile, overrides = {}) {
  const c = JSON.parse(readFileSync(ctxFile, "utf8"));
  const msgs = Array.isArray(c) ? c : c.messages;
  const out = {
    messages: msgs,
    add_generation_prompt: c.add_generation_prompt ?? false,
    bos_token: c.bos_token ?? "",
    eos_token: c.eos_token ?? "",
  };
  // Python's apply_chat_template always passes tools= and documents= (None when not given).
  out.tools = (!Array.isArray(c) && c.tools !== undefined) ? c.tools : null;
  out.documents = (!Array.isArray(c) && c.documents !== undefined) ? c.documents : null;
  return Object.assign(out, overrides);
}

function render(tplFile, ctxFile, overrides) {
  const src = readFileSync(tplFile, "utf8");
  return new Template(src).render(context(ctxFile, overrides));
}

const argv = process.argv.slice(2);
if (argv[0] === "--jobs") {
  for (const j of JSON.parse(readFileSync(argv[1], "utf8"))) {
    const over = Object.assign({ add_generation_prompt: j.add_generation_prompt, bos_token: j.bos_token,
                                 eos_token: j.eos_token }, j.kwargs || {});
    try {
      writeFileSync(j.out + ".out", render(j.template, j.context, over));
    } catch (e) {
      writeFileSync(j.out + ".err", String(e && e.message ? e.message : e) + "\n");
    }
  }
  process.exit(0);
}
if (argv[0] === "--batch") {
  const outdir = argv[1];
  const sep = argv.indexOf("--");
  if (!outdir || sep < 0) { console.error("usage: --batch OUTDIR TPL... -- CTX..."); process.exit(2); }
  const tpls = argv.slice(2, sep), ctxs = argv.slice(sep + 1);
  for (const t of tpls) {
    for (const c of ctxs) {
      for (const gen of [true, false]) {
        const name = `${outdir}/${basename(t, ".jinja")}__${basename(c, ".json")}__${gen ? "gen" : "nogen"}`;
        try {
          writeFileSync(name + ".out", render(t, c, { add_generation_prompt: gen, bos_token: "<s>", eos_token: "</s>" }));
        } catch (e) {
          writeFileSync(name + ".err", String(e && e.message ? e.message : e) + "\n");
        }
      }
    }
  }
  process.exit(0);
}
if (argv.length !== 2) { console.error("usage: node render_template.mjs TEMPLATE.jinja CONTEXT.json"); process.exit(2); }
try {
  process.stdout.write(render(argv[0], argv[1]));
} catch (e) {
  console.error(String(e && e.message ? e.message : e));
  process.exit(1);
}
