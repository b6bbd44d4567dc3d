// chat_input.c — `tinyvllm chat`'s line input (chat_input.h): libedit's native API on a terminal,
// getline otherwise. The caller's SIGINT handler is installed without SA_RESTART, so Ctrl-C makes
// the blocking read fail with EINTR: el_gets then returns NULL with count -1 and the terminal is
// back in its normal mode.
#include "chat_input.h"

#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HISTORY_SIZE 1000

struct chat_input {
    EditLine *el;        // NULL: plain reads
    History *hist;
    char history_path[4096];   // "" when $HOME is unknown
    const char *prompt;
    char *buf;           // plain reads: getline's buffer; libedit: a copy of the line without "\n"
    size_t cap;
};

static char *prompt_of(EditLine *el) {
    chat_input *in = NULL;
    el_get(el, EL_CLIENTDATA, &in);
    return (char *)(in ? in->prompt : "> ");
}

chat_input *chat_input_open(const char *prompt) {
    chat_input *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    in->prompt = prompt;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) return in;
    setlocale(LC_CTYPE, "");   // UTF-8 input is edited as characters, not bytes
    HistEvent ev;
    if (!(in->el = el_init("tinyvllm", stdin, stdout, stderr)) || !(in->hist = history_init())) {
        chat_input_close(in);
        return NULL;
    }
    history(in->hist, &ev, H_SETSIZE, HISTORY_SIZE);
    history(in->hist, &ev, H_SETUNIQUE, 1);
    el_set(in->el, EL_CLIENTDATA, in);
    el_set(in->el, EL_PROMPT, prompt_of);
    el_set(in->el, EL_EDITOR, "emacs");
    el_set(in->el, EL_HIST, history, in->hist);
    el_set(in->el, EL_BIND, "^R", "em-inc-search-prev", NULL);
    el_source(in->el, NULL);   // the user's ~/.editrc, if any
    const char *home = getenv("HOME");
    if (home && *home && snprintf(in->history_path, sizeof in->history_path, "%s/.tinyvllm_history", home) < (int)sizeof in->history_path)
        history(in->hist, &ev, H_LOAD, in->history_path);   // absent the first time: fine
    else
        in->history_path[0] = 0;
    return in;
}

void chat_input_close(chat_input *in) {
    if (!in) return;
    HistEvent ev;
    if (in->hist && in->history_path[0]) history(in->hist, &ev, H_SAVE, in->history_path);
    if (in->el) el_end(in->el);
    if (in->hist) history_end(in->hist);
    free(in->buf);
    free(in);
}

bool chat_input_is_interactive(const chat_input *in) { return in->el != NULL; }

// Keeps a copy of s[0, n) in in->buf (NUL-terminated); false when out of memory.
static bool keep(chat_input *in, const char *s, size_t n) {
    if (n + 1 > in->cap) {
        char *b = realloc(in->buf, n + 1);
        if (!b) return false;
        in->buf = b;
        in->cap = n + 1;
    }
    memcpy(in->buf, s, n);
    in->buf[n] = 0;
    return true;
}

chat_read_status chat_input_read(chat_input *in, const char **line, size_t *len) {
    errno = 0;
    if (in->el) {
        int count = 0;
        const char *s = el_gets(in->el, &count);
        if (!s) return count < 0 && errno == EINTR ? CHAT_INTERRUPTED : count < 0 ? CHAT_ERROR : CHAT_EOF;
        size_t n = (size_t)count;
        if (n && s[n - 1] == '\n') n--;
        if (!keep(in, s, n)) { errno = ENOMEM; return CHAT_ERROR; }
        *line = in->buf;
        *len = n;
        return CHAT_LINE;
    }
    ssize_t n = getline(&in->buf, &in->cap, stdin);
    if (n < 0) return errno == EINTR ? CHAT_INTERRUPTED : ferror(stdin) ? CHAT_ERROR : CHAT_EOF;
    if (n && in->buf[n - 1] == '\n') in->buf[--n] = 0;
    *line = in->buf;
    *len = (size_t)n;
    return CHAT_LINE;
}

void chat_input_remember(chat_input *in, const char *line) {
    HistEvent ev;
    if (in->hist && *line) history(in->hist, &ev, H_ENTER, line);
}
