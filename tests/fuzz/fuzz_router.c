/*
 * fuzz_router.c - libFuzzer target: one whole request through the checks
 * the server makes before it touches the store (server/http.c
 * request_begin and first_call): the raw target, the header lines and
 * their verdict, the route and the role it needs, the body framing, the
 * upload digests and the bearer token.  No socket, no server loop.
 *
 * Input: an HTTP/1.x request as text: "METHOD SP target SP version", then
 * header lines "Name: value" up to an empty line (LF or CRLF), then the
 * body.  Header values lose their leading blanks, as libmicrohttpd does;
 * a line without a colon is skipped.
 *
 * Invariants:
 *  H1. api_header_verdict agrees with the header lines: 431 exactly when
 *      there are more than API_HEADER_FIELDS_MAX lines or more than
 *      API_HEADER_BYTES_MAX bytes; an accepted request has token names,
 *      a Host in HTTP/1.1, at most one Content-Length, and no
 *      Transfer-Encoding but one exact "chunked" without Content-Length.
 *  H2. Body framing of an accepted request: chunked exactly when
 *      Transfer-Encoding was sent; else LENGTH/TOO_LARGE exactly for a
 *      digit string (with the length it names), BAD_LENGTH for anything
 *      else, LENGTH_REQUIRED without Content-Length.
 *  H3. Digests: an accepted Content-MD5 is the canonical base64 of the
 *      bytes kept; an accepted sha-256 member holds the base64 of the
 *      bytes kept; a refused header keeps nothing.  api_digests_check
 *      passes for the body's own digests and fails for any other.
 *  H4. A bearer token lies inside the header value, is non-empty token68
 *      text ending the value, and compares equal only to itself.
 *  H5. Every error the request draws has a JSON body naming its code and
 *      a 4xx/5xx status.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nettle/md5.h>
#include <nettle/sha2.h>

#include "api.h"
#include "fuzz.h"

#define RT_MAX_HEADERS 256

struct rt_req {
    char *method, *target, *version;
    size_t nh;
    char *name[RT_MAX_HEADERS], *value[RT_MAX_HEADERS];
    const uint8_t *body;
    size_t blen;
};

/* The next line of [*p, end): NUL-terminated in place, CR stripped. */
static char *rt_line(char **p, char *end)
{
    if (*p >= end)
        return NULL;
    char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    *e = '\0';
    if (e > s && e[-1] == '\r')
        e[-1] = '\0';
    return s;
}

/* Split text (a NUL-terminated copy, len bytes before the NUL). */
static int rt_parse(char *text, size_t len, struct rt_req *r)
{
    char *p = text, *end = text + len;
    memset(r, 0, sizeof(*r));
    char *line = rt_line(&p, end);
    if (!line)
        return -1;
    r->method = line;
    r->target = strchr(line, ' ');
    if (!r->target)
        return -1;
    *r->target++ = '\0';
    r->version = strchr(r->target, ' ');
    if (r->version)
        *r->version++ = '\0';
    else
        r->version = (char *)"HTTP/1.0";
    while ((line = rt_line(&p, end)) != NULL && *line) {
        char *colon = strchr(line, ':');
        if (!colon || r->nh == RT_MAX_HEADERS)
            continue;
        *colon++ = '\0';
        while (*colon == ' ' || *colon == '\t')
            colon++;
        r->name[r->nh] = line;
        r->value[r->nh++] = colon;
    }
    r->body = (const uint8_t *)p;
    r->blen = (size_t)(end - p);
    return 0;
}

/* libmicrohttpd's lookup: the first header of that name. */
static const char *rt_header(const struct rt_req *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++)
        if (strcasecmp(r->name[i], name) == 0)
            return r->value[i];
    return NULL;
}

static size_t rt_count(const struct rt_req *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nh; i++)
        n += strcasecmp(r->name[i], name) == 0;
    return n;
}

static int rt_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* H1 */
static enum api_error check_headers(const struct rt_req *r, int http11)
{
    struct api_header_check hc;
    size_t bytes = 0;
    int names_ok = 1;
    memset(&hc, 0, sizeof(hc));
    for (size_t i = 0; i < r->nh; i++) {
        api_header_check_add(&hc, r->name[i], r->value[i]);
        bytes += strlen(r->name[i]) + strlen(r->value[i]) + 4;
        names_ok &= *r->name[i] != '\0';
        for (const char *c = r->name[i]; *c; c++)
            names_ok &= rt_tchar((unsigned char)*c);
    }
    enum api_error v = api_header_verdict(&hc, http11);
    int too_large =
        r->nh > API_HEADER_FIELDS_MAX || bytes > API_HEADER_BYTES_MAX;
    FUZZ_CHECK((v == API_ERR_HEADERS_TOO_LARGE) == too_large,
               "verdict %d for %zu lines of %zu bytes", (int)v, r->nh, bytes);
    if (v != API_ERR_NONE)
        return v;
    const char *te = rt_header(r, "Transfer-Encoding");
    size_t ncl = rt_count(r, "Content-Length");
    size_t nte = rt_count(r, "Transfer-Encoding");
    FUZZ_CHECK(names_ok, "a malformed header name accepted");
    FUZZ_CHECK(!http11 || rt_header(r, "Host"), "HTTP/1.1 without Host");
    FUZZ_CHECK(ncl <= 1 && nte <= 1 && !(ncl && nte),
               "framing: %zu Content-Length, %zu Transfer-Encoding", ncl, nte);
    FUZZ_CHECK(!te || strcasecmp(te, "chunked") == 0,
               "Transfer-Encoding \"%s\" accepted", te);
    return v;
}

/* H2 */
static void check_body(const struct rt_req *r)
{
    const char *cl = rt_header(r, "Content-Length");
    const char *te = rt_header(r, "Transfer-Encoding");
    uint64_t len = 12345, v = 0;
    enum api_body k = api_body_kind(cl, te, &len);
    if (te) {
        FUZZ_CHECK(k == API_BODY_CHUNKED && len == 0,
                   "Transfer-Encoding \"%s\": kind %d", te, (int)k);
        return;
    }
    if (!cl) {
        FUZZ_CHECK(k == API_BODY_LENGTH_REQUIRED && len == 0,
                   "no framing: kind %d", (int)k);
        return;
    }
    int digits = *cl != '\0', over = 0;
    for (const char *p = cl; *p && digits; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (*p < '0' || *p > '9')
            digits = 0;
        else if (over || v > (UINT64_MAX - d) / 10)
            over = 1;
        else
            v = v * 10 + d;
    }
    if (!digits) {
        FUZZ_CHECK(k == API_BODY_BAD_LENGTH && len == 0,
                   "Content-Length \"%s\": kind %d", cl, (int)k);
    } else if (over || v > API_MAX_BODY) {
        FUZZ_CHECK(k == API_BODY_TOO_LARGE && len == (over ? UINT64_MAX : v),
                   "Content-Length \"%s\": kind %d len %" PRIu64, cl, (int)k,
                   len);
    } else {
        FUZZ_CHECK(k == API_BODY_LENGTH && len == v,
                   "Content-Length \"%s\": kind %d len %" PRIu64, cl, (int)k,
                   len);
    }
}

static void b64(const uint8_t *in, size_t n, char *out, int pad)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = tab[v >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (i + 2 < n)
            out[o++] = tab[v & 63];
        else if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
}

/* H3 */
static void check_digests(const struct rt_req *r)
{
    const char *md5h = rt_header(r, "Content-MD5");
    const char *cdh = rt_header(r, "Content-Digest");
    struct api_digests d, own;
    char text[64];
    int rc = api_digests_parse(md5h, cdh, &d);
    FUZZ_CHECK(rc == 0 || rc == -1, "api_digests_parse returned %d", rc);
    if (rc != 0) {
        FUZZ_CHECK(!d.has_md5 && !d.has_sha256, "a refused digest kept");
    } else {
        FUZZ_CHECK(d.has_md5 == (md5h != NULL), "Content-MD5 lost");
        if (d.has_md5) {
            const char *p = md5h, *e = md5h + strlen(md5h);
            while (*p == ' ' || *p == '\t')
                p++;
            while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            b64(d.md5, sizeof(d.md5), text, 1);
            FUZZ_CHECK((size_t)(e - p) == strlen(text) &&
                           memcmp(p, text, strlen(text)) == 0,
                       "Content-MD5 \"%s\" kept as %s", md5h, text);
        }
        if (d.has_sha256) {
            b64(d.sha256, sizeof(d.sha256), text, 0);
            FUZZ_CHECK(cdh && strstr(cdh, text),
                       "Content-Digest \"%s\" kept sha-256 %s", cdh, text);
        }
        FUZZ_CHECK(d.has_md5 || d.has_sha256 ||
                       api_digests_check(&d, r->body, r->blen) == 0,
                   "no digest, yet the check fails");
    }
    /* The body's own digests pass; a changed one fails. */
    memset(&own, 0, sizeof(own));
    struct md5_ctx mc;
    struct sha256_ctx sc;
    md5_init(&mc);
    md5_update(&mc, r->blen, r->body);
    md5_digest(&mc, sizeof(own.md5), own.md5);
    sha256_init(&sc);
    sha256_update(&sc, r->blen, r->body);
    sha256_digest(&sc, sizeof(own.sha256), own.sha256);
    own.has_md5 = own.has_sha256 = 1;
    FUZZ_CHECK(api_digests_check(&own, r->body, r->blen) == 0,
               "the body's own digests fail");
    if (r->blen > 0) {
        own.has_md5 = r->body[0] & 1;
        own.has_sha256 = !own.has_md5;
        own.md5[r->blen % 16] ^= 1;
        own.sha256[r->blen % 32] ^= 1;
        FUZZ_CHECK(api_digests_check(&own, r->body, r->blen) < 0,
                   "a changed digest passes");
    }
}

static int rt_token68(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("-._~+/=", c));
}

/* H4 */
static void check_bearer(const struct rt_req *r)
{
    const char *v = rt_header(r, "Authorization");
    const char *tok = NULL;
    size_t len = 0;
    int rc = api_bearer(v, &tok, &len);
    FUZZ_CHECK(rc == 0 || rc == -1, "api_bearer returned %d", rc);
    if (rc != 0)
        return;
    size_t vl = strlen(v);
    FUZZ_CHECK(tok > v && len > 0 && tok + len <= v + vl,
               "token outside \"%s\"", v);
    FUZZ_CHECK(strncasecmp(v + strspn(v, " \t"), "bearer ", 7) == 0 &&
                   tok[-1] == ' ',
               "\"%s\" is not a Bearer credential", v);
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(rt_token68(tok[i]) && (tok[i] != '=' || i > 0),
                   "token byte %zu of \"%s\"", i, v);
    for (const char *p = tok + len; *p; p++)
        FUZZ_CHECK(*p == ' ' || *p == '\t', "text after the token");
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, tok, len);
    FUZZ_CHECK(api_token_equal(tok, len, copy, len) == 1,
               "a token differs from its copy");
    FUZZ_CHECK(api_token_equal(tok, len, copy, len - 1) == 0,
               "a token equals its prefix");
    copy[len] = 'x';
    FUZZ_CHECK(api_token_equal(tok, len, copy, len + 1) == 0,
               "a token equals a longer one");
    copy[len - 1] ^= 1;
    FUZZ_CHECK(api_token_equal(tok, len, copy, len) == 0,
               "a token equals a changed one");
    free(copy);
}

/* H5 */
static void check_error(enum api_error e)
{
    if (e == API_ERR_NONE)
        return;
    int status = api_error_status(e);
    FUZZ_CHECK(status >= 400 && status <= 599, "error %d has status %d", (int)e,
               status);
    FUZZ_CHECK(*api_status_reason(status) != '\0', "status %d has no reason",
               status);
    char *json = api_error_json(e, NULL);
    if (!json)
        return; /* ENOMEM */
    FUZZ_CHECK(strstr(json, api_error_code(e)) != NULL,
               "error JSON %s lacks its code", json);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rt_req r;
    char *text = fuzz_strndup(data, size);
    if (!text)
        return 0;
    if (rt_parse(text, size, &r) < 0)
        goto out;
    enum api_method m = api_method_parse(r.method);
    int http11 = strcmp(r.version, "HTTP/1.1") == 0;
    enum api_error e = api_check_target(r.target);
    enum api_error v = check_headers(&r, http11);
    if (e == API_ERR_NONE)
        e = v;
    if (e != API_ERR_NONE) {
        check_error(e); /* the request is refused as it arrived */
        goto out;
    }
    char *q = strchr(r.target, '?');
    if (q)
        *q++ = '\0';
    struct api_route route;
    int rc = api_route(m, r.target, &route);
    enum api_role role = api_route_role(route.kind, m);
    FUZZ_CHECK(role >= API_ROLE_NONE && role <= API_ROLE_ADMIN, "role %d",
               (int)role);
    check_bearer(&r);
    check_error((enum api_error)rc);
    if (rc == API_ERR_NONE && (m == API_M_PUT || m == API_M_POST)) {
        check_body(&r);
        check_digests(&r);
    }
out:
    free(text);
    return 0;
}
