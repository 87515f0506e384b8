/*
 * test_http_status.c - the status page GET / against a real blobd (SPEC
 * §2, §4): the response headers (HTML type, no-cache, a strict
 * Content-Security-Policy, nosniff) on GET and HEAD, 405 + Allow for other
 * methods, a body that loads nothing from elsewhere (no absolute or
 * protocol-relative URL in src, href, action, url(), no @import, no
 * inline handler or style attribute the policy would block), the stats
 * keys the page reads (each one present in the live /admin/stats
 * document), the policy's sha256 hashes equal to the inline blocks served,
 * and with tokens configured: the page open, /admin/stats 401.
 *
 * What the page does in a browser is tests/browser/test_status_page.py.
 */
#include "testutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <nettle/base64.h>
#include <nettle/sha2.h>

#include "srv.h"

#define TOK_R "statusRead0123456789abcdef"
#define PAGE_MAX (32 * 1024) /* the page stays small */

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

static void expect_header(const struct http_resp *r, const char *name,
                          char *buf, size_t cap, const char *what)
{
    if (!http_header(r, name, buf, cap))
        fail_msg("%s: no %s header", what, name);
}

/* One directive of a CSP ("script-src"), without its name, or NULL. */
static char *csp_directive(const char *csp, const char *name)
{
    size_t nl = strlen(name);
    const char *p = csp;
    while (*p) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= nl && strncasecmp(p, name, nl) == 0 &&
            (len == nl || p[nl] == ' ')) {
            const char *v = p + nl;
            while (*v == ' ')
                v++;
            return strndup(v, len - (size_t)(v - p));
        }
        p += len;
    }
    return NULL;
}

/* The headers every answer to GET or HEAD / carries; csp gets the policy
 * (cap bytes). */
static void expect_page_headers(const struct http_resp *r, char *csp,
                                size_t cap, const char *what)
{
    char v[512];
    expect_header(r, "Content-Type", v, sizeof(v), what);
    if (strcasecmp(v, "text/html; charset=utf-8") != 0)
        fail_msg("%s: Content-Type \"%s\"", what, v);
    expect_header(r, "Cache-Control", v, sizeof(v), what);
    if (!strstr(v, "no-cache") && !strstr(v, "no-store"))
        fail_msg("%s: Cache-Control \"%s\", want no-cache or no-store", what,
                 v);
    expect_header(r, "X-Content-Type-Options", v, sizeof(v), what);
    if (strcasecmp(v, "nosniff") != 0)
        fail_msg("%s: X-Content-Type-Options \"%s\"", what, v);
    expect_header(r, "Content-Security-Policy", csp, cap, what);
    static const struct {
        const char *name, *want;
    } dirs[] = {{"default-src", "'none'"},
                {"connect-src", "'self'"},
                {"frame-ancestors", "'none'"}};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char *d = csp_directive(csp, dirs[i].name);
        if (!d || strcmp(d, dirs[i].want) != 0)
            fail_msg("%s: CSP %s is \"%s\", want %s (policy: %s)", what,
                     dirs[i].name, d ? d : "(absent)", dirs[i].want, csp);
        free(d);
    }
    if (strstr(csp, "unsafe-eval") || strstr(csp, "*") ||
        strstr(csp, "http:") || strstr(csp, "https:"))
        fail_msg("%s: CSP allows more than the page: %s", what, csp);
}

static char *get_page(struct srv *s, struct http_resp *r, char *csp, size_t cap)
{
    http_req_ok(s, "GET", "/", NULL, NULL, 0, r);
    http_expect_status(r, 200, "GET /");
    expect_page_headers(r, csp, cap, "GET /");
    return r->body;
}

static cJSON *stats_json(struct srv *s, const char *auth)
{
    const char *h[] = {auth, NULL};
    struct http_resp r;
    http_req_ok(s, "GET", "/admin/stats", auth ? h : NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /admin/stats");
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    if (!cJSON_IsObject(j))
        fail_msg("GET /admin/stats: not a JSON object");
    http_resp_free(&r);
    return j;
}

/* The item at a dotted path ("flush.unflushed_bytes"), or NULL. */
static const cJSON *jget(const cJSON *root, const char *path)
{
    char key[128];
    const cJSON *cur = root;
    const char *p = path;
    while (cur && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(key) || !cJSON_IsObject(cur))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        p += n + (p[n] == '.');
    }
    return cur;
}

/* ---- GET, HEAD and other methods ---- */

static void test_get_head(void **state)
{
    (void)state;
    struct http_resp g, h;
    char csp[1024], csp_h[1024], v[64];
    srv_up(&g_srv, NULL);
    const char *body = get_page(&g_srv, &g, csp, sizeof(csp));
    if (g.body_len == 0 || g.body_len > PAGE_MAX)
        fail_msg("GET /: %zu bytes, want 1..%d", g.body_len, PAGE_MAX);
    if (strncasecmp(body, "<!DOCTYPE html>", 15) != 0)
        fail_msg("GET /: body does not start with <!DOCTYPE html>");
    expect_header(&g, "Content-Length", v, sizeof(v), "GET /");
    if (strtoull(v, NULL, 10) != g.body_len)
        fail_msg("GET /: Content-Length %s, body %zu", v, g.body_len);

    http_req_ok(&g_srv, "HEAD", "/", NULL, NULL, 0, &h);
    http_expect_status(&h, 200, "HEAD /");
    expect_page_headers(&h, csp_h, sizeof(csp_h), "HEAD /");
    if (h.body_len != 0)
        fail_msg("HEAD /: %zu bytes of body", h.body_len);
    if (strcmp(csp, csp_h) != 0)
        fail_msg("HEAD / policy differs from GET's");
    expect_header(&h, "Content-Length", v, sizeof(v), "HEAD /");
    if (strtoull(v, NULL, 10) != g.body_len)
        fail_msg("HEAD /: Content-Length %s, GET sent %zu", v, g.body_len);
    http_resp_free(&g);
    http_resp_free(&h);
}

static void test_other_methods(void **state)
{
    (void)state;
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH"};
    struct http_resp r;
    char allow[64];
    srv_up(&g_srv, NULL);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        http_req_ok(&g_srv, methods[i], "/", NULL, "x", 1, &r);
        http_expect_error(&r, 405, "method_not_allowed", methods[i]);
        if (!http_header(&r, "Allow", allow, sizeof(allow)) ||
            strcmp(allow, "GET, HEAD") != 0)
            fail_msg("%s /: Allow \"%s\", want \"GET, HEAD\"", methods[i],
                     allow);
        http_resp_free(&r);
    }
    /* Paths match exactly: only "/" is the page. */
    static const char *const others[] = {"//", "/index.html", "/status"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        http_req_ok(&g_srv, "GET", others[i], NULL, NULL, 0, &r);
        http_expect_error(&r, 404, "no_route", others[i]);
        http_resp_free(&r);
    }
}

/* ---- the body: nothing from elsewhere ---- */

/* A URL the page may name: data:, a fragment, or a path relative to the
 * page that cannot leave its origin. */
static int url_is_local(const char *u, size_t n)
{
    if (n >= 5 && strncasecmp(u, "data:", 5) == 0)
        return 1;
    if (n >= 2 && (u[0] == '/' || u[0] == '\\') &&
        (u[1] == '/' || u[1] == '\\'))
        return 0; /* protocol-relative: another host */
    for (size_t i = 0; i < n; i++) {
        if (u[i] == ':')
            return 0; /* a scheme (http:, javascript:, ...) */
        if (u[i] == '/' || u[i] == '?' || u[i] == '#')
            break;
    }
    return 1;
}

/* The value after "attr=" or "url(" at p: quoted or bare; *n its length. */
static const char *attr_value(const char *p, size_t *n)
{
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    if (*p == '"' || *p == '\'') {
        const char *e = strchr(p + 1, *p);
        *n = e ? (size_t)(e - p - 1) : strlen(p + 1);
        return p + 1;
    }
    *n = strcspn(p, " \t\n>)");
    return p;
}

static void test_no_external(void **state)
{
    (void)state;
    struct http_resp r;
    char csp[1024];
    srv_up(&g_srv, NULL);
    const char *body = get_page(&g_srv, &r, csp, sizeof(csp));
    static const char *const banned[] = {"http://", "https://", "ws://",
                                         "wss://",  "@import",  "<iframe",
                                         "<object", "<embed",   "<base"};
    for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
        if (strcasestr(body, banned[i]))
            fail_msg("GET /: the page contains \"%s\"", banned[i]);
    static const char *const refs[] = {
        "src=", "href=", "action=", "url(", "srcset=", "poster="};
    int seen = 0;
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        for (const char *p = strcasestr(body, refs[i]); p;
             p = strcasestr(p + 1, refs[i])) {
            size_t n;
            const char *u = attr_value(p + strlen(refs[i]), &n);
            if (!url_is_local(u, n))
                fail_msg("GET /: %s\"%.*s\" leaves the origin", refs[i], (int)n,
                         u);
            seen++;
        }
    }
    /* The icon is data:, so the scan above did look at something. */
    assert_true(seen >= 1);
    /* Every request the script makes is relative to the page, so the page
     * also works under a proxy's path prefix. */
    int fetches = 0;
    for (const char *p = strstr(body, "fetchT(\""); p;
         p = strstr(p + 1, "fetchT(\"")) {
        if (strncmp(p + 8, "./", 2) != 0)
            fail_msg("GET /: a request not relative to the page: %.40s", p);
        fetches++;
    }
    if (fetches < 2 || !strstr(body, "\"./admin/stats\"") ||
        !strstr(body, "\"./readyz\""))
        fail_msg("GET /: the page does not poll ./admin/stats and ./readyz");
    http_resp_free(&r);
}

/* ---- the stats keys the page reads ---- */

static int is_section(const char *s, size_t n)
{
    static const char *const sections[] = {"process", "manifest",  "compaction",
                                           "flush",   "data_file", "io",
                                           "cache",   "memory",    "http"};
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        if (strlen(sections[i]) == n && memcmp(s, sections[i], n) == 0)
            return 1;
    return 0;
}

static void test_stats_keys(void **state)
{
    (void)state;
    static const char *const want[] = {
        "manifest.entries",
        "manifest.next_slot",
        "manifest.free_slots.total",
        "manifest.log_bytes",
        "manifest.log_records",
        "manifest.generation",
        "flush.count",
        "flush.last_unix_ms",
        "flush.last_duration_seconds",
        "flush.in_progress",
        "flush.unflushed_blobs",
        "flush.unflushed_bytes",
        "flush.failures",
        "flush.last_sticky_error",
        "compaction.count",
        "compaction.running",
        "compaction.last_duration_seconds",
        "compaction.bytes_before",
        "compaction.bytes_after",
        "compaction.failures",
        "data_file.free_bytes",
        "data_file.headroom_bytes",
        "memory.used_bytes",
        "memory.limit_bytes",
        "io.backend",
        "process.version",
        "process.uptime_seconds",
        "http.requests",
    };
    struct http_resp r;
    char csp[1024], q[128];
    srv_up(&g_srv, NULL);
    const char *body = get_page(&g_srv, &r, csp, sizeof(csp));
    cJSON *stats = stats_json(&g_srv, NULL);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        snprintf(q, sizeof(q), "\"%s\"", want[i]);
        if (!strstr(body, q))
            fail_msg("GET /: the page does not read %s", want[i]);
    }
    /* Every "section.key" string in the page names a key of the live
     * document: a renamed key cannot leave the page showing nothing. */
    int n = 0;
    for (const char *p = strchr(body, '"'); p; p = strchr(p + 1, '"')) {
        const char *s = p + 1;
        size_t len = strcspn(s, "\"\n");
        size_t sec = strcspn(s, ".\"\n");
        if (s[len] != '"' || sec >= len || !is_section(s, sec))
            continue;
        if (len >= sizeof(q))
            fail_msg("GET /: a stats path too long: %.60s", s);
        memcpy(q, s, len);
        q[len] = '\0';
        if (!jget(stats, q))
            fail_msg("GET /: the page reads %s, absent from /admin/stats", q);
        n++;
        p = s + len; /* the closing quote opens nothing */
    }
    if (n < (int)(sizeof(want) / sizeof(want[0])))
        fail_msg("GET /: only %d stats paths found", n);
    cJSON_Delete(stats);
    http_resp_free(&r);
}

/* ---- the policy's hashes are the inline blocks ---- */

/* base64 of the SHA-256 of data[0..len) into out (45 bytes). */
static void sha256_b64(const char *data, size_t len, char out[45])
{
    struct sha256_ctx c;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&c);
    sha256_update(&c, len, (const uint8_t *)data);
    sha256_digest(&c, sizeof(d), d);
    base64_encode_raw(out, sizeof(d), d);
    out[BASE64_ENCODE_RAW_LENGTH(sizeof(d))] = '\0';
}

/* The only <tag>...</tag> block of body (no attributes: an external
 * script would need src=); its text in *start, *len. */
static void inline_block(const char *body, const char *tag, const char **start,
                         size_t *len)
{
    char open[32], close[32], any[32];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    snprintf(any, sizeof(any), "<%s", tag);
    const char *o = strcasestr(body, open), *c;
    if (!o)
        fail_msg("GET /: no <%s> block", tag);
    c = strcasestr(o, close);
    if (!c)
        fail_msg("GET /: <%s> is not closed", tag);
    if (strcasestr(c, any) || strcasestr(body, any) != o)
        fail_msg("GET /: more than one <%s> element", tag);
    *start = o + strlen(open);
    *len = (size_t)(c - *start);
}

/* Is p inside a tag (the next '>' comes before the next '<')? */
static int in_tag(const char *p)
{
    const char *lt = strchr(p, '<'), *gt = strchr(p, '>');
    return gt && (!lt || gt < lt);
}

/* The hash sources of a directive must be exactly the block's hash, or
 * the directive allows 'unsafe-inline' with no hash (a hash would disable
 * it). */
static void expect_hash(const char *csp, const char *dir, const char *block,
                        size_t len)
{
    char h[45], src[64];
    char *d = csp_directive(csp, dir);
    if (!d)
        fail_msg("CSP has no %s", dir);
    sha256_b64(block, len, h);
    snprintf(src, sizeof(src), "'sha256-%s'", h);
    if (!strstr(d, "'sha256-")) {
        if (!strstr(d, "'unsafe-inline'"))
            fail_msg("CSP %s \"%s\" allows neither the block nor inline", dir,
                     d);
    } else if (strcmp(d, src) != 0) {
        fail_msg("CSP %s is \"%s\"; the block served hashes to %s", dir, d,
                 src);
    }
    free(d);
}

static void test_csp_hashes(void **state)
{
    (void)state;
    struct http_resp r;
    char csp[1024];
    const char *script, *style;
    size_t script_len, style_len;
    srv_up(&g_srv, NULL);
    const char *body = get_page(&g_srv, &r, csp, sizeof(csp));
    inline_block(body, "script", &script, &script_len);
    inline_block(body, "style", &style, &style_len);
    expect_hash(csp, "script-src", script, script_len);
    expect_hash(csp, "style-src", style, style_len);
    /* Inline handlers and style attributes are not covered by the hashes:
     * the policy would block them, so the page has none. */
    size_t html_len = (size_t)(script - body);
    char *html = strndup(body, html_len);
    assert_non_null(html);
    for (const char *p = html; (p = strstr(p, " on")) != NULL; p++) {
        const char *q = p + 3;
        while (islower((unsigned char)*q))
            q++;
        if (q > p + 3 && *q == '=' && in_tag(p))
            fail_msg("GET /: an inline handler: %.30s", p);
    }
    if (strcasestr(html, " style="))
        fail_msg("GET /: a style attribute, blocked by the policy");
    if (strstr(script, "eval(") || strstr(script, "new Function"))
        fail_msg("GET /: the script evaluates strings");
    free(html);
    http_resp_free(&r);
}

/* ---- with tokens: the page is open, its data is not ---- */

static void test_auth(void **state)
{
    (void)state;
    const char *const argv[] = {"--read-tokens", TOK_R, NULL};
    const char *const bearer[] = {"Authorization: Bearer " TOK_R, NULL};
    const char *const wrong[] = {
        "Authorization: Bearer wrongWrong0123456789abcdef", NULL};
    struct http_resp r;
    char csp[1024], v[128];
    srv_up(&g_srv, argv);
    const char *body = get_page(&g_srv, &r, csp, sizeof(csp));
    if (!strstr(body, "Authorization") || !strstr(body, "Bearer "))
        fail_msg("GET /: the page never sends a bearer token");
    if (!strstr(body, "sessionStorage"))
        fail_msg("GET /: the page does not keep the token in sessionStorage");
    http_resp_free(&r);

    http_req_ok(&g_srv, "HEAD", "/", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "HEAD / without a token");
    http_resp_free(&r);

    http_req_ok(&g_srv, "POST", "/", NULL, "x", 1, &r);
    http_expect_error(&r, 405, "method_not_allowed", "POST / without a token");
    http_resp_free(&r);

    http_req_ok(&g_srv, "GET", "/admin/stats", NULL, NULL, 0, &r);
    http_expect_error(&r, 401, "unauthorized", "stats without a token");
    if (!http_header(&r, "WWW-Authenticate", v, sizeof(v)))
        fail_msg("401 without WWW-Authenticate");
    http_resp_free(&r);

    http_req_ok(&g_srv, "GET", "/admin/stats", wrong, NULL, 0, &r);
    http_expect_error(&r, 401, "unauthorized", "stats with a wrong token");
    http_resp_free(&r);

    http_req_ok(&g_srv, "GET", "/admin/stats", bearer, NULL, 0, &r);
    http_expect_status(&r, 200, "stats with the read token");
    http_resp_free(&r);

    /* The page's other poll stays open too. */
    http_req_ok(&g_srv, "GET", "/readyz", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "readyz without a token");
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_external, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csp_hashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
