// tinyvllm_server.h — the OpenAI-compatible HTTP server over a model and an engine (libmicrohttpd, one
// thread per connection). A public header of its own: the library tinyvllm_server, built on tinyvllm.h.
//
// Routes: POST /v1/completions, POST /v1/chat/completions (SSE when stream: true), GET /v1/models,
// GET /v1/models/{id}, GET /health, GET /metrics (Prometheus), POST /tokenize, POST /detokenize.
// Errors: {"error": {"message", "type", "param", "code"}} with the HTTP status. docs/server.md has
// the whole contract.
#ifndef TINYVLLM_SERVER_H
#define TINYVLLM_SERVER_H

#include <stddef.h>

#include "tinyvllm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tv_server tv_server;

typedef struct tv_server_config {
    const char *host;            // bind address (default "127.0.0.1")
    int port;                    // 0 = an ephemeral port (see tv_server_port)
    const char *api_key;         // NULL or "" = no authentication
    const char *model_alias;     // the model id served; NULL = tv_model_name()
    const char *chat_template;   // Jinja source; NULL = the model's
    const char *chat_template_kwargs;  // JSON object of template variables for every chat (e.g.
                                 // {"enable_thinking": false}); a request's chat_template_kwargs override them
    int max_queue;               // sequences allowed to wait beyond the engine's max_num_seqs; more -> 429
    size_t max_body_bytes;       // request bodies above this -> 413 (default 8 MiB)
    int max_connections;         // concurrent connections (default 512)
} tv_server_config;

void tv_server_config_default(tv_server_config *c);

// Starts listening and the engine thread. The model and engine stay owned by the caller and must
// outlive the server; nothing else may call tv_engine_* while it runs. NULL + err on failure.
tv_server *tv_server_start(tv_model *m, tv_engine *e, const tv_server_config *c, tv_error *err);
int tv_server_port(const tv_server *s);
// Stops accepting connections, aborts requests in flight (streams end with finish_reason
// "abort"), waits for connection threads and the engine thread, frees the server. NULL ok.
void tv_server_stop(tv_server *s);

#ifdef __cplusplus
}
#endif
#endif
