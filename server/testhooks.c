/*
 * testhooks.c - test builds only (the blobd-test binary): fault injection
 * inside the running daemon, so integration tests can make a sync fail or
 * the disk fill.  Never part of the blobd binary.
 *
 * With BLOBD_TEST_FAULTS=1 the store runs on the pread backend wrapped in
 * tests/support/faultio, and these endpoints exist:
 *   POST /test/fault?op=<op>&mode=<eio|enospc|short>[&nth=N][&all=1]
 *   POST /test/fault?disarm=1
 *   POST /test/avail?bytes=N      (fstatvfs reports N free bytes; -1: real)
 *   POST /test/stall?ms=N         (every sync first sleeps N ms; 0: off)
 * op: openat close pread pwritev sync fallocate ftruncate renameat unlinkat
 * or io (every call that touches the disk).  nth counts calls from now.
 * BLOBD_TEST_OPEN_DELAY_MS=N sleeps before the store opens (the "opening"
 * state can be observed).
 */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "faultio.h"
#include "log.h"
#include "server.h"
#include "store_io.h"

struct server_hooks {
    struct faultio *f;
    /* The faultio table with sync slowed down by stall_ms.  Its ctx is
     * faultio's, so faultio's functions work through it unchanged. */
    struct store_io slow;
    struct store_io *fio;
    atomic_uint stall_ms;
};

static struct server_hooks *hooks; /* one server per process */

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

static int slow_sync(struct store_io *io, int fd, enum store_io_sync kind)
{
    unsigned ms = atomic_load(&hooks->stall_ms);
    if (ms)
        sleep_ms(ms);
    return hooks->fio->sync(io, fd, kind);
}

struct store_io *server_hooks_init(struct server *s)
{
    const char *on = getenv("BLOBD_TEST_FAULTS");
    if (!on || strcmp(on, "1") != 0)
        return NULL;
    struct server_hooks *h = calloc(1, sizeof(*h));
    struct store_io *inner = store_io_pread_new();
    if (!h || !inner || !(h->f = faultio_new(inner))) {
        server_log(LOG_ERROR, "test hooks: out of memory");
        exit(70);
    }
    s->hooks = h;
    hooks = h;
    h->fio = faultio_io(h->f);
    h->slow = *h->fio;
    h->slow.sync = slow_sync;
    atomic_init(&h->stall_ms, 0);
    server_log(LOG_WARN, "test build: fault injection endpoints enabled");
    return &h->slow;
}

void server_hooks_open_delay(void)
{
    const char *v = getenv("BLOBD_TEST_OPEN_DELAY_MS");
    long ms = v ? atol(v) : 0;
    if (ms > 0)
        sleep_ms((unsigned)ms);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static const char *const op_names[FIO_NOPS] = {
    "openat",    "close",     "pread",    "pwritev",  "sync",
    "fallocate", "ftruncate", "renameat", "unlinkat", "fstatvfs"};

static int arm(struct faultio *f, struct MHD_Connection *c)
{
    const char *q;
#define ARG(n) MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, n)
    if ((q = ARG("disarm")) && !strcmp(q, "1")) {
        faultio_disarm(f);
        return 0;
    }
    const char *op = ARG("op"), *mode = ARG("mode");
    if (!op || !mode)
        return -1;
    unsigned mask = 0;
    if (!strcmp(op, "io"))
        mask = FIO_MASK_IO;
    for (int i = 0; i < FIO_NOPS; i++)
        if (!strcmp(op, op_names[i]))
            mask = FIO_BIT(i);
    enum fio_mode m;
    if (!strcmp(mode, "eio"))
        m = FIO_EIO;
    else if (!strcmp(mode, "enospc"))
        m = FIO_ENOSPC;
    else if (!strcmp(mode, "short"))
        m = FIO_SHORT;
    else
        return -1;
    if (!mask)
        return -1;
    long nth = (q = ARG("nth")) ? atol(q) : 1;
    if (nth < 1)
        return -1;
    if ((q = ARG("all")) && !strcmp(q, "1"))
        faultio_arm_all(f, mask, m);
    else
        faultio_arm(f, mask, (uint64_t)nth, m);
    server_log(LOG_WARN, "test: fault armed: op=%s mode=%s nth=%ld", op, mode,
               nth);
    return 0;
#undef ARG
}

int server_hooks_route(struct server *s, struct MHD_Connection *c,
                       const char *url, const char *method)
{
    struct server_hooks *h = s->hooks;
    if (!h || strncmp(url, "/test/", 6) != 0)
        return 0;
    if (strcmp(method, "POST") != 0) {
        reply(c, 405, "{\"error\":\"method_not_allowed\"}");
        return 1;
    }
    int rc = -1;
    if (!strcmp(url, "/test/fault")) {
        rc = arm(h->f, c);
    } else if (!strcmp(url, "/test/stall")) {
        const char *b =
            MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ms");
        if (b) {
            atomic_store(&h->stall_ms, (unsigned)atol(b));
            rc = 0;
        }
    } else if (!strcmp(url, "/test/avail")) {
        const char *b =
            MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "bytes");
        if (b) {
            faultio_set_avail(h->f, atoll(b));
            rc = 0;
        }
    }
    reply(c, rc == 0 ? 200 : 400,
          rc == 0 ? "{\"ok\":true}" : "{\"error\":\"bad_request\"}");
    return 1;
}

void server_hooks_free(struct server *s)
{
    /* The faultio backend is borrowed by the store: freed after it. */
    if (s->hooks)
        faultio_free(s->hooks->f);
    free(s->hooks);
    s->hooks = NULL;
    hooks = NULL;
}
