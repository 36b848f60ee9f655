/*
 * turnstile-floor: the thinnest libuv NDJSON permit server we could write, as the floor
 * against which turnstiled's speed is read (`make bench`). A counter, a token table, and
 * string matching instead of JSON: "acquire" grants while the count is under the limit and
 * answers a 32-hex-digit token; "release" with that token gives it back. No ids, no limits
 * beyond one, no persistence, no error answers worth the name.
 *
 * It is kept as fast as we can make it, or the ratio against it flatters turnstiled: lines are
 * framed where libuv read them (only a line cut off by a read is copied), answers go out with
 * uv_try_write (no request, no callback) and are formatted by hand. An acquire+release pair
 * costs two reads, two writes and about 2,600 user-space instructions, libuv's included
 * (callgrind, 64 connections; 4,700 when it copied every byte and formatted with snprintf).
 *
 * Usage: turnstile-floor SOCKET [LIMIT]
 */
#define _GNU_SOURCE
#include <uv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TABLE_SIZE (1u << 16)
#define FLOOR_LINE_MAX 65536

typedef struct {
    uv_pipe_t pipe;
    /* The start of a line that a read cut off, kept until its end arrives; allocated on the
     * first one, which a ping-pong client never sends. Whole lines are framed in place. */
    char *partial;
    size_t used;
} client_t;

/* An answer the socket could not take at once, queued behind uv_try_write's part. */
typedef struct {
    uv_write_t request;
    char bytes[];
} pending_t;

static unsigned long long next_token = 1;
static unsigned long long table[TABLE_SIZE];
static long held = 0;
static long limit = 1000000;
static char read_buffer[65536];

/* Open addressing over token numbers; 0 marks an empty slot. */
static void table_insert(unsigned long long token) {
    for (unsigned i = (unsigned)(token * 0x9E3779B97F4A7C15ull >> 48); ; i = (i + 1) & (TABLE_SIZE - 1)) {
        if (table[i] == 0) { table[i] = token; return; }
    }
}

static int table_remove(unsigned long long token) {
    for (unsigned i = (unsigned)(token * 0x9E3779B97F4A7C15ull >> 48); ; i = (i + 1) & (TABLE_SIZE - 1)) {
        if (table[i] == 0) return 0;
        if (table[i] == token) {
            /* Backward-shift deletion keeps probe chains intact. */
            unsigned hole = i;
            for (unsigned j = (i + 1) & (TABLE_SIZE - 1); table[j] != 0; j = (j + 1) & (TABLE_SIZE - 1)) {
                unsigned home = (unsigned)(table[j] * 0x9E3779B97F4A7C15ull >> 48);
                if (((j - home) & (TABLE_SIZE - 1)) >= ((j - hole) & (TABLE_SIZE - 1))) {
                    table[hole] = table[j];
                    hole = j;
                }
            }
            table[hole] = 0;
            return 1;
        }
    }
}

static void on_close(uv_handle_t *handle) {
    free(((client_t *)handle)->partial);
    free(handle);
}

static void close_client(client_t *client) {
    if (!uv_is_closing((uv_handle_t *)&client->pipe)) uv_close((uv_handle_t *)&client->pipe, on_close);
}

static void on_written(uv_write_t *request, int status) {
    (void)status;
    free(request);
}

/* Writes at once when the socket takes it all (every ping-pong answer); otherwise queues the
 * rest, so that a client slow to read still gets every answer, in order (uv_try_write
 * refuses while anything is queued). */
static void reply(client_t *client, const char *text, size_t length) {
    uv_stream_t *stream = (uv_stream_t *)&client->pipe;
    uv_buf_t buffer = uv_buf_init((char *)text, (unsigned)length);
    int written = uv_try_write(stream, &buffer, 1);
    if (written == (int)length) return;
    if (written < 0 && written != UV_EAGAIN) { close_client(client); return; }
    size_t sent = written > 0 ? (size_t)written : 0;
    pending_t *pending = malloc(sizeof *pending + length - sent);
    if (!pending) { close_client(client); return; }
    memcpy(pending->bytes, text + sent, length - sent);
    buffer = uv_buf_init(pending->bytes, (unsigned)(length - sent));
    if (uv_write(&pending->request, stream, &buffer, 1, on_written) != 0) {
        free(pending);
        close_client(client);
    }
}

static const char hex_digits[] = "0123456789abcdef";

/* Formatting by hand: snprintf was a measurable share of the floor's own instructions per acquire. */
static char *put_hex16(char *at, unsigned long long value) {
    for (int i = 15; i >= 0; i--) { at[i] = hex_digits[value & 15]; value >>= 4; }
    return at + 16;
}

static char *put_decimal(char *at, unsigned long long value) {
    char digits[20];
    int count = 0;
    do { digits[count++] = (char)('0' + value % 10); value /= 10; } while (value);
    while (count) *at++ = digits[--count];
    return at;
}

/* 16 lowercase hex digits, as put_hex16 writes them; 0 if anything else. */
static int parse_hex16(const char *at, unsigned long long *value) {
    unsigned long long result = 0;
    for (int i = 0; i < 16; i++) {
        char c = at[i];
        unsigned digit = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
        if (digit == 16) return 0;
        result = result << 4 | digit;
    }
    *value = result;
    return 1;
}

#define LITERAL(text) text, sizeof text - 1

/* A token is its number, 16 hex digits, after the number times a constant (16 hex digits
 * more), so that a release must quote what acquire answered, not just count. */
static void handle_line(client_t *client, const char *line, size_t length) {
    if (memmem(line, length, LITERAL("\"acquire\""))) {
        /* The table must keep empty slots for its probes to end. */
        if (held >= limit || held >= TABLE_SIZE / 2) { reply(client, LITERAL("{\"ok\":false,\"error\":\"unavailable\"}\n")); return; }
        unsigned long long token = next_token++;
        table_insert(token);
        held++;
        char answer[128];
        char *at = answer;
        memcpy(at, "{\"ok\":true,\"lease\":\"", 20);
        at = put_hex16(put_hex16(at + 20, token * 0x9E3779B97F4A7C15ull), token);
        memcpy(at, "\",\"fence\":", 10);
        at = put_decimal(at + 10, token);
        memcpy(at, "}\n", 2);
        reply(client, answer, (size_t)(at + 2 - answer));
    } else if (memmem(line, length, LITERAL("\"release\""))) {
        const char *lease = memmem(line, length, LITERAL("\"lease\":\""));
        unsigned long long check, token;
        if (lease && (size_t)(line + length - (lease + 9)) >= 32 && parse_hex16(lease + 9, &check)
            && parse_hex16(lease + 25, &token) && check == token * 0x9E3779B97F4A7C15ull && table_remove(token)) {
            held--;
            reply(client, LITERAL("{\"ok\":true}\n"));
            return;
        }
        reply(client, LITERAL("{\"ok\":false,\"error\":\"not_found\"}\n"));
    } else {
        reply(client, LITERAL("{\"ok\":false,\"error\":\"unknown_op\"}\n"));
    }
}

/* Keeps the start of a cut-off line; past FLOOR_LINE_MAX bytes a line is cut short. */
static int keep_partial(client_t *client, const char *bytes, size_t length) {
    if (!client->partial && !(client->partial = malloc(FLOOR_LINE_MAX))) return 0;
    if (length > FLOOR_LINE_MAX - client->used) length = FLOOR_LINE_MAX - client->used;
    memcpy(client->partial + client->used, bytes, length);
    client->used += length;
    return 1;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buffer) {
    (void)handle; (void)suggested;
    *buffer = uv_buf_init(read_buffer, sizeof read_buffer);
}

static void on_read(uv_stream_t *stream, ssize_t count, const uv_buf_t *buffer) {
    client_t *client = (client_t *)stream;
    if (count < 0) { close_client(client); return; }
    const char *line = buffer->base, *end = buffer->base + count, *newline;
    while ((newline = memchr(line, '\n', (size_t)(end - line)))) {
        if (client->used == 0) {
            handle_line(client, line, (size_t)(newline - line));
        } else {
            if (!keep_partial(client, line, (size_t)(newline - line))) { close_client(client); return; }
            handle_line(client, client->partial, client->used);
            client->used = 0;
        }
        if (uv_is_closing((uv_handle_t *)stream)) return;
        line = newline + 1;
    }
    if (line < end && !keep_partial(client, line, (size_t)(end - line))) close_client(client);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    client_t *client = calloc(1, sizeof *client);
    if (!client) return;
    uv_pipe_init(server->loop, &client->pipe, 0);
    if (uv_accept(server, (uv_stream_t *)&client->pipe) == 0) {
        uv_read_start((uv_stream_t *)&client->pipe, on_alloc, on_read);
    } else {
        uv_close((uv_handle_t *)&client->pipe, on_close);
    }
}

static void on_signal(uv_signal_t *handle, int signum) {
    (void)signum;
    uv_stop(handle->loop);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s SOCKET [LIMIT]\n", argv[0]); return 64; }
    if (argc > 2) limit = atol(argv[2]);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    uv_pipe_t server;
    uv_signal_t term;
    unlink(argv[1]);
    uv_pipe_init(loop, &server, 0);
    if (uv_pipe_bind(&server, argv[1]) != 0 || uv_listen((uv_stream_t *)&server, 511, on_connection) != 0) {
        fprintf(stderr, "turnstile-floor: cannot listen on %s\n", argv[1]);
        return 1;
    }
    uv_signal_init(loop, &term);
    uv_signal_start(&term, on_signal, SIGTERM);
    fprintf(stderr, "turnstile-floor ready on %s\n", argv[1]);
    uv_run(loop, UV_RUN_DEFAULT);
    unlink(argv[1]);
    return 0;
}
