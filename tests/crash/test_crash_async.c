/*
 * test_crash_async.c - crash simulation and durability audits through the
 * async API (store.h "the async API"; iothread.c A1-A3; SPEC §2 durability
 * contract).
 *
 * test_crash_rounds: the store is opened with cfg.async = 1 on
 *     faultio (tracing) -> crashio -> pread
 * (each wrapper owns its inner; the store borrows the outermost, which is
 * destroyed after store_close).  NTHREADS submitter threads submit writes
 * (0..524288 bytes from per-thread frames that stay untouched until the
 * completion), rewrites and deletes, 0-40% of them durable, and 1-15%
 * flushes (the mix is drawn per round), on NG shared GUIDs; a quarter of
 * the rounds also ask for a compaction midway.  Submissions are numbered under
 * one mutex held around the submit call, so the numbering is the queue's order
 * (A2).  Every completion records its outcome, its durable flag, the number of
 * completions before it and the faultio trace length at that moment.  At a
 * random moment crashio_crash_random (half the rounds) or crashio_crash
 * drops what the disk need not have kept; the submitters go on a little
 * (everything fails from then on), the store is closed and the directory
 * reopened on a plain backend (tu_open, following $BLOBD_TEST_BACKEND).
 *
 * The model.  A change (a write or delete that reported CREATED, REPLACED
 * or DELETED) is known durable if its own completion said durable, or if a
 * flush submitted after its completion completed with rc 0 (a flush covers
 * everything acknowledged before it was submitted).  Checked after the
 * reopen:
 *  - per GUID: with d its last change known durable, it reads back as d
 *    left it or as a later submitted change (acknowledged or not, failed or
 *    not: a durable write whose group commit failed after the crash may be
 *    on disk) left it; never an older state, never torn (STORE_E_CHECKSUM
 *    fails), never a pattern no change wrote.  Without any durable change it
 *    is absent or in a state a change left;
 *  - the whole store is one prefix of the submissions (the log is replayed
 *    group by group, and groups hold changes in queue order): some cut k
 *    past the last change known durable fits every GUID at once, where a
 *    failed change before k may or may not have taken effect;
 *  - no GUID outside the workload is listed; the reopened generation is
 *    newer than the crashed one (G5);
 *  - every submit that returned 0 got exactly one completion (A1).
 *
 * The audit (SPEC: "write completed -> data sync OK -> log append -> log
 * sync OK"): for every change the model counts durable, with T the trace
 * length recorded in the callback that made it durable (its own, or the
 * covering flush's), the trace before T holds, in this order: a successful
 * full pwritev to blobs.dat whose iovecs include the write's frame (between
 * its submission and its own completion; not for deletes and empty
 * writes), a successful sync of blobs.dat, a successful full pwritev to the
 * current log (the last log-*.blg opened) at offset >= 4096 (a commit
 * group; offset 0 is a new log's header), a successful sync of that log.
 * A durable write whose frame was never written because a later write of
 * the same GUID in the same batch replaced it (store.h: duplicates collapse
 * to the last; recognised by superseded_by) is audited from the log append
 * on, and counted.
 *
 * test_uring_audit: the same workload and audit on the io_uring backend,
 * cfg.io = faultio(store_io_uring_new()) with registered frames (faultio
 * passes the frame hooks through, so writes go as WRITE_FIXED).  The
 * backend returns from a call only after reaping every completion it
 * queued, so the trace of returned calls is the trace of reaped
 * completions.  No crash (crashio is not under it): the store is closed
 * without a flush, reopened and checked with the same model.  Skips where
 * no ring can be created, unless BLOBD_NO_SKIP is set.
 *
 * Rounds: argv[1], else BLOBD_CRASHASYNC_ROUNDS, else 100 (io_uring:
 * a fifth of that, at least 10).  BLOBD_TEST_SEED repeats the random
 * choices (not the threads' timing).  Failures are printed with the round
 * and its seed; the store directory of the first failing rounds is kept.
 */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crashio.h"
#include "faultio.h"

#define NG 24         /* GUIDs of the workload */
#define NTHREADS 4    /* submitter threads */
#define SLOTS 6       /* jobs in flight per thread (frames) */
#define MAX_OPS 40000 /* submissions per round at most */
#define DEFAULT_ROUNDS 100
#define MAX_RUN_MS 300 /* workload time before the crash, at most */
#define POST_CRASH_MS 3
#define KEEP_DIRS 3 /* failing rounds whose directory is kept */
#define NONE ((size_t)-1)

enum okind { OP_WRITE, OP_DELETE, OP_FLUSH };

struct round;
struct worker;

struct op {
    struct round *r;
    struct worker *w;
    int slot;
    enum okind kind;
    int g; /* GUID index */
    int want_durable;
    uint32_t len;
    uint64_t seed;
    const void *frame;
    int submit_rc;
    size_t sub_idx;       /* trace length just before the submit */
    uint64_t acks_before; /* flush: completions before its submit */
    /* set by the completion */
    int done;
    enum store_outcome outcome;
    int rc, durable;
    size_t cb_idx;    /* trace length inside the callback */
    uint64_t ack_seq; /* completions before this one */
    int after_crash;
};

struct worker {
    struct round *r;
    int id;
    uint64_t rng;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void *frame[SLOTS];
    int registered[SLOTS]; /* the frame came from the backend's pool */
    int busy[SLOTS];
};

struct round {
    int no, uring, crash, random_crash;
    unsigned pct_durable, pct_flush; /* the round's mix of jobs */
    uint64_t seed, rng;
    char *dir;
    struct crashio *cio; /* NULL on io_uring */
    struct faultio *f;
    struct store_io *io; /* faultio_io(f): what the store borrows */
    struct store *st;
    pthread_mutex_t sub_mu; /* numbering == queue order */
    struct op *ops;
    size_t nops;
    atomic_uint_fast64_t acks;
    atomic_int stop, crashed;
    struct worker w[NTHREADS];
    uint64_t gen;
    int failed;
    /* per round figures */
    uint64_t durable_changes, later_states, collapsed, weak;
};

static int g_fail, g_kept_dirs;
static struct {
    uint64_t rounds, submitted, completed, durable_acks, flush_ok,
        durable_changes, audited, collapsed, weak, later_states, after_crash,
        undone, kept, torn, random_crashes, compactions, registered_frames;
    double secs;
} g_stats;

__attribute__((format(printf, 3, 4))) static void
report(struct round *r, int line, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "test_crash_async.c:%d: %s round %d (round seed %" PRIu64
            ", %s, %zu submissions): %s\n",
            line, r->uring ? "io_uring" : "crash", r->no, r->seed,
            !r->crash         ? "no crash"
            : r->random_crash ? "crashio_crash_random"
                              : "crashio_crash",
            r->nops, msg);
    r->failed = 1;
    g_fail++;
}

#define EXPECT(r, cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            report((r), __LINE__, __VA_ARGS__);                                \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t rnd(uint64_t *rng, uint64_t n)
{
    return tu_rand(rng) % n;
}

static uint32_t rand_len(uint64_t *rng)
{
    uint64_t k = rnd(rng, 100);
    if (k < 5)
        return 0;
    if (k < 12)
        return STORE_FRAME_SIZE;
    if (k < 45)
        return (uint32_t)rnd(rng, STORE_PAGE_SIZE + 1);
    if (k < 80)
        return (uint32_t)rnd(rng, 65537);
    return (uint32_t)rnd(rng, STORE_FRAME_SIZE + 1);
}

static void guid_of(uint8_t g[STORE_GUID_SIZE], int i)
{
    tu_guid_num(g, 0xa5c0000 + (uint64_t)i);
}

static int guid_index(const uint8_t *g)
{
    uint8_t x[STORE_GUID_SIZE];
    for (int i = 0; i < NG; i++) {
        guid_of(x, i);
        if (memcmp(x, g, STORE_GUID_SIZE) == 0)
            return i;
    }
    return -1;
}

static int is_change(const struct op *o)
{
    return o->kind != OP_FLUSH;
}

static int succeeded(const struct op *o)
{
    return o->outcome == STORE_OUT_CREATED ||
           o->outcome == STORE_OUT_REPLACED || o->outcome == STORE_OUT_DELETED;
}

/* ---- submitters and completions -------------------------------------- */

static int slot_take(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    for (;;) {
        for (int i = 0; i < SLOTS; i++) {
            if (!w->busy[i]) {
                w->busy[i] = 1;
                pthread_mutex_unlock(&w->mu);
                return i;
            }
        }
        if (atomic_load(&w->r->stop)) {
            pthread_mutex_unlock(&w->mu);
            return -1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
}

static void slot_release(struct worker *w, int i)
{
    pthread_mutex_lock(&w->mu);
    w->busy[i] = 0;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Runs on the I/O thread (or the timer thread for an expired job): record,
 * free the slot, never block for long and never call into the store. */
static void on_done(void *arg, const struct store_completion *c)
{
    struct op *o = arg;
    struct round *r = o->r;
    o->outcome = c->outcome;
    o->rc = c->rc;
    o->durable = c->durable;
    o->cb_idx = faultio_trace_len(r->f);
    o->after_crash = atomic_load(&r->crashed);
    o->ack_seq = atomic_fetch_add(&r->acks, 1);
    o->done++;
    slot_release(o->w, o->slot);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct round *r = w->r;
    uint8_t guid[STORE_GUID_SIZE];
    while (!atomic_load(&r->stop)) {
        int s = slot_take(w);
        if (s < 0)
            break;
        struct op t;
        memset(&t, 0, sizeof(t));
        uint64_t k = rnd(&w->rng, 100);
        t.kind = k < r->pct_flush                              ? OP_FLUSH
                 : k < r->pct_flush + (100 - r->pct_flush) / 4 ? OP_DELETE
                                                               : OP_WRITE;
        t.g = (int)rnd(&w->rng, NG);
        t.want_durable =
            t.kind != OP_FLUSH && rnd(&w->rng, 100) < r->pct_durable;
        if (t.kind == OP_WRITE) {
            t.len = rand_len(&w->rng);
            t.seed = tu_rand(&w->rng);
            t.frame = w->frame[s];
            tu_pattern(w->frame[s], t.len, t.seed);
        }
        t.r = r;
        t.w = w;
        t.slot = s;
        guid_of(guid, t.g);
        pthread_mutex_lock(&r->sub_mu);
        if (r->nops == MAX_OPS) {
            pthread_mutex_unlock(&r->sub_mu);
            slot_release(w, s);
            break;
        }
        struct op *o = &r->ops[r->nops++];
        *o = t;
        o->sub_idx = faultio_trace_len(r->f);
        int rc;
        if (t.kind == OP_WRITE) {
            rc = store_submit_write(r->st, guid, w->frame[s], t.len, NULL,
                                    t.want_durable, on_done, o);
        } else if (t.kind == OP_DELETE) {
            rc = store_submit_delete(r->st, guid, NULL, t.want_durable, on_done,
                                     o);
        } else {
            o->acks_before = atomic_load(&r->acks);
            rc = store_submit_flush(r->st, on_done, o);
        }
        o->submit_rc = rc;
        pthread_mutex_unlock(&r->sub_mu);
        if (rc != 0) {
            slot_release(w, s);
            if (rc == STORE_E_STOPPED)
                break;
            sleep_ms(1); /* overloaded */
        }
    }
    return NULL;
}

/* ---- the audit ---------------------------------------------------------- */

static int is_log(const char *n)
{
    return strncmp(n, "log-", 4) == 0 && strlen(n) == 24 &&
           strcmp(n + 20, ".blg") == 0;
}

static int is_data(const char *n)
{
    return strcmp(n, "blobs.dat") == 0;
}

static int full(const struct fio_event *e)
{
    return e->rc >= 0 && (uint64_t)e->rc == e->len;
}

/* The log the store appends to at trace index at: the last one opened. */
static const char *current_log(const struct fio_event *ev, size_t at)
{
    for (size_t i = at; i-- > 0;)
        if (ev[i].op == FIO_OPENAT && ev[i].rc >= 0 && is_log(ev[i].name))
            return ev[i].name;
    return "";
}

/* 1 if the pwritev e wrote frame (*weak set when e had more iovecs than
 * the trace keeps and frame was not among those kept). */
static int has_frame(const struct fio_event *e, const void *frame, int *weak)
{
    int n = e->iovcnt < FIO_EV_IOVS ? e->iovcnt : FIO_EV_IOVS;
    for (int i = 0; i < n; i++)
        if (e->iov[i] == frame)
            return 1;
    if (e->iovcnt > FIO_EV_IOVS) {
        *weak = 1;
        return 1;
    }
    return 0;
}

/* The write that replaced o inside its batch, if one can have: a later
 * successful write of o's GUID with only writes queued between the two (a
 * delete or a flush splits a batch, A2), submitted before o completed,
 * whose own frame (if any) was written before o completed. */
static const struct op *superseded_by(const struct round *r, const struct op *o,
                                      const struct fio_event *ev, size_t n)
{
    size_t end = o->cb_idx < n ? o->cb_idx : n;
    for (size_t i = (size_t)(o - r->ops) + 1; i < r->nops; i++) {
        const struct op *p = &r->ops[i];
        if (p->submit_rc != 0)
            continue;
        if (p->kind != OP_WRITE || p->sub_idx > o->cb_idx)
            return NULL;
        if (p->g != o->g || !succeeded(p))
            continue;
        if (p->len == 0)
            return p;
        int weak = 0;
        for (size_t k = p->sub_idx; k < end; k++)
            if (ev[k].op == FIO_PWRITEV && is_data(ev[k].name) &&
                full(&ev[k]) && has_frame(&ev[k], p->frame, &weak))
                return p;
        /* p itself may have been replaced: look further */
    }
    return NULL;
}

/* The chain of one durable change, all before trace index end. */
static void audit_chain(struct round *r, const struct fio_event *ev, size_t n,
                        const struct op *o, size_t end, const char *why)
{
    size_t from = o->sub_idx, seq = (size_t)(o - r->ops);
    if (end > n)
        end = n;
    if (o->kind == OP_WRITE && o->len > 0) {
        size_t own = o->cb_idx < n ? o->cb_idx : n, i = NONE, j = NONE;
        int weak = 0;
        for (size_t k = o->sub_idx; k < own && i == NONE; k++)
            if (ev[k].op == FIO_PWRITEV && is_data(ev[k].name) &&
                full(&ev[k]) && has_frame(&ev[k], o->frame, &weak))
                i = k;
        r->weak += (uint64_t)weak;
        if (i == NONE && superseded_by(r, o, ev, n)) {
            r->collapsed++; /* never written: replaced inside its batch */
        } else if (i == NONE) {
            EXPECT(r, 0,
                   "op %zu (write guid %d, %" PRIu32 " bytes, durable by %s): "
                   "no successful pwritev of its frame to blobs.dat between "
                   "its submission (trace %zu) and its completion (trace %zu)",
                   seq, o->g, o->len, why, o->sub_idx, o->cb_idx);
            return;
        } else {
            for (size_t k = i + 1; k < end && j == NONE; k++)
                if (ev[k].op == FIO_SYNC && is_data(ev[k].name) &&
                    ev[k].rc == 0)
                    j = k;
            if (j == NONE) {
                EXPECT(r, 0,
                       "op %zu (write guid %d, durable by %s at trace %zu): "
                       "its data was written at trace %zu but blobs.dat was "
                       "not synced after it",
                       seq, o->g, why, end, i);
                return;
            }
            from = j + 1;
        }
    }
    size_t k = NONE, m = NONE;
    for (size_t x = from; x < end && k == NONE; x++)
        if (ev[x].op == FIO_PWRITEV && is_log(ev[x].name) &&
            ev[x].off >= 4096 && full(&ev[x]))
            k = x;
    if (k == NONE) {
        EXPECT(r, 0,
               "op %zu (%s guid %d, durable by %s at trace %zu): no "
               "successful commit-group append to a log between trace %zu "
               "and then",
               seq, o->kind == OP_WRITE ? "write" : "delete", o->g, why, end,
               from);
        return;
    }
    EXPECT(r, strcmp(ev[k].name, current_log(ev, k)) == 0,
           "op %zu: its commit group went to %s at trace %zu, but the current "
           "log was %s",
           seq, ev[k].name, k, current_log(ev, k));
    for (size_t x = k + 1; x < end && m == NONE; x++)
        if (ev[x].op == FIO_SYNC && ev[x].fd == ev[k].fd &&
            strcmp(ev[x].name, ev[k].name) == 0 && ev[x].rc == 0)
            m = x;
    EXPECT(r, m != NONE,
           "op %zu (%s guid %d, durable by %s at trace %zu): the log append "
           "at trace %zu (%s at %" PRIu64 ") was not synced before",
           seq, o->kind == OP_WRITE ? "write" : "delete", o->g, why, end, k,
           ev[k].name, ev[k].off);
    if (m != NONE)
        g_stats.audited++;
}

/* For each change, the trace length at the callback that made it durable
 * (NONE: not known durable).  Flushes that completed with rc 0, in
 * submission order, cover the changes completed before their submission. */
static void durable_points(struct round *r, size_t *point, const char **why)
{
    size_t *fl = malloc((r->nops + 1) * sizeof(*fl)), nfl = 0;
    assert_non_null(fl);
    for (size_t i = 0; i < r->nops; i++) {
        const struct op *o = &r->ops[i];
        if (o->kind == OP_FLUSH && o->submit_rc == 0 && o->done && o->rc == 0 &&
            o->outcome == STORE_OUT_NONE) {
            fl[nfl++] = i;
            g_stats.flush_ok++;
        }
    }
    for (size_t i = 0; i < r->nops; i++) {
        const struct op *o = &r->ops[i];
        point[i] = NONE;
        why[i] = "";
        if (!is_change(o) || o->submit_rc != 0 || !o->done || !succeeded(o))
            continue;
        if (o->durable) {
            point[i] = o->cb_idx;
            why[i] = "its own completion";
            g_stats.durable_acks++;
        }
        /* The first covering flush (acks_before is non-decreasing). */
        size_t lo = 0, hi = nfl;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (r->ops[fl[mid]].acks_before > o->ack_seq)
                hi = mid;
            else
                lo = mid + 1;
        }
        if (lo < nfl && r->ops[fl[lo]].cb_idx < point[i]) {
            point[i] = r->ops[fl[lo]].cb_idx;
            why[i] = "a flush";
        }
        if (point[i] != NONE)
            r->durable_changes++;
    }
    free(fl);
}

static void audit(struct round *r, const size_t *point, const char **why)
{
    struct fio_event *ev = NULL;
    size_t n = faultio_trace_get(r->f, &ev);
    for (size_t i = 0; i < r->nops; i++)
        if (point[i] != NONE)
            audit_chain(r, ev, n, &r->ops[i], point[i], why[i]);
    free(ev);
}

/* ---- after the crash ---------------------------------------------------- */

struct obs {
    int rc; /* 0, STORE_E_NOT_FOUND, or what went wrong */
    uint32_t len;
    uint8_t *data;
};

/* Does the GUID hold what change o left? */
static int left_by(const struct obs *ob, const struct op *o)
{
    if (o->kind == OP_DELETE)
        return ob->rc == STORE_E_NOT_FOUND;
    return ob->rc == 0 && ob->len == o->len &&
           tu_pattern_ok(ob->data, ob->len, o->seed);
}

static void describe(char *buf, size_t n, const struct round *r, size_t i)
{
    const struct op *o = &r->ops[i];
    snprintf(buf, n, "op %zu %s%s %" PRIu32 " bytes -> %s%s%s", i,
             o->kind == OP_WRITE ? "write" : "delete",
             o->want_durable ? " durable" : "", o->len,
             o->done ? store_outcome_name(o->outcome) : "(no completion)",
             o->durable ? " (durable)" : "",
             o->after_crash ? " after the crash" : "");
}

static void check_guid(struct round *r, int g, const struct obs *ob,
                       const size_t *point)
{
    size_t d = NONE, first = NONE, older = NONE;
    int match = 0;
    for (size_t i = 0; i < r->nops; i++) {
        const struct op *o = &r->ops[i];
        if (o->g != g || !is_change(o) || o->submit_rc != 0)
            continue;
        if (point[i] != NONE)
            d = i;
        if (first == NONE)
            first = i;
    }
    if (ob->rc != 0 && ob->rc != STORE_E_NOT_FOUND) {
        EXPECT(r, 0, "guid %d: store_read after the reopen: %s%s", g,
               store_strerror(ob->rc),
               ob->rc == STORE_E_CHECKSUM ? " (a torn blob)" : "");
        return;
    }
    if (d == NONE && ob->rc == STORE_E_NOT_FOUND)
        return; /* absent: the state before the round */
    for (size_t i = d == NONE ? 0 : d; i < r->nops && !match; i++) {
        const struct op *o = &r->ops[i];
        if (o->g == g && is_change(o) && o->submit_rc == 0 && left_by(ob, o)) {
            match = 1;
            if (i != d)
                r->later_states++;
        }
    }
    if (match)
        return;
    for (size_t i = 0; d != NONE && i < d; i++) {
        const struct op *o = &r->ops[i];
        if (o->g == g && o->kind == OP_WRITE && left_by(ob, o))
            older = i;
    }
    char want[160] = "absent (no change known durable)", got[160];
    if (d != NONE)
        describe(want, sizeof(want), r, d);
    if (older != NONE)
        describe(got, sizeof(got), r, older);
    else if (ob->rc == 0)
        snprintf(got, sizeof(got), "%" PRIu32 " bytes no change wrote",
                 ob->len);
    else
        snprintf(got, sizeof(got), "absent");
    EXPECT(r, 0,
           "guid %d holds %s%s; its last change known durable is %s; "
           "its changes:",
           g, older != NONE ? "the OLDER " : "", got, want);
    for (size_t i = first; i != NONE && i < r->nops; i++) {
        const struct op *o = &r->ops[i];
        if (o->g == g && is_change(o) && o->submit_rc == 0) {
            char line[160];
            describe(line, sizeof(line), r, i);
            fprintf(stderr, "    %s%s\n", line,
                    point[i] != NONE ? " [known durable]" : "");
        }
    }
}

/* One cut k past the last change known durable fits every GUID. */
static void check_cut(struct round *r, const struct obs *ob,
                      const size_t *point)
{
    size_t k0 = 0;
    for (size_t i = 0; i < r->nops; i++)
        if (point[i] != NONE)
            k0 = i + 1;
    /* Per GUID: does it hold the state of its last successful change
     * before the cut (base), or that of a failed change since (maybe)? */
    int base[NG], maybe[NG], bad = 0;
    for (int g = 0; g < NG; g++) {
        base[g] = ob[g].rc == STORE_E_NOT_FOUND;
        maybe[g] = 0;
    }
    for (size_t k = 0;; k++) {
        if (k >= k0) {
            bad = 0;
            for (int g = 0; g < NG; g++)
                bad += !(base[g] || maybe[g]);
            if (bad == 0)
                return; /* cut k fits */
        }
        if (k == r->nops)
            break;
        const struct op *o = &r->ops[k];
        if (!is_change(o) || o->submit_rc != 0 ||
            o->outcome == STORE_OUT_NOT_FOUND)
            continue;
        if (succeeded(o)) {
            base[o->g] = left_by(&ob[o->g], o);
            maybe[o->g] = 0;
        } else {
            maybe[o->g] |= left_by(&ob[o->g], o);
        }
    }
    EXPECT(r, 0,
           "no cut in [%zu, %zu] of the submissions fits every GUID at once "
           "(%d GUIDs off at the end): the recovered store is not a prefix "
           "of the queue",
           k0, r->nops, bad);
}

static void check_after(struct round *r, const size_t *point)
{
    int rc = 0;
    char err[512] = "";
    struct store *st = tu_try_open(r->dir, NULL, &rc, err, sizeof(err));
    EXPECT(r, st != NULL, "reopen: %s (%s)", err, store_errname(rc));
    if (!st)
        return;
    struct obs ob[NG];
    for (int g = 0; g < NG; g++) {
        uint8_t guid[STORE_GUID_SIZE];
        struct store_blob_info info;
        guid_of(guid, g);
        ob[g].data = store_frame_alloc(st);
        assert_non_null(ob[g].data);
        ob[g].rc = store_read(st, guid, ob[g].data, &info);
        ob[g].len = ob[g].rc == 0 ? info.len : 0;
    }
    for (int g = 0; g < NG; g++)
        check_guid(r, g, &ob[g], point);
    if (!r->failed)
        check_cut(r, ob, point);
    struct store_blob_info all[NG + 8];
    int more = 0, present = 0;
    int n = store_list(st, NULL, NG + 8, all, &more);
    for (int g = 0; g < NG; g++)
        present += ob[g].rc == 0;
    EXPECT(r, n == present && !more, "store_list = %d (more %d), %d present", n,
           more, present);
    for (int k = 0; k < n; k++)
        EXPECT(r, guid_index(all[k].guid) >= 0,
               "a GUID never written is listed");
    struct store_stats s;
    store_get_stats(st, &s);
    EXPECT(r, s.generation > r->gen,
           "generation %" PRIu64 " after a close of generation %" PRIu64,
           s.generation, r->gen);
    for (int g = 0; g < NG; g++)
        store_frame_free(st, ob[g].data);
    store_close(st);
}

/* ---- a round ------------------------------------------------------------ */

static struct store_io *uring_new(char *err, size_t errlen)
{
    struct store_io_uring_opts o;
    memset(&o, 0, sizeof(o));
    o.fixed_frames = 32;
    int rc = 0;
    return store_io_uring_new(&o, &rc, err, errlen);
}

static void frames_alloc(struct round *r)
{
    for (int t = 0; t < NTHREADS; t++) {
        for (int s = 0; s < SLOTS; s++) {
            void *f = r->io->frame_alloc ? r->io->frame_alloc(r->io) : NULL;
            r->w[t].registered[s] = f != NULL;
            g_stats.registered_frames += f != NULL;
            if (!f)
                f = aligned_alloc(STORE_PAGE_SIZE, STORE_FRAME_SIZE);
            assert_non_null(f);
            r->w[t].frame[s] = f;
        }
    }
}

static void frames_free(struct round *r)
{
    for (int t = 0; t < NTHREADS; t++)
        for (int s = 0; s < SLOTS; s++)
            if (!r->w[t].registered[s] ||
                !r->io->frame_free(r->io, r->w[t].frame[s]))
                free(r->w[t].frame[s]);
}

static void run_round(int no, uint64_t seed, int uring)
{
    struct round *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->no = no;
    r->seed = r->rng = seed;
    r->uring = uring;
    r->crash = !uring;
    r->random_crash = r->crash && rnd(&r->rng, 2) == 0;
    /* Few durable jobs and flushes leave much unsynced at the crash. */
    r->pct_durable = (unsigned)rnd(&r->rng, 41);
    r->pct_flush = 1 + (unsigned)rnd(&r->rng, 15);
    r->ops = calloc(MAX_OPS, sizeof(*r->ops));
    assert_non_null(r->ops);
    r->dir = tu_mkdtemp(uring ? "uringaudit" : "crashasync");
    pthread_mutex_init(&r->sub_mu, NULL);
    atomic_init(&r->acks, 0);
    atomic_init(&r->stop, 0);
    atomic_init(&r->crashed, 0);
    if (uring) {
        char err[256] = "";
        struct store_io *in = uring_new(err, sizeof(err));
        if (!in)
            fail_msg("store_io_uring_new: %s", err);
        r->f = faultio_new(in);
    } else {
        r->cio = crashio_new(store_io_pread_new());
        assert_non_null(r->cio);
        r->f = faultio_new(crashio_io(r->cio));
    }
    assert_non_null(r->f);
    r->io = faultio_io(r->f);
    faultio_trace(r->f, 1);

    struct store_config cfg;
    store_config_init(&cfg, r->dir);
    cfg.io = r->io;
    cfg.async = 1;
    cfg.backend = uring ? STORE_BACKEND_IO_URING : STORE_BACKEND_PREAD;
    cfg.log_fn = tu_log_quiet;
    cfg.lock_timeout_ms = 200;
    int rc = 0;
    char err[512] = "";
    r->st = store_open(&cfg, &rc, err, sizeof(err));
    if (!r->st)
        fail_msg("round %d: open: %s (%s)", no, err, store_errname(rc));

    frames_alloc(r);
    for (int t = 0; t < NTHREADS; t++) {
        struct worker *w = &r->w[t];
        w->r = r;
        w->id = t;
        w->rng = tu_rand(&r->rng);
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
    }
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(
            pthread_create(&r->w[t].th, NULL, worker_main, &r->w[t]), 0);

    unsigned run =
        rnd(&r->rng, 10) == 0 ? 0 : 1 + (unsigned)rnd(&r->rng, MAX_RUN_MS);
    if (uring)
        run += 20;
    if (rnd(&r->rng, 4) == 0) { /* a compaction racing the workload */
        unsigned before = (unsigned)rnd(&r->rng, (uint64_t)run + 1);
        sleep_ms(before);
        store_request_compaction(r->st);
        run -= before;
    }
    sleep_ms(run);
    uint64_t crash_seed = tu_rand(&r->rng);
    if (r->crash) {
        atomic_store(&r->crashed, 1);
        if (r->random_crash)
            crashio_crash_random(r->cio, crash_seed);
        else
            crashio_crash(r->cio);
        size_t u = 0, k = 0, t = 0;
        crashio_crash_counts(r->cio, &u, &k, &t);
        g_stats.undone += u;
        g_stats.kept += k;
        g_stats.torn += t;
        g_stats.random_crashes += (uint64_t)r->random_crash;
        sleep_ms(POST_CRASH_MS); /* the submitters go on: all fails now */
    }
    atomic_store(&r->stop, 1);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(r->w[t].th, NULL);
    struct store_stats s;
    store_get_stats(r->st, &s);
    r->gen = s.generation;
    g_stats.compactions += s.compactions;
    store_close(r->st); /* completes every queued job (A4) */
    r->st = NULL;
    frames_free(r);

    for (size_t i = 0; i < r->nops; i++) {
        const struct op *o = &r->ops[i];
        if (o->submit_rc != 0)
            continue;
        g_stats.submitted++;
        g_stats.completed += o->done > 0;
        g_stats.after_crash += o->after_crash;
        EXPECT(r, o->done == 1, "op %zu: %d completions for one submit (A1)", i,
               o->done);
        if (o->done && o->durable)
            EXPECT(r, succeeded(o) || o->kind == OP_FLUSH,
                   "op %zu: durable with outcome %s", i,
                   store_outcome_name(o->outcome));
        if (o->done && o->durable && o->kind != OP_FLUSH)
            EXPECT(r, o->want_durable,
                   "op %zu: durable completion for a job that did not ask", i);
    }
    size_t *point = malloc((r->nops + 1) * sizeof(*point));
    const char **why = malloc((r->nops + 1) * sizeof(*why));
    assert_non_null(point);
    assert_non_null(why);
    durable_points(r, point, why);
    audit(r, point, why);
    faultio_free(r->f); /* and everything under it */
    r->f = NULL;
    check_after(r, point);
    free(point);
    free(why);

    g_stats.rounds++;
    g_stats.durable_changes += r->durable_changes;
    g_stats.later_states += r->later_states;
    g_stats.collapsed += r->collapsed;
    g_stats.weak += r->weak;
    for (int t = 0; t < NTHREADS; t++) {
        pthread_mutex_destroy(&r->w[t].mu);
        pthread_cond_destroy(&r->w[t].cv);
    }
    pthread_mutex_destroy(&r->sub_mu);
    if (r->failed && g_kept_dirs < KEEP_DIRS) {
        g_kept_dirs++;
        fprintf(stderr, "round %d: store directory kept at %s\n", no, r->dir);
        free(r->dir);
    } else {
        tu_rmtree(r->dir);
    }
    free(r->ops);
    free(r);
}

/* ---- the tests ------------------------------------------------------------
 */

static int g_rounds = DEFAULT_ROUNDS;

static uint64_t round_seed(int no, uint64_t salt)
{
    uint64_t s = tu_seed() ^ salt;
    s += 0x9e3779b97f4a7c15ull * (uint64_t)(no + 1);
    return tu_rand(&s);
}

static void print_stats(const char *name)
{
    fprintf(stderr,
            "%s: %" PRIu64 " rounds in %.1f s; %" PRIu64
            " jobs submitted, %" PRIu64 " completed (%" PRIu64
            " after the crash); %" PRIu64 " durable completions, %" PRIu64
            " good flushes; %" PRIu64 " changes known durable, %" PRIu64
            " chains audited (%" PRIu64 " writes replaced inside their batch, "
            "%" PRIu64 " matched beyond the kept iovecs); %" PRIu64
            " GUIDs recovered past their durable state; crashes: %" PRIu64
            " random, writes undone/kept/torn %" PRIu64 "/%" PRIu64 "/%" PRIu64
            "; %" PRIu64 " compactions; %" PRIu64 " registered frames used\n",
            name, g_stats.rounds, g_stats.secs, g_stats.submitted,
            g_stats.completed, g_stats.after_crash, g_stats.durable_acks,
            g_stats.flush_ok, g_stats.durable_changes, g_stats.audited,
            g_stats.collapsed, g_stats.weak, g_stats.later_states,
            g_stats.random_crashes, g_stats.undone, g_stats.kept, g_stats.torn,
            g_stats.compactions, g_stats.registered_frames);
}

static void finish(const char *name)
{
    print_stats(name);
    memset(&g_stats, 0, sizeof(g_stats));
    int n = g_fail;
    g_fail = 0;
    if (n)
        fail_msg("%s: %d failure(s) (see above)", name, n);
}

static void test_crash_rounds(void **state)
{
    (void)state;
    double t0 = now_s();
    for (int no = 0; no < g_rounds; no++)
        run_round(no, round_seed(no, 0xc4a5), 0);
    g_stats.secs = now_s() - t0;
    finish("async crash rounds (pread)");
}

static void test_uring_audit(void **state)
{
    (void)state;
    char err[256] = "";
    struct store_io *probe = uring_new(err, sizeof(err));
    if (!probe) {
        if (getenv("BLOBD_NO_SKIP"))
            fail_msg("io_uring unavailable and BLOBD_NO_SKIP is set: %s", err);
        fprintf(stderr, "io_uring unavailable (%s): skipped\n", err);
        skip();
        return;
    }
    probe->destroy(probe);
    int rounds = g_rounds / 5 > 10 ? g_rounds / 5 : 10;
    double t0 = now_s();
    for (int no = 0; no < rounds; no++)
        run_round(no, round_seed(no, 0x0a11), 1);
    g_stats.secs = now_s() - t0;
    finish("async durability audit (io_uring)");
}

int main(int argc, char **argv)
{
    const char *e = getenv("BLOBD_CRASHASYNC_ROUNDS");
    const char *a = argc > 1 ? argv[1] : e;
    if (a) {
        char *end = NULL;
        long n = strtol(a, &end, 10);
        if (!end || *end || n <= 0) {
            fprintf(stderr, "usage: %s [ROUNDS] (or BLOBD_CRASHASYNC_ROUNDS)\n",
                    argv[0]);
            return 2;
        }
        g_rounds = (int)n;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_rounds),
        cmocka_unit_test(test_uring_audit),
    };
    tu_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
