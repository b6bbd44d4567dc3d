// chat_input.h — the lines `tinyvllm chat` reads: through libedit on a terminal (line editing,
// history kept in ~/.tinyvllm_history, Ctrl-R search, ~/.editrc), plain lines from a pipe or file.
#ifndef TV_CLI_CHAT_INPUT_H
#define TV_CLI_CHAT_INPUT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct chat_input chat_input;

typedef enum {
    CHAT_LINE,          // a line (without its newline)
    CHAT_EOF,           // end of input (Ctrl-D)
    CHAT_INTERRUPTED,   // a signal (Ctrl-C) interrupted the read
    CHAT_ERROR,         // a read error (errno says which)
} chat_read_status;

// Line editing when stdin and stdout are terminals, else plain reads from stdin. NULL when out of
// memory. prompt is shown before each line on a terminal.
chat_input *chat_input_open(const char *prompt);
void chat_input_close(chat_input *in);   // saves the history; NULL is a no-op
bool chat_input_is_interactive(const chat_input *in);
// The next line in *line (owned by in, valid until the next call) and its length.
chat_read_status chat_input_read(chat_input *in, const char **line, size_t *len);
// Adds a line the user sent to the history (interactive only).
void chat_input_remember(chat_input *in, const char *line);

#endif
