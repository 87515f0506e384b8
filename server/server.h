/*
 * server.h - the daemon's shared state (server/ only).
 *
 * Threads: the main thread starts and stops everything; one signal thread
 * takes SIGTERM/SIGINT; libmicrohttpd's threads run the request handlers;
 * the store's I/O and reader threads run completions, which only record a
 * result and resume the connection.
 */
#ifndef BLOBD_SERVER_H
#define BLOBD_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "access.h"
#include "cache.h"
#include "config.h"
#include "metrics.h"
#include "store.h"

enum server_state {
    SRV_OPENING = 0, /* listening, the store is not open yet */
    SRV_READY,
    SRV_DRAINING /* shutting down: new requests 503, Connection: close */
};

struct server_hooks;
struct server_conn;

/* libmicrohttpd's memory per connection is --connection-memory: the
 * buffer for a request's line and headers and for reading bodies (the
 * library reads a body into half of it, so it decides the recv size).
 * Outside the memory budget (a connection cut for the budget would get no
 * 503), bounded by --max-connections, reported as
 * memory.connections_bytes. */

/* Lingering closes at most at once, how long each lasts, and how much of
 * a refused body each reads and drops. */
#define SERVER_LINGER_MAX 64
#define SERVER_LINGER_NS 2000000000ull
#define SERVER_LINGER_BYTES (4u << 20)
/* A request body quiet this long is checked for a client that left (C6
 * in conns.c). */
#define SERVER_BODY_PEEK_NS 200000000ull

/* Open connections (conns.c): header deadlines, per-client counts. */
struct server_conns {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the watchdog's sleep */
    struct server_conn *head;
    pthread_t thread;
    int started, stop;
    uint64_t header_ns;  /* --header-timeout */
    unsigned per_client; /* 0 = no limit */
    uint64_t fd_limit;   /* RLIMIT_NOFILE in force */
    atomic_uint_least64_t header_timeouts, per_client_rejects;
    atomic_uint_least64_t bodies_abandoned; /* C6 */
    /* lingering closes (C5): descriptors kept to drain a refused body */
    struct server_linger {
        int fd;
        uint64_t until_ns;
        uint64_t drained;
    } linger[SERVER_LINGER_MAX];
    unsigned nlinger;
};

struct server {
    struct server_config cfg;
    struct MHD_Daemon *mhd;
    struct store *st; /* set before state becomes SRV_READY */
    atomic_int state;
    atomic_long inflight; /* requests begun and not yet completed */
    int listen_fd;
    unsigned port;
    struct server_hooks *hooks; /* test builds only, else NULL */
    struct server_access access;
    struct server_metrics metrics;
    struct server_budget budget; /* request frames, responses, cache */
    struct server_cache *cache;  /* NULL when --cache-size is 0 */
    uint64_t started_ns;         /* CLOCK_MONOTONIC at start */
    struct server_conns conns;
};

/* A snapshot of everything /admin/stats and /metrics report. */
void server_collect_stats(struct server *s, struct api_server_stats *out);
uint64_t server_mono_ns(void);

/* Start libmicrohttpd on listen_fd (owned by the daemon from then on).
 * 0 or -1 with err filled. */
int server_http_start(struct server *s, int listen_fd, char *err,
                      size_t errlen);
/* Stop the daemon: every connection is closed, every request completed. */
void server_http_stop(struct server *s);

/* Connections (conns.c).  Raise RLIMIT_NOFILE to fit --max-connections,
 * or lower max-connections to fit the limit (with a warning); -1 if no
 * connection fits at all. */
int server_conns_fd_limit(struct server *s);
/* Start and stop the header-deadline watchdog (stop after libmicrohttpd
 * has stopped). */
int server_conns_start(struct server *s);
void server_conns_stop(struct server *s);
/* libmicrohttpd's accept policy: refuse a client over its limit. */
enum MHD_Result server_conns_accept(void *cls, const struct sockaddr *addr,
                                    socklen_t len);
/* Connection started / closed (libmicrohttpd's notifications). */
void server_conns_open(struct server *s, struct MHD_Connection *conn,
                       void **socket_ctx);
void server_conns_close(struct server *s, void **socket_ctx);
/* A request's headers are complete; its answer is finished. */
void server_conns_busy(struct server_conn *c);
/* The answer was queued before the request's body was read: drain the
 * body a while after libmicrohttpd closes, so the client reads the answer
 * instead of a reset (C5). */
void server_conns_linger(struct server_conn *c);
/* A request body is being read (receiving: its bytes arrived now) or is
 * no longer (0); the watchdog closes a quiet one whose client left. */
void server_conns_body(struct server_conn *c, int receiving);
/* The answer is finished: the next request's headers are due. */
void server_conns_idle(struct server *s, struct server_conn *c);

/* Test hooks (testhooks.c in test builds; no-ops otherwise). */
struct store_io *server_hooks_init(struct server *s);
void server_hooks_open_delay(void);
/* 1 if the request was a test endpoint and was answered. */
int server_hooks_route(struct server *s, struct MHD_Connection *c,
                       const char *url, const char *method);
void server_hooks_free(struct server *s);

#endif
