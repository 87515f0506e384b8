/*
 * fuzz_store.c - data directories built from fuzz inputs, opened through
 * store_open and checked (fuzz_store.h has the input layout and the
 * invariants S1-S4).
 *
 * Uses the manifest constants and encoders of store_int.h (a test of
 * internals may); everything else goes through the public store API.
 * Every directory is created per run and removed by fs_dir_free (F2).
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

#include "fuzz.h"
#include "fuzz_store.h"
#include "store.h"
#include "store_int.h"

#define FS_LIST_PAGE 256u

/* ---- directories ---- */

static const char *fs_tmp_base(void)
{
    const char *t = getenv("BLOBD_FUZZ_TMPDIR");
    if (t && *t)
        return t;
    if (access("/dev/shm", W_OK | X_OK) == 0)
        return "/dev/shm";
    t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

int fs_dir_new(struct fs_dir *d)
{
    int n = snprintf(d->path, sizeof(d->path), "%s/blobd-fuzz-XXXXXX",
                     fs_tmp_base());
    d->dirfd = -1;
    if (n < 0 || (size_t)n >= sizeof(d->path) || !mkdtemp(d->path)) {
        fprintf(stderr, "fuzz: mkdtemp %s: %s\n", d->path, strerror(errno));
        return -1;
    }
    d->dirfd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->dirfd < 0) {
        fprintf(stderr, "fuzz: open %s: %s\n", d->path, strerror(errno));
        rmdir(d->path);
        return -1;
    }
    return 0;
}

void fs_dir_free(struct fs_dir *d)
{
    if (d->dirfd < 0)
        return;
    /* The store creates only plain files here; a second pass catches a
     * name that readdir skipped while the directory changed. */
    for (int pass = 0; pass < 2; pass++) {
        int fd = dup(d->dirfd);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        if (!dir) {
            if (fd >= 0)
                close(fd);
            break;
        }
        rewinddir(dir);
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            unlinkat(d->dirfd, de->d_name, 0);
        }
        closedir(dir);
    }
    close(d->dirfd);
    d->dirfd = -1;
    if (rmdir(d->path) < 0)
        fprintf(stderr, "fuzz: rmdir %s: %s\n", d->path, strerror(errno));
}

int fs_write(struct fs_dir *d, const char *name, const void *buf, size_t len)
{
    int fd =
        openat(d->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, (const uint8_t *)buf + done, len - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    close(fd);
    return 0;
}

uint64_t fs_data_size(const uint8_t *prelude)
{
    uint64_t units = (uint64_t)prelude[1] | (uint64_t)prelude[2] << 8;
    uint64_t size = units * STORE_PAGE_SIZE << (prelude[3] & 15);
    uint64_t cheap = FS_CHEAP_SLOTS * STORE_FRAME_SIZE;
    return size > cheap ? cheap : size;
}

void fs_data_prelude(uint64_t size, uint8_t *prelude)
{
    uint64_t units = (size + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE;
    unsigned shift = 0;
    while (units > 0xffff && shift < 15) {
        units = (units + 1) / 2;
        shift++;
    }
    prelude[1] = (uint8_t)units;
    prelude[2] = (uint8_t)(units >> 8);
    prelude[3] = (uint8_t)shift;
}

int fs_data_file(struct fs_dir *d, const uint8_t *prelude)
{
    int fd = openat(d->dirfd, MF_DATA_NAME,
                    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = ftruncate(fd, (off_t)fs_data_size(prelude));
    close(fd);
    return rc < 0 ? -1 : 0;
}

/* ---- repairs ---- */

static void fs_seal(uint8_t *u)
{
    le_put32(u + 60, store_crc32c(u, 60));
}

int fs_snapshot_big(const uint8_t *snap, size_t len)
{
    uint64_t next_slot = len >= 48 ? le_get64(snap + 40) : 0;
    return next_slot > FS_CHEAP_SLOTS && next_slot <= MF_MAX_SLOTS;
}

size_t fs_fix_snapshot(uint8_t *buf, size_t len, unsigned flags)
{
    if (len < MF_SNAP_HDR_SIZE)
        return len;
    size_t n = 0;
    if (len >= MF_SNAP_HDR_SIZE + MF_SNAP_TRAILER_SIZE)
        n = (len - MF_SNAP_HDR_SIZE - MF_SNAP_TRAILER_SIZE) /
            MF_SNAP_ENTRY_SIZE;
    size_t toff = MF_SNAP_HDR_SIZE + n * MF_SNAP_ENTRY_SIZE;
    int has_trailer = toff + MF_SNAP_TRAILER_SIZE <= len;
    if (flags & FS_FIX_COUNT) {
        le_put64(buf + 48, n);
        if (has_trailer) {
            le_put64(buf + toff + 8, n);
            len = toff + MF_SNAP_TRAILER_SIZE; /* the size the count needs */
        }
    }
    if (flags & FS_FIX_CRC) {
        for (size_t i = 0; i < n; i++) {
            uint8_t *e = buf + MF_SNAP_HDR_SIZE + i * MF_SNAP_ENTRY_SIZE;
            le_put32(e + 44, store_crc32c(e, 44));
        }
        if (has_trailer) {
            le_put32(buf + toff + 16, store_crc32c(buf + MF_SNAP_HDR_SIZE,
                                                   n * MF_SNAP_ENTRY_SIZE));
            fs_seal(buf + toff);
        }
        fs_seal(buf);
    }
    return len;
}

static uint64_t fs_round_block(uint64_t v)
{
    return (v + MF_BLOCK - 1) / MF_BLOCK * MF_BLOCK;
}

static int fs_is(const uint8_t *u, size_t n, const char *magic)
{
    return n >= 8 && memcmp(u, magic, 8) == 0;
}

/* Repair the whole units laid out at off[0..n) of a log (FS_FIX_*). */
static void fs_fix_log(uint8_t *buf, const size_t *off, size_t n,
                       unsigned flags)
{
    uint8_t *grp = NULL;
    uint64_t first = 0;
    uint32_t nrec = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *u = buf + off[i];
        if (fs_is(u, FS_UNIT, MF_GROUP_MAGIC)) {
            if (grp && (flags & FS_FIX_CRC))
                fs_seal(grp); /* the previous group had no commit */
            grp = u;
            first = le_get64(u + 8);
            nrec = 0;
        } else if (fs_is(u, FS_UNIT, MF_COMMIT_MAGIC) && grp) {
            if (flags & FS_FIX_COUNT) {
                le_put32(grp + 16, nrec);
                le_put64(u + 8, first);
                le_put32(u + 16, nrec);
            }
            if (flags & FS_FIX_CRC) {
                fs_seal(grp);
                le_put32(u + 20, store_crc32c(grp, (size_t)(u - grp)));
                fs_seal(u);
            }
            grp = NULL;
        } else if (fs_is(u, FS_UNIT, MF_COMMIT_MAGIC) ||
                   fs_is(u, FS_UNIT, MF_LOG_MAGIC) || !grp) {
            if (flags & FS_FIX_CRC)
                fs_seal(u);
        } else { /* a record of the open group */
            if (flags & FS_FIX_COUNT)
                le_put64(u + 8, first + nrec);
            nrec++;
            if (flags & FS_FIX_CRC)
                fs_seal(u);
        }
    }
    if (grp && (flags & FS_FIX_CRC))
        fs_seal(grp);
}

uint8_t *fs_log_expand(const uint8_t *sec, size_t len, unsigned flags,
                       size_t *out_len)
{
    size_t nunits = (len + FS_UNIT - 1) / FS_UNIT;
    size_t *off = malloc((nunits ? nunits : 1) * sizeof(*off));
    uint8_t *buf = NULL;
    if (!off)
        return NULL;
    /* Pass 1: where each unit goes (SIZE_MAX: a pad, not written). */
    size_t pos = 0, nfull = 0;
    for (size_t i = 0; i < nunits; i++) {
        const uint8_t *u = sec + i * FS_UNIT;
        size_t n = len - i * FS_UNIT < FS_UNIT ? len - i * FS_UNIT : FS_UNIT;
        if (n == FS_UNIT && memcmp(u, FS_PAD, 8) == 0) {
            pos = fs_round_block(pos);
            off[i] = SIZE_MAX;
            continue;
        }
        if (fs_is(u, n, MF_GROUP_MAGIC))
            pos = fs_round_block(pos);
        off[i] = pos;
        pos += n;
    }
    buf = calloc(pos ? pos : 1, 1);
    if (!buf)
        goto out;
    /* Pass 2: copy, and keep the offsets of whole units for the fixes. */
    for (size_t i = 0; i < nunits; i++) {
        size_t n = len - i * FS_UNIT < FS_UNIT ? len - i * FS_UNIT : FS_UNIT;
        if (off[i] == SIZE_MAX)
            continue;
        memcpy(buf + off[i], sec + i * FS_UNIT, n);
        if (n == FS_UNIT)
            off[nfull++] = off[i];
    }
    if (flags & (FS_FIX_CRC | FS_FIX_COUNT))
        fs_fix_log(buf, off, nfull, flags);
    *out_len = pos;
out:
    free(off);
    return buf;
}

static int fs_zero(const uint8_t *u, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (u[i])
            return 0;
    return 1;
}

uint8_t *fs_log_compact(const uint8_t *file, size_t len, size_t *out_len)
{
    uint8_t *out = malloc(len ? len : 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t pos = 0; pos < len; pos += FS_UNIT) {
        size_t n = len - pos < FS_UNIT ? len - pos : FS_UNIT;
        if (n == FS_UNIT && fs_zero(file + pos, n)) {
            /* Padding if only zeros follow up to a group at a boundary. */
            size_t next = fs_round_block(pos + 1);
            if (pos % MF_BLOCK != 0 && next < len &&
                fs_is(file + next, len - next, MF_GROUP_MAGIC) &&
                fs_zero(file + pos, next - pos)) {
                pos = next - FS_UNIT;
                continue;
            }
        }
        memcpy(out + o, file + pos, n);
        o += n;
    }
    *out_len = o;
    return out;
}

uint64_t fs_log_name_lsn(const uint8_t *file, size_t len, int delta)
{
    uint64_t lsn = len >= MF_LOG_HDR_SIZE ? le_get64(file + 32) : 1;
    return lsn + (uint64_t)(int64_t)delta;
}

/* ---- opening and checking ---- */

static void fs_log_sink(void *ctx, enum store_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

static struct store *fs_open(struct fs_dir *d, int writable, int *rc, char *err,
                             size_t errlen)
{
    struct store_config cfg;
    store_config_init(&cfg, d->path);
    cfg.direct = STORE_DIRECT_OFF;
    cfg.read_only = !writable;
    cfg.backend = STORE_BACKEND_PREAD;
    cfg.log_fn = fs_log_sink;
    cfg.log_level = STORE_LOG_ERROR;
    cfg.lock_timeout_ms = 100;
    struct store *st = store_open(&cfg, rc, err, errlen);
    /* S1 */
    if (st)
        FUZZ_CHECK(*rc == 0, "store_open returned a store and rc %d", *rc);
    else
        FUZZ_CHECK(*rc < 0 && err[0] != '\0',
                   "store_open failed with rc %d (%s) and message \"%s\"", *rc,
                   store_errname(*rc), err);
    return st;
}

struct fs_list {
    struct store_blob_info *v;
    size_t n, cap;
};

static void fs_list_free(struct fs_list *l)
{
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Every entry, page by page.  0 or -1 (ENOMEM). */
static int fs_list_all(struct store *st, struct fs_list *l)
{
    uint8_t after[STORE_GUID_SIZE];
    int have_after = 0, more = 1;
    memset(l, 0, sizeof(*l));
    while (more) {
        if (l->cap - l->n < FS_LIST_PAGE) {
            size_t cap = l->cap ? l->cap * 2 : FS_LIST_PAGE;
            struct store_blob_info *v = realloc(l->v, cap * sizeof(*v));
            if (!v)
                return -1;
            l->v = v;
            l->cap = cap;
        }
        int n = store_list(st, have_after ? after : NULL, FS_LIST_PAGE,
                           l->v + l->n, &more);
        if (n == -ENOMEM)
            return -1;
        FUZZ_CHECK(n >= 0 && (unsigned)n <= FS_LIST_PAGE,
                   "store_list returned %d", n);
        FUZZ_CHECK(n > 0 || !more, "store_list: an empty page with more");
        if (n == 0)
            break;
        l->n += (size_t)n;
        memcpy(after, l->v[l->n - 1].guid, STORE_GUID_SIZE);
        have_after = 1;
    }
    return 0;
}

/* S2 and S3 on an open store; fills l (the caller frees it). */
static int fs_check_open(struct store *st, struct fs_list *l)
{
    if (fs_list_all(st, l) < 0)
        return -1;
    uint64_t slotted = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct store_blob_info *b = &l->v[i];
        struct store_blob_info info;
        FUZZ_CHECK(i == 0 ||
                       memcmp(l->v[i - 1].guid, b->guid, STORE_GUID_SIZE) < 0,
                   "listing out of order at %zu", i);
        FUZZ_CHECK(b->len <= STORE_FRAME_SIZE, "entry %zu has length %" PRIu32,
                   i, b->len);
        int rc = store_stat(st, b->guid, &info);
        FUZZ_CHECK(rc == 0, "store_stat of listed entry %zu: %d", i, rc);
        FUZZ_CHECK(info.len == b->len && info.version == b->version &&
                       info.crc == b->crc,
                   "store_stat disagrees with the listing at %zu", i);
        slotted += b->len > 0;
    }
    struct store_stats s;
    store_get_stats(st, &s);
    FUZZ_CHECK(store_count(st) == l->n && s.entries == l->n,
               "count %" PRIu64 ", stats %" PRIu64 ", listed %zu",
               store_count(st), s.entries, l->n);
    FUZZ_CHECK(s.free_total + slotted == s.next_slot,
               "free %" PRIu64 " + in use %" PRIu64 " != next_slot %" PRIu64,
               s.free_total, slotted, s.next_slot);
    return 0;
}

static void fs_pattern(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

/* Remove entry k from l; insert b in GUID order. */
static void fs_list_del(struct fs_list *l, size_t k)
{
    memmove(&l->v[k], &l->v[k + 1], (l->n - k - 1) * sizeof(l->v[0]));
    l->n--;
}

static int fs_list_add(struct fs_list *l, const struct store_blob_info *b)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct store_blob_info *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    size_t k = 0;
    while (k < l->n && memcmp(l->v[k].guid, b->guid, STORE_GUID_SIZE) < 0)
        k++;
    memmove(&l->v[k + 1], &l->v[k], (l->n - k) * sizeof(l->v[0]));
    l->v[k] = *b;
    l->n++;
    return 0;
}

static void fs_lists_equal(const struct fs_list *a, const struct fs_list *b,
                           const char *when)
{
    FUZZ_CHECK(a->n == b->n, "%s: %zu entries, expected %zu", when, a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        FUZZ_CHECK(memcmp(a->v[i].guid, b->v[i].guid, STORE_GUID_SIZE) == 0 &&
                       a->v[i].len == b->v[i].len &&
                       a->v[i].version == b->v[i].version &&
                       a->v[i].crc == b->v[i].crc,
                   "%s: entry %zu differs", when, i);
}

/* Read the blob back and compare it with pattern(seed). */
static void fs_check_blob(struct store *st, const uint8_t *guid, uint32_t len,
                          uint64_t seed, uint8_t *want)
{
    void *frame = store_frame_alloc(st);
    if (!frame)
        return;
    struct store_blob_info info;
    int rc = store_read(st, guid, frame, &info);
    FUZZ_CHECK(rc == 0 && info.len == len,
               "reading the round-trip blob back: rc %d (%s), len %" PRIu32
               " of %" PRIu32,
               rc, store_errname(rc), info.len, len);
    fs_pattern(want, len, seed);
    FUZZ_CHECK(memcmp(frame, want, len) == 0,
               "the round-trip blob came back with other bytes");
    store_frame_free(st, frame);
}

/* S4 on a store opened writable; closes it. */
static void fs_roundtrip(struct fs_dir *d, struct store *st, struct fs_list *l,
                         uint64_t seed)
{
    struct store_blob_info nb;
    struct fs_list after = {0};
    uint32_t len = seed % 4 == 0 ? 0 : (uint32_t)(1 + seed % 9000);
    uint8_t *want = malloc(len + 1);
    void *frame = store_frame_alloc(st);
    enum store_outcome out;
    char err[1024];
    int rc;
    if (!want || !frame)
        goto out;
    /* A GUID that is not there yet. */
    memset(nb.guid, 0xa5, sizeof(nb.guid));
    le_put64(nb.guid, seed);
    for (unsigned i = 0;; i++) {
        struct store_blob_info info;
        if (i > 0xffff)
            goto out; /* 65536 entries of this prefix: nothing to add */
        nb.guid[14] = (uint8_t)(i >> 8);
        nb.guid[15] = (uint8_t)i;
        if (store_stat(st, nb.guid, &info) == STORE_E_NOT_FOUND)
            break;
    }
    fs_pattern(frame, len, seed);
    rc = store_write(st, nb.guid, frame, len, NULL, &out, &nb.version);
    FUZZ_CHECK(rc == 0 && out == STORE_OUT_CREATED,
               "write into an opened store: rc %d (%s), outcome %s", rc,
               store_errname(rc), store_outcome_name(out));
    nb.len = len;
    nb.crc = store_crc32c(frame, len);
    if (l->n > 0) {
        size_t k = (size_t)(seed % l->n);
        rc = store_delete(st, l->v[k].guid, NULL, &out);
        FUZZ_CHECK(rc == 0 && out == STORE_OUT_DELETED,
                   "delete of listed entry %zu: rc %d (%s)", k, rc,
                   store_errname(rc));
        fs_list_del(l, k);
    }
    if (fs_list_add(l, &nb) < 0)
        goto out;
    struct store_flush_result fr;
    rc = store_flush(st, &fr);
    FUZZ_CHECK(rc == 0, "flush: %d (%s)", rc, store_errname(rc));
    rc = store_compact(st);
    FUZZ_CHECK(rc == 0, "compaction: %d (%s)", rc, store_errname(rc));
    if (fs_check_open(st, &after) < 0)
        goto out;
    fs_lists_equal(&after, l, "after the compaction");
    fs_list_free(&after);
    fs_check_blob(st, nb.guid, len, seed, want);
    store_frame_free(st, frame);
    frame = NULL;
    store_close(st);
    st = NULL;
    /* What the compaction wrote opens again and holds the same. */
    st = fs_open(d, 0, &rc, err, sizeof(err));
    FUZZ_CHECK(st, "reopening after the round trip: %s", err);
    if (fs_check_open(st, &after) < 0)
        goto out;
    fs_lists_equal(&after, l, "reopened");
    fs_check_blob(st, nb.guid, len, seed, want);
out:
    if (frame)
        store_frame_free(st, frame);
    store_close(st);
    fs_list_free(&after);
    free(want);
}

int fs_open_and_check(struct fs_dir *d, unsigned flags, uint64_t seed)
{
    static int verbose = -1;
    char err[1024];
    int rc;
    int writable = (flags & FS_WRITABLE) != 0;
    struct fs_list l = {0};
    if (verbose < 0)
        verbose = getenv("BLOBD_FUZZ_VERBOSE") != NULL;
    struct store *st = fs_open(d, writable, &rc, err, sizeof(err));
    if (verbose)
        fprintf(stderr, "fuzz: %s open: %s\n",
                writable ? "writable" : "read-only", st ? "ok" : err);
    if (!st)
        return 0;
    if (fs_check_open(st, &l) == 0 && writable && (flags & FS_ROUNDTRIP)) {
        if (verbose)
            fprintf(stderr, "fuzz: %zu entries; round trip\n", l.n);
        fs_roundtrip(d, st, &l, seed);
        st = NULL;
    }
    store_close(st);
    fs_list_free(&l);
    return 1;
}
