// cmd_chat.c — `tinyvllm chat`: interactive chat through the model's chat template.
//
// Reads one message per line from stdin (a "> " prompt when stdin is a terminal), streams the reply
// to stdout, then one timing line on stderr. Commands: /reset (forget the conversation, keep the
// system prompt), /quit or /exit (also EOF), /help. Ctrl-C during a reply aborts it (the partial
// reply stays in the history, as shown); Ctrl-C at the prompt quits.
// Each turn renders the whole history (tv_chat_fit); when it does not fit the
// context minus the reply's max tokens, the oldest exchanges are dropped (the system prompt stays)
// and a notice says so; a message that cannot fit even alone is an error line and the chat goes on.
// Hidden test flag: --dump-prompt PREFIX writes each turn's rendered prompt (PREFIX-N.txt) and the
// messages it was rendered from (PREFIX-N.json).
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cli_util.h"
#include "tinyvllm.h"

#define CMD "chat"

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm chat -m MODEL [options]\n"
            "  --tokenizer FILE        tokenizer (llama2.c tokenizer.bin or tokenizer.json) if the model has none\n"
            "  --chat-template FILE    Jinja chat template (default: the model's; none: plain \"User:/Assistant:\")\n"
            "  --system TEXT           system prompt (kept across /reset and history truncation)\n"
            "  -n N                    max new tokens per reply (default 512, at most half the context)\n"
            "  --temp T                temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K (default 40)  --top-p P (default 0.95)  --min-p P (default 0.05)\n"
            "  --seed S                RNG seed (default: random)\n"
            "  -t THREADS              worker threads (default: all cores)\n"
            "  --ctx N                 cap the context length\n"
            "commands in the chat: /reset  /quit  /help   (Ctrl-C aborts a reply; at the prompt it quits)\n");
}

// Whole file, NUL-terminated, malloc'd; NULL with a message on stderr.
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "tinyvllm %s: cannot open %s: %s\n", CMD, path, strerror(errno)); return NULL; }
    char *buf = NULL, chunk[65536];
    size_t n = 0, cap = 0, r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (!cli_append(&buf, &n, &cap, chunk, r)) { fprintf(stderr, "tinyvllm %s: out of memory reading %s\n", CMD, path); free(buf); fclose(f); return NULL; }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) { fprintf(stderr, "tinyvllm %s: error reading %s\n", CMD, path); free(buf); return NULL; }
    if (!buf && !cli_append(&buf, &n, &cap, "", 0)) { fprintf(stderr, "tinyvllm %s: out of memory\n", CMD); return NULL; }
    *len = n;
    return buf;
}

// Appends {role, content} to history; false on OOM.
static bool add_message(cJSON *history, const char *role, const char *content) {
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddStringToObject(m, "role", role) || !cJSON_AddStringToObject(m, "content", content) ||
        !cJSON_AddItemToArray(history, m)) {
        cJSON_Delete(m);
        return false;
    }
    return true;
}

// Removes everything but a leading system message.
static void reset_history(cJSON *history, bool has_system) {
    int keep = has_system ? 1 : 0;
    while (cJSON_GetArraySize(history) > keep) cJSON_DeleteItemFromArray(history, keep);
}

// Writes s to path (the hidden --dump-prompt: PREFIX-N.txt / PREFIX-N.json per turn).
static bool write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    size_t n = strlen(s);
    bool ok = fwrite(s, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static bool dump_turn(const char *prefix, int turn, const char *prompt, const cJSON *history) {
    char path[4096];
    char *js = cJSON_Print(history);
    bool ok = js != NULL;
    if (ok && (snprintf(path, sizeof path, "%s-%d.txt", prefix, turn) >= (int)sizeof path || !write_file(path, prompt))) ok = false;
    if (ok && (snprintf(path, sizeof path, "%s-%d.json", prefix, turn) >= (int)sizeof path || !write_file(path, js))) ok = false;
    free(js);
    return ok;
}

// Strips ASCII whitespace at both ends in place.
static char *trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return s;
}

int cmd_chat(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *tpl_path = NULL, *system = NULL, *dump_prefix = NULL;
    long n_new = 0, threads = 0, ctx = 0;
    tv_sampling_params sp;
    tv_sampling_params_default(&sp);
    sp.temperature = 0.8f;
    sp.top_k = 40;
    sp.top_p = 0.95f;
    sp.min_p = 0.05f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL() do { if (!v) return cli_usage_error(CMD, "%s needs a value", a); i++; } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED_VAL(); model_path = v; }
        else if (!strcmp(a, "--tokenizer")) { NEED_VAL(); tok_path = v; }
        else if (!strcmp(a, "--chat-template")) { NEED_VAL(); tpl_path = v; }
        else if (!strcmp(a, "--system")) { NEED_VAL(); system = v; }
        else if (!strcmp(a, "--dump-prompt")) { NEED_VAL(); dump_prefix = v; }   // hidden: for tests
        else if (!strcmp(a, "-n")) { NEED_VAL(); if (!cli_parse_long(v, 1, 1L << 24, &n_new)) return cli_usage_error(CMD, "-n: '%s' is not a valid count (>= 1)", v); }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { NEED_VAL(); if (!cli_parse_long(v, 1, 1024, &threads)) return cli_usage_error(CMD, "-t: '%s' is not a valid thread count", v); }
        else if (!strcmp(a, "--ctx")) { NEED_VAL(); if (!cli_parse_long(v, 2, 1L << 24, &ctx)) return cli_usage_error(CMD, "--ctx: '%s' invalid", v); }
        else if (!strcmp(a, "--temp")) { NEED_VAL(); if (!cli_parse_float(v, 0, 100, &sp.temperature)) return cli_usage_error(CMD, "--temp: '%s' invalid", v); }
        else if (!strcmp(a, "--top-k")) { NEED_VAL(); long k; if (!cli_parse_long(v, 0, 1L << 24, &k)) return cli_usage_error(CMD, "--top-k: '%s' invalid", v); sp.top_k = (int)k; }
        else if (!strcmp(a, "--top-p")) { NEED_VAL(); if (!cli_parse_float(v, 1e-6f, 1, &sp.top_p)) return cli_usage_error(CMD, "--top-p: '%s' must be in (0, 1]", v); }
        else if (!strcmp(a, "--min-p")) { NEED_VAL(); if (!cli_parse_float(v, 0, 1, &sp.min_p)) return cli_usage_error(CMD, "--min-p: '%s' must be in [0, 1]", v); }
        else if (!strcmp(a, "--seed")) { NEED_VAL(); char *end; errno = 0; unsigned long long s = strtoull(v, &end, 10); if (errno || *end || end == v || *v == '-') return cli_usage_error(CMD, "--seed: '%s' invalid", v); sp.seed = s; sp.has_seed = true; }
        else return cli_usage_error(CMD, "unknown option '%s' (see --help)", a);
#undef NEED_VAL
    }
    if (!model_path) return cli_usage_error(CMD, "-m MODEL is required");

    int rc = 1;
    tv_error err = {0};
    tv_model *m = NULL;
    tv_engine *e = NULL;
    tv_chat *chat = NULL;
    cJSON *history = NULL;
    char *tpl_src = NULL, *line = NULL, *reply = NULL;
    size_t tpl_len = 0, line_cap = 0, reply_len = 0, reply_cap = 0;
    struct sigaction old_sa;
    bool sa_set = false;

    if (tpl_path && !(tpl_src = slurp(tpl_path, &tpl_len))) return 1;
    double t0 = cli_time_ms();
    tv_model_params mp;
    tv_model_params_default(&mp);
    mp.tokenizer_path = tok_path;
    mp.cpu_path = cli_cpu_path(NULL);
    mp.no_repack = cli_no_repack();
    mp.n_threads = (int)threads;
    if (!(m = tv_model_load(model_path, &mp, &err))) goto fail;
    const tv_tokenizer *tok = tv_model_tokenizer(m);
    if (!tok) { tv_error_set(&err, TV_ERR_INVALID, "%s has no tokenizer: pass --tokenizer FILE", model_path); goto fail; }
    const char *src = tpl_src;
    size_t src_len = tpl_len;
    if (!src && (src = tv_model_chat_template(m))) src_len = strlen(src);
    tv_chat_params cp = {0};
    cp.template_src = src;
    cp.template_len = src_len;
    cp.tokenizer = tok;
    if (!(chat = tv_chat_create(&cp, &err))) {
        cli_error_prefix(&err, tpl_path ? tpl_path : "the model's chat template");
        goto fail;
    }
    if (!tv_chat_has_template(chat))
        fprintf(stderr, "tinyvllm %s: the model has no chat template; using a plain \"User: ...\\nAssistant:\" format "
                        "(pass --chat-template FILE.jinja for the model's own)\n", CMD);

    tv_engine_config ec;
    tv_engine_config_default(&ec);
    if (threads > 0) ec.n_threads = (int)threads;
    ec.cpu_path = mp.cpu_path;
    ec.max_num_seqs = 1;
    ec.max_model_len = (int)ctx;
    if (!(e = tv_engine_create(m, &ec, &err))) goto fail;
    tv_engine_limits lim;
    tv_engine_get_limits(e, &lim);
    long n_ctx = lim.max_model_len;
    if (n_new == 0) n_new = n_ctx / 2 < 512 ? n_ctx / 2 : 512;
    if (n_new < 1 || n_new >= n_ctx) {
        fprintf(stderr, "tinyvllm %s: -n %ld leaves no room for a prompt in a context of %ld tokens\n", CMD, n_new, n_ctx);
        rc = 2;
        goto done;
    }
    size_t prompt_budget = (size_t)(n_ctx - n_new);   // tokens the rendered history may take

    bool is_tty = isatty(STDIN_FILENO);
    if (is_tty)
        fprintf(stderr, "tinyvllm %s: %s loaded in %.0f ms, context %ld, up to %ld new tokens per reply; /help for commands\n",
                CMD, tv_model_name(m) ? tv_model_name(m) : model_path, cli_time_ms() - t0, n_ctx, n_new);

    if (!(history = cJSON_CreateArray())) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
    bool has_system = system != NULL;
    if (has_system && !add_message(history, "system", system)) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }

    // A template that rejects this conversation's shape (e.g. "System role not supported") would
    // refuse every message: say so once, up front.
    {
        cJSON *probe = cJSON_Duplicate(history, true);
        char *probe_json = probe && add_message(probe, "user", "Hello") ? cJSON_PrintUnformatted(probe) : NULL;
        char *out = NULL;
        tv_chat_input in = {0};
        in.messages_json = probe_json;
        in.add_generation_prompt = true;
        tv_status st = probe_json ? tv_chat_render(chat, &in, &out, &err) : tv_error_set(&err, TV_ERR_NOMEM, "out of memory");
        cJSON_Delete(probe);
        free(probe_json);
        free(out);
        if (st) {
            if (st != TV_ERR_NOMEM && tv_chat_has_template(chat)) cli_error_prefix(&err, "chat template");
            if (has_system && st != TV_ERR_NOMEM) cli_error_prefix(&err, "with --system");
            goto fail;
        }
    }

    // No SA_RESTART: Ctrl-C interrupts the blocking read at the prompt (getline returns -1, EINTR).
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &old_sa) == 0) sa_set = true;

    const char *stop = tv_chat_stop(chat);
    int turn = 0;
    for (;;) {
        if (is_tty) { fputs("> ", stdout); fflush(stdout); }
        // g_interrupted is cleared once a reply is over: set here, it is a Ctrl-C at the prompt
        if (g_interrupted) { if (is_tty) fputc('\n', stdout); break; }
        errno = 0;
        ssize_t n_line = getline(&line, &line_cap, stdin);
        if (n_line < 0) {
            if (g_interrupted || errno == EINTR) { if (is_tty) fputc('\n', stdout); break; }   // Ctrl-C at the prompt
            if (ferror(stdin)) { tv_error_set(&err, TV_ERR_IO, "error reading stdin: %s", strerror(errno)); goto fail; }
            if (is_tty) fputc('\n', stdout);
            break;   // EOF
        }
        if (memchr(line, 0, (size_t)n_line)) { fprintf(stderr, "tinyvllm %s: the line holds a NUL byte; ignored\n", CMD); continue; }
        char *msg = trim(line);
        if (!*msg) continue;
        if (!strcmp(msg, "/quit") || !strcmp(msg, "/exit")) break;
        if (!strcmp(msg, "/help")) {
            fprintf(stderr, "commands: /reset (forget the conversation, keep the system prompt)  /quit  /help\n");
            continue;
        }
        if (!strcmp(msg, "/reset")) {
            reset_history(history, has_system);
            fprintf(stderr, "tinyvllm %s: history cleared%s\n", CMD, has_system ? " (system prompt kept)" : "");
            continue;
        }
        {   // typed bytes are checked on their own, so an error points into the line, not the prompt
            int32_t *line_ids = NULL;
            size_t n_line_ids = 0;
            tv_error terr = {0};
            tv_status st = tv_tokenize(tok, msg, strlen(msg), false, false, &line_ids, &n_line_ids, &terr);
            free(line_ids);
            if (st == TV_ERR_NOMEM) { err = terr; goto fail; }
            if (st) { fprintf(stderr, "tinyvllm %s: your message: %s; not sent\n", CMD, terr.msg); continue; }
        }
        if (!add_message(history, "user", msg)) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }

        // render the whole history, dropping the oldest exchanges when it does not fit
        int n_dropped = 0;
        char *prompt_text = NULL, *kept_json = NULL;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        tv_error terr = {0};
        char *history_json = cJSON_PrintUnformatted(history);
        if (!history_json) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
        tv_status st = tv_chat_fit(chat, history_json, prompt_budget, &n_dropped, &kept_json, dump_prefix ? &prompt_text : NULL,
                                   &ids, &n_ids, &terr);
        free(history_json);
        if (!st && n_dropped) {   // the history from now on: what fitted
            cJSON *kept = cJSON_Parse(kept_json);
            if (!kept) { free(kept_json); free(prompt_text); free(ids); tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
            cJSON_Delete(history);
            history = kept;
        }
        free(kept_json);
        if (st) {
            if (st == TV_ERR_NOMEM) { err = terr; goto fail; }
            fprintf(stderr, "tinyvllm %s: %s%s\n", CMD, terr.msg,
                    st == TV_ERR_RANGE ? " (the context minus the reply's max tokens); message not sent" : "; message not sent");
            cJSON_DeleteItemFromArray(history, cJSON_GetArraySize(history) - 1);
            continue;
        }
        if (n_dropped)
            fprintf(stderr, "tinyvllm %s: context full: dropped the oldest %d exchange%s from the history (prompt now %zu of %zu tokens)\n",
                    CMD, n_dropped, n_dropped == 1 ? "" : "s", n_ids, prompt_budget);
        turn++;
        if (dump_prefix && !dump_turn(dump_prefix, turn, prompt_text, history))
            fprintf(stderr, "tinyvllm %s: cannot write the --dump-prompt files for turn %d\n", CMD, turn);
        free(prompt_text);

        tv_request_params rp;
        tv_request_params_default(&rp);
        rp.prompt_ids = ids;
        rp.n_prompt = n_ids;
        rp.sampling = sp;
        rp.max_tokens = (int)n_new;
        rp.stop = &stop;
        rp.n_stop = stop ? 1 : 0;
        uint64_t req_id = 0;
        st = tv_engine_add_request(e, &rp, &req_id, &terr);
        free(ids);
        if (st) {
            if (st == TV_ERR_NOMEM) { err = terr; goto fail; }
            fprintf(stderr, "tinyvllm %s: %s; message not sent\n", CMD, terr.msg);
            cJSON_DeleteItemFromArray(history, cJSON_GetArraySize(history) - 1);
            continue;
        }

        // stream the reply
        reply_len = 0;
        if (!cli_append(&reply, &reply_len, &reply_cap, "", 0)) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
        double t_start = cli_time_ms(), t_first = 0;
        tv_finish_reason finish = TV_FINISH_NONE;
        int n_gen = 0;
        bool aborted = false, shown_any = false;
        while (tv_engine_has_work(e)) {
            if (g_interrupted && !aborted) {
                g_interrupted = 0;   // consumed: this Ctrl-C was for the reply
                tv_engine_abort(e, req_id);
                aborted = true;
            }
            const tv_request_output *outs;
            int n_outs;
            if (tv_engine_step(e, &outs, &n_outs, &err)) goto fail;
            for (int i = 0; i < n_outs; i++) {
                const tv_request_output *o = &outs[i];
                if (o->n_new && !t_first) t_first = cli_time_ms();
                n_gen = o->n_generated;
                if (o->text_len) {
                    if (!cli_append(&reply, &reply_len, &reply_cap, o->text, o->text_len)) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
                    // shown from its first non-blank byte ("Assistant: Hi" / "[/INST] Hi" -> "Hi")
                    const char *show = o->text;
                    size_t n_show = o->text_len;
                    while (!shown_any && n_show && (*show == ' ' || *show == '\n' || *show == '\r' || *show == '\t')) { show++; n_show--; }
                    if (n_show) {
                        shown_any = true;
                        fwrite(show, 1, n_show, stdout);
                        fflush(stdout);
                    }
                }
                if (o->finish == TV_FINISH_ERROR) { err = *o->error; goto fail; }
                if (o->finish) finish = o->finish;
            }
        }
        double t_end = cli_time_ms();
        g_interrupted = 0;   // a Ctrl-C that came as the reply finished was for the reply, not the prompt
        fputc('\n', stdout);
        fflush(stdout);
        if (!t_first) t_first = t_end;
        double prompt_ms = t_first - t_start, gen_ms = t_end - t_first;
        double pp_tps = prompt_ms > 0 ? (double)rp.n_prompt / (prompt_ms / 1e3) : 0;
        double tg_tps = n_gen > 1 && gen_ms > 0 ? (n_gen - 1) / (gen_ms / 1e3) : 0;
        const char *fin = finish == TV_FINISH_STOP ? "stop" : finish == TV_FINISH_LENGTH ? "length" : "aborted";
        fprintf(stderr, "tinyvllm %s: prompt %zu tok, %.1f tok/s | reply %d tok, %.1f tok/s | finish %s\n", CMD, rp.n_prompt,
                pp_tps, n_gen, tg_tps, fin);
        if (!add_message(history, "assistant", trim(reply))) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); goto fail; }
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg[0] ? err.msg : tv_status_str(err.code));
done:
    if (sa_set) sigaction(SIGINT, &old_sa, NULL);
    cJSON_Delete(history);
    free(line);
    free(reply);
    free(tpl_src);
    tv_chat_free(chat);
    tv_engine_free(e);
    tv_model_free(m);
    return rc;
}
