// tools.h — the assistant reply as an OpenAI message: reasoning (<think>...</think>) split into
// reasoning_content, tool calls parsed out of the text into tool_calls, the rest as content; and
// the forced-tool-call constraint for tool_choice required / named. Pure functions over text.
//
// Tool-call formats recognized with tool_choice auto (the first that matches):
//   Hermes / Qwen   <tool_call>{"name": N, "arguments": {...}}</tool_call> (one block per call;
//                   text outside the blocks stays content)
//   Mistral         [TOOL_CALLS] [{"name": N, "arguments": {...}}, ...]
//   Llama 3.x       the whole reply (after an optional <|python_tag|>) is {"name": N, "parameters"
//                   | "arguments": {...}} or an array of them
//   gpt-oss harmony messages "[<|start|>assistant][ to=functions.N]<|channel|>C[ <|constrain|>json]
//                   <|message|>BODY" ended by <|end|>, <|call|>, <|return|> or the next <|start|>:
//                   a recipient functions.N makes BODY a call's arguments; channel analysis is
//                   reasoning (content when reasoning is off); final and other channels content
// A call whose name is not among the request's tools is left as text.
// Forced calls (required / named) are constrained by a JSON Schema (srv_tools_schema), as vLLM does:
//   required: [{"name": N, "parameters": {...}}, ...] (1 item unless parallel_tool_calls)
//   named:    the function's parameters object itself.
// Streaming: srv_reply_feed holds back only what may still become a marker (a prefix of <think>,
// </think>, <tool_call>, [TOOL_CALLS], a harmony header or terminator) and everything after a
// tool-call marker; harmony calls are parsed as their messages end and returned by srv_reply_finish.
#ifndef TV_SERVER_TOOLS_H
#define TV_SERVER_TOOLS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "request.h"

// The JSON Schema text forcing req's tool call (tool_choice required / named); NULL + err when the
// named tool does not exist or the tools are malformed. malloc'd.
char *srv_tools_schema(const cJSON *tools, const char *named, bool parallel, srv_error *err);

typedef struct srv_text { char *p; size_t n, cap; } srv_text;
void srv_text_free(srv_text *t);

typedef struct srv_reply {
    int state;              // where the parser is (tools.c)
    bool reasoning, tools, forced;
    bool after_think;       // a <think> block ended: newlines right after it are not content
    char forced_name[128];  // tool_choice named
    srv_text hold;          // text not yet classified, or the tool-call text
    srv_text reasoning_out, content_out;   // what feed / finish produced this call
    const cJSON *tool_defs;   // the request's tools (borrowed)
    // gpt-oss harmony (tools.c)
    int h_kind;             // what the current message's body is
    char h_name[128];       // the called function
    srv_text h_args;        // its arguments so far
    cJSON *h_calls;         // calls of the messages ended so far (a JSON array) or NULL
} srv_reply;

// prompt_opens_think: the rendered prompt ends inside <think> (the reply starts as reasoning).
void srv_reply_init(srv_reply *r, const srv_request *req, bool prompt_opens_think);
void srv_reply_free(srv_reply *r);
// Adds generated text; afterwards r->reasoning_out / r->content_out hold what may be shown now
// (the caller clears them with srv_reply_take).
void srv_reply_feed(srv_reply *r, const char *text, size_t n);
// The end: flushes what was held; returns the tool calls (a JSON array of OpenAI tool_call objects,
// caller frees) or NULL when there are none.
cJSON *srv_reply_finish(srv_reply *r);
void srv_reply_take(srv_reply *r);   // empties reasoning_out and content_out

#endif
