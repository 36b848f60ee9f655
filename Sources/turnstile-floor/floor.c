/*
 * turnstile-floor: the thinnest libuv NDJSON permit server we could write, as the floor
 * against which turnstiled's speed is read (`make bench`). A counter, a token table, and
 * string matching instead of JSON: "acquire" grants while the count is under the limit and
 * answers a 32-hex-digit token; "release" with that token gives it back. No ids, no limits
 * beyond one, no persistence, no error answers worth the name.
 *
 * Usage: turnstile-floor SOCKET [LIMIT]
 */
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
    char line[FLOOR_LINE_MAX];
    size_t used;
} client_t;

static unsigned long long next_token = 1;
static unsigned long long table[TABLE_SIZE];
static long held = 0;
static long limit = 1000000;
static char read_buffer[65536];

/* Open addressing over token numbers; 0 marks an empty slot. */
static int table_insert(unsigned long long token) {
    for (unsigned i = (unsigned)(token * 0x9E3779B97F4A7C15ull >> 48); ; i = (i + 1) & (TABLE_SIZE - 1)) {
        if (table[i] == 0) { table[i] = token; return 1; }
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

static void on_close(uv_handle_t *handle) { free(handle); }

static void reply(client_t *client, const char *text, size_t length) {
    uv_buf_t buffer = uv_buf_init((char *)text, (unsigned)length);
    if (uv_try_write((uv_stream_t *)&client->pipe, &buffer, 1) != (int)length) {
        uv_close((uv_handle_t *)&client->pipe, on_close);
    }
}

static void handle_line(client_t *client, char *line, size_t length) {
    char answer[128];
    line[length] = 0;
    if (strstr(line, "\"acquire\"")) {
        if (held >= limit) { reply(client, "{\"ok\":false,\"error\":\"unavailable\"}\n", 35); return; }
        unsigned long long token = next_token++;
        table_insert(token);
        held++;
        int n = snprintf(answer, sizeof answer, "{\"ok\":true,\"lease\":\"%016llx%016llx\",\"fence\":%llu}\n",
                         token * 0x9E3779B97F4A7C15ull, token, token);
        reply(client, answer, (size_t)n);
    } else if (strstr(line, "\"release\"")) {
        char *lease = strstr(line, "\"lease\":\"");
        if (lease && strlen(lease + 9) >= 32) {
            unsigned long long token = strtoull(lease + 9 + 16, NULL, 16);
            if (table_remove(token)) { held--; reply(client, "{\"ok\":true}\n", 12); return; }
        }
        reply(client, "{\"ok\":false,\"error\":\"not_found\"}\n", 33);
    } else {
        reply(client, "{\"ok\":false,\"error\":\"unknown_op\"}\n", 34);
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buffer) {
    (void)handle; (void)suggested;
    *buffer = uv_buf_init(read_buffer, sizeof read_buffer);
}

static void on_read(uv_stream_t *stream, ssize_t count, const uv_buf_t *buffer) {
    client_t *client = (client_t *)stream;
    if (count < 0) { uv_close((uv_handle_t *)stream, on_close); return; }
    for (ssize_t i = 0; i < count; i++) {
        char byte = buffer->base[i];
        if (byte == '\n') {
            handle_line(client, client->line, client->used);
            client->used = 0;
        } else if (client->used < FLOOR_LINE_MAX - 1) {
            client->line[client->used++] = byte;
        }
    }
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    client_t *client = calloc(1, sizeof *client);
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
