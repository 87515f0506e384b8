/*
 * faultio.c - fault injection and tracing wrapper around a store_io backend
 * (see faultio.h).
 *
 * Each call is counted, checked against the arming, then either failed
 * without touching the inner backend (EIO, ENOSPC), forwarded with a
 * shortened length (FIO_SHORT on pread/pwritev) or forwarded as is; the
 * outcome is appended to the trace when tracing is on (a pwritev event
 * also keeps its first FIO_EV_IOVS iovec bases).  The name each fd
 * was opened under is remembered (from openat until close) so that trace
 * events on an fd carry a file name.  For renameat the event's name is the
 * destination name; for fstatvfs the event's len is the figure reported.
 *
 * Thread rules: one mutex guards the counters, the arming, the fd names and
 * the trace.  It is never held across a call into the inner backend.
 */
#include "faultio.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIO_BLOCK 4096u
#define FIO_PASS (-1) /* fio_enter: no fault for this call */

enum fio_arming { ARM_NONE = 0, ARM_NTH, ARM_ALL };

struct faultio {
    struct store_io io; /* what faultio_io returns; io.ctx points here */
    struct store_io *inner;
    pthread_mutex_t mu;
    uint64_t calls[FIO_NOPS];
    enum fio_arming armed;
    unsigned mask;
    uint64_t nth, seen; /* ARM_NTH: fire when seen reaches nth */
    enum fio_mode mode;
    int fired;
    int64_t avail; /* < 0: fstatvfs passes through */
    int tracing;
    struct fio_event *ev;
    size_t nev, evcap;
    char (*names)[64]; /* names[fd]: the name fd was opened under */
    size_t nnames;
};

static struct faultio *fio_of(struct store_io *io)
{
    return io->ctx;
}

/* Count a call to op; return the fio_mode to inject or FIO_PASS. */
static int fio_enter(struct faultio *f, enum fio_op op)
{
    int inject = FIO_PASS;
    pthread_mutex_lock(&f->mu);
    f->calls[op]++;
    if (f->armed != ARM_NONE && (f->mask & FIO_BIT(op))) {
        if (f->armed == ARM_ALL || ++f->seen == f->nth) {
            inject = (int)f->mode;
            f->fired = 1;
            if (f->armed == ARM_NTH)
                f->armed = ARM_NONE;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return inject;
}

/* The error an injected fault returns (FIO_SHORT outside pread/pwritev
 * counts as EIO). */
static int fio_err(int inject)
{
    return inject == FIO_ENOSPC ? -ENOSPC : -EIO;
}

/* Copy the name of fd into out (called with the mutex held). */
static void fio_name_locked(struct faultio *f, int fd, char out[64])
{
    if (fd >= 0 && (size_t)fd < f->nnames)
        memcpy(out, f->names[fd], 64);
    else
        out[0] = '\0';
}

/* Remember name for fd (NULL: forget fd); out gets the previous name. */
static void fio_set_name(struct faultio *f, int fd, const char *name,
                         char out[64])
{
    if (fd < 0)
        return;
    pthread_mutex_lock(&f->mu);
    if (out)
        fio_name_locked(f, fd, out);
    if ((size_t)fd >= f->nnames && name) {
        size_t n = f->nnames ? f->nnames : 64;
        while (n <= (size_t)fd)
            n *= 2;
        char(*p)[64] = realloc(f->names, n * sizeof(*p));
        if (!p)
            goto out;
        memset(p + f->nnames, 0, (n - f->nnames) * sizeof(*p));
        f->names = p;
        f->nnames = n;
    }
    if ((size_t)fd < f->nnames)
        snprintf(f->names[fd], sizeof(f->names[fd]), "%s", name ? name : "");
out:
    pthread_mutex_unlock(&f->mu);
}

/* Append an event to the trace if tracing; name NULL: the name of fd;
 * iov/iovcnt: a pwritev's buffers (NULL/0 otherwise). */
static void fio_record_iov(struct faultio *f, enum fio_op op, int fd,
                           const char *name, uint64_t off, uint64_t len,
                           int kind, long rc, int injected,
                           const struct iovec *iov, int iovcnt)
{
    pthread_mutex_lock(&f->mu);
    if (!f->tracing)
        goto out;
    if (f->nev == f->evcap) {
        size_t n = f->evcap ? f->evcap * 2 : 256;
        struct fio_event *p = realloc(f->ev, n * sizeof(*p));
        if (!p)
            goto out;
        f->ev = p;
        f->evcap = n;
    }
    struct fio_event *e = &f->ev[f->nev++];
    memset(e, 0, sizeof(*e));
    e->op = op;
    e->fd = fd;
    if (name)
        snprintf(e->name, sizeof(e->name), "%s", name);
    else
        fio_name_locked(f, fd, e->name);
    e->off = off;
    e->len = len;
    e->kind = kind;
    e->rc = rc;
    e->injected = injected;
    e->iovcnt = iovcnt;
    for (int i = 0; i < iovcnt && i < FIO_EV_IOVS; i++)
        e->iov[i] = iov[i].iov_base;
out:
    pthread_mutex_unlock(&f->mu);
}

static void fio_record(struct faultio *f, enum fio_op op, int fd,
                       const char *name, uint64_t off, uint64_t len, int kind,
                       long rc, int injected)
{
    fio_record_iov(f, op, fd, name, off, len, kind, rc, injected, NULL, 0);
}

static int fio_openat(struct store_io *io, int dirfd, const char *name,
                      int flags, mode_t mode)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_OPENAT);
    int rc;
    if (inject != FIO_PASS)
        rc = fio_err(inject);
    else
        rc = f->inner->openat(f->inner, dirfd, name, flags, mode);
    if (rc >= 0)
        fio_set_name(f, rc, name, NULL);
    fio_record(f, FIO_OPENAT, rc >= 0 ? rc : dirfd, name, 0, 0, 0, rc,
               inject != FIO_PASS);
    return rc;
}

static int fio_close(struct store_io *io, int fd)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_CLOSE);
    char name[64] = "";
    int rc;
    if (inject != FIO_PASS) {
        rc = fio_err(inject);
        fio_record(f, FIO_CLOSE, fd, NULL, 0, 0, 0, rc, 1);
        return rc;
    }
    /* Forget the name before the descriptor can be reused. */
    fio_set_name(f, fd, NULL, name);
    rc = f->inner->close(f->inner, fd);
    fio_record(f, FIO_CLOSE, fd, name, 0, 0, 0, rc, 0);
    return rc;
}

static size_t fio_short_len(size_t len)
{
    return (len / 2) & ~(size_t)(FIO_BLOCK - 1);
}

static ssize_t fio_pread(struct store_io *io, int fd, void *buf, size_t len,
                         uint64_t off)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_PREAD);
    ssize_t rc;
    if (inject == FIO_SHORT) {
        size_t n = fio_short_len(len);
        rc = n ? f->inner->pread(f->inner, fd, buf, n, off) : 0;
    } else if (inject != FIO_PASS) {
        rc = fio_err(inject);
    } else {
        rc = f->inner->pread(f->inner, fd, buf, len, off);
    }
    fio_record(f, FIO_PREAD, fd, NULL, off, len, 0, rc, inject != FIO_PASS);
    return rc;
}

/* pwritev of only the first n bytes of iov. */
static ssize_t fio_pwritev_short(struct faultio *f, int fd,
                                 const struct iovec *iov, int iovcnt,
                                 uint64_t off, size_t n)
{
    struct iovec *cut;
    ssize_t rc;
    int cnt = 0;
    if (n == 0)
        return 0;
    cut = malloc((size_t)iovcnt * sizeof(*cut));
    if (!cut)
        return -ENOMEM;
    for (int i = 0; i < iovcnt && n > 0; i++) {
        cut[cnt] = iov[i];
        if (cut[cnt].iov_len > n)
            cut[cnt].iov_len = n;
        n -= cut[cnt].iov_len;
        cnt++;
    }
    rc = f->inner->pwritev(f->inner, fd, cut, cnt, off);
    free(cut);
    return rc;
}

static ssize_t fio_pwritev(struct store_io *io, int fd, const struct iovec *iov,
                           int iovcnt, uint64_t off)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_PWRITEV);
    size_t len = 0;
    ssize_t rc;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    if (inject == FIO_SHORT)
        rc = fio_pwritev_short(f, fd, iov, iovcnt, off, fio_short_len(len));
    else if (inject != FIO_PASS)
        rc = fio_err(inject);
    else
        rc = f->inner->pwritev(f->inner, fd, iov, iovcnt, off);
    fio_record_iov(f, FIO_PWRITEV, fd, NULL, off, len, 0, rc,
                   inject != FIO_PASS, iov, iovcnt);
    return rc;
}

static int fio_sync(struct store_io *io, int fd, enum store_io_sync kind)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_SYNC);
    int rc = inject != FIO_PASS ? fio_err(inject)
                                : f->inner->sync(f->inner, fd, kind);
    fio_record(f, FIO_SYNC, fd, NULL, 0, 0, (int)kind, rc, inject != FIO_PASS);
    return rc;
}

static int fio_fallocate(struct store_io *io, int fd, uint64_t off,
                         uint64_t len)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_FALLOCATE);
    int rc = inject != FIO_PASS ? fio_err(inject)
                                : f->inner->fallocate(f->inner, fd, off, len);
    fio_record(f, FIO_FALLOCATE, fd, NULL, off, len, 0, rc, inject != FIO_PASS);
    return rc;
}

static int fio_ftruncate(struct store_io *io, int fd, uint64_t len)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_FTRUNCATE);
    int rc = inject != FIO_PASS ? fio_err(inject)
                                : f->inner->ftruncate(f->inner, fd, len);
    fio_record(f, FIO_FTRUNCATE, fd, NULL, 0, len, 0, rc, inject != FIO_PASS);
    return rc;
}

static int fio_renameat(struct store_io *io, int dirfd, const char *from,
                        const char *to)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_RENAMEAT);
    int rc = inject != FIO_PASS ? fio_err(inject)
                                : f->inner->renameat(f->inner, dirfd, from, to);
    fio_record(f, FIO_RENAMEAT, dirfd, to, 0, 0, 0, rc, inject != FIO_PASS);
    return rc;
}

static int fio_unlinkat(struct store_io *io, int dirfd, const char *name)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_UNLINKAT);
    int rc = inject != FIO_PASS ? fio_err(inject)
                                : f->inner->unlinkat(f->inner, dirfd, name);
    fio_record(f, FIO_UNLINKAT, dirfd, name, 0, 0, 0, rc, inject != FIO_PASS);
    return rc;
}

static int fio_fstatvfs(struct store_io *io, int fd, uint64_t *avail)
{
    struct faultio *f = fio_of(io);
    int inject = fio_enter(f, FIO_FSTATVFS);
    int rc;
    if (inject != FIO_PASS) {
        rc = fio_err(inject);
    } else {
        rc = f->inner->fstatvfs(f->inner, fd, avail);
        pthread_mutex_lock(&f->mu);
        if (rc == 0 && f->avail >= 0)
            *avail = (uint64_t)f->avail;
        pthread_mutex_unlock(&f->mu);
    }
    fio_record(f, FIO_FSTATVFS, fd, NULL, 0, rc == 0 ? *avail : 0, 0, rc,
               inject != FIO_PASS);
    return rc;
}

static void fio_destroy(struct store_io *io)
{
    faultio_free(fio_of(io));
}

static void *fio_frame_alloc(struct store_io *io)
{
    struct store_io *in = fio_of(io)->inner;
    return in->frame_alloc(in);
}

static int fio_frame_free(struct store_io *io, void *frame)
{
    struct store_io *in = fio_of(io)->inner;
    return in->frame_free(in, frame);
}

static unsigned fio_frames_in_use(struct store_io *io)
{
    struct store_io *in = fio_of(io)->inner;
    return in->frames_in_use(in);
}

struct faultio *faultio_new(struct store_io *inner)
{
    struct faultio *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f);
        return NULL;
    }
    f->inner = inner;
    f->avail = -1;
    f->io.name = "faultio";
    f->io.ctx = f;
    f->io.openat = fio_openat;
    f->io.close = fio_close;
    f->io.pread = fio_pread;
    f->io.pwritev = fio_pwritev;
    f->io.sync = fio_sync;
    f->io.fallocate = fio_fallocate;
    f->io.ftruncate = fio_ftruncate;
    f->io.renameat = fio_renameat;
    f->io.unlinkat = fio_unlinkat;
    f->io.fstatvfs = fio_fstatvfs;
    f->io.destroy = fio_destroy;
    if (inner && inner->frame_alloc)
        f->io.frame_alloc = fio_frame_alloc;
    if (inner && inner->frame_free)
        f->io.frame_free = fio_frame_free;
    if (inner && inner->frames_in_use)
        f->io.frames_in_use = fio_frames_in_use;
    return f;
}

struct store_io *faultio_io(struct faultio *f)
{
    return &f->io;
}

void faultio_free(struct faultio *f)
{
    if (!f)
        return;
    if (f->inner)
        f->inner->destroy(f->inner);
    pthread_mutex_destroy(&f->mu);
    free(f->ev);
    free(f->names);
    free(f);
}

void faultio_arm(struct faultio *f, unsigned mask, uint64_t nth,
                 enum fio_mode mode)
{
    pthread_mutex_lock(&f->mu);
    f->armed = ARM_NTH;
    f->mask = mask;
    f->nth = nth;
    f->seen = 0;
    f->mode = mode;
    f->fired = 0;
    pthread_mutex_unlock(&f->mu);
}

void faultio_arm_all(struct faultio *f, unsigned mask, enum fio_mode mode)
{
    pthread_mutex_lock(&f->mu);
    f->armed = ARM_ALL;
    f->mask = mask;
    f->mode = mode;
    f->fired = 0;
    pthread_mutex_unlock(&f->mu);
}

void faultio_disarm(struct faultio *f)
{
    pthread_mutex_lock(&f->mu);
    f->armed = ARM_NONE;
    pthread_mutex_unlock(&f->mu);
}

int faultio_fired(struct faultio *f)
{
    pthread_mutex_lock(&f->mu);
    int fired = f->fired;
    pthread_mutex_unlock(&f->mu);
    return fired;
}

uint64_t faultio_calls(struct faultio *f, unsigned mask)
{
    uint64_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (int op = 0; op < FIO_NOPS; op++)
        if (mask & FIO_BIT(op))
            n += f->calls[op];
    pthread_mutex_unlock(&f->mu);
    return n;
}

void faultio_reset_counts(struct faultio *f)
{
    pthread_mutex_lock(&f->mu);
    memset(f->calls, 0, sizeof(f->calls));
    pthread_mutex_unlock(&f->mu);
}

void faultio_set_avail(struct faultio *f, int64_t avail)
{
    pthread_mutex_lock(&f->mu);
    f->avail = avail;
    pthread_mutex_unlock(&f->mu);
}

void faultio_trace(struct faultio *f, int on)
{
    pthread_mutex_lock(&f->mu);
    f->tracing = on;
    pthread_mutex_unlock(&f->mu);
}

void faultio_trace_clear(struct faultio *f)
{
    pthread_mutex_lock(&f->mu);
    f->nev = 0;
    pthread_mutex_unlock(&f->mu);
}

size_t faultio_trace_len(struct faultio *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->nev;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t faultio_trace_get(struct faultio *f, struct fio_event **ev)
{
    size_t n;
    pthread_mutex_lock(&f->mu);
    n = f->nev;
    *ev = NULL;
    if (n) {
        *ev = malloc(n * sizeof(**ev));
        if (*ev)
            memcpy(*ev, f->ev, n * sizeof(**ev));
        else
            n = 0;
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}
