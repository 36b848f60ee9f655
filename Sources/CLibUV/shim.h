#ifndef TURNSTILE_CLIBUV_SHIM_H
#define TURNSTILE_CLIBUV_SHIM_H
/*
 * libuv, plus the few system calls Swift's Glibc module does not expose:
 * SO_PEERCRED's struct ucred, pidfd_open (no libc wrapper in glibc 2.36), and
 * signal mask helpers. Each helper returns -errno on failure, as libuv does.
 */
#include <uv.h>
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/types.h>
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

/* Ignores SIGPIPE: a write to a vanished peer must fail with EPIPE, not kill the daemon. */
static inline void turnstile_ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
}
#endif
