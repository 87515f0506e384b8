/*
 * test_http_put.c - PUT and POST against a real blobd (SPEC §1, §2): sizes
 * at the 4 KiB and 512 KiB edges, create vs replace, the body rules (413
 * decided from Content-Length before reading, 411, chunked bodies counted
 * and cut off), GUID forms, server-chosen GUIDs, routing errors and the
 * JSON error shape.
 *
 * One server serves the group; every test makes its own random GUIDs.  The
 * invalid-GUID test starts a fresh server of its own so that it can check
 * that nothing at all was created.
 */
#include "srv.h"
#include "testutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"

#define MAX_BODY 524288

static struct srv S;
static struct srv F; /* the fresh server of test_put_bad_guids */

static int group_setup(void **state)
{
    (void)state;
    srv_up(&S, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    srv_fini(&F);
    srv_fini(&S);
    return 0;
}

static void blob_path(char *buf, size_t cap, const char *guid)
{
    snprintf(buf, cap, "/blobs/%s", guid);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* A strong ETag of ours: "\"<gen>-<n>\"", both decimal. */
static void assert_etag_form(const char *etag)
{
    size_t n = strlen(etag);
    const char *dash = strchr(etag, '-');
    if (n < 5 || etag[0] != '"' || etag[n - 1] != '"' || !dash)
        fail_msg("ETag %s is not a strong \"<gen>-<n>\" tag", etag);
    for (const char *p = etag + 1; p < etag + n - 1; p++) {
        if (p != dash && !isdigit((unsigned char)*p))
            fail_msg("ETag %s is not a strong \"<gen>-<n>\" tag", etag);
    }
}

/* GET guid (any form) and check it holds exactly data[0..len) with the
 * headers of a 200; etag (may be NULL) must be the ETag. */
static void check_blob(const char *guid, const void *data, size_t len,
                       const char *etag)
{
    struct http_resp r;
    char want[32];
    assert_int_equal(http_get(&S, guid, &r), 200);
    http_assert_bytes(r.body, r.body_len, data, len, "GET body");
    snprintf(want, sizeof(want), "%zu", len);
    http_assert_header(&r, "Content-Length", want);
    http_assert_header(&r, "Content-Type", "application/octet-stream");
    if (etag)
        http_assert_header(&r, "ETag", etag);
    http_resp_free(&r);
}

static void check_absent(const char *guid)
{
    struct http_resp r;
    assert_int_equal(http_get(&S, guid, &r), 404);
    http_expect_error(&r, 404, "not_found", NULL);
    http_resp_free(&r);
}

/* The 201 of a create: Location, ETag, Blob-Durable and the JSON body
 * {"guid","size","etag","durable"}.  etag gets the ETag. */
static void check_created(const struct http_resp *r, const char *canon,
                          size_t len, char etag[API_ETAG_MAX])
{
    char loc[128], want[128], dur[16];
    if (r->status != 201)
        fail_msg("want 201 Created, got %ld: %.200s", r->status, r->body);
    snprintf(want, sizeof(want), "/blobs/%s", canon);
    assert_true(http_header(r, "Location", loc, sizeof(loc)));
    assert_string_equal(loc, want);
    assert_true(http_header(r, "ETag", etag, API_ETAG_MAX));
    assert_etag_form(etag);
    assert_true(http_header(r, "Blob-Durable", dur, sizeof(dur)));
    assert_true(strcmp(dur, "true") == 0 || strcmp(dur, "false") == 0);

    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    if (!j)
        fail_msg("201 body is not JSON: %.200s", r->body);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "guid");
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(j, "size");
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(j, "etag");
    int ok = cJSON_IsString(g) && strcmp(g->valuestring, canon) == 0 &&
             cJSON_IsNumber(sz) && sz->valuedouble == (double)len &&
             cJSON_IsString(et) && strcmp(et->valuestring, etag) == 0;
    cJSON_Delete(j);
    if (!ok)
        fail_msg("201 body %.300s does not say guid %s size %zu etag %s",
                 r->body, canon, len, etag);
}

/* ---- sizes, create and replace ---- */

static void test_put_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 4095, 4096, 524287, 524288};
    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t len = sizes[i];
        char guid[HTTP_GUID_BUF], path[64], etag1[API_ETAG_MAX],
            etag2[API_ETAG_MAX];
        struct http_resp r;
        uint8_t *a = xmalloc(len), *b = xmalloc(len);
        http_guid_rand(guid);
        blob_path(path, sizeof(path), guid);
        http_fill(a, len, 1000 + i);
        http_fill(b, len, 2000 + i);

        assert_int_equal(http_req(&S, "PUT", path, NULL, a, len, &r), 0);
        check_created(&r, guid, len, etag1);
        http_resp_free(&r);
        check_blob(guid, a, len, etag1);

        /* Replace: 204, no body, a new ETag, the new bytes. */
        assert_int_equal(http_req(&S, "PUT", path, NULL, b, len, &r), 0);
        if (r.status != 204)
            fail_msg("size %zu: replace answered %ld, want 204", len, r.status);
        assert_int_equal(r.body_len, 0);
        assert_true(http_header(&r, "ETag", etag2, sizeof(etag2)));
        assert_etag_form(etag2);
        assert_string_not_equal(etag1, etag2);
        assert_true(http_header(&r, "Blob-Durable", NULL, 0));
        http_resp_free(&r);
        check_blob(guid, b, len, etag2);
        free(a);
        free(b);
    }
}

/* ---- body too large ---- */

static void test_put_too_large_content_length(void **state)
{
    (void)state;
    const size_t len = MAX_BODY + 1;
    char guid[HTTP_GUID_BUF], path[64];
    struct http_resp r;
    uint8_t *a = xmalloc(len);
    http_fill(a, len, 77);
    http_guid_rand(guid);
    blob_path(path, sizeof(path), guid);
    assert_int_equal(http_req(&S, "PUT", path, NULL, a, len, &r), 0);
    http_expect_error(&r, 413, "too_large", NULL);
    http_resp_free(&r);
    check_absent(guid);

    /* POST /blobs follows the same rule. */
    assert_int_equal(http_req(&S, "POST", "/blobs", NULL, a, len, &r), 0);
    http_expect_error(&r, 413, "too_large", NULL);
    http_resp_free(&r);
    free(a);
    assert_int_equal(http_status(&S, "GET", "/healthz", NULL, NULL, 0), 200);
}

/* A client that keeps sending the refused body reads the 413, never a
 * reset: the server drains the body a while after closing (server/conns.c,
 * C5).  Without that every one of these sends fails with ECONNRESET. */
static void test_put_too_large_lingering(void **state)
{
    (void)state;
    static uint8_t chunk[64 * 1024];
    const size_t len = 600 * 1024;
    char guid[HTTP_GUID_BUF], head[256], buf[4096];
    for (int round = 0; round < 5; round++) {
        http_guid_rand(guid);
        int n = snprintf(head, sizeof(head),
                         "PUT /blobs/%s HTTP/1.1\r\nHost: t\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         guid, len);
        int fd = http_raw_connect(&S);
        assert_true(fd >= 0);
        assert_int_equal(http_raw_send(fd, head, (size_t)n), 0);
        http_sleep_ms(5); /* the 413 is on its way back */
        for (size_t off = 0; off < len; off += sizeof(chunk)) {
            size_t k = len - off < sizeof(chunk) ? len - off : sizeof(chunk);
            if (http_raw_send(fd, chunk, k) != 0)
                fail_msg("round %d: sending the refused body failed at %zu: "
                         "%s",
                         round, off, strerror(errno));
            http_sleep_ms(1);
        }
        long got = http_raw_read(fd, buf, sizeof(buf), 5000);
        close(fd);
        if (got <= 0 || http_raw_status(buf) != 413)
            fail_msg("round %d: %.80s", round, got > 0 ? buf : "no answer");
        check_absent(guid);
    }
}

/* 413 comes from the headers alone: no 100 Continue, no body read. */
static void test_put_too_large_not_read(void **state)
{
    (void)state;
    char guid[HTTP_GUID_BUF], req[512], buf[8192];
    struct http_resp r;
    http_guid_rand(guid);
    int n = snprintf(req, sizeof(req),
                     "PUT /blobs/%s HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 10000000\r\n"
                     "Expect: 100-continue\r\n\r\n",
                     guid);
    long got = http_raw_exchange(&S, req, (size_t)n, buf, sizeof(buf), 5000);
    if (got <= 0)
        fail_msg("no answer within 5 s to a 10 MB PUT announced with "
                 "Expect: 100-continue");
    if (strstr(buf, "100 Continue") || http_raw_status(buf) == 100)
        fail_msg("the server sent 100 Continue for a body it must refuse:\n"
                 "%.500s",
                 buf);
    assert_int_equal(http_raw_status(buf), 413);
    assert_int_equal(http_raw_parse(buf, (size_t)got, &r), 0);
    http_expect_error(&r, 413, "too_large", NULL);
    http_resp_free(&r);
    check_absent(guid);

    /* Without Expect: still answered at once, before any body byte. */
    n = snprintf(req, sizeof(req),
                 "PUT /blobs/%s HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 524289\r\n\r\n",
                 guid);
    got = http_raw_exchange(&S, req, (size_t)n, buf, sizeof(buf), 5000);
    if (got <= 0)
        fail_msg("no answer within 5 s to a PUT with Content-Length 524289 "
                 "and no body sent");
    assert_int_equal(http_raw_status(buf), 413);
    check_absent(guid);
}

static void test_put_length_required(void **state)
{
    (void)state;
    char guid[HTTP_GUID_BUF], req[512], buf[8192];
    struct http_resp r;
    http_guid_rand(guid);
    int n = snprintf(req, sizeof(req),
                     "PUT /blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", guid);
    long got = http_raw_exchange(&S, req, (size_t)n, buf, sizeof(buf), 5000);
    if (got <= 0)
        fail_msg("no answer to a PUT without Content-Length");
    assert_int_equal(http_raw_parse(buf, (size_t)got, &r), 0);
    http_expect_error(&r, 411, "length_required", NULL);
    http_resp_free(&r);
    check_absent(guid);

    /* The same through libcurl (no body at all), and for POST /blobs. */
    char path[64];
    blob_path(path, sizeof(path), guid);
    assert_int_equal(http_req(&S, "PUT", path, NULL, NULL, 0, &r), 0);
    http_expect_error(&r, 411, "length_required", NULL);
    http_resp_free(&r);
    n = snprintf(req, sizeof(req), "POST /blobs HTTP/1.1\r\nHost: x\r\n\r\n");
    got = http_raw_exchange(&S, req, (size_t)n, buf, sizeof(buf), 5000);
    assert_true(got > 0);
    assert_int_equal(http_raw_status(buf), 411);
    check_absent(guid);
}

/* ---- chunked bodies ---- */

static void put_chunked_ok(size_t len, size_t chunk, uint64_t seed)
{
    char guid[HTTP_GUID_BUF], path[64], etag[API_ETAG_MAX];
    struct http_resp r;
    uint8_t *a = xmalloc(len);
    http_fill(a, len, seed);
    http_guid_rand(guid);
    blob_path(path, sizeof(path), guid);
    assert_int_equal(http_req_chunked(&S, "PUT", path, a, len, chunk, &r), 0);
    check_created(&r, guid, len, etag);
    http_resp_free(&r);
    check_blob(guid, a, len, etag);
    free(a);
}

static void test_put_chunked(void **state)
{
    (void)state;
    put_chunked_ok(1000, 7, 31);         /* many small chunks */
    put_chunked_ok(1000, 1000, 32);      /* one chunk */
    put_chunked_ok(MAX_BODY, 65536, 33); /* exactly the limit */
    put_chunked_ok(MAX_BODY, 10007, 34); /* odd chunk sizes */
    put_chunked_ok(0, 1, 35);            /* only the last chunk */

    /* POST /blobs chunked. */
    struct http_resp r;
    uint8_t a[1000];
    char loc[128];
    http_fill(a, sizeof(a), 36);
    assert_int_equal(
        http_req_chunked(&S, "POST", "/blobs", a, sizeof(a), 100, &r), 0);
    assert_int_equal(r.status, 201);
    assert_true(http_header(&r, "Location", loc, sizeof(loc)));
    http_resp_free(&r);
    assert_int_equal(strlen(loc), 7 + 32);
    check_blob(loc + 7, a, sizeof(a), NULL);
}

static void put_chunked_too_large(size_t len, size_t chunk)
{
    char guid[HTTP_GUID_BUF], path[64];
    struct http_resp r;
    uint8_t *a = xmalloc(len);
    http_fill(a, len, len);
    http_guid_rand(guid);
    blob_path(path, sizeof(path), guid);
    assert_int_equal(http_req_chunked(&S, "PUT", path, a, len, chunk, &r), 0);
    /* 413, or the connection closed (status 0): never stored. */
    if (r.status != 0)
        http_expect_error(&r, 413, "too_large", NULL);
    http_resp_free(&r);
    free(a);
    check_absent(guid);
}

static void test_put_chunked_too_large(void **state)
{
    (void)state;
    put_chunked_too_large(MAX_BODY + 1, 65536);
    put_chunked_too_large(MAX_BODY + 1, MAX_BODY + 1);
    put_chunked_too_large(700000, 4096);
    /* The server is still fine. */
    assert_int_equal(http_status(&S, "GET", "/healthz", NULL, NULL, 0), 200);
    put_chunked_ok(100, 10, 40);
}

/* ---- GUID forms ---- */

static void to_upper(char *s)
{
    for (; *s; s++)
        *s = (char)toupper((unsigned char)*s);
}

static void dashed(const char *canon, char out[37])
{
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", canon, canon + 8, canon + 12,
             canon + 16, canon + 20);
}

static void test_put_guid_forms(void **state)
{
    (void)state;
    for (int form = 0; form < 4; form++) {
        char canon[HTTP_GUID_BUF], sent[40], other[40], path[64],
            etag[API_ETAG_MAX];
        struct http_resp r;
        uint8_t a[300];
        http_guid_rand(canon);
        http_fill(a, sizeof(a), 500 + (uint64_t)form);
        switch (form) {
        case 0: /* upper case */
            strcpy(sent, canon);
            to_upper(sent);
            break;
        case 1: /* dashed lower */
            dashed(canon, sent);
            break;
        case 2: /* dashed upper */
            dashed(canon, sent);
            to_upper(sent);
            break;
        default: /* mixed case */
            strcpy(sent, canon);
            for (int i = 0; i < 32; i += 2)
                sent[i] = (char)toupper((unsigned char)sent[i]);
            break;
        }
        blob_path(path, sizeof(path), sent);
        assert_int_equal(http_req(&S, "PUT", path, NULL, a, sizeof(a), &r), 0);
        check_created(&r, canon, sizeof(a), etag); /* Location canonical */
        http_resp_free(&r);
        check_blob(canon, a, sizeof(a), etag);
        check_blob(sent, a, sizeof(a), etag);
        dashed(canon, other);
        check_blob(other, a, sizeof(a), etag);

        /* A second PUT in the canonical form replaces the same blob. */
        blob_path(path, sizeof(path), canon);
        assert_int_equal(http_status(&S, "PUT", path, NULL, a, 10), 204);
        check_blob(sent, a, 10, NULL);
    }
}

static void expect_bad_guid(struct srv *s, const char *method, const char *guid)
{
    char path[128];
    struct http_resp r;
    blob_path(path, sizeof(path), guid);
    assert_int_equal(http_req(s, method, path, NULL,
                              strcmp(method, "PUT") == 0 ? "abc" : NULL,
                              strcmp(method, "PUT") == 0 ? 3 : 0, &r),
                     0);
    if (r.status != 400)
        fail_msg("%s %s: want 400 bad_guid, got %ld", method, path, r.status);
    http_expect_error(&r, 400, "bad_guid", NULL);
    http_resp_free(&r);
}

static void test_put_bad_guids(void **state)
{
    (void)state;
    struct srv *fresh = &F;
    char g[HTTP_GUID_BUF], bad[8][48];
    size_t nb = 0;
    http_guid_rand(g);

    snprintf(bad[nb++], 48, "xyz");
    snprintf(bad[nb++], 48, "%.31s", g); /* 31 hex */
    snprintf(bad[nb++], 48, "%s0", g);   /* 33 hex */
    snprintf(bad[nb++], 48, "%.9s-%.3s-%.4s-%.4s-%.12s", g, g + 9, g + 12,
             g + 16, g + 20); /* 9-3-4-4-12 */
    snprintf(bad[nb++], 48, "%.8s-%.4s-%.4s-%.16s", g, g + 8, g + 12,
             g + 16); /* a dash missing */
    snprintf(bad[nb++], 48, "%.8s%.4s-%.4s-%.4s-%.12s-", g, g + 8, g + 12,
             g + 16, g + 20); /* dash moved to the end */
    snprintf(bad[nb++], 48, "%s", g);
    bad[nb - 1][5] = 'g';                /* not a hex digit */
    snprintf(bad[nb++], 48, "%.16s", g); /* too short */

    srv_up(fresh, NULL);
    for (size_t i = 0; i < nb; i++) {
        expect_bad_guid(fresh, "PUT", bad[i]);
        expect_bad_guid(fresh, "GET", bad[i]);
        expect_bad_guid(fresh, "DELETE", bad[i]);
    }
    /* Nothing was created. */
    struct http_resp r;
    assert_int_equal(http_req(fresh, "GET", "/blobs", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    assert_non_null(j);
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(j, "blobs");
    int ok = cJSON_IsArray(blobs) && cJSON_GetArraySize(blobs) == 0 &&
             !cJSON_GetObjectItemCaseSensitive(j, "next");
    cJSON_Delete(j);
    if (!ok)
        fail_msg("after invalid PUTs the listing is not empty: %.500s", r.body);
    http_resp_free(&r);
    srv_fini(fresh);
}

/* ---- POST /blobs ---- */

static void post_blob(const void *a, size_t len, char guid[HTTP_GUID_BUF])
{
    struct http_resp r;
    char loc[128], etag[API_ETAG_MAX];
    assert_int_equal(http_req(&S, "POST", "/blobs", NULL, a, len, &r), 0);
    if (r.status != 201)
        fail_msg("POST /blobs: %ld, want 201: %.200s", r.status, r.body);
    assert_true(http_header(&r, "Location", loc, sizeof(loc)));
    if (strncmp(loc, "/blobs/", 7) != 0 || strlen(loc) != 7 + 32)
        fail_msg("POST /blobs: Location \"%s\" is not /blobs/<32 hex>", loc);
    for (const char *p = loc + 7; *p; p++) {
        if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p))
            fail_msg("POST /blobs: Location \"%s\" is not canonical", loc);
    }
    memcpy(guid, loc + 7, 33);
    check_created(&r, guid, len, etag);
    http_resp_free(&r);
    check_blob(guid, a, len, etag);
}

static void test_post_creates(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF];
    uint8_t a[3000];
    http_fill(a, sizeof(a), 600);
    post_blob(a, sizeof(a), g);
    post_blob(a, 0, g);
}

static uint64_t guid_ms(const char *g)
{
    uint64_t v = 0;
    for (int i = 0; i < 12; i++) {
        char c = g[i];
        v = v * 16 + (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return v;
}

static void test_post_time_ordered(void **state)
{
    (void)state;
    char g1[HTTP_GUID_BUF], g2[HTTP_GUID_BUF], g3[HTTP_GUID_BUF];
    uint8_t a[10];
    struct timespec ts;
    http_fill(a, sizeof(a), 700);
    post_blob(a, sizeof(a), g1);
    usleep(5000);
    post_blob(a, sizeof(a), g2);
    usleep(5000);
    post_blob(a, sizeof(a), g3);
    if (!(strcmp(g1, g2) < 0 && strcmp(g2, g3) < 0))
        fail_msg("POST GUIDs not increasing: %s %s %s", g1, g2, g3);
    /* The first 6 bytes are milliseconds since the epoch. */
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now =
        (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t ms = guid_ms(g3);
    if (ms > now + 60000 || ms + 60000 < now)
        fail_msg("GUID %s: time prefix %llu ms is not near now (%llu)", g3,
                 (unsigned long long)ms, (unsigned long long)now);
    assert_true(guid_ms(g2) - guid_ms(g1) >= 4);
}

/* ---- routing errors ---- */

static void test_no_route(void **state)
{
    (void)state;
    static const char *const paths[] = {"/nope", "/blobsx", "/blob/abc",
                                        "/flushes", "/admin/nothing"};
    struct http_resp r;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_int_equal(http_req(&S, "GET", paths[i], NULL, NULL, 0, &r), 0);
        if (r.status != 404)
            fail_msg("GET %s: %ld, want 404 no_route", paths[i], r.status);
        http_expect_error(&r, 404, "no_route", NULL);
        http_resp_free(&r);
    }
    assert_int_equal(http_req(&S, "PUT", "/nope", NULL, "x", 1, &r), 0);
    http_expect_error(&r, 404, "no_route", NULL);
    http_resp_free(&r);
}

/* Allow lists the same methods as want (order and spacing aside). */
static void assert_allow(const struct http_resp *r, const char *want)
{
    char got[256], a[256], b[256];
    assert_true(http_header(r, "Allow", got, sizeof(got)));
    const char *src[2] = {got, want};
    char *dst[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        /* normalise: the sorted set of upper-case tokens */
        char toks[16][16];
        int nt = 0;
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "%s", src[k]);
        for (char *sv, *t = strtok_r(tmp, ", ", &sv); t && nt < 16;
             t = strtok_r(NULL, ", ", &sv))
            snprintf(toks[nt++], 16, "%s", t);
        for (int i = 0; i < nt; i++)
            for (int j = i + 1; j < nt; j++)
                if (strcmp(toks[j], toks[i]) < 0) {
                    char x[16];
                    memcpy(x, toks[i], 16);
                    memcpy(toks[i], toks[j], 16);
                    memcpy(toks[j], x, 16);
                }
        dst[k][0] = '\0';
        for (int i = 0; i < nt; i++) {
            strcat(dst[k], toks[i]);
            strcat(dst[k], " ");
        }
    }
    if (strcmp(a, b) != 0)
        fail_msg("Allow: \"%s\", want \"%s\"", got, want);
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF], path[64];
    struct http_resp r;
    http_guid_rand(g);
    blob_path(path, sizeof(path), g);
    static const struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"PATCH", NULL, "GET, HEAD, PUT, DELETE"},
        {"POST", NULL, "GET, HEAD, PUT, DELETE"},
        {"DELETE", "/blobs", "GET, POST"},
        {"PUT", "/blobs", "GET, POST"},
        {"GET", "/flush", "POST"},
        {"DELETE", "/flush", "POST"},
        {"POST", "/healthz", "GET, HEAD"},
        {"DELETE", "/readyz", "GET, HEAD"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = cases[i].path ? cases[i].path : path;
        int body = strcmp(cases[i].method, "PUT") == 0 ||
                   strcmp(cases[i].method, "POST") == 0;
        assert_int_equal(http_req(&S, cases[i].method, p, NULL,
                                  body ? "x" : NULL, body ? 1 : 0, &r),
                         0);
        if (r.status != 405)
            fail_msg("%s %s: %ld, want 405", cases[i].method, p, r.status);
        http_expect_error(&r, 405, "method_not_allowed", NULL);
        assert_allow(&r, cases[i].allow);
        http_resp_free(&r);
    }
    /* Nothing was created by the refused requests. */
    check_absent(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_sizes),
        cmocka_unit_test(test_put_too_large_content_length),
        cmocka_unit_test(test_put_too_large_not_read),
        cmocka_unit_test(test_put_too_large_lingering),
        cmocka_unit_test(test_put_length_required),
        cmocka_unit_test(test_put_chunked),
        cmocka_unit_test(test_put_chunked_too_large),
        cmocka_unit_test(test_put_guid_forms),
        cmocka_unit_test(test_put_bad_guids),
        cmocka_unit_test(test_post_creates),
        cmocka_unit_test(test_post_time_ordered),
        cmocka_unit_test(test_no_route),
        cmocka_unit_test(test_method_not_allowed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
