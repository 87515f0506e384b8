/*
 * test_concurrency.c - readers, writers, a deleter, a flusher (which also
 * compacts), a lister and a stats poller on one store and a small set of
 * GUIDs, all at once for a few seconds (BLOBD_CONC_SECONDS, default 3).
 *
 * Every blob is self-describing: each 8-byte word i of a blob of len bytes
 * written for GUID index g with write number seq is
 *     (g | len << 8 | seq << 28) ^ mix(i)        (little-endian)
 * so any byte of any read says which GUID, length and write it belongs to
 * and where in the blob it sits.  Checked:
 *  - a full read (store_read, store_read_batch) is exactly one version: the
 *    GUID's own, every word of one seq, the length the read reports equal
 *    to the length that version wrote; never STORE_E_CHECKSUM;
 *  - a range read (store_read_range, both the unverified small path and the
 *    verified large one) is a slice of one version whose length is the one
 *    the call reports;
 *  - per reader and GUID, versions never go backwards, and one version
 *    always holds the same write;
 *  - seq is one that a writer already took for that GUID;
 *  - listings are ascending pages of known GUIDs; flush and compaction
 *    return 0;
 *  - after the threads stop, flush and reopen: every GUID is what it was.
 * Worker threads never call cmocka: they count failures and keep the first
 * messages, which the main thread reports.  Meant to be clean under TSan
 * (-DBLOBD_TSAN=ON).
 */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NG 8 /* GUIDs */
#define NWRITERS 2
#define NREADERS 3
#define MAX_MSGS 8
#define SEQ_BITS 36

struct shared {
    struct store *st;
    uint8_t guids[NG][16];
    atomic_uint_fast64_t next_seq;
    atomic_uint_fast64_t issued[NG]; /* highest seq taken per GUID */
    atomic_int stop;
    atomic_uint failures;
    pthread_mutex_t msg_mu;
    char msgs[MAX_MSGS][256];
    unsigned nmsgs;
    /* counters */
    atomic_uint_fast64_t writes, precond_fails, deletes, reads, range_reads,
        batch_reads, not_found, flushes, compactions, lists, stats;
    uint64_t seed;
};

static void failf(struct shared *sh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void failf(struct shared *sh, const char *fmt, ...)
{
    atomic_fetch_add(&sh->failures, 1);
    pthread_mutex_lock(&sh->msg_mu);
    if (sh->nmsgs < MAX_MSGS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(sh->msgs[sh->nmsgs++], sizeof(sh->msgs[0]), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&sh->msg_mu);
}

static uint64_t mix(uint64_t i)
{
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    return z ^ (z >> 27);
}

static uint64_t enc(unsigned g, uint32_t len, uint64_t seq)
{
    return (uint64_t)g | (uint64_t)len << 8 | seq << 28;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void fill(uint8_t *f, unsigned g, uint32_t len, uint64_t seq)
{
    uint64_t e = enc(g, len, seq);
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8)
        put_le64(f + i, e ^ mix(i / 8));
    if (i < len) {
        uint8_t w[8];
        put_le64(w, e ^ mix(i / 8));
        memcpy(f + i, w, len - i);
    }
}

/* Bytes [off, off + n) of data must be that slice of the blob encoded by e.
 * Returns the first bad offset, or UINT64_MAX. */
static uint64_t check_slice(const uint8_t *data, uint64_t off, uint64_t n,
                            uint64_t e)
{
    uint64_t p = off, end = off + n;
    while (p < end && (p & 7)) {
        uint8_t w[8];
        put_le64(w, e ^ mix(p / 8));
        if (data[p - off] != w[p & 7])
            return p;
        p++;
    }
    for (; p + 8 <= end; p += 8)
        if (get_le64(data + (p - off)) != (e ^ mix(p / 8)))
            return p;
    for (; p < end; p++) {
        uint8_t w[8];
        put_le64(w, e ^ mix(p / 8));
        if (data[p - off] != w[p & 7])
            return p;
    }
    return UINT64_MAX;
}

static uint32_t rand_len(uint64_t *rng)
{
    uint64_t r = tu_rand(rng);
    switch (r % 8) {
    case 0:
        return 0;
    case 1:
        return STORE_FRAME_SIZE;
    case 2:
    case 3:
        return 8 + (uint32_t)((r >> 8) % 4089); /* up to a page */
    case 4:
    case 5:
        return 8 + (uint32_t)((r >> 8) % (64 * 1024));
    default:
        return 8 + (uint32_t)((r >> 8) % (STORE_FRAME_SIZE - 7));
    }
}

static uint64_t take_seq(struct shared *sh, unsigned g)
{
    uint64_t seq = atomic_fetch_add(&sh->next_seq, 1);
    uint64_t cur = atomic_load(&sh->issued[g]);
    while (cur < seq &&
           !atomic_compare_exchange_weak(&sh->issued[g], &cur, seq))
        ;
    return seq;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000L};
    nanosleep(&ts, NULL);
}

/* Per reader: the last version and seq seen per GUID. */
struct seen {
    uint64_t version[NG];
    uint64_t seq[NG];
};

/* What a read of GUID g says: decode word 0 at offset woff (a multiple of
 * 8, inside the data) and check it against g, len and the issued seqs. */
static int decode_check(struct shared *sh, const char *what, unsigned g,
                        const uint8_t *word, uint64_t woff, uint32_t len,
                        uint64_t *seq)
{
    uint64_t e = get_le64(word) ^ mix(woff / 8);
    unsigned eg = (unsigned)(e & 0xff);
    uint32_t elen = (uint32_t)((e >> 8) & 0xfffff);
    uint64_t eseq = e >> 28;
    if (eg != g || elen != len || eseq > atomic_load(&sh->issued[g])) {
        failf(sh,
              "%s of guid %u: word at %" PRIu64 " says guid %u len %" PRIu32
              " seq %" PRIu64 "; the read reports len %" PRIu32
              " (highest seq taken %" PRIu64 ")",
              what, g, woff, eg, elen, eseq, len,
              (uint64_t)atomic_load(&sh->issued[g]));
        return -1;
    }
    *seq = eseq;
    return 0;
}

static void check_version(struct shared *sh, struct seen *sn, const char *what,
                          unsigned g, uint64_t version, uint64_t seq,
                          int have_seq)
{
    if (version < sn->version[g])
        failf(sh, "%s of guid %u: version %" PRIx64 " after %" PRIx64, what, g,
              version, sn->version[g]);
    else if (version == sn->version[g] && have_seq &&
             sn->seq[g] != UINT64_MAX && seq != sn->seq[g])
        failf(sh,
              "%s of guid %u: version %" PRIx64 " holds seq %" PRIu64
              ", earlier seq %" PRIu64,
              what, g, version, seq, sn->seq[g]);
    if (version > sn->version[g] || (have_seq && sn->seq[g] == UINT64_MAX)) {
        sn->version[g] = version;
        sn->seq[g] = have_seq ? seq : UINT64_MAX;
    }
}

/* Check a full read of GUID g. */
static void check_full(struct shared *sh, struct seen *sn, const char *what,
                       unsigned g, int rc, const uint8_t *f,
                       const struct store_blob_info *info)
{
    if (rc == STORE_E_NOT_FOUND) {
        atomic_fetch_add(&sh->not_found, 1);
        return;
    }
    if (rc != 0) {
        failf(sh, "%s of guid %u: %s", what, g, store_strerror(rc));
        return;
    }
    if (memcmp(info->guid, sh->guids[g], 16) != 0) {
        failf(sh, "%s of guid %u: info names another GUID", what, g);
        return;
    }
    uint64_t seq = 0;
    if (info->len == 0) {
        check_version(sh, sn, what, g, info->version, 0, 0);
        return;
    }
    if (info->len < 8) {
        failf(sh, "%s of guid %u: length %" PRIu32 " was never written", what,
              g, info->len);
        return;
    }
    if (decode_check(sh, what, g, f, 0, info->len, &seq) < 0)
        return;
    uint64_t bad = check_slice(f, 0, info->len, enc(g, info->len, seq));
    if (bad != UINT64_MAX) {
        failf(sh,
              "%s of guid %u: byte %" PRIu64 " of %" PRIu32
              " is not from write %" PRIu64 " (torn or mixed versions)",
              what, g, bad, info->len, seq);
        return;
    }
    check_version(sh, sn, what, g, info->version, seq, 1);
}

/* ---- threads ---------------------------------------------------------- */

struct worker {
    struct shared *sh;
    unsigned id;
    pthread_t th;
};

static void *writer(void *arg)
{
    struct worker *wk = arg;
    struct shared *sh = wk->sh;
    uint64_t rng = sh->seed ^ (0x1000 + wk->id);
    uint8_t *frames[3];
    for (int i = 0; i < 3; i++)
        frames[i] = store_frame_alloc(sh->st);
    while (!atomic_load(&sh->stop)) {
        unsigned kind = (unsigned)(tu_rand(&rng) % 8);
        if (kind == 0) {
            /* A batch of 3 (duplicates allowed: the last one wins). */
            struct store_write w[3];
            memset(w, 0, sizeof(w));
            for (int i = 0; i < 3; i++) {
                unsigned g = (unsigned)(tu_rand(&rng) % NG);
                uint32_t len = rand_len(&rng);
                fill(frames[i], g, len, take_seq(sh, g));
                w[i].guid = sh->guids[g];
                w[i].frame = frames[i];
                w[i].len = len;
            }
            int rc = store_write_batch(sh->st, w, 3);
            if (rc != 0)
                failf(sh, "store_write_batch: %s", store_strerror(rc));
            for (int i = 0; i < 3; i++)
                if (w[i].outcome != STORE_OUT_CREATED &&
                    w[i].outcome != STORE_OUT_REPLACED)
                    failf(sh, "batch write: %s (%s)",
                          store_outcome_name(w[i].outcome),
                          store_strerror(w[i].rc));
            atomic_fetch_add(&sh->writes, 3);
            continue;
        }
        unsigned g = (unsigned)(tu_rand(&rng) % NG);
        uint32_t len = rand_len(&rng);
        struct store_precond pre = {.kind = STORE_PRE_NONE, .version = 0};
        if (kind == 1) {
            /* compare-and-swap on the version just seen */
            struct store_blob_info info;
            if (store_stat(sh->st, sh->guids[g], &info) == 0) {
                pre.kind = STORE_PRE_VERSION;
                pre.version = info.version;
            } else {
                pre.kind = STORE_PRE_ABSENT;
            }
        }
        fill(frames[0], g, len, take_seq(sh, g));
        enum store_outcome out = STORE_OUT_NONE;
        uint64_t version = 0;
        int rc = store_write(sh->st, sh->guids[g], frames[0], len, &pre, &out,
                             &version);
        if (rc == 0 &&
            (out == STORE_OUT_CREATED || out == STORE_OUT_REPLACED)) {
            atomic_fetch_add(&sh->writes, 1);
        } else if (pre.kind != STORE_PRE_NONE && rc == STORE_E_PRECONDITION &&
                   out == STORE_OUT_PRECONDITION_FAILED) {
            atomic_fetch_add(&sh->precond_fails, 1);
        } else {
            failf(sh, "store_write guid %u len %" PRIu32 ": %s (%s)", g, len,
                  store_strerror(rc), store_outcome_name(out));
        }
    }
    for (int i = 0; i < 3; i++)
        store_frame_free(sh->st, frames[i]);
    return NULL;
}

static void *deleter(void *arg)
{
    struct worker *wk = arg;
    struct shared *sh = wk->sh;
    uint64_t rng = sh->seed ^ 0xde1e7e;
    uint8_t *f = store_frame_alloc(sh->st);
    while (!atomic_load(&sh->stop)) {
        unsigned g = (unsigned)(tu_rand(&rng) % NG);
        enum store_outcome out = STORE_OUT_NONE;
        int rc = store_delete(sh->st, sh->guids[g], NULL, &out);
        if (rc == 0 && out == STORE_OUT_DELETED)
            atomic_fetch_add(&sh->deletes, 1);
        else if (rc != STORE_E_NOT_FOUND || out != STORE_OUT_NOT_FOUND)
            failf(sh, "store_delete guid %u: %s (%s)", g, store_strerror(rc),
                  store_outcome_name(out));
        sleep_us(200 + (unsigned)(tu_rand(&rng) % 800));
        /* Recreate, create-only: a writer may have been first. */
        uint32_t len = rand_len(&rng);
        struct store_precond pre = {.kind = STORE_PRE_ABSENT, .version = 0};
        fill(f, g, len, take_seq(sh, g));
        rc = store_write(sh->st, sh->guids[g], f, len, &pre, &out, NULL);
        if (rc == 0 && out == STORE_OUT_CREATED)
            atomic_fetch_add(&sh->writes, 1);
        else if (rc == STORE_E_PRECONDITION)
            atomic_fetch_add(&sh->precond_fails, 1);
        else
            failf(sh, "recreate guid %u: %s (%s)", g, store_strerror(rc),
                  store_outcome_name(out));
    }
    store_frame_free(sh->st, f);
    return NULL;
}

static void *reader(void *arg)
{
    struct worker *wk = arg;
    struct shared *sh = wk->sh;
    uint64_t rng = sh->seed ^ (0x7eade7 + wk->id);
    struct seen sn;
    memset(&sn, 0, sizeof(sn));
    for (unsigned g = 0; g < NG; g++)
        sn.seq[g] = UINT64_MAX;
    uint8_t *f = store_frame_alloc(sh->st);
    uint8_t *bf[NG];
    for (unsigned g = 0; g < NG; g++)
        bf[g] = wk->id == 0 ? store_frame_alloc(sh->st) : NULL;
    while (!atomic_load(&sh->stop)) {
        unsigned g = (unsigned)(tu_rand(&rng) % NG);
        unsigned kind = (unsigned)(tu_rand(&rng) % 4);
        struct store_blob_info info;
        if (kind == 0 && wk->id == 0) {
            /* store_read_batch over every GUID */
            struct store_blob_info infos[NG];
            int rcs[NG];
            int rc = store_read_batch(sh->st, (const uint8_t(*)[16])sh->guids,
                                      (void **)bf, infos, rcs, NG);
            if (rc != 0)
                failf(sh, "store_read_batch: %s", store_strerror(rc));
            else
                for (unsigned i = 0; i < NG; i++)
                    check_full(sh, &sn, "store_read_batch", i, rcs[i], bf[i],
                               &infos[i]);
            atomic_fetch_add(&sh->batch_reads, 1);
        } else if (kind <= 1) {
            int rc = store_read(sh->st, sh->guids[g], f, &info);
            check_full(sh, &sn, "store_read", g, rc, f, &info);
            atomic_fetch_add(&sh->reads, 1);
        } else {
            /* A range of at least 15 bytes (so it holds a whole word):
             * small (<= 64 KiB, unverified path) or large (verified). */
            if (store_stat(sh->st, sh->guids[g], &info) != 0 || info.len < 15)
                continue;
            uint32_t L = info.len, n;
            if (kind == 2 || L <= STORE_RANGE_NOVERIFY_MAX + 1)
                n = 15 + (uint32_t)(tu_rand(&rng) %
                                    ((L < STORE_RANGE_NOVERIFY_MAX
                                          ? L
                                          : STORE_RANGE_NOVERIFY_MAX) -
                                     14));
            else
                n = STORE_RANGE_NOVERIFY_MAX + 1 +
                    (uint32_t)(tu_rand(&rng) % (L - STORE_RANGE_NOVERIFY_MAX));
            uint64_t off = tu_rand(&rng) % ((uint64_t)L - n + 1);
            const uint8_t *data = NULL;
            int rc =
                store_read_range(sh->st, sh->guids[g], off, n, f, &data, &info);
            atomic_fetch_add(&sh->range_reads, 1);
            if (rc == STORE_E_NOT_FOUND || rc == STORE_E_RANGE) {
                /* changed since the stat: RANGE must name a shorter blob */
                if (rc == STORE_E_RANGE && off + n <= info.len)
                    failf(sh,
                          "range [%" PRIu64 ", +%" PRIu32 ") of guid %u: "
                          "RANGE, but the blob is %" PRIu32 " bytes",
                          off, n, g, info.len);
                continue;
            }
            if (rc != 0) {
                failf(sh,
                      "store_read_range guid %u [%" PRIu64 ", +%" PRIu32
                      "): %s",
                      g, off, n, store_strerror(rc));
                continue;
            }
            if (off + n > info.len) {
                failf(sh, "range read past the reported length");
                continue;
            }
            uint64_t w = (off + 7) & ~(uint64_t)7, seq = 0;
            if (decode_check(sh, "store_read_range", g, data + (w - off), w,
                             info.len, &seq) < 0)
                continue;
            uint64_t bad = check_slice(data, off, n, enc(g, info.len, seq));
            if (bad != UINT64_MAX)
                failf(sh,
                      "store_read_range guid %u [%" PRIu64 ", +%" PRIu32
                      "): byte %" PRIu64 " is not from write %" PRIu64,
                      g, off, n, bad, seq);
            else
                check_version(sh, &sn, "store_read_range", g, info.version, seq,
                              1);
        }
    }
    store_frame_free(sh->st, f);
    for (unsigned g = 0; g < NG; g++)
        store_frame_free(sh->st, bf[g]);
    return NULL;
}

static void *flusher(void *arg)
{
    struct worker *wk = arg;
    struct shared *sh = wk->sh;
    uint64_t rng = sh->seed ^ 0xf1;
    unsigned n = 0;
    while (!atomic_load(&sh->stop)) {
        struct store_flush_result res;
        int rc = store_flush(sh->st, &res);
        if (rc != 0)
            failf(sh, "store_flush: %s", store_strerror(rc));
        atomic_fetch_add(&sh->flushes, 1);
        if (++n % 25 == 0) {
            rc = store_compact(sh->st);
            if (rc != 0)
                failf(sh, "store_compact: %s", store_strerror(rc));
            atomic_fetch_add(&sh->compactions, 1);
        }
        sleep_us(500 + (unsigned)(tu_rand(&rng) % 3000));
    }
    return NULL;
}

static void *lister(void *arg)
{
    struct worker *wk = arg;
    struct shared *sh = wk->sh;
    struct store_blob_info page[3];
    while (!atomic_load(&sh->stop)) {
        uint8_t after[16];
        int have_after = 0, more = 1, total = 0;
        while (more) {
            int n =
                store_list(sh->st, have_after ? after : NULL, 3, page, &more);
            if (n < 0 || n > 3) {
                failf(sh, "store_list: %d", n);
                break;
            }
            for (int i = 0; i < n; i++) {
                int known = 0;
                for (unsigned g = 0; g < NG; g++)
                    known |= memcmp(page[i].guid, sh->guids[g], 16) == 0;
                if (!known)
                    failf(sh, "store_list returned an unknown GUID");
                if (page[i].len > STORE_FRAME_SIZE)
                    failf(sh, "store_list: length %" PRIu32, page[i].len);
                if (have_after && memcmp(after, page[i].guid, 16) >= 0)
                    failf(sh, "store_list: GUIDs not ascending");
                memcpy(after, page[i].guid, 16);
                have_after = 1;
            }
            total += n;
            if (n == 0 && more) {
                failf(sh, "store_list: empty page with more set");
                break;
            }
        }
        if (total > NG)
            failf(sh, "store_list: %d entries for %d GUIDs", total, NG);
        if (store_count(sh->st) > NG)
            failf(sh, "store_count above %d", NG);
        atomic_fetch_add(&sh->lists, 1);
        sleep_us(100);
    }
    return NULL;
}

/* store.h: "reads, stats and listings run concurrently with all of them" */
static void *stats_poller(void *arg)
{
    struct worker *wk = arg;
    struct shared *sh = wk->sh;
    while (!atomic_load(&sh->stop)) {
        struct store_stats s;
        store_get_stats(sh->st, &s);
        if (s.entries > NG)
            failf(sh, "stats: %" PRIu64 " entries", s.entries);
        (void)store_needs_flush(sh->st);
        if (store_failed(sh->st) != 0)
            failf(sh, "store_failed: %d", store_failed(sh->st));
        atomic_fetch_add(&sh->stats, 1);
        sleep_us(300);
    }
    return NULL;
}

/* ---- the test --------------------------------------------------------- */

static void test_concurrent_readers_writers_flusher(void **state)
{
    (void)state;
    struct shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    char *dir = tu_mkdtemp("concurrency");
    sh->st = tu_open(dir, NULL);
    sh->seed = tu_seed();
    pthread_mutex_init(&sh->msg_mu, NULL);
    atomic_init(&sh->next_seq, 1);
    for (unsigned g = 0; g < NG; g++) {
        tu_guid_num(sh->guids[g], 0x5000 + g * 0x10001);
        atomic_init(&sh->issued[g], 0);
    }
    const char *env = getenv("BLOBD_CONC_SECONDS");
    double secs = env ? atof(env) : 3.0;

    enum { NT = NWRITERS + NREADERS + 4 };
    struct worker wk[NT];
    void *(*fn[NT])(void *);
    unsigned t = 0;
    for (unsigned i = 0; i < NWRITERS; i++, t++) {
        fn[t] = writer;
        wk[t].id = i;
    }
    for (unsigned i = 0; i < NREADERS; i++, t++) {
        fn[t] = reader;
        wk[t].id = i;
    }
    fn[t] = deleter;
    wk[t++].id = 0;
    fn[t] = flusher;
    wk[t++].id = 0;
    fn[t] = lister;
    wk[t++].id = 0;
    fn[t] = stats_poller;
    wk[t++].id = 0;
    for (t = 0; t < NT; t++) {
        wk[t].sh = sh;
        assert_int_equal(pthread_create(&wk[t].th, NULL, fn[t], &wk[t]), 0);
    }
    struct timespec ts = {.tv_sec = (time_t)secs,
                          .tv_nsec =
                              (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&sh->stop, 1);
    for (t = 0; t < NT; t++)
        assert_int_equal(pthread_join(wk[t].th, NULL), 0);

    printf("%.1f s: %" PRIu64 " writes, %" PRIu64 " precondition fails, "
           "%" PRIu64 " deletes, %" PRIu64 " reads, %" PRIu64
           " range reads, %" PRIu64 " batch reads, %" PRIu64
           " not found, %" PRIu64 " flushes, %" PRIu64 " compactions, "
           "%" PRIu64 " listings, %" PRIu64 " stats polls\n",
           secs, (uint64_t)sh->writes, (uint64_t)sh->precond_fails,
           (uint64_t)sh->deletes, (uint64_t)sh->reads,
           (uint64_t)sh->range_reads, (uint64_t)sh->batch_reads,
           (uint64_t)sh->not_found, (uint64_t)sh->flushes,
           (uint64_t)sh->compactions, (uint64_t)sh->lists, (uint64_t)sh->stats);
    unsigned nf = atomic_load(&sh->failures);
    for (unsigned i = 0; i < sh->nmsgs; i++)
        printf("FAILURE: %s\n", sh->msgs[i]);
    if (nf)
        fail_msg("%u failed checks (first ones above)", nf);
    assert_true(sh->writes > 0 && sh->reads > 0 && sh->range_reads > 0 &&
                sh->flushes > 0 && sh->lists > 0);

    /* Quiescent: record every GUID, flush, reopen, compare. */
    struct seen sn;
    memset(&sn, 0, sizeof(sn));
    for (unsigned g = 0; g < NG; g++)
        sn.seq[g] = UINT64_MAX;
    struct store_blob_info before[NG];
    int present[NG];
    uint8_t *f = store_frame_alloc(sh->st);
    for (unsigned g = 0; g < NG; g++) {
        int rc = store_read(sh->st, sh->guids[g], f, &before[g]);
        present[g] = rc == 0;
        check_full(sh, &sn, "final read", g, rc, f, &before[g]);
    }
    store_frame_free(sh->st, f);
    assert_int_equal(store_flush(sh->st, NULL), 0);
    store_close(sh->st);
    sh->st = tu_open(dir, NULL);
    f = store_frame_alloc(sh->st);
    for (unsigned g = 0; g < NG; g++) {
        struct store_blob_info info;
        int rc = store_read(sh->st, sh->guids[g], f, &info);
        if (!present[g]) {
            assert_int_equal(rc, STORE_E_NOT_FOUND);
            continue;
        }
        if (rc != 0)
            fail_msg("guid %u after reopen: %s", g, store_strerror(rc));
        assert_int_equal(info.len, before[g].len);
        assert_int_equal(info.version, before[g].version);
        assert_int_equal(info.crc, before[g].crc);
        check_full(sh, &sn, "read after reopen", g, rc, f, &info);
    }
    store_frame_free(sh->st, f);
    for (unsigned i = 0; i < sh->nmsgs; i++)
        printf("FAILURE: %s\n", sh->msgs[i]);
    assert_int_equal(atomic_load(&sh->failures), 0);
    store_close(sh->st);
    pthread_mutex_destroy(&sh->msg_mu);
    free(sh);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_readers_writers_flusher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
