// server.h — the OpenAI-compatible HTTP server (libmicrohttpd, one thread per connection).
//
// Routes: POST /v1/completions, POST /v1/chat/completions (SSE when stream: true), GET /v1/models,
// GET /v1/models/{id}, GET /health, GET /metrics (Prometheus), POST /tokenize, POST /detokenize.
// Errors: {"error": {"message", "type", "param", "code"}} with the HTTP status. docs/server.md has
// the whole contract.
#ifndef TV_SERVER_SERVER_H
#define TV_SERVER_SERVER_H

#include <stddef.h>

#include "tinyvllm.h"

typedef struct srv_server srv_server;

typedef struct srv_config {
    const char *host;            // bind address (default "127.0.0.1")
    int port;                    // 0 = an ephemeral port (see srv_server_port)
    const char *api_key;         // NULL or "" = no authentication
    const char *model_alias;     // the model id served; NULL = tv_model_name()
    const char *chat_template;   // Jinja source; NULL = the model's
    int max_num_seqs;            // the engine's running limit (for back-pressure)
    int max_queue;               // sequences allowed to wait beyond max_num_seqs; more -> 429
    size_t max_body_bytes;       // request bodies above this -> 413 (default 8 MiB)
    int max_connections;         // concurrent connections (default 512)
} srv_config;

void srv_config_default(srv_config *c);

// Starts listening and the engine thread. The model and engine stay owned by the caller and must
// outlive the server; nothing else may call tv_engine_* while it runs. NULL + err on failure.
srv_server *srv_server_start(tv_model *m, tv_engine *e, const srv_config *c, tv_error *err);
int srv_server_port(const srv_server *s);
// Stops accepting connections, aborts requests in flight (streams end with finish_reason
// "abort"), waits for connection threads and the engine thread, frees the server. NULL ok.
void srv_server_stop(srv_server *s);

#endif
