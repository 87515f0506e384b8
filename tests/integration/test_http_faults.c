/*
 * test_http_faults.c - disk faults over HTTP (SPEC §2 "Running out of
 * space" and the sticky failures), on blobd-test with
 * BLOBD_TEST_FAULTS=1: the store runs on the pread backend wrapped in the
 * fault injector, armed through POST /test/fault and /test/avail.
 *
 *  - headroom: below it a PUT that needs blobs.dat to grow is 507, while
 *    reads, DELETE, flush and writes into free slots go on;
 *  - ENOSPC or a short transfer on a data write: not 2xx, nothing stored
 *    or torn, not sticky;
 *  - a failed sync: sticky 503 store_failed until a restart, which
 *    recovers every flushed blob;
 *  - ENOSPC on the log append of a flush: POST /flush 507, the records
 *    stay pending and the next flush makes them durable;
 *  - EIO on a read: 500 io_error, the next read works;
 *  - the opening state (BLOBD_TEST_OPEN_DELAY_MS): 503 not_ready;
 *  - a full queue and a job past its deadline (syncs stalled through
 *    POST /test/stall): 503 overloaded with Retry-After.
 *
 * Every server here runs with --flush-interval-ms 0, so no timer flush
 * takes an armed fault meant for a request.
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "srv.h"

static struct srv g_srv;

static const char *const fault_env[] = {"BLOBD_TEST_FAULTS=1", NULL};
static const char *const quiet_args[] = {"--flush-interval-ms", "0", NULL};

static int setup(void **state)
{
    (void)state;
    memset(&g_srv, 0, sizeof(g_srv));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_srv.dir[0])
        srv_fini(&g_srv);
    memset(&g_srv, 0, sizeof(g_srv));
    return 0;
}

/* ---- helpers ---- */

/* Start blobd-test with the fault endpoints and wait until ready. */
static void fault_up(struct srv *s, const char *const *argv)
{
    srv_init(s);
    int rc = srv_start(s, argv, fault_env);
    if (rc != 0)
        fail_msg("blobd-test did not start: %d (log %s)", rc, s->log);
    if (srv_wait_ready(s) != 0)
        fail_msg("blobd-test on port %d not ready (log %s)", s->port, s->log);
}

/* POST /test/<what>?<query> must answer 200 {"ok":true}. */
static void test_ep(struct srv *s, const char *what, const char *query)
{
    char path[256];
    struct http_resp r;
    snprintf(path, sizeof(path), "/test/%s?%s", what, query);
    http_req_ok(s, "POST", path, NULL, NULL, 0, &r);
    if (r.status != 200 || !strstr(r.body ? r.body : "", "\"ok\""))
        fail_msg("POST %s: status %ld body %.200s (is this blobd-test with "
                 "BLOBD_TEST_FAULTS=1?)",
                 path, r.status, r.body ? r.body : "");
    http_resp_free(&r);
}

static void arm(struct srv *s, const char *query)
{
    test_ep(s, "fault", query);
}

static void disarm(struct srv *s)
{
    test_ep(s, "fault", "disarm=1");
}

static void set_avail(struct srv *s, long long bytes)
{
    char q[64];
    snprintf(q, sizeof(q), "bytes=%lld", bytes);
    test_ep(s, "avail", q);
}

/* PUT guid <- fill(seed, len) with an optional query; *r kept. */
static long put_seed(struct srv *s, const char *guid, const char *query,
                     size_t len, uint64_t seed, struct http_resp *r)
{
    char path[160];
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    http_fill(buf, len, seed);
    snprintf(path, sizeof(path), "/blobs/%s%s", guid, query ? query : "");
    http_req_ok(s, "PUT", path, NULL, buf, len, r);
    free(buf);
    return r->status;
}

/* PUT that must answer want; returns nothing else. */
static void put_ok(struct srv *s, const char *guid, size_t len, uint64_t seed,
                   long want, char etag[API_ETAG_MAX])
{
    struct http_resp r;
    put_seed(s, guid, NULL, len, seed, &r);
    http_expect_status(&r, want, "PUT");
    if (etag && !http_header(&r, "ETag", etag, API_ETAG_MAX))
        fail_msg("PUT: no ETag");
    http_resp_free(&r);
}

static void expect_ready(struct srv *s, long want, const char *code,
                         const char *what)
{
    struct http_resp r;
    http_req_ok(s, "GET", "/readyz", NULL, NULL, 0, &r);
    if (code)
        http_expect_error(&r, want, code, what);
    else
        http_expect_status(&r, want, what);
    http_resp_free(&r);
}

/* /readyz turns 200 within ms. */
static void wait_ready_within(struct srv *s, long ms, const char *what)
{
    uint64_t end = http_mono_ms() + (uint64_t)ms;
    long st = 0;
    while (http_mono_ms() < end) {
        st = http_status(s, "GET", "/readyz", NULL, NULL, 0);
        if (st == 200)
            return;
        http_sleep_ms(50);
    }
    fail_msg("%s: /readyz still %ld after %ld ms", what, st, ms);
}

static long long flush_expect(struct srv *s, long want, const char *code)
{
    struct http_resp r;
    long long rec = -1;
    http_req_ok(s, "POST", "/flush", NULL, NULL, 0, &r);
    if (code) {
        http_expect_error(&r, want, code, "POST /flush");
    } else {
        http_expect_status(&r, want, "POST /flush");
        const char *p = strstr(r.body ? r.body : "", "\"records\":");
        if (!p)
            fail_msg("POST /flush: no records in %.200s", r.body);
        rec = strtoll(p + 10, NULL, 10);
    }
    http_resp_free(&r);
    return rec;
}

/* ---- tests ---- */

static void test_headroom(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    fault_up(s, quiet_args);
    char a[API_GUID_STRLEN + 1], g[API_GUID_STRLEN + 1];
    char full[API_GUID_STRLEN + 1], ea[API_ETAG_MAX];
    struct http_resp r;
    http_guid_rand(a);
    put_ok(s, a, 50000, 1, 201, ea);
    flush_expect(s, 200, NULL);

    /* no room to grow: fill the preallocated slots, then 507 */
    set_avail(s, 0);
    int fitted = 0, refused = 0;
    for (int i = 0; i < 300 && !refused; i++) {
        http_guid_rand(g);
        put_seed(s, g, NULL, 4096, 100 + (uint64_t)i, &r);
        if (r.status == 201) {
            fitted++;
        } else {
            http_expect_error(&r, 507, "no_space",
                              "PUT that needs blobs.dat to grow");
            refused = 1;
            memcpy(full, g, sizeof(full));
        }
        http_resp_free(&r);
    }
    if (!refused)
        fail_msg("300 new blobs stored with 0 bytes free: no 507");
    print_message("%d PUTs fitted into preallocated slots, then 507\n", fitted);
    http_expect_absent(s, full, "refused with 507");
    http_expect_blob(s, a, 50000, 1, ea, NULL);
    expect_ready(s, 503, "no_space", "/readyz below the headroom");
    {
        struct http_resp m;
        http_req_ok(s, "GET", "/metrics", NULL, NULL, 0, &m);
        if (!m.body || !strstr(m.body, "\nblobd_ready 0\n"))
            fail_msg("/metrics below the headroom: blobd_ready is not 0");
        http_resp_free(&m);
    }

    /* DELETE and flush still run; the freed slot is reused */
    char path[128];
    snprintf(path, sizeof(path), "/blobs/%s", a);
    http_req_ok(s, "DELETE", path, NULL, NULL, 0, &r);
    http_expect_status(&r, 204, "DELETE below the headroom");
    http_resp_free(&r);
    flush_expect(s, 200, NULL);
    http_expect_absent(s, a, "deleted");
    put_ok(s, full, 30000, 7, 201, NULL);
    http_expect_blob(s, full, 30000, 7, NULL, NULL);
    /* that was the only free slot */
    http_guid_rand(g);
    put_seed(s, g, NULL, 4096, 8, &r);
    http_expect_error(&r, 507, "no_space", "PUT once the freed slot is used");
    http_resp_free(&r);
    http_expect_absent(s, g, "refused with 507");

    /* space back */
    set_avail(s, -1);
    put_ok(s, g, 4096, 9, 201, NULL);
    http_expect_blob(s, g, 4096, 9, NULL, NULL);
    wait_ready_within(s, 3000, "space restored");
    assert_int_equal(srv_stop(s), 0);
}

static void test_data_write_enospc(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    fault_up(s, quiet_args);
    char a[API_GUID_STRLEN + 1], b[API_GUID_STRLEN + 1], ea[API_ETAG_MAX];
    struct http_resp r;
    http_guid_rand(a);
    http_guid_rand(b);
    put_ok(s, a, 20000, 1, 201, ea);

    arm(s, "op=pwritev&mode=enospc");
    put_seed(s, b, NULL, 20000, 2, &r);
    http_expect_error(&r, 507, "no_space", "PUT with ENOSPC on the data write");
    http_resp_free(&r);
    http_expect_absent(s, b, "its data write failed");

    /* a rewrite that fails keeps the old bytes */
    arm(s, "op=pwritev&mode=enospc");
    put_seed(s, a, NULL, 30000, 3, &r);
    http_expect_error(&r, 507, "no_space",
                      "rewrite with ENOSPC on the data write");
    http_resp_free(&r);
    http_expect_blob(s, a, 20000, 1, ea, NULL);

    /* not sticky */
    put_ok(s, b, 20000, 2, 201, NULL);
    http_expect_blob(s, b, 20000, 2, NULL, NULL);
    put_ok(s, a, 30000, 3, 204, NULL);
    http_expect_blob(s, a, 30000, 3, NULL, NULL);
    expect_ready(s, 200, NULL, "/readyz after ENOSPC");
    flush_expect(s, 200, NULL);
    assert_int_equal(srv_stop(s), 0);
}

static void test_short_write(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    fault_up(s, quiet_args);
    char a[API_GUID_STRLEN + 1], b[API_GUID_STRLEN + 1], c[API_GUID_STRLEN + 1];
    char ea[API_ETAG_MAX];
    struct http_resp r;
    http_guid_rand(a);
    http_guid_rand(b);
    http_guid_rand(c);
    put_ok(s, a, 100000, 1, 201, ea);

    arm(s, "op=pwritev&mode=short");
    put_seed(s, b, NULL, 100000, 2, &r);
    if (r.status >= 200 && r.status < 300)
        fail_msg("PUT with a short data write answered %ld", r.status);
    if (r.status != 507 && r.status != 500 && r.status != 503)
        fail_msg("PUT with a short data write: status %ld body %.200s",
                 r.status, r.body ? r.body : "");
    print_message("short data write: PUT answered %ld\n", r.status);
    http_resp_free(&r);
    http_expect_absent(s, b, "its data write was short");

    arm(s, "op=pwritev&mode=short");
    put_seed(s, a, NULL, 200000, 3, &r);
    if (r.status >= 200 && r.status < 300)
        fail_msg("rewrite with a short data write answered %ld", r.status);
    http_resp_free(&r);
    http_expect_blob(s, a, 100000, 1, ea, NULL); /* the old bytes, whole */

    /* a short write is not sticky (SPEC §2) */
    disarm(s);
    put_ok(s, c, 100000, 4, 201, NULL);
    http_expect_blob(s, c, 100000, 4, NULL, NULL);
    put_ok(s, b, 100000, 2, 201, NULL);
    http_expect_blob(s, b, 100000, 2, NULL, NULL);
    http_expect_blob(s, a, 100000, 1, ea, NULL);
    expect_ready(s, 200, NULL, "/readyz after a short write");
    assert_int_equal(srv_stop(s), 0);
}

static void test_sticky_sync(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    fault_up(s, quiet_args);
    char a[API_GUID_STRLEN + 1], b[API_GUID_STRLEN + 1], c[API_GUID_STRLEN + 1];
    char ea[API_ETAG_MAX], path[160];
    struct http_resp r;
    http_guid_rand(a);
    http_guid_rand(b);
    http_guid_rand(c);
    put_ok(s, a, 70000, 1, 201, ea);
    if (flush_expect(s, 200, NULL) < 1)
        fail_msg("the flush after a PUT reported no records");

    arm(s, "op=sync&mode=eio");
    put_seed(s, b, "?fsync=true", 8000, 2, &r);
    http_expect_error(&r, 503, "store_failed",
                      "PUT ?fsync=true with a failed sync");
    http_expect_retry_after(&r, "PUT ?fsync=true with a failed sync");
    http_resp_free(&r);

    /* sticky: every later write is refused, the fault long gone */
    put_seed(s, c, NULL, 8000, 3, &r);
    http_expect_error(&r, 503, "store_failed", "plain PUT after a failed sync");
    http_expect_retry_after(&r, "plain PUT after a failed sync");
    http_resp_free(&r);
    put_seed(s, a, "?fsync=true", 8000, 4, &r);
    http_expect_error(&r, 503, "store_failed", "rewrite after a failed sync");
    http_resp_free(&r);
    snprintf(path, sizeof(path), "/blobs/%s", a);
    http_req_ok(s, "DELETE", path, NULL, NULL, 0, &r);
    http_expect_error(&r, 503, "store_failed", "DELETE after a failed sync");
    http_resp_free(&r);
    http_req_ok(s, "POST", "/blobs", NULL, "x", 1, &r);
    http_expect_error(&r, 503, "store_failed",
                      "POST /blobs after a failed sync");
    http_resp_free(&r);
    expect_ready(s, 503, "store_failed", "/readyz after a failed sync");
    http_expect_blob(s, a, 70000, 1, ea, NULL); /* reads go on */
    flush_expect(s, 503, "store_failed");
    http_sleep_ms(100);
    if (!srv_log_has(s, "sync") || !srv_log_has(s, "Input/output error"))
        fail_msg("the log %s does not name the failed sync and its errno",
                 s->log);

    srv_kill(s);
    srv_restart(s, quiet_args, fault_env);
    http_expect_blob(s, a, 70000, 1, ea, NULL);
    expect_ready(s, 200, NULL, "/readyz after the restart");
    put_seed(s, b, NULL, 8000, 2, &r);
    if (r.status != 201 && r.status != 204)
        fail_msg("PUT after the restart: %ld", r.status);
    http_resp_free(&r);
    http_expect_blob(s, b, 8000, 2, NULL, NULL);
    put_ok(s, c, 8000, 3, 201, NULL);
    flush_expect(s, 200, NULL);
    assert_int_equal(srv_stop(s), 0);
}

static void test_log_append_enospc(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    fault_up(s, quiet_args);
    char x[API_GUID_STRLEN + 1], ex[API_ETAG_MAX];
    http_guid_rand(x);
    flush_expect(s, 200, NULL); /* nothing pending but x from here */
    put_ok(s, x, 12345, 1, 201, ex);

    /* the data was written: the flush's first pwritev is the log append */
    arm(s, "op=pwritev&mode=enospc&nth=1");
    flush_expect(s, 507, "no_space");
    disarm(s);
    http_expect_blob(s, x, 12345, 1, ex,
                     NULL); /* nothing acknowledged is undone */
    expect_ready(s, 200, NULL, "/readyz after a log ENOSPC (not sticky)");
    long long rec = flush_expect(s, 200, NULL);
    if (rec < 1)
        fail_msg("the retried flush reported %lld records, want >= 1", rec);

    srv_kill(s);
    srv_restart(s, quiet_args, fault_env);
    http_expect_blob(s, x, 12345, 1, ex, NULL);
    assert_int_equal(srv_stop(s), 0);
}

static void test_read_eio(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    fault_up(s, quiet_args);
    char x[API_GUID_STRLEN + 1], ex[API_ETAG_MAX];
    struct http_resp r;
    http_guid_rand(x);
    put_ok(s, x, 40000, 1, 201, ex);

    arm(s, "op=pread&mode=eio");
    memset(&r, 0, sizeof(r));
    http_get(s, x, &r);
    http_expect_error(&r, 500, "io_error", "GET with EIO on the read");
    http_resp_free(&r);
    /* counted in /admin/stats and /metrics */
    http_req_ok(s, "GET", "/admin/stats", NULL, NULL, 0, &r);
    if (!r.body || !strstr(r.body, "\"read_errors\":1,"))
        fail_msg("/admin/stats after a read EIO: %.400s",
                 r.body ? strstr(r.body, "\"http\"") : "(none)");
    http_resp_free(&r);
    http_req_ok(s, "GET", "/metrics", NULL, NULL, 0, &r);
    if (!r.body || !strstr(r.body, "\nblobd_read_errors_total 1\n"))
        fail_msg("/metrics lacks blobd_read_errors_total 1");
    http_resp_free(&r);
    http_expect_blob(s, x, 40000, 1, ex, NULL);
    expect_ready(s, 200, NULL, "/readyz after a read EIO");
    assert_int_equal(srv_stop(s), 0);
}

static void test_opening(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    static const char *const env[] = {"BLOBD_TEST_FAULTS=1",
                                      "BLOBD_TEST_OPEN_DELAY_MS=2000", NULL};
    char g[API_GUID_STRLEN + 1], path[160];
    struct http_resp r;
    http_guid_rand(g);
    srv_init(s);
    uint64_t t0 = http_mono_ms();
    int rc = srv_start(s, quiet_args, env);
    if (rc != 0)
        fail_msg("blobd-test did not start: %d", rc);

    expect_ready(s, 503, "not_ready", "/readyz while opening");
    put_seed(s, g, NULL, 1000, 1, &r);
    http_expect_error(&r, 503, "not_ready", "PUT while opening");
    http_expect_retry_after(&r, "PUT while opening");
    http_resp_free(&r);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    http_req_ok(s, "GET", path, NULL, NULL, 0, &r);
    http_expect_error(&r, 503, "not_ready", "GET while opening");
    http_expect_retry_after(&r, "GET while opening");
    http_resp_free(&r);
    http_req_ok(s, "POST", "/flush", NULL, NULL, 0, &r);
    http_expect_error(&r, 503, "not_ready", "POST /flush while opening");
    http_resp_free(&r);
    http_req_ok(s, "GET", "/healthz", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "/healthz while opening (alive)");
    http_resp_free(&r);
    if (http_mono_ms() - t0 >= 1900)
        print_message("note: the checks above took %" PRIu64 " ms\n",
                      http_mono_ms() - t0);

    wait_ready_within(s, 10000, "after the open delay");
    uint64_t took = http_mono_ms() - t0;
    if (took < 1500)
        fail_msg("ready after %" PRIu64 " ms with a 2000 ms open delay", took);
    put_ok(s, g, 1000, 1, 201, NULL);
    http_expect_blob(s, g, 1000, 1, NULL, NULL);
    assert_int_equal(srv_stop(s), 0);
}

/* ---- a full queue and a job past its deadline: 503 overloaded ---- */

struct bg_put {
    struct srv *s;
    char guid[API_GUID_STRLEN + 1];
    long delay_ms;
    long status;
    long took_ms;
    char code[64];
    int retry_after;
};

static void *bg_put_main(void *arg)
{
    struct bg_put *b = arg;
    struct http_resp r;
    char path[160];
    http_sleep_ms(b->delay_ms);
    snprintf(path, sizeof(path), "/blobs/%s?fsync=true", b->guid);
    uint64_t t0 = http_mono_ms();
    memset(&r, 0, sizeof(r));
    if (http_req(b->s, "PUT", path, NULL, "x", 1, &r) == 0) {
        b->status = r.status;
        char v[32];
        b->retry_after = http_header(&r, "Retry-After", v, sizeof(v));
        const char *e = r.body ? strstr(r.body, "\"error\":\"") : NULL;
        if (e)
            snprintf(b->code, sizeof(b->code), "%.*s",
                     (int)strcspn(e + 9, "\""), e + 9);
    }
    b->took_ms = (long)(http_mono_ms() - t0);
    http_resp_free(&r);
    return NULL;
}

static void test_overload(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    /* One queued job at most, and 600 ms to wait in the queue. */
    const char *args[] = {"--flush-interval-ms", "0",   "--queue-max", "1",
                          "--job-timeout-ms",    "600", NULL};
    fault_up(s, args);
    /* Every sync now takes 1.5 s: the first durable PUT holds the I/O
     * thread in its group commit. */
    test_ep(s, "stall", "ms=1500");
    struct bg_put p[3] = {{.s = s, .delay_ms = 0},
                          {.s = s, .delay_ms = 300},
                          {.s = s, .delay_ms = 500}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        http_guid_rand(p[i].guid);
        assert_int_equal(pthread_create(&t[i], NULL, bg_put_main, &p[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    test_ep(s, "stall", "ms=0");
    /* The first is stored and durable. */
    if (p[0].status != 201)
        fail_msg("first PUT: %ld", p[0].status);
    /* The second waited in the queue past its deadline: 503 overloaded
     * after about 600 ms, and it was never written. */
    if (p[1].status != 503 || strcmp(p[1].code, "overloaded") != 0 ||
        !p[1].retry_after)
        fail_msg("queued PUT: %ld %s (retry-after %d)", p[1].status, p[1].code,
                 p[1].retry_after);
    if (p[1].took_ms < 400)
        fail_msg("queued PUT answered after %ld ms, before its deadline",
                 p[1].took_ms);
    /* The third found the queue full: 503 overloaded at once. */
    if (p[2].status != 503 || strcmp(p[2].code, "overloaded") != 0 ||
        !p[2].retry_after)
        fail_msg("PUT on a full queue: %ld %s", p[2].status, p[2].code);
    if (p[2].took_ms > 400)
        fail_msg("PUT on a full queue took %ld ms", p[2].took_ms);
    struct http_resp r;
    assert_int_equal(http_get(s, p[0].guid, &r), 200);
    http_resp_free(&r);
    assert_int_equal(http_get(s, p[1].guid, &r), 404);
    http_resp_free(&r);
    assert_int_equal(http_get(s, p[2].guid, &r), 404);
    http_resp_free(&r);
    /* And the server goes on. */
    assert_int_equal(put_seed(s, p[2].guid, NULL, 100, 1, &r), 201);
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_headroom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_write_enospc, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_short_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_append_enospc, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_eio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
