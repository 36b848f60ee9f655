#ifndef TURNSTILE_CLIBUV_SHIM_H
#define TURNSTILE_CLIBUV_SHIM_H
/*
 * libuv, plus the few system calls Swift's Glibc module does not expose:
 * SO_PEERCRED's struct ucred, pidfd_open (no libc wrapper in glibc 2.36), signal mask
 * helpers, and process-group spawning with a parent-death signal. Each helper returns
 * -errno on failure, as libuv does.
 */
#include <uv.h>
#include <errno.h>
#include <stdint.h>
#include <stddef.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#ifndef SO_PEERCRED
#define SO_PEERCRED 17
#endif

/* struct ucred's layout (glibc hides it behind _GNU_SOURCE, which a Clang module of the
   system headers does not see). */
struct turnstile_ucred {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/* The credentials of the process at the other end of a Unix socket. */
static inline int turnstile_peer_credentials(int fd, unsigned int *uid, unsigned int *gid, int *pid) {
    struct turnstile_ucred cred;
    socklen_t length = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return -errno;
    *uid = cred.uid;
    *gid = cred.gid;
    *pid = cred.pid;
    return 0;
}

/* A file descriptor that becomes readable when process `pid` exits (Linux >= 5.3). */
static inline int turnstile_pidfd_open(int pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

/* Unblocks SIGINT, SIGTERM and SIGHUP in the calling thread: a parent (Foundation's
   Process among them) may have started us with them blocked, and then libuv's signal
   watchers would never see them. */
static inline int turnstile_unblock_stop_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return -pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* Fills `buffer` with `length` bytes from the kernel's CSPRNG (getrandom(2)); 0 or -errno. */
static inline int turnstile_random_bytes(void *buffer, size_t length) {
    unsigned char *bytes = buffer;
    while (length > 0) {
        ssize_t got = getrandom(bytes, length, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        bytes += got;
        length -= (size_t)got;
    }
    return 0;
}

/* Blocks SIGINT, SIGTERM, SIGHUP and SIGCHLD in the calling thread and returns a signalfd
   that reads them instead, so one poll() can wait on signals, sockets and pidfds together. */
static inline int turnstile_signalfd_for_run(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -errno;
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

/* The next signal waiting on a signalfd, 0 if none. */
static inline int turnstile_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t count = read(fd, &info, sizeof(info));
    return count == (ssize_t)sizeof(info) ? (int)info.ssi_signo : 0;
}

/* Starts `argv[0]` (searched in PATH, like execvp) with `envp`, as `turnstile run` starts
   COMMAND: in a process group of its own, with an empty signal mask, default dispositions for
   the signals in `defaults`, and `death_signal` sent to it if the caller dies (Linux's
   parent-death signal: a killed `turnstile run`, whose lease goes with it, must not leave
   COMMAND running without a permit). posix_spawn cannot set the parent-death signal, hence a
   fork that calls only async-signal-safe functions before exec.
   The child waits at a gate before exec: its group exists, but nothing of COMMAND runs until
   the caller has bound the group to the lease and calls `turnstile_spawn_open_gate` (if the
   caller dies first, the gate's EOF ends the child). `*gate` and `*result` receive the two
   descriptors that call needs. Returns the pid, or -errno. */
static inline pid_t turnstile_spawn_group(char *const argv[], char *const envp[], const sigset_t *defaults,
                                          int death_signal, int *gate, int *result) {
    int pipe_fds[2], gate_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return -errno;
    if (pipe2(gate_fds, O_CLOEXEC) != 0) {
        int error = errno;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        return -error;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int error = errno;
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        close(gate_fds[0]);
        close(gate_fds[1]);
        return -error;
    }
    if (pid == 0) {
        close(pipe_fds[0]);
        close(gate_fds[1]);
        setpgid(0, 0);
        if (death_signal != 0) {
            prctl(PR_SET_PDEATHSIG, death_signal);
            if (getppid() != parent) _exit(127); /* the parent died before prctl took effect */
        }
        char go = 0;
        ssize_t opened;
        do {
            opened = read(gate_fds[0], &go, 1);
        } while (opened < 0 && errno == EINTR);
        if (opened != 1) _exit(127); /* the caller went away before opening the gate */
        close(gate_fds[0]);
        for (int number = 1; number < NSIG; number++) {
            if (sigismember(defaults, number) == 1) signal(number, SIG_DFL);
        }
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        /* Declared here, not at file scope, so Swift keeps seeing Glibc's `environ` alone. */
        extern char **environ;
        environ = (char **)envp;
        execvp(argv[0], argv);
        int error = errno;
        ssize_t ignored = write(pipe_fds[1], &error, sizeof(error));
        (void)ignored;
        _exit(127);
    }
    close(pipe_fds[1]);
    close(gate_fds[0]);
    setpgid(pid, pid); /* also here, so the group exists whichever runs first */
    *gate = gate_fds[1];
    *result = pipe_fds[0];
    return pid;
}

/* Lets a child started by `turnstile_spawn_group` exec, and waits for the exec's outcome.
   Returns 0, or -errno of a failed exec (the child is then reaped). */
static inline int turnstile_spawn_open_gate(pid_t pid, int gate, int result) {
    char go = 1;
    ssize_t written;
    do {
        written = write(gate, &go, 1);
    } while (written < 0 && errno == EINTR);
    close(gate);
    int error = 0;
    ssize_t count;
    do {
        count = read(result, &error, sizeof(error));
    } while (count < 0 && errno == EINTR);
    close(result);
    if (count == (ssize_t)sizeof(error)) {
        waitpid(pid, NULL, 0);
        return -error;
    }
    return 0;
}

/* Makes the caller the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER), so that
   `turnstile run` can wait until COMMAND's whole group is gone and reap it itself. */
static inline int turnstile_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1) == 0 ? 0 : -errno;
}

/* Reaps every exited child except `keep` (left for its own waitpid). */
static inline void turnstile_reap_others(pid_t keep) {
    while (1) {
        siginfo_t info;
        info.si_pid = 0;
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return;
        if (info.si_pid == keep) return;
        waitpid(info.si_pid, NULL, WNOHANG);
    }
}

/* Ignores SIGPIPE: a write to a vanished peer must fail with EPIPE, not kill the daemon. */
static inline void turnstile_ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
}
/* CRC-32C (Castagnoli), the checksum of journal records. The SSE4.2 instruction does eight
 * bytes a cycle or so, a table-free bitwise loop serves CPUs without it; both give the same
 * value. `crc` is the running value (start with 0). */
#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static inline uint32_t turnstile_crc32c_sse42(uint32_t crc, const unsigned char *bytes, size_t count) {
    uint64_t value = ~crc;
    while (count >= 8) {
        uint64_t word;
        __builtin_memcpy(&word, bytes, 8);
        value = __builtin_ia32_crc32di(value, word);
        bytes += 8;
        count -= 8;
    }
    uint32_t small = (uint32_t)value;
    while (count > 0) {
        small = __builtin_ia32_crc32qi(small, *bytes++);
        count--;
    }
    return ~small;
}
#endif

static inline uint32_t turnstile_crc32c_portable(uint32_t crc, const unsigned char *bytes, size_t count) {
    crc = ~crc;
    while (count-- > 0) {
        crc ^= *bytes++;
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static inline uint32_t turnstile_crc32c(uint32_t crc, const void *bytes, size_t count) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return turnstile_crc32c_sse42(crc, (const unsigned char *)bytes, count);
#endif
    return turnstile_crc32c_portable(crc, (const unsigned char *)bytes, count);
}

#endif
