/*
 * faultio.h - a store_io wrapper for fault injection and tracing.
 *
 * Wraps another backend (normally the pread backend).  Counts calls per
 * operation; when armed, fails the Nth call (1-based, counted from the
 * arming over the operations in the mask) with EIO, ENOSPC or a short
 * transfer.  It can also report a chosen free-space figure from fstatvfs
 * and record a trace of every call with its outcome, for audits of the
 * order of durability steps.  Thread-safe (one mutex).
 *
 * The optional frame hooks (frame_alloc, frame_free, frames_in_use) are
 * passed through to the inner backend when it has them, so a store on a
 * wrapped io_uring backend still writes from registered frames.
 */
#ifndef BLOBD_FAULTIO_H
#define BLOBD_FAULTIO_H

#include <stddef.h>
#include <stdint.h>

#include "store_io.h"

enum fio_op {
    FIO_OPENAT = 0,
    FIO_CLOSE,
    FIO_PREAD,
    FIO_PWRITEV,
    FIO_SYNC,
    FIO_FALLOCATE,
    FIO_FTRUNCATE,
    FIO_RENAMEAT,
    FIO_UNLINKAT,
    FIO_FSTATVFS,
    FIO_NOPS
};
#define FIO_BIT(op) (1u << (op))
/* The calls that touch the disk (all but close and fstatvfs). */
#define FIO_MASK_IO                                                            \
    (FIO_BIT(FIO_OPENAT) | FIO_BIT(FIO_PREAD) | FIO_BIT(FIO_PWRITEV) |         \
     FIO_BIT(FIO_SYNC) | FIO_BIT(FIO_FALLOCATE) | FIO_BIT(FIO_FTRUNCATE) |     \
     FIO_BIT(FIO_RENAMEAT) | FIO_BIT(FIO_UNLINKAT))
#define FIO_MASK_ALL ((1u << FIO_NOPS) - 1)

enum fio_mode {
    FIO_EIO = 0, /* the call fails with -EIO and does nothing */
    FIO_ENOSPC,  /* the call fails with -ENOSPC and does nothing */
    FIO_SHORT    /* pread/pwritev move the first half (rounded down to
                    4 KiB, at least 0) and return that count; other calls
                    fail with -EIO */
};

/* iovec bases a pwritev event keeps (the first ones of the call). */
#define FIO_EV_IOVS 32

struct fio_event {
    enum fio_op op;
    int fd;            /* fd argument (dirfd for *at), or the new fd */
    char name[64];     /* file name: the *at name, or the one fd was opened
                          under ("" if unknown) */
    uint64_t off, len; /* pread/pwritev/fallocate/ftruncate */
    int kind;          /* sync kind */
    long rc;           /* what the call returned */
    int injected;      /* 1 if this call was the injected fault */
    int iovcnt;        /* pwritev: the number of iovecs */
    const void *iov[FIO_EV_IOVS]; /* pwritev: their bases (the first
                                     FIO_EV_IOVS of them) */
};

struct faultio;

/* Wrap inner; the wrapper owns inner and destroys it with itself. */
struct faultio *faultio_new(struct store_io *inner);
struct store_io *faultio_io(struct faultio *f);
/* Destroys f and its inner backend (same as faultio_io(f)->destroy). */
void faultio_free(struct faultio *f);

/* Fail the nth call (1-based) among ops in mask, counted from now.  The
 * fault fires once; afterwards calls pass through. */
void faultio_arm(struct faultio *f, unsigned mask, uint64_t nth,
                 enum fio_mode mode);
/* Fail every call among ops in mask from now on (until disarmed). */
void faultio_arm_all(struct faultio *f, unsigned mask, enum fio_mode mode);
void faultio_disarm(struct faultio *f);
/* 1 once the armed fault has fired. */
int faultio_fired(struct faultio *f);

/* Calls counted among ops in mask since creation or the last reset. */
uint64_t faultio_calls(struct faultio *f, unsigned mask);
void faultio_reset_counts(struct faultio *f);

/* Make fstatvfs report avail bytes (avail < 0: pass through). */
void faultio_set_avail(struct faultio *f, int64_t avail);

/* Tracing: record every call while enabled. */
void faultio_trace(struct faultio *f, int on);
void faultio_trace_clear(struct faultio *f);
/* A copy of the events recorded so far; caller frees *ev. */
size_t faultio_trace_get(struct faultio *f, struct fio_event **ev);
/* The number of events recorded so far (without copying them). */
size_t faultio_trace_len(struct faultio *f);

#endif
