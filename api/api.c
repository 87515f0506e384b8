/*
 * api.c - the blobd HTTP API as socket-free code: the error table, GUIDs,
 * routes, entity tags and preconditions, Range, multipart framing, body
 * length rules, query values, store results to statuses and the JSON
 * documents.  api.h is the manual; I1-I3 there are cited here.
 *
 * Owns nothing: no state, no locks.  Every function is reentrant; the only
 * syscall is getrandom(2) (GUIDs and boundaries).
 *
 * Invariants:
 *  A1. Every parser works on an explicit [p, end) span, never reads past
 *      it, and accepts exactly its grammar: a parse either succeeds whole
 *      or is refused whole (a Range is then ignored, I3).
 *  A2. Every number read from a request is 1*DIGIT, checked for uint64
 *      overflow digit by digit before it is multiplied (parse_u64).
 *  A3. An entity tag is ours only if its opaque text is byte for byte what
 *      api_etag writes for the version it names (I2): strong comparison is
 *      an exact string comparison (RFC 9110 §8.8.3.2), so "01-2" is a
 *      foreign tag, never version (1, 2).
 *  A4. A JSON document is built completely or not at all: any failed cJSON
 *      allocation frees the tree and returns NULL.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "api.h"

#define VERSION_GEN_MAX ((UINT64_C(1) << 24) - 1)
#define VERSION_N_MAX ((UINT64_C(1) << 40) - 1)

/* ---- errors ---- */

static const struct {
    int status;
    const char *code;
    const char *message;
} api_error_table[API_ERR_COUNT] = {
#define API_X_ROW(name, st, cd, msg) [API_ERR_##name] = {st, cd, msg},
    API_ERRORS(API_X_ROW)
#undef API_X_ROW
};

static enum api_error error_valid(enum api_error e)
{
    return (unsigned)e < API_ERR_COUNT && e != API_ERR_NONE ? e
                                                            : API_ERR_INTERNAL;
}

int api_error_status(enum api_error e)
{
    return api_error_table[error_valid(e)].status;
}

const char *api_error_code(enum api_error e)
{
    return api_error_table[error_valid(e)].code;
}

const char *api_error_message(enum api_error e)
{
    return api_error_table[error_valid(e)].message;
}

/* Print and free a finished document (A4); NULL doc is ENOMEM. */
static char *json_finish(cJSON *doc)
{
    char *s = NULL;
    if (doc)
        s = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return s;
}

char *api_error_json(enum api_error e, const char *message)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc)
        goto fail;
    if (!cJSON_AddStringToObject(doc, "error", api_error_code(e)) ||
        !cJSON_AddStringToObject(doc, "message",
                                 message ? message : api_error_message(e)))
        goto fail;
    return json_finish(doc);
fail:
    cJSON_Delete(doc);
    return NULL;
}

const char *api_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "";
    }
}

/* ---- small scanners (A1, A2) ---- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && is_ows(*p))
        p++;
    return p;
}

/* Narrow [*p, *end) to drop OWS on both sides. */
static void trim_ows(const char **p, const char **end)
{
    *p = skip_ows(*p, *end);
    while (*end > *p && is_ows((*end)[-1]))
        (*end)--;
}

/*
 * Read 1*DIGIT at *pp (stopping at the first non-digit or end) into *v.
 * Returns 0, -1 when there is no digit, or 1 when the digits overflow
 * uint64 (*pp is then past all of them and *v is UINT64_MAX).
 */
static int parse_u64(const char **pp, const char *end, uint64_t *v)
{
    const char *p = *pp;
    uint64_t x = 0;
    int over = 0;
    if (p == end || !is_digit(*p))
        return -1;
    for (; p < end && is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (over || x > (UINT64_MAX - d) / 10)
            over = 1;
        else
            x = x * 10 + d;
    }
    *pp = p;
    *v = over ? UINT64_MAX : x;
    return over;
}

/* The whole of [p, end) is 1*DIGIT: 0, -1 (not digits) or 1 (overflow). */
static int parse_u64_all(const char *p, const char *end, uint64_t *v)
{
    int rc = parse_u64(&p, end, v);
    if (rc < 0 || p != end)
        return -1;
    return rc;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void hex_encode(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* n bytes from getrandom(2), retrying short reads and EINTR. */
static int fill_random(uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    return 0;
}

/* ---- GUIDs (I1) ---- */

int api_guid_parse(const char *s, size_t len, uint8_t out[API_GUID_SIZE])
{
    uint8_t g[API_GUID_SIZE];
    int dashed;
    if (!s)
        return -1;
    if (len == 2 * API_GUID_SIZE)
        dashed = 0;
    else if (len == 2 * API_GUID_SIZE + 4)
        dashed = 1;
    else
        return -1;
    size_t j = 0;
    for (size_t i = 0; i < API_GUID_SIZE; i++) {
        /* 8-4-4-4-12: a dash before bytes 4, 6, 8 and 10. */
        if (dashed && (i == 4 || i == 6 || i == 8 || i == 10)) {
            if (s[j] != '-')
                return -1;
            j++;
        }
        int hi = hex_value(s[j]), lo = hex_value(s[j + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        g[i] = (uint8_t)(hi << 4 | lo);
        j += 2;
    }
    memcpy(out, g, sizeof(g));
    return 0;
}

void api_guid_format(const uint8_t g[API_GUID_SIZE],
                     char out[API_GUID_STRLEN + 1])
{
    hex_encode(g, API_GUID_SIZE, out);
}

int api_guid_new(uint64_t now_ms, uint8_t out[API_GUID_SIZE])
{
    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)(now_ms >> (8 * (5 - i)));
    return fill_random(out + 6, API_GUID_SIZE - 6);
}

/* ---- routes ---- */

enum api_method api_method_parse(const char *method)
{
    static const struct {
        const char *name;
        enum api_method m;
    } methods[] = {{"GET", API_M_GET},
                   {"HEAD", API_M_HEAD},
                   {"PUT", API_M_PUT},
                   {"POST", API_M_POST},
                   {"DELETE", API_M_DELETE}};
    if (!method)
        return API_M_OTHER;
    /* Method names are case-sensitive (RFC 9110 §9.1). */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].m;
    return API_M_OTHER;
}

#define M(x) (1u << (x))

static const struct {
    const char *path; /* exact; NULL for /blobs/{guid} */
    enum api_route_kind kind;
    unsigned methods;
    const char *allow;
} api_routes[] = {
    {NULL, API_R_BLOB,
     M(API_M_GET) | M(API_M_HEAD) | M(API_M_PUT) | M(API_M_DELETE),
     "GET, HEAD, PUT, DELETE"},
    {"/blobs", API_R_BLOBS, M(API_M_GET) | M(API_M_POST), "GET, POST"},
    {"/flush", API_R_FLUSH, M(API_M_POST), "POST"},
    {"/healthz", API_R_HEALTHZ, M(API_M_GET) | M(API_M_HEAD), "GET, HEAD"},
    {"/readyz", API_R_READYZ, M(API_M_GET) | M(API_M_HEAD), "GET, HEAD"},
    {"/admin/stats", API_R_ADMIN_STATS, M(API_M_GET), "GET"},
    {"/admin/compact", API_R_ADMIN_COMPACT, M(API_M_POST), "POST"},
    {"/admin/hold", API_R_ADMIN_HOLD, M(API_M_POST) | M(API_M_DELETE),
     "POST, DELETE"},
    {"/metrics", API_R_METRICS, M(API_M_GET), "GET"},
    {"/", API_R_STATUS, M(API_M_GET) | M(API_M_HEAD), "GET, HEAD"},
};

int api_route(enum api_method m, const char *path, struct api_route *r)
{
    static const char blob_prefix[] = "/blobs/";
    const size_t plen = sizeof(blob_prefix) - 1;
    size_t i, n = sizeof(api_routes) / sizeof(api_routes[0]);
    memset(r, 0, sizeof(*r));
    if (!path)
        return API_ERR_NO_ROUTE;
    if (strncmp(path, blob_prefix, plen) == 0) {
        i = 0;
    } else {
        for (i = 1; i < n; i++)
            if (strcmp(path, api_routes[i].path) == 0)
                break;
        if (i == n)
            return API_ERR_NO_ROUTE;
    }
    r->kind = api_routes[i].kind;
    r->allow = api_routes[i].allow;
    if (r->kind == API_R_BLOB &&
        api_guid_parse(path + plen, strlen(path + plen), r->guid) != 0)
        return API_ERR_BAD_GUID;
    if ((unsigned)m >= API_M_OTHER || !(api_routes[i].methods & M(m)))
        return API_ERR_METHOD_NOT_ALLOWED;
    return API_ERR_NONE;
}

#undef M

/* ---- what the HTTP library lets through ---- */

enum api_error api_check_target(const char *raw)
{
    size_t n = raw ? strlen(raw) : 0;
    int in_query = 0;
    if (n == 0)
        return API_ERR_BAD_URI;
    if (n > API_TARGET_MAX)
        return API_ERR_URI_TOO_LONG;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c <= 0x20 || c >= 0x7f)
            return API_ERR_BAD_URI;
        if (c == '?') {
            in_query = 1;
        } else if (c == '%') {
            if (!in_query)
                return API_ERR_BAD_URI;
            int hi = i + 2 < n ? hex_value(raw[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(raw[i + 2]) : -1;
            if (lo < 0)
                return API_ERR_BAD_URI;
            int v = hi * 16 + lo;
            if (v < 0x20 || v == 0x7f)
                return API_ERR_BAD_URI;
            i += 2;
        }
    }
    return API_ERR_NONE;
}

/* RFC 9110 §5.6.2 tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

void api_header_check_add(struct api_header_check *c, const char *name,
                          const char *value)
{
    size_t nl = name ? strlen(name) : 0;
    size_t vl = value ? strlen(value) : 0;
    c->fields++;
    c->bytes += nl + vl + 4; /* ": " and CRLF */
    if (nl == 0)
        c->bad_name = 1;
    for (size_t i = 0; i < nl; i++)
        if (!is_tchar((unsigned char)name[i]))
            c->bad_name = 1;
    if (strcasecmp(name ? name : "", "Content-Length") == 0) {
        c->content_length++;
    } else if (strcasecmp(name ? name : "", "Transfer-Encoding") == 0) {
        c->transfer_encoding++;
        /* Leading whitespace is trimmed by libmicrohttpd, trailing is
         * not; the library itself decodes only an exact "chunked", so
         * "chunked " must be refused too. */
        if (!value || strcasecmp(value, "chunked") != 0)
            c->te_not_chunked = 1;
    } else if (strcasecmp(name ? name : "", "Host") == 0) {
        c->host = 1;
    }
}

enum api_error api_header_verdict(const struct api_header_check *c, int http11)
{
    if (c->fields > API_HEADER_FIELDS_MAX || c->bytes > API_HEADER_BYTES_MAX)
        return API_ERR_HEADERS_TOO_LARGE;
    if (c->bad_name || (http11 && !c->host))
        return API_ERR_BAD_HEADER;
    if (c->transfer_encoding > 1 || c->te_not_chunked)
        return API_ERR_UNSUPPORTED_TE;
    if (c->content_length > 1 || (c->content_length && c->transfer_encoding))
        return API_ERR_BAD_FRAMING;
    return API_ERR_NONE;
}

/* ---- entity tags and preconditions (I2) ---- */

void api_etag(uint64_t version, char out[API_ETAG_MAX])
{
    /* At most 2 + 8 + 1 + 13 bytes and a NUL: never truncated. */
    store_etag(version, out, API_ETAG_MAX);
}

struct etag_token {
    int weak;
    const char *opaque; /* between the quotes */
    size_t len;
};

/* etagc = %x21 / %x23-7E / obs-text */
static int is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

/* One entity-tag = [ W/ ] DQUOTE *etagc DQUOTE at *pp; advances *pp. */
static int etag_scan(const char **pp, const char *end, struct etag_token *t)
{
    const char *p = *pp;
    t->weak = 0;
    if (end - p >= 2 && p[0] == 'W' && p[1] == '/') {
        t->weak = 1;
        p += 2;
    }
    if (p == end || *p != '"')
        return -1;
    t->opaque = ++p;
    while (p < end && *p != '"') {
        if (!is_etagc((unsigned char)*p))
            return -1;
        p++;
    }
    if (p == end)
        return -1;
    t->len = (size_t)(p - t->opaque);
    *pp = p + 1;
    return 0;
}

/* Is the opaque text "<gen>-<n>" exactly as api_etag writes it (A3)? */
static int etag_ours(const char *s, size_t len, uint64_t *version)
{
    const char *end = s + len, *p = s;
    uint64_t gen, n;
    char buf[API_ETAG_MAX];
    if (len + 2 >= sizeof(buf))
        return 0;
    if (parse_u64(&p, end, &gen) != 0 || p == end || *p != '-')
        return 0;
    p++;
    if (parse_u64_all(p, end, &n) != 0)
        return 0;
    if (gen < 1 || gen > VERSION_GEN_MAX || n > VERSION_N_MAX)
        return 0;
    uint64_t v = gen << 40 | n;
    api_etag(v, buf);
    if (strlen(buf) != len + 2 || memcmp(buf + 1, s, len) != 0)
        return 0;
    *version = v;
    return 1;
}

int api_etags_parse(const char *value, struct api_etags *out)
{
    memset(out, 0, sizeof(*out));
    if (!value)
        return 0;
    out->present = 1;
    const char *p = value, *end = value + strlen(value);
    trim_ows(&p, &end);
    if (end - p == 1 && *p == '*') {
        out->any = 1;
        return 0;
    }
    /* #entity-tag: elements separated by OWS "," OWS, empty ones skipped. */
    for (;;) {
        struct etag_token t;
        p = skip_ows(p, end);
        if (p == end)
            break;
        if (*p == ',') {
            p++;
            continue;
        }
        if (etag_scan(&p, end, &t) != 0 || out->n == API_ETAGS_MAX)
            return -1;
        out->v[out->n].weak = t.weak;
        out->v[out->n].ours =
            etag_ours(t.opaque, t.len, &out->v[out->n].version);
        out->n++;
        p = skip_ows(p, end);
        if (p < end && *p != ',')
            return -1;
    }
    return out->n > 0 ? 0 : -1;
}

int api_etags_match(const struct api_etags *e, uint64_t version, int strong)
{
    if (!e || !e->present)
        return 0;
    if (e->any)
        return 1;
    for (size_t i = 0; i < e->n; i++) {
        if (!e->v[i].ours || e->v[i].version != version)
            continue;
        if (strong && e->v[i].weak)
            continue;
        return 1;
    }
    return 0;
}

static int etags_present(const struct api_etags *e)
{
    return e && e->present;
}

enum api_cond api_cond_read(const struct api_etags *if_match,
                            const struct api_etags *if_none_match,
                            const struct api_cur *cur)
{
    int exists = cur && cur->exists;
    uint64_t version = exists ? cur->version : 0;
    if (etags_present(if_match) &&
        !(exists && api_etags_match(if_match, version, 1)))
        return API_COND_FAILED;
    if (etags_present(if_none_match) && exists &&
        api_etags_match(if_none_match, version, 0))
        return API_COND_NOT_MODIFIED;
    return API_COND_OK;
}

/*
 * The strong tags of ours in an If-Match list: 0 when there is none, 1
 * with *version when they all name one version, 2 when several.
 */
static int strong_ours(const struct api_etags *e, uint64_t *version)
{
    int found = 0;
    for (size_t i = 0; i < e->n; i++) {
        if (!e->v[i].ours || e->v[i].weak)
            continue;
        if (!found) {
            *version = e->v[i].version;
            found = 1;
        } else if (e->v[i].version != *version) {
            return 2;
        }
    }
    return found;
}

/* api_cond_write without a lookup: 0 (pre set), 1 or API_COND_FAILED. */
static int cond_write_static(const struct api_etags *im,
                             const struct api_etags *inm,
                             struct store_precond *pre)
{
    int has_im = etags_present(im), has_inm = etags_present(inm);
    uint64_t v = 0;
    int k = has_im && !im->any ? strong_ours(im, &v) : 0;
    if (!has_im && !has_inm) {
        pre->kind = STORE_PRE_NONE;
        return 0;
    }
    if (has_im && !im->any && k == 0)
        return API_COND_FAILED; /* matches no version, absent or not */
    if (has_im && has_inm)
        return 1;
    if (has_inm) {
        if (!inm->any)
            return 1;
        pre->kind = STORE_PRE_ABSENT;
        return 0;
    }
    if (im->any) {
        pre->kind = STORE_PRE_EXISTS;
        return 0;
    }
    if (k == 1) {
        pre->kind = STORE_PRE_VERSION;
        pre->version = v;
        return 0;
    }
    return 1;
}

int api_cond_write(const struct api_etags *if_match,
                   const struct api_etags *if_none_match,
                   const struct api_cur *cur, struct store_precond *pre)
{
    memset(pre, 0, sizeof(*pre));
    int rc = cond_write_static(if_match, if_none_match, pre);
    if (rc != 1 || !cur)
        return rc;
    if (api_cond_read(if_match, if_none_match, cur) != API_COND_OK)
        return API_COND_FAILED;
    if (cur->exists) {
        pre->kind = STORE_PRE_VERSION;
        pre->version = cur->version;
    } else {
        pre->kind = STORE_PRE_ABSENT;
    }
    return 0;
}

int api_if_range(const char *value, uint64_t version)
{
    struct etag_token t;
    uint64_t v = 0;
    if (!value)
        return 1;
    const char *p = value, *end = value + strlen(value);
    trim_ows(&p, &end);
    if (etag_scan(&p, end, &t) != 0 || p != end || t.weak)
        return 0;
    return etag_ours(t.opaque, t.len, &v) && v == version;
}

/* ---- Range (I3) ---- */

/*
 * One range-spec at *pp ("a-b", "a-" or "-n"), decided against len:
 * returns -1 (invalid: the header is ignored), 0 (unsatisfiable) or 1 with
 * *r inside the blob.
 */
static int range_spec(const char **pp, const char *end, uint64_t len,
                      struct api_range *r)
{
    const char *p = *pp;
    uint64_t a, b;
    if (*p == '-') { /* suffix-range */
        p++;
        if (parse_u64(&p, end, &a) != 0)
            return -1;
        *pp = p;
        if (a == 0 || len == 0)
            return 0;
        r->first = len - (a < len ? a : len);
        r->last = len - 1;
        return 1;
    }
    if (parse_u64(&p, end, &a) != 0 || p == end || *p != '-')
        return -1;
    p++;
    if (p < end && is_digit(*p)) {
        if (parse_u64(&p, end, &b) != 0 || b < a)
            return -1;
    } else {
        b = UINT64_MAX;
    }
    *pp = p;
    if (a >= len)
        return 0;
    r->first = a;
    r->last = b < len - 1 ? b : len - 1;
    return 1;
}

/* Several satisfiable ranges within the abuse limits? */
static int ranges_acceptable(const struct api_range *r, size_t n, uint64_t len)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++)
            if (r[i].first <= r[j].last && r[j].first <= r[i].last)
                return 0;
        uint64_t size = r[i].last - r[i].first + 1;
        if (size > len - total)
            return 0;
        total += size;
    }
    return 1;
}

void api_range_parse(const char *value, uint64_t len, struct api_ranges *out)
{
    struct api_range sat[API_RANGES_MAX];
    size_t nspec = 0, nsat = 0;
    memset(out, 0, sizeof(*out));
    out->kind = API_RANGE_NONE;
    if (!value)
        return;
    const char *p = value, *end = value + strlen(value);
    trim_ows(&p, &end);
    if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return;
    p += 6;
    for (;;) {
        struct api_range r;
        p = skip_ows(p, end);
        if (p == end)
            break;
        if (*p == ',') {
            p++;
            continue;
        }
        int rc = range_spec(&p, end, len, &r);
        if (rc < 0)
            return;
        p = skip_ows(p, end);
        if (p < end && *p != ',')
            return;
        if (++nspec > API_RANGES_MAX)
            return;
        if (rc > 0)
            sat[nsat++] = r;
    }
    if (nspec == 0)
        return;
    if (nsat == 0) {
        out->kind = API_RANGE_UNSATISFIABLE;
        return;
    }
    if (nsat > 1 && !ranges_acceptable(sat, nsat, len))
        return;
    out->kind = nsat == 1 ? API_RANGE_SINGLE : API_RANGE_MULTI;
    out->n = nsat;
    memcpy(out->r, sat, nsat * sizeof(sat[0]));
}

int api_content_range(char *buf, size_t cap, const struct api_range *r,
                      uint64_t len)
{
    if (!r)
        return snprintf(buf, cap, "bytes */%" PRIu64, len);
    return snprintf(buf, cap, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
                    r->first, r->last, len);
}

/* ---- multipart/byteranges ---- */

int api_boundary_new(char out[API_BOUNDARY_LEN + 1])
{
    uint8_t b[API_BOUNDARY_LEN / 2];
    int rc = fill_random(b, sizeof(b));
    if (rc != 0) {
        out[0] = '\0';
        return rc;
    }
    hex_encode(b, sizeof(b), out);
    return 0;
}

int api_multipart_type(char *buf, size_t cap, const char *boundary)
{
    return snprintf(buf, cap, "multipart/byteranges; boundary=%s", boundary);
}

static size_t snprintf_len(int n)
{
    return n < 0 ? 0 : (size_t)n;
}

size_t api_multipart_part_head(char *buf, size_t cap, const char *boundary,
                               size_t i, const struct api_range *r,
                               uint64_t len)
{
    return snprintf_len(snprintf(
        buf, cap,
        "%s--%s\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64 "\r\n\r\n",
        i > 0 ? "\r\n" : "", boundary, r->first, r->last, len));
}

size_t api_multipart_tail(char *buf, size_t cap, const char *boundary)
{
    return snprintf_len(snprintf(buf, cap, "\r\n--%s--\r\n", boundary));
}

/* ---- request bodies ---- */

enum api_body api_body_kind(const char *content_length,
                            const char *transfer_encoding, uint64_t *len)
{
    uint64_t v = 0;
    if (len)
        *len = 0;
    if (transfer_encoding) {
        const char *p = transfer_encoding, *end = p + strlen(p);
        trim_ows(&p, &end);
        if (end - p == 7 && strncasecmp(p, "chunked", 7) == 0)
            return API_BODY_CHUNKED;
        return API_BODY_LENGTH_REQUIRED; /* a coding we cannot decode */
    }
    if (!content_length)
        return API_BODY_LENGTH_REQUIRED;
    int rc = parse_u64_all(content_length,
                           content_length + strlen(content_length), &v);
    if (rc < 0)
        return API_BODY_BAD_LENGTH;
    if (len)
        *len = v;
    return rc == 0 && v <= API_MAX_BODY ? API_BODY_LENGTH : API_BODY_TOO_LARGE;
}

/* ---- query values ---- */

int api_parse_bool(const char *s, int *out)
{
    if (!s || strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = 1;
        return 0;
    }
    return -1;
}

int api_parse_limit(const char *s, size_t *out)
{
    uint64_t v;
    if (!s) {
        *out = API_LIST_DEFAULT;
        return 0;
    }
    if (parse_u64_all(s, s + strlen(s), &v) != 0 || v == 0)
        return -1;
    *out = v > API_LIST_MAX ? API_LIST_MAX : (size_t)v;
    return 0;
}

/* ---- store results to HTTP ---- */

static int outcome_error(enum api_error e, enum api_error *err)
{
    if (err)
        *err = e;
    return api_error_status(e);
}

int api_outcome_status(enum store_outcome o, int rc, enum api_error *err)
{
    switch (o) {
    case STORE_OUT_NONE:
        return rc == 0 ? 200 : outcome_error(api_store_error(rc), err);
    case STORE_OUT_CREATED:
        return 201;
    case STORE_OUT_REPLACED:
    case STORE_OUT_DELETED:
        return 204;
    case STORE_OUT_NOT_FOUND:
        return outcome_error(API_ERR_NOT_FOUND, err);
    case STORE_OUT_PRECONDITION_FAILED:
        return outcome_error(API_ERR_PRECONDITION_FAILED, err);
    case STORE_OUT_NO_SPACE:
        return outcome_error(API_ERR_NO_SPACE, err);
    case STORE_OUT_OVERLOADED:
        return outcome_error(API_ERR_OVERLOADED, err);
    case STORE_OUT_STORE_FAILED:
        switch (rc) {
        case STORE_E_READONLY:
            return outcome_error(API_ERR_READ_ONLY, err);
        case STORE_E_STOPPED:
            return outcome_error(API_ERR_DRAINING, err);
        case STORE_E_TOO_LARGE:
            return outcome_error(API_ERR_TOO_LARGE, err);
        case STORE_E_INVALID:
            return outcome_error(API_ERR_INTERNAL, err);
        default:
            return outcome_error(API_ERR_STORE_FAILED, err);
        }
    }
    return outcome_error(API_ERR_INTERNAL, err);
}

enum api_error api_store_error(int rc)
{
    switch (rc) {
    case STORE_E_NOT_FOUND:
        return API_ERR_NOT_FOUND;
    case STORE_E_CHECKSUM:
        return API_ERR_CORRUPT_DATA;
    case STORE_E_NOSPACE:
    case -ENOSPC:
    case -EDQUOT:
        return API_ERR_NO_SPACE;
    case STORE_E_FAILED:
        return API_ERR_STORE_FAILED;
    case STORE_E_READONLY:
        return API_ERR_READ_ONLY;
    case STORE_E_OVERLOADED:
        return API_ERR_OVERLOADED;
    case STORE_E_STOPPED:
        return API_ERR_DRAINING;
    case STORE_E_PRECONDITION:
        return API_ERR_PRECONDITION_FAILED;
    case STORE_E_TOO_LARGE:
        return API_ERR_TOO_LARGE;
    case -ENOMEM:
        return API_ERR_INTERNAL;
    default:
        break;
    }
    if (rc < 0 && rc > -4096)
        return API_ERR_IO_ERROR;
    return API_ERR_INTERNAL;
}

/* ---- JSON documents (A4) ---- */

/* Add guid, size and etag of a blob to obj; 0 or -1 (ENOMEM). */
static int json_blob_fields(cJSON *obj, const uint8_t guid[API_GUID_SIZE],
                            uint32_t size, uint64_t version)
{
    char g[API_GUID_STRLEN + 1], etag[API_ETAG_MAX];
    api_guid_format(guid, g);
    api_etag(version, etag);
    if (!cJSON_AddStringToObject(obj, "guid", g) ||
        !cJSON_AddNumberToObject(obj, "size", (double)size) ||
        !cJSON_AddStringToObject(obj, "etag", etag))
        return -1;
    return 0;
}

char *api_json_list(const struct store_blob_info *v, size_t n, int more)
{
    cJSON *doc = cJSON_CreateObject(), *arr;
    if (!doc || !(arr = cJSON_AddArrayToObject(doc, "blobs")))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            goto fail;
        cJSON_AddItemToArray(arr, o); /* arr owns o from here */
        if (json_blob_fields(o, v[i].guid, v[i].len, v[i].version) != 0)
            goto fail;
    }
    if (more && n > 0) {
        char g[API_GUID_STRLEN + 1];
        api_guid_format(v[n - 1].guid, g);
        if (!cJSON_AddStringToObject(doc, "next", g))
            goto fail;
    }
    return json_finish(doc);
fail:
    cJSON_Delete(doc);
    return NULL;
}

char *api_json_created(const uint8_t guid[API_GUID_SIZE], uint32_t size,
                       uint64_t version, int durable)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc || json_blob_fields(doc, guid, size, version) != 0 ||
        !cJSON_AddBoolToObject(doc, "durable", durable ? 1 : 0))
        goto fail;
    return json_finish(doc);
fail:
    cJSON_Delete(doc);
    return NULL;
}

char *api_json_flush(const struct store_flush_result *r)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc || !cJSON_AddNumberToObject(doc, "records", (double)r->records) ||
        !cJSON_AddNumberToObject(doc, "log_bytes", (double)r->log_bytes) ||
        !cJSON_AddNumberToObject(doc, "data_synced", (double)r->data_synced) ||
        !cJSON_AddNumberToObject(doc, "duration_seconds",
                                 (double)r->duration_ns / 1e9) ||
        !cJSON_AddBoolToObject(doc, "compaction_started",
                               r->compaction_started ? 1 : 0))
        goto fail;
    return json_finish(doc);
fail:
    cJSON_Delete(doc);
    return NULL;
}
