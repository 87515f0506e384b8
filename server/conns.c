/*
 * conns.c - every open connection, for what libmicrohttpd 0.9.75 does not
 * bound: an absolute deadline for a request's headers (an idle timeout
 * alone lets a client trickle one byte at a time forever), connections per
 * client address, and the file-descriptor limit behind the total.
 *
 * A connection is registered when libmicrohttpd reports it started and
 * unregistered when it reports it closed; both notifications run on
 * libmicrohttpd's threads, and the closing one runs before the library
 * closes the socket.  The watchdog thread ends a connection whose headers
 * are late with shutdown(2), and only under the lock that unregistering
 * takes, so the descriptor it touches is still the connection's own and
 * never one the kernel has handed out again (C1).  libmicrohttpd then sees
 * the end of the stream and closes the connection itself.
 *
 * Invariants:
 *  C1. shutdown(2) is called on c->fd only while c is in the list and the
 *      lock is held; c leaves the list (under the lock) before
 *      libmicrohttpd closes c->fd.
 *  C2. deadline_ns is 0 while a request's headers are complete and its
 *      answer is not yet sent; otherwise it is when the headers of the
 *      next request must be complete.
 *  C3. Connections already cut do not count toward their client's limit.
 *  C5. Lingering close: closing a socket with unread data makes the kernel
 *      send a reset, which can destroy an answer the client has not read
 *      yet (a 413 to an upload still being sent).  For a connection
 *      answered before its body was read, the close notification (which
 *      runs before libmicrohttpd closes the socket, C1) keeps a duplicate
 *      of the descriptor; the watchdog reads and drops what arrives on it
 *      until the client closes, SERVER_LINGER_BYTES were dropped or
 *      SERVER_LINGER_NS passed, and then closes it.  libmicrohttpd has
 *      already shut down the sending side after its answer.
 *  C6. A client that closes in the middle of a body: libmicrohttpd 0.9.75
 *      on epoll can read the last bytes and the end of the stream in one
 *      wake-up, stop at the short read and never see the end, so the
 *      connection (and the frame the body was going into) would wait for
 *      the idle timeout.  body_ns is when the body's last bytes arrived
 *      (0: no body being read).  A body quiet for SERVER_BODY_PEEK_NS is
 *      peeked at (MSG_PEEK, nothing consumed); at the end of the stream the
 *      watchdog shuts the connection down as in C1, and libmicrohttpd then
 *      closes it and frees the request.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

/* Descriptors kept back from --max-connections for the store, the
 * listener, libmicrohttpd's epoll sets and the log. */
#define FD_RESERVE 64
/* The watchdog never scans more often than this. */
#define SCAN_MIN_NS 100000000ull
#define SCAN_MAX_NS 1000000000ull

struct server_conn {
    struct server_conn *prev, *next;
    int fd;
    int family; /* of addr; -1 when unknown (never limited) */
    unsigned char addr[16];
    int trusted;
    int cut;                           /* shut down by us (under the lock) */
    atomic_int linger;                 /* C5: drain after the close */
    atomic_uint_least64_t deadline_ns; /* C2 */
    atomic_uint_least64_t body_ns;     /* C6 */
};

int server_conns_fd_limit(struct server *s)
{
    struct rlimit rl;
    uint64_t want = (uint64_t)s->cfg.max_connections + FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t to = want;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < to)
            to = rl.rlim_max;
        struct rlimit nl = {to, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
            rl.rlim_cur = to;
    }
    s->conns.fd_limit =
        rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    if (s->conns.fd_limit < want) {
        uint64_t fit = s->conns.fd_limit > 2 * FD_RESERVE
                           ? s->conns.fd_limit - FD_RESERVE
                           : s->conns.fd_limit / 2;
        if (fit == 0)
            return -1;
        server_log(LOG_WARN,
                   "max-connections lowered to %llu: the file descriptor "
                   "limit is %llu (raise it with ulimit -n or LimitNOFILE)",
                   (unsigned long long)fit,
                   (unsigned long long)s->conns.fd_limit);
        s->cfg.max_connections = (unsigned)fit;
    }
    return 0;
}

static void *watchdog_main(void *arg);

int server_conns_start(struct server *s)
{
    struct server_conns *cs = &s->conns;
    pthread_condattr_t ca;
    cs->header_ns = (uint64_t)s->cfg.header_timeout * 1000000000ull;
    cs->per_client = s->cfg.max_per_client;
    cs->head = NULL;
    cs->stop = 0;
    cs->nlinger = 0;
    atomic_init(&cs->header_timeouts, 0);
    atomic_init(&cs->bodies_abandoned, 0);
    atomic_init(&cs->per_client_rejects, 0);
    if (pthread_mutex_init(&cs->lock, NULL) != 0)
        return -1;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&cs->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&cs->lock);
        return -1;
    }
    if (pthread_create(&cs->thread, NULL, watchdog_main, s) != 0) {
        pthread_cond_destroy(&cs->wake);
        pthread_mutex_destroy(&cs->lock);
        return -1;
    }
    cs->started = 1;
    return 0;
}

void server_conns_stop(struct server *s)
{
    struct server_conns *cs = &s->conns;
    if (!cs->started)
        return;
    pthread_mutex_lock(&cs->lock);
    cs->stop = 1;
    pthread_cond_signal(&cs->wake);
    pthread_mutex_unlock(&cs->lock);
    pthread_join(cs->thread, NULL);
    /* libmicrohttpd is stopped: every connection reported its close. */
    for (unsigned i = 0; i < cs->nlinger; i++)
        close(cs->linger[i].fd);
    cs->nlinger = 0;
    pthread_cond_destroy(&cs->wake);
    pthread_mutex_destroy(&cs->lock);
    cs->started = 0;
}

/* Live (not cut) connections from (family, addr); the lock is held. */
static unsigned count_from(const struct server_conns *cs, int family,
                           const unsigned char *addr)
{
    size_t n = family == AF_INET ? 4 : 16;
    unsigned k = 0;
    for (const struct server_conn *c = cs->head; c; c = c->next)
        if (!c->cut && c->family == family && !memcmp(c->addr, addr, n))
            k++;
    return k;
}

/* Whether a client at addr is over its limit (lock held); -1 if it is not
 * limited at all. */
static int over_limit(struct server *s, int family, const unsigned char *addr)
{
    if (s->conns.per_client == 0 || family < 0 ||
        server_access_trusted_addr(&s->access, family, addr))
        return -1;
    return count_from(&s->conns, family, addr) >= s->conns.per_client;
}

enum MHD_Result server_conns_accept(void *cls, const struct sockaddr *addr,
                                    socklen_t len)
{
    struct server *s = cls;
    unsigned char b[16];
    (void)len;
    int family = addr ? server_addr_key(addr, b) : -1;
    if (family < 0 || s->conns.per_client == 0)
        return MHD_YES;
    pthread_mutex_lock(&s->conns.lock);
    int over = over_limit(s, family, b);
    pthread_mutex_unlock(&s->conns.lock);
    if (over != 1)
        return MHD_YES;
    atomic_fetch_add(&s->conns.per_client_rejects, 1);
    server_log(LOG_DEBUG, "connection refused: over the per-client limit");
    return MHD_NO;
}

void server_conns_open(struct server *s, struct MHD_Connection *conn,
                       void **socket_ctx)
{
    struct server_conns *cs = &s->conns;
    struct server_conn *c = calloc(1, sizeof(*c));
    *socket_ctx = c;
    if (!c)
        return; /* untracked: no deadline, never limited */
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    c->fd = fi ? fi->connect_fd : -1;
    c->family =
        ai && ai->client_addr ? server_addr_key(ai->client_addr, c->addr) : -1;
    atomic_init(&c->deadline_ns, server_mono_ns() + cs->header_ns);
    pthread_mutex_lock(&cs->lock);
    /* Accepts racing on several threads can pass the accept check
     * together; this count is exact. */
    if (over_limit(s, c->family, c->addr) == 1 && c->fd >= 0) {
        c->cut = 1;
        shutdown(c->fd, SHUT_RDWR); /* C1: the fd is ours, lock held */
        atomic_fetch_add(&cs->per_client_rejects, 1);
    }
    c->next = cs->head;
    if (cs->head)
        cs->head->prev = c;
    cs->head = c;
    pthread_mutex_unlock(&cs->lock);
}

void server_conns_close(struct server *s, void **socket_ctx)
{
    struct server_conns *cs = &s->conns;
    struct server_conn *c = *socket_ctx;
    if (!c)
        return;
    pthread_mutex_lock(&cs->lock); /* C1 */
    if (atomic_load(&c->linger) && c->fd >= 0 &&
        cs->nlinger < SERVER_LINGER_MAX) {
        int d = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
        if (d >= 0) {
            cs->linger[cs->nlinger++] = (struct server_linger){
                d, server_mono_ns() + SERVER_LINGER_NS, 0};
            pthread_cond_signal(&cs->wake);
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        cs->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&cs->lock);
    free(c);
    *socket_ctx = NULL;
}

void server_conns_busy(struct server_conn *c)
{
    if (c)
        atomic_store(&c->deadline_ns, 0);
}

void server_conns_body(struct server_conn *c, int receiving)
{
    if (c)
        atomic_store(&c->body_ns, receiving ? server_mono_ns() : 0);
}

void server_conns_linger(struct server_conn *c)
{
    if (c)
        atomic_store(&c->linger, 1);
}

/* Drain the lingering descriptors (C5); the lock is held.  Returns when
 * the next look is due. */
static uint64_t drain_lingering(struct server_conns *cs, uint64_t now,
                                uint64_t next)
{
    static char sink[65536];
    for (unsigned i = 0; i < cs->nlinger;) {
        struct server_linger *l = &cs->linger[i];
        int done = now >= l->until_ns;
        while (!done) {
            ssize_t n = recv(l->fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n > 0) {
                l->drained += (uint64_t)n;
                done = l->drained >= SERVER_LINGER_BYTES;
            } else {
                done = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
                                  errno != EINTR);
                break;
            }
        }
        if (done) {
            close(l->fd);
            *l = cs->linger[--cs->nlinger];
            continue;
        }
        i++;
    }
    if (cs->nlinger && next > now + SCAN_MIN_NS / 4)
        next = now + SCAN_MIN_NS / 4;
    return next;
}

void server_conns_idle(struct server *s, struct server_conn *c)
{
    if (c) {
        atomic_store(&c->body_ns, 0);
        atomic_store(&c->deadline_ns, server_mono_ns() + s->conns.header_ns);
    }
}

/* C6: 1 if the client of a quiet body has closed its end; the lock is
 * held.  *next is lowered to when the body is worth a look again. */
static int body_abandoned(struct server_conn *c, uint64_t now, uint64_t *next)
{
    uint64_t b = atomic_load(&c->body_ns);
    if (b == 0)
        return 0;
    if (now < b + SERVER_BODY_PEEK_NS) {
        if (b + SERVER_BODY_PEEK_NS < *next)
            *next = b + SERVER_BODY_PEEK_NS;
        return 0;
    }
    if (now + SERVER_BODY_PEEK_NS < *next)
        *next = now + SERVER_BODY_PEEK_NS;
    char byte;
    return recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static void *watchdog_main(void *arg)
{
    struct server *s = arg;
    struct server_conns *cs = &s->conns;
    pthread_mutex_lock(&cs->lock);
    while (!cs->stop) {
        uint64_t now = server_mono_ns(), next = now + SCAN_MAX_NS;
        unsigned cut = 0, left = 0;
        for (struct server_conn *c = cs->head; c; c = c->next) {
            uint64_t d = atomic_load(&c->deadline_ns);
            if (c->cut || c->fd < 0)
                continue;
            if (body_abandoned(c, now, &next)) {
                c->cut = 1;
                shutdown(c->fd, SHUT_RDWR); /* C1 */
                left++;
                continue;
            }
            if (d == 0)
                continue;
            if (d <= now) {
                c->cut = 1;
                shutdown(c->fd, SHUT_RDWR); /* C1 */
                cut++;
            } else if (d < next) {
                next = d;
            }
        }
        if (cut) {
            atomic_fetch_add(&cs->header_timeouts, cut);
            server_log(LOG_DEBUG,
                       "closed %u connections: no complete request headers "
                       "within %u s",
                       cut, s->cfg.header_timeout);
        }
        if (left) {
            atomic_fetch_add(&cs->bodies_abandoned, left);
            server_log(LOG_DEBUG,
                       "closed %u connections whose clients left in the "
                       "middle of a request body",
                       left);
        }
        if (next < now + SCAN_MIN_NS)
            next = now + SCAN_MIN_NS;
        next = drain_lingering(cs, now, next);
        struct timespec ts = {(time_t)(next / 1000000000ull),
                              (long)(next % 1000000000ull)};
        pthread_cond_timedwait(&cs->wake, &cs->lock, &ts);
    }
    pthread_mutex_unlock(&cs->lock);
    return NULL;
}
