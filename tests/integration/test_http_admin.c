/*
 * test_http_admin.c - the operator endpoints against a real blobd (SPEC §2,
 * §4): the /admin/stats document (every section and key, and its numbers
 * after known operations), the /metrics exposition (parsed line by line:
 * HELP/TYPE per family, counter names, bounded labels, histogram
 * consistency, the same numbers as the stats), POST /admin/compact, holds
 * (POST/DELETE /admin/hold, compaction refused while held, expiry after
 * --hold-timeout), /healthz, /readyz, and 405 + Allow on the admin routes.
 *
 * Request counters are added when a request completes (after its answer
 * was sent), so a number that depends on the request just made is polled
 * for a short while instead of read once.
 */
#include "testutil.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "srv.h"

#define POLL_MS 5000 /* how long a counter may take to settle */

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

static const char *const k_no_interval[] = {"--flush-interval-ms", "0", NULL};

/* ---- JSON helpers ---- */

/* The item at a dotted path ("http.requests.PUT.2xx"), or NULL. */
static const cJSON *jget(const cJSON *root, const char *path)
{
    char key[128];
    const cJSON *cur = root;
    const char *p = path;
    while (cur && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        if (!cJSON_IsObject(cur))
            return NULL;
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        p += n;
        if (*p == '.')
            p++;
    }
    return cur;
}

static double jnum(const cJSON *root, const char *path)
{
    const cJSON *v = jget(root, path);
    if (!cJSON_IsNumber(v))
        fail_msg("stats: %s is not a number", path);
    return v->valuedouble;
}

static int jbool(const cJSON *root, const char *path)
{
    const cJSON *v = jget(root, path);
    if (!cJSON_IsBool(v))
        fail_msg("stats: %s is not a boolean", path);
    return cJSON_IsTrue(v);
}

static const char *jstr(const cJSON *root, const char *path)
{
    const cJSON *v = jget(root, path);
    if (!cJSON_IsString(v))
        fail_msg("stats: %s is not a string", path);
    return v->valuestring;
}

/* A number at path, or 0 when the key is absent (write_refusals lists only
 * the codes seen). */
static double jnum_or0(const cJSON *root, const char *path)
{
    const cJSON *v = jget(root, path);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v))
        fail_msg("stats: %s is not a number", path);
    return v->valuedouble;
}

/* Assert that r has Content-Type application/json (parameters allowed). */
static void expect_json_type(const struct http_resp *r, const char *what)
{
    char ct[256];
    if (!http_header(r, "Content-Type", ct, sizeof(ct)))
        fail_msg("%s: no Content-Type", what);
    if (strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';'))
        fail_msg("%s: Content-Type \"%s\", want application/json", what, ct);
}

/* Parse r's body as a JSON object; fails the test otherwise. */
static cJSON *json_body(const struct http_resp *r, const char *what)
{
    cJSON *j = cJSON_ParseWithLength(r->body ? r->body : "", r->body_len);
    if (!cJSON_IsObject(j))
        fail_msg("%s: body is not a JSON object: %.300s", what,
                 r->body ? r->body : "");
    return j;
}

/* GET /admin/stats: 200, application/json, a JSON object (owned). */
static cJSON *stats_get(struct srv *s)
{
    struct http_resp r;
    http_req_ok(s, "GET", "/admin/stats", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /admin/stats");
    expect_json_type(&r, "GET /admin/stats");
    cJSON *j = json_body(&r, "GET /admin/stats");
    http_resp_free(&r);
    return j;
}

static double stats_num(struct srv *s, const char *path)
{
    cJSON *j = stats_get(s);
    double v = jnum_or0(j, path);
    cJSON_Delete(j);
    return v;
}

/* Poll /admin/stats until the number at path (absent = 0) equals want. */
static void wait_stats_num(struct srv *s, const char *path, double want)
{
    uint64_t deadline = http_mono_ms() + POLL_MS;
    double v;
    for (;;) {
        v = stats_num(s, path);
        if (v == want)
            return;
        if (http_mono_ms() > deadline)
            break;
        http_sleep_ms(20);
    }
    fail_msg("stats: %s is %.17g after %d ms, want %.17g", path, v, POLL_MS,
             want);
}

/* ---- requests ---- */

static long put_blob(struct srv *s, const char *guid, const void *body,
                     size_t len, const char *hdr)
{
    char path[256];
    const char *h[2] = {hdr, NULL};
    struct http_resp r;
    snprintf(path, sizeof(path), "/blobs/%.32s", guid);
    long st =
        http_req_ok(s, "PUT", path, hdr ? h : NULL, body ? body : "", len, &r);
    http_resp_free(&r);
    return st;
}

static void flush_ok(struct srv *s)
{
    struct http_resp r;
    http_req_ok(s, "POST", "/flush", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "POST /flush");
    http_resp_free(&r);
}

/* ---- /admin/stats: the shape ---- */

enum jkind { J_NUM, J_BOOL, J_STR, J_STR_NULL, J_NUM_NULL, J_OBJ };

struct jkey {
    const char *path;
    enum jkind kind;
};

static const struct jkey stats_keys[] = {
    {"process", J_OBJ},
    {"process.version", J_STR},
    {"process.state", J_STR},
    {"process.uptime_seconds", J_NUM},
    {"manifest", J_OBJ},
    {"manifest.entries", J_NUM},
    {"manifest.next_slot", J_NUM},
    {"manifest.free_slots", J_OBJ},
    {"manifest.free_slots.singles", J_NUM},
    {"manifest.free_slots.ranges", J_NUM},
    {"manifest.free_slots.total", J_NUM},
    {"manifest.pending_deltas", J_NUM},
    {"manifest.pending_free", J_NUM},
    {"manifest.pinned", J_NUM},
    {"manifest.log_bytes", J_NUM},
    {"manifest.log_records", J_NUM},
    {"manifest.snapshot_bytes", J_NUM},
    {"manifest.generation", J_NUM},
    {"manifest.index_bytes", J_NUM},
    {"manifest.uuid", J_STR},
    {"manifest.torn_tail_found", J_BOOL},
    {"manifest.torn_tail_offset", J_NUM},
    {"compaction", J_OBJ},
    {"compaction.count", J_NUM},
    {"compaction.running", J_BOOL},
    {"compaction.last_unix_ms", J_NUM_NULL},
    {"compaction.last_duration_seconds", J_NUM},
    {"compaction.bytes_before", J_NUM},
    {"compaction.bytes_after", J_NUM},
    {"compaction.failures", J_NUM},
    {"flush", J_OBJ},
    {"flush.count", J_NUM},
    {"flush.last_unix_ms", J_NUM_NULL},
    {"flush.last_duration_seconds", J_NUM},
    {"flush.in_progress", J_BOOL},
    {"flush.needs_flush", J_BOOL},
    {"flush.unflushed_blobs", J_NUM},
    {"flush.unflushed_bytes", J_NUM},
    {"flush.failures", J_NUM},
    {"flush.failed", J_BOOL},
    {"flush.last_sticky_error", J_STR_NULL},
    {"data_file", J_OBJ},
    {"data_file.size_bytes", J_NUM},
    {"data_file.preallocated_slots", J_NUM},
    {"data_file.free_bytes", J_NUM},
    {"data_file.headroom_bytes", J_NUM},
    {"io", J_OBJ},
    {"io.backend", J_STR},
    {"io.backend_note", J_STR_NULL},
    {"io.o_direct", J_BOOL},
    {"io.queue_depth", J_NUM},
    {"io.registered_buffers", J_NUM},
    {"io.registered_buffers_in_use", J_NUM},
    {"io.read_only", J_BOOL},
    {"io.held", J_BOOL},
    {"io.holds_expired", J_NUM},
    {"io.data_writes", J_NUM},
    {"io.data_write_calls", J_NUM},
    {"io.writes_superseded", J_NUM},
    {"io.data_syncs", J_NUM},
    {"io.log_syncs", J_NUM},
    {"cache", J_OBJ},
    {"cache.bytes", J_NUM},
    {"cache.limit_bytes", J_NUM},
    {"cache.hits", J_NUM},
    {"cache.misses", J_NUM},
    {"memory", J_OBJ},
    {"memory.used_bytes", J_NUM},
    {"memory.limit_bytes", J_NUM},
    {"http", J_OBJ},
    {"http.requests", J_OBJ},
    {"http.threads", J_NUM},
    {"http.bytes_in", J_NUM},
    {"http.bytes_out", J_NUM},
    {"http.open_connections", J_NUM},
    {"http.checksum_failures", J_NUM},
    {"http.read_errors", J_NUM},
    {"http.write_refusals", J_OBJ},
    {"http.latency", J_OBJ},
};

static const char *const k_methods[] = {"GET",  "HEAD",   "PUT",
                                        "POST", "DELETE", "OTHER"};
static const char *const k_classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const k_ops[] = {"put", "get", "delete", "flush"};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *jkind_name(enum jkind k)
{
    static const char *const n[] = {"a number",         "a boolean",
                                    "a string",         "a string or null",
                                    "a number or null", "an object"};
    return n[k];
}

static void expect_key(const cJSON *j, const char *path, enum jkind kind)
{
    const cJSON *v = jget(j, path);
    int ok = 0;
    if (!v)
        fail_msg("stats: no key %s", path);
    switch (kind) {
    case J_NUM:
        ok = cJSON_IsNumber(v) && v->valuedouble >= 0;
        break;
    case J_BOOL:
        ok = cJSON_IsBool(v);
        break;
    case J_STR:
        ok = cJSON_IsString(v);
        break;
    case J_STR_NULL:
        ok = cJSON_IsString(v) || cJSON_IsNull(v);
        break;
    case J_NUM_NULL:
        ok = cJSON_IsNumber(v) || cJSON_IsNull(v);
        break;
    case J_OBJ:
        ok = cJSON_IsObject(v);
        break;
    }
    if (!ok) {
        char *txt = cJSON_PrintUnformatted(v);
        char copy[200];
        snprintf(copy, sizeof(copy), "%s", txt ? txt : "?");
        free(txt);
        fail_msg("stats: %s is %s, want %s", path, copy, jkind_name(kind));
    }
}

static void expect_stats_shape(const cJSON *j)
{
    char path[256];
    for (size_t i = 0; i < NELEM(stats_keys); i++)
        expect_key(j, stats_keys[i].path, stats_keys[i].kind);
    for (size_t m = 0; m < NELEM(k_methods); m++) {
        snprintf(path, sizeof(path), "http.requests.%s", k_methods[m]);
        expect_key(j, path, J_OBJ);
        for (size_t c = 0; c < NELEM(k_classes); c++) {
            snprintf(path, sizeof(path), "http.requests.%s.%s", k_methods[m],
                     k_classes[c]);
            expect_key(j, path, J_NUM);
        }
    }
    for (size_t o = 0; o < NELEM(k_ops); o++) {
        snprintf(path, sizeof(path), "http.latency.%s", k_ops[o]);
        expect_key(j, path, J_OBJ);
        snprintf(path, sizeof(path), "http.latency.%s.count", k_ops[o]);
        expect_key(j, path, J_NUM);
        snprintf(path, sizeof(path), "http.latency.%s.sum_seconds", k_ops[o]);
        expect_key(j, path, J_NUM);
    }
    /* write_refusals: every member a count */
    const cJSON *wr = jget(j, "http.write_refusals"), *it;
    cJSON_ArrayForEach(it, wr)
    {
        if (!cJSON_IsNumber(it))
            fail_msg("stats: http.write_refusals.%s is not a number",
                     it->string);
    }
}

static void test_stats_keys(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, k_no_interval);
    cJSON *j = stats_get(s);
    expect_stats_shape(j);
    assert_string_equal(jstr(j, "process.state"), "ready");
    if (!jstr(j, "process.version")[0])
        fail_msg("stats: process.version is empty");
    if (jnum(j, "process.uptime_seconds") > 60)
        fail_msg("stats: uptime %.3f s on a fresh server",
                 jnum(j, "process.uptime_seconds"));
    assert_true(jnum(j, "manifest.entries") == 0);
    assert_false(jbool(j, "flush.failed"));
    assert_false(jbool(j, "io.held"));
    assert_false(jbool(j, "io.read_only"));
    assert_false(jbool(j, "compaction.running"));
    if (!jstr(j, "io.backend")[0])
        fail_msg("stats: io.backend is empty");
    cJSON_Delete(j);

    /* the same shape once something happened */
    char g[HTTP_GUID_BUF];
    uint8_t b[2000];
    http_guid_rand(g);
    http_fill(b, sizeof(b), 7);
    assert_int_equal(put_blob(s, g, b, sizeof(b), NULL), 201);
    flush_ok(s);
    j = stats_get(s);
    expect_stats_shape(j);
    cJSON_Delete(j);
    assert_int_equal(srv_stop(s), 0);
}

/* ---- /admin/stats: the numbers ---- */

static void test_stats_values(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, k_no_interval);
    static const size_t sizes[5] = {100, 4096, 0, 70000, 524288};
    char g[5][HTTP_GUID_BUF];
    uint8_t *buf = malloc(API_MAX_BODY);
    assert_non_null(buf);

    cJSON *j = stats_get(s);
    assert_string_equal(jstr(j, "process.state"), "ready");
    double in0 = jnum(j, "http.bytes_in");
    double put0 = jnum(j, "http.requests.PUT.2xx");
    assert_true(put0 == 0);
    assert_true(jnum(j, "http.latency.put.count") == 0);
    assert_true(jnum(j, "manifest.entries") == 0);
    cJSON_Delete(j);

    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        http_guid_rand(g[i]);
        http_fill(buf, sizes[i], (uint64_t)i + 100);
        long st = put_blob(s, g[i], buf, sizes[i], NULL);
        if (st != 201)
            fail_msg("PUT %d (%zu bytes): status %ld, want 201", i, sizes[i],
                     st);
        total += sizes[i];
    }
    wait_stats_num(s, "http.requests.PUT.2xx", 5);
    wait_stats_num(s, "http.latency.put.count", 5);

    j = stats_get(s);
    if (jnum(j, "manifest.entries") != 5)
        fail_msg("stats: entries %.0f after 5 PUTs",
                 jnum(j, "manifest.entries"));
    if (!jbool(j, "flush.needs_flush"))
        fail_msg("stats: needs_flush false after 5 unflushed PUTs");
    if (jnum(j, "flush.unflushed_blobs") < 5)
        fail_msg("stats: unflushed_blobs %.0f after 5 unflushed PUTs",
                 jnum(j, "flush.unflushed_blobs"));
    if (jnum(j, "http.bytes_in") - in0 != (double)total)
        fail_msg("stats: bytes_in grew by %.0f, want %zu (the bodies)",
                 jnum(j, "http.bytes_in") - in0, total);
    if (jnum(j, "http.requests.PUT.4xx") != 0 ||
        jnum(j, "http.requests.PUT.5xx") != 0)
        fail_msg("stats: PUT errors counted after 5 good PUTs");
    if (jnum(j, "http.latency.put.sum_seconds") <= 0)
        fail_msg("stats: latency.put.sum_seconds is %.9f after 5 PUTs",
                 jnum(j, "http.latency.put.sum_seconds"));
    double fc0 = jnum(j, "flush.count");
    cJSON_Delete(j);

    flush_ok(s);
    j = stats_get(s);
    if (jbool(j, "flush.needs_flush"))
        fail_msg("stats: needs_flush true after POST /flush");
    if (jnum(j, "flush.count") != fc0 + 1)
        fail_msg("stats: flush.count %.0f -> %.0f across one POST /flush", fc0,
                 jnum(j, "flush.count"));
    if (jnum(j, "flush.unflushed_blobs") != 0 ||
        jnum(j, "flush.unflushed_bytes") != 0)
        fail_msg("stats: unflushed %.0f blobs / %.0f bytes after a flush",
                 jnum(j, "flush.unflushed_blobs"),
                 jnum(j, "flush.unflushed_bytes"));
    if (!cJSON_IsNumber(jget(j, "flush.last_unix_ms")))
        fail_msg("stats: flush.last_unix_ms is not a number after a flush");
    assert_true(jnum(j, "manifest.entries") == 5);
    cJSON_Delete(j);
    wait_stats_num(s, "http.latency.flush.count", 1);

    /* a 404 GET counts as GET 4xx */
    double g4 = stats_num(s, "http.requests.GET.4xx");
    char absent[HTTP_GUID_BUF];
    http_guid_rand(absent);
    http_expect_absent(s, absent, "never written");
    wait_stats_num(s, "http.requests.GET.4xx", g4 + 1);

    /* a refused create-only PUT counts as a precondition_failed refusal */
    double pf0 = stats_num(s, "http.write_refusals.precondition_failed");
    double p4 = stats_num(s, "http.requests.PUT.4xx");
    http_fill(buf, 10, 999);
    long st = put_blob(s, g[0], buf, 10, "If-None-Match: *");
    if (st != 412)
        fail_msg("PUT If-None-Match: * on an existing blob: %ld, want 412", st);
    wait_stats_num(s, "http.write_refusals.precondition_failed", pf0 + 1);
    wait_stats_num(s, "http.requests.PUT.4xx", p4 + 1);
    assert_true(stats_num(s, "http.requests.PUT.2xx") == 5);
    assert_true(stats_num(s, "manifest.entries") == 5);

    /* bytes_out grows by what a GET returns */
    double out0 = stats_num(s, "http.bytes_out");
    http_expect_blob(s, g[3], sizes[3], 103, NULL, NULL);
    uint64_t deadline = http_mono_ms() + POLL_MS;
    double out1;
    /* the stats answers themselves add to bytes_out: at least the blob */
    while ((out1 = stats_num(s, "http.bytes_out")) < out0 + (double)sizes[3] &&
           http_mono_ms() < deadline)
        http_sleep_ms(20);
    if (out1 < out0 + (double)sizes[3])
        fail_msg("stats: bytes_out grew by %.0f after a %zu-byte GET",
                 out1 - out0, sizes[3]);
    free(buf);
    assert_int_equal(srv_stop(s), 0);
}

/* ---- /metrics ---- */

struct mlabel {
    char key[32];
    char val[128];
};

struct msample {
    char name[128];
    struct mlabel lab[4];
    int nlab;
    double v;
};

struct mfamily {
    char name[128];
    char type[16];
    int help, typed, samples;
};

struct mtext {
    struct msample *s;
    size_t ns, caps;
    struct mfamily *f;
    size_t nf, capf;
};

static void mtext_free(struct mtext *m)
{
    free(m->s);
    free(m->f);
    memset(m, 0, sizeof(*m));
}

static int is_name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == ':';
}

/* A metric name at *pp (advanced); copies it into out.  0 or -1. */
static int scan_name(const char **pp, const char *end, char *out, size_t cap)
{
    const char *p = *pp;
    if (p == end || !is_name_start(*p))
        return -1;
    while (p < end && is_name_char(*p))
        p++;
    size_t n = (size_t)(p - *pp);
    if (n >= cap)
        return -1;
    memcpy(out, *pp, n);
    out[n] = '\0';
    *pp = p;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static struct mfamily *family_find(struct mtext *m, const char *name)
{
    for (size_t i = 0; i < m->nf; i++)
        if (!strcmp(m->f[i].name, name))
            return &m->f[i];
    return NULL;
}

/* A sample value: "+Inf", "-Inf", "NaN" or a decimal float. */
static int parse_value(const char *p, const char *end, double *v)
{
    size_t n = (size_t)(end - p);
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (!strcmp(buf, "+Inf")) {
        *v = INFINITY;
        return 0;
    }
    if (!strcmp(buf, "-Inf")) {
        *v = -INFINITY;
        return 0;
    }
    if (!strcmp(buf, "NaN")) {
        *v = NAN;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)buf[i]) && !strchr("+-.eE", buf[i]))
            return -1;
    char *e;
    *v = strtod(buf, &e);
    return *e == '\0' ? 0 : -1;
}

/* {k="v",...} at *pp into smp; 0 or -1. */
static int parse_labels(const char **pp, const char *end, struct msample *smp)
{
    const char *p = *pp;
    if (p == end || *p != '{')
        return 0;
    p++;
    for (;;) {
        if (smp->nlab >= (int)NELEM(smp->lab))
            return -1;
        struct mlabel *l = &smp->lab[smp->nlab];
        const char *k = p;
        if (p == end || !(isalpha((unsigned char)*p) || *p == '_'))
            return -1;
        while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
            p++;
        if ((size_t)(p - k) >= sizeof(l->key))
            return -1;
        memcpy(l->key, k, (size_t)(p - k));
        l->key[p - k] = '\0';
        if (end - p < 2 || p[0] != '=' || p[1] != '"')
            return -1;
        p += 2;
        size_t n = 0;
        while (p < end && *p != '"') {
            char c = *p++;
            if (c == '\\') {
                if (p == end)
                    return -1;
                c = *p++;
                if (c == 'n')
                    c = '\n';
                else if (c != '\\' && c != '"')
                    return -1;
            }
            if (n + 1 >= sizeof(l->val))
                return -1;
            l->val[n++] = c;
        }
        if (p == end)
            return -1;
        l->val[n] = '\0';
        p++; /* the closing quote */
        smp->nlab++;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}') {
            *pp = p + 1;
            return 0;
        }
        return -1;
    }
}

static int in_set(const char *v, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v, set[i]))
            return 1;
    return 0;
}

static int is_error_code(const char *v)
{
    for (int e = API_ERR_NONE + 1; e < API_ERR_COUNT; e++)
        if (!strcmp(v, api_error_code((enum api_error)e)))
            return 1;
    return 0;
}

/* Every label of smp is from a fixed set (SPEC §4: bounded labels). */
static void check_labels(const struct msample *smp, size_t line)
{
    for (int i = 0; i < smp->nlab; i++) {
        const struct mlabel *l = &smp->lab[i];
        int ok;
        double d;
        for (int k = 0; k < i; k++)
            if (!strcmp(smp->lab[k].key, l->key))
                fail_msg("metrics line %zu: label %s twice", line, l->key);
        if (!strcmp(l->key, "method"))
            ok = in_set(l->val, k_methods, NELEM(k_methods));
        else if (!strcmp(l->key, "code"))
            ok = in_set(l->val, k_classes, NELEM(k_classes));
        else if (!strcmp(l->key, "op"))
            ok = in_set(l->val, k_ops, NELEM(k_ops));
        else if (!strcmp(l->key, "reason") &&
                 !strcmp(smp->name, "blobd_connections_closed_total"))
            ok = !strcmp(l->val, "header_timeout") ||
                 !strcmp(l->val, "per_client") ||
                 !strcmp(l->val, "client_left");
        else if (!strcmp(l->key, "reason"))
            ok = is_error_code(l->val);
        else if (!strcmp(l->key, "le"))
            ok = ends_with(smp->name, "_bucket") &&
                 parse_value(l->val, l->val + strlen(l->val), &d) == 0 &&
                 !isnan(d);
        else if (!strcmp(l->key, "version"))
            ok = !strcmp(smp->name, "blobd_build_info") && l->val[0] &&
                 !strchr(l->val, '/');
        else
            ok = 0;
        if (!ok)
            fail_msg("metrics line %zu: %s{%s=\"%s\"}: not a label from a "
                     "fixed set",
                     line, smp->name, l->key, l->val);
    }
}

/*
 * Parse the whole exposition into m, checking as it goes: every line is a
 * "# HELP name text", a "# TYPE name type" or a sample
 * "blobd_name[{labels}] value"; every family has one HELP and one TYPE
 * before its samples, its samples are contiguous and named after it
 * (_bucket, _sum, _count for histograms); counters end in _total.
 */
static void metrics_parse(const char *text, size_t len, struct mtext *m)
{
    memset(m, 0, sizeof(*m));
    if (len == 0 || text[len - 1] != '\n')
        fail_msg("metrics: the text does not end with a newline");
    const char *p = text, *end = text + len;
    struct mfamily *cur = NULL;
    size_t line = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        line++;
        if (eol == p)
            fail_msg("metrics line %zu: empty", line);
        if (memchr(p, '\0', (size_t)(eol - p)))
            fail_msg("metrics line %zu: a NUL byte", line);
        if (*p == '#') {
            int help = (size_t)(eol - p) > 7 && !memcmp(p, "# HELP ", 7);
            int type = (size_t)(eol - p) > 7 && !memcmp(p, "# TYPE ", 7);
            if (!help && !type)
                fail_msg("metrics line %zu: a comment that is neither "
                         "# HELP nor # TYPE: %.*s",
                         line, (int)(eol - p), p);
            const char *q = p + 7;
            char name[128];
            if (scan_name(&q, eol, name, sizeof(name)) != 0 || q == eol ||
                *q != ' ')
                fail_msg("metrics line %zu: bad family name: %.*s", line,
                         (int)(eol - p), p);
            if (strncmp(name, "blobd_", 6) != 0)
                fail_msg("metrics line %zu: %s is not prefixed blobd_", line,
                         name);
            q++;
            struct mfamily *f = family_find(m, name);
            if (!f) {
                if (m->nf == m->capf) {
                    m->capf = m->capf ? m->capf * 2 : 64;
                    m->f = realloc(m->f, m->capf * sizeof(*m->f));
                    assert_non_null(m->f);
                }
                f = &m->f[m->nf++];
                memset(f, 0, sizeof(*f));
                snprintf(f->name, sizeof(f->name), "%s", name);
            } else if (f->samples) {
                fail_msg("metrics line %zu: a comment for %s after its "
                         "samples",
                         line, name);
            }
            if (help) {
                if (f->help++)
                    fail_msg("metrics line %zu: a second HELP for %s", line,
                             name);
                if (q == eol)
                    fail_msg("metrics line %zu: empty HELP for %s", line, name);
            } else {
                if (f->typed++)
                    fail_msg("metrics line %zu: a second TYPE for %s", line,
                             name);
                size_t tl = (size_t)(eol - q);
                if (tl >= sizeof(f->type))
                    fail_msg("metrics line %zu: bad TYPE", line);
                memcpy(f->type, q, tl);
                f->type[tl] = '\0';
                static const char *const types[] = {
                    "counter", "gauge", "histogram", "summary", "untyped"};
                if (!in_set(f->type, types, NELEM(types)))
                    fail_msg("metrics line %zu: unknown type %s", line,
                             f->type);
                if (!strcmp(f->type, "counter") && !ends_with(name, "_total"))
                    fail_msg("metrics line %zu: counter %s does not end in "
                             "_total",
                             line, name);
                if (ends_with(name, "_total") && strcmp(f->type, "counter"))
                    fail_msg("metrics line %zu: %s ends in _total but is a "
                             "%s",
                             line, name, f->type);
            }
            cur = f;
        } else {
            if (m->ns == m->caps) {
                m->caps = m->caps ? m->caps * 2 : 256;
                m->s = realloc(m->s, m->caps * sizeof(*m->s));
                assert_non_null(m->s);
            }
            struct msample *smp = &m->s[m->ns];
            memset(smp, 0, sizeof(*smp));
            const char *q = p;
            if (scan_name(&q, eol, smp->name, sizeof(smp->name)) != 0 ||
                parse_labels(&q, eol, smp) != 0 || q == eol || *q != ' ' ||
                parse_value(q + 1, eol, &smp->v) != 0)
                fail_msg("metrics line %zu: not `name[{labels}] value`: %.*s",
                         line, (int)(eol - p), p);
            if (strncmp(smp->name, "blobd_", 6) != 0)
                fail_msg("metrics line %zu: %s is not prefixed blobd_", line,
                         smp->name);
            if (!cur)
                fail_msg("metrics line %zu: a sample before any HELP/TYPE",
                         line);
            int mine = !strcmp(smp->name, cur->name);
            if (!mine && !strcmp(cur->type, "histogram")) {
                size_t fl = strlen(cur->name);
                mine = !strncmp(smp->name, cur->name, fl) &&
                       (!strcmp(smp->name + fl, "_bucket") ||
                        !strcmp(smp->name + fl, "_sum") ||
                        !strcmp(smp->name + fl, "_count"));
            }
            if (!mine)
                fail_msg("metrics line %zu: sample %s is not of the family "
                         "%s declared before it (HELP and TYPE must come "
                         "first)",
                         line, smp->name, cur->name);
            if (!cur->help || !cur->typed)
                fail_msg("metrics line %zu: %s has a sample before its %s",
                         line, cur->name, cur->help ? "TYPE" : "HELP");
            if (!strcmp(cur->type, "counter") && !(smp->v >= 0))
                fail_msg("metrics line %zu: counter %s is %g", line, smp->name,
                         smp->v);
            check_labels(smp, line);
            cur->samples++;
            m->ns++;
        }
        p = eol + 1;
    }
    for (size_t i = 0; i < m->nf; i++) {
        if (!m->f[i].help || !m->f[i].typed || !m->f[i].samples)
            fail_msg("metrics: family %s has %d HELP, %d TYPE, %d samples",
                     m->f[i].name, m->f[i].help, m->f[i].typed,
                     m->f[i].samples);
    }
}

/* The label value key of smp, or NULL. */
static const char *label_of(const struct msample *smp, const char *key)
{
    for (int i = 0; i < smp->nlab; i++)
        if (!strcmp(smp->lab[i].key, key))
            return smp->lab[i].val;
    return NULL;
}

/* The one sample named name with exactly the labels in kv ("k", "v", ...,
 * NULL); fails the test when there is none or more than one. */
__attribute__((sentinel)) static double metric(const struct mtext *m,
                                               const char *name, ...)
{
    const char *kv[8];
    int n = 0;
    va_list ap;
    va_start(ap, name);
    for (const char *k; n < 8 && (k = va_arg(ap, const char *)) != NULL;) {
        kv[n++] = k;
        kv[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    const struct msample *hit = NULL;
    for (size_t i = 0; i < m->ns; i++) {
        const struct msample *smp = &m->s[i];
        if (strcmp(smp->name, name) || smp->nlab != n / 2)
            continue;
        int ok = 1;
        for (int k = 0; k < n && ok; k += 2) {
            const char *v = label_of(smp, kv[k]);
            ok = v && !strcmp(v, kv[k + 1]);
        }
        if (!ok)
            continue;
        if (hit)
            fail_msg("metrics: %s appears twice with the same labels", name);
        hit = smp;
    }
    if (!hit)
        fail_msg("metrics: no sample %s%s%s", name, n ? " with " : "",
                 n ? kv[0] : "");
    return hit->v;
}

/* GET /metrics: 200, text/plain, parsed and checked into m; the raw text
 * is returned (owned) for the caller's own searches. */
static char *metrics_get(struct srv *s, struct mtext *m)
{
    struct http_resp r;
    char ct[256];
    http_req_ok(s, "GET", "/metrics", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /metrics");
    if (!http_header(&r, "Content-Type", ct, sizeof(ct)))
        fail_msg("GET /metrics: no Content-Type");
    if (strncmp(ct, "text/plain", 10) != 0)
        fail_msg("GET /metrics: Content-Type \"%s\", want text/plain", ct);
    if (strlen(r.body) != r.body_len)
        fail_msg("GET /metrics: a NUL byte in the text");
    metrics_parse(r.body, r.body_len, m);
    char *text = r.body;
    r.body = NULL;
    http_resp_free(&r);
    return text;
}

/* Histogram checks for every op: buckets in rising le order with
 * non-decreasing counts, the last le="+Inf", and +Inf == _count. */
static void check_histograms(const struct mtext *m)
{
    static const char fam[] = "blobd_request_duration_seconds";
    for (size_t o = 0; o < NELEM(k_ops); o++) {
        double prev_le = -INFINITY, prev = 0, inf = -1;
        int nb = 0;
        for (size_t i = 0; i < m->ns; i++) {
            const struct msample *smp = &m->s[i];
            const char *op = label_of(smp, "op");
            if (strcmp(smp->name, "blobd_request_duration_seconds_bucket") ||
                !op || strcmp(op, k_ops[o]))
                continue;
            const char *les = label_of(smp, "le");
            double le = 0;
            if (!les || parse_value(les, les + strlen(les), &le) != 0)
                fail_msg("metrics: %s_bucket{op=\"%s\"} without a numeric le",
                         fam, k_ops[o]);
            if (!(le > prev_le))
                fail_msg("metrics: %s_bucket{op=\"%s\"}: le %s after %g", fam,
                         k_ops[o], les, prev_le);
            if (smp->v < prev)
                fail_msg("metrics: %s_bucket{op=\"%s\",le=\"%s\"} is %g, "
                         "below the bucket before it (%g)",
                         fam, k_ops[o], les, smp->v, prev);
            prev_le = le;
            prev = smp->v;
            nb++;
            if (isinf(le))
                inf = smp->v;
        }
        if (nb < 2 || !isinf(prev_le))
            fail_msg("metrics: %s{op=\"%s\"}: %d buckets, last le %g", fam,
                     k_ops[o], nb, prev_le);
        double count = metric(m, "blobd_request_duration_seconds_count", "op",
                              k_ops[o], NULL);
        if (inf != count)
            fail_msg("metrics: %s op=%s: +Inf bucket %g != _count %g", fam,
                     k_ops[o], inf, count);
        metric(m, "blobd_request_duration_seconds_sum", "op", k_ops[o], NULL);
    }
}

/* Fail if text holds a run of 32 or more hex digits (a GUID) or needle. */
static void expect_no_guid(const char *text, const char *const *needles)
{
    size_t run = 0;
    for (const char *p = text; *p; p++) {
        run = isxdigit((unsigned char)*p) ? run + 1 : 0;
        if (run >= 32)
            fail_msg("metrics: a GUID-like run of hex digits near \"%.40s\"",
                     p - 31);
    }
    for (size_t i = 0; needles[i]; i++)
        if (strcasestr(text, needles[i]))
            fail_msg("metrics: the text contains \"%s\"", needles[i]);
}

static void test_metrics(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, k_no_interval);
    struct mtext m;
    char *text = metrics_get(s, &m); /* well-formed on a fresh server too */
    check_histograms(&m);
    assert_true(metric(&m, "blobd_blobs", NULL) == 0);
    assert_true(metric(&m, "blobd_up", NULL) == 1);
    mtext_free(&m);
    free(text);

    /* 3 good PUTs, a refused one, odd paths and methods */
    char g[3][HTTP_GUID_BUF], absent[HTTP_GUID_BUF], path[256];
    uint8_t b[3000];
    for (int i = 0; i < 3; i++) {
        http_guid_rand(g[i]);
        http_fill(b, sizeof(b), (uint64_t)i + 1);
        assert_int_equal(put_blob(s, g[i], b, sizeof(b), NULL), 201);
    }
    assert_int_equal(put_blob(s, g[0], b, 10, "If-None-Match: *"), 412);
    http_guid_rand(absent);
    http_expect_absent(s, absent, NULL);
    assert_int_equal(http_status(s, "GET", "/nope/123", NULL, NULL, 0), 404);
    snprintf(path, sizeof(path), "/nope/%s", absent);
    assert_int_equal(http_status(s, "GET", path, NULL, NULL, 0), 404);
    snprintf(path, sizeof(path), "/blobs/%s/extra", absent);
    assert_int_equal(http_status(s, "GET", path, NULL, NULL, 0), 400);
    assert_int_equal(http_status(s, "GET", "/blobs/zzzz", NULL, NULL, 0), 400);
    long st = http_status(s, "BREW", "/blobs", NULL, NULL, 0);
    if (st != 405)
        fail_msg("BREW /blobs: %ld, want 405", st);
    snprintf(path, sizeof(path), "/blobs?after=%s&limit=5", g[1]);
    assert_int_equal(http_status(s, "GET", path, NULL, NULL, 0), 200);
    snprintf(path, sizeof(path), "/blobs/%s", g[2]);
    assert_int_equal(http_status(s, "HEAD", path, NULL, NULL, 0), 200);
    wait_stats_num(s, "http.requests.PUT.2xx", 3);
    wait_stats_num(s, "http.requests.PUT.4xx", 1);
    wait_stats_num(s, "http.requests.OTHER.4xx", 1);
    wait_stats_num(s, "http.requests.HEAD.2xx", 1);

    text = metrics_get(s, &m);
    check_histograms(&m);
    double v = metric(&m, "blobd_http_requests_total", "method", "PUT", "code",
                      "2xx", NULL);
    if (v != 3)
        fail_msg("metrics: PUT 2xx is %g, want 3", v);
    v = metric(&m, "blobd_http_requests_total", "method", "PUT", "code", "4xx",
               NULL);
    if (v != 1)
        fail_msg("metrics: PUT 4xx is %g, want 1", v);
    v = metric(&m, "blobd_http_requests_total", "method", "OTHER", "code",
               "4xx", NULL);
    if (v != 1)
        fail_msg("metrics: OTHER 4xx is %g, want 1 (BREW)", v);
    v = metric(&m, "blobd_write_refusals_total", "reason",
               "precondition_failed", NULL);
    if (v != 1)
        fail_msg("metrics: refusals precondition_failed %g, want 1", v);
    /* every PUT was timed, the refused one too */
    if (metric(&m, "blobd_request_duration_seconds_count", "op", "put", NULL) !=
        4)
        fail_msg("metrics: put latency count %g, want 4",
                 metric(&m, "blobd_request_duration_seconds_count", "op", "put",
                        NULL));
    if (metric(&m, "blobd_blobs", NULL) != 3)
        fail_msg("metrics: blobd_blobs %g, want 3",
                 metric(&m, "blobd_blobs", NULL));
    if (metric(&m, "blobd_needs_flush", NULL) != 1)
        fail_msg("metrics: blobd_needs_flush %g before a flush, want 1",
                 metric(&m, "blobd_needs_flush", NULL));
    const char *const needles[] = {g[0],     g[1],   g[2],   absent,  "nope",
                                   "/blobs", "zzzz", "BREW", "extra", NULL};
    expect_no_guid(text, needles);
    /* the same numbers as /admin/stats */
    cJSON *j = stats_get(s);
    if (metric(&m, "blobd_blobs", NULL) != jnum(j, "manifest.entries"))
        fail_msg("metrics: blobd_blobs %g, stats entries %g",
                 metric(&m, "blobd_blobs", NULL), jnum(j, "manifest.entries"));
    if (metric(&m, "blobd_needs_flush", NULL) !=
        (jbool(j, "flush.needs_flush") ? 1 : 0))
        fail_msg("metrics: blobd_needs_flush disagrees with the stats");
    if (metric(&m, "blobd_flushes_total", NULL) != jnum(j, "flush.count"))
        fail_msg("metrics: blobd_flushes_total %g, stats flush.count %g",
                 metric(&m, "blobd_flushes_total", NULL),
                 jnum(j, "flush.count"));
    cJSON_Delete(j);
    mtext_free(&m);
    free(text);

    flush_ok(s);
    text = metrics_get(s, &m);
    if (metric(&m, "blobd_needs_flush", NULL) != 0)
        fail_msg("metrics: blobd_needs_flush %g after a flush, want 0",
                 metric(&m, "blobd_needs_flush", NULL));
    if (metric(&m, "blobd_unflushed_blobs", NULL) != 0)
        fail_msg("metrics: blobd_unflushed_blobs %g after a flush",
                 metric(&m, "blobd_unflushed_blobs", NULL));
    if (metric(&m, "blobd_flushes_total", NULL) < 1)
        fail_msg("metrics: blobd_flushes_total 0 after POST /flush");
    expect_no_guid(text, needles);
    mtext_free(&m);
    free(text);
    assert_int_equal(srv_stop(s), 0);
}

/* ---- compaction and holds ---- */

static void expect_json_response(struct http_resp *r, long status,
                                 const char *what)
{
    http_expect_status(r, status, what);
    expect_json_type(r, what);
    cJSON_Delete(json_body(r, what));
}

static void compact_expect(struct srv *s, long status, const char *what)
{
    struct http_resp r;
    http_req_ok(s, "POST", "/admin/compact", NULL, NULL, 0, &r);
    if (status == 409)
        http_expect_error(&r, 409, "held", what);
    else
        expect_json_response(&r, status, what);
    http_resp_free(&r);
}

/* Poll until compaction.count passes c0 and running is false (10 s). */
static void wait_compacted(struct srv *s, double c0)
{
    uint64_t deadline = http_mono_ms() + 10000;
    double c;
    int running;
    for (;;) {
        cJSON *j = stats_get(s);
        c = jnum(j, "compaction.count");
        running = jbool(j, "compaction.running");
        cJSON_Delete(j);
        if (c > c0 && !running)
            return;
        if (http_mono_ms() > deadline)
            break;
        http_sleep_ms(50);
    }
    fail_msg("compaction: count %g (was %g), running %d after 10 s", c, c0,
             running);
}

#define NCOMPACT 8

static void test_compact(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, k_no_interval);
    char g[NCOMPACT][HTTP_GUID_BUF], path[256];
    uint8_t b[5000];
    for (int i = 0; i < NCOMPACT; i++) {
        http_guid_rand(g[i]);
        http_fill(b, sizeof(b), (uint64_t)i + 50);
        assert_int_equal(put_blob(s, g[i], b, sizeof(b), NULL), 201);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "/blobs/%.32s", g[i]);
        assert_int_equal(http_status(s, "DELETE", path, NULL, NULL, 0), 204);
    }
    flush_ok(s);
    cJSON *j = stats_get(s);
    double c0 = jnum(j, "compaction.count");
    double entries = jnum(j, "manifest.entries");
    double failures = jnum(j, "compaction.failures");
    assert_true(entries == NCOMPACT - 2);
    cJSON_Delete(j);

    compact_expect(s, 202, "POST /admin/compact");
    wait_compacted(s, c0);
    j = stats_get(s);
    if (jnum(j, "manifest.entries") != entries)
        fail_msg("compaction changed entries: %g -> %g", entries,
                 jnum(j, "manifest.entries"));
    if (jnum(j, "compaction.failures") != failures)
        fail_msg("compaction failed (%g failures)",
                 jnum(j, "compaction.failures"));
    if (!cJSON_IsNumber(jget(j, "compaction.last_unix_ms")))
        fail_msg("compaction.last_unix_ms is not a number after one");
    cJSON_Delete(j);
    for (int i = 0; i < NCOMPACT; i++) {
        if (i < 2)
            http_expect_absent(s, g[i], "deleted before compaction");
        else
            http_expect_blob(s, g[i], sizeof(b), (uint64_t)i + 50, NULL,
                             "after compaction");
    }

    /* and it keeps working: a write after it, and the data after a
     * restart from the compacted manifest */
    char extra[HTTP_GUID_BUF];
    http_guid_rand(extra);
    http_fill(b, sizeof(b), 77);
    assert_int_equal(put_blob(s, extra, b, sizeof(b), NULL), 201);
    assert_int_equal(srv_stop(s), 0);
    srv_restart(s, k_no_interval, NULL);
    for (int i = 2; i < NCOMPACT; i++)
        http_expect_blob(s, g[i], sizeof(b), (uint64_t)i + 50, NULL,
                         "after compaction and a restart");
    http_expect_blob(s, extra, sizeof(b), 77, NULL, "after a restart");
    assert_true(stats_num(s, "manifest.entries") == NCOMPACT - 1);
    assert_int_equal(srv_stop(s), 0);
}

/* POST /admin/hold: 200 {"held":true,...}. */
static void hold_take(struct srv *s)
{
    struct http_resp r;
    http_req_ok(s, "POST", "/admin/hold", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "POST /admin/hold");
    expect_json_type(&r, "POST /admin/hold");
    cJSON *j = json_body(&r, "POST /admin/hold");
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "held")))
        fail_msg("POST /admin/hold: %s, want {\"held\":true,...}", r.body);
    cJSON_Delete(j);
    http_resp_free(&r);
}

static void test_hold(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, k_no_interval);
    char a[HTTP_GUID_BUF], b[HTTP_GUID_BUF], path[256];
    uint8_t da[3000], db[6000], dc[100];
    http_guid_rand(a);
    http_guid_rand(b);
    http_fill(da, sizeof(da), 1);
    http_fill(db, sizeof(db), 2);
    http_fill(dc, sizeof(dc), 3);
    assert_int_equal(put_blob(s, a, da, sizeof(da), NULL), 201);

    cJSON *j = stats_get(s);
    assert_false(jbool(j, "io.held"));
    double expired0 = jnum(j, "io.holds_expired");
    cJSON_Delete(j);

    hold_take(s);
    j = stats_get(s);
    if (!jbool(j, "io.held"))
        fail_msg("stats: io.held false after POST /admin/hold");
    /* the hold flushed first */
    if (jbool(j, "flush.needs_flush"))
        fail_msg("stats: needs_flush true right after a hold (it flushes)");
    cJSON_Delete(j);

    compact_expect(s, 409, "POST /admin/compact while held");

    /* writes still work during a hold */
    assert_int_equal(put_blob(s, b, db, sizeof(db), NULL), 201);
    assert_int_equal(put_blob(s, a, dc, sizeof(dc), NULL), 204);
    http_expect_data(s, b, db, sizeof(db), NULL, "written during a hold");
    http_expect_data(s, a, dc, sizeof(dc), NULL, "replaced during a hold");
    snprintf(path, sizeof(path), "/blobs/%s", b);
    assert_int_equal(http_status(s, "DELETE", path, NULL, NULL, 0), 204);
    http_expect_absent(s, b, "deleted during a hold");
    flush_ok(s);
    j = stats_get(s);
    if (!jbool(j, "io.held"))
        fail_msg("stats: the hold ended by itself (timeout 600 s)");
    cJSON_Delete(j);

    /* renewing is allowed */
    hold_take(s);

    struct http_resp r;
    http_req_ok(s, "DELETE", "/admin/hold", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "DELETE /admin/hold");
    expect_json_type(&r, "DELETE /admin/hold");
    j = json_body(&r, "DELETE /admin/hold");
    if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "held")))
        fail_msg("DELETE /admin/hold: %s, want {\"held\":false}", r.body);
    cJSON_Delete(j);
    http_resp_free(&r);

    j = stats_get(s);
    if (jbool(j, "io.held"))
        fail_msg("stats: io.held true after DELETE /admin/hold");
    if (jnum(j, "io.holds_expired") != expired0)
        fail_msg("stats: a released hold counted as expired");
    double c0 = jnum(j, "compaction.count");
    cJSON_Delete(j);
    compact_expect(s, 202, "POST /admin/compact after the release");
    wait_compacted(s, c0);
    http_expect_data(s, a, dc, sizeof(dc), NULL, "after hold and compaction");
    http_expect_absent(s, b, "after hold and compaction");
    assert_int_equal(srv_stop(s), 0);
}

static void test_hold_expires(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *const argv[] = {"--flush-interval-ms", "0", "--hold-timeout",
                                "2", NULL};
    srv_up(s, argv);
    uint64_t t0 = http_mono_ms();
    hold_take(s);
    cJSON *j = stats_get(s);
    int held = jbool(j, "io.held");
    double expired0 = jnum(j, "io.holds_expired");
    cJSON_Delete(j);
    if (http_mono_ms() - t0 < 1500) { /* well inside the 2 s */
        if (!held)
            fail_msg("stats: io.held false right after POST /admin/hold");
        compact_expect(s, 409, "POST /admin/compact during a 2 s hold");
    }

    http_sleep_ms(3000);
    j = stats_get(s);
    if (jbool(j, "io.held"))
        fail_msg("stats: io.held still true 3 s into a 2 s hold");
    if (jnum(j, "io.holds_expired") < 1 ||
        jnum(j, "io.holds_expired") < expired0 + 1)
        fail_msg("stats: holds_expired %g after a hold expired",
                 jnum(j, "io.holds_expired"));
    double c0 = jnum(j, "compaction.count");
    cJSON_Delete(j);
    compact_expect(s, 202, "POST /admin/compact after the hold expired");
    wait_compacted(s, c0);
    assert_int_equal(srv_stop(s), 0);
}

/* DELETE /admin/hold with no hold in place is a client's request, not a
 * server fault: an idempotent 200 {"held":false} or a JSON 4xx, never a
 * 5xx, and the server goes on as before. */
static void test_release_without_hold(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, k_no_interval);
    struct http_resp r;
    http_req_ok(s, "DELETE", "/admin/hold", NULL, NULL, 0, &r);
    if (r.status == 200) {
        expect_json_type(&r, "DELETE /admin/hold without a hold");
        cJSON *j = json_body(&r, "DELETE /admin/hold without a hold");
        if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "held")))
            fail_msg("DELETE /admin/hold without a hold: %s, want "
                     "{\"held\":false}",
                     r.body);
        cJSON_Delete(j);
    } else if (r.status >= 400 && r.status < 500) {
        expect_json_type(&r, "DELETE /admin/hold without a hold");
        cJSON_Delete(json_body(&r, "DELETE /admin/hold without a hold"));
    } else {
        fail_msg("DELETE /admin/hold without a hold: status %ld, body %.200s; "
                 "want 200 {\"held\":false} (or a 4xx)",
                 r.status, r.body);
    }
    http_resp_free(&r);
    cJSON *j = stats_get(s);
    assert_false(jbool(j, "io.held"));
    cJSON_Delete(j);
    compact_expect(s, 202, "POST /admin/compact after a stray release");
    assert_int_equal(srv_stop(s), 0);
}

/* ---- health and methods ---- */

static void test_health_and_methods(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, k_no_interval);
    struct http_resp r;

    http_req_ok(s, "GET", "/healthz", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /healthz");
    expect_json_type(&r, "GET /healthz");
    cJSON *j = json_body(&r, "GET /healthz");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    if (!cJSON_IsString(st) || strcmp(st->valuestring, "ok"))
        fail_msg("GET /healthz: %s, want {\"status\":\"ok\"}", r.body);
    cJSON_Delete(j);
    http_resp_free(&r);

    http_req_ok(s, "GET", "/readyz", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /readyz");
    http_resp_free(&r);
    assert_int_equal(http_status(s, "HEAD", "/healthz", NULL, NULL, 0), 200);
    assert_int_equal(http_status(s, "HEAD", "/readyz", NULL, NULL, 0), 200);

    static const char *const bad[][3] = {
        {"PUT", "/admin/stats", "GET"},
        {"POST", "/admin/stats", "GET"},
        {"DELETE", "/admin/stats", "GET"},
        {"HEAD", "/admin/stats", "GET"},
        {"POST", "/metrics", "GET"},
        {"PUT", "/metrics", "GET"},
        {"DELETE", "/metrics", "GET"},
        {"HEAD", "/metrics", "GET"},
        {"GET", "/admin/compact", "POST"},
        {"PUT", "/admin/compact", "POST"},
        {"DELETE", "/admin/compact", "POST"},
        {"HEAD", "/admin/compact", "POST"},
        {"GET", "/admin/hold", "POST, DELETE"},
        {"PUT", "/admin/hold", "POST, DELETE"},
        {"HEAD", "/admin/hold", "POST, DELETE"},
        {"PATCH", "/admin/hold", "POST, DELETE"},
    };
    for (size_t i = 0; i < NELEM(bad); i++) {
        char what[128];
        snprintf(what, sizeof(what), "%s %s", bad[i][0], bad[i][1]);
        http_req_ok(s, bad[i][0], bad[i][1], NULL, NULL, 0, &r);
        if (!strcmp(bad[i][0], "HEAD"))
            http_expect_status(&r, 405, what);
        else
            http_expect_error(&r, 405, "method_not_allowed", what);
        char allow[128];
        if (!http_header(&r, "Allow", allow, sizeof(allow)))
            fail_msg("%s: 405 without Allow", what);
        if (strcmp(allow, bad[i][2]))
            fail_msg("%s: Allow \"%s\", want \"%s\"", what, allow, bad[i][2]);
        http_resp_free(&r);
    }
    /* none of that took a hold or started anything */
    j = stats_get(s);
    assert_false(jbool(j, "io.held"));
    cJSON_Delete(j);
    assert_int_equal(srv_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stats_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_without_hold, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_health_and_methods, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
