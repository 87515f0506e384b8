/*
 * test_support_io.c - self-tests of the test I/O wrappers: faultio (fault
 * arming, short transfers, ENOSPC, free-space override, trace) and crashio
 * (undo of unsynced data and directory changes), both on the pread backend
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
