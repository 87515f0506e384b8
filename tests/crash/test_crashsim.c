/*
 * test_crashsim.c - crash simulation: the store runs on
 *     faultio (tracing) -> crashio -> pread
 * (each wrapper owns its inner; only the outermost is freed).  A random
 * workload, seeded from tu_seed(), of writes (0..524288 bytes, rewrites,
 * small batches with a duplicate GUID), deletes, flushes and compactions
 * runs against a model that keeps, per GUID, the state of the last good
 * flush and every state acknowledged since.  At a random point (between two
 * operations, or inside a flush or compaction whose kth I/O call fails
 * with EIO) crashio_crash() drops everything not made durable, the store is
 * closed and the directory reopened on a plain backend:
 *  - a GUID unchanged since the last good flush reads back exactly as then
 *    (or is absent if its flushed state was deleted);
 *  - a GUID changed since may be in that state or any later acknowledged
 *    one, but never torn (store_read never answers STORE_E_CHECKSUM);
 *  - no GUID outside the workload appears;
 *  - the reopened generation is newer than the crashed one (G5).
 *
 * Trace audit (SPEC §2, G1/T1): in the faultio trace of each workload,
 * every good store_flush (and store_compact) that had changes is preceded,
 * since the previous flush, by: the data writes (pwritev on blobs.dat) ->
 * a good sync of blobs.dat -> a full pwritev on the current log-*.blg -> a
 * good sync of that log, in that order.  Trace indexes are recorded around
 * each call.
 *
 * Rounds: BLOBD_CRASHSIM_ROUNDS (default 200).  Every failure is printed
 * with its round and the round's seed; the test fails at the end if any
 * round failed.  Single-threaded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crashio.h"
#include "faultio.h"
#include "testutil.h"

#define NG 16 /* GUIDs a round works on */
#define MAX_ALT 128
#define MAX_FLUSH 256
#define DEFAULT_ROUNDS 200
#define MIN_OPS 8
#define MAX_OPS 80
#define LONG_OPS 400
#define BATCH_MAX 4
#define NONE ((size_t)-1)

struct bstate {
    int present;
    uint32_t len;
    uint64_t seed;
};

struct gstate {
    struct bstate cur, dur;
    struct bstate alt[MAX_ALT]; /* acknowledged since the last good flush */
    int nalt;
};

/* A good flush (or compaction with changes) and where it sits in the
 * trace: events [start, end) are its own. */
struct flushrec {
    size_t start, end;
    int changes;     /* records were pending */
    int compact;     /* store_compact rather than store_flush */
    int data_synced; /* store_flush said so (flush only) */
};

struct round {
    int no;
    uint64_t seed, rng;
    char *dir;
    struct crashio *cio;
    struct faultio *f;
    struct store *st;
    struct gstate g[NG];
    int pending; /* changes acknowledged since the last good flush */
    struct flushrec fl[MAX_FLUSH];
    int nfl;
    size_t open_end; /* trace index after the open */
    uint64_t gen;    /* generation of the crashed open */
    int crashed_mid; /* the crash came inside a failed flush/compaction */
    int ops;
    /* what the reopen found */
    int later_states;
};

static int g_fail;
static struct {
    uint64_t rounds, ops, flushes, compactions, mid_crashes, later_states,
        audited;
} g_stats;

__attribute__((format(printf, 3, 4))) static void
report(const struct round *r, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "test_crashsim.c:%d: round %d (round seed %" PRIu64
            ", op %d%s): %s\n",
            line, r->no, r->seed, r->ops,
            r->crashed_mid ? ", crashed inside a flush/compaction" : "", msg);
    g_fail++;
}

#define EXPECT(r, cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            report((r), __LINE__, __VA_ARGS__);                                \
    } while (0)

static uint64_t rnd(struct round *r, uint64_t n)
{
    return tu_rand(&r->rng) % n;
}

static uint32_t rand_len(struct round *r)
{
    uint64_t k = rnd(r, 100);
    if (k < 5)
        return 0;
    if (k < 10)
        return STORE_FRAME_SIZE;
    if (k < 50)
        return (uint32_t)rnd(r, STORE_PAGE_SIZE + 1);
    if (k < 80)
        return (uint32_t)rnd(r, 65537);
    return (uint32_t)rnd(r, STORE_FRAME_SIZE + 1);
}

static void guid_of(uint8_t g[STORE_GUID_SIZE], int i)
{
    tu_guid_num(g, 0x5100 + (uint64_t)i);
}

/* Index of GUID g in the universe, or -1. */
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

static void ack(struct round *r, int i, int present, uint32_t len,
                uint64_t seed)
{
    struct gstate *g = &r->g[i];
    struct bstate s = {.present = present, .len = len, .seed = seed};
    g->cur = s;
    if (g->nalt < MAX_ALT)
        g->alt[g->nalt++] = s;
    else
        g->alt[MAX_ALT - 1] = s; /* keeps the newest; never hit at 80 ops */
    r->pending++;
}

static void flushed(struct round *r)
{
    for (int i = 0; i < NG; i++) {
        r->g[i].dur = r->g[i].cur;
        r->g[i].nalt = 0;
    }
    r->pending = 0;
}

static size_t trace_len(struct faultio *f)
{
    struct fio_event *ev = NULL;
    size_t n = faultio_trace_get(f, &ev);
    free(ev);
    return n;
}

/* ---- the workload ---------------------------------------------------- */

static void op_write(struct round *r)
{
    int i = (int)rnd(r, NG);
    uint8_t g[STORE_GUID_SIZE];
    uint32_t len = rand_len(r);
    uint64_t seed = tu_rand(&r->rng);
    enum store_outcome out = STORE_OUT_NONE;
    void *fr = store_frame_alloc(r->st);
    assert_non_null(fr);
    guid_of(g, i);
    tu_pattern(fr, len, seed);
    int rc = store_write(r->st, g, fr, len, NULL, &out, NULL);
    store_frame_free(r->st, fr);
    EXPECT(r, rc == 0, "write %d (%" PRIu32 " bytes): %s", i, len,
           store_errname(rc));
    EXPECT(r,
           out ==
               (r->g[i].cur.present ? STORE_OUT_REPLACED : STORE_OUT_CREATED),
           "write %d: outcome %s", i, store_outcome_name(out));
    if (rc == 0)
        ack(r, i, 1, len, seed);
}

/* 2..BATCH_MAX writes, sometimes with a duplicate GUID (last wins). */
static void op_batch(struct round *r)
{
    struct store_write w[BATCH_MAX];
    uint8_t g[BATCH_MAX][STORE_GUID_SIZE];
    int idx[BATCH_MAX];
    uint64_t seeds[BATCH_MAX];
    size_t n = 2 + (size_t)rnd(r, BATCH_MAX - 1);
    memset(w, 0, sizeof(w));
    for (size_t k = 0; k < n; k++) {
        idx[k] = k > 0 && rnd(r, 4) == 0 ? idx[k - 1] : (int)rnd(r, NG);
        guid_of(g[k], idx[k]);
        seeds[k] = tu_rand(&r->rng);
        w[k].guid = g[k];
        w[k].len = rand_len(r);
        w[k].frame = store_frame_alloc(r->st);
        assert_non_null(w[k].frame);
        tu_pattern(w[k].frame, w[k].len, seeds[k]);
    }
    int rc = store_write_batch(r->st, w, n);
    EXPECT(r, rc == 0, "batch: %s", store_errname(rc));
    for (size_t k = 0; k < n; k++) {
        int ok = w[k].outcome == STORE_OUT_CREATED ||
                 w[k].outcome == STORE_OUT_REPLACED;
        EXPECT(r, ok, "batch item %zu: %s (%s)", k,
               store_outcome_name(w[k].outcome), store_errname(w[k].rc));
        int last = 1;
        for (size_t j = k + 1; j < n; j++)
            last &= idx[j] != idx[k];
        if (ok && last)
            ack(r, idx[k], 1, w[k].len, seeds[k]);
        store_frame_free(r->st, w[k].frame);
    }
}

static void op_delete(struct round *r)
{
    int i = (int)rnd(r, NG);
    uint8_t g[STORE_GUID_SIZE];
    enum store_outcome out;
    guid_of(g, i);
    int rc = store_delete(r->st, g, NULL, &out);
    if (r->g[i].cur.present) {
        EXPECT(r, rc == 0 && out == STORE_OUT_DELETED, "delete %d: %s", i,
               store_errname(rc));
        if (rc == 0)
            ack(r, i, 0, 0, 0);
    } else {
        EXPECT(r, rc == STORE_E_NOT_FOUND, "delete of absent %d: %s", i,
               store_errname(rc));
    }
}

/* A flush or compaction; with arm_k > 0 its kth I/O call fails (EIO). */
static int op_flush(struct round *r, int compact, int arm_k)
{
    struct store_flush_result res;
    memset(&res, 0, sizeof(res));
    int changes = r->pending > 0;
    size_t start = trace_len(r->f);
    if (arm_k > 0)
        faultio_arm(r->f, FIO_MASK_IO, (uint64_t)arm_k, FIO_EIO);
    int rc = compact ? store_compact(r->st) : store_flush(r->st, &res);
    faultio_disarm(r->f);
    if (arm_k == 0)
        EXPECT(r, rc == 0, "%s: %s", compact ? "compact" : "flush",
               store_errname(rc));
    if (rc != 0)
        return rc;
    flushed(r);
    if (compact)
        g_stats.compactions++;
    else
        g_stats.flushes++;
    if (!compact)
        EXPECT(r, (res.records > 0) == changes,
               "flush wrote %" PRIu64 " records with %d changes pending",
               res.records, changes);
    if (r->nfl < MAX_FLUSH) {
        struct flushrec *fr = &r->fl[r->nfl++];
        fr->start = start;
        fr->end = trace_len(r->f);
        fr->changes = changes;
        fr->compact = compact;
        fr->data_synced = compact ? -1 : (int)res.data_synced;
    }
    return 0;
}

/* ---- the audit ----------------------------------------------------------- */

static int is_log(const char *n)
{
    return strncmp(n, "log-", 4) == 0 && strlen(n) == 24 &&
           strcmp(n + 20, ".blg") == 0;
}

static int is_data(const char *n)
{
    return strcmp(n, "blobs.dat") == 0;
}

/* The log the store appends to at trace index at: the last one opened. */
static const char *current_log(const struct fio_event *ev, size_t at)
{
    for (size_t i = at; i-- > 0;)
        if (ev[i].op == FIO_OPENAT && ev[i].rc >= 0 && is_log(ev[i].name))
            return ev[i].name;
    return "";
}

static void audit_one(struct round *r, const struct fio_event *ev, size_t prev,
                      const struct flushrec *fr)
{
    int data_writes = 0;
    size_t ds = NONE, lw = NONE, ls = NONE;
    const char *what = fr->compact ? "compact" : "flush";
    for (size_t i = prev; i < fr->start; i++)
        if (ev[i].op == FIO_PWRITEV && is_data(ev[i].name) && ev[i].rc > 0)
            data_writes++;
    for (size_t i = fr->start; i < fr->end; i++) {
        const struct fio_event *e = &ev[i];
        if (e->op == FIO_PWRITEV && is_data(e->name))
            EXPECT(r, 0, "%s wrote blobs.dat (trace %zu)", what, i);
        if (ds == NONE && lw == NONE && e->op == FIO_SYNC && is_data(e->name) &&
            e->rc == 0)
            ds = i;
        /* An append is a commit group (at 4096 or later); offset 0 is the
         * header of a log that compaction just created. */
        if (lw == NONE && e->op == FIO_PWRITEV && is_log(e->name) &&
            e->off >= 4096)
            lw = i;
        if (lw != NONE && ls == NONE && i > lw && e->op == FIO_SYNC &&
            e->fd == ev[lw].fd && strcmp(e->name, ev[lw].name) == 0)
            ls = i;
    }
    if (data_writes) {
        EXPECT(r, ds != NONE,
               "%s after %d data writes: no good sync of blobs.dat before "
               "the log append",
               what, data_writes);
        if (fr->data_synced >= 0)
            EXPECT(r, fr->data_synced == 1, "flush reports data_synced 0");
    }
    EXPECT(r, lw != NONE, "%s with changes: no log append", what);
    if (lw == NONE)
        return;
    EXPECT(r, ev[lw].rc >= 0 && (uint64_t)ev[lw].rc == ev[lw].len,
           "%s: log append of %" PRIu64 " bytes returned %ld", what, ev[lw].len,
           ev[lw].rc);
    EXPECT(r, strcmp(ev[lw].name, current_log(ev, lw)) == 0,
           "%s appended to %s, the current log is %s", what, ev[lw].name,
           current_log(ev, lw));
    EXPECT(r, ls != NONE && ev[ls].rc == 0,
           "%s: no good sync of %s after the append", what, ev[lw].name);
    g_stats.audited++;
}

static void audit(struct round *r)
{
    struct fio_event *ev = NULL;
    size_t n = faultio_trace_get(r->f, &ev);
    size_t prev = r->open_end;
    for (int k = 0; k < r->nfl; k++) {
        const struct flushrec *fr = &r->fl[k];
        EXPECT(r, fr->end <= n, "trace shorter than recorded");
        if (fr->end > n)
            break;
        if (fr->changes)
            audit_one(r, ev, prev, fr);
        prev = fr->end;
    }
    free(ev);
}

/* ---- after the crash -------------------------------------------------------
 */

static const char *bstate_str(const struct bstate *s, char *buf, size_t n)
{
    if (!s->present)
        snprintf(buf, n, "absent");
    else
        snprintf(buf, n, "%" PRIu32 " bytes, seed %" PRIu64, s->len, s->seed);
    return buf;
}

static void check_guid(struct round *r, struct store *st, int i, void *fr)
{
    const struct gstate *g = &r->g[i];
    uint8_t guid[STORE_GUID_SIZE];
    struct store_blob_info info;
    char a[64];
    int match = -1; /* 0: the flushed state, k > 0: alt[k - 1] */
    guid_of(guid, i);
    int rc = store_read(st, guid, fr, &info);
    if (rc != 0 && rc != STORE_E_NOT_FOUND) {
        EXPECT(r, 0, "guid %d: store_read = %s (%s); flushed state %s", i,
               store_errname(rc), store_strerror(rc),
               bstate_str(&g->dur, a, sizeof(a)));
        return;
    }
    for (int k = 0; k <= g->nalt && match < 0; k++) {
        const struct bstate *s = k == 0 ? &g->dur : &g->alt[k - 1];
        if (rc == STORE_E_NOT_FOUND ? !s->present
                                    : s->present && s->len == info.len &&
                                          tu_pattern_ok(fr, info.len, s->seed))
            match = k;
    }
    if (match > 0)
        r->later_states++;
    EXPECT(r, match >= 0,
           "guid %d: %s%" PRIu32 "%s, but it was %s at the last good flush "
           "and %d states were acknowledged since",
           i, rc == 0 ? "reads " : "is absent", rc == 0 ? info.len : 0,
           rc == 0 ? " bytes matching none of them" : "",
           bstate_str(&g->dur, a, sizeof(a)), g->nalt);
}

static void check_after_crash(struct round *r)
{
    int rc = 0;
    char err[512] = "";
    struct store *st = tu_try_open(r->dir, NULL, &rc, err, sizeof(err));
    EXPECT(r, st != NULL, "reopen after the crash: %s (%s)", err,
           store_errname(rc));
    if (!st)
        return;
    void *fr = store_frame_alloc(st);
    assert_non_null(fr);
    for (int i = 0; i < NG; i++)
        check_guid(r, st, i, fr);
    struct store_blob_info all[NG + 8];
    int more = 0;
    int n = store_list(st, NULL, NG + 8, all, &more);
    EXPECT(r, n >= 0 && n <= NG && !more, "store_list = %d", n);
    for (int k = 0; k < n; k++)
        EXPECT(r, guid_index(all[k].guid) >= 0,
               "a GUID never written appeared");
    /* G5: the reopened generation is newer; so are its versions. */
    struct store_stats s;
    store_get_stats(st, &s);
    EXPECT(r, s.generation > r->gen,
           "generation %" PRIu64 " after a crash of generation %" PRIu64,
           s.generation, r->gen);
    uint8_t g[STORE_GUID_SIZE];
    uint64_t v = 0;
    guid_of(g, NG + 1);
    memset(fr, 0, STORE_PAGE_SIZE);
    rc = store_write(st, g, fr, 10, NULL, NULL, &v);
    EXPECT(r, rc == 0 && store_version_generation(v) > r->gen,
           "write after reopen: %s, generation %" PRIu64, store_errname(rc),
           store_version_generation(v));
    store_frame_free(st, fr);
    store_close(st);
}

/* ---- a round ---------------------------------------------------------------
 */

/* nops operations at most; full: no early crash (it comes at the end). */
static void run_round(int no, uint64_t seed, int nops, int full)
{
    struct round *r = calloc(1, sizeof(*r));
    int rc = 0;
    char err[512] = "";
    assert_non_null(r);
    r->no = no;
    r->seed = r->rng = seed;
    r->dir = tu_mkdtemp("crashsim");
    r->cio = crashio_new(store_io_pread_new());
    assert_non_null(r->cio);
    r->f = faultio_new(crashio_io(r->cio));
    assert_non_null(r->f);
    faultio_trace(r->f, 1);
    r->st = tu_try_open(r->dir, faultio_io(r->f), &rc, err, sizeof(err));
    if (!r->st)
        fail_msg("round %d: open: %s (%s)", no, err, store_errname(rc));
    r->open_end = trace_len(r->f);

    int crash_at = full ? nops : (int)rnd(r, (uint64_t)nops + 1);
    int mid = rnd(r, 4) == 0; /* crash inside a failing flush/compaction */
    for (r->ops = 0; r->ops < crash_at; r->ops++) {
        uint64_t k = rnd(r, 100);
        if (k < 45)
            op_write(r);
        else if (k < 58)
            op_batch(r);
        else if (k < 75)
            op_delete(r);
        else if (k < 94)
            op_flush(r, 0, 0);
        else
            op_flush(r, 1, 0);
    }
    if (mid) {
        r->crashed_mid = 1;
        g_stats.mid_crashes++;
        op_flush(r, rnd(r, 3) == 0, 1 + (int)rnd(r, 8));
    }
    audit(r);
    struct store_stats s;
    store_get_stats(r->st, &s);
    r->gen = s.generation;

    crashio_crash(r->cio);
    store_close(r->st); /* every call fails now: nothing reaches the disk */
    r->st = NULL;
    faultio_free(r->f); /* and the crashio and pread backends under it */
    check_after_crash(r);

    g_stats.rounds++;
    g_stats.ops += (uint64_t)r->ops;
    g_stats.later_states += (uint64_t)r->later_states;
    tu_rmtree(r->dir);
    free(r);
}

static int rounds_from_env(void)
{
    const char *e = getenv("BLOBD_CRASHSIM_ROUNDS");
    long n = e ? strtol(e, NULL, 10) : DEFAULT_ROUNDS;
    return n > 0 ? (int)n : DEFAULT_ROUNDS;
}

static uint64_t round_seed(int no)
{
    uint64_t s = tu_seed() + 0x9e3779b97f4a7c15ull * (uint64_t)(no + 1);
    return tu_rand(&s);
}

static void print_stats(const char *name, double secs)
{
    fprintf(
        stderr,
        "%s: %" PRIu64 " rounds, %" PRIu64 " ops, %" PRIu64 " flushes, %" PRIu64
        " compactions, %" PRIu64 " crashes inside a flush/compaction, %" PRIu64
        " flushes audited, %" PRIu64
        " GUIDs found in a state after the last flush; %.1f s\n",
        name, g_stats.rounds, g_stats.ops, g_stats.flushes, g_stats.compactions,
        g_stats.mid_crashes, g_stats.audited, g_stats.later_states, secs);
    memset(&g_stats, 0, sizeof(g_stats));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void finish(const char *name)
{
    int n = g_fail;
    g_fail = 0;
    if (n)
        fail_msg("%s: %d failure(s) (see above)", name, n);
}

static void test_crash_rounds(void **state)
{
    (void)state;
    int rounds = rounds_from_env();
    double t0 = now_s();
    for (int no = 0; no < rounds; no++) {
        uint64_t seed = round_seed(no);
        uint64_t s = seed;
        run_round(no, seed, MIN_OPS + (int)(tu_rand(&s) % (MAX_OPS - MIN_OPS)),
                  0);
    }
    print_stats("crash rounds", now_s() - t0);
    finish("crash rounds");
}

/* One long workload: many flushes to audit, then a crash at its end. */
static void test_long_workload_audit(void **state)
{
    (void)state;
    double t0 = now_s();
    run_round(-1, round_seed(-1), LONG_OPS, 1);
    print_stats("long workload", now_s() - t0);
    finish("long workload");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_rounds),
        cmocka_unit_test(test_long_workload_audit),
    };
    tu_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
