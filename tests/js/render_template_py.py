#!/usr/bin/env python3
# render_template_py.py — second oracle: Python Jinja2 configured exactly as transformers'
# apply_chat_template configures it (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
# loopcontrols, a {% generation %} block that renders its body, tojson = json.dumps with
# ensure_ascii=False, raise_exception, strftime_now). Used only where @huggingface/jinja cannot render
# a template (str.format, tuple unpacking, |min...), to check tinyvllm's Python-compatible extensions.
#
# Usage: render_template_py.py --batch OUTDIR TEMPLATE.jinja... -- CONTEXT.json...
#   same file naming as render_template.mjs --batch: <template>__<context>__<gen|nogen>.out/.err
import json, os, sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlock(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.Scope(body).set_lineno(lineno)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

if len(sys.argv) < 4 or sys.argv[1] != "--batch" or "--" not in sys.argv:
    print("usage: render_template_py.py --batch OUTDIR TPL... -- CTX...", file=sys.stderr)
    sys.exit(2)
outdir = sys.argv[2]
sep = sys.argv.index("--")
for t in sys.argv[3:sep]:
    try:
        tpl, perr = env.from_string(open(t, encoding="utf-8").read()), None
    except Exception as e:  # noqa: BLE001 - any compile error is the oracle's answer
        tpl, perr = None, e
    for c in sys.argv[sep + 1:]:
        d = json.load(open(c, encoding="utf-8"))
        msgs = d if isinstance(d, list) else d["messages"]
        tools = None if isinstance(d, list) else d.get("tools")
        for gen in (True, False):
            name = f"{outdir}/{os.path.basename(t)[:-len('.jinja')]}__{os.path.basename(c)[:-len('.json')]}__{'gen' if gen else 'nogen'}"
            try:
                if perr:
                    raise perr
                out = tpl.render(messages=msgs, tools=tools, documents=None, add_generation_prompt=gen,
                                 bos_token="<s>", eos_token="</s>")
                with open(name + ".out", "w", encoding="utf-8", newline="") as f:
                    f.write(out)
            except Exception as e:  # noqa: BLE001
                with open(name + ".err", "w", encoding="utf-8") as f:
                    f.write(f"{e}\n")
