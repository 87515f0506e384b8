/*
 * io_uring.c - the io_uring backend: the store_io table on a liburing
 * "write ring" (writes and syncs, the I/O thread's) and a "read ring"
 * (reads into registered frames), with an optional pool of registered
 * (fixed) 512 KiB frames registered with both.
 *
 * What goes through the ring (SPEC 3, "two I/O backends"):
 *   - pwritev: one SQE per iovec at consecutive offsets, all queued and
 *     submitted together, then every CQE reaped before returning.
 *     pwritev_batch does the same for the iovecs of many pwritev calls at
 *     once (the frames of a batch of writes in different slots).  An iovec
 *     that lies inside one registered frame goes as IORING_OP_WRITE_FIXED
 *     with that frame's buf_index, any other as IORING_OP_WRITE.
 *   - sync: IORING_OP_FSYNC (IORING_FSYNC_DATASYNC for fdatasync).
 *   - pread into a registered frame: IORING_OP_READ_FIXED.
 * What does not:
 *   - pread into any other buffer is a plain pread(2).  The ring is one
 *     queue behind one mutex; the store's readers run on many threads, and
 *     sending their reads through it would serialize them behind each other
 *     and behind the I/O thread's writes and syncs.  A read into a
 *     registered frame is worth a ring (no page pinning per call); the
 *     frames are few (at most 32), so those reads share the read ring,
 *     which never waits behind a write or a sync (7).
 *   - openat, close, fallocate, ftruncate, renameat, unlinkat, fstatvfs:
 *     io_pread.c's own functions (rare, metadata-bound, and several
 *     have no io_uring opcode in the kernels we target).
 * Every call is synchronous with the same results as io_pread.c: bytes or
 * -errno; a short transfer is returned as the kernel reported it.
 *
 * Owns: the ring, the frame region (fixed_frames x STORE_FRAME_SIZE, one
 * aligned_alloc, 4 KiB aligned) and its registration, the free stack.
 *
 * Invariants:
 *  1. An SQE queued by a call is reaped by that same call: a ring call
 *     returns only when none of its SQEs is outstanding, so no CQE is left
 *     across calls and the kernel never touches a caller's buffer after the
 *     call returned.  The only exception is a dead ring (5).
 *  2. At most `cap` (= SQ entries) SQEs are outstanding at once; the CQ
 *     holds twice that, so it never overflows and no CQE is lost.
 *  3. The bytes done of a piece (one iovec) are always a prefix of it: only
 *     the remainder [done, len) is resubmitted, at off + done.  A call's
 *     result counts bytes contiguous from its offset: the pieces fully done
 *     plus the done prefix of the first incomplete one; -errno only when
 *     that is 0 and a piece failed (pwritev(2)'s "some written, then an
 *     error" is a short count).
 *  4. A short, -EAGAIN or -EINTR completion is never taken as final while
 *     more can be done: the remainder is resubmitted (EAGAIN/EINTR at most
 *     URING_MAX_RETRY times per piece).  A write completing 0 bytes stops
 *     the call (no progress: a short count); a read completing 0 bytes is
 *     end of file.  Once a piece fails or stalls no new SQE is queued, but
 *     every outstanding one is still reaped (1).
 *  5. A ring whose io_uring_enter fails with anything but EINTR, or keeps
 *     failing with EAGAIN/EBUSY, is dead: u->dead holds the -errno and
 *     every later write and sync returns it (sticky, HOUSE_STYLE 5: a
 *     write or sync may be in flight that we can no longer account for);
 *     reads fall back to pread(2).
 *  6. Registered buffer i is frame i = [region + i * FRAME, + FRAME).  A
 *     frame is on the free stack or handed out (in_use[i]), never both.
 *     Without registered frames the three frame hooks are NULL.
 *  7. Reads never queue behind the write ring, nor behind each other: a
 *     read into a registered frame takes the read ring if it is free and
 *     is a pread(2) otherwise (G4 in store.h).
 *
 * Thread rules: every function may be called from any thread at once.
 * Each ring's lock guards that ring, its gen and dead; u->flock guards
 * the free stack; no two locks are ever held together.  Plain syscalls
 * take no lock.
 * destroy: no call in progress, and no frame used afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "store.h"
#include "store_int.h"
#include "store_io.h"

#define URING_DEFAULT_ENTRIES 256u
#define URING_READ_ENTRIES 64u
#define URING_MAX_FRAMES 32u
/* Consecutive EAGAIN/EINTR completions of one piece, or EAGAIN/EBUSY from
 * io_uring_enter, before we give up (4, 5). */
#define URING_MAX_RETRY 1000u
/* Largest length put in one SQE (the field is 32 bits; the kernel caps a
 * single read or write near 2 GiB anyway): longer pieces go in parts. */
#define URING_MAX_SQE_LEN (1u << 30)
/* Pieces kept on the stack; longer pwritev calls allocate. */
#define URING_STACK_PIECES 64

/* One ring and what guards it. */
struct uring_ring {
    pthread_mutex_t lock; /* the ring, gen, dead (thread rules) */
    struct io_uring ring;
    unsigned cap; /* max outstanding SQEs (2) */
    uint32_t gen; /* call number, high half of user_data */
    int dead;     /* 0, or -errno of the enter that killed the ring (5) */
    int inited;
};

struct uring_io {
    struct store_io io; /* first: a struct store_io * is a uring_io * */

    struct uring_ring w; /* writes and syncs (the I/O thread's ring) */
    struct uring_ring r; /* reads into registered frames (7) */
    int registered;      /* buffers registered with both rings */

    pthread_mutex_t flock; /* free stack, in_use */
    uint8_t *region;       /* nframes * STORE_FRAME_SIZE, or NULL */
    unsigned nframes;
    unsigned nfree;
    uint8_t free_stack[URING_MAX_FRAMES];
    uint8_t in_use[URING_MAX_FRAMES];

    void (*log_fn)(void *ctx, int warn, const char *msg);
    void *log_ctx;
};

enum piece_op { PIECE_WRITE, PIECE_READ, PIECE_FSYNC };
enum piece_state { PIECE_WAITING, PIECE_OUTSTANDING, PIECE_FINISHED };

/* One iovec (or the whole buffer of a read, or a sync) of a ring call. */
struct piece {
    uint8_t *base;
    size_t len;
    uint64_t off;
    size_t done;          /* bytes transferred: a prefix (3) */
    int buf_index;        /* registered frame, or -1 */
    int err;              /* -errno once failed, else 0 */
    unsigned retries;     /* consecutive EAGAIN/EINTR */
    unsigned fsync_flags; /* PIECE_FSYNC only */
    enum piece_op op;
    enum piece_state state;
};

static struct uring_io *U(struct store_io *io)
{
    return (struct uring_io *)io;
}

static void uring_log(struct uring_io *u, int warn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void uring_log(struct uring_io *u, int warn, const char *fmt, ...)
{
    if (!u->log_fn)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    u->log_fn(u->log_ctx, warn, msg);
}

/* ---- registered frames ---- */

/* Index of the registered frame holding [p, p + len) whole, or -1. */
static int frame_index(const struct uring_io *u, const void *p, size_t len)
{
    if (!u->registered || len == 0)
        return -1;
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)u->region;
    uintptr_t hi = lo + (uintptr_t)u->nframes * STORE_FRAME_SIZE;
    if (a < lo || a >= hi || len > hi - a)
        return -1;
    size_t i = (a - lo) / STORE_FRAME_SIZE;
    uintptr_t end = lo + (i + 1) * (uintptr_t)STORE_FRAME_SIZE;
    return len <= end - a ? (int)i : -1;
}

static void *uring_frame_alloc(struct store_io *io)
{
    struct uring_io *u = U(io);
    void *f = NULL;
    pthread_mutex_lock(&u->flock);
    if (u->nfree > 0) {
        unsigned i = u->free_stack[--u->nfree];
        u->in_use[i] = 1;
        f = u->region + (size_t)i * STORE_FRAME_SIZE;
    }
    pthread_mutex_unlock(&u->flock);
    return f;
}

/* Returns 1 for any pointer into the region: a frame we handed out goes
 * back on the free stack; anything else there is a caller bug (a double
 * free or an interior pointer), logged and kept, never passed to free(3). */
static int uring_frame_free(struct store_io *io, void *frame)
{
    struct uring_io *u = U(io);
    uintptr_t a = (uintptr_t)frame, lo = (uintptr_t)u->region;
    if (!frame || a < lo || a >= lo + (uintptr_t)u->nframes * STORE_FRAME_SIZE)
        return 0;
    size_t i = (a - lo) / STORE_FRAME_SIZE;
    int bad = 0;
    pthread_mutex_lock(&u->flock);
    if ((a - lo) % STORE_FRAME_SIZE != 0 || !u->in_use[i]) {
        bad = 1;
    } else {
        u->in_use[i] = 0;
        u->free_stack[u->nfree++] = (uint8_t)i;
    }
    pthread_mutex_unlock(&u->flock);
    if (bad)
        uring_log(u, 1,
                  "io_uring: frame_free(%p) is not a frame in use (frame "
                  "%zu); ignored",
                  frame, i);
    return 1;
}

static unsigned uring_frames_in_use(struct store_io *io)
{
    struct uring_io *u = U(io);
    pthread_mutex_lock(&u->flock);
    unsigned n = u->nframes - u->nfree;
    pthread_mutex_unlock(&u->flock);
    return n;
}

/* ---- the ring ---- */

static void prep_piece(struct io_uring_sqe *sqe, int fd, struct piece *p)
{
    uint8_t *b = p->base + p->done;
    uint64_t off = p->off + p->done;
    size_t left = p->len - p->done;
    unsigned n = left > URING_MAX_SQE_LEN ? URING_MAX_SQE_LEN : (unsigned)left;
    switch (p->op) {
    case PIECE_WRITE:
        if (p->buf_index >= 0)
            io_uring_prep_write_fixed(sqe, fd, b, n, off, p->buf_index);
        else
            io_uring_prep_write(sqe, fd, b, n, off);
        break;
    case PIECE_READ:
        if (p->buf_index >= 0)
            io_uring_prep_read_fixed(sqe, fd, b, n, off, p->buf_index);
        else
            io_uring_prep_read(sqe, fd, b, n, off);
        break;
    case PIECE_FSYNC:
        io_uring_prep_fsync(sqe, fd, p->fsync_flags);
        break;
    }
}

/* Apply one completion to its piece; returns 1 if the call must stop
 * queueing new work (4). */
static int complete_piece(struct piece *p, int res)
{
    if (res == -EAGAIN || res == -EINTR) {
        if (++p->retries <= URING_MAX_RETRY) {
            p->state = PIECE_WAITING; /* not done: resubmit as is */
            return 0;
        }
        p->err = res;
        p->state = PIECE_FINISHED;
        return 1;
    }
    p->retries = 0;
    if (res < 0) {
        p->err = res;
        p->state = PIECE_FINISHED;
        return 1;
    }
    if (p->op == PIECE_FSYNC) {
        p->state = PIECE_FINISHED;
        return 0;
    }
    if (res == 0) {
        /* Read: end of file.  Write: no progress, a short count. */
        p->state = PIECE_FINISHED;
        return 1;
    }
    p->done += (size_t)res;
    if (p->done > p->len) /* cannot happen; never count past the piece */
        p->done = p->len;
    p->state = p->done < p->len ? PIECE_WAITING : PIECE_FINISHED;
    return 0;
}

/* Queue every waiting piece the SQ and cap allow, unless stopped. */
static void fill_sq(struct uring_ring *u, int fd, struct piece *p, int n,
                    unsigned *outstanding)
{
    for (int i = 0; i < n && *outstanding < u->cap; i++) {
        if (p[i].state != PIECE_WAITING)
            continue;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        if (!sqe)
            break;
        prep_piece(sqe, fd, &p[i]);
        io_uring_sqe_set_data64(sqe, ((uint64_t)u->gen << 32) | (uint32_t)i);
        p[i].state = PIECE_OUTSTANDING;
        (*outstanding)++;
    }
}

/* Reap every CQE available; returns 1 if one of them stops the call. */
static int reap(struct uring_io *io, struct uring_ring *u, struct piece *p,
                int n, unsigned *outstanding)
{
    struct io_uring_cqe *cqe;
    int stop = 0;
    while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        uint32_t i = (uint32_t)ud;
        if ((uint32_t)(ud >> 32) != u->gen || i >= (uint32_t)n ||
            p[i].state != PIECE_OUTSTANDING) {
            /* Not ours: impossible by 1, dropped rather than misapplied. */
            uring_log(io, 1, "io_uring: dropped a stray completion (%d)", res);
            continue;
        }
        (*outstanding)--;
        stop |= complete_piece(&p[i], res);
    }
    return stop;
}

/* The result of a finished call (3). */
static ssize_t pieces_result(const struct piece *p, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        total += p[i].done;
        if (p[i].done < p[i].len || p[i].err)
            break;
    }
    if (total > 0)
        return (ssize_t)total;
    for (int i = 0; i < n; i++)
        if (p[i].err)
            return p[i].err;
    return 0;
}

static void mark_dead(struct uring_io *io, struct uring_ring *u, int rc)
{
    u->dead = rc;
    uring_log(io, 1,
              "io_uring_enter: %s; ring is dead: writes and syncs fail "
              "until the backend is recreated",
              strerror(-rc));
}

/* Run pieces on the ring until none is outstanding (1).  Caller holds
 * its lock and has checked its dead.  Returns pieces_result or -errno. */
static ssize_t ring_run(struct uring_io *io, struct uring_ring *u, int fd,
                        struct piece *p, int n)
{
    unsigned outstanding = 0, busy = 0;
    int stop = 0;
    u->gen++;
    for (;;) {
        if (!stop)
            fill_sq(u, fd, p, n, &outstanding);
        if (outstanding == 0)
            break;
        int r = io_uring_submit_and_wait(&u->ring, 1);
        if (r < 0 && r != -EINTR) {
            if ((r != -EAGAIN && r != -EBUSY) || ++busy > URING_MAX_RETRY) {
                mark_dead(io, u, r); /* 5 */
                return r;
            }
            /* Out of kernel resources or CQ backlog: let completions
             * drain, then enter again (the SQEs stay queued). */
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        } else if (r >= 0) {
            busy = 0;
        }
        stop |= reap(io, u, p, n, &outstanding);
    }
    return pieces_result(p, n);
}

/* ---- store_io functions ---- */

static ssize_t plain_pread(int fd, void *buf, size_t len, uint64_t off)
{
    ssize_t n;
    do
        n = pread(fd, buf, len, (off_t)off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t uring_pread(struct store_io *io, int fd, void *buf, size_t len,
                           uint64_t off)
{
    struct uring_io *u = U(io);
    int idx = frame_index(u, buf, len);
    if (idx < 0)
        return plain_pread(fd, buf, len, off); /* see the header */
    if (off > INT64_MAX)
        return -EINVAL;
    struct piece p = {.base = buf,
                      .len = len,
                      .off = off,
                      .buf_index = idx,
                      .op = PIECE_READ,
                      .state = PIECE_WAITING};
    /* A reader that finds the ring busy does not wait for it (7): its
     * pread(2) runs beside the ring's read, so readers on many threads
     * keep that many reads in flight. */
    if (pthread_mutex_trylock(&u->r.lock) != 0)
        return plain_pread(fd, buf, len, off);
    int dead = u->r.dead;
    ssize_t n = dead ? 0 : ring_run(u, &u->r, fd, &p, 1);
    pthread_mutex_unlock(&u->r.lock);
    if (dead) /* 5: a read changes nothing, so pread(2) is safe */
        n = plain_pread(fd, buf, len, off);
    return n;
}

/* The pieces of one pwritev: an SQE per non-empty iovec at consecutive
 * offsets.  Returns how many (p has room for iovcnt), or -EINVAL when the
 * sum overflows ssize_t, as pwritev(2). */
static int write_pieces(struct uring_io *u, struct piece *p,
                        const struct iovec *iov, int iovcnt, uint64_t off)
{
    size_t total = 0;
    int n = 0;
    for (int i = 0; i < iovcnt; i++) {
        size_t len = iov[i].iov_len;
        if (len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        if (len == 0)
            continue; /* nothing to send; offsets stay consecutive */
        p[n++] =
            (struct piece){.base = iov[i].iov_base,
                           .len = len,
                           .off = off + total,
                           .buf_index = frame_index(u, iov[i].iov_base, len),
                           .op = PIECE_WRITE,
                           .state = PIECE_WAITING};
        total += len;
    }
    return n;
}

static ssize_t uring_pwritev(struct store_io *io, int fd,
                             const struct iovec *iov, int iovcnt, uint64_t off)
{
    struct uring_io *u = U(io);
    if (iovcnt < 0 || iovcnt > IOV_MAX || off > INT64_MAX)
        return -EINVAL;
    if (iovcnt == 0)
        return 0;
    struct piece stackp[URING_STACK_PIECES];
    struct piece *p = stackp;
    if (iovcnt > URING_STACK_PIECES) {
        p = calloc((size_t)iovcnt, sizeof(*p));
        if (!p)
            return -ENOMEM;
    }
    ssize_t rc;
    int n = write_pieces(u, p, iov, iovcnt, off);
    if (n <= 0) {
        rc = n;
        goto out;
    }
    pthread_mutex_lock(&u->w.lock);
    rc = u->w.dead ? u->w.dead : ring_run(u, &u->w, fd, p, n);
    pthread_mutex_unlock(&u->w.lock);
out:
    if (p != stackp)
        free(p);
    return rc;
}

/* Every pwritev of the batch as pieces of one ring call, so the writes
 * of a batch are in flight together.  A failed piece stops ring_run from
 * queueing more (4); the pieces it left waiting belong to other writes,
 * which deserve their own attempt, so the call runs again until none is
 * waiting.  Each run finishes at least one piece, so this ends. */
static void uring_pwritev_batch(struct store_io *io, int fd,
                                struct store_io_write *w, int n)
{
    struct uring_io *u = U(io);
    size_t npieces = 0;
    for (int i = 0; i < n; i++) {
        w[i].res = 0;
        if (w[i].iovcnt < 0 || w[i].iovcnt > IOV_MAX || w[i].off > INT64_MAX)
            w[i].res = -EINVAL;
        else
            npieces += (size_t)w[i].iovcnt;
    }
    struct piece *p = calloc(npieces ? npieces : 1, sizeof(*p));
    int *first = calloc((size_t)n, sizeof(*first));
    int *count = calloc((size_t)n, sizeof(*count));
    if (!p || !first || !count) {
        free(p);
        free(first);
        free(count);
        /* Out of memory: one call at a time needs none of it. */
        for (int i = 0; i < n; i++)
            if (w[i].res == 0)
                w[i].res =
                    uring_pwritev(io, fd, w[i].iov, w[i].iovcnt, w[i].off);
        return;
    }
    int np = 0;
    for (int i = 0; i < n; i++) {
        first[i] = np;
        if (w[i].res < 0)
            continue;
        int k = write_pieces(u, p + np, w[i].iov, w[i].iovcnt, w[i].off);
        if (k < 0)
            w[i].res = k;
        else
            np += k;
        count[i] = np - first[i];
    }
    pthread_mutex_lock(&u->w.lock);
    ssize_t dead = u->w.dead;
    while (!dead && np > 0) {
        ssize_t r = ring_run(u, &u->w, fd, p, np);
        if (u->w.dead) {
            dead = r < 0 ? r : u->w.dead;
            break;
        }
        int waiting = 0;
        for (int k = 0; k < np && !waiting; k++)
            waiting = p[k].state == PIECE_WAITING;
        if (!waiting)
            break;
    }
    pthread_mutex_unlock(&u->w.lock);
    for (int i = 0; i < n; i++) {
        if (w[i].res < 0)
            continue;
        w[i].res = dead ? dead : pieces_result(p + first[i], count[i]);
    }
    free(p);
    free(first);
    free(count);
}

static int uring_sync(struct store_io *io, int fd, enum store_io_sync kind)
{
    struct uring_io *u = U(io);
    /* EAGAIN/EINTR completions mean the sync did not run and are retried
     * (4); any other failure is returned and never retried (G3 in
     * store.h: a failed sync may have dropped the pages it could not
     * write). */
    struct piece p = {.fsync_flags =
                          kind == STORE_IO_FSYNC ? 0 : IORING_FSYNC_DATASYNC,
                      .buf_index = -1,
                      .op = PIECE_FSYNC,
                      .state = PIECE_WAITING};
    pthread_mutex_lock(&u->w.lock);
    ssize_t rc = u->w.dead ? u->w.dead : ring_run(u, &u->w, fd, &p, 1);
    pthread_mutex_unlock(&u->w.lock);
    return rc < 0 ? (int)rc : 0;
}

static void ring_exit(struct uring_io *u, struct uring_ring *r)
{
    if (!r->inited)
        return;
    if (u->registered)
        io_uring_unregister_buffers(&r->ring);
    io_uring_queue_exit(&r->ring);
    pthread_mutex_destroy(&r->lock);
    r->inited = 0;
}

static void uring_destroy(struct store_io *io)
{
    struct uring_io *u = U(io);
    if (!u)
        return;
    ring_exit(u, &u->w);
    ring_exit(u, &u->r);
    free(u->region);
    pthread_mutex_destroy(&u->flock);
    free(u);
}

/* ---- creation ---- */

/* A seam value as -errno, whichever sign the caller used. */
static int seam_errno(int v)
{
    return v > 0 ? -v : v;
}

/* 0 if the kernel has every opcode we use, else -ENOSYS and its name. */
static int check_opcodes(struct io_uring *ring, const char **missing)
{
    static const struct {
        int op;
        const char *name;
    } need[] = {
        {IORING_OP_WRITE, "IORING_OP_WRITE"},
        {IORING_OP_READ, "IORING_OP_READ"},
        {IORING_OP_WRITE_FIXED, "IORING_OP_WRITE_FIXED"},
        {IORING_OP_READ_FIXED, "IORING_OP_READ_FIXED"},
        {IORING_OP_FSYNC, "IORING_OP_FSYNC"},
    };
    struct io_uring_probe *pr = io_uring_get_probe_ring(ring);
    if (!pr) {
        /* IORING_REGISTER_PROBE and IORING_OP_WRITE both came in 5.6. */
        *missing = "IORING_REGISTER_PROBE";
        return -ENOSYS;
    }
    int rc = 0;
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        if (!io_uring_opcode_supported(pr, need[i].op)) {
            *missing = need[i].name;
            rc = -ENOSYS;
            break;
        }
    }
    io_uring_free_probe(pr);
    return rc;
}

/* Allocate and register n frames; on failure log, free them and go on
 * without fixed buffers (not an error: SPEC 3). */
static void register_frames(struct uring_io *u, unsigned n, int fail_register)
{
    struct iovec iov[URING_MAX_FRAMES];
    int rc;
    u->region = aligned_alloc(STORE_PAGE_SIZE, (size_t)n * STORE_FRAME_SIZE);
    if (!u->region) {
        rc = -ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = u->region + (size_t)i * STORE_FRAME_SIZE;
        iov[i].iov_len = STORE_FRAME_SIZE;
    }
    rc = fail_register ? seam_errno(fail_register)
                       : io_uring_register_buffers(&u->w.ring, iov, n);
    if (rc == 0) {
        rc = io_uring_register_buffers(&u->r.ring, iov, n);
        if (rc < 0)
            io_uring_unregister_buffers(&u->w.ring);
    }
out:
    if (rc < 0) {
        int mem = rc == -ENOMEM || rc == -EPERM;
        uring_log(u, 1,
                  "io_uring_register_buffers (%u frames, %u KiB): %s; "
                  "fixed buffers off%s",
                  n, n * (STORE_FRAME_SIZE / 1024), strerror(-rc),
                  mem ? " (locked-memory limit: raise RLIMIT_MEMLOCK, e.g. "
                        "ulimit -l or LimitMEMLOCK=)"
                      : "");
        free(u->region);
        u->region = NULL;
        return;
    }
    u->registered = 1;
    u->nframes = n;
    u->nfree = n;
    for (unsigned i = 0; i < n; i++)
        u->free_stack[i] = (uint8_t)(n - 1 - i); /* frame 0 first */
}

static int ring_init(struct uring_ring *r, unsigned entries)
{
    int rc = io_uring_queue_init(entries, &r->ring, 0);
    if (rc < 0)
        return rc;
    r->cap = r->ring.sq.ring_entries;
    pthread_mutex_init(&r->lock, NULL);
    r->inited = 1;
    return 0;
}

static void set_err(int *rc, char *err, size_t errlen, int code,
                    const char *msg)
{
    if (rc)
        *rc = code;
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

struct store_io *store_io_uring_new(const struct store_io_uring_opts *o,
                                    int *rc, char *err, size_t errlen)
{
    static const struct store_io_uring_opts defaults;
    char msg[256];
    if (!o)
        o = &defaults;
    struct uring_io *u = calloc(1, sizeof(*u));
    if (!u) {
        set_err(rc, err, errlen, -ENOMEM, "io_uring: out of memory");
        return NULL;
    }
    u->log_fn = o->log_fn;
    u->log_ctx = o->log_ctx;
    unsigned entries = o->entries ? o->entries : URING_DEFAULT_ENTRIES;
    int r = o->fail_ring ? seam_errno(o->fail_ring) : ring_init(&u->w, entries);
    if (r == 0) {
        r = ring_init(&u->r, URING_READ_ENTRIES);
        if (r < 0)
            ring_exit(u, &u->w);
    }
    if (r < 0) {
        snprintf(msg, sizeof(msg), "io_uring_queue_init: %s%s", strerror(-r),
                 r == -EPERM    ? " (check /proc/sys/kernel/io_uring_disabled "
                                  "and the seccomp profile)"
                 : r == -ENOSYS ? " (kernel without io_uring)"
                                : "");
        set_err(rc, err, errlen, r, msg);
        free(u);
        return NULL;
    }
    const char *missing = NULL;
    r = check_opcodes(&u->w.ring, &missing);
    if (r < 0) {
        snprintf(msg, sizeof(msg), "io_uring: kernel lacks %s", missing);
        set_err(rc, err, errlen, r, msg);
        ring_exit(u, &u->w);
        ring_exit(u, &u->r);
        free(u);
        return NULL;
    }
    pthread_mutex_init(&u->flock, NULL);

    unsigned nf = o->fixed_frames;
    if (nf > URING_MAX_FRAMES)
        nf = URING_MAX_FRAMES;
    if (nf > 0)
        register_frames(u, nf, o->fail_register);

    struct store_io *io = &u->io;
    store_io_pread_fill(io); /* plain syscalls, then the ring's own */
    io->name = "io_uring";
    io->ctx = u;
    io->pread = uring_pread;
    io->pwritev = uring_pwritev;
    io->pwritev_batch = uring_pwritev_batch;
    io->sync = uring_sync;
    io->destroy = uring_destroy;
    if (u->registered) {
        io->frame_alloc = uring_frame_alloc;
        io->frame_free = uring_frame_free;
        io->frames_in_use = uring_frames_in_use;
    }
    uring_log(u, 0, "io_uring: ring of %u entries, %u fixed frames", u->w.cap,
              u->nframes);
    if (rc)
        *rc = 0;
    return io;
}

unsigned store_io_uring_fixed(struct store_io *io)
{
    if (!io || io->destroy != uring_destroy)
        return 0;
    return U(io)->nframes;
}
