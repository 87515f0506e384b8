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

#include <stdatomic.h>
#include <stdint.h>

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

struct MHD_Daemon;
struct server_hooks;

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

/* Test hooks (testhooks.c in test builds; no-ops otherwise). */
struct store_io *server_hooks_init(struct server *s);
void server_hooks_open_delay(void);
struct MHD_Connection;
/* 1 if the request was a test endpoint and was answered. */
int server_hooks_route(struct server *s, struct MHD_Connection *c,
                       const char *url, const char *method);
void server_hooks_free(struct server *s);

#endif
