/*
 * test_store_seed.c - counterparts of every #[test] of holt's FileBlobStore
 * (the seed, /work/shared/seed/000_efd06be1de8f71df.txt), adapted to blobd's
 * store: copy-on-write rewrites, log-<LSN>.blg files, stats instead of the
 * seed's private offset_of/entry_of.  docs/seed-map.md maps each seed test to
 * the function here.
 *
 * Slot-level facts are asserted two ways:
 *  1. through store_get_stats() (next_slot, free_*, pending_free, entries);
 *  2. through the data file layout that store.h documents ("the blob in
 *     slot N lives at byte N * STORE_FRAME_SIZE"): a test that must know
 *     where a write went writes a frame with unique contents and looks for
 *     them in blobs.dat with a plain pread.
 *
 * Every test makes its own temp dir and removes it.  Thread rules: the
 * handover test closes a store from a second thread (store.h: every
 * function is safe from any thread).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define SEED_MAX_LOGS 64
#define SEED_NAME_MAX 64
#define SEED_COMPACT_WAIT_MS 20000

/* ---- helpers ---------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void get_stats(struct store *st, struct store_stats *s)
{
    memset(s, 0, sizeof(*s));
    store_get_stats(st, s);
}

static uint64_t stat_next_slot(struct store *st)
{
    struct store_stats s;
    get_stats(st, &s);
    return s.next_slot;
}

static void flush_ok(struct store *st)
{
    struct store_flush_result res;
    memset(&res, 0, sizeof(res));
    int rc = store_flush(st, &res);
    if (rc != 0)
        fail_msg("store_flush: %s", store_strerror(rc));
}

/* Reopen: close st (which does not flush) and open dir again. */
static struct store *reopen(struct store *st, const char *dir)
{
    store_close(st);
    return tu_open(dir, NULL);
}

static int file_exists(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    struct stat sb;
    int ok = stat(p, &sb) == 0;
    free(p);
    return ok;
}

static off_t file_size(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return sb.st_size;
}

/* "log-" + 16 hex digits + ".blg" */
static int is_log_name(const char *name)
{
    if (strlen(name) != 4 + 16 + 4)
        return 0;
    if (strncmp(name, "log-", 4) != 0 || strcmp(name + 20, ".blg") != 0)
        return 0;
    for (int i = 4; i < 20; i++)
        if (!isxdigit((unsigned char)name[i]))
            return 0;
    return 1;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The log files of dir, sorted by name (= by first LSN); returns count. */
static size_t list_logs(const char *dir, char names[][SEED_NAME_MAX],
                        size_t max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    if (!d)
        fail_msg("opendir %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (!is_log_name(e->d_name))
            continue;
        assert_true(n < max);
        snprintf(names[n], SEED_NAME_MAX, "%.*s", SEED_NAME_MAX - 1, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, SEED_NAME_MAX, cmp_name);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        fail_msg("open %s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        fail_msg("open %s: %s", to, strerror(errno));
    char buf[65536];
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0)
            fail_msg("read %s: %s", from, strerror(errno));
        if (r == 0)
            break;
        assert_int_equal(write(out, buf, (size_t)r), r);
    }
    assert_int_equal(fsync(out), 0);
    close(out);
    close(in);
}

/* Read n bytes at byte off of dir/blobs.dat with a plain buffered pread. */
static void data_file_read(const char *dir, uint64_t off, void *buf, size_t n)
{
    char *p = tu_path(dir, "blobs.dat");
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", p, strerror(errno));
    ssize_t r = pread(fd, buf, n, (off_t)off);
    if (r != (ssize_t)n)
        fail_msg("pread %s @%" PRIu64 ": %zd", p, off, r);
    close(fd);
    free(p);
}

/* Byte 100 of the frame in slot (store.h: slot N at N * STORE_FRAME_SIZE). */
static int slot_byte100(const char *dir, uint64_t slot)
{
    uint8_t b = 0;
    data_file_read(dir, slot * STORE_FRAME_SIZE + 100, &b, 1);
    return b;
}

/* 1 if slot holds the first len bytes of tu_pattern(seed). */
static int slot_has_pattern(const char *dir, uint64_t slot, size_t len,
                            uint64_t seed)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    data_file_read(dir, slot * STORE_FRAME_SIZE, buf, len);
    int ok = tu_pattern_ok(buf, len, seed);
    free(buf);
    return ok;
}

/* Write a full frame with byte 100 = b; returns the outcome. */
static enum store_outcome put_byte100_out(struct store *st,
                                          const uint8_t guid[16], uint8_t b,
                                          uint64_t *version)
{
    void *f = store_frame_alloc(st);
    enum store_outcome out = STORE_OUT_NONE;
    assert_non_null(f);
    memset(f, 0, STORE_FRAME_SIZE);
    ((uint8_t *)f)[100] = b;
    int rc = store_write(st, guid, f, STORE_FRAME_SIZE, NULL, &out, version);
    if (rc != 0)
        fail_msg("store_write: %s (%s)", store_strerror(rc),
                 store_outcome_name(out));
    store_frame_free(st, f);
    return out;
}

static int read_rc(struct store *st, const uint8_t guid[16])
{
    void *f = store_frame_alloc(st);
    struct store_blob_info info;
    assert_non_null(f);
    int rc = store_read(st, guid, f, &info);
    store_frame_free(st, f);
    return rc;
}

/*
 * store_compact() may start a background compaction and return: wait until
 * one more compaction than `before` has finished (fail on a failure).
 */
static void wait_compaction(struct store *st, uint64_t before,
                            uint64_t failures_before)
{
    uint64_t deadline = now_ms() + SEED_COMPACT_WAIT_MS;
    struct store_stats s;
    for (;;) {
        get_stats(st, &s);
        if (s.compaction_failures > failures_before)
            fail_msg("compaction failed (%" PRIu64 " failures)",
                     s.compaction_failures);
        if (s.compactions > before && !s.compaction_running)
            return;
        if (now_ms() > deadline)
            fail_msg("compaction did not finish within %d ms",
                     SEED_COMPACT_WAIT_MS);
        sleep_ms(5);
    }
}

static void expect_torn_tail(struct store *st, int found)
{
    struct store_stats s;
    get_stats(st, &s);
    assert_int_equal(s.torn_tail_found, found);
}

/* ---- seed: data_preallocation_rounds_in_adaptive_chunks --------------- */

/* round_up_slots: 8-slot chunks below 128 slots, 64-slot chunks from 128. */
static uint64_t expected_prealloc(uint64_t required)
{
    uint64_t chunk = required >= 128 ? 64 : 8;
    return (required + chunk - 1) / chunk * chunk;
}

static void test_preallocation_rounds_in_adaptive_chunks(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-prealloc");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    struct store_stats s;

    for (uint64_t k = 1; k <= 193; k++) {
        tu_guid_num(g, k);
        tu_put(st, g, STORE_PAGE_SIZE, k);
        get_stats(st, &s);
        assert_int_equal(s.next_slot, k);
        if (s.preallocated_slots != expected_prealloc(k))
            fail_msg("after %" PRIu64 " blobs: preallocated_slots %" PRIu64
                     ", expected %" PRIu64,
                     k, s.preallocated_slots, expected_prealloc(k));
        assert_true(s.data_file_bytes >=
                    s.preallocated_slots * (uint64_t)STORE_FRAME_SIZE);
    }
    /* The seed's four points, spelled out. */
    assert_int_equal(expected_prealloc(1), 8);
    assert_int_equal(expected_prealloc(9), 16);
    assert_int_equal(expected_prealloc(128), 128);
    assert_int_equal(expected_prealloc(129), 192);

    flush_ok(st);
    st = reopen(st, dir);
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 193);
    assert_true(s.preallocated_slots >= s.next_slot);
    tu_guid_num(g, 7);
    tu_check(st, g, STORE_PAGE_SIZE, 7);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: round_trip_single_blob ------------------------------------- */

static void test_round_trip_single_blob(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-rt1");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    uint64_t v = 0;
    tu_guid_fill(g, 0xAB);

    assert_int_equal(put_byte100_out(st, g, 42, &v), STORE_OUT_CREATED);
    flush_ok(st);
    assert_int_equal(tu_byte100(st, g), 42);

    /* The entry records len, CRC32C and version (beyond the seed). */
    struct store_blob_info info;
    assert_int_equal(store_stat(st, g, &info), 0);
    assert_memory_equal(info.guid, g, 16);
    assert_int_equal(info.len, STORE_FRAME_SIZE);
    assert_int_equal(info.version, v);
    uint8_t *expect = calloc(1, STORE_FRAME_SIZE);
    assert_non_null(expect);
    expect[100] = 42;
    assert_int_equal(info.crc, store_crc32c(expect, STORE_FRAME_SIZE));
    free(expect);

    char etag[64], want[64];
    assert_true(store_etag(v, etag, sizeof(etag)) >= 0);
    snprintf(want, sizeof(want), "\"%" PRIu64 "-%" PRIu64 "\"",
             store_version_generation(v), store_version_counter(v));
    assert_string_equal(etag, want);

    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: open_holds_exclusive_dir_lock_until_drop ------------------- */

struct closer {
    struct store *st;
    unsigned delay_ms;
};

static void *close_later(void *arg)
{
    struct closer *c = arg;
    sleep_ms(c->delay_ms);
    store_close(c->st);
    return NULL;
}

static void test_open_holds_exclusive_lock_until_close(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-lock");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    tu_guid_fill(g, 0x5C);
    tu_put_byte100(st, g, 3);
    flush_ok(st);

    /* While st is live a second opener waits the timeout (testutil: 200
     * ms), then fails with STORE_E_LOCKED and a message. */
    int rc = 0;
    char err[512] = "";
    uint64_t t0 = now_ms();
    struct store *second = tu_try_open(dir, NULL, &rc, err, sizeof(err));
    uint64_t waited = now_ms() - t0;
    assert_null(second);
    assert_int_equal(rc, STORE_E_LOCKED);
    assert_true(err[0] != '\0');
    if (waited < 180 || waited > 4000)
        fail_msg("locked open returned after %" PRIu64 " ms, expected about "
                 "the 200 ms timeout",
                 waited);
    /* The failed opener changed nothing: st still works. */
    assert_int_equal(tu_byte100(st, g), 3);

    /* Handover: once closed, a fresh open succeeds at once. */
    store_close(st);
    t0 = now_ms();
    st = tu_open(dir, NULL);
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(tu_byte100(st, g), 3);

    /* Handover while waiting: the holder closes 50 ms into the wait. */
    struct closer c = {.st = st, .delay_ms = 50};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, close_later, &c), 0);
    struct store *next = tu_try_open(dir, NULL, &rc, err, sizeof(err));
    assert_int_equal(pthread_join(th, NULL), 0);
    if (!next)
        fail_msg("open racing a close failed: %s (%s)", err,
                 store_strerror(rc));
    assert_int_equal(tu_byte100(next, g), 3);
    store_close(next);
    tu_rmtree(dir);
}

/* ---- seed: survives_reopen_after_flush -------------------------------- */

static void test_survives_reopen_after_flush(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-reopen");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16], h[16];
    tu_guid_fill(g, 0x55);
    tu_guid_fill(h, 0x56);
    uint64_t v = tu_put_byte100(st, g, 7);
    flush_ok(st);

    st = reopen(st, dir);
    expect_torn_tail(st, 0);
    assert_int_equal(store_needs_flush(st), 0);
    assert_int_equal(store_count(st), 1);
    assert_int_equal(tu_byte100(st, g), 7);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, g, &info), 0);
    assert_int_equal(info.version, v);
    /* A write after reopen carries a newer generation (G5). */
    uint64_t v2 = tu_put_byte100(st, h, 8);
    assert_true(store_version_generation(v2) > store_version_generation(v));
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: write_replaces_existing_in_place (inverted) ---------------- */

/*
 * The seed overwrites the slot in place.  blobd never overwrites a live
 * slot (G2): the rewrite goes to a fresh slot, the old one is pending free
 * until the remap is flushed.
 */
static void test_rewrite_replaces_existing_copy_on_write(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-rewrite");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    uint64_t v1 = 0, v2 = 0;
    struct store_stats s;
    tu_guid_fill(g, 0x33);

    assert_int_equal(put_byte100_out(st, g, 1, &v1), STORE_OUT_CREATED);
    assert_int_equal(put_byte100_out(st, g, 2, &v2), STORE_OUT_REPLACED);
    assert_true(v2 != v1);
    assert_true(store_version_counter(v2) > store_version_counter(v1));
    get_stats(st, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.next_slot, 2);    /* fresh slot, not slot 0 */
    assert_int_equal(s.pending_free, 1); /* slot 0 waits for the flush */
    assert_int_equal(s.free_total, 0);
    assert_int_equal(slot_byte100(dir, 0), 1); /* old frame untouched */
    assert_int_equal(slot_byte100(dir, 1), 2);

    flush_ok(st);
    get_stats(st, &s);
    assert_int_equal(store_count(st), 1);
    assert_int_equal(s.pending_free, 0);
    assert_int_equal(s.free_total, 1);
    assert_int_equal(tu_byte100(st, g), 2);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, g, &info), 0);
    assert_int_equal(info.version, v2);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: manifest_reuses_slot_on_rewrite_and_persists (inverted) ---- */

static void test_rewrite_moves_to_fresh_slot_and_persists(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-cow");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16], h[16], k[16];
    struct store_stats s;
    tu_guid_fill(g, 0x34);
    tu_guid_fill(h, 0x35);
    tu_guid_fill(k, 0x36);

    tu_put_byte100(st, g, 1);
    flush_ok(st);
    assert_int_equal(stat_next_slot(st), 1);
    assert_int_equal(slot_byte100(dir, 0), 1);

    /* Rewrite: a fresh slot; the live slot 0 is not touched. */
    tu_put_byte100(st, g, 2);
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 2);
    assert_int_equal(s.pending_free, 1);
    assert_int_equal(s.free_total, 0);
    assert_int_equal(slot_byte100(dir, 0), 1);
    assert_int_equal(slot_byte100(dir, 1), 2);
    assert_int_equal(tu_byte100(st, g), 2);

    /* The old slot is not reusable before the remap is flushed. */
    tu_put_byte100(st, h, 3);
    assert_int_equal(stat_next_slot(st), 3);
    assert_int_equal(slot_byte100(dir, 0), 1);
    assert_int_equal(slot_byte100(dir, 2), 3);

    /* After the flush it is, and the next new blob takes it. */
    flush_ok(st);
    get_stats(st, &s);
    assert_int_equal(s.pending_free, 0);
    assert_int_equal(s.free_total, 1);
    tu_put_byte100(st, k, 4);
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 3);
    assert_int_equal(s.free_total, 0);
    assert_int_equal(slot_byte100(dir, 0), 4);
    flush_ok(st);

    st = reopen(st, dir);
    get_stats(st, &s);
    assert_int_equal(s.entries, 3);
    assert_int_equal(s.next_slot, 3);
    assert_int_equal(s.free_total, 0);
    assert_int_equal(tu_byte100(st, g), 2); /* last write persists */
    assert_int_equal(tu_byte100(st, h), 3);
    assert_int_equal(tu_byte100(st, k), 4);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: batch_duplicate_guid_last_write_wins ----------------------- */

static void batch_prepare(struct store *st, struct store_write *w,
                          const uint8_t *guid, uint8_t b)
{
    memset(w, 0, sizeof(*w));
    w->guid = guid;
    w->frame = store_frame_alloc(st);
    assert_non_null(w->frame);
    memset(w->frame, 0, STORE_FRAME_SIZE);
    ((uint8_t *)w->frame)[100] = b;
    w->len = STORE_FRAME_SIZE;
}

static void batch_release(struct store *st, struct store_write *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_frame_free(st, w[i].frame);
}

static void test_batch_duplicate_guid_last_write_wins(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-batchdup");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    struct store_write w[3];
    tu_guid_fill(g, 0x35);
    batch_prepare(st, &w[0], g, 1);
    batch_prepare(st, &w[1], g, 2);
    batch_prepare(st, &w[2], g, 3);

    assert_int_equal(store_write_batch(st, w, 3), 0);
    assert_int_equal(w[0].outcome, STORE_OUT_CREATED);
    assert_int_equal(w[1].outcome, STORE_OUT_REPLACED);
    assert_int_equal(w[2].outcome, STORE_OUT_REPLACED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w[i].rc, 0);
    assert_true(w[0].version < w[1].version);
    assert_true(w[1].version < w[2].version);
    uint64_t last = w[2].version;
    batch_release(st, w, 3);

    /* Duplicates collapse to the last before slots are allocated. */
    struct store_stats s;
    get_stats(st, &s);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.next_slot, 1);
    /* One frame written, two acknowledged writes superseded without I/O. */
    assert_int_equal(s.data_writes, 1);
    assert_int_equal(s.data_write_calls, 1);
    assert_int_equal(s.writes_superseded, 2);
    assert_int_equal(s.data_syncs, 0);
    uint64_t log_syncs = s.log_syncs;
    flush_ok(st);
    get_stats(st, &s);
    assert_int_equal(s.data_syncs, 1);
    assert_int_equal(s.log_syncs, log_syncs + 1);

    st = reopen(st, dir);
    assert_int_equal(tu_byte100(st, g), 3);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, g, &info), 0);
    assert_int_equal(info.version, last);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: needs_flush_tracks_data_and_manifest_work ------------------ */

static void test_needs_flush_tracks_data_and_manifest_work(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-needsflush");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    struct store_stats s;
    tu_guid_fill(g, 0x44);

    assert_int_equal(store_needs_flush(st), 0);
    tu_put_byte100(st, g, 1);
    assert_int_not_equal(store_needs_flush(st), 0);
    get_stats(st, &s);
    assert_int_not_equal(s.needs_flush, 0);
    flush_ok(st);
    assert_int_equal(store_needs_flush(st), 0);
    get_stats(st, &s);
    assert_int_equal(s.needs_flush, 0);

    enum store_outcome out = STORE_OUT_NONE;
    assert_int_equal(store_delete(st, g, NULL, &out), 0);
    assert_int_equal(out, STORE_OUT_DELETED);
    assert_int_not_equal(store_needs_flush(st), 0);
    flush_ok(st);
    assert_int_equal(store_needs_flush(st), 0);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: deleted_slot_is_reused_only_after_manifest_flush ----------- */

static void test_deleted_slot_reused_only_after_flush(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-delreuse");
    struct store *st = tu_open(dir, NULL);
    uint8_t g1[16], g2[16], g3[16];
    struct store_stats s;
    tu_guid_fill(g1, 0x11);
    tu_guid_fill(g2, 0x22);
    tu_guid_fill(g3, 0x33);

    tu_put_byte100(st, g1, 1);
    flush_ok(st);
    assert_int_equal(stat_next_slot(st), 1);
    assert_int_equal(slot_byte100(dir, 0), 1);

    assert_int_equal(store_delete(st, g1, NULL, NULL), 0);
    tu_put_byte100(st, g2, 2);
    /* Slot 0's release is not durable yet: g2 must not take it. */
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 2);
    assert_int_equal(s.pending_free, 1);
    assert_int_equal(s.free_total, 0);
    assert_int_equal(slot_byte100(dir, 0), 1);
    assert_int_equal(slot_byte100(dir, 1), 2);

    flush_ok(st);
    get_stats(st, &s);
    assert_int_equal(s.pending_free, 0);
    assert_int_equal(s.free_total, 1);
    tu_put_byte100(st, g3, 3);
    /* The flushed deletion made slot 0 reusable. */
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 2);
    assert_int_equal(s.free_total, 0);
    assert_int_equal(slot_byte100(dir, 0), 3);

    assert_int_equal(tu_byte100(st, g2), 2);
    assert_int_equal(tu_byte100(st, g3), 3);
    assert_int_equal(read_rc(st, g1), STORE_E_NOT_FOUND);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: reusable_slots_are_reconstructed_on_reopen ----------------- */

static void test_reusable_slots_reconstructed_on_reopen(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-holes");
    struct store *st = tu_open(dir, NULL);
    uint8_t g1[16], g2[16], g3[16], g4[16];
    struct store_stats s;
    tu_guid_fill(g1, 0xA1);
    tu_guid_fill(g2, 0xA2);
    tu_guid_fill(g3, 0xA3);
    tu_guid_fill(g4, 0xA4);

    tu_put_byte100(st, g1, 1);
    tu_put_byte100(st, g2, 2);
    tu_put_byte100(st, g3, 3);
    flush_ok(st);
    assert_int_equal(stat_next_slot(st), 3);
    assert_int_equal(slot_byte100(dir, 1), 2); /* g2 in slot 1 */
    assert_int_equal(store_delete(st, g2, NULL, NULL), 0);
    flush_ok(st);

    st = reopen(st, dir);
    get_stats(st, &s);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.next_slot, 3);
    assert_int_equal(s.free_total, 1); /* the hole at slot 1 */
    assert_int_equal(s.pending_free, 0);

    tu_put_byte100(st, g4, 4);
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 3);
    assert_int_equal(s.free_total, 0);
    assert_int_equal(slot_byte100(dir, 1), 4); /* g4 filled the hole */

    assert_int_equal(tu_byte100(st, g1), 1);
    assert_int_equal(tu_byte100(st, g3), 3);
    assert_int_equal(tu_byte100(st, g4), 4);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: reusable_slots_reconstruct_sparse_manifest_as_ranges ------- */

/*
 * The seed calls ReusableSlots::reconstruct(1_000_000, [0, 999_999]) and
 * expects one range, no singles, and pops 1 then 2.  Here: a store whose
 * live slots are sparse, reopened; holes come back as ranges and new
 * writes take the lowest free slot first without growing next_slot.
 */
static void test_sparse_store_reopens_with_free_ranges(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-sparse");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    struct store_stats s;
    const uint64_t n = 64;

    /* Part 1: live slots 0 and 63 only -> one range 1..62. */
    for (uint64_t i = 0; i < n; i++) {
        tu_guid_num(g, i);
        tu_put(st, g, STORE_PAGE_SIZE, i);
    }
    flush_ok(st);
    assert_int_equal(stat_next_slot(st), n);
    for (uint64_t i = 1; i < n - 1; i++) {
        tu_guid_num(g, i);
        assert_int_equal(store_delete(st, g, NULL, NULL), 0);
    }
    flush_ok(st);

    st = reopen(st, dir);
    get_stats(st, &s);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.next_slot, n);
    assert_int_equal(s.free_total, n - 2);
    assert_int_equal(s.free_singles, 0);
    assert_int_equal(s.free_ranges, 1);

    tu_guid_num(g, 1000);
    tu_put(st, g, STORE_PAGE_SIZE, 1000);
    assert_true(slot_has_pattern(dir, 1, STORE_PAGE_SIZE, 1000));
    tu_guid_num(g, 1001);
    tu_put(st, g, STORE_PAGE_SIZE, 1001);
    assert_true(slot_has_pattern(dir, 2, STORE_PAGE_SIZE, 1001));
    get_stats(st, &s);
    assert_int_equal(s.next_slot, n);
    assert_int_equal(s.free_total, n - 4);
    for (uint64_t i = 0; i < n; i += n - 1) {
        tu_guid_num(g, i);
        tu_check(st, g, STORE_PAGE_SIZE, i);
    }
    store_close(st);
    tu_rmtree(dir);

    /* Part 2: slots 0..7, delete 1,2 and 4,5,6 -> ranges [1,2] [4,6]. */
    dir = tu_mkdtemp("seed-sparse2");
    st = tu_open(dir, NULL);
    for (uint64_t i = 0; i < 8; i++) {
        tu_guid_num(g, i);
        tu_put(st, g, STORE_PAGE_SIZE, i);
    }
    flush_ok(st);
    static const uint64_t dead[] = {1, 2, 4, 5, 6};
    for (size_t i = 0; i < sizeof(dead) / sizeof(dead[0]); i++) {
        tu_guid_num(g, dead[i]);
        assert_int_equal(store_delete(st, g, NULL, NULL), 0);
    }
    flush_ok(st);

    st = reopen(st, dir);
    get_stats(st, &s);
    assert_int_equal(s.entries, 3);
    assert_int_equal(s.next_slot, 8);
    assert_int_equal(s.free_total, 5);
    assert_int_equal(s.free_singles, 0);
    assert_int_equal(s.free_ranges, 2);

    /* Lowest free slot first: 1, 2, 4, 5, 6; then next_slot grows. */
    for (size_t i = 0; i < sizeof(dead) / sizeof(dead[0]); i++) {
        tu_guid_num(g, 2000 + i);
        tu_put(st, g, STORE_PAGE_SIZE, 2000 + i);
        if (!slot_has_pattern(dir, dead[i], STORE_PAGE_SIZE, 2000 + i))
            fail_msg("new write %zu did not land in slot %" PRIu64, i, dead[i]);
        assert_int_equal(stat_next_slot(st), 8);
    }
    get_stats(st, &s);
    assert_int_equal(s.free_total, 0);
    tu_guid_num(g, 3000);
    tu_put(st, g, STORE_PAGE_SIZE, 3000);
    assert_int_equal(stat_next_slot(st), 9);
    assert_true(slot_has_pattern(dir, 8, STORE_PAGE_SIZE, 3000));
    static const uint64_t live[] = {0, 3, 7};
    for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
        tu_guid_num(g, live[i]);
        tu_check(st, g, STORE_PAGE_SIZE, live[i]);
    }
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: batch_write_preserves_duplicate_guid_order ----------------- */

static void test_batch_write_preserves_duplicate_guid_order(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-batchorder");
    struct store *st = tu_open(dir, NULL);
    uint8_t g1[16], g2[16];
    struct store_write w[3];
    tu_guid_fill(g1, 0xB1);
    tu_guid_fill(g2, 0xB2);
    batch_prepare(st, &w[0], g1, 1);
    batch_prepare(st, &w[1], g1, 2);
    batch_prepare(st, &w[2], g2, 3);

    assert_int_equal(store_write_batch(st, w, 3), 0);
    assert_int_equal(w[0].outcome, STORE_OUT_CREATED);
    assert_int_equal(w[1].outcome, STORE_OUT_REPLACED);
    assert_int_equal(w[2].outcome, STORE_OUT_CREATED);
    uint64_t v1 = w[1].version, v2 = w[2].version;
    batch_release(st, w, 3);

    struct store_stats s;
    get_stats(st, &s);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.next_slot, 2);
    flush_ok(st);
    assert_int_equal(tu_byte100(st, g1), 2);
    assert_int_equal(tu_byte100(st, g2), 3);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, g1, &info), 0);
    assert_int_equal(info.version, v1);
    assert_int_equal(store_stat(st, g2, &info), 0);
    assert_int_equal(info.version, v2);

    st = reopen(st, dir);
    assert_int_equal(tu_byte100(st, g1), 2);
    assert_int_equal(tu_byte100(st, g2), 3);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: manifest_delta_log_replays_without_snapshot ---------------- */

static void test_log_replays_without_snapshot(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-logonly");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    char logs[SEED_MAX_LOGS][SEED_NAME_MAX];
    tu_guid_fill(g, 0xC1);

    tu_put_byte100(st, g, 9);
    flush_ok(st);
    assert_true(list_logs(dir, logs, SEED_MAX_LOGS) >= 1);
    assert_false(file_exists(dir, "manifest.bin"));
    assert_false(file_exists(dir, "manifest.log")); /* not the seed's name */
    store_close(st);
    assert_false(file_exists(dir, "manifest.bin"));

    st = tu_open(dir, NULL);
    expect_torn_tail(st, 0);
    assert_int_equal(tu_byte100(st, g), 9);
    assert_int_equal(store_count(st), 1);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: manifest_delta_log_ignores_torn_tail ----------------------- */

static void test_log_torn_tail_is_truncated(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-torn");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16], g2[16];
    char logs[SEED_MAX_LOGS][SEED_NAME_MAX];
    tu_guid_fill(g, 0xC2);
    tu_guid_fill(g2, 0xC5);

    tu_put_byte100(st, g, 10);
    flush_ok(st);
    store_close(st);

    /* Three garbage bytes after the last group of the newest log (the
     * seed appends the first 3 bytes of its record magic). */
    size_t n = list_logs(dir, logs, SEED_MAX_LOGS);
    assert_true(n >= 1);
    char *last = tu_path(dir, logs[n - 1]);
    off_t size = file_size(last);
    int fd = open(last, O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "MLG", 3), 3);
    assert_int_equal(fsync(fd), 0);
    close(fd);
    free(last);

    st = tu_open(dir, NULL);
    struct store_stats s;
    get_stats(st, &s);
    assert_int_equal(s.torn_tail_found, 1);
    if (s.torn_tail_offset > (uint64_t)size)
        fail_msg("torn_tail_offset %" PRIu64 " past the garbage at %lld",
                 s.torn_tail_offset, (long long)size);
    assert_int_equal(tu_byte100(st, g), 10);
    tu_put_byte100(st, g2, 11);
    flush_ok(st);
    store_close(st);

    st = tu_open(dir, NULL);
    expect_torn_tail(st, 0); /* truncated, and the new group is good */
    assert_int_equal(tu_byte100(st, g), 10);
    assert_int_equal(tu_byte100(st, g2), 11);
    assert_int_equal(store_count(st), 2);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: manifest_snapshot_plus_old_log_replay_is_idempotent -------- */

/*
 * The crash between a compaction's rename of manifest.bin and the removal
 * of the logs it covers: compact, then put the old log back.
 */
static void test_snapshot_plus_old_log_replay_is_idempotent(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-snapold");
    char *aside = tu_mkdtemp("seed-snapold-aside");
    struct store *st = tu_open(dir, NULL);
    uint8_t g1[16], g2[16];
    char logs[SEED_MAX_LOGS][SEED_NAME_MAX];
    char now[SEED_MAX_LOGS][SEED_NAME_MAX];
    struct store_stats s;
    tu_guid_fill(g1, 0xC3);
    tu_guid_fill(g2, 0xC4);

    tu_put_byte100(st, g1, 1);
    flush_ok(st);
    assert_int_equal(store_delete(st, g1, NULL, NULL), 0);
    flush_ok(st);
    tu_put_byte100(st, g2, 2);
    flush_ok(st);
    assert_int_equal(stat_next_slot(st), 1); /* g2 reused slot 0 */
    assert_int_equal(slot_byte100(dir, 0), 2);

    size_t n = list_logs(dir, logs, SEED_MAX_LOGS);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++) {
        char *from = tu_path(dir, logs[i]), *to = tu_path(aside, logs[i]);
        copy_file(from, to);
        free(from);
        free(to);
    }

    get_stats(st, &s);
    assert_int_equal(store_compact(st), 0);
    wait_compaction(st, s.compactions, s.compaction_failures);
    assert_true(file_exists(dir, "manifest.bin"));
    for (size_t i = 0; i < n; i++)
        if (file_exists(dir, logs[i]))
            fail_msg("compaction left covered log %s", logs[i]);
    store_close(st);

    /* Put the covered logs back, as if the crash came before removal. */
    for (size_t i = 0; i < n; i++) {
        char *from = tu_path(aside, logs[i]), *to = tu_path(dir, logs[i]);
        copy_file(from, to);
        free(from);
        free(to);
    }
    assert_true(list_logs(dir, now, SEED_MAX_LOGS) > n);

    for (int round = 0; round < 2; round++) {
        st = tu_open(dir, NULL);
        get_stats(st, &s);
        assert_int_equal(s.torn_tail_found, 0);
        assert_int_equal(s.entries, 1);
        assert_int_equal(s.next_slot, 1);
        assert_int_equal(s.free_total, 0);
        assert_int_equal(slot_byte100(dir, 0), 2); /* g2 still in slot 0 */
        assert_int_equal(tu_byte100(st, g2), 2);
        assert_int_equal(read_rc(st, g1), STORE_E_NOT_FOUND);
        store_close(st);
    }
    tu_rmtree(aside);
    tu_rmtree(dir);
}

/* ---- seed: manifest_delta_log_compacts_to_snapshot_when_large --------- */

/*
 * The seed forces its size trigger by poking log_bytes; blobd exposes
 * compaction on request (store_compact), which is what POST /admin/compact
 * runs.  The size trigger itself is covered by the manifest tests.
 */
static void test_compaction_writes_snapshot_and_removes_logs(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-compact");
    struct store *st = tu_open(dir, NULL);
    uint8_t g1[16], g2[16];
    char logs[SEED_MAX_LOGS][SEED_NAME_MAX];
    struct store_stats s;
    tu_guid_fill(g1, 0xC6);
    tu_guid_fill(g2, 0xC7);

    tu_put_byte100(st, g1, 1);
    flush_ok(st);
    assert_false(file_exists(dir, "manifest.bin"));
    size_t n = list_logs(dir, logs, SEED_MAX_LOGS);
    assert_true(n >= 1);

    get_stats(st, &s);
    assert_int_equal(store_compact(st), 0);
    wait_compaction(st, s.compactions, s.compaction_failures);
    assert_true(file_exists(dir, "manifest.bin"));
    for (size_t i = 0; i < n; i++)
        if (file_exists(dir, logs[i]))
            fail_msg("compaction left covered log %s", logs[i]);
    get_stats(st, &s);
    assert_true(s.snapshot_bytes > 0);
    assert_int_equal(s.entries, 1);

    tu_put_byte100(st, g2, 2);
    flush_ok(st);
    st = reopen(st, dir);
    expect_torn_tail(st, 0);
    assert_int_equal(store_count(st), 2);
    assert_int_equal(tu_byte100(st, g1), 1);
    assert_int_equal(tu_byte100(st, g2), 2);

    /* A second compaction over the first snapshot, then reopen again. */
    get_stats(st, &s);
    assert_int_equal(store_compact(st), 0);
    wait_compaction(st, s.compactions, s.compaction_failures);
    st = reopen(st, dir);
    assert_int_equal(store_count(st), 2);
    assert_int_equal(tu_byte100(st, g1), 1);
    assert_int_equal(tu_byte100(st, g2), 2);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: delete_then_read_returns_not_found ------------------------- */

static void test_delete_then_read_returns_not_found(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-delete");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16];
    enum store_outcome out = STORE_OUT_NONE;
    struct store_blob_info info;
    tu_guid_fill(g, 0x99);

    tu_put_byte100(st, g, 5);
    assert_int_equal(store_delete(st, g, NULL, &out), 0);
    assert_int_equal(out, STORE_OUT_DELETED);
    assert_int_equal(read_rc(st, g), STORE_E_NOT_FOUND);
    assert_int_equal(store_stat(st, g, &info), STORE_E_NOT_FOUND);

    void *f = store_frame_alloc(st);
    const uint8_t *data = NULL;
    assert_non_null(f);
    assert_int_equal(store_read_range(st, g, 0, 1, f, &data, &info),
                     STORE_E_NOT_FOUND);
    store_frame_free(st, f);

    out = STORE_OUT_NONE;
    assert_int_equal(store_delete(st, g, NULL, &out), STORE_E_NOT_FOUND);
    assert_int_equal(out, STORE_OUT_NOT_FOUND);
    assert_int_equal(store_count(st), 0);

    flush_ok(st);
    st = reopen(st, dir);
    assert_int_equal(read_rc(st, g), STORE_E_NOT_FOUND);
    assert_int_equal(store_count(st), 0);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: manifest_round_trip_preserves_all_slots -------------------- */

static void test_round_trip_preserves_all_entries(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-rt16");
    struct store *st = tu_open(dir, NULL);
    uint8_t guids[16][16];
    uint64_t versions[16];
    /* Written out of GUID order, so the listing has to sort. */
    for (int k = 0; k < 16; k++) {
        int i = (k * 7) % 16;
        tu_guid_fill(guids[i], (uint8_t)i);
        versions[i] = tu_put_byte100(st, guids[i], (uint8_t)i);
    }
    flush_ok(st);

    st = reopen(st, dir);
    struct store_stats s;
    get_stats(st, &s);
    assert_int_equal(s.entries, 16);
    assert_int_equal(s.next_slot, 16);
    assert_int_equal(store_count(st), 16);

    struct store_blob_info out[32];
    int more = -1;
    int n = store_list(st, NULL, 32, out, &more);
    assert_int_equal(n, 16);
    assert_int_equal(more, 0);
    for (int i = 0; i < 16; i++) {
        assert_memory_equal(out[i].guid, guids[i], 16);
        assert_int_equal(out[i].len, STORE_FRAME_SIZE);
        assert_int_equal(out[i].version, versions[i]);
    }

    /* Two pages of 8 with the cursor. */
    more = -1;
    n = store_list(st, NULL, 8, out, &more);
    assert_int_equal(n, 8);
    assert_int_not_equal(more, 0);
    assert_memory_equal(out[7].guid, guids[7], 16);
    uint8_t after[16];
    memcpy(after, out[7].guid, 16);
    more = -1;
    n = store_list(st, after, 8, out, &more);
    assert_int_equal(n, 8);
    assert_int_equal(more, 0);
    for (int i = 0; i < 8; i++)
        assert_memory_equal(out[i].guid, guids[8 + i], 16);

    for (int i = 0; i < 16; i++)
        assert_int_equal(tu_byte100(st, guids[i]), i);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- seed: page_reads_reconstruct_each_blob (range_read_test) --------- */

static const uint32_t page_lens[] = {
    0,
    1,
    4095,
    4096,
    4097,
    12345,
    65536,
    65537,
    200000,
    524287,
    STORE_FRAME_SIZE,
};
#define N_PAGE_LENS (sizeof(page_lens) / sizeof(page_lens[0]))

/* Read [off, off + len) and compare with the full read; returns the data. */
static const uint8_t *range_ok(struct store *st, const uint8_t g[16],
                               uint64_t off, uint32_t len, const uint8_t *whole,
                               void *frame)
{
    const uint8_t *data = NULL;
    struct store_blob_info info;
    int rc = store_read_range(st, g, off, len, frame, &data, &info);
    if (rc != 0)
        fail_msg("store_read_range(%" PRIu64 ", %u): %s", off, len,
                 store_strerror(rc));
    assert_non_null(data);
    assert_true(data >= (const uint8_t *)frame);
    assert_true(data + len <= (const uint8_t *)frame + STORE_FRAME_SIZE);
    if (memcmp(data, whole + off, len) != 0)
        fail_msg("range [%" PRIu64 ", +%u) differs from the full read", off,
                 len);
    return data;
}

static void check_page_reads(struct store *st)
{
    void *whole = store_frame_alloc(st);
    void *frame = store_frame_alloc(st);
    uint8_t *paged = malloc(STORE_FRAME_SIZE);
    assert_non_null(whole);
    assert_non_null(frame);
    assert_non_null(paged);

    for (size_t i = 0; i < N_PAGE_LENS; i++) {
        uint8_t g[16];
        uint32_t len = page_lens[i];
        struct store_blob_info info;
        const uint8_t *data = NULL;
        tu_guid_num(g, i + 1);

        assert_int_equal(store_read(st, g, whole, &info), 0);
        assert_int_equal(info.len, len);
        assert_true(tu_pattern_ok(whole, len, 100 + i));

        /* Page by page: 4 KiB windows within len, the last partial. */
        memset(paged, 0xEE, STORE_FRAME_SIZE);
        for (uint64_t off = 0; off < len; off += STORE_PAGE_SIZE) {
            uint32_t n = len - off < STORE_PAGE_SIZE ? (uint32_t)(len - off)
                                                     : STORE_PAGE_SIZE;
            memcpy(paged + off, range_ok(st, g, off, n, whole, frame), n);
        }
        if (memcmp(paged, whole, len) != 0)
            fail_msg("page reads do not reconstruct blob of len %u", len);

        /* A multi-page window matches the same window of the full read. */
        if (len >= 8 * STORE_PAGE_SIZE)
            range_ok(st, g, 5 * STORE_PAGE_SIZE, 3 * STORE_PAGE_SIZE, whole,
                     frame);
        /* Unaligned, across a page boundary; and the very last byte. */
        if (len >= STORE_PAGE_SIZE + 1)
            range_ok(st, g, STORE_PAGE_SIZE - 1, 2, whole, frame);
        if (len >= 1)
            range_ok(st, g, len - 1, 1, whole, frame);
        /* Larger than STORE_RANGE_NOVERIFY_MAX: the verified path. */
        if (len > STORE_RANGE_NOVERIFY_MAX + 2 * STORE_PAGE_SIZE)
            range_ok(st, g, STORE_PAGE_SIZE + 3, len - STORE_PAGE_SIZE - 3,
                     whole, frame);

        /* Outside the blob: STORE_E_RANGE with info filled. */
        memset(&info, 0, sizeof(info));
        assert_int_equal(store_read_range(st, g, len, 1, frame, &data, &info),
                         STORE_E_RANGE);
        assert_int_equal(info.len, len);
    }
    free(paged);
    store_frame_free(st, frame);
    store_frame_free(st, whole);
}

static void test_page_reads_reconstruct_each_blob(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("seed-pages");
    struct store *st = tu_open(dir, NULL);
    for (size_t i = 0; i < N_PAGE_LENS; i++) {
        uint8_t g[16];
        tu_guid_num(g, i + 1);
        tu_put(st, g, page_lens[i], 100 + i);
    }
    check_page_reads(st);
    flush_ok(st);
    st = reopen(st, dir);
    check_page_reads(st);
    store_close(st);
    tu_rmtree(dir);
}

/*
 * Not here: registered_buffer_allocator_returns_fixed_buffers_when_available
 * (io_uring fixed buffers) comes with the io_uring backend in the next
 * issue; see docs/seed-map.md.
 */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preallocation_rounds_in_adaptive_chunks),
        cmocka_unit_test(test_round_trip_single_blob),
        cmocka_unit_test(test_open_holds_exclusive_lock_until_close),
        cmocka_unit_test(test_survives_reopen_after_flush),
        cmocka_unit_test(test_rewrite_replaces_existing_copy_on_write),
        cmocka_unit_test(test_rewrite_moves_to_fresh_slot_and_persists),
        cmocka_unit_test(test_batch_duplicate_guid_last_write_wins),
        cmocka_unit_test(test_needs_flush_tracks_data_and_manifest_work),
        cmocka_unit_test(test_deleted_slot_reused_only_after_flush),
        cmocka_unit_test(test_reusable_slots_reconstructed_on_reopen),
        cmocka_unit_test(test_sparse_store_reopens_with_free_ranges),
        cmocka_unit_test(test_batch_write_preserves_duplicate_guid_order),
        cmocka_unit_test(test_log_replays_without_snapshot),
        cmocka_unit_test(test_log_torn_tail_is_truncated),
        cmocka_unit_test(test_snapshot_plus_old_log_replay_is_idempotent),
        cmocka_unit_test(test_compaction_writes_snapshot_and_removes_logs),
        cmocka_unit_test(test_delete_then_read_returns_not_found),
        cmocka_unit_test(test_round_trip_preserves_all_entries),
        cmocka_unit_test(test_page_reads_reconstruct_each_blob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
