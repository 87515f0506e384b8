/*
 * fuzz_guid_url.c - libFuzzer target: GUIDs (api_guid_parse/format), the
 * raw request target (api_check_target), routing (api_route and the role
 * a route needs, for every method) and query values (api_parse_bool,
 * api_parse_limit, a GUID in "after").
 *
 * Input: any bytes.  They are parsed as a GUID with their exact length,
 * and as a NUL-terminated string (cut at the first NUL): a raw target,
 * whose path is routed and whose query values are decoded and parsed;
 * the whole string also goes to the query value parsers and to
 * api_method_parse.
 *
 * Invariants:
 *  G1. A GUID parses exactly when it is 32 hex digits or the dashed
 *      8-4-4-4-12 form (I1); formatted it is the input's digits in lower
 *      case, and both the canonical and the dashed form parse back to the
 *      same bytes.
 *  G2. api_check_target agrees with api.h's rules read independently.
 *  G3. A route: an accepted method is listed in Allow and the resource
 *      is a known kind named by its exact path (a blob: "/blobs/" and a
 *      GUID, which r->guid holds); NO_ROUTE leaves kind NONE and no Allow;
 *      BAD_GUID is "/blobs/" and no GUID; a refused method is not listed.
 *  G4. Roles: an unknown resource needs none; a method that is not
 *      allowed needs a role between the least and the most its allowed
 *      methods need.  (api_auth.c U4 says "the least", but api_route_role
 *      and test_api_obs give POST /blobs/{guid} and PUT, DELETE /blobs the
 *      write role: the weaker form is what code and tests agree on.)
 *  G5. Query values parse exactly as api.h says.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fuzz.h"

static const char *const method_names[] = {"GET", "HEAD", "PUT", "POST",
                                           "DELETE"};

static const struct {
    const char *path;
    enum api_route_kind kind;
} fixed_routes[] = {
    {"/blobs", API_R_BLOBS},
    {"/flush", API_R_FLUSH},
    {"/healthz", API_R_HEALTHZ},
    {"/readyz", API_R_READYZ},
    {"/admin/stats", API_R_ADMIN_STATS},
    {"/admin/compact", API_R_ADMIN_COMPACT},
    {"/admin/hold", API_R_ADMIN_HOLD},
    {"/metrics", API_R_METRICS},
    {"/", API_R_STATUS},
};

static int hexv(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* G1's reference: the shape of a GUID. */
static int ref_guid_ok(const char *s, size_t len)
{
    if (len != 32 && len != 36)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int dash = len == 36 && (i == 8 || i == 13 || i == 18 || i == 23);
        if (dash ? s[i] != '-' : hexv((unsigned char)s[i]) < 0)
            return 0;
    }
    return 1;
}

static void check_guid(const char *s, size_t len)
{
    uint8_t g[API_GUID_SIZE], again[API_GUID_SIZE];
    char canon[API_GUID_STRLEN + 1], dashed[40], digits[API_GUID_STRLEN + 1];
    int rc = api_guid_parse(s, len, g);
    FUZZ_CHECK(rc == 0 || rc == -1, "api_guid_parse returned %d", rc);
    FUZZ_CHECK((rc == 0) == ref_guid_ok(s, len),
               "api_guid_parse %s a %zu-byte value the rules %s",
               rc ? "refused" : "accepted", len, rc ? "accept" : "refuse");
    if (rc != 0)
        return;
    api_guid_format(g, canon);
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] != '-')
            digits[k++] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] + 32 : s[i]);
    digits[k] = '\0';
    FUZZ_CHECK(strlen(canon) == API_GUID_STRLEN && strcmp(canon, digits) == 0,
               "canonical form %s of %s", canon, digits);
    FUZZ_CHECK(api_guid_parse(canon, strlen(canon), again) == 0 &&
                   memcmp(g, again, sizeof(g)) == 0,
               "the canonical form %s does not parse back", canon);
    snprintf(dashed, sizeof(dashed), "%.8s-%.4s-%.4s-%.4s-%.12s", canon,
             canon + 8, canon + 12, canon + 16, canon + 20);
    FUZZ_CHECK(api_guid_parse(dashed, strlen(dashed), again) == 0 &&
                   memcmp(g, again, sizeof(g)) == 0,
               "the dashed form %s does not parse back", dashed);
}

/* G2's reference. */
static enum api_error ref_target(const char *raw)
{
    size_t n = strlen(raw);
    int in_query = 0;
    if (n == 0)
        return API_ERR_BAD_URI;
    if (n > API_TARGET_MAX)
        return API_ERR_URI_TOO_LONG;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c < 0x21 || c > 0x7e)
            return API_ERR_BAD_URI;
        if (c == '?')
            in_query = 1;
        if (c != '%')
            continue;
        if (!in_query || i + 2 >= n)
            return API_ERR_BAD_URI;
        int hi = hexv((unsigned char)raw[i + 1]);
        int lo = hexv((unsigned char)raw[i + 2]);
        if (hi < 0 || lo < 0 || hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f)
            return API_ERR_BAD_URI;
        i += 2;
    }
    return API_ERR_NONE;
}

static int allow_lists(const char *allow, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* The least and the most role the allowed methods of a resource need. */
static void role_bounds(enum api_route_kind kind, const char *allow,
                        enum api_role *least, enum api_role *most)
{
    *least = API_ROLE_ADMIN;
    *most = API_ROLE_NONE;
    for (int m = API_M_GET; m < API_M_OTHER; m++)
        if (allow_lists(allow, method_names[m])) {
            enum api_role r = api_route_role(kind, (enum api_method)m);
            if (r < *least)
                *least = r;
            if (r > *most)
                *most = r;
        }
}

static void check_route(const char *path)
{
    static const char prefix[] = "/blobs/";
    size_t plen = sizeof(prefix) - 1;
    int is_blob = strncmp(path, prefix, plen) == 0;
    enum api_route_kind fixed = API_R_NONE;
    for (size_t i = 0; i < sizeof(fixed_routes) / sizeof(fixed_routes[0]); i++)
        if (strcmp(path, fixed_routes[i].path) == 0)
            fixed = fixed_routes[i].kind;
    for (int m = API_M_GET; m <= API_M_OTHER; m++) {
        struct api_route r;
        int rc = api_route((enum api_method)m, path, &r);
        enum api_role role = api_route_role(r.kind, (enum api_method)m);
        FUZZ_CHECK(role >= API_ROLE_NONE && role <= API_ROLE_ADMIN, "role %d",
                   (int)role);
        if (rc == API_ERR_NO_ROUTE) {
            FUZZ_CHECK(!is_blob && fixed == API_R_NONE,
                       "no route for a known path");
            FUZZ_CHECK(r.kind == API_R_NONE && r.allow == NULL,
                       "NO_ROUTE with kind %d", (int)r.kind);
            FUZZ_CHECK(role == API_ROLE_NONE, "an unknown path needs role %d",
                       (int)role);
            continue;
        }
        FUZZ_CHECK(r.kind != API_R_NONE && r.kind <= API_R_STATUS &&
                       r.allow != NULL,
                   "route %d: kind %d", rc, (int)r.kind);
        FUZZ_CHECK(is_blob ? r.kind == API_R_BLOB : r.kind == fixed,
                   "path routed to kind %d", (int)r.kind);
        if (rc == API_ERR_BAD_GUID) {
            FUZZ_CHECK(is_blob &&
                           !ref_guid_ok(path + plen, strlen(path + plen)),
                       "BAD_GUID for a good blob path");
            continue;
        }
        if (is_blob) {
            uint8_t g[API_GUID_SIZE];
            FUZZ_CHECK(api_guid_parse(path + plen, strlen(path + plen), g) ==
                               0 &&
                           memcmp(g, r.guid, sizeof(g)) == 0,
                       "a blob route with another GUID");
        }
        int listed = m < API_M_OTHER && allow_lists(r.allow, method_names[m]);
        if (rc == API_ERR_NONE) {
            FUZZ_CHECK(listed, "method %d allowed but not in \"%s\"", m,
                       r.allow);
        } else {
            FUZZ_CHECK(rc == API_ERR_METHOD_NOT_ALLOWED,
                       "api_route returned %d", rc);
            FUZZ_CHECK(!listed, "method %d refused but listed in \"%s\"", m,
                       r.allow);
            /* G4 */
            enum api_role least, most;
            role_bounds(r.kind, r.allow, &least, &most);
            FUZZ_CHECK(role >= least && role <= most,
                       "method %d not allowed on kind %d needs role %d, "
                       "outside %d..%d of \"%s\"",
                       m, (int)r.kind, (int)role, (int)least, (int)most,
                       r.allow);
        }
    }
}

/* G5 */
static void check_query_value(const char *v)
{
    int b = -1;
    size_t limit = 0;
    int rc = api_parse_bool(v, &b);
    int t = strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
    int f = strcmp(v, "false") == 0 || strcmp(v, "0") == 0;
    FUZZ_CHECK(rc == ((t || f) ? 0 : -1), "api_parse_bool(\"%s\") = %d", v, rc);
    if (rc == 0)
        FUZZ_CHECK(b == t, "api_parse_bool(\"%s\") gave %d", v, b);
    /* limit: 1*DIGIT, not 0, no overflow; clamped. */
    uint64_t x = 0;
    int ok = *v != '\0';
    for (const char *p = v; *p && ok; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (*p < '0' || *p > '9' || x > (UINT64_MAX - d) / 10)
            ok = 0;
        else
            x = x * 10 + d;
    }
    ok = ok && x > 0;
    rc = api_parse_limit(v, &limit);
    FUZZ_CHECK(rc == (ok ? 0 : -1), "api_parse_limit(\"%s\") = %d", v, rc);
    if (ok)
        FUZZ_CHECK(limit == (x > API_LIST_MAX ? API_LIST_MAX : x),
                   "api_parse_limit(\"%s\") gave %zu", v, limit);
    check_guid(v, strlen(v));
}

/* Decode a query value as the HTTP library would (%XX, "+" as space). */
static void decode_query(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = hexv((unsigned char)p[1])) >= 0 &&
            (lo = hexv((unsigned char)p[2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *o++ = *p == '+' ? ' ' : *p;
        }
    }
    *o = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_guid((const char *)data, size);
    char *s = fuzz_strndup(data, size);
    if (!s)
        return 0;
    enum api_method m = api_method_parse(s);
    FUZZ_CHECK(m == API_M_OTHER || strcmp(s, method_names[m]) == 0,
               "method \"%s\" parsed as %d", s, (int)m);
    check_query_value(s);
    enum api_error te = api_check_target(s);
    FUZZ_CHECK(te == ref_target(s), "api_check_target: %d, the rules: %d",
               (int)te, (int)ref_target(s));
    char *q = strchr(s, '?');
    if (q)
        *q++ = '\0';
    check_route(s);
    /* The query only of an accepted target: the server stops before. */
    for (char *kv = te == API_ERR_NONE ? q : NULL; kv && *kv;) {
        char *amp = strchr(kv, '&');
        if (amp)
            *amp = '\0';
        char *eq = strchr(kv, '=');
        if (eq) {
            decode_query(eq + 1);
            check_query_value(eq + 1);
        }
        kv = amp ? amp + 1 : NULL;
    }
    free(s);
    return 0;
}
