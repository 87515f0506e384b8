/*
 * test_api_obs.c - auth, upload digests and observability of api/ (api.h):
 * the role of every route and method, bearer parsing, the constant-time
 * token comparison, Content-MD5 / Content-Digest against known vectors,
 * the latency histogram, the /admin/stats document (parsed back with
 * cJSON) and the /metrics text (parsed line by line as Prometheus text
 * format 0.0.4).
 *
 * Every number in the filled-in stats is distinct, so a field written
 * under the wrong key fails.  No store is opened and no file is touched.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"

/* ---- helpers ---------------------------------------------------------- */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Fail with the row's index and a description when cond does not hold. */
#define CHECK(cond, i, what)                                                   \
    do {                                                                       \
        if (!(cond)) {                                                         \
            print_error("%s:%d: row %zu (%s): %s\n", __FILE__, __LINE__,       \
                        (size_t)(i), (what), #cond);                           \
            fail();                                                            \
        }                                                                      \
    } while (0)

static const char *S(const char *s)
{
    return s ? s : "(null)";
}

/* ---- roles ------------------------------------------------------------ */

static void test_route_role(void **state)
{
    (void)state;
#define N API_ROLE_NONE
#define R API_ROLE_READ
#define W API_ROLE_WRITE
#define A API_ROLE_ADMIN
    /* columns: GET HEAD PUT POST DELETE OTHER */
    static const struct {
        enum api_route_kind kind;
        const char *name;
        enum api_role role[API_M_OTHER + 1];
    } rows[] = {
        {API_R_NONE, "none", {N, N, N, N, N, N}},
        {API_R_BLOB, "blob", {R, R, W, W, W, R}},
        {API_R_BLOBS, "blobs", {R, R, W, W, W, R}},
        {API_R_FLUSH, "flush", {W, W, W, W, W, W}},
        {API_R_HEALTHZ, "healthz", {N, N, N, N, N, N}},
        {API_R_READYZ, "readyz", {N, N, N, N, N, N}},
        {API_R_ADMIN_STATS, "admin/stats", {R, R, R, R, R, R}},
        {API_R_ADMIN_COMPACT, "admin/compact", {A, A, A, A, A, A}},
        {API_R_ADMIN_HOLD, "admin/hold", {A, A, A, A, A, A}},
        {API_R_METRICS, "metrics", {R, R, R, R, R, R}},
        {API_R_STATUS, "status", {N, N, N, N, N, N}},
    };
    assert_int_equal(NELEM(rows), API_R_STATUS + 1);
    for (size_t i = 0; i < NELEM(rows); i++)
        for (int m = API_M_GET; m <= API_M_OTHER; m++)
            CHECK(api_route_role(rows[i].kind, (enum api_method)m) ==
                      rows[i].role[m],
                  i * 10 + (size_t)m, rows[i].name);

    /* The same through api_route: every routed request's role. */
    static const struct {
        const char *path;
        enum api_method m;
        enum api_role role;
    } req[] = {
        {"/blobs/0123456789abcdef0123456789abcdef", API_M_GET, R},
        {"/blobs/0123456789abcdef0123456789abcdef", API_M_HEAD, R},
        {"/blobs/0123456789abcdef0123456789abcdef", API_M_PUT, W},
        {"/blobs/0123456789abcdef0123456789abcdef", API_M_DELETE, W},
        {"/blobs", API_M_GET, R},
        {"/blobs", API_M_POST, W},
        {"/flush", API_M_POST, W},
        {"/healthz", API_M_GET, N},
        {"/readyz", API_M_HEAD, N},
        {"/admin/stats", API_M_GET, R},
        {"/metrics", API_M_GET, R},
        {"/", API_M_GET, N},
        {"/", API_M_HEAD, N},
        {"/admin/compact", API_M_POST, A},
        {"/admin/hold", API_M_POST, A},
        {"/admin/hold", API_M_DELETE, A},
    };
    for (size_t i = 0; i < NELEM(req); i++) {
        struct api_route r;
        CHECK(api_route(req[i].m, req[i].path, &r) == API_ERR_NONE, i,
              req[i].path);
        CHECK(api_route_role(r.kind, req[i].m) == req[i].role, i, req[i].path);
    }
#undef N
#undef R
#undef W
#undef A
    /* Each role includes the ones before it. */
    assert_true(API_ROLE_NONE < API_ROLE_READ);
    assert_true(API_ROLE_READ < API_ROLE_WRITE);
    assert_true(API_ROLE_WRITE < API_ROLE_ADMIN);
}

/* ---- bearer tokens ---------------------------------------------------- */

static void test_bearer(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        const char *token; /* NULL: -1 */
    } rows[] = {
        {"Bearer abc", "abc"},
        {"bearer abc", "abc"},
        {"BEARER abc", "abc"},
        {"bEaReR abc", "abc"},
        {"Bearer    abc", "abc"},
        {"  Bearer abc  ", "abc"},
        {"\tBearer abc\t", "abc"},
        {"Bearer abc==", "abc=="},
        {"Bearer a", "a"},
        {"Bearer AZaz09-._~+/", "AZaz09-._~+/"},
        {"Bearer mF_9.B5f-4.1JqM", "mF_9.B5f-4.1JqM"},
        {NULL, NULL},
        {"", NULL},
        {"   ", NULL},
        {"Bearer", NULL},
        {"Bearer ", NULL},
        {"Bearer    ", NULL},
        {"Bearerabc", NULL},
        {"Bearers abc", NULL},
        {"Beare abc", NULL},
        {"Bearer\tabc", NULL},
        {"Bearer a b", NULL},
        {"Bearer a=b", NULL},
        {"Bearer =abc", NULL},
        {"Bearer ==", NULL},
        {"Bearer ab,c", NULL},
        {"Bearer ab\"c", NULL},
        {"Bearer ab@c", NULL},
        {"Bearer ab;c", NULL},
        {"Bearer \"abc\"", NULL},
        {"Bearer ab\xc3\xa9", NULL},
        {"Basic dXNlcjpwYXNz", NULL},
        {"Digest abc", NULL},
        {"abc", NULL},
        {"Bearer abc, Bearer def", NULL},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        const char *tok = NULL;
        size_t len = 0;
        int rc = api_bearer(rows[i].value, &tok, &len);
        if (!rows[i].token) {
            CHECK(rc == -1, i, S(rows[i].value));
            continue;
        }
        CHECK(rc == 0, i, rows[i].value);
        CHECK(len == strlen(rows[i].token), i, rows[i].value);
        CHECK(memcmp(tok, rows[i].token, len) == 0, i, rows[i].value);
        /* The token points into the value. */
        CHECK(tok >= rows[i].value &&
                  tok + len <= rows[i].value + strlen(rows[i].value),
              i, rows[i].value);
    }
}

/* ---- constant-time comparison ----------------------------------------- */

/* A heap copy with no terminator, so ASan sees any read past len. */
static char *exact(const char *s, size_t len)
{
    char *p = malloc(len ? len : 1);
    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

static void test_token_equal(void **state)
{
    (void)state;
    static const struct {
        const char *a;
        size_t alen;
        const char *b;
        size_t blen;
        int equal;
    } rows[] = {
        {"secret", 6, "secret", 6, 1},
        {"secret", 6, "secreT", 6, 0},
        {"secret", 6, "Secret", 6, 0},
        {"secret", 6, "secre", 5, 0},
        {"secre", 5, "secret", 6, 0},
        {"secret", 6, "secretx", 7, 0},
        {"", 0, "", 0, 1},
        {"", 0, "a", 1, 0},
        {"a", 1, "", 0, 0},
        {"ab\0", 3, "ab", 2, 0}, /* a NUL is a byte like any other */
        {"ab", 2, "ab\0", 3, 0},
        {"\0", 1, "", 0, 0},
        {"a\0c", 3, "a\0c", 3, 1},
        {"a\0c", 3, "a\0d", 3, 0},
        {"\xff\x80", 2, "\xff\x80", 2, 1},
        {"\xff\x80", 2, "\xff\x81", 2, 0},
        {"x", 1, "y", 1, 0},
        {"0123456789abcdef0123456789abcdef", 32,
         "0123456789abcdef0123456789abcdef", 32, 1},
        {"0123456789abcdef0123456789abcdef", 32,
         "0123456789abcdef0123456789abcdeF", 32, 0},
        {"1123456789abcdef0123456789abcdef", 32,
         "0123456789abcdef0123456789abcdef", 32, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        char *a = exact(rows[i].a, rows[i].alen);
        char *b = exact(rows[i].b, rows[i].blen);
        CHECK(api_token_equal(a, rows[i].alen, b, rows[i].blen) ==
                  rows[i].equal,
              i, rows[i].a);
        CHECK(api_token_equal(b, rows[i].blen, a, rows[i].alen) ==
                  rows[i].equal,
              i, rows[i].b);
        free(a);
        free(b);
    }
    /* Empty strings may come as NULL. */
    assert_int_equal(api_token_equal(NULL, 0, NULL, 0), 1);
    assert_int_equal(api_token_equal(NULL, 0, "a", 1), 0);
    assert_int_equal(api_token_equal("a", 1, NULL, 0), 0);
}

/* ---- upload digests --------------------------------------------------- */

/* Known vectors (python3 hashlib + base64). */
#define MD5_EMPTY "1B2M2Y8AsgTpgAmY7PhCfg=="
#define MD5_HELLO "XUFAKrxLKna5cZ2REBfFkg=="
#define SHA256_EMPTY "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
#define SHA256_HELLO "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
#define SHA512_HELLO                                                           \
    "m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wu" \
    "XDre9G9zvN7AQw=="

static const uint8_t md5_empty_raw[16] = {0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00,
                                          0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98,
                                          0xec, 0xf8, 0x42, 0x7e};
static const uint8_t sha256_hello_raw[32] = {
    0x2c, 0xf2, 0x4d, 0xba, 0x5f, 0xb0, 0xa3, 0x0e, 0x26, 0xe8, 0x3b,
    0x2a, 0xc5, 0xb9, 0xe2, 0x9e, 0x1b, 0x16, 0x1e, 0x5c, 0x1f, 0xa7,
    0x42, 0x5e, 0x73, 0x04, 0x33, 0x62, 0x93, 0x8b, 0x98, 0x24};

static void test_digests_vectors(void **state)
{
    (void)state;
    struct api_digests d;

    /* Nothing sent: nothing to check. */
    memset(&d, 0xcc, sizeof(d));
    assert_int_equal(api_digests_parse(NULL, NULL, &d), 0);
    assert_false(d.has_md5 || d.has_sha256);
    assert_int_equal(api_digests_check(&d, "anything", 8), 0);

    assert_int_equal(api_digests_parse(MD5_EMPTY, NULL, &d), 0);
    assert_true(d.has_md5 && !d.has_sha256);
    assert_memory_equal(d.md5, md5_empty_raw, 16);
    assert_int_equal(api_digests_check(&d, "", 0), 0);
    assert_int_equal(api_digests_check(&d, "x", 1), -1);

    assert_int_equal(api_digests_parse(MD5_HELLO, NULL, &d), 0);
    assert_int_equal(api_digests_check(&d, "hello", 5), 0);
    assert_int_equal(api_digests_check(&d, "hellO", 5), -1);
    assert_int_equal(api_digests_check(&d, "hell", 4), -1);

    /* White space around Content-MD5 is trimmed. */
    assert_int_equal(api_digests_parse("  " MD5_HELLO "\t ", NULL, &d), 0);
    assert_int_equal(api_digests_check(&d, "hello", 5), 0);

    assert_int_equal(api_digests_parse(NULL, "sha-256=:" SHA256_HELLO ":", &d),
                     0);
    assert_true(!d.has_md5 && d.has_sha256);
    assert_memory_equal(d.sha256, sha256_hello_raw, 32);
    assert_int_equal(api_digests_check(&d, "hello", 5), 0);
    assert_int_equal(api_digests_check(&d, "hello!", 6), -1);

    assert_int_equal(api_digests_parse(NULL, "sha-256=:" SHA256_EMPTY ":", &d),
                     0);
    assert_int_equal(api_digests_check(&d, "", 0), 0);
    assert_int_equal(api_digests_check(&d, "hello", 5), -1);

    /* Both headers, both right; then one of them wrong either way. */
    assert_int_equal(
        api_digests_parse(MD5_HELLO, "sha-256=:" SHA256_HELLO ":", &d), 0);
    assert_true(d.has_md5 && d.has_sha256);
    assert_int_equal(api_digests_check(&d, "hello", 5), 0);
    assert_int_equal(
        api_digests_parse(MD5_EMPTY, "sha-256=:" SHA256_HELLO ":", &d), 0);
    assert_int_equal(api_digests_check(&d, "hello", 5), -1);
    assert_int_equal(api_digests_check(&d, "", 0), -1);
    assert_int_equal(
        api_digests_parse(MD5_HELLO, "sha-256=:" SHA256_EMPTY ":", &d), 0);
    assert_int_equal(api_digests_check(&d, "hello", 5), -1);
    assert_int_equal(api_digests_check(&d, "", 0), -1);
}

static void test_digests_dictionary(void **state)
{
    (void)state;
    /* Valid Content-Digest values: has_sha256 and, if so, which body. */
    static const struct {
        const char *value;
        int has_sha256;
        const char *body; /* matches when has_sha256 */
    } ok[] = {
        {"sha-256=:" SHA256_HELLO ":", 1, "hello"},
        {"  sha-256=:" SHA256_HELLO ":  ", 1, "hello"},
        /* padding left out (RFC 8941 §4.2.7) */
        {"sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ:", 1, "hello"},
        {"sha-512=:" SHA512_HELLO ":, sha-256=:" SHA256_HELLO ":", 1, "hello"},
        {"sha-256=:" SHA256_HELLO ":,sha-512=:" SHA512_HELLO ":", 1, "hello"},
        {"sha-256=:" SHA256_HELLO ":\t ,\t md5=:" MD5_HELLO ":", 1, "hello"},
        /* a duplicate key: the last one wins (RFC 8941 §4.2.2) */
        {"sha-256=:" SHA256_EMPTY ":, sha-256=:" SHA256_HELLO ":", 1, "hello"},
        /* unknown or unchecked algorithms alone are ignored */
        {"sha-512=:" SHA512_HELLO ":", 0, NULL},
        {"md5=:" MD5_HELLO ":", 0, NULL},
        {"unixsum=:AAAA:", 0, NULL},
        {"id-sha-256=:" SHA256_HELLO ":", 0, NULL},
        {"x*y.z_1-2=::", 0, NULL},
        {"*future=:AAAA:", 0, NULL},
        {"sha-512=:AA==:, crc32c=:AAAAAA==:", 0, NULL},
        /* an empty dictionary */
        {"", 0, NULL},
        {"   ", 0, NULL},
    };
    for (size_t i = 0; i < NELEM(ok); i++) {
        struct api_digests d;
        CHECK(api_digests_parse(NULL, ok[i].value, &d) == 0, i, ok[i].value);
        CHECK(d.has_sha256 == ok[i].has_sha256 && !d.has_md5, i, ok[i].value);
        if (d.has_sha256) {
            CHECK(api_digests_check(&d, ok[i].body, strlen(ok[i].body)) == 0, i,
                  ok[i].value);
            CHECK(api_digests_check(&d, "x", 1) == -1, i, ok[i].value);
        } else {
            CHECK(api_digests_check(&d, "anything", 8) == 0, i, ok[i].value);
        }
    }
}

static void test_digests_malformed(void **state)
{
    (void)state;
    static const char *const bad_md5[] = {
        "",
        "   ",
        "1B2M2Y8AsgTpgAmY7PhCfg",     /* no padding */
        "1B2M2Y8AsgTpgAmY7PhCfg=",    /* short padding */
        "1B2M2Y8AsgTpgAmY7PhCfg===",  /* extra padding */
        "1B2M2Y8AsgTpgAmY7PhCf===",   /* too much padding */
        "1B2M2Y8AsgTpgAmY7PhCfg==x",  /* trailing garbage */
        "1B2M2Y8AsgTpgAmY7PhCfg== x", /* two words */
        "1B2M2Y8A sgTpgAmY7PhCfg==",  /* inner space */
        "1B2M2Y8A\nsgTpgAmY7PhCfg==", /* inner newline */
        "-B2M2Y8AsgTpgAmY7PhCfg==",   /* base64url alphabet */
        "1B2M2Y8AsgTpgAmY7PhC_g==",   /* base64url alphabet */
        "1B2M2Y8AsgTpgAmY7PhCfh==",   /* non-zero pad bits */
        "1B2M2Y8AsgTpgAmY7PhC",       /* 15 bytes */
        "1B2M2Y8AsgTpgAmY7PhCfgAA",   /* 18 bytes */
        "1B2M2Y8AsgTpgAmY7PhCfgA=",   /* 17 bytes */
        SHA256_HELLO,                 /* 32 bytes */
        "1B2M2Y8A=sgTpgAmY7PhCfg=",   /* padding inside */
        "1b2m2y8asgtpgamy7phcfg",
        "d41d8cd98f00b204e9800998ecf8427e", /* hex, not base64 */
        ":" MD5_EMPTY ":",
    };
    for (size_t i = 0; i < NELEM(bad_md5); i++) {
        struct api_digests d;
        CHECK(api_digests_parse(bad_md5[i], NULL, &d) == -1, i, bad_md5[i]);
        CHECK(!d.has_md5 && !d.has_sha256, i, bad_md5[i]);
    }
    static const char *const bad_digest[] = {
        "sha-256=:" MD5_HELLO ":",      /* 16 bytes, not 32 */
        "sha-256=:" SHA512_HELLO ":",   /* 64 bytes */
        "sha-256=:AAAA:",               /* 3 bytes */
        "sha-256=::",                   /* 0 bytes */
        "sha-256=" SHA256_HELLO,        /* not a byte sequence */
        "sha-256=\"" SHA256_HELLO "\"", /* a string */
        "sha-256=:" SHA256_HELLO,       /* unterminated */
        "sha-256=:" SHA256_HELLO ":x",  /* garbage after the item */
        "SHA-256=:" SHA256_HELLO ":",   /* keys are lowercase */
        "Sha-256=:" SHA256_HELLO ":",
        "sha-256 =:" SHA256_HELLO ":", /* no space around = */
        "sha-256= :" SHA256_HELLO ":",
        "sha-256=:" SHA256_HELLO ":,", /* trailing comma */
        "sha-256=:" SHA256_HELLO ":, ",
        ",sha-256=:" SHA256_HELLO ":", /* leading comma */
        "sha-256=:" SHA256_HELLO ":,,md5=:" MD5_HELLO ":",
        "sha-256=:" SHA256_HELLO ": md5=:" MD5_HELLO ":", /* no comma */
        "sha-256=:" SHA256_HELLO ":;q=1", /* parameters: not taken */
        "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLm CQ=:",
        "sha-256=:LPJNul-wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=:",
        "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCR=:", /* pad bits */
        "sha-256=:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ==:",
        "sha-256=:=LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ:",
        "sha-256",             /* a bare key (boolean true) */
        "=:" SHA256_HELLO ":", /* no key */
        "1sha=:AAAA:",         /* a key starts lcalpha or * */
        "sha-512=:!!!!:",      /* ignored keys still parse */
        "sha-512=:AA AA:",
        "sha-512",
        "sha-512=1",
        "sha-512=:AAAA:, sha-256=:" SHA256_HELLO,
        ":",
        ",",
    };
    for (size_t i = 0; i < NELEM(bad_digest); i++) {
        struct api_digests d;
        CHECK(api_digests_parse(NULL, bad_digest[i], &d) == -1, i,
              bad_digest[i]);
        CHECK(!d.has_md5 && !d.has_sha256, i, bad_digest[i]);
        /* A good Content-MD5 beside it does not save it. */
        CHECK(api_digests_parse(MD5_HELLO, bad_digest[i], &d) == -1, i,
              bad_digest[i]);
    }
    /* ... nor a good Content-Digest a bad Content-MD5. */
    struct api_digests d;
    assert_int_equal(api_digests_parse("xx", "sha-256=:" SHA256_HELLO ":", &d),
                     -1);
}

/* ---- histograms ------------------------------------------------------- */

static void test_hist_bounds(void **state)
{
    (void)state;
    static const double want[API_HIST_BUCKETS] = {
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    for (size_t i = 0; i < API_HIST_BUCKETS; i++) {
        CHECK(api_hist_bounds[i] == want[i], i, "bound");
        if (i > 0)
            CHECK(api_hist_bounds[i] > api_hist_bounds[i - 1], i, "order");
    }
}

static void test_hist_add(void **state)
{
    (void)state;
    static const struct {
        double v;
        size_t bucket;
    } rows[] = {
        {0, 0},         {1e-9, 0},   {0.0005, 0},     {0.00050001, 1},
        {0.001, 1},     {0.0011, 2}, {0.0025, 2},     {0.005, 3},
        {0.0099, 4},    {0.01, 4},   {0.025, 5},      {0.05, 6},
        {0.0500001, 7}, {0.1, 7},    {0.25, 8},       {0.5, 9},
        {0.75, 10},     {1, 10},     {2.5, 11},       {5, 12},
        {9.999, 13},    {10, 13},    {10.000001, 14}, {1e9, 14},
        {INFINITY, 14},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct api_hist h;
        memset(&h, 0, sizeof(h));
        api_hist_add(&h, rows[i].v);
        CHECK(h.count == 1, i, "count");
        CHECK(h.sum == rows[i].v, i, "sum");
        for (size_t b = 0; b <= API_HIST_BUCKETS; b++)
            CHECK(h.bucket[b] == (b == rows[i].bucket), i * 100 + b, "bucket");
    }
    /* Accumulates. */
    struct api_hist h;
    memset(&h, 0, sizeof(h));
    api_hist_add(&h, 0.5);
    api_hist_add(&h, 0.25);
    api_hist_add(&h, 20);
    assert_int_equal(h.count, 3);
    assert_true(h.sum == 20.75);
    assert_int_equal(h.bucket[8], 1);
    assert_int_equal(h.bucket[9], 1);
    assert_int_equal(h.bucket[API_HIST_BUCKETS], 1);
    /* A negative or NaN duration (a clock step) counts as 0. */
    api_hist_add(&h, -1);
    api_hist_add(&h, NAN);
    assert_int_equal(h.count, 5);
    assert_true(h.sum == 20.75);
    assert_int_equal(h.bucket[0], 2);
}

/* ---- the stats snapshot used below ------------------------------------ */

/* Observations per op (seconds); the histograms are filled from these. */
static const double obs_put[] = {0.0001, 0.0005, 0.0006, 3};
static const double obs_get[] = {0.001, 0.001, 20};
static const double obs_flush[] = {0.1, 0.2, 0.3, 10, 10.5};
static const struct {
    const double *v;
    size_t n;
} observations[API_OP_COUNT] = {
    [API_OP_PUT] = {obs_put, NELEM(obs_put)},
    [API_OP_GET] = {obs_get, NELEM(obs_get)},
    [API_OP_DELETE] = {NULL, 0},
    [API_OP_FLUSH] = {obs_flush, NELEM(obs_flush)},
};

#define VERSION_TRICKY "0.1.0-\"rc\"\\1\nx"

/* Every number distinct; flip inverts every boolean. */
static void fill(struct api_server_stats *s, int flip)
{
    struct store_stats *t = &s->store;
    memset(s, 0, sizeof(*s));
    s->version = "0.1.0";
    s->state = "ready";
    s->uptime_seconds = 12.5;
    s->store_open = 1;
    s->store_failed = !flip ? 0 : 1;
    t->entries = 101;
    t->next_slot = 102;
    t->free_singles = 103;
    t->free_ranges = 104;
    t->free_total = 105;
    t->pending_deltas = 106;
    t->pending_free = 107;
    t->pinned = 108;
    t->log_bytes = 109;
    t->log_records = 110;
    t->snapshot_bytes = 111;
    t->generation = 112;
    t->index_bytes = 113;
    t->compactions = 114;
    t->compaction_failures = 115;
    t->compaction_running = !flip;
    t->compaction_last_unix_ms = INT64_C(1700000000116);
    t->compaction_last_ns = 1500000000; /* 1.5 s */
    t->compaction_bytes_before = 117;
    t->compaction_bytes_after = 118;
    t->flushes = 119;
    t->flush_failures = 120;
    t->flush_last_unix_ms = INT64_C(1700000000121);
    t->flush_last_ns = 250000000; /* 0.25 s */
    t->flush_in_progress = flip;
    t->needs_flush = !flip;
    t->unflushed_blobs = 122;
    t->unflushed_bytes = 123;
    snprintf(t->last_sticky_error, sizeof(t->last_sticky_error),
             "fdatasync \"blobs.dat\": Input/output error");
    t->data_file_bytes = 124;
    t->preallocated_slots = 125;
    t->fs_free_bytes = 126;
    t->headroom = 127;
    snprintf(t->backend, sizeof(t->backend), "io_uring");
    snprintf(t->backend_note, sizeof(t->backend_note),
             "registered buffers refused (ENOMEM)");
    t->direct = !flip;
    t->queue_depth = 128;
    t->registered_buffers = 129;
    t->registered_buffers_in_use = 130;
    t->held = flip;
    t->holds_expired = 131;
    t->data_writes = 150;
    t->data_write_calls = 151;
    t->writes_superseded = 152;
    t->data_syncs = 153;
    t->log_syncs = 154;
    t->read_only = flip;
    t->torn_tail_offset = 132;
    t->torn_tail_found = !flip;
    snprintf(t->uuid, sizeof(t->uuid), "0a1b2c3d-0000-4000-8000-00000000beef");
    s->cache_bytes = 133;
    s->cache_limit = 134;
    s->cache_hits = 135;
    s->cache_misses = 136;
    s->mem_used = 137;
    s->mem_limit = 138;
    s->mem_connections = 32768;
    for (int m = 0; m <= API_M_OTHER; m++)
        for (int c = 0; c < 5; c++)
            s->http.requests[m][c] = (uint64_t)(1000 + 10 * m + c);
    s->http.bytes_in = 139;
    s->http.bytes_out = 140;
    s->http.open_connections = 141;
    s->http.checksum_failures = 142;
    s->http.read_errors = 143;
    s->http.threads = 3;
    s->http.max_connections = 4096;
    s->http.max_connections_per_client = 128;
    s->http.fd_limit = 65536;
    s->http.header_timeouts = 147;
    s->http.rejected_per_client = 148;
    s->http.bodies_abandoned = 149;
    s->http.write_refusals[API_ERR_NO_SPACE] = 144;
    s->http.write_refusals[API_ERR_STORE_FAILED] = 145;
    s->http.write_refusals[API_ERR_TOO_LARGE] = 146;
    for (int op = 0; op < API_OP_COUNT; op++)
        for (size_t i = 0; i < observations[op].n; i++)
            api_hist_add(&s->http.latency[op], observations[op].v[i]);
}

/* ---- /admin/stats ----------------------------------------------------- */

enum want_kind { W_NUM, W_BOOL, W_NULL, W_STR, W_OBJ };

struct want {
    const char *key;
    enum want_kind kind;
    double num; /* W_NUM; W_BOOL: 0 or 1 */
    const char *str;
};

#define WN(k, v)                                                               \
    {                                                                          \
        k, W_NUM, (double)(v), NULL                                            \
    }
#define WB(k, v)                                                               \
    {                                                                          \
        k, W_BOOL, (v) ? 1.0 : 0.0, NULL                                       \
    }
#define WZ(k)                                                                  \
    {                                                                          \
        k, W_NULL, 0, NULL                                                     \
    }
#define WS(k, v)                                                               \
    {                                                                          \
        k, W_STR, 0, v                                                         \
    }
#define WO(k)                                                                  \
    {                                                                          \
        k, W_OBJ, 0, NULL                                                      \
    }
/* a string, or null when empty */
#define WSN(k, v) ((v)[0] ? (struct want)WS(k, v) : (struct want)WZ(k))
#define WMS(k, v) ((v) > 0 ? (struct want)WN(k, v) : (struct want)WZ(k))

/* obj[name] is an object of exactly the keys of w[0..n), each as wanted. */
static const cJSON *check_object(const cJSON *parent, const char *name,
                                 const struct want *w, size_t n)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(parent, name);
    CHECK(cJSON_IsObject(o), 0, name);
    CHECK((size_t)cJSON_GetArraySize(o) == n, (size_t)cJSON_GetArraySize(o),
          name);
    for (size_t i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, w[i].key);
        CHECK(it != NULL, i, w[i].key);
        switch (w[i].kind) {
        case W_NUM:
            CHECK(cJSON_IsNumber(it) && it->valuedouble == w[i].num, i,
                  w[i].key);
            break;
        case W_BOOL:
            CHECK(cJSON_IsBool(it) && !!cJSON_IsTrue(it) == (w[i].num != 0), i,
                  w[i].key);
            break;
        case W_NULL:
            CHECK(cJSON_IsNull(it), i, w[i].key);
            break;
        case W_STR:
            CHECK(cJSON_IsString(it) && strcmp(it->valuestring, w[i].str) == 0,
                  i, w[i].key);
            break;
        case W_OBJ:
            CHECK(cJSON_IsObject(it), i, w[i].key);
            break;
        }
    }
    return o;
}

/* Check the whole document against s (store fields from st, which is
 * s->store or zeros). */
static void check_stats_doc(const char *text, const struct api_server_stats *s,
                            const struct store_stats *t)
{
    cJSON *doc = cJSON_Parse(text);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(doc), 9);

    const struct want process[] = {
        s->version ? (struct want)WS("version", s->version)
                   : (struct want)WZ("version"),
        s->state ? (struct want)WS("state", s->state)
                 : (struct want)WZ("state"),
        WN("uptime_seconds", s->uptime_seconds),
    };
    check_object(doc, "process", process, NELEM(process));

    const struct want manifest[] = {
        WN("entries", t->entries),
        WN("next_slot", t->next_slot),
        WO("free_slots"),
        WN("pending_deltas", t->pending_deltas),
        WN("pending_free", t->pending_free),
        WN("pinned", t->pinned),
        WN("log_bytes", t->log_bytes),
        WN("log_records", t->log_records),
        WN("snapshot_bytes", t->snapshot_bytes),
        WN("generation", t->generation),
        WN("index_bytes", t->index_bytes),
        WS("uuid", t->uuid),
        WB("torn_tail_found", t->torn_tail_found),
        WN("torn_tail_offset", t->torn_tail_offset),
    };
    const cJSON *m = check_object(doc, "manifest", manifest, NELEM(manifest));
    const struct want free_slots[] = {
        WN("singles", t->free_singles),
        WN("ranges", t->free_ranges),
        WN("total", t->free_total),
    };
    check_object(m, "free_slots", free_slots, NELEM(free_slots));

    const struct want compaction[] = {
        WN("count", t->compactions),
        WB("running", t->compaction_running),
        WMS("last_unix_ms", t->compaction_last_unix_ms),
        WN("last_duration_seconds", (double)t->compaction_last_ns / 1e9),
        WN("bytes_before", t->compaction_bytes_before),
        WN("bytes_after", t->compaction_bytes_after),
        WN("failures", t->compaction_failures),
    };
    check_object(doc, "compaction", compaction, NELEM(compaction));

    const struct want flush[] = {
        WN("count", t->flushes),
        WMS("last_unix_ms", t->flush_last_unix_ms),
        WN("last_duration_seconds", (double)t->flush_last_ns / 1e9),
        WB("in_progress", t->flush_in_progress),
        WB("needs_flush", t->needs_flush),
        WN("unflushed_blobs", t->unflushed_blobs),
        WN("unflushed_bytes", t->unflushed_bytes),
        WN("failures", t->flush_failures),
        WB("failed", s->store_failed),
        WSN("last_sticky_error", t->last_sticky_error),
    };
    check_object(doc, "flush", flush, NELEM(flush));

    const struct want data_file[] = {
        WN("size_bytes", t->data_file_bytes),
        WN("preallocated_slots", t->preallocated_slots),
        WN("free_bytes", t->fs_free_bytes),
        WN("headroom_bytes", t->headroom),
    };
    check_object(doc, "data_file", data_file, NELEM(data_file));

    const struct want io[] = {
        WS("backend", t->backend),
        WSN("backend_note", t->backend_note),
        WB("o_direct", t->direct),
        WN("queue_depth", t->queue_depth),
        WN("registered_buffers", t->registered_buffers),
        WN("registered_buffers_in_use", t->registered_buffers_in_use),
        WB("read_only", t->read_only),
        WB("held", t->held),
        WN("holds_expired", t->holds_expired),
        WN("data_writes", t->data_writes),
        WN("data_write_calls", t->data_write_calls),
        WN("writes_superseded", t->writes_superseded),
        WN("data_syncs", t->data_syncs),
        WN("log_syncs", t->log_syncs),
    };
    check_object(doc, "io", io, NELEM(io));

    const struct want cache[] = {
        WN("bytes", s->cache_bytes),
        WN("limit_bytes", s->cache_limit),
        WN("hits", s->cache_hits),
        WN("misses", s->cache_misses),
    };
    check_object(doc, "cache", cache, NELEM(cache));

    const struct want memory[] = {
        WN("used_bytes", s->mem_used),
        WN("limit_bytes", s->mem_limit),
        WN("connections_bytes", s->mem_connections),
    };
    check_object(doc, "memory", memory, NELEM(memory));

    const struct want http[] = {
        WO("requests"),
        WN("threads", s->http.threads),
        WN("bytes_in", s->http.bytes_in),
        WN("bytes_out", s->http.bytes_out),
        WN("open_connections", s->http.open_connections),
        WN("checksum_failures", s->http.checksum_failures),
        WN("read_errors", s->http.read_errors),
        WN("max_connections", s->http.max_connections),
        WN("max_connections_per_client", s->http.max_connections_per_client),
        WN("fd_limit", s->http.fd_limit),
        WN("header_timeouts", s->http.header_timeouts),
        WN("rejected_per_client", s->http.rejected_per_client),
        WN("bodies_abandoned", s->http.bodies_abandoned),
        WO("write_refusals"),
        WO("latency"),
    };
    const cJSON *h = check_object(doc, "http", http, NELEM(http));

    static const char *const methods[] = {"GET",  "HEAD",   "PUT",
                                          "POST", "DELETE", "OTHER"};
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    const struct want six[] = {WO("GET"),  WO("HEAD"),   WO("PUT"),
                               WO("POST"), WO("DELETE"), WO("OTHER")};
    const cJSON *req = check_object(h, "requests", six, NELEM(six));
    for (int mi = 0; mi <= API_M_OTHER; mi++) {
        struct want c[5];
        for (int ci = 0; ci < 5; ci++)
            c[ci] = (struct want)WN(classes[ci], s->http.requests[mi][ci]);
        check_object(req, methods[mi], c, 5);
    }

    struct want wr[API_ERR_COUNT];
    size_t nwr = 0;
    for (int e = API_ERR_NONE + 1; e < API_ERR_COUNT; e++)
        if (s->http.write_refusals[e] > 0)
            wr[nwr++] = (struct want)WN(api_error_code((enum api_error)e),
                                        s->http.write_refusals[e]);
    check_object(h, "write_refusals", wr, nwr);

    static const char *const ops[] = {"put", "get", "delete", "flush"};
    const struct want four[] = {WO("put"), WO("get"), WO("delete"),
                                WO("flush")};
    const cJSON *lat = check_object(h, "latency", four, NELEM(four));
    for (int op = 0; op < API_OP_COUNT; op++) {
        const struct want l[] = {
            WN("count", s->http.latency[op].count),
            WN("sum_seconds", s->http.latency[op].sum),
        };
        check_object(lat, ops[op], l, NELEM(l));
    }
    cJSON_Delete(doc);
}

static void test_json_stats(void **state)
{
    (void)state;
    static struct api_server_stats s;
    for (int flip = 0; flip < 2; flip++) {
        fill(&s, flip);
        char *text = api_json_stats(&s);
        assert_non_null(text);
        assert_null(strchr(text, '\n')); /* unformatted */
        check_stats_doc(text, &s, &s.store);
        free(text);
    }
    /* The numbers the JSON must carry, spelled out once (a swapped table
     * row in the test itself would otherwise go unnoticed). */
    fill(&s, 0);
    char *text = api_json_stats(&s);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"free_slots\":{\"singles\":103,"
                                 "\"ranges\":104,\"total\":105}"));
    assert_non_null(strstr(text, "\"last_duration_seconds\":1.5"));
    assert_non_null(strstr(text, "\"last_unix_ms\":1700000000116"));
    assert_non_null(strstr(text, "\"write_refusals\":{\"too_large\":146,"
                                 "\"store_failed\":145,\"no_space\":144}"));
    assert_non_null(
        strstr(text, "\"put\":{\"count\":4,\"sum_seconds\":3.0012}"));
    free(text);
}

static void test_json_stats_nulls(void **state)
{
    (void)state;
    static struct api_server_stats s;
    fill(&s, 0);
    /* Never compacted nor flushed, nothing sticky, no note, no version. */
    s.store.compaction_last_unix_ms = 0;
    s.store.flush_last_unix_ms = -5;
    s.store.last_sticky_error[0] = '\0';
    s.store.backend_note[0] = '\0';
    s.version = NULL;
    s.state = NULL;
    memset(s.http.write_refusals, 0, sizeof(s.http.write_refusals));
    char *text = api_json_stats(&s);
    assert_non_null(text);
    check_stats_doc(text, &s, &s.store);
    free(text);

    /* A char array without its NUL is cut at its size, never overread. */
    fill(&s, 0);
    memset(s.store.backend, 'b', sizeof(s.store.backend));
    memset(s.store.uuid, 'u', sizeof(s.store.uuid));
    text = api_json_stats(&s);
    assert_non_null(text);
    cJSON *doc = cJSON_Parse(text);
    assert_non_null(doc);
    const cJSON *io = cJSON_GetObjectItemCaseSensitive(doc, "io");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(io, "backend");
    assert_true(cJSON_IsString(b));
    assert_int_equal(strlen(b->valuestring), sizeof(s.store.backend));
    cJSON_Delete(doc);
    free(text);
}

static void test_json_stats_opening(void **state)
{
    (void)state;
    static struct api_server_stats s;
    static const struct store_stats zero;
    fill(&s, 0);
    /* Garbage in the store part must not show while it is not open. */
    s.store_open = 0;
    s.state = "opening";
    char *text = api_json_stats(&s);
    assert_non_null(text);
    check_stats_doc(text, &s, &zero);
    free(text);
}

/* ---- /metrics --------------------------------------------------------- */

#define MAX_SAMPLES 512
#define MAX_FAMILIES 128

struct sample {
    char name[96];
    char labels[256]; /* "k=v,k=v", unescaped, in the order written */
    double value;
    int family;
};

struct family {
    char name[96];
    char type[16];
    int help, typed, samples;
};

struct exposition {
    struct sample s[MAX_SAMPLES];
    size_t ns;
    struct family f[MAX_FAMILIES];
    size_t nf;
};

static int find_family(const struct exposition *x, const char *name)
{
    for (size_t i = 0; i < x->nf; i++)
        if (strcmp(x->f[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int add_family(struct exposition *x, const char *name)
{
    int i = find_family(x, name);
    if (i >= 0)
        return i;
    assert_true(x->nf < MAX_FAMILIES);
    assert_true(strlen(name) < sizeof(x->f[0].name));
    memset(&x->f[x->nf], 0, sizeof(x->f[0]));
    strcpy(x->f[x->nf].name, name);
    return (int)x->nf++;
}

static int is_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':' || (!first && c >= '0' && c <= '9');
}

/* A metric name at *pp into out; advances *pp. */
static void scan_name(const char **pp, char *out, size_t cap, const char *line)
{
    const char *p = *pp;
    size_t n = 0;
    CHECK(is_name_char(*p, 1), 0, line);
    while (is_name_char(*p, n == 0)) {
        CHECK(n + 1 < cap, n, line);
        out[n++] = *p++;
    }
    out[n] = '\0';
    *pp = p;
}

/* {k="v",...} at *pp into "k=v,k=v" (escapes undone). */
static void scan_labels(const char **pp, char *out, size_t cap,
                        const char *line)
{
    const char *p = *pp;
    size_t n = 0;
#define PUT(c)                                                                 \
    do {                                                                       \
        CHECK(n + 1 < cap, n, line);                                           \
        out[n++] = (c);                                                        \
    } while (0)
    CHECK(*p == '{', 0, line);
    p++;
    while (*p != '}') {
        if (n > 0)
            PUT(',');
        CHECK(is_name_char(*p, 1) && *p != ':', 0, line);
        while (is_name_char(*p, 0) && *p != ':')
            PUT(*p++);
        CHECK(p[0] == '=' && p[1] == '"', 0, line);
        PUT('=');
        p += 2;
        while (*p != '"') {
            CHECK(*p != '\0' && *p != '\n', 0, line);
            if (*p == '\\') {
                p++;
                CHECK(*p == '\\' || *p == '"' || *p == 'n', 0, line);
                PUT(*p == 'n' ? '\n' : *p);
                p++;
            } else {
                PUT(*p++);
            }
        }
        p++;
        CHECK(*p == ',' || *p == '}', 0, line);
        if (*p == ',')
            p++;
    }
    out[n] = '\0';
    *pp = p + 1;
#undef PUT
}

static double parse_value(const char *p, const char *end, const char *line)
{
    char buf[64];
    size_t n = (size_t)(end - p);
    CHECK(n > 0 && n < sizeof(buf), n, line);
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (strcmp(buf, "+Inf") == 0)
        return INFINITY;
    if (strcmp(buf, "-Inf") == 0)
        return -INFINITY;
    if (strcmp(buf, "NaN") == 0)
        return NAN;
    char *e;
    double v = strtod(buf, &e);
    CHECK(*e == '\0' && buf[0] != ' ', 0, line);
    return v;
}

static const char *const hist_suffixes[] = {"_bucket", "_sum", "_count"};

/* The family a sample belongs to: its own name, or a histogram's. */
static int sample_family(struct exposition *x, const char *name)
{
    int f = find_family(x, name);
    if (f >= 0)
        return f;
    for (size_t i = 0; i < NELEM(hist_suffixes); i++) {
        size_t n = strlen(name), k = strlen(hist_suffixes[i]);
        char base[96];
        if (n <= k || strcmp(name + n - k, hist_suffixes[i]) != 0)
            continue;
        memcpy(base, name, n - k);
        base[n - k] = '\0';
        f = find_family(x, base);
        if (f >= 0 && strcmp(x->f[f].type, "histogram") == 0)
            return f;
    }
    return -1;
}

/* Parse the whole text, checking the format as it goes. */
static void parse_exposition(const char *text, size_t len, struct exposition *x)
{
    const char *p = text, *end = text + len;
    int last_family = -1;
    memset(x, 0, sizeof(*x));
    assert_int_equal(strlen(text), len);
    assert_true(len > 0 && text[len - 1] == '\n');
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char line[512];
        assert_non_null(nl);
        size_t n = (size_t)(nl - p);
        assert_true(n > 0 && n < sizeof(line)); /* no empty line */
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        if (strncmp(line, "# HELP ", 7) == 0 ||
            strncmp(line, "# TYPE ", 7) == 0) {
            const char *q = line + 7;
            char name[96];
            scan_name(&q, name, sizeof(name), line);
            CHECK(*q == ' ' && q[1] != '\0', 0, line);
            int f = add_family(x, name);
            CHECK(x->f[f].samples == 0, 0, line); /* before its samples */
            if (line[2] == 'H') {
                CHECK(!x->f[f].help, 0, line);
                x->f[f].help = 1;
            } else {
                q++;
                CHECK(!x->f[f].typed, 0, line);
                CHECK(strcmp(q, "counter") == 0 || strcmp(q, "gauge") == 0 ||
                          strcmp(q, "histogram") == 0,
                      0, line);
                strcpy(x->f[f].type, q);
                x->f[f].typed = 1;
            }
            continue;
        }
        CHECK(line[0] != '#', 0, line); /* no other comments */
        assert_true(x->ns < MAX_SAMPLES);
        struct sample *s = &x->s[x->ns];
        const char *q = line;
        scan_name(&q, s->name, sizeof(s->name), line);
        CHECK(strncmp(s->name, "blobd_", 6) == 0, 0, line);
        s->labels[0] = '\0';
        if (*q == '{')
            scan_labels(&q, s->labels, sizeof(s->labels), line);
        CHECK(*q == ' ', 0, line);
        q++;
        s->value = parse_value(q, line + n, line);
        s->family = sample_family(x, s->name);
        CHECK(s->family >= 0, 0, line);
        CHECK(x->f[s->family].help && x->f[s->family].typed, 0, line);
        /* A family's samples are written together. */
        CHECK(x->f[s->family].samples == 0 || s->family == last_family, 0,
              line);
        for (size_t i = 0; i < x->ns; i++)
            CHECK(strcmp(x->s[i].name, s->name) != 0 ||
                      strcmp(x->s[i].labels, s->labels) != 0,
                  i, line);
        x->f[s->family].samples++;
        last_family = s->family;
        x->ns++;
    }
    for (size_t i = 0; i < x->nf; i++) {
        const struct family *f = &x->f[i];
        size_t n = strlen(f->name);
        int total = n > 6 && strcmp(f->name + n - 6, "_total") == 0;
        CHECK(f->help && f->typed && f->samples > 0, i, f->name);
        CHECK(strncmp(f->name, "blobd_", 6) == 0, i, f->name);
        CHECK(total == (strcmp(f->type, "counter") == 0), i, f->name);
    }
}

static const struct sample *find_sample(const struct exposition *x,
                                        const char *name, const char *labels)
{
    for (size_t i = 0; i < x->ns; i++)
        if (strcmp(x->s[i].name, name) == 0 &&
            strcmp(x->s[i].labels, labels) == 0)
            return &x->s[i];
    return NULL;
}

static double value_of(const struct exposition *x, const char *name,
                       const char *labels)
{
    const struct sample *s = find_sample(x, name, labels);
    if (!s) {
        print_error("no sample %s{%s}\n", name, labels);
        fail();
    }
    return s->value;
}

static const char *family_type(const struct exposition *x, const char *name)
{
    for (size_t i = 0; i < x->nf; i++)
        if (strcmp(x->f[i].name, name) == 0)
            return x->f[i].type;
    return "";
}

struct want_metric {
    const char *name;
    const char *type;
    double value;
};

static void check_metrics(const struct exposition *x,
                          const struct api_server_stats *s,
                          const struct store_stats *t, double ready)
{
    const struct want_metric w[] = {
        {"blobd_up", "gauge", 1},
        {"blobd_ready", "gauge", ready},
        {"blobd_uptime_seconds", "gauge", s->uptime_seconds},
        {"blobd_blobs", "gauge", (double)t->entries},
        {"blobd_next_slot", "gauge", (double)t->next_slot},
        {"blobd_free_slots", "gauge", (double)t->free_total},
        {"blobd_pending_deltas", "gauge", (double)t->pending_deltas},
        {"blobd_pending_free_slots", "gauge", (double)t->pending_free},
        {"blobd_pinned_slots", "gauge", (double)t->pinned},
        {"blobd_log_bytes", "gauge", (double)t->log_bytes},
        {"blobd_log_records", "gauge", (double)t->log_records},
        {"blobd_snapshot_bytes", "gauge", (double)t->snapshot_bytes},
        {"blobd_generation", "gauge", (double)t->generation},
        {"blobd_index_bytes", "gauge", (double)t->index_bytes},
        {"blobd_compactions_total", "counter", (double)t->compactions},
        {"blobd_compaction_failures_total", "counter",
         (double)t->compaction_failures},
        {"blobd_compaction_running", "gauge", t->compaction_running ? 1 : 0},
        {"blobd_compaction_last_duration_seconds", "gauge",
         (double)t->compaction_last_ns / 1e9},
        {"blobd_flushes_total", "counter", (double)t->flushes},
        {"blobd_flush_failures_total", "counter", (double)t->flush_failures},
        {"blobd_flush_last_duration_seconds", "gauge",
         (double)t->flush_last_ns / 1e9},
        {"blobd_flush_in_progress", "gauge", t->flush_in_progress ? 1 : 0},
        {"blobd_needs_flush", "gauge", t->needs_flush ? 1 : 0},
        {"blobd_unflushed_blobs", "gauge", (double)t->unflushed_blobs},
        {"blobd_unflushed_bytes", "gauge", (double)t->unflushed_bytes},
        {"blobd_store_failed", "gauge", s->store_failed ? 1 : 0},
        {"blobd_data_file_bytes", "gauge", (double)t->data_file_bytes},
        {"blobd_preallocated_slots", "gauge", (double)t->preallocated_slots},
        {"blobd_fs_free_bytes", "gauge", (double)t->fs_free_bytes},
        {"blobd_headroom_bytes", "gauge", (double)t->headroom},
        {"blobd_io_queue_depth", "gauge", (double)t->queue_depth},
        {"blobd_registered_buffers", "gauge", (double)t->registered_buffers},
        {"blobd_registered_buffers_in_use", "gauge",
         (double)t->registered_buffers_in_use},
        {"blobd_o_direct", "gauge", t->direct ? 1 : 0},
        {"blobd_read_only", "gauge", t->read_only ? 1 : 0},
        {"blobd_held", "gauge", t->held ? 1 : 0},
        {"blobd_holds_expired_total", "counter", (double)t->holds_expired},
        {"blobd_data_writes_total", "counter", (double)t->data_writes},
        {"blobd_data_write_calls_total", "counter",
         (double)t->data_write_calls},
        {"blobd_writes_superseded_total", "counter",
         (double)t->writes_superseded},
        {"blobd_data_syncs_total", "counter", (double)t->data_syncs},
        {"blobd_log_syncs_total", "counter", (double)t->log_syncs},
        {"blobd_cache_bytes", "gauge", (double)s->cache_bytes},
        {"blobd_cache_limit_bytes", "gauge", (double)s->cache_limit},
        {"blobd_cache_hits_total", "counter", (double)s->cache_hits},
        {"blobd_cache_misses_total", "counter", (double)s->cache_misses},
        {"blobd_memory_used_bytes", "gauge", (double)s->mem_used},
        {"blobd_memory_limit_bytes", "gauge", (double)s->mem_limit},
        {"blobd_memory_connections_bytes", "gauge", (double)s->mem_connections},
        {"blobd_http_received_bytes_total", "counter",
         (double)s->http.bytes_in},
        {"blobd_http_sent_bytes_total", "counter", (double)s->http.bytes_out},
        {"blobd_http_open_connections", "gauge",
         (double)s->http.open_connections},
        {"blobd_checksum_failures_total", "counter",
         (double)s->http.checksum_failures},
        {"blobd_read_errors_total", "counter", (double)s->http.read_errors},
        {"blobd_http_max_connections", "gauge",
         (double)s->http.max_connections},
        {"blobd_http_max_connections_per_client", "gauge",
         (double)s->http.max_connections_per_client},
        {"blobd_fd_limit", "gauge", (double)s->http.fd_limit},
    };
    for (size_t i = 0; i < NELEM(w); i++) {
        CHECK(strcmp(family_type(x, w[i].name), w[i].type) == 0, i, w[i].name);
        CHECK(value_of(x, w[i].name, "") == w[i].value, i, w[i].name);
    }

    /* Connections closed by the server's limits, by reason. */
    assert_string_equal(family_type(x, "blobd_connections_closed_total"),
                        "counter");
    assert_true(value_of(x, "blobd_connections_closed_total",
                         "reason=header_timeout") ==
                (double)s->http.header_timeouts);
    assert_true(
        value_of(x, "blobd_connections_closed_total", "reason=per_client") ==
        (double)s->http.rejected_per_client);
    assert_true(
        value_of(x, "blobd_connections_closed_total", "reason=client_left") ==
        (double)s->http.bodies_abandoned);

    /* build_info: the version as an escaped label, value 1. */
    char label[256];
    snprintf(label, sizeof(label), "version=%s", s->version ? s->version : "");
    assert_string_equal(family_type(x, "blobd_build_info"), "gauge");
    assert_true(value_of(x, "blobd_build_info", label) == 1);

    /* Requests: all 30 series. */
    static const char *const methods[] = {"GET",  "HEAD",   "PUT",
                                          "POST", "DELETE", "OTHER"};
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    assert_string_equal(family_type(x, "blobd_http_requests_total"), "counter");
    for (int m = 0; m <= API_M_OTHER; m++)
        for (int c = 0; c < 5; c++) {
            snprintf(label, sizeof(label), "method=%s,code=%s", methods[m],
                     classes[c]);
            CHECK(value_of(x, "blobd_http_requests_total", label) ==
                      (double)s->http.requests[m][c],
                  (size_t)(m * 10 + c), label);
        }
    assert_int_equal(x->f[find_family(x, "blobd_http_requests_total")].samples,
                     30);

    /* Write refusals: one series per error code. */
    assert_string_equal(family_type(x, "blobd_write_refusals_total"),
                        "counter");
    for (int e = API_ERR_NONE + 1; e < API_ERR_COUNT; e++) {
        snprintf(label, sizeof(label), "reason=%s",
                 api_error_code((enum api_error)e));
        CHECK(value_of(x, "blobd_write_refusals_total", label) ==
                  (double)s->http.write_refusals[e],
              (size_t)e, label);
    }
    assert_int_equal(x->f[find_family(x, "blobd_write_refusals_total")].samples,
                     API_ERR_COUNT - 1);

    /* Histograms: cumulative, +Inf == _count, counted from the
     * observations themselves. */
    static const char *const ops[] = {"put", "get", "delete", "flush"};
    const char *h = "blobd_request_duration_seconds";
    assert_string_equal(family_type(x, h), "histogram");
    for (int op = 0; op < API_OP_COUNT; op++) {
        double prev = -1, sum = 0;
        size_t nb = 0;
        for (size_t i = 0; i < x->ns; i++) {
            const struct sample *sm = &x->s[i];
            char prefix[64];
            if (strcmp(sm->name, "blobd_request_duration_seconds_bucket") != 0)
                continue;
            snprintf(prefix, sizeof(prefix), "op=%s,le=", ops[op]);
            if (strncmp(sm->labels, prefix, strlen(prefix)) != 0)
                continue;
            const char *le = sm->labels + strlen(prefix);
            double bound =
                nb < API_HIST_BUCKETS ? api_hist_bounds[nb] : INFINITY;
            CHECK(nb <= API_HIST_BUCKETS, nb, sm->labels);
            CHECK(parse_value(le, le + strlen(le), sm->labels) == bound, nb,
                  sm->labels);
            CHECK(sm->value >= prev, nb, sm->labels);
            double want = 0;
            for (size_t k = 0; k < observations[op].n; k++)
                want += observations[op].v[k] <= bound;
            CHECK(sm->value == want, nb, sm->labels);
            prev = sm->value;
            nb++;
        }
        CHECK(nb == API_HIST_BUCKETS + 1, (size_t)op, ops[op]);
        for (size_t k = 0; k < observations[op].n; k++)
            sum += observations[op].v[k];
        snprintf(label, sizeof(label), "op=%s", ops[op]);
        CHECK(value_of(x, "blobd_request_duration_seconds_count", label) ==
                  prev,
              (size_t)op, ops[op]);
        CHECK(prev == (double)observations[op].n, (size_t)op, ops[op]);
        CHECK(value_of(x, "blobd_request_duration_seconds_sum", label) ==
                  s->http.latency[op].sum,
              (size_t)op, ops[op]);
        CHECK(fabs(s->http.latency[op].sum - sum) < 1e-12, (size_t)op, ops[op]);
    }
}

static void test_metrics_text(void **state)
{
    (void)state;
    static struct api_server_stats s;
    static struct exposition x;
    for (int flip = 0; flip < 2; flip++) {
        size_t len = 0;
        fill(&s, flip);
        char *text = api_metrics_text(&s, &len);
        assert_non_null(text);
        parse_exposition(text, len, &x);
        /* ready needs state "ready" and no sticky failure */
        check_metrics(&x, &s, &s.store, s.store_failed ? 0 : 1);
        free(text);
    }
}

static void test_metrics_states(void **state)
{
    (void)state;
    static struct api_server_stats s;
    static struct exposition x;
    static const struct store_stats zero;
    static const struct {
        const char *state;
        int open, failed;
        double ready;
    } rows[] = {
        {"ready", 1, 0, 1},    {"ready", 1, 1, 0}, {"opening", 0, 0, 0},
        {"draining", 1, 0, 0}, {"Ready", 1, 0, 0}, {NULL, 1, 0, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        size_t len;
        fill(&s, 0);
        s.state = rows[i].state;
        s.store_open = rows[i].open;
        s.store_failed = rows[i].failed;
        char *text = api_metrics_text(&s, &len);
        CHECK(text != NULL, i, S(rows[i].state));
        parse_exposition(text, len, &x);
        check_metrics(&x, &s, rows[i].open ? &s.store : &zero, rows[i].ready);
        free(text);
    }
}

static void test_metrics_escaping(void **state)
{
    (void)state;
    static struct api_server_stats s;
    static struct exposition x;
    size_t len;
    fill(&s, 0);
    s.version = VERSION_TRICKY;
    char *text = api_metrics_text(&s, &len);
    assert_non_null(text);
    assert_non_null(strstr(
        text, "blobd_build_info{version=\"0.1.0-\\\"rc\\\"\\\\1\\nx\"} 1\n"));
    parse_exposition(text, len, &x);
    check_metrics(&x, &s, &s.store, 1);
    free(text);

    /* The same version in JSON, as a plain string. */
    text = api_json_stats(&s);
    assert_non_null(text);
    check_stats_doc(text, &s, &s.store);
    free(text);

    /* A NULL version is an empty label. */
    s.version = NULL;
    text = api_metrics_text(&s, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "blobd_build_info{version=\"\"} 1\n"));
    free(text);
}

static void test_metrics_cap(void **state)
{
    (void)state;
    static struct api_server_stats s;
    size_t len = 1;
    fill(&s, 0);
    /* A long label grows the buffer past its first size... */
    size_t n = 100 * 1024;
    char *v = malloc(n + 1);
    assert_non_null(v);
    memset(v, 'v', n);
    v[n] = '\0';
    s.version = v;
    char *text = api_metrics_text(&s, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_true(len > n);
    assert_non_null(strstr(text, v));
    free(text);
    free(v);

    /* ... and one past the cap fails whole, never overflows. */
    n = 1024 * 1024;
    v = malloc(n + 1);
    assert_non_null(v);
    memset(v, 'w', n);
    v[n] = '\0';
    s.version = v;
    len = 7;
    assert_null(api_metrics_text(&s, &len));
    assert_int_equal(len, 0);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_role),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_token_equal),
        cmocka_unit_test(test_digests_vectors),
        cmocka_unit_test(test_digests_dictionary),
        cmocka_unit_test(test_digests_malformed),
        cmocka_unit_test(test_hist_bounds),
        cmocka_unit_test(test_hist_add),
        cmocka_unit_test(test_json_stats),
        cmocka_unit_test(test_json_stats_nulls),
        cmocka_unit_test(test_json_stats_opening),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_metrics_states),
        cmocka_unit_test(test_metrics_escaping),
        cmocka_unit_test(test_metrics_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
