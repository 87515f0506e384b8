/*
 * iothread.c - the async API: the I/O thread that runs every submitted
 * write, delete and flush with group commit, the reader threads behind
 * store_submit_read, and the timer thread that runs background compaction
 * and expires jobs that waited too long.
 *
 * Owns: the job queue, the read queue and the three kinds of threads.
 *
 * Invariants:
 *  A1. Every accepted job completes exactly once: on the I/O thread, or,
 *      if it expired while still queued, on the timer thread.  A job is
 *      taken off the queue before it runs, so the two never race for it.
 *  A2. Jobs run in submission order.  Consecutive writes are handed to the
 *      store as one batch (one coalesced write submission); a delete or a
 *      flush between them splits the batch, so order per GUID is kept.
 *  A3. Each round makes at most one group commit, after its writes and
 *      deletes were applied, for every durable job of the round, when
 *      pressure or the flush timer asks, and it completes the durable jobs
 *      only after it: a durable acknowledgement follows write completed ->
 *      data sync -> log append -> log sync (store_flush, T1).
 *  A4. On stop, submits are refused, the I/O thread finishes every queued
 *      job, the readers finish every queued read, then all threads exit.
 *  A5. The async state outlives the threads until store_close, so a
 *      submit racing with or following store_stop is refused with
 *      STORE_E_STOPPED, never a use after free.
 *  A6. A read-only store starts the reader threads only; writes, deletes
 *      and flushes are refused with STORE_E_READONLY at submission.
 * Threads: submit functions from any thread; callbacks as in A1; a
 * callback never runs with a queue lock held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_int.h"

#define DEFAULT_QUEUE 4096u
#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_READERS 16u
#define MAX_READERS 64u
#define TIMER_TICK_MS 100u

enum job_kind { JOB_WRITE, JOB_DELETE, JOB_FLUSH };

struct job {
    enum job_kind kind;
    int durable;
    uint8_t guid[STORE_GUID_SIZE];
    void *frame;
    uint32_t len;
    struct store_precond pre;
    store_done_fn *done;
    void *arg;
    uint64_t deadline;
};

struct rjob {
    uint8_t guid[STORE_GUID_SIZE];
    uint64_t off;
    uint32_t len;
    void *frame;
    store_read_fn *done;
    void *arg;
};

/* A bounded FIFO of fixed-size items. */
struct ring {
    void *v;
    size_t size, cap, head, len;
};

struct store_async {
    struct store *st;
    uint64_t timeout_ns, interval_ns, last_flush;

    pthread_mutex_t mu; /* jobs */
    pthread_cond_t cv;
    struct ring jobs;
    int stopping;
    size_t running; /* jobs taken by the I/O thread, not yet completed */
    pthread_t io;
    /* The I/O thread's working arrays, one entry per queue slot. */
    struct job *batch;
    struct store_write *writes;
    struct pending *wait;

    pthread_mutex_t rmu; /* reads */
    pthread_cond_t rcv;
    struct ring reads;
    int rstopping;
    pthread_t *readers;
    unsigned nreaders;

    pthread_mutex_t tmu; /* timer thread */
    pthread_cond_t tcv;
    int tstopping, kicked;
    int joined; /* iothread_stop has joined every thread */
    pthread_t timer;

    int io_started, timer_started;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ring_init(struct ring *r, size_t size, size_t cap)
{
    r->v = calloc(cap, size);
    r->size = size;
    r->cap = cap;
    r->head = r->len = 0;
    return r->v ? 0 : -ENOMEM;
}

static void *ring_at(struct ring *r, size_t i)
{
    return (char *)r->v + ((r->head + i) % r->cap) * r->size;
}

static int ring_push(struct ring *r, const void *item)
{
    if (r->len == r->cap)
        return -1;
    memcpy((char *)r->v + ((r->head + r->len) % r->cap) * r->size, item,
           r->size);
    r->len++;
    return 0;
}

static void ring_pop(struct ring *r, void *item)
{
    memcpy(item, ring_at(r, 0), r->size);
    r->head = (r->head + 1) % r->cap;
    r->len--;
}

static void complete(const struct job *j, enum store_outcome o, int rc,
                     uint64_t version, int durable,
                     const struct store_flush_result *fr)
{
    struct store_completion c;
    memset(&c, 0, sizeof(c));
    c.outcome = o;
    c.rc = rc;
    c.version = version;
    c.durable = durable;
    if (fr)
        c.flush = *fr;
    j->done(j->arg, &c);
}

static void expire(const struct job *j)
{
    complete(j, STORE_OUT_OVERLOADED, STORE_E_OVERLOADED, 0, 0, NULL);
}

/* ---- the I/O thread ---- */

/* What a finished job waits for before it completes. */
struct pending {
    const struct job *j;
    enum store_outcome outcome;
    uint64_t version;
};

/* Run a run of consecutive writes as one batch (A2). */
static size_t run_writes(struct store_async *as, const struct job *b, size_t n,
                         struct store_write *w, struct pending *wait,
                         size_t *nwait)
{
    size_t k = 0;
    while (k < n && b[k].kind == JOB_WRITE) {
        memset(&w[k], 0, sizeof(w[k]));
        w[k].guid = b[k].guid;
        w[k].frame = b[k].frame;
        w[k].len = b[k].len;
        w[k].pre = b[k].pre;
        k++;
    }
    store_write_batch(as->st, w, k);
    for (size_t i = 0; i < k; i++) {
        int ok = w[i].outcome == STORE_OUT_CREATED ||
                 w[i].outcome == STORE_OUT_REPLACED;
        if (ok && b[i].durable)
            wait[(*nwait)++] =
                (struct pending){&b[i], w[i].outcome, w[i].version};
        else
            complete(&b[i], w[i].outcome, w[i].rc, w[i].version, 0, NULL);
    }
    return k;
}

static void run_delete(struct store_async *as, const struct job *j,
                       struct pending *wait, size_t *nwait)
{
    enum store_outcome o = STORE_OUT_NONE;
    int rc = store_delete(as->st, j->guid, &j->pre, &o);
    if (rc == 0 && j->durable)
        wait[(*nwait)++] = (struct pending){j, o, 0};
    else
        complete(j, o, rc, 0, 0, NULL);
}

/* One group commit for everything waiting (A3). */
static void commit(struct store_async *as, struct pending *wait, size_t n)
{
    struct store_flush_result fr;
    int rc = store_flush(as->st, &fr);
    as->last_flush = mono_ns();
    enum store_outcome fail =
        rc == STORE_E_NOSPACE ? STORE_OUT_NO_SPACE : STORE_OUT_STORE_FAILED;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            complete(wait[i].j, wait[i].outcome, 0, wait[i].version, 1, &fr);
        else
            complete(wait[i].j, fail, rc, 0, 0, &fr);
    }
}

static void run_round(struct store_async *as, struct job *b, size_t n,
                      struct store_write *w, struct pending *wait)
{
    uint64_t now = mono_ns();
    size_t nwait = 0;
    for (size_t i = 0; i < n;) {
        if (b[i].deadline <= now) {
            expire(&b[i]);
            i++;
        } else if (b[i].kind == JOB_WRITE) {
            size_t k = 0;
            while (i + k < n && b[i + k].kind == JOB_WRITE &&
                   b[i + k].deadline > now)
                k++;
            i += run_writes(as, &b[i], k, w, wait, &nwait);
        } else if (b[i].kind == JOB_DELETE) {
            run_delete(as, &b[i], wait, &nwait);
            i++;
        } else {
            wait[nwait++] = (struct pending){&b[i], STORE_OUT_NONE, 0};
            i++;
        }
    }
    int timer = as->interval_ns && now - as->last_flush >= as->interval_ns &&
                store_needs_flush(as->st);
    if (nwait > 0 || timer || store_flush_pressure(as->st))
        commit(as, wait, nwait);
    else if (store_sync_data_due(as->st))
        store_sync_data(as->st); /* a failure is sticky: the store says why */
}

static void *io_main(void *arg)
{
    struct store_async *as = arg;
    pthread_mutex_lock(&as->mu);
    for (;;) {
        while (as->jobs.len == 0 && !as->stopping) {
            if (!as->interval_ns || !store_needs_flush(as->st)) {
                pthread_cond_wait(&as->cv, &as->mu);
                continue;
            }
            uint64_t now = mono_ns(), due = as->last_flush + as->interval_ns;
            if (now >= due)
                break; /* the flush timer */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t at = (uint64_t)ts.tv_sec * 1000000000ull +
                          (uint64_t)ts.tv_nsec + (due - now);
            ts.tv_sec = (time_t)(at / 1000000000ull);
            ts.tv_nsec = (long)(at % 1000000000ull);
            pthread_cond_timedwait(&as->cv, &as->mu, &ts);
        }
        if (as->jobs.len == 0 && as->stopping)
            break;
        size_t n = 0;
        while (as->jobs.len > 0)
            ring_pop(&as->jobs, &as->batch[n++]);
        as->running = n;
        pthread_mutex_unlock(&as->mu);
        run_round(as, as->batch, n, as->writes, as->wait);
        pthread_mutex_lock(&as->mu);
        as->running = 0;
    }
    pthread_mutex_unlock(&as->mu);
    return NULL;
}

static int submit(struct store *st, const struct job *j)
{
    struct store_async *as = st->as;
    if (!as)
        return STORE_E_INVALID;
    if (st->read_only)
        return STORE_E_READONLY; /* A6 */
    pthread_mutex_lock(&as->mu);
    int rc = as->stopping                  ? STORE_E_STOPPED
             : ring_push(&as->jobs, j) < 0 ? STORE_E_OVERLOADED
                                           : 0;
    if (rc == 0)
        pthread_cond_signal(&as->cv);
    pthread_mutex_unlock(&as->mu);
    return rc;
}

static void job_init(struct store *st, struct job *j, enum job_kind kind,
                     const uint8_t *guid, const struct store_precond *pre,
                     int durable, store_done_fn *done, void *arg)
{
    memset(j, 0, sizeof(*j));
    j->kind = kind;
    j->durable = durable;
    if (guid)
        memcpy(j->guid, guid, STORE_GUID_SIZE);
    if (pre)
        j->pre = *pre;
    j->done = done;
    j->arg = arg;
    j->deadline = mono_ns() + (st->as ? st->as->timeout_ns : 0);
}

int store_submit_write(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                       void *frame, uint32_t len,
                       const struct store_precond *pre, int durable,
                       store_done_fn *done, void *arg)
{
    if (!guid || !done || len > STORE_FRAME_SIZE || (len && !frame) ||
        (uintptr_t)frame % STORE_PAGE_SIZE)
        return STORE_E_INVALID;
    struct job j;
    job_init(st, &j, JOB_WRITE, guid, pre, durable, done, arg);
    j.frame = frame;
    j.len = len;
    return submit(st, &j);
}

int store_submit_delete(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                        const struct store_precond *pre, int durable,
                        store_done_fn *done, void *arg)
{
    if (!guid || !done)
        return STORE_E_INVALID;
    struct job j;
    job_init(st, &j, JOB_DELETE, guid, pre, durable, done, arg);
    return submit(st, &j);
}

int store_submit_flush(struct store *st, store_done_fn *done, void *arg)
{
    if (!done)
        return STORE_E_INVALID;
    struct job j;
    job_init(st, &j, JOB_FLUSH, NULL, NULL, 1, done, arg);
    return submit(st, &j);
}

/* ---- readers ---- */

static void *reader_main(void *arg)
{
    struct store_async *as = arg;
    struct rjob r;
    pthread_mutex_lock(&as->rmu);
    for (;;) {
        while (as->reads.len == 0 && !as->rstopping)
            pthread_cond_wait(&as->rcv, &as->rmu);
        if (as->reads.len == 0)
            break; /* stopping, and nothing left (A4) */
        ring_pop(&as->reads, &r);
        pthread_mutex_unlock(&as->rmu);
        struct store_read_result res;
        memset(&res, 0, sizeof(res));
        if (r.len == STORE_READ_ALL) {
            res.rc = store_read(as->st, r.guid, r.frame, &res.info);
            res.data = r.frame;
            res.len = res.info.len;
        } else {
            res.rc = store_read_range(as->st, r.guid, r.off, r.len, r.frame,
                                      &res.data, &res.info);
            res.len = r.len;
        }
        r.done(r.arg, &res);
        pthread_mutex_lock(&as->rmu);
    }
    pthread_mutex_unlock(&as->rmu);
    return NULL;
}

int store_submit_read(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                      uint64_t off, uint32_t len, void *frame,
                      store_read_fn *done, void *arg)
{
    struct store_async *as = st->as;
    if (!as || !guid || !frame || !done)
        return STORE_E_INVALID;
    struct rjob r;
    memcpy(r.guid, guid, STORE_GUID_SIZE);
    r.off = off;
    r.len = len;
    r.frame = frame;
    r.done = done;
    r.arg = arg;
    pthread_mutex_lock(&as->rmu);
    int rc = as->rstopping                   ? STORE_E_STOPPED
             : ring_push(&as->reads, &r) < 0 ? STORE_E_OVERLOADED
                                             : 0;
    if (rc == 0)
        pthread_cond_signal(&as->rcv);
    pthread_mutex_unlock(&as->rmu);
    return rc;
}

/* ---- the timer thread: expiry and background compaction ---- */

/* Take expired jobs off the queue, then fail them (A1). */
static void expire_queued(struct store_async *as)
{
    uint64_t now = mono_ns();
    struct job *dead = NULL;
    size_t ndead = 0;
    pthread_mutex_lock(&as->mu);
    size_t n = as->jobs.len;
    for (size_t i = 0; i < n; i++)
        ndead += ((struct job *)ring_at(&as->jobs, i))->deadline <= now;
    if (ndead > 0 && (dead = malloc(ndead * sizeof(*dead))) != NULL) {
        ndead = 0;
        for (size_t i = 0; i < n; i++) { /* a full rotation keeps order */
            struct job j;
            ring_pop(&as->jobs, &j);
            if (j.deadline <= now)
                dead[ndead++] = j;
            else
                ring_push(&as->jobs, &j);
        }
    } else {
        ndead = 0;
    }
    pthread_mutex_unlock(&as->mu);
    for (size_t i = 0; i < ndead; i++)
        expire(&dead[i]);
    free(dead);
}

struct barrier {
    pthread_mutex_t m;
    pthread_cond_t c;
    int done, rc;
};

static void barrier_done(void *arg, const struct store_completion *c)
{
    struct barrier *b = arg;
    pthread_mutex_lock(&b->m);
    b->done = 1;
    b->rc = c->rc;
    pthread_cond_signal(&b->c);
    pthread_mutex_unlock(&b->m);
}

/* C3 through the I/O thread: a flush job, waited for. */
static int io_barrier(struct store *st)
{
    struct barrier b;
    pthread_mutex_init(&b.m, NULL);
    pthread_cond_init(&b.c, NULL);
    b.done = 0;
    b.rc = 0;
    int rc = store_submit_flush(st, barrier_done, &b);
    if (rc == 0) {
        pthread_mutex_lock(&b.m);
        while (!b.done)
            pthread_cond_wait(&b.c, &b.m);
        rc = b.rc;
        pthread_mutex_unlock(&b.m);
    }
    pthread_mutex_destroy(&b.m);
    pthread_cond_destroy(&b.c);
    return rc;
}

static void *timer_main(void *arg)
{
    struct store_async *as = arg;
    pthread_mutex_lock(&as->tmu);
    while (!as->tstopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TIMER_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!as->kicked)
            pthread_cond_timedwait(&as->tcv, &as->tmu, &ts);
        int kicked = as->kicked;
        as->kicked = 0;
        if (as->tstopping)
            break;
        pthread_mutex_unlock(&as->tmu);
        expire_queued(as);
        if (kicked || store_compaction_due(as->st))
            store_compact_run(as->st, io_barrier);
        pthread_mutex_lock(&as->tmu);
    }
    pthread_mutex_unlock(&as->tmu);
    return NULL;
}

void iothread_kick_compaction(struct store *st)
{
    struct store_async *as = st->as;
    pthread_mutex_lock(&as->tmu);
    as->kicked = 1;
    pthread_cond_signal(&as->tcv);
    pthread_mutex_unlock(&as->tmu);
}

void iothread_stats(struct store *st, uint64_t *queue_depth)
{
    struct store_async *as = st->as;
    pthread_mutex_lock(&as->mu);
    *queue_depth = as->jobs.len + as->running;
    pthread_mutex_unlock(&as->mu);
}

/* ---- start and stop ---- */

static void async_free(struct store_async *as)
{
    free(as->jobs.v);
    free(as->reads.v);
    free(as->batch);
    free(as->writes);
    free(as->wait);
    free(as->readers);
    pthread_mutex_destroy(&as->mu);
    pthread_cond_destroy(&as->cv);
    pthread_mutex_destroy(&as->rmu);
    pthread_cond_destroy(&as->rcv);
    pthread_mutex_destroy(&as->tmu);
    pthread_cond_destroy(&as->tcv);
    free(as);
}

int iothread_start(struct store *st, const struct store_config *cfg)
{
    struct store_async *as = calloc(1, sizeof(*as));
    if (!as)
        return -ENOMEM;
    as->st = st;
    unsigned qmax = cfg->queue_max ? cfg->queue_max : DEFAULT_QUEUE;
    unsigned tmo =
        cfg->job_timeout_ms ? cfg->job_timeout_ms : DEFAULT_TIMEOUT_MS;
    as->timeout_ns = (uint64_t)tmo * 1000000ull;
    as->interval_ns = (uint64_t)cfg->flush_interval_ms * 1000000ull;
    as->last_flush = mono_ns();
    as->nreaders = cfg->read_threads ? cfg->read_threads : DEFAULT_READERS;
    if (as->nreaders > MAX_READERS)
        as->nreaders = MAX_READERS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the flush timer */
    pthread_mutex_init(&as->mu, NULL);
    pthread_cond_init(&as->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&as->rmu, NULL);
    pthread_cond_init(&as->rcv, NULL);
    pthread_mutex_init(&as->tmu, NULL);
    pthread_cond_init(&as->tcv, NULL);
    as->readers = calloc(as->nreaders, sizeof(*as->readers));
    as->batch = calloc(qmax, sizeof(*as->batch));
    as->writes = calloc(qmax, sizeof(*as->writes));
    as->wait = calloc(qmax, sizeof(*as->wait));
    if (!as->readers || !as->batch || !as->writes || !as->wait ||
        ring_init(&as->jobs, sizeof(struct job), qmax) < 0 ||
        ring_init(&as->reads, sizeof(struct rjob), qmax) < 0) {
        async_free(as);
        return -ENOMEM;
    }
    st->as = as;
    /* A6: a read-only store runs readers only; submit refuses the rest. */
    int rc = st->read_only ? 0 : pthread_create(&as->io, NULL, io_main, as);
    if (rc == 0 && !st->read_only)
        as->io_started = 1;
    unsigned started = 0;
    while (rc == 0 && started < as->nreaders) {
        rc = pthread_create(&as->readers[started], NULL, reader_main, as);
        if (rc == 0)
            started++;
    }
    if (rc == 0 && !st->read_only) {
        rc = pthread_create(&as->timer, NULL, timer_main, as);
        if (rc == 0)
            as->timer_started = 1;
    }
    as->nreaders = started;
    if (rc != 0) {
        iothread_free(st);
        return -rc;
    }
    return 0;
}

void iothread_stop(struct store *st)
{
    struct store_async *as = st->as;
    if (!as || as->joined)
        return;
    pthread_mutex_lock(&as->mu);
    as->stopping = 1; /* A4: no more submits */
    pthread_cond_broadcast(&as->cv);
    pthread_mutex_unlock(&as->mu);
    pthread_mutex_lock(&as->tmu);
    as->tstopping = 1;
    pthread_cond_broadcast(&as->tcv);
    pthread_mutex_unlock(&as->tmu);
    if (as->timer_started)
        pthread_join(as->timer, NULL);
    if (as->io_started)
        pthread_join(as->io, NULL);
    pthread_mutex_lock(&as->rmu);
    as->rstopping = 1;
    pthread_cond_broadcast(&as->rcv);
    pthread_mutex_unlock(&as->rmu);
    for (unsigned i = 0; i < as->nreaders; i++)
        pthread_join(as->readers[i], NULL);
    as->joined = 1; /* A5: kept until store_close, submits see stopping */
}

void iothread_free(struct store *st)
{
    iothread_stop(st);
    if (st->as)
        async_free(st->as);
    st->as = NULL;
}
