/*
 * io_pread.c - the pread/pwritev backend: each store_io call is the
 * syscall of the same name, retried on EINTR, errors returned as -errno.
 * Stateless, so thread-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store_int.h"
#include "store_io.h"

static int io_pread_openat(struct store_io *io, int dirfd, const char *name,
                           int flags, mode_t mode)
{
    (void)io;
    int fd;
    do
        fd = openat(dirfd, name, flags, mode);
    while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int io_pread_close(struct store_io *io, int fd)
{
    (void)io;
    /* Linux closes the descriptor even when close reports EINTR. */
    if (close(fd) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

static ssize_t io_pread_pread(struct store_io *io, int fd, void *buf,
                              size_t len, uint64_t off)
{
    (void)io;
    ssize_t n;
    do
        n = pread(fd, buf, len, (off_t)off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t io_pread_pwritev(struct store_io *io, int fd,
                                const struct iovec *iov, int iovcnt,
                                uint64_t off)
{
    (void)io;
    ssize_t n;
    do
        n = pwritev(fd, iov, iovcnt, (off_t)off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int io_pread_sync(struct store_io *io, int fd, enum store_io_sync kind)
{
    (void)io;
    int rc;
    /* Never retried after a failure other than EINTR: a failed sync may
     * have dropped the dirty pages it could not write (G3 in store.h). */
    do
        rc = kind == STORE_IO_FSYNC ? fsync(fd) : fdatasync(fd);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int io_pread_fallocate(struct store_io *io, int fd, uint64_t off,
                              uint64_t len)
{
    (void)io;
    int rc;
    do
        rc = fallocate(fd, 0, (off_t)off, (off_t)len);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int io_pread_ftruncate(struct store_io *io, int fd, uint64_t len)
{
    (void)io;
    int rc;
    do
        rc = ftruncate(fd, (off_t)len);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int io_pread_renameat(struct store_io *io, int dirfd, const char *from,
                             const char *to)
{
    (void)io;
    return renameat(dirfd, from, dirfd, to) < 0 ? -errno : 0;
}

static int io_pread_unlinkat(struct store_io *io, int dirfd, const char *name)
{
    (void)io;
    return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
}

static int io_pread_fstatvfs(struct store_io *io, int fd, uint64_t *avail)
{
    (void)io;
    struct statvfs sv;
    if (fstatvfs(fd, &sv) < 0)
        return -errno;
    *avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    return 0;
}

static void io_pread_destroy(struct store_io *io)
{
    free(io);
}

void store_io_pread_fill(struct store_io *io)
{
    io->name = "pread";
    io->openat = io_pread_openat;
    io->close = io_pread_close;
    io->pread = io_pread_pread;
    io->pwritev = io_pread_pwritev;
    io->sync = io_pread_sync;
    io->fallocate = io_pread_fallocate;
    io->ftruncate = io_pread_ftruncate;
    io->renameat = io_pread_renameat;
    io->unlinkat = io_pread_unlinkat;
    io->fstatvfs = io_pread_fstatvfs;
    io->destroy = io_pread_destroy;
}

struct store_io *store_io_pread_new(void)
{
    struct store_io *io = calloc(1, sizeof(*io));
    if (io)
        store_io_pread_fill(io);
    return io;
}
