/*
 * test_replay.c - the manifest on disk and its replay at open (SPEC §3,
 * docs/format.md "Recovery"): torn tails cut at every byte, damaged groups
 * followed by good ones, a snapshot with the stale logs it covers, hand-
 * crafted damage refused with clear codes, a read-only open that changes
 * nothing, ETags never reused across a lost write, and the CRC32C check
 * value.
 *
 * Logs are inspected and crafted with an independent scanner written from
 * docs/format.md (scan_log below) and the encoders of store_int.h
 * (mf_encode_group, mf_encode_log_header, mf_log_name).  Every test works in
 * its own temp dir and removes it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "faultio.h"
#include "store_int.h"

#define MAX_LOGS 16
#define MAX_GROUPS 64
#define NAME_LEN 256
#define ERR_LEN 1024
#define GROUP_BYTES(n) ((uint64_t)MF_REC_SIZE * ((uint64_t)(n) + 2))

/* ---- files ------------------------------------------------------------ */

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, (off_t)done);
        if (r <= 0)
            fail_msg("read %s: %s", path, r < 0 ? strerror(errno) : "EOF");
        done += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

/* Replace the contents of path (same inode) with buf[0..len). */
static void spew(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t w =
            pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)done);
        if (w <= 0)
            fail_msg("write %s: %s", path, strerror(errno));
        done += (size_t)w;
    }
    close(fd);
}

static void pwrite_at(const char *path, const void *buf, size_t len,
                      uint64_t off)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
        fail_msg("pwrite %s at %" PRIu64 ": %s", path, off, strerror(errno));
    close(fd);
}

static uint64_t fsize(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return (uint64_t)sb.st_size;
}

static int file_exists(const char *dir, const char *name)
{
    char *p = tu_path(dir, name);
    struct stat sb;
    int r = lstat(p, &sb) == 0;
    free(p);
    return r;
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *b = slurp(from, &n);
    spew(to, b, n);
    free(b);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Log file names in dir, sorted (= LSN order: fixed-width hex). */
static size_t list_logs(const char *dir, char names[][NAME_LEN], size_t max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t lsn;
        if (mf_parse_log_name(de->d_name, &lsn) != 0)
            continue;
        assert_true(n < max);
        snprintf(names[n++], NAME_LEN, "%s", de->d_name);
    }
    closedir(d);
    qsort(names, n, NAME_LEN, cmp_name);
    return n;
}

/* Path of the newest log (malloc'd). */
static char *last_log(const char *dir)
{
    char names[MAX_LOGS][NAME_LEN];
    size_t n = list_logs(dir, names, MAX_LOGS);
    assert_true(n >= 1);
    return tu_path(dir, names[n - 1]);
}

/* ---- an independent log scanner (docs/format.md) ------------------------
 * Walks the groups of one log from 4096 on, checking every field the format
 * defines, and stops at the first block that does not hold a whole valid
 * group with the expected LSN. */

struct scan {
    uint8_t uuid[16];
    uint64_t first_lsn;
    uint64_t size;
    uint64_t end;      /* committed end: after the last valid group */
    uint64_t next_lsn; /* LSN after the last valid group */
    size_t ngroups;
    uint64_t goff[MAX_GROUPS];
    uint64_t glsn[MAX_GROUPS];
    uint32_t gcount[MAX_GROUPS];
    uint8_t gtype[MAX_GROUPS];     /* type of the group's first record */
    uint64_t gversion[MAX_GROUPS]; /* version field of its first record */
};

static int sealed_ok(const uint8_t *p)
{
    return le_get32(p + 60) == store_crc32c(p, 60);
}

static uint64_t round_block(uint64_t v)
{
    return (v + MF_BLOCK - 1) / MF_BLOCK * MF_BLOCK;
}

static int group_ok(const uint8_t *b, uint64_t size, uint64_t off,
                    const uint8_t uuid[16], uint64_t lsn, uint32_t *count)
{
    if (off + MF_REC_SIZE > size)
        return 0;
    const uint8_t *h = b + off;
    if (memcmp(h, MF_GROUP_MAGIC, 8) != 0 || !sealed_ok(h) ||
        le_get64(h + 8) != lsn || memcmp(h + 24, uuid, 16) != 0)
        return 0;
    uint32_t n = le_get32(h + 16);
    if (n == 0 || off + GROUP_BYTES(n) > size)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *r = h + MF_REC_SIZE * (i + 1);
        if (!sealed_ok(r) || r[0] < MF_REC_SET || r[0] > MF_REC_OPEN ||
            le_get64(r + 8) != lsn + i)
            return 0;
    }
    const uint8_t *c = h + MF_REC_SIZE * ((uint64_t)n + 1);
    if (memcmp(c, MF_COMMIT_MAGIC, 8) != 0 || !sealed_ok(c) ||
        le_get64(c + 8) != lsn || le_get32(c + 16) != n ||
        le_get32(c + 20) != store_crc32c(h, MF_REC_SIZE * ((size_t)n + 1)))
        return 0;
    *count = n;
    return 1;
}

static void scan_bytes(const uint8_t *b, uint64_t size, struct scan *s)
{
    memset(s, 0, sizeof(*s));
    s->size = size;
    assert_true(size >= MF_LOG_HDR_SIZE);
    assert_memory_equal(b, MF_LOG_MAGIC, 8);
    assert_int_equal(le_get32(b + 8), MF_VERSION);
    assert_true(sealed_ok(b));
    memcpy(s->uuid, b + 16, 16);
    s->first_lsn = le_get64(b + 32);
    s->end = MF_LOG_HDR_SIZE;
    s->next_lsn = s->first_lsn;
    for (uint64_t off = MF_BLOCK; off < size;) {
        uint32_t n;
        if (!group_ok(b, size, off, s->uuid, s->next_lsn, &n))
            break;
        assert_true(s->ngroups < MAX_GROUPS);
        s->goff[s->ngroups] = off;
        s->glsn[s->ngroups] = s->next_lsn;
        s->gcount[s->ngroups] = n;
        s->gtype[s->ngroups] = b[off + MF_REC_SIZE];
        s->gversion[s->ngroups] = le_get64(b + off + MF_REC_SIZE + 48);
        s->ngroups++;
        s->end = off + GROUP_BYTES(n);
        s->next_lsn += n;
        off = round_block(s->end);
    }
}

static void scan_log(const char *path, struct scan *s)
{
    size_t n;
    uint8_t *b = slurp(path, &n);
    scan_bytes(b, n, s);
    free(b);
}

/* Append a hand-made group (LSNs from the log's next) at the next 4 KiB
 * boundary of the newest log; returns its offset. */
static uint64_t append_crafted(const char *dir, const struct mf_record *recs,
                               size_t n)
{
    char *log = last_log(dir);
    struct scan s;
    scan_log(log, &s);
    assert_true(s.size <= round_block(s.end)); /* nothing after the groups */
    uint64_t off = round_block(s.end);
    size_t len = (size_t)GROUP_BYTES(n);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    mf_encode_group(buf, s.uuid, s.next_lsn, recs, n);
    pwrite_at(log, buf, len, off);
    free(buf);
    free(log);
    return off;
}

/* Highest generation recorded by an OPEN group in the newest log. */
static uint64_t last_generation(const char *dir)
{
    char *log = last_log(dir);
    struct scan s;
    scan_log(log, &s);
    free(log);
    uint64_t gen = 0;
    for (size_t i = 0; i < s.ngroups; i++)
        if (s.gtype[i] == MF_REC_OPEN && s.gversion[i] > gen)
            gen = s.gversion[i];
    assert_true(gen > 0);
    return gen;
}

/* ---- stores and blobs ------------------------------------------------- */

static uint32_t blob_len(uint64_t i)
{
    return (uint32_t)(100 + (i * 1237) % 9000);
}

static void guid_of(uint8_t g[16], uint64_t i)
{
    tu_guid_num(g, 0x5100 + i);
}

static void put_i(struct store *st, uint64_t i)
{
    uint8_t g[16];
    guid_of(g, i);
    tu_put(st, g, blob_len(i), i);
}

static void check_i(struct store *st, uint64_t i)
{
    uint8_t g[16];
    guid_of(g, i);
    tu_check(st, g, blob_len(i), i);
}

static int stat_i(struct store *st, uint64_t i)
{
    uint8_t g[16];
    struct store_blob_info info;
    guid_of(g, i);
    return store_stat(st, g, &info);
}

static void flush_ok(struct store *st)
{
    struct store_flush_result res;
    int rc = store_flush(st, &res);
    if (rc != 0)
        fail_msg("store_flush: %s", store_strerror(rc));
}

static void get_stats(struct store *st, struct store_stats *s)
{
    memset(s, 0, sizeof(*s));
    store_get_stats(st, s);
}

/*
 * A store whose log holds the OPEN group and then one flushed group per
 * entry of sizes[] (blobs numbered 1, 2, ... in order).  Returns the
 * number of blobs.
 */
static uint64_t build(const char *dir, const size_t *sizes, size_t ngroups)
{
    struct store *st = tu_open(dir, NULL);
    uint64_t id = 0;
    for (size_t g = 0; g < ngroups; g++) {
        for (size_t k = 0; k < sizes[g]; k++)
            put_i(st, ++id);
        flush_ok(st);
    }
    store_close(st);
    return id;
}

static struct store *open_ro(const char *dir, int *rc, char *err, size_t len)
{
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.read_only = 1;
    cfg.log_fn = tu_log_quiet;
    return store_open(&cfg, rc, err, len);
}

/* "offset <off>" followed by something other than a digit. */
static int names_offset(const char *msg, uint64_t off)
{
    char want[48];
    snprintf(want, sizeof(want), "offset %" PRIu64, off);
    for (const char *p = strstr(msg, want); p; p = strstr(p + 1, want)) {
        char c = p[strlen(want)];
        if (c < '0' || c > '9')
            return 1;
    }
    return 0;
}

/* Some "offset <n>" in msg with lo <= n < hi. */
static int names_offset_in(const char *msg, uint64_t lo, uint64_t hi)
{
    for (const char *p = strstr(msg, "offset "); p;
         p = strstr(p + 1, "offset ")) {
        char *end = NULL;
        unsigned long long v = strtoull(p + 7, &end, 10);
        if (end != p + 7 && v >= lo && v < hi)
            return 1;
    }
    return 0;
}

/* The open must fail with code; the message must hold s1 and s2. */
static void expect_refused(const char *dir, int code, const char *s1,
                           const char *s2)
{
    int rc = 0;
    char err[ERR_LEN] = "";
    struct store *st = tu_try_open(dir, NULL, &rc, err, sizeof(err));
    if (st) {
        store_close(st);
        fail_msg("store_open(%s) succeeded; expected %s", dir,
                 store_errname(code));
    }
    if (rc != code)
        fail_msg("store_open: %s (%s); expected %s", store_errname(rc), err,
                 store_errname(code));
    if (s1 && !strstr(err, s1))
        fail_msg("message \"%s\" does not mention \"%s\"", err, s1);
    if (s2 && !strstr(err, s2))
        fail_msg("message \"%s\" does not mention \"%s\"", err, s2);
}

/* ---- 1. torn tails at every byte -------------------------------------- */

/* Count ftruncate calls on name in a trace; *len gets the last length. */
static size_t truncations(const struct fio_event *ev, size_t n,
                          const char *name, uint64_t *len)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].op != FIO_FTRUNCATE)
            continue;
        if (strcmp(ev[i].name, name) != 0)
            fail_msg("ftruncate of %s during open", ev[i].name);
        assert_int_equal(ev[i].rc, 0);
        *len = ev[i].len;
        k++;
    }
    return k;
}

/*
 * Open a store whose log was cut at c and check everything: the earlier
 * blobs, the cut ones, the torn-tail report, the truncation to the
 * committed end (seen in the I/O trace) and the log left behind.
 */
static void check_cut(const char *dir, const char *log, const char *logname,
                      const struct scan *full, uint64_t c)
{
    size_t last = full->ngroups - 1;
    uint64_t gstart = full->goff[last];
    uint64_t prev_end =
        full->goff[last - 1] + GROUP_BYTES(full->gcount[last - 1]);
    uint64_t full_len = full->size;
    int whole = c == full_len;
    uint64_t committed = whole ? full_len : prev_end;
    int torn = c != committed;
    /* Bytes past the previous group that start no group (c <= gstart:
     * only its zero padding) are a torn tail at that group's end
     * (docs/format.md, Recovery 4); a partial group is one at its start. */
    uint64_t torn_at = c > gstart ? gstart : prev_end;

    struct faultio *f = faultio_new(store_io_pread_new());
    assert_non_null(f);
    faultio_trace(f, 1);
    struct store *st = tu_open(dir, faultio_io(f));
    struct fio_event *ev = NULL;
    size_t nev = faultio_trace_get(f, &ev);
    struct store_stats s;
    get_stats(st, &s);
    if (s.torn_tail_found != torn)
        fail_msg("cut at %" PRIu64 ": torn_tail_found %d, expected %d", c,
                 s.torn_tail_found, torn);
    if (torn && s.torn_tail_offset != torn_at)
        fail_msg("cut at %" PRIu64 ": torn_tail_offset %" PRIu64
                 ", expected %" PRIu64,
                 c, s.torn_tail_offset, torn_at);
    uint64_t tlen = 0;
    size_t nt = truncations(ev, nev, logname, &tlen);
    free(ev);
    if (nt != (size_t)torn || (torn && tlen != committed))
        fail_msg("cut at %" PRIu64 ": %zu truncations (to %" PRIu64
                 "), expected %d to %" PRIu64,
                 c, nt, tlen, torn, committed);
    /* Blobs 1, 2 are in the group before; 3, 4, 5 in the cut one. */
    check_i(st, 1);
    check_i(st, 2);
    for (uint64_t i = 3; i <= 5; i++) {
        if (whole)
            check_i(st, i);
        else if (stat_i(st, i) != STORE_E_NOT_FOUND)
            fail_msg("cut at %" PRIu64 ": blob %" PRIu64 " of the cut group "
                     "is present",
                     c, i);
    }
    assert_int_equal(s.entries, whole ? 5 : 2);
    store_close(st);
    faultio_free(f);

    /* The log: the surviving groups, then this open's OPEN group at the
     * next boundary after the committed end, and not one byte more. */
    struct scan after;
    scan_log(log, &after);
    size_t keep = whole ? full->ngroups : full->ngroups - 1;
    assert_int_equal(after.ngroups, keep + 1);
    for (size_t i = 0; i < keep; i++) {
        assert_int_equal(after.goff[i], full->goff[i]);
        assert_int_equal(after.glsn[i], full->glsn[i]);
    }
    assert_int_equal(after.goff[keep], round_block(committed));
    assert_int_equal(after.gtype[keep], MF_REC_OPEN);
    assert_int_equal(after.glsn[keep],
                     whole ? full->next_lsn : full->glsn[last]);
    if (after.size != after.end)
        fail_msg("cut at %" PRIu64 ": log is %" PRIu64 " bytes after open, "
                 "its groups end at %" PRIu64,
                 c, after.size, after.end);
}

static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("replay-torn");
    const size_t sizes[] = {2, 3};
    build(dir, sizes, 2);

    char names[MAX_LOGS][NAME_LEN];
    assert_int_equal(list_logs(dir, names, MAX_LOGS), 1);
    char *log = tu_path(dir, names[0]);
    size_t full_len;
    uint8_t *orig = slurp(log, &full_len);
    struct scan full;
    scan_bytes(orig, full_len, &full);
    assert_int_equal(full.ngroups, 3); /* OPEN, {1,2}, {3,4,5} */
    assert_int_equal(full.end, full_len);
    uint64_t gstart = full.goff[2];
    uint64_t prev_end = full.goff[1] + GROUP_BYTES(full.gcount[1]);
    assert_int_equal(full_len - gstart, GROUP_BYTES(3));

    /* A few cuts inside the padding before the last group, then every
     * byte from its start to the end of the file. */
    const uint64_t extra[] = {prev_end, prev_end + 1, gstart - 1};
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
        spew(log, orig, (size_t)extra[i]);
        check_cut(dir, log, names[0], &full, extra[i]);
    }
    for (uint64_t c = gstart; c <= full_len; c++) {
        spew(log, orig, (size_t)c);
        check_cut(dir, log, names[0], &full, c);
        char now[MAX_LOGS][NAME_LEN];
        assert_int_equal(list_logs(dir, now, MAX_LOGS), 1);
    }
    free(orig);
    free(log);
    tu_rmtree(dir);
}

/* ---- 2. last group overwritten at full length ------------------------- */

static void overwrite_last_group(int random_bytes)
{
    char *dir = tu_mkdtemp("replay-overwrite");
    const size_t sizes[] = {2, 3};
    build(dir, sizes, 2);
    char *log = last_log(dir);
    const char *logname = strrchr(log, '/') + 1;
    struct scan full;
    scan_log(log, &full);
    assert_int_equal(full.ngroups, 3);
    uint64_t gstart = full.goff[2];
    uint64_t prev_end = full.goff[1] + GROUP_BYTES(full.gcount[1]);
    size_t glen = (size_t)GROUP_BYTES(full.gcount[2]);

    uint8_t *junk = malloc(glen);
    assert_non_null(junk);
    uint64_t rs = tu_seed();
    for (size_t i = 0; i < glen; i++)
        junk[i] = random_bytes ? (uint8_t)tu_rand(&rs) : 0;
    pwrite_at(log, junk, glen, gstart);
    free(junk);
    assert_int_equal(fsize(log), full.size);

    struct faultio *f = faultio_new(store_io_pread_new());
    faultio_trace(f, 1);
    struct store *st = tu_open(dir, faultio_io(f));
    struct fio_event *ev = NULL;
    size_t nev = faultio_trace_get(f, &ev);
    uint64_t tlen = 0;
    assert_int_equal(truncations(ev, nev, logname, &tlen), 1);
    assert_int_equal(tlen, prev_end); /* shrunk to the previous group */
    free(ev);
    struct store_stats s;
    get_stats(st, &s);
    assert_int_equal(s.torn_tail_found, 1);
    assert_int_equal(s.torn_tail_offset, gstart);
    assert_int_equal(s.entries, 2);
    check_i(st, 1);
    check_i(st, 2);
    for (uint64_t i = 3; i <= 5; i++)
        assert_int_equal(stat_i(st, i), STORE_E_NOT_FOUND);
    /* The store goes on from there. */
    put_i(st, 6);
    flush_ok(st);
    store_close(st);
    faultio_free(f);

    struct scan after;
    scan_log(log, &after);
    assert_int_equal(after.size, after.end);
    assert_int_equal(after.ngroups, 4); /* OPEN, {1,2}, OPEN, {6} */
    assert_int_equal(after.goff[2], gstart);
    assert_int_equal(after.gtype[2], MF_REC_OPEN);
    assert_int_equal(after.glsn[2], full.glsn[2]);

    st = tu_open(dir, NULL);
    get_stats(st, &s);
    assert_int_equal(s.torn_tail_found, 0);
    assert_int_equal(s.entries, 3);
    check_i(st, 1);
    check_i(st, 2);
    check_i(st, 6);
    store_close(st);
    free(log);
    tu_rmtree(dir);
}

static void test_last_group_zeroed(void **state)
{
    (void)state;
    overwrite_last_group(0);
}

static void test_last_group_random(void **state)
{
    (void)state;
    overwrite_last_group(1);
}

/* ---- 3. a damaged group followed by a valid one ----------------------- */

static void test_flipped_bit_mid_log_is_corrupt(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("replay-flip");
    const size_t sizes[] = {2, 3, 1};
    build(dir, sizes, 3);
    char *log = last_log(dir);
    const char *logname = strrchr(log, '/') + 1;
    size_t len;
    uint8_t *orig = slurp(log, &len);
    struct scan full;
    scan_bytes(orig, len, &full);
    assert_int_equal(full.ngroups, 4); /* OPEN, {1,2}, {3,4,5}, {6} */
    uint64_t g = full.goff[2];
    uint32_t n = full.gcount[2];
    const struct {
        const char *what;
        uint64_t off;
        uint8_t bit;
    } flips[] = {
        {"header magic", g + 3, 0x01},
        {"header LSN", g + 8, 0x02},
        {"header count", g + 16, 0x80},
        {"header CRC", g + 61, 0x10},
        {"record type", g + MF_REC_SIZE, 0x04},
        {"record GUID", g + 2 * MF_REC_SIZE + 20, 0x40},
        {"record slot", g + 3 * MF_REC_SIZE + 32, 0x01},
        {"record CRC", g + n * MF_REC_SIZE + 62, 0x08},
        {"commit magic", g + (n + 1) * MF_REC_SIZE + 1, 0x20},
        {"commit group CRC", g + (n + 1) * MF_REC_SIZE + 20, 0x01},
        {"commit CRC", g + (n + 1) * MF_REC_SIZE + 60, 0x80},
    };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        uint8_t *bad = malloc(len);
        assert_non_null(bad);
        memcpy(bad, orig, len);
        bad[flips[i].off] ^= flips[i].bit;
        spew(log, bad, len);
        int rc = 0;
        char err[ERR_LEN] = "";
        struct store *st = tu_try_open(dir, NULL, &rc, err, sizeof(err));
        if (st) {
            store_close(st);
            fail_msg("%s flipped: store opened", flips[i].what);
        }
        if (rc != STORE_E_CORRUPT)
            fail_msg("%s flipped: %s (%s), expected CORRUPT", flips[i].what,
                     store_errname(rc), err);
        if (!strstr(err, logname) || !names_offset(err, g))
            fail_msg("%s flipped: message \"%s\" does not name %s and offset "
                     "%" PRIu64,
                     flips[i].what, err, logname, g);
        /* Refused, not repaired: the log is untouched. */
        size_t now_len;
        uint8_t *now = slurp(log, &now_len);
        assert_int_equal(now_len, len);
        assert_memory_equal(now, bad, len);
        free(now);
        free(bad);
    }
    /* A damaged log header (a reserved byte: its CRC no longer matches). */
    uint8_t *bad = malloc(len);
    assert_non_null(bad);
    memcpy(bad, orig, len);
    bad[45] ^= 0x01;
    spew(log, bad, len);
    free(bad);
    int hrc = 0;
    char herr[ERR_LEN] = "";
    struct store *hst = tu_try_open(dir, NULL, &hrc, herr, sizeof(herr));
    if (hst) {
        store_close(hst);
        fail_msg("damaged log header: store opened");
    }
    if (hrc != STORE_E_CORRUPT || !strstr(herr, logname) ||
        !names_offset(herr, 0))
        fail_msg("damaged log header: %s (%s)", store_errname(hrc), herr);

    /* The undamaged log still opens with everything. */
    spew(log, orig, len);
    struct store *st = tu_open(dir, NULL);
    for (uint64_t i = 1; i <= 6; i++)
        check_i(st, i);
    store_close(st);
    free(orig);
    free(log);
    tu_rmtree(dir);
}

/* ---- 4. snapshot + stale logs ----------------------------------------- */

static size_t save_logs(const char *dir, const char *aside,
                        char names[][NAME_LEN])
{
    size_t n = list_logs(dir, names, MAX_LOGS);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++) {
        char *from = tu_path(dir, names[i]), *to = tu_path(aside, names[i]);
        copy_file(from, to);
        free(from);
        free(to);
    }
    return n;
}

static void restore_logs(const char *dir, const char *aside,
                         char names[][NAME_LEN], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_false(file_exists(dir, names[i])); /* compaction removed it */
        char *from = tu_path(aside, names[i]), *to = tu_path(dir, names[i]);
        copy_file(from, to);
        free(from);
        free(to);
    }
}

#define MAP_MAX 64

static int list_all(struct store *st, struct store_blob_info *out)
{
    int more = 0;
    int n = store_list(st, NULL, MAP_MAX, out, &more);
    assert_true(n >= 0);
    assert_int_equal(more, 0);
    return n;
}

static void test_snapshot_with_stale_logs(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("replay-stale");
    char *aside = tu_mkdtemp("replay-stale-aside");
    char names[MAX_LOGS][NAME_LEN];
    struct store_blob_info before[MAP_MAX], after[MAP_MAX];
    uint8_t g[16];

    struct store *st = tu_open(dir, NULL);
    for (uint64_t i = 1; i <= 4; i++)
        put_i(st, i);
    flush_ok(st);
    put_i(st, 5);
    put_i(st, 6);
    guid_of(g, 2);
    tu_put(st, g, 333, 102); /* rewrite */
    guid_of(g, 3);
    assert_int_equal(store_delete(st, g, NULL, NULL), 0);
    flush_ok(st);
    size_t n = save_logs(dir, aside, names);
    assert_int_equal(store_compact(st), 0);
    assert_true(file_exists(dir, MF_SNAP_NAME));
    put_i(st, 7); /* into the new log */
    flush_ok(st);
    int nb = list_all(st, before);
    assert_int_equal(nb, 6);
    store_close(st);
    restore_logs(dir, aside, names, n);

    for (int round = 0; round < 2; round++) {
        st = tu_open(dir, NULL);
        struct store_stats s;
        get_stats(st, &s);
        assert_int_equal(s.torn_tail_found, 0);
        assert_int_equal(list_all(st, after), nb);
        assert_memory_equal(before, after, (size_t)nb * sizeof(before[0]));
        for (uint64_t i = 1; i <= 7; i++) {
            if (i == 2) {
                guid_of(g, 2);
                tu_check(st, g, 333, 102);
            } else if (i == 3) {
                assert_int_equal(stat_i(st, 3), STORE_E_NOT_FOUND);
            } else {
                check_i(st, i);
            }
        }
        store_close(st);
    }
    tu_rmtree(aside);
    tu_rmtree(dir);
}

/* 1 if blobs.dat holds pattern(seed) of len bytes in slot. */
static int slot_holds(const char *dir, uint32_t slot, uint32_t len,
                      uint64_t seed)
{
    char *p = tu_path(dir, MF_DATA_NAME);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    ssize_t r = pread(fd, buf, len, (off_t)slot * STORE_FRAME_SIZE);
    close(fd);
    int ok = r == (ssize_t)len && tu_pattern_ok(buf, len, seed);
    free(buf);
    return ok;
}

/* Copy-on-write moves a GUID between slots and the freed slot changes
 * hands; the snapshot and the stale log disagree about who had slot 0. */
static void test_stale_log_slot_changes_hands(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("replay-cow");
    char *aside = tu_mkdtemp("replay-cow-aside");
    char names[MAX_LOGS][NAME_LEN];
    uint8_t g1[16], g2[16], g3[16];
    struct store_stats s;
    tu_guid_fill(g1, 0xA1);
    tu_guid_fill(g2, 0xA2);
    tu_guid_fill(g3, 0xA3);

    struct store *st = tu_open(dir, NULL);
    tu_put(st, g1, 5000, 10); /* slot 0 */
    flush_ok(st);
    tu_put(st, g1, 6000, 11); /* slot 1; slot 0 freed by the flush */
    flush_ok(st);
    tu_put(st, g2, 7000, 20); /* takes slot 0 */
    flush_ok(st);
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 2);
    assert_true(slot_holds(dir, 0, 7000, 20));
    assert_true(slot_holds(dir, 1, 6000, 11));
    size_t n = save_logs(dir, aside, names);
    assert_int_equal(store_compact(st), 0);
    store_close(st);
    restore_logs(dir, aside, names, n);

    st = tu_open(dir, NULL); /* no false slot conflict */
    get_stats(st, &s);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.next_slot, 2);
    assert_int_equal(s.free_total, 0);
    tu_check(st, g1, 6000, 11);
    tu_check(st, g2, 7000, 20);

    /* More churn in the new log: g2 moves to slot 2, g3 takes slot 0. */
    tu_put(st, g2, 7100, 21);
    flush_ok(st);
    tu_put(st, g3, 8000, 30);
    flush_ok(st);
    assert_true(slot_holds(dir, 2, 7100, 21));
    assert_true(slot_holds(dir, 0, 8000, 30));
    store_close(st);
    for (int round = 0; round < 2; round++) {
        st = tu_open(dir, NULL);
        get_stats(st, &s);
        assert_int_equal(s.entries, 3);
        assert_int_equal(s.next_slot, 3);
        tu_check(st, g1, 6000, 11);
        tu_check(st, g2, 7100, 21);
        tu_check(st, g3, 8000, 30);
        store_close(st);
    }
    tu_rmtree(aside);
    tu_rmtree(dir);
}

/* ---- 5. hand-crafted damage ------------------------------------------- */

/* A small store: OPEN, {1,2}, {3}. */
static char *small_store(const char *tag)
{
    char *dir = tu_mkdtemp(tag);
    const size_t sizes[] = {2, 1};
    build(dir, sizes, 2);
    return dir;
}

static char *compacted_store(const char *tag)
{
    char *dir = small_store(tag);
    struct store *st = tu_open(dir, NULL);
    assert_int_equal(store_compact(st), 0);
    store_close(st);
    assert_true(file_exists(dir, MF_SNAP_NAME));
    return dir;
}

static void patch_file(const char *dir, const char *name, uint64_t off,
                       const void *bytes, size_t len)
{
    char *p = tu_path(dir, name);
    pwrite_at(p, bytes, len, off);
    free(p);
}

/* Rewrite the 64-byte block at off with field (len bytes at foff)
 * replaced and its CRC32C at 60 recomputed. */
static void patch_sealed(const char *path, uint64_t off, size_t foff,
                         const void *field, size_t flen)
{
    size_t n;
    uint8_t *b = slurp(path, &n);
    assert_true(off + 64 <= n);
    memcpy(b + off + foff, field, flen);
    le_put32(b + off + 60, store_crc32c(b + off, 60));
    pwrite_at(path, b + off, 64, off);
    free(b);
}

static void test_snapshot_bad_magic(void **state)
{
    (void)state;
    char *dir = compacted_store("replay-snapmagic");
    patch_file(dir, MF_SNAP_NAME, 0, "BLOBDXNP", 8);
    expect_refused(dir, STORE_E_BAD_FORMAT, MF_SNAP_NAME, "magic");
    tu_rmtree(dir);
}

static void test_snapshot_bad_version(void **state)
{
    (void)state;
    char *dir = compacted_store("replay-snapver");
    char *p = tu_path(dir, MF_SNAP_NAME);
    uint8_t v[4];
    le_put32(v, 2);
    patch_sealed(p, 0, 8, v, 4);
    free(p);
    expect_refused(dir, STORE_E_BAD_FORMAT, MF_SNAP_NAME, "version");
    tu_rmtree(dir);
}

static void test_snapshot_holt_magic(void **state)
{
    (void)state;
    char *dir = compacted_store("replay-holtsnap");
    patch_file(dir, MF_SNAP_NAME, 0, MF_HOLT_MAGIC, 8);
    expect_refused(dir, STORE_E_BAD_FORMAT, MF_SNAP_NAME, "holt");

    /* A bare holt directory: only its manifest.bin. */
    char *holt = tu_mkdtemp("replay-holtbare");
    uint8_t h[128];
    memset(h, 0, sizeof(h));
    memcpy(h, MF_HOLT_MAGIC, 8);
    char *p = tu_path(holt, MF_SNAP_NAME);
    spew(p, h, sizeof(h));
    free(p);
    expect_refused(holt, STORE_E_BAD_FORMAT, "holt", NULL);
    tu_rmtree(holt);
    tu_rmtree(dir);
}

static void test_holt_manifest_log_present(void **state)
{
    (void)state;
    char *dir = small_store("replay-holtlog");
    char *p = tu_path(dir, MF_HOLT_LOG_NAME);
    spew(p, "MLG", 3);
    free(p);
    expect_refused(dir, STORE_E_BAD_FORMAT, MF_HOLT_LOG_NAME, "holt");
    tu_rmtree(dir);
}

static void test_log_bad_version_and_magic(void **state)
{
    (void)state;
    char *dir = small_store("replay-logver");
    char *log = last_log(dir);
    const char *name = strrchr(log, '/') + 1;
    size_t len;
    uint8_t *orig = slurp(log, &len);
    uint8_t v[4];
    le_put32(v, MF_VERSION + 1);
    patch_sealed(log, 0, 8, v, 4); /* CRC valid: the version decides */
    expect_refused(dir, STORE_E_BAD_FORMAT, name, "version");
    spew(log, orig, len);
    patch_sealed(log, 0, 0, "BLOBDLOX", 8);
    expect_refused(dir, STORE_E_BAD_FORMAT, name, "magic");
    spew(log, orig, len);
    struct store *st = tu_open(dir, NULL); /* restored: opens */
    store_close(st);
    free(orig);
    free(log);
    tu_rmtree(dir);
}

/* Create an empty log named for lsn whose header carries uuid. */
static char *craft_log(const char *dir, const uint8_t uuid[16], uint64_t lsn)
{
    char name[32];
    uint8_t h[MF_LOG_HDR_SIZE];
    mf_log_name(name, lsn);
    mf_encode_log_header(h, uuid, lsn);
    char *p = tu_path(dir, name);
    assert_false(file_exists(dir, name));
    spew(p, h, sizeof(h));
    free(p);
    return strdup(name);
}

static void test_log_foreign_uuid(void **state)
{
    (void)state;
    char *dir = small_store("replay-foreign");
    char *log = last_log(dir);
    struct scan s;
    scan_log(log, &s);
    uint8_t other[16];
    memcpy(other, s.uuid, 16);
    other[3] ^= 0x5A;
    other[12] ^= 0xA5;
    char *name = craft_log(dir, other, s.next_lsn); /* fits the sequence */
    expect_refused(dir, STORE_E_FOREIGN, name, NULL);

    /* The same log with our UUID is accepted (and the store goes on). */
    char *p = tu_path(dir, name);
    unlink(p);
    free(name);
    name = craft_log(dir, s.uuid, s.next_lsn);
    struct store *st = tu_open(dir, NULL);
    for (uint64_t i = 1; i <= 3; i++)
        check_i(st, i);
    store_close(st);
    free(p);
    free(name);
    free(log);
    tu_rmtree(dir);

    /* With a snapshot: the UUID comes from manifest.bin, and the log
     * after it carries another. */
    dir = compacted_store("replay-foreign2");
    log = last_log(dir);
    name = strdup(strrchr(log, '/') + 1);
    patch_sealed(log, 0, 16, other, 16);
    expect_refused(dir, STORE_E_FOREIGN, name, NULL);
    free(name);
    free(log);
    tu_rmtree(dir);
}

static void test_log_gap_is_corrupt(void **state)
{
    (void)state;
    char *dir = small_store("replay-gap");
    char *log = last_log(dir);
    struct scan s;
    scan_log(log, &s);
    char *name = craft_log(dir, s.uuid, s.next_lsn + 5);
    expect_refused(dir, STORE_E_CORRUPT, name, "missing");
    free(name);
    free(log);
    tu_rmtree(dir);

    /* After a compaction: the only log starts past the snapshot's LSN. */
    dir = compacted_store("replay-gap2");
    log = last_log(dir);
    scan_log(log, &s);
    assert_int_equal(s.ngroups, 0);
    unlink(log);
    name = craft_log(dir, s.uuid, s.first_lsn + 3);
    expect_refused(dir, STORE_E_CORRUPT, "missing", NULL);
    free(name);
    free(log);
    tu_rmtree(dir);
}

static void test_log_sequence_backwards_is_corrupt(void **state)
{
    (void)state;
    char *dir = small_store("replay-back");
    char *log = last_log(dir);
    struct scan s;
    scan_log(log, &s);
    assert_true(s.next_lsn > s.first_lsn + 2);
    char *name = craft_log(dir, s.uuid, s.first_lsn + 1);
    expect_refused(dir, STORE_E_CORRUPT, name, "backwards");
    free(name);
    free(log);
    tu_rmtree(dir);
}

static void set_rec(struct mf_record *r, uint64_t guid_n, uint64_t slot,
                    uint32_t len, uint64_t version)
{
    memset(r, 0, sizeof(*r));
    r->type = MF_REC_SET;
    guid_of(r->guid, guid_n);
    r->slot = slot;
    r->len = len;
    r->crc = 0x12345678;
    r->version = version;
}

/* A crafted group that is well formed: proves the crafting is right. */
static void test_crafted_group_is_applied(void **state)
{
    (void)state;
    char *dir = small_store("replay-craft");
    struct store *st = tu_open(dir, NULL);
    uint8_t g1[16];
    struct store_blob_info info;
    guid_of(g1, 1);
    assert_int_equal(store_stat(st, g1, &info), 0);
    struct store_stats s;
    get_stats(st, &s);
    store_close(st);
    uint64_t gen = last_generation(dir);
    assert_int_equal(gen, s.generation);

    /* Blob 1's entry moves to GUID 40 in one group. */
    struct mf_record r[2];
    memset(&r[0], 0, sizeof(r[0]));
    r[0].type = MF_REC_DELETE;
    guid_of(r[0].guid, 1);
    set_rec(&r[1], 40, 0, info.len, gen << 40 | 777);
    r[1].crc = info.crc;
    /* Blob 1 is in slot 0 (first write of a fresh store). */
    assert_true(slot_holds(dir, 0, blob_len(1), 1));
    append_crafted(dir, r, 2);

    st = tu_open(dir, NULL);
    get_stats(st, &s);
    assert_int_equal(s.torn_tail_found, 0);
    assert_int_equal(stat_i(st, 1), STORE_E_NOT_FOUND);
    uint8_t g40[16];
    guid_of(g40, 40);
    tu_check(st, g40, blob_len(1), 1);
    assert_int_equal(store_stat(st, g40, &info), 0);
    assert_int_equal(info.version, gen << 40 | 777);
    check_i(st, 2);
    check_i(st, 3);
    store_close(st);
    tu_rmtree(dir);
}

/* Replay applies records in batches sorted by GUID.  A long history of
 * puts, rewrites, deletes and re-creates over random GUIDs and GUIDs that
 * share their first 12 bytes (as time-ordered ones do) opens to exactly
 * the state the store had, with batches far smaller than the log (crossing
 * commit groups) and with the default size. */
#define HIST_GUIDS 1500
#define HIST_OPS 12000

struct hist {
    uint8_t guid[16];
    int live;
    uint32_t len;
    uint64_t seed;
};

static void check_history(const char *dir, const struct hist *h, uint64_t live,
                          uint32_t batch)
{
    uint32_t saved = mf_replay_batch_max;
    mf_replay_batch_max = batch;
    struct store *st = tu_open(dir, NULL);
    mf_replay_batch_max = saved;
    struct store_stats s;
    get_stats(st, &s);
    if (s.entries != live)
        fail_msg("batches of %u: %" PRIu64
                 " entries after replay, want %" PRIu64,
                 batch, (uint64_t)s.entries, live);
    for (int i = 0; i < HIST_GUIDS; i++) {
        struct store_blob_info info;
        int rc = store_stat(st, h[i].guid, &info);
        if (!h[i].live) {
            if (rc != STORE_E_NOT_FOUND)
                fail_msg("batches of %u: GUID %d deleted but found (%d)", batch,
                         i, rc);
            continue;
        }
        tu_check(st, h[i].guid, h[i].len, h[i].seed);
    }
    store_close(st);
}

static void test_replay_batches_match_history(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("replay-hist");
    static struct hist h[HIST_GUIDS];
    uint64_t rng = tu_seed();
    for (int i = 0; i < HIST_GUIDS; i++) {
        memset(&h[i], 0, sizeof(h[i]));
        if (i % 2) { /* a shared 12-byte prefix, then a counter */
            memset(h[i].guid, 0x5a, 12);
            h[i].guid[12] = (uint8_t)(i >> 8);
            h[i].guid[15] = (uint8_t)i;
        } else {
            uint64_t a = tu_rand(&rng), b = tu_rand(&rng);
            memcpy(h[i].guid, &a, 8);
            memcpy(h[i].guid + 8, &b, 8);
        }
    }
    struct store *st = tu_open(dir, NULL);
    uint64_t live = 0;
    for (int op = 0; op < HIST_OPS; op++) {
        struct hist *x = &h[tu_rand(&rng) % HIST_GUIDS];
        uint64_t r = tu_rand(&rng);
        if (x->live && r % 4 == 0) {
            enum store_outcome out;
            assert_int_equal(store_delete(st, x->guid, NULL, &out), 0);
            x->live = 0;
            live--;
        } else {
            x->len = r % 8 == 1 ? 0 : (uint32_t)(r >> 8) % 3000 + 1;
            x->seed = r;
            tu_put(st, x->guid, x->len, x->seed);
            if (!x->live)
                live++;
            x->live = 1;
        }
        if (op % 97 == 96)
            flush_ok(st);
    }
    flush_ok(st); /* store_close does not flush */
    store_close(st);
    check_history(dir, h, live, 7);
    check_history(dir, h, live, 1000);
    check_history(dir, h, live, mf_replay_batch_max);
    tu_rmtree(dir);
}

/* Append recs as one group to a fresh small store; the open must fail
 * with code and a message holding s1 and the group's offset. */
static void crafted_refused(const char *tag, struct mf_record *recs, size_t n,
                            int code, const char *s1, int name_offset)
{
    char *dir = small_store(tag);
    uint64_t gen = last_generation(dir);
    for (size_t i = 0; i < n; i++)
        if (recs[i].type == MF_REC_SET && recs[i].version == 0)
            recs[i].version = gen << 40 | (1000 + i);
    uint64_t off = append_crafted(dir, recs, n);
    char *log = last_log(dir);
    const char *name = strrchr(log, '/') + 1;
    int rc = 0;
    char err[ERR_LEN] = "";
    struct store *st = tu_try_open(dir, NULL, &rc, err, sizeof(err));
    if (st) {
        store_close(st);
        fail_msg("%s: crafted group accepted", tag);
    }
    if (rc != code)
        fail_msg("%s: %s (%s), expected %s", tag, store_errname(rc), err,
                 store_errname(code));
    if (s1 && !strstr(err, s1))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", tag, err, s1);
    if (name_offset && (!strstr(err, name) ||
                        !names_offset_in(err, off, off + GROUP_BYTES(n))))
        fail_msg("%s: message \"%s\" does not name %s and an offset in the "
                 "group at %" PRIu64,
                 tag, err, name, off);
    free(log);
    tu_rmtree(dir);
}

static void test_crafted_two_guids_one_slot(void **state)
{
    (void)state;
    struct mf_record r[2];
    set_rec(&r[0], 50, 6, 100, 0);
    set_rec(&r[1], 51, 6, 100, 0);
    crafted_refused("replay-twoslot", r, 2, STORE_E_CORRUPT, "slot 6", 1);

    /* A new GUID on the slot of a live blob (blob 1 in slot 0). */
    set_rec(&r[0], 52, 0, 100, 0);
    crafted_refused("replay-twoslot2", r, 1, STORE_E_CORRUPT, "slot 0", 1);
}

static void test_crafted_slot_out_of_bounds(void **state)
{
    (void)state;
    struct mf_record r;
    set_rec(&r, 60, UINT64_C(1) << 32, 100, 0);
    crafted_refused("replay-slotbig", &r, 1, STORE_E_CORRUPT, "slot", 1);
    set_rec(&r, 60, MF_MAX_SLOTS, 100, 0);
    crafted_refused("replay-slotmax", &r, 1, STORE_E_CORRUPT, "slot", 1);
    set_rec(&r, 60, UINT64_MAX, 100, 0);
    crafted_refused("replay-slotneg", &r, 1, STORE_E_CORRUPT, "slot", 1);
    /* In range for the format but past the data file. */
    set_rec(&r, 60, 1000, 100, 0);
    crafted_refused("replay-slotfile", &r, 1, STORE_E_CORRUPT, MF_DATA_NAME, 0);
}

static void test_crafted_length_too_large(void **state)
{
    (void)state;
    struct mf_record r;
    set_rec(&r, 61, 5, STORE_FRAME_SIZE + 1, 0);
    crafted_refused("replay-len", &r, 1, STORE_E_CORRUPT, "length", 1);
    set_rec(&r, 61, 5, UINT32_MAX, 0);
    crafted_refused("replay-len2", &r, 1, STORE_E_CORRUPT, "length", 1);
}

static void test_crafted_future_generation(void **state)
{
    (void)state;
    struct mf_record r;
    char *dir = small_store("replay-gen-probe");
    uint64_t gen = last_generation(dir);
    tu_rmtree(dir);
    set_rec(&r, 62, 5, 100, (gen + 1) << 40 | 1);
    crafted_refused("replay-futuregen", &r, 1, STORE_E_CORRUPT, "generation",
                    1);
    set_rec(&r, 62, 5, 100, 7); /* generation 0 was never opened */
    crafted_refused("replay-gen0", &r, 1, STORE_E_CORRUPT, "generation", 1);
    /* An OPEN that does not advance the generation. */
    memset(&r, 0, sizeof(r));
    r.type = MF_REC_OPEN;
    r.version = gen;
    crafted_refused("replay-opengen", &r, 1, STORE_E_CORRUPT, "generation", 1);
}

static void test_data_file_too_short(void **state)
{
    (void)state;
    char *dir = small_store("replay-datashort");
    struct store *st = tu_open(dir, NULL);
    uint8_t g3[16];
    struct store_blob_info info;
    guid_of(g3, 3);
    assert_int_equal(store_stat(st, g3, &info), 0);
    store_close(st);
    /* Blob 3 is the third write of a fresh store: slot 2. */
    assert_true(slot_holds(dir, 2, blob_len(3), 3));
    uint64_t need = 2ull * STORE_FRAME_SIZE + (info.len + STORE_PAGE_SIZE - 1) /
                                                  STORE_PAGE_SIZE *
                                                  STORE_PAGE_SIZE;
    char *data = tu_path(dir, MF_DATA_NAME);
    assert_true(fsize(data) > need);

    assert_int_equal(truncate(data, (off_t)need), 0); /* exactly enough */
    st = tu_open(dir, NULL);
    check_i(st, 3);
    store_close(st);

    assert_int_equal(truncate(data, (off_t)need - 1), 0);
    expect_refused(dir, STORE_E_CORRUPT, MF_DATA_NAME, NULL);
    assert_int_equal(truncate(data, 2 * STORE_FRAME_SIZE), 0);
    expect_refused(dir, STORE_E_CORRUPT, MF_DATA_NAME, NULL);
    assert_int_equal(unlink(data), 0);
    expect_refused(dir, STORE_E_CORRUPT, MF_DATA_NAME, NULL);
    free(data);
    tu_rmtree(dir);
}

/* ---- 6. read-only opens change nothing -------------------------------- */

struct fstate {
    char name[NAME_LEN];
    uint64_t size;
    struct timespec mtime;
    uint64_t hash;
};

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static size_t dir_state(const char *dir, struct fstate *out, size_t max,
                        struct timespec *dir_mtime)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        assert_true(n < max);
        struct fstate *f = &out[n++];
        memset(f, 0, sizeof(*f));
        snprintf(f->name, sizeof(f->name), "%s", de->d_name);
        char *p = tu_path(dir, de->d_name);
        struct stat sb;
        assert_int_equal(lstat(p, &sb), 0);
        f->size = (uint64_t)sb.st_size;
        f->mtime = sb.st_mtim;
        size_t len;
        uint8_t *b = slurp(p, &len);
        f->hash = fnv1a(b, len);
        free(b);
        free(p);
    }
    closedir(d);
    qsort(out, n, sizeof(out[0]), cmp_name); /* name is the first field */
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    *dir_mtime = sb.st_mtim;
    return n;
}

static void test_read_only_changes_nothing(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("replay-ro");
    const size_t sizes[] = {2, 3};
    build(dir, sizes, 2);
    char *log = last_log(dir);
    struct scan full;
    scan_log(log, &full);
    uint64_t gstart = full.goff[2];
    assert_int_equal(truncate(log, (off_t)(gstart + 100)), 0); /* torn */
    char *lock = tu_path(dir, MF_LOCK_NAME);
    assert_int_equal(unlink(lock), 0);

    struct fstate a[16], b[16];
    struct timespec da, db;
    size_t na = dir_state(dir, a, 16, &da);

    for (int round = 0; round < 2; round++) {
        int rc = 0;
        char err[ERR_LEN] = "";
        struct store *st = open_ro(dir, &rc, err, sizeof(err));
        if (!st)
            fail_msg("read-only open: %s (%s)", store_errname(rc), err);
        struct store_stats s;
        get_stats(st, &s);
        assert_int_equal(s.read_only, 1);
        assert_int_equal(s.torn_tail_found, 1);
        assert_int_equal(s.torn_tail_offset, gstart);
        assert_int_equal(s.entries, 2);
        check_i(st, 1);
        check_i(st, 2);
        for (uint64_t i = 3; i <= 5; i++)
            assert_int_equal(stat_i(st, i), STORE_E_NOT_FOUND);
        struct store_blob_info l[8];
        int more = 0;
        assert_int_equal(store_list(st, NULL, 8, l, &more), 2);
        void *f = store_frame_alloc(st);
        uint8_t g[16];
        guid_of(g, 1);
        const uint8_t *data = NULL;
        struct store_blob_info info;
        assert_int_equal(store_read_range(st, g, 10, 50, f, &data, &info), 0);

        /* Every change is refused. */
        enum store_outcome out = STORE_OUT_NONE;
        uint64_t v = 0;
        memset(f, 0, STORE_PAGE_SIZE);
        guid_of(g, 9);
        assert_int_equal(store_write(st, g, f, 10, NULL, &out, &v),
                         STORE_E_READONLY);
        assert_int_equal(v, 0);
        guid_of(g, 1);
        assert_int_equal(store_write(st, g, f, 10, NULL, &out, &v),
                         STORE_E_READONLY);
        assert_int_equal(store_delete(st, g, NULL, NULL), STORE_E_READONLY);
        assert_int_equal(store_flush(st, NULL), STORE_E_READONLY);
        assert_int_equal(store_compact(st), STORE_E_READONLY);
        store_frame_free(st, f);
        store_close(st);
    }

    size_t nb = dir_state(dir, b, 16, &db);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i].name, b[i].name) != 0 || a[i].size != b[i].size ||
            a[i].hash != b[i].hash || a[i].mtime.tv_sec != b[i].mtime.tv_sec ||
            a[i].mtime.tv_nsec != b[i].mtime.tv_nsec)
            fail_msg("read-only open changed %s", a[i].name);
    }
    assert_true(da.tv_sec == db.tv_sec && da.tv_nsec == db.tv_nsec);
    assert_false(file_exists(dir, MF_LOCK_NAME));
    assert_int_equal(fsize(log), gstart + 100); /* torn tail left in place */

    /* A writable open then repairs it. */
    struct store *st = tu_open(dir, NULL);
    struct store_stats s;
    get_stats(st, &s);
    assert_int_equal(s.torn_tail_found, 1);
    store_close(st);
    free(lock);
    free(log);
    tu_rmtree(dir);
}

/* ---- 7. ETags are never reused ---------------------------------------- */

static void test_etag_not_reused_after_lost_write(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("replay-etag");
    uint8_t g[16];
    char e_lost[48], e_new[48];
    struct store_blob_info info;
    tu_guid_fill(g, 0xE7);

    struct store *st = tu_open(dir, NULL);
    uint64_t v1 = tu_put(st, g, 4000, 1);
    flush_ok(st);
    uint64_t lost = tu_put(st, g, 4100, 2); /* never flushed */
    assert_true(lost != v1);
    store_close(st); /* as if killed before the flush */

    st = tu_open(dir, NULL);
    tu_check(st, g, 4000, 1); /* the lost write is gone */
    assert_int_equal(store_stat(st, g, &info), 0);
    assert_int_equal(info.version, v1);
    uint64_t v3 = tu_put(st, g, 4200, 3);
    struct store_stats s;
    get_stats(st, &s);
    assert_true(v3 != lost);
    assert_true(v3 != v1);
    assert_true(store_version_generation(v3) > store_version_generation(lost));
    assert_int_equal(store_version_generation(v3), s.generation);
    assert_true(store_etag(lost, e_lost, sizeof(e_lost)) > 0);
    assert_true(store_etag(v3, e_new, sizeof(e_new)) > 0);
    assert_string_not_equal(e_lost, e_new);
    assert_int_equal(e_new[0], '"');
    flush_ok(st);
    store_close(st);

    st = tu_open(dir, NULL);
    tu_check(st, g, 4200, 3);
    assert_int_equal(store_stat(st, g, &info), 0);
    assert_int_equal(info.version, v3);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- 8. CRC32C -------------------------------------------------------- */

static void test_crc32c_check_value(void **state)
{
    (void)state;
    assert_int_equal(store_crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(store_crc32c("", 0), 0);
    /* Continuation over a split equals the whole. */
    assert_int_equal(store_crc32c_cont(store_crc32c("1234", 4), "56789", 5),
                     0xE3069283u);
}

/* ---- hardening: interrupted log creation, wrong-LSN group, huge slot -- */

/* A crash inside log creation can leave the new log's name durable with no
 * header (empty, or a header's worth of zeros): it holds nothing, so a
 * writable open removes it and a read-only open ignores it. */
static void interrupted_log(size_t zeros)
{
    char *dir = small_store("replay-emptylog");
    char *log = last_log(dir);
    struct scan s;
    scan_log(log, &s);
    char name[32];
    mf_log_name(name, s.next_lsn);
    char *path = tu_path(dir, name);
    uint8_t z[64];
    memset(z, 0, sizeof(z));
    spew(path, z, zeros);

    int rc;
    char err[ERR_LEN];
    struct store *st = open_ro(dir, &rc, err, sizeof(err));
    assert_non_null(st);
    store_close(st);
    assert_true(file_exists(dir, name));

    st = tu_open(dir, NULL);
    for (uint64_t i = 1; i <= 3; i++)
        check_i(st, i);
    put_i(st, 10);
    flush_ok(st);
    store_close(st);
    st = tu_open(dir, NULL);
    check_i(st, 10);
    store_close(st);
    free(path);
    free(log);
    tu_rmtree(dir);
}

static void test_interrupted_log_creation_empty(void **state)
{
    (void)state;
    interrupted_log(0);
}

static void test_interrupted_log_creation_zero_header(void **state)
{
    (void)state;
    interrupted_log(64);
}

/* A valid group carrying another LSN is no torn write: corruption. */
static void test_valid_group_with_wrong_lsn_is_corrupt(void **state)
{
    (void)state;
    char *dir = small_store("replay-wronglsn");
    char *log = last_log(dir);
    struct scan s;
    scan_log(log, &s);
    struct mf_record r;
    memset(&r, 0, sizeof(r));
    r.type = MF_REC_OPEN;
    r.version = 99;
    uint8_t buf[GROUP_BYTES(1)];
    mf_encode_group(buf, s.uuid, s.next_lsn + 7, &r, 1);
    uint64_t off = round_block(s.end);
    pwrite_at(log, buf, sizeof(buf), off);
    char where[64];
    snprintf(where, sizeof(where), "offset %llu", (unsigned long long)off);
    expect_refused(dir, STORE_E_CORRUPT, where, "expected");
    free(log);
    tu_rmtree(dir);
}

/* A slot past the end of blobs.dat is refused before any memory is sized
 * by it. */
static void test_slot_past_data_file_is_corrupt(void **state)
{
    (void)state;
    char *dir = small_store("replay-bigslot");
    struct mf_record r;
    set_rec(&r, 77, (uint64_t)UINT32_MAX - 2, 10, (uint64_t)1 << 40 | 1);
    append_crafted(dir, &r, 1);
    expect_refused(dir, STORE_E_CORRUPT, "out of bounds", "blobs.dat");
    tu_rmtree(dir);
}

/* An empty blob takes no slot and no data-file space, on disk and after
 * a reopen (log replay and snapshot); giving it bytes takes a slot. */
static void test_empty_blob_takes_no_slot(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("replay-empty");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[16], h[16];
    tu_guid_fill(g, 0xE1);
    tu_guid_fill(h, 0xE2);
    tu_put(st, g, 0, 1);
    tu_put(st, h, 0, 2);
    flush_ok(st);
    struct store_stats s;
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 0);
    assert_int_equal(s.data_file_bytes, 0);
    assert_int_equal(s.entries, 2);
    store_close(st);
    for (int pass = 0; pass < 2; pass++) {
        st = tu_open(dir, NULL);
        tu_check(st, g, 0, 1);
        tu_check(st, h, 0, 2);
        get_stats(st, &s);
        assert_int_equal(s.next_slot, 0);
        if (pass == 0)
            assert_int_equal(store_compact(st), 0); /* then via snapshot */
        store_close(st);
    }
    st = tu_open(dir, NULL);
    tu_put(st, g, 5000, 3); /* empty -> non-empty: now it needs a slot */
    assert_int_equal(store_delete(st, h, NULL, NULL), 0);
    flush_ok(st);
    get_stats(st, &s);
    assert_int_equal(s.next_slot, 1);
    store_close(st);
    st = tu_open(dir, NULL);
    tu_check(st, g, 5000, 3);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, h, &info), STORE_E_NOT_FOUND);
    store_close(st);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value),
        cmocka_unit_test(test_interrupted_log_creation_empty),
        cmocka_unit_test(test_interrupted_log_creation_zero_header),
        cmocka_unit_test(test_valid_group_with_wrong_lsn_is_corrupt),
        cmocka_unit_test(test_slot_past_data_file_is_corrupt),
        cmocka_unit_test(test_empty_blob_takes_no_slot),
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_last_group_zeroed),
        cmocka_unit_test(test_last_group_random),
        cmocka_unit_test(test_flipped_bit_mid_log_is_corrupt),
        cmocka_unit_test(test_snapshot_with_stale_logs),
        cmocka_unit_test(test_stale_log_slot_changes_hands),
        cmocka_unit_test(test_snapshot_bad_magic),
        cmocka_unit_test(test_snapshot_bad_version),
        cmocka_unit_test(test_snapshot_holt_magic),
        cmocka_unit_test(test_holt_manifest_log_present),
        cmocka_unit_test(test_log_bad_version_and_magic),
        cmocka_unit_test(test_log_foreign_uuid),
        cmocka_unit_test(test_log_gap_is_corrupt),
        cmocka_unit_test(test_log_sequence_backwards_is_corrupt),
        cmocka_unit_test(test_crafted_group_is_applied),
        cmocka_unit_test(test_replay_batches_match_history),
        cmocka_unit_test(test_crafted_two_guids_one_slot),
        cmocka_unit_test(test_crafted_slot_out_of_bounds),
        cmocka_unit_test(test_crafted_length_too_large),
        cmocka_unit_test(test_crafted_future_generation),
        cmocka_unit_test(test_data_file_too_short),
        cmocka_unit_test(test_read_only_changes_nothing),
        cmocka_unit_test(test_etag_not_reused_after_lost_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
