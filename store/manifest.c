/*
 * manifest.c - the manifest on disk: encoding of log records, commit
 * groups, log headers and the snapshot (docs/format.md), the replay that
 * rebuilds the index at open, and the snapshot commit.
 *
 * Invariants:
 *  M1. Every log record has an LSN; across the logs, taken in LSN order,
 *      the LSNs are contiguous.  Records the snapshot covers (LSN <=
 *      snap_lsn) are skipped; a gap or a step backwards refuses to open.
 *  M2. A group is applied only after its commit record has been checked
 *      (two passes over the group, streaming, never the whole log).
 *  M3. A bad group with no valid group after it (in the same log, at a
 *      later 4 KiB boundary, with an LSN at or past the expected one, or in
 *      a later log) is a torn tail; otherwise it is corruption, reported
 *      with file and offset.
 *  M4. Every record past the snapshot is checked as it is read: a slot
 *      past the limit, a length past one frame or a version from a future
 *      generation refuse to open.  Records are applied in batches sorted
 *      by GUID (never across two logs); after each batch no slot may be
 *      claimed by two GUIDs.  A claim that a later record of the same
 *      batch withdraws is not seen: the state each batch leaves is.
 *  M5. manifest.bin is replaced only by mf_commit_snapshot, renaming a tmp
 *      file that mf_write_snapshot_tmp wrote and fsynced; then the
 *      directory is fsynced.
 * Threads: replay runs during open; snapshot writing runs on whichever
 * thread compacts, reading the index only through its page callback.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

/* Pinned offsets of docs/format.md. */
_Static_assert(MF_REC_SIZE == 64, "record size");
_Static_assert(MF_SNAP_HDR_SIZE == 64 && MF_SNAP_ENTRY_SIZE == 48,
               "snapshot sizes");
_Static_assert(MF_BLOCK % MF_REC_SIZE == 0, "groups align to records");
_Static_assert(sizeof(MF_GROUP_MAGIC) - 1 == 8 &&
                   sizeof(MF_COMMIT_MAGIC) - 1 == 8 &&
                   sizeof(MF_LOG_MAGIC) - 1 == 8 &&
                   sizeof(MF_SNAP_MAGIC) - 1 == 8 &&
                   sizeof(MF_SNAP_END_MAGIC) - 1 == 8,
               "magics are 8 bytes");

#define OFF_CRC 60 /* every 64-byte header/record: CRC32C of bytes 0..59 */

static int mf_fail(struct mf_ctx *ctx, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int mf_fail(struct mf_ctx *ctx, int rc, const char *fmt, ...)
{
    if (ctx->err && ctx->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, ctx->errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void mf_warn(struct mf_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void mf_warn(struct mf_ctx *ctx, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ctx->warn)
        ctx->warn(ctx->warn_ctx, msg);
}

static void seal64(uint8_t *p)
{
    le_put32(p + OFF_CRC, store_crc32c(p, OFF_CRC));
}

static int sealed64_ok(const uint8_t *p)
{
    return le_get32(p + OFF_CRC) == store_crc32c(p, OFF_CRC);
}

/* ---- records ---- */

void mf_encode_record(uint8_t out[MF_REC_SIZE], const struct mf_record *r)
{
    memset(out, 0, MF_REC_SIZE);
    out[0] = (uint8_t)r->type;
    le_put64(out + 8, r->lsn);
    memcpy(out + 16, r->guid, STORE_GUID_SIZE);
    le_put64(out + 32, r->slot);
    le_put32(out + 40, r->len);
    le_put32(out + 44, r->crc);
    le_put64(out + 48, r->version);
    seal64(out);
}

int mf_decode_record(const uint8_t in[MF_REC_SIZE], struct mf_record *r)
{
    if (!sealed64_ok(in))
        return -1;
    if (in[0] < MF_REC_SET || in[0] > MF_REC_OPEN)
        return -1;
    r->type = (enum mf_rec_type)in[0];
    r->lsn = le_get64(in + 8);
    memcpy(r->guid, in + 16, STORE_GUID_SIZE);
    r->slot = le_get64(in + 32);
    r->len = le_get32(in + 40);
    r->crc = le_get32(in + 44);
    r->version = le_get64(in + 48);
    return 0;
}

static void encode_group_header(uint8_t *p, const uint8_t uuid[16],
                                uint64_t first_lsn, uint32_t count)
{
    memset(p, 0, MF_REC_SIZE);
    memcpy(p, MF_GROUP_MAGIC, 8);
    le_put64(p + 8, first_lsn);
    le_put32(p + 16, count);
    memcpy(p + 24, uuid, 16);
    seal64(p);
}

static void encode_commit(uint8_t *p, uint64_t first_lsn, uint32_t count,
                          uint32_t group_crc)
{
    memset(p, 0, MF_REC_SIZE);
    memcpy(p, MF_COMMIT_MAGIC, 8);
    le_put64(p + 8, first_lsn);
    le_put32(p + 16, count);
    le_put32(p + 20, group_crc);
    seal64(p);
}

void mf_encode_group(uint8_t *buf, const uint8_t uuid[16], uint64_t first_lsn,
                     const struct mf_record *recs, size_t n)
{
    encode_group_header(buf, uuid, first_lsn, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        struct mf_record r = recs[i];
        r.lsn = first_lsn + i;
        mf_encode_record(buf + MF_REC_SIZE * (i + 1), &r);
    }
    uint32_t crc = store_crc32c(buf, MF_REC_SIZE * (n + 1));
    encode_commit(buf + MF_REC_SIZE * (n + 1), first_lsn, (uint32_t)n, crc);
}

void mf_encode_log_header(uint8_t out[MF_LOG_HDR_SIZE], const uint8_t uuid[16],
                          uint64_t first_lsn)
{
    memset(out, 0, MF_LOG_HDR_SIZE);
    memcpy(out, MF_LOG_MAGIC, 8);
    le_put32(out + 8, MF_VERSION);
    memcpy(out + 16, uuid, 16);
    le_put64(out + 32, first_lsn);
    seal64(out);
}

void mf_log_name(char out[32], uint64_t lsn)
{
    snprintf(out, 32, "log-%016" PRIx64 ".blg", lsn);
}

int mf_parse_log_name(const char *name, uint64_t *lsn)
{
    if (strlen(name) != 24 || strncmp(name, "log-", 4) != 0 ||
        strcmp(name + 20, ".blg") != 0)
        return -1;
    uint64_t v = 0;
    for (int i = 4; i < 20; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *lsn = v;
    return 0;
}

/* ---- reading helpers ---- */

static int read_full(struct mf_ctx *ctx, int fd, void *buf, size_t len,
                     uint64_t off, const char *name)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = ctx->io->pread(ctx->io, fd, (uint8_t *)buf + done,
                                   len - done, off + done);
        if (n < 0)
            return mf_fail(ctx, (int)n, "pread %s/%s at %" PRIu64 ": %s",
                           ctx->dir, name, off + done, strerror((int)-n));
        if (n == 0) {
            struct stat sb;
            if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size <= off + done)
                return 1; /* end of file */
            return mf_fail(ctx, -EIO,
                           "pread %s/%s at %" PRIu64
                           ": nothing read inside the file",
                           ctx->dir, name, off + done);
        }
        done += (size_t)n;
    }
    return 0;
}

static int file_size(int fd, uint64_t *size)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return -errno;
    *size = (uint64_t)sb.st_size;
    return 0;
}

/* A log is read through one buffer: a group's header, records and commit
 * usually come from one pread, and the second pass finds them still
 * there. */
#define RD_CAP (1u << 20)

struct log_rd {
    struct mf_ctx *ctx;
    int fd;
    const char *name;
    uint8_t *buf; /* RD_CAP bytes */
    uint64_t base;
    size_t len; /* buf holds [base, base + len) of the file */
};

/* *p = the len (<= RD_CAP) bytes at off; read_full's results. */
static int rd_get(struct log_rd *r, uint64_t off, size_t len, const uint8_t **p)
{
    if (off >= r->base && off + len <= r->base + r->len) {
        *p = r->buf + (off - r->base);
        return 0;
    }
    struct mf_ctx *ctx = r->ctx;
    size_t done = 0;
    r->base = off;
    r->len = 0;
    while (done < RD_CAP) {
        ssize_t n = ctx->io->pread(ctx->io, r->fd, r->buf + done, RD_CAP - done,
                                   off + done);
        if (n < 0)
            return mf_fail(ctx, (int)n, "pread %s/%s at %" PRIu64 ": %s",
                           ctx->dir, r->name, off + done, strerror((int)-n));
        if (n == 0)
            break;
        done += (size_t)n;
    }
    r->len = done;
    if (done < len) {
        struct stat sb;
        if (fstat(r->fd, &sb) == 0 && (uint64_t)sb.st_size <= off + done)
            return 1; /* end of file */
        return mf_fail(ctx, -EIO,
                       "pread %s/%s at %" PRIu64 ": nothing read inside the "
                       "file",
                       ctx->dir, r->name, off + done);
    }
    *p = r->buf;
    return 0;
}

/* The whole file is read front to back at open: ask the kernel for all of
 * it now, so the disk reads ahead while the records are checked and
 * applied.  Only a hint (an fd of a test's I/O layer may refuse it). */
static void read_ahead(int fd)
{
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
}

/* ---- applying records (M4) ---- */

/* A slot is valid for a length: an empty blob has none, any other one a
 * slot inside blobs.dat. */
static int slot_ok(const struct mf_ctx *ctx, uint64_t slot, uint32_t len)
{
    if (len == 0)
        return slot == MF_SLOT_NONE;
    return slot < MF_MAX_SLOTS && slot < ctx->data_slots;
}

/*
 * Records past the snapshot are not applied one by one: each SET or
 * DELETE is checked on its own as it is read (bounds, length, generation,
 * in LSN order), then collected into a batch.  A batch is sorted by GUID
 * (stable, so a GUID's records stay in LSN order) and applied in that
 * order, so the index is walked front to back instead of searched at
 * random: a GUID's last record decides its entry.  Slot ownership is then
 * checked for the batch as a whole: the slots its entries left are freed,
 * and each slot an entry took must be free.  A batch never spans two logs,
 * and is applied before a torn tail is truncated.
 */
uint32_t mf_replay_batch_max = 1u << 19; /* 24 MiB of items, twice */

uint64_t mf_replay_batch_limit(uint64_t entries)
{
    return entries / 8 > mf_replay_batch_max ? entries / 8
                                             : mf_replay_batch_max;
}

struct rp_item {
    uint8_t guid[STORE_GUID_SIZE];
    uint64_t version;
    uint64_t off; /* of the record in its log, for messages */
    uint32_t slot, len, crc;
    uint32_t del; /* 1: DELETE, 0: SET */
};

struct rp_batch {
    struct rp_item *v, *tmp;
    size_t n, cap;   /* every array has room for cap items */
    uint64_t limit;  /* mf_replay_batch_limit when the batch started */
    uint32_t *freed; /* slots left by the batch's entries */
    uint32_t *taken; /* items whose slot an entry took */
};

static void batch_free(struct rp_batch *b)
{
    free(b->v);
    free(b->tmp);
    free(b->freed);
    free(b->taken);
    memset(b, 0, sizeof(*b));
}

static int batch_push(struct mf_ctx *ctx, struct rp_batch *b,
                      const struct mf_record *r, uint64_t off, const char *name)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        struct rp_item *v = realloc(b->v, ncap * sizeof(*v));
        if (v)
            b->v = v;
        struct rp_item *tmp = realloc(b->tmp, ncap * sizeof(*tmp));
        if (tmp)
            b->tmp = tmp;
        uint32_t *freed = realloc(b->freed, ncap * sizeof(*freed));
        if (freed)
            b->freed = freed;
        uint32_t *taken = realloc(b->taken, ncap * sizeof(*taken));
        if (taken)
            b->taken = taken;
        if (!v || !tmp || !freed || !taken)
            return mf_fail(ctx, -ENOMEM, "out of memory replaying %s", name);
        b->cap = ncap;
    }
    struct rp_item *it = &b->v[b->n++];
    memcpy(it->guid, r->guid, STORE_GUID_SIZE);
    it->version = r->version;
    it->off = off;
    it->slot = r->len > 0 ? (uint32_t)r->slot : SLOT_NONE;
    it->len = r->len;
    it->crc = r->crc;
    it->del = r->type == MF_REC_DELETE;
    return 0;
}

/* Stable MSD radix sort by GUID bytes [byte, 16), one byte a level.  Each
 * level scatters between the two buffers once: batch_sort_in leaves the
 * result where the items were, batch_sort_to in the other buffer. */
static void batch_sort_to(struct rp_item *src, struct rp_item *dst, size_t n,
                          int byte);

static void insertion_sort(struct rp_item *v, size_t n, int byte)
{
    for (size_t i = 1; i < n; i++) {
        struct rp_item x = v[i];
        size_t j = i;
        while (j > 0 && memcmp(v[j - 1].guid + byte, x.guid + byte,
                               STORE_GUID_SIZE - byte) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* Counts of byte's values in v; 1 if they all share one value. */
static int count_byte(const struct rp_item *v, size_t n, int byte,
                      size_t count[256])
{
    memset(count, 0, 256 * sizeof(count[0]));
    for (size_t i = 0; i < n; i++)
        count[v[i].guid[byte]]++;
    return count[v[0].guid[byte]] == n;
}

static void scatter(const struct rp_item *src, struct rp_item *dst, size_t n,
                    int byte, const size_t count[256])
{
    size_t pos[256], at = 0;
    for (int k = 0; k < 256; k++) {
        pos[k] = at;
        at += count[k];
    }
    for (size_t i = 0; i < n; i++)
        dst[pos[src[i].guid[byte]]++] = src[i];
}

static void batch_sort_in(struct rp_item *v, struct rp_item *tmp, size_t n,
                          int byte)
{
    size_t count[256];
    if (byte == STORE_GUID_SIZE || n < 2)
        return; /* one GUID: already in LSN order */
    if (n <= 16) {
        insertion_sort(v, n, byte);
        return;
    }
    if (count_byte(v, n, byte, count)) {
        batch_sort_in(v, tmp, n, byte + 1);
        return;
    }
    scatter(v, tmp, n, byte, count);
    for (size_t k = 0, at = 0; k < 256; at += count[k], k++)
        batch_sort_to(tmp + at, v + at, count[k], byte + 1);
}

static void batch_sort_to(struct rp_item *src, struct rp_item *dst, size_t n,
                          int byte)
{
    size_t count[256];
    if (byte == STORE_GUID_SIZE || n <= 16) {
        if (byte < STORE_GUID_SIZE)
            insertion_sort(src, n, byte);
        memcpy(dst, src, n * sizeof(*src));
        return;
    }
    if (count_byte(src, n, byte, count)) {
        batch_sort_to(src, dst, n, byte + 1);
        return;
    }
    scatter(src, dst, n, byte, count);
    for (size_t k = 0, at = 0; k < 256; at += count[k], k++)
        batch_sort_in(dst + at, src + at, count[k], byte + 1);
}

/* Apply the batch collected from log name (M4), then empty it. */
static int batch_apply(struct mf_ctx *ctx, struct index *ix, struct mf_state *s,
                       struct rp_batch *b, const char *name)
{
    if (b->n == 0)
        return 0;
    batch_sort_in(b->v, b->tmp, b->n, 0);
    size_t nfreed = 0, ntaken = 0;
    struct index_cursor at = {0};
    for (size_t i = 0; i < b->n;) {
        size_t last = i;
        while (last + 1 < b->n &&
               memcmp(b->v[last + 1].guid, b->v[i].guid, STORE_GUID_SIZE) == 0)
            last++;
        const struct rp_item *it = &b->v[last]; /* the GUID's last word */
        struct index_entry *cur = index_find_next(ix, it->guid, &at);
        if (cur && cur->slot != SLOT_NONE)
            b->freed[nfreed++] = cur->slot;
        struct index_entry old;
        if (it->del) {
            if (cur) {
                index_remove(ix, it->guid, &old);
                at.valid = 0;
            }
        } else {
            struct index_entry e;
            memcpy(e.guid, it->guid, STORE_GUID_SIZE);
            e.slot = it->slot;
            e.len = it->len;
            e.crc = it->crc;
            ix_set_version(&e, it->version);
            if (cur) {
                *cur = e; /* a rewrite: the entry found above */
            } else {
                int had;
                at.valid = 0;
                int rc = index_put(ix, &e, &old, &had);
                if (rc < 0)
                    return mf_fail(ctx, rc, "out of memory replaying %s", name);
            }
            if (it->slot != SLOT_NONE)
                b->taken[ntaken++] = (uint32_t)last;
        }
        i = last + 1;
    }
    for (size_t i = 0; i < nfreed; i++)
        bitmap_clear(&s->used, b->freed[i]);
    for (size_t i = 0; i < ntaken; i++) {
        const struct rp_item *it = &b->v[b->taken[i]];
        int rc = bitmap_ensure(&s->used, (uint64_t)it->slot + 1);
        if (rc < 0)
            return mf_fail(ctx, rc, "out of memory replaying %s", name);
        if (bitmap_get(&s->used, it->slot))
            return mf_fail(ctx, STORE_E_CORRUPT,
                           "%s/%s at offset %" PRIu64 ": slot %" PRIu32
                           " is claimed by two GUIDs",
                           ctx->dir, name, it->off, it->slot);
        bitmap_set(&s->used, it->slot);
    }
    b->n = 0;
    return 0;
}

/* Check one record past the snapshot on its own and collect it. */
static int collect_record(struct mf_ctx *ctx, struct mf_state *s,
                          struct rp_batch *b, const struct mf_record *r,
                          const char *name, uint64_t off)
{
    switch (r->type) {
    case MF_REC_OPEN:
        if (r->version <= s->generation || r->version > MF_MAX_GENERATION)
            return mf_fail(ctx, STORE_E_CORRUPT,
                           "%s/%s at offset %" PRIu64 ": generation %" PRIu64
                           " does not follow %" PRIu64,
                           ctx->dir, name, off, r->version, s->generation);
        s->generation = r->version;
        return 0;
    case MF_REC_SET:
        break;
    case MF_REC_DELETE:
        return batch_push(ctx, b, r, off, name);
    default:
        return mf_fail(ctx, STORE_E_CORRUPT,
                       "%s/%s at offset %" PRIu64 ": unknown record type",
                       ctx->dir, name, off);
    }
    if (r->len > STORE_FRAME_SIZE)
        return mf_fail(ctx, STORE_E_CORRUPT,
                       "%s/%s at offset %" PRIu64 ": length %" PRIu32
                       " exceeds one frame",
                       ctx->dir, name, off, r->len);
    if (!slot_ok(ctx, r->slot, r->len))
        return mf_fail(ctx, STORE_E_CORRUPT,
                       "%s/%s at offset %" PRIu64 ": slot %" PRIu64
                       " out of bounds (%s covers %" PRIu64 " slots)",
                       ctx->dir, name, off, r->slot, MF_DATA_NAME,
                       ctx->data_slots);
    uint64_t gen = store_version_generation(r->version);
    if (gen == 0 || gen > s->generation)
        return mf_fail(ctx, STORE_E_CORRUPT,
                       "%s/%s at offset %" PRIu64
                       ": version of generation %" PRIu64
                       " before that generation was opened",
                       ctx->dir, name, off, gen);
    if (r->len > 0 && r->slot + 1 > s->next_slot)
        s->next_slot = r->slot + 1;
    return batch_push(ctx, b, r, off, name);
}

/* ---- groups ---- */

#define SCAN_RECS 1024 /* records read per pread while streaming */
_Static_assert(RD_CAP >= SCAN_RECS * MF_REC_SIZE, "a scan step fits");

struct group_hdr {
    uint64_t first_lsn;
    uint32_t count;
};

/* A valid group header at off: magic, CRC, our UUID, a sane count. */
static int read_group_header(struct log_rd *rd, uint64_t off,
                             const uint8_t uuid[16], struct group_hdr *g)
{
    const uint8_t *h;
    int rc = rd_get(rd, off, MF_REC_SIZE, &h);
    if (rc != 0)
        return rc < 0 ? rc : 1;
    if (memcmp(h, MF_GROUP_MAGIC, 8) != 0 || !sealed64_ok(h) ||
        memcmp(h + 24, uuid, 16) != 0)
        return 1;
    g->first_lsn = le_get64(h + 8);
    g->count = le_get32(h + 16);
    if (g->count == 0 || g->count > MF_GROUP_MAX_RECORDS ||
        g->first_lsn > MF_MAX_LSN)
        return 1;
    return 0;
}

/* Pass 1 (M2): check every record and the commit of the group at off.
 * 0 = valid, 1 = invalid, < 0 = I/O error. */
static int check_group(struct log_rd *rd, uint64_t off,
                       const struct group_hdr *g)
{
    const uint8_t *h, *buf;
    int rc = rd_get(rd, off, MF_REC_SIZE, &h);
    if (rc != 0)
        return rc < 0 ? rc : 1;
    uint32_t crc = store_crc32c(h, MF_REC_SIZE);
    uint64_t pos = off + MF_REC_SIZE;
    for (uint32_t done = 0; done < g->count;) {
        uint32_t n = g->count - done > SCAN_RECS ? SCAN_RECS : g->count - done;
        rc = rd_get(rd, pos, (size_t)n * MF_REC_SIZE, &buf);
        if (rc != 0)
            return rc < 0 ? rc : 1;
        for (uint32_t i = 0; i < n; i++) {
            struct mf_record r;
            if (mf_decode_record(buf + (size_t)i * MF_REC_SIZE, &r) < 0 ||
                r.lsn != g->first_lsn + done + i)
                return 1;
        }
        crc = store_crc32c_cont(crc, buf, (size_t)n * MF_REC_SIZE);
        done += n;
        pos += (uint64_t)n * MF_REC_SIZE;
    }
    const uint8_t *c;
    rc = rd_get(rd, pos, MF_REC_SIZE, &c);
    if (rc != 0)
        return rc < 0 ? rc : 1;
    if (memcmp(c, MF_COMMIT_MAGIC, 8) != 0 || !sealed64_ok(c) ||
        le_get64(c + 8) != g->first_lsn || le_get32(c + 16) != g->count ||
        le_get32(c + 20) != crc)
        return 1;
    return 0;
}

/* Pass 2: collect the records of a checked group past the snapshot. */
static int collect_group(struct log_rd *rd, uint64_t off,
                         const struct group_hdr *g, struct mf_state *s,
                         struct rp_batch *b)
{
    struct mf_ctx *ctx = rd->ctx;
    const char *name = rd->name;
    const uint8_t *buf;
    uint64_t pos = off + MF_REC_SIZE;
    for (uint32_t done = 0; done < g->count;) {
        uint32_t n = g->count - done > SCAN_RECS ? SCAN_RECS : g->count - done;
        int rc = rd_get(rd, pos, (size_t)n * MF_REC_SIZE, &buf);
        if (rc != 0)
            return rc < 0
                       ? rc
                       : mf_fail(ctx, STORE_E_CORRUPT,
                                 "%s/%s changed during replay", ctx->dir, name);
        for (uint32_t i = 0; i < n; i++) {
            struct mf_record r;
            uint64_t roff = pos + (uint64_t)i * MF_REC_SIZE;
            if (mf_decode_record(buf + (size_t)i * MF_REC_SIZE, &r) < 0)
                return mf_fail(ctx, STORE_E_CORRUPT,
                               "%s/%s at offset %" PRIu64 ": bad record",
                               ctx->dir, name, roff);
            if (r.lsn <= s->snap_lsn)
                continue; /* M1: covered by the snapshot */
            rc = collect_record(ctx, s, b, &r, name, roff);
            if (rc < 0)
                return rc;
            s->log_records++;
        }
        done += n;
        pos += (uint64_t)n * MF_REC_SIZE;
    }
    return 0;
}

static uint64_t round_block(uint64_t v)
{
    return (v + MF_BLOCK - 1) / MF_BLOCK * MF_BLOCK;
}

/* M3: is there a valid group header at a later block with an LSN at or
 * past lsn?  Returns its offset in *at. */
static int later_group(struct log_rd *rd, uint64_t from, uint64_t size,
                       const uint8_t uuid[16], uint64_t lsn, uint64_t *at)
{
    for (uint64_t off = round_block(from + 1); off + MF_REC_SIZE <= size;
         off += MF_BLOCK) {
        struct group_hdr g;
        int rc = read_group_header(rd, off, uuid, &g);
        if (rc < 0)
            return rc;
        if (rc == 0 && g.first_lsn >= lsn) {
            *at = off;
            return 1;
        }
    }
    return 0;
}

/* ---- logs ---- */

static int cmp_log(const void *a, const void *b)
{
    const struct mf_log *x = a, *y = b;
    return x->first_lsn < y->first_lsn ? -1 : x->first_lsn > y->first_lsn;
}

static int list_logs(struct mf_ctx *ctx, struct mf_state *s)
{
    int dfd = dup(ctx->dirfd);
    if (dfd < 0)
        return mf_fail(ctx, -errno, "dup %s: %s", ctx->dir, strerror(errno));
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        return mf_fail(ctx, -e, "opendir %s: %s", ctx->dir, strerror(e));
    }
    rewinddir(d);
    size_t cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t lsn;
        if (mf_parse_log_name(de->d_name, &lsn) < 0)
            continue;
        if (lsn > MF_MAX_LSN) {
            rc = mf_fail(ctx, STORE_E_CORRUPT,
                         "%s/%s: LSN %" PRIu64 " is beyond the largest "
                         "possible",
                         ctx->dir, de->d_name, lsn);
            break;
        }
        if (s->nlogs == cap) {
            cap = cap ? cap * 2 : 8;
            struct mf_log *v = realloc(s->logs, cap * sizeof(*v));
            if (!v) {
                rc = mf_fail(ctx, -ENOMEM, "out of memory");
                break;
            }
            s->logs = v;
        }
        memset(&s->logs[s->nlogs], 0, sizeof(s->logs[0]));
        s->logs[s->nlogs++].first_lsn = lsn;
    }
    closedir(d);
    if (rc == 0 && s->nlogs > 1)
        qsort(s->logs, s->nlogs, sizeof(s->logs[0]), cmp_log);
    return rc;
}

static int read_log_header(struct mf_ctx *ctx, int fd, struct mf_state *s,
                           struct mf_log *lg, const char *name)
{
    uint8_t h[MF_LOG_HDR_SIZE];
    int rc = read_full(ctx, fd, h, sizeof(h), 0, name);
    if (rc < 0)
        return rc;
    if (rc > 0 || memcmp(h, MF_LOG_MAGIC, 8) != 0)
        return mf_fail(ctx, STORE_E_BAD_FORMAT,
                       "%s/%s: not a blobd log (bad magic)", ctx->dir, name);
    if (le_get32(h + 8) != MF_VERSION)
        return mf_fail(ctx, STORE_E_BAD_FORMAT,
                       "%s/%s: log format version %" PRIu32
                       " is not supported (expected %u)",
                       ctx->dir, name, le_get32(h + 8), MF_VERSION);
    if (!sealed64_ok(h))
        return mf_fail(ctx, STORE_E_CORRUPT,
                       "%s/%s at offset 0: log header checksum mismatch",
                       ctx->dir, name);
    if (le_get64(h + 32) != lg->first_lsn)
        return mf_fail(ctx, STORE_E_CORRUPT,
                       "%s/%s: header LSN %" PRIu64 " does not match its name",
                       ctx->dir, name, le_get64(h + 32));
    if (!s->have_uuid) {
        memcpy(s->uuid, h + 16, 16);
        s->have_uuid = 1;
    } else if (memcmp(s->uuid, h + 16, 16) != 0) {
        return mf_fail(ctx, STORE_E_FOREIGN,
                       "%s/%s belongs to another store (UUID mismatch)",
                       ctx->dir, name);
    }
    return 0;
}

/* 1 if the log's header never reached the disk: shorter than a header,
 * or all zeros. */
static int empty_header(struct mf_ctx *ctx, int fd, const struct mf_log *lg)
{
    uint8_t h[MF_LOG_HDR_SIZE];
    if (lg->size < MF_LOG_HDR_SIZE)
        return 1;
    if (ctx->io->pread(ctx->io, fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return 0;
    for (size_t i = 0; i < sizeof(h); i++)
        if (h[i])
            return 0;
    return 1;
}

/* Replay one log; *lsn is the LSN the next record must carry. */
static int replay_log(struct mf_ctx *ctx, struct index *ix, struct mf_state *s,
                      size_t li, uint64_t *lsn, struct log_rd *rd,
                      struct rp_batch *b)
{
    struct mf_log *lg = &s->logs[li];
    int last = li + 1 == s->nlogs;
    char name[32];
    mf_log_name(name, lg->first_lsn);
    int fd = ctx->io->openat(
        ctx->io, ctx->dirfd, name,
        (ctx->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd < 0)
        return mf_fail(ctx, fd, "open %s/%s: %s", ctx->dir, name,
                       strerror(-fd));
    int rc = file_size(fd, &lg->size);
    if (rc < 0) {
        mf_fail(ctx, rc, "fstat %s/%s: %s", ctx->dir, name, strerror(-rc));
        goto out;
    }
    if (last && lg->size <= MF_LOG_HDR_SIZE && empty_header(ctx, fd, lg)) {
        /* M5': a crash inside mf_create_log can leave the name of a new,
         * still empty log durable before its header: it holds nothing. */
        mf_warn(ctx, "%s/%s: empty log left by an interrupted creation; %s",
                ctx->dir, name, ctx->read_only ? "ignored" : "removed");
        ctx->io->close(ctx->io, fd);
        s->nlogs--;
        if (ctx->read_only)
            return 0;
        rc = ctx->io->unlinkat(ctx->io, ctx->dirfd, name);
        if (rc == 0)
            rc = ctx->io->sync(ctx->io, ctx->dirfd, STORE_IO_FSYNC);
        if (rc < 0)
            return mf_fail(ctx, rc, "remove %s/%s: %s", ctx->dir, name,
                           strerror(-rc));
        return 0;
    }
    rc = read_log_header(ctx, fd, s, lg, name);
    if (rc < 0)
        goto out;
    read_ahead(fd);
    rd->fd = fd;
    rd->name = name;
    rd->base = 0;
    rd->len = 0;
    uint64_t off = MF_BLOCK;
    lg->end = MF_LOG_HDR_SIZE;
    while (off < lg->size) {
        struct group_hdr g;
        rc = read_group_header(rd, off, s->uuid, &g);
        if (rc == 0 && g.first_lsn != *lsn) {
            /* A torn write keeps the LSN it was given: this is not one. */
            rc = mf_fail(ctx, STORE_E_CORRUPT,
                         "%s/%s at offset %" PRIu64
                         ": group starts at LSN %" PRIu64 " where %" PRIu64
                         " was expected",
                         ctx->dir, name, off, g.first_lsn, *lsn);
            goto out;
        }
        if (rc == 0)
            rc = check_group(rd, off, &g);
        if (rc < 0)
            goto out;
        if (rc > 0) { /* M3 */
            uint64_t at = 0;
            rc = later_group(rd, off, lg->size, s->uuid, *lsn, &at);
            if (rc < 0)
                goto out;
            if (rc > 0 || (!last && s->logs[li + 1].first_lsn > s->snap_lsn)) {
                rc = mf_fail(ctx, STORE_E_CORRUPT,
                             "%s/%s at offset %" PRIu64
                             ": damaged commit group followed by a valid one"
                             " (at offset %" PRIu64 "%s)",
                             ctx->dir, name, off, rc > 0 ? at : 0,
                             rc > 0 ? "" : " of a later log");
                goto out;
            }
            if (!last) {
                mf_warn(ctx,
                        "%s/%s at offset %" PRIu64
                        ": damaged tail of a log the snapshot covers; ignored",
                        ctx->dir, name, off);
                *lsn = s->logs[li + 1].first_lsn;
                rc = batch_apply(ctx, ix, s, b, name);
                goto out;
            }
            s->torn_tail = 1;
            s->torn_offset = off;
            rc = 0;
            break;
        }
        if (b->n == 0)
            b->limit = mf_replay_batch_limit(ix->count);
        rc = collect_group(rd, off, &g, s, b);
        if (rc == 0 && b->n >= b->limit)
            rc = batch_apply(ctx, ix, s, b, name);
        if (rc < 0)
            goto out;
        *lsn += g.count;
        lg->end = off + MF_REC_SIZE * ((uint64_t)g.count + 2);
        off = round_block(lg->end);
    }
    rc = batch_apply(ctx, ix, s, b, name); /* before a truncation */
    if (rc < 0)
        goto out;
    if (!s->torn_tail && lg->size > lg->end && last) {
        /* Bytes after the last group that start no group: a torn tail. */
        s->torn_tail = 1;
        s->torn_offset = lg->end;
    }
    if (s->torn_tail) {
        if (ctx->read_only) {
            mf_warn(ctx,
                    "%s/%s: torn tail at offset %" PRIu64 " (%" PRIu64
                    " bytes); left in place (read-only)",
                    ctx->dir, name, s->torn_offset, lg->size - lg->end);
        } else {
            mf_warn(ctx,
                    "%s/%s: torn tail at offset %" PRIu64 " (%" PRIu64
                    " bytes) truncated to %" PRIu64,
                    ctx->dir, name, s->torn_offset, lg->size - lg->end,
                    lg->end);
            rc = ctx->io->ftruncate(ctx->io, fd, lg->end);
            if (rc == 0)
                rc = ctx->io->sync(ctx->io, fd, STORE_IO_FSYNC);
            if (rc < 0) {
                mf_fail(ctx, rc, "truncate %s/%s to %" PRIu64 ": %s", ctx->dir,
                        name, lg->end, strerror(-rc));
                goto out;
            }
            lg->size = lg->end;
        }
    }
out:
    ctx->io->close(ctx->io, fd);
    return rc;
}

/* ---- snapshot ---- */

static int load_snapshot(struct mf_ctx *ctx, struct index *ix,
                         struct mf_state *s)
{
    const char *name = MF_SNAP_NAME;
    int fd = ctx->io->openat(ctx->io, ctx->dirfd, name,
                             O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
    if (fd == -ENOENT)
        return 0;
    if (fd < 0)
        return mf_fail(ctx, fd, "open %s/%s: %s", ctx->dir, name,
                       strerror(-fd));
    uint8_t *buf = NULL;
    uint8_t h[MF_SNAP_HDR_SIZE];
    read_ahead(fd);
    int rc = file_size(fd, &s->snap_bytes);
    if (rc < 0)
        goto out;
    rc = read_full(ctx, fd, h, sizeof(h), 0, name);
    if (rc != 0) {
        if (rc > 0)
            rc = mf_fail(ctx, STORE_E_CORRUPT, "%s/%s: truncated header",
                         ctx->dir, name);
        goto out;
    }
    if (memcmp(h, MF_HOLT_MAGIC, 8) == 0) {
        rc = mf_fail(ctx, STORE_E_BAD_FORMAT,
                     "%s/%s is a holt FileBlobStore manifest, not a blobd "
                     "store; it is not migrated",
                     ctx->dir, name);
        goto out;
    }
    if (memcmp(h, MF_SNAP_MAGIC, 8) != 0) {
        rc = mf_fail(ctx, STORE_E_BAD_FORMAT,
                     "%s/%s: not a blobd snapshot (bad magic)", ctx->dir, name);
        goto out;
    }
    if (le_get32(h + 8) != MF_VERSION ||
        le_get32(h + 12) != MF_SNAP_ENTRY_SIZE) {
        rc = mf_fail(ctx, STORE_E_BAD_FORMAT,
                     "%s/%s: snapshot format version %" PRIu32
                     " is not supported (expected %u)",
                     ctx->dir, name, le_get32(h + 8), MF_VERSION);
        goto out;
    }
    if (!sealed64_ok(h)) {
        rc = mf_fail(ctx, STORE_E_CORRUPT,
                     "%s/%s at offset 0: header checksum mismatch", ctx->dir,
                     name);
        goto out;
    }
    memcpy(s->uuid, h + 16, 16);
    s->have_uuid = 1;
    s->snap_lsn = le_get64(h + 32);
    s->next_slot = le_get64(h + 40);
    uint64_t count = le_get64(h + 48);
    s->generation = le_get32(h + 56);
    if (s->snap_lsn > MF_MAX_LSN) {
        rc = mf_fail(ctx, STORE_E_CORRUPT,
                     "%s/%s: LSN %" PRIu64 " is beyond the largest possible",
                     ctx->dir, name, s->snap_lsn);
        goto out;
    }
    if (s->next_slot > MF_MAX_SLOTS ||
        s->snap_bytes != MF_SNAP_HDR_SIZE + count * MF_SNAP_ENTRY_SIZE +
                             MF_SNAP_TRAILER_SIZE) {
        rc = mf_fail(ctx, STORE_E_CORRUPT,
                     "%s/%s: size %" PRIu64 " does not match %" PRIu64
                     " entries and next_slot %" PRIu64,
                     ctx->dir, name, s->snap_bytes, count, s->next_slot);
        goto out;
    }
    buf = malloc(SCAN_RECS * MF_SNAP_ENTRY_SIZE);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    uint32_t crc = 0;
    uint8_t prev[STORE_GUID_SIZE];
    uint64_t off = MF_SNAP_HDR_SIZE;
    for (uint64_t done = 0; done < count;) {
        uint64_t n = count - done > SCAN_RECS ? SCAN_RECS : count - done;
        rc = read_full(ctx, fd, buf, n * MF_SNAP_ENTRY_SIZE, off, name);
        if (rc > 0)
            rc = mf_fail(ctx, STORE_E_CORRUPT, "%s/%s: truncated at %" PRIu64,
                         ctx->dir, name, off);
        if (rc != 0)
            goto out;
        crc = store_crc32c_cont(crc, buf, n * MF_SNAP_ENTRY_SIZE);
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *p = buf + i * MF_SNAP_ENTRY_SIZE;
            uint64_t eoff = off + i * MF_SNAP_ENTRY_SIZE;
            struct index_entry e, old;
            int had;
            uint64_t slot = le_get64(p + 16);
            uint64_t ver = le_get64(p + 32);
            uint32_t len = le_get32(p + 24);
            if (le_get32(p + 44) != store_crc32c(p, 44) ||
                (done + i > 0 && memcmp(prev, p, 16) >= 0) ||
                len > STORE_FRAME_SIZE || !slot_ok(ctx, slot, len) ||
                (len > 0 && slot >= s->next_slot) ||
                store_version_generation(ver) > s->generation ||
                (len > 0 && bitmap_get(&s->used, slot))) {
                rc = mf_fail(ctx, STORE_E_CORRUPT,
                             "%s/%s at offset %" PRIu64
                             ": bad entry (checksum, order, slot, length or"
                             " version)",
                             ctx->dir, name, eoff);
                goto out;
            }
            memcpy(prev, p, 16);
            if (len > 0) {
                rc = bitmap_ensure(&s->used, slot + 1);
                if (rc < 0)
                    goto out;
                bitmap_set(&s->used, slot);
            }
            memcpy(e.guid, p, 16);
            e.slot = len > 0 ? (uint32_t)slot : SLOT_NONE;
            e.len = len;
            e.crc = le_get32(p + 28);
            ix_set_version(&e, ver);
            rc = index_put(ix, &e, &old, &had);
            if (rc < 0)
                goto out;
        }
        done += n;
        off += n * MF_SNAP_ENTRY_SIZE;
    }
    uint8_t t[MF_SNAP_TRAILER_SIZE];
    rc = read_full(ctx, fd, t, sizeof(t), off, name);
    if (rc == 0 && (memcmp(t, MF_SNAP_END_MAGIC, 8) != 0 || !sealed64_ok(t) ||
                    le_get64(t + 8) != count || le_get32(t + 16) != crc))
        rc = mf_fail(ctx, STORE_E_CORRUPT,
                     "%s/%s at offset %" PRIu64 ": bad trailer", ctx->dir, name,
                     off);
    else if (rc > 0)
        rc = mf_fail(ctx, STORE_E_CORRUPT, "%s/%s: truncated", ctx->dir, name);
out:
    free(buf);
    ctx->io->close(ctx->io, fd);
    return rc;
}

int mf_load(struct mf_ctx *ctx, struct index *ix, struct mf_state *s)
{
    memset(s, 0, sizeof(*s));
    struct stat sb;
    if (fstatat(ctx->dirfd, MF_HOLT_LOG_NAME, &sb, AT_SYMLINK_NOFOLLOW) == 0)
        return mf_fail(ctx, STORE_E_BAD_FORMAT,
                       "%s holds %s: a holt FileBlobStore, not a blobd store",
                       ctx->dir, MF_HOLT_LOG_NAME);
    int rc = load_snapshot(ctx, ix, s);
    if (rc < 0)
        return rc;
    rc = list_logs(ctx, s);
    if (rc < 0)
        return rc;
    struct log_rd rd = {.ctx = ctx, .fd = -1, .buf = malloc(RD_CAP)};
    if (!rd.buf)
        return mf_fail(ctx, -ENOMEM, "out of memory");
    struct rp_batch batch = {0};
    uint64_t lsn = s->nlogs ? s->logs[0].first_lsn : s->snap_lsn + 1;
    if (s->nlogs && (lsn == 0 || lsn > s->snap_lsn + 1)) {
        rc = mf_fail(ctx, STORE_E_CORRUPT,
                     "%s: log records %" PRIu64 "..%" PRIu64
                     " are missing (no log holds them)",
                     ctx->dir, s->snap_lsn + 1, lsn - 1);
        goto out;
    }
    for (size_t i = 0; i < s->nlogs; i++) {
        if (s->logs[i].first_lsn != lsn) {
            char name[32];
            mf_log_name(name, s->logs[i].first_lsn);
            rc = mf_fail(ctx, STORE_E_CORRUPT,
                         "%s/%s: starts at LSN %" PRIu64
                         " but the previous log ends before %" PRIu64 " (%s)",
                         ctx->dir, name, s->logs[i].first_lsn, lsn,
                         s->logs[i].first_lsn < lsn ? "sequence goes backwards"
                                                    : "records missing");
            goto out;
        }
        rc = replay_log(ctx, ix, s, i, &lsn, &rd, &batch);
        if (rc < 0)
            goto out;
    }
    s->next_lsn = lsn > s->snap_lsn ? lsn : s->snap_lsn + 1;
    if (!s->have_uuid && (ix->count > 0 || s->nlogs > 0))
        rc = mf_fail(ctx, STORE_E_CORRUPT, "%s: manifest has no store UUID",
                     ctx->dir);
out:
    batch_free(&batch);
    free(rd.buf);
    return rc;
}

void mf_state_free(struct mf_state *s)
{
    free(s->logs);
    free(s->used.w);
    memset(s, 0, sizeof(*s));
}

/* ---- writing ---- */

static int write_full(struct mf_ctx *ctx, int fd, const void *buf, size_t len,
                      uint64_t off, const char *name)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    ssize_t n = ctx->io->pwritev(ctx->io, fd, &iov, 1, off);
    if (n >= 0 && (size_t)n != len)
        n = -ENOSPC; /* a short write is treated as running out of space */
    if (n < 0)
        return mf_fail(ctx, (int)n, "write %s/%s at %" PRIu64 ": %s", ctx->dir,
                       name, off, strerror((int)-n));
    return 0;
}

int mf_create_log(struct mf_ctx *ctx, const uint8_t uuid[16],
                  uint64_t first_lsn, int *sync_failed)
{
    *sync_failed = 0;
    char name[32];
    uint8_t h[MF_LOG_HDR_SIZE];
    mf_log_name(name, first_lsn);
    int fd = ctx->io->openat(ctx->io, ctx->dirfd, name,
                             O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                             0600);
    if (fd < 0)
        return mf_fail(ctx, fd, "create %s/%s: %s", ctx->dir, name,
                       strerror(-fd));
    mf_encode_log_header(h, uuid, first_lsn);
    int rc = write_full(ctx, fd, h, sizeof(h), 0, name);
    if (rc == 0) {
        rc = ctx->io->sync(ctx->io, fd, STORE_IO_FSYNC);
        if (rc < 0) {
            *sync_failed = 1;
            mf_fail(ctx, rc, "fsync %s/%s: %s", ctx->dir, name, strerror(-rc));
        }
    }
    if (rc == 0) {
        rc = ctx->io->sync(ctx->io, ctx->dirfd, STORE_IO_FSYNC);
        if (rc < 0) {
            *sync_failed = 1;
            mf_fail(ctx, rc, "fsync %s: %s", ctx->dir, strerror(-rc));
        }
    }
    if (rc < 0) {
        ctx->io->close(ctx->io, fd);
        ctx->io->unlinkat(ctx->io, ctx->dirfd, name);
        return rc;
    }
    return fd;
}

#define SNAP_PAGE 4096 /* entries per page taken from the source */

static void encode_snap_entry(uint8_t *p, const struct index_entry *e)
{
    memset(p, 0, MF_SNAP_ENTRY_SIZE);
    memcpy(p, e->guid, 16);
    le_put64(p + 16, slot_to_disk(e->slot));
    le_put32(p + 24, e->len);
    le_put32(p + 28, e->crc);
    le_put64(p + 32, ix_version(e));
    le_put32(p + 44, store_crc32c(p, 44));
}

/* Entries page by page from src, written after the header's place. */
static int write_snap_entries(struct mf_ctx *ctx, int fd,
                              const struct mf_snap_src *src, uint64_t *count,
                              uint32_t *crc, uint64_t *off)
{
    const char *tmp = MF_SNAP_TMP_NAME;
    struct index_entry *page = malloc(SNAP_PAGE * sizeof(*page));
    uint8_t *buf = malloc(SNAP_PAGE * MF_SNAP_ENTRY_SIZE);
    uint8_t after[STORE_GUID_SIZE];
    int rc = -ENOMEM, have_after = 0;
    if (!page || !buf)
        goto out;
    for (;;) {
        if (src->abandon && src->abandon(src->arg)) {
            rc = mf_fail(ctx, STORE_E_STOPPED, "compaction abandoned");
            goto out;
        }
        size_t n =
            src->page(src->arg, have_after ? after : NULL, page, SNAP_PAGE);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            encode_snap_entry(buf + i * MF_SNAP_ENTRY_SIZE, &page[i]);
        *crc = store_crc32c_cont(*crc, buf, n * MF_SNAP_ENTRY_SIZE);
        rc = write_full(ctx, fd, buf, n * MF_SNAP_ENTRY_SIZE, *off, tmp);
        if (rc < 0)
            goto out;
        *off += n * MF_SNAP_ENTRY_SIZE;
        *count += n;
        memcpy(after, page[n - 1].guid, STORE_GUID_SIZE);
        have_after = 1;
    }
    rc = 0;
out:
    free(page);
    free(buf);
    return rc;
}

int mf_write_snapshot_tmp(struct mf_ctx *ctx, const struct mf_snap_src *src,
                          const uint8_t uuid[16], uint64_t last_lsn,
                          uint64_t *bytes, int *sync_failed)
{
    const char *tmp = MF_SNAP_TMP_NAME;
    *sync_failed = 0;
    int fd = ctx->io->openat(
        ctx->io, ctx->dirfd, tmp,
        O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return mf_fail(ctx, fd, "create %s/%s: %s", ctx->dir, tmp,
                       strerror(-fd));
    uint64_t off = MF_SNAP_HDR_SIZE, count = 0, next_slot = 0, gen = 0;
    uint32_t crc = 0;
    uint8_t h[MF_SNAP_HDR_SIZE];
    int rc = write_snap_entries(ctx, fd, src, &count, &crc, &off);
    if (rc < 0)
        goto fail;
    memset(h, 0, sizeof(h));
    memcpy(h, MF_SNAP_END_MAGIC, 8);
    le_put64(h + 8, count);
    le_put32(h + 16, crc);
    seal64(h);
    rc = write_full(ctx, fd, h, sizeof(h), off, tmp);
    if (rc < 0)
        goto fail;
    off += sizeof(h);
    /* The header last: next_slot and the generation as of the scan's end. */
    src->tail(src->arg, &next_slot, &gen);
    memset(h, 0, sizeof(h));
    memcpy(h, MF_SNAP_MAGIC, 8);
    le_put32(h + 8, MF_VERSION);
    le_put32(h + 12, MF_SNAP_ENTRY_SIZE);
    memcpy(h + 16, uuid, 16);
    le_put64(h + 32, last_lsn);
    le_put64(h + 40, next_slot);
    le_put64(h + 48, count);
    le_put32(h + 56, (uint32_t)gen);
    seal64(h);
    rc = write_full(ctx, fd, h, sizeof(h), 0, tmp);
    if (rc < 0)
        goto fail;
    rc = ctx->io->sync(ctx->io, fd, STORE_IO_FSYNC);
    if (rc < 0) {
        *sync_failed = 1;
        mf_fail(ctx, rc, "fsync %s/%s: %s", ctx->dir, tmp, strerror(-rc));
        goto fail;
    }
    ctx->io->close(ctx->io, fd);
    *bytes = off;
    return 0;
fail:
    ctx->io->close(ctx->io, fd);
    ctx->io->unlinkat(ctx->io, ctx->dirfd, tmp);
    return rc;
}

int mf_commit_snapshot(struct mf_ctx *ctx, int *sync_failed)
{
    *sync_failed = 0;
    int rc =
        ctx->io->renameat(ctx->io, ctx->dirfd, MF_SNAP_TMP_NAME, MF_SNAP_NAME);
    if (rc < 0) {
        mf_fail(ctx, rc, "rename %s/%s: %s", ctx->dir, MF_SNAP_TMP_NAME,
                strerror(-rc));
        ctx->io->unlinkat(ctx->io, ctx->dirfd, MF_SNAP_TMP_NAME);
        return rc;
    }
    rc = ctx->io->sync(ctx->io, ctx->dirfd, STORE_IO_FSYNC);
    if (rc < 0) {
        *sync_failed = 1;
        return mf_fail(ctx, rc, "fsync %s: %s", ctx->dir, strerror(-rc));
    }
    return 0;
}
