// cmd_chat.c — `tinyvllm chat`: interactive chat through the model's chat template.
//
// Reads one message per line from stdin (on a terminal through libedit: line editing, history,
// chat_input.c), streams the reply to stdout, then one timing line on stderr. Commands: /reset
// (forget the conversation, keep the system prompt), /quit or /exit (also EOF), /help; any other
// line starting with "/" is answered here with that list ("//text" sends "/text"). Ctrl-C during a
// reply aborts it (the partial reply, cut to whole UTF-8 characters, stays in the history, as
// shown); Ctrl-C at the prompt quits.
// Each turn renders the whole history (tv_chat_fit); when it does not fit the
// context minus the reply's max tokens, the oldest exchanges are dropped (the system prompt stays)
// and a notice says so; a message that cannot fit even alone is an error line and the chat goes on.
// Test flag: --dump-prompt PREFIX writes each turn's rendered prompt (PREFIX-N.txt) and the
// messages it was rendered from (PREFIX-N.json).
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "chat_input.h"
#include "cli.h"
#include "cli_opts.h"
#include "cli_util.h"
#include "tinyvllm.h"

#define CMD "chat"

#define CHAT_COMMANDS_HELP \
    "/reset (forget the conversation, keep the system prompt)  /quit or /exit  /help  (//text sends /text)"

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: tinyvllm chat -m MODEL [options]\n"
            "  --chat-template, --chat-template-file FILE\n"
            "                                 Jinja chat template (default: the model's; a model without one gets a\n"
            "                                 plain \"User: ...\\nAssistant:\" transcript, as `serve` does)\n"
            "  --chat-template-kwargs JSON    template variables, e.g. '{\"enable_thinking\": false}' (Qwen3)\n"
            "  -sys, --system, --system-prompt TEXT\n"
            "                                 system prompt (kept across /reset and history truncation)\n"
            "  -n, --n-predict, --predict N   max new tokens per reply (default 512, at most half the context)\n"
            "  --dump-prompt PREFIX           (for tests) write each turn's prompt and messages to PREFIX-N.txt/.json\n");
    cli_model_usage(f);
    cli_sampling_usage(f);
    fprintf(f, "commands in the chat: %s\n"
               "(Ctrl-C aborts a reply; at the prompt it quits)\n", CHAT_COMMANDS_HELP);
    fputs(CLI_HELP_USAGE, f);
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

typedef struct chat_args {
    cli_model_opts mo;
    tv_sampling_params sp;
    unsigned sp_given;   // TV_SAMPLE_* bits set by flags
    const char *tpl_path, *tpl_kwargs, *system, *dump_prefix;
    long n_new;   // 0: derived from the context
} chat_args;

// Fills a from the command line; 0, -1 after --help, or the exit status of a usage error.
static int parse_args(int argc, char **argv, chat_args *a) {
    cli_sampling_defaults(&a->sp);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r;
        if ((r = cli_model_opt(CMD, argc, argv, &i, &a->mo)) || (r = cli_sampling_opt(CMD, argc, argv, &i, &a->sp, &a->sp_given))) {
            if (r == 2) return 2;
            continue;
        }
#define NEED_VAL() do { if (!v) return cli_usage_error(CMD, "%s needs a value", o); i++; } while (0)
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) { usage(stdout); return -1; }
        else if (!strcmp(o, "--chat-template") || !strcmp(o, "--chat-template-file")) { NEED_VAL(); a->tpl_path = v; }
        else if (!strcmp(o, "--chat-template-kwargs")) { NEED_VAL(); a->tpl_kwargs = v; }
        else if (!strcmp(o, "--system") || !strcmp(o, "-sys") || !strcmp(o, "--system-prompt")) { NEED_VAL(); a->system = v; }
        else if (!strcmp(o, "--dump-prompt")) { NEED_VAL(); a->dump_prefix = v; }
        else if (!strcmp(o, "-n") || !strcmp(o, "--n-predict") || !strcmp(o, "--predict")) {
            NEED_VAL();
            if (!cli_parse_long(v, 1, 1L << 24, &a->n_new)) return cli_usage_error(CMD, "%s: '%s' is not a valid count (>= 1)", o, v);
        }
        else return cli_usage_error(CMD, "unknown option '%s' (see --help)", o);
#undef NEED_VAL
    }
    if (!a->mo.model_path) return cli_usage_error(CMD, "-m MODEL is required");
    return 0;
}

// One conversation: the model, its engine and template, the history and the per-reply limits.
typedef struct session {
    const chat_args *args;
    tv_model *m;
    tv_engine *e;
    tv_chat *chat;
    const tv_tokenizer *tok;
    cJSON *history;            // [{role, content}], a leading system message when has_system
    bool has_system;
    long n_new;                // max tokens per reply
    size_t prompt_budget;      // tokens the rendered history may take (context - n_new)
    const char *stop;          // the template's stop string, or NULL
    int turn;
    char *reply;               // the reply being streamed
    size_t reply_len, reply_cap;
} session;

static void session_close(session *s) {
    cJSON_Delete(s->history);
    free(s->reply);
    tv_chat_free(s->chat);
    cli_free_engine(s->e);
    tv_model_free(s->m);
}

// Loads the model, the template and the engine, and checks the template accepts this conversation's
// shape (a template that says e.g. "System role not supported" would refuse every message: say so
// once, up front). Returns 0, or the exit status after printing why.
static int session_open(session *s, chat_args *a) {
    tv_error err = {0};
    char *tpl_src = NULL;
    size_t tpl_len = 0;
    s->args = a;
    if (a->tpl_path && !(tpl_src = cli_read_file(CMD, a->tpl_path, CLI_MAX_TEMPLATE, &tpl_len))) return 1;
    double t0 = cli_time_ms();
    tv_engine_config ec;
    tv_engine_config_default(&ec);
    ec.max_num_seqs = 1;
    if (cli_open(&a->mo, &ec, &s->m, &s->e, &err)) goto fail;
    cli_sampling_from_model(CMD, s->m, a->sp_given, a->mo.quiet, &a->sp);
    if (!(s->tok = tv_model_tokenizer(s->m))) {
        tv_error_set(&err, TV_ERR_INVALID, "%s has no tokenizer: pass --tokenizer FILE", a->mo.model_path);
        goto fail;
    }
    tv_chat_params cp = {0};
    cp.template_src = tpl_src ? tpl_src : tv_model_chat_template(s->m);
    cp.template_len = cp.template_src ? (tpl_src ? tpl_len : strlen(cp.template_src)) : 0;
    cp.tokenizer = s->tok;
    cp.kwargs_json = a->tpl_kwargs;
    if (!(s->chat = tv_chat_create(&cp, &err))) {
        cli_error_prefix(&err, a->tpl_path ? a->tpl_path : "the model's chat template");
        goto fail;
    }
    free(tpl_src);
    tpl_src = NULL;
    if (!tv_chat_has_template(s->chat)) cli_warn(CMD, CLI_PLAIN_CHAT_NOTE);
    s->stop = tv_chat_stop(s->chat);

    tv_engine_limits lim;
    tv_engine_get_limits(s->e, &lim);
    long n_ctx = lim.max_model_len;
    s->n_new = a->n_new ? a->n_new : (n_ctx / 2 < 512 ? n_ctx / 2 : 512);
    if (s->n_new < 1 || s->n_new >= n_ctx) {
        fprintf(stderr, "tinyvllm %s: -n %ld leaves no room for a prompt in a context of %ld tokens\n", CMD, s->n_new, n_ctx);
        return 2;
    }
    s->prompt_budget = (size_t)(n_ctx - s->n_new);
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "tinyvllm %s: %s loaded in %.0f ms, context %ld, up to %ld new tokens per reply; /help for commands\n",
                CMD, tv_model_name(s->m) ? tv_model_name(s->m) : a->mo.model_path, cli_time_ms() - t0, n_ctx, s->n_new);

    s->has_system = a->system != NULL;
    if (!(s->history = cJSON_CreateArray()) || (s->has_system && !add_message(s->history, "system", a->system))) {
        tv_error_set(&err, TV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    cJSON *probe = cJSON_Duplicate(s->history, true);
    char *probe_json = probe && add_message(probe, "user", "Hello") ? cJSON_PrintUnformatted(probe) : NULL;
    char *out = NULL;
    tv_chat_input in = {0};
    in.messages_json = probe_json;
    in.add_generation_prompt = true;
    tv_status st = probe_json ? tv_chat_render(s->chat, &in, &out, &err) : tv_error_set(&err, TV_ERR_NOMEM, "out of memory");
    cJSON_Delete(probe);
    free(probe_json);
    free(out);
    if (st) {
        if (st != TV_ERR_NOMEM && tv_chat_has_template(s->chat)) cli_error_prefix(&err, "chat template");
        if (s->has_system && st != TV_ERR_NOMEM) cli_error_prefix(&err, "with --system");
        goto fail;
    }
    return 0;
fail:
    free(tpl_src);
    fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg[0] ? err.msg : tv_status_str(err.code));
    return 1;
}

// Adds msg as the user's turn and renders the history into *ids, dropping the oldest exchanges when
// it does not fit. Returns TV_OK; another status with the message refused (reason printed, history as
// before) when it cannot be sent; TV_ERR_NOMEM (in err) is fatal.
static tv_status build_prompt(session *s, const char *msg, int32_t **ids, size_t *n_ids, tv_error *err) {
    tv_error terr = {0};
    int32_t *line_ids = NULL;   // typed bytes are checked on their own, so an error points into the line
    size_t n_line_ids = 0;
    tv_status st = tv_tokenize(s->tok, msg, strlen(msg), false, false, &line_ids, &n_line_ids, &terr);
    free(line_ids);
    if (st == TV_ERR_NOMEM) { *err = terr; return st; }
    if (st) { fprintf(stderr, "tinyvllm %s: your message: %s; not sent\n", CMD, terr.msg); return st; }
    if (!add_message(s->history, "user", msg)) return tv_error_set(err, TV_ERR_NOMEM, "out of memory");

    int n_dropped = 0;
    char *prompt_text = NULL, *kept_json = NULL;
    char *history_json = cJSON_PrintUnformatted(s->history);
    if (!history_json) return tv_error_set(err, TV_ERR_NOMEM, "out of memory");
    st = tv_chat_fit(s->chat, history_json, s->prompt_budget, &n_dropped, &kept_json,
                     s->args->dump_prefix ? &prompt_text : NULL, ids, n_ids, &terr);
    free(history_json);
    if (!st && n_dropped) {   // the history from now on: what fitted
        cJSON *kept = cJSON_Parse(kept_json);
        if (!kept) st = tv_error_set(&terr, TV_ERR_NOMEM, "out of memory");
        else { cJSON_Delete(s->history); s->history = kept; }
    }
    free(kept_json);
    if (st) {
        free(prompt_text);
        if (st == TV_ERR_NOMEM) { free(*ids); *ids = NULL; *err = terr; return st; }
        fprintf(stderr, "tinyvllm %s: %s%s\n", CMD, terr.msg,
                st == TV_ERR_RANGE ? " (the context minus the reply's max tokens); message not sent" : "; message not sent");
        cJSON_DeleteItemFromArray(s->history, cJSON_GetArraySize(s->history) - 1);
        return st;
    }
    if (n_dropped)
        fprintf(stderr, "tinyvllm %s: context full: dropped the oldest %d exchange%s from the history (prompt now %zu of %zu tokens)\n",
                CMD, n_dropped, n_dropped == 1 ? "" : "s", *n_ids, s->prompt_budget);
    s->turn++;
    if (s->args->dump_prefix && !dump_turn(s->args->dump_prefix, s->turn, prompt_text, s->history))
        fprintf(stderr, "tinyvllm %s: cannot write the --dump-prompt files for turn %d\n", CMD, s->turn);
    free(prompt_text);
    return TV_OK;
}

// The length of the longest prefix of s[0, n) that does not end inside a UTF-8 character: the bytes
// after it are the start of a character whose remaining bytes have not arrived.
static size_t utf8_whole_len(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) { i--; back++; }   // continuation bytes
    if (i == 0) return n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return need > back + 1 ? i - 1 : n;
}

// Streams the reply of request req_id to stdout (from its first non-blank byte) into s->reply, then
// prints the timing line. Ctrl-C aborts it. Returns TV_OK or a fatal status in err.
static tv_status stream_reply(session *s, uint64_t req_id, size_t n_prompt, tv_error *err) {
    s->reply_len = 0;
    if (!cli_append(&s->reply, &s->reply_len, &s->reply_cap, "", 0)) return tv_error_set(err, TV_ERR_NOMEM, "out of memory");
    double t_start = cli_time_ms(), t_first = 0;
    tv_finish_reason finish = TV_FINISH_NONE;
    int n_gen = 0;
    bool aborted = false, shown_any = false;
    size_t n_shown = 0;   // bytes of s->reply written to stdout (or skipped as leading blanks)
    while (tv_engine_has_work(s->e)) {
        if (g_interrupted && !aborted) {
            g_interrupted = 0;   // consumed: this Ctrl-C was for the reply
            tv_engine_abort(s->e, req_id);
            aborted = true;
        }
        const tv_request_output *outs;
        int n_outs;
        tv_status st = tv_engine_step(s->e, &outs, &n_outs, err);
        if (st) return st;
        for (int i = 0; i < n_outs; i++) {
            const tv_request_output *o = &outs[i];
            if (o->n_new && !t_first) t_first = cli_time_ms();
            n_gen = o->n_generated;
            if (o->text_len) {
                if (!cli_append(&s->reply, &s->reply_len, &s->reply_cap, o->text, o->text_len))
                    return tv_error_set(err, TV_ERR_NOMEM, "out of memory");
                // shown from its first non-blank byte ("Assistant: Hi" / "[/INST] Hi" -> "Hi"), whole
                // UTF-8 characters only: a character's first bytes wait for the rest in s->reply
                while (!shown_any && n_shown < s->reply_len && s->reply[n_shown] && strchr(" \n\r\t", s->reply[n_shown])) n_shown++;
                size_t n_whole = utf8_whole_len(s->reply, s->reply_len);
                if (n_whole > n_shown) {
                    shown_any = true;
                    fwrite(s->reply + n_shown, 1, n_whole - n_shown, stdout);
                    fflush(stdout);
                    n_shown = n_whole;
                }
            }
            if (o->finish == TV_FINISH_ERROR) { *err = *o->error; return err->code ? err->code : TV_ERR_STATE; }
            if (o->finish) finish = o->finish;
        }
    }
    double t_end = cli_time_ms();
    s->reply_len = utf8_whole_len(s->reply, s->reply_len);   // an aborted reply may end mid-character
    s->reply[s->reply_len] = 0;
    g_interrupted = 0;   // a Ctrl-C that came as the reply finished was for the reply, not the prompt
    fputc('\n', stdout);
    fflush(stdout);
    if (!t_first) t_first = t_end;
    double prompt_ms = t_first - t_start, gen_ms = t_end - t_first;
    double pp_tps = prompt_ms > 0 ? (double)n_prompt / (prompt_ms / 1e3) : 0;
    double tg_tps = n_gen > 1 && gen_ms > 0 ? (n_gen - 1) / (gen_ms / 1e3) : 0;
    const char *fin = finish == TV_FINISH_STOP ? "stop" : finish == TV_FINISH_LENGTH ? "length" : "aborted";
    fprintf(stderr, "tinyvllm %s: prompt %zu tok, %.1f tok/s | reply %d tok, %.1f tok/s | finish %s\n", CMD, n_prompt,
            pp_tps, n_gen, tg_tps, fin);
    return TV_OK;
}

// One user message: prompt, request, streamed reply, history. Returns TV_OK (also when the message
// was refused with a printed reason) or a fatal status in err.
static tv_status chat_turn(session *s, const char *msg, tv_error *err) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    tv_status st = build_prompt(s, msg, &ids, &n_ids, err);
    if (st) return st == TV_ERR_NOMEM ? st : TV_OK;
    tv_request_params rp;
    tv_request_params_default(&rp);
    rp.prompt_ids = ids;
    rp.n_prompt = n_ids;
    rp.sampling = s->args->sp;
    rp.max_tokens = (int)s->n_new;
    rp.stop = &s->stop;
    rp.n_stop = s->stop ? 1 : 0;
    uint64_t req_id = 0;
    tv_error terr = {0};
    st = tv_engine_add_request(s->e, &rp, &req_id, &terr);
    free(ids);
    if (st) {
        if (st == TV_ERR_NOMEM) { *err = terr; return st; }
        fprintf(stderr, "tinyvllm %s: %s; message not sent\n", CMD, terr.msg);
        cJSON_DeleteItemFromArray(s->history, cJSON_GetArraySize(s->history) - 1);
        return TV_OK;
    }
    if ((st = stream_reply(s, req_id, n_ids, err))) return st;
    if (!add_message(s->history, "assistant", trim(s->reply))) return tv_error_set(err, TV_ERR_NOMEM, "out of memory");
    return TV_OK;
}

int cmd_chat(int argc, char **argv) {
    chat_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : rc;
    session s = {0};
    if ((rc = session_open(&s, &a))) { session_close(&s); return rc; }

    // No SA_RESTART: Ctrl-C interrupts the blocking read at the prompt (the read fails with EINTR).
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    bool sa_set = sigaction(SIGINT, &sa, &old_sa) == 0;

    tv_error err = {0};
    chat_input *in = chat_input_open("> ");
    if (!in) { tv_error_set(&err, TV_ERR_NOMEM, "out of memory"); rc = 1; }
    bool is_tty = isatty(STDIN_FILENO);
    bool plain_prompt = in && !chat_input_is_interactive(in) && is_tty;   // a terminal without line editing (stdout piped)
    while (in) {
        if (plain_prompt) { fputs("> ", stdout); fflush(stdout); }
        // g_interrupted is cleared once a reply is over: set here, it is a Ctrl-C at the prompt
        if (g_interrupted) { if (is_tty) fputc('\n', stdout); break; }
        const char *line;
        size_t n_line;
        chat_read_status rs = chat_input_read(in, &line, &n_line);
        if (rs != CHAT_LINE) {
            if (rs == CHAT_ERROR && !g_interrupted) { tv_error_set(&err, TV_ERR_IO, "error reading stdin: %s", strerror(errno)); rc = 1; }
            if (is_tty) fputc('\n', stdout);   // EOF or Ctrl-C at the prompt: quit on a fresh line
            break;
        }
        if (memchr(line, 0, n_line)) { fprintf(stderr, "tinyvllm %s: the line holds a NUL byte; ignored\n", CMD); continue; }
        char *msg = trim((char *)line);
        if (!*msg) continue;
        chat_input_remember(in, msg);
        if (msg[0] == '/' && msg[1] == '/') {
            msg++;   // "//text" is the message "/text"
        } else if (msg[0] == '/') {
            if (!strcmp(msg, "/quit") || !strcmp(msg, "/exit")) break;
            if (!strcmp(msg, "/reset")) {
                reset_history(s.history, s.has_system);
                fprintf(stderr, "tinyvllm %s: history cleared%s\n", CMD, s.has_system ? " (system prompt kept)" : "");
            } else if (!strcmp(msg, "/help")) {
                fprintf(stderr, "commands: %s\n", CHAT_COMMANDS_HELP);
            } else {
                fprintf(stderr, "tinyvllm %s: unknown command '%s' (not sent); commands: %s\n", CMD, msg, CHAT_COMMANDS_HELP);
            }
            continue;
        }
        if (chat_turn(&s, msg, &err)) {
            rc = 1;
            break;
        }
    }
    if (rc) fprintf(stderr, "tinyvllm %s: %s\n", CMD, err.msg[0] ? err.msg : tv_status_str(err.code));
    chat_input_close(in);
    if (sa_set) sigaction(SIGINT, &old_sa, NULL);
    session_close(&s);
    return rc;
}
