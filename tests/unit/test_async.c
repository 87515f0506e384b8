/*
 * test_async.c - the async API (store.h, "the async API"; iothread.c A1-A4):
 * completions of writes, deletes and flushes, group commit of durable
 * writes, preconditions and per-GUID order, exactly-once completion under
 * stress and at close, overload and job deadlines, reads that never wait
 * behind an fsync (G4), flushes on pressure and on the timer, background
 * compaction (C1-C4) with writes going on, holds, and a compaction
 * abandoned at close.
 *
 * Stores follow $BLOBD_TEST_BACKEND.  Where a test must stall the I/O
 * thread or slow a compaction it wraps that same backend in "slowio":
 * sync() blocks while the test keeps it closed (the I/O thread stalls above
 * the backend), or first runs a long fdatasync of a dirty scratch file
 * through the backend (the I/O thread is inside the backend's own sync),
 * and a pwritev of manifest.bin.tmp sleeps a chosen time.  Callbacks never
 * call cmocka: they record what they saw, and the test thread asserts.
 * Tests that find a store fault finish their other checks and clean up
 * before they fail.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000u /* for a completion that should come promptly */
#define MIB (1024u * 1024u)

/* ---- small helpers ---- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* An absolute CLOCK_MONOTONIC time ms from now. */
static void deadline_ts(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

static int file_exists(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    struct stat sb;
    int r = stat(p, &sb) == 0;
    free(p);
    return r;
}

static void cfg_async(struct store_config *cfg, const char *dir)
{
    store_config_init(cfg, dir);
    cfg->async = 1;
    cfg->backend = tu_backend();
    cfg->log_fn = tu_log_quiet;
    cfg->lock_timeout_ms = 200;
}

static struct store *open_cfg(const struct store_config *cfg)
{
    int rc = 0;
    char err[512] = "";
    struct store *st = store_open(cfg, &rc, err, sizeof(err));
    if (!st)
        fail_msg("store_open(%s): %s (%s)", cfg->dir, err, store_strerror(rc));
    return st;
}

static struct store *open_async(const char *dir)
{
    struct store_config cfg;
    cfg_async(&cfg, dir);
    return open_cfg(&cfg);
}

static struct store_stats stats_of(struct store *st)
{
    struct store_stats s;
    store_get_stats(st, &s);
    return s;
}

static void check_absent(struct store *st, const uint8_t guid[16])
{
    struct store_blob_info info;
    assert_int_equal(store_stat(st, guid, &info), STORE_E_NOT_FOUND);
}

/* ---- one completion, waited for ---- */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    struct store_completion c;
    struct store_read_result r;
};

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    cond_init_mono(&w->cv);
}

static void waiter_destroy(struct waiter *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void on_done(void *arg, const struct store_completion *c)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->c = *c;
    w->calls++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void on_read(void *arg, const struct store_read_result *r)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->r = *r;
    w->calls++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* The number of completions seen, waiting up to ms for the first. */
static int waiter_wait(struct waiter *w, unsigned ms)
{
    struct timespec ts;
    deadline_ts(&ts, ms);
    pthread_mutex_lock(&w->mu);
    while (w->calls == 0)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    int n = w->calls;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static int waiter_calls(struct waiter *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->calls;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* Wait for exactly one completion and return it. */
static struct store_completion wait_done(struct waiter *w, const char *what)
{
    int n = waiter_wait(w, WAIT_MS);
    if (n != 1)
        fail_msg("%s: %d completions (expected 1 within %u ms)", what, n,
                 WAIT_MS);
    pthread_mutex_lock(&w->mu);
    struct store_completion c = w->c;
    pthread_mutex_unlock(&w->mu);
    return c;
}

static struct store_read_result wait_read(struct waiter *w, unsigned ms,
                                          const char *what)
{
    int n = waiter_wait(w, ms);
    if (n != 1)
        fail_msg("%s: %d completions (expected 1 within %u ms)", what, n, ms);
    pthread_mutex_lock(&w->mu);
    struct store_read_result r = w->r;
    pthread_mutex_unlock(&w->mu);
    return r;
}

/* Submit and wait: a write, a delete, a flush. */
static struct store_completion do_write(struct store *st, const uint8_t *g,
                                        void *frame, uint32_t len,
                                        const struct store_precond *pre,
                                        int durable)
{
    struct waiter w;
    waiter_init(&w);
    int rc = store_submit_write(st, g, frame, len, pre, durable, on_done, &w);
    if (rc != 0)
        fail_msg("store_submit_write: %s", store_strerror(rc));
    struct store_completion c = wait_done(&w, "write");
    waiter_destroy(&w);
    return c;
}

static struct store_completion do_delete(struct store *st, const uint8_t *g,
                                         const struct store_precond *pre,
                                         int durable)
{
    struct waiter w;
    waiter_init(&w);
    int rc = store_submit_delete(st, g, pre, durable, on_done, &w);
    if (rc != 0)
        fail_msg("store_submit_delete: %s", store_strerror(rc));
    struct store_completion c = wait_done(&w, "delete");
    waiter_destroy(&w);
    return c;
}

static struct store_completion do_flush(struct store *st)
{
    struct waiter w;
    waiter_init(&w);
    int rc = store_submit_flush(st, on_done, &w);
    if (rc != 0)
        fail_msg("store_submit_flush: %s", store_strerror(rc));
    struct store_completion c = wait_done(&w, "flush");
    waiter_destroy(&w);
    if (c.outcome != STORE_OUT_NONE || c.rc != 0)
        fail_msg("flush: %s (%s)", store_outcome_name(c.outcome),
                 store_strerror(c.rc));
    return c;
}

/* Write len bytes of tu_pattern(seed) through the queue; returns the
 * version and asserts a CREATED/REPLACED with the asked durability. */
static uint64_t put_async(struct store *st, const uint8_t *g, uint32_t len,
                          uint64_t seed, int durable)
{
    void *f = store_frame_alloc(st);
    assert_non_null(f);
    tu_pattern(f, len, seed);
    struct store_completion c = do_write(st, g, f, len, NULL, durable);
    store_frame_free(st, f);
    if (c.outcome != STORE_OUT_CREATED && c.outcome != STORE_OUT_REPLACED)
        fail_msg("write: %s (%s)", store_outcome_name(c.outcome),
                 store_strerror(c.rc));
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.durable, durable ? 1 : 0);
    assert_true(c.version != 0);
    return c.version;
}

/* ---- slowio: a backend wrapper that can stall sync and slow snapshots ---- */

struct slowio {
    struct store_io io;
    struct store_io *inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int block;             /* sync() blocks while set */
    int blocked;           /* threads blocked in sync() now */
    unsigned tmp_delay_ms; /* a pwritev of manifest.bin.tmp sleeps this */
    int tmp_fd;            /* manifest.bin.tmp while open, else -1 */
    unsigned tmp_writes;   /* pwritev calls on manifest.bin.tmp */
    /* Slow fsync inside the backend: the next sync() first syncs
     * scratch_fd (a file with much dirty data) through the inner backend,
     * so the backend itself is busy in a long fsync. */
    int scratch_fd, scratch_armed, scratch_busy;
    uint64_t scratch_start_us, scratch_end_us;
    int fail_sync; /* the next sync() fails with EIO */
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct slowio *SL(struct store_io *io)
{
    return (struct slowio *)io;
}

static struct store_io *IN(struct store_io *io)
{
    return SL(io)->inner;
}

static int s_openat(struct store_io *io, int dirfd, const char *name, int flags,
                    mode_t mode)
{
    int fd = IN(io)->openat(IN(io), dirfd, name, flags, mode);
    if (fd >= 0 && strcmp(name, "manifest.bin.tmp") == 0) {
        pthread_mutex_lock(&SL(io)->mu);
        SL(io)->tmp_fd = fd;
        pthread_mutex_unlock(&SL(io)->mu);
    }
    return fd;
}

static int s_close(struct store_io *io, int fd)
{
    pthread_mutex_lock(&SL(io)->mu);
    if (fd == SL(io)->tmp_fd)
        SL(io)->tmp_fd = -1;
    pthread_mutex_unlock(&SL(io)->mu);
    return IN(io)->close(IN(io), fd);
}

static ssize_t s_pread(struct store_io *io, int fd, void *b, size_t l,
                       uint64_t o)
{
    return IN(io)->pread(IN(io), fd, b, l, o);
}

static ssize_t s_pwritev(struct store_io *io, int fd, const struct iovec *v,
                         int n, uint64_t o)
{
    struct slowio *s = SL(io);
    unsigned delay = 0;
    pthread_mutex_lock(&s->mu);
    if (fd >= 0 && fd == s->tmp_fd) {
        s->tmp_writes++;
        delay = s->tmp_delay_ms;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (delay)
        sleep_ms(delay);
    return IN(io)->pwritev(IN(io), fd, v, n, o);
}

static int s_sync(struct store_io *io, int fd, enum store_io_sync k)
{
    struct slowio *s = SL(io);
    pthread_mutex_lock(&s->mu);
    if (s->fail_sync) {
        s->fail_sync = 0;
        pthread_mutex_unlock(&s->mu);
        return -EIO;
    }
    if (s->block) {
        s->blocked++;
        pthread_cond_broadcast(&s->cv);
        while (s->block)
            pthread_cond_wait(&s->cv, &s->mu);
        s->blocked--;
    }
    int scratch = s->scratch_armed ? s->scratch_fd : -1;
    if (scratch >= 0) {
        s->scratch_armed = 0;
        s->scratch_busy = 1;
        s->scratch_start_us = mono_us();
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (scratch >= 0) {
        int rc = IN(io)->sync(IN(io), scratch, STORE_IO_FDATASYNC);
        pthread_mutex_lock(&s->mu);
        s->scratch_busy = 0;
        s->scratch_end_us = mono_us();
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (rc < 0)
            return rc;
    }
    return IN(io)->sync(IN(io), fd, k);
}

static int s_fallocate(struct store_io *io, int fd, uint64_t o, uint64_t l)
{
    return IN(io)->fallocate(IN(io), fd, o, l);
}

static int s_ftruncate(struct store_io *io, int fd, uint64_t l)
{
    return IN(io)->ftruncate(IN(io), fd, l);
}

static int s_renameat(struct store_io *io, int d, const char *a, const char *b)
{
    return IN(io)->renameat(IN(io), d, a, b);
}

static int s_unlinkat(struct store_io *io, int d, const char *n)
{
    return IN(io)->unlinkat(IN(io), d, n);
}

static int s_fstatvfs(struct store_io *io, int fd, uint64_t *a)
{
    return IN(io)->fstatvfs(IN(io), fd, a);
}

static void *s_frame_alloc(struct store_io *io)
{
    return IN(io)->frame_alloc(IN(io));
}

static int s_frame_free(struct store_io *io, void *frame)
{
    return IN(io)->frame_free(IN(io), frame);
}

static unsigned s_frames_in_use(struct store_io *io)
{
    return IN(io)->frames_in_use(IN(io));
}

static void s_destroy(struct store_io *io)
{
    struct slowio *s = SL(io);
    s->inner->destroy(s->inner);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* The backend $BLOBD_TEST_BACKEND names, built by hand so it can be
 * wrapped. */
static struct store_io *backend_new(void)
{
    if (tu_backend() != STORE_BACKEND_IO_URING)
        return store_io_pread_new();
    struct store_io_uring_opts o;
    memset(&o, 0, sizeof(o));
    o.fixed_frames = 32;
    int rc = 0;
    char err[256] = "";
    struct store_io *io = store_io_uring_new(&o, &rc, err, sizeof(err));
    if (!io)
        fail_msg("store_io_uring_new: %s (%s)", err, store_strerror(rc));
    return io;
}

static struct slowio *slowio_new(void)
{
    struct slowio *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->inner = backend_new();
    s->tmp_fd = -1;
    s->scratch_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    cond_init_mono(&s->cv);
    s->io.name = "slowio";
    s->io.openat = s_openat;
    s->io.close = s_close;
    s->io.pread = s_pread;
    s->io.pwritev = s_pwritev;
    s->io.sync = s_sync;
    s->io.fallocate = s_fallocate;
    s->io.ftruncate = s_ftruncate;
    s->io.renameat = s_renameat;
    s->io.unlinkat = s_unlinkat;
    s->io.fstatvfs = s_fstatvfs;
    s->io.destroy = s_destroy;
    if (s->inner->frame_alloc)
        s->io.frame_alloc = s_frame_alloc;
    if (s->inner->frame_free)
        s->io.frame_free = s_frame_free;
    if (s->inner->frames_in_use)
        s->io.frames_in_use = s_frames_in_use;
    return s;
}

static void slowio_block(struct slowio *s, int on)
{
    pthread_mutex_lock(&s->mu);
    s->block = on;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int slowio_blocked(struct slowio *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->blocked;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* 1 once a thread is blocked in sync() (within ms). */
static int slowio_wait_blocked(struct slowio *s, unsigned ms)
{
    struct timespec ts;
    deadline_ts(&ts, ms);
    pthread_mutex_lock(&s->mu);
    while (s->blocked == 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    int n = s->blocked;
    pthread_mutex_unlock(&s->mu);
    return n > 0;
}

static unsigned slowio_tmp_writes(struct slowio *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->tmp_writes;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* 1 once a pwritev of manifest.bin.tmp began (within ms). */
static int slowio_wait_tmp(struct slowio *s, unsigned ms)
{
    struct timespec ts;
    deadline_ts(&ts, ms);
    pthread_mutex_lock(&s->mu);
    while (s->tmp_writes == 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    unsigned n = s->tmp_writes;
    pthread_mutex_unlock(&s->mu);
    return n > 0;
}

static struct store *open_slow(const char *dir, struct slowio *s,
                               unsigned queue_max, unsigned job_timeout_ms)
{
    struct store_config cfg;
    cfg_async(&cfg, dir);
    cfg.io = &s->io;
    cfg.queue_max = queue_max;
    cfg.job_timeout_ms = job_timeout_ms;
    return open_cfg(&cfg);
}

/* Stall the I/O thread: a durable write whose group commit blocks in
 * sync().  Returns once the I/O thread is blocked there. */
static void stall_io_thread(struct store *st, struct slowio *s,
                            const uint8_t *g, void *frame, struct waiter *w)
{
    tu_pattern(frame, 4096, 999);
    slowio_block(s, 1);
    assert_int_equal(
        store_submit_write(st, g, frame, 4096, NULL, 1, on_done, w), 0);
    if (!slowio_wait_blocked(s, WAIT_MS))
        fail_msg("the I/O thread never reached sync()");
}

/* ---- 1. a non-durable write, then a flush ---- */

static void test_nondurable_write(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-nd");
    struct store *st = open_async(dir);
    uint8_t g[16];
    tu_guid_num(g, 1);
    void *f = store_frame_alloc(st);
    void *rf = store_frame_alloc(st);
    assert_non_null(f);
    assert_non_null(rf);
    tu_pattern(f, 10000, 11);

    struct waiter w;
    waiter_init(&w);
    assert_int_equal(store_submit_write(st, g, f, 10000, NULL, 0, on_done, &w),
                     0);
    struct store_completion c = wait_done(&w, "non-durable write");
    assert_int_equal(c.outcome, STORE_OUT_CREATED);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.durable, 0);
    assert_true(c.version != 0);
    struct store_stats s = stats_of(st);
    assert_int_equal(store_version_generation(c.version), s.generation);

    /* Readable as soon as the callback ran. */
    struct store_blob_info info;
    assert_int_equal(store_read(st, g, rf, &info), 0);
    assert_int_equal(info.len, 10000);
    assert_true(info.version == c.version);
    assert_true(tu_pattern_ok(rf, 10000, 11));
    assert_int_equal(store_needs_flush(st), 1);

    struct store_completion fc = do_flush(st);
    assert_int_equal(fc.durable, 1);
    assert_true(fc.flush.records >= 1);
    assert_int_equal(store_needs_flush(st), 0);
    s = stats_of(st);
    assert_true(s.flushes >= 1);
    /* Still exactly one completion of the write. */
    sleep_ms(20);
    assert_int_equal(waiter_calls(&w), 1);
    waiter_destroy(&w);
    store_frame_free(st, f);
    store_frame_free(st, rf);
    store_close(st);

    st = open_async(dir);
    tu_check(st, g, 10000, 11);
    assert_int_equal(store_stat(st, g, &info), 0);
    assert_true(info.version == c.version);
    store_close(st);
    tu_rmtree(dir);
}

/* Once 16 MiB were written since the last data sync, the I/O thread syncs
 * blobs.dat on its own, without committing the records: they stay
 * pending, and the flush that commits them has less to sync. */
static void test_data_sync_without_commit(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-ds");
    struct store_config cfg;
    cfg_async(&cfg, dir);
    cfg.flush_interval_ms = 0;
    struct store *st = open_cfg(&cfg);
    struct store_stats s0 = stats_of(st);
    enum { N = 40, LEN = STORE_FRAME_SIZE };
    uint8_t g[N][16];
    for (int i = 0; i < N; i++) {
        tu_guid_num(g[i], 100 + (uint64_t)i);
        put_async(st, g[i], LEN, 200 + (uint64_t)i, 0);
    }
    struct store_stats s = stats_of(st);
    /* One sync after the 32nd write (16 MiB); 8 writes since. */
    assert_int_equal(s.data_syncs - s0.data_syncs, 1);
    assert_int_equal(s.log_syncs, s0.log_syncs);
    assert_int_equal(s.flushes, s0.flushes);
    assert_int_equal(s.unflushed_bytes, 8 * (uint64_t)LEN);
    assert_int_equal(s.unflushed_blobs, N);
    assert_int_equal(s.pending_deltas, N);
    assert_int_equal(store_needs_flush(st), 1);

    struct store_completion fc = do_flush(st);
    assert_int_equal(fc.flush.records, N);
    assert_int_equal(fc.flush.data_synced, 1);
    s = stats_of(st);
    assert_int_equal(s.data_syncs - s0.data_syncs, 2);
    assert_int_equal(s.log_syncs, s0.log_syncs + 1);
    assert_int_equal(store_needs_flush(st), 0);
    store_close(st);

    st = open_async(dir);
    for (int i = 0; i < N; i++)
        tu_check(st, g[i], LEN, 200 + (uint64_t)i);
    store_close(st);
    tu_rmtree(dir);
}

/* A failed data sync of its own is sticky like any failed sync (G3):
 * later writes are refused and the store says why. */
static void test_data_sync_failure_is_sticky(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-dsfail");
    struct slowio *sl = slowio_new();
    struct store_config cfg;
    cfg_async(&cfg, dir);
    cfg.io = &sl->io;
    cfg.flush_interval_ms = 0;
    struct store *st = open_cfg(&cfg);
    pthread_mutex_lock(&sl->mu);
    sl->fail_sync = 1;
    pthread_mutex_unlock(&sl->mu);
    uint8_t g[16];
    for (int i = 0; i < 32; i++) {
        tu_guid_num(g, 300 + (uint64_t)i);
        put_async(st, g, STORE_FRAME_SIZE, 400 + (uint64_t)i, 0);
    }
    /* The sync runs after the 32nd write's round: wait for it. */
    for (int i = 0; i < 200 && !store_failed(st); i++)
        sleep_ms(10);
    assert_int_not_equal(store_failed(st), 0);
    struct store_stats s = stats_of(st);
    assert_non_null(strstr(s.last_sticky_error, "fdatasync"));
    assert_non_null(strstr(s.last_sticky_error, "blobs.dat"));
    void *f = store_frame_alloc(st);
    assert_non_null(f);
    tu_pattern(f, 100, 1);
    tu_guid_num(g, 999);
    struct store_completion c = do_write(st, g, f, 100, NULL, 0);
    assert_int_equal(c.outcome, STORE_OUT_STORE_FAILED);
    store_frame_free(st, f);
    store_close(st);
    sl->io.destroy(&sl->io);
    tu_rmtree(dir);
}

/* ---- 2. durable writes share group commits ---- */

#define GC_THREADS 32

struct gc_arg {
    struct store *st;
    pthread_barrier_t *bar;
    uint8_t guid[16];
    void *frame;
    uint32_t len;
    int submit_rc;
    struct waiter w;
};

static void *gc_main(void *p)
{
    struct gc_arg *a = p;
    pthread_barrier_wait(a->bar);
    a->submit_rc = store_submit_write(a->st, a->guid, a->frame, a->len, NULL, 1,
                                      on_done, &a->w);
    return NULL;
}

static void test_group_commit(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-gc");
    struct store *st = open_async(dir);
    struct gc_arg a[GC_THREADS];
    pthread_t th[GC_THREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, GC_THREADS);
    for (int i = 0; i < GC_THREADS; i++) {
        a[i].st = st;
        a[i].bar = &bar;
        tu_guid_num(a[i].guid, 100 + (uint64_t)i);
        a[i].frame = store_frame_alloc(st);
        assert_non_null(a[i].frame);
        a[i].len = 1000u + 4096u * (uint32_t)(i % 4);
        tu_pattern(a[i].frame, a[i].len, 200 + (uint64_t)i);
        a[i].submit_rc = -1;
        waiter_init(&a[i].w);
    }
    uint64_t flushes0 = stats_of(st).flushes;
    for (int i = 0; i < GC_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, gc_main, &a[i]), 0);
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < GC_THREADS; i++) {
        assert_int_equal(a[i].submit_rc, 0);
        struct store_completion c = wait_done(&a[i].w, "durable write");
        assert_int_equal(c.outcome, STORE_OUT_CREATED);
        assert_int_equal(c.rc, 0);
        assert_int_equal(c.durable, 1);
        assert_true(c.version != 0);
    }
    uint64_t commits = stats_of(st).flushes - flushes0;
    print_message("%d durable writes made %" PRIu64 " group commits\n",
                  GC_THREADS, commits);
    assert_true(commits >= 1);
    assert_true(commits < GC_THREADS);
    assert_int_equal(store_needs_flush(st), 0);
    for (int i = 0; i < GC_THREADS; i++) {
        store_frame_free(st, a[i].frame);
        waiter_destroy(&a[i].w);
    }
    pthread_barrier_destroy(&bar);
    store_close(st); /* no flush: durable means durable */

    st = open_async(dir);
    assert_int_equal(store_count(st), GC_THREADS);
    for (int i = 0; i < GC_THREADS; i++)
        tu_check(st, a[i].guid, a[i].len, 200 + (uint64_t)i);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- 3. deletes, preconditions, order ---- */

static void test_delete_precond_order(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-del");
    struct store *st = open_async(dir);
    uint8_t a[16], b[16], c[16], d[16], e[16], g[16];
    tu_guid_num(a, 1);
    tu_guid_num(b, 2);
    tu_guid_num(c, 3);
    tu_guid_num(d, 4);
    tu_guid_num(e, 5);
    tu_guid_num(g, 6);
    struct store_completion r;

    /* Durable delete. */
    put_async(st, a, 5000, 1, 0);
    r = do_delete(st, a, NULL, 1);
    assert_int_equal(r.outcome, STORE_OUT_DELETED);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.durable, 1);
    check_absent(st, a);
    assert_int_equal(store_needs_flush(st), 0);

    /* Non-durable delete. */
    put_async(st, b, 5000, 2, 1);
    r = do_delete(st, b, NULL, 0);
    assert_int_equal(r.outcome, STORE_OUT_DELETED);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.durable, 0);
    check_absent(st, b);
    assert_int_equal(store_needs_flush(st), 1);

    /* Not found, durable or not: never durable, nothing to wait for. */
    r = do_delete(st, c, NULL, 0);
    assert_int_equal(r.outcome, STORE_OUT_NOT_FOUND);
    assert_int_equal(r.rc, STORE_E_NOT_FOUND);
    assert_int_equal(r.durable, 0);
    r = do_delete(st, c, NULL, 1);
    assert_int_equal(r.outcome, STORE_OUT_NOT_FOUND);
    assert_int_equal(r.rc, STORE_E_NOT_FOUND);
    assert_int_equal(r.durable, 0);

    /* Write preconditions. */
    void *f = store_frame_alloc(st);
    assert_non_null(f);
    uint64_t v1 = put_async(st, d, 3000, 41, 0);
    struct store_precond absent = {STORE_PRE_ABSENT, 0};
    tu_pattern(f, 3000, 42);
    r = do_write(st, d, f, 3000, &absent, 1);
    assert_int_equal(r.outcome, STORE_OUT_PRECONDITION_FAILED);
    assert_int_equal(r.rc, STORE_E_PRECONDITION);
    assert_int_equal(r.durable, 0);
    tu_check(st, d, 3000, 41);

    struct store_precond match = {STORE_PRE_VERSION, v1};
    tu_pattern(f, 3500, 43);
    r = do_write(st, d, f, 3500, &match, 0);
    assert_int_equal(r.outcome, STORE_OUT_REPLACED);
    assert_int_equal(r.rc, 0);
    uint64_t v2 = r.version;
    assert_true(v2 > v1);
    tu_check(st, d, 3500, 43);

    tu_pattern(f, 100, 44);
    r = do_write(st, d, f, 100, &match, 1); /* v1 is stale now */
    assert_int_equal(r.outcome, STORE_OUT_PRECONDITION_FAILED);
    assert_int_equal(r.rc, STORE_E_PRECONDITION);
    tu_check(st, d, 3500, 43);

    tu_pattern(f, 200, 45);
    r = do_write(st, e, f, 200, &absent, 0); /* create-only, absent */
    assert_int_equal(r.outcome, STORE_OUT_CREATED);
    struct store_precond exists = {STORE_PRE_EXISTS, 0};
    r = do_write(st, c, f, 200, &exists, 0);
    assert_int_equal(r.outcome, STORE_OUT_PRECONDITION_FAILED);
    check_absent(st, c);

    /* Delete preconditions. */
    r = do_delete(st, d, &match, 0); /* v1: stale */
    assert_int_equal(r.outcome, STORE_OUT_PRECONDITION_FAILED);
    assert_int_equal(r.rc, STORE_E_PRECONDITION);
    tu_check(st, d, 3500, 43);
    r = do_delete(st, d, &absent, 0);
    assert_int_equal(r.outcome, STORE_OUT_PRECONDITION_FAILED);
    r = do_delete(st, c, &exists, 0);
    assert_int_equal(r.outcome, STORE_OUT_PRECONDITION_FAILED);
    struct store_precond match2 = {STORE_PRE_VERSION, v2};
    r = do_delete(st, d, &match2, 1);
    assert_int_equal(r.outcome, STORE_OUT_DELETED);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.durable, 1);
    check_absent(st, d);

    /* Order: write g, delete g, write g, submitted back to back; once
     * all non-durable, once all durable. */
    for (int durable = 0; durable <= 1; durable++) {
        void *f1 = store_frame_alloc(st);
        void *f2 = store_frame_alloc(st);
        assert_non_null(f1);
        assert_non_null(f2);
        uint64_t s1 = 60 + 2 * (uint64_t)durable, s2 = s1 + 1;
        tu_pattern(f1, 7000, s1);
        tu_pattern(f2, 9000, s2);
        struct waiter w[3];
        for (int i = 0; i < 3; i++)
            waiter_init(&w[i]);
        assert_int_equal(
            store_submit_write(st, g, f1, 7000, NULL, durable, on_done, &w[0]),
            0);
        assert_int_equal(
            store_submit_delete(st, g, NULL, durable, on_done, &w[1]), 0);
        assert_int_equal(
            store_submit_write(st, g, f2, 9000, NULL, durable, on_done, &w[2]),
            0);
        struct store_completion c0 = wait_done(&w[0], "write 1");
        struct store_completion c1 = wait_done(&w[1], "delete");
        struct store_completion c2 = wait_done(&w[2], "write 2");
        assert_int_equal(c0.outcome, STORE_OUT_CREATED);
        assert_int_equal(c1.outcome, STORE_OUT_DELETED);
        assert_int_equal(c2.outcome, STORE_OUT_CREATED);
        assert_int_equal(c0.durable, durable);
        assert_int_equal(c1.durable, durable);
        assert_int_equal(c2.durable, durable);
        assert_true(c2.version > c0.version);
        struct store_blob_info info;
        assert_int_equal(store_stat(st, g, &info), 0);
        assert_true(info.version == c2.version);
        tu_check(st, g, 9000, s2);
        for (int i = 0; i < 3; i++)
            waiter_destroy(&w[i]);
        store_frame_free(st, f1);
        store_frame_free(st, f2);
        if (!durable) { /* back to absent for the durable round */
            r = do_delete(st, g, NULL, 0);
            assert_int_equal(r.outcome, STORE_OUT_DELETED);
        }
    }
    store_frame_free(st, f);
    do_flush(st);
    store_close(st);

    st = open_async(dir);
    check_absent(st, a);
    check_absent(st, b);
    check_absent(st, c);
    check_absent(st, d);
    tu_check(st, e, 200, 45);
    tu_check(st, g, 9000, 63);
    assert_int_equal(store_count(st), 2);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- 4. exactly once, under stress and at close ---- */

#define ST_THREADS 4
#define ST_OPS 2000
#define ST_GUIDS 24 /* per thread: each thread owns its GUIDs */
#define ST_WINDOW 8 /* frames in flight per thread */
#define ST_MAXLEN (3u * 4096u)
#define DRAIN_JOBS 200

enum { OP_WRITE, OP_DELETE, OP_FLUSH, OP_READ };

struct sthread;

struct sop {
    struct sthread *t;
    int kind, durable, frame; /* frame: index in the window, or -1 */
    int accepted;
    enum store_outcome expect; /* writes and deletes */
    uint32_t len;              /* reads: the asked range */
    atomic_int calls;
};

struct stress {
    struct store *st;
    atomic_uint_fast64_t accepted, completed, bad, doubles, overloaded;
    pthread_mutex_t msg_mu;
    char msg[256];
};

struct sthread {
    struct stress *s;
    int id;
    uint64_t rng;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void *frames[ST_WINDOW];
    int free_idx[ST_WINDOW];
    int nfree;
    struct sop ops[ST_OPS];
    /* the expected state of each GUID after the thread's accepted ops */
    int exists[ST_GUIDS];
    uint32_t len[ST_GUIDS];
    uint64_t seed[ST_GUIDS];
};

static void st_bad(struct stress *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void st_bad(struct stress *s, const char *fmt, ...)
{
    if (atomic_fetch_add(&s->bad, 1) != 0)
        return;
    pthread_mutex_lock(&s->msg_mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof(s->msg), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&s->msg_mu);
}

static void st_guid(uint8_t g[16], int thread, int i)
{
    tu_guid_num(g, 0x10000u * (uint64_t)(thread + 1) + (uint64_t)i);
}

static void op_finish(struct sop *op)
{
    struct sthread *t = op->t;
    if (atomic_fetch_add(&op->calls, 1) != 0) {
        atomic_fetch_add(&t->s->doubles, 1);
        return;
    }
    if (op->frame >= 0) {
        pthread_mutex_lock(&t->mu);
        t->free_idx[t->nfree++] = op->frame;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
    atomic_fetch_add(&t->s->completed, 1);
}

static void st_done(void *arg, const struct store_completion *c)
{
    struct sop *op = arg;
    struct stress *s = op->t->s;
    int ok;
    switch (op->kind) {
    case OP_WRITE:
        ok = c->outcome == op->expect && c->rc == 0 && c->version != 0 &&
             c->durable == op->durable;
        break;
    case OP_DELETE:
        ok = c->outcome == op->expect &&
             (op->expect == STORE_OUT_DELETED
                  ? c->rc == 0 && c->durable == op->durable
                  : c->rc == STORE_E_NOT_FOUND && c->durable == 0);
        break;
    default:
        ok = c->outcome == STORE_OUT_NONE && c->rc == 0 && c->durable == 1;
        break;
    }
    if (!ok)
        st_bad(s,
               "thread %d op %d (kind %d, durable %d): outcome %s rc %s "
               "durable %d, expected %s",
               op->t->id, (int)(op - op->t->ops), op->kind, op->durable,
               store_outcome_name(c->outcome), store_strerror(c->rc),
               c->durable, store_outcome_name(op->expect));
    op_finish(op);
}

static void st_read_done(void *arg, const struct store_read_result *r)
{
    struct sop *op = arg;
    int ok = r->rc == STORE_E_NOT_FOUND || r->rc == STORE_E_RANGE ||
             (r->rc == 0 && (op->len == STORE_READ_ALL ? r->len == r->info.len
                                                       : r->len == op->len));
    if (!ok)
        st_bad(op->t->s, "thread %d op %d: read rc %s len %" PRIu32, op->t->id,
               (int)(op - op->t->ops), store_strerror(r->rc), r->len);
    op_finish(op);
}

static int take_frame(struct sthread *t)
{
    pthread_mutex_lock(&t->mu);
    while (t->nfree == 0)
        pthread_cond_wait(&t->cv, &t->mu);
    int i = t->free_idx[--t->nfree];
    pthread_mutex_unlock(&t->mu);
    return i;
}

static void put_frame(struct sthread *t, int i)
{
    pthread_mutex_lock(&t->mu);
    t->free_idx[t->nfree++] = i;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void *st_main(void *p)
{
    struct sthread *t = p;
    struct stress *s = t->s;
    for (int i = 0; i < ST_OPS; i++) {
        struct sop *op = &t->ops[i];
        uint64_t r = tu_rand(&t->rng);
        unsigned pick = (unsigned)(r % 100);
        int gi = (int)((r >> 8) % ST_GUIDS);
        uint8_t g[16];
        st_guid(g, t->id, gi);
        op->t = t;
        op->frame = -1;
        op->kind = pick < 55   ? OP_WRITE
                   : pick < 75 ? OP_DELETE
                   : pick < 85 ? OP_FLUSH
                               : OP_READ;
        op->durable = (r >> 16) % 100 < 30;
        uint32_t len = (uint32_t)((r >> 24) % (ST_MAXLEN + 1));
        if ((r >> 40) % 8 == 0)
            len = 0;
        uint64_t seed = (uint64_t)t->id << 32 | (uint64_t)i;
        if (op->kind == OP_WRITE) {
            op->expect = t->exists[gi] ? STORE_OUT_REPLACED : STORE_OUT_CREATED;
            op->frame = take_frame(t);
            tu_pattern(t->frames[op->frame], len, seed);
        } else if (op->kind == OP_DELETE) {
            op->expect =
                t->exists[gi] ? STORE_OUT_DELETED : STORE_OUT_NOT_FOUND;
        } else if (op->kind == OP_READ) {
            op->frame = take_frame(t);
            op->len = (r >> 44) % 2 ? STORE_READ_ALL : 100;
        }
        int rc;
        for (;;) {
            switch (op->kind) {
            case OP_WRITE:
                rc = store_submit_write(s->st, g, t->frames[op->frame], len,
                                        NULL, op->durable, st_done, op);
                break;
            case OP_DELETE:
                rc = store_submit_delete(s->st, g, NULL, op->durable, st_done,
                                         op);
                break;
            case OP_FLUSH:
                rc = store_submit_flush(s->st, st_done, op);
                break;
            default:
                rc = store_submit_read(s->st, g, 0, op->len,
                                       t->frames[op->frame], st_read_done, op);
                break;
            }
            if (rc != STORE_E_OVERLOADED)
                break;
            atomic_fetch_add(&s->overloaded, 1);
            sleep_ms(1);
        }
        if (rc != 0) {
            st_bad(s, "thread %d op %d: submit: %s", t->id, i,
                   store_strerror(rc));
            if (op->frame >= 0)
                put_frame(t, op->frame);
            continue;
        }
        op->accepted = 1;
        atomic_fetch_add(&s->accepted, 1);
        if (op->kind == OP_WRITE) {
            t->exists[gi] = 1;
            t->len[gi] = len;
            t->seed[gi] = seed;
        } else if (op->kind == OP_DELETE) {
            t->exists[gi] = 0;
        }
    }
    return NULL;
}

/* The jobs submitted right before store_close. */
struct drain {
    struct sop ops[DRAIN_JOBS];
    void *frames[DRAIN_JOBS];
    struct sthread t; /* owner of the ops (no frame window) */
};

static void test_exactly_once(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-once");
    struct store *st = open_async(dir);
    struct stress s;
    memset(&s, 0, sizeof(s));
    s.st = st;
    pthread_mutex_init(&s.msg_mu, NULL);
    struct sthread *t[ST_THREADS];
    pthread_t th[ST_THREADS];
    uint64_t seed = tu_seed();
    for (int i = 0; i < ST_THREADS; i++) {
        t[i] = calloc(1, sizeof(*t[i]));
        assert_non_null(t[i]);
        t[i]->s = &s;
        t[i]->id = i;
        t[i]->rng = seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1));
        pthread_mutex_init(&t[i]->mu, NULL);
        pthread_cond_init(&t[i]->cv, NULL);
        for (int k = 0; k < ST_WINDOW; k++) {
            t[i]->frames[k] = store_frame_alloc(st);
            assert_non_null(t[i]->frames[k]);
            t[i]->free_idx[t[i]->nfree++] = k;
        }
    }
    uint64_t t0 = mono_ms();
    for (int i = 0; i < ST_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, st_main, t[i]), 0);
    for (int i = 0; i < ST_THREADS; i++)
        pthread_join(th[i], NULL);
    while (atomic_load(&s.completed) < atomic_load(&s.accepted) &&
           mono_ms() - t0 < 30000)
        sleep_ms(5);
    sleep_ms(50); /* room for a stray second completion */
    struct store_stats ss = stats_of(st);
    print_message(
        "%" PRIu64 " jobs accepted, %" PRIu64 " completed, %" PRIu64
        " refused as overloaded (retried), %" PRIu64 " group commits, %" PRIu64
        " ms\n",
        (uint64_t)atomic_load(&s.accepted), (uint64_t)atomic_load(&s.completed),
        (uint64_t)atomic_load(&s.overloaded), ss.flushes, mono_ms() - t0);
    if (atomic_load(&s.bad))
        fail_msg("%" PRIu64 " bad completions; first: %s",
                 (uint64_t)atomic_load(&s.bad), s.msg);
    assert_int_equal(atomic_load(&s.doubles), 0);
    assert_int_equal(atomic_load(&s.accepted), ST_THREADS * ST_OPS);
    assert_int_equal(atomic_load(&s.completed), atomic_load(&s.accepted));
    for (int i = 0; i < ST_THREADS; i++)
        for (int k = 0; k < ST_OPS; k++)
            if (atomic_load(&t[i]->ops[k].calls) != t[i]->ops[k].accepted)
                fail_msg("thread %d op %d: %d completions", i, k,
                         atomic_load(&t[i]->ops[k].calls));
    assert_int_equal(ss.queue_depth, 0);

    /* The final state follows each thread's submission order (A2). */
    do_flush(st);
    for (int i = 0; i < ST_THREADS; i++)
        for (int gi = 0; gi < ST_GUIDS; gi++) {
            uint8_t g[16];
            st_guid(g, i, gi);
            if (t[i]->exists[gi])
                tu_check(st, g, t[i]->len[gi], t[i]->seed[gi]);
            else
                check_absent(st, g);
        }
    for (int i = 0; i < ST_THREADS; i++)
        for (int k = 0; k < ST_WINDOW; k++)
            store_frame_free(st, t[i]->frames[k]);

    /* A4: store_close drains.  Jobs k % 4: 0, 1 write GUID k; 2 deletes
     * GUID k - 2; 3 flushes.  Durability alternates every 4 jobs. */
    struct drain *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->t.s = &s;
    d->t.id = 99;
    uint64_t before = atomic_load(&s.completed);
    for (int k = 0; k < DRAIN_JOBS; k++) {
        struct sop *op = &d->ops[k];
        uint8_t g[16];
        op->t = &d->t;
        op->frame = -1;
        op->durable = (k / 4) % 2;
        int rc;
        switch (k % 4) {
        case 0:
        case 1:
            tu_guid_num(g, 0x900000u + (uint64_t)k);
            d->frames[k] = aligned_alloc(STORE_PAGE_SIZE, STORE_FRAME_SIZE);
            assert_non_null(d->frames[k]);
            tu_pattern(d->frames[k], 4096, (uint64_t)k);
            op->kind = OP_WRITE;
            op->expect = STORE_OUT_CREATED;
            rc = store_submit_write(st, g, d->frames[k], 4096, NULL,
                                    op->durable, st_done, op);
            break;
        case 2:
            tu_guid_num(g, 0x900000u + (uint64_t)k - 2);
            op->kind = OP_DELETE;
            op->expect = STORE_OUT_DELETED;
            rc = store_submit_delete(st, g, NULL, op->durable, st_done, op);
            break;
        default:
            op->kind = OP_FLUSH;
            rc = store_submit_flush(st, st_done, op);
            break;
        }
        assert_int_equal(rc, 0);
        op->accepted = 1;
    }
    store_close(st);
    uint64_t drained = atomic_load(&s.completed) - before;
    print_message("store_close returned after %" PRIu64 " of %d callbacks\n",
                  drained, DRAIN_JOBS);
    if (atomic_load(&s.bad))
        fail_msg("bad completion at close: %s", s.msg);
    assert_int_equal(drained, DRAIN_JOBS);
    for (int k = 0; k < DRAIN_JOBS; k++)
        assert_int_equal(atomic_load(&d->ops[k].calls), 1);
    assert_int_equal(atomic_load(&s.doubles), 0);
    for (int k = 0; k < DRAIN_JOBS; k++)
        free(d->frames[k]);

    /* The last job was a flush: everything before it is durable. */
    st = open_async(dir);
    for (int k = 0; k < DRAIN_JOBS; k += 4) {
        uint8_t g[16];
        tu_guid_num(g, 0x900000u + (uint64_t)k);
        check_absent(st, g);
        tu_guid_num(g, 0x900000u + (uint64_t)k + 1);
        tu_check(st, g, 4096, (uint64_t)k + 1);
    }
    for (int i = 0; i < ST_THREADS; i++)
        for (int gi = 0; gi < ST_GUIDS; gi++) {
            uint8_t g[16];
            st_guid(g, i, gi);
            if (t[i]->exists[gi])
                tu_check(st, g, t[i]->len[gi], t[i]->seed[gi]);
            else
                check_absent(st, g);
        }
    store_close(st);
    for (int i = 0; i < ST_THREADS; i++) {
        pthread_mutex_destroy(&t[i]->mu);
        pthread_cond_destroy(&t[i]->cv);
        free(t[i]);
    }
    free(d);
    pthread_mutex_destroy(&s.msg_mu);
    tu_rmtree(dir);
}

/* ---- 5. a full queue refuses at once ---- */

#define OV_QUEUE 8u

static void test_overload(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-ovl");
    struct slowio *sl = slowio_new();
    struct store *st = open_slow(dir, sl, OV_QUEUE, 0);
    uint8_t g0[16];
    tu_guid_num(g0, 1);
    void *f = store_frame_alloc(st);
    assert_non_null(f);
    struct waiter w0;
    waiter_init(&w0);
    stall_io_thread(st, sl, g0, f, &w0);

    struct waiter w[OV_QUEUE + 2];
    unsigned accepted = 0, tries = 0;
    int refused = 0;
    for (; tries < OV_QUEUE + 2; tries++) {
        uint8_t g[16];
        tu_guid_num(g, 100 + tries);
        waiter_init(&w[tries]);
        int rc =
            store_submit_write(st, g, NULL, 0, NULL, 0, on_done, &w[tries]);
        if (rc == STORE_E_OVERLOADED) {
            refused = 1;
            tries++;
            break;
        }
        assert_int_equal(rc, 0);
        accepted++;
    }
    print_message("queue_max %u: %u accepted, then %s\n", OV_QUEUE, accepted,
                  refused ? "overloaded" : "never refused");
    assert_true(refused);
    assert_true(accepted <= OV_QUEUE);
    struct store_stats s = stats_of(st);
    assert_int_equal(s.queue_depth, accepted + 1);
    assert_int_equal(slowio_blocked(sl), 1);
    assert_int_equal(waiter_calls(&w0), 0);

    slowio_block(sl, 0);
    struct store_completion c = wait_done(&w0, "stalled durable write");
    assert_int_equal(c.outcome, STORE_OUT_CREATED);
    assert_int_equal(c.durable, 1);
    for (unsigned i = 0; i < accepted; i++) {
        c = wait_done(&w[i], "queued write");
        assert_int_equal(c.outcome, STORE_OUT_CREATED);
        assert_int_equal(c.durable, 0);
    }
    /* The refused one never completes. */
    sleep_ms(50);
    assert_int_equal(waiter_calls(&w[tries - 1]), 0);
    for (unsigned i = 0; i < tries; i++)
        waiter_destroy(&w[i]);
    waiter_destroy(&w0);
    store_frame_free(st, f);
    store_close(st);
    sl->io.destroy(&sl->io);
    tu_rmtree(dir);
}

/* ---- 6. queued jobs past their deadline complete as overloaded ---- */

static void test_deadline(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-ddl");
    struct slowio *sl = slowio_new();
    struct store *st = open_slow(dir, sl, 0, 100);
    uint8_t g0[16];
    tu_guid_num(g0, 1);
    void *f = store_frame_alloc(st);
    assert_non_null(f);
    struct waiter w0, w[5];
    waiter_init(&w0);
    stall_io_thread(st, sl, g0, f, &w0);

    uint64_t t0 = mono_ms();
    for (int i = 0; i < 5; i++) {
        uint8_t g[16];
        tu_guid_num(g, 10 + (uint64_t)i);
        waiter_init(&w[i]);
        assert_int_equal(
            store_submit_write(st, g, NULL, 0, NULL, i % 2, on_done, &w[i]), 0);
    }
    /* The timer thread expires them while the I/O thread is stuck. */
    for (int i = 0; i < 5; i++) {
        uint64_t spent = mono_ms() - t0;
        unsigned left = spent < 400 ? (unsigned)(400 - spent) : 1;
        int n = waiter_wait(&w[i], left);
        if (n != 1)
            fail_msg("job %d: %d completions after %" PRIu64 " ms", i, n,
                     mono_ms() - t0);
        struct store_completion c = wait_done(&w[i], "expired write");
        assert_int_equal(c.outcome, STORE_OUT_OVERLOADED);
        assert_int_equal(c.rc, STORE_E_OVERLOADED);
        assert_int_equal(c.durable, 0);
    }
    print_message("5 queued jobs expired after %" PRIu64 " ms\n",
                  mono_ms() - t0);
    assert_int_equal(slowio_blocked(sl), 1);
    assert_int_equal(waiter_calls(&w0), 0);

    slowio_block(sl, 0);
    struct store_completion c = wait_done(&w0, "stalled durable write");
    assert_int_equal(c.outcome, STORE_OUT_CREATED);
    assert_int_equal(c.durable, 1);
    /* Expired jobs never ran. */
    for (int i = 0; i < 5; i++) {
        uint8_t g[16];
        tu_guid_num(g, 10 + (uint64_t)i);
        check_absent(st, g);
        assert_int_equal(waiter_calls(&w[i]), 1);
        waiter_destroy(&w[i]);
    }
    tu_check(st, g0, 4096, 999);
    waiter_destroy(&w0);
    store_frame_free(st, f);
    store_close(st);
    sl->io.destroy(&sl->io);
    tu_rmtree(dir);
}

/* ---- 7. reads do not wait behind an fsync (G4) ---- */

static void test_reads_during_sync(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-rd");
    struct slowio *sl = slowio_new();
    struct store *st = open_slow(dir, sl, 0, 0);
    uint8_t gx[16], gy[16];
    tu_guid_num(gx, 1);
    tu_guid_num(gy, 2);
    const uint32_t xlen = 100000;
    put_async(st, gx, xlen, 77, 0);
    do_flush(st);

    void *fy = store_frame_alloc(st);
    void *f1 = store_frame_alloc(st);
    void *f2 = store_frame_alloc(st);
    void *f3 = store_frame_alloc(st);
    assert_non_null(fy);
    assert_non_null(f1);
    assert_non_null(f2);
    assert_non_null(f3);
    void *expect = malloc(xlen);
    assert_non_null(expect);
    tu_pattern(expect, xlen, 77);
    struct waiter wy, r1, r2;
    waiter_init(&wy);
    waiter_init(&r1);
    waiter_init(&r2);
    stall_io_thread(st, sl, gy, fy, &wy);

    uint64_t t0 = mono_ms();
    assert_int_equal(
        store_submit_read(st, gx, 0, STORE_READ_ALL, f1, on_read, &r1), 0);
    assert_int_equal(store_submit_read(st, gx, 8192, 4096, f2, on_read, &r2),
                     0);
    struct store_read_result rr = wait_read(&r1, 200, "full read");
    assert_int_equal(rr.rc, 0);
    assert_int_equal(rr.len, xlen);
    assert_int_equal(rr.info.len, xlen);
    assert_ptr_equal(rr.data, f1);
    assert_memory_equal(rr.data, expect, xlen);
    rr = wait_read(&r2, 200, "range read");
    assert_int_equal(rr.rc, 0);
    assert_int_equal(rr.len, 4096);
    assert_memory_equal(rr.data, (uint8_t *)expect + 8192, 4096);
    uint64_t async_ms = mono_ms() - t0;

    t0 = mono_ms();
    struct store_blob_info info;
    assert_int_equal(store_read(st, gx, f3, &info), 0);
    assert_int_equal(info.len, xlen);
    assert_memory_equal(f3, expect, xlen);
    /* The stalled write itself completed its data write: readable. */
    assert_int_equal(store_read(st, gy, f3, &info), 0);
    assert_int_equal(info.len, 4096);
    assert_true(tu_pattern_ok(f3, 4096, 999));
    uint64_t sync_ms = mono_ms() - t0;
    print_message("reads with the I/O thread in sync: async %" PRIu64
                  " ms, store_read %" PRIu64 " ms\n",
                  async_ms, sync_ms);
    assert_true(sync_ms < 200);
    assert_int_equal(slowio_blocked(sl), 1);
    assert_int_equal(waiter_calls(&wy), 0);

    slowio_block(sl, 0);
    struct store_completion c = wait_done(&wy, "stalled durable write");
    assert_int_equal(c.outcome, STORE_OUT_CREATED);
    assert_int_equal(c.durable, 1);
    waiter_destroy(&wy);
    waiter_destroy(&r1);
    waiter_destroy(&r2);
    free(expect);
    store_frame_free(st, fy);
    store_frame_free(st, f1);
    store_frame_free(st, f2);
    store_frame_free(st, f3);
    store_close(st);
    sl->io.destroy(&sl->io);
    tu_rmtree(dir);
}

/* ---- 7b. reads do not wait behind the backend's own fsync (G4) ----
 * As 7, but the I/O thread is inside the backend's sync() (a long
 * fdatasync of a file with much dirty data, issued through the same
 * backend), not stalled in the wrapper above it.  The reads go into
 * frames from store_frame_alloc (registered frames on io_uring). */

#define SCRATCH_MIB 96u
#define SCRATCH_MARGIN_US 30000u /* a read unblocked takes far less */

static void test_reads_during_backend_sync(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-rds");
    char *sdir = tu_mkdtemp("async-rds-scratch");
    struct slowio *sl = slowio_new();
    /* Buffered: the reads below come from the page cache, so a device busy
     * with the fdatasync's writeback does not slow them; only a lock can. */
    struct store_config cfg;
    cfg_async(&cfg, dir);
    cfg.io = &sl->io;
    cfg.direct = STORE_DIRECT_OFF;
    struct store *st = open_cfg(&cfg);
    uint8_t gx[16], gy[16];
    tu_guid_num(gx, 1);
    tu_guid_num(gy, 2);
    const uint32_t xlen = 100000;
    put_async(st, gx, xlen, 78, 0);
    do_flush(st);

    /* Dirty page cache for the long fdatasync. */
    char *spath = tu_path(sdir, "scratch");
    int sfd = open(spath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(sfd >= 0);
    size_t chunk = 1u << 20;
    uint8_t *junk = malloc(chunk);
    assert_non_null(junk);
    memset(junk, 0x5a, chunk);
    for (unsigned i = 0; i < SCRATCH_MIB; i++)
        assert_int_equal(write(sfd, junk, chunk), (ssize_t)chunk);
    free(junk);

    void *fy = store_frame_alloc(st);
    void *f1 = store_frame_alloc(st);
    void *f2 = store_frame_alloc(st);
    assert_non_null(fy);
    assert_non_null(f1);
    assert_non_null(f2);
    tu_pattern(fy, 4096, 998);
    struct waiter wy, r2;
    waiter_init(&wy);
    waiter_init(&r2);
    pthread_mutex_lock(&sl->mu);
    sl->scratch_fd = sfd;
    sl->scratch_armed = 1;
    pthread_mutex_unlock(&sl->mu);
    assert_int_equal(
        store_submit_write(st, gy, fy, 4096, NULL, 1, on_done, &wy), 0);
    struct timespec ts;
    deadline_ts(&ts, WAIT_MS);
    pthread_mutex_lock(&sl->mu);
    while (!sl->scratch_busy && !sl->scratch_end_us)
        if (pthread_cond_timedwait(&sl->cv, &sl->mu, &ts) == ETIMEDOUT)
            break;
    int started = sl->scratch_busy || sl->scratch_end_us;
    pthread_mutex_unlock(&sl->mu);
    if (!started)
        fail_msg("the I/O thread never reached sync()");
    sleep_ms(10); /* well inside the fdatasync */

    /* Both at once: the async read on a reader thread, store_read here. */
    uint64_t r0 = mono_us();
    assert_int_equal(store_submit_read(st, gx, 8192, 4096, f2, on_read, &r2),
                     0);
    struct store_blob_info info;
    assert_int_equal(store_read(st, gx, f1, &info), 0);
    uint64_t r1 = mono_us();
    struct store_read_result rr = wait_read(&r2, WAIT_MS, "range read");
    uint64_t r2_end = mono_us();
    assert_int_equal(info.len, xlen);
    assert_true(tu_pattern_ok(f1, xlen, 78));
    assert_int_equal(rr.rc, 0);
    assert_int_equal(rr.len, 4096);
    void *expect = malloc(xlen);
    assert_non_null(expect);
    tu_pattern(expect, xlen, 78);
    assert_memory_equal(rr.data, (uint8_t *)expect + 8192, 4096);
    free(expect);

    struct store_completion c = wait_done(&wy, "durable write");
    assert_int_equal(c.outcome, STORE_OUT_CREATED);
    assert_int_equal(c.durable, 1);
    pthread_mutex_lock(&sl->mu);
    uint64_t s0 = sl->scratch_start_us, s1 = sl->scratch_end_us;
    sl->scratch_fd = -1;
    pthread_mutex_unlock(&sl->mu);
    print_message("backend fdatasync of %u MiB took %" PRIu64
                  " ms; during it store_read took %" PRIu64
                  " us, store_submit_read (ended by) %" PRIu64
                  " us; the reads ended %s the fdatasync\n",
                  SCRATCH_MIB, (s1 - s0) / 1000, r1 - r0, r2_end - r0,
                  r1 <= s1 && r2_end <= s1 ? "before" : "after");
    char waited[320] = "";
    if (s1 < r0 + SCRATCH_MARGIN_US)
        print_message("the fdatasync was too short to tell; not judged\n");
    else if (r1 > s1 || r2_end > s1)
        snprintf(waited, sizeof(waited),
                 "reads waited for the backend's fdatasync (G4): store_read "
                 "took %" PRIu64 " us and ended %" PRId64
                 " us after it ended; store_submit_read ended %" PRId64
                 " us after it ended",
                 r1 - r0, (int64_t)(r1 - s1), (int64_t)(r2_end - s1));
    waiter_destroy(&wy);
    waiter_destroy(&r2);
    store_frame_free(st, fy);
    store_frame_free(st, f1);
    store_frame_free(st, f2);
    store_close(st);
    sl->io.destroy(&sl->io);
    close(sfd);
    unlink(spath);
    free(spath);
    tu_rmtree(sdir);
    tu_rmtree(dir);
    if (waited[0])
        fail_msg("%s", waited);
}

/* ---- 8. pressure: 4096 pending deltas make a flush ---- */

#define PR_WRITES 4100

struct counter {
    atomic_uint_fast64_t done, bad;
};

static void count_created(void *arg, const struct store_completion *c)
{
    struct counter *k = arg;
    if (c->outcome != STORE_OUT_CREATED || c->rc != 0)
        atomic_fetch_add(&k->bad, 1);
    atomic_fetch_add(&k->done, 1);
}

static void test_pressure_flush(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-prs");
    struct store_config cfg;
    cfg_async(&cfg, dir);
    cfg.flush_interval_ms = 0;
    struct store *st = open_cfg(&cfg);
    struct counter k;
    atomic_init(&k.done, 0);
    atomic_init(&k.bad, 0);
    uint64_t flushes0 = stats_of(st).flushes;
    uint64_t refused = 0;
    for (uint64_t i = 0; i < PR_WRITES; i++) {
        uint8_t g[16];
        tu_guid_num(g, i + 1);
        int rc;
        while ((rc = store_submit_write(st, g, NULL, 0, NULL, 0, count_created,
                                        &k)) == STORE_E_OVERLOADED) {
            refused++;
            sleep_ms(1);
        }
        assert_int_equal(rc, 0);
    }
    uint64_t t0 = mono_ms();
    struct store_stats s = stats_of(st);
    while ((s.flushes == flushes0 || atomic_load(&k.done) < PR_WRITES) &&
           mono_ms() - t0 < 2000) {
        sleep_ms(5);
        s = stats_of(st);
    }
    print_message("%d zero-length writes: %" PRIu64 " flushes, %" PRIu64
                  " pending deltas, %" PRIu64 " refused submits\n",
                  PR_WRITES, s.flushes - flushes0, s.pending_deltas, refused);
    assert_int_equal(atomic_load(&k.done), PR_WRITES);
    assert_int_equal(atomic_load(&k.bad), 0);
    assert_true(s.flushes >= flushes0 + 1);
    assert_true(s.pending_deltas < 4096);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- 9. the flush timer ---- */

static void test_flush_timer(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-tmr");
    struct store_config cfg;
    cfg_async(&cfg, dir);
    cfg.flush_interval_ms = 50;
    struct store *st = open_cfg(&cfg);
    uint8_t g[16];
    tu_guid_num(g, 1);
    uint64_t t0 = mono_ms();
    put_async(st, g, 5000, 9, 0);
    while (store_needs_flush(st) && mono_ms() - t0 < 1000)
        sleep_ms(5);
    print_message("needs_flush cleared after %" PRIu64 " ms\n", mono_ms() - t0);
    assert_int_equal(store_needs_flush(st), 0);
    assert_true(stats_of(st).flushes >= 1);
    store_close(st);
    st = open_async(dir);
    tu_check(st, g, 5000, 9);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- 10. background compaction with traffic ---- */

#define BG_BASE 300
#define BG_MAX 1200
#define BG_TRAFFIC_MS 3000u /* the compaction needs well under 1 s */

struct bg_blob {
    uint8_t g[16];
    uint32_t len;
    uint64_t seed;
    int live;
};

static void test_background_compaction(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-bgc");
    struct slowio *sl = slowio_new();
    sl->tmp_delay_ms = 100; /* a scan long enough to write during */
    struct store *st = open_slow(dir, sl, 0, 0);
    struct bg_blob *b = calloc(BG_MAX, sizeof(*b));
    assert_non_null(b);
    size_t nb = 0;
    uint64_t seed = 1;
    /* One durable write per group commit: each group starts on a 4 KiB
     * boundary of the log. */
    uint64_t max_log = 0;
    for (; nb < BG_BASE; nb++) {
        tu_guid_num(b[nb].g, 1000 + nb);
        b[nb].len = 512u + (uint32_t)(nb * 37 % 6000);
        b[nb].seed = seed++;
        b[nb].live = 1;
        put_async(st, b[nb].g, b[nb].len, b[nb].seed, 1);
        uint64_t lb = stats_of(st).log_bytes;
        if (lb > max_log)
            max_log = lb;
    }
    struct store_stats s = stats_of(st);
    print_message("log reached %" PRIu64 " bytes; %" PRIu64
                  " compactions so far\n",
                  max_log, s.compactions);
    assert_true(max_log >= MIB);
    assert_int_equal(store_request_compaction(st), 0);

    /* Traffic while it runs: new blobs, rewrites, deletes whose slots are
     * published at once (a reuse during the scan would put one slot under
     * two GUIDs), and reads. */
    void *rf = store_frame_alloc(st);
    assert_non_null(rf);
    uint64_t t0 = mono_ms();
    unsigned ops = 0, during = 0;
    char chase[320] = "";
    for (;;) {
        s = stats_of(st);
        if (s.compactions >= 1 && ops >= 20)
            break; /* one finished while the traffic went on */
        if (nb + 2 >= BG_MAX || mono_ms() - t0 > BG_TRAFFIC_MS) {
            /* The compaction should have ended long ago (a scan of a few
             * hundred entries: three writes of manifest.bin.tmp). */
            snprintf(chase, sizeof(chase),
                     "compaction still running after %u rounds of traffic "
                     "(%" PRIu64 " ms, %" PRIu64 " compactions): %u pwritev "
                     "calls on manifest.bin.tmp so far; its scan keeps "
                     "paging into the GUIDs created after the switch",
                     ops, mono_ms() - t0, s.compactions, slowio_tmp_writes(sl));
            print_message("%s\n", chase);
            break;
        }
        int running = s.compaction_running;
        /* a new blob; new GUIDs ascend, as the time-ordered ones of
         * POST /blobs do */
        tu_guid_num(b[nb].g, 5000 + nb);
        b[nb].len = 100u + (uint32_t)(ops * 101 % 9000);
        b[nb].seed = seed++;
        b[nb].live = 1;
        put_async(st, b[nb].g, b[nb].len, b[nb].seed, (int)(ops % 2));
        nb++;
        /* a rewrite */
        struct bg_blob *o = &b[(ops * 7) % BG_BASE];
        o->len = 300u + (uint32_t)(ops * 13 % 5000);
        o->seed = seed++;
        o->live = 1;
        put_async(st, o->g, o->len, o->seed, 0);
        /* a delete, made durable so its slot is free at once */
        struct bg_blob *x = &b[(ops * 11 + 3) % BG_BASE];
        if (x->live && ops % 3 == 0) {
            struct store_completion c = do_delete(st, x->g, NULL, 1);
            assert_int_equal(c.outcome, STORE_OUT_DELETED);
            x->live = 0;
        }
        /* a read */
        struct bg_blob *y = &b[(ops * 5 + 1) % nb];
        struct waiter w;
        waiter_init(&w);
        assert_int_equal(
            store_submit_read(st, y->g, 0, STORE_READ_ALL, rf, on_read, &w), 0);
        struct store_read_result r = wait_read(&w, WAIT_MS, "read");
        waiter_destroy(&w);
        if (y->live) {
            assert_int_equal(r.rc, 0);
            assert_int_equal(r.len, y->len);
            assert_true(tu_pattern_ok(rf, y->len, y->seed));
        } else {
            assert_int_equal(r.rc, STORE_E_NOT_FOUND);
        }
        ops++;
        during += running;
    }
    /* Without traffic it must end at once. */
    uint64_t t1 = mono_ms();
    while ((s.compactions < 1 || s.compaction_running) &&
           mono_ms() - t1 < 10000) {
        sleep_ms(5);
        s = stats_of(st);
    }
    print_message("%u rounds of traffic, %u while compaction ran; %" PRIu64
                  " compactions, log %" PRIu64 " bytes, snapshot %" PRIu64
                  " bytes; %" PRIu64 " ms more without traffic\n",
                  ops, during, s.compactions, s.log_bytes, s.snapshot_bytes,
                  mono_ms() - t1);
    assert_true(s.compactions >= 1);
    assert_int_equal(s.compaction_running, 0);
    assert_true(during > 0);
    assert_int_equal(s.compaction_failures, 0);
    assert_true(file_exists(dir, "manifest.bin"));
    assert_false(file_exists(dir, "manifest.bin.tmp"));
    assert_true(s.log_bytes < max_log);
    store_frame_free(st, rf);
    do_flush(st);
    store_close(st);
    sl->io.destroy(&sl->io);

    st = open_async(dir);
    uint64_t live = 0;
    for (size_t i = 0; i < nb; i++) {
        if (b[i].live) {
            tu_check(st, b[i].g, b[i].len, b[i].seed);
            live++;
        } else {
            check_absent(st, b[i].g);
        }
    }
    assert_int_equal(store_count(st), live);
    store_close(st);
    free(b);
    tu_rmtree(dir);
    if (chase[0])
        fail_msg("%s", chase);
}

#define MANY 25000u
#define MANY_BATCH 5000u
#define LIST_PAGE 4096u

static void test_compaction_many_entries(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-many");
    struct store *st = open_async(dir);
    struct store_write *w = calloc(MANY_BATCH, sizeof(*w));
    uint8_t(*g)[16] = calloc(MANY_BATCH, sizeof(*g));
    assert_non_null(w);
    assert_non_null(g);
    for (uint32_t base = 0; base < MANY; base += MANY_BATCH) {
        memset(w, 0, MANY_BATCH * sizeof(*w));
        for (uint32_t i = 0; i < MANY_BATCH; i++) {
            tu_guid_num(g[i], 1 + (uint64_t)(base + i) * 3);
            w[i].guid = g[i];
            w[i].frame = NULL;
            w[i].len = 0;
        }
        assert_int_equal(store_write_batch(st, w, MANY_BATCH), 0);
        for (uint32_t i = 0; i < MANY_BATCH; i++)
            assert_int_equal(w[i].outcome, STORE_OUT_CREATED);
    }
    free(w);
    free(g);
    assert_int_equal(store_count(st), MANY);
    uint64_t c0 = stats_of(st).compactions;
    assert_int_equal(store_request_compaction(st), 0);
    uint64_t t0 = mono_ms();
    struct store_stats s = stats_of(st);
    while ((s.compactions == c0 || s.compaction_running) &&
           mono_ms() - t0 < 20000) {
        sleep_ms(10);
        s = stats_of(st);
    }
    print_message("%u entries compacted in %" PRIu64 " ms: snapshot %" PRIu64
                  " bytes\n",
                  MANY, mono_ms() - t0, s.snapshot_bytes);
    assert_int_equal(s.compactions, c0 + 1);
    assert_int_equal(s.compaction_failures, 0);
    assert_true(s.snapshot_bytes >= (uint64_t)MANY * 48);
    assert_true(file_exists(dir, "manifest.bin"));
    store_close(st);

    st = open_async(dir);
    assert_int_equal(store_count(st), MANY);
    struct store_blob_info *page = calloc(LIST_PAGE, sizeof(*page));
    assert_non_null(page);
    uint8_t after[16];
    uint64_t seen = 0;
    int more = 1, pages = 0;
    while (more) {
        int n = store_list(st, seen ? after : NULL, LIST_PAGE, page, &more);
        assert_true(n > 0);
        for (int i = 0; i < n; i++) {
            uint8_t want[16];
            tu_guid_num(want, 1 + seen * 3);
            assert_memory_equal(page[i].guid, want, 16);
            assert_int_equal(page[i].len, 0);
            seen++;
        }
        memcpy(after, page[n - 1].guid, 16);
        pages++;
    }
    assert_int_equal(seen, MANY);
    assert_true(pages >= 7);
    free(page);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- 11. holds ---- */

static void wait_compactions(struct store *st, uint64_t want, unsigned ms)
{
    uint64_t t0 = mono_ms();
    struct store_stats s = stats_of(st);
    while ((s.compactions < want || s.compaction_running) &&
           mono_ms() - t0 < ms) {
        sleep_ms(5);
        s = stats_of(st);
    }
    if (s.compactions < want)
        fail_msg("%" PRIu64 " compactions after %u ms, expected %" PRIu64,
                 s.compactions, ms, want);
}

static void test_hold(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-hold");
    struct store *st = open_async(dir);
    uint8_t p[16], q[16], r[16], k[16];
    tu_guid_num(p, 1);
    tu_guid_num(q, 2);
    tu_guid_num(r, 3);
    tu_guid_num(k, 4);
    put_async(st, k, 4096, 4, 1); /* a slot kept live throughout */

    /* A freed slot, published by a flush. */
    put_async(st, p, 4096, 1, 0);
    struct store_completion c = do_delete(st, p, NULL, 0);
    assert_int_equal(c.outcome, STORE_OUT_DELETED);
    do_flush(st);
    struct store_stats s = stats_of(st);
    assert_true(s.free_total >= 1);
    uint64_t compactions0 = s.compactions;

    assert_int_equal(store_hold(st, 0), 0);
    s = stats_of(st);
    assert_int_equal(s.held, 1);
    assert_int_equal(store_needs_flush(st), 0);
    uint64_t next0 = s.next_slot;
    put_async(st, q, 4096, 2, 0); /* no reuse while held */
    s = stats_of(st);
    assert_int_equal(s.next_slot, next0 + 1);

    assert_int_equal(store_request_compaction(st), 0);
    sleep_ms(300);
    s = stats_of(st);
    assert_int_equal(s.compactions, compactions0);
    assert_int_equal(s.compaction_running, 0);
    assert_int_equal(s.held, 1);
    assert_false(file_exists(dir, "manifest.bin"));

    assert_int_equal(store_release(st), 0);
    s = stats_of(st);
    assert_int_equal(s.held, 0);
    put_async(st, r, 4096, 3, 0); /* the freed slot is reused again */
    assert_int_equal(stats_of(st).next_slot, next0 + 1);
    assert_int_equal(store_request_compaction(st), 0);
    wait_compactions(st, compactions0 + 1, 5000);
    assert_true(file_exists(dir, "manifest.bin"));

    /* A hold with a timeout expires by itself. */
    assert_int_equal(store_hold(st, 100), 0);
    assert_int_equal(stats_of(st).held, 1);
    sleep_ms(300);
    s = stats_of(st);
    assert_int_equal(s.held, 0);
    assert_true(s.holds_expired >= 1);
    uint64_t c1 = s.compactions;
    assert_int_equal(store_request_compaction(st), 0);
    wait_compactions(st, c1 + 1, 5000);
    assert_int_equal(store_release(st), STORE_E_INVALID); /* none held */

    do_flush(st);
    store_close(st);
    st = open_async(dir);
    check_absent(st, p);
    tu_check(st, q, 4096, 2);
    tu_check(st, r, 4096, 3);
    tu_check(st, k, 4096, 4);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- 12. close abandons a running compaction ---- */

static void test_close_during_compaction(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-cls");
    struct slowio *sl = slowio_new();
    sl->tmp_delay_ms = 300;
    struct store *st = open_slow(dir, sl, 0, 0);
    uint8_t g[16];
    for (uint64_t i = 0; i < 50; i++) {
        tu_guid_num(g, i + 1);
        put_async(st, g, 2000 + (uint32_t)i, i + 1, 0);
    }
    do_flush(st);
    assert_int_equal(store_request_compaction(st), 0);
    if (!slowio_wait_tmp(sl, WAIT_MS))
        fail_msg("the compaction never wrote manifest.bin.tmp");
    assert_int_equal(stats_of(st).compaction_running, 1);
    uint64_t t0 = mono_ms();
    store_close(st);
    print_message("store_close during a compaction took %" PRIu64 " ms\n",
                  mono_ms() - t0);
    assert_false(file_exists(dir, "manifest.bin.tmp"));
    assert_false(file_exists(dir, "manifest.bin"));
    sl->io.destroy(&sl->io);

    st = open_async(dir);
    assert_int_equal(store_count(st), 50);
    for (uint64_t i = 0; i < 50; i++) {
        tu_guid_num(g, i + 1);
        tu_check(st, g, 2000 + (uint32_t)i, i + 1);
    }
    /* And a compaction runs to the end now. */
    assert_int_equal(store_request_compaction(st), 0);
    wait_compactions(st, 1, 5000);
    store_close(st);
    assert_true(file_exists(dir, "manifest.bin"));
    assert_false(file_exists(dir, "manifest.bin.tmp"));
    st = open_async(dir);
    assert_int_equal(store_count(st), 50);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- read-only and stopped stores (A5, A6) ---- */

static void test_readonly_and_stop(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-ro");
    uint8_t g[16], h[16];
    tu_guid_num(g, 1);
    tu_guid_num(h, 2);
    struct store *st = open_async(dir);
    put_async(st, g, 5000, 3, 0);
    do_flush(st);
    store_close(st);

    struct store_config cfg;
    cfg_async(&cfg, dir);
    cfg.read_only = 1;
    st = open_cfg(&cfg);
    void *f = store_frame_alloc(st);
    assert_non_null(f);
    struct waiter w;
    waiter_init(&w);
    /* Reads run; writes, deletes and flushes are refused at once. */
    assert_int_equal(
        store_submit_read(st, g, 0, STORE_READ_ALL, f, on_read, &w), 0);
    struct store_read_result r = wait_read(&w, WAIT_MS, "read-only read");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.len, 5000);
    assert_true(tu_pattern_ok(f, 5000, 3));
    assert_int_equal(store_submit_write(st, h, f, 10, NULL, 0, on_done, &w),
                     STORE_E_READONLY);
    assert_int_equal(store_submit_delete(st, g, NULL, 0, on_done, &w),
                     STORE_E_READONLY);
    assert_int_equal(store_submit_flush(st, on_done, &w), STORE_E_READONLY);
    assert_int_equal(waiter_calls(&w), 1);
    store_frame_free(st, f);
    store_close(st);

    /* After store_stop every submit is refused with STORE_E_STOPPED and
     * the synchronous API still works, for a final flush. */
    st = open_async(dir);
    f = store_frame_alloc(st);
    store_stop(st);
    store_stop(st); /* idempotent */
    assert_int_equal(store_submit_write(st, h, f, 10, NULL, 0, on_done, &w),
                     STORE_E_STOPPED);
    assert_int_equal(
        store_submit_read(st, g, 0, STORE_READ_ALL, f, on_read, &w),
        STORE_E_STOPPED);
    assert_int_equal(store_submit_flush(st, on_done, &w), STORE_E_STOPPED);
    tu_pattern(f, 100, 9);
    enum store_outcome out;
    uint64_t ver;
    assert_int_equal(store_write(st, h, f, 100, NULL, &out, &ver), 0);
    struct store_flush_result fr;
    assert_int_equal(store_flush(st, &fr), 0);
    assert_true(fr.records >= 1);
    assert_int_equal(waiter_calls(&w), 1);
    waiter_destroy(&w);
    store_frame_free(st, f);
    store_close(st);
    st = open_async(dir);
    tu_check(st, h, 100, 9);
    tu_check(st, g, 5000, 3);
    store_close(st);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nondurable_write),
        cmocka_unit_test(test_data_sync_without_commit),
        cmocka_unit_test(test_data_sync_failure_is_sticky),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_delete_precond_order),
        cmocka_unit_test(test_exactly_once),
        cmocka_unit_test(test_overload),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_reads_during_sync),
        cmocka_unit_test(test_reads_during_backend_sync),
        cmocka_unit_test(test_pressure_flush),
        cmocka_unit_test(test_flush_timer),
        cmocka_unit_test(test_background_compaction),
        cmocka_unit_test(test_compaction_many_entries),
        cmocka_unit_test(test_hold),
        cmocka_unit_test(test_close_during_compaction),
        cmocka_unit_test(test_readonly_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
