/*
 * data.c - blobs.dat: its size against the replayed entries, then every
 * live blob read back and checked against the CRC32C and length its entry
 * records.
 *
 * Reads go in slot order, in batches of up to BATCH_BYTES: entries whose
 * pages touch (full frames in neighbouring slots) are read by one request,
 * and the requests of a batch are submitted together on io_uring (one
 * system call per batch), or issued one by one with pread where io_uring
 * is unavailable.  blobs.dat is opened O_DIRECT when the filesystem passes
 * the store's own probe (store_probe_direct), so a check of a large store
 * does not evict the page cache a running system relies on; else buffered.
 *
 * Invariants:
 *  D1. Only pages the store wrote are read: [slot * frame, slot * frame +
 *      round_up(len, 4096)) of live entries that blobs.dat covers.
 *  D2. Every read is 4 KiB aligned in offset, length and memory, so the
 *      same code serves O_DIRECT and buffered descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "store_int.h"

#define BATCH_BYTES (8u << 20) /* bytes read per batch */
#define RING_DEPTH 64u         /* requests per batch */

static uint64_t round_page(uint64_t v)
{
    return (v + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE * STORE_PAGE_SIZE;
}

int chk_data_open(struct chk *c)
{
    c->data.fd = -1;
    int fd = openat(c->dirfd, MF_DATA_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return chk_fatal(c, CHK_EXIT_NOINPUT, "open %s/%s: %s", c->dir,
                         MF_DATA_NAME, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        return chk_fatal(c, CHK_EXIT_NOINPUT, "fstat %s/%s: %s", c->dir,
                         MF_DATA_NAME, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return chk_fatal(c, CHK_EXIT_NOINPUT, "%s/%s is not a regular file",
                         c->dir, MF_DATA_NAME);
    }
    c->data.present = 1;
    c->data.bytes = (uint64_t)sb.st_size;
    c->data.slots = (c->data.bytes + STORE_FRAME_SIZE - 1) / STORE_FRAME_SIZE;
    int dfd = openat(c->dirfd, MF_DATA_NAME,
                     O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_DIRECT);
    if (dfd >= 0) {
        struct store_io *io = store_io_pread_new();
        const char *why = "out of memory";
        if (io && store_probe_direct(io, dfd, &why)) {
            close(fd);
            fd = dfd;
            c->data.direct = 1;
        } else {
            close(dfd);
            snprintf(c->data.note, sizeof(c->data.note),
                     "O_DIRECT unavailable (%s); buffered reads", why);
        }
        if (io)
            io->destroy(io);
    } else {
        snprintf(c->data.note, sizeof(c->data.note),
                 "O_DIRECT refused (%s); buffered reads", strerror(errno));
    }
    if (!c->data.direct)
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    c->data.fd = fd;
    return 0;
}

void chk_data_close(struct chk *c)
{
    if (c->data.fd >= 0)
        close(c->data.fd);
    c->data.fd = -1;
}

/* ---- reading ---- */

struct run {
    uint64_t off;
    size_t len, boff; /* bytes, and where in the batch buffer */
    size_t first, n;  /* entries of the run in the sorted list */
    int err;          /* 0, 1 (end of file) or -errno */
};

struct reader {
    int fd;
    int uring;
    struct io_uring ring;
};

/* 0, 1 at the end of the file, or -errno. */
static int pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 1;
        done += (size_t)n;
    }
    return 0;
}

static int reader_init(struct chk *c, struct reader *rd)
{
    memset(rd, 0, sizeof(*rd));
    rd->fd = c->data.fd;
    c->data.io = "pread";
    if (c->io == CHK_IO_PREAD)
        return 0;
    int rc = io_uring_queue_init(RING_DEPTH, &rd->ring, 0);
    if (rc == 0) {
        rd->uring = 1;
        c->data.io = "io_uring";
        return 0;
    }
    if (c->io == CHK_IO_URING)
        return chk_fatal(c, CHK_EXIT_SOFTWARE,
                         "--io io_uring: no ring can be created: %s",
                         strerror(-rc));
    size_t used = strlen(c->data.note);
    snprintf(c->data.note + used, sizeof(c->data.note) - used,
             "%sio_uring unavailable (%s); pread", used ? "; " : "",
             strerror(-rc));
    return 0;
}

static void reader_free(struct reader *rd)
{
    if (rd->uring)
        io_uring_queue_exit(&rd->ring);
}

static void read_pread(struct reader *rd, uint8_t *buf, struct run *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        r[i].err = pread_full(rd->fd, buf + r[i].boff, r[i].len, r[i].off);
}

/* All runs in one submission; a short or interrupted read is finished
 * with pread. */
static void read_uring(struct reader *rd, uint8_t *buf, struct run *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&rd->ring);
        io_uring_prep_read(sqe, rd->fd, buf + r[i].boff, (unsigned)r[i].len,
                           r[i].off);
        io_uring_sqe_set_data64(sqe, i);
    }
    int rc;
    do
        rc = io_uring_submit_and_wait(&rd->ring, (unsigned)n);
    while (rc == -EINTR);
    if (rc < 0 || (size_t)rc != n) {
        /* Nothing (or not all) went to the kernel: drain what did, then
         * read everything the plain way. */
        for (int k = 0; k < (rc > 0 ? rc : 0); k++) {
            struct io_uring_cqe *cqe;
            while (io_uring_wait_cqe(&rd->ring, &cqe) == -EINTR)
                ;
            io_uring_cqe_seen(&rd->ring, cqe);
        }
        read_pread(rd, buf, r, n);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        struct io_uring_cqe *cqe;
        int w;
        while ((w = io_uring_wait_cqe(&rd->ring, &cqe)) == -EINTR)
            ;
        if (w < 0) {
            for (size_t i = 0; i < n; i++)
                r[i].err = w;
            return;
        }
        size_t i = (size_t)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&rd->ring, cqe);
        if (i >= n)
            continue;
        if (res == -EINTR || res == -EAGAIN)
            r[i].err = pread_full(rd->fd, buf + r[i].boff, r[i].len, r[i].off);
        else if (res < 0)
            r[i].err = res;
        else if ((size_t)res < r[i].len)
            r[i].err = pread_full(rd->fd, buf + r[i].boff + res,
                                  r[i].len - (size_t)res, r[i].off + res);
        else
            r[i].err = 0;
    }
}

/* ---- verifying ---- */

struct item {
    uint32_t slot, idx;
};

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static void verify_entry(struct chk *c, const struct chk_entry *e,
                         const uint8_t *p, int err)
{
    uint64_t off = (uint64_t)e->slot * STORE_FRAME_SIZE;
    char g[33];
    chk_guid_format(e->guid, g);
    struct chk_loc loc = {.file = MF_DATA_NAME,
                          .guid = e->guid,
                          .has = CHK_HAS_OFFSET | CHK_HAS_SLOT,
                          .offset = off,
                          .slot = e->slot};
    if (err) {
        chk_add(c, CHK_ERR, "blob_read", &loc,
                "blob %s in slot %" PRIu32 ": read %s at offset %" PRIu64
                ": %s",
                g, e->slot, MF_DATA_NAME, off,
                err > 0 ? "unexpected end of file" : strerror(-err));
        return;
    }
    c->blobs_checked++;
    uint32_t crc = store_crc32c(p, e->len);
    if (crc != e->crc) {
        chk_add(c, CHK_ERR, "blob_crc", &loc,
                "blob %s in slot %" PRIu32 " (%s offset %" PRIu64 ", %" PRIu32
                " bytes): CRC32C %08" PRIx32
                ", the manifest records %08" PRIx32,
                g, e->slot, MF_DATA_NAME, off, e->len, crc, e->crc);
        return;
    }
    uint64_t end = round_page(e->len);
    for (uint64_t i = e->len; i < end; i++) {
        if (p[i]) {
            loc.offset = off + i;
            chk_add(c, CHK_WARN, "blob_padding", &loc,
                    "blob %s in slot %" PRIu32 ": padding byte at %s offset "
                    "%" PRIu64 " is not zero (the blob itself is intact)",
                    g, e->slot, MF_DATA_NAME, off + i);
            return;
        }
    }
}

static int verify_blobs(struct chk *c, const struct item *v, size_t nv)
{
    struct reader rd;
    struct run *runs = malloc(RING_DEPTH * sizeof(*runs));
    uint8_t *buf = aligned_alloc(STORE_PAGE_SIZE, BATCH_BYTES);
    int rc = 0;
    if (!runs || !buf) {
        free(runs);
        free(buf);
        return chk_fatal(c, CHK_EXIT_SOFTWARE, "out of memory");
    }
    if (reader_init(c, &rd) < 0) {
        free(runs);
        free(buf);
        return -1;
    }
    chk_progress_start(&c->prog, "blobs", "blobs", nv);
    for (size_t i = 0; i < nv;) {
        size_t nruns = 0, used = 0;
        while (i < nv) {
            const struct chk_entry *e = &c->map.e[v[i].idx];
            uint64_t off = (uint64_t)e->slot * STORE_FRAME_SIZE;
            size_t need = (size_t)round_page(e->len);
            if (used + need > BATCH_BYTES)
                break;
            struct run *last = nruns ? &runs[nruns - 1] : NULL;
            if (last && last->off + last->len == off) {
                last->len += need;
                last->n++;
            } else if (nruns < RING_DEPTH) {
                runs[nruns++] = (struct run){
                    .off = off, .len = need, .boff = used, .first = i, .n = 1};
            } else {
                break;
            }
            used += need;
            i++;
        }
        if (rd.uring)
            read_uring(&rd, buf, runs, nruns);
        else
            read_pread(&rd, buf, runs, nruns);
        for (size_t k = 0; k < nruns; k++) {
            const struct run *r = &runs[k];
            for (size_t j = r->first; j < r->first + r->n; j++) {
                const struct chk_entry *e = &c->map.e[v[j].idx];
                uint64_t at = (uint64_t)e->slot * STORE_FRAME_SIZE - r->off;
                verify_entry(c, e, buf + r->boff + at, r->err);
            }
        }
        c->bytes_read += used;
        chk_progress_update(&c->prog, i, c->bytes_read, i == nv);
    }
    reader_free(&rd);
    free(runs);
    free(buf);
    return rc;
}

/* Entries, live bytes, and the size of blobs.dat against them; fills v
 * with the entries whose pages blobs.dat covers. */
static size_t collect(struct chk *c, struct item *v)
{
    size_t nv = 0;
    uint64_t missing = 0;
    for (size_t i = 0; i < c->map.ne; i++) {
        const struct chk_entry *e = &c->map.e[i];
        if (!e->live)
            continue;
        c->entries++;
        c->live_bytes += e->len;
        if (e->slot == CHK_NONE)
            continue;
        uint64_t need =
            (uint64_t)e->slot * STORE_FRAME_SIZE + round_page(e->len);
        if (!c->data.present) {
            missing++;
            continue;
        }
        if (need > c->data.bytes) {
            char g[33];
            chk_guid_format(e->guid, g);
            struct chk_loc loc = {.file = MF_DATA_NAME,
                                  .guid = e->guid,
                                  .has = CHK_HAS_SLOT | CHK_HAS_BYTES,
                                  .slot = e->slot,
                                  .bytes = need};
            chk_add(c, CHK_ERR, "data_short", &loc,
                    "%s is %" PRIu64 " bytes but blob %s in slot %" PRIu32
                    " needs %" PRIu64,
                    MF_DATA_NAME, c->data.bytes, g, e->slot, need);
            continue;
        }
        v[nv++] = (struct item){.slot = e->slot, .idx = (uint32_t)i};
    }
    if (missing) {
        struct chk_loc loc = {.file = MF_DATA_NAME};
        chk_add(c, CHK_ERR, "data_missing", &loc,
                "%s is missing but %" PRIu64 " blobs need it", MF_DATA_NAME,
                missing);
    }
    return nv;
}

int chk_data_verify(struct chk *c)
{
    if (c->data.present && c->data.bytes % STORE_FRAME_SIZE != 0) {
        struct chk_loc loc = {
            .file = MF_DATA_NAME, .has = CHK_HAS_BYTES, .bytes = c->data.bytes};
        chk_add(c, CHK_WARN, "data_size_unaligned", &loc,
                "%s is %" PRIu64 " bytes, not a multiple of the %u-byte "
                "slot (a filesystem that cannot preallocate grows it by "
                "writes; blobd accepts it as long as every blob is covered)",
                MF_DATA_NAME, c->data.bytes, STORE_FRAME_SIZE);
    }
    struct item *v = malloc((c->map.live ? c->map.live : 1) * sizeof(*v));
    if (!v)
        return chk_fatal(c, CHK_EXIT_SOFTWARE, "out of memory");
    int rc = 0;
    if (!c->replay_ok) {
        /* K3: the map is not the store's; its slots prove nothing. */
        for (size_t i = 0; i < c->map.ne; i++) {
            if (c->map.e[i].live) {
                c->entries++;
                c->live_bytes += c->map.e[i].len;
            }
        }
        c->blobs_skipped = 1;
        goto out;
    }
    size_t nv = collect(c, v);
    c->blobs_total = nv;
    qsort(v, nv, sizeof(*v), cmp_item);
    if (nv)
        rc = verify_blobs(c, v, nv);
out:
    free(v);
    return rc;
}
