/*
 * test_api.c - the socket-free HTTP logic of api/ (api.h), table by table:
 * the error table and its JSON, GUIDs (I1), routes, entity tags and
 * preconditions (I2), If-Range, Range (I3, RFC 9110 §14), multipart
 * framing, body length rules, query values, store results to statuses and
 * the JSON documents, each parsed back with cJSON.
 *
 * No store is opened and no file is touched; every test is pure and runs
 * in any order.  A failing table row prints its index and input before
 * the test fails.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"

/* ---- helpers ---------------------------------------------------------- */

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define V(gen, n) (((uint64_t)(gen) << 40) | (uint64_t)(n))

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

static const uint8_t guid_ref[API_GUID_SIZE] = {
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

/* A GUID string's key as a string (cJSON), or NULL. */
static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static double json_num(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    assert_true(cJSON_IsNumber(it));
    return it->valuedouble;
}

/* ---- errors ----------------------------------------------------------- */

static const struct {
    enum api_error e;
    int status;
    const char *code;
} error_rows[] = {
    {API_ERR_BAD_GUID, 400, "bad_guid"},
    {API_ERR_BAD_QUERY, 400, "bad_query"},
    {API_ERR_BAD_REQUEST, 400, "bad_request"},
    {API_ERR_BAD_LENGTH, 400, "bad_length"},
    {API_ERR_BAD_PRECONDITION, 400, "bad_precondition"},
    {API_ERR_NOT_FOUND, 404, "not_found"},
    {API_ERR_NO_ROUTE, 404, "no_route"},
    {API_ERR_METHOD_NOT_ALLOWED, 405, "method_not_allowed"},
    {API_ERR_TIMEOUT, 408, "timeout"},
    {API_ERR_LENGTH_REQUIRED, 411, "length_required"},
    {API_ERR_PRECONDITION_FAILED, 412, "precondition_failed"},
    {API_ERR_TOO_LARGE, 413, "too_large"},
    {API_ERR_URI_TOO_LONG, 414, "uri_too_long"},
    {API_ERR_RANGE_NOT_SATISFIABLE, 416, "range_not_satisfiable"},
    {API_ERR_HEADERS_TOO_LARGE, 431, "headers_too_large"},
    {API_ERR_INTERNAL, 500, "internal"},
    {API_ERR_CORRUPT_DATA, 500, "corrupt_data"},
    {API_ERR_IO_ERROR, 500, "io_error"},
    {API_ERR_OVERLOADED, 503, "overloaded"},
    {API_ERR_STORE_FAILED, 503, "store_failed"},
    {API_ERR_READ_ONLY, 503, "read_only"},
    {API_ERR_NOT_READY, 503, "not_ready"},
    {API_ERR_DRAINING, 503, "draining"},
    {API_ERR_NO_SPACE, 507, "no_space"},
    {API_ERR_UNAUTHORIZED, 401, "unauthorized"},
    {API_ERR_FORBIDDEN, 403, "forbidden"},
    {API_ERR_BAD_DIGEST, 400, "bad_digest"},
    {API_ERR_DIGEST_MISMATCH, 400, "digest_mismatch"},
    {API_ERR_HELD, 409, "held"},
    {API_ERR_OVER_BUDGET, 503, "over_budget"},
    {API_ERR_BAD_URI, 400, "bad_uri"},
    {API_ERR_BAD_FRAMING, 400, "bad_framing"},
    {API_ERR_BAD_HEADER, 400, "bad_header"},
    {API_ERR_UNSUPPORTED_TE, 501, "unsupported_transfer_encoding"},
    {API_ERR_WRITE_FAILED, 500, "write_failed"},
};

static void test_error_table(void **state)
{
    (void)state;
    /* API_ERR_NONE (0, "no error") and then one row per error. */
    assert_int_equal(API_ERR_NONE, 0);
    assert_int_equal(NELEM(error_rows) + 1, API_ERR_COUNT);
    for (size_t i = 0; i < NELEM(error_rows); i++) {
        enum api_error e = error_rows[i].e;
        const char *code = api_error_code(e), *msg = api_error_message(e);
        CHECK((size_t)e == i + 1, i, error_rows[i].code);
        CHECK(api_error_status(e) == error_rows[i].status, i, code);
        CHECK(code && strcmp(code, error_rows[i].code) == 0, i, code);
        CHECK(msg && msg[0] != '\0', i, code);
        CHECK(api_status_reason(api_error_status(e))[0] != '\0', i, code);
        /* Codes are unique. */
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(api_error_code(error_rows[j].e), code) != 0, i, code);

        char *json = api_error_json(e, NULL);
        CHECK(json != NULL, i, code);
        cJSON *doc = cJSON_Parse(json);
        CHECK(cJSON_IsObject(doc), i, json);
        CHECK(cJSON_GetArraySize(doc) == 2, i, json);
        CHECK(json_str(doc, "error") &&
                  strcmp(json_str(doc, "error"), code) == 0,
              i, json);
        CHECK(json_str(doc, "message") &&
                  strcmp(json_str(doc, "message"), msg) == 0,
              i, json);
        cJSON_Delete(doc);
        free(json);
    }
}

static void test_error_json_message(void **state)
{
    (void)state;
    const char *msg = "a \"quoted\"\n\ttext \\ with \x01 control, é";
    char *json = api_error_json(API_ERR_BAD_QUERY, msg);
    assert_non_null(json);
    assert_null(strchr(json, '\n')); /* unformatted */
    cJSON *doc = cJSON_Parse(json);
    assert_non_null(doc);
    assert_string_equal(json_str(doc, "error"), "bad_query");
    assert_string_equal(json_str(doc, "message"), msg);
    cJSON_Delete(doc);
    free(json);

    /* NONE and out-of-range values read as internal. */
    assert_int_equal(api_error_status(API_ERR_NONE), 500);
    assert_string_equal(api_error_code(API_ERR_NONE), "internal");
    assert_string_equal(api_error_message(API_ERR_NONE), "internal error");
    assert_int_equal(api_error_status(API_ERR_COUNT), 500);
    assert_string_equal(api_error_code(API_ERR_COUNT), "internal");
    assert_string_equal(api_error_code((enum api_error) - 1), "internal");
}

static void test_status_reason(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *reason;
    } rows[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {416, "Range Not Satisfiable"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
        {507, "Insufficient Storage"},
        {0, ""},
        {-1, ""},
        {299, ""},
        {999, ""},
    };
    for (size_t i = 0; i < NELEM(rows); i++)
        CHECK(strcmp(api_status_reason(rows[i].status), rows[i].reason) == 0, i,
              rows[i].reason);
}

/* ---- GUIDs ------------------------------------------------------------ */

static void test_guid_parse_valid(void **state)
{
    (void)state;
    static const char *const rows[] = {
        "0123456789abcdef0123456789abcdef",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789AbCdEf0123456789aBcDeF",
        "01234567-89ab-cdef-0123-456789abcdef",
        "01234567-89AB-CDEF-0123-456789ABCDEF",
        "01234567-89Ab-cDEf-0123-456789aBCdeF",
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        uint8_t g[API_GUID_SIZE];
        memset(g, 0xee, sizeof(g));
        CHECK(api_guid_parse(rows[i], strlen(rows[i]), g) == 0, i, rows[i]);
        CHECK(memcmp(g, guid_ref, sizeof(g)) == 0, i, rows[i]);
    }

    /* All zeros and all ones. */
    uint8_t g[API_GUID_SIZE], want[API_GUID_SIZE];
    assert_int_equal(api_guid_parse("00000000000000000000000000000000", 32, g),
                     0);
    memset(want, 0, sizeof(want));
    assert_memory_equal(g, want, sizeof(g));
    assert_int_equal(
        api_guid_parse("FFFFFFFF-ffff-FFFF-ffff-FFFFFFFFFFFF", 36, g), 0);
    memset(want, 0xff, sizeof(want));
    assert_memory_equal(g, want, sizeof(g));

    /* Only s[0..len) is read: trailing text past len is not looked at. */
    const char *longer = "0123456789abcdef0123456789abcdefXYZ";
    assert_int_equal(api_guid_parse(longer, 32, g), 0);
    assert_memory_equal(g, guid_ref, sizeof(g));
}

static void test_guid_parse_invalid(void **state)
{
    (void)state;
    static const char *const rows[] = {
        "",
        "0",
        "0123456789abcdef0123456789abcde",   /* 31 */
        "0123456789abcdef0123456789abcdef0", /* 33 */
        "0123456789abcdef0123456789abcdef01234",
        "01234567-89ab-cdef-0123-456789abcde",   /* 35 */
        "01234567-89ab-cdef-0123-456789abcdef0", /* 37 */
        "0123456-789ab-cdef-0123-456789abcdef",  /* dash moved left */
        "012345678-9ab-cdef-0123-456789abcdef",  /* dash moved right */
        "01234567-89abc-def-0123-456789abcdef",
        "01234567-89ab-cdef0-123-456789abcdef",
        "01234567-89ab-cdef-01234-56789abcdef",
        "0123456789ab-cdef-0123-456789abcdef-",
        "-01234567-89ab-cdef-0123-456789abcde",
        "01234567-89ab-cdef-0123456789abcdef-",
        "01234567_89ab_cdef_0123_456789abcdef",
        "01234567-89ab-cdef-0123-45678-abcdef", /* extra dash */
        "01234567--89ab-cdef-0123-456789abcde",
        "01234567-89abcdef0123456789abcdef", /* 33, one dash */
        "01234567-89abcdef0123456789abcde",  /* 32 with a dash */
        "0123456789abcdeg0123456789abcdef",  /* non-hex */
        "0123456789abcdef0123456789abcdeG",
        "g123456789abcdef0123456789abcdef",
        "01234567-89ab-cdef-0123-456789abcdeZ",
        "0123456789abcdef 123456789abcdef",
        " 123456789abcdef0123456789abcdef", /* leading space */
        "0123456789abcdef0123456789abcde ", /* trailing space */
        " 0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef ",
        "+123456789abcdef0123456789abcdef",
        "0x23456789abcdef0123456789abcdef",
        "{01234567-89ab-cdef-0123-456789abcdef}",
        "01234567-89ab-cdef-0123-456789abcdef\n",
        "0123456789abcdef0123456789abcd\xc3\xa9",
        "..%2f..%2f..%2f..%2fetc%2fpasswd",
    };
    uint8_t g[API_GUID_SIZE], keep[API_GUID_SIZE];
    memset(keep, 0x5a, sizeof(keep));
    for (size_t i = 0; i < NELEM(rows); i++) {
        memcpy(g, keep, sizeof(g));
        CHECK(api_guid_parse(rows[i], strlen(rows[i]), g) == -1, i, rows[i]);
        CHECK(memcmp(g, keep, sizeof(g)) == 0, i, rows[i]); /* untouched */
    }

    /* Embedded NUL, given by explicit length. */
    char buf[40];
    memcpy(buf, "0123456789abcdef0123456789abcdef", 33);
    buf[5] = '\0';
    assert_int_equal(api_guid_parse(buf, 32, g), -1);
    memcpy(buf, "01234567-89ab-cdef-0123-456789abcdef", 37);
    buf[35] = '\0';
    assert_int_equal(api_guid_parse(buf, 36, g), -1);
    buf[35] = 'f';
    buf[8] = '\0'; /* a NUL where a dash belongs */
    assert_int_equal(api_guid_parse(buf, 36, g), -1);

    /* A valid prefix with a shorter or longer len. */
    assert_int_equal(api_guid_parse("0123456789abcdef0123456789abcdef", 31, g),
                     -1);
    assert_int_equal(api_guid_parse("0123456789abcdef0123456789abcdef", 0, g),
                     -1);
    assert_int_equal(api_guid_parse(NULL, 32, g), -1);
}

static void test_guid_format(void **state)
{
    (void)state;
    char s[API_GUID_STRLEN + 1];
    api_guid_format(guid_ref, s);
    assert_string_equal(s, "0123456789abcdef0123456789abcdef");

    /* Dashed upper case in, canonical lower case out. */
    uint8_t g[API_GUID_SIZE];
    assert_int_equal(
        api_guid_parse("FEDCBA98-7654-3210-FEDC-BA9876543210", 36, g), 0);
    api_guid_format(g, s);
    assert_string_equal(s, "fedcba9876543210fedcba9876543210");

    /* Round trip of many GUIDs, each byte value in each position. */
    for (unsigned k = 0; k < 256; k++) {
        uint8_t in[API_GUID_SIZE], out[API_GUID_SIZE];
        for (unsigned j = 0; j < API_GUID_SIZE; j++)
            in[j] = (uint8_t)(k + 17 * j);
        memset(s, 'x', sizeof(s));
        api_guid_format(in, s);
        CHECK(strlen(s) == API_GUID_STRLEN, k, s);
        for (unsigned j = 0; j < API_GUID_STRLEN; j++)
            CHECK((s[j] >= '0' && s[j] <= '9') || (s[j] >= 'a' && s[j] <= 'f'),
                  k, s);
        CHECK(api_guid_parse(s, strlen(s), out) == 0, k, s);
        CHECK(memcmp(in, out, sizeof(in)) == 0, k, s);
    }
}

static void test_guid_new(void **state)
{
    (void)state;
    uint8_t a[API_GUID_SIZE], b[API_GUID_SIZE];
    const uint64_t ms = UINT64_C(1700000000123);

    assert_int_equal(api_guid_new(ms, a), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(a[i], (uint8_t)(ms >> (8 * (5 - i))));

    /* Increasing milliseconds: increasing bytes, whatever the random tail. */
    static const uint64_t steps[][2] = {
        {1000, 1001},
        {0xff, 0x100},
        {0xffff, 0x10000},
        {UINT64_C(1700000000123), UINT64_C(1700000000124)},
        {UINT64_C(1700000000123), UINT64_C(1800000000000)},
        {0, UINT64_C(0xffffffffffff)},
    };
    for (size_t i = 0; i < NELEM(steps); i++) {
        for (int rep = 0; rep < 50; rep++) {
            assert_int_equal(api_guid_new(steps[i][0], a), 0);
            assert_int_equal(api_guid_new(steps[i][1], b), 0);
            CHECK(memcmp(a, b, API_GUID_SIZE) < 0, i, "time order");
        }
    }

    /* Same millisecond: the random tails differ. */
    for (int rep = 0; rep < 100; rep++) {
        assert_int_equal(api_guid_new(ms, a), 0);
        assert_int_equal(api_guid_new(ms, b), 0);
        assert_memory_equal(a, b, 6);
        assert_memory_not_equal(a + 6, b + 6, API_GUID_SIZE - 6);
    }

    /* A new GUID formats and parses back. */
    char s[API_GUID_STRLEN + 1];
    api_guid_format(a, s);
    assert_int_equal(api_guid_parse(s, strlen(s), b), 0);
    assert_memory_equal(a, b, API_GUID_SIZE);
}

/* ---- routes ----------------------------------------------------------- */

static void test_method_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        enum api_method m;
    } rows[] = {
        {"GET", API_M_GET},       {"HEAD", API_M_HEAD},
        {"PUT", API_M_PUT},       {"POST", API_M_POST},
        {"DELETE", API_M_DELETE}, {"get", API_M_OTHER},
        {"Get", API_M_OTHER},     {"PATCH", API_M_OTHER},
        {"OPTIONS", API_M_OTHER}, {"TRACE", API_M_OTHER},
        {"CONNECT", API_M_OTHER}, {"", API_M_OTHER},
        {"GET ", API_M_OTHER},    {" GET", API_M_OTHER},
        {"GETX", API_M_OTHER},    {"DELET", API_M_OTHER},
        {NULL, API_M_OTHER},
    };
    for (size_t i = 0; i < NELEM(rows); i++)
        CHECK(api_method_parse(rows[i].s) == rows[i].m, i, S(rows[i].s));
}

#define MB(m) (1u << (m))

static void test_route_resources(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        enum api_route_kind kind;
        unsigned allowed;
        const char *allow;
    } rows[] = {
        {"/blobs/0123456789abcdef0123456789abcdef", API_R_BLOB,
         MB(API_M_GET) | MB(API_M_HEAD) | MB(API_M_PUT) | MB(API_M_DELETE),
         "GET, HEAD, PUT, DELETE"},
        {"/blobs/01234567-89AB-cdef-0123-456789ABCDEF", API_R_BLOB,
         MB(API_M_GET) | MB(API_M_HEAD) | MB(API_M_PUT) | MB(API_M_DELETE),
         "GET, HEAD, PUT, DELETE"},
        {"/blobs", API_R_BLOBS, MB(API_M_GET) | MB(API_M_POST), "GET, POST"},
        {"/flush", API_R_FLUSH, MB(API_M_POST), "POST"},
        {"/healthz", API_R_HEALTHZ, MB(API_M_GET) | MB(API_M_HEAD),
         "GET, HEAD"},
        {"/readyz", API_R_READYZ, MB(API_M_GET) | MB(API_M_HEAD), "GET, HEAD"},
        {"/admin/stats", API_R_ADMIN_STATS, MB(API_M_GET), "GET"},
        {"/admin/compact", API_R_ADMIN_COMPACT, MB(API_M_POST), "POST"},
        {"/admin/hold", API_R_ADMIN_HOLD, MB(API_M_POST) | MB(API_M_DELETE),
         "POST, DELETE"},
        {"/metrics", API_R_METRICS, MB(API_M_GET), "GET"},
        {"/", API_R_STATUS, MB(API_M_GET) | MB(API_M_HEAD), "GET, HEAD"},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        for (int m = API_M_GET; m <= API_M_OTHER; m++) {
            struct api_route r;
            memset(&r, 0xcc, sizeof(r));
            int want = (rows[i].allowed & MB(m)) ? API_ERR_NONE
                                                 : API_ERR_METHOD_NOT_ALLOWED;
            int rc = api_route((enum api_method)m, rows[i].path, &r);
            CHECK(rc == want, i * 10 + (size_t)m, rows[i].path);
            CHECK(r.kind == rows[i].kind, i * 10 + (size_t)m, rows[i].path);
            CHECK(r.allow && strcmp(r.allow, rows[i].allow) == 0,
                  i * 10 + (size_t)m, rows[i].path);
            if (rc == 0 && r.kind == API_R_BLOB)
                CHECK(memcmp(r.guid, guid_ref, API_GUID_SIZE) == 0,
                      i * 10 + (size_t)m, rows[i].path);
        }
    }
    /* Every Allow value names exactly the methods that pass. */
    for (size_t i = 0; i < NELEM(rows); i++)
        for (int m = API_M_GET; m < API_M_OTHER; m++) {
            static const char *const names[] = {"GET", "HEAD", "PUT", "POST",
                                                "DELETE"};
            int listed = strstr(rows[i].allow, names[m]) != NULL;
            CHECK(listed == !!(rows[i].allowed & MB(m)), i, rows[i].allow);
        }
}

/* The raw target: escapes in the path, NULs and control bytes anywhere,
 * and length. */
static void test_check_target(void **state)
{
    (void)state;
    static const struct {
        const char *t;
        enum api_error e;
    } rows[] = {
        {"/blobs/00112233445566778899aabbccddeeff", API_ERR_NONE},
        {"/blobs?after=00112233445566778899aabbccddeeff&limit=5", API_ERR_NONE},
        {"/blobs/x?fsync=%74rue", API_ERR_NONE},   /* query escapes pass */
        {"/blobs/x?a=%41%7e%C3%A9", API_ERR_NONE}, /* %7E, UTF-8 */
        {"/", API_ERR_NONE},
        {"", API_ERR_BAD_URI},
        {"/blobs/0011%00", API_ERR_BAD_URI},
        {"/blobs/%30011", API_ERR_BAD_URI}, /* any escape in the path */
        {"/blobs%2F0011", API_ERR_BAD_URI}, /* a decoded slash */
        {"/blobs/x%zz", API_ERR_BAD_URI},
        {"/blobs/x?fsync=tr%00ue", API_ERR_BAD_URI},
        {"/blobs/x?a=%0a", API_ERR_BAD_URI}, /* a control escape */
        {"/blobs/x?a=%1F", API_ERR_BAD_URI},
        {"/blobs/x?a=%7F", API_ERR_BAD_URI},
        {"/blobs/x?a=%2", API_ERR_BAD_URI}, /* cut short */
        {"/blobs/x?a=%", API_ERR_BAD_URI},
        {"/blobs/x?a=%g0", API_ERR_BAD_URI},
        {"/blobs/x\x01", API_ERR_BAD_URI}, /* raw bytes */
        {"/blobs/x\x7f", API_ERR_BAD_URI},
        {"/blobs/\xc3\xa9", API_ERR_BAD_URI},
        {"/blobs/a b", API_ERR_BAD_URI},
        {"/blobs/a\tb", API_ERR_BAD_URI},
    };
    for (size_t i = 0; i < NELEM(rows); i++)
        CHECK(api_check_target(rows[i].t) == rows[i].e, i, rows[i].t);
    assert_int_equal(api_check_target(NULL), API_ERR_BAD_URI);

    char *t = malloc(API_TARGET_MAX + 2);
    assert_non_null(t);
    memset(t, 'a', API_TARGET_MAX + 1);
    t[0] = '/';
    t[API_TARGET_MAX] = '\0'; /* exactly the limit */
    assert_int_equal(api_check_target(t), API_ERR_NONE);
    t[API_TARGET_MAX] = 'a';
    t[API_TARGET_MAX + 1] = '\0';
    assert_int_equal(api_check_target(t), API_ERR_URI_TOO_LONG);
    free(t);
}

static enum api_error verdict(const char *const *h, int http11)
{
    struct api_header_check c;
    memset(&c, 0, sizeof(c));
    for (size_t i = 0; h[i]; i += 2)
        api_header_check_add(&c, h[i], h[i + 1]);
    return api_header_verdict(&c, http11);
}

/* Framing headers libmicrohttpd would take the first of, names that are
 * not tokens, a missing Host, and size. */
static void test_header_verdict(void **state)
{
    (void)state;
    const char *ok[] = {"Host", "x", "Content-Length", "5", NULL};
    assert_int_equal(verdict(ok, 1), API_ERR_NONE);
    const char *chunked[] = {"host", "x", "transfer-encoding", "Chunked", NULL};
    assert_int_equal(verdict(chunked, 1), API_ERR_NONE);
    const char *nohost[] = {"Accept", "*/*", NULL};
    assert_int_equal(verdict(nohost, 1), API_ERR_BAD_HEADER);
    assert_int_equal(verdict(nohost, 0), API_ERR_NONE); /* HTTP/1.0 */
    const char *dup[] = {"Host", "x", "Content-Length", "5", "Content-Length",
                         "5",    NULL};
    assert_int_equal(verdict(dup, 1), API_ERR_BAD_FRAMING);
    const char *both[] = {
        "Host",    "x", "Content-Length", "5", "Transfer-Encoding",
        "chunked", NULL};
    assert_int_equal(verdict(both, 1), API_ERR_BAD_FRAMING);
    static const char *const codings[] = {"gzip", "gzip, chunked",
                                          "chunked, chunked", "identity", ""};
    for (size_t i = 0; i < NELEM(codings); i++) {
        const char *h[] = {"Host", "x", "Transfer-Encoding", codings[i], NULL};
        CHECK(verdict(h, 1) == API_ERR_UNSUPPORTED_TE, i, codings[i]);
    }
    const char *two_te[] = {
        "Host",    "x", "Transfer-Encoding", "chunked", "Transfer-Encoding",
        "chunked", NULL};
    assert_int_equal(verdict(two_te, 1), API_ERR_UNSUPPORTED_TE);
    static const char *const names[] = {"X-A ", "X A",  "X\tA",     "",
                                        "X:A",  "X(A)", "X\xc3\xa9"};
    for (size_t i = 0; i < NELEM(names); i++) {
        const char *h[] = {"Host", "x", names[i], "v", NULL};
        CHECK(verdict(h, 1) == API_ERR_BAD_HEADER, i, names[i]);
    }
    const char *tokens[] = {"Host", "x", "X-!#$%&'*+-.^_`|~09azAZ", "v", NULL};
    assert_int_equal(verdict(tokens, 1), API_ERR_NONE);

    /* Size: fields and bytes, each at the limit and one past it. */
    struct api_header_check c;
    memset(&c, 0, sizeof(c));
    api_header_check_add(&c, "Host", "x");
    for (int i = 1; i < API_HEADER_FIELDS_MAX; i++)
        api_header_check_add(&c, "X-F", "v");
    assert_int_equal(api_header_verdict(&c, 1), API_ERR_NONE);
    api_header_check_add(&c, "X-F", "v");
    assert_int_equal(api_header_verdict(&c, 1), API_ERR_HEADERS_TOO_LARGE);

    char *v = malloc(API_HEADER_BYTES_MAX);
    assert_non_null(v);
    size_t host = strlen("Host") + strlen("x") + 4;
    size_t room = API_HEADER_BYTES_MAX - host - strlen("X-Big") - 4;
    memset(v, 'v', room);
    v[room] = '\0';
    memset(&c, 0, sizeof(c));
    api_header_check_add(&c, "Host", "x");
    api_header_check_add(&c, "X-Big", v);
    assert_int_equal(api_header_verdict(&c, 1), API_ERR_NONE);
    v[room] = 'v';
    v[room + 1] = '\0';
    memset(&c, 0, sizeof(c));
    api_header_check_add(&c, "Host", "x");
    api_header_check_add(&c, "X-Big", v);
    assert_int_equal(api_header_verdict(&c, 1), API_ERR_HEADERS_TOO_LARGE);
    free(v);
}

static void test_route_errors(void **state)
{
    (void)state;
    static const char *const no_route[] = {
        "",
        "//",
        "/index.html",
        "/BLOBS",
        "/Blobs",
        "/blob",
        "/blobsx",
        "/blobs?after=x",
        "/blobs?",
        "blobs",
        "//blobs",
        "/BLOBS/0123456789abcdef0123456789abcdef",
        "/blobs0123456789abcdef0123456789abcdef",
        "/flush/",
        "/flushx",
        "/FLUSH",
        "/healthz/",
        "/healthz?x",
        "/readyz/",
        "/readyzz",
        "/admin",
        "/admin/",
        "/admin/stats/",
        "/admin/Stats",
        "/admin/compactx",
        "/admin/hold/",
        "/admin//hold",
        "/metrics/",
        "/Metrics",
        "/metricsx",
        "/api/blobs",
        "/./blobs",
    };
    for (size_t i = 0; i < NELEM(no_route); i++) {
        for (int m = API_M_GET; m <= API_M_OTHER; m++) {
            struct api_route r;
            memset(&r, 0xcc, sizeof(r));
            CHECK(api_route((enum api_method)m, no_route[i], &r) ==
                      API_ERR_NO_ROUTE,
                  i, no_route[i]);
            CHECK(r.kind == API_R_NONE && r.allow == NULL, i, no_route[i]);
        }
    }
    struct api_route r;
    assert_int_equal(api_route(API_M_GET, NULL, &r), API_ERR_NO_ROUTE);

    static const char *const bad_guid[] = {
        "/blobs/",
        "/blobs//x",
        "/blobs/x",
        "/blobs/x/y",
        "/blobs/../flush",
        "/blobs//0123456789abcdef0123456789abcdef",
        "/blobs/0123456789abcdef0123456789abcdef/",
        "/blobs/0123456789abcdef0123456789abcdef/x",
        "/blobs/0123456789abcdef0123456789abcdefx",
        "/blobs/0123456789abcdef0123456789abcde",
        "/blobs/ 0123456789abcdef0123456789abcdef",
        "/blobs/0123456789abcdef0123456789abcdef?x=1",
        "/blobs/{01234567-89ab-cdef-0123-456789abcdef}",
        "/blobs/01234567-89ab-cdef-0123-456789abcdef-",
    };
    for (size_t i = 0; i < NELEM(bad_guid); i++) {
        for (int m = API_M_GET; m <= API_M_OTHER; m++) {
            memset(&r, 0xcc, sizeof(r));
            /* The resource is decided before the method: even OTHER. */
            CHECK(api_route((enum api_method)m, bad_guid[i], &r) ==
                      API_ERR_BAD_GUID,
                  i, bad_guid[i]);
            CHECK(r.kind == API_R_BLOB, i, bad_guid[i]);
            CHECK(r.allow && strcmp(r.allow, "GET, HEAD, PUT, DELETE") == 0, i,
                  bad_guid[i]);
        }
    }
}

/* ---- entity tags ------------------------------------------------------ */

static void test_etag_format(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        const char *s;
    } rows[] = {
        {V(1, 0), "\"1-0\""},
        {V(1, 2), "\"1-2\""},
        {V(42, 1234567), "\"42-1234567\""},
        {V(0xffffff, (UINT64_C(1) << 40) - 1), "\"16777215-1099511627775\""},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        char buf[API_ETAG_MAX];
        api_etag(rows[i].v, buf);
        CHECK(strcmp(buf, rows[i].s) == 0, i, rows[i].s);
        /* Same as the store's. */
        char sbuf[API_ETAG_MAX];
        store_etag(rows[i].v, sbuf, sizeof(sbuf));
        CHECK(strcmp(buf, sbuf) == 0, i, rows[i].s);
        /* And it parses back as ours. */
        struct api_etags e;
        CHECK(api_etags_parse(buf, &e) == 0, i, buf);
        CHECK(e.n == 1 && e.v[0].ours && e.v[0].version == rows[i].v, i, buf);
    }
}

struct tag_want {
    int ours;
    uint64_t version;
    int weak;
};

static void test_etags_parse(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int rc;
        int any;
        size_t n;
        struct tag_want t[3];
    } rows[] = {
        /* valid */
        {"*", 0, 1, 0, {{0}}},
        {" *\t", 0, 1, 0, {{0}}},
        {"\"1-2\"", 0, 0, 1, {{1, V(1, 2), 0}}},
        {"W/\"1-2\"", 0, 0, 1, {{1, V(1, 2), 1}}},
        {" \"1-2\" ", 0, 0, 1, {{1, V(1, 2), 0}}},
        {"\"1-2\",\"3-4\"", 0, 0, 2, {{1, V(1, 2), 0}, {1, V(3, 4), 0}}},
        {"\"1-2\" ,\t\"3-4\" , W/\"5-6\"",
         0,
         0,
         3,
         {{1, V(1, 2), 0}, {1, V(3, 4), 0}, {1, V(5, 6), 1}}},
        {"\"1-2\",,\"3-4\"", 0, 0, 2, {{1, V(1, 2), 0}, {1, V(3, 4), 0}}},
        {", ,\"1-2\", ,", 0, 0, 1, {{1, V(1, 2), 0}}},
        {"\"1-0\"", 0, 0, 1, {{1, V(1, 0), 0}}},
        {"\"16777215-1099511627775\"",
         0,
         0,
         1,
         {{1, V(16777215, UINT64_C(1099511627775)), 0}}},
        /* foreign tags: kept, not ours */
        {"\"abc\"", 0, 0, 1, {{0, 0, 0}}},
        {"W/\"abc\"", 0, 0, 1, {{0, 0, 1}}},
        {"\"\"", 0, 0, 1, {{0, 0, 0}}},
        {"\"0-5\"", 0, 0, 1, {{0, 0, 0}}},   /* generation 0 */
        {"\"01-2\"", 0, 0, 1, {{0, 0, 0}}},  /* not our spelling */
        {"\"1-02\"", 0, 0, 1, {{0, 0, 0}}},  /* not our spelling */
        {"\"1-00\"", 0, 0, 1, {{0, 0, 0}}},  /* not our spelling */
        {"\"+1-2\"", 0, 0, 1, {{0, 0, 0}}},  /* sign */
        {"\"1-+2\"", 0, 0, 1, {{0, 0, 0}}},  /* sign */
        {"\"-1-2\"", 0, 0, 1, {{0, 0, 0}}},  /* sign */
        {"\"1-\"", 0, 0, 1, {{0, 0, 0}}},    /* no n */
        {"\"-2\"", 0, 0, 1, {{0, 0, 0}}},    /* no gen */
        {"\"1-2-3\"", 0, 0, 1, {{0, 0, 0}}}, /* extra part */
        {"\"1_2\"", 0, 0, 1, {{0, 0, 0}}},
        {"\"12\"", 0, 0, 1, {{0, 0, 0}}},
        {"\"0x1-2\"", 0, 0, 1, {{0, 0, 0}}},
        {"\"16777216-1\"", 0, 0, 1, {{0, 0, 0}}},      /* gen >= 2^24 */
        {"\"1-1099511627776\"", 0, 0, 1, {{0, 0, 0}}}, /* n >= 2^40 */
        {"\"99999999999999999999999-1\"", 0, 0, 1, {{0, 0, 0}}},
        {"\"1-99999999999999999999999\"", 0, 0, 1, {{0, 0, 0}}},
        {"\"a!#~\"", 0, 0, 1, {{0, 0, 0}}},
        {"\"\x80\xff\"", 0, 0, 1, {{0, 0, 0}}}, /* obs-text */
        {"\"a\\b\"", 0, 0, 1, {{0, 0, 0}}},     /* backslash is etagc */
        {"\"abc\", \"1-2\"", 0, 0, 2, {{0, 0, 0}, {1, V(1, 2), 0}}},
        /* malformed */
        {"", -1, 0, 0, {{0}}},
        {" ", -1, 0, 0, {{0}}},
        {",", -1, 0, 0, {{0}}},
        {" , , ", -1, 0, 0, {{0}}},
        {"1-2", -1, 0, 0, {{0}}},
        {"abc", -1, 0, 0, {{0}}},
        {"\"1-2", -1, 0, 0, {{0}}},
        {"1-2\"", -1, 0, 0, {{0}}},
        {"\"", -1, 0, 0, {{0}}},
        {"\"a\"b\"", -1, 0, 0, {{0}}},
        {"\"a\"b", -1, 0, 0, {{0}}},
        {"\"a\" \"b\"", -1, 0, 0, {{0}}},
        {"\"a\";\"b\"", -1, 0, 0, {{0}}},
        {"\"1 -2\"", -1, 0, 0, {{0}}}, /* SP is not etagc */
        {"\"a\tb\"", -1, 0, 0, {{0}}},
        {"\"a\x7f\"", -1, 0, 0, {{0}}}, /* DEL */
        {"\"a\x01\"", -1, 0, 0, {{0}}},
        {"w/\"1-2\"", -1, 0, 0, {{0}}}, /* W/ is case-sensitive */
        {"W/ \"1-2\"", -1, 0, 0, {{0}}},
        {"W\"1-2\"", -1, 0, 0, {{0}}},
        {"W/", -1, 0, 0, {{0}}},
        {"W/1-2", -1, 0, 0, {{0}}},
        {"'1-2'", -1, 0, 0, {{0}}},
        {"**", -1, 0, 0, {{0}}},
        {"*, \"1-2\"", -1, 0, 0, {{0}}},
        {"\"1-2\", *", -1, 0, 0, {{0}}},
        {"* ,", -1, 0, 0, {{0}}},
        {"\"1-2\", abc", -1, 0, 0, {{0}}},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct api_etags e;
        memset(&e, 0xcc, sizeof(e));
        int rc = api_etags_parse(rows[i].value, &e);
        CHECK(rc == rows[i].rc, i, rows[i].value);
        CHECK(e.present == 1, i, rows[i].value);
        if (rc != 0)
            continue;
        CHECK(e.any == rows[i].any, i, rows[i].value);
        CHECK(e.n == rows[i].n, i, rows[i].value);
        for (size_t k = 0; k < e.n; k++) {
            CHECK(e.v[k].ours == rows[i].t[k].ours, i, rows[i].value);
            CHECK(e.v[k].weak == rows[i].t[k].weak, i, rows[i].value);
            CHECK(e.v[k].version == rows[i].t[k].version, i, rows[i].value);
        }
    }

    /* Absent header. */
    struct api_etags e;
    memset(&e, 0xcc, sizeof(e));
    assert_int_equal(api_etags_parse(NULL, &e), 0);
    assert_int_equal(e.present, 0);
    assert_int_equal(e.any, 0);
    assert_int_equal(e.n, 0);
}

static void test_etags_limit(void **state)
{
    (void)state;
    char buf[1024];
    size_t off = 0;
    struct api_etags e;
    for (int k = 1; k <= API_ETAGS_MAX + 1; k++) {
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s\"%d-%d\"",
                                k > 1 ? ", " : "", k, k);
        int rc = api_etags_parse(buf, &e);
        if (k <= API_ETAGS_MAX) {
            CHECK(rc == 0, (size_t)k, buf);
            CHECK(e.n == (size_t)k, (size_t)k, buf);
            CHECK(e.v[k - 1].ours && e.v[k - 1].version == V(k, k), (size_t)k,
                  buf);
        } else {
            CHECK(rc == -1, (size_t)k, buf);
        }
    }
    /* Empty elements do not count against the limit. */
    off = 0;
    for (int k = 1; k <= API_ETAGS_MAX; k++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, ",,\"%d-1\"", k);
    assert_int_equal(api_etags_parse(buf, &e), 0);
    assert_int_equal(e.n, API_ETAGS_MAX);
}

static void test_etags_match(void **state)
{
    (void)state;
    static const struct {
        const char *value; /* NULL: absent */
        uint64_t version;
        int strong, weak; /* expected with strong = 1 and strong = 0 */
    } rows[] = {
        {NULL, V(1, 2), 0, 0},
        {"*", V(1, 2), 1, 1},
        {"\"1-2\"", V(1, 2), 1, 1},
        {"\"1-2\"", V(1, 3), 0, 0},
        {"\"1-2\"", V(2, 2), 0, 0},
        {"W/\"1-2\"", V(1, 2), 0, 1},
        {"W/\"1-2\"", V(1, 3), 0, 0},
        {"\"abc\"", V(1, 2), 0, 0},
        {"\"abc\", \"1-2\"", V(1, 2), 1, 1},
        {"\"1-3\", W/\"1-2\"", V(1, 2), 0, 1},
        {"\"1-3\", W/\"1-2\", \"1-2\"", V(1, 2), 1, 1},
        {"\"01-2\"", V(1, 2), 0, 0},
        {"\"0-0\"", 0, 0, 0}, /* a foreign tag never matches version 0 */
        {"\"\"", 0, 0, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct api_etags e;
        CHECK(api_etags_parse(rows[i].value, &e) == 0, i, S(rows[i].value));
        CHECK(api_etags_match(&e, rows[i].version, 1) == rows[i].strong, i,
              S(rows[i].value));
        CHECK(api_etags_match(&e, rows[i].version, 0) == rows[i].weak, i,
              S(rows[i].value));
    }
    assert_int_equal(api_etags_match(NULL, V(1, 2), 0), 0);
}

/* ---- preconditions ---------------------------------------------------- */

#define CUR_ABSENT 0
#define CUR_V5 1 /* exists with V(1, 5) */
#define CUR_V6 2 /* exists with V(1, 6) */
#define CUR_NULL 3

static struct api_cur cur_of(int c)
{
    struct api_cur cur = {0, 0};
    if (c == CUR_V5 || c == CUR_V6) {
        cur.exists = 1;
        cur.version = c == CUR_V5 ? V(1, 5) : V(1, 6);
    }
    return cur;
}

static void parse2(const char *im, const char *inm, struct api_etags *a,
                   struct api_etags *b)
{
    assert_int_equal(api_etags_parse(im, a), 0);
    assert_int_equal(api_etags_parse(inm, b), 0);
}

static void test_cond_read(void **state)
{
    (void)state;
    static const struct {
        const char *im, *inm;
        int cur;
        enum api_cond want;
    } rows[] = {
        {NULL, NULL, CUR_V5, API_COND_OK},
        {NULL, NULL, CUR_ABSENT, API_COND_OK},
        {NULL, NULL, CUR_NULL, API_COND_OK},
        /* If-Match: strong comparison; absent matches nothing */
        {"\"1-5\"", NULL, CUR_V5, API_COND_OK},
        {"\"1-5\"", NULL, CUR_V6, API_COND_FAILED},
        {"\"1-5\"", NULL, CUR_ABSENT, API_COND_FAILED},
        {"W/\"1-5\"", NULL, CUR_V5, API_COND_FAILED},
        {"\"abc\"", NULL, CUR_V5, API_COND_FAILED},
        {"\"1-6\", \"1-5\"", NULL, CUR_V5, API_COND_OK},
        {"\"01-5\"", NULL, CUR_V5, API_COND_FAILED},
        {"*", NULL, CUR_V5, API_COND_OK},
        {"*", NULL, CUR_ABSENT, API_COND_FAILED},
        {"*", NULL, CUR_NULL, API_COND_FAILED},
        /* If-None-Match: weak comparison */
        {NULL, "\"1-5\"", CUR_V5, API_COND_NOT_MODIFIED},
        {NULL, "W/\"1-5\"", CUR_V5, API_COND_NOT_MODIFIED},
        {NULL, "\"1-5\"", CUR_V6, API_COND_OK},
        {NULL, "\"1-5\"", CUR_ABSENT, API_COND_OK},
        {NULL, "\"abc\"", CUR_V5, API_COND_OK},
        {NULL, "\"1-4\", W/\"1-5\"", CUR_V5, API_COND_NOT_MODIFIED},
        {NULL, "*", CUR_V5, API_COND_NOT_MODIFIED},
        {NULL, "*", CUR_ABSENT, API_COND_OK},
        /* both: If-Match first */
        {"\"1-5\"", "\"1-5\"", CUR_V5, API_COND_NOT_MODIFIED},
        {"\"1-5\"", "\"1-6\"", CUR_V5, API_COND_OK},
        {"\"1-6\"", "\"1-5\"", CUR_V5, API_COND_FAILED},
        {"\"1-6\"", "*", CUR_ABSENT, API_COND_FAILED},
        {"*", "*", CUR_V5, API_COND_NOT_MODIFIED},
        {"*", "*", CUR_ABSENT, API_COND_FAILED},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct api_etags im, inm;
        struct api_cur cur = cur_of(rows[i].cur);
        parse2(rows[i].im, rows[i].inm, &im, &inm);
        enum api_cond c =
            api_cond_read(&im, &inm, rows[i].cur == CUR_NULL ? NULL : &cur);
        CHECK(c == rows[i].want, i, S(rows[i].im));
    }
    /* NULL etags are absent headers. */
    struct api_cur cur = cur_of(CUR_V5);
    assert_int_equal(api_cond_read(NULL, NULL, &cur), API_COND_OK);
    assert_int_equal(api_cond_read(NULL, NULL, NULL), API_COND_OK);
}

#define NEED_CUR 1

static void test_cond_write_static(void **state)
{
    (void)state;
    /* "needs cur" and "failed" must be told apart. */
    assert_int_not_equal(API_COND_FAILED, NEED_CUR);
    assert_int_not_equal(API_COND_FAILED, 0);
    static const struct {
        const char *im, *inm;
        int rc;
        enum store_precond_kind kind;
        uint64_t version;
    } rows[] = {
        {NULL, NULL, 0, STORE_PRE_NONE, 0},
        {"*", NULL, 0, STORE_PRE_EXISTS, 0},
        {"\"1-5\"", NULL, 0, STORE_PRE_VERSION, V(1, 5)},
        {" \"1-5\" ", NULL, 0, STORE_PRE_VERSION, V(1, 5)},
        {"\"1-5\", \"abc\"", NULL, 0, STORE_PRE_VERSION, V(1, 5)},
        {"\"abc\", \"1-5\"", NULL, 0, STORE_PRE_VERSION, V(1, 5)},
        {"\"1-5\", W/\"1-6\"", NULL, 0, STORE_PRE_VERSION, V(1, 5)},
        {"\"1-5\", \"1-5\"", NULL, 0, STORE_PRE_VERSION, V(1, 5)},
        {NULL, "*", 0, STORE_PRE_ABSENT, 0},
        /* If-Match that can match no version */
        {"W/\"1-5\"", NULL, API_COND_FAILED, 0, 0},
        {"\"abc\"", NULL, API_COND_FAILED, 0, 0},
        {"\"abc\", W/\"1-5\"", NULL, API_COND_FAILED, 0, 0},
        {"\"01-5\"", NULL, API_COND_FAILED, 0, 0},
        {"\"abc\"", "*", API_COND_FAILED, 0, 0},
        {"W/\"1-5\"", "\"1-6\"", API_COND_FAILED, 0, 0},
        /* the rest needs a lookup */
        {"\"1-5\", \"1-6\"", NULL, NEED_CUR, 0, 0},
        {NULL, "\"1-5\"", NEED_CUR, 0, 0},
        {NULL, "W/\"1-5\"", NEED_CUR, 0, 0},
        {NULL, "\"abc\"", NEED_CUR, 0, 0},
        {"*", "*", NEED_CUR, 0, 0},
        {"*", "\"1-5\"", NEED_CUR, 0, 0},
        {"\"1-5\"", "*", NEED_CUR, 0, 0},
        {"\"1-5\"", "\"1-6\"", NEED_CUR, 0, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct api_etags im, inm;
        struct store_precond pre;
        parse2(rows[i].im, rows[i].inm, &im, &inm);
        memset(&pre, 0xcc, sizeof(pre));
        int rc = api_cond_write(&im, &inm, NULL, &pre);
        CHECK(rc == rows[i].rc, i, S(rows[i].im));
        if (rc != 0)
            continue;
        CHECK(pre.kind == rows[i].kind, i, S(rows[i].im));
        if (pre.kind == STORE_PRE_VERSION)
            CHECK(pre.version == rows[i].version, i, S(rows[i].im));
    }
    /* NULL etags are absent headers. */
    struct store_precond pre;
    assert_int_equal(api_cond_write(NULL, NULL, NULL, &pre), 0);
    assert_int_equal(pre.kind, STORE_PRE_NONE);
}

static void test_cond_write_cur(void **state)
{
    (void)state;
    static const struct {
        const char *im, *inm;
        int cur;
        int rc;
        enum store_precond_kind kind;
        uint64_t version;
    } rows[] = {
        /* needs-cur cases, pinned to the state seen */
        {"\"1-5\", \"1-6\"", NULL, CUR_V5, 0, STORE_PRE_VERSION, V(1, 5)},
        {"\"1-5\", \"1-6\"", NULL, CUR_V6, 0, STORE_PRE_VERSION, V(1, 6)},
        {"\"1-4\", \"1-6\"", NULL, CUR_V5, API_COND_FAILED, 0, 0},
        {"\"1-5\", \"1-6\"", NULL, CUR_ABSENT, API_COND_FAILED, 0, 0},
        {NULL, "\"1-5\"", CUR_V5, API_COND_FAILED, 0, 0}, /* not 304 */
        {NULL, "W/\"1-5\"", CUR_V5, API_COND_FAILED, 0, 0},
        {NULL, "\"1-5\"", CUR_V6, 0, STORE_PRE_VERSION, V(1, 6)},
        {NULL, "\"1-5\"", CUR_ABSENT, 0, STORE_PRE_ABSENT, 0},
        {NULL, "\"abc\"", CUR_V5, 0, STORE_PRE_VERSION, V(1, 5)},
        {NULL, "\"abc\"", CUR_ABSENT, 0, STORE_PRE_ABSENT, 0},
        {"*", "*", CUR_V5, API_COND_FAILED, 0, 0},
        {"*", "*", CUR_ABSENT, API_COND_FAILED, 0, 0},
        {"*", "\"1-5\"", CUR_V5, API_COND_FAILED, 0, 0},
        {"*", "\"1-5\"", CUR_V6, 0, STORE_PRE_VERSION, V(1, 6)},
        {"*", "\"1-5\"", CUR_ABSENT, API_COND_FAILED, 0, 0},
        {"\"1-5\"", "*", CUR_V5, API_COND_FAILED, 0, 0},
        {"\"1-5\"", "*", CUR_ABSENT, API_COND_FAILED, 0, 0},
        {"\"1-5\"", "\"1-6\"", CUR_V5, 0, STORE_PRE_VERSION, V(1, 5)},
        {"\"1-5\"", "\"1-6\"", CUR_V6, API_COND_FAILED, 0, 0},
        {"\"1-5\"", "\"1-6\"", CUR_ABSENT, API_COND_FAILED, 0, 0},
        /* cases that need no lookup answer as without cur */
        {NULL, NULL, CUR_V5, 0, STORE_PRE_NONE, 0},
        {NULL, NULL, CUR_ABSENT, 0, STORE_PRE_NONE, 0},
        {"*", NULL, CUR_V5, 0, STORE_PRE_EXISTS, 0},
        {"\"1-5\"", NULL, CUR_V6, 0, STORE_PRE_VERSION, V(1, 5)},
        {NULL, "*", CUR_V5, 0, STORE_PRE_ABSENT, 0},
        {"\"abc\"", NULL, CUR_V5, API_COND_FAILED, 0, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct api_etags im, inm;
        struct store_precond pre;
        struct api_cur cur = cur_of(rows[i].cur);
        parse2(rows[i].im, rows[i].inm, &im, &inm);
        memset(&pre, 0xcc, sizeof(pre));
        int rc = api_cond_write(&im, &inm, &cur, &pre);
        CHECK(rc == rows[i].rc, i, S(rows[i].im));
        if (rc != 0)
            continue;
        CHECK(pre.kind == rows[i].kind, i, S(rows[i].im));
        if (pre.kind == STORE_PRE_VERSION)
            CHECK(pre.version == rows[i].version, i, S(rows[i].im));
    }
}

static void test_if_range(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        uint64_t version;
        int want;
    } rows[] = {
        {NULL, V(1, 5), 1},
        {"\"1-5\"", V(1, 5), 1},
        {" \"1-5\"\t", V(1, 5), 1},
        {"\"1-5\"", V(1, 6), 0},
        {"\"2-5\"", V(1, 5), 0},
        {"W/\"1-5\"", V(1, 5), 0},
        {"\"abc\"", V(1, 5), 0},
        {"\"01-5\"", V(1, 5), 0},
        {"Wed, 21 Oct 2015 07:28:00 GMT", V(1, 5), 0},
        {"\"1-5\", \"1-5\"", V(1, 5), 0},
        {"*", V(1, 5), 0},
        {"", V(1, 5), 0},
        {"\"1-5", V(1, 5), 0},
        {"\"1-5\"x", V(1, 5), 0},
        {"\"0-0\"", 0, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++)
        CHECK(api_if_range(rows[i].value, rows[i].version) == rows[i].want, i,
              S(rows[i].value));
}

/* ---- Range ------------------------------------------------------------ */

#define NONE API_RANGE_NONE
#define SINGLE API_RANGE_SINGLE
#define MULTI API_RANGE_MULTI
#define UNSAT API_RANGE_UNSATISFIABLE

static void test_range_table(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        uint64_t len;
        enum api_range_kind kind;
        size_t n;
        struct api_range r[4];
    } rows[] = {
        {NULL, 10, NONE, 0, {{0, 0}}},
        /* single */
        {"bytes=0-0", 10, SINGLE, 1, {{0, 0}}},
        {"bytes=0-", 10, SINGLE, 1, {{0, 9}}},
        {"bytes=3-", 10, SINGLE, 1, {{3, 9}}},
        {"bytes=9-", 10, SINGLE, 1, {{9, 9}}},
        {"bytes=-1", 10, SINGLE, 1, {{9, 9}}},
        {"bytes=-3", 10, SINGLE, 1, {{7, 9}}},
        {"bytes=-10", 10, SINGLE, 1, {{0, 9}}},
        {"bytes=-20", 10, SINGLE, 1, {{0, 9}}},
        {"bytes=2-5", 10, SINGLE, 1, {{2, 5}}},
        {"bytes=5-9", 10, SINGLE, 1, {{5, 9}}},
        {"bytes=9-9", 10, SINGLE, 1, {{9, 9}}},
        {"bytes=2-20", 10, SINGLE, 1, {{2, 9}}}, /* cut */
        {"bytes=0-18446744073709551615", 10, SINGLE, 1, {{0, 9}}},
        {"bytes=-18446744073709551615", 10, SINGLE, 1, {{0, 9}}},
        {"bytes=000-001", 10, SINGLE, 1, {{0, 1}}},
        {"bytes=0-0", 1, SINGLE, 1, {{0, 0}}},
        {"bytes=-1", 1, SINGLE, 1, {{0, 0}}},
        {"bytes=0-", 1, SINGLE, 1, {{0, 0}}},
        /* case, OWS */
        {"BYTES=0-1", 10, SINGLE, 1, {{0, 1}}},
        {"Bytes=0-1", 10, SINGLE, 1, {{0, 1}}},
        {"bYtEs=-2", 10, SINGLE, 1, {{8, 9}}},
        {" bytes=0-1 ", 10, SINGLE, 1, {{0, 1}}},
        {"bytes= 0-1", 10, SINGLE, 1, {{0, 1}}},
        {"bytes= 0-1 , 3-4", 10, MULTI, 2, {{0, 1}, {3, 4}}},
        {"bytes=0-1\t,\t3-4\t", 10, MULTI, 2, {{0, 1}, {3, 4}}},
        /* empty list elements */
        {"bytes=0-1,,2-3", 10, MULTI, 2, {{0, 1}, {2, 3}}},
        {"bytes=,0-1", 10, SINGLE, 1, {{0, 1}}},
        {"bytes=0-1,", 10, SINGLE, 1, {{0, 1}}},
        {"bytes=, ,0-1, ,", 10, SINGLE, 1, {{0, 1}}},
        /* unsatisfiable */
        {"bytes=10-10", 10, UNSAT, 0, {{0, 0}}},
        {"bytes=10-", 10, UNSAT, 0, {{0, 0}}},
        {"bytes=11-20", 10, UNSAT, 0, {{0, 0}}},
        {"bytes=-0", 10, UNSAT, 0, {{0, 0}}},
        {"bytes=-0,-00", 10, UNSAT, 0, {{0, 0}}},
        {"bytes=20-,30-40,-0", 10, UNSAT, 0, {{0, 0}}},
        {"bytes=18446744073709551615-", 10, UNSAT, 0, {{0, 0}}},
        /* a 0-byte blob satisfies nothing */
        {"bytes=0-0", 0, UNSAT, 0, {{0, 0}}},
        {"bytes=0-", 0, UNSAT, 0, {{0, 0}}},
        {"bytes=-1", 0, UNSAT, 0, {{0, 0}}},
        {"bytes=-5,0-3", 0, UNSAT, 0, {{0, 0}}},
        /* last < first: ignored, even beside good ranges */
        {"bytes=5-3", 10, NONE, 0, {{0, 0}}},
        {"bytes=20-3", 10, NONE, 0, {{0, 0}}},
        {"bytes=1-0", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-1,5-3", 10, NONE, 0, {{0, 0}}},
        {"bytes=5-3,0-1", 10, NONE, 0, {{0, 0}}},
        {"bytes=5-3", 0, NONE, 0, {{0, 0}}},
        /* garbage */
        {"", 10, NONE, 0, {{0, 0}}},
        {"bytes", 10, NONE, 0, {{0, 0}}},
        {"bytes=", 10, NONE, 0, {{0, 0}}},
        {"bytes=,", 10, NONE, 0, {{0, 0}}},
        {"bytes= , ,", 10, NONE, 0, {{0, 0}}},
        {"bytes=abc", 10, NONE, 0, {{0, 0}}},
        {"bites=0-1", 10, NONE, 0, {{0, 0}}},
        {"items=0-1", 10, NONE, 0, {{0, 0}}},
        {"bytes 0-1", 10, NONE, 0, {{0, 0}}},
        {"bytes =0-1", 10, NONE, 0, {{0, 0}}},
        {"bytes:0-1", 10, NONE, 0, {{0, 0}}},
        {"=0-1", 10, NONE, 0, {{0, 0}}},
        {"0-1", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-1-2", 10, NONE, 0, {{0, 0}}},
        {"bytes=--1", 10, NONE, 0, {{0, 0}}},
        {"bytes=-", 10, NONE, 0, {{0, 0}}},
        {"bytes=0", 10, NONE, 0, {{0, 0}}},
        {"bytes=-1-", 10, NONE, 0, {{0, 0}}},
        {"bytes=-1-2", 10, NONE, 0, {{0, 0}}},
        {"bytes=0 -1", 10, NONE, 0, {{0, 0}}},
        {"bytes=0- 1", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-1 2-3", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-1;2-3", 10, NONE, 0, {{0, 0}}},
        {"bytes=+1-2", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-+1", 10, NONE, 0, {{0, 0}}},
        {"bytes=0x1-2", 10, NONE, 0, {{0, 0}}},
        {"bytes=1.5-2", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-1,abc", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-1,x", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-1=", 10, NONE, 0, {{0, 0}}},
        {"bytes=bytes=0-1", 10, NONE, 0, {{0, 0}}},
        {"bytes=\xc2\xb9-2", 10, NONE, 0, {{0, 0}}},
        /* numbers that overflow uint64 */
        {"bytes=18446744073709551616-", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-18446744073709551616", 10, NONE, 0, {{0, 0}}},
        {"bytes=-18446744073709551616", 10, NONE, 0, {{0, 0}}},
        {"bytes=99999999999999999999999999-1", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-1,99999999999999999999999999-", 10, NONE, 0, {{0, 0}}},
        /* several ranges */
        {"bytes=0-0,2-3", 10, MULTI, 2, {{0, 0}, {2, 3}}},
        {"bytes=5-6,0-1", 10, MULTI, 2, {{5, 6}, {0, 1}}}, /* client order */
        {"bytes=0-1,2-3", 10, MULTI, 2, {{0, 1}, {2, 3}}}, /* adjacent */
        {"bytes=-2,0-1", 10, MULTI, 2, {{8, 9}, {0, 1}}},
        {"bytes=0-0,2-2,4-4,6-",
         10,
         MULTI,
         4,
         {{0, 0}, {2, 2}, {4, 4}, {6, 9}}},
        {"bytes=0-4,5-", 10, MULTI, 2, {{0, 4}, {5, 9}}}, /* total == len */
        {"bytes=0-1,5-30", 10, MULTI, 2, {{0, 1}, {5, 9}}},
        /* one satisfiable among several: single */
        {"bytes=0-1,20-30", 10, SINGLE, 1, {{0, 1}}},
        {"bytes=20-30,-0,3-4", 10, SINGLE, 1, {{3, 4}}},
        /* abuse limits: overlaps, and so totals beyond len */
        {"bytes=0-1,1-2", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-5,3-", 10, NONE, 0, {{0, 0}}},
        {"bytes=-3,7-8", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-,0-", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-9,0-9", 10, NONE, 0, {{0, 0}}},
        {"bytes=2-3,0-9", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-0,0-0", 10, NONE, 0, {{0, 0}}},
        {"bytes=0-0,0-0", 1, NONE, 0, {{0, 0}}},
        {"bytes=-1,-1", 10, NONE, 0, {{0, 0}}},
        /* huge blobs (len is a uint64) */
        {"bytes=0-", UINT64_MAX, SINGLE, 1, {{0, UINT64_MAX - 1}}},
        {"bytes=-5", UINT64_MAX, SINGLE, 1, {{UINT64_MAX - 5, UINT64_MAX - 1}}},
        {"bytes=0-18446744073709551615",
         UINT64_MAX,
         SINGLE,
         1,
         {{0, UINT64_MAX - 1}}},
        {"bytes=0-0,-1",
         UINT64_MAX,
         MULTI,
         2,
         {{0, 0}, {UINT64_MAX - 1, UINT64_MAX - 1}}},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct api_ranges out;
        memset(&out, 0xcc, sizeof(out));
        api_range_parse(rows[i].value, rows[i].len, &out);
        CHECK(out.kind == rows[i].kind, i, S(rows[i].value));
        CHECK(out.n == rows[i].n, i, S(rows[i].value));
        for (size_t k = 0; k < rows[i].n && k < out.n; k++) {
            CHECK(out.r[k].first == rows[i].r[k].first, i, S(rows[i].value));
            CHECK(out.r[k].last == rows[i].r[k].last, i, S(rows[i].value));
            CHECK(out.r[k].last < rows[i].len, i, S(rows[i].value));
        }
    }
}

/* n single-byte ranges "first-first,first+2-first+2,..." into buf. */
static void many_ranges(char *buf, size_t cap, int n, uint64_t first,
                        const char *sep)
{
    size_t off = (size_t)snprintf(buf, cap, "bytes=");
    for (int k = 0; k < n; k++) {
        uint64_t a = first + 2u * (unsigned)k;
        off += (size_t)snprintf(buf + off, cap - off, "%s%" PRIu64 "-%" PRIu64,
                                k ? sep : "", a, a);
        assert_true(off < cap);
    }
}

static void test_range_limits(void **state)
{
    (void)state;
    static char buf[16384];
    struct api_ranges out;

    many_ranges(buf, sizeof(buf), API_RANGES_MAX, 0, ",");
    api_range_parse(buf, 100, &out);
    assert_int_equal(out.kind, API_RANGE_MULTI);
    assert_int_equal(out.n, API_RANGES_MAX);
    for (size_t k = 0; k < out.n; k++) {
        assert_int_equal(out.r[k].first, 2 * k);
        assert_int_equal(out.r[k].last, 2 * k);
    }

    /* 17 ranges: ignored, whatever their satisfiability. */
    many_ranges(buf, sizeof(buf), API_RANGES_MAX + 1, 0, ",");
    api_range_parse(buf, 100, &out);
    assert_int_equal(out.kind, API_RANGE_NONE);
    api_range_parse(buf, 1, &out); /* one satisfiable */
    assert_int_equal(out.kind, API_RANGE_NONE);
    many_ranges(buf, sizeof(buf), API_RANGES_MAX + 1, 1000, ",");
    api_range_parse(buf, 100, &out); /* none satisfiable */
    assert_int_equal(out.kind, API_RANGE_NONE);
    many_ranges(buf, sizeof(buf), 1000, 0, ",");
    api_range_parse(buf, 100000, &out);
    assert_int_equal(out.kind, API_RANGE_NONE);

    /* Empty elements do not count. */
    many_ranges(buf, sizeof(buf), API_RANGES_MAX, 0, ", ,,");
    api_range_parse(buf, 100, &out);
    assert_int_equal(out.kind, API_RANGE_MULTI);
    assert_int_equal(out.n, API_RANGES_MAX);

    /* Unsatisfiable ones count toward the limit but are dropped. */
    many_ranges(buf, sizeof(buf), API_RANGES_MAX, 0, ",");
    api_range_parse(buf, 5, &out); /* 0-0, 2-2, 4-4 satisfiable */
    assert_int_equal(out.kind, API_RANGE_MULTI);
    assert_int_equal(out.n, 3);
}

static void test_content_range(void **state)
{
    (void)state;
    char buf[128];
    struct api_range r = {0, 0};
    assert_int_equal(api_content_range(buf, sizeof(buf), &r, 10), 12);
    assert_string_equal(buf, "bytes 0-0/10");
    r = (struct api_range){5, 9};
    api_content_range(buf, sizeof(buf), &r, 10);
    assert_string_equal(buf, "bytes 5-9/10");
    r = (struct api_range){0, UINT64_MAX - 1};
    api_content_range(buf, sizeof(buf), &r, UINT64_MAX);
    assert_string_equal(buf,
                        "bytes 0-18446744073709551614/18446744073709551615");

    assert_int_equal(api_content_range(buf, sizeof(buf), NULL, 10), 10);
    assert_string_equal(buf, "bytes */10");
    api_content_range(buf, sizeof(buf), NULL, 0);
    assert_string_equal(buf, "bytes */0");

    /* A short buffer: snprintf semantics. */
    r = (struct api_range){100, 199};
    assert_int_equal(api_content_range(buf, 6, &r, 1000), 18);
    assert_string_equal(buf, "bytes");
}

/* ---- multipart -------------------------------------------------------- */

static void test_multipart(void **state)
{
    (void)state;
    char buf[API_PART_HEAD_MAX];
    struct api_range r = {0, 4};

    assert_int_equal(api_multipart_type(buf, sizeof(buf), "abc"),
                     (int)strlen("multipart/byteranges; boundary=abc"));
    assert_string_equal(buf, "multipart/byteranges; boundary=abc");

    const char *h0 = "--abc\r\n"
                     "Content-Type: application/octet-stream\r\n"
                     "Content-Range: bytes 0-4/10\r\n"
                     "\r\n";
    assert_int_equal(
        api_multipart_part_head(buf, sizeof(buf), "abc", 0, &r, 10),
        strlen(h0));
    assert_string_equal(buf, h0);

    r = (struct api_range){7, 9};
    const char *h1 = "\r\n--abc\r\n"
                     "Content-Type: application/octet-stream\r\n"
                     "Content-Range: bytes 7-9/10\r\n"
                     "\r\n";
    assert_int_equal(
        api_multipart_part_head(buf, sizeof(buf), "abc", 1, &r, 10),
        strlen(h1));
    assert_string_equal(buf, h1);
    api_multipart_part_head(buf, sizeof(buf), "abc", 15, &r, 10);
    assert_string_equal(buf, h1);

    const char *tail = "\r\n--abc--\r\n";
    assert_int_equal(api_multipart_tail(buf, sizeof(buf), "abc"), strlen(tail));
    assert_string_equal(buf, tail);

    /* The largest head fits API_PART_HEAD_MAX with a real boundary. */
    char b[API_BOUNDARY_LEN + 1];
    assert_int_equal(api_boundary_new(b), 0);
    r = (struct api_range){UINT64_MAX - 2, UINT64_MAX - 1};
    size_t n = api_multipart_part_head(buf, sizeof(buf), b, 1, &r, UINT64_MAX);
    assert_true(n < sizeof(buf));
    assert_int_equal(strlen(buf), n);
    assert_true(strncmp(buf, "\r\n--", 4) == 0);
    assert_memory_equal(buf + 4, b, API_BOUNDARY_LEN);
    n = api_multipart_tail(buf, sizeof(buf), b);
    assert_int_equal(n, 2 + 2 + API_BOUNDARY_LEN + 2 + 2);

    /* A short buffer reports the length needed. */
    r = (struct api_range){0, 4};
    char small[8];
    assert_int_equal(
        api_multipart_part_head(small, sizeof(small), "abc", 0, &r, 10),
        strlen(h0));
    assert_int_equal(api_multipart_tail(small, sizeof(small), "abc"),
                     strlen(tail));
}

static void test_boundary(void **state)
{
    (void)state;
    char a[API_BOUNDARY_LEN + 1], b[API_BOUNDARY_LEN + 1];
    assert_int_equal(api_boundary_new(a), 0);
    assert_int_equal(api_boundary_new(b), 0);
    assert_int_equal(strlen(a), API_BOUNDARY_LEN);
    assert_int_equal(strlen(b), API_BOUNDARY_LEN);
    assert_string_not_equal(a, b);
    for (int i = 0; i < API_BOUNDARY_LEN; i++)
        assert_true((a[i] >= '0' && a[i] <= '9') ||
                    (a[i] >= 'a' && a[i] <= 'f'));
}

/* ---- request bodies --------------------------------------------------- */

static void test_body_kind(void **state)
{
    (void)state;
    static const struct {
        const char *cl, *te;
        enum api_body kind;
        uint64_t len;
    } rows[] = {
        {NULL, NULL, API_BODY_LENGTH_REQUIRED, 0},
        {"0", NULL, API_BODY_LENGTH, 0},
        {"1", NULL, API_BODY_LENGTH, 1},
        {"00", NULL, API_BODY_LENGTH, 0},
        {"524288", NULL, API_BODY_LENGTH, 524288},
        {"0000524288", NULL, API_BODY_LENGTH, 524288},
        {"524289", NULL, API_BODY_TOO_LARGE, 524289},
        {"1000000", NULL, API_BODY_TOO_LARGE, 1000000},
        {"18446744073709551615", NULL, API_BODY_TOO_LARGE, UINT64_MAX},
        /* A digit string that overflows is still too large (documented). */
        {"18446744073709551616", NULL, API_BODY_TOO_LARGE, UINT64_MAX},
        {"99999999999999999999999999999999", NULL, API_BODY_TOO_LARGE,
         UINT64_MAX},
        /* not 1*DIGIT */
        {"", NULL, API_BODY_BAD_LENGTH, 0},
        {"-1", NULL, API_BODY_BAD_LENGTH, 0},
        {"+5", NULL, API_BODY_BAD_LENGTH, 0},
        {"1 2", NULL, API_BODY_BAD_LENGTH, 0},
        {" 5", NULL, API_BODY_BAD_LENGTH, 0},
        {"5 ", NULL, API_BODY_BAD_LENGTH, 0},
        {"\t5", NULL, API_BODY_BAD_LENGTH, 0},
        {"0x10", NULL, API_BODY_BAD_LENGTH, 0},
        {"1e3", NULL, API_BODY_BAD_LENGTH, 0},
        {"5,5", NULL, API_BODY_BAD_LENGTH, 0},
        {"5, 5", NULL, API_BODY_BAD_LENGTH, 0},
        {"1.0", NULL, API_BODY_BAD_LENGTH, 0},
        {"abc", NULL, API_BODY_BAD_LENGTH, 0},
        {"99999999999999999999999x", NULL, API_BODY_BAD_LENGTH, 0},
        /* chunked wins */
        {NULL, "chunked", API_BODY_CHUNKED, 0},
        {NULL, "CHUNKED", API_BODY_CHUNKED, 0},
        {NULL, "Chunked", API_BODY_CHUNKED, 0},
        {NULL, " chunked\t", API_BODY_CHUNKED, 0},
        {"10", "chunked", API_BODY_CHUNKED, 0},
        {"999999999", "chunked", API_BODY_CHUNKED, 0},
        {"garbage", "chunked", API_BODY_CHUNKED, 0},
        /* codings we do not decode */
        {NULL, "gzip", API_BODY_LENGTH_REQUIRED, 0},
        {"10", "gzip", API_BODY_LENGTH_REQUIRED, 0},
        {NULL, "gzip, chunked", API_BODY_LENGTH_REQUIRED, 0},
        {NULL, "chunked, gzip", API_BODY_LENGTH_REQUIRED, 0},
        {NULL, "chunkedx", API_BODY_LENGTH_REQUIRED, 0},
        {NULL, "identity", API_BODY_LENGTH_REQUIRED, 0},
        {"10", "", API_BODY_LENGTH_REQUIRED, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        uint64_t len = 12345;
        enum api_body k = api_body_kind(rows[i].cl, rows[i].te, &len);
        CHECK(k == rows[i].kind, i, S(rows[i].cl));
        CHECK(len == rows[i].len, i, S(rows[i].cl));
        /* len may be NULL */
        CHECK(api_body_kind(rows[i].cl, rows[i].te, NULL) == rows[i].kind, i,
              S(rows[i].cl));
    }
}

/* ---- query values ----------------------------------------------------- */

static void test_parse_bool(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc, v;
    } rows[] = {
        {NULL, 0, 0},     {"true", 0, 1},   {"1", 0, 1},     {"false", 0, 0},
        {"0", 0, 0},      {"", -1, 0},      {"TRUE", -1, 0}, {"True", -1, 0},
        {"yes", -1, 0},   {"no", -1, 0},    {"01", -1, 0},   {"2", -1, 0},
        {" true", -1, 0}, {"true ", -1, 0}, {"t", -1, 0},    {"-1", -1, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        int v = 42;
        CHECK(api_parse_bool(rows[i].s, &v) == rows[i].rc, i, S(rows[i].s));
        if (rows[i].rc == 0)
            CHECK(v == rows[i].v, i, S(rows[i].s));
    }
}

static void test_parse_limit(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        size_t v;
    } rows[] = {
        {NULL, 0, API_LIST_DEFAULT},
        {"1", 0, 1},
        {"007", 0, 7},
        {"1000", 0, 1000},
        {"9999", 0, 9999},
        {"10000", 0, 10000},
        {"10001", 0, API_LIST_MAX},
        {"99999999999", 0, API_LIST_MAX},
        {"18446744073709551615", 0, API_LIST_MAX},
        {"18446744073709551616", -1, 0}, /* overflow */
        {"99999999999999999999999", -1, 0},
        {"0", -1, 0},
        {"00", -1, 0},
        {"", -1, 0},
        {"-1", -1, 0},
        {"+1", -1, 0},
        {" 5", -1, 0},
        {"5 ", -1, 0},
        {"abc", -1, 0},
        {"1.5", -1, 0},
        {"0x10", -1, 0},
        {"1e3", -1, 0},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        size_t v = 4242;
        CHECK(api_parse_limit(rows[i].s, &v) == rows[i].rc, i, S(rows[i].s));
        if (rows[i].rc == 0)
            CHECK(v == rows[i].v, i, S(rows[i].s));
    }
    assert_int_equal(API_LIST_MAX, 10000);
}

/* ---- store results ---------------------------------------------------- */

#define UNTOUCHED ((enum api_error) - 7)

static void test_outcome_status(void **state)
{
    (void)state;
    static const struct {
        enum store_outcome o;
        int rc;
        int status;
        enum api_error err;
    } rows[] = {
        {STORE_OUT_CREATED, 0, 201, UNTOUCHED},
        {STORE_OUT_REPLACED, 0, 204, UNTOUCHED},
        {STORE_OUT_DELETED, 0, 204, UNTOUCHED},
        {STORE_OUT_NONE, 0, 200, UNTOUCHED},
        {STORE_OUT_NOT_FOUND, STORE_E_NOT_FOUND, 404, API_ERR_NOT_FOUND},
        {STORE_OUT_PRECONDITION_FAILED, STORE_E_PRECONDITION, 412,
         API_ERR_PRECONDITION_FAILED},
        {STORE_OUT_NO_SPACE, STORE_E_NOSPACE, 507, API_ERR_NO_SPACE},
        {STORE_OUT_NO_SPACE, -ENOSPC, 507, API_ERR_NO_SPACE},
        {STORE_OUT_OVERLOADED, STORE_E_OVERLOADED, 503, API_ERR_OVERLOADED},
        {STORE_OUT_STORE_FAILED, STORE_E_FAILED, 503, API_ERR_STORE_FAILED},
        {STORE_OUT_STORE_FAILED, -EIO, 503, API_ERR_STORE_FAILED},
        {STORE_OUT_STORE_FAILED, STORE_E_OVERFLOW, 503, API_ERR_STORE_FAILED},
        {STORE_OUT_STORE_FAILED, STORE_E_NOT_OWNER, 503, API_ERR_STORE_FAILED},
        {STORE_OUT_STORE_FAILED, STORE_E_READONLY, 503, API_ERR_READ_ONLY},
        {STORE_OUT_STORE_FAILED, STORE_E_STOPPED, 503, API_ERR_DRAINING},
        {STORE_OUT_STORE_FAILED, STORE_E_TOO_LARGE, 413, API_ERR_TOO_LARGE},
        {STORE_OUT_STORE_FAILED, STORE_E_INVALID, 500, API_ERR_INTERNAL},
        /* a flush that failed without an outcome */
        {STORE_OUT_NONE, STORE_E_NOSPACE, 507, API_ERR_NO_SPACE},
        {STORE_OUT_NONE, STORE_E_FAILED, 503, API_ERR_STORE_FAILED},
        {STORE_OUT_NONE, -EIO, 500, API_ERR_IO_ERROR},
        {(enum store_outcome)99, 0, 500, API_ERR_INTERNAL},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        enum api_error err = UNTOUCHED;
        int st = api_outcome_status(rows[i].o, rows[i].rc, &err);
        CHECK(st == rows[i].status, i, store_outcome_name(rows[i].o));
        CHECK(err == rows[i].err, i, store_outcome_name(rows[i].o));
        if (err != UNTOUCHED)
            CHECK(api_error_status(err) == st, i, api_error_code(err));
        /* err may be NULL */
        CHECK(api_outcome_status(rows[i].o, rows[i].rc, NULL) == st, i,
              store_outcome_name(rows[i].o));
    }
}

static void test_store_error(void **state)
{
    (void)state;
    static const struct {
        int rc;
        enum api_error e;
    } rows[] = {
        {STORE_E_NOT_FOUND, API_ERR_NOT_FOUND},
        {STORE_E_CHECKSUM, API_ERR_CORRUPT_DATA},
        {STORE_E_NOSPACE, API_ERR_NO_SPACE},
        {STORE_E_FAILED, API_ERR_STORE_FAILED},
        {STORE_E_READONLY, API_ERR_READ_ONLY},
        {STORE_E_OVERLOADED, API_ERR_OVERLOADED},
        {STORE_E_STOPPED, API_ERR_DRAINING},
        {STORE_E_PRECONDITION, API_ERR_PRECONDITION_FAILED},
        {STORE_E_TOO_LARGE, API_ERR_TOO_LARGE},
        {STORE_E_CORRUPT, API_ERR_INTERNAL},
        {STORE_E_BAD_FORMAT, API_ERR_INTERNAL},
        {STORE_E_FOREIGN, API_ERR_INTERNAL},
        {STORE_E_LOCKED, API_ERR_INTERNAL},
        {STORE_E_NOT_OWNER, API_ERR_INTERNAL},
        {STORE_E_NO_DIRECT, API_ERR_INTERNAL},
        {STORE_E_INSECURE_DIR, API_ERR_INTERNAL},
        {STORE_E_OVERFLOW, API_ERR_INTERNAL},
        {STORE_E_RANGE, API_ERR_INTERNAL},
        {STORE_E_INVALID, API_ERR_INTERNAL},
        {STORE_E_HELD, API_ERR_INTERNAL},
        {-EIO, API_ERR_IO_ERROR},
        {-EINVAL, API_ERR_IO_ERROR},
        {-EBADF, API_ERR_IO_ERROR},
        {-4095, API_ERR_IO_ERROR},
        {-ENOSPC, API_ERR_NO_SPACE},
        {-EDQUOT, API_ERR_NO_SPACE},
        {-ENOMEM, API_ERR_INTERNAL},
        {0, API_ERR_INTERNAL},
        {1, API_ERR_INTERNAL},
        {-4096, API_ERR_INTERNAL},
        {STORE_E_BASE, API_ERR_INTERNAL},
        {STORE_E_BASE - 1000, API_ERR_INTERNAL},
    };
    for (size_t i = 0; i < NELEM(rows); i++)
        CHECK(api_store_error(rows[i].rc) == rows[i].e, i,
              store_errname(rows[i].rc));
}

/* ---- JSON documents --------------------------------------------------- */

static void check_blob_obj(const cJSON *o, const uint8_t *guid, uint32_t size,
                           uint64_t version)
{
    char g[API_GUID_STRLEN + 1], etag[API_ETAG_MAX];
    api_guid_format(guid, g);
    api_etag(version, etag);
    assert_true(cJSON_IsObject(o));
    assert_non_null(json_str(o, "guid"));
    assert_string_equal(json_str(o, "guid"), g);
    assert_true(json_num(o, "size") == (double)size);
    assert_non_null(json_str(o, "etag"));
    assert_string_equal(json_str(o, "etag"), etag);
    assert_int_equal(json_str(o, "etag")[0], '"');
}

static void test_json_list(void **state)
{
    (void)state;
    struct store_blob_info v[3];
    memset(v, 0, sizeof(v));
    for (int i = 0; i < 3; i++) {
        memset(v[i].guid, 0x10 * (i + 1), API_GUID_SIZE);
        v[i].len = i == 2 ? API_MAX_BODY : 100u * (unsigned)i;
        v[i].version = V(i + 1, 1000 + i);
    }

    for (int more = 0; more <= 1; more++) {
        char *s = api_json_list(v, 3, more);
        assert_non_null(s);
        assert_null(strchr(s, '\n'));
        cJSON *doc = cJSON_Parse(s);
        assert_non_null(doc);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "blobs");
        assert_true(cJSON_IsArray(arr));
        assert_int_equal(cJSON_GetArraySize(arr), 3);
        for (int i = 0; i < 3; i++)
            check_blob_obj(cJSON_GetArrayItem(arr, i), v[i].guid, v[i].len,
                           v[i].version);
        if (more) {
            assert_non_null(json_str(doc, "next"));
            assert_string_equal(json_str(doc, "next"),
                                "30303030303030303030303030303030");
            assert_int_equal(cJSON_GetArraySize(doc), 2);
        } else {
            assert_null(cJSON_GetObjectItemCaseSensitive(doc, "next"));
            assert_int_equal(cJSON_GetArraySize(doc), 1);
        }
        cJSON_Delete(doc);
        free(s);
    }

    /* An empty page. */
    char *s = api_json_list(NULL, 0, 0);
    assert_non_null(s);
    assert_string_equal(s, "{\"blobs\":[]}");
    free(s);
}

static void test_json_created(void **state)
{
    (void)state;
    for (int durable = 0; durable <= 1; durable++) {
        char *s = api_json_created(guid_ref, 524288, V(7, 42), durable);
        assert_non_null(s);
        cJSON *doc = cJSON_Parse(s);
        assert_non_null(doc);
        check_blob_obj(doc, guid_ref, 524288, V(7, 42));
        assert_string_equal(json_str(doc, "etag"), "\"7-42\"");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "durable");
        assert_true(cJSON_IsBool(d));
        assert_int_equal(cJSON_IsTrue(d), durable);
        assert_int_equal(cJSON_GetArraySize(doc), 4);
        cJSON_Delete(doc);
        free(s);
    }
    char *s = api_json_created(guid_ref, 0, V(1, 1), 5);
    cJSON *doc = cJSON_Parse(s);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "durable")));
    assert_true(json_num(doc, "size") == 0.0);
    cJSON_Delete(doc);
    free(s);
}

static void test_json_flush(void **state)
{
    (void)state;
    struct store_flush_result r = {
        .records = 3,
        .log_bytes = 8192,
        .data_synced = 1,
        .duration_ns = 1500000000u,
        .compaction_started = 1,
    };
    char *s = api_json_flush(&r);
    assert_non_null(s);
    cJSON *doc = cJSON_Parse(s);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(doc), 5);
    assert_true(json_num(doc, "records") == 3.0);
    assert_true(json_num(doc, "log_bytes") == 8192.0);
    assert_true(json_num(doc, "data_synced") == 1.0);
    assert_true(json_num(doc, "duration_seconds") == 1.5);
    assert_true(cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(doc, "compaction_started")));
    cJSON_Delete(doc);
    free(s);

    memset(&r, 0, sizeof(r));
    r.duration_ns = 1234; /* 1.234 us */
    s = api_json_flush(&r);
    doc = cJSON_Parse(s);
    assert_non_null(doc);
    assert_true(json_num(doc, "records") == 0.0);
    assert_true(json_num(doc, "data_synced") == 0.0);
    double d = json_num(doc, "duration_seconds");
    assert_true(d > 1.2339e-6 && d < 1.2341e-6);
    const cJSON *c =
        cJSON_GetObjectItemCaseSensitive(doc, "compaction_started");
    assert_true(cJSON_IsBool(c) && cJSON_IsFalse(c));
    cJSON_Delete(doc);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_error_json_message),
        cmocka_unit_test(test_status_reason),
        cmocka_unit_test(test_guid_parse_valid),
        cmocka_unit_test(test_guid_parse_invalid),
        cmocka_unit_test(test_guid_format),
        cmocka_unit_test(test_guid_new),
        cmocka_unit_test(test_method_parse),
        cmocka_unit_test(test_route_resources),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_check_target),
        cmocka_unit_test(test_header_verdict),
        cmocka_unit_test(test_etag_format),
        cmocka_unit_test(test_etags_parse),
        cmocka_unit_test(test_etags_limit),
        cmocka_unit_test(test_etags_match),
        cmocka_unit_test(test_cond_read),
        cmocka_unit_test(test_cond_write_static),
        cmocka_unit_test(test_cond_write_cur),
        cmocka_unit_test(test_if_range),
        cmocka_unit_test(test_range_table),
        cmocka_unit_test(test_range_limits),
        cmocka_unit_test(test_content_range),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_body_kind),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_parse_limit),
        cmocka_unit_test(test_outcome_status),
        cmocka_unit_test(test_store_error),
        cmocka_unit_test(test_json_list),
        cmocka_unit_test(test_json_created),
        cmocka_unit_test(test_json_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
