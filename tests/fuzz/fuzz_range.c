/*
 * fuzz_range.c - libFuzzer target: the Range header (api_range_parse) and
 * If-Range (api_if_range) of api/api.c, with Content-Range and the
 * multipart part heads built from what was parsed.
 *
 * Input: bytes 0-7 the blob length and bytes 8-15 the blob version (both
 * u64 little-endian), then the Range value, and after the first newline
 * the If-Range value (absent without a newline).
 *
 * Invariants:
 *  R1. The result agrees with an independent reading of api.h's rules
 *      (ref_range below): same kind, same ranges in the same order.
 *  R2. Every range lies within the blob (first <= last < len); MULTI has
 *      2..API_RANGES_MAX ranges that do not overlap and add up to at most
 *      len; NONE and UNSATISFIABLE carry none.
 *  R3. Written back as "bytes=a-b,..." the ranges parse to themselves.
 *  R4. Content-Range and a part head fit their documented buffers.
 *  R5. api_if_range accepts exactly the strong ETag of the version (OWS
 *      around it allowed): accepted means the trimmed value is that ETag;
 *      that ETag is always accepted for a version of generation >= 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "fuzz.h"

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int ows(char c)
{
    return c == ' ' || c == '\t';
}

static void trim(const char **p, const char **end)
{
    while (*p < *end && ows(**p))
        (*p)++;
    while (*end > *p && ows((*end)[-1]))
        (*end)--;
}

/* 1*DIGIT spanning exactly [p, end): 0, -1 (not that) or 1 (overflow). */
static int ref_number(const char *p, const char *end, uint64_t *v)
{
    *v = 0;
    if (p == end)
        return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        unsigned d = (unsigned)(*p - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return 1; /* overflow; the rest need not be digits to fail */
        *v = *v * 10 + d;
    }
    return 0;
}

/* api.h's Range rules, read independently: split the list at commas, one
 * element at a time. */
static void ref_range(const char *value, uint64_t len, struct api_ranges *out)
{
    struct api_range sat[API_RANGES_MAX];
    size_t nspec = 0, nsat = 0;
    memset(out, 0, sizeof(*out));
    const char *p = value, *end = value + strlen(value);
    trim(&p, &end);
    if (end - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return;
    p += 6;
    while (p <= end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (!e)
            e = end;
        const char *a = p, *b = e;
        p = e + 1;
        trim(&a, &b);
        if (a == b)
            continue; /* an empty element */
        const char *dash = memchr(a, '-', (size_t)(b - a));
        if (!dash)
            return;
        uint64_t x, y;
        struct api_range r;
        int satisfiable;
        if (dash == a) { /* -n */
            if (ref_number(a + 1, b, &x) != 0)
                return;
            satisfiable = x > 0 && len > 0;
            if (satisfiable) {
                r.first = len - (x < len ? x : len);
                r.last = len - 1;
            }
        } else {
            if (ref_number(a, dash, &x) != 0)
                return;
            if (dash + 1 == b) {
                y = UINT64_MAX;
            } else if (ref_number(dash + 1, b, &y) != 0 || y < x) {
                return;
            }
            satisfiable = x < len;
            if (satisfiable) {
                r.first = x;
                r.last = y < len - 1 ? y : len - 1;
            }
        }
        if (++nspec > API_RANGES_MAX)
            return;
        if (satisfiable)
            sat[nsat++] = r;
    }
    if (nspec == 0)
        return;
    if (nsat == 0) {
        out->kind = API_RANGE_UNSATISFIABLE;
        return;
    }
    if (nsat > 1) {
        uint64_t total = 0;
        for (size_t i = 0; i < nsat; i++) {
            for (size_t j = 0; j < nsat; j++)
                if (i != j && sat[i].first <= sat[j].last &&
                    sat[j].first <= sat[i].last)
                    return; /* overlap */
            uint64_t size = sat[i].last - sat[i].first + 1;
            if (size > len - total)
                return; /* more than the blob in all */
            total += size;
        }
    }
    out->kind = nsat == 1 ? API_RANGE_SINGLE : API_RANGE_MULTI;
    out->n = nsat;
    memcpy(out->r, sat, nsat * sizeof(sat[0]));
}

static void same_ranges(const struct api_ranges *a, const struct api_ranges *b,
                        const char *what, const char *value, uint64_t len)
{
    FUZZ_CHECK(a->kind == b->kind && a->n == b->n,
               "%s: kind %d n %zu vs kind %d n %zu for \"%s\" (len %" PRIu64
               ")",
               what, (int)a->kind, a->n, (int)b->kind, b->n, value, len);
    for (size_t i = 0; i < a->n; i++)
        FUZZ_CHECK(a->r[i].first == b->r[i].first &&
                       a->r[i].last == b->r[i].last,
                   "%s: range %zu differs for \"%s\" (len %" PRIu64 ")", what,
                   i, value, len);
}

static void check_ranges(const struct api_ranges *rs, const char *value,
                         uint64_t len)
{
    uint64_t total = 0;
    switch (rs->kind) {
    case API_RANGE_NONE:
    case API_RANGE_UNSATISFIABLE:
        FUZZ_CHECK(rs->n == 0, "kind %d with %zu ranges", (int)rs->kind, rs->n);
        return;
    case API_RANGE_SINGLE:
        FUZZ_CHECK(rs->n == 1, "SINGLE with %zu ranges", rs->n);
        break;
    case API_RANGE_MULTI:
        FUZZ_CHECK(rs->n >= 2 && rs->n <= API_RANGES_MAX,
                   "MULTI with %zu ranges", rs->n);
        break;
    default:
        FUZZ_CHECK(0, "unknown range kind %d", (int)rs->kind);
    }
    for (size_t i = 0; i < rs->n; i++) {
        const struct api_range *r = &rs->r[i];
        FUZZ_CHECK(r->first <= r->last && r->last < len,
                   "range %" PRIu64 "-%" PRIu64 " outside a blob of %" PRIu64
                   " (\"%s\")",
                   r->first, r->last, len, value);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(rs->r[j].last < r->first || r->last < rs->r[j].first,
                       "ranges %zu and %zu overlap (\"%s\")", j, i, value);
        total += r->last - r->first + 1;
        FUZZ_CHECK(rs->kind == API_RANGE_SINGLE || total <= len,
                   "ranges add up past the blob (\"%s\")", value);
    }
}

/* R3: "bytes=a-b,c-d" of what was parsed parses to the same. */
static void check_rewrite(const struct api_ranges *rs, uint64_t len)
{
    char buf[16 + API_RANGES_MAX * 44];
    size_t o = (size_t)snprintf(buf, sizeof(buf), "bytes=");
    struct api_ranges again;
    for (size_t i = 0; i < rs->n; i++)
        o +=
            (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%" PRIu64 "-%" PRIu64,
                             i ? "," : "", rs->r[i].first, rs->r[i].last);
    api_range_parse(buf, len, &again);
    same_ranges(&again, rs, "written back", buf, len);
}

/* R4 */
static void check_heads(const struct api_ranges *rs, uint64_t len)
{
    static const char boundary[] = "0123456789abcdef0123456789abcdef";
    char buf[API_PART_HEAD_MAX];
    int n = api_content_range(buf, sizeof(buf), NULL, len);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(buf), "Content-Range */len: %d", n);
    for (size_t i = 0; i < rs->n; i++) {
        n = api_content_range(buf, sizeof(buf), &rs->r[i], len);
        FUZZ_CHECK(n > 0 && (size_t)n < sizeof(buf), "Content-Range: %d", n);
        size_t h = api_multipart_part_head(buf, sizeof(buf), boundary, i,
                                           &rs->r[i], len);
        FUZZ_CHECK(h > 0 && h < sizeof(buf), "part head %zu bytes", h);
        FUZZ_CHECK(strlen(buf) == h, "part head length %zu vs %zu", h,
                   strlen(buf));
    }
    size_t t = api_multipart_tail(buf, sizeof(buf), boundary);
    FUZZ_CHECK(t > 0 && t < sizeof(buf), "tail %zu bytes", t);
}

/* R5 */
static void check_if_range(const char *value, uint64_t version)
{
    char etag[API_ETAG_MAX], buf[API_ETAG_MAX + 8];
    api_etag(version, etag);
    FUZZ_CHECK(api_if_range(NULL, version) == 1, "absent If-Range refused");
    if (value && api_if_range(value, version)) {
        const char *p = value, *end = value + strlen(value);
        trim(&p, &end);
        FUZZ_CHECK((size_t)(end - p) == strlen(etag) &&
                       memcmp(p, etag, strlen(etag)) == 0,
                   "If-Range \"%s\" accepted for version %s", value, etag);
    }
    int ours = store_version_generation(version) >= 1;
    snprintf(buf, sizeof(buf), " \t%s ", etag);
    FUZZ_CHECK(api_if_range(buf, version) == ours,
               "If-Range of the version's own ETag %s: %d", etag,
               api_if_range(buf, version));
    snprintf(buf, sizeof(buf), "W/%s", etag);
    FUZZ_CHECK(api_if_range(buf, version) == 0, "weak If-Range %s accepted",
               buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16)
        return 0;
    uint64_t len = get64(data), version = get64(data + 8);
    char *text = fuzz_strndup(data + 16, size - 16);
    if (!text)
        return 0;
    char *if_range = strchr(text, '\n');
    if (if_range)
        *if_range++ = '\0';
    struct api_ranges rs, ref;
    api_range_parse(NULL, len, &rs);
    FUZZ_CHECK(rs.kind == API_RANGE_NONE && rs.n == 0, "absent Range: %d",
               (int)rs.kind);
    api_range_parse(text, len, &rs);
    check_ranges(&rs, text, len);
    ref_range(text, len, &ref);
    same_ranges(&rs, &ref, "api vs reference", text, len);
    if (rs.n > 0)
        check_rewrite(&rs, len);
    check_heads(&rs, len);
    check_if_range(if_range, version);
    free(text);
    return 0;
}
