/*
 * main.c - the blobd daemon: configuration, listening socket, startup,
 * signals and the shutdown sequence of SPEC §4.
 *
 * Startup: listen first (so /readyz answers 503 while the store opens),
 * then open the store, then ready.  Shutdown on the first SIGTERM/SIGINT:
 *   1. stop accepting work: state DRAINING (/readyz 503; every new
 *      request 503 draining with Connection: close).  The listening
 *      socket stays open until step 4: MHD_quiesce_daemon on an epoll
 *      daemon with internal threads races with the workers' own removal
 *      of the listen socket from epoll and can abort the process
 *      (libmicrohttpd 0.9.75), so it is not used;
 *   2. wait for requests in flight, up to --shutdown-timeout;
 *   3. store_stop: the I/O thread finishes or fails every queued job, so
 *      every suspended connection is resumed and answered;
 *   4. libmicrohttpd stops;
 *   5. a final flush, then the store is closed and unlocked;
 *   6. exit 0, or 1 if the final flush failed.
 * A second signal exits at once with 128 + its number.
 *
 * Invariants:
 *  M1. SIGTERM, SIGINT and SIGHUP are blocked in every thread from the
 *      start (the mask is set before any thread is created) and taken only
 *      by the signal thread with sigwait; SIGPIPE is ignored.
 *  M2. Each startup failure has its own exit code (EXIT_* below) and one
 *      log line that says what and where.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "store.h"

/* Exit codes (sysexits.h values where one fits). */
#define EXIT_FLUSH_FAILED 1 /* the final flush at shutdown failed */
#define EXIT_USAGE 64       /* bad flag or value */
#define EXIT_CORRUPT 65     /* the store refuses to open: damaged */
#define EXIT_NOLISTEN 69    /* cannot listen: port in use, bad address */
#define EXIT_SOFTWARE 70    /* any other startup failure */
#define EXIT_OSERR 71       /* --backend io_uring, and the kernel refuses it */
#define EXIT_CANTCREAT 73   /* data dir unwritable, missing, insecure */
#define EXIT_LOCKED 75      /* another process holds the store */

static struct server srv;
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static int stop_requested;

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    int first = 1;
    for (;;) {
        int sig;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            server_log(LOG_INFO, "SIGHUP ignored (configuration is read at "
                                 "start only)");
            continue;
        }
        if (!first) {
            server_log(LOG_WARN, "second %s: exiting at once", strsignal(sig));
            _exit(128 + sig);
        }
        first = 0;
        server_log(LOG_INFO, "%s: shutting down", strsignal(sig));
        pthread_mutex_lock(&stop_mu);
        stop_requested = 1;
        pthread_cond_broadcast(&stop_cv);
        pthread_mutex_unlock(&stop_mu);
    }
    return NULL;
}

static void store_log(void *ctx, enum store_log_level level, const char *msg)
{
    (void)ctx;
    static const enum log_level map[] = {LOG_ERROR, LOG_WARN, LOG_INFO,
                                         LOG_DEBUG};
    server_log(map[level], "store: %s", msg);
}

/* A socket passed by systemd (sd_listen_fds protocol): its fd, -1 when
 * none was passed, -2 (err filled) when fd 3 is not a listening stream
 * socket. */
static int systemd_socket(char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    if (!pid || !fds || atol(pid) != (long)getpid() || atoi(fds) < 1)
        return -1;
    int nfds = atoi(fds); /* unsetenv may free the string */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    int fd = 3; /* SD_LISTEN_FDS_START */
    struct stat sb;
    int listening = 0, type = 0;
    socklen_t len = sizeof(listening);
    if (fstat(fd, &sb) < 0 || !S_ISSOCK(sb.st_mode) ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
        !listening ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &(socklen_t){sizeof(type)}) <
            0 ||
        type != SOCK_STREAM) {
        snprintf(err, errlen,
                 "LISTEN_FDS=%d: fd 3 is not a listening stream socket "
                 "(ListenStream= in the socket unit)",
                 nfds);
        return -2;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

/* Bind and listen on cfg.listen; the fd, or -1 with err filled. */
static int listen_on(const char *spec, char *err, size_t errlen)
{
    char host[256], portstr[8];
    unsigned port;
    if (server_config_split_listen(spec, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "--listen: '%.256s' is not an address:port",
                 spec);
        return -1;
    }
    snprintf(portstr, sizeof(portstr), "%u", port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    int g = getaddrinfo(host, portstr, &hints, &ai);
    if (g != 0) {
        snprintf(err, errlen, "--listen: '%s': %s", host, gai_strerror(g));
        return -1;
    }
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "cannot listen on %.256s: %s", spec,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* The address a socket is bound to, "host:port". */
static void bound_name(int fd, char *buf, size_t cap, unsigned *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char h[INET6_ADDRSTRLEN] = "?";
    *port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
            *port = ntohs(a->sin_port);
            snprintf(buf, cap, "%s:%u", h, *port);
            return;
        }
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
            *port = ntohs(a->sin6_port);
            snprintf(buf, cap, "[%s]:%u", h, *port);
            return;
        }
    }
    snprintf(buf, cap, "fd %d", fd);
}

static int open_exit_code(int rc)
{
    switch (rc) {
    case STORE_E_LOCKED:
    case STORE_E_NOT_OWNER:
        return EXIT_LOCKED;
    case STORE_E_CORRUPT:
    case STORE_E_BAD_FORMAT:
    case STORE_E_FOREIGN:
    case STORE_E_CHECKSUM:
        return EXIT_CORRUPT;
    case STORE_E_NO_URING:
        return EXIT_OSERR;
    case STORE_E_INSECURE_DIR:
    case -EACCES:
    case -EPERM:
    case -EROFS:
    case -ENOENT:
    case -ENOTDIR:
    case -EEXIST:
    case -ENOSPC:
        return EXIT_CANTCREAT;
    default:
        return EXIT_SOFTWARE;
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait until no request is in flight or the deadline passes; the number
 * still in flight. */
static long wait_drained(double deadline)
{
    long n;
    while ((n = atomic_load(&srv.inflight)) > 0 && mono_s() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return n;
}

static int shutdown_server(void)
{
    atomic_store(&srv.state, SRV_DRAINING);
    double deadline = mono_s() + srv.cfg.shutdown_timeout;
    long left = wait_drained(deadline);
    if (left > 0)
        server_log(LOG_WARN,
                   "%ld requests still in flight after --shutdown-timeout "
                   "%us",
                   left, srv.cfg.shutdown_timeout);
    /* Every queued job completes; suspended connections are resumed. */
    store_stop(srv.st);
    wait_drained(mono_s() + (left > 0 ? 1.0 : 5.0));
    server_http_stop(&srv);
    cache_free(srv.cache); /* every response using it is gone */
    srv.cache = srv.budget.cache = NULL;
    int rc = 0;
    if (!srv.cfg.read_only) {
        struct store_flush_result fr;
        rc = store_flush(srv.st, &fr);
        if (rc < 0)
            server_log(LOG_ERROR, "final flush failed: %s", store_strerror(rc));
        else
            server_log(LOG_INFO, "final flush: %llu records",
                       (unsigned long long)fr.records);
    }
    store_close(srv.st);
    srv.st = NULL;
    server_hooks_free(&srv);
    server_access_free(&srv.access);
    server_log(LOG_INFO, "stopped");
    return rc < 0 ? EXIT_FLUSH_FAILED : 0;
}

int main(int argc, char **argv)
{
    char err[512];
    switch (server_config_load(&srv.cfg, argc, argv, err, sizeof(err))) {
    case CONFIG_HELP:
    case CONFIG_VERSION:
        return 0;
    case CONFIG_ERROR:
        server_log(LOG_ERROR, "%s", err);
        return EXIT_USAGE;
    default:
        break;
    }
    server_log_set_level((enum log_level)srv.cfg.log_level);
    srv.started_ns = server_mono_ns();
    if (server_access_init(&srv.access, &srv.cfg, err, sizeof(err)) < 0) {
        server_log(LOG_ERROR, "%s", err);
        return EXIT_USAGE;
    }
    if (srv.cfg.memory_mib && srv.cfg.cache_mib > srv.cfg.memory_mib / 2) {
        server_log(LOG_ERROR,
                   "--cache-size %u MiB is more than half of "
                   "--memory-budget %u MiB",
                   srv.cfg.cache_mib, srv.cfg.memory_mib);
        return EXIT_USAGE;
    }
    atomic_init(&srv.budget.used, 0);
    srv.budget.limit = (uint64_t)srv.cfg.memory_mib << 20;
    srv.cache = cache_new((uint64_t)srv.cfg.cache_mib << 20, &srv.budget);
    srv.budget.cache = srv.cache;
    if (server_access_auth_on(&srv.access))
        server_log(LOG_INFO, "auth on: %zu bearer tokens", srv.access.ntokens);

    sigset_t set; /* M1 */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int fd = systemd_socket(err, sizeof(err));
    if (fd == -1)
        fd = listen_on(srv.cfg.listen, err, sizeof(err));
    if (fd < 0) {
        server_log(LOG_ERROR, "%s", err);
        return EXIT_NOLISTEN;
    }
    char name[128];
    bound_name(fd, name, sizeof(name), &srv.port);
    srv.listen_fd = fd;
    atomic_init(&srv.state, SRV_OPENING);
    atomic_init(&srv.inflight, 0);
    struct store_io *io = server_hooks_init(&srv);
    if (server_http_start(&srv, fd, err, sizeof(err)) < 0) {
        server_log(LOG_ERROR, "%s", err);
        return EXIT_NOLISTEN;
    }
    server_log(LOG_INFO, "listening on %s", name);
    pthread_t sigthr;
    if (pthread_create(&sigthr, NULL, signal_main, &set) != 0) {
        server_log(LOG_ERROR, "cannot start the signal thread");
        return EXIT_SOFTWARE;
    }

    server_hooks_open_delay();
    struct store_config sc;
    store_config_init(&sc, srv.cfg.data_dir);
    sc.async = 1;
    sc.io = io;
    sc.backend = (enum store_backend)srv.cfg.backend;
    sc.direct = (enum store_direct)srv.cfg.direct;
    sc.read_only = srv.cfg.read_only;
    sc.flush_interval_ms = srv.cfg.flush_interval_ms;
    sc.queue_max = srv.cfg.queue_max;
    sc.job_timeout_ms = srv.cfg.job_timeout_ms;
    sc.log_fn = store_log;
    sc.log_level =
        srv.cfg.log_level >= LOG_INFO ? STORE_LOG_INFO : STORE_LOG_WARN;
    int rc = 0;
    double t0 = mono_s();
    srv.st = store_open(&sc, &rc, err, sizeof(err));
    if (!srv.st) {
        server_log(LOG_ERROR, "cannot open the store in %s: %s",
                   srv.cfg.data_dir, err[0] ? err : store_strerror(rc));
        server_http_stop(&srv);
        server_hooks_free(&srv);
        return open_exit_code(rc);
    }
    struct store_stats ss;
    store_get_stats(srv.st, &ss);
    server_log(LOG_INFO,
               "ready: %llu blobs in %s (%s, O_DIRECT %s%s%s) in %.3f s",
               (unsigned long long)ss.entries, srv.cfg.data_dir, ss.backend,
               ss.direct ? "on" : "off", ss.backend_note[0] ? "; " : "",
               ss.backend_note, mono_s() - t0);
    atomic_store(&srv.state, SRV_READY);

    pthread_mutex_lock(&stop_mu);
    while (!stop_requested)
        pthread_cond_wait(&stop_cv, &stop_mu);
    pthread_mutex_unlock(&stop_mu);
    return shutdown_server();
}
