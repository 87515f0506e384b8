/*
 * store.c - the store: open and recovery, the write/delete/flush path,
 * compaction, reads, listing and stats.  Guarantees G1-G5 are in store.h.
 *
 * Owns: the data directory's descriptors (directory, lock, data file,
 * current log), the index, the slot allocator, the pin table, the pending
 * log records and the frame pool.
 *
 * Invariants:
 *  T1. Flush order: data file synced -> log group appended -> log synced
 *      -> only then are the slots freed by that group published (G1).
 *  T2. A write goes to a slot that no entry, durable or not, refers to;
 *      the GUID is remapped after the write completed, and the old slot
 *      joins pend_free: reusable after the next good flush, and then only
 *      if no reader pins it (else at the last unpin) (G2).
 *  T3. A failed write returns its own slot to the free set and nothing
 *      else; pend_free is published only by a good flush.
 *  T4. Every record in pend[] is reflected in the index; the index differs
 *      from the durable manifest exactly by pend[].
 *  T5. After a sticky failure (G3) no write, delete, flush or compaction
 *      touches the disk again.
 *  T6. Before anything is written, the caller must be the process that
 *      took the lock and store.lock must still be the locked inode.
 *
 * Locks: wlock serializes writes, deletes, flushes and compactions (the
 * I/O path); lock guards the index, slots, pins, pend[] and the counters,
 * and is held only for memory work, never across I/O (G4).  Order: wlock
 * before lock.  The index, pend[] and the log/data-file counters change
 * only with both held, so a holder of wlock may read them without lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_int.h"

#define DEFAULT_LOCK_TIMEOUT_MS 5000u
#define LOCK_RETRY_MS 10u
#define DEFAULT_HEADROOM (64ull << 20)
#define PREALLOC_SMALL 8u
#define PREALLOC_LARGE 64u
#define PREALLOC_LARGE_AT 128u
#define PWRITEV_MAX 1024 /* IOV_MAX on Linux */
#define PRESSURE_DELTAS 4096u
#define PRESSURE_FREE 1024u
#define PRESSURE_BYTES (256ull << 20)
/* Bytes written since the last data sync after which the I/O thread syncs
 * the data file on its own (store_sync_data_due): the host and the disk
 * take time in proportion to what a sync covers, so many small syncs stop
 * the writes behind them for less than one large one. */
#define DATA_SYNC_BYTES (16ull << 20)

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t round_page(uint64_t v)
{
    return (v + STORE_PAGE_SIZE - 1) & ~(uint64_t)(STORE_PAGE_SIZE - 1);
}

/* A hold past its timeout ends.  Caller holds lock. */
static void hold_expire(struct store *st)
{
    if (st->held && st->hold_until && now_ns() >= st->hold_until) {
        st->held = 0;
        st->hold_until = 0;
        st->holds_expired++;
    }
}

void store_log(struct store *st, enum store_log_level lvl, const char *fmt, ...)
{
    if (lvl > st->log_level && lvl > STORE_LOG_WARN)
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (st->log_fn)
        st->log_fn(st->log_ctx, lvl, msg);
    else
        fprintf(stderr, "blobd store: %s\n", msg);
}

static void mf_warn_cb(void *ctx, const char *msg)
{
    store_log(ctx, STORE_LOG_WARN, "%s", msg);
}

static void mf_ctx_init(struct store *st, struct mf_ctx *ctx, char *err,
                        size_t errlen)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->io = st->io;
    ctx->dirfd = st->dirfd;
    ctx->read_only = st->read_only;
    ctx->dir = st->dir;
    ctx->err = err;
    ctx->errlen = errlen;
    ctx->warn = mf_warn_cb;
    ctx->warn_ctx = st;
    if (err && errlen)
        err[0] = 0;
}

/* G3: record a durability failure; caller holds wlock. */
static int set_sticky(struct store *st, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_sticky(struct store *st, int rc, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&st->lock);
    if (!st->sticky) {
        st->sticky = rc < 0 ? rc : -EIO;
        snprintf(st->sticky_msg, sizeof(st->sticky_msg), "%s: %s", msg,
                 strerror(rc < 0 && rc > -4096 ? -rc : EIO));
    }
    pthread_mutex_unlock(&st->lock);
    store_log(st, STORE_LOG_ERROR,
              "%s: %s; the store refuses writes until reopened", msg,
              strerror(rc < 0 && rc > -4096 ? -rc : EIO));
    return STORE_E_FAILED;
}

/* T5, T6: may this caller change the store now?  Caller holds wlock. */
static int writable_check(struct store *st)
{
    if (st->read_only)
        return STORE_E_READONLY;
    if (st->sticky)
        return STORE_E_FAILED;
    if (getpid() != st->owner_pid)
        return STORE_E_NOT_OWNER;
    struct stat sb;
    if (fstatat(st->dirfd, MF_LOCK_NAME, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
        sb.st_ino != st->lock_ino || sb.st_dev != st->lock_dev) {
        store_log(st, STORE_LOG_ERROR,
                  "%s/%s was replaced or removed; refusing to write", st->dir,
                  MF_LOCK_NAME);
        return STORE_E_NOT_OWNER;
    }
    return 0;
}

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*v, n * elem);
    if (!p)
        return -ENOMEM;
    *v = p;
    *cap = n;
    return 0;
}

/* Room for n more pending records and freed slots (so that applying a
 * finished write cannot fail for memory).  Caller holds lock. */
static int reserve_pending(struct store *st, size_t n)
{
    int rc = grow((void **)&st->pend, &st->cpend, st->npend + n,
                  sizeof(st->pend[0]));
    if (rc == 0)
        rc = grow((void **)&st->pend_free, &st->cpf, st->npf + n,
                  sizeof(st->pend_free[0]));
    return rc;
}

/* ---- frames ---- */

void *store_frame_alloc(struct store *st)
{
    void *f = st->io->frame_alloc ? st->io->frame_alloc(st->io) : NULL;
    if (f)
        return f; /* a registered frame: READ_FIXED / WRITE_FIXED */
    pthread_mutex_lock(&st->frame_lock);
    if (st->nframes > 0)
        f = st->frames[--st->nframes];
    pthread_mutex_unlock(&st->frame_lock);
    if (!f)
        f = aligned_alloc(STORE_PAGE_SIZE, STORE_FRAME_SIZE);
    return f;
}

void store_frame_free(struct store *st, void *frame)
{
    if (!frame)
        return;
    if (st->io->frame_free && st->io->frame_free(st->io, frame))
        return;
    pthread_mutex_lock(&st->frame_lock);
    if (st->nframes < FRAME_POOL_MAX) {
        st->frames[st->nframes++] = frame;
        frame = NULL;
    }
    pthread_mutex_unlock(&st->frame_lock);
    free(frame);
}

/* ---- the log ---- */

/*
 * Append one commit group holding recs and sync it (T1's last two steps).
 * Caller holds wlock.  ENOSPC or a short write: the log is cut back to its
 * committed end and STORE_E_NOSPACE returned, records unchanged; anything
 * else is sticky (G3).
 */
static int append_group(struct store *st, const struct mf_record *recs,
                        size_t n)
{
    /* No record may get an LSN a later open would refuse (M1). */
    if (st->next_lsn + n - 1 > MF_MAX_LSN)
        return STORE_E_OVERFLOW;
    size_t len = MF_REC_SIZE * (n + 2);
    uint8_t *buf = malloc(len);
    if (!buf)
        return -ENOMEM;
    mf_encode_group(buf, st->uuid, st->next_lsn, recs, n);
    uint64_t off = (st->log_end + MF_BLOCK - 1) / MF_BLOCK * MF_BLOCK;
    char name[32];
    mf_log_name(name, st->log_first);
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    ssize_t w = st->io->pwritev(st->io, st->logfd, &iov, 1, off);
    free(buf);
    if (w < 0 && w != -ENOSPC)
        return set_sticky(st, (int)w, "write %s/%s at %" PRIu64, st->dir, name,
                          off);
    if (w < 0 || (size_t)w != len) {
        int rc = st->io->ftruncate(st->io, st->logfd, st->log_end);
        if (rc == 0)
            rc = st->io->sync(st->io, st->logfd, STORE_IO_FDATASYNC);
        if (rc < 0)
            return set_sticky(st, rc, "truncate-back of %s/%s to %" PRIu64,
                              st->dir, name, st->log_end);
        store_log(
            st, STORE_LOG_WARN,
            "append to %s/%s at %" PRIu64 ": %s; %zu records stay pending",
            st->dir, name, off, w < 0 ? strerror(ENOSPC) : "short write", n);
        return STORE_E_NOSPACE;
    }
    int rc = st->io->sync(st->io, st->logfd, STORE_IO_FDATASYNC);
    if (rc < 0)
        return set_sticky(st, rc, "fdatasync %s/%s", st->dir, name);
    uint64_t end = off + len;
    pthread_mutex_lock(&st->lock);
    st->log_syncs++;
    st->log_bytes += end - st->log_end;
    st->log_end = end;
    st->next_lsn += n;
    st->log_records += n;
    pthread_mutex_unlock(&st->lock);
    return 0;
}

/* ---- open ---- */

void store_config_init(struct store_config *cfg, const char *dir)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dir = dir;
    cfg->log_level = STORE_LOG_INFO;
}

static int fail_open(char *errbuf, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_open(char *errbuf, size_t errlen, int rc, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int open_dir(struct store *st, char *err, size_t errlen)
{
    if (!st->read_only && mkdir(st->dir, 0700) < 0 && errno != EEXIST)
        return fail_open(err, errlen, -errno, "mkdir %s: %s", st->dir,
                         strerror(errno));
    st->dirfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (st->dirfd < 0)
        return fail_open(err, errlen, -errno, "open %s: %s", st->dir,
                         strerror(errno));
    struct stat sb;
    if (fstat(st->dirfd, &sb) < 0)
        return fail_open(err, errlen, -errno, "fstat %s: %s", st->dir,
                         strerror(errno));
    if (!st->read_only && (sb.st_mode & S_IWOTH))
        return fail_open(err, errlen, STORE_E_INSECURE_DIR,
                         "%s is writable by every user (mode %o); make it "
                         "0700",
                         st->dir, (unsigned)(sb.st_mode & 07777));
    return 0;
}

static int take_lock(struct store *st, const struct store_config *cfg,
                     char *err, size_t errlen)
{
    unsigned timeout =
        cfg->lock_timeout_ms ? cfg->lock_timeout_ms : DEFAULT_LOCK_TIMEOUT_MS;
    int flags = st->read_only ? O_RDONLY : O_RDWR | O_CREAT;
    st->lockfd = st->io->openat(st->io, st->dirfd, MF_LOCK_NAME,
                                flags | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (st->lockfd == -ENOENT && st->read_only)
        return 0; /* never opened by a writer: nothing holds it */
    if (st->lockfd < 0)
        return fail_open(err, errlen, st->lockfd, "open %s/%s: %s", st->dir,
                         MF_LOCK_NAME, strerror(-st->lockfd));
    int op = (st->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB;
    uint64_t deadline = now_ns() + (uint64_t)timeout * 1000000ull;
    for (;;) {
        if (flock(st->lockfd, op) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return fail_open(err, errlen, -errno, "flock %s/%s: %s", st->dir,
                             MF_LOCK_NAME, strerror(errno));
        if (st->read_only && cfg->ignore_lock)
            return 0;
        if (st->read_only || now_ns() >= deadline)
            return fail_open(err, errlen, STORE_E_LOCKED,
                             "store at %s is locked by another live instance "
                             "(waited %u ms); a second writer would corrupt "
                             "the manifest",
                             st->dir, st->read_only ? 0 : timeout);
        usleep(LOCK_RETRY_MS * 1000);
    }
    struct stat sb;
    if (fstat(st->lockfd, &sb) < 0)
        return fail_open(err, errlen, -errno, "fstat %s/%s: %s", st->dir,
                         MF_LOCK_NAME, strerror(errno));
    st->lock_dev = sb.st_dev;
    st->lock_ino = sb.st_ino;
    st->owner_pid = getpid();
    return 0;
}

static int open_data(struct store *st, enum store_direct mode, char *err,
                     size_t errlen)
{
    int base =
        (st->read_only ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC | O_NOFOLLOW;
    const char *why = "";
    st->datafd = -1;
    if (mode != STORE_DIRECT_OFF) {
        st->datafd = st->io->openat(st->io, st->dirfd, MF_DATA_NAME,
                                    base | O_DIRECT, 0600);
        if (st->datafd >= 0 && !store_probe_direct(st->io, st->datafd, &why)) {
            st->io->close(st->io, st->datafd);
            st->datafd = -EINVAL;
        } else if (st->datafd == -EINVAL) {
            why = "open with O_DIRECT was refused (EINVAL)";
        }
        if (st->datafd >= 0) {
            st->direct = 1;
            return 0;
        }
        if (st->datafd != -EINVAL) {
            if (st->datafd == -ENOENT && st->read_only)
                return 0;
            return fail_open(err, errlen, st->datafd, "open %s/%s: %s", st->dir,
                             MF_DATA_NAME, strerror(-st->datafd));
        }
        if (mode == STORE_DIRECT_ON)
            return fail_open(err, errlen, STORE_E_NO_DIRECT,
                             "%s/%s: O_DIRECT required but %s", st->dir,
                             MF_DATA_NAME, why);
        store_log(st, STORE_LOG_WARN,
                  "%s/%s: O_DIRECT unavailable (%s); using buffered I/O",
                  st->dir, MF_DATA_NAME, why);
    }
    st->datafd = st->io->openat(st->io, st->dirfd, MF_DATA_NAME, base, 0600);
    if (st->datafd == -ENOENT && st->read_only)
        return 0;
    if (st->datafd < 0)
        return fail_open(err, errlen, st->datafd, "open %s/%s: %s", st->dir,
                         MF_DATA_NAME, strerror(-st->datafd));
    return 0;
}

/* M4's last check: the data file covers every entry's pages. */
static int check_data_size(struct store *st, char *err, size_t errlen)
{
    uint64_t size = 0;
    struct stat sb;
    if (st->datafd >= 0) {
        if (fstat(st->datafd, &sb) < 0)
            return fail_open(err, errlen, -errno, "fstat %s/%s: %s", st->dir,
                             MF_DATA_NAME, strerror(errno));
        size = (uint64_t)sb.st_size;
    }
    for (size_t ci = 0; ci < st->ix.nchunks; ci++) {
        const struct index_chunk *c = st->ix.chunks[ci];
        for (uint32_t i = 0; i < c->n; i++) {
            if (c->e[i].slot == SLOT_NONE)
                continue;
            uint64_t need = (uint64_t)c->e[i].slot * STORE_FRAME_SIZE +
                            round_page(c->e[i].len);
            if (need > size)
                return fail_open(err, errlen, STORE_E_CORRUPT,
                                 "%s/%s is %" PRIu64 " bytes but slot %" PRIu32
                                 " needs %" PRIu64,
                                 st->dir, MF_DATA_NAME, size, c->e[i].slot,
                                 need);
        }
    }
    st->prealloc_slots = size / STORE_FRAME_SIZE;
    if (st->prealloc_slots < st->next_slot)
        st->prealloc_slots = st->next_slot;
    return 0;
}

static int push_log(struct store *st, uint64_t lsn)
{
    int rc = grow((void **)&st->logs, &st->clogs, st->nlogs + 1,
                  sizeof(st->logs[0]));
    if (rc == 0)
        st->logs[st->nlogs++] = lsn;
    return rc;
}

/* Writable open: make the current log ready and the new generation
 * durable before any write (G5). */
static int start_generation(struct store *st, struct mf_state *ms, char *err,
                            size_t errlen)
{
    struct mf_ctx ctx;
    char name[32];
    int rc;
    mf_ctx_init(st, &ctx, err, errlen);
    if (!ms->have_uuid) {
        if (getrandom(st->uuid, sizeof(st->uuid), 0) != sizeof(st->uuid))
            return fail_open(err, errlen, -errno, "getrandom: %s",
                             strerror(errno));
        st->uuid[6] = (st->uuid[6] & 0x0f) | 0x40;
        st->uuid[8] = (st->uuid[8] & 0x3f) | 0x80;
    }
    if (st->nlogs == 0) {
        int sync_failed = 0;
        st->logfd = mf_create_log(&ctx, st->uuid, st->next_lsn, &sync_failed);
        if (st->logfd < 0)
            return st->logfd;
        st->log_first = st->next_lsn;
        st->log_end = MF_LOG_HDR_SIZE;
        rc = push_log(st, st->log_first);
        if (rc < 0)
            return rc;
    } else {
        st->log_first = st->logs[st->nlogs - 1];
        st->log_end = ms->logs[ms->nlogs - 1].end;
        mf_log_name(name, st->log_first);
        st->logfd = st->io->openat(st->io, st->dirfd, name,
                                   O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
        if (st->logfd < 0)
            return fail_open(err, errlen, st->logfd, "open %s/%s: %s", st->dir,
                             name, strerror(-st->logfd));
    }
    /* The data file may have just been created: make its name durable. */
    rc = st->io->sync(st->io, st->dirfd, STORE_IO_FSYNC);
    if (rc < 0)
        return fail_open(err, errlen, rc, "fsync %s: %s", st->dir,
                         strerror(-rc));
    if (st->generation >= MF_MAX_GENERATION)
        return fail_open(err, errlen, STORE_E_OVERFLOW,
                         "%s: generation counter exhausted", st->dir);
    if (st->next_lsn > MF_MAX_LSN)
        return fail_open(err, errlen, STORE_E_OVERFLOW,
                         "%s: log sequence numbers exhausted (next %" PRIu64
                         ")",
                         st->dir, st->next_lsn);
    struct mf_record r;
    memset(&r, 0, sizeof(r));
    r.type = MF_REC_OPEN;
    r.version = st->generation + 1;
    rc = append_group(st, &r, 1);
    if (rc < 0)
        return fail_open(err, errlen, rc, "%s: cannot record the open: %s",
                         st->dir,
                         st->sticky ? st->sticky_msg : store_strerror(rc));
    st->generation++;
    st->counter = 0;
    return 0;
}

static void uring_log(void *ctx, int warn, const char *msg)
{
    store_log(ctx, warn ? STORE_LOG_WARN : STORE_LOG_INFO, "%s", msg);
}

/* The backend when the caller gives none: io_uring unless told otherwise;
 * a ring that cannot be created falls back to pread (logged, reported),
 * unless io_uring was required (then NULL with io_note saying why). */
static struct store_io *pick_backend(struct store *st,
                                     const struct store_config *cfg)
{
    if (cfg->backend == STORE_BACKEND_PREAD)
        return store_io_pread_new();
    struct store_io_uring_opts o;
    memset(&o, 0, sizeof(o));
    o.fixed_frames = cfg->no_fixed_frames ? 0
                     : cfg->fixed_frames  ? cfg->fixed_frames
                                          : 32;
    o.fail_ring = cfg->uring_fail_ring;
    o.fail_register = cfg->uring_fail_register;
    o.log_fn = uring_log;
    o.log_ctx = st;
    int rc = 0;
    char err[128] = "";
    struct store_io *io = store_io_uring_new(&o, &rc, err, sizeof(err));
    if (io) {
        if (o.fixed_frames && !store_io_uring_fixed(io))
            snprintf(st->io_note, sizeof(st->io_note),
                     "io_uring without fixed buffers (registration failed)");
        return io;
    }
    snprintf(st->io_note, sizeof(st->io_note), "%s%s", err,
             cfg->backend == STORE_BACKEND_AUTO ? "; using pread" : "");
    if (cfg->backend == STORE_BACKEND_IO_URING) {
        st->io_required_failed = 1;
        return NULL;
    }
    store_log(st, STORE_LOG_WARN, "io_uring unavailable (%s); using pread",
              err);
    return store_io_pread_new();
}

static struct store *store_new(const struct store_config *cfg)
{
    struct store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->dir = strdup(cfg->dir);
    st->read_only = cfg->read_only;
    st->log_level = cfg->log_level;
    st->log_fn = cfg->log_fn;
    st->log_ctx = cfg->log_ctx;
    st->headroom_min = cfg->headroom_min ? cfg->headroom_min : DEFAULT_HEADROOM;
    st->dirfd = st->lockfd = st->datafd = st->logfd = -1;
    pthread_mutex_init(&st->wlock, NULL);
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->frame_lock, NULL);
    index_init(&st->ix);
    slots_init(&st->free);
    pthread_cond_init(&st->compact_cv, NULL);
    if (cfg->io) {
        st->io = cfg->io;
    } else {
        st->io = pick_backend(st, cfg);
        st->io_owned = 1;
    }
    if (!st->dir) {
        store_close(st);
        return NULL;
    }
    return st;
}

static int load(struct store *st, const struct store_config *cfg, char *err,
                size_t errlen)
{
    struct mf_ctx ctx;
    struct mf_state ms;
    int rc = open_dir(st, err, errlen);
    if (rc == 0)
        rc = take_lock(st, cfg, err, errlen);
    if (rc < 0)
        return rc;
    if (!st->read_only) {
        rc = st->io->unlinkat(st->io, st->dirfd, MF_SNAP_TMP_NAME);
        if (rc == 0)
            store_log(
                st, STORE_LOG_WARN,
                "%s/%s: removed the leftover of an interrupted compaction",
                st->dir, MF_SNAP_TMP_NAME);
    }
    mf_ctx_init(st, &ctx, err, errlen);
    struct stat sb;
    if (fstatat(st->dirfd, MF_DATA_NAME, &sb, AT_SYMLINK_NOFOLLOW) == 0)
        ctx.data_slots =
            ((uint64_t)sb.st_size + STORE_FRAME_SIZE - 1) / STORE_FRAME_SIZE;
    rc = mf_load(&ctx, &st->ix, &ms);
    if (rc < 0)
        goto out;
    memcpy(st->uuid, ms.uuid, sizeof(st->uuid));
    st->next_slot = ms.next_slot;
    st->next_lsn = ms.next_lsn;
    st->generation = ms.generation;
    st->snap_bytes = ms.snap_bytes;
    st->log_records = ms.log_records;
    st->torn_tail = ms.torn_tail;
    st->torn_offset = ms.torn_offset;
    for (size_t i = 0; i < ms.nlogs && rc == 0; i++) {
        st->log_bytes += ms.logs[i].size;
        rc = push_log(st, ms.logs[i].first_lsn);
    }
    if (rc == 0)
        rc = slots_rebuild(&st->free, &ms.used, st->next_slot);
    if (rc == 0)
        rc = open_data(st, cfg->direct, err, errlen);
    if (rc == 0)
        rc = check_data_size(st, err, errlen);
    if (rc == 0 && !st->read_only)
        rc = start_generation(st, &ms, err, errlen);
out:
    mf_state_free(&ms);
    return rc;
}

struct store *store_open(const struct store_config *cfg, int *rcp, char *errbuf,
                         size_t errlen)
{
    int rc = STORE_E_INVALID;
    struct store *st = NULL;
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (!cfg || !cfg->dir || !*cfg->dir ||
        (cfg->ignore_lock && !cfg->read_only)) {
        fail_open(errbuf, errlen, rc, "invalid store configuration");
        goto out;
    }
    st = store_new(cfg);
    if (!st) {
        rc = -ENOMEM;
        fail_open(errbuf, errlen, rc, "out of memory");
        goto out;
    }
    if (!st->io) {
        rc = st->io_required_failed ? STORE_E_NO_URING : -ENOMEM;
        fail_open(errbuf, errlen, rc, "io_uring required but %s", st->io_note);
    } else {
        rc = load(st, cfg, errbuf, errlen);
    }
    if (rc == 0 && cfg->async) {
        rc = iothread_start(st, cfg);
        if (rc < 0)
            fail_open(errbuf, errlen, rc, "cannot start the I/O thread: %s",
                      store_strerror(rc));
    }
    if (rc < 0) {
        store_close(st);
        st = NULL;
        goto out;
    }
    char u[37];
    store_uuid_format(st->uuid, u);
    store_log(st, STORE_LOG_INFO,
              "opened %s%s: %" PRIu64 " blobs, generation %" PRIu64
              ", uuid %s, %s I/O (%s)",
              st->dir, st->read_only ? " read-only" : "", st->ix.count,
              st->generation, u, st->direct ? "O_DIRECT" : "buffered",
              st->io->name);
out:
    if (rcp)
        *rcp = st ? 0 : rc;
    return st;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    pthread_mutex_lock(&st->lock);
    st->stopping = 1; /* a running compaction gives up */
    pthread_mutex_unlock(&st->lock);
    iothread_free(st);
    if (st->io) {
        if (st->logfd >= 0)
            st->io->close(st->io, st->logfd);
        if (st->datafd >= 0)
            st->io->close(st->io, st->datafd);
        if (st->lockfd >= 0)
            st->io->close(st->io, st->lockfd); /* releases the flock */
        if (st->io_owned)
            st->io->destroy(st->io);
    }
    if (st->dirfd >= 0)
        close(st->dirfd);
    index_free(&st->ix);
    slots_free(&st->free);
    free(st->pins.v);
    free(st->pend);
    free(st->pend_free);
    free(st->logs);
    for (size_t i = 0; i < st->nframes; i++)
        free(st->frames[i]);
    pthread_mutex_destroy(&st->wlock);
    pthread_mutex_destroy(&st->lock);
    pthread_mutex_destroy(&st->frame_lock);
    pthread_cond_destroy(&st->compact_cv);
    free(st->dir);
    free(st);
}

/* ---- writes ---- */

/* One write of a batch on its way through store_write_batch. */
struct wplan {
    struct store_write *w;
    size_t order; /* position in the batch */
    int winner;   /* last successful write of its GUID: it gets a slot */
    int has_slot; /* a slot was reserved for it */
    uint32_t slot;
    uint32_t crc;
    int rc; /* I/O result for winners */
};

static int plan_cmp(const void *a, const void *b)
{
    const struct wplan *x = a, *y = b;
    int c = memcmp(x->w->guid, y->w->guid, STORE_GUID_SIZE);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int slot_cmp(const void *a, const void *b)
{
    const struct wplan *const *x = a, *const *y = b;
    return (*x)->slot < (*y)->slot ? -1 : (*x)->slot > (*y)->slot;
}

static int precond_ok(const struct store_precond *pre, int exists,
                      uint64_t version)
{
    switch (pre->kind) {
    case STORE_PRE_NONE:
        return 1;
    case STORE_PRE_ABSENT:
        return !exists;
    case STORE_PRE_EXISTS:
        return exists;
    case STORE_PRE_VERSION:
        return exists && version == pre->version;
    }
    return 0;
}

static void set_outcome(struct store_write *w, enum store_outcome o, int rc)
{
    w->outcome = o;
    w->rc = rc;
}

/* Decide every item's outcome as if applied in order; mark winners.
 * plan is sorted by (GUID, order).  Caller holds wlock. */
static void decide(struct store *st, struct wplan *plan, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        struct index_entry *e = index_find(&st->ix, plan[i].w->guid);
        int exists = e != NULL;
        uint64_t version = e ? ix_version(e) : 0;
        struct wplan *last = NULL;
        while (j < n &&
               memcmp(plan[j].w->guid, plan[i].w->guid, STORE_GUID_SIZE) == 0) {
            struct store_write *w = plan[j].w;
            if (w->outcome == STORE_OUT_NONE && w->rc == 0) {
                if (!precond_ok(&w->pre, exists, version)) {
                    set_outcome(w, STORE_OUT_PRECONDITION_FAILED,
                                STORE_E_PRECONDITION);
                } else {
                    set_outcome(
                        w, exists ? STORE_OUT_REPLACED : STORE_OUT_CREATED, 0);
                    exists = 1;
                    /* Placeholder; real versions go in batch order. */
                    version = UINT64_MAX - j;
                    last = &plan[j];
                }
            }
            j++;
        }
        if (last)
            last->winner = 1;
        i = j;
    }
}

static void set_prealloc(struct store *st, uint64_t slots)
{
    pthread_mutex_lock(&st->lock);
    st->prealloc_slots = slots;
    pthread_mutex_unlock(&st->lock);
}

/* Grow the data file to cover need slots (chunked; ENOSPC retries for just
 * need).  Caller holds wlock.  0, STORE_E_NOSPACE or -errno. */
static int ensure_capacity(struct store *st, uint64_t need)
{
    if (need <= st->prealloc_slots)
        return 0;
    uint64_t avail = 0;
    int rc = st->io->fstatvfs(st->io, st->datafd, &avail);
    uint64_t headroom = st->headroom_min;
    if (2 * st->snap_bytes > headroom)
        headroom = 2 * st->snap_bytes;
    if (rc == 0 && avail < headroom) {
        store_log(st, STORE_LOG_WARN,
                  "%s: %" PRIu64 " bytes free is below the headroom of %" PRIu64
                  "; refusing to grow %s",
                  st->dir, avail, headroom, MF_DATA_NAME);
        return STORE_E_NOSPACE;
    }
    uint64_t chunk =
        need >= PREALLOC_LARGE_AT ? PREALLOC_LARGE : PREALLOC_SMALL;
    uint64_t target = (need + chunk - 1) / chunk * chunk;
    if (st->no_fallocate) {
        set_prealloc(st, target);
        return 0;
    }
    uint64_t from = st->prealloc_slots * STORE_FRAME_SIZE;
    rc = st->io->fallocate(st->io, st->datafd, from,
                           target * STORE_FRAME_SIZE - from);
    if (rc == -ENOSPC && target > need) {
        target = need;
        rc = st->io->fallocate(st->io, st->datafd, from,
                               target * STORE_FRAME_SIZE - from);
    }
    if (rc == -EOPNOTSUPP || rc == -ENOSYS) {
        store_log(st, STORE_LOG_WARN,
                  "%s/%s: the filesystem cannot preallocate; the file grows by "
                  "writes",
                  st->dir, MF_DATA_NAME);
        st->no_fallocate = 1;
        set_prealloc(st, target);
        return 0;
    }
    if (rc == -ENOSPC)
        return STORE_E_NOSPACE;
    if (rc < 0) {
        store_log(st, STORE_LOG_ERROR, "fallocate %s/%s: %s", st->dir,
                  MF_DATA_NAME, strerror(-rc));
        return rc;
    }
    set_prealloc(st, target);
    return 0;
}

/* Write the winners' frames, coalescing byte-contiguous runs into
 * pwritev calls of at most PWRITEV_MAX frames, all in flight together
 * when the backend can (pwritev_batch).  Sets each winner's rc. */
static void write_run_done(struct store *st, struct wplan **v, size_t i,
                           size_t j, size_t bytes, ssize_t w)
{
    pthread_mutex_lock(&st->lock);
    st->data_write_calls++;
    if (w >= 0 && (size_t)w == bytes)
        st->data_writes += (uint64_t)(j - i);
    pthread_mutex_unlock(&st->lock);
    if (w >= 0 && (size_t)w != bytes)
        w = -ENOSPC; /* short write: out of space (SPEC table) */
    int rc = (int)(w < 0 ? w : 0);
    if (rc < 0)
        store_log(st, rc == -ENOSPC ? STORE_LOG_WARN : STORE_LOG_ERROR,
                  "pwritev %s/%s at slot %" PRIu32 " (%zu bytes): %s%s",
                  st->dir, MF_DATA_NAME, v[i]->slot, bytes, strerror(-rc),
                  rc == -EINVAL && st->direct
                      ? " (O_DIRECT refused after a good probe)"
                      : "");
    for (size_t k = i; k < j; k++)
        v[k]->rc = rc;
}

static void write_frames(struct store *st, struct wplan **v, size_t n)
{
    if (n == 0)
        return;
    struct iovec *iov = malloc(n * sizeof(*iov));
    struct store_io_write *calls = malloc(n * sizeof(*calls));
    size_t *ends = malloc(n * sizeof(*ends));
    size_t *sizes = malloc(n * sizeof(*sizes));
    if (!iov || !calls || !ends || !sizes) {
        free(iov);
        free(calls);
        free(ends);
        free(sizes);
        store_log(st, STORE_LOG_ERROR,
                  "%s: out of memory for the writes of a batch of %zu", st->dir,
                  n);
        for (size_t k = 0; k < n; k++)
            v[k]->rc = -ENOMEM;
        return;
    }
    size_t i = 0, ncalls = 0;
    while (i < n) {
        size_t j = i, bytes = 0;
        /* A frame joins the run only if the previous one fills its slot. */
        do {
            size_t len = round_page(v[j]->w->len);
            iov[j].iov_base = v[j]->w->frame;
            iov[j].iov_len = len;
            bytes += len;
            j++;
        } while (j < n && j - i < PWRITEV_MAX &&
                 v[j]->slot == v[j - 1]->slot + 1 &&
                 round_page(v[j - 1]->w->len) == STORE_FRAME_SIZE);
        calls[ncalls] = (struct store_io_write){.iov = &iov[i],
                                                .iovcnt = (int)(j - i),
                                                .off = (uint64_t)v[i]->slot *
                                                       STORE_FRAME_SIZE};
        ends[ncalls] = j;
        sizes[ncalls] = bytes;
        ncalls++;
        i = j;
    }
    if (st->io->pwritev_batch && ncalls > 1) {
        st->io->pwritev_batch(st->io, st->datafd, calls, (int)ncalls);
    } else {
        for (size_t c = 0; c < ncalls; c++)
            calls[c].res =
                sizes[c] == 0
                    ? 0
                    : st->io->pwritev(st->io, st->datafd, calls[c].iov,
                                      calls[c].iovcnt, calls[c].off);
    }
    i = 0;
    for (size_t c = 0; c < ncalls; c++) {
        write_run_done(st, v, i, ends[c], sizes[c], calls[c].res);
        i = ends[c];
    }
    free(iov);
    free(calls);
    free(ends);
    free(sizes);
}

static enum store_outcome failed_outcome(int rc)
{
    return rc == -ENOSPC || rc == STORE_E_NOSPACE ? STORE_OUT_NO_SPACE
                                                  : STORE_OUT_STORE_FAILED;
}

/* Allocate slots for the winners (reused first, T2).  Caller holds lock. */
static int allocate(struct store *st, struct wplan **v, size_t n)
{
    hold_expire(st);
    int reuse = !st->scanning && !st->held; /* C1, holds */
    for (size_t i = 0; i < n; i++) {
        if (v[i]->w->len == 0) { /* an empty blob needs no slot */
            v[i]->slot = SLOT_NONE;
            continue;
        }
        if (reuse && slots_pop(&st->free, &v[i]->slot) == 0) {
            v[i]->has_slot = 1;
            continue;
        }
        if (st->next_slot >= MF_MAX_SLOTS) {
            v[i]->rc = STORE_E_NOSPACE;
            continue;
        }
        v[i]->slot = (uint32_t)st->next_slot++;
        v[i]->has_slot = 1;
    }
    return 0;
}

/* Publish the finished writes (T2) and roll back the failed (T3).
 * Caller holds wlock and lock. */
static void apply_writes(struct store *st, struct wplan **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct wplan *p = v[i];
        struct store_write *w = p->w;
        struct index_entry e, old;
        int had = 0;
        if (p->rc == 0) {
            memcpy(e.guid, w->guid, STORE_GUID_SIZE);
            e.slot = p->slot;
            e.len = w->len;
            e.crc = p->crc;
            ix_set_version(&e, w->version);
            p->rc = index_put(&st->ix, &e, &old, &had);
        }
        if (p->rc < 0) {
            if (p->has_slot)
                slots_push(&st->free, p->slot); /* T3 */
            continue;
        }
        if (had && old.slot != SLOT_NONE)
            st->pend_free[st->npf++] = old.slot;
        struct mf_record *r = &st->pend[st->npend++];
        memset(r, 0, sizeof(*r));
        r->type = MF_REC_SET;
        memcpy(r->guid, w->guid, STORE_GUID_SIZE);
        r->slot = slot_to_disk(p->slot);
        r->len = w->len;
        r->crc = p->crc;
        r->version = w->version;
        st->unflushed_blobs++;
        st->unflushed_bytes += w->len;
        st->data_dirty = 1;
    }
}

/* The collapsed writes of a GUID share its winner's fate. */
static void propagate(struct wplan *plan, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        struct wplan *win = NULL;
        while (j < n &&
               memcmp(plan[j].w->guid, plan[i].w->guid, STORE_GUID_SIZE) == 0) {
            if (plan[j].winner)
                win = &plan[j];
            j++;
        }
        if (win && win->rc < 0) {
            for (size_t k = i; k < j; k++) {
                struct store_write *w = plan[k].w;
                if (w->outcome == STORE_OUT_CREATED ||
                    w->outcome == STORE_OUT_REPLACED) {
                    set_outcome(w, failed_outcome(win->rc),
                                win->rc == -ENOSPC ? STORE_E_NOSPACE : win->rc);
                    w->version = 0;
                }
            }
        }
        i = j;
    }
}

static int refuse_batch(struct store_write *w, size_t n, int rc)
{
    for (size_t i = 0; i < n; i++)
        set_outcome(&w[i], STORE_OUT_STORE_FAILED, rc);
    return rc;
}

int store_write_batch(struct store *st, struct store_write *w, size_t n)
{
    struct wplan *plan = NULL;
    struct wplan **win = NULL;
    size_t nwin = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        w[i].outcome = STORE_OUT_NONE;
        w[i].rc = 0;
        w[i].version = 0;
        if (!w[i].guid || (!w[i].frame && w[i].len > 0) ||
            ((uintptr_t)w[i].frame % STORE_PAGE_SIZE) != 0)
            set_outcome(&w[i], STORE_OUT_STORE_FAILED, STORE_E_INVALID);
        else if (w[i].len > STORE_FRAME_SIZE)
            set_outcome(&w[i], STORE_OUT_STORE_FAILED, STORE_E_TOO_LARGE);
    }
    if (n == 0)
        return 0;
    pthread_mutex_lock(&st->wlock);
    rc = writable_check(st);
    if (rc < 0) {
        refuse_batch(w, n, rc);
        goto out;
    }
    plan = calloc(n, sizeof(*plan));
    win = calloc(n, sizeof(*win));
    if (!plan || !win) {
        rc = refuse_batch(w, n, -ENOMEM);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        plan[i].w = &w[i];
        plan[i].order = i;
    }
    if (st->counter + n > MF_MAX_COUNTER) {
        store_log(st, STORE_LOG_ERROR,
                  "%s: write counter of generation %" PRIu64
                  " exhausted; reopen the store",
                  st->dir, st->generation);
        rc = refuse_batch(w, n, STORE_E_OVERFLOW);
        goto out;
    }
    qsort(plan, n, sizeof(*plan), plan_cmp);
    decide(st, plan, n);
    /* Versions in batch order (G5: never reused). */
    for (size_t i = 0; i < n; i++)
        if (w[i].outcome == STORE_OUT_CREATED ||
            w[i].outcome == STORE_OUT_REPLACED)
            w[i].version = st->generation << 40 | ++st->counter;
    for (size_t i = 0; i < n; i++) {
        if (plan[i].winner && plan[i].w->outcome != STORE_OUT_STORE_FAILED)
            win[nwin++] = &plan[i];
        else
            plan[i].winner = 0;
    }
    pthread_mutex_lock(&st->lock);
    rc = reserve_pending(st, nwin);
    if (rc == 0)
        allocate(st, win, nwin);
    pthread_mutex_unlock(&st->lock);
    if (rc < 0) {
        rc = refuse_batch(w, n, rc);
        goto out;
    }
    rc = 0;
    /* Capacity: items past what the file can hold fail with no space. */
    uint64_t need = 0;
    for (size_t i = 0; i < nwin; i++)
        if (win[i]->rc == 0 && win[i]->slot != SLOT_NONE &&
            win[i]->slot + 1ull > need)
            need = win[i]->slot + 1ull;
    int crc_rc = ensure_capacity(st, need);
    for (size_t i = 0; i < nwin; i++) {
        struct wplan *p = win[i];
        if (p->rc == 0 && crc_rc < 0 && p->slot != SLOT_NONE &&
            p->slot >= st->prealloc_slots)
            p->rc = crc_rc;
        if (p->rc < 0)
            continue;
        uint32_t pad = (uint32_t)round_page(p->w->len) - p->w->len;
        if (pad)
            memset((uint8_t *)p->w->frame + p->w->len, 0, pad);
        p->crc = store_crc32c(p->w->frame, p->w->len);
    }
    /* Write the winners that still may, in slot order. */
    size_t nio = 0;
    for (size_t i = 0; i < nwin; i++)
        if (win[i]->rc == 0 && win[i]->slot != SLOT_NONE)
            win[nio++] = win[i];
    qsort(win, nio, sizeof(*win), slot_cmp);
    write_frames(st, win, nio);
    /* Winners that failed before I/O are past nio: restore the full list. */
    nwin = 0;
    for (size_t i = 0; i < n; i++)
        if (plan[i].winner)
            win[nwin++] = &plan[i];
    pthread_mutex_lock(&st->lock);
    apply_writes(st, win, nwin);
    pthread_mutex_unlock(&st->lock);
    propagate(plan, n);
    uint64_t superseded = 0;
    for (size_t i = 0; i < n; i++)
        if (!plan[i].winner && (plan[i].w->outcome == STORE_OUT_CREATED ||
                                plan[i].w->outcome == STORE_OUT_REPLACED))
            superseded++;
    pthread_mutex_lock(&st->lock);
    st->writes_superseded += superseded;
    pthread_mutex_unlock(&st->lock);
out:
    pthread_mutex_unlock(&st->wlock);
    free(plan);
    free(win);
    return rc;
}

int store_write(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                void *frame, uint32_t len, const struct store_precond *pre,
                enum store_outcome *out, uint64_t *version)
{
    struct store_write w;
    memset(&w, 0, sizeof(w));
    w.guid = guid;
    w.frame = frame;
    w.len = len;
    if (pre)
        w.pre = *pre;
    int rc = store_write_batch(st, &w, 1);
    if (out)
        *out = w.outcome;
    if (version)
        *version = w.version;
    if (rc < 0)
        return rc;
    return w.rc;
}

int store_delete(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                 const struct store_precond *pre, enum store_outcome *out)
{
    enum store_outcome o = STORE_OUT_STORE_FAILED;
    pthread_mutex_lock(&st->wlock);
    int rc = writable_check(st);
    if (rc < 0)
        goto out;
    pthread_mutex_lock(&st->lock);
    struct index_entry *e = index_find(&st->ix, guid);
    struct store_precond none = {.kind = STORE_PRE_NONE, .version = 0};
    if (!pre)
        pre = &none;
    if (!e) {
        rc = pre->kind == STORE_PRE_NONE || pre->kind == STORE_PRE_ABSENT
                 ? STORE_E_NOT_FOUND
                 : STORE_E_PRECONDITION;
        o = rc == STORE_E_NOT_FOUND ? STORE_OUT_NOT_FOUND
                                    : STORE_OUT_PRECONDITION_FAILED;
    } else if (!precond_ok(pre, 1, ix_version(e)) ||
               pre->kind == STORE_PRE_ABSENT) {
        rc = STORE_E_PRECONDITION;
        o = STORE_OUT_PRECONDITION_FAILED;
    } else if ((rc = reserve_pending(st, 1)) == 0) {
        struct index_entry old;
        index_remove(&st->ix, guid, &old);
        if (old.slot != SLOT_NONE)
            st->pend_free[st->npf++] = old.slot;
        struct mf_record *r = &st->pend[st->npend++];
        memset(r, 0, sizeof(*r));
        r->type = MF_REC_DELETE;
        memcpy(r->guid, guid, STORE_GUID_SIZE);
        o = STORE_OUT_DELETED;
    }
    pthread_mutex_unlock(&st->lock);
out:
    pthread_mutex_unlock(&st->wlock);
    if (out)
        *out = o;
    return rc;
}

/* ---- flush and compaction ---- */

/* Caller holds lock. */
static int should_compact(struct store *st)
{
    hold_expire(st);
    uint64_t snap = MF_SNAP_HDR_SIZE + MF_SNAP_TRAILER_SIZE +
                    st->ix.count * MF_SNAP_ENTRY_SIZE;
    return !st->held && !st->compaction_running &&
           st->log_bytes >= COMPACT_MIN_BYTES &&
           st->log_bytes >= COMPACT_RATIO * snap &&
           st->log_bytes >= st->compact_retry_at;
}

int store_compaction_due(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    int due = should_compact(st);
    pthread_mutex_unlock(&st->lock);
    return due;
}

int store_flush_pressure(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    int p = st->npend >= PRESSURE_DELTAS || st->npf >= PRESSURE_FREE ||
            st->unflushed_bytes >= PRESSURE_BYTES;
    pthread_mutex_unlock(&st->lock);
    return p;
}

static void publish_freed(struct store *st)
{
    for (size_t i = 0; i < st->npf; i++)
        if (!pins_defer(&st->pins, st->pend_free[i]))
            slots_push(&st->free, st->pend_free[i]);
    st->npf = 0;
}

/* Sync blobs.dat if a write made it dirty (T1's second step); a failure
 * is sticky (G3).  Caller holds wlock, so no write runs meanwhile.
 * Returns 1 if it synced, 0 if clean, or an error. */
static int sync_data_locked(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    int dirty = st->data_dirty;
    pthread_mutex_unlock(&st->lock);
    if (!dirty)
        return 0;
    int rc = st->io->sync(st->io, st->datafd, STORE_IO_FDATASYNC);
    if (rc < 0)
        return set_sticky(st, rc, "fdatasync %s/%s", st->dir, MF_DATA_NAME);
    pthread_mutex_lock(&st->lock);
    st->data_dirty = 0;
    st->data_syncs++;
    st->unflushed_bytes = 0;
    pthread_mutex_unlock(&st->lock);
    return 1;
}

int store_sync_data_due(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    int due = st->data_dirty && st->unflushed_bytes >= DATA_SYNC_BYTES;
    pthread_mutex_unlock(&st->lock);
    return due;
}

int store_sync_data(struct store *st)
{
    pthread_mutex_lock(&st->wlock);
    int rc = writable_check(st);
    if (rc == 0)
        rc = sync_data_locked(st);
    pthread_mutex_unlock(&st->wlock);
    return rc < 0 ? rc : 0;
}

static int flush_locked(struct store *st, struct store_flush_result *res)
{
    int rc = writable_check(st);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&st->lock);
    size_t n = st->npend;
    pthread_mutex_unlock(&st->lock);
    rc = sync_data_locked(st);
    if (rc < 0)
        return rc;
    res->data_synced = rc;
    if (n == 0)
        return 0;
    /* pend[] only grows under wlock, which we hold: read it unlocked. */
    uint64_t before = st->log_end;
    rc = append_group(st, st->pend, n);
    if (rc < 0)
        return rc;
    res->records = n;
    res->log_bytes = st->log_end - before;
    pthread_mutex_lock(&st->lock);
    st->npend = 0;
    st->unflushed_blobs = 0;
    publish_freed(st);
    pthread_mutex_unlock(&st->lock);
    return 0;
}

/* Remove the logs the new snapshot covers; a failed directory sync is
 * sticky (G3).  Caller holds wlock. */
static int remove_covered_logs(struct store *st)
{
    size_t keep = 0;
    int removed = 0;
    for (size_t i = 0; i < st->nlogs; i++) {
        if (st->logs[i] >= st->log_first) {
            st->logs[keep++] = st->logs[i];
            continue;
        }
        char name[32];
        mf_log_name(name, st->logs[i]);
        int rc = st->io->unlinkat(st->io, st->dirfd, name);
        if (rc < 0 && rc != -ENOENT) {
            store_log(st, STORE_LOG_WARN,
                      "unlink %s/%s: %s; it is replayed and removed later",
                      st->dir, name, strerror(-rc));
            st->logs[keep++] = st->logs[i];
        } else {
            removed = 1;
        }
    }
    st->nlogs = keep;
    if (removed) {
        int rc = st->io->sync(st->io, st->dirfd, STORE_IO_FSYNC);
        if (rc < 0)
            return set_sticky(st, rc, "fsync %s", st->dir);
    }
    return 0;
}

/*
 * Compaction (format.md): C1 the switch, under wlock: a new log starts at
 * the next LSN, so every record up to switch_lsn is in the old logs and
 * durable, and slot reuse stops (scanning).  C2 the scan, without wlock:
 * the live index is copied page by page under short holds of lock into
 * manifest.bin.tmp; writes go on, so the snapshot holds the state at the
 * switch plus some later changes.  Replaying the records after switch_lsn
 * over it converges (SET and DELETE are idempotent), and since no slot is
 * reused during the scan no slot can appear under two GUIDs.  C3 the
 * barrier: every change the scan may have seen is made durable before the
 * snapshot can replace the old one.  C4 the commit (rename, fsync dir),
 * then the covered logs go.
 */
static size_t snap_page(void *arg, const uint8_t *after,
                        struct index_entry *out, size_t max)
{
    struct store *st = arg;
    int more;
    if (!st->scan_has_end)
        return 0;
    pthread_mutex_lock(&st->lock);
    size_t n = index_list(&st->ix, after, max, out, &more);
    pthread_mutex_unlock(&st->lock);
    /* The scan ends at the last GUID of the switch: GUIDs created later
     * above it are in the new log, and a stream of rising GUIDs
     * (time-ordered ones) must not keep the scan going forever. */
    while (n > 0 && memcmp(out[n - 1].guid, st->scan_end, STORE_GUID_SIZE) > 0)
        n--;
    return n;
}

static void snap_tail(void *arg, uint64_t *next_slot, uint64_t *generation)
{
    struct store *st = arg;
    pthread_mutex_lock(&st->lock);
    *next_slot = st->next_slot;
    *generation = st->generation;
    pthread_mutex_unlock(&st->lock);
}

static int snap_abandon(void *arg)
{
    struct store *st = arg;
    pthread_mutex_lock(&st->lock);
    int stop = st->stopping;
    pthread_mutex_unlock(&st->lock);
    return stop;
}

/* C1.  Caller holds wlock. */
static int compact_switch(struct store *st, uint64_t *switch_lsn,
                          struct mf_ctx *ctx, int *sync_failed)
{
    int rc = writable_check(st);
    if (rc < 0)
        return rc;
    if (st->log_first != st->next_lsn) {
        int fd = mf_create_log(ctx, st->uuid, st->next_lsn, sync_failed);
        if (fd < 0)
            return fd;
        rc = push_log(st, st->next_lsn);
        if (rc < 0) {
            st->io->close(st->io, fd);
            return rc;
        }
        st->io->close(st->io, st->logfd);
        pthread_mutex_lock(&st->lock);
        st->logfd = fd;
        st->log_first = st->next_lsn;
        st->log_end = MF_LOG_HDR_SIZE;
        pthread_mutex_unlock(&st->lock);
    }
    *switch_lsn = st->next_lsn - 1;
    pthread_mutex_lock(&st->lock);
    st->scan_has_end = st->ix.nchunks > 0;
    if (st->scan_has_end) {
        const struct index_chunk *c = st->ix.chunks[st->ix.nchunks - 1];
        memcpy(st->scan_end, c->e[c->n - 1].guid, STORE_GUID_SIZE);
    }
    pthread_mutex_unlock(&st->lock);
    return 0;
}

/* C4's tail: sizes after the commit.  Caller holds wlock. */
static void compact_account(struct store *st, uint64_t snap_bytes)
{
    uint64_t log_bytes = 0;
    for (size_t i = 0; i < st->nlogs; i++) {
        if (st->logs[i] == st->log_first) {
            log_bytes += st->log_end;
        } else {
            char name[32];
            struct stat sb;
            mf_log_name(name, st->logs[i]);
            if (fstatat(st->dirfd, name, &sb, 0) == 0)
                log_bytes += (uint64_t)sb.st_size;
        }
    }
    pthread_mutex_lock(&st->lock);
    st->snap_bytes = snap_bytes;
    st->log_bytes = log_bytes;
    st->log_records = 0;
    st->compact_retry_at = 0;
    pthread_mutex_unlock(&st->lock);
}

static void compact_end(struct store *st, int rc, uint64_t t0, uint64_t before)
{
    pthread_mutex_lock(&st->lock);
    st->scanning = 0;
    st->compaction_running = 0;
    st->compaction_last_ms = now_unix_ms();
    st->compaction_last_ns = now_ns() - t0;
    st->compaction_before = before;
    if (rc == 0) {
        st->compactions++;
        st->compaction_after = st->log_bytes + st->snap_bytes;
    } else if (rc != STORE_E_HELD && rc != STORE_E_STOPPED) {
        st->compaction_failures++;
        st->compact_retry_at = st->log_bytes + COMPACT_MIN_BYTES;
    }
    pthread_cond_broadcast(&st->compact_cv);
    pthread_mutex_unlock(&st->lock);
}

int store_compact_run(struct store *st, int (*barrier)(struct store *st))
{
    char err[512];
    struct mf_ctx ctx;
    struct mf_snap_src src = {snap_page, snap_tail, snap_abandon, st};
    uint64_t t0 = now_ns(), before, switch_lsn = 0, bytes = 0;
    int sync_failed = 0, rc;
    mf_ctx_init(st, &ctx, err, sizeof(err));
    pthread_mutex_lock(&st->wlock);
    pthread_mutex_lock(&st->lock);
    before = st->log_bytes + st->snap_bytes;
    rc = st->held                 ? STORE_E_HELD
         : st->compaction_running ? -EBUSY
         : st->stopping           ? STORE_E_STOPPED
                                  : 0;
    if (rc == 0)
        st->compaction_running = st->scanning = 1;
    pthread_mutex_unlock(&st->lock);
    if (rc < 0) {
        pthread_mutex_unlock(&st->wlock);
        return rc;
    }
    rc = compact_switch(st, &switch_lsn, &ctx, &sync_failed);
    pthread_mutex_unlock(&st->wlock);
    if (rc == 0) /* C2 */
        rc = mf_write_snapshot_tmp(&ctx, &src, st->uuid, switch_lsn, &bytes,
                                   &sync_failed);
    if (rc == 0) { /* C3 */
        rc = barrier ? barrier(st) : store_flush(st, NULL);
        if (rc < 0)
            st->io->unlinkat(st->io, st->dirfd, MF_SNAP_TMP_NAME);
        if (rc < 0)
            snprintf(err, sizeof(err), "the flush before the commit: %s",
                     store_strerror(rc));
    }
    pthread_mutex_lock(&st->wlock);
    if (rc == 0 && st->sticky)
        rc = STORE_E_FAILED;
    if (rc == 0) /* C4 */
        rc = mf_commit_snapshot(&ctx, &sync_failed);
    if (rc == 0)
        rc = remove_covered_logs(st);
    if (rc == 0)
        compact_account(st, bytes);
    if (rc < 0 && sync_failed)
        rc = set_sticky(st, rc, "compaction: %s", err);
    pthread_mutex_unlock(&st->wlock);
    compact_end(st, rc, t0, before);
    if (rc == 0)
        store_log(st, STORE_LOG_INFO,
                  "compacted %s: %" PRIu64 " -> %" PRIu64 " bytes in %" PRIu64
                  " ms",
                  st->dir, before, st->compaction_after,
                  st->compaction_last_ns / 1000000);
    else if (rc != STORE_E_FAILED && rc != STORE_E_STOPPED)
        store_log(st, STORE_LOG_WARN,
                  "compaction failed (%s); the logs are kept and compaction is "
                  "retried later",
                  err[0] ? err : store_strerror(rc));
    return rc;
}

int store_flush(struct store *st, struct store_flush_result *res)
{
    struct store_flush_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof(*res));
    uint64_t t0 = now_ns();
    pthread_mutex_lock(&st->wlock);
    pthread_mutex_lock(&st->lock);
    st->flush_in_progress = 1;
    pthread_mutex_unlock(&st->lock);
    int rc = flush_locked(st, res);
    res->duration_ns = now_ns() - t0;
    pthread_mutex_lock(&st->lock);
    st->flush_in_progress = 0;
    if (rc == 0) {
        st->flushes++;
        st->flush_last_ms = now_unix_ms();
        st->flush_last_ns = res->duration_ns;
    } else if (rc != STORE_E_READONLY && rc != STORE_E_NOT_OWNER) {
        st->flush_failures++;
    }
    int due = rc == 0 && should_compact(st);
    pthread_mutex_unlock(&st->lock);
    pthread_mutex_unlock(&st->wlock);
    if (due) {
        res->compaction_started = 1;
        if (st->as)
            iothread_kick_compaction(st);
        else
            store_compact_run(st, NULL); /* its failure is not the flush's */
        if (store_failed(st))
            rc = STORE_E_FAILED;
    }
    return rc;
}

int store_compact(struct store *st)
{
    if (st->read_only)
        return STORE_E_READONLY;
    return store_compact_run(st, NULL);
}

void store_stop(struct store *st)
{
    iothread_stop(st);
}

int store_request_compaction(struct store *st)
{
    if (st->read_only)
        return STORE_E_READONLY;
    if (!st->as)
        return store_compact_run(st, NULL);
    iothread_kick_compaction(st);
    return 0;
}

/* Holds (SPEC: POST /admin/hold): flush, then no slot reuse and no
 * compaction until released or expired.  A running compaction is waited
 * for, so a backup never sees files change under it. */
int store_hold(struct store *st, unsigned timeout_ms)
{
    if (st->read_only)
        return STORE_E_READONLY;
    pthread_mutex_lock(&st->lock);
    while (st->compaction_running)
        pthread_cond_wait(&st->compact_cv, &st->lock);
    st->held = 1;
    st->hold_until =
        timeout_ms ? now_ns() + (uint64_t)timeout_ms * 1000000ull : 0;
    pthread_mutex_unlock(&st->lock);
    int rc = store_flush(st, NULL);
    if (rc < 0) { /* no hold without the flush that makes it consistent */
        pthread_mutex_lock(&st->lock);
        st->held = 0;
        st->hold_until = 0;
        pthread_mutex_unlock(&st->lock);
    }
    return rc;
}

int store_release(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    int was = st->held;
    st->held = 0;
    st->hold_until = 0;
    pthread_mutex_unlock(&st->lock);
    return was ? 0 : STORE_E_INVALID;
}

int store_needs_flush(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    int r = st->data_dirty || st->npend > 0 || st->sticky;
    pthread_mutex_unlock(&st->lock);
    return r;
}

int store_failed(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    int r = st->sticky ? STORE_E_FAILED : 0;
    pthread_mutex_unlock(&st->lock);
    return r;
}

/* ---- reads ---- */

static void fill_info(struct store_blob_info *info, const struct index_entry *e)
{
    memcpy(info->guid, e->guid, STORE_GUID_SIZE);
    info->len = e->len;
    info->crc = e->crc;
    info->version = ix_version(e);
}

/* G4: resolve and pin under the lock; the I/O happens outside it. */
static int resolve_pin(struct store *st, const uint8_t *guid,
                       struct store_blob_info *info, uint32_t *slot)
{
    int rc = 0;
    pthread_mutex_lock(&st->lock);
    struct index_entry *e = index_find(&st->ix, guid);
    if (!e) {
        rc = STORE_E_NOT_FOUND;
    } else {
        fill_info(info, e);
        *slot = e->slot;
        if (e->slot != SLOT_NONE)
            rc = pins_add(&st->pins, e->slot);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void unpin(struct store *st, uint32_t slot)
{
    if (slot == SLOT_NONE)
        return;
    pthread_mutex_lock(&st->lock);
    if (pins_release(&st->pins, slot))
        slots_push(&st->free, slot);
    pthread_mutex_unlock(&st->lock);
}

static int read_at(struct store *st, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = st->io->pread(st->io, st->datafd, (uint8_t *)buf + done,
                                  len - done, off + done);
        if (n < 0) {
            store_log(st, STORE_LOG_ERROR, "pread %s/%s at %" PRIu64 ": %s",
                      st->dir, MF_DATA_NAME, off + done, strerror((int)-n));
            return (int)n;
        }
        if (n == 0) {
            store_log(st, STORE_LOG_ERROR,
                      "pread %s/%s at %" PRIu64 ": unexpected end of file",
                      st->dir, MF_DATA_NAME, off + done);
            return -EIO;
        }
        done += (size_t)n;
    }
    return 0;
}

static int verify(struct store *st, const void *frame,
                  const struct store_blob_info *info, uint32_t slot)
{
    if (store_crc32c(frame, info->len) == info->crc)
        return 0;
    char etag[48];
    store_etag(info->version, etag, sizeof(etag));
    store_log(st, STORE_LOG_ERROR,
              "%s/%s slot %" PRIu32 ": CRC32C mismatch for a blob of %" PRIu32
              " bytes, version %s; not served",
              st->dir, MF_DATA_NAME, slot, info->len, etag);
    return STORE_E_CHECKSUM;
}

int store_stat(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
               struct store_blob_info *info)
{
    int rc = 0;
    pthread_mutex_lock(&st->lock);
    struct index_entry *e = index_find(&st->ix, guid);
    if (e)
        fill_info(info, e);
    else
        rc = STORE_E_NOT_FOUND;
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int store_read(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
               void *frame, struct store_blob_info *info)
{
    uint32_t slot;
    int rc = resolve_pin(st, guid, info, &slot);
    if (rc < 0)
        return rc;
    rc = read_at(st, frame, round_page(info->len),
                 (uint64_t)slot * STORE_FRAME_SIZE);
    if (rc == 0)
        rc = verify(st, frame, info, slot);
    unpin(st, slot);
    return rc;
}

int store_read_range(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                     uint64_t off, uint32_t len, void *frame,
                     const uint8_t **data, struct store_blob_info *info)
{
    uint32_t slot;
    int rc = resolve_pin(st, guid, info, &slot);
    if (rc < 0)
        return rc;
    uint64_t base = (uint64_t)slot * STORE_FRAME_SIZE;
    if (off > info->len || len > info->len - off) {
        rc = STORE_E_RANGE;
    } else if (len <= STORE_RANGE_NOVERIFY_MAX) {
        /* Page-aligned, not verified (see the caveat in store.h). */
        uint64_t a = off & ~(uint64_t)(STORE_PAGE_SIZE - 1);
        uint64_t b = round_page(off + len);
        rc = read_at(st, frame, b - a, base + a);
        *data = (const uint8_t *)frame + (off - a);
    } else {
        rc = read_at(st, frame, round_page(info->len), base);
        if (rc == 0)
            rc = verify(st, frame, info, slot);
        *data = (const uint8_t *)frame + off;
    }
    unpin(st, slot);
    return rc;
}

int store_read_batch(struct store *st, const uint8_t (*guids)[16],
                     void **frames, struct store_blob_info *infos, int *rcs,
                     size_t n)
{
    uint32_t *slots = calloc(n ? n : 1, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < n; i++) {
        struct index_entry *e = index_find(&st->ix, guids[i]);
        if (!e) {
            rcs[i] = STORE_E_NOT_FOUND;
            continue;
        }
        fill_info(&infos[i], e);
        slots[i] = e->slot;
        rcs[i] = e->slot == SLOT_NONE ? 0 : pins_add(&st->pins, e->slot);
    }
    pthread_mutex_unlock(&st->lock);
    for (size_t i = 0; i < n; i++) {
        if (rcs[i] != 0)
            continue; /* not found, or not pinned */
        rcs[i] = read_at(st, frames[i], round_page(infos[i].len),
                         (uint64_t)slots[i] * STORE_FRAME_SIZE);
        if (rcs[i] == 0)
            rcs[i] = verify(st, frames[i], &infos[i], slots[i]);
        unpin(st, slots[i]);
    }
    free(slots);
    return 0;
}

int store_list(struct store *st, const uint8_t *after, size_t limit,
               struct store_blob_info *out, int *more)
{
    if (limit > STORE_LIST_MAX)
        limit = STORE_LIST_MAX;
    struct index_entry *tmp = malloc((limit ? limit : 1) * sizeof(*tmp));
    if (!tmp)
        return -ENOMEM;
    pthread_mutex_lock(&st->lock);
    size_t n = index_list(&st->ix, after, limit, tmp, more);
    pthread_mutex_unlock(&st->lock);
    for (size_t i = 0; i < n; i++)
        fill_info(&out[i], &tmp[i]);
    free(tmp);
    return (int)n;
}

uint64_t store_count(struct store *st)
{
    pthread_mutex_lock(&st->lock);
    uint64_t n = st->ix.count;
    pthread_mutex_unlock(&st->lock);
    return n;
}

/* ---- stats ---- */

void store_get_stats(struct store *st, struct store_stats *s)
{
    memset(s, 0, sizeof(*s));
    struct stat sb;
    uint64_t avail = 0;
    if (st->datafd >= 0 && fstat(st->datafd, &sb) == 0)
        s->data_file_bytes = (uint64_t)sb.st_size;
    if (st->datafd >= 0 && st->io->fstatvfs(st->io, st->datafd, &avail) == 0)
        s->fs_free_bytes = avail;
    pthread_mutex_lock(&st->lock);
    s->entries = st->ix.count;
    s->next_slot = st->next_slot;
    s->free_singles = st->free.nsingles;
    s->free_ranges = st->free.nranges;
    s->free_total = st->free.total;
    s->pending_deltas = st->npend;
    s->pending_free = st->npf;
    for (size_t i = 0; i < st->pins.n; i++)
        s->pinned += st->pins.v[i].count > 0;
    s->log_bytes = st->log_bytes;
    s->log_records = st->log_records;
    s->snapshot_bytes = st->snap_bytes;
    s->generation = st->generation;
    s->index_bytes = index_bytes(&st->ix);
    s->compactions = st->compactions;
    s->compaction_failures = st->compaction_failures;
    s->compaction_running = st->compaction_running;
    s->compaction_last_unix_ms = st->compaction_last_ms;
    s->compaction_last_ns = st->compaction_last_ns;
    s->compaction_bytes_before = st->compaction_before;
    s->compaction_bytes_after = st->compaction_after;
    s->flushes = st->flushes;
    s->flush_failures = st->flush_failures;
    s->flush_last_unix_ms = st->flush_last_ms;
    s->flush_last_ns = st->flush_last_ns;
    s->flush_in_progress = st->flush_in_progress;
    s->needs_flush = st->data_dirty || st->npend > 0 || st->sticky;
    s->unflushed_blobs = st->unflushed_blobs;
    s->unflushed_bytes = st->unflushed_bytes;
    s->data_writes = st->data_writes;
    s->data_write_calls = st->data_write_calls;
    s->writes_superseded = st->writes_superseded;
    s->data_syncs = st->data_syncs;
    s->log_syncs = st->log_syncs;
    snprintf(s->last_sticky_error, sizeof(s->last_sticky_error), "%s",
             st->sticky_msg);
    s->preallocated_slots = st->prealloc_slots;
    hold_expire(st);
    s->held = st->held;
    s->holds_expired = st->holds_expired;
    pthread_mutex_unlock(&st->lock);
    s->headroom = st->headroom_min > 2 * s->snapshot_bytes
                      ? st->headroom_min
                      : 2 * s->snapshot_bytes;
    snprintf(s->backend, sizeof(s->backend), "%s", st->io->name);
    snprintf(s->backend_note, sizeof(s->backend_note), "%s", st->io_note);
    s->registered_buffers = store_io_uring_fixed(st->io);
    if (st->io->frames_in_use)
        s->registered_buffers_in_use = st->io->frames_in_use(st->io);
    if (st->as)
        iothread_stats(st, &s->queue_depth);
    s->direct = st->direct;
    s->read_only = st->read_only;
    s->torn_tail_found = st->torn_tail;
    s->torn_tail_offset = st->torn_offset;
    store_uuid_format(st->uuid, s->uuid);
}
