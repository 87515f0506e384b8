/*
 * test_http_flush.c - the durability contract over HTTP (SPEC §2): the
 * Blob-Durable header, ?fsync=true, --sync-writes, POST /flush and what
 * it reports, and what survives a SIGKILL (flushed or fsync'd changes) or
 * a clean SIGTERM (every acknowledged change) once the server is
 * restarted in the same data dir; ETags are stable across restarts and
 * new writes after a restart use a higher generation.
 */
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "srv.h"

static struct srv g_srv;

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

/* Blob-Durable must be want ("true" / "false"). */
static void expect_durable(const struct http_resp *r, const char *want,
                           const char *what)
{
    char v[32];
    if (!http_header(r, "Blob-Durable", v, sizeof(v)))
        fail_msg("%s: no Blob-Durable header", what);
    if (strcmp(v, want) != 0)
        fail_msg("%s: Blob-Durable: %s, want %s", what, v, want);
}

static uint64_t etag_gen(const char *etag)
{
    uint64_t gen, n;
    if (sscanf(etag, "\"%" SCNu64 "-%" SCNu64 "\"", &gen, &n) != 2)
        fail_msg("ETag %s is not \"<gen>-<n>\"", etag);
    return gen;
}

/* A number member of a flat JSON object: 1 if found. */
static int json_num(const char *body, const char *key, long long *out)
{
    char q[64];
    snprintf(q, sizeof(q), "\"%s\"", key);
    const char *p = body ? strstr(body, q) : NULL;
    if (!p)
        return 0;
    p += strlen(q);
    while (*p == ' ')
        p++;
    if (*p++ != ':')
        return 0;
    while (*p == ' ')
        p++;
    char *end;
    errno = 0;
    *out = strtoll(p, &end, 10);
    return end != p && errno == 0;
}

/* POST /flush: 200 with a JSON body; returns "records". */
static long long flush_records(struct srv *s)
{
    struct http_resp r;
    char ct[128];
    long long rec = -1, v;
    http_req_ok(s, "POST", "/flush", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "POST /flush");
    if (!http_header(&r, "Content-Type", ct, sizeof(ct)) ||
        !strstr(ct, "application/json"))
        fail_msg("POST /flush: Content-Type %s", ct);
    if (!json_num(r.body, "records", &rec) || rec < 0)
        fail_msg("POST /flush: no records in %.300s", r.body);
    if (!json_num(r.body, "log_bytes", &v) || v < 0)
        fail_msg("POST /flush: no log_bytes in %.300s", r.body);
    if (!json_num(r.body, "data_synced", &v) || (v != 0 && v != 1))
        fail_msg("POST /flush: bad data_synced in %.300s", r.body);
    if (!strstr(r.body, "\"duration_seconds\"") ||
        !strstr(r.body, "\"compaction_started\""))
        fail_msg("POST /flush: fields missing in %.300s", r.body);
    http_resp_free(&r);
    return rec;
}

/* The model of one blob. */
struct blob {
    char guid[API_GUID_STRLEN + 1];
    size_t len;
    uint64_t seed;
    char etag[API_ETAG_MAX];
    int present;
};

/* PUT b (seed, len) with an optional query; fills b->etag; returns the
 * status; *r is left for the caller to inspect and free. */
static long put_blob(struct srv *s, struct blob *b, const char *query,
                     struct http_resp *r)
{
    char path[160];
    uint8_t *buf = malloc(b->len ? b->len : 1);
    assert_non_null(buf);
    http_fill(buf, b->len, b->seed);
    snprintf(path, sizeof(path), "/blobs/%s%s", b->guid, query ? query : "");
    http_req_ok(s, "PUT", path, NULL, buf, b->len, r);
    free(buf);
    if (r->status == 201 || r->status == 204) {
        http_etag_of(r, b->etag, "PUT");
        b->present = 1;
    }
    return r->status;
}

/* GET b: its bytes and ETag while present, 404 once deleted. */
static void check_blob(struct srv *s, const struct blob *b)
{
    if (b->present)
        http_expect_blob(s, b->guid, b->len, b->seed, b->etag, NULL);
    else
        http_expect_absent(s, b->guid, "deleted");
}

static void del_blob(struct srv *s, struct blob *b, const char *query,
                     const char *durable)
{
    char path[160];
    struct http_resp r;
    snprintf(path, sizeof(path), "/blobs/%s%s", b->guid, query ? query : "");
    http_req_ok(s, "DELETE", path, NULL, NULL, 0, &r);
    http_expect_status(&r, 204, "DELETE");
    if (durable)
        expect_durable(&r, durable, "DELETE");
    http_resp_free(&r);
    b->present = 0;
}

/* ---- tests ---- */

static void test_durable_header(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    /* No timer flush: one could share a round with a plain write and make
     * it durable (Blob-Durable: true would then be right, and this test
     * would flake). */
    const char *args[] = {"--flush-interval-ms", "0", NULL};
    srv_up(s, args);
    struct blob a = {.len = 10000, .seed = 1}, b = {.len = 5000, .seed = 2};
    struct blob c = {.len = 3000, .seed = 3};
    struct http_resp r;
    char loc[256];
    http_guid_rand(a.guid);
    http_guid_rand(b.guid);
    http_guid_rand(c.guid);

    put_blob(s, &a, NULL, &r);
    http_expect_status(&r, 201, "plain PUT");
    expect_durable(&r, "false", "plain PUT");
    if (!strstr(r.body ? r.body : "", "\"durable\":false"))
        fail_msg("plain PUT: body %s", r.body ? r.body : "(none)");
    http_resp_free(&r);

    a.seed = 4;
    put_blob(s, &a, "?fsync=true", &r);
    http_expect_status(&r, 204, "PUT ?fsync=true (replace)");
    expect_durable(&r, "true", "PUT ?fsync=true (replace)");
    http_resp_free(&r);

    put_blob(s, &b, "?fsync=true", &r);
    http_expect_status(&r, 201, "PUT ?fsync=true (new)");
    expect_durable(&r, "true", "PUT ?fsync=true (new)");
    if (!strstr(r.body ? r.body : "", "\"durable\":true"))
        fail_msg("PUT ?fsync=true: body %s", r.body ? r.body : "(none)");
    http_resp_free(&r);

    put_blob(s, &c, "?fsync=1", &r);
    http_expect_status(&r, 201, "PUT ?fsync=1");
    expect_durable(&r, "true", "PUT ?fsync=1");
    http_resp_free(&r);

    uint8_t body[777];
    http_fill(body, sizeof(body), 5);
    http_req_ok(s, "POST", "/blobs", NULL, body, sizeof(body), &r);
    http_expect_status(&r, 201, "plain POST /blobs");
    expect_durable(&r, "false", "plain POST /blobs");
    http_resp_free(&r);
    http_req_ok(s, "POST", "/blobs?fsync=true", NULL, body, sizeof(body), &r);
    http_expect_status(&r, 201, "POST /blobs?fsync=true");
    expect_durable(&r, "true", "POST /blobs?fsync=true");
    if (!http_header(&r, "Location", loc, sizeof(loc)) ||
        strncmp(loc, "/blobs/", 7) != 0 || strlen(loc) != 7 + 32)
        fail_msg("POST /blobs: Location %s", loc);
    http_resp_free(&r);
    struct http_resp g;
    assert_int_equal(http_get(s, loc + 7, &g), 200);
    assert_int_equal(g.body_len, sizeof(body));
    assert_memory_equal(g.body, body, sizeof(body));
    http_resp_free(&g);

    del_blob(s, &a, NULL, "false");
    del_blob(s, &b, "?fsync=true", "true");
    check_blob(s, &a);
    check_blob(s, &b);
    check_blob(s, &c);

    /* bad fsync values: 400 bad_query, nothing changed */
    struct blob d = {.len = 100, .seed = 6};
    http_guid_rand(d.guid);
    put_blob(s, &d, "?fsync=bogus", &r);
    http_expect_error(&r, 400, "bad_query", "PUT ?fsync=bogus");
    http_resp_free(&r);
    d.present = 0;
    check_blob(s, &d);
    http_req_ok(s, "POST", "/blobs?fsync=yes", NULL, body, sizeof(body), &r);
    http_expect_error(&r, 400, "bad_query", "POST /blobs?fsync=yes");
    http_resp_free(&r);
    char path[160];
    snprintf(path, sizeof(path), "/blobs/%s?fsync=2", c.guid);
    http_req_ok(s, "DELETE", path, NULL, NULL, 0, &r);
    http_expect_error(&r, 400, "bad_query", "DELETE ?fsync=2");
    http_resp_free(&r);
    check_blob(s, &c); /* still there */
    assert_int_equal(srv_stop(s), 0);
}

static void test_flush_records(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--flush-interval-ms", "0", NULL};
    srv_up(s, args);
    struct blob b[4] = {{.len = 4096, .seed = 10},
                        {.len = 1, .seed = 11},
                        {.len = 100000, .seed = 12},
                        {.len = 524288, .seed = 13}};
    struct http_resp r;
    for (int i = 0; i < 4; i++)
        http_guid_rand(b[i].guid);

    flush_records(s); /* whatever the open left pending */
    long long rec = flush_records(s);
    if (rec != 0)
        fail_msg("a flush with no change since the last: records %lld", rec);

    put_blob(s, &b[0], NULL, &r);
    http_expect_status(&r, 201, "PUT");
    expect_durable(&r, "false", "PUT (--flush-interval-ms 0)");
    http_resp_free(&r);
    rec = flush_records(s);
    if (rec < 1)
        fail_msg("flush after one PUT: records %lld, want >= 1", rec);
    rec = flush_records(s);
    if (rec != 0)
        fail_msg("second flush right away: records %lld, want 0", rec);

    for (int i = 1; i < 4; i++) {
        put_blob(s, &b[i], NULL, &r);
        http_expect_status(&r, 201, "PUT");
        http_resp_free(&r);
    }
    del_blob(s, &b[0], NULL, "false");
    rec = flush_records(s);
    if (rec < 4)
        fail_msg("flush after 3 PUTs and a DELETE: records %lld, want >= 4",
                 rec);
    rec = flush_records(s);
    if (rec != 0)
        fail_msg("second flush right away: records %lld, want 0", rec);
    for (int i = 0; i < 4; i++)
        check_blob(s, &b[i]);
    assert_int_equal(srv_stop(s), 0);
}

static void test_sync_writes(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--sync-writes", "--flush-interval-ms", "0", NULL};
    srv_up(s, args);
    struct blob a = {.len = 8000, .seed = 20}, b = {.len = 9000, .seed = 21};
    struct blob p = {.len = 333, .seed = 22};
    struct http_resp r;
    char loc[256];
    http_guid_rand(a.guid);
    http_guid_rand(b.guid);

    put_blob(s, &a, NULL, &r);
    http_expect_status(&r, 201, "PUT (--sync-writes)");
    expect_durable(&r, "true", "PUT new (--sync-writes)");
    http_resp_free(&r);
    a.seed = 23;
    put_blob(s, &a, NULL, &r);
    http_expect_status(&r, 204, "PUT replace (--sync-writes)");
    expect_durable(&r, "true", "PUT replace (--sync-writes)");
    http_resp_free(&r);
    put_blob(s, &b, NULL, &r);
    http_expect_status(&r, 201, "PUT (--sync-writes)");
    http_resp_free(&r);

    uint8_t body[333];
    http_fill(body, sizeof(body), p.seed);
    http_req_ok(s, "POST", "/blobs", NULL, body, sizeof(body), &r);
    http_expect_status(&r, 201, "POST /blobs (--sync-writes)");
    expect_durable(&r, "true", "POST /blobs (--sync-writes)");
    if (!http_header(&r, "Location", loc, sizeof(loc)) || strlen(loc) != 7 + 32)
        fail_msg("POST /blobs: Location %s", loc);
    http_etag_of(&r, p.etag, "POST /blobs");
    http_resp_free(&r);
    memcpy(p.guid, loc + 7, API_GUID_STRLEN);
    p.guid[API_GUID_STRLEN] = '\0';
    p.present = 1;

    del_blob(s, &b, NULL, "true");

    /* every answer said durable: all of it survives a SIGKILL */
    srv_kill(s);
    const char *args2[] = {"--flush-interval-ms", "0", NULL};
    srv_restart(s, args2, NULL);
    check_blob(s, &a);
    check_blob(s, &b);
    check_blob(s, &p);
    assert_int_equal(srv_stop(s), 0);
}

#define NPERSIST 50

static size_t mixed_len(int i, uint64_t *rs)
{
    static const size_t fixed[] = {0,     1,      4095,   4096,  4097,
                                   65536, 100000, 524287, 524288};
    size_t nf = sizeof(fixed) / sizeof(fixed[0]);
    if ((size_t)i < nf)
        return fixed[i];
    return (size_t)(tu_rand(rs) % (i % 3 == 0 ? 524289 : 20000));
}

static void test_restart_persistence(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--flush-interval-ms", "0", NULL};
    srv_up(s, args);
    uint64_t rs = tu_seed();
    static struct blob b[NPERSIST];
    struct http_resp r;
    uint64_t maxgen = 0;
    for (int i = 0; i < NPERSIST; i++) {
        memset(&b[i], 0, sizeof(b[i]));
        http_guid_rand(b[i].guid);
        b[i].len = mixed_len(i, &rs);
        b[i].seed = tu_rand(&rs);
        put_blob(s, &b[i], NULL, &r);
        http_expect_status(&r, 201, "PUT");
        http_resp_free(&r);
    }
    /* a few rewrites and deletes on top */
    for (int i = 10; i < 15; i++) {
        b[i].seed = tu_rand(&rs);
        b[i].len = mixed_len(i + 1, &rs);
        put_blob(s, &b[i], NULL, &r);
        http_expect_status(&r, 204, "PUT (replace)");
        http_resp_free(&r);
    }
    for (int i = 20; i < 23; i++)
        del_blob(s, &b[i], NULL, NULL);
    for (int i = 0; i < NPERSIST; i++) {
        check_blob(s, &b[i]);
        if (b[i].present && etag_gen(b[i].etag) > maxgen)
            maxgen = etag_gen(b[i].etag);
    }
    if (flush_records(s) < NPERSIST)
        fail_msg("the flush covered fewer records than blobs written");
    int oldport = s->port;

    srv_kill(s);
    srv_restart(s, args, NULL);
    print_message("restarted: port %d -> %d\n", oldport, s->port);
    for (int i = 0; i < NPERSIST; i++)
        check_blob(s, &b[i]);

    /* new writes use a higher generation; old ETags stay */
    struct blob n = {.len = 1234, .seed = 99};
    http_guid_rand(n.guid);
    put_blob(s, &n, NULL, &r);
    http_expect_status(&r, 201, "PUT after restart");
    http_resp_free(&r);
    if (etag_gen(n.etag) <= maxgen)
        fail_msg("ETag after restart %s: generation not above %" PRIu64, n.etag,
                 maxgen);
    b[0].seed = 98;
    b[0].len = 4321;
    put_blob(s, &b[0], NULL, &r);
    http_expect_status(&r, 204, "rewrite after restart");
    http_resp_free(&r);
    if (etag_gen(b[0].etag) <= maxgen)
        fail_msg("ETag of a rewrite after restart %s: generation not above "
                 "%" PRIu64,
                 b[0].etag, maxgen);
    for (int i = 0; i < NPERSIST; i++)
        check_blob(s, &b[i]);
    check_blob(s, &n);
    assert_int_equal(srv_stop(s), 0);
}

static void test_fsync_survives_kill(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--flush-interval-ms", "0", NULL};
    srv_up(s, args);
    uint64_t rs = tu_seed() ^ 0x5555;
    struct blob b[12];
    struct http_resp r;
    for (int i = 0; i < 12; i++) {
        memset(&b[i], 0, sizeof(b[i]));
        http_guid_rand(b[i].guid);
        b[i].len = (size_t)(tu_rand(&rs) % 300000);
        b[i].seed = tu_rand(&rs);
        put_blob(s, &b[i], "?fsync=true", &r);
        http_expect_status(&r, 201, "PUT ?fsync=true");
        expect_durable(&r, "true", "PUT ?fsync=true");
        http_resp_free(&r);
    }
    b[3].seed = 77;
    put_blob(s, &b[3], "?fsync=true", &r);
    http_expect_status(&r, 204, "PUT ?fsync=true (replace)");
    expect_durable(&r, "true", "PUT ?fsync=true (replace)");
    http_resp_free(&r);
    del_blob(s, &b[5], "?fsync=true", "true");

    srv_kill(s);
    srv_restart(s, args, NULL);
    for (int i = 0; i < 12; i++)
        check_blob(s, &b[i]);
    assert_int_equal(srv_stop(s), 0);
}

static void test_sigterm_flushes(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--flush-interval-ms", "0", NULL};
    srv_up(s, args);
    uint64_t rs = tu_seed() ^ 0xaaaa;
    struct blob b[20];
    struct http_resp r;
    uint64_t maxgen = 0;
    for (int i = 0; i < 20; i++) {
        memset(&b[i], 0, sizeof(b[i]));
        http_guid_rand(b[i].guid);
        b[i].len = (size_t)(tu_rand(&rs) % 200000);
        b[i].seed = tu_rand(&rs);
        put_blob(s, &b[i], NULL, &r);
        http_expect_status(&r, 201, "PUT");
        expect_durable(&r, "false", "plain PUT (--flush-interval-ms 0)");
        http_resp_free(&r);
    }
    flush_records(s); /* b[0..19] flushed; what follows is not */
    b[1].seed = 1234;
    put_blob(s, &b[1], NULL, &r);
    http_expect_status(&r, 204, "PUT (replace)");
    http_resp_free(&r);
    del_blob(s, &b[2], NULL, "false");
    struct blob late[5];
    for (int i = 0; i < 5; i++) {
        memset(&late[i], 0, sizeof(late[i]));
        http_guid_rand(late[i].guid);
        late[i].len = 5000 + (size_t)i;
        late[i].seed = 500 + (uint64_t)i;
        put_blob(s, &late[i], NULL, &r);
        http_expect_status(&r, 201, "PUT");
        http_resp_free(&r);
    }
    for (int i = 0; i < 20; i++)
        if (b[i].present && etag_gen(b[i].etag) > maxgen)
            maxgen = etag_gen(b[i].etag);

    int st = srv_stop(s);
    if (st != 0)
        fail_msg("SIGTERM: exit status %d, want 0 (log %s)", st, s->log);
    srv_restart(s, args, NULL);
    for (int i = 0; i < 20; i++)
        check_blob(s, &b[i]);
    for (int i = 0; i < 5; i++)
        check_blob(s, &late[i]);
    struct blob n = {.len = 10, .seed = 3};
    http_guid_rand(n.guid);
    put_blob(s, &n, NULL, &r);
    http_expect_status(&r, 201, "PUT after restart");
    http_resp_free(&r);
    if (etag_gen(n.etag) <= maxgen)
        fail_msg("ETag after restart %s: generation not above %" PRIu64, n.etag,
                 maxgen);
    assert_int_equal(srv_stop(s), 0);
}

static void test_flush_interval(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--flush-interval-ms", "200", NULL};
    srv_up(s, args);
    struct blob b[5];
    struct http_resp r;
    for (int i = 0; i < 5; i++) {
        memset(&b[i], 0, sizeof(b[i]));
        http_guid_rand(b[i].guid);
        b[i].len = 1000 + 30000 * (size_t)i;
        b[i].seed = 900 + (uint64_t)i;
        put_blob(s, &b[i], NULL, &r);
        http_expect_status(&r, 201, "PUT");
        expect_durable(&r, "false", "plain PUT");
        http_resp_free(&r);
    }
    http_sleep_ms(1000); /* five flush intervals */
    srv_kill(s);
    srv_restart(s, args, NULL);
    for (int i = 0; i < 5; i++)
        check_blob(s, &b[i]);
    assert_int_equal(srv_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_durable_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_persistence, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fsync_survives_kill, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_interval, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
