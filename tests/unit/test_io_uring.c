/*
 * test_io_uring.c - the io_uring backend on its own (no store): fixed-frame
 * and heap-buffer round trips on an O_DIRECT file, coalesced pwritev of
 * several frames, short reads at end of file, the pwritev prefix rule on a
 * failure part way (RLIMIT_FSIZE), syncs, the registered-frame pool, many
 * iovecs on a small ring, several threads at once, and the two seams
 * (failed registration, failed ring).
 *
 * Where the kernel refuses io_uring altogether the ring tests skip, or
 * fail when BLOBD_NO_SKIP is set; the seam tests always run.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#define FRAME STORE_FRAME_SIZE
#define BLK 4096u

/* ---- environment ---- */

/* 1 if this kernel lets us create a ring at all (checked once). */
static int uring_usable(void)
{
    static int usable = -1;
    if (usable < 0) {
        struct io_uring ring;
        int rc = io_uring_queue_init(4, &ring, 0);
        usable = rc == 0;
        if (rc == 0)
            io_uring_queue_exit(&ring);
        else
            fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc));
    }
    return usable;
}

#define NEED_URING()                                                           \
    do {                                                                       \
        if (!uring_usable()) {                                                 \
            if (getenv("BLOBD_NO_SKIP"))                                       \
                fail_msg("io_uring refused and BLOBD_NO_SKIP is set");         \
            skip();                                                            \
        }                                                                      \
    } while (0)

struct logcap {
    int warns;
    int infos;
    char last_warn[512];
};

static void cap_log(void *ctx, int warn, const char *msg)
{
    struct logcap *c = ctx;
    if (warn) {
        c->warns++;
        snprintf(c->last_warn, sizeof(c->last_warn), "%s", msg);
    } else {
        c->infos++;
    }
}

/* Per-test state: a temp dir, a backend, a data file (O_DIRECT if the
 * filesystem takes it). */
struct fx {
    char *dir;
    struct store_io *io;
    int dfd;
    int fd;
    struct logcap log;
};

static struct store_io *new_io(struct fx *x, unsigned frames, unsigned entries,
                               int fail_register)
{
    struct store_io_uring_opts o = {.entries = entries,
                                    .fixed_frames = frames,
                                    .fail_register = fail_register,
                                    .log_fn = cap_log,
                                    .log_ctx = &x->log};
    int rc = 1;
    char err[256] = "";
    struct store_io *io = store_io_uring_new(&o, &rc, err, sizeof(err));
    if (!io)
        fail_msg("store_io_uring_new: %d %s", rc, err);
    assert_int_equal(rc, 0);
    return io;
}

static int open_data(struct fx *x, const char *name, int flags)
{
    int fd = x->io->openat(x->io, x->dfd, name, flags | O_DIRECT, 0600);
    if (fd == -EINVAL) {
        if (getenv("BLOBD_NO_SKIP"))
            fail_msg("the temp filesystem refuses O_DIRECT");
        fprintf(stderr, "note: O_DIRECT refused here; testing buffered\n");
        fd = x->io->openat(x->io, x->dfd, name, flags, 0600);
    }
    assert_true(fd >= 0);
    return fd;
}

static struct fx *fx_new(unsigned frames, unsigned entries)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->dir = tu_mkdtemp("uring");
    x->io = new_io(x, frames, entries, 0);
    x->dfd = open(x->dir, O_RDONLY | O_DIRECTORY);
    assert_true(x->dfd >= 0);
    x->fd = open_data(x, "data", O_RDWR | O_CREAT);
    return x;
}

static void fx_free(struct fx *x)
{
    assert_int_equal(x->io->close(x->io, x->fd), 0);
    close(x->dfd);
    x->io->destroy(x->io);
    tu_rmtree(x->dir);
    free(x);
}

static void *heap(size_t len)
{
    void *p = aligned_alloc(BLK, len);
    assert_non_null(p);
    return p;
}

static ssize_t write1(struct store_io *io, int fd, void *b, size_t len,
                      uint64_t off)
{
    struct iovec v = {.iov_base = b, .iov_len = len};
    return io->pwritev(io, fd, &v, 1, off);
}

/* ---- tests ---- */

static void test_create_fixed(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 0);
    assert_string_equal(x->io->name, "io_uring");
    assert_int_equal(store_io_uring_fixed(x->io), 4);
    assert_non_null(x->io->frame_alloc);
    assert_non_null(x->io->frame_free);
    assert_non_null(x->io->frames_in_use);
    assert_int_equal(x->io->frames_in_use(x->io), 0);
    assert_int_equal(x->log.warns, 0);
    assert_true(x->log.infos >= 1);
    fx_free(x);
}

/* WRITE_FIXED / READ_FIXED: whole frames and ranges inside frames. */
static void test_fixed_round_trip(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 0);
    uint8_t *a = x->io->frame_alloc(x->io);
    uint8_t *b = x->io->frame_alloc(x->io);
    assert_non_null(a);
    assert_non_null(b);
    tu_pattern(a, FRAME, 1);
    assert_int_equal(write1(x->io, x->fd, a, FRAME, 0), FRAME);
    memset(b, 0, FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, b, FRAME, 0), FRAME);
    assert_true(tu_pattern_ok(b, FRAME, 1));

    /* A range inside a frame, read into the middle of another. */
    memset(b, 0, FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, b + 2 * BLK, BLK, BLK), BLK);
    assert_memory_equal(b + 2 * BLK, a + BLK, BLK);

    /* A write of a range inside a frame. */
    assert_int_equal(write1(x->io, x->fd, a + BLK, 2 * BLK, FRAME), 2 * BLK);
    memset(b, 0, FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, b, 2 * BLK, FRAME), 2 * BLK);
    assert_memory_equal(b, a + BLK, 2 * BLK);

    assert_int_equal(x->io->frame_free(x->io, a), 1);
    assert_int_equal(x->io->frame_free(x->io, b), 1);
    fx_free(x);
}

/* IORING_OP_WRITE for heap buffers, pread(2) for heap reads, and one
 * pwritev mixing frames and heap buffers. */
static void test_heap_round_trip(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 0);
    uint8_t *h = heap(3 * (size_t)FRAME);
    uint8_t *r = heap(3 * (size_t)FRAME);
    tu_pattern(h, FRAME, 2);
    assert_int_equal(write1(x->io, x->fd, h, FRAME, FRAME), FRAME);
    memset(r, 0, FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, r, FRAME, FRAME), FRAME);
    assert_true(tu_pattern_ok(r, FRAME, 2));

    uint8_t *f1 = x->io->frame_alloc(x->io);
    uint8_t *f2 = x->io->frame_alloc(x->io);
    tu_pattern(f1, FRAME, 3);
    tu_pattern(h, FRAME, 4);
    tu_pattern(f2, FRAME, 5);
    struct iovec v[3] = {{f1, FRAME}, {h, FRAME}, {f2, FRAME}};
    assert_int_equal(x->io->pwritev(x->io, x->fd, v, 3, 0), 3 * FRAME);
    memset(r, 0, 3 * (size_t)FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, r, 3 * (size_t)FRAME, 0),
                     3 * FRAME);
    assert_true(tu_pattern_ok(r, FRAME, 3));
    assert_true(tu_pattern_ok(r + FRAME, FRAME, 4));
    assert_true(tu_pattern_ok(r + 2 * (size_t)FRAME, FRAME, 5));
    x->io->frame_free(x->io, f1);
    x->io->frame_free(x->io, f2);
    free(h);
    free(r);
    fx_free(x);
}

/* The store's coalesced run: 3 frames in one pwritev, then syncs. */
static void test_coalesced_three_frames(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 0);
    uint8_t *f[4];
    for (int i = 0; i < 4; i++) {
        f[i] = x->io->frame_alloc(x->io);
        assert_non_null(f[i]);
    }
    struct iovec v[3];
    for (int i = 0; i < 3; i++) {
        tu_pattern(f[i], FRAME, 10 + (uint64_t)i);
        v[i].iov_base = f[i];
        v[i].iov_len = FRAME;
    }
    uint64_t off = 2 * (uint64_t)FRAME;
    assert_int_equal(x->io->pwritev(x->io, x->fd, v, 3, off), 3 * FRAME);
    assert_int_equal(x->io->sync(x->io, x->fd, STORE_IO_FDATASYNC), 0);
    for (int i = 0; i < 3; i++) {
        memset(f[3], 0, FRAME);
        assert_int_equal(
            x->io->pread(x->io, x->fd, f[3], FRAME, off + (uint64_t)i * FRAME),
            FRAME);
        assert_true(tu_pattern_ok(f[3], FRAME, 10 + (uint64_t)i));
    }
    assert_int_equal(x->io->sync(x->io, x->fd, STORE_IO_FSYNC), 0);
    assert_int_equal(x->io->sync(x->io, x->dfd, STORE_IO_FSYNC), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(x->io->frame_free(x->io, f[i]), 1);
    fx_free(x);
}

/* A read past end of file is short (fixed and heap), as pread(2). */
static void test_short_read_eof(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 0);
    uint8_t *h = heap(FRAME);
    tu_pattern(h, 2 * BLK, 6);
    assert_int_equal(write1(x->io, x->fd, h, 2 * BLK, 0), 2 * BLK);
    uint8_t *f = x->io->frame_alloc(x->io);
    memset(f, 0, FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, f, FRAME, 0), 2 * BLK);
    assert_true(tu_pattern_ok(f, 2 * BLK, 6));
    assert_int_equal(x->io->pread(x->io, x->fd, f, FRAME, 4 * BLK), 0);
    memset(h, 0, FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, h, FRAME, 0), 2 * BLK);
    assert_true(tu_pattern_ok(h, 2 * BLK, 6));
    x->io->frame_free(x->io, f);
    free(h);
    fx_free(x);
}

/* Errors come back as -errno; bad arguments as pwritev(2) reports them. */
static void test_write_errors(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 0);
    int ro = open_data(x, "data", O_RDONLY);
    uint8_t *f = x->io->frame_alloc(x->io);
    uint8_t *h = heap(FRAME);
    memset(f, 1, FRAME);
    memset(h, 2, FRAME);
    assert_int_equal(write1(x->io, ro, f, FRAME, 0), -EBADF);
    assert_int_equal(write1(x->io, ro, h, FRAME, 0), -EBADF);
    assert_int_equal(x->io->pread(x->io, -1, f, FRAME, 0), -EBADF);
    assert_int_equal(x->io->sync(x->io, -1, STORE_IO_FDATASYNC), -EBADF);
    struct iovec v = {h, BLK};
    assert_int_equal(x->io->pwritev(x->io, x->fd, &v, -1, 0), -EINVAL);
    assert_int_equal(x->io->pwritev(x->io, x->fd, &v, IOV_MAX + 1, 0), -EINVAL);
    assert_int_equal(x->io->pwritev(x->io, x->fd, &v, 0, 0), 0);
    /* The ring still works after failed calls (nothing left over). */
    assert_int_equal(write1(x->io, x->fd, f, FRAME, 0), FRAME);
    assert_int_equal(x->io->close(x->io, ro), 0);
    x->io->frame_free(x->io, f);
    free(h);
    fx_free(x);
}

/* A failure part way returns the bytes written contiguously from the
 * start, including a short piece; with none written, the -errno. */
static void test_write_prefix_on_failure(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 0);
    uint8_t *f[2] = {x->io->frame_alloc(x->io), x->io->frame_alloc(x->io)};
    uint8_t *h = heap(FRAME);
    tu_pattern(f[0], FRAME, 20);
    tu_pattern(h, FRAME, 21);
    tu_pattern(f[1], FRAME, 22);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    uint64_t limit = FRAME + 16 * BLK;
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < limit) {
        x->io->frame_free(x->io, f[0]);
        x->io->frame_free(x->io, f[1]);
        free(h);
        fx_free(x);
        skip();
    }
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    struct iovec v[3] = {{f[0], FRAME}, {h, FRAME}, {f[1], FRAME}};
    ssize_t n = x->io->pwritev(x->io, x->fd, v, 3, 0);
    ssize_t n2 = x->io->pwritev(x->io, x->fd, &v[2], 1, limit);
    ssize_t n3 = x->io->pwritev(x->io, x->fd, &v[1], 1, limit);

    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    assert_int_equal(n, (ssize_t)limit);
    assert_int_equal(n2, -EFBIG);
    assert_int_equal(n3, -EFBIG);

    uint8_t *r = heap(2 * (size_t)FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, r, 2 * (size_t)FRAME, 0),
                     (ssize_t)limit);
    assert_true(tu_pattern_ok(r, FRAME, 20));
    assert_memory_equal(r + FRAME, h, limit - FRAME);
    x->io->frame_free(x->io, f[0]);
    x->io->frame_free(x->io, f[1]);
    free(h);
    free(r);
    fx_free(x);
}

/* More iovecs than the ring has entries: submitted in windows. */
static void test_many_iovecs_small_ring(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(0, 8);
    enum { N = 100 };
    uint8_t *h = heap((size_t)N * BLK);
    tu_pattern(h, (size_t)N * BLK, 30);
    struct iovec v[N];
    for (int i = 0; i < N; i++) {
        v[i].iov_base = h + (size_t)i * BLK;
        v[i].iov_len = BLK;
    }
    v[7].iov_len = 0; /* empty iovecs are skipped, offsets stay exact */
    ssize_t want = (ssize_t)(N - 1) * BLK;
    assert_int_equal(x->io->pwritev(x->io, x->fd, v, N, BLK), want);
    uint8_t *r = heap((size_t)N * BLK);
    assert_int_equal(x->io->pread(x->io, x->fd, r, (size_t)want, BLK), want);
    assert_memory_equal(r, h, 7 * BLK);
    assert_memory_equal(r + 7 * BLK, h + 8 * BLK, (size_t)want - 7 * BLK);
    free(h);
    free(r);
    fx_free(x);
}

/* pwritev_batch: several pwritev calls at scattered offsets in flight
 * together, more pieces than the ring has entries, each with its result. */
static void test_batch_round_trip(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 4);
    assert_non_null(x->io->pwritev_batch);
    uint8_t *f[2] = {x->io->frame_alloc(x->io), x->io->frame_alloc(x->io)};
    enum { NH = 5 };
    uint8_t *h[NH];
    for (int i = 0; i < NH; i++) {
        h[i] = heap(FRAME);
        tu_pattern(h[i], FRAME, 40 + (uint64_t)i);
    }
    tu_pattern(f[0], FRAME, 50);
    tu_pattern(f[1], FRAME, 51);
    /* Calls: slot 9 (one frame), slots 2-3 (fixed + heap), slot 6 (one
     * block of heap), slots 12-14 (three), and an empty call. */
    struct iovec a[] = {{h[0], FRAME}};
    struct iovec b[] = {{f[0], FRAME}, {h[1], FRAME}};
    struct iovec c[] = {{h[2], BLK}};
    struct iovec d[] = {{h[3], FRAME}, {f[1], FRAME}, {h[4], FRAME}};
    struct store_io_write w[] = {
        {.iov = a, .iovcnt = 1, .off = 9 * (uint64_t)FRAME},
        {.iov = b, .iovcnt = 2, .off = 2 * (uint64_t)FRAME},
        {.iov = c, .iovcnt = 1, .off = 6 * (uint64_t)FRAME},
        {.iov = d, .iovcnt = 3, .off = 12 * (uint64_t)FRAME},
        {.iov = a, .iovcnt = 0, .off = 0},
    };
    x->io->pwritev_batch(x->io, x->fd, w, 5);
    assert_int_equal(w[0].res, FRAME);
    assert_int_equal(w[1].res, 2 * FRAME);
    assert_int_equal(w[2].res, BLK);
    assert_int_equal(w[3].res, 3 * FRAME);
    assert_int_equal(w[4].res, 0);
    uint8_t *r = heap(FRAME);
    struct {
        uint64_t slot;
        uint64_t seed;
        size_t len;
    } want[] = {{9, 40, FRAME},  {2, 50, FRAME},  {3, 41, FRAME}, {6, 42, BLK},
                {12, 43, FRAME}, {13, 51, FRAME}, {14, 44, FRAME}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        memset(r, 0, FRAME);
        assert_int_equal(
            x->io->pread(x->io, x->fd, r, want[i].len, want[i].slot * FRAME),
            (ssize_t)want[i].len);
        assert_true(tu_pattern_ok(r, want[i].len, want[i].seed));
    }
    free(r);
    for (int i = 0; i < NH; i++)
        free(h[i]);
    x->io->frame_free(x->io, f[0]);
    x->io->frame_free(x->io, f[1]);
    fx_free(x);
}

/* A call of the batch that fails leaves the others to finish: each
 * result is its own (bad arguments, a write past RLIMIT_FSIZE). */
static void test_batch_failure_is_per_call(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(0, 4);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    uint64_t limit = 4 * (uint64_t)FRAME;
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < limit) {
        fx_free(x);
        skip();
    }
    uint8_t *h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = heap(FRAME);
        tu_pattern(h[i], FRAME, 60 + (uint64_t)i);
    }
    struct iovec v[4] = {
        {h[0], FRAME}, {h[1], FRAME}, {h[2], FRAME}, {h[3], FRAME}};
    struct store_io_write w[] = {
        {.iov = &v[0], .iovcnt = 1, .off = 0},
        {.iov = &v[1], .iovcnt = 1, .off = 8 * (uint64_t)FRAME}, /* EFBIG */
        {.iov = &v[2], .iovcnt = -1, .off = FRAME},              /* EINVAL */
        {.iov = &v[2], .iovcnt = 2, .off = 2 * (uint64_t)FRAME},
    };
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    x->io->pwritev_batch(x->io, x->fd, w, 4);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    assert_int_equal(w[0].res, FRAME);
    assert_int_equal(w[1].res, -EFBIG);
    assert_int_equal(w[2].res, -EINVAL);
    assert_int_equal(w[3].res, 2 * FRAME);
    uint8_t *r = heap(FRAME);
    const int slots[] = {0, 2, 3};
    const int seeds[] = {60, 62, 63};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            x->io->pread(x->io, x->fd, r, FRAME, (uint64_t)slots[i] * FRAME),
            FRAME);
        assert_true(tu_pattern_ok(r, FRAME, (uint64_t)seeds[i]));
    }
    /* The ring still works afterwards. */
    assert_int_equal(write1(x->io, x->fd, h[0], FRAME, FRAME), FRAME);
    free(r);
    for (int i = 0; i < 4; i++)
        free(h[i]);
    fx_free(x);
}

static void test_frame_pool(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(4, 0);
    struct store_io *io = x->io;
    void *f[4];
    for (int i = 0; i < 4; i++) {
        f[i] = io->frame_alloc(io);
        assert_non_null(f[i]);
        assert_int_equal((uintptr_t)f[i] % BLK, 0);
        for (int j = 0; j < i; j++) {
            uintptr_t a = (uintptr_t)f[i], b = (uintptr_t)f[j];
            assert_true(a >= b + FRAME || b >= a + FRAME);
        }
        assert_int_equal(io->frames_in_use(io), (unsigned)i + 1);
    }
    assert_null(io->frame_alloc(io));
    void *foreign = heap(FRAME);
    assert_int_equal(io->frame_free(io, foreign), 0);
    assert_int_equal(io->frame_free(io, NULL), 0);
    free(foreign);
    for (int i = 0; i < 4; i++)
        assert_int_equal(io->frame_free(io, f[i]), 1);
    assert_int_equal(io->frames_in_use(io), 0);
    assert_int_equal(x->log.warns, 0);
    /* A frame freed twice is ours (never handed to free(3)), logged. */
    void *g = io->frame_alloc(io);
    assert_non_null(g);
    assert_int_equal(io->frame_free(io, g), 1);
    assert_int_equal(io->frame_free(io, g), 1);
    assert_int_equal(x->log.warns, 1);
    assert_int_equal(io->frames_in_use(io), 0);
    fx_free(x);
}

/* Failed registration: no fixed buffers, hooks NULL, logged, I/O works. */
static void test_fail_register(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = calloc(1, sizeof(*x));
    assert_non_null(x);
    x->dir = tu_mkdtemp("uring-reg");
    x->io = new_io(x, 4, 0, ENOMEM);
    assert_int_equal(store_io_uring_fixed(x->io), 0);
    assert_null(x->io->frame_alloc);
    assert_null(x->io->frame_free);
    assert_null(x->io->frames_in_use);
    assert_int_equal(x->log.warns, 1);
    assert_non_null(strstr(x->log.last_warn, strerror(ENOMEM)));
    assert_non_null(strstr(x->log.last_warn, "fixed buffers off"));
    assert_non_null(strstr(x->log.last_warn, "RLIMIT_MEMLOCK"));
    x->dfd = open(x->dir, O_RDONLY | O_DIRECTORY);
    assert_true(x->dfd >= 0);
    x->fd = open_data(x, "data", O_RDWR | O_CREAT);
    uint8_t *h = heap(2 * (size_t)FRAME);
    tu_pattern(h, 2 * (size_t)FRAME, 40);
    struct iovec v[2] = {{h, FRAME}, {h + FRAME, FRAME}};
    assert_int_equal(x->io->pwritev(x->io, x->fd, v, 2, 0), 2 * FRAME);
    assert_int_equal(x->io->sync(x->io, x->fd, STORE_IO_FDATASYNC), 0);
    memset(h, 0, 2 * (size_t)FRAME);
    assert_int_equal(x->io->pread(x->io, x->fd, h, 2 * (size_t)FRAME, 0),
                     2 * FRAME);
    assert_true(tu_pattern_ok(h, 2 * (size_t)FRAME, 40));
    free(h);
    fx_free(x);

    /* Another errno (and the seam's other sign): no memlock hint. */
    struct logcap c = {0};
    struct store_io_uring_opts o = {.fixed_frames = 2,
                                    .fail_register = -EINVAL,
                                    .log_fn = cap_log,
                                    .log_ctx = &c};
    int rc;
    char err[256];
    struct store_io *io = store_io_uring_new(&o, &rc, err, sizeof(err));
    assert_non_null(io);
    assert_int_equal(store_io_uring_fixed(io), 0);
    assert_int_equal(c.warns, 1);
    assert_non_null(strstr(c.last_warn, strerror(EINVAL)));
    assert_null(strstr(c.last_warn, "RLIMIT_MEMLOCK"));
    io->destroy(io);
}

static void check_fail_ring(int e, const char *extra)
{
    struct logcap c = {0};
    struct store_io_uring_opts o = {
        .fixed_frames = 4, .fail_ring = e, .log_fn = cap_log, .log_ctx = &c};
    int rc = 0;
    char err[256] = "";
    assert_null(store_io_uring_new(&o, &rc, err, sizeof(err)));
    assert_int_equal(rc, -e);
    const char *pre = "io_uring_queue_init: ";
    assert_int_equal(strncmp(err, pre, strlen(pre)), 0);
    assert_non_null(strstr(err, strerror(e)));
    if (extra)
        assert_non_null(strstr(err, extra));
}

/* Failed ring: NULL, -errno and a message (runs without io_uring too). */
static void test_fail_ring(void **state)
{
    (void)state;
    check_fail_ring(EPERM, "/proc/sys/kernel/io_uring_disabled");
    check_fail_ring(ENOSYS, NULL);
    assert_int_equal(store_io_uring_fixed(NULL), 0);
    struct store_io *p = store_io_pread_new();
    assert_non_null(p);
    assert_int_equal(store_io_uring_fixed(p), 0);
    p->destroy(p);
}

/* ---- threads ---- */

#define NTHREADS 4
#define ROUNDS 25

struct worker {
    struct fx *x;
    int t;
    int bad;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct store_io *io = w->x->io;
    uint8_t *f = io->frame_alloc(io);
    uint8_t *h = aligned_alloc(BLK, FRAME);
    if (!f || !h) {
        w->bad = 1;
        goto out;
    }
    uint64_t off = (uint64_t)w->t * FRAME;
    for (int k = 0; k < ROUNDS && !w->bad; k++) {
        uint64_t seed = (uint64_t)w->t * 1000 + (uint64_t)k;
        tu_pattern(f, FRAME, seed);
        struct iovec v = {f, FRAME};
        if (io->pwritev(io, w->x->fd, &v, 1, off) != (ssize_t)FRAME)
            w->bad = 1;
        if (k % 5 == 0 && io->sync(io, w->x->fd, STORE_IO_FDATASYNC) != 0)
            w->bad = 2;
        memset(f, 0, FRAME);
        if (io->pread(io, w->x->fd, f, FRAME, off) != (ssize_t)FRAME ||
            !tu_pattern_ok(f, FRAME, seed))
            w->bad = 3;
        if (io->pread(io, w->x->fd, h, FRAME, off) != (ssize_t)FRAME ||
            !tu_pattern_ok(h, FRAME, seed))
            w->bad = 4;
    }
out:
    if (f)
        io->frame_free(io, f);
    free(h);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    NEED_URING();
    struct fx *x = fx_new(NTHREADS, 0);
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        w[t] = (struct worker){.x = x, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(w[t].bad, 0);
    }
    assert_int_equal(x->io->frames_in_use(x->io), 0);
    fx_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_fixed),
        cmocka_unit_test(test_fixed_round_trip),
        cmocka_unit_test(test_heap_round_trip),
        cmocka_unit_test(test_coalesced_three_frames),
        cmocka_unit_test(test_short_read_eof),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_write_prefix_on_failure),
        cmocka_unit_test(test_many_iovecs_small_ring),
        cmocka_unit_test(test_batch_round_trip),
        cmocka_unit_test(test_batch_failure_is_per_call),
        cmocka_unit_test(test_frame_pool),
        cmocka_unit_test(test_fail_register),
        cmocka_unit_test(test_fail_ring),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
