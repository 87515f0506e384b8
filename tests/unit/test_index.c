/*
 * test_index.c - the GUID-ordered index (store/index.c, through the private
 * API in store_int.h) and its memory cost.
 *
 *  1. Randomized operations (put / replace / remove / find / list) checked
 *     against a plain sorted array, with the index's own invariants (I1:
 *     no empty chunk, strictly ascending across chunks) checked as it goes.
 *  2. Edge cases: empty index, list after the last key, after a missing key,
 *     limit 0, exact page ends.
 *  3. Memory: 1,000,000 random GUIDs and 1,000,000 time-ordered GUIDs
 *     (48-bit ms timestamp, then random bits), reported as index_bytes()
 *     per entry and as the process RSS delta per entry (/proc/self/statm);
 *     both must stay <= 64 (SPEC §3: "at most 64 bytes of resident memory
 *     per blob at 1M blobs").  After deleting a random 75% of the entries
 *     the index must stay <= 128 bytes per remaining entry (I3: merging).
 *  4. A real store holding 1,000,000 zero-length blobs: index bytes per blob
 *     from store_get_stats() (asserted <= 64) and the whole process's RSS
 *     per blob after a reopen (printed).  A zero-length blob still takes a
 *     512 KiB slot, so the data file is made sparse by a test backend whose
 *     fallocate only extends the file (no disk space is reserved).
 *  5. The same backend shape with fallocate unsupported (EOPNOTSUPP, as on
 *     filesystems without preallocation): zero-length blobs past the end of
 *     blobs.dat must not make the store refuse to reopen.
 *
 * GUIDs are generated from seeds and regenerated instead of stored, so the
 * test's own memory does not pollute the RSS figures; malloc_trim() runs
 * before every baseline so memory freed by an earlier test is not reused
 * unseen.  Single-threaded.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"

#define MEM_N 1000000u
#define MEM_MAX_PER_BLOB 64.0
/* Sanitizers keep their own shadow and quarantine memory: the process RSS
 * says nothing about the index there, so only index_bytes is asserted. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif
#define RAND_OPS 200000u
#define RAND_KEYS 20000u
#define LIST_MAX 400u
#define STORE_N 1000000u
#define STORE_BATCH 10000u

/* ---- helpers ---------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* RSS after giving freed heap memory back, so a baseline is honest. */
static uint64_t rss_trimmed(void)
{
    malloc_trim(0);
    return rss_bytes();
}

static void random_guid(uint8_t g[16], uint64_t *rng)
{
    uint64_t a = tu_rand(rng), b = tu_rand(rng);
    memcpy(g, &a, 8);
    memcpy(g + 8, &b, 8);
}

/* Time-ordered: 48-bit big-endian ms timestamp, then 80 random bits. */
static void time_guid(uint8_t g[16], uint64_t ms, uint64_t *rng)
{
    for (int i = 0; i < 6; i++)
        g[i] = (uint8_t)(ms >> (8 * (5 - i)));
    uint64_t a = tu_rand(rng), b = tu_rand(rng);
    memcpy(g + 6, &a, 8);
    memcpy(g + 14, &b, 2);
}

/* An entry whose fields are derived from guid and a stamp, so a replaced
 * or misplaced entry is told apart from the right one. */
static void make_entry(struct index_entry *e, const uint8_t g[16],
                       uint32_t stamp)
{
    memset(e, 0, sizeof(*e));
    memcpy(e->guid, g, 16);
    e->slot = stamp;
    e->len = (uint32_t)(g[0] | g[15] << 8) ^ stamp;
    e->crc = stamp * 2654435761u;
    ix_set_version(e, (uint64_t)stamp << 20 | g[3]);
}

static int entry_eq(const struct index_entry *a, const struct index_entry *b)
{
    return memcmp(a->guid, b->guid, 16) == 0 && a->slot == b->slot &&
           a->len == b->len && a->crc == b->crc &&
           ix_version(a) == ix_version(b);
}

/* I1, I4 and the count: no empty chunk, entries strictly ascending, the
 * leads right. */
static void check_structure(const struct index *ix)
{
    uint64_t n = 0;
    const uint8_t *prev = NULL;
    for (size_t ci = 0; ci < ix->nchunks; ci++) {
        const struct index_chunk *c = ix->chunks[ci];
        if (c->n == 0 || c->n > INDEX_CHUNK_CAP)
            fail_msg("chunk %zu of %zu holds %" PRIu32 " entries", ci,
                     ix->nchunks, c->n);
        for (uint32_t i = 0; i < c->n; i++) {
            if (prev && memcmp(prev, c->e[i].guid, 16) >= 0)
                fail_msg("chunk %zu entry %" PRIu32 " is not above the "
                         "previous entry",
                         ci, i);
            prev = c->e[i].guid;
        }
        /* I4: the lead of every chunk but the first is its first GUID's
         * first 8 bytes. */
        uint64_t lead = 0;
        for (int k = 0; k < 8; k++)
            lead = lead << 8 | c->e[0].guid[k];
        if (ci > 0 && ix->lead[ci] != lead)
            fail_msg("lead of chunk %zu is %016" PRIx64 ", its first GUID "
                     "starts %016" PRIx64,
                     ci, ix->lead[ci], lead);
        n += c->n;
    }
    assert_int_equal(n, ix->count);
}

/* ---- the reference: a sorted array ------------------------------------ */

struct ref {
    struct index_entry *v;
    size_t n, cap;
};

/* Position of g, or where it would go; *found says which. */
static size_t ref_pos(const struct ref *r, const uint8_t *g, int *found)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(r->v[mid].guid, g, 16);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static void ref_put(struct ref *r, const struct index_entry *e)
{
    int found;
    size_t p = ref_pos(r, e->guid, &found);
    if (found) {
        r->v[p] = *e;
        return;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->v = realloc(r->v, r->cap * sizeof(r->v[0]));
        assert_non_null(r->v);
    }
    memmove(&r->v[p + 1], &r->v[p], (r->n - p) * sizeof(r->v[0]));
    r->v[p] = *e;
    r->n++;
}

static void ref_remove(struct ref *r, size_t p)
{
    memmove(&r->v[p], &r->v[p + 1], (r->n - p - 1) * sizeof(r->v[0]));
    r->n--;
}

/* Check index_list(after, limit) against the reference. */
static void check_list(struct index *ix, const struct ref *r,
                       const uint8_t *after, size_t limit,
                       struct index_entry *buf)
{
    size_t start = 0;
    if (after) {
        int found;
        start = ref_pos(r, after, &found);
        if (found)
            start++;
    }
    size_t avail = r->n - start;
    size_t want = avail < limit ? avail : limit;
    int more = -1;
    size_t got = index_list(ix, after, limit, buf, &more);
    if (got != want || more != (avail > limit))
        fail_msg("index_list(limit %zu) gave %zu entries, more %d; the "
                 "reference has %zu (more %d)",
                 limit, got, more, want, avail > limit);
    for (size_t i = 0; i < got; i++)
        if (!entry_eq(&buf[i], &r->v[start + i]))
            fail_msg("index_list entry %zu differs from the reference", i);
}

/* ---- 1. randomized against the reference ------------------------------ */

static void test_randomized_vs_reference(void **state)
{
    (void)state;
    uint64_t rng = tu_seed() ^ 0x1d3e;
    uint8_t(*keys)[16] = malloc(RAND_KEYS * sizeof(*keys));
    struct index_entry *buf = malloc((LIST_MAX + 1) * sizeof(*buf));
    struct ref r = {0};
    struct index ix;
    assert_non_null(keys);
    assert_non_null(buf);
    /* A key pool: random keys plus runs of consecutive keys (appends and
     * dense neighbourhoods exercise lending, splitting and merging). */
    for (size_t i = 0; i < RAND_KEYS; i++) {
        if (i % 4 == 3)
            tu_guid_num(keys[i], 0x1000000 + i);
        else
            random_guid(keys[i], &rng);
    }
    index_init(&ix);
    uint64_t puts = 0, replaces = 0, removes = 0, misses = 0, lists = 0;
    size_t peak = 0;
    for (uint32_t op = 0; op < RAND_OPS; op++) {
        /* Phases of ~20k ops: grow, shrink, mixed, so chunks both split
         * and merge over and over. */
        unsigned phase = (op / 20000) % 3;
        unsigned put_pct = phase == 0 ? 70 : phase == 1 ? 20 : 45;
        unsigned dice = (unsigned)(tu_rand(&rng) % 100);
        const uint8_t *g = keys[tu_rand(&rng) % RAND_KEYS];
        if (dice < put_pct) {
            struct index_entry e, old;
            int had = -1, found;
            size_t p = ref_pos(&r, g, &found);
            make_entry(&e, g, op);
            assert_int_equal(index_put(&ix, &e, &old, &had), 0);
            assert_int_equal(had, found);
            if (found) {
                assert_true(entry_eq(&old, &r.v[p]));
                replaces++;
            }
            ref_put(&r, &e);
            puts++;
        } else if (dice < put_pct + 25) {
            struct index_entry old;
            int found;
            size_t p = ref_pos(&r, g, &found);
            int rc = index_remove(&ix, g, op % 2 ? &old : NULL);
            if (!found) {
                assert_int_equal(rc, STORE_E_NOT_FOUND);
                misses++;
            } else {
                assert_int_equal(rc, 0);
                if (op % 2)
                    assert_true(entry_eq(&old, &r.v[p]));
                ref_remove(&r, p);
                removes++;
            }
        } else if (dice < 90) {
            int found;
            size_t p = ref_pos(&r, g, &found);
            struct index_entry *e = index_find(&ix, g);
            if (!found)
                assert_null(e);
            else {
                assert_non_null(e);
                assert_true(entry_eq(e, &r.v[p]));
            }
        } else {
            /* after: NULL, a present key, or a key that may be absent */
            unsigned kind = (unsigned)(tu_rand(&rng) % 3);
            uint8_t miss[16];
            const uint8_t *after = NULL;
            if (kind == 1 && r.n > 0)
                after = r.v[tu_rand(&rng) % r.n].guid;
            else if (kind == 2) {
                random_guid(miss, &rng);
                after = miss;
            }
            size_t limit = (size_t)(tu_rand(&rng) % (LIST_MAX + 1));
            check_list(&ix, &r, after, limit, buf);
            lists++;
        }
        assert_int_equal(ix.count, r.n);
        if (r.n > peak)
            peak = r.n;
        if (op % 5000 == 0)
            check_structure(&ix);
    }
    check_structure(&ix);
    /* The whole index, page by page, equals the reference. */
    const uint8_t *after = NULL;
    size_t seen = 0;
    int more = 1;
    while (more) {
        size_t got = index_list(&ix, after, LIST_MAX, buf, &more);
        for (size_t i = 0; i < got; i++)
            assert_true(entry_eq(&buf[i], &r.v[seen + i]));
        seen += got;
        if (got > 0)
            after = r.v[seen - 1].guid;
        else
            assert_int_equal(more, 0);
    }
    assert_int_equal(seen, r.n);
    printf("randomized: %u ops (%" PRIu64 " puts, %" PRIu64
           " replaces, %" PRIu64 " removes, %" PRIu64 " missing removes, "
           "%" PRIu64 " lists), peak %zu entries, final %zu\n",
           RAND_OPS, puts, replaces, removes, misses, lists, peak, r.n);
    /* Remove everything: the index empties cleanly and can be refilled. */
    while (r.n > 0) {
        assert_int_equal(index_remove(&ix, r.v[r.n - 1].guid, NULL), 0);
        r.n--;
    }
    assert_int_equal(ix.count, 0);
    assert_int_equal(ix.nchunks, 0);
    struct index_entry e, old;
    int had = -1;
    make_entry(&e, keys[0], 1);
    assert_int_equal(index_put(&ix, &e, &old, &had), 0);
    assert_int_equal(had, 0);
    assert_true(entry_eq(index_find(&ix, keys[0]), &e));
    index_free(&ix);
    free(r.v);
    free(buf);
    free(keys);
}

/* ---- 2. edge cases ---------------------------------------------------- */

/* index_find_next over ascending probes (present and absent GUIDs, random
 * and sharing a time prefix) finds exactly what index_find finds, also
 * when the probes are sparse (chunks skipped) and dense (several a chunk),
 * and after an insertion that invalidated the cursor. */
static int cmp_guid16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_find_next_matches_find(void **state)
{
    (void)state;
    uint64_t rng = tu_seed() ^ 0x5eed;
    enum { N = 20000, PROBES = 8000 };
    struct index ix;
    index_init(&ix);
    static uint8_t probes[PROBES][16];
    for (int i = 0; i < N; i++) {
        uint8_t g[16];
        if (i % 3)
            random_guid(g, &rng);
        else
            time_guid(g, 1700000000000ull + (uint64_t)i / 50, &rng);
        struct index_entry e, old;
        int had;
        make_entry(&e, g, (uint32_t)i);
        assert_int_equal(index_put(&ix, &e, &old, &had), 0);
        if (i % 5 == 0 && i / 5 < PROBES / 2)
            memcpy(probes[i / 5], g, 16); /* present */
    }
    for (int i = PROBES / 2; i < PROBES; i++) { /* mostly absent */
        if (i % 2)
            random_guid(probes[i], &rng);
        else
            time_guid(probes[i], 1700000000000ull + (uint64_t)i / 20, &rng);
    }
    qsort(probes, PROBES, 16, cmp_guid16);
    for (int step = 1; step <= 64; step *= 8) {
        struct index_cursor cur = {0};
        int found = 0;
        for (int i = 0; i < PROBES; i += step) {
            if (i > 0 && memcmp(probes[i], probes[i - step], 16) == 0)
                continue;
            struct index_entry *a = index_find(&ix, probes[i]);
            struct index_entry *b = index_find_next(&ix, probes[i], &cur);
            if (a != b)
                fail_msg("probe %d (every %d): index_find %p, "
                         "index_find_next %p",
                         i, step, (void *)a, (void *)b);
            found += a != NULL;
            if (step == 8 && i % 800 == 0) { /* an insert moves entries */
                uint8_t g[16];
                random_guid(g, &rng);
                struct index_entry e, old;
                int had;
                make_entry(&e, g, 7);
                assert_int_equal(index_put(&ix, &e, &old, &had), 0);
                cur.valid = 0;
            }
        }
        if (step == 1 && found < PROBES / 2 - 10)
            fail_msg("only %d of the %d present probes found", found,
                     PROBES / 2);
    }
    check_structure(&ix);
    index_free(&ix);
}

static void test_edges(void **state)
{
    (void)state;
    struct index ix;
    struct index_entry buf[8], e, old;
    uint8_t g[16], lo[16], hi[16];
    int more = -1, had = -1;
    index_init(&ix);

    /* empty */
    tu_guid_num(g, 5);
    assert_null(index_find(&ix, g));
    assert_int_equal(index_remove(&ix, g, &old), STORE_E_NOT_FOUND);
    assert_int_equal(index_list(&ix, NULL, 8, buf, &more), 0);
    assert_int_equal(more, 0);
    more = -1;
    assert_int_equal(index_list(&ix, g, 8, buf, &more), 0);
    assert_int_equal(more, 0);
    assert_int_equal(index_bytes(&ix), 0);
    assert_int_equal(ix.count, 0);

    /* keys 10, 20, ..., 50 */
    for (uint64_t k = 10; k <= 50; k += 10) {
        tu_guid_num(g, k);
        make_entry(&e, g, (uint32_t)k);
        assert_int_equal(index_put(&ix, &e, &old, &had), 0);
        assert_int_equal(had, 0);
    }
    assert_int_equal(ix.count, 5);

    /* replace keeps the count and reports the old entry */
    tu_guid_num(g, 30);
    make_entry(&e, g, 333);
    assert_int_equal(index_put(&ix, &e, &old, &had), 0);
    assert_int_equal(had, 1);
    assert_int_equal(old.slot, 30);
    assert_int_equal(ix.count, 5);
    assert_int_equal(index_find(&ix, g)->slot, 333);

    /* after the last key, after a key above all: nothing, no more */
    tu_guid_num(hi, 50);
    more = -1;
    assert_int_equal(index_list(&ix, hi, 8, buf, &more), 0);
    assert_int_equal(more, 0);
    tu_guid_num(hi, 51);
    more = -1;
    assert_int_equal(index_list(&ix, hi, 8, buf, &more), 0);
    assert_int_equal(more, 0);
    memset(hi, 0xff, 16);
    more = -1;
    assert_int_equal(index_list(&ix, hi, 8, buf, &more), 0);
    assert_int_equal(more, 0);

    /* after a key below all (and the all-zero GUID): everything */
    memset(lo, 0, 16);
    assert_int_equal(index_list(&ix, lo, 8, buf, &more), 5);
    assert_int_equal(more, 0);
    assert_int_equal(buf[0].slot, 10);

    /* after a missing key in the middle: starts at the next one */
    tu_guid_num(g, 25);
    assert_int_equal(index_list(&ix, g, 8, buf, &more), 3);
    assert_int_equal(more, 0);
    assert_int_equal(buf[0].slot, 333);
    assert_int_equal(buf[2].slot, 50);

    /* after a present key: strictly greater */
    tu_guid_num(g, 20);
    assert_int_equal(index_list(&ix, g, 8, buf, &more), 3);
    assert_int_equal(buf[0].slot, 333);

    /* page ends: limit == remaining -> no more; one less -> more */
    assert_int_equal(index_list(&ix, g, 3, buf, &more), 3);
    assert_int_equal(more, 0);
    assert_int_equal(index_list(&ix, g, 2, buf, &more), 2);
    assert_int_equal(more, 1);
    assert_int_equal(index_list(&ix, NULL, 0, buf, &more), 0);
    assert_int_equal(more, 1);
    assert_int_equal(index_list(&ix, hi, 0, buf, &more), 0);
    assert_int_equal(more, 0);

    /* remove the first, the last, a missing one */
    tu_guid_num(g, 10);
    assert_int_equal(index_remove(&ix, g, &old), 0);
    assert_int_equal(old.slot, 10);
    assert_null(index_find(&ix, g));
    tu_guid_num(g, 50);
    assert_int_equal(index_remove(&ix, g, NULL), 0);
    assert_int_equal(index_remove(&ix, g, NULL), STORE_E_NOT_FOUND);
    assert_int_equal(ix.count, 3);
    assert_int_equal(index_list(&ix, NULL, 8, buf, &more), 3);
    assert_int_equal(buf[0].slot, 20);
    assert_int_equal(buf[2].slot, 40);
    check_structure(&ix);
    index_free(&ix);

    /* Exactly one full chunk, then one more at each end and the middle. */
    index_init(&ix);
    for (uint64_t k = 0; k < INDEX_CHUNK_CAP; k++) {
        tu_guid_num(g, 100 + 2 * k);
        make_entry(&e, g, (uint32_t)k);
        assert_int_equal(index_put(&ix, &e, &old, &had), 0);
    }
    assert_int_equal(ix.nchunks, 1);
    uint64_t extra[] = {99, 100 + 2 * INDEX_CHUNK_CAP, 101 + INDEX_CHUNK_CAP};
    for (size_t i = 0; i < 3; i++) {
        tu_guid_num(g, extra[i]);
        make_entry(&e, g, 9000 + (uint32_t)i);
        assert_int_equal(index_put(&ix, &e, &old, &had), 0);
        check_structure(&ix);
        assert_true(entry_eq(index_find(&ix, g), &e));
    }
    assert_int_equal(ix.count, INDEX_CHUNK_CAP + 3);
    index_free(&ix);
}

/* ---- 3. memory -------------------------------------------------------- */

enum gen_kind { GEN_RANDOM, GEN_TIME_STRICT, GEN_TIME_BURST };

/* Regenerable GUID stream: the same seed gives the same GUIDs. */
struct gen {
    enum gen_kind kind;
    uint64_t rng;
    uint64_t ms;
    unsigned left; /* GUIDs left in the current millisecond (bursts) */
};

static void gen_init(struct gen *s, enum gen_kind kind, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->rng = seed;
    s->ms = UINT64_C(1700000000000);
}

static void gen_next(struct gen *s, uint8_t g[16])
{
    switch (s->kind) {
    case GEN_RANDOM:
        random_guid(g, &s->rng);
        return;
    case GEN_TIME_STRICT:
        /* one per ms: strictly increasing */
        time_guid(g, s->ms++, &s->rng);
        return;
    case GEN_TIME_BURST:
        /* 1..16 per ms, random order within a ms (what POST /blobs makes
         * under load) */
        if (s->left == 0) {
            s->ms++;
            s->left = 1 + (unsigned)(tu_rand(&s->rng) % 16);
        }
        s->left--;
        time_guid(g, s->ms, &s->rng);
        return;
    }
}

static const char *gen_name(enum gen_kind k)
{
    return k == GEN_RANDOM        ? "random"
           : k == GEN_TIME_STRICT ? "time-ordered (1/ms, increasing)"
                                  : "time-ordered (1-16/ms bursts)";
}

static void mem_case(enum gen_kind kind)
{
    uint64_t seed = tu_seed() ^ (0xabcdefull * (kind + 1));
    struct index ix;
    struct gen s;
    uint8_t g[16];
    struct index_entry e, old;
    int had;

    uint64_t rss0 = rss_trimmed();
    double t0 = now_s();
    index_init(&ix);
    gen_init(&s, kind, seed);
    for (uint32_t i = 0; i < MEM_N; i++) {
        gen_next(&s, g);
        make_entry(&e, g, i);
        assert_int_equal(index_put(&ix, &e, &old, &had), 0);
    }
    double t1 = now_s();
    uint64_t rss1 = rss_bytes();
    assert_int_equal(ix.count, MEM_N);
    check_structure(&ix);
    double ib = (double)index_bytes(&ix) / (double)ix.count;
    double rb = (double)(rss1 > rss0 ? rss1 - rss0 : 0) / (double)ix.count;
    printf("index, %u %s GUIDs: %.1f index bytes per blob (%zu chunks, "
           "%.1f entries per chunk), RSS delta %.1f bytes per blob; "
           "insert %.2f s\n",
           MEM_N, gen_name(kind), ib, ix.nchunks,
           (double)ix.count / (double)ix.nchunks, rb, t1 - t0);

    /* Every entry is found again. */
    gen_init(&s, kind, seed);
    for (uint32_t i = 0; i < MEM_N; i++) {
        gen_next(&s, g);
        struct index_entry *f = index_find(&ix, g);
        assert_non_null(f);
        assert_int_equal(f->slot, i);
    }

    /* Delete a random 75%. */
    uint64_t pick = seed ^ 0x5555;
    gen_init(&s, kind, seed);
    for (uint32_t i = 0; i < MEM_N; i++) {
        gen_next(&s, g);
        if (tu_rand(&pick) % 4 != 0)
            assert_int_equal(index_remove(&ix, g, NULL), 0);
    }
    check_structure(&ix);
    double db = (double)index_bytes(&ix) / (double)ix.count;
    printf("index, %s, after deleting 75%%: %" PRIu64 " left, %.1f index "
           "bytes per remaining blob (%zu chunks, %.1f entries per chunk)\n",
           gen_name(kind), ix.count, db, ix.nchunks,
           (double)ix.count / (double)ix.nchunks);
    fflush(stdout);
    index_free(&ix);

    if (ib > MEM_MAX_PER_BLOB)
        fail_msg("%s: %.1f index bytes per blob > %.0f", gen_name(kind), ib,
                 MEM_MAX_PER_BLOB);
    if (RSS_MEANINGFUL && rb > MEM_MAX_PER_BLOB)
        fail_msg("%s: RSS grew %.1f bytes per blob > %.0f", gen_name(kind), rb,
                 MEM_MAX_PER_BLOB);
    if (db > 2 * MEM_MAX_PER_BLOB)
        fail_msg("%s: %.1f index bytes per remaining blob after deleting 75%% "
                 "> %.0f (chunks do not merge)",
                 gen_name(kind), db, 2 * MEM_MAX_PER_BLOB);
}

static void test_memory_random(void **state)
{
    (void)state;
    mem_case(GEN_RANDOM);
}

static void test_memory_time_ordered(void **state)
{
    (void)state;
    mem_case(GEN_TIME_STRICT);
}

static void test_memory_time_bursts(void **state)
{
    (void)state;
    mem_case(GEN_TIME_BURST);
}

/* ---- 4, 5. a real store on a wrapped backend --------------------------- */

/* A pread backend whose fallocate either only extends the file (sparse:
 * "preallocated" without reserving disk) or is unsupported (EOPNOTSUPP). */
enum wrap_falloc { WRAP_SPARSE, WRAP_UNSUPPORTED };

struct wrap {
    struct store_io io;
    struct store_io *inner;
    enum wrap_falloc mode;
};

static struct store_io *inner_of(struct store_io *io)
{
    return ((struct wrap *)io->ctx)->inner;
}

static int w_openat(struct store_io *io, int dirfd, const char *name, int flags,
                    mode_t mode)
{
    return inner_of(io)->openat(inner_of(io), dirfd, name, flags, mode);
}
static int w_close(struct store_io *io, int fd)
{
    return inner_of(io)->close(inner_of(io), fd);
}
static ssize_t w_pread(struct store_io *io, int fd, void *buf, size_t len,
                       uint64_t off)
{
    return inner_of(io)->pread(inner_of(io), fd, buf, len, off);
}
static ssize_t w_pwritev(struct store_io *io, int fd, const struct iovec *iov,
                         int iovcnt, uint64_t off)
{
    return inner_of(io)->pwritev(inner_of(io), fd, iov, iovcnt, off);
}
static int w_sync(struct store_io *io, int fd, enum store_io_sync kind)
{
    return inner_of(io)->sync(inner_of(io), fd, kind);
}
static int w_fallocate(struct store_io *io, int fd, uint64_t off, uint64_t len)
{
    struct wrap *w = io->ctx;
    if (w->mode == WRAP_UNSUPPORTED)
        return -EOPNOTSUPP;
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return -errno;
    if ((uint64_t)sb.st_size >= off + len)
        return 0;
    return w->inner->ftruncate(w->inner, fd, off + len);
}
static int w_ftruncate(struct store_io *io, int fd, uint64_t len)
{
    return inner_of(io)->ftruncate(inner_of(io), fd, len);
}
static int w_renameat(struct store_io *io, int dirfd, const char *from,
                      const char *to)
{
    return inner_of(io)->renameat(inner_of(io), dirfd, from, to);
}
static int w_unlinkat(struct store_io *io, int dirfd, const char *name)
{
    return inner_of(io)->unlinkat(inner_of(io), dirfd, name);
}
static int w_fstatvfs(struct store_io *io, int fd, uint64_t *avail)
{
    return inner_of(io)->fstatvfs(inner_of(io), fd, avail);
}
static void w_destroy(struct store_io *io)
{
    struct wrap *w = io->ctx;
    w->inner->destroy(w->inner);
    free(w);
}

static struct store_io *wrap_new(enum wrap_falloc mode)
{
    struct wrap *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->inner = store_io_pread_new();
    assert_non_null(w->inner);
    w->mode = mode;
    w->io.name = mode == WRAP_SPARSE ? "sparse" : "nofalloc";
    w->io.ctx = w;
    w->io.openat = w_openat;
    w->io.close = w_close;
    w->io.pread = w_pread;
    w->io.pwritev = w_pwritev;
    w->io.sync = w_sync;
    w->io.fallocate = w_fallocate;
    w->io.ftruncate = w_ftruncate;
    w->io.renameat = w_renameat;
    w->io.unlinkat = w_unlinkat;
    w->io.fstatvfs = w_fstatvfs;
    w->io.destroy = w_destroy;
    return &w->io;
}

static void test_store_million_zero_length(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("index-store");
    struct store_io *io = wrap_new(WRAP_SPARSE);
    struct store *st = tu_open(dir, io);
    struct store_write *w = calloc(STORE_BATCH, sizeof(*w));
    uint8_t(*g)[16] = malloc(STORE_BATCH * sizeof(*g));
    uint64_t rng = tu_seed() ^ 0x77;
    assert_non_null(w);
    assert_non_null(g);

    double t0 = now_s();
    for (uint32_t b = 0; b < STORE_N / STORE_BATCH; b++) {
        for (uint32_t i = 0; i < STORE_BATCH; i++) {
            random_guid(g[i], &rng);
            memset(&w[i], 0, sizeof(w[i]));
            w[i].guid = g[i];
            w[i].frame = NULL;
            w[i].len = 0;
        }
        int rc = store_write_batch(st, w, STORE_BATCH);
        if (rc != 0)
            fail_msg("store_write_batch %u: %s", b, store_strerror(rc));
        for (uint32_t i = 0; i < STORE_BATCH; i++)
            if (w[i].outcome != STORE_OUT_CREATED)
                fail_msg("batch %u item %u: %s (%s)", b, i,
                         store_outcome_name(w[i].outcome),
                         store_strerror(w[i].rc));
    }
    double t1 = now_s();
    struct store_flush_result fr;
    int rc = store_flush(st, &fr);
    if (rc != 0)
        fail_msg("store_flush: %s", store_strerror(rc));
    double t2 = now_s();
    assert_int_equal(store_count(st), STORE_N);
    store_close(st);
    free(w);
    free(g);

    uint64_t rss0 = rss_trimmed();
    double t3 = now_s();
    st = tu_open(dir, io);
    double t4 = now_s();
    uint64_t rss1 = rss_bytes();
    struct store_stats s;
    store_get_stats(st, &s);
    assert_int_equal(s.entries, STORE_N);
    double ib = (double)s.index_bytes / (double)s.entries;
    double rb = (double)(rss1 > rss0 ? rss1 - rss0 : 0) / (double)s.entries;
    printf("store, %u zero-length blobs (random GUIDs): writes %.2f s, flush "
           "%.2f s (%" PRIu64 " log bytes), reopen %.2f s; index %.1f bytes "
           "per blob; whole process RSS after reopen %.1f bytes per blob "
           "(data file %" PRIu64 " bytes, sparse)\n",
           STORE_N, t1 - t0, t2 - t1, fr.log_bytes, t4 - t3, ib, rb,
           s.data_file_bytes);
    fflush(stdout);

    /* Spot checks: listing pages are full and ordered. */
    struct store_blob_info *page = malloc(STORE_LIST_MAX * sizeof(*page));
    int more = 0;
    assert_non_null(page);
    int n = store_list(st, NULL, STORE_LIST_MAX, page, &more);
    assert_int_equal(n, STORE_LIST_MAX);
    assert_int_equal(more, 1);
    for (int i = 1; i < n; i++)
        assert_true(memcmp(page[i - 1].guid, page[i].guid, 16) < 0);
    free(page);
    store_close(st);
    io->destroy(io);
    tu_rmtree(dir);
    if (ib > MEM_MAX_PER_BLOB)
        fail_msg("store index: %.1f bytes per blob > %.0f", ib,
                 MEM_MAX_PER_BLOB);
}

/* Zero-length blobs on a filesystem without fallocate: their slots lie
 * past the end of blobs.dat (nothing was ever written there), and the
 * store must still reopen with them. */
static void test_store_zero_length_without_fallocate(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("index-nofalloc");
    struct store_io *io = wrap_new(WRAP_UNSUPPORTED);
    struct store *st = tu_open(dir, io);
    uint8_t g[16];
    for (uint8_t i = 1; i <= 3; i++) {
        tu_guid_fill(g, i);
        tu_put(st, g, 0, i);
    }
    assert_int_equal(store_flush(st, NULL), 0);
    store_close(st);

    int rc = 0;
    char err[512] = "";
    st = tu_try_open(dir, io, &rc, err, sizeof(err));
    if (!st) {
        io->destroy(io);
        tu_rmtree(dir);
        fail_msg("reopen with 3 zero-length blobs and no fallocate: %s (%s)",
                 err, store_strerror(rc));
    }
    for (uint8_t i = 1; i <= 3; i++) {
        tu_guid_fill(g, i);
        tu_check(st, g, 0, i);
    }
    store_close(st);
    io->destroy(io);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_random),
        cmocka_unit_test(test_memory_time_ordered),
        cmocka_unit_test(test_memory_time_bursts),
        cmocka_unit_test(test_randomized_vs_reference),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_find_next_matches_find),
        cmocka_unit_test(test_store_million_zero_length),
        cmocka_unit_test(test_store_zero_length_without_fallocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
