/*
 * test_faults.c - fault injection through faultio (tests/support/faultio.h)
 * around the pread backend: every I/O call of every store operation is
 * failed in turn with EIO, ENOSPC and a short transfer, and the answer is
 * checked against SPEC §2 ("Durability contract", "Running out of space")
 * and §3.  Then the store is closed and reopened on a plain backend: every
 * flushed blob must read back exactly and nothing unflushed may be
 * half-visible (absent, old or complete new state; never a CRC error).
 *
 * The sweep (one cmocka test per operation: open, write, batch write,
 * delete, flush, compaction) runs the operation once on a fresh store to
 * count its I/O calls (FIO_MASK_IO); then for every N in 1..count and every
 * mode a fresh store with the same baseline (sizes and seeds drawn once
 * from tu_seed()) gets its Nth call failed.  The injected call is found in
 * the faultio trace and classified (data write, data sync, preallocation,
 * log append, log sync, snapshot tmp file, ...); the class decides what
 * the SPEC requires.
 *
 * Failed expectations are collected, each printed with the operation, N,
 * the mode and the injected call, and a test fails at its end if any did:
 * one run reports every deviation, not just the first.
 *
 * Also: headroom (faultio_set_avail), preallocation ENOSPC on every try,
 * failure of the log truncate-back, DELETE while every I/O call fails, and
 * a forked child that must not write.
 *
 * Every case makes its own temp dir and removes it.  Single-threaded apart
 * from the fork test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faultio.h"
#include "testutil.h"

#define MG_MAX 64   /* GUIDs a case's model can hold */
#define ALT_MAX 16  /* acknowledged states since the last flush */
#define BASE_N 12   /* baseline blob specs */
#define BATCH_N 5   /* items of the batch write */
#define MAX_LOGS 16 /* log files remembered per case */
#define WRITE_LEN 12345u
#define SMALL_LEN 3000u
#define LOW_AVAIL (1ll << 20) /* free space below any headroom */

/* Writing ops that must not run after a sticky failure (T5). */
#define MASK_CHANGE                                                            \
    (FIO_BIT(FIO_OPENAT) | FIO_BIT(FIO_PWRITEV) | FIO_BIT(FIO_SYNC) |          \
     FIO_BIT(FIO_FALLOCATE) | FIO_BIT(FIO_FTRUNCATE) | FIO_BIT(FIO_RENAMEAT) | \
     FIO_BIT(FIO_UNLINKAT))

/* ---- a model of what the store must hold ----------------------------- */

struct bstate {
    int present;
    uint32_t len;
    uint64_t seed;
};

struct gmodel {
    uint8_t guid[STORE_GUID_SIZE];
    struct bstate cur;          /* last acknowledged state */
    struct bstate dur;          /* state as of the last good flush */
    struct bstate alt[ALT_MAX]; /* states acknowledged since that flush */
    int nalt;
};

struct model {
    struct gmodel g[MG_MAX];
    int n;
};

static struct gmodel *m_find(struct model *m, const uint8_t *guid)
{
    for (int i = 0; i < m->n; i++)
        if (memcmp(m->g[i].guid, guid, STORE_GUID_SIZE) == 0)
            return &m->g[i];
    return NULL;
}

static struct gmodel *m_get(struct model *m, const uint8_t *guid)
{
    struct gmodel *g = m_find(m, guid);
    if (g)
        return g;
    assert_true(m->n < MG_MAX);
    g = &m->g[m->n++];
    memset(g, 0, sizeof(*g));
    memcpy(g->guid, guid, STORE_GUID_SIZE);
    return g;
}

/* An acknowledged change: present == 0 is a delete. */
static void m_ack(struct model *m, const uint8_t *guid, int present,
                  uint32_t len, uint64_t seed)
{
    struct gmodel *g = m_get(m, guid);
    struct bstate s = {.present = present, .len = len, .seed = seed};
    g->cur = s;
    assert_true(g->nalt < ALT_MAX);
    g->alt[g->nalt++] = s;
}

/* A flush returned 0: everything acknowledged is durable. */
static void m_flushed(struct model *m)
{
    for (int i = 0; i < m->n; i++) {
        m->g[i].dur = m->g[i].cur;
        m->g[i].nalt = 0;
    }
}

static int m_present(const struct model *m)
{
    int n = 0;
    for (int i = 0; i < m->n; i++)
        n += m->g[i].cur.present;
    return n;
}

/* ---- one fault case ---------------------------------------------------- */

enum fclass {
    FC_NONE = 0,
    FC_LOCK_OPEN,
    FC_DATA_OPEN,
    FC_DATA_READ,
    FC_DATA_WRITE,
    FC_DATA_SYNC,
    FC_FALLOC,
    FC_LOG_OPEN,
    FC_LOG_READ,
    FC_LOG_WRITE,
    FC_LOG_SYNC,
    FC_LOG_TRUNC,
    FC_LOG_UNLINK,
    FC_SNAP_OPEN,
    FC_SNAP_READ,
    FC_TMP_OPEN,
    FC_TMP_WRITE,
    FC_TMP_SYNC,
    FC_TMP_UNLINK,
    FC_RENAME,
    FC_DIR_SYNC,
    FC_OTHER
};

struct op_def;

struct fc {
    const struct op_def *op;
    uint64_t nth; /* 0: the counting run, no fault */
    enum fio_mode mode;
    char *dir;
    struct faultio *f;
    struct store *st;
    struct model m;
    uint64_t next_guid; /* for later writes */
    /* the trace of the operation and the injected call */
    struct fio_event *trace;
    size_t ntrace, ev_at;
    uint64_t calls;
    int fired;
    struct fio_event ev;
    enum fclass cls;
    /* results */
    int rc, rc2;
    enum store_outcome out, out2;
    struct store_write w[BATCH_N];
    struct store_flush_result fres;
    char err[512];
    char logs[MAX_LOGS][64]; /* log files before the operation */
    int nlogs;
};

struct op_def {
    const char *name;
    void (*setup)(struct fc *c);
    void (*run)(struct fc *c);
    void (*check)(struct fc *c);
};

static int g_fail;    /* expectations failed in the current test */
static int g_verbose; /* BLOBD_TEST_VERBOSE */

static struct {
    uint32_t len[BASE_N];
    uint64_t seed[BASE_N];
} g_base;

static const char *mode_name(enum fio_mode m)
{
    return m == FIO_EIO ? "EIO" : m == FIO_ENOSPC ? "ENOSPC" : "SHORT";
}

static const char *fio_op_name(enum fio_op op)
{
    static const char *const n[FIO_NOPS] = {
        "openat",    "close",     "pread",    "pwritev",  "sync",
        "fallocate", "ftruncate", "renameat", "unlinkat", "fstatvfs"};
    return (unsigned)op < FIO_NOPS ? n[op] : "?";
}

__attribute__((format(printf, 4, 5))) static void
report(const struct fc *c, int line, const char *cond, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c && c->fired)
        fprintf(stderr,
                "test_faults.c:%d: [%s N=%" PRIu64 " %s; fault on %s %s "
                "off=%" PRIu64 " len=%" PRIu64 "] %s -- %s\n",
                line, c->op ? c->op->name : "-", c->nth, mode_name(c->mode),
                fio_op_name(c->ev.op), c->ev.name[0] ? c->ev.name : "(dir)",
                c->ev.off, c->ev.len, cond, msg);
    else if (c)
        fprintf(stderr, "test_faults.c:%d: [%s N=%" PRIu64 " %s] %s -- %s\n",
                line, c->op ? c->op->name : "-", c->nth, mode_name(c->mode),
                cond, msg);
    else
        fprintf(stderr, "test_faults.c:%d: %s -- %s\n", line, cond, msg);
    g_fail++;
}

#define EXPECT(c, cond, ...)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            report((c), __LINE__, #cond, __VA_ARGS__);                         \
    } while (0)

static void end_test(const char *name)
{
    int n = g_fail;
    g_fail = 0;
    if (n)
        fail_msg("%s: %d expectation(s) failed (see above)", name, n);
}

static int is_log_name(const char *n)
{
    return strncmp(n, "log-", 4) == 0 && strlen(n) == 24 &&
           strcmp(n + 20, ".blg") == 0;
}

static enum fclass classify(const struct fio_event *e)
{
    const char *n = e->name;
    int data = strcmp(n, "blobs.dat") == 0, log = is_log_name(n);
    int tmp = strcmp(n, "manifest.bin.tmp") == 0;
    int snap = strcmp(n, "manifest.bin") == 0;
    switch (e->op) {
    case FIO_OPENAT:
        return data                           ? FC_DATA_OPEN
               : log                          ? FC_LOG_OPEN
               : tmp                          ? FC_TMP_OPEN
               : snap                         ? FC_SNAP_OPEN
               : strcmp(n, "store.lock") == 0 ? FC_LOCK_OPEN
                                              : FC_OTHER;
    case FIO_PREAD:
        return data   ? FC_DATA_READ
               : log  ? FC_LOG_READ
               : snap ? FC_SNAP_READ
                      : FC_OTHER;
    case FIO_PWRITEV:
        return data  ? FC_DATA_WRITE
               : log ? FC_LOG_WRITE
               : tmp ? FC_TMP_WRITE
                     : FC_OTHER;
    case FIO_SYNC:
        return data    ? FC_DATA_SYNC
               : log   ? FC_LOG_SYNC
               : tmp   ? FC_TMP_SYNC
               : !n[0] ? FC_DIR_SYNC
                       : FC_OTHER;
    case FIO_FALLOCATE:
        return data ? FC_FALLOC : FC_OTHER;
    case FIO_FTRUNCATE:
        return log ? FC_LOG_TRUNC : FC_OTHER;
    case FIO_RENAMEAT:
        return FC_RENAME;
    case FIO_UNLINKAT:
        return log ? FC_LOG_UNLINK : tmp ? FC_TMP_UNLINK : FC_OTHER;
    default:
        return FC_OTHER;
    }
}

/* ---- files --------------------------------------------------------------- */

static int dir_has(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    struct stat sb;
    int r = lstat(p, &sb) == 0;
    free(p);
    return r;
}

/* The log files in dir (at most MAX_LOGS), unsorted. */
static int list_logs(const char *dir, char out[MAX_LOGS][64])
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (is_log_name(de->d_name) && n < MAX_LOGS)
            memcpy(out[n++], de->d_name, 25); /* 24 chars and NUL */
    closedir(d);
    return n;
}

/* 1 if slot of dir/blobs.dat holds pattern(seed) over len bytes. */
static int slot_holds(const char *dir, uint32_t slot, uint32_t len,
                      uint64_t seed)
{
    char *p = tu_path(dir, "blobs.dat");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return 0;
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    ssize_t n = pread(fd, buf, len, (off_t)slot * STORE_FRAME_SIZE);
    int ok = n == (ssize_t)len && tu_pattern_ok(buf, len, seed);
    free(buf);
    close(fd);
    return ok;
}

/* ---- reading back -------------------------------------------------------- */

static const char *bstate_str(const struct bstate *s, char *buf, size_t n)
{
    if (!s->present)
        snprintf(buf, n, "absent");
    else
        snprintf(buf, n, "len %" PRIu32 " seed %" PRIu64, s->len, s->seed);
    return buf;
}

/*
 * Read g from st and compare with the allowed states: only cur when exact,
 * else dur or any state acknowledged since (never a CRC error).
 */
static void check_guid(struct fc *c, struct store *st, const struct gmodel *g,
                       int exact, const char *when)
{
    void *fr = store_frame_alloc(st);
    struct store_blob_info info;
    struct bstate allowed[ALT_MAX + 1];
    int na = 0, ok = 0;
    char gs[40], a[64];
    assert_non_null(fr);
    if (exact) {
        allowed[na++] = g->cur;
    } else {
        allowed[na++] = g->dur;
        for (int i = 0; i < g->nalt; i++)
            allowed[na++] = g->alt[i];
    }
    snprintf(gs, sizeof(gs), "%02x%02x..%02x%02x", g->guid[0], g->guid[1],
             g->guid[14], g->guid[15]);
    memset(&info, 0, sizeof(info));
    int rc = store_read(st, g->guid, fr, &info);
    if (rc == STORE_E_NOT_FOUND) {
        for (int i = 0; i < na; i++)
            ok |= !allowed[i].present;
        EXPECT(c, ok, "%s: guid %s is absent; expected %s%s", when, gs,
               bstate_str(&allowed[0], a, sizeof(a)),
               na > 1 ? " (or a later acknowledged state)" : "");
    } else if (rc == 0) {
        for (int i = 0; i < na; i++)
            ok |= allowed[i].present && allowed[i].len == info.len &&
                  tu_pattern_ok(fr, info.len, allowed[i].seed);
        EXPECT(c, ok,
               "%s: guid %s reads %" PRIu32 " bytes matching no allowed "
               "state; expected %s%s",
               when, gs, info.len, bstate_str(&allowed[0], a, sizeof(a)),
               na > 1 ? " (or a later acknowledged state)" : "");
    } else {
        EXPECT(c, 0, "%s: store_read(guid %s) = %s (%s): torn or unreadable",
               when, gs, store_errname(rc), store_strerror(rc));
    }
    store_frame_free(st, fr);
}

/* Every GUID of the model, and no GUID the model does not know. */
static void check_model(struct fc *c, struct store *st, int exact,
                        const char *when)
{
    struct store_blob_info *all = calloc(1024, sizeof(*all));
    int more = 0;
    assert_non_null(all);
    for (int i = 0; i < c->m.n; i++)
        check_guid(c, st, &c->m.g[i], exact, when);
    int n = store_list(st, NULL, 1024, all, &more);
    EXPECT(c, n >= 0 && !more, "%s: store_list = %d", when, n);
    for (int i = 0; i < n; i++)
        EXPECT(c, m_find(&c->m, all[i].guid) != NULL,
               "%s: store lists a GUID that was never written", when);
    if (exact)
        EXPECT(c, n == m_present(&c->m), "%s: %d entries, expected %d", when, n,
               m_present(&c->m));
    free(all);
}

/* ---- writing ------------------------------------------------------------- */

static void guid_of(uint8_t g[STORE_GUID_SIZE], uint64_t n)
{
    tu_guid_num(g, n);
}

/* A write through the store; acknowledged writes go into the model. */
static int put(struct fc *c, uint64_t num, uint32_t len, uint64_t seed,
               enum store_outcome *outp)
{
    uint8_t g[STORE_GUID_SIZE];
    enum store_outcome out = STORE_OUT_NONE;
    void *fr = store_frame_alloc(c->st);
    assert_non_null(fr);
    guid_of(g, num);
    tu_pattern(fr, len, seed);
    int rc = store_write(c->st, g, fr, len, NULL, &out, NULL);
    if (rc == 0)
        m_ack(&c->m, g, 1, len, seed);
    store_frame_free(c->st, fr);
    if (outp)
        *outp = out;
    return rc;
}

/* Baseline write of spec idx as GUID num (asserts success). */
static void base_put(struct fc *c, uint64_t num, int idx)
{
    uint8_t g[STORE_GUID_SIZE];
    guid_of(g, num);
    tu_put(c->st, g, g_base.len[idx], g_base.seed[idx]);
    m_ack(&c->m, g, 1, g_base.len[idx], g_base.seed[idx]);
}

static void base_del(struct fc *c, uint64_t num)
{
    uint8_t g[STORE_GUID_SIZE];
    enum store_outcome out;
    guid_of(g, num);
    assert_int_equal(store_delete(c->st, g, NULL, &out), 0);
    m_ack(&c->m, g, 0, 0, 0);
}

static void base_flush(struct fc *c)
{
    assert_int_equal(store_flush(c->st, NULL), 0);
    m_flushed(&c->m);
}

static void base_spec_init(uint64_t salt)
{
    uint64_t s = tu_seed() ^ salt;
    for (int i = 0; i < BASE_N; i++) {
        uint64_t r = tu_rand(&s);
        g_base.len[i] = r % 4 == 0
                            ? (uint32_t)(tu_rand(&s) % (STORE_FRAME_SIZE + 1))
                            : (uint32_t)(tu_rand(&s) % 20000);
        g_base.seed[i] = tu_rand(&s);
    }
}

/* ---- shared expectations ------------------------------------------------- */

/* The store took no sticky failure; a later write and flush succeed, and
 * the store then holds exactly the model. */
static void expect_recovers(struct fc *c)
{
    EXPECT(c, store_failed(c->st) == 0, "store went sticky (%s)",
           store_errname(store_failed(c->st)));
    if (store_failed(c->st))
        return;
    check_model(c, c->st, 1, "after the fault, same store");
    uint64_t num = c->next_guid++;
    enum store_outcome out;
    int rc = put(c, num, SMALL_LEN, num * 77, &out);
    EXPECT(c, rc == 0 && out == STORE_OUT_CREATED, "a later write: %s (%s)",
           store_errname(rc), store_outcome_name(out));
    rc = store_flush(c->st, NULL);
    EXPECT(c, rc == 0, "a later flush: %s", store_errname(rc));
    if (rc == 0)
        m_flushed(&c->m);
}

/*
 * The operation made the store sticky (G3): it answered STORE_E_FAILED,
 * stats name the operation (what) and the file, and later writes, deletes,
 * flushes and compactions fail without touching the disk (T5).
 */
static void expect_sticky(struct fc *c, const char *what)
{
    struct store_stats s;
    EXPECT(c, c->rc == STORE_E_FAILED,
           "operation returned %s, not FAILED, though the store is sticky",
           store_errname(c->rc));
    EXPECT(c, store_failed(c->st) != 0, "store is not sticky");
    if (!store_failed(c->st))
        return;
    store_get_stats(c->st, &s);
    EXPECT(c, strstr(s.last_sticky_error, what) != NULL,
           "last_sticky_error \"%s\" does not mention %s", s.last_sticky_error,
           what);
    if (c->ev.name[0])
        EXPECT(c, strstr(s.last_sticky_error, c->ev.name) != NULL,
               "last_sticky_error \"%s\" does not name %s", s.last_sticky_error,
               c->ev.name);
    EXPECT(c, store_needs_flush(c->st) == 1, "needs_flush cleared");
    faultio_reset_counts(c->f);
    uint8_t g[STORE_GUID_SIZE];
    enum store_outcome out = STORE_OUT_NONE;
    void *fr = store_frame_alloc(c->st);
    assert_non_null(fr);
    guid_of(g, c->next_guid++);
    memset(fr, 7, STORE_PAGE_SIZE);
    int rc = store_write(c->st, g, fr, 100, NULL, &out, NULL);
    EXPECT(c, rc == STORE_E_FAILED && out == STORE_OUT_STORE_FAILED,
           "write after sticky: %s (%s)", store_errname(rc),
           store_outcome_name(out));
    store_frame_free(c->st, fr);
    guid_of(g, 1);
    rc = store_delete(c->st, g, NULL, &out);
    EXPECT(c, rc == STORE_E_FAILED, "delete after sticky: %s",
           store_errname(rc));
    rc = store_flush(c->st, NULL);
    EXPECT(c, rc == STORE_E_FAILED, "flush after sticky: %s",
           store_errname(rc));
    rc = store_compact(c->st);
    EXPECT(c, rc == STORE_E_FAILED, "compact after sticky: %s",
           store_errname(rc));
    EXPECT(c, faultio_calls(c->f, MASK_CHANGE) == 0,
           "%" PRIu64 " disk-changing calls after the sticky failure (T5)",
           faultio_calls(c->f, MASK_CHANGE));
}

/* A write item failed as the mode says: ENOSPC or short -> no space,
 * EIO -> store failed with -EIO. */
static void expect_failed_item(struct fc *c, const char *what,
                               enum store_outcome out, int rc, uint64_t version,
                               int eio)
{
    enum store_outcome want = eio ? STORE_OUT_STORE_FAILED : STORE_OUT_NO_SPACE;
    int want_rc = eio ? -EIO : STORE_E_NOSPACE;
    EXPECT(c, out == want && rc == want_rc, "%s: %s rc %s, expected %s rc %s",
           what, store_outcome_name(out), store_errname(rc),
           store_outcome_name(want), store_errname(want_rc));
    EXPECT(c, version == 0, "%s: failed write reports version %" PRIu64, what,
           version);
}

/* Index of the first event after from with op on fd, or ntrace. */
static size_t trace_next(const struct fc *c, size_t from, enum fio_op op,
                         int fd)
{
    for (size_t i = from; i < c->ntrace; i++)
        if (c->trace[i].op == op && (fd < 0 || c->trace[i].fd == fd))
            return i;
    return c->ntrace;
}

/* ---- the sweep ----------------------------------------------------------- */

static void case_begin(struct fc *c, const struct op_def *op, uint64_t nth,
                       enum fio_mode mode)
{
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->nth = nth;
    c->mode = mode;
    c->next_guid = 1000;
    c->dir = tu_mkdtemp("faults");
    c->f = faultio_new(store_io_pread_new());
    assert_non_null(c->f);
    op->setup(c);
    c->nlogs = list_logs(c->dir, c->logs);
}

/* Run the operation with the Nth call armed; find the injected call. */
static void case_fire(struct fc *c)
{
    faultio_reset_counts(c->f);
    faultio_trace_clear(c->f);
    faultio_trace(c->f, 1);
    if (c->nth)
        faultio_arm(c->f, FIO_MASK_IO, c->nth, c->mode);
    c->op->run(c);
    faultio_disarm(c->f);
    faultio_trace(c->f, 0);
    c->calls = faultio_calls(c->f, FIO_MASK_IO);
    c->ntrace = faultio_trace_get(c->f, &c->trace);
    for (size_t i = 0; i < c->ntrace; i++) {
        if (c->trace[i].injected) {
            c->ev = c->trace[i];
            c->ev_at = i;
            c->fired = 1;
            c->cls = classify(&c->ev);
            break;
        }
    }
    if (c->nth)
        EXPECT(c, c->fired,
               "the armed call was never made (%" PRIu64 " calls this time)",
               c->calls);
}

/* Close, reopen on a plain backend and check the model; clean up. */
static void case_end(struct fc *c)
{
    int rc = 0;
    char err[512] = "";
    store_close(c->st);
    c->st = NULL;
    faultio_free(c->f);
    c->f = NULL;
    struct store *st = tu_try_open(c->dir, NULL, &rc, err, sizeof(err));
    EXPECT(c, st != NULL, "reopen on a plain backend: %s (%s)", err,
           store_errname(rc));
    if (st) {
        check_model(c, st, 0, "after reopen");
        store_close(st);
    }
    free(c->trace);
    c->trace = NULL;
    tu_rmtree(c->dir);
    c->dir = NULL;
}

static void sweep(const struct op_def *op, uint64_t salt)
{
    static const enum fio_mode modes[] = {FIO_EIO, FIO_ENOSPC, FIO_SHORT};
    struct fc *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    g_verbose = getenv("BLOBD_TEST_VERBOSE") != NULL;
    base_spec_init(salt);
    case_begin(c, op, 0, FIO_EIO);
    case_fire(c);
    uint64_t count = c->calls;
    op->check(c);
    case_end(c);
    fprintf(stderr, "%s: %" PRIu64 " I/O calls; %" PRIu64 " fault cases\n",
            op->name, count, count * 3);
    for (uint64_t nth = 1; nth <= count; nth++) {
        for (size_t k = 0; k < sizeof(modes) / sizeof(modes[0]); k++) {
            case_begin(c, op, nth, modes[k]);
            case_fire(c);
            if (c->fired)
                op->check(c);
            case_end(c);
        }
    }
    free(c);
    end_test(op->name);
}

/* ---- open ---------------------------------------------------------------- */

/* Snapshot plus a log of several groups, a hole and a rewrite. */
static void setup_open(struct fc *c)
{
    c->st = tu_open(c->dir, faultio_io(c->f));
    for (int i = 1; i <= 4; i++)
        base_put(c, (uint64_t)i, i - 1);
    base_flush(c);
    base_put(c, 5, 4);
    base_put(c, 6, 5);
    base_flush(c);
    assert_int_equal(store_compact(c->st), 0);
    base_put(c, 1, 8); /* rewrite */
    base_del(c, 2);
    base_flush(c);
    base_put(c, 7, 6);
    base_flush(c);
    base_put(c, 8, 7);
    base_flush(c);
    store_close(c->st);
    c->st = NULL;
}

static void run_open(struct fc *c)
{
    c->st =
        tu_try_open(c->dir, faultio_io(c->f), &c->rc, c->err, sizeof(c->err));
}

static void check_open(struct fc *c)
{
    if (!c->nth) {
        EXPECT(c, c->st != NULL, "open without a fault: %s", c->err);
    } else if (!c->st) {
        EXPECT(c, c->rc < 0, "failed open set rc %d", c->rc);
        EXPECT(c, c->err[0] != '\0', "failed open left errbuf empty");
        if (g_verbose)
            fprintf(stderr, "  open N=%" PRIu64 " %s: %s\n", c->nth,
                    mode_name(c->mode), c->err);
        return;
    } else if (g_verbose) {
        fprintf(stderr, "  open N=%" PRIu64 " %s tolerated %s on %s\n", c->nth,
                mode_name(c->mode), fio_op_name(c->ev.op),
                c->ev.name[0] ? c->ev.name : "(dir)");
    }
    if (!c->st)
        return;
    /* An open that succeeds despite the fault must hold every blob. */
    EXPECT(c, (int)store_count(c->st) == m_present(&c->m),
           "opened with %" PRIu64 " blobs, expected %d", store_count(c->st),
           m_present(&c->m));
    expect_recovers(c);
}

/* ---- single write ----------------------------------------------------------
 */

/*
 * Slots 0..6 hold GUIDs 1..7 (flushed); GUID 1 is rewritten unflushed to
 * slot 7, so slot 0 is pending-free.  The write of a new GUID needs slot 8:
 * the data file must grow (fallocate), then the data write.
 */
static void setup_write(struct fc *c)
{
    c->st = tu_open(c->dir, faultio_io(c->f));
    for (int i = 1; i <= 7; i++) {
        base_put(c, (uint64_t)i, i - 1);
        if (i == 3)
            base_flush(c);
    }
    base_flush(c);
    base_put(c, 1, 8);
}

static void run_write(struct fc *c)
{
    c->rc = put(c, 101, WRITE_LEN, 0xabc, &c->out);
}

static void check_write(struct fc *c)
{
    struct store_stats s;
    if (!c->nth) {
        EXPECT(c, c->rc == 0 && c->out == STORE_OUT_CREATED, "write: %s",
               store_errname(c->rc));
    } else if (c->cls == FC_FALLOC && c->mode == FIO_ENOSPC) {
        /* SPEC: retry for just the slots needed. */
        EXPECT(c, c->rc == 0 && c->out == STORE_OUT_CREATED,
               "write after one preallocation ENOSPC: %s (%s)",
               store_errname(c->rc), store_outcome_name(c->out));
        size_t r = trace_next(c, c->ev_at + 1, FIO_FALLOCATE, c->ev.fd);
        EXPECT(c,
               r < c->ntrace && c->trace[r].rc == 0 &&
                   c->trace[r].len < c->ev.len,
               "no smaller fallocate retry after ENOSPC");
    } else if (c->cls == FC_FALLOC) {
        expect_failed_item(c, "write needing growth", c->out, c->rc, 0, 1);
    } else if (c->cls == FC_DATA_WRITE) {
        expect_failed_item(c, "write", c->out, c->rc, 0, c->mode == FIO_EIO);
    } else {
        EXPECT(c, 0, "unexpected I/O call in a write (class %d)", c->cls);
    }
    /* The failed write rolled back only its own reservation (T3). */
    store_get_stats(c->st, &s);
    EXPECT(c, s.pending_free == 1, "pending_free %" PRIu64 ", expected 1",
           s.pending_free);
    EXPECT(c, slot_holds(c->dir, 0, g_base.len[0], g_base.seed[0]),
           "slot 0 (old copy of GUID 1) changed before the rewrite was "
           "flushed");
    if (c->rc != 0) { /* the same write, now without a fault */
        int rc = put(c, 101, WRITE_LEN, 0xabc, &c->out);
        EXPECT(c, rc == 0, "retry of the failed write: %s", store_errname(rc));
        EXPECT(c, slot_holds(c->dir, 0, g_base.len[0], g_base.seed[0]),
               "retry reused pending-free slot 0 before a flush");
    }
    expect_recovers(c);
}

/* ---- batch write -----------------------------------------------------------
 */

/* GUIDs 1..8 fill slots 0..7 (the first preallocated chunk). */
static void setup_batch(struct fc *c)
{
    c->st = tu_open(c->dir, faultio_io(c->f));
    for (int i = 1; i <= 8; i++) {
        base_put(c, (uint64_t)i, i - 1);
        if (i == 4)
            base_flush(c);
    }
    base_flush(c);
}

/* GUID 101 twice (the last wins), a rewrite of GUID 3, new 102 and 103.
 * Two full frames in a row: B and A coalesce with C into one pwritev. */
static const struct {
    uint64_t guid;
    uint32_t len;
    enum store_outcome ok;
} batch_items[BATCH_N] = {
    {101, 1000, STORE_OUT_CREATED},
    {3, STORE_FRAME_SIZE, STORE_OUT_REPLACED},
    {102, 5000, STORE_OUT_CREATED},
    {101, STORE_FRAME_SIZE, STORE_OUT_REPLACED},
    {103, 70000, STORE_OUT_CREATED},
};

static int batch_winner(int i)
{
    for (int j = i + 1; j < BATCH_N; j++)
        if (batch_items[j].guid == batch_items[i].guid)
            return 0;
    return 1;
}

static void run_batch(struct fc *c)
{
    uint8_t g[BATCH_N][STORE_GUID_SIZE];
    for (int i = 0; i < BATCH_N; i++) {
        guid_of(g[i], batch_items[i].guid);
        memset(&c->w[i], 0, sizeof(c->w[i]));
        c->w[i].guid = g[i];
        c->w[i].frame = store_frame_alloc(c->st);
        assert_non_null(c->w[i].frame);
        c->w[i].len = batch_items[i].len;
        tu_pattern(c->w[i].frame, c->w[i].len, 500 + (uint64_t)i);
    }
    c->rc = store_write_batch(c->st, c->w, BATCH_N);
    for (int i = 0; i < BATCH_N; i++) {
        if (batch_winner(i) && (c->w[i].outcome == STORE_OUT_CREATED ||
                                c->w[i].outcome == STORE_OUT_REPLACED))
            m_ack(&c->m, g[i], 1, c->w[i].len, 500 + (uint64_t)i);
        store_frame_free(c->st, c->w[i].frame);
        c->w[i].frame = NULL;
        c->w[i].guid = NULL;
    }
}

static int item_ok(const struct store_write *w)
{
    return w->outcome == STORE_OUT_CREATED || w->outcome == STORE_OUT_REPLACED;
}

static void check_batch(struct fc *c)
{
    uint64_t failed_bytes = 0, want_bytes = 0;
    int nfailed = 0;
    EXPECT(c, c->rc == 0, "store_write_batch = %s", store_errname(c->rc));
    for (int i = 0; i < BATCH_N; i++) {
        char what[32];
        snprintf(what, sizeof(what), "item %d", i);
        /* Items of one GUID share the fate of its last write. */
        for (int j = 0; j < BATCH_N; j++)
            if (batch_items[j].guid == batch_items[i].guid)
                EXPECT(c, item_ok(&c->w[i]) == item_ok(&c->w[j]),
                       "items %d and %d of one GUID differ", i, j);
        if (item_ok(&c->w[i])) {
            EXPECT(c, c->w[i].outcome == batch_items[i].ok,
                   "%s: %s, expected %s", what,
                   store_outcome_name(c->w[i].outcome),
                   store_outcome_name(batch_items[i].ok));
            EXPECT(c, c->w[i].version != 0, "%s: no version", what);
            continue;
        }
        expect_failed_item(c, what, c->w[i].outcome, c->w[i].rc,
                           c->w[i].version,
                           c->mode == FIO_EIO || c->cls == FC_FALLOC);
        if (batch_winner(i)) {
            nfailed++;
            failed_bytes += (batch_items[i].len + STORE_PAGE_SIZE - 1) /
                            STORE_PAGE_SIZE * STORE_PAGE_SIZE;
        }
    }
    if (!c->nth || (c->cls == FC_FALLOC && c->mode == FIO_ENOSPC)) {
        EXPECT(c, nfailed == 0, "%d GUIDs failed", nfailed);
    } else if (c->cls == FC_FALLOC) {
        /* Every winner needs the data file to grow. */
        EXPECT(c, nfailed == 4, "%d GUIDs failed, expected all 4", nfailed);
    } else if (c->cls == FC_DATA_WRITE) {
        want_bytes = c->ev.len; /* exactly the frames of that pwritev */
        EXPECT(c, nfailed > 0 && failed_bytes == want_bytes,
               "failed GUIDs cover %" PRIu64 " bytes, the failed pwritev "
               "%" PRIu64,
               failed_bytes, want_bytes);
    } else {
        EXPECT(c, 0, "unexpected I/O call in a batch write (class %d)", c->cls);
    }
    expect_recovers(c);
}

/* ---- delete ----------------------------------------------------------------
 */

static void setup_delete(struct fc *c)
{
    c->st = tu_open(c->dir, faultio_io(c->f));
    for (int i = 1; i <= 8; i++)
        base_put(c, (uint64_t)i, i - 1);
    base_flush(c);
}

static void run_delete(struct fc *c)
{
    uint8_t g[STORE_GUID_SIZE];
    guid_of(g, 3);
    c->rc = store_delete(c->st, g, NULL, &c->out);
    if (c->rc == 0)
        m_ack(&c->m, g, 0, 0, 0);
    guid_of(g, 999);
    c->rc2 = store_delete(c->st, g, NULL, &c->out2);
}

static void check_delete(struct fc *c)
{
    if (c->nth) /* delete only queues the change; any I/O is unexpected */
        EXPECT(c, 0, "unexpected I/O call in a delete (class %d)", c->cls);
    EXPECT(c, c->rc == 0 && c->out == STORE_OUT_DELETED, "delete: %s (%s)",
           store_errname(c->rc), store_outcome_name(c->out));
    EXPECT(c, c->rc2 == STORE_E_NOT_FOUND && c->out2 == STORE_OUT_NOT_FOUND,
           "delete of a missing GUID: %s (%s)", store_errname(c->rc2),
           store_outcome_name(c->out2));
    expect_recovers(c);
}

/* ---- flush -----------------------------------------------------------------
 */

/* A flushed baseline, then unflushed writes, a rewrite and deletes. */
static void setup_flush(struct fc *c)
{
    enum store_outcome out;
    c->st = tu_open(c->dir, faultio_io(c->f));
    for (int i = 1; i <= 8; i++)
        base_put(c, (uint64_t)i, i - 1);
    base_flush(c);
    assert_int_equal(put(c, 201, SMALL_LEN, 201, &out), 0);
    base_put(c, 4, 9);
    base_del(c, 5);
    assert_int_equal(put(c, 202, 0, 202, &out), 0);
    base_del(c, 6);
}

static void run_flush(struct fc *c)
{
    c->rc = store_flush(c->st, &c->fres);
    if (c->rc == 0)
        m_flushed(&c->m);
}

static void check_flush(struct fc *c)
{
    if (!c->nth) {
        EXPECT(c, c->rc == 0 && c->fres.records == 5 && c->fres.data_synced,
               "flush: %s, %" PRIu64 " records", store_errname(c->rc),
               c->fres.records);
        expect_recovers(c);
        return;
    }
    switch (c->cls) {
    case FC_DATA_SYNC:
    case FC_LOG_SYNC:
        expect_sticky(c, "sync");
        return;
    case FC_LOG_WRITE:
        if (c->mode == FIO_EIO) {
            expect_sticky(c, "write");
            return;
        }
        break;
    default:
        EXPECT(c, 0, "unexpected I/O call in a flush (class %d)", c->cls);
        return;
    }
    /* Log append out of space: truncate back, sync, records stay pending. */
    EXPECT(c, c->rc == STORE_E_NOSPACE, "flush = %s, expected NOSPACE",
           store_errname(c->rc));
    EXPECT(c, store_failed(c->st) == 0, "log ENOSPC made the store sticky");
    EXPECT(c, store_needs_flush(c->st) == 1, "needs_flush cleared");
    size_t t = trace_next(c, c->ev_at + 1, FIO_FTRUNCATE, c->ev.fd);
    EXPECT(c, t < c->ntrace && c->trace[t].rc == 0, "no truncate-back");
    size_t s = trace_next(c, t, FIO_SYNC, c->ev.fd);
    EXPECT(c, s < c->ntrace && c->trace[s].rc == 0,
           "no sync after the truncate-back");
    if (store_failed(c->st))
        return;
    struct store_flush_result res;
    int rc = store_flush(c->st, &res);
    EXPECT(c, rc == 0 && res.records == 5,
           "retried flush: %s, %" PRIu64 " records", store_errname(rc),
           res.records);
    if (rc == 0)
        m_flushed(&c->m);
    expect_recovers(c);
}

/* ---- compaction ------------------------------------------------------------
 */

/* Several groups in one log, a hole and a rewrite; nothing pending. */
static void setup_compact(struct fc *c)
{
    c->st = tu_open(c->dir, faultio_io(c->f));
    for (int i = 1; i <= 8; i++) {
        base_put(c, (uint64_t)i, i - 1);
        if (i == 3 || i == 6)
            base_flush(c);
    }
    base_flush(c);
    base_put(c, 2, 9);
    base_del(c, 3);
    base_flush(c);
}

static void run_compact(struct fc *c)
{
    c->rc = store_compact(c->st);
}

/* A failed compaction removed its tmp file and kept every log. */
static void expect_compaction_undone(struct fc *c)
{
    EXPECT(c, c->rc < 0, "store_compact = %s", store_errname(c->rc));
    EXPECT(c, !dir_has(c->dir, "manifest.bin.tmp"),
           "manifest.bin.tmp left behind");
    for (int i = 0; i < c->nlogs; i++)
        EXPECT(c, dir_has(c->dir, c->logs[i]), "%s removed", c->logs[i]);
}

/* Recover, then a later compaction succeeds and leaves one log. */
static void expect_compaction_later(struct fc *c)
{
    char logs[MAX_LOGS][64];
    expect_recovers(c);
    if (store_failed(c->st))
        return;
    int rc = store_compact(c->st);
    EXPECT(c, rc == 0, "later compaction: %s", store_errname(rc));
    EXPECT(c, dir_has(c->dir, "manifest.bin"), "no manifest.bin");
    EXPECT(c, !dir_has(c->dir, "manifest.bin.tmp"), "tmp left behind");
    int n = list_logs(c->dir, logs);
    EXPECT(c, n == 1, "%d log files after a good compaction", n);
}

static void check_compact(struct fc *c)
{
    /* Whenever the store went sticky, expect_sticky() also requires
     * store_compact to have answered STORE_E_FAILED. */
    int sticky = store_failed(c->st) != 0;
    if (!c->nth) {
        EXPECT(c, c->rc == 0, "compaction: %s", store_errname(c->rc));
        expect_compaction_later(c);
        return;
    }
    switch (c->cls) {
    case FC_LOG_SYNC:
    case FC_TMP_SYNC:
    case FC_DIR_SYNC:
        expect_sticky(c, "sync");
        return;
    case FC_LOG_OPEN:
    case FC_TMP_OPEN:
    case FC_RENAME:
        EXPECT(c, !sticky, "compaction %s failure made the store sticky",
               fio_op_name(c->ev.op));
        break;
    case FC_TMP_WRITE:
        /* ENOSPC/short: the table says not sticky.  EIO on the tmp file
         * is in neither list: either answer is consistent. */
        if (c->mode != FIO_EIO)
            EXPECT(c, !sticky, "snapshot tmp ENOSPC made the store sticky");
        break;
    case FC_LOG_WRITE:
        /* The header of a new, unused log: either answer is consistent. */
        if (!sticky) {
            char logs[MAX_LOGS][64];
            EXPECT(c, list_logs(c->dir, logs) == c->nlogs,
                   "a half-made log file was left behind");
        }
        break;
    case FC_LOG_UNLINK:
        /* A covered log that cannot be removed is kept and replayed. */
        EXPECT(c, c->rc == 0, "store_compact = %s", store_errname(c->rc));
        EXPECT(c, !sticky, "unlink failure made the store sticky");
        EXPECT(c, dir_has(c->dir, c->ev.name), "%s gone", c->ev.name);
        if (!sticky)
            expect_compaction_later(c);
        return;
    default:
        EXPECT(c, 0, "unexpected I/O call in a compaction (class %d)", c->cls);
        return;
    }
    if (sticky) {
        expect_sticky(c, c->ev.op == FIO_PWRITEV ? "write" : "compaction");
        return;
    }
    expect_compaction_undone(c);
    expect_compaction_later(c);
}

/* ---- the sweeps
 * -------------------------------------------------------------- */

static const struct op_def op_open = {"open", setup_open, run_open, check_open};
static const struct op_def op_write = {"write", setup_write, run_write,
                                       check_write};
static const struct op_def op_batch = {"batch", setup_batch, run_batch,
                                       check_batch};
static const struct op_def op_delete = {"delete", setup_delete, run_delete,
                                        check_delete};
static const struct op_def op_flush = {"flush", setup_flush, run_flush,
                                       check_flush};
static const struct op_def op_compact = {"compact", setup_compact, run_compact,
                                         check_compact};

static void test_faults_open(void **state)
{
    (void)state;
    sweep(&op_open, 1);
}

static void test_faults_write(void **state)
{
    (void)state;
    sweep(&op_write, 2);
}

static void test_faults_batch_write(void **state)
{
    (void)state;
    sweep(&op_batch, 3);
}

static void test_faults_delete(void **state)
{
    (void)state;
    sweep(&op_delete, 4);
}

static void test_faults_flush(void **state)
{
    (void)state;
    sweep(&op_flush, 5);
}

static void test_faults_compaction(void **state)
{
    (void)state;
    sweep(&op_compact, 6);
}

/* ---- single scenarios ------------------------------------------------------
 */

static struct fc *scenario_begin(uint64_t salt, void (*setup)(struct fc *c))
{
    static const struct op_def op = {"scenario", NULL, NULL, NULL};
    struct fc *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    base_spec_init(salt);
    c->op = &op;
    c->next_guid = 1000;
    c->dir = tu_mkdtemp("faults");
    c->f = faultio_new(store_io_pread_new());
    assert_non_null(c->f);
    setup(c);
    return c;
}

static void scenario_end(struct fc *c, const char *name)
{
    case_end(c);
    free(c);
    end_test(name);
}

/* SPEC "Running out of space": preallocation ENOSPC on every try -> 507 for
 * the writes that need growth only; not sticky. */
static void test_prealloc_enospc_fails_only_growth(void **state)
{
    (void)state;
    struct fc *c = scenario_begin(7, setup_batch);
    uint8_t g[2][STORE_GUID_SIZE];
    struct store_write w[2];
    base_del(c, 8);
    base_flush(c); /* slot 7 is free again */
    faultio_trace_clear(c->f);
    faultio_trace(c->f, 1);
    faultio_arm_all(c->f, FIO_BIT(FIO_FALLOCATE), FIO_ENOSPC);
    memset(w, 0, sizeof(w));
    for (int i = 0; i < 2; i++) {
        guid_of(g[i], 301 + (uint64_t)i);
        w[i].guid = g[i];
        w[i].frame = store_frame_alloc(c->st);
        w[i].len = SMALL_LEN;
        tu_pattern(w[i].frame, SMALL_LEN, 301 + (uint64_t)i);
    }
    int rc = store_write_batch(c->st, w, 2);
    faultio_disarm(c->f);
    faultio_trace(c->f, 0);
    EXPECT(c, rc == 0, "store_write_batch = %s", store_errname(rc));
    int ok = 0, nospace = 0;
    for (int i = 0; i < 2; i++) {
        if (w[i].outcome == STORE_OUT_CREATED) {
            ok++;
            m_ack(&c->m, g[i], 1, SMALL_LEN, 301 + (uint64_t)i);
        } else if (w[i].outcome == STORE_OUT_NO_SPACE &&
                   w[i].rc == STORE_E_NOSPACE) {
            nospace++;
        }
        store_frame_free(c->st, w[i].frame);
    }
    EXPECT(c, ok == 1 && nospace == 1,
           "%d created (the reused slot) and %d no-space (the growth), "
           "expected 1 and 1",
           ok, nospace);
    c->ntrace = faultio_trace_get(c->f, &c->trace);
    size_t a = trace_next(c, 0, FIO_FALLOCATE, -1);
    size_t b =
        a < c->ntrace ? trace_next(c, a + 1, FIO_FALLOCATE, -1) : c->ntrace;
    EXPECT(c,
           b < c->ntrace && c->trace[b].len == STORE_FRAME_SIZE &&
               c->trace[a].len > c->trace[b].len,
           "no retry of the preallocation for just the slot needed");
    expect_recovers(c);
    scenario_end(c, "prealloc_enospc");
}

/* SPEC: a failed truncate-back of the log (or its sync) is sticky. */
static void truncate_back(unsigned second, const char *name)
{
    struct fc *c = scenario_begin(8, setup_batch);
    enum store_outcome out;
    /* Deletes only: the data file is clean, so the flush starts with the
     * log append (the first sync is the truncate-back's). */
    base_del(c, 2);
    base_del(c, 5);
    if (second == FIO_FTRUNCATE)
        assert_int_equal(put(c, 401, SMALL_LEN, 401, &out), 0);
    faultio_arm_all(c->f, FIO_BIT(FIO_PWRITEV) | FIO_BIT(second), FIO_ENOSPC);
    c->rc = store_flush(c->st, NULL);
    faultio_disarm(c->f);
    c->fired = 0;
    expect_sticky(c, "truncate");
    scenario_end(c, name);
}

static void test_truncate_back_failure_is_sticky(void **state)
{
    (void)state;
    truncate_back(FIO_FTRUNCATE, "truncate_back_ftruncate");
}

static void test_truncate_back_sync_failure_is_sticky(void **state)
{
    (void)state;
    truncate_back(FIO_SYNC, "truncate_back_sync");
}

/* SPEC: a DELETE only queues the change; it works while the disk fails. */
static void test_delete_with_failing_io(void **state)
{
    (void)state;
    struct fc *c = scenario_begin(9, setup_delete);
    uint8_t g[STORE_GUID_SIZE];
    struct store_blob_info info;
    enum store_outcome out;
    guid_of(g, 4);
    faultio_arm_all(c->f, FIO_MASK_IO, FIO_EIO);
    int rc = store_delete(c->st, g, NULL, &out);
    EXPECT(c, rc == 0 && out == STORE_OUT_DELETED, "delete: %s",
           store_errname(rc));
    if (rc == 0)
        m_ack(&c->m, g, 0, 0, 0);
    EXPECT(c, store_stat(c->st, g, &info) == STORE_E_NOT_FOUND,
           "deleted GUID still visible");
    c->rc = store_flush(c->st, NULL);
    faultio_disarm(c->f);
    expect_sticky(c, "write");
    scenario_end(c, "delete_failing_io");
}

static void setup_one_blob(struct fc *c)
{
    c->st = tu_open(c->dir, faultio_io(c->f));
    base_put(c, 1, 0);
    base_flush(c);
}

/*
 * SPEC headroom: below it a write that would grow blobs.dat gets 507 while
 * writes into preallocated or freed slots, DELETE, flush and compaction
 * still run.  One blob makes the first 8-slot chunk: slots 1..7 are
 * preallocated.
 */
static void test_headroom(void **state)
{
    (void)state;
    struct fc *c = scenario_begin(10, setup_one_blob);
    struct store_stats s;
    enum store_outcome out;
    uint8_t g[STORE_GUID_SIZE];
    faultio_set_avail(c->f, LOW_AVAIL);
    faultio_reset_counts(c->f);
    int rc = put(c, 1, SMALL_LEN, 11, &out); /* rewrite: slot 1 */
    EXPECT(c, rc == 0 && out == STORE_OUT_REPLACED, "rewrite: %s (%s)",
           store_errname(rc), store_outcome_name(out));
    for (uint64_t n = 2; n <= 7; n++) {
        rc = put(c, n, SMALL_LEN, n, &out); /* slots 2..7 */
        EXPECT(c, rc == 0 && out == STORE_OUT_CREATED,
               "write %" PRIu64 " into a preallocated slot: %s (%s)", n,
               store_errname(rc), store_outcome_name(out));
    }
    rc = put(c, 8, SMALL_LEN, 8, &out); /* slot 8: growth */
    EXPECT(c, rc == STORE_E_NOSPACE && out == STORE_OUT_NO_SPACE,
           "write needing growth below headroom: %s (%s)", store_errname(rc),
           store_outcome_name(out));
    EXPECT(c, faultio_calls(c->f, FIO_BIT(FIO_FALLOCATE)) == 0,
           "fallocate called below the headroom");
    EXPECT(c, store_failed(c->st) == 0, "headroom made the store sticky");
    guid_of(g, 2);
    rc = store_delete(c->st, g, NULL, &out);
    EXPECT(c, rc == 0, "delete below headroom: %s", store_errname(rc));
    if (rc == 0)
        m_ack(&c->m, g, 0, 0, 0);
    rc = store_flush(c->st, NULL);
    EXPECT(c, rc == 0, "flush below headroom: %s", store_errname(rc));
    if (rc == 0)
        m_flushed(&c->m);
    /* Slots 0 (old copy of GUID 1) and 2 are free now. */
    for (uint64_t n = 8; n <= 9; n++) {
        rc = put(c, n, SMALL_LEN, n, &out);
        EXPECT(c, rc == 0, "write %" PRIu64 " into a freed slot: %s", n,
               store_errname(rc));
    }
    rc = put(c, 10, SMALL_LEN, 10, &out);
    EXPECT(c, rc == STORE_E_NOSPACE && out == STORE_OUT_NO_SPACE,
           "growth below headroom: %s (%s)", store_errname(rc),
           store_outcome_name(out));
    rc = store_compact(c->st);
    EXPECT(c, rc == 0, "compaction below headroom: %s", store_errname(rc));
    if (rc == 0)
        m_flushed(&c->m);
    store_get_stats(c->st, &s);
    EXPECT(c,
           s.fs_free_bytes == (uint64_t)LOW_AVAIL &&
               s.headroom > s.fs_free_bytes,
           "stats: free %" PRIu64 " headroom %" PRIu64, s.fs_free_bytes,
           s.headroom);
    faultio_set_avail(c->f, -1);
    rc = put(c, 10, SMALL_LEN, 10, &out);
    EXPECT(c, rc == 0, "growth with space again: %s", store_errname(rc));
    expect_recovers(c);
    scenario_end(c, "headroom");
}

/* Beyond the seed: a forked child can never become a second writer. */
static void test_forked_child_cannot_write(void **state)
{
    (void)state;
    struct fc *c = scenario_begin(11, setup_one_blob);
    uint8_t g[STORE_GUID_SIZE];
    guid_of(g, 77);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        enum store_outcome out = STORE_OUT_NONE;
        int code = 0;
        void *fr = aligned_alloc(STORE_PAGE_SIZE, STORE_PAGE_SIZE);
        if (!fr)
            _exit(99);
        memset(fr, 1, STORE_PAGE_SIZE);
        if (store_write(c->st, g, fr, 100, NULL, &out, NULL) !=
            STORE_E_NOT_OWNER)
            code |= 1;
        if (out == STORE_OUT_CREATED || out == STORE_OUT_REPLACED)
            code |= 2;
        guid_of(g, 1);
        if (store_delete(c->st, g, NULL, &out) != STORE_E_NOT_OWNER)
            code |= 4;
        if (store_flush(c->st, NULL) != STORE_E_NOT_OWNER)
            code |= 8;
        _exit(code);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    EXPECT(c, WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "child: status 0x%x (1: write not refused, 2: write acknowledged, "
           "4: delete, 8: flush)",
           (unsigned)status);
    /* The parent still owns the store. */
    expect_recovers(c);
    scenario_end(c, "fork");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_open),
        cmocka_unit_test(test_faults_write),
        cmocka_unit_test(test_faults_batch_write),
        cmocka_unit_test(test_faults_delete),
        cmocka_unit_test(test_faults_flush),
        cmocka_unit_test(test_faults_compaction),
        cmocka_unit_test(test_prealloc_enospc_fails_only_growth),
        cmocka_unit_test(test_truncate_back_failure_is_sticky),
        cmocka_unit_test(test_truncate_back_sync_failure_is_sticky),
        cmocka_unit_test(test_delete_with_failing_io),
        cmocka_unit_test(test_headroom),
        cmocka_unit_test(test_forked_child_cannot_write),
    };
    tu_seed();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
