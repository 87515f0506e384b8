/*
 * test_http_get.c - GET, HEAD and DELETE against a real blobd (SPEC §2):
 * the headers of a 200, 404s, HEAD equal to GET without a body, the
 * If-Match / If-None-Match rules of RFC 9110 §13 on reads, ETag stability,
 * and a client that hangs up in the middle of a download.
 *
 * One server serves the group; every test makes its own random GUIDs.
 */
#include "srv.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"

#define BIG 524288

static struct srv S;

static int group_setup(void **state)
{
    (void)state;
    srv_up(&S, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    srv_fini(&S);
    return 0;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* A blob made by a test: its GUID, path, bytes and ETag. */
struct blob {
    char guid[HTTP_GUID_BUF];
    char path[64];
    char etag[API_ETAG_MAX];
    uint8_t *data;
    size_t len;
};

static void blob_new(struct blob *b, size_t len, uint64_t seed)
{
    http_guid_rand(b->guid);
    snprintf(b->path, sizeof(b->path), "/blobs/%s", b->guid);
    b->len = len;
    b->data = xmalloc(len);
    http_fill(b->data, len, seed);
    long st = http_put(&S, b->guid, b->data, len, b->etag);
    if (st != 201)
        fail_msg("PUT %s (%zu bytes): %ld, want 201", b->path, len, st);
    if (b->etag[0] != '"')
        fail_msg("PUT %s: no strong ETag (\"%s\")", b->path, b->etag);
}

static void blob_free(struct blob *b)
{
    free(b->data);
    b->data = NULL;
}

/* method path with one optional extra header; returns the response. */
static void req1(const char *method, const char *path, const char *hdr,
                 struct http_resp *r)
{
    const char *h[2] = {hdr, NULL};
    assert_int_equal(http_req(&S, method, path, hdr ? h : NULL, NULL, 0, r), 0);
}

static long status1(const char *method, const char *path, const char *hdr)
{
    struct http_resp r;
    req1(method, path, hdr, &r);
    long st = r.status;
    if (strcmp(method, "HEAD") == 0 || st == 304)
        assert_int_equal(r.body_len, 0);
    http_resp_free(&r);
    return st;
}

/* The headers every 200 of b carries. */
static void assert_blob_headers(const struct http_resp *r, const struct blob *b)
{
    char want[32];
    snprintf(want, sizeof(want), "%zu", b->len);
    http_assert_header(r, "Content-Length", want);
    http_assert_header(r, "ETag", b->etag);
    http_assert_header(r, "Accept-Ranges", "bytes");
    http_assert_header(r, "Content-Type", "application/octet-stream");
}

/* ---- GET / HEAD ---- */

static void test_get_present(void **state)
{
    (void)state;
    static const size_t sizes[] = {5000, 0, 4096, BIG};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct blob b;
        struct http_resp r;
        blob_new(&b, sizes[i], 10 + i);
        req1("GET", b.path, NULL, &r);
        assert_int_equal(r.status, 200);
        http_assert_bytes(r.body, r.body_len, b.data, b.len, "GET body");
        assert_blob_headers(&r, &b);
        http_resp_free(&r);
        blob_free(&b);
    }
}

static void test_get_absent(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF], path[64];
    struct http_resp r;
    http_guid_rand(g);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    req1("GET", path, NULL, &r);
    http_expect_error(&r, 404, "not_found", NULL);
    http_resp_free(&r);

    req1("HEAD", path, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.body_len, 0);
    http_resp_free(&r);
}

static void test_head_matches_get(void **state)
{
    (void)state;
    static const size_t sizes[] = {1234, 0, BIG};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct blob b;
        struct http_resp g, h;
        blob_new(&b, sizes[i], 20 + i);
        req1("GET", b.path, NULL, &g);
        req1("HEAD", b.path, NULL, &h);
        assert_int_equal(g.status, 200);
        assert_int_equal(h.status, 200);
        assert_int_equal(h.body_len, 0);
        assert_blob_headers(&g, &b);
        assert_blob_headers(&h, &b);
        http_resp_free(&g);
        http_resp_free(&h);
        blob_free(&b);
    }
}

/* ---- preconditions on reads ---- */

static void test_if_none_match(void **state)
{
    (void)state;
    struct blob b;
    char h[128];
    struct http_resp r;
    blob_new(&b, 2000, 30);

    snprintf(h, sizeof(h), "If-None-Match: %s", b.etag);
    req1("GET", b.path, h, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    /* RFC 9110 §15.4.5: a 304 carries the ETag a 200 would have. */
    http_assert_header(&r, "ETag", b.etag);
    http_resp_free(&r);
    assert_int_equal(status1("HEAD", b.path, h), 304);

    /* Another tag: 200 with the body. */
    req1("GET", b.path, "If-None-Match: \"999999-1\"", &r);
    assert_int_equal(r.status, 200);
    http_assert_bytes(r.body, r.body_len, b.data, b.len, "GET body");
    http_resp_free(&r);
    assert_int_equal(status1("HEAD", b.path, "If-None-Match: \"999999-1\""),
                     200);

    /* "*" matches an existing blob. */
    assert_int_equal(status1("GET", b.path, "If-None-Match: *"), 304);
    assert_int_equal(status1("HEAD", b.path, "If-None-Match: *"), 304);

    /* Weak comparison: W/ of the current tag matches. */
    snprintf(h, sizeof(h), "If-None-Match: W/%s", b.etag);
    assert_int_equal(status1("GET", b.path, h), 304);
    assert_int_equal(status1("HEAD", b.path, h), 304);

    /* A list that holds the current tag. */
    snprintf(h, sizeof(h), "If-None-Match: \"1-999999\", %s", b.etag);
    assert_int_equal(status1("GET", b.path, h), 304);

    /* "*" on an absent blob: nothing matches, so 404. */
    char g[HTTP_GUID_BUF], path[64];
    http_guid_rand(g);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    assert_int_equal(status1("GET", path, "If-None-Match: *"), 404);

    /* After a rewrite the old tag no longer matches. */
    char old[API_ETAG_MAX];
    strcpy(old, b.etag);
    assert_int_equal(http_put(&S, b.guid, b.data, 100, b.etag), 204);
    assert_string_not_equal(old, b.etag);
    snprintf(h, sizeof(h), "If-None-Match: %s", old);
    req1("GET", b.path, h, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 100);
    http_resp_free(&r);
    blob_free(&b);
}

static void test_if_match(void **state)
{
    (void)state;
    struct blob b;
    char h[128];
    struct http_resp r;
    blob_new(&b, 3000, 40);

    snprintf(h, sizeof(h), "If-Match: %s", b.etag);
    req1("GET", b.path, h, &r);
    assert_int_equal(r.status, 200);
    http_assert_bytes(r.body, r.body_len, b.data, b.len, "GET body");
    http_resp_free(&r);
    assert_int_equal(status1("HEAD", b.path, h), 200);

    req1("GET", b.path, "If-Match: \"999999-1\"", &r);
    http_expect_error(&r, 412, "precondition_failed", NULL);
    http_resp_free(&r);
    assert_int_equal(status1("HEAD", b.path, "If-Match: \"999999-1\""), 412);

    assert_int_equal(status1("GET", b.path, "If-Match: *"), 200);

    /* Strong comparison: W/ of the current tag does not match. */
    snprintf(h, sizeof(h), "If-Match: W/%s", b.etag);
    req1("GET", b.path, h, &r);
    http_expect_error(&r, 412, "precondition_failed", NULL);
    http_resp_free(&r);

    /* A list that holds the current tag. */
    snprintf(h, sizeof(h), "If-Match: \"1-999999\", %s", b.etag);
    assert_int_equal(status1("GET", b.path, h), 200);

    /* "*" on an absent blob fails: nothing exists to match. */
    char g[HTTP_GUID_BUF], path[64];
    http_guid_rand(g);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    req1("GET", path, "If-Match: *", &r);
    http_expect_error(&r, 412, "precondition_failed", NULL);
    http_resp_free(&r);
    snprintf(h, sizeof(h), "If-Match: %s", b.etag);
    assert_int_equal(status1("GET", path, h), 412);

    /* If-Match passing and If-None-Match matching: 304. */
    const char *both[3];
    char h1[128], h2[128];
    snprintf(h1, sizeof(h1), "If-Match: %s", b.etag);
    snprintf(h2, sizeof(h2), "If-None-Match: %s", b.etag);
    both[0] = h1;
    both[1] = h2;
    both[2] = NULL;
    assert_int_equal(http_status(&S, "GET", b.path, both, NULL, 0), 304);
    blob_free(&b);
}

static void test_bad_precondition(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "If-Match: abc",          /* not quoted */
        "If-Match: \"1-1",        /* unterminated */
        "If-Match: \"1-1\" junk", /* trailing garbage */
        "If-None-Match: abc",
    };
    struct blob b;
    struct http_resp r;
    blob_new(&b, 10, 50);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req1("GET", b.path, bad[i], &r);
        if (r.status != 400)
            fail_msg("GET with \"%s\": %ld, want 400 bad_precondition", bad[i],
                     r.status);
        http_expect_error(&r, 400, "bad_precondition", NULL);
        http_resp_free(&r);
    }
    blob_free(&b);
}

/* ---- ETag stability, DELETE ---- */

static void test_etag_stable(void **state)
{
    (void)state;
    struct blob b;
    char e1[API_ETAG_MAX], e2[API_ETAG_MAX], e3[API_ETAG_MAX];
    struct http_resp r;
    blob_new(&b, 777, 60);
    req1("GET", b.path, NULL, &r);
    assert_true(http_header(&r, "ETag", e1, sizeof(e1)));
    http_resp_free(&r);
    req1("GET", b.path, NULL, &r);
    assert_true(http_header(&r, "ETag", e2, sizeof(e2)));
    http_resp_free(&r);
    req1("HEAD", b.path, NULL, &r);
    assert_true(http_header(&r, "ETag", e3, sizeof(e3)));
    http_resp_free(&r);
    assert_string_equal(e1, b.etag);
    assert_string_equal(e2, b.etag);
    assert_string_equal(e3, b.etag);
    /* A flush does not change it either. */
    assert_int_equal(http_status(&S, "POST", "/flush", NULL, "", 0), 200);
    req1("GET", b.path, NULL, &r);
    http_assert_header(&r, "ETag", b.etag);
    http_resp_free(&r);
    blob_free(&b);
}

static void test_delete(void **state)
{
    (void)state;
    struct blob b;
    struct http_resp r;
    blob_new(&b, 4096, 70);
    req1("DELETE", b.path, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    assert_true(http_header(&r, "Blob-Durable", NULL, 0));
    http_resp_free(&r);

    req1("GET", b.path, NULL, &r);
    http_expect_error(&r, 404, "not_found", NULL);
    http_resp_free(&r);
    assert_int_equal(status1("HEAD", b.path, NULL), 404);

    req1("DELETE", b.path, NULL, &r);
    http_expect_error(&r, 404, "not_found", NULL);
    http_resp_free(&r);

    /* Created again after the delete: 201, a new ETag. */
    char e[API_ETAG_MAX];
    assert_int_equal(http_put(&S, b.guid, b.data, 10, e), 201);
    assert_string_not_equal(e, b.etag);
    req1("GET", b.path, NULL, &r);
    assert_int_equal(r.status, 200);
    http_assert_bytes(r.body, r.body_len, b.data, 10, "GET after re-create");
    http_resp_free(&r);
    blob_free(&b);
}

/* ---- a client that goes away mid-download ---- */

static void test_client_disconnect(void **state)
{
    (void)state;
    struct blob b;
    char req[256], buf[4096];
    blob_new(&b, BIG, 80);
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
                     b.path);
    for (int round = 0; round < 10; round++) {
        int fd = http_raw_connect(&S);
        assert_true(fd >= 0);
        assert_int_equal(http_raw_send(fd, req, (size_t)n), 0);
        /* A few bytes: the status line has come, the body has started. */
        ssize_t got = 0;
        while (got < 200) {
            ssize_t k = recv(fd, buf + got, sizeof(buf) - 1 - (size_t)got, 0);
            if (k <= 0)
                break;
            got += k;
        }
        buf[got] = '\0';
        assert_true(got >= 12);
        assert_int_equal(http_raw_status(buf), 200);
        if (round & 1) {
            /* An abortive close (RST) on odd rounds. */
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);
    }
    /* And one that asks, then leaves before reading anything. */
    int fd = http_raw_connect(&S);
    assert_true(fd >= 0);
    assert_int_equal(http_raw_send(fd, req, (size_t)n), 0);
    close(fd);

    /* The server keeps answering, with the right bytes. */
    for (int i = 0; i < 3; i++) {
        struct http_resp r;
        req1("GET", b.path, NULL, &r);
        assert_int_equal(r.status, 200);
        http_assert_bytes(r.body, r.body_len, b.data, b.len,
                          "GET after disconnects");
        http_resp_free(&r);
    }
    assert_int_equal(http_status(&S, "GET", "/healthz", NULL, NULL, 0), 200);
    blob_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_present),
        cmocka_unit_test(test_get_absent),
        cmocka_unit_test(test_head_matches_get),
        cmocka_unit_test(test_if_none_match),
        cmocka_unit_test(test_if_match),
        cmocka_unit_test(test_bad_precondition),
        cmocka_unit_test(test_etag_stable),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_client_disconnect),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
