/*
 * api_auth.c - who may do what, and what the body must hash to: the role
 * each route needs (SPEC §4), the bearer token of an Authorization header,
 * the constant-time token comparison, and the upload digests Content-MD5
 * (RFC 1864) and Content-Digest (RFC 9530, an RFC 8941 dictionary) checked
 * with nettle.  api.h is the manual.
 *
 * Owns nothing: no state, no locks, no syscalls; every function is
 * reentrant.
 *
 * Invariants:
 *  U1. Every parser works on an explicit [p, end) span and accepts exactly
 *      its grammar (as api.c's A1): a header is taken whole or refused.
 *  U2. api_token_equal reads a[0..alen) and b[0..blen) only, touches
 *      max(alen, blen) positions whatever the bytes are, and has no branch
 *      that depends on the bytes' values (only on the lengths).
 *  U3. A digest is decoded only after its text was checked to be base64 of
 *      exactly the digest's length, so nettle never writes past the fixed
 *      buffers here and nettle's leniency (it skips white space) never
 *      decides what is accepted.
 *  U4. A method that is not allowed on a resource needs a role too, so
 *      a caller without one learns nothing more than 401/403 (the
 *      resource exists anyway: routes are public): on the blob resources
 *      what the method needs elsewhere (PUT, POST, DELETE write; any
 *      other read), on the others the resource's own role.  An unknown
 *      resource needs no role: it is 404 whoever asks.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <nettle/base64.h>
#include <nettle/md5.h>
#include <nettle/sha2.h>

#include "api.h"

/* ---- roles (U4) ---- */

enum api_role api_route_role(enum api_route_kind kind, enum api_method m)
{
    switch (kind) {
    case API_R_NONE:
    case API_R_HEALTHZ:
    case API_R_READYZ:
    case API_R_STATUS: /* the HTML only: it asks for a token to poll stats */
        return API_ROLE_NONE;
    case API_R_BLOB:
    case API_R_BLOBS:
        /* GET/HEAD read; PUT, POST, DELETE write; others as the least. */
        if (m == API_M_PUT || m == API_M_POST || m == API_M_DELETE)
            return API_ROLE_WRITE;
        return API_ROLE_READ;
    case API_R_FLUSH:
        return API_ROLE_WRITE;
    case API_R_ADMIN_STATS:
    case API_R_METRICS:
        return API_ROLE_READ;
    case API_R_ADMIN_COMPACT:
    case API_R_ADMIN_HOLD:
        return API_ROLE_ADMIN;
    }
    return API_ROLE_ADMIN; /* not a kind of ours: the strictest */
}

/* ---- bearer tokens ---- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int is_token68_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' ||
           c == '~' || c == '+' || c == '/';
}

int api_bearer(const char *value, const char **tok, size_t *len)
{
    static const char scheme[] = "Bearer";
    const size_t slen = sizeof(scheme) - 1;
    if (!value)
        return -1;
    const char *p = value, *end = value + strlen(value);
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    /* credentials = auth-scheme 1*SP token68 (RFC 9110 §11.4) */
    if ((size_t)(end - p) < slen || strncasecmp(p, scheme, slen) != 0)
        return -1;
    p += slen;
    if (p == end || *p != ' ')
        return -1;
    while (p < end && *p == ' ')
        p++;
    const char *start = p;
    while (p < end && is_token68_char(*p))
        p++;
    if (p == start)
        return -1;
    while (p < end && *p == '=')
        p++;
    if (p != end)
        return -1;
    *tok = start;
    *len = (size_t)(end - start);
    return 0;
}

/* ---- constant-time comparison (U2) ---- */

int api_token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    static const unsigned char zero = 0;
    const unsigned char *pa = alen ? (const unsigned char *)a : &zero;
    const unsigned char *pb = blen ? (const unsigned char *)b : &zero;
    size_t n = alen > blen ? alen : blen;
    /* The length-difference bit: the loop alone would call "ab" and
     * "ab\0" equal. */
    unsigned diff = (unsigned)((alen ^ blen) != 0);
    for (size_t i = 0; i < n; i++) {
        /* All ones while i is inside the string, else zero: past its end
         * read its first byte (in bounds) and mask it off. */
        size_t ma = (size_t)0 - (size_t)(i < alen);
        size_t mb = (size_t)0 - (size_t)(i < blen);
        unsigned x = pa[i & ma] & (unsigned)(ma & 0xff);
        unsigned y = pb[i & mb] & (unsigned)(mb & 0xff);
        diff |= x ^ y;
    }
    return diff == 0;
}

/* ---- upload digests (U1, U3) ---- */

#define MD5_B64_LEN 24    /* 16 bytes: 22 characters and "==" */
#define SHA256_B64_LEN 44 /* 32 bytes: 43 characters and "=" */

static int is_b64_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '+' || c == '/';
}

/*
 * Decode [p, end) into out[0..want): standard alphabet, "=" padding only at
 * the end.  pad_optional: padding may be left out (RFC 8941 §4.2.7 asks
 * Structured Field parsers not to insist on it).  Non-zero pad bits are
 * refused (nettle does).  0 or -1.
 */
static int b64_decode(const char *p, const char *end, int pad_optional,
                      uint8_t *out, size_t want)
{
    char text[SHA256_B64_LEN];
    uint8_t buf[BASE64_DECODE_LENGTH(sizeof(text))];
    size_t enc = 4 * ((want + 2) / 3); /* padded length for want bytes */
    size_t n = (size_t)(end - p), data = 0, got = 0;
    struct base64_decode_ctx ctx;
    if (enc > sizeof(text) || n > enc)
        return -1;
    while (data < n && is_b64_char(p[data]))
        data++;
    for (size_t i = data; i < n; i++)
        if (p[i] != '=')
            return -1;
    if (n - data > 2 || (n != enc && !(pad_optional && n == data)))
        return -1;
    /* Without padding the data characters alone must fill enc - pad. */
    memcpy(text, p, n);
    for (; n < enc; n++)
        text[n] = '=';
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &got, buf, enc, text) ||
        !base64_decode_final(&ctx) || got != want)
        return -1;
    memcpy(out, buf, want);
    return 0;
}

/* Content-MD5: OWS, base64 of 16 bytes with padding, OWS. */
static int parse_md5(const char *value, struct api_digests *d)
{
    const char *p = value, *end = value + strlen(value);
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    if (b64_decode(p, end, 0, d->md5, sizeof(d->md5)) != 0)
        return -1;
    d->has_md5 = 1;
    return 0;
}

/* RFC 8941 key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." /
 * "*" ) */
static int scan_key(const char **pp, const char *end)
{
    const char *p = *pp;
    if (p == end || !((*p >= 'a' && *p <= 'z') || *p == '*'))
        return -1;
    for (p++; p < end; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-' ||
              c == '.' || c == '*'))
            break;
    }
    *pp = p;
    return 0;
}

/* One member "key=:base64:" at *pp; sha-256 is decoded into d (the last
 * one wins, as RFC 8941 says of duplicate keys), others only checked to
 * be sf-binary. */
static int parse_digest_member(const char **pp, const char *end,
                               struct api_digests *d)
{
    const char *p = *pp, *key = p;
    if (scan_key(&p, end) != 0)
        return -1;
    size_t klen = (size_t)(p - key);
    if (end - p < 2 || p[0] != '=' || p[1] != ':')
        return -1;
    p += 2;
    const char *b64 = p;
    while (p < end && (is_b64_char(*p) || *p == '='))
        p++;
    if (p == end || *p != ':')
        return -1;
    if (klen == 7 && memcmp(key, "sha-256", 7) == 0) {
        if (b64_decode(b64, p, 1, d->sha256, sizeof(d->sha256)) != 0)
            return -1;
        d->has_sha256 = 1;
    }
    *pp = p + 1;
    return 0;
}

/* Content-Digest: an RFC 8941 dictionary (§4.2.2) of byte sequences;
 * members separated by OWS "," OWS, no trailing comma.  An empty value is
 * an empty dictionary. */
static int parse_content_digest(const char *value, struct api_digests *d)
{
    const char *p = value, *end = value + strlen(value);
    while (p < end && is_ows(*p))
        p++;
    while (end > p && is_ows(end[-1]))
        end--;
    while (p < end) {
        if (parse_digest_member(&p, end, d) != 0)
            return -1;
        while (p < end && is_ows(*p))
            p++;
        if (p == end)
            break;
        if (*p != ',')
            return -1;
        p++;
        while (p < end && is_ows(*p))
            p++;
        if (p == end)
            return -1; /* a trailing comma */
    }
    return 0;
}

int api_digests_parse(const char *content_md5, const char *content_digest,
                      struct api_digests *d)
{
    memset(d, 0, sizeof(*d));
    if (content_md5 && parse_md5(content_md5, d) != 0)
        goto fail;
    if (content_digest && parse_content_digest(content_digest, d) != 0)
        goto fail;
    return 0;
fail:
    memset(d, 0, sizeof(*d));
    return -1;
}

int api_digests_check(const struct api_digests *d, const void *data, size_t len)
{
    int ok = 1;
    if (d->has_md5) {
        struct md5_ctx c;
        uint8_t h[MD5_DIGEST_SIZE];
        md5_init(&c);
        md5_update(&c, len, data);
        md5_digest(&c, sizeof(h), h);
        ok &= memcmp(h, d->md5, sizeof(h)) == 0;
    }
    if (d->has_sha256) {
        struct sha256_ctx c;
        uint8_t h[SHA256_DIGEST_SIZE];
        sha256_init(&c);
        sha256_update(&c, len, data);
        sha256_digest(&c, sizeof(h), h);
        ok &= memcmp(h, d->sha256, sizeof(h)) == 0;
    }
    return ok ? 0 : -1;
}
