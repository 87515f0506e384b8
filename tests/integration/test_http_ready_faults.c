/*
 * test_http_ready_faults.c - every readiness transition of blobd in one
 * place (SPEC §2 and §4: /readyz is 503 while opening, draining, or when
 * writes are refused: failed durability, no space headroom, read-only),
 * on blobd-test (BLOBD_TEST_FAULTS=1 where a fault or /test/avail is
 * needed, BLOBD_TEST_OPEN_DELAY_MS for the opening state).
 *
 * In every state the same four views must agree (R1..R4 below), and a
 * PUT at that moment gets the matching refusal:
 *
 *  - opening: 503 not_ready, process.state "opening"; PUT 503 not_ready;
 *  - draining (SIGTERM with a durable PUT held in flight by stalled
 *    syncs): 503 draining, "draining", Connection: close; PUT 503
 *    draining; the held PUT is answered and the exit code is 0;
 *  - a sticky failure (EIO on a sync, or on the log append of a flush):
 *    503 store_failed, flush.failed, blobd_store_failed 1, still so after
 *    the fault is disarmed; PUT 503 store_failed; a restart recovers every
 *    flushed blob and /readyz 200;
 *  - below the headroom (/test/avail): 503 no_space, free_bytes below
 *    headroom_bytes; a PUT that needs blobs.dat to grow 507 no_space;
 *    space back: 200 at once (not sticky);
 *  - --read-only: 503 read_only, io.read_only, blobd_read_only 1; GET of
 *    an existing blob 200; PUT 503 read_only;
 *  - and one that is not a transition: an EIO on a blob's data write
 *    answers 500 write_failed and the server stays ready.
 *
 * The views compared in each state:
 *  R1. GET /readyz: 200 {"status":"ready"}, or 503 with Retry-After and the
 *      JSON error code naming the reason;
 *  R2. GET /healthz: 200 in every state (liveness);
 *  R3. /admin/stats: process.state, and the key behind the reason
 *      (flush.failed, io.read_only, data_file.free_bytes against
 *      headroom_bytes);
 *  R4. /metrics: blobd_ready is 1 exactly when /readyz is 200, with
 *      blobd_store_failed and blobd_read_only matching R3.
 * The four are separate requests: a snapshot is taken again when /readyz
 * changed between its first and last request (a transition in between).
 *
 * Servers with faults run with --flush-interval-ms 0, so no timer flush
 * takes a fault meant for a request.
 */
#include "testutil.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "srv.h"

static struct srv g_srv;

static const char *const fault_env[] = {"BLOBD_TEST_FAULTS=1", NULL};
static const char *const quiet_args[] = {"--flush-interval-ms", "0", NULL};

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

/* ---- the fault endpoints ---- */

/* Start blobd-test with env and argv; wait until /readyz is 200. */
static void up_with(struct srv *s, const char *const *argv,
                    const char *const *env)
{
    srv_init(s);
    int rc = srv_start(s, argv, env);
    if (rc != 0)
        fail_msg("blobd-test did not start: %d (log %s)", rc, s->log);
    if (srv_wait_ready(s) != 0)
        fail_msg("blobd-test on port %d not ready (log %s)", s->port, s->log);
}

/* POST /test/<what>?<query> must answer 200 {"ok":true}. */
static void test_ep(struct srv *s, const char *what, const char *query)
{
    char path[256];
    struct http_resp r;
    snprintf(path, sizeof(path), "/test/%s?%s", what, query);
    http_req_ok(s, "POST", path, NULL, NULL, 0, &r);
    if (r.status != 200 || !strstr(r.body ? r.body : "", "\"ok\""))
        fail_msg("POST %s: status %ld body %.200s (is this blobd-test with "
                 "BLOBD_TEST_FAULTS=1?)",
                 path, r.status, r.body ? r.body : "");
    http_resp_free(&r);
}

static void set_avail(struct srv *s, long long bytes)
{
    char q[64];
    snprintf(q, sizeof(q), "bytes=%lld", bytes);
    test_ep(s, "avail", q);
}

/* ---- JSON and metrics ---- */

/* The item at a dotted path ("flush.failed"), or NULL. */
static const cJSON *jget(const cJSON *root, const char *path)
{
    char key[64];
    const cJSON *cur = root;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(key) || !cJSON_IsObject(cur))
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        path += n + (path[n] == '.');
    }
    return cur;
}

static double jnum(const cJSON *root, const char *path)
{
    const cJSON *v = jget(root, path);
    if (!cJSON_IsNumber(v))
        fail_msg("/admin/stats: %s is not a number", path);
    return v->valuedouble;
}

static int jbool(const cJSON *root, const char *path)
{
    const cJSON *v = jget(root, path);
    if (!cJSON_IsBool(v))
        fail_msg("/admin/stats: %s is not a boolean", path);
    return cJSON_IsTrue(v);
}

/* The value of an unlabelled sample "name value" in a metrics text, or -1
 * when there is no such line. */
static long metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (!strncmp(p, name, n) && p[n] == ' ')
            return strtol(p + n + 1, NULL, 10);
    }
    return -1;
}

/* ---- one snapshot of the four views (R1..R4) ---- */

struct readiness {
    long status;    /* R1 */
    char code[32];  /* its error code; "" on a 200 */
    char state[16]; /* R3: process.state */
    int failed;     /* flush.failed */
    int read_only;  /* io.read_only */
    double free_bytes, headroom;
    long ready, store_failed_gauge, read_only_gauge; /* R4 */
};

/* GET /readyz: its status and error code; R1's shape is checked. */
static long readyz(struct srv *s, char code[32], const char *what)
{
    struct http_resp r;
    code[0] = '\0';
    http_req_ok(s, "GET", "/readyz", NULL, NULL, 0, &r);
    if (r.status == 200) {
        if (!strstr(r.body, "\"status\":\"ready\""))
            fail_msg("%s: /readyz 200 with body %.200s", what, r.body);
    } else if (r.status == 503) {
        const char *e = strstr(r.body, "\"error\":\"");
        if (e)
            snprintf(code, 32, "%.*s", (int)strcspn(e + 9, "\""), e + 9);
        http_expect_error(&r, 503, code, what);
        http_expect_retry_after(&r, what);
    } else {
        fail_msg("%s: /readyz answered %ld: %.200s", what, r.status, r.body);
    }
    long st = r.status;
    http_resp_free(&r);
    return st;
}

static void read_views(struct srv *s, struct readiness *v, const char *what)
{
    struct http_resp r;
    memset(v, 0, sizeof(*v));
    v->status = readyz(s, v->code, what);

    http_req_ok(s, "GET", "/healthz", NULL, NULL, 0, &r); /* R2 */
    if (r.status != 200 || !strstr(r.body, "\"status\":\"ok\""))
        fail_msg("%s: /healthz %ld %.200s", what, r.status, r.body);
    http_resp_free(&r);

    http_req_ok(s, "GET", "/admin/stats", NULL, NULL, 0, &r); /* R3 */
    http_expect_status(&r, 200, "/admin/stats");
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    const cJSON *st = jget(j, "process.state");
    if (!cJSON_IsString(st))
        fail_msg("%s: /admin/stats has no process.state: %.300s", what, r.body);
    snprintf(v->state, sizeof(v->state), "%s", st->valuestring);
    v->failed = jbool(j, "flush.failed");
    v->read_only = jbool(j, "io.read_only");
    v->free_bytes = jnum(j, "data_file.free_bytes");
    v->headroom = jnum(j, "data_file.headroom_bytes");
    cJSON_Delete(j);
    http_resp_free(&r);

    http_req_ok(s, "GET", "/metrics", NULL, NULL, 0, &r); /* R4 */
    http_expect_status(&r, 200, "/metrics");
    v->ready = metric_value(r.body, "blobd_ready");
    v->store_failed_gauge = metric_value(r.body, "blobd_store_failed");
    v->read_only_gauge = metric_value(r.body, "blobd_read_only");
    http_resp_free(&r);
}

/* Assert R1..R4 for one state: code NULL means ready (200). */
static void expect_views(struct srv *s, const char *code, const char *state,
                         const char *what)
{
    struct readiness v;
    char again[32];
    for (int tries = 0;; tries++) {
        read_views(s, &v, what);
        long st = readyz(s, again, what);
        if (st == v.status && !strcmp(again, v.code))
            break; /* no transition while the views were read */
        if (tries == 4)
            fail_msg("%s: /readyz keeps changing (%ld %s, then %ld %s)", what,
                     v.status, v.code, st, again);
    }
    if (code ? v.status != 503 || strcmp(v.code, code) : v.status != 200)
        fail_msg("%s: /readyz %ld \"%s\", want %s %s", what, v.status, v.code,
                 code ? "503" : "200", code ? code : "");
    if (strcmp(v.state, state) != 0)
        fail_msg("%s: /admin/stats process.state \"%s\", want \"%s\" "
                 "(/readyz %ld %s)",
                 what, v.state, state, v.status, v.code);
    if (v.ready != (code ? 0 : 1))
        fail_msg("%s: /metrics blobd_ready %ld while /readyz is %ld %s", what,
                 v.ready, v.status, v.code);
    int failed = code && !strcmp(code, "store_failed");
    int ro = code && !strcmp(code, "read_only");
    if (v.failed != failed || v.store_failed_gauge != failed)
        fail_msg("%s: flush.failed %d, blobd_store_failed %ld, want %d", what,
                 v.failed, v.store_failed_gauge, failed);
    if (v.read_only != ro || v.read_only_gauge != ro)
        fail_msg("%s: io.read_only %d, blobd_read_only %ld, want %d", what,
                 v.read_only, v.read_only_gauge, ro);
    /* free space against the headroom: below it exactly for no_space, not
     * below it when ready; while opening every store value is 0 */
    int low = v.free_bytes < v.headroom;
    int want_low = code && !strcmp(code, "no_space");
    if (strcmp(state, "opening") != 0 && (want_low || !code)) {
        if (low != want_low)
            fail_msg("%s: data_file.free_bytes %.0f, headroom_bytes %.0f, "
                     "with /readyz %ld %s",
                     what, v.free_bytes, v.headroom, v.status, v.code);
    }
}

/* ---- writes ---- */

/* PUT guid <- http_fill(seed, len) with an optional query; *r kept. */
static long put_seed(struct srv *s, const char *guid, const char *query,
                     size_t len, uint64_t seed, struct http_resp *r)
{
    char path[160];
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    http_fill(buf, len, seed);
    snprintf(path, sizeof(path), "/blobs/%s%s", guid, query ? query : "");
    http_req_ok(s, "PUT", path, NULL, buf, len, r);
    free(buf);
    return r->status;
}

/* A PUT of a new GUID that must be refused with status and code (503s
 * with Retry-After); *r kept for more checks, the GUID in guid. */
static void put_refused(struct srv *s, long status, const char *code,
                        char guid[HTTP_GUID_BUF], struct http_resp *r,
                        const char *what)
{
    http_guid_rand(guid);
    put_seed(s, guid, NULL, 3000, 77, r);
    http_expect_error(r, status, code, what);
    if (status == 503)
        http_expect_retry_after(r, what);
}

static void put_ok(struct srv *s, const char *guid, size_t len, uint64_t seed,
                   char etag[API_ETAG_MAX])
{
    struct http_resp r;
    put_seed(s, guid, NULL, len, seed, &r);
    if (r.status != 201 && r.status != 204)
        fail_msg("PUT %s: status %ld body %.200s", guid, r.status, r.body);
    if (etag)
        http_etag_of(&r, etag, "PUT");
    http_resp_free(&r);
}

/* POST /flush answers want (200, or an error with code). */
static void flush_expect(struct srv *s, long want, const char *code)
{
    struct http_resp r;
    http_req_ok(s, "POST", "/flush", NULL, NULL, 0, &r);
    if (code)
        http_expect_error(&r, want, code, "POST /flush");
    else
        http_expect_status(&r, want, "POST /flush");
    http_resp_free(&r);
}

/* The response carries Connection: close. */
static void expect_close(const struct http_resp *r, const char *what)
{
    char v[64];
    if (!http_header(r, "Connection", v, sizeof(v)) || strcasecmp(v, "close"))
        fail_msg("%s: no Connection: close (headers: %.400s)", what,
                 r->headers);
}

/* ---- 1. opening ---- */

static void test_opening(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    static const char *const env[] = {"BLOBD_TEST_OPEN_DELAY_MS=1500", NULL};
    char g[HTTP_GUID_BUF], path[160];
    struct http_resp r;
    srv_init(s);
    uint64_t t0 = http_mono_ms();
    int rc = srv_start(s, quiet_args, env);
    if (rc != 0)
        fail_msg("blobd-test did not start: %d", rc);

    expect_views(s, "not_ready", "opening", "while opening");
    put_refused(s, 503, "not_ready", g, &r, "PUT while opening");
    http_resp_free(&r);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    http_req_ok(s, "GET", path, NULL, NULL, 0, &r);
    http_expect_error(&r, 503, "not_ready", "GET while opening");
    http_resp_free(&r);
    uint64_t checked = http_mono_ms() - t0;
    if (checked >= 1500)
        fail_msg("the opening checks took %" PRIu64 " ms: past the delay",
                 checked);

    if (srv_wait_ready(s) != 0)
        fail_msg("not ready after the open delay (log %s)", s->log);
    uint64_t took = http_mono_ms() - t0;
    if (took < 1400)
        fail_msg("ready after %" PRIu64 " ms with a 1500 ms open delay", took);
    expect_views(s, NULL, "ready", "once open");
    put_ok(s, g, 3000, 77, NULL);
    http_expect_blob(s, g, 3000, 77, NULL, "stored once open");
    assert_int_equal(srv_stop(s), 0);
}

/* ---- 2. draining ---- */

struct held_put {
    struct srv *s;
    char guid[HTTP_GUID_BUF];
    long status;
    char durable[64];
    int closed; /* Connection: close on its answer */
};

/* The held PUT, on its own thread: http_req, not the helpers that fail
 * the test (cmocka's failures belong to the main thread). */
static void *held_put_main(void *arg)
{
    struct held_put *h = arg;
    struct http_resp r;
    char v[64], path[160];
    uint8_t buf[5000];
    http_fill(buf, sizeof(buf), 5);
    snprintf(path, sizeof(path), "/blobs/%s?fsync=true", h->guid);
    memset(&r, 0, sizeof(r));
    if (http_req(h->s, "PUT", path, NULL, buf, sizeof(buf), &r) != 0)
        return NULL;
    h->status = r.status;
    if (http_header(&r, "Blob-Durable", v, sizeof(v)))
        snprintf(h->durable, sizeof(h->durable), "%s", v);
    h->closed =
        http_header(&r, "Connection", v, sizeof(v)) && !strcasecmp(v, "close");
    http_resp_free(&r);
    return NULL;
}

/* Wait until a job is queued or running on the I/O thread. */
static void wait_job_running(struct srv *s, long ms)
{
    uint64_t end = http_mono_ms() + (uint64_t)ms;
    while (http_mono_ms() < end) {
        struct http_resp r;
        http_req_ok(s, "GET", "/admin/stats", NULL, NULL, 0, &r);
        cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
        double depth = j ? jnum(j, "io.queue_depth") : 0;
        cJSON_Delete(j);
        http_resp_free(&r);
        if (depth >= 1)
            return;
        http_sleep_ms(10);
    }
    fail_msg("the held PUT never showed in io.queue_depth");
}

static void test_draining(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    struct held_put h = {.s = s};
    char g[HTTP_GUID_BUF];
    struct http_resp r;
    pthread_t t;
    up_with(s, quiet_args, fault_env);
    expect_views(s, NULL, "ready", "before SIGTERM");

    /* Every sync now sleeps 1.5 s: a durable PUT (a data sync and a log
     * sync) stays in flight for about 3 s. */
    test_ep(s, "stall", "ms=1500");
    http_guid_rand(h.guid);
    assert_int_equal(pthread_create(&t, NULL, held_put_main, &h), 0);
    wait_job_running(s, 2000);
    uint64_t t0 = http_mono_ms();
    srv_signal(s, SIGTERM);

    /* The signal thread switches the state: wait for it (new
     * connections: every http_req is one). */
    char code[32] = "";
    while (http_mono_ms() - t0 < 1000 &&
           (readyz(s, code, "/readyz after SIGTERM"), strcmp(code, "draining")))
        http_sleep_ms(10);
    expect_views(s, "draining", "draining", "draining");
    http_req_ok(s, "GET", "/readyz", NULL, NULL, 0, &r);
    expect_close(&r, "/readyz while draining");
    http_resp_free(&r);
    put_refused(s, 503, "draining", g, &r, "PUT while draining");
    expect_close(&r, "PUT while draining");
    http_resp_free(&r);
    uint64_t window = http_mono_ms() - t0;
    /* no slow final flush */
    test_ep(s, "stall", "ms=0");

    pthread_join(t, NULL);
    uint64_t held = http_mono_ms() - t0;
    print_message("draining checks %" PRIu64 " ms after SIGTERM; held PUT "
                  "answered after %" PRIu64 " ms\n",
                  window, held);
    if (h.status != 201 || strcmp(h.durable, "true") != 0)
        fail_msg("the held PUT ?fsync=true: %ld, Blob-Durable \"%s\"", h.status,
                 h.durable);
    if (!h.closed)
        fail_msg("the held PUT, answered while draining: no Connection: "
                 "close");
    int st = srv_wait(s, 15000);
    if (st != 0)
        fail_msg("exit status %d after the drain, want 0 (log %s)", st, s->log);

    srv_restart(s, quiet_args, fault_env);
    http_expect_blob(s, h.guid, 5000, 5, NULL, "held through the drain");
    http_expect_absent(s, g, "refused while draining");
    assert_int_equal(srv_stop(s), 0);
}

/* ---- 3. sticky failures ---- */

/* Write, arm fault (a /test/fault query), flush: 503 store_failed, and it
 * stays so with the fault disarmed until a restart. */
static void sticky_case(const char *fault)
{
    struct srv *s = &g_srv;
    char a[HTTP_GUID_BUF], b[HTTP_GUID_BUF], g[HTTP_GUID_BUF];
    char ea[API_ETAG_MAX];
    struct http_resp r;
    up_with(s, quiet_args, fault_env);
    http_guid_rand(a);
    http_guid_rand(b);
    put_ok(s, a, 70000, 1, ea);
    flush_expect(s, 200, NULL);
    expect_views(s, NULL, "ready", "before the fault");

    put_ok(s, b, 9000, 2, NULL); /* written, not yet durable */
    test_ep(s, "fault", fault);
    flush_expect(s, 503, "store_failed");
    test_ep(s, "fault", "disarm=1");

    /* the log says why */
    for (int i = 0; i < 50 && !srv_log_has(s, "refuses writes"); i++)
        http_sleep_ms(20);
    if (!srv_log_has(s, "Input/output error") ||
        !srv_log_has(s, "the store refuses writes until reopened"))
        fail_msg("%s: the log does not say why writes are refused (see %s)",
                 fault, s->log);

    /* sticky: the same on every poll, the fault gone */
    for (int i = 0; i < 5; i++) {
        expect_views(s, "store_failed", "ready", "after the failed flush");
        http_sleep_ms(60);
    }
    put_refused(s, 503, "store_failed", g, &r, "PUT after the failed flush");
    http_resp_free(&r);
    http_expect_absent(s, g, "refused after the failed flush");
    http_expect_blob(s, a, 70000, 1, ea, "flushed, read after the failure");
    flush_expect(s, 503, "store_failed");
    /* the final flush fails too: exit 1 */
    int st = srv_stop(s);
    if (st != 1)
        fail_msg("exit status %d after a sticky failure, want 1 (the final "
                 "flush failed)",
                 st);

    srv_restart(s, quiet_args, fault_env);
    expect_views(s, NULL, "ready", "after the restart");
    http_expect_blob(s, a, 70000, 1, ea, "flushed before the failure");
    {
        char path[160];
        snprintf(path, sizeof(path), "/blobs/%s", b);
        long bs = http_status(s, "GET", path, NULL, NULL, 0);
        print_message("the blob written before the failed flush: %ld after "
                      "the restart\n",
                      bs);
    }
    put_ok(s, g, 3000, 77, NULL);
    flush_expect(s, 200, NULL);
    http_expect_blob(s, g, 3000, 77, NULL, "stored after the restart");
    assert_int_equal(srv_stop(s), 0);
}

static void test_sticky_sync(void **state)
{
    (void)state;
    sticky_case("op=sync&mode=eio");
}

static void test_sticky_log_write(void **state)
{
    (void)state;
    /* the data was written by the PUT: the flush's first pwritev is its
     * log append */
    sticky_case("op=pwritev&mode=eio&nth=1");
}

/*
 * Beyond the five states: an EIO on a blob's own data write (its pwritev,
 * not the log's) is not a sticky failure (SPEC §2 lists a failed sync or
 * log write); the PUT answers 500 write_failed, stores nothing, and the
 * views stay ready: the next PUT is stored.
 */
static void test_data_write_eio(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    char g[HTTP_GUID_BUF];
    struct http_resp r;
    up_with(s, quiet_args, fault_env);
    http_guid_rand(g);
    test_ep(s, "fault", "op=pwritev&mode=eio");
    put_seed(s, g, NULL, 3000, 1, &r);
    test_ep(s, "fault", "disarm=1");
    http_expect_error(&r, 500, "write_failed",
                      "PUT with EIO on its data write");
    http_resp_free(&r);
    http_expect_absent(s, g, "its data write failed");
    expect_views(s, NULL, "ready", "after a data write EIO");
    put_ok(s, g, 3000, 1, NULL);
    assert_int_equal(srv_stop(s), 0);
}

/* ---- 4. below the headroom ---- */

static double stat_num(struct srv *s, const char *path)
{
    struct http_resp r;
    http_req_ok(s, "GET", "/admin/stats", NULL, NULL, 0, &r);
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    double v = jnum(j, path);
    cJSON_Delete(j);
    http_resp_free(&r);
    return v;
}

static void test_no_space(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    char a[HTTP_GUID_BUF], g[HTTP_GUID_BUF], ea[API_ETAG_MAX];
    struct http_resp r;
    up_with(s, quiet_args, fault_env);
    http_guid_rand(a);
    put_ok(s, a, 20000, 1, ea);
    flush_expect(s, 200, NULL);
    long long headroom = (long long)stat_num(s, "data_file.headroom_bytes");
    if (headroom < 64ll << 20)
        fail_msg("headroom_bytes %lld, below 64 MiB", headroom);

    /* the boundary: exactly the headroom free is enough */
    set_avail(s, headroom);
    expect_views(s, NULL, "ready", "free space == headroom");
    set_avail(s, headroom - 1);
    expect_views(s, "no_space", "ready", "one byte below the headroom");

    /* a PUT that needs blobs.dat to grow: 507 (new GUIDs first fill the
     * slots already preallocated) */
    int fitted = 0;
    for (;; fitted++) {
        http_guid_rand(g);
        put_seed(s, g, NULL, 3000, 100 + (uint64_t)fitted, &r);
        if (r.status != 201 || fitted == 200)
            break;
        http_resp_free(&r);
    }
    http_expect_error(&r, 507, "no_space", "PUT below the headroom");
    http_resp_free(&r);
    http_expect_absent(s, g, "refused with 507");
    print_message("%d PUTs into preallocated slots, then 507\n", fitted);
    set_avail(s, 0);
    expect_views(s, "no_space", "ready", "0 bytes free");
    http_expect_blob(s, a, 20000, 1, ea, "read below the headroom");

    /* not sticky */
    set_avail(s, -1);
    expect_views(s, NULL, "ready", "space back");
    put_ok(s, g, 3000, 7, NULL);
    http_expect_blob(s, g, 3000, 7, NULL, "stored with space back");
    assert_int_equal(srv_stop(s), 0);
}

/* ---- 5. read-only ---- */

static void test_read_only(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    static const char *const ro_args[] = {"--read-only", NULL};
    char a[HTTP_GUID_BUF], g[HTTP_GUID_BUF], ea[API_ETAG_MAX], path[160];
    char code[32] = "";
    struct http_resp r;
    up_with(s, NULL, NULL);
    http_guid_rand(a);
    put_ok(s, a, 40000, 3, ea);
    flush_expect(s, 200, NULL);
    assert_int_equal(srv_stop(s), 0);

    /* read-only is never ready: wait for the open, not for a 200 */
    int rc = srv_start(s, ro_args, NULL);
    if (rc != 0)
        fail_msg("blobd-test --read-only did not start: %d (log %s)", rc,
                 s->log);
    uint64_t end = http_mono_ms() + 10000;
    while (readyz(s, code, "/readyz --read-only") == 503 &&
           !strcmp(code, "not_ready") && http_mono_ms() < end)
        http_sleep_ms(10);
    expect_views(s, "read_only", "ready", "--read-only");

    http_expect_blob(s, a, 40000, 3, ea, "GET --read-only");
    put_refused(s, 503, "read_only", g, &r, "PUT --read-only");
    http_resp_free(&r);
    put_seed(s, a, NULL, 100, 9, &r);
    http_expect_error(&r, 503, "read_only", "rewrite --read-only");
    http_resp_free(&r);
    snprintf(path, sizeof(path), "/blobs/%s", a);
    http_req_ok(s, "DELETE", path, NULL, NULL, 0, &r);
    http_expect_error(&r, 503, "read_only", "DELETE --read-only");
    http_resp_free(&r);
    flush_expect(s, 503, "read_only");
    http_expect_blob(s, a, 40000, 3, ea, "after the refusals");
    http_expect_absent(s, g, "refused --read-only");
    expect_views(s, "read_only", "ready", "--read-only, after the refusals");
    assert_int_equal(srv_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_opening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_draining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_log_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_write_eio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
