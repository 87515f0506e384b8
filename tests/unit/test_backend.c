/*
 * test_backend.c - how the store picks its I/O backend and falls back:
 * io_uring with fixed buffers by default; a failed buffer registration
 * keeps io_uring without them; a ring that cannot be created (EPERM,
 * ENOSYS) falls back to pread, logged and reported, unless io_uring is
 * required.  Each fallback is driven through the store's seams.  Also the
 * seed's registered-buffer test: frames come from the registered pool and
 * a write/flush/read round trip through them works.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

struct logs {
    int warnings;
    char last[512];
};

static void count_log(void *ctx, enum store_log_level lvl, const char *msg)
{
    struct logs *l = ctx;
    if (lvl <= STORE_LOG_WARN) {
        l->warnings++;
        snprintf(l->last, sizeof(l->last), "%s", msg);
    }
}

static struct store *open_cfg(const char *dir, enum store_backend b,
                              int fail_ring, int fail_register, struct logs *l,
                              int *rc, char *err, size_t errlen)
{
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.backend = b;
    cfg.uring_fail_ring = fail_ring;
    cfg.uring_fail_register = fail_register;
    cfg.log_fn = count_log;
    cfg.log_ctx = l;
    cfg.lock_timeout_ms = 200;
    return store_open(&cfg, rc, err, errlen);
}

/* io_uring must exist here, or the suite says why it cannot run. */
static int uring_or_skip(const char *dir)
{
    struct logs l = {0};
    int rc;
    char err[256];
    struct store *st =
        open_cfg(dir, STORE_BACKEND_IO_URING, 0, 0, &l, &rc, err, sizeof(err));
    if (st) {
        store_close(st);
        return 1;
    }
    if (getenv("BLOBD_NO_SKIP"))
        fail_msg("io_uring unavailable: %s", err);
    return 0;
}

static void round_trip(struct store *st, uint8_t b)
{
    uint8_t g[16];
    tu_guid_fill(g, b);
    tu_put(st, g, 70000, b);
    assert_int_equal(store_flush(st, NULL), 0);
    tu_check(st, g, 70000, b);
}

static void test_default_is_io_uring_with_fixed_frames(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("backend-default");
    if (!uring_or_skip(dir)) {
        tu_rmtree(dir);
        skip();
    }
    struct logs l = {0};
    int rc;
    char err[256];
    struct store *st =
        open_cfg(dir, STORE_BACKEND_AUTO, 0, 0, &l, &rc, err, sizeof(err));
    assert_non_null(st);
    struct store_stats s;
    store_get_stats(st, &s);
    assert_string_equal(s.backend, "io_uring");
    assert_int_equal(s.registered_buffers, 32);
    assert_string_equal(s.backend_note, "");
    round_trip(st, 1);
    store_close(st);
    tu_rmtree(dir);
}

/* The seed's registered_buffer_allocator_returns_fixed_buffers_when_
 * available: frames come from the registered pool, and data written from
 * one and read into another is right. */
static void test_registered_frames_round_trip(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("backend-fixed");
    if (!uring_or_skip(dir)) {
        tu_rmtree(dir);
        skip();
    }
    struct logs l = {0};
    int rc;
    char err[256];
    struct store *st =
        open_cfg(dir, STORE_BACKEND_IO_URING, 0, 0, &l, &rc, err, sizeof(err));
    assert_non_null(st);
    void *src = store_frame_alloc(st);
    void *dst = store_frame_alloc(st);
    struct store_stats s;
    store_get_stats(st, &s);
    assert_int_equal(s.registered_buffers_in_use, 2);
    memset(src, 0, STORE_FRAME_SIZE);
    ((uint8_t *)src)[100] = 0x5A;
    uint8_t g[16];
    tu_guid_fill(g, 0xF1);
    enum store_outcome out;
    uint64_t v;
    assert_int_equal(store_write(st, g, src, STORE_FRAME_SIZE, NULL, &out, &v),
                     0);
    assert_int_equal(store_flush(st, NULL), 0);
    struct store_blob_info info;
    assert_int_equal(store_read(st, g, dst, &info), 0);
    assert_int_equal(((uint8_t *)dst)[100], 0x5A);
    store_frame_free(st, src);
    store_frame_free(st, dst);
    store_get_stats(st, &s);
    assert_int_equal(s.registered_buffers_in_use, 0);
    /* All 32 taken: the next frame comes from the heap and still works. */
    void *f[33];
    for (int i = 0; i < 33; i++)
        f[i] = store_frame_alloc(st);
    store_get_stats(st, &s);
    assert_int_equal(s.registered_buffers_in_use, 32);
    memset(f[32], 0, STORE_FRAME_SIZE);
    ((uint8_t *)f[32])[7] = 9;
    assert_int_equal(store_write(st, g, f[32], 8, NULL, &out, &v), 0);
    assert_int_equal(store_read(st, g, f[0], &info), 0);
    assert_int_equal(((uint8_t *)f[0])[7], 9);
    for (int i = 0; i < 33; i++)
        store_frame_free(st, f[i]);
    store_close(st);
    tu_rmtree(dir);
}

static void test_register_failure_keeps_io_uring(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("backend-noreg");
    if (!uring_or_skip(dir)) {
        tu_rmtree(dir);
        skip();
    }
    struct logs l = {0};
    int rc;
    char err[256];
    struct store *st =
        open_cfg(dir, STORE_BACKEND_AUTO, 0, ENOMEM, &l, &rc, err, sizeof(err));
    assert_non_null(st);
    struct store_stats s;
    store_get_stats(st, &s);
    assert_string_equal(s.backend, "io_uring");
    assert_int_equal(s.registered_buffers, 0);
    assert_non_null(strstr(s.backend_note, "without fixed buffers"));
    assert_true(l.warnings >= 1);
    round_trip(st, 2);
    store_close(st);
    tu_rmtree(dir);
}

static void ring_refused(int err_no)
{
    char *dir = tu_mkdtemp("backend-noring");
    struct logs l = {0};
    int rc;
    char err[256];
    /* Automatic: pread, with a warning and the reason in the stats. */
    struct store *st =
        open_cfg(dir, STORE_BACKEND_AUTO, err_no, 0, &l, &rc, err, sizeof(err));
    assert_non_null(st);
    struct store_stats s;
    store_get_stats(st, &s);
    assert_string_equal(s.backend, "pread");
    assert_non_null(strstr(s.backend_note, strerror(err_no)));
    assert_non_null(strstr(s.backend_note, "using pread"));
    assert_true(l.warnings >= 1);
    round_trip(st, 3);
    store_close(st);
    /* Required: the open fails and says why. */
    st = open_cfg(dir, STORE_BACKEND_IO_URING, err_no, 0, &l, &rc, err,
                  sizeof(err));
    assert_null(st);
    assert_int_equal(rc, STORE_E_NO_URING);
    assert_non_null(strstr(err, "io_uring"));
    assert_non_null(strstr(err, strerror(err_no)));
    /* Forced pread never touches io_uring. */
    st = open_cfg(dir, STORE_BACKEND_PREAD, err_no, 0, &l, &rc, err,
                  sizeof(err));
    assert_non_null(st);
    store_get_stats(st, &s);
    assert_string_equal(s.backend, "pread");
    assert_string_equal(s.backend_note, "");
    uint8_t g[16];
    tu_guid_fill(g, 3);
    tu_check(st, g, 70000, 3);
    store_close(st);
    tu_rmtree(dir);
}

static void test_ring_eperm_falls_back_to_pread(void **state)
{
    (void)state;
    ring_refused(EPERM);
}

static void test_ring_enosys_falls_back_to_pread(void **state)
{
    (void)state;
    ring_refused(ENOSYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_io_uring_with_fixed_frames),
        cmocka_unit_test(test_registered_frames_round_trip),
        cmocka_unit_test(test_register_failure_keeps_io_uring),
        cmocka_unit_test(test_ring_eperm_falls_back_to_pread),
        cmocka_unit_test(test_ring_enosys_falls_back_to_pread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
