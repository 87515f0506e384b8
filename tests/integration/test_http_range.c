/*
 * test_http_range.c - Range requests against a real blobd (SPEC §2, RFC
 * 9110 §14): single ranges of every form, unsatisfiable ones (416 with
 * "bytes *\/len"), invalid ones ignored, multipart/byteranges parsed part
 * by part, the abuse limits (too many, overlapping), If-Range, and ranges
 * on a 0-byte and a 512 KiB blob.
 *
 * The group's server holds three blobs made in the group setup: 1000 bytes,
 * 0 bytes and 524288 bytes; the tests only read them.
 */
#include "srv.h"
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"

struct blob {
    char guid[HTTP_GUID_BUF];
    char path[64];
    char etag[API_ETAG_MAX];
    uint8_t *data;
    size_t len;
};

static struct srv S;
static struct blob B1000, B0, BBIG;

static void blob_new(struct blob *b, size_t len, uint64_t seed)
{
    http_guid_rand(b->guid);
    snprintf(b->path, sizeof(b->path), "/blobs/%s", b->guid);
    b->len = len;
    b->data = malloc(len ? len : 1);
    assert_non_null(b->data);
    http_fill(b->data, len, seed);
    long st = http_put(&S, b->guid, b->data, len, b->etag);
    if (st != 201 || b->etag[0] != '"')
        fail_msg("PUT %s (%zu bytes): %ld, ETag \"%s\"", b->path, len, st,
                 b->etag);
}

static int group_setup(void **state)
{
    (void)state;
    srv_up(&S, NULL);
    blob_new(&B1000, 1000, 1);
    blob_new(&B0, 0, 2);
    blob_new(&BBIG, 524288, 3);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(B1000.data);
    free(B0.data);
    free(BBIG.data);
    srv_fini(&S);
    return 0;
}

/* GET b with a Range header (NULL: none) and optional extra headers. */
static void get_range(const struct blob *b, const char *range,
                      const char *extra1, const char *extra2,
                      struct http_resp *r)
{
    char rh[2048];
    const char *h[4];
    size_t n = 0;
    if (range) {
        snprintf(rh, sizeof(rh), "Range: %s", range);
        h[n++] = rh;
    }
    if (extra1)
        h[n++] = extra1;
    if (extra2)
        h[n++] = extra2;
    h[n] = NULL;
    assert_int_equal(http_req(&S, "GET", b->path, h, NULL, 0, r), 0);
}

static void expect_whole(const struct blob *b, const struct http_resp *r,
                         const char *what)
{
    char cl[32];
    if (r->status != 200)
        fail_msg("%s: %ld, want 200 with the whole blob", what, r->status);
    http_assert_bytes(r->body, r->body_len, b->data, b->len, what);
    if (http_header(r, "Content-Range", NULL, 0))
        fail_msg("%s: a 200 with a Content-Range header", what);
    snprintf(cl, sizeof(cl), "%zu", b->len);
    http_assert_header(r, "Content-Length", cl);
}

static void expect_single(const struct blob *b, const struct http_resp *r,
                          uint64_t first, uint64_t last, const char *what)
{
    char want[96], cl[32];
    if (r->status != 206)
        fail_msg("%s: %ld, want 206 bytes %" PRIu64 "-%" PRIu64, what,
                 r->status, first, last);
    snprintf(want, sizeof(want), "bytes %" PRIu64 "-%" PRIu64 "/%zu", first,
             last, b->len);
    http_assert_header(r, "Content-Range", want);
    snprintf(cl, sizeof(cl), "%" PRIu64, last - first + 1);
    http_assert_header(r, "Content-Length", cl);
    http_assert_header(r, "Content-Type", "application/octet-stream");
    http_assert_header(r, "ETag", b->etag);
    http_assert_bytes(r->body, r->body_len, b->data + first,
                      (size_t)(last - first + 1), what);
}

static void expect_416(const struct blob *b, const struct http_resp *r,
                       const char *what)
{
    char want[64];
    if (r->status != 416)
        fail_msg("%s: %ld, want 416", what, r->status);
    http_expect_error(r, 416, "range_not_satisfiable", what);
    snprintf(want, sizeof(want), "bytes */%zu", b->len);
    http_assert_header(r, "Content-Range", want);
}

/*
 * A multipart/byteranges body: the boundary from Content-Type, then each
 * part "--b" CRLF headers CRLF CRLF data, then CRLF "--b--".  Checks every
 * part's Content-Range and bytes against firsts/lasts in order.
 */
static void expect_multi(const struct blob *b, const struct http_resp *r,
                         size_t n, const uint64_t *firsts,
                         const uint64_t *lasts, const char *what)
{
    char ct[256], delim[128], cl[32];
    if (r->status != 206)
        fail_msg("%s: %ld, want 206 multipart", what, r->status);
    if (http_header(r, "Content-Range", NULL, 0))
        fail_msg("%s: a multipart 206 with a top-level Content-Range", what);
    assert_true(http_header(r, "Content-Type", ct, sizeof(ct)));
    if (strncasecmp(ct, "multipart/byteranges", 20) != 0)
        fail_msg("%s: Content-Type \"%s\", want multipart/byteranges", what,
                 ct);
    const char *bp = strstr(ct, "boundary=");
    if (!bp)
        fail_msg("%s: no boundary in \"%s\"", what, ct);
    bp += 9;
    size_t bl = strcspn(bp, "; ");
    if (bp[0] == '"')
        fail_msg("%s: quoted boundary not expected: %s", what, ct);
    snprintf(delim, sizeof(delim), "--%.*s", (int)bl, bp);
    size_t dl = strlen(delim);
    snprintf(cl, sizeof(cl), "%zu", r->body_len);
    http_assert_header(r, "Content-Length", cl);

    const char *body = r->body, *end = r->body + r->body_len;
    /* No preamble expected, but allow one: find the first delimiter. */
    const char *p = memmem(body, r->body_len, delim, dl);
    if (!p)
        fail_msg("%s: boundary %s not in the body", what, delim);
    for (size_t i = 0; i < n; i++) {
        char hdr[512], want[96];
        if ((size_t)(end - p) < dl + 2 || memcmp(p, delim, dl) != 0 ||
            memcmp(p + dl, "\r\n", 2) != 0)
            fail_msg("%s: part %zu does not start with the boundary", what, i);
        p += dl + 2;
        const char *he = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!he || (size_t)(he - p) >= sizeof(hdr) - 2)
            fail_msg("%s: part %zu has no end of headers", what, i);
        memcpy(hdr, p, (size_t)(he - p));
        memcpy(hdr + (he - p), "\r\n", 3);
        struct http_resp part = {.status = 206, .headers = hdr};
        snprintf(want, sizeof(want), "bytes %" PRIu64 "-%" PRIu64 "/%zu",
                 firsts[i], lasts[i], b->len);
        http_assert_header(&part, "Content-Range", want);
        http_assert_header(&part, "Content-Type", "application/octet-stream");
        p = he + 4;
        size_t len = (size_t)(lasts[i] - firsts[i] + 1);
        if ((size_t)(end - p) < len + 2)
            fail_msg("%s: part %zu is cut short", what, i);
        http_assert_bytes(p, len, b->data + firsts[i], len, what);
        p += len;
        if (memcmp(p, "\r\n", 2) != 0)
            fail_msg("%s: no CRLF after part %zu", what, i);
        p += 2;
    }
    if ((size_t)(end - p) < dl + 2 || memcmp(p, delim, dl) != 0 ||
        memcmp(p + dl, "--", 2) != 0)
        fail_msg("%s: no closing delimiter after %zu parts (%.80s)", what, n,
                 p);
}

/* ---- single ranges, table-driven ---- */

struct rcase {
    const char *range;
    int status; /* 206 single, 200 whole, 416 */
    uint64_t first, last;
};

static void run_cases(const struct blob *b, const struct rcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct http_resp r;
        char what[160];
        snprintf(what, sizeof(what), "%zu-byte blob, Range: %s", b->len,
                 c[i].range);
        get_range(b, c[i].range, NULL, NULL, &r);
        if (c[i].status == 206)
            expect_single(b, &r, c[i].first, c[i].last, what);
        else if (c[i].status == 416)
            expect_416(b, &r, what);
        else
            expect_whole(b, &r, what);
        http_resp_free(&r);
    }
}

static void test_single_1000(void **state)
{
    (void)state;
    static const struct rcase c[] = {
        {"bytes=0-0", 206, 0, 0},
        {"bytes=10-19", 206, 10, 19},
        {"bytes=-10", 206, 990, 999},
        {"bytes=990-", 206, 990, 999},
        {"bytes=990-5000", 206, 990, 999},
        {"bytes=0-999", 206, 0, 999},
        {"bytes=0-", 206, 0, 999},
        {"bytes=-1000", 206, 0, 999},
        {"bytes=-5000", 206, 0, 999},
        {"bytes=999-999", 206, 999, 999},
        {"bytes=-1", 206, 999, 999},
        {"BYTES=10-19", 206, 10, 19},
        {"bytes=10-19,", 206, 10, 19},
        {"bytes=1000-", 416, 0, 0},
        {"bytes=1000-1000", 416, 0, 0},
        {"bytes=5000-6000", 416, 0, 0},
        {"bytes=-0", 416, 0, 0},
        {"bytes=10-5", 200, 0, 0},
        {"garbage", 200, 0, 0},
        {"bytes=abc", 200, 0, 0},
        {"bytes=1-2-3", 200, 0, 0},
        {"items=0-5", 200, 0, 0},
        {"bytes=0x10-20", 200, 0, 0},
        {"bytes=10-19,30-20", 200, 0, 0},
    };
    run_cases(&B1000, c, sizeof(c) / sizeof(c[0]));
}

static void test_zero_length(void **state)
{
    (void)state;
    static const struct rcase c[] = {
        {"bytes=0-0", 416, 0, 0},  {"bytes=0-", 416, 0, 0},
        {"bytes=-10", 416, 0, 0},  {"bytes=0-9,20-29", 416, 0, 0},
        {"bytes=10-5", 200, 0, 0},
    };
    struct http_resp r;
    run_cases(&B0, c, sizeof(c) / sizeof(c[0]));
    get_range(&B0, NULL, NULL, NULL, &r);
    expect_whole(&B0, &r, "0-byte blob, no Range");
    http_resp_free(&r);
}

static void test_large(void **state)
{
    (void)state;
    static const struct rcase c[] = {
        {"bytes=0-100000", 206, 0, 100000},
        {"bytes=100-200", 206, 100, 200},
        {"bytes=-70000", 206, 524288 - 70000, 524287},
        {"bytes=500000-", 206, 500000, 524287},
        {"bytes=4095-4096", 206, 4095, 4096},
        {"bytes=65535-131072", 206, 65535, 131072},
        {"bytes=0-", 206, 0, 524287},
        {"bytes=524287-", 206, 524287, 524287},
        {"bytes=524288-", 416, 0, 0},
    };
    run_cases(&BBIG, c, sizeof(c) / sizeof(c[0]));

    struct http_resp r;
    static const uint64_t f[] = {0, 500000}, l[] = {99, 500099};
    get_range(&BBIG, "bytes=0-99,500000-500099", NULL, NULL, &r);
    expect_multi(&BBIG, &r, 2, f, l, "512 KiB blob, two ranges");
    http_resp_free(&r);
}

/* ---- several ranges ---- */

static void test_multi(void **state)
{
    (void)state;
    struct http_resp r;
    {
        static const uint64_t f[] = {0, 20}, l[] = {9, 29};
        get_range(&B1000, "bytes=0-9,20-29", NULL, NULL, &r);
        expect_multi(&B1000, &r, 2, f, l, "bytes=0-9,20-29");
        http_resp_free(&r);
    }
    {
        static const uint64_t f[] = {20, 0}, l[] = {29, 9};
        get_range(&B1000, "bytes=20-29,0-9", NULL, NULL, &r);
        expect_multi(&B1000, &r, 2, f, l, "bytes=20-29,0-9 (client order)");
        http_resp_free(&r);
    }
    {
        static const uint64_t f[] = {0, 20, 995}, l[] = {9, 29, 999};
        get_range(&B1000, "bytes=0-9, 20-29 ,-5", NULL, NULL, &r);
        expect_multi(&B1000, &r, 3, f, l, "bytes=0-9, 20-29 ,-5");
        http_resp_free(&r);
    }
    {
        static const uint64_t f[] = {0, 10}, l[] = {9, 19};
        get_range(&B1000, "bytes=0-9,10-19", NULL, NULL, &r);
        expect_multi(&B1000, &r, 2, f, l, "bytes=0-9,10-19 (adjacent)");
        http_resp_free(&r);
    }
    {
        /* Unsatisfiable ones dropped, cut ones cut. */
        static const uint64_t f[] = {0, 990}, l[] = {4, 999};
        get_range(&B1000, "bytes=0-4,5000-6000,990-2000", NULL, NULL, &r);
        expect_multi(&B1000, &r, 2, f, l, "bytes=0-4,5000-6000,990-2000");
        http_resp_free(&r);
    }
}

static void test_multi_limits(void **state)
{
    (void)state;
    char range[1024];
    size_t off;
    struct http_resp r;
    uint64_t f[16], l[16];

    /* 16 ranges: the limit, still served. */
    off = (size_t)snprintf(range, sizeof(range), "bytes=");
    for (int i = 0; i < 16; i++) {
        f[i] = (uint64_t)i * 3;
        l[i] = f[i] + 1;
        off += (size_t)snprintf(range + off, sizeof(range) - off, "%s%d-%d",
                                i ? "," : "", i * 3, i * 3 + 1);
    }
    get_range(&B1000, range, NULL, NULL, &r);
    expect_multi(&B1000, &r, 16, f, l, "16 ranges");
    http_resp_free(&r);

    /* 17 ranges: over the limit, the whole blob. */
    snprintf(range + off, sizeof(range) - off, ",100-101");
    get_range(&B1000, range, NULL, NULL, &r);
    expect_whole(&B1000, &r, "17 ranges");
    http_resp_free(&r);

    static const char *const whole[] = {
        "bytes=0-10,5-15",   /* overlapping */
        "bytes=0-999,0-999", /* the same range twice */
        "bytes=-600,0-499",  /* overlap through a suffix */
        "bytes=100-,0-200",  /* overlap through an open range */
    };
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
        get_range(&B1000, whole[i], NULL, NULL, &r);
        expect_whole(&B1000, &r, whole[i]);
        http_resp_free(&r);
    }
}

static void test_multi_one_left(void **state)
{
    (void)state;
    static const struct rcase c[] = {
        {"bytes=0-9,5000-6000", 206, 0, 9},
        {"bytes=2000-,-10", 206, 990, 999},
        {"bytes=1000-,10-19,-0", 206, 10, 19},
        {"bytes=1000-,2000-3000", 416, 0, 0},
    };
    run_cases(&B1000, c, sizeof(c) / sizeof(c[0]));
}

/* ---- If-Range and other preconditions ---- */

static void test_if_range(void **state)
{
    (void)state;
    char h[128];
    struct http_resp r;

    snprintf(h, sizeof(h), "If-Range: %s", B1000.etag);
    get_range(&B1000, "bytes=10-19", h, NULL, &r);
    expect_single(&B1000, &r, 10, 19, "If-Range current");
    http_resp_free(&r);

    get_range(&B1000, "bytes=10-19", "If-Range: \"999999-1\"", NULL, &r);
    expect_whole(&B1000, &r, "If-Range other");
    http_resp_free(&r);

    snprintf(h, sizeof(h), "If-Range: W/%s", B1000.etag);
    get_range(&B1000, "bytes=10-19", h, NULL, &r);
    expect_whole(&B1000, &r, "If-Range weak");
    http_resp_free(&r);

    get_range(&B1000, "bytes=10-19", "If-Range: Wed, 21 Oct 2015 07:28:00 GMT",
              NULL, &r);
    expect_whole(&B1000, &r, "If-Range date");
    http_resp_free(&r);

    /* If-Range with a multi range still gives the parts. */
    static const uint64_t f[] = {0, 20}, l[] = {9, 29};
    snprintf(h, sizeof(h), "If-Range: %s", B1000.etag);
    get_range(&B1000, "bytes=0-9,20-29", h, NULL, &r);
    expect_multi(&B1000, &r, 2, f, l, "If-Range current, two ranges");
    http_resp_free(&r);

    /* An unsatisfiable range with a failing If-Range: the whole blob. */
    get_range(&B1000, "bytes=5000-", "If-Range: \"999999-1\"", NULL, &r);
    expect_whole(&B1000, &r, "If-Range other, unsatisfiable range");
    http_resp_free(&r);
}

static void test_range_preconditions(void **state)
{
    (void)state;
    char h[128];
    struct http_resp r;

    snprintf(h, sizeof(h), "If-None-Match: %s", B1000.etag);
    get_range(&B1000, "bytes=10-19", h, NULL, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    http_resp_free(&r);

    get_range(&B1000, "bytes=10-19", "If-None-Match: \"999999-1\"", NULL, &r);
    expect_single(&B1000, &r, 10, 19, "If-None-Match other");
    http_resp_free(&r);

    get_range(&B1000, "bytes=10-19", "If-Match: \"999999-1\"", NULL, &r);
    http_expect_error(&r, 412, "precondition_failed", NULL);
    http_resp_free(&r);

    snprintf(h, sizeof(h), "If-Match: %s", B1000.etag);
    get_range(&B1000, "bytes=10-19", h, NULL, &r);
    expect_single(&B1000, &r, 10, 19, "If-Match current");
    http_resp_free(&r);

    /* 304 wins over 416. */
    snprintf(h, sizeof(h), "If-None-Match: %s", B1000.etag);
    get_range(&B1000, "bytes=5000-", h, NULL, &r);
    assert_int_equal(r.status, 304);
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_1000),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_multi_limits),
        cmocka_unit_test(test_multi_one_left),
        cmocka_unit_test(test_if_range),
        cmocka_unit_test(test_range_preconditions),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
