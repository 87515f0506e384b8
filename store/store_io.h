/*
 * store_io.h - the I/O backend interface: every file operation the store
 * makes goes through one of these tables (HOUSE_STYLE 10).
 *
 * The pread/pwritev backend implements it with plain syscalls.  Tests wrap
 * it to fail the Nth call (EIO, ENOSPC, short write), to record a trace of
 * operations, or to drop writes that were not synced (crash simulation).
 *
 * Conventions: every function returns >= 0 on success (bytes for pread and
 * pwritev, a descriptor for openat, 0 otherwise) and -errno on failure.  A
 * short pread/pwritev is returned as is; the store decides what it means.
 * Calls may come from several threads at once; a backend must be
 * thread-safe.
 */
#ifndef BLOBD_STORE_IO_H
#define BLOBD_STORE_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum store_io_sync { STORE_IO_FDATASYNC = 0, STORE_IO_FSYNC = 1 };

/* One pwritev of a batch (pwritev_batch below). */
struct store_io_write {
    const struct iovec *iov;
    int iovcnt;
    uint64_t off;
    ssize_t res; /* out: what pwritev(iov, iovcnt, off) would return */
};

struct store_io {
    const char *name; /* "pread", "io_uring", or a wrapper's name */
    void *ctx;
    int (*openat)(struct store_io *io, int dirfd, const char *name, int flags,
                  mode_t mode);
    int (*close)(struct store_io *io, int fd);
    ssize_t (*pread)(struct store_io *io, int fd, void *buf, size_t len,
                     uint64_t off);
    ssize_t (*pwritev)(struct store_io *io, int fd, const struct iovec *iov,
                       int iovcnt, uint64_t off);
    int (*sync)(struct store_io *io, int fd, enum store_io_sync kind);
    /* Allocate [off, off + len) (mode 0: the file size grows). */
    int (*fallocate)(struct store_io *io, int fd, uint64_t off, uint64_t len);
    int (*ftruncate)(struct store_io *io, int fd, uint64_t len);
    int (*renameat)(struct store_io *io, int dirfd, const char *from,
                    const char *to);
    int (*unlinkat)(struct store_io *io, int dirfd, const char *name);
    /* Bytes available to an unprivileged writer on fd's filesystem. */
    int (*fstatvfs)(struct store_io *io, int fd, uint64_t *avail);
    void (*destroy)(struct store_io *io);

    /* Optional (NULL: the store makes the calls one by one): the n
     * pwritev calls of w at once, all in flight together, each with its
     * own result in w[i].res.  Returns when every one has finished. */
    void (*pwritev_batch)(struct store_io *io, int fd, struct store_io_write *w,
                          int n);

    /* Optional (NULL when the backend has none): frames of
     * STORE_FRAME_SIZE registered with the kernel.  frame_alloc returns
     * NULL when all are in use; frame_free returns 1 if the frame was one
     * of them (and takes it back), 0 otherwise. */
    void *(*frame_alloc)(struct store_io *io);
    int (*frame_free)(struct store_io *io, void *frame);
    unsigned (*frames_in_use)(struct store_io *io);
};

/* A new pread/pwritev backend; free it with io->destroy(io). */
struct store_io *store_io_pread_new(void);

struct store_io_uring_opts {
    unsigned entries;      /* submission queue size; 0 = 256 */
    unsigned fixed_frames; /* frames to register, at most 32; 0 = none */
    int fail_ring;         /* test seam: creating the ring fails, -errno */
    int fail_register;     /* test seam: registering buffers fails, -errno */
    void (*log_fn)(void *ctx, int warn, const char *msg);
    void *log_ctx;
};

/*
 * A new io_uring backend.  Returns NULL with *rc (-errno) and a message
 * when no ring can be created (EPERM, ENOSYS, io_uring_disabled,
 * seccomp): the caller falls back to the pread backend.  A failed buffer
 * registration (locked-memory limit) is not an error: the backend runs
 * without fixed buffers and store_io_uring_fixed() reports 0.
 */
struct store_io *store_io_uring_new(const struct store_io_uring_opts *o,
                                    int *rc, char *err, size_t errlen);
/* Registered frames of an io_uring backend (0: none, or not io_uring). */
unsigned store_io_uring_fixed(struct store_io *io);

#endif
