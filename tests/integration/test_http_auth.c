/*
 * test_http_auth.c - bearer-token auth and upload digests against a real
 * blobd (SPEC §2, §4).
 *
 * Auth: a server with read, write and admin tokens (from the environment
 * in one test, from flags in another) is driven through a table of every
 * endpoint and method: no token, a wrong token, a prefix of a real one,
 * other schemes and a bare "Bearer" are 401 with WWW-Authenticate; a
 * token of a lower role is 403; the endpoint's role and every higher one
 * succeed; /healthz and /readyz stay open; a refused write stores nothing.
 * Bad token configuration exits 64 naming the option.
 *
 * Digests: Content-MD5 and Content-Digest (sha-256) computed here with
 * nettle; a mismatch is 400 digest_mismatch and stores nothing (a rewrite
 * keeps the old bytes and ETag), a malformed header 400 bad_digest, an
 * unknown algorithm alone is ignored, and chunked bodies are checked too.
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <nettle/base64.h>
#include <nettle/md5.h>
#include <nettle/sha2.h>

#include "api.h"
#include "srv.h"

#define EX_USAGE_ 64

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

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- auth ---- */

/* Three distinct 32-character alphanumeric tokens. */
#define TOK_R "rEaD0123456789abcdefghijklmnopqR"
#define TOK_W "wRiTe123456789abcdefghijklmnopqW"
#define TOK_A "aDmIn123456789abcdefghijklmnopqA"
/* A second write token (flags test): a list of two. */
#define TOK_W2 "w2w2w2w2w2w2w2w2w2w2w2w2w2w2w2w2"

enum role { R_NONE = 0, R_READ, R_WRITE, R_ADMIN };

static const char *const role_names[] = {"none", "read", "write", "admin"};
static const char *const role_tokens[] = {NULL, TOK_R, TOK_W, TOK_A};

enum prep {
    P_NONE = 0,
    P_EXISTING, /* {g} is a blob created (with the admin token) first */
    P_FRESH,    /* {g} is a new GUID */
    P_HELD      /* a hold is taken (admin) first */
};

struct row {
    const char *method;
    const char *path; /* "{g}" stands for the GUID */
    enum role need;
    long ok; /* the endpoint's success status */
    enum prep prep;
    int body; /* send a body */
};

static const struct row rows[] = {
    {"GET", "/blobs/{g}", R_READ, 200, P_EXISTING, 0},
    {"HEAD", "/blobs/{g}", R_READ, 200, P_EXISTING, 0},
    {"PUT", "/blobs/{g}", R_WRITE, 201, P_FRESH, 1},
    {"DELETE", "/blobs/{g}", R_WRITE, 204, P_EXISTING, 0},
    {"GET", "/blobs", R_READ, 200, P_NONE, 0},
    {"POST", "/blobs", R_WRITE, 201, P_NONE, 1},
    {"POST", "/flush", R_WRITE, 200, P_NONE, 0},
    {"GET", "/admin/stats", R_READ, 200, P_NONE, 0},
    {"GET", "/metrics", R_READ, 200, P_NONE, 0},
    {"POST", "/admin/compact", R_ADMIN, 202, P_NONE, 0},
    {"POST", "/admin/hold", R_ADMIN, 200, P_NONE, 0},
    {"DELETE", "/admin/hold", R_ADMIN, 200, P_HELD, 0},
    {"GET", "/healthz", R_NONE, 200, P_NONE, 0},
    {"HEAD", "/healthz", R_NONE, 200, P_NONE, 0},
    {"GET", "/readyz", R_NONE, 200, P_NONE, 0},
    {"HEAD", "/readyz", R_NONE, 200, P_NONE, 0},
};

static uint8_t g_body[100];

/* One request with an optional Authorization value (NULL: none) and
 * optional body; the response in *r. */
static long areq(struct srv *s, const char *method, const char *path,
                 const char *auth, int body, struct http_resp *r)
{
    char h[256];
    const char *hv[2] = {h, NULL};
    if (auth)
        snprintf(h, sizeof(h), "Authorization: %s", auth);
    return http_req_ok(s, method, path, auth ? hv : NULL, body ? g_body : NULL,
                       body ? sizeof(g_body) : 0, r);
}

/* The status of a request with "Bearer <tok>" (tok NULL: no header). */
static long astatus(struct srv *s, const char *method, const char *path,
                    const char *tok, int body)
{
    char auth[128];
    struct http_resp r;
    if (tok)
        snprintf(auth, sizeof(auth), "Bearer %s", tok);
    long st = areq(s, method, path, tok ? auth : NULL, body, &r);
    http_resp_free(&r);
    return st;
}

/* PUT a fresh blob with the admin token; its GUID in g. */
static void make_blob(struct srv *s, char g[HTTP_GUID_BUF])
{
    char path[128];
    http_guid_rand(g);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    long st = astatus(s, "PUT", path, TOK_A, 1);
    if (st != 201)
        fail_msg("PUT %s with the admin token: %ld, want 201", path, st);
}

/* GET /blobs/<g> with the read token: the status. */
static long blob_status(struct srv *s, const char *g)
{
    char path[128];
    snprintf(path, sizeof(path), "/blobs/%s", g);
    return astatus(s, "GET", path, TOK_R, 0);
}

/* Entries in the listing (read token). */
static int list_count(struct srv *s)
{
    struct http_resp r;
    char auth[64];
    snprintf(auth, sizeof(auth), "Bearer %s", TOK_R);
    areq(s, "GET", "/blobs?limit=10000", auth, 0, &r);
    http_expect_status(&r, 200, "GET /blobs with the read token");
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "blobs");
    if (!cJSON_IsArray(b))
        fail_msg("GET /blobs: no blobs array: %.200s", r.body);
    int n = cJSON_GetArraySize(b);
    cJSON_Delete(j);
    http_resp_free(&r);
    return n;
}

static int is_held(struct srv *s)
{
    struct http_resp r;
    char auth[64];
    snprintf(auth, sizeof(auth), "Bearer %s", TOK_R);
    areq(s, "GET", "/admin/stats", auth, 0, &r);
    http_expect_status(&r, 200, "GET /admin/stats with the read token");
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    const cJSON *io = cJSON_GetObjectItemCaseSensitive(j, "io");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(io, "held");
    if (!cJSON_IsBool(h))
        fail_msg("stats: no io.held: %.200s", r.body);
    int v = cJSON_IsTrue(h);
    cJSON_Delete(j);
    http_resp_free(&r);
    return v;
}

static void release_hold(struct srv *s)
{
    long st = astatus(s, "DELETE", "/admin/hold", TOK_A, 0);
    if (st != 200)
        fail_msg("DELETE /admin/hold with the admin token: %ld", st);
}

/* What the row's request is about: a path with {g} filled in. */
static void row_path(const struct row *w, const char *g, char *out, size_t cap)
{
    const char *at = strstr(w->path, "{g}");
    if (!at) {
        snprintf(out, cap, "%s", w->path);
        return;
    }
    snprintf(out, cap, "%.*s%s%s", (int)(at - w->path), w->path, g, at + 3);
}

/* Get ready for one attempt at row w: a GUID in g as prep says. */
static void row_prep(struct srv *s, const struct row *w, char g[HTTP_GUID_BUF])
{
    g[0] = '\0';
    switch (w->prep) {
    case P_EXISTING:
        make_blob(s, g);
        break;
    case P_FRESH:
        http_guid_rand(g);
        break;
    case P_HELD:
        if (astatus(s, "POST", "/admin/hold", TOK_A, 0) != 200)
            fail_msg("POST /admin/hold with the admin token failed");
        break;
    default:
        break;
    }
}

/* Assert a refused attempt: status (401 or 403), the JSON error, and
 * WWW-Authenticate: Bearer... on a 401. */
static void expect_refused(const struct http_resp *r, const struct row *w,
                           long status, const char *how)
{
    char what[256], v[256];
    snprintf(what, sizeof(what), "%s %s %s", w->method, w->path, how);
    if (!strcmp(w->method, "HEAD"))
        http_expect_status(r, status, what);
    else
        http_expect_error(r, status,
                          status == 401 ? "unauthorized" : "forbidden", what);
    if (status == 401) {
        if (!http_header(r, "WWW-Authenticate", v, sizeof(v)))
            fail_msg("%s: 401 without WWW-Authenticate", what);
        if (strncmp(v, "Bearer", 6) != 0)
            fail_msg("%s: WWW-Authenticate \"%s\" does not start with Bearer",
                     what, v);
    }
}

/* After refusals of row w (with the state of g): nothing changed. */
static void row_unchanged(struct srv *s, const struct row *w, const char *g,
                          int list0)
{
    char what[128];
    snprintf(what, sizeof(what), "after refused %s %s", w->method, w->path);
    if (w->prep == P_EXISTING && blob_status(s, g) != 200)
        fail_msg("%s: the blob is gone", what);
    if (w->prep == P_FRESH && blob_status(s, g) != 404)
        fail_msg("%s: the blob was stored", what);
    if (list_count(s) != list0)
        fail_msg("%s: the listing has %d entries, was %d", what, list_count(s),
                 list0);
    if (w->prep == P_HELD && !is_held(s))
        fail_msg("%s: the hold was released", what);
    if (!strcmp(w->path, "/admin/hold") && w->prep != P_HELD && is_held(s))
        fail_msg("%s: a hold was taken", what);
}

/* The refusals of one row. */
static void row_refusals(struct srv *s, const struct row *w)
{
    char g[HTTP_GUID_BUF], path[256], wrong[64], prefix[64], longer[64];
    struct http_resp r;
    row_prep(s, w, g);
    row_path(w, g, path, sizeof(path));
    int list0 = list_count(s);

    /* a wrong token of the right length: the admin token, last byte
     * changed; a prefix of it; it with one byte more */
    snprintf(wrong, sizeof(wrong), "%s", TOK_A);
    wrong[strlen(wrong) - 1] = 'Z';
    snprintf(prefix, sizeof(prefix), "Bearer %.16s", TOK_A);
    snprintf(longer, sizeof(longer), "Bearer %sx", TOK_A);
    char wrong_auth[80], wrong_first[80], basic[128];
    snprintf(wrong_auth, sizeof(wrong_auth), "Bearer %s", wrong);
    snprintf(wrong_first, sizeof(wrong_first), "Bearer X%s", &TOK_W[1]);
    {
        /* "Basic base64(user:<admin token>)" */
        char cred[80];
        char b64[BASE64_ENCODE_RAW_LENGTH(80) + 1];
        int n = snprintf(cred, sizeof(cred), "user:%s", TOK_A);
        base64_encode_raw(b64, (size_t)n, (const uint8_t *)cred);
        b64[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
        snprintf(basic, sizeof(basic), "Basic %s", b64);
    }
    char bare_admin[64];
    snprintf(bare_admin, sizeof(bare_admin), "%s", TOK_A); /* no scheme */
    char lower_scheme[80];
    snprintf(lower_scheme, sizeof(lower_scheme), "Token %s", TOK_A);
    const char *const bad[][2] = {
        {NULL, "without Authorization"},
        {wrong_auth, "with a wrong token of the right length"},
        {wrong_first, "with a token whose first byte is wrong"},
        {prefix, "with a 16-byte prefix of the admin token"},
        {longer, "with the admin token and one byte more"},
        {basic, "with Basic credentials"},
        {bare_admin, "with a token but no scheme"},
        {lower_scheme, "with another scheme"},
        {"Bearer", "with a bare Bearer"},
        {"Bearer ", "with \"Bearer \" and nothing"},
    };
    for (size_t i = 0; i < NELEM(bad); i++) {
        areq(s, w->method, path, bad[i][0], w->body, &r);
        expect_refused(&r, w, 401, bad[i][1]);
        http_resp_free(&r);
    }
    /* the roles below the one needed */
    for (int role = R_READ; role < (int)w->need; role++) {
        char auth[80], how[64];
        snprintf(auth, sizeof(auth), "Bearer %s", role_tokens[role]);
        snprintf(how, sizeof(how), "with the %s token", role_names[role]);
        areq(s, w->method, path, auth, w->body, &r);
        expect_refused(&r, w, 403, how);
        http_resp_free(&r);
    }
    row_unchanged(s, w, g, list0);
    if (w->prep == P_HELD)
        release_hold(s);
}

/* The successes of one row: its role and every higher one (R_NONE rows:
 * no token as well). */
static void row_successes(struct srv *s, const struct row *w)
{
    for (int role = (int)w->need; role <= R_ADMIN; role++) {
        char g[HTTP_GUID_BUF], path[256];
        row_prep(s, w, g);
        row_path(w, g, path, sizeof(path));
        int list0 = w->prep == P_NONE && !strcmp(w->path, "/blobs") &&
                            !strcmp(w->method, "POST")
                        ? list_count(s)
                        : -1;
        long st = astatus(s, w->method, path, role_tokens[role], w->body);
        if (st != w->ok)
            fail_msg("%s %s with %s%s: %ld, want %ld", w->method, w->path,
                     role == R_NONE ? "no token" : "the ",
                     role == R_NONE ? "" : role_names[role], st, w->ok);
        /* the effect is there */
        if (w->prep == P_FRESH && blob_status(s, g) != 200)
            fail_msg("%s %s: the blob is not readable", w->method, path);
        if (!strcmp(w->method, "DELETE") && w->prep == P_EXISTING &&
            blob_status(s, g) != 404)
            fail_msg("%s %s: the blob is still there", w->method, path);
        if (list0 >= 0 && list_count(s) != list0 + 1)
            fail_msg("POST /blobs: the listing did not grow");
        if (!strcmp(w->path, "/admin/hold") && !strcmp(w->method, "POST")) {
            if (!is_held(s))
                fail_msg("POST /admin/hold with %s: not held",
                         role_names[role]);
            release_hold(s);
        }
        if (w->prep == P_HELD && is_held(s))
            fail_msg("DELETE /admin/hold with %s: still held",
                     role_names[role]);
    }
}

static void auth_table(struct srv *s)
{
    http_fill(g_body, sizeof(g_body), 42);
    for (size_t i = 0; i < NELEM(rows); i++) {
        if (rows[i].need != R_NONE)
            row_refusals(s, &rows[i]);
        row_successes(s, &rows[i]);
    }
}

static void test_auth_env(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *const env[] = {"BLOBD_READ_TOKENS=" TOK_R,
                               "BLOBD_WRITE_TOKENS=" TOK_W,
                               "BLOBD_ADMIN_TOKENS=" TOK_A, NULL};
    srv_init(s);
    int rc = srv_start(s, NULL, env);
    if (rc != 0)
        fail_msg("blobd with tokens from the environment: srv_start %d", rc);
    if (srv_wait_ready(s) != 0)
        fail_msg("blobd with tokens from the environment: not ready");
    auth_table(s);
    /* the tokens never reach the log */
    if (srv_log_has(s, TOK_R) || srv_log_has(s, TOK_W) || srv_log_has(s, TOK_A))
        fail_msg("a token appears in the server's log %s", s->log);
    assert_int_equal(srv_stop(s), 0);
}

static void test_auth_flags(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *const argv[] = {"--read-tokens",
                                TOK_R,
                                "--write-tokens",
                                TOK_W2 ", " TOK_W,
                                "--admin-tokens=" TOK_A,
                                "--flush-interval-ms",
                                "0",
                                NULL};
    srv_up(s, argv);
    auth_table(s);

    /* the second token of a list works as well, and only as write */
    char g[HTTP_GUID_BUF], path[128];
    http_guid_rand(g);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    assert_int_equal(astatus(s, "PUT", path, TOK_W2, 1), 201);
    assert_int_equal(astatus(s, "GET", path, TOK_W2, 0), 200);
    assert_int_equal(astatus(s, "POST", "/admin/compact", TOK_W2, 0), 403);
    /* a write token is not a read token spelled differently: case counts */
    char upper[64];
    snprintf(upper, sizeof(upper), "%s", TOK_R);
    upper[0] = 'R';
    assert_int_equal(astatus(s, "GET", path, upper, 0), 401);
    assert_int_equal(srv_stop(s), 0);
}

/* Start blobd with argv/env; expect exit 64 and a log naming one of the
 * needles. */
static void expect_bad_config(const char *what, const char *const *argv,
                              const char *const *env, const char *needle1,
                              const char *needle2)
{
    struct srv *s = &g_srv;
    srv_init(s);
    int rc = srv_start(s, argv, env);
    if (rc == 0) {
        srv_stop(s);
        fail_msg("%s: blobd started (want exit %d)", what, EX_USAGE_);
    }
    if (rc != EX_USAGE_)
        fail_msg("%s: srv_start %d, want exit %d (log %s)", what, rc, EX_USAGE_,
                 s->log);
    if (!srv_log_has(s, needle1) && !(needle2 && srv_log_has(s, needle2)))
        fail_msg("%s: the log does not name %s", what, needle1);
    srv_fini(s);
    memset(s, 0, sizeof(*s));
}

static void test_bad_tokens(void **state)
{
    (void)state;
    const char *const a1[] = {"--read-tokens", "short0123456789", NULL};
    expect_bad_config("a 15-character read token", a1, NULL, "read-tokens",
                      NULL);
    const char *const a2[] = {"--write-tokens",
                              "abcdefghij klmnopqrstuvwxyz0123", NULL};
    expect_bad_config("a write token with a space", a2, NULL, "write-tokens",
                      NULL);
    const char *const a3[] = {"--admin-tokens",
                              TOK_A ",bad@token0123456789abcdefghij", NULL};
    expect_bad_config("an admin token list with an '@' in an item", a3, NULL,
                      "admin-tokens", NULL);
    const char *const a4[] = {"--read-tokens", TOK_R ",x", NULL};
    expect_bad_config("a one-character item in a read token list", a4, NULL,
                      "read-tokens", NULL);
    const char *const a5[] = {"--read-tokens", "\"quoted0123456789abcdef\"",
                              NULL};
    expect_bad_config("a quoted read token", a5, NULL, "read-tokens", NULL);
    const char *const e1[] = {"BLOBD_READ_TOKENS=tooshort", NULL};
    expect_bad_config("BLOBD_READ_TOKENS=tooshort", NULL, e1, "read-tokens",
                      "READ_TOKENS");
    const char *const e2[] = {"BLOBD_ADMIN_TOKENS=" TOK_A ",al@mostgood0123456",
                              NULL};
    expect_bad_config("BLOBD_ADMIN_TOKENS with an '@' item", NULL, e2,
                      "admin-tokens", "ADMIN_TOKENS");

    /* the boundary: 16 characters are enough */
    struct srv *s = &g_srv;
    const char *const ok[] = {"--read-tokens", "abcdefghijklmnop", NULL};
    srv_up(s, ok);
    assert_int_equal(astatus(s, "GET", "/admin/stats", "abcdefghijklmnop", 0),
                     200);
    assert_int_equal(astatus(s, "GET", "/admin/stats", "abcdefghijklmno", 0),
                     401);
    /* read tokens only: writes need a write token nobody has */
    char g[HTTP_GUID_BUF], path[128];
    http_guid_rand(g);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    assert_int_equal(astatus(s, "PUT", path, "abcdefghijklmnop", 1), 403);
    assert_int_equal(srv_stop(s), 0);
}

/* ---- upload digests ---- */

static void b64(const uint8_t *d, size_t n, char *out)
{
    base64_encode_raw(out, n, d);
    out[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
}

/* "Content-MD5: <base64 md5(data)>" into out. */
static void md5_header(const void *data, size_t len, char *out, size_t cap)
{
    struct md5_ctx c;
    uint8_t h[MD5_DIGEST_SIZE];
    char t[BASE64_ENCODE_RAW_LENGTH(MD5_DIGEST_SIZE) + 1];
    md5_init(&c);
    md5_update(&c, len, data);
    md5_digest(&c, sizeof(h), h);
    b64(h, sizeof(h), t);
    snprintf(out, cap, "Content-MD5: %s", t);
}

/* ":<base64 sha-256(data)>:" into out (an sf-binary). */
static void sha256_sf(const void *data, size_t len, char *out, size_t cap)
{
    struct sha256_ctx c;
    uint8_t h[SHA256_DIGEST_SIZE];
    char t[BASE64_ENCODE_RAW_LENGTH(SHA256_DIGEST_SIZE) + 1];
    sha256_init(&c);
    sha256_update(&c, len, data);
    sha256_digest(&c, sizeof(h), h);
    b64(h, sizeof(h), t);
    snprintf(out, cap, ":%s:", t);
}

/* "Content-Digest: sha-256=:<base64>:" into out. */
static void sha256_header(const void *data, size_t len, char *out, size_t cap)
{
    char sf[80];
    sha256_sf(data, len, sf, sizeof(sf));
    snprintf(out, cap, "Content-Digest: sha-256=%s", sf);
}

/* PUT (or POST /blobs when guid is NULL) with up to two extra headers. */
static long dput(struct srv *s, const char *guid, const void *body, size_t len,
                 const char *h1, const char *h2, struct http_resp *r)
{
    char path[128];
    const char *h[3] = {NULL, NULL, NULL};
    int n = 0;
    if (h1)
        h[n++] = h1;
    if (h2)
        h[n++] = h2;
    if (guid)
        snprintf(path, sizeof(path), "/blobs/%s", guid);
    return http_req_ok(s, guid ? "PUT" : "POST", guid ? path : "/blobs",
                       n ? h : NULL, body, len, r);
}

/* dput expecting a status; for 400, the error code. */
static void dput_expect(struct srv *s, const char *guid, const void *body,
                        size_t len, const char *h1, const char *h2, long want,
                        const char *code, const char *what)
{
    struct http_resp r;
    dput(s, guid, body, len, h1, h2, &r);
    if (code)
        http_expect_error(&r, want, code, what);
    else
        http_expect_status(&r, want, what);
    http_resp_free(&r);
}

/* Entries in the listing (no auth). */
static int list_count_open(struct srv *s)
{
    struct http_resp r;
    http_req_ok(s, "GET", "/blobs?limit=10000", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /blobs");
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "blobs");
    if (!cJSON_IsArray(b))
        fail_msg("GET /blobs: no blobs array: %.200s", r.body);
    int n = cJSON_GetArraySize(b);
    cJSON_Delete(j);
    http_resp_free(&r);
    return n;
}

/* A chunked PUT over a raw socket with extra header lines (each ending
 * in CRLF); the status, 0 when no answer came. */
static long chunked_put(struct srv *s, const char *guid, const void *body,
                        size_t len, size_t chunk, const char *extra)
{
    size_t cap = len + len / (chunk ? chunk : 1) * 16 + 2048;
    char *req = malloc(cap);
    assert_non_null(req);
    size_t n = (size_t)snprintf(req, cap,
                                "PUT /blobs/%s HTTP/1.1\r\n"
                                "Host: 127.0.0.1\r\n"
                                "Transfer-Encoding: chunked\r\n"
                                "%s"
                                "Connection: close\r\n\r\n",
                                guid, extra);
    for (size_t off = 0; off < len; off += chunk) {
        size_t k = len - off < chunk ? len - off : chunk;
        n += (size_t)snprintf(req + n, cap - n, "%zx\r\n", k);
        memcpy(req + n, (const uint8_t *)body + off, k);
        n += k;
        memcpy(req + n, "\r\n", 2);
        n += 2;
    }
    n += (size_t)snprintf(req + n, cap - n, "0\r\n\r\n");
    char out[4096];
    long got = http_raw_exchange(s, req, n, out, sizeof(out), 10000);
    free(req);
    if (got <= 0)
        return 0;
    return http_raw_status(out);
}

static void test_digests(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, NULL);
    uint8_t a[1000], b[4000];
    http_fill(a, sizeof(a), 1);
    http_fill(b, sizeof(b), 2);
    char md5a[80], md5b[80], shaa[120], shab[120], etag1[API_ETAG_MAX];
    char g1[HTTP_GUID_BUF], g2[HTTP_GUID_BUF], gx[HTTP_GUID_BUF];
    md5_header(a, sizeof(a), md5a, sizeof(md5a));
    md5_header(b, sizeof(b), md5b, sizeof(md5b));
    sha256_header(a, sizeof(a), shaa, sizeof(shaa));
    sha256_header(b, sizeof(b), shab, sizeof(shab));
    struct http_resp r;

    /* Content-MD5: right -> 201 */
    http_guid_rand(g1);
    dput(s, g1, a, sizeof(a), md5a, NULL, &r);
    http_expect_status(&r, 201, "PUT with a correct Content-MD5");
    http_etag_of(&r, etag1, "PUT with a correct Content-MD5");
    http_resp_free(&r);
    http_expect_data(s, g1, a, sizeof(a), etag1, NULL);

    /* wrong -> 400 digest_mismatch, nothing stored */
    http_guid_rand(g2);
    dput_expect(s, g2, a, sizeof(a), md5b, NULL, 400, "digest_mismatch",
                "PUT with a wrong Content-MD5");
    http_expect_absent(s, g2, "refused for a wrong Content-MD5");

    /* a rewrite with a wrong digest leaves the old bytes and ETag */
    dput_expect(s, g1, b, sizeof(b), md5a, NULL, 400, "digest_mismatch",
                "rewrite with a wrong Content-MD5");
    http_expect_data(s, g1, a, sizeof(a), etag1,
                     "after a rewrite with a wrong Content-MD5");
    dput_expect(s, g1, b, sizeof(b), shaa, NULL, 400, "digest_mismatch",
                "rewrite with a wrong Content-Digest");
    http_expect_data(s, g1, a, sizeof(a), etag1,
                     "after a rewrite with a wrong Content-Digest");

    /* malformed Content-MD5 -> 400 bad_digest */
    {
        uint8_t fifteen[15];
        char t[BASE64_ENCODE_RAW_LENGTH(15) + 1], h15[64], h17[64];
        uint8_t seventeen[17];
        memset(fifteen, 0xab, sizeof(fifteen));
        memset(seventeen, 0xcd, sizeof(seventeen));
        b64(fifteen, sizeof(fifteen), t);
        snprintf(h15, sizeof(h15), "Content-MD5: %s", t);
        char t17[BASE64_ENCODE_RAW_LENGTH(17) + 1];
        b64(seventeen, sizeof(seventeen), t17);
        snprintf(h17, sizeof(h17), "Content-MD5: %s", t17);
        /* a right digest with a character that is not base64 */
        char junk[80];
        snprintf(junk, sizeof(junk), "%s", md5a);
        junk[strlen("Content-MD5: ") + 3] = '*';
        const char *const bad[] = {"Content-MD5: abc", h15, h17, junk,
                                   "Content-MD5;" /* empty: curl syntax */};
        for (size_t i = 0; i < NELEM(bad); i++) {
            char what[128];
            snprintf(what, sizeof(what), "PUT with \"%s\"", bad[i]);
            http_guid_rand(gx);
            dput_expect(s, gx, a, sizeof(a), bad[i], NULL, 400, "bad_digest",
                        what);
            http_expect_absent(s, gx, what);
        }
    }

    /* Content-Digest sha-256: right -> 201, wrong -> 400, nothing stored */
    http_guid_rand(gx);
    dput_expect(s, gx, b, sizeof(b), shab, NULL, 201, NULL,
                "PUT with a correct Content-Digest");
    http_expect_data(s, gx, b, sizeof(b), NULL, NULL);
    http_guid_rand(gx);
    dput_expect(s, gx, b, sizeof(b), shaa, NULL, 400, "digest_mismatch",
                "PUT with a wrong Content-Digest");
    http_expect_absent(s, gx, "refused for a wrong Content-Digest");
    /* a malformed one: 400 bad_digest */
    http_guid_rand(gx);
    dput_expect(s, gx, b, sizeof(b), "Content-Digest: sha-256=:abc:", NULL, 400,
                "bad_digest", "PUT with a short sha-256");
    http_expect_absent(s, gx, "refused for a malformed Content-Digest");

    /* an unknown algorithm alone is ignored */
    {
        uint8_t sixty4[64];
        char t[BASE64_ENCODE_RAW_LENGTH(64) + 1], h[160];
        memset(sixty4, 0x5a, sizeof(sixty4));
        b64(sixty4, sizeof(sixty4), t);
        snprintf(h, sizeof(h), "Content-Digest: sha-512=:%s:", t);
        http_guid_rand(gx);
        dput_expect(s, gx, a, sizeof(a), h, NULL, 201, NULL,
                    "PUT with only an unknown algorithm (sha-512)");
        http_expect_data(s, gx, a, sizeof(a), NULL, "sha-512 only");
        /* beside a right sha-256 */
        char sf[80], both[300];
        sha256_sf(a, sizeof(a), sf, sizeof(sf));
        snprintf(both, sizeof(both), "Content-Digest: sha-512=:%s:, sha-256=%s",
                 t, sf);
        http_guid_rand(gx);
        dput_expect(s, gx, a, sizeof(a), both, NULL, 201, NULL,
                    "PUT with sha-512 and a right sha-256");
        /* beside a wrong one */
        sha256_sf(b, sizeof(b), sf, sizeof(sf));
        snprintf(both, sizeof(both), "Content-Digest: sha-512=:%s:, sha-256=%s",
                 t, sf);
        http_guid_rand(gx);
        dput_expect(s, gx, a, sizeof(a), both, NULL, 400, "digest_mismatch",
                    "PUT with sha-512 and a wrong sha-256");
        http_expect_absent(s, gx, "sha-512 and a wrong sha-256");
    }

    /* both headers: both right 201; either wrong 400, nothing stored */
    http_guid_rand(gx);
    dput_expect(s, gx, a, sizeof(a), md5a, shaa, 201, NULL,
                "PUT with both digests right");
    http_guid_rand(gx);
    dput_expect(s, gx, a, sizeof(a), md5a, shab, 400, "digest_mismatch",
                "PUT with a right MD5 and a wrong SHA-256");
    http_expect_absent(s, gx, "right MD5, wrong SHA-256");
    http_guid_rand(gx);
    dput_expect(s, gx, a, sizeof(a), md5b, shaa, 400, "digest_mismatch",
                "PUT with a wrong MD5 and a right SHA-256");
    http_expect_absent(s, gx, "wrong MD5, right SHA-256");

    /* POST /blobs: a wrong digest stores nothing, a right one does */
    int n0 = list_count_open(s);
    dput_expect(s, NULL, a, sizeof(a), md5b, NULL, 400, "digest_mismatch",
                "POST /blobs with a wrong Content-MD5");
    dput_expect(s, NULL, a, sizeof(a), shab, NULL, 400, "digest_mismatch",
                "POST /blobs with a wrong Content-Digest");
    if (list_count_open(s) != n0)
        fail_msg("the listing grew from %d to %d after refused POSTs", n0,
                 list_count_open(s));
    dput_expect(s, NULL, a, sizeof(a), md5a, shaa, 201, NULL,
                "POST /blobs with right digests");
    if (list_count_open(s) != n0 + 1)
        fail_msg("the listing has %d entries after a good POST, want %d",
                 list_count_open(s), n0 + 1);

    /* chunked bodies are checked too */
    {
        size_t big = 200000;
        uint8_t *c = malloc(big);
        assert_non_null(c);
        http_fill(c, big, 3);
        char hm[80], hs[120], extra[256];
        md5_header(c, big, hm, sizeof(hm));
        sha256_header(c, big, hs, sizeof(hs));
        snprintf(extra, sizeof(extra), "%s\r\n%s\r\n", hm, hs);
        http_guid_rand(gx);
        long st = chunked_put(s, gx, c, big, 7000, extra);
        if (st != 201)
            fail_msg("chunked PUT with right digests: %ld, want 201", st);
        http_expect_data(s, gx, c, big, NULL, "chunked with digests");
        /* the same digests over a body with one byte changed */
        c[big / 2] ^= 1;
        http_guid_rand(gx);
        st = chunked_put(s, gx, c, big, 7000, extra);
        if (st != 400)
            fail_msg("chunked PUT with a wrong digest: %ld, want 400", st);
        http_expect_absent(s, gx, "chunked with a wrong digest");
        free(c);
    }
    assert_int_equal(srv_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digests, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
