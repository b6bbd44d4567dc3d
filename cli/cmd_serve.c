// cmd_serve.c — `tinyvllm serve`: load a model, start the engine and the OpenAI-compatible server,
// run until SIGINT/SIGTERM, then stop accepting, abort what is in flight and exit 0.
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opts.h"
#include "cli_util.h"
#include "tinyvllm_server.h"
#include "tinyvllm.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm serve -m MODEL [options]\n"
            "  --host ADDR                    bind address (default 127.0.0.1)\n"
            "  --port N                       port (default 8080; 0 = any free port, printed at start)\n"
            "  --api-key KEY                  require 'Authorization: Bearer KEY' on /v1/* (or env TINYVLLM_API_KEY)\n"
            "  --model-alias, -a, --alias NAME\n"
            "                                 model id served in /v1/models and expected in requests\n"
            "  --max-num-seqs, -np, --parallel N\n"
            "                                 sequences running at once (default 64)\n"
            "  --kv-mem MB                    KV-cache budget in MiB (default: the engine's)\n"
            "  --max-queue N                  sequences allowed to wait beyond max-num-seqs; more -> 429 (default 256)\n"
            "  --chat-template, --chat-template-file FILE\n"
            "                                 Jinja chat template (default: the model's; a model without one gets a\n"
            "                                 plain \"User: ...\\nAssistant:\" transcript, as `chat` does)\n"
            "  --chat-template-kwargs JSON    template variables for every chat, e.g. '{\"enable_thinking\": false}'\n");
    cli_model_usage(f);
    fputs(CLI_HELP_USAGE, f);
}

static void log_to_stderr(tv_log_level level, const char *msg, void *user) {
    if (level >= TV_LOG_WARN) fprintf(stderr, "tinyvllm serve: %s\n", msg);
}

int cmd_serve(int argc, char **argv) {
    cli_model_opts mo = {0};
    const char *tpl_path = NULL;
    tv_server_config sc;
    tv_server_config_default(&sc);
    long max_seqs = 0, kv_mb = 0, port = sc.port, max_queue = sc.max_queue;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt("serve", argc, argv, &i, &mo);
        if (r == 2) return 2;
        if (r) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        bool known = !strcmp(a, "--host") || !strcmp(a, "--port") || !strcmp(a, "--api-key") || !strcmp(a, "--model-alias") ||
                     !strcmp(a, "-a") || !strcmp(a, "--alias") || !strcmp(a, "--max-num-seqs") || !strcmp(a, "-np") ||
                     !strcmp(a, "--parallel") || !strcmp(a, "--kv-mem") || !strcmp(a, "--max-queue") ||
                     !strcmp(a, "--chat-template") || !strcmp(a, "--chat-template-file") || !strcmp(a, "--chat-template-kwargs");
        if (!known) return cli_usage_error("serve", "unknown option '%s' (see --help)", a);
        if (i + 1 >= argc) return cli_usage_error("serve", "%s needs a value", a);
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(a, "--host")) sc.host = v;
        else if (!strcmp(a, "--port")) ok = cli_parse_long(v, 0, 65535, &port);
        else if (!strcmp(a, "--api-key")) sc.api_key = v;
        else if (!strcmp(a, "--model-alias") || !strcmp(a, "-a") || !strcmp(a, "--alias")) sc.model_alias = v;
        else if (!strcmp(a, "--max-num-seqs") || !strcmp(a, "-np") || !strcmp(a, "--parallel")) ok = cli_parse_long(v, 1, 4096, &max_seqs);
        else if (!strcmp(a, "--kv-mem")) ok = cli_parse_long(v, 1, 1L << 30, &kv_mb);
        else if (!strcmp(a, "--max-queue")) ok = cli_parse_long(v, 0, 1 << 20, &max_queue);
        else if (!strcmp(a, "--chat-template") || !strcmp(a, "--chat-template-file")) tpl_path = v;
        else sc.chat_template_kwargs = v;
        if (!ok) return cli_usage_error("serve", "bad value '%s' for %s", v, a);
    }
    if (!mo.model_path) return cli_usage_error("serve", "-m MODEL is required (see --help)");
    if (!sc.api_key) sc.api_key = getenv("TINYVLLM_API_KEY");
    tv_log_set(log_to_stderr, NULL);

    // SIGINT/SIGTERM are taken synchronously by this thread (sigwait below). Blocked before any
    // thread exists (the engine's kernel pool, MHD's, the engine loop) so that every thread inherits
    // the mask; a signal that arrives while loading is handled once serving starts.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    tv_error err = {0};
    tv_model *m = NULL;
    tv_engine *e = NULL;
    tv_server *srv = NULL;
    char *tpl = NULL;
    if (tpl_path) {
        if (!(tpl = cli_read_file("serve", tpl_path, CLI_MAX_TEMPLATE, NULL))) return 1;
        sc.chat_template = tpl;
    }

    tv_engine_config ec;
    tv_engine_config_default(&ec);
    if (max_seqs) ec.max_num_seqs = (int)max_seqs;
    if (kv_mb) ec.kv_mem_mb = kv_mb;
    if (cli_open(&mo, &ec, &m, &e, &err)) { fprintf(stderr, "tinyvllm serve: %s\n", err.msg); goto out; }

    sc.port = (int)port;
    sc.max_queue = (int)max_queue;
    tv_engine_limits lim;
    tv_engine_get_limits(e, &lim);
    if (!(srv = tv_server_start(m, e, &sc, &err))) { fprintf(stderr, "tinyvllm serve: %s\n", err.msg); goto out; }
    fprintf(stderr, "tinyvllm serve: model %s, ctx %d, %lld KV blocks of %d tokens (%d-bit), max %d seqs\n", mo.model_path,
            lim.max_model_len, (long long)lim.n_blocks, lim.block_size, lim.kv_bits, lim.max_num_seqs);
    if (!tpl && !tv_model_chat_template(m)) cli_warn("serve", CLI_PLAIN_CHAT_NOTE);
    bool is_v6 = strchr(sc.host, ':') != NULL;
    fprintf(stderr, "tinyvllm serve: listening on http://%s%s%s:%d\n", is_v6 ? "[" : "", sc.host, is_v6 ? "]" : "",
            tv_server_port(srv));
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {}
    fprintf(stderr, "tinyvllm serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    tv_server_stop(srv);
    srv = NULL;
    rc = 0;
out:
    tv_server_stop(srv);
    cli_free_engine(e);
    tv_model_free(m);
    free(tpl);
    return rc;
}
