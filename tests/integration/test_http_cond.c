/*
 * test_http_cond.c - conditional writes against a real blobd (SPEC §2):
 * If-None-Match: * (create-only), If-Match: <etag> (compare-and-swap),
 * If-Match: *, conditional DELETE, and races: many clients creating the
 * same GUID at once (exactly one wins), and a counter incremented by
 * compare-and-swap from several threads (no lost update).
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

/* PUT /blobs/<guid> with one optional extra header. */
static long put1(struct srv *s, const char *guid, const char *hdr,
                 const void *body, size_t len, struct http_resp *r)
{
    char path[128];
    const char *h[2] = {hdr, NULL};
    snprintf(path, sizeof(path), "/blobs/%s", guid);
    return http_req_ok(s, "PUT", path, hdr ? h : NULL, body, len, r);
}

static long del1(struct srv *s, const char *guid, const char *hdr,
                 struct http_resp *r)
{
    char path[128];
    const char *h[2] = {hdr, NULL};
    snprintf(path, sizeof(path), "/blobs/%s", guid);
    return http_req_ok(s, "DELETE", path, hdr ? h : NULL, NULL, 0, r);
}

/* "\"<gen>-<n>\"" -> gen, n; fails the test on another shape. */
static void etag_parse(const char *etag, uint64_t *gen, uint64_t *n)
{
    if (sscanf(etag, "\"%" SCNu64 "-%" SCNu64 "\"", gen, n) != 2)
        fail_msg("ETag %s is not \"<gen>-<n>\"", etag);
}

/* ---- tests ---- */

static void test_if_none_match_star(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, NULL);
    char g[API_GUID_STRLEN + 1], e1[API_ETAG_MAX];
    uint8_t a[3000], b[5000];
    struct http_resp r;
    http_guid_rand(g);
    http_fill(a, sizeof(a), 1);
    http_fill(b, sizeof(b), 2);

    put1(s, g, "If-None-Match: *", a, sizeof(a), &r);
    http_expect_status(&r, 201, "PUT If-None-Match: * on an absent blob");
    http_etag_of(&r, e1, "create-only PUT");
    http_resp_free(&r);
    http_expect_data(s, g, a, sizeof(a), NULL, NULL);

    put1(s, g, "If-None-Match: *", b, sizeof(b), &r);
    http_expect_error(&r, 412, "precondition_failed",
                      "PUT If-None-Match: * on a present blob");
    http_resp_free(&r);
    http_expect_data(s, g, a, sizeof(a), NULL, NULL); /* unchanged */

    /* the ETag did not move either */
    char path[128], e2[API_ETAG_MAX];
    snprintf(path, sizeof(path), "/blobs/%s", g);
    http_req_ok(s, "HEAD", path, NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "HEAD after a refused create");
    http_etag_of(&r, e2, "HEAD");
    assert_string_equal(e1, e2);
    http_resp_free(&r);
    assert_int_equal(srv_stop(s), 0);
}

static void test_if_match(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, NULL);
    char g[API_GUID_STRLEN + 1], absent[API_GUID_STRLEN + 1];
    char e1[API_ETAG_MAX], e2[API_ETAG_MAX], e3[API_ETAG_MAX], h[128];
    uint8_t a[1000], b[70000], c[4096];
    struct http_resp r;
    http_guid_rand(g);
    http_guid_rand(absent);
    http_fill(a, sizeof(a), 11);
    http_fill(b, sizeof(b), 12);
    http_fill(c, sizeof(c), 13);

    /* If-Match on an absent blob: 412, nothing created */
    put1(s, absent, "If-Match: \"1-1\"", a, sizeof(a), &r);
    http_expect_error(&r, 412, "precondition_failed",
                      "PUT If-Match <etag> on an absent blob");
    http_resp_free(&r);
    http_expect_absent(s, absent, NULL);
    put1(s, absent, "If-Match: *", a, sizeof(a), &r);
    http_expect_error(&r, 412, "precondition_failed",
                      "PUT If-Match: * on an absent blob");
    http_resp_free(&r);
    http_expect_absent(s, absent, NULL);

    put1(s, g, NULL, a, sizeof(a), &r);
    http_expect_status(&r, 201, "plain PUT");
    http_etag_of(&r, e1, "plain PUT");
    http_resp_free(&r);

    /* current etag: replaced, new etag */
    snprintf(h, sizeof(h), "If-Match: %s", e1);
    put1(s, g, h, b, sizeof(b), &r);
    http_expect_status(&r, 204, "PUT If-Match <current etag>");
    http_etag_of(&r, e2, "PUT If-Match <current etag>");
    http_resp_free(&r);
    if (!strcmp(e1, e2))
        fail_msg("a replacing PUT kept the ETag %s", e1);
    http_expect_data(s, g, b, sizeof(b), NULL, NULL);

    /* stale etag: 412, bytes unchanged */
    put1(s, g, h, c, sizeof(c), &r);
    http_expect_error(&r, 412, "precondition_failed",
                      "PUT If-Match <stale etag>");
    http_resp_free(&r);
    http_expect_data(s, g, b, sizeof(b), NULL, NULL);

    /* If-Match: * on a present blob */
    put1(s, g, "If-Match: *", c, sizeof(c), &r);
    http_expect_status(&r, 204, "PUT If-Match: * on a present blob");
    http_etag_of(&r, e3, "PUT If-Match: *");
    http_resp_free(&r);
    if (!strcmp(e3, e2) || !strcmp(e3, e1))
        fail_msg("If-Match: * PUT reused an ETag: %s", e3);
    http_expect_data(s, g, c, sizeof(c), NULL, NULL);

    /* a list holding the current tag matches */
    snprintf(h, sizeof(h), "If-Match: %s, %s", e1, e3);
    put1(s, g, h, a, sizeof(a), &r);
    http_expect_status(&r, 204, "PUT If-Match <stale>, <current>");
    http_resp_free(&r);
    http_expect_data(s, g, a, sizeof(a), NULL, NULL);
    assert_int_equal(srv_stop(s), 0);
}

static void test_delete_if_match(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, NULL);
    char g[API_GUID_STRLEN + 1], e1[API_ETAG_MAX], e2[API_ETAG_MAX], h[128];
    uint8_t a[2000], b[3000];
    struct http_resp r;
    http_guid_rand(g);
    http_fill(a, sizeof(a), 21);
    http_fill(b, sizeof(b), 22);

    put1(s, g, NULL, a, sizeof(a), &r);
    http_expect_status(&r, 201, "PUT");
    http_etag_of(&r, e1, "PUT");
    http_resp_free(&r);
    put1(s, g, NULL, b, sizeof(b), &r);
    http_expect_status(&r, 204, "PUT (replace)");
    http_etag_of(&r, e2, "PUT (replace)");
    http_resp_free(&r);

    snprintf(h, sizeof(h), "If-Match: %s", e1);
    del1(s, g, h, &r);
    http_expect_error(&r, 412, "precondition_failed",
                      "DELETE If-Match <stale etag>");
    http_resp_free(&r);
    http_expect_data(s, g, b, sizeof(b), NULL, NULL);

    snprintf(h, sizeof(h), "If-Match: %s", e2);
    del1(s, g, h, &r);
    http_expect_status(&r, 204, "DELETE If-Match <current etag>");
    http_resp_free(&r);
    http_expect_absent(s, g, NULL);

    del1(s, g, NULL, &r);
    http_expect_error(&r, 404, "not_found", "DELETE of an absent blob");
    http_resp_free(&r);
    del1(s, g, h, &r);
    if (r.status != 412 && r.status != 404)
        fail_msg("DELETE If-Match of an absent blob: status %ld", r.status);
    http_resp_free(&r);
    assert_int_equal(srv_stop(s), 0);
}

static void test_if_none_match_etag(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, NULL);
    char g[API_GUID_STRLEN + 1], e1[API_ETAG_MAX], e2[API_ETAG_MAX], h[128];
    uint8_t a[500], b[600];
    uint64_t gen, n;
    struct http_resp r;
    http_guid_rand(g);
    http_fill(a, sizeof(a), 31);
    http_fill(b, sizeof(b), 32);

    put1(s, g, NULL, a, sizeof(a), &r);
    http_expect_status(&r, 201, "PUT");
    http_etag_of(&r, e1, "PUT");
    http_resp_free(&r);
    etag_parse(e1, &gen, &n);

    snprintf(h, sizeof(h), "If-None-Match: %s", e1);
    put1(s, g, h, b, sizeof(b), &r);
    http_expect_error(&r, 412, "precondition_failed",
                      "PUT If-None-Match <current etag>");
    http_resp_free(&r);
    http_expect_data(s, g, a, sizeof(a), NULL, NULL);

    snprintf(h, sizeof(h), "If-None-Match: \"%" PRIu64 "-%" PRIu64 "\"", gen,
             n + 1000);
    put1(s, g, h, b, sizeof(b), &r);
    http_expect_status(&r, 204, "PUT If-None-Match <another etag>");
    http_etag_of(&r, e2, "PUT If-None-Match <another etag>");
    http_resp_free(&r);
    http_expect_data(s, g, b, sizeof(b), NULL, NULL);

    /* the old tag is another tag now */
    snprintf(h, sizeof(h), "If-None-Match: %s", e1);
    put1(s, g, h, a, sizeof(a), &r);
    http_expect_status(&r, 204, "PUT If-None-Match <the previous etag>");
    http_resp_free(&r);
    http_expect_data(s, g, a, sizeof(a), NULL, NULL);
    assert_int_equal(srv_stop(s), 0);
}

/* ---- races ---- */

#define CREATORS 16
#define CREATE_LEN 3000

struct creator {
    struct srv *s;
    const char *guid;
    pthread_barrier_t *bar;
    int idx;
    long status;
    int failed;
};

static void creator_body(uint8_t *buf, int idx)
{
    http_fill(buf, CREATE_LEN, 1000 + (uint64_t)idx);
    buf[0] = (uint8_t)idx;
}

static void *creator_main(void *p)
{
    struct creator *c = p;
    uint8_t body[CREATE_LEN];
    char path[128];
    const char *h[] = {"If-None-Match: *", NULL};
    creator_body(body, c->idx);
    snprintf(path, sizeof(path), "/blobs/%s", c->guid);
    pthread_barrier_wait(c->bar);
    struct http_resp r;
    memset(&r, 0, sizeof(r));
    if (http_req(c->s, "PUT", path, h, body, sizeof(body), &r) != 0)
        c->failed = 1;
    c->status = r.status;
    http_resp_free(&r);
    return NULL;
}

static void test_concurrent_create_only(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, NULL);
    for (int round = 0; round < 3; round++) {
        char g[API_GUID_STRLEN + 1];
        struct creator c[CREATORS];
        pthread_t t[CREATORS];
        pthread_barrier_t bar;
        http_guid_rand(g);
        pthread_barrier_init(&bar, NULL, CREATORS);
        for (int i = 0; i < CREATORS; i++) {
            c[i] = (struct creator){.s = s, .guid = g, .bar = &bar, .idx = i};
            assert_int_equal(pthread_create(&t[i], NULL, creator_main, &c[i]),
                             0);
        }
        for (int i = 0; i < CREATORS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&bar);
        int created = 0, refused = 0, winner = -1;
        for (int i = 0; i < CREATORS; i++) {
            if (c[i].failed)
                fail_msg("create-only PUT %d: the request failed", i);
            if (c[i].status == 201) {
                created++;
                winner = i;
            } else if (c[i].status == 412) {
                refused++;
            } else {
                fail_msg("create-only PUT %d: status %ld, want 201 or 412", i,
                         c[i].status);
            }
        }
        if (created != 1 || refused != CREATORS - 1)
            fail_msg("round %d: %d creates and %d refusals, want 1 and %d",
                     round, created, refused, CREATORS - 1);
        uint8_t want[CREATE_LEN];
        creator_body(want, winner);
        http_expect_data(s, g, want, sizeof(want), NULL, NULL);
    }
    assert_int_equal(srv_stop(s), 0);
}

#define CAS_THREADS 8
#define CAS_INCS 25
#define CAS_MAX_TRIES 20000

struct casser {
    struct srv *s;
    const char *guid;
    pthread_barrier_t *bar;
    int done, conflicts;
    char err[256];
};

static void *cas_main(void *p)
{
    struct casser *c = p;
    char path[128], etag[API_ETAG_MAX], h[API_ETAG_MAX + 16], val[32];
    const char *hv[] = {h, NULL};
    int tries = 0;
    snprintf(path, sizeof(path), "/blobs/%s", c->guid);
    pthread_barrier_wait(c->bar);
    while (c->done < CAS_INCS) {
        struct http_resp r;
        if (++tries > CAS_MAX_TRIES) {
            snprintf(c->err, sizeof(c->err), "gave up after %d tries", tries);
            return NULL;
        }
        memset(&r, 0, sizeof(r));
        if (http_req(c->s, "GET", path, NULL, NULL, 0, &r) != 0 ||
            r.status != 200 || !http_header(&r, "ETag", etag, sizeof(etag))) {
            snprintf(c->err, sizeof(c->err), "GET: status %ld", r.status);
            http_resp_free(&r);
            return NULL;
        }
        char *end = NULL;
        long v = strtol(r.body ? r.body : "", &end, 10);
        if (!r.body || end == r.body || (size_t)(end - r.body) != r.body_len) {
            snprintf(c->err, sizeof(c->err), "GET: body '%.40s' not a number",
                     r.body ? r.body : "");
            http_resp_free(&r);
            return NULL;
        }
        http_resp_free(&r);
        int vl = snprintf(val, sizeof(val), "%ld", v + 1);
        snprintf(h, sizeof(h), "If-Match: %s", etag);
        memset(&r, 0, sizeof(r));
        if (http_req(c->s, "PUT", path, hv, val, (size_t)vl, &r) != 0) {
            snprintf(c->err, sizeof(c->err), "PUT: the request failed");
            return NULL;
        }
        long st = r.status;
        http_resp_free(&r);
        if (st == 204) {
            c->done++;
        } else if (st == 412) {
            c->conflicts++;
        } else {
            snprintf(c->err, sizeof(c->err), "PUT If-Match: status %ld", st);
            return NULL;
        }
    }
    return NULL;
}

static void test_cas_counter(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, NULL);
    char g[API_GUID_STRLEN + 1];
    struct http_resp r;
    http_guid_rand(g);
    put1(s, g, "If-None-Match: *", "0", 1, &r);
    http_expect_status(&r, 201, "PUT counter 0");
    http_resp_free(&r);

    struct casser c[CAS_THREADS];
    pthread_t t[CAS_THREADS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, CAS_THREADS);
    for (int i = 0; i < CAS_THREADS; i++) {
        c[i] = (struct casser){.s = s, .guid = g, .bar = &bar};
        assert_int_equal(pthread_create(&t[i], NULL, cas_main, &c[i]), 0);
    }
    for (int i = 0; i < CAS_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    int total = 0, conflicts = 0;
    for (int i = 0; i < CAS_THREADS; i++) {
        if (c[i].err[0])
            fail_msg("CAS thread %d: %s", i, c[i].err);
        total += c[i].done;
        conflicts += c[i].conflicts;
    }
    print_message("CAS: %d increments, %d conflicts (412)\n", total, conflicts);
    assert_int_equal(total, CAS_THREADS * CAS_INCS);
    char want[16];
    int wl = snprintf(want, sizeof(want), "%d", CAS_THREADS * CAS_INCS);
    http_expect_data(s, g, want, (size_t)wl, NULL, NULL);
    assert_int_equal(srv_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_if_none_match_star, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_if_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_if_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_if_none_match_etag, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_create_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cas_counter, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
