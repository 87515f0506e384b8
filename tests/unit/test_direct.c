/*
 * test_direct.c - the O_DIRECT probe and its buffered fallback, the
 * --direct=on requirement, EINVAL after a good probe, and how
 * preallocation treats EOPNOTSUPP (ignored) and EINVAL (an error).
 *
 * A small wrapper around the pread backend refuses what each case needs:
 * open with O_DIRECT, the probe's aligned read, data writes with EINVAL,
 * or fallocate with a chosen errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

struct errio {
    struct store_io io;
    struct store_io *inner;
    int refuse_direct_open; /* openat with O_DIRECT -> -EINVAL */
    int refuse_probe_read;  /* pread of blobs.dat -> -EINVAL */
    int data_fd;
    int write_einval;    /* pwritev on blobs.dat -> -EINVAL */
    int fallocate_errno; /* fallocate -> -errno */
    int warnings;
};

static struct errio *E(struct store_io *io)
{
    return (struct errio *)io;
}

static int e_openat(struct store_io *io, int dirfd, const char *name, int flags,
                    mode_t mode)
{
    if (E(io)->refuse_direct_open && (flags & O_DIRECT))
        return -EINVAL;
    int fd = E(io)->inner->openat(E(io)->inner, dirfd, name, flags, mode);
    if (fd >= 0 && strcmp(name, "blobs.dat") == 0)
        E(io)->data_fd = fd;
    return fd;
}
static int e_close(struct store_io *io, int fd)
{
    return E(io)->inner->close(E(io)->inner, fd);
}
static ssize_t e_pread(struct store_io *io, int fd, void *b, size_t l,
                       uint64_t o)
{
    if (E(io)->refuse_probe_read && fd == E(io)->data_fd)
        return -EINVAL;
    return E(io)->inner->pread(E(io)->inner, fd, b, l, o);
}
static ssize_t e_pwritev(struct store_io *io, int fd, const struct iovec *v,
                         int n, uint64_t o)
{
    if (E(io)->write_einval && fd == E(io)->data_fd)
        return -EINVAL;
    return E(io)->inner->pwritev(E(io)->inner, fd, v, n, o);
}
static int e_sync(struct store_io *io, int fd, enum store_io_sync k)
{
    return E(io)->inner->sync(E(io)->inner, fd, k);
}
static int e_fallocate(struct store_io *io, int fd, uint64_t o, uint64_t l)
{
    if (E(io)->fallocate_errno)
        return -E(io)->fallocate_errno;
    return E(io)->inner->fallocate(E(io)->inner, fd, o, l);
}
static int e_ftruncate(struct store_io *io, int fd, uint64_t l)
{
    return E(io)->inner->ftruncate(E(io)->inner, fd, l);
}
static int e_renameat(struct store_io *io, int d, const char *a, const char *b)
{
    return E(io)->inner->renameat(E(io)->inner, d, a, b);
}
static int e_unlinkat(struct store_io *io, int d, const char *n)
{
    return E(io)->inner->unlinkat(E(io)->inner, d, n);
}
static int e_fstatvfs(struct store_io *io, int fd, uint64_t *a)
{
    return E(io)->inner->fstatvfs(E(io)->inner, fd, a);
}
static void e_destroy(struct store_io *io)
{
    E(io)->inner->destroy(E(io)->inner);
    free(io);
}

static struct errio *errio_new(void)
{
    struct errio *e = calloc(1, sizeof(*e));
    e->inner = store_io_pread_new();
    e->data_fd = -1;
    e->io.name = "errio";
    e->io.openat = e_openat;
    e->io.close = e_close;
    e->io.pread = e_pread;
    e->io.pwritev = e_pwritev;
    e->io.sync = e_sync;
    e->io.fallocate = e_fallocate;
    e->io.ftruncate = e_ftruncate;
    e->io.renameat = e_renameat;
    e->io.unlinkat = e_unlinkat;
    e->io.fstatvfs = e_fstatvfs;
    e->io.destroy = e_destroy;
    return e;
}

static void count_warn(void *ctx, enum store_log_level lvl, const char *msg)
{
    struct errio *e = ctx;
    if (lvl == STORE_LOG_WARN && strstr(msg, "O_DIRECT"))
        e->warnings++;
}

static struct store *open_with(const char *dir, struct errio *e,
                               enum store_direct mode, int *rc, char *err,
                               size_t errlen)
{
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.io = &e->io;
    cfg.direct = mode;
    cfg.log_fn = count_warn;
    cfg.log_ctx = e;
    cfg.lock_timeout_ms = 200;
    return store_open(&cfg, rc, err, errlen);
}

static void test_direct_used_where_accepted(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("direct-ok");
    struct errio *e = errio_new();
    int rc;
    char err[256];
    struct store *st =
        open_with(dir, e, STORE_DIRECT_ON, &rc, err, sizeof(err));
    if (!st && rc == STORE_E_NO_DIRECT && !getenv("BLOBD_NO_SKIP")) {
        /* The temp filesystem itself refuses O_DIRECT. */
        e->io.destroy(&e->io);
        tu_rmtree(dir);
        skip();
    }
    assert_non_null(st);
    struct store_stats s;
    store_get_stats(st, &s);
    assert_int_equal(s.direct, 1);
    uint8_t g[16];
    tu_guid_fill(g, 1);
    tu_put(st, g, 5000, 1);
    assert_int_equal(store_flush(st, NULL), 0);
    tu_check(st, g, 5000, 1);
    store_close(st);
    e->io.destroy(&e->io);
    tu_rmtree(dir);
}

static void check_fallback(int refuse_open)
{
    char *dir = tu_mkdtemp("direct-fallback");
    struct errio *e = errio_new();
    e->refuse_direct_open = refuse_open;
    e->refuse_probe_read = !refuse_open;
    int rc;
    char err[256];
    /* Required: a clear refusal. */
    struct store *st =
        open_with(dir, e, STORE_DIRECT_ON, &rc, err, sizeof(err));
    assert_null(st);
    assert_int_equal(rc, STORE_E_NO_DIRECT);
    assert_non_null(strstr(err, "O_DIRECT"));
    /* Automatic: buffered, with a warning, and reported. */
    e->warnings = 0;
    st = open_with(dir, e, STORE_DIRECT_AUTO, &rc, err, sizeof(err));
    assert_non_null(st);
    assert_true(e->warnings >= 1);
    struct store_stats s;
    store_get_stats(st, &s);
    assert_int_equal(s.direct, 0);
    e->refuse_probe_read = 0;
    uint8_t g[16];
    tu_guid_fill(g, 2);
    tu_put(st, g, 777, 2);
    assert_int_equal(store_flush(st, NULL), 0);
    tu_check(st, g, 777, 2);
    store_close(st);
    e->io.destroy(&e->io);
    tu_rmtree(dir);
}

static void test_open_refused_falls_back_to_buffered(void **state)
{
    (void)state;
    check_fallback(1);
}

static void test_probe_read_refused_falls_back_to_buffered(void **state)
{
    (void)state;
    check_fallback(0);
}

static void test_einval_after_good_probe_is_an_error(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("direct-einval");
    struct errio *e = errio_new();
    int rc;
    char err[256];
    struct store *st =
        open_with(dir, e, STORE_DIRECT_AUTO, &rc, err, sizeof(err));
    assert_non_null(st);
    struct store_stats s;
    store_get_stats(st, &s);
    int direct = s.direct;
    e->write_einval = 1;
    uint8_t g[16];
    tu_guid_fill(g, 3);
    void *f = store_frame_alloc(st);
    enum store_outcome out;
    uint64_t v;
    rc = store_write(st, g, f, 4096, NULL, &out, &v);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(out, STORE_OUT_STORE_FAILED);
    store_get_stats(st, &s);
    assert_int_equal(s.direct, direct); /* never a silent switch */
    assert_int_equal(s.entries, 0);
    assert_int_equal(store_failed(st), 0);
    e->write_einval = 0;
    assert_int_equal(store_write(st, g, f, 4096, NULL, &out, &v), 0);
    store_frame_free(st, f);
    store_close(st);
    e->io.destroy(&e->io);
    tu_rmtree(dir);
}

static void test_fallocate_unsupported_is_ignored(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("falloc-unsup");
    struct errio *e = errio_new();
    e->fallocate_errno = EOPNOTSUPP;
    struct store *st = tu_open(dir, &e->io);
    uint8_t g[16];
    for (int i = 0; i < 10; i++) {
        tu_guid_num(g, (uint64_t)i);
        tu_put(st, g, 100 + (uint32_t)i, (uint64_t)i);
    }
    assert_int_equal(store_flush(st, NULL), 0);
    store_close(st);
    st = tu_open(dir, NULL);
    for (int i = 0; i < 10; i++) {
        tu_guid_num(g, (uint64_t)i);
        tu_check(st, g, 100 + (uint32_t)i, (uint64_t)i);
    }
    store_close(st);
    e->io.destroy(&e->io);
    tu_rmtree(dir);
}

static void test_fallocate_einval_is_an_error(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("falloc-einval");
    struct errio *e = errio_new();
    e->fallocate_errno = EINVAL;
    struct store *st = tu_open(dir, &e->io);
    uint8_t g[16];
    tu_guid_fill(g, 9);
    void *f = store_frame_alloc(st);
    enum store_outcome out;
    uint64_t v;
    int rc = store_write(st, g, f, 10, NULL, &out, &v);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(out, STORE_OUT_STORE_FAILED);
    assert_int_equal(store_count(st), 0);
    e->fallocate_errno = 0;
    assert_int_equal(store_write(st, g, f, 10, NULL, &out, &v), 0);
    assert_int_equal(out, STORE_OUT_CREATED);
    store_frame_free(st, f);
    store_close(st);
    e->io.destroy(&e->io);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_used_where_accepted),
        cmocka_unit_test(test_open_refused_falls_back_to_buffered),
        cmocka_unit_test(test_probe_read_refused_falls_back_to_buffered),
        cmocka_unit_test(test_einval_after_good_probe_is_an_error),
        cmocka_unit_test(test_fallocate_unsupported_is_ignored),
        cmocka_unit_test(test_fallocate_einval_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
