/*
 * test_support_io.c - self-tests of the test I/O wrappers: faultio (fault
 * arming, short transfers, ENOSPC, free-space override, trace) and crashio
 * (undo of unsynced data and directory changes; the seeded crash that
 * keeps, tears or undoes each unsynced write), both on the pread backend
 * in a temp dir.  Single-threaded.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crashio.h"
#include "faultio.h"

#define BLK 4096

/* Per-test state: a temp dir, a wrapped backend and a dirfd through it. */
struct fx {
    char *dir;
    struct faultio *f;
    struct crashio *c;
    struct store_io *io;
    int dfd;
};

static struct fx *fx_new(int crash)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->dir = tu_mkdtemp(crash ? "crashio" : "faultio");
    if (crash) {
        x->c = crashio_new(store_io_pread_new());
        assert_non_null(x->c);
        x->io = crashio_io(x->c);
    } else {
        x->f = faultio_new(store_io_pread_new());
        assert_non_null(x->f);
        x->io = faultio_io(x->f);
    }
    x->dfd = x->io->openat(x->io, AT_FDCWD, x->dir,
                           O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    assert_true(x->dfd >= 0);
    return x;
}

static void fx_free(struct fx *x)
{
    x->io->close(x->io, x->dfd);
    x->io->destroy(x->io);
    tu_rmtree(x->dir);
    free(x);
}

/* Write a file directly (not through a wrapper) and fsync it. */
static void put_file(struct fx *x, const char *name, const void *buf,
                     size_t len, mode_t mode)
{
    int fd =
        openat(x->dfd, name, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

/* Size of name, or -1 if it does not exist. */
static long long file_size(struct fx *x, const char *name)
{
    struct stat st;
    if (fstatat(x->dfd, name, &st, 0) < 0)
        return -1;
    return (long long)st.st_size;
}

/* 1 if name holds exactly buf[0..len). */
static int file_is(struct fx *x, const char *name, const void *buf, size_t len)
{
    unsigned char *got = malloc(len + 1);
    int fd = openat(x->dfd, name, O_RDONLY | O_CLOEXEC), ok = 0;
    assert_non_null(got);
    if (fd < 0)
        goto out;
    ok = read(fd, got, len + 1) == (ssize_t)len && memcmp(got, buf, len) == 0;
    close(fd);
out:
    free(got);
    return ok;
}

static ssize_t wr(struct fx *x, int fd, const void *buf, size_t len,
                  uint64_t off)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return x->io->pwritev(x->io, fd, &iov, 1, off);
}

static int open_rw(struct fx *x, const char *name, int create)
{
    int fd = x->io->openat(x->io, x->dfd, name,
                           O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    assert_true(fd >= 0);
    return fd;
}

/* ---- faultio ---- */

static void test_fio_arm_nth(void **state)
{
    (void)state;
    struct fx *x = fx_new(0);
    unsigned char buf[BLK];
    int fd = open_rw(x, "a", 1);
    memset(buf, 1, sizeof(buf));
    assert_int_equal(faultio_calls(x->f, FIO_BIT(FIO_OPENAT)), 2);

    faultio_arm(x->f, FIO_BIT(FIO_PWRITEV) | FIO_BIT(FIO_SYNC), 3, FIO_EIO);
    assert_int_equal(wr(x, fd, buf, BLK, 0), BLK);         /* 1 */
    assert_int_equal(x->io->pread(x->io, fd, buf, BLK, 0), /* not counted */
                     BLK);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FDATASYNC), 0); /* 2 */
    assert_false(faultio_fired(x->f));
    assert_int_equal(wr(x, fd, buf, BLK, BLK), -EIO); /* 3: fails */
    assert_true(faultio_fired(x->f));
    assert_int_equal(file_size(x, "a"), BLK);        /* and did nothing */
    assert_int_equal(wr(x, fd, buf, BLK, BLK), BLK); /* once only */
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), 0);

    assert_int_equal(faultio_calls(x->f, FIO_BIT(FIO_PWRITEV)), 3);
    assert_int_equal(faultio_calls(x->f, FIO_MASK_IO), 2 + 3 + 1 + 2);
    faultio_reset_counts(x->f);
    assert_int_equal(faultio_calls(x->f, FIO_MASK_ALL), 0);

    /* Re-arming counts from the arming; other ops do not count. */
    faultio_arm(x->f, FIO_BIT(FIO_FTRUNCATE), 2, FIO_ENOSPC);
    assert_false(faultio_fired(x->f));
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), 0);
    assert_int_equal(x->io->ftruncate(x->io, fd, BLK), 0);
    assert_int_equal(x->io->ftruncate(x->io, fd, 0), -ENOSPC);
    assert_int_equal(file_size(x, "a"), BLK);
    assert_int_equal(x->io->ftruncate(x->io, fd, 0), 0);
    assert_int_equal(x->io->close(x->io, fd), 0);
    fx_free(x);
}

static void test_fio_arm_all(void **state)
{
    (void)state;
    struct fx *x = fx_new(0);
    unsigned char buf[BLK] = {0};
    int fd = open_rw(x, "a", 1);
    faultio_arm_all(x->f, FIO_BIT(FIO_SYNC) | FIO_BIT(FIO_FALLOCATE),
                    FIO_ENOSPC);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), -ENOSPC);
        assert_int_equal(x->io->fallocate(x->io, fd, 0, BLK), -ENOSPC);
    }
    assert_true(faultio_fired(x->f));
    assert_int_equal(wr(x, fd, buf, BLK, 0), BLK);
    faultio_disarm(x->f);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), 0);

    /* ENOSPC on a write changes nothing. */
    faultio_arm(x->f, FIO_BIT(FIO_PWRITEV), 1, FIO_ENOSPC);
    assert_int_equal(wr(x, fd, buf, BLK, BLK), -ENOSPC);
    assert_int_equal(file_size(x, "a"), BLK);
    x->io->close(x->io, fd);
    fx_free(x);
}

static void test_fio_short(void **state)
{
    (void)state;
    struct fx *x = fx_new(0);
    unsigned char *buf = malloc(5 * BLK), *rd = malloc(5 * BLK);
    struct iovec iov[3];
    int fd = open_rw(x, "a", 1);
    assert_non_null(buf);
    assert_non_null(rd);
    tu_pattern(buf, 5 * BLK, 7);
    /* 3 iovecs, 5 blocks + 100 bytes: half rounds down to 2 blocks. */
    iov[0] = (struct iovec){.iov_base = buf, .iov_len = 1000};
    iov[1] = (struct iovec){.iov_base = buf + 1000, .iov_len = 3 * BLK};
    iov[2] = (struct iovec){.iov_base = buf + 1000 + 3 * BLK,
                            .iov_len = 2 * BLK + 100 - 1000};
    faultio_arm(x->f, FIO_BIT(FIO_PWRITEV), 1, FIO_SHORT);
    assert_int_equal(x->io->pwritev(x->io, fd, iov, 3, 0), 2 * BLK);
    assert_true(faultio_fired(x->f));
    assert_true(file_is(x, "a", buf, 2 * BLK));
    /* Less than 2 blocks: 0 bytes. */
    faultio_arm(x->f, FIO_BIT(FIO_PWRITEV), 1, FIO_SHORT);
    assert_int_equal(wr(x, fd, buf, 2 * BLK - 1, 0), 0);
    assert_int_equal(wr(x, fd, buf, 5 * BLK, 0), 5 * BLK);
    /* Short read: 3 blocks -> 1 block. */
    faultio_arm(x->f, FIO_BIT(FIO_PREAD), 1, FIO_SHORT);
    memset(rd, 0, 5 * BLK);
    assert_int_equal(x->io->pread(x->io, fd, rd, 3 * BLK, BLK), BLK);
    assert_memory_equal(rd, buf + BLK, BLK);
    assert_int_equal(rd[BLK], 0);
    /* Other calls fail with EIO. */
    faultio_arm(x->f, FIO_BIT(FIO_SYNC), 1, FIO_SHORT);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), -EIO);
    x->io->close(x->io, fd);
    free(buf);
    free(rd);
    fx_free(x);
}

static void test_fio_avail(void **state)
{
    (void)state;
    struct fx *x = fx_new(0);
    uint64_t avail = 0;
    faultio_set_avail(x->f, 12345);
    assert_int_equal(x->io->fstatvfs(x->io, x->dfd, &avail), 0);
    assert_int_equal(avail, 12345);
    faultio_set_avail(x->f, 0);
    assert_int_equal(x->io->fstatvfs(x->io, x->dfd, &avail), 0);
    assert_int_equal(avail, 0);
    faultio_set_avail(x->f, -1);
    assert_int_equal(x->io->fstatvfs(x->io, x->dfd, &avail), 0);
    assert_true(avail > 0);
    faultio_arm(x->f, FIO_BIT(FIO_FSTATVFS), 1, FIO_EIO);
    assert_int_equal(x->io->fstatvfs(x->io, x->dfd, &avail), -EIO);
    fx_free(x);
}

static void test_fio_trace(void **state)
{
    (void)state;
    struct fx *x = fx_new(0);
    unsigned char buf[BLK] = {0};
    struct fio_event *ev;
    size_t n;
    int fd, fd2;
    assert_int_equal(faultio_trace_get(x->f, &ev), 0); /* off by default */
    faultio_trace(x->f, 1);
    fd = open_rw(x, "t", 1);
    assert_int_equal(wr(x, fd, buf, BLK, 2 * BLK), BLK);
    faultio_arm(x->f, FIO_BIT(FIO_SYNC), 1, FIO_EIO);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FDATASYNC), -EIO);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), 0);
    assert_int_equal(x->io->close(x->io, fd), 0);
    assert_int_equal(x->io->renameat(x->io, x->dfd, "t", "u"), 0);
    fd2 = open_rw(x, "u", 0);
    assert_int_equal(x->io->ftruncate(x->io, fd2, 10), 0);
    assert_int_equal(x->io->close(x->io, fd2), 0);
    assert_int_equal(x->io->unlinkat(x->io, x->dfd, "u"), 0);
    assert_int_equal(x->io->sync(x->io, x->dfd, STORE_IO_FSYNC), 0);

    n = faultio_trace_get(x->f, &ev);
    assert_int_equal(n, 11);
    const enum fio_op ops[] = {FIO_OPENAT,   FIO_PWRITEV,   FIO_SYNC,
                               FIO_SYNC,     FIO_CLOSE,     FIO_RENAMEAT,
                               FIO_OPENAT,   FIO_FTRUNCATE, FIO_CLOSE,
                               FIO_UNLINKAT, FIO_SYNC};
    const char *names[] = {"t", "t", "t", "t", "t", "u",
                           "u", "u", "u", "u", NULL};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ev[i].op, ops[i]);
        if (names[i])
            assert_string_equal(ev[i].name, names[i]);
        assert_int_equal(ev[i].injected, i == 2);
    }
    /* The dirfd's events carry the name it was opened under. */
    assert_int_equal(strncmp(ev[10].name, x->dir, sizeof(ev[10].name) - 1), 0);
    assert_int_equal(ev[0].fd, fd);
    assert_int_equal(ev[0].rc, fd);
    assert_int_equal(ev[1].fd, fd);
    assert_int_equal(ev[1].off, 2 * BLK);
    assert_int_equal(ev[1].len, BLK);
    assert_int_equal(ev[1].rc, BLK);
    assert_int_equal(ev[2].rc, -EIO);
    assert_int_equal(ev[2].kind, STORE_IO_FDATASYNC);
    assert_int_equal(ev[3].kind, STORE_IO_FSYNC);
    assert_int_equal(ev[5].fd, x->dfd);
    assert_int_equal(ev[7].len, 10);
    assert_int_equal(ev[10].fd, x->dfd);
    free(ev);

    /* Clearing, disabling; a failed open is traced with the dirfd. */
    faultio_trace_clear(x->f);
    assert_int_equal(x->io->openat(x->io, x->dfd, "missing", O_RDONLY, 0),
                     -ENOENT);
    faultio_trace(x->f, 0);
    assert_int_equal(x->io->sync(x->io, x->dfd, STORE_IO_FSYNC), 0);
    n = faultio_trace_get(x->f, &ev);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].fd, x->dfd);
    assert_string_equal(ev[0].name, "missing");
    assert_int_equal(ev[0].rc, -ENOENT);
    free(ev);
    fx_free(x);
}

/* ---- crashio ---- */

static void test_cio_data(void **state)
{
    (void)state;
    struct fx *x = fx_new(1);
    unsigned char a[2 * BLK], b[BLK], want[3 * BLK];
    int fd;
    tu_pattern(a, sizeof(a), 1);
    tu_pattern(b, sizeof(b), 2);
    put_file(x, "d", a, sizeof(a), 0644);
    fd = open_rw(x, "d", 0);
    assert_int_equal(crashio_pending(x->c), 0);

    /* Overwrite block 0, sync: durable. */
    assert_int_equal(wr(x, fd, b, BLK, 0), BLK);
    assert_int_equal(crashio_pending(x->c), 1);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FDATASYNC), 0);
    assert_int_equal(crashio_pending(x->c), 0);
    /* Then unsynced: overwrite part of block 1 and extend by a block. */
    assert_int_equal(wr(x, fd, b, 100, BLK + 10), 100);
    assert_int_equal(wr(x, fd, b, BLK, 2 * BLK), BLK);
    assert_int_equal(crashio_pending(x->c), 2);
    assert_int_equal(file_size(x, "d"), 3 * BLK);

    crashio_crash(x->c);
    memcpy(want, b, BLK);
    memcpy(want + BLK, a + BLK, BLK);
    assert_true(file_is(x, "d", want, 2 * BLK));
    assert_int_equal(crashio_pending(x->c), 0);
    x->io->close(x->io, fd);
    fx_free(x);
}

static void test_cio_truncate_fallocate(void **state)
{
    (void)state;
    struct fx *x = fx_new(1);
    unsigned char a[3 * BLK];
    int fd, fd2, rc;
    tu_pattern(a, sizeof(a), 3);
    put_file(x, "t", a, sizeof(a), 0644);
    put_file(x, "f", a, 5000, 0644);
    fd = open_rw(x, "t", 0);
    fd2 = open_rw(x, "f", 0);
    assert_int_equal(x->io->ftruncate(x->io, fd, 100), 0);
    assert_int_equal(wr(x, fd, a + BLK, BLK, 50), BLK);
    assert_int_equal(x->io->ftruncate(x->io, fd, 10 * BLK), 0);
    assert_int_equal(file_size(x, "t"), 10 * BLK);
    rc = x->io->fallocate(x->io, fd2, 0, 16 * BLK);
    if (rc != -EOPNOTSUPP) {
        assert_int_equal(rc, 0);
        assert_int_equal(file_size(x, "f"), 16 * BLK);
    }
    crashio_crash(x->c);
    assert_true(file_is(x, "t", a, sizeof(a)));
    assert_true(file_is(x, "f", a, 5000));
    x->io->close(x->io, fd);
    x->io->close(x->io, fd2);
    fx_free(x);
}

static void test_cio_create(void **state)
{
    (void)state;
    struct fx *x = fx_new(1);
    unsigned char b[BLK];
    int fd, fd2, fd3;
    tu_pattern(b, sizeof(b), 4);
    /* Created, directory synced, data not: the name stays, data goes. */
    fd = open_rw(x, "kept", 1);
    assert_int_equal(wr(x, fd, b, BLK, 0), BLK);
    assert_int_equal(crashio_pending(x->c), 2);
    assert_int_equal(x->io->sync(x->io, x->dfd, STORE_IO_FSYNC), 0);
    assert_int_equal(crashio_pending(x->c), 1);
    /* Created, data and directory synced. */
    fd2 = open_rw(x, "durable", 1);
    assert_int_equal(wr(x, fd2, b, BLK, 0), BLK);
    assert_int_equal(x->io->sync(x->io, fd2, STORE_IO_FDATASYNC), 0);
    assert_int_equal(x->io->sync(x->io, x->dfd, STORE_IO_FSYNC), 0);
    assert_int_equal(crashio_pending(x->c), 1);
    /* Opening an existing file with O_CREAT creates nothing. */
    fd3 = open_rw(x, "kept", 1);
    assert_int_equal(crashio_pending(x->c), 1);
    x->io->close(x->io, fd3);
    /* Created and synced, but the directory is not: an fdatasync of the
     * directory is not enough. */
    fd3 = open_rw(x, "gone", 1);
    assert_int_equal(wr(x, fd3, b, BLK, 0), BLK);
    assert_int_equal(x->io->sync(x->io, fd3, STORE_IO_FSYNC), 0);
    assert_int_equal(x->io->sync(x->io, x->dfd, STORE_IO_FDATASYNC), 0);
    assert_int_equal(crashio_pending(x->c), 2);

    crashio_crash(x->c);
    assert_int_equal(file_size(x, "gone"), -1);
    assert_int_equal(file_size(x, "kept"), 0);
    assert_true(file_is(x, "durable", b, BLK));
    x->io->close(x->io, fd);
    x->io->close(x->io, fd2);
    x->io->close(x->io, fd3);
    fx_free(x);
}

static void test_cio_rename(void **state)
{
    (void)state;
    struct fx *x = fx_new(1);
    unsigned char a[BLK], b[BLK], c[BLK];
    struct stat st;
    int fd, fo;
    tu_pattern(a, sizeof(a), 5);
    tu_pattern(b, sizeof(b), 6);
    tu_pattern(c, sizeof(c), 7);
    put_file(x, "old", a, sizeof(a), 0640);
    /* An unsynced write to the old target, then replaced by rename. */
    fo = open_rw(x, "old", 0);
    assert_int_equal(wr(x, fo, c, 10, 0), 10);
    fd = open_rw(x, "tmp", 1);
    assert_int_equal(wr(x, fd, b, BLK, 0), BLK);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), 0);
    assert_int_equal(x->io->sync(x->io, x->dfd, STORE_IO_FSYNC), 0);
    assert_int_equal(x->io->renameat(x->io, x->dfd, "tmp", "old"), 0);
    assert_true(file_is(x, "old", b, BLK));
    assert_int_equal(file_size(x, "tmp"), -1);
    assert_int_equal(crashio_pending(x->c), 2);

    crashio_crash(x->c);
    assert_true(file_is(x, "tmp", b, BLK));
    assert_true(file_is(x, "old", a, BLK)); /* without the unsynced write */
    assert_int_equal(fstatat(x->dfd, "old", &st, 0), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    x->io->close(x->io, fd);
    x->io->close(x->io, fo);
    fx_free(x);
}

static void test_cio_rename_synced(void **state)
{
    (void)state;
    struct fx *x = fx_new(1);
    unsigned char a[BLK], b[BLK];
    int fd;
    tu_pattern(a, sizeof(a), 8);
    tu_pattern(b, sizeof(b), 9);
    put_file(x, "old", a, sizeof(a), 0644);
    fd = open_rw(x, "tmp", 1);
    assert_int_equal(wr(x, fd, b, BLK, 0), BLK);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), 0);
    assert_int_equal(x->io->renameat(x->io, x->dfd, "tmp", "old"), 0);
    assert_int_equal(x->io->sync(x->io, x->dfd, STORE_IO_FSYNC), 0);
    assert_int_equal(crashio_pending(x->c), 0);
    crashio_crash(x->c);
    assert_true(file_is(x, "old", b, BLK));
    assert_int_equal(file_size(x, "tmp"), -1);
    x->io->close(x->io, fd);
    fx_free(x);
}

static void test_cio_unlink(void **state)
{
    (void)state;
    struct fx *x = fx_new(1);
    unsigned char a[BLK + 7];
    tu_pattern(a, sizeof(a), 10);
    put_file(x, "u", a, sizeof(a), 0600);
    put_file(x, "v", a, sizeof(a), 0600);
    assert_int_equal(x->io->unlinkat(x->io, x->dfd, "u"), 0);
    assert_int_equal(x->io->unlinkat(x->io, x->dfd, "v"), 0);
    assert_int_equal(file_size(x, "u"), -1);
    assert_int_equal(crashio_pending(x->c), 2);
    assert_int_equal(x->io->unlinkat(x->io, x->dfd, "u"), -ENOENT);
    assert_int_equal(crashio_pending(x->c), 2);
    crashio_crash(x->c);
    assert_true(file_is(x, "u", a, sizeof(a)));
    assert_true(file_is(x, "v", a, sizeof(a)));
    fx_free(x);
}

static void test_cio_dead(void **state)
{
    (void)state;
    struct fx *x = fx_new(1);
    unsigned char b[BLK] = {0};
    uint64_t avail;
    int fd = open_rw(x, "a", 1);
    crashio_crash(x->c);
    assert_int_equal(file_size(x, "a"), -1);
    assert_int_equal(x->io->openat(x->io, x->dfd, "b", O_CREAT | O_RDWR, 0644),
                     -EIO);
    assert_int_equal(file_size(x, "b"), -1);
    assert_int_equal(wr(x, fd, b, BLK, 0), -EIO);
    assert_int_equal(x->io->pread(x->io, fd, b, BLK, 0), -EIO);
    assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), -EIO);
    assert_int_equal(x->io->fallocate(x->io, fd, 0, BLK), -EIO);
    assert_int_equal(x->io->ftruncate(x->io, fd, 0), -EIO);
    assert_int_equal(x->io->renameat(x->io, x->dfd, "a", "b"), -EIO);
    assert_int_equal(x->io->unlinkat(x->io, x->dfd, "a"), -EIO);
    assert_int_equal(x->io->fstatvfs(x->io, fd, &avail), -EIO);
    assert_int_equal(x->io->close(x->io, fd), 0);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* really closed */
    assert_int_equal(errno, EBADF);
    fx_free(x);
}

/* ---- crashio_crash_random ---- */

#define RSEEDS 64 /* seeds tried by the random-crash tests */

/* The bytes of name (at most max); returns the length read, -1 if absent. */
static long slurp(struct fx *x, const char *name, unsigned char *buf,
                  size_t max)
{
    int fd = openat(x->dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long n = (long)read(fd, buf, max);
    close(fd);
    return n;
}

/* What became of one write: 0 undone, 1 kept, 2 torn; -1 none of them.
 * The write put nw[0..len) at off over old[] (bytes of the file before it,
 * zeros past old_size); got[0..got_len) is the file now. */
static int fate_of(const unsigned char *got, long got_len,
                   const unsigned char *old, long old_size,
                   const unsigned char *nw, size_t off, size_t len)
{
    size_t end = off + len;
    int torn = 0;
    for (size_t cut = off;;) {
        int ok = 1;
        for (size_t i = off; i < end && ok; i++) {
            int o = (long)i < old_size ? old[i] : 0;
            int want = i < cut ? nw[i - off] : o;
            /* Past the end of the file is fine only for what was past the
             * old end of file and did not survive. */
            if ((long)i >= got_len)
                ok = i >= cut && (long)i >= old_size;
            else
                ok = got[i] == want;
        }
        if (ok && cut == off)
            return 0;
        if (ok && cut == end)
            return 1;
        torn |= ok;
        if (cut == end)
            break;
        size_t next = (cut / BLK + 1) * BLK;
        cut = next < end ? next : end;
    }
    return torn ? 2 : -1;
}

/* Three unsynced writes over a synced file, each spanning 3 pages (none
 * page-aligned at its start), the last two extending the file (the last
 * past a hole): every seed leaves
 * each write undone, kept or torn at a 4 KiB boundary, and the counts the
 * wrapper reports agree; all three fates turn up over the seeds; the same
 * seed gives the same disk. */
static void test_cio_random_fates(void **state)
{
    (void)state;
    enum { OLD = 6 * BLK, W = 3 * BLK, MAXF = 11 * BLK };
    static unsigned char old[OLD], nw[3][W], got[MAXF + 1], first[MAXF + 1];
    const size_t offs[3] = {100, 3 * BLK + 200, 7 * BLK + 300};
    size_t seen[3] = {0, 0, 0};
    long first_len = -1;
    tu_pattern(old, OLD, 11);
    for (int k = 0; k < 3; k++)
        tu_pattern(nw[k], W, 12 + (uint64_t)k);
    for (uint64_t seed = 0; seed <= RSEEDS; seed++) {
        struct fx *x = fx_new(1);
        put_file(x, "r", old, OLD, 0644);
        int fd = open_rw(x, "r", 0);
        /* A synced write is never undone, whatever the seed. */
        assert_int_equal(wr(x, fd, nw[0], BLK, 0), BLK);
        assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FDATASYNC), 0);
        unsigned char base[OLD];
        memcpy(base, old, OLD);
        memcpy(base, nw[0], BLK);
        for (int k = 0; k < 3; k++)
            assert_int_equal(wr(x, fd, nw[k], W, offs[k]), W);
        assert_int_equal(crashio_pending(x->c), 3);
        /* seed RSEEDS repeats seed 7 */
        crashio_crash_random(x->c, seed == RSEEDS ? 7 : seed);
        long n = slurp(x, "r", got, sizeof(got));
        assert_true(n >= OLD && n <= (long)(offs[2] + W));
        /* Newest first: later writes do not overlap earlier ones here, so
         * each write's range is judged against the bytes before it. */
        size_t counted[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++) {
            int fate = fate_of(got, n, base, OLD, nw[k], offs[k], W);
            if (fate < 0)
                fail_msg("seed %llu: write %d is neither undone, kept nor "
                         "torn at a 4 KiB boundary",
                         (unsigned long long)seed, k);
            counted[fate]++;
            seen[fate]++;
        }
        /* The durable first page survived every crash. */
        assert_memory_equal(got, nw[0], 100);
        size_t u = 9, kp = 9, t = 9;
        crashio_crash_counts(x->c, &u, &kp, &t);
        assert_int_equal(u, counted[0]);
        assert_int_equal(kp, counted[1]);
        assert_int_equal(t, counted[2]);
        if (seed == 7) {
            first_len = n;
            memcpy(first, got, (size_t)n);
        } else if (seed == RSEEDS) {
            assert_int_equal(n, first_len);
            assert_memory_equal(got, first, (size_t)n);
        }
        x->io->close(x->io, fd);
        fx_free(x);
    }
    assert_true(seen[0] > 0);
    assert_true(seen[1] > 0);
    assert_true(seen[2] > 0);
}

/* A write that extends the file from 2 to 5 pages: undone, the file is 2
 * pages again; kept, 5 with the data; torn, 3 or 4 pages of which the part
 * past the old end holds the new bytes.  A newer kept write past it keeps
 * the file long: the undone pages in between read as zeros. */
static void test_cio_random_extend(void **state)
{
    (void)state;
    static unsigned char old[2 * BLK], nw[3 * BLK], nw2[BLK], got[8 * BLK];
    size_t sizes[6] = {0};
    int gap_zero = 0;
    tu_pattern(old, sizeof(old), 20);
    tu_pattern(nw, sizeof(nw), 21);
    tu_pattern(nw2, sizeof(nw2), 22);
    for (uint64_t seed = 0; seed < RSEEDS; seed++) {
        struct fx *x = fx_new(1);
        put_file(x, "e", old, sizeof(old), 0644);
        int fd = open_rw(x, "e", 0);
        int two = seed % 2; /* a second write past the first */
        assert_int_equal(wr(x, fd, nw, sizeof(nw), 2 * BLK), 3 * BLK);
        if (two)
            assert_int_equal(wr(x, fd, nw2, BLK, 6 * BLK), BLK);
        crashio_crash_random(x->c, seed);
        long n = slurp(x, "e", got, sizeof(got));
        assert_true(n % BLK == 0 && n >= 2 * BLK && n <= (two ? 7 : 5) * BLK);
        assert_memory_equal(got, old, 2 * BLK);
        if (!two) {
            sizes[n / BLK - 2 < 6 ? n / BLK - 2 : 5]++;
            assert_memory_equal(got + 2 * BLK, nw, (size_t)n - 2 * BLK);
        } else if (n == 7 * BLK) { /* the second write survived whole */
            assert_memory_equal(got + 6 * BLK, nw2, BLK);
            /* pages 2..5: a prefix of nw, then zeros */
            size_t p = 2 * BLK;
            while (p < 5 * BLK && memcmp(got + p, nw + p - 2 * BLK, BLK) == 0)
                p += BLK;
            for (size_t i = p; i < 6 * BLK; i++)
                assert_int_equal(got[i], 0);
            gap_zero += p < 5 * BLK;
        }
        x->io->close(x->io, fd);
        fx_free(x);
    }
    assert_true(sizes[0] > 0);            /* undone */
    assert_true(sizes[3] > 0);            /* kept */
    assert_true(sizes[1] + sizes[2] > 0); /* torn */
    assert_true(gap_zero > 0);
}

/* Two unsynced writes to the same pages, newest first: each page ends as
 * before both, after the first or after the second; all three happen. */
static void test_cio_random_overlap(void **state)
{
    (void)state;
    static unsigned char a[2 * BLK], b[2 * BLK], c[2 * BLK], got[2 * BLK + 1];
    int seen[3] = {0, 0, 0};
    tu_pattern(a, sizeof(a), 30);
    tu_pattern(b, sizeof(b), 31);
    tu_pattern(c, sizeof(c), 32);
    for (uint64_t seed = 0; seed < RSEEDS; seed++) {
        struct fx *x = fx_new(1);
        put_file(x, "o", a, sizeof(a), 0644);
        int fd = open_rw(x, "o", 0);
        assert_int_equal(wr(x, fd, b, sizeof(b), 0), 2 * BLK);
        assert_int_equal(wr(x, fd, c, sizeof(c), 0), 2 * BLK);
        crashio_crash_random(x->c, seed);
        assert_int_equal(slurp(x, "o", got, sizeof(got)), 2 * BLK);
        for (size_t p = 0; p < 2 * BLK; p += BLK) {
            int v = memcmp(got + p, a + p, BLK) == 0   ? 0
                    : memcmp(got + p, b + p, BLK) == 0 ? 1
                    : memcmp(got + p, c + p, BLK) == 0 ? 2
                                                       : -1;
            assert_true(v >= 0);
            seen[v]++;
        }
        x->io->close(x->io, fd);
        fx_free(x);
    }
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
}

/* Under crashio_crash_random, ftruncate, fallocate and directory records
 * are still undone every time, and a failed call after it gets -EIO. */
static void test_cio_random_strict(void **state)
{
    (void)state;
    unsigned char a[3 * BLK], b[BLK];
    tu_pattern(a, sizeof(a), 40);
    tu_pattern(b, sizeof(b), 41);
    for (uint64_t seed = 0; seed < 16; seed++) {
        struct fx *x = fx_new(1);
        put_file(x, "t", a, sizeof(a), 0644);
        put_file(x, "f", a, 5000, 0644);
        put_file(x, "u", a, BLK, 0600);
        int fd = open_rw(x, "t", 0), fd2 = open_rw(x, "f", 0);
        assert_int_equal(x->io->ftruncate(x->io, fd, 100), 0);
        int rc = x->io->fallocate(x->io, fd2, 0, 16 * BLK);
        assert_true(rc == 0 || rc == -EOPNOTSUPP);
        int fd3 = open_rw(x, "new", 1);
        assert_int_equal(wr(x, fd3, b, BLK, 0), BLK);
        assert_int_equal(x->io->sync(x->io, fd3, STORE_IO_FSYNC), 0);
        assert_int_equal(x->io->renameat(x->io, x->dfd, "u", "v"), 0);
        crashio_crash_random(x->c, seed);
        assert_true(file_is(x, "t", a, sizeof(a)));
        assert_true(file_is(x, "f", a, 5000));
        assert_int_equal(file_size(x, "new"), -1);
        assert_int_equal(file_size(x, "v"), -1);
        assert_true(file_is(x, "u", a, BLK));
        size_t u = 9, k = 9, t = 9;
        crashio_crash_counts(x->c, &u, &k, &t);
        assert_int_equal(u + k + t, 0); /* the one write was synced */
        assert_int_equal(wr(x, fd, b, BLK, 0), -EIO);
        assert_int_equal(x->io->sync(x->io, fd, STORE_IO_FSYNC), -EIO);
        x->io->close(x->io, fd);
        x->io->close(x->io, fd2);
        x->io->close(x->io, fd3);
        fx_free(x);
    }
}

/* crashio_crash counts every unsynced write as undone. */
static void test_cio_counts_strict(void **state)
{
    (void)state;
    struct fx *x = fx_new(1);
    unsigned char b[BLK];
    tu_pattern(b, sizeof(b), 50);
    int fd = open_rw(x, "s", 1);
    assert_int_equal(wr(x, fd, b, BLK, 0), BLK);
    assert_int_equal(wr(x, fd, b, BLK, BLK), BLK);
    assert_int_equal(x->io->ftruncate(x->io, fd, 10), 0);
    crashio_crash(x->c);
    size_t u = 9, k = 9, t = 9;
    crashio_crash_counts(x->c, &u, &k, &t);
    assert_int_equal(u, 2);
    assert_int_equal(k, 0);
    assert_int_equal(t, 0);
    x->io->close(x->io, fd);
    fx_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fio_arm_nth),
        cmocka_unit_test(test_fio_arm_all),
        cmocka_unit_test(test_fio_short),
        cmocka_unit_test(test_fio_avail),
        cmocka_unit_test(test_fio_trace),
        cmocka_unit_test(test_cio_data),
        cmocka_unit_test(test_cio_truncate_fallocate),
        cmocka_unit_test(test_cio_create),
        cmocka_unit_test(test_cio_rename),
        cmocka_unit_test(test_cio_rename_synced),
        cmocka_unit_test(test_cio_unlink),
        cmocka_unit_test(test_cio_dead),
        cmocka_unit_test(test_cio_random_fates),
        cmocka_unit_test(test_cio_random_extend),
        cmocka_unit_test(test_cio_random_overlap),
        cmocka_unit_test(test_cio_random_strict),
        cmocka_unit_test(test_cio_counts_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
