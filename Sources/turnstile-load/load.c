/*
 * turnstile-load: the closed-loop acquire+release load generator that `make bench` drives
 * every server with (turnstiled, the C floor and a Redis Lua semaphore). N connections to a
 * Unix socket each loop acquire -> release with one request outstanding, as
 * `turnstile-bench ping-pong` does, and it prints the same result line.
 *
 * Why it exists: a pairs/s figure measures the server only while the client keeps up. The
 * Swift client copied and allocated per request, and against the floor it, not the floor, ran
 * out of CPU first. This one does per request one recv straight into the connection's buffer,
 * one send of a request kept prebuilt in the connection (only the lease token is copied in),
 * two clock reads and a histogram increment; nothing is allocated after start-up. What is
 * left is mostly the kernel's work for the two sockets, about what the floor pays per request
 * too: it reports its own CPU per pair so that a run it limited shows.
 *
 * Protocols: turnstile and floor speak NDJSON ({"op":"acquire"}, then
 * {"op":"release","lease":"<the acquire answer's lease>"}); redis speaks RESP, EVALSHA of the
 * two scripts in RedisSemaphore.swift (loaded beforehand: pass their SHAs).
 *
 * Usage: turnstile-load --socket PATH [--target turnstile|floor|redis] [--connections 64]
 *          [--seconds 5] [--warmup 1] [--server-pid PID] [--pairs N] [--json]
 *          [--acquire-sha SHA --release-sha SHA]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Answers are short (turnstiled's acquire answer is about 200 bytes); one that fills the
 * buffer without a line end is a protocol error, not something to grow for. */
#define ANSWER_MAX 4096
#define TOKEN_MAX 128
#define REQUEST_MAX 512

/* Latencies in nanoseconds, log-linear: exact below 2^(SUB_BITS+1), then 2^SUB_BITS buckets
 * per power of two (at most 0.4% off), up to 2^(TOP_EXPONENT+1) ns (about 37 minutes). */
#define SUB_BITS 8
#define TOP_EXPONENT 40
#define BUCKETS ((TOP_EXPONENT - SUB_BITS + 2) << SUB_BITS)

enum target { TURNSTILE, FLOOR, REDIS };
static const char *const target_names[] = {"turnstile", "floor", "redis"};

typedef struct {
    int fd;
    int acquiring;
    uint64_t sent_at;
    size_t used;
    /* The release request, its fixed prefix written once; each acquire answer's token is
     * copied in after it. */
    size_t release_prefix;
    char release[REQUEST_MAX];
    char answer[ANSWER_MAX];
} connection_t;

static enum target target = TURNSTILE;
static char acquire_request[REQUEST_MAX];
static size_t acquire_length;
static uint64_t histogram[BUCKETS];
static uint64_t recorded;
static int measuring;
static long long completed_pairs;

static void die(const char *message) {
    fprintf(stderr, "turnstile-load: %s\n", message);
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void record(uint64_t nanoseconds) {
    unsigned bucket;
    if (nanoseconds >> (TOP_EXPONENT + 1)) nanoseconds = (1ull << (TOP_EXPONENT + 1)) - 1;
    if (nanoseconds < (1u << (SUB_BITS + 1))) {
        bucket = (unsigned)nanoseconds;
    } else {
        unsigned exponent = 63 - (unsigned)__builtin_clzll(nanoseconds);
        bucket = ((exponent - SUB_BITS) << SUB_BITS) + (unsigned)(nanoseconds >> (exponent - SUB_BITS));
    }
    histogram[bucket]++;
    recorded++;
}

/* The middle of a bucket's range, in nanoseconds. */
static uint64_t bucket_value(unsigned bucket) {
    if (bucket < (1u << (SUB_BITS + 1))) return bucket;
    unsigned shift = (bucket >> SUB_BITS) - 1;
    uint64_t low = (uint64_t)(bucket - (shift << SUB_BITS)) << shift;
    return low + ((1ull << shift) >> 1);
}

/* The latency at `point` percent, in whole microseconds: the sample at rank
 * floor(count * point / 100), as turnstile-bench's exact percentiles pick it. */
static uint64_t percentile(double point) {
    if (recorded == 0) return 0;
    uint64_t rank = (uint64_t)((double)recorded * point / 100);
    if (rank >= recorded) rank = recorded - 1;
    uint64_t seen = 0;
    for (unsigned bucket = 0; bucket < BUCKETS; bucket++) {
        seen += histogram[bucket];
        if (seen > rank) return bucket_value(bucket) / 1000;
    }
    return 0;
}

/* utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat). */
static double cpu_seconds(long pid) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("cannot open the server's /proc/PID/stat");
    ssize_t length = read(fd, text, sizeof text - 1);
    close(fd);
    if (length <= 0) die("cannot read the server's /proc/PID/stat");
    text[length] = 0;
    /* The command name may hold spaces and parentheses: count fields after the last ')'. */
    char *field = strrchr(text, ')');
    if (!field) die("unexpected /proc/PID/stat");
    for (int skipped = 0; skipped < 12 && field; skipped++) field = strchr(field + 1, ' ');
    if (!field) die("unexpected /proc/PID/stat");
    char *end;
    unsigned long long user = strtoull(field + 1, &end, 10);
    unsigned long long system = strtoull(end + 1, NULL, 10);
    return (double)(user + system) / (double)sysconf(_SC_CLK_TCK);
}

/* This process's own user + system CPU, in seconds: a client near a whole core is the limit,
 * not the server. */
static double own_cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

static void send_all(int fd, const char *bytes, size_t length) {
    while (length > 0) {
        ssize_t sent = send(fd, bytes, length, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            die("send failed: the server closed a connection");
        }
        bytes += sent;
        length -= (size_t)sent;
    }
}

static size_t append(char *to, size_t at, const char *bytes, size_t length) {
    if (at + length > REQUEST_MAX) die("request too long");
    memcpy(to + at, bytes, length);
    return at + length;
}

static size_t append_text(char *to, size_t at, const char *text) { return append(to, at, text, strlen(text)); }

/* A RESP bulk string: $<length>\r\n<bytes>\r\n. */
static size_t append_bulk(char *to, size_t at, const char *bytes, size_t length) {
    char header[24];
    int n = snprintf(header, sizeof header, "$%zu\r\n", length);
    at = append(to, at, header, (size_t)n);
    at = append(to, at, bytes, length);
    return append(to, at, "\r\n", 2);
}

static void send_acquire(connection_t *c) {
    c->acquiring = 1;
    c->sent_at = now_ns();
    send_all(c->fd, acquire_request, acquire_length);
}

static void send_release(connection_t *c, const char *token, size_t length) {
    if (length > TOKEN_MAX) die("lease token too long");
    size_t at;
    if (target == REDIS) {
        at = append_bulk(c->release, c->release_prefix, token, length);
    } else {
        at = append(c->release, c->release_prefix, token, length);
        at = append(c->release, at, "\"}\n", 3);
    }
    c->acquiring = 0;
    c->sent_at = now_ns();
    send_all(c->fd, c->release, at);
}

static void refused(const char *line, size_t length) {
    fprintf(stderr, "turnstile-load: %s answer: %.*s\n", target_names[target], (int)length, line);
    exit(1);
}

/* One complete answer (without its line end): checks it, records its latency, sends the next request. */
static void answered(connection_t *c, const char *line, size_t length) {
    uint64_t latency = now_ns() - c->sent_at;
    const char *token = NULL;
    size_t token_length = 0;
    if (target == REDIS) {
        /* Both scripts answer an integer: the token (0 when full), then 1 if it was held. */
        if (length < 2 || line[0] != ':' || (length == 2 && line[1] == '0')) refused(line, length);
        if (c->acquiring) {
            token = line + 1;
            token_length = length - 1;
        } else if (length != 2 || line[1] != '1') {
            refused(line, length);
        }
    } else {
        if (!memmem(line, length, "\"ok\":true", 9)) refused(line, length);
        if (c->acquiring) {
            const char *key = memmem(line, length, "\"lease\":\"", 9);
            if (!key) refused(line, length);
            token = key + 9;
            const char *end = memchr(token, '"', (size_t)(line + length - token));
            if (!end) refused(line, length);
            token_length = (size_t)(end - token);
        }
    }
    if (measuring) {
        record(latency);
        if (!c->acquiring) completed_pairs++;
    }
    if (c->acquiring) {
        send_release(c, token, token_length);
    } else {
        send_acquire(c);
    }
}

static void readable(connection_t *c) {
    ssize_t count = recv(c->fd, c->answer + c->used, ANSWER_MAX - c->used, MSG_DONTWAIT);
    if (count < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (count <= 0) die("the server closed a connection");
    c->used += (size_t)count;
    const char *line = c->answer;
    const char *end = c->answer + c->used;
    const char *newline;
    while ((newline = memchr(line, '\n', (size_t)(end - line)))) {
        size_t length = (size_t)(newline - line);
        if (target == REDIS && length > 0 && line[length - 1] == '\r') length--;
        answered(c, line, length);
        line = newline + 1;
    }
    c->used = (size_t)(end - line);
    if (c->used == ANSWER_MAX) die("an answer longer than the buffer");
    if (c->used > 0 && line != c->answer) memmove(c->answer, line, c->used);
}

static int connect_unix(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof address.sun_path) die("socket path too long");
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        fprintf(stderr, "turnstile-load: cannot connect to %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return fd;
}

/* The acquire request and the release request's fixed prefix, in the target's protocol. */
static void build_requests(const char *acquire_sha, const char *release_sha, char *release, size_t *release_prefix) {
    if (target == REDIS) {
        if (!acquire_sha || !release_sha) die("redis needs --acquire-sha and --release-sha");
        const char *acquire_parts[] = {"EVALSHA", acquire_sha, "3", "sem", "next", "held", "1000000"};
        size_t at = append_text(acquire_request, 0, "*7\r\n");
        for (int i = 0; i < 7; i++) at = append_bulk(acquire_request, at, acquire_parts[i], strlen(acquire_parts[i]));
        acquire_length = at;
        const char *release_parts[] = {"EVALSHA", release_sha, "2", "sem", "held"};
        at = append_text(release, 0, "*6\r\n");
        for (int i = 0; i < 5; i++) at = append_bulk(release, at, release_parts[i], strlen(release_parts[i]));
        *release_prefix = at;
    } else {
        acquire_length = append_text(acquire_request, 0, "{\"op\":\"acquire\"}\n");
        *release_prefix = append_text(release, 0, "{\"op\":\"release\",\"lease\":\"");
    }
}

static void usage(void) {
    fprintf(stderr, "usage: turnstile-load --socket PATH [--target turnstile|floor|redis] [--connections N] [--seconds S]\n"
                    "         [--warmup S] [--server-pid PID] [--pairs N] [--json] [--acquire-sha SHA --release-sha SHA]\n");
    exit(64);
}

int main(int argc, char **argv) {
    const char *socket_path = NULL, *acquire_sha = NULL, *release_sha = NULL;
    int connections = 64, json = 0;
    double seconds = 5, warmup = 1;
    long server_pid = 0;
    long long pairs_max = 0;
    for (int i = 1; i < argc; i++) {
        const char *option = argv[i];
        if (strcmp(option, "--json") == 0) { json = 1; continue; }
        if (i + 1 >= argc) usage();
        const char *value = argv[++i];
        if (strcmp(option, "--socket") == 0) socket_path = value;
        else if (strcmp(option, "--target") == 0) {
            if (strcmp(value, "turnstile") == 0) target = TURNSTILE;
            else if (strcmp(value, "floor") == 0) target = FLOOR;
            else if (strcmp(value, "redis") == 0) target = REDIS;
            else usage();
        }
        else if (strcmp(option, "--connections") == 0) connections = atoi(value);
        else if (strcmp(option, "--seconds") == 0) seconds = atof(value);
        else if (strcmp(option, "--warmup") == 0) warmup = atof(value);
        else if (strcmp(option, "--server-pid") == 0) server_pid = atol(value);
        else if (strcmp(option, "--pairs") == 0) pairs_max = atoll(value);
        else if (strcmp(option, "--acquire-sha") == 0) acquire_sha = value;
        else if (strcmp(option, "--release-sha") == 0) release_sha = value;
        else usage();
    }
    if (!socket_path || connections < 1 || seconds <= 0 || warmup < 0) usage();

    char release[REQUEST_MAX];
    size_t release_prefix;
    build_requests(acquire_sha, release_sha, release, &release_prefix);
    connection_t *clients = calloc((size_t)connections, sizeof *clients);
    int poller = epoll_create1(EPOLL_CLOEXEC);
    if (!clients || poller < 0) die("out of memory or descriptors");
    for (int i = 0; i < connections; i++) {
        clients[i].fd = connect_unix(socket_path);
        memcpy(clients[i].release, release, release_prefix);
        clients[i].release_prefix = release_prefix;
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(poller, EPOLL_CTL_ADD, clients[i].fd, &event) != 0) die("epoll_ctl failed");
    }
    for (int i = 0; i < connections; i++) send_acquire(&clients[i]);

    uint64_t warmup_end = now_ns() + (uint64_t)(warmup * 1e9);
    uint64_t end = warmup_end + (uint64_t)(seconds * 1e9);
    uint64_t start = warmup_end, now;
    double cpu_start = 0, own_start = 0;
    struct epoll_event events[256];
    for (;;) {
        now = now_ns();
        if (!measuring && now >= warmup_end) {
            measuring = 1;
            start = now;
            if (server_pid) cpu_start = cpu_seconds(server_pid);
            own_start = own_cpu_seconds();
        }
        if (now >= end || (measuring && pairs_max && completed_pairs >= pairs_max)) break;
        int ready = epoll_wait(poller, events, 256, 100);
        if (ready < 0 && errno != EINTR) die("epoll_wait failed");
        for (int i = 0; i < ready; i++) readable(&clients[events[i].data.u32]);
    }
    double elapsed = (double)(now - start) / 1e9;
    double cpu = server_pid ? cpu_seconds(server_pid) - cpu_start : 0;
    double own = own_cpu_seconds() - own_start;
    for (int i = 0; i < connections; i++) close(clients[i].fd);

    double rate = (double)completed_pairs / elapsed;
    double pairs = (double)(completed_pairs > 0 ? completed_pairs : 1);
    char cpu_text[32] = "null";
    if (server_pid) snprintf(cpu_text, sizeof cpu_text, "%.2f", cpu / pairs * 1e6);
    unsigned long long p50 = percentile(50), p90 = percentile(90), p99 = percentile(99), p999 = percentile(99.9);
    if (json) {
        printf("{\"workload\":\"pingpong\",\"target\":\"%s\",\"client\":\"turnstile-load\",\"connections\":%d,"
               "\"pairs_per_second\":%lld,\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,"
               "\"server_cpu_us_per_pair\":%s,\"client_cpu_us_per_pair\":%.2f}\n",
               target_names[target], connections, (long long)rate, p50, p90, p99, p999, cpu_text, own / pairs * 1e6);
    } else {
        printf("pingpong %s c=%d: %lld pairs/s, latency µs p50 %llu p90 %llu p99 %llu p99.9 %llu", target_names[target],
               connections, (long long)rate, p50, p90, p99, p999);
        if (server_pid) printf(", server CPU %s µs/pair", cpu_text);
        printf(", client CPU %.2f µs/pair\n", own / pairs * 1e6);
    }
    return 0;
}
