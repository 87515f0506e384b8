/*
 * test_http_slowhttp.c - hostile clients beyond the server's own tests:
 * Debian's slowhttptest in its four modes and
 * a byte flipper over valid requests, while a prober and a light load run.
 *
 *  1. slow headers (slowhttptest -H, 300 connections at 150 a second):
 *     the connections past the per-client limit are refused, the rest cut
 *     by the header deadline; http.header_timeouts and
 *     http.rejected_per_client grow, and no more than the limit are ever
 *     open from the attacker;
 *  2. slow body (-B, PUT /blobs/<g> with Content-Length 8192 and a few
 *     bytes a second): nothing is stored under <g>, the 512 KiB upload
 *     frames the attack holds come back;
 *  3. slow read (-X against a stored 512 KiB blob, ten pipelined GETs a
 *     connection read through a tiny window): others are served, the
 *     blocked writers are closed by the idle timeout before the attacker
 *     gives up, and their frames come back;
 *  4. range attack (-R with GET: "bytes=0-,5-0,5-1,...,5-2000"): every
 *     answer is the whole blob (an a-b with b < a, and more than 16
 *     ranges: docs/api.md, Range rules 1), checked by one request with the
 *     same header; no request answered 5xx and no amplification;
 *  5. byte flipper: 300 valid requests (PUT with Content-Length, GET, GET
 *     with Range, HEAD, DELETE, POST /flush, PUT with If-None-Match: *,
 *     chunked PUT), each with 1-3 random bytes replaced, each on a fresh
 *     connection; every one gets a parseable status line or a clean close
 *     within header-timeout + 2 s; a refused write stores nothing, and the
 *     blob count matches the creations (Location of a 201) and deletes
 *     (a DELETE's 204) the answers acknowledged;
 *  6. afterwards: the prober's totals, the load's blobs intact.
 *
 * Who talks from where (loopback takes any 127/8 source; slowhttptest
 * cannot bind one, so the attacks come from 127.0.0.1 and everything the
 * test does itself comes from elsewhere, under its own per-client limit):
 *   127.0.0.1  slowhttptest        127.0.0.2  the prober (GET /healthz)
 *   127.0.0.3  the load            127.0.0.4  the flipper
 *   127.0.0.5  the test's own requests: setup, checks, /admin/stats
 *
 * One server runs the whole file: --header-timeout 3,
 * --connection-timeout 3 (not 5: a flipped Content-Length or chunk size
 * leaves the server waiting for a body, which only the idle timeout ends,
 * and the flipper's bound is header-timeout + 2 s), --cache-size 0 (so
 * memory.used_bytes counts only request frames and response buffers) and
 * the default 128 connections per client.  Every test: the prober's
 * worst latency < 2 s and no failure, the load's failures 0, then the
 * server's descriptors, http.open_connections and memory.used_bytes back
 * to their baselines within header-timeout + connection-timeout + 3 s.
 *
 * slowhttptest (Debian package slowhttptest) is looked up in PATH; without
 * it tests 1-4 skip, and with BLOBD_NO_SKIP=1 that skip is a failure.
 * Its output, CSV and HTML reports go to the server's temp dir
 * (sht-<mode>.*; BLOBD_KEEP_TMP=1 keeps them).  The flipper's requests
 * come from a seeded generator: BLOBD_FLIP_SEED=<n> repeats a run (the
 * seed is printed), BLOBD_FLIP_VERBOSE=1 shows every request closed
 * without an answer, BLOBD_FLIP_DUMP=<dir> writes every flipped request
 * as sent to <dir>/flip-<n>-<status>.bin.
 *
 * Invariants:
 *  S1. Nothing but slowhttptest talks from 127.0.0.1, so its connections
 *      are the only ones the per-client limit refuses.
 *  S2. Each flipper victim is the target of at most one mutating request
 *      (a DELETE or a PUT with If-None-Match: *), so the answers alone
 *      say what became of it; reads may go to any.
 *  S3. The load appends a blob to its list only after its 201, and is
 *      paused (between two operations) while manifest.entries is read.
 *
 * Thread rules: the prober, the load and the flipper's workers record
 * what they saw and never fail the test (cmocka wants its main thread);
 * the main thread judges after joining them or pausing the load.  The
 * load's list grows under g_load.lock, by the load's thread only.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "srv.h"

#define HT_S 3 /* --header-timeout */
#define CT_S 3 /* --connection-timeout */
#define PER_CLIENT 128
#define SETTLE_MS ((HT_S + CT_S + 3) * 1000)
#define PROBE_MAX_MS 2000
#define FLIP_ANSWER_MS ((HT_S + 2) * 1000)

#define IP_PROBE "127.0.0.2"
#define IP_LOAD "127.0.0.3"
#define IP_FLIP "127.0.0.4"
#define IP_CHECK "127.0.0.5"

#define REQ_TIMEOUT_MS 5000 /* the test's and the load's own requests */
#define BIG_LEN (512u * 1024)
#define RANGE_BLOB_LEN 4096u
#define RANGE_END 2000 /* slowhttptest -b */
#define MAX_SAMPLES 256

#define STR_(x) #x
#define STR(x) STR_(x)
static const char *const k_args[] = {"--header-timeout",
                                     STR(HT_S),
                                     "--connection-timeout",
                                     STR(CT_S),
                                     "--cache-size",
                                     "0",
                                     NULL};

static struct srv g_srv;
static struct {
    int fds;
    double open, mem;
    long rss;
} g_base;
/* Blobs the tests stored themselves (the slow-read and the range blob). */
static int g_own_blobs;
/* The running slowhttptest, killed by the teardown of a failed test. */
static pid_t g_attacker;
static char g_sht[512]; /* its path; "" when not found */
/* The flipper's model: the GUIDs of its own known to exist (owned). */
static struct {
    char (*g)[HTTP_GUID_BUF];
    size_t n, cap;
} g_model;

/* ---- /admin/stats from 127.0.0.5 ---- */

static cJSON *stats_get(void)
{
    struct http_resp r;
    long st = http_get_from_resp(&g_srv, IP_CHECK, "/admin/stats",
                                 REQ_TIMEOUT_MS, &r);
    if (st != 200) {
        http_resp_free(&r);
        fail_msg("GET /admin/stats from %s: status %ld (0: no answer)",
                 IP_CHECK, st);
    }
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    http_resp_free(&r);
    if (!j)
        fail_msg("GET /admin/stats: the body is not JSON");
    return j;
}

/* The number at a dotted path of a stats document; fails when absent. */
static double jnum(const cJSON *j, const char *path)
{
    char key[64];
    const cJSON *cur = j;
    for (const char *p = path; cur && *p;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(key) || !cJSON_IsObject(cur)) {
            cur = NULL;
            break;
        }
        memcpy(key, p, n);
        key[n] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        p += n + (p[n] == '.');
    }
    if (!cJSON_IsNumber(cur))
        fail_msg("/admin/stats: %s is not a number", path);
    return cur->valuedouble;
}

static double stat1(const char *path)
{
    cJSON *j = stats_get();
    double v = jnum(j, path);
    cJSON_Delete(j);
    return v;
}

/* http.requests by method and class, to print what an attack got. */
static const char *const k_methods[] = {"GET",  "HEAD",   "PUT",
                                        "POST", "DELETE", "OTHER"};
static const char *const k_classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
#define NMETH 6
#define NCLASS 5

struct reqcount {
    double n[NMETH][NCLASS];
    double bytes_out, header_timeouts, rejected;
};

static void reqcount_get(struct reqcount *c)
{
    char path[64];
    cJSON *j = stats_get();
    for (int m = 0; m < NMETH; m++) {
        for (int k = 0; k < NCLASS; k++) {
            snprintf(path, sizeof(path), "http.requests.%s.%s", k_methods[m],
                     k_classes[k]);
            c->n[m][k] = jnum(j, path);
        }
    }
    c->bytes_out = jnum(j, "http.bytes_out");
    c->header_timeouts = jnum(j, "http.header_timeouts");
    c->rejected = jnum(j, "http.rejected_per_client");
    cJSON_Delete(j);
}

/* "GET 2xx +12, PUT 4xx +3" for b - a into buf; returns the total. */
static double reqcount_delta(const struct reqcount *a, const struct reqcount *b,
                             char *buf, size_t cap)
{
    size_t n = 0;
    double total = 0;
    buf[0] = '\0';
    for (int m = 0; m < NMETH; m++) {
        for (int k = 0; k < NCLASS; k++) {
            double d = b->n[m][k] - a->n[m][k];
            total += d;
            if (d != 0 && n + 40 < cap)
                n += (size_t)snprintf(buf + n, cap - n, "%s%s %s +%.0f",
                                      n ? ", " : "", k_methods[m], k_classes[k],
                                      d);
        }
    }
    return total;
}

/* ---- raw requests ---- */

/*
 * One request from ip on a fresh connection, with Host, Connection: close,
 * the extra header lines hdrs (each ending in CRLF; may be "") and, when
 * body is not NULL, Content-Length and the body.  The answer in *r (owned;
 * zeroed on a failure).  Returns the status, 0 when there was no complete
 * answer within timeout_ms.  Safe from any thread; never fails the test.
 */
static long xreq(const char *ip, const char *method, const char *path,
                 const char *hdrs, const void *body, size_t len, int timeout_ms,
                 struct http_resp *r)
{
    size_t cap = BIG_LEN + 64 * 1024;
    char *buf = malloc(cap), *head = NULL;
    long st = 0;
    memset(r, 0, sizeof(*r));
    int fd = http_raw_connect_from(&g_srv, ip);
    if (fd < 0 || !buf)
        goto out;
    int hl;
    if (body)
        hl = asprintf(&head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                      "close\r\n%sContent-Length: %zu\r\n\r\n",
                      method, path, hdrs, len);
    else
        hl = asprintf(&head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
                      "close\r\n%s\r\n",
                      method, path, hdrs);
    if (hl < 0) {
        head = NULL;
        goto out;
    }
    if (http_raw_send(fd, head, (size_t)hl) != 0 ||
        (body && len && http_raw_send(fd, body, len) != 0))
        goto out;
    long n = http_raw_read(fd, buf, cap, timeout_ms);
    if (n <= 0 || http_raw_parse(buf, (size_t)n, r) != 0)
        goto out;
    char cl[32];
    if (strcmp(method, "HEAD") != 0 &&
        http_header(r, "Content-Length", cl, sizeof(cl)) &&
        r->body_len < strtoull(cl, NULL, 10)) {
        http_resp_free(r); /* cut short */
        memset(r, 0, sizeof(*r));
        goto out;
    }
    st = r->status;
out:
    if (fd >= 0)
        close(fd);
    free(head);
    free(buf);
    return st;
}

/* PUT from 127.0.0.5 that must answer 201. */
static void check_put(const char *guid, const void *data, size_t len,
                      const char *what)
{
    char path[64];
    struct http_resp r;
    snprintf(path, sizeof(path), "/blobs/%s", guid);
    long st = xreq(IP_CHECK, "PUT", path, "", data, len, REQ_TIMEOUT_MS, &r);
    http_resp_free(&r);
    if (st != 201)
        fail_msg("%s: PUT /blobs/%s from %s: %ld, want 201", what, guid,
                 IP_CHECK, st);
}

/* GET from 127.0.0.5: the status; the body in *r (owned). */
static long check_get(const char *guid, struct http_resp *r)
{
    char path[64];
    snprintf(path, sizeof(path), "/blobs/%s", guid);
    return xreq(IP_CHECK, "GET", path, "", NULL, 0, REQ_TIMEOUT_MS, r);
}

/* GET from 127.0.0.5 answers 200 with exactly data[0..len). */
static void check_data(const char *guid, const void *data, size_t len,
                       const char *what)
{
    struct http_resp r;
    char w[160];
    long st = check_get(guid, &r);
    if (st != 200) {
        http_resp_free(&r);
        fail_msg("%s: GET /blobs/%s: %ld, want 200", what, guid, st);
    }
    snprintf(w, sizeof(w), "%s: GET /blobs/%s", what, guid);
    http_assert_bytes(r.body, r.body_len, data, len, w);
    http_resp_free(&r);
}

/* GET from 127.0.0.5 answers 404. */
static void check_absent(const char *guid, const char *what)
{
    struct http_resp r;
    long st = check_get(guid, &r);
    http_resp_free(&r);
    if (st != 404)
        fail_msg("%s: GET /blobs/%s: %ld, want 404", what, guid, st);
}

/* ---- the load: PUT a small blob from 127.0.0.3, GET it back ---- */

#define LOAD_EVERY_MS 100
#define LOAD_SEED 0x5109ad0000000000ull

struct load_blob {
    char guid[HTTP_GUID_BUF];
    uint32_t len;
};

static struct {
    pthread_t thread;
    int running;
    atomic_int stop, pause, paused;
    atomic_long ops, fails, max_ms;
    pthread_mutex_t lock; /* guards blobs, n, cap */
    struct load_blob *blobs;
    size_t n, cap;
} g_load = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Blob i of the load: its length and bytes are functions of i. */
static uint32_t load_len(size_t i)
{
    uint64_t x = LOAD_SEED + i;
    return 1 + (uint32_t)(tu_rand(&x) % 4096);
}

__attribute__((format(printf, 1, 2))) static void load_fail(const char *fmt,
                                                            ...)
{
    va_list ap;
    long n = atomic_fetch_add(&g_load.fails, 1);
    if (n >= 10)
        return;
    va_start(ap, fmt);
    fprintf(stderr, "load: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void *load_main(void *arg)
{
    (void)arg;
    char *buf = malloc(4096);
    if (!buf) {
        load_fail("out of memory");
        return NULL;
    }
    while (!atomic_load(&g_load.stop)) {
        if (atomic_load(&g_load.pause)) {
            atomic_store(&g_load.paused, 1);
            http_sleep_ms(5);
            continue;
        }
        atomic_store(&g_load.paused, 0);
        uint64_t t0 = http_mono_ms();
        size_t i = g_load.n; /* only this thread grows it */
        struct load_blob b;
        char path[64];
        struct http_resp r;
        http_guid_rand(b.guid);
        b.len = load_len(i);
        http_fill(buf, b.len, LOAD_SEED + i);
        snprintf(path, sizeof(path), "/blobs/%s", b.guid);
        long st =
            xreq(IP_LOAD, "PUT", path, "", buf, b.len, REQ_TIMEOUT_MS, &r);
        http_resp_free(&r);
        if (st != 201) {
            load_fail("PUT %s (%u bytes): %ld after %llu ms, want 201", path,
                      b.len, st, (unsigned long long)(http_mono_ms() - t0));
        } else {
            pthread_mutex_lock(&g_load.lock);
            if (g_load.n == g_load.cap) {
                size_t nc = g_load.cap ? 2 * g_load.cap : 256;
                void *p = realloc(g_load.blobs, nc * sizeof(*g_load.blobs));
                if (p) {
                    g_load.blobs = p;
                    g_load.cap = nc;
                }
            }
            if (g_load.n < g_load.cap)
                g_load.blobs[g_load.n++] = b;
            pthread_mutex_unlock(&g_load.lock);
            st = xreq(IP_LOAD, "GET", path, "", NULL, 0, REQ_TIMEOUT_MS, &r);
            if (st != 200 || r.body_len != b.len ||
                memcmp(r.body, buf, b.len) != 0)
                load_fail("GET %s: %ld with %zu bytes, want 200 with the "
                          "%u bytes stored%s",
                          path, st, r.body_len, b.len,
                          st == 200 && r.body_len == b.len ? " (they differ)"
                                                           : "");
            http_resp_free(&r);
        }
        long ms = (long)(http_mono_ms() - t0);
        if (ms > atomic_load(&g_load.max_ms))
            atomic_store(&g_load.max_ms, ms);
        atomic_fetch_add(&g_load.ops, 1);
        while (!atomic_load(&g_load.stop) &&
               http_mono_ms() < t0 + LOAD_EVERY_MS)
            http_sleep_ms(5);
    }
    free(buf);
    return NULL;
}

static void load_start(void)
{
    atomic_init(&g_load.stop, 0);
    atomic_init(&g_load.pause, 0);
    atomic_init(&g_load.paused, 0);
    atomic_init(&g_load.ops, 0);
    atomic_init(&g_load.fails, 0);
    atomic_init(&g_load.max_ms, 0);
    int rc = pthread_create(&g_load.thread, NULL, load_main, NULL);
    if (rc != 0)
        fail_msg("load: pthread_create: %s", strerror(rc));
    g_load.running = 1;
}

static void load_stop(void)
{
    if (!g_load.running)
        return;
    atomic_store(&g_load.stop, 1);
    pthread_join(g_load.thread, NULL);
    g_load.running = 0;
}

/* Hold the load between two operations; returns its blob count. */
static size_t load_pause(void)
{
    atomic_store(&g_load.pause, 1);
    uint64_t end = http_mono_ms() + 2 * REQ_TIMEOUT_MS + 1000;
    while (g_load.running && !atomic_load(&g_load.paused)) {
        if (http_mono_ms() > end)
            fail_msg("the load did not pause");
        http_sleep_ms(5);
    }
    pthread_mutex_lock(&g_load.lock);
    size_t n = g_load.n;
    pthread_mutex_unlock(&g_load.lock);
    return n;
}

/* Let the load go on; returns once it has (so a later load_pause cannot
 * take the flag of this pause for its own). */
static void load_resume(void)
{
    atomic_store(&g_load.pause, 0);
    uint64_t end = http_mono_ms() + 1000;
    while (g_load.running && atomic_load(&g_load.paused) &&
           http_mono_ms() < end)
        http_sleep_ms(1);
}

/* ---- per test: the prober, the load's failures, the baselines ---- */

static struct http_prober g_prober;
static struct {
    long probes, fails, max_ms;
} g_probe_total;
static struct {
    uint64_t t0;
    long load_fails, load_ops;
} g_test;

static void test_begin(void)
{
    g_test.t0 = http_mono_ms();
    g_test.load_fails = atomic_load(&g_load.fails);
    g_test.load_ops = atomic_load(&g_load.ops);
    http_prober_start(&g_prober, &g_srv, IP_PROBE, "/healthz");
}

/* What the server's descriptors point at, to stderr. */
static void dump_fds(void)
{
    char dir[64], path[384], to[256];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)g_srv.pid);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, to, sizeof(to) - 1);
        to[n > 0 ? n : 0] = '\0';
        fprintf(stderr, "  fd %s -> %s\n", e->d_name, to);
    }
    closedir(d);
}

/*
 * Descriptors, http.open_connections and memory.used_bytes all at their
 * baselines at once (the prober and the load come and go, so it polls)
 * within SETTLE_MS; returns the milliseconds it took.
 */
static long settle(const char *what)
{
    uint64_t t0 = http_mono_ms(), end = t0 + SETTLE_MS;
    int fds;
    double open, mem;
    for (;;) {
        fds = srv_fd_count(&g_srv);
        cJSON *j = stats_get();
        open = jnum(j, "http.open_connections");
        mem = jnum(j, "memory.used_bytes");
        cJSON_Delete(j);
        if (fds >= 0 && fds <= g_base.fds && open == g_base.open &&
            mem == g_base.mem)
            return (long)(http_mono_ms() - t0);
        if (http_mono_ms() > end)
            break;
        http_sleep_ms(50);
    }
    if (fds > g_base.fds)
        dump_fds();
    fail_msg("%s: %d ms on, %d descriptors (%d at the start), %.0f open "
             "connections (%.0f), memory.used_bytes %.0f (%.0f)",
             what, SETTLE_MS, fds, g_base.fds, open, g_base.open, mem,
             g_base.mem);
    return -1;
}

/* The prober and the load were fine; everything back to its baseline. */
static void test_end(const char *what)
{
    long max_ms = 0, fails = 0;
    long probes = http_prober_stop(&g_prober, &max_ms, &fails);
    long dur = (long)(http_mono_ms() - g_test.t0);
    g_probe_total.probes += probes;
    g_probe_total.fails += fails;
    if (max_ms > g_probe_total.max_ms)
        g_probe_total.max_ms = max_ms;
    long lf = atomic_load(&g_load.fails) - g_test.load_fails;
    long lo = atomic_load(&g_load.ops) - g_test.load_ops;
    print_message("%s: %.1f s; prober %ld GETs from %s, worst %ld ms, %ld "
                  "failed; load %ld PUT+GET from %s, %ld failed\n",
                  what, (double)dur / 1000, probes, IP_PROBE, max_ms, fails, lo,
                  IP_LOAD, lf);
    if (fails != 0)
        fail_msg("%s: %ld of %ld GET /healthz from %s failed (see stderr)",
                 what, fails, probes, IP_PROBE);
    if (max_ms >= PROBE_MAX_MS)
        fail_msg("%s: a GET /healthz from %s took %ld ms, want < %d", what,
                 IP_PROBE, max_ms, PROBE_MAX_MS);
    /* one every 100 ms when idle: at least one every 500 ms */
    if (probes < 1 || probes < dur / 500)
        fail_msg("%s: the prober made only %ld requests in %ld ms", what,
                 probes, dur);
    if (lf != 0)
        fail_msg("%s: %ld of the load's %ld PUT+GET from %s failed (see "
                 "stderr)",
                 what, lf, lo, IP_LOAD);
    long settle_ms = settle(what);
    print_message("%s: descriptors, open connections and memory back to "
                  "their baselines %ld ms after\n",
                  what, settle_ms);
}

/* ---- slowhttptest ---- */

/* slowhttptest in PATH into g_sht; 1 when found. */
static int find_slowhttptest(void)
{
    const char *path = getenv("PATH");
    g_sht[0] = '\0';
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n + 16 < sizeof(g_sht)) {
            snprintf(g_sht, sizeof(g_sht), "%.*s/slowhttptest", (int)n, path);
            if (access(g_sht, X_OK) == 0)
                return 1;
        }
        path += n + (path[n] == ':');
    }
    g_sht[0] = '\0';
    return 0;
}

/* Skip (fail under BLOBD_NO_SKIP) without slowhttptest; 1 to go on. */
static int need_slowhttptest(void)
{
    if (g_sht[0])
        return 1;
    if (getenv("BLOBD_NO_SKIP"))
        fail_msg("slowhttptest is not in PATH (Debian package "
                 "slowhttptest), and BLOBD_NO_SKIP is set");
    print_message("skipped: slowhttptest is not in PATH (Debian package "
                  "slowhttptest)\n");
    skip();
    return 0;
}

struct sample {
    long ms; /* since the attack started */
    double open, mem;
};

/* A call made once while the attack runs, mid_ms after it started. */
typedef void (*attack_mid_fn)(void *arg);

struct attack {
    const char *tag; /* "H", "B", ...: names its files */
    int seconds;     /* -l */
    attack_mid_fn mid;
    void *mid_arg;
    long mid_ms;
    /* what happened */
    long ms;    /* until slowhttptest exited */
    int status; /* its exit status */
    char exit_line[160];
    int csv_connected; /* the most connections it had, by its own CSV */
    int csv_closed;    /* closed at the end, by its CSV */
    struct sample s[MAX_SAMPLES];
    int ns;
    double max_open, max_mem;
};

/* The last "Exit status: ..." line of slowhttptest's output (escape
 * sequences dropped) into a->exit_line. */
static void attack_exit_line(struct attack *a, const char *log)
{
    FILE *f = fopen(log, "r");
    char line[512];
    a->exit_line[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char clean[512];
        size_t n = 0;
        for (const char *p = line; *p && n + 1 < sizeof(clean); p++) {
            if (*p == '\x1b') { /* ESC [ params letter */
                while (p[1] && !((p[1] >= 'A' && p[1] <= 'Z') ||
                                 (p[1] >= 'a' && p[1] <= 'z')))
                    p++;
                if (p[1])
                    p++;
                continue;
            }
            if (*p != '\n' && *p != '\r')
                clean[n++] = *p;
        }
        clean[n] = '\0';
        const char *e = strstr(clean, "Exit status:");
        if (e)
            snprintf(a->exit_line, sizeof(a->exit_line), "%s", e + 13);
    }
    fclose(f);
}

/* The CSV (-g -o): "Seconds,Closed,Pending,Connected,Service Available". */
static void attack_csv(struct attack *a, const char *csv)
{
    FILE *f = fopen(csv, "r");
    char line[256];
    a->csv_connected = a->csv_closed = -1;
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        int sec, closed, pending, connected;
        if (sscanf(line, "%d,%d,%d,%d", &sec, &closed, &pending, &connected) !=
            4)
            continue;
        if (connected > a->csv_connected)
            a->csv_connected = connected;
        a->csv_closed = closed;
    }
    fclose(f);
}

/* Start slowhttptest with argv (argv[0] included), its stdout and stderr
 * to log; its pid, also in g_attacker. */
static pid_t attack_spawn(const char *const *argv, const char *log)
{
    int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (lfd < 0)
        fail_msg("open %s: %s", log, strerror(errno));
    int nfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (nfd >= 0)
            dup2(nfd, 0);
        dup2(lfd, 1);
        dup2(lfd, 2);
        execv(g_sht, (char *const *)argv);
        _exit(127);
    }
    int e = errno;
    close(lfd);
    if (nfd >= 0)
        close(nfd);
    if (pid < 0)
        fail_msg("fork: %s", strerror(e));
    g_attacker = pid;
    return pid;
}

/* Sample /admin/stats every 200 ms until the attacker exits (within -l +
 * 10 s), calling a->mid once; its wait status. */
static int attack_watch(struct attack *a, pid_t pid, uint64_t t0)
{
    uint64_t deadline = t0 + (uint64_t)(a->seconds + 10) * 1000;
    int mid_done = a->mid == NULL, ws = 0;
    a->ns = 0;
    a->max_open = a->max_mem = 0;
    while (waitpid(pid, &ws, WNOHANG) != pid) {
        uint64_t now = http_mono_ms();
        if (now > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &ws, 0);
            g_attacker = 0;
            fail_msg("slowhttptest -%s still ran %d s after its -l %d", a->tag,
                     a->seconds + 10, a->seconds);
        }
        cJSON *j = stats_get();
        struct sample sm = {(long)(now - t0), jnum(j, "http.open_connections"),
                            jnum(j, "memory.used_bytes")};
        cJSON_Delete(j);
        if (a->ns < MAX_SAMPLES)
            a->s[a->ns++] = sm;
        if (sm.open > a->max_open)
            a->max_open = sm.open;
        if (sm.mem > a->max_mem)
            a->max_mem = sm.mem;
        if (!mid_done && sm.ms >= a->mid_ms) {
            mid_done = 1;
            a->mid(a->mid_arg);
        }
        http_sleep_ms(200);
    }
    g_attacker = 0;
    if (!mid_done)
        a->mid(a->mid_arg); /* it exited early: still once */
    return ws;
}

/* What the attacker said and what the server went through, one sample a
 * second. */
static void attack_print(const struct attack *a)
{
    char tl[1024];
    size_t tn = 0;
    long next = 0;
    print_message("slowhttptest -%s: exited %d after %ld ms (\"%s\"); by "
                  "its CSV at most %d connected, %d closed at the end; "
                  "the server had at most %.0f open connections and "
                  "memory.used_bytes %.0f (baselines %.0f, %.0f)\n",
                  a->tag, a->status, a->ms, a->exit_line, a->csv_connected,
                  a->csv_closed, a->max_open, a->max_mem, g_base.open,
                  g_base.mem);
    for (int i = 0; i < a->ns && tn + 40 < sizeof(tl); i++) {
        if (a->s[i].ms < next)
            continue;
        next = a->s[i].ms + 1000;
        tn += (size_t)snprintf(tl + tn, sizeof(tl) - tn, "%s%.1f: %.0f/%.1f",
                               tn ? ", " : "", (double)a->s[i].ms / 1000,
                               a->s[i].open,
                               (a->s[i].mem - g_base.mem) / BIG_LEN);
    }
    tl[tn] = '\0';
    print_message("  timeline (s: open connections/512 KiB frames): %s\n", tl);
}

/*
 * Run slowhttptest with the mode arguments args (NULL-terminated), plus
 * -l a->seconds, -g -o <dir>/sht-<tag> and -u <url path>, its output in
 * <dir>/sht-<tag>.log.  While it runs, /admin/stats is sampled every
 * 200 ms and a->mid is called once; it must exit within -l + 10 s.
 */
static void attack_run(struct attack *a, const char *const *args,
                       const char *path)
{
    char url[600], prefix[700], log[720], csv[720], secs[16];
    const char *argv[40];
    int n = 0;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g_srv.port, path);
    snprintf(prefix, sizeof(prefix), "%s/sht-%s", g_srv.dir, a->tag);
    snprintf(log, sizeof(log), "%s.log", prefix);
    snprintf(csv, sizeof(csv), "%s.csv", prefix);
    snprintf(secs, sizeof(secs), "%d", a->seconds);
    argv[n++] = "slowhttptest";
    for (int i = 0; args[i] && n < 30; i++)
        argv[n++] = args[i];
    argv[n++] = "-l";
    argv[n++] = secs;
    argv[n++] = "-g";
    argv[n++] = "-o";
    argv[n++] = prefix;
    argv[n++] = "-u";
    argv[n++] = url;
    argv[n] = NULL;

    uint64_t t0 = http_mono_ms();
    pid_t pid = attack_spawn(argv, log);
    int ws = attack_watch(a, pid, t0);
    a->ms = (long)(http_mono_ms() - t0);
    a->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    attack_exit_line(a, log);
    attack_csv(a, csv);
    attack_print(a);
    if (a->status == 127)
        fail_msg("slowhttptest -%s: exec %s failed (see %s)", a->tag, g_sht,
                 log);
}

/* ---- fixtures ---- */

static int group_setup(void **state)
{
    (void)state;
    find_slowhttptest();
    srv_init(&g_srv);
    int rc = srv_start(&g_srv, k_args, NULL);
    if (rc != 0)
        fail_msg("the server did not start (%d); log in %s", rc, g_srv.log);
    if (srv_wait_ready(&g_srv) != 0)
        fail_msg("the server on port %d did not become ready", g_srv.port);
    /* the baselines: after one request, its connection gone */
    long st = http_get_from(&g_srv, IP_CHECK, "/healthz", REQ_TIMEOUT_MS, NULL);
    assert_int_equal(st, 200);
    http_sleep_ms(200);
    g_base.fds = srv_fd_count(&g_srv);
    g_base.rss = srv_rss_kib(&g_srv);
    if (g_base.fds < 0 || g_base.rss < 0)
        fail_msg("cannot read /proc/%d", (int)g_srv.pid);
    cJSON *j = stats_get(); /* it counts itself among the connections */
    g_base.open = jnum(j, "http.open_connections");
    g_base.mem = jnum(j, "memory.used_bytes");
    double limit = jnum(j, "http.max_connections_per_client");
    cJSON_Delete(j);
    if (limit != PER_CLIENT)
        fail_msg("http.max_connections_per_client is %.0f, want %d", limit,
                 PER_CLIENT);
    print_message("slowhttptest: %s; baseline: %d fds, %.0f open "
                  "connections, memory.used_bytes %.0f, RSS %ld KiB\n",
                  g_sht[0] ? g_sht : "not found", g_base.fds, g_base.open,
                  g_base.mem, g_base.rss);
    load_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    http_prober_stop(&g_prober, NULL, NULL);
    load_stop();
    free(g_load.blobs);
    g_load.blobs = NULL;
    free(g_model.g);
    g_model.g = NULL;
    if (g_srv.dir[0])
        srv_fini(&g_srv);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return 0;
}

/* After a test, also a failed one: no attacker, no prober, load going. */
static int teardown(void **state)
{
    (void)state;
    if (g_attacker > 0) {
        kill(g_attacker, SIGKILL);
        waitpid(g_attacker, NULL, 0);
        g_attacker = 0;
    }
    http_prober_stop(&g_prober, NULL, NULL);
    load_resume();
    return 0;
}

/* ---- 1: slow headers ---- */

static void test_slow_headers(void **state)
{
    (void)state;
    if (!need_slowhttptest())
        return;
    test_begin();
    static const char *const args[] = {"-H", "-c", "300", "-i",
                                       "1",  "-r", "150", NULL};
    struct attack a = {.tag = "H", .seconds = 8};
    struct reqcount c0, c1;
    char seen[512];
    reqcount_get(&c0);
    attack_run(&a, args, "/healthz");
    reqcount_get(&c1);
    double ht = c1.header_timeouts - c0.header_timeouts;
    double rj = c1.rejected - c0.rejected;
    reqcount_delta(&c0, &c1, seen, sizeof(seen));
    print_message("slow headers: http.header_timeouts +%.0f, "
                  "http.rejected_per_client +%.0f; answered meanwhile: %s\n",
                  ht, rj, seen);
    if (ht <= 0)
        fail_msg("300 connections sent headers slowly, and "
                 "http.header_timeouts did not grow");
    if (rj <= 0)
        fail_msg("300 connections from one address (the limit is %d), and "
                 "http.rejected_per_client did not grow",
                 PER_CLIENT);
    /* every connection it kept was cut: it gave up before its -l */
    if (a.ms >= a.seconds * 1000L)
        fail_msg("slowhttptest -H still had connections open after %ld ms: "
                 "the header deadline is %d s",
                 a.ms, HT_S);
    /* the attacker's, and a few of the prober, the load and the stats */
    if (a.max_open > PER_CLIENT + 8)
        fail_msg("%.0f connections were open at once, want at most %d from "
                 "the attacker and a few others",
                 a.max_open, PER_CLIENT);
    test_end("slow headers");
}

/* ---- 2: slow body ---- */

static void test_slow_body(void **state)
{
    (void)state;
    if (!need_slowhttptest())
        return;
    test_begin();
    char g[HTTP_GUID_BUF], path[64];
    http_guid_rand(g);
    snprintf(path, sizeof(path), "/blobs/%s", g);
    static const char *const args[] = {"-B", "-t", "PUT", "-s", "8192", "-i",
                                       "1",  "-c", "100", "-r", "50",   NULL};
    struct attack a = {.tag = "B", .seconds = 8};
    struct reqcount c0, c1;
    char seen[512];
    reqcount_get(&c0);
    attack_run(&a, args, path);
    reqcount_get(&c1);
    reqcount_delta(&c0, &c1, seen, sizeof(seen));
    /* until when were most of the attack's connections open? */
    long held_until = 0;
    for (int i = 0; i < a.ns; i++) {
        if (a.s[i].open >= a.max_open / 2)
            held_until = a.s[i].ms;
    }
    print_message("slow body: %.0f upload frames held at most (%.0f "
                  "bytes), half the connections open until %ld ms of "
                  "%ld; answered meanwhile: %s\n",
                  (a.max_mem - g_base.mem) / BIG_LEN, a.max_mem - g_base.mem,
                  held_until, a.ms, seen);
    check_absent(g, "after the slow-body PUTs");
    if (a.max_mem < g_base.mem + BIG_LEN)
        fail_msg("memory.used_bytes never rose above %.0f during the "
                 "slow-body attack: did it reach the server?",
                 a.max_mem);
    test_end("slow body");
}

/* ---- 3: slow read ---- */

struct mid_get {
    const char *guid;
    const void *data;
    size_t len;
    long status, ms;
    int same;
};

/* While the slow readers hold their connections: GET the same blob. */
static void mid_get(void *arg)
{
    struct mid_get *m = arg;
    struct http_resp r;
    uint64_t t0 = http_mono_ms();
    m->status = check_get(m->guid, &r);
    m->ms = (long)(http_mono_ms() - t0);
    m->same = m->status == 200 && r.body_len == m->len &&
              memcmp(r.body, m->data, m->len) == 0;
    http_resp_free(&r);
}

static void test_slow_read(void **state)
{
    (void)state;
    if (!need_slowhttptest())
        return;
    test_begin();
    char g[HTTP_GUID_BUF], path[64];
    char *big = malloc(BIG_LEN);
    assert_non_null(big);
    http_guid_rand(g);
    http_fill(big, BIG_LEN, 0x5e1d);
    check_put(g, big, BIG_LEN, "the slow-read blob");
    g_own_blobs++;
    snprintf(path, sizeof(path), "/blobs/%s", g);
    /* ten pipelined GETs of 512 KiB a connection: more than the kernel's
     * socket buffers take, so the server's writes block */
    static const char *const args[] = {"-X", "-c", "30", "-r", "30", "-k",
                                       "10", "-n", "1",  "-w", "10", "-y",
                                       "20", "-z", "32", NULL};
    struct mid_get m = {g, big, BIG_LEN, 0, 0, 0};
    struct attack a = {.tag = "X",
                       .seconds = 8,
                       .mid = mid_get,
                       .mid_arg = &m,
                       .mid_ms = 1500};
    struct reqcount c0, c1;
    char seen[512];
    reqcount_get(&c0);
    attack_run(&a, args, path);
    reqcount_get(&c1);
    reqcount_delta(&c0, &c1, seen, sizeof(seen));
    /* the first sample after the peak with every slow reader's frame
     * back.  The load (one PUT or GET at a time) and the GET above may
     * each hold a frame of their own at the moment of a sample, so up to
     * two frames over the baseline count as back. */
    const double others = 2.0 * BIG_LEN;
    long back_ms = -1;
    int peaked = 0;
    for (int i = 0; i < a.ns; i++) {
        if (a.s[i].mem > g_base.mem + others) {
            peaked = 1;
            back_ms = -1;
        } else if (peaked && back_ms < 0) {
            back_ms = a.s[i].ms;
        }
    }
    print_message("slow read: %.0f read frames held at most, all back "
                  "%ld ms in (slowhttptest ran %ld ms); a GET of the "
                  "blob from %s meanwhile: %ld in %ld ms%s; answered "
                  "meanwhile: %s\n",
                  (a.max_mem - g_base.mem) / BIG_LEN, back_ms, a.ms, IP_CHECK,
                  m.status, m.ms, m.same ? ", the same bytes" : "", seen);
    if (m.status != 200 || !m.same)
        fail_msg("GET %s from %s during the slow read: %ld, want 200 with "
                 "the 512 KiB stored",
                 path, IP_CHECK, m.status);
    if (m.ms >= PROBE_MAX_MS)
        fail_msg("GET %s from %s during the slow read took %ld ms, want < "
                 "%d",
                 path, IP_CHECK, m.ms, PROBE_MAX_MS);
    if (peaked && back_ms < 0)
        fail_msg("the slow readers' frames were still held when "
                 "slowhttptest exited after %ld ms: the idle timeout (%d "
                 "s) did not close them",
                 a.ms, CT_S);
    check_data(g, big, BIG_LEN, "after the slow read");
    free(big);
    test_end("slow read");
}

/* ---- 4: range attack ---- */

/* slowhttptest -R's header: "Range: bytes=0-,5-0,5-1,...,5-2000". */
static char *range_attack_header(void)
{
    size_t cap = 16 * 1024, n = 0;
    char *h = malloc(cap);
    if (!h)
        fail_msg("out of memory");
    n += (size_t)snprintf(h, cap, "Range: bytes=0-,");
    for (int i = 0; i < RANGE_END; i++)
        n += (size_t)snprintf(h + n, cap - n, "5-%d,", i);
    n += (size_t)snprintf(h + n, cap - n, "5-%d\r\n", RANGE_END);
    if (n >= cap)
        fail_msg("the Range header does not fit");
    return h;
}

/* GET with slowhttptest's Range header from 127.0.0.5: the whole blob. */
static void range_check(const char *guid, const void *data, const char *what)
{
    char path[64], cr[128], w[160];
    struct http_resp r;
    char *h = range_attack_header();
    snprintf(path, sizeof(path), "/blobs/%s", guid);
    long st = xreq(IP_CHECK, "GET", path, h, NULL, 0, REQ_TIMEOUT_MS, &r);
    free(h);
    if (st != 200) {
        http_resp_free(&r);
        fail_msg("%s: GET %s with \"Range: bytes=0-,5-0,...,5-%d\": %ld, "
                 "want 200 (b < a, more than 16 ranges: ignored)",
                 what, path, RANGE_END, st);
    }
    if (http_header(&r, "Content-Range", cr, sizeof(cr)))
        fail_msg("%s: a 200 with Content-Range: %s", what, cr);
    snprintf(w, sizeof(w), "%s: GET with the attack's Range", what);
    http_assert_bytes(r.body, r.body_len, data, RANGE_BLOB_LEN, w);
    http_resp_free(&r);
}

struct mid_range {
    const char *guid;
    const void *data;
    long ms;
};

static void mid_range(void *arg)
{
    struct mid_range *m = arg;
    uint64_t t0 = http_mono_ms();
    range_check(m->guid, m->data, "during the range attack");
    m->ms = (long)(http_mono_ms() - t0);
}

static void test_range_attack(void **state)
{
    (void)state;
    if (!need_slowhttptest())
        return;
    test_begin();
    char g[HTTP_GUID_BUF], path[64], seen[512];
    char data[RANGE_BLOB_LEN];
    http_guid_rand(g);
    http_fill(data, sizeof(data), 0x4a6e);
    check_put(g, data, sizeof(data), "the range blob");
    g_own_blobs++;
    snprintf(path, sizeof(path), "/blobs/%s", g);
    /* -t GET: slowhttptest's default HEAD ignores Range (docs/api.md) */
    static const char *const args[] = {"-R",   "-t", "GET", "-a", "5",  "-b",
                                       "2000", "-c", "50",  "-r", "25", NULL};
    struct mid_range m = {g, data, 0};
    struct attack a = {.tag = "R",
                       .seconds = 6,
                       .mid = mid_range,
                       .mid_arg = &m,
                       .mid_ms = 500};
    struct reqcount c0, c1;
    reqcount_get(&c0);
    attack_run(&a, args, path);
    reqcount_get(&c1);
    double total = reqcount_delta(&c0, &c1, seen, sizeof(seen));
    double out = c1.bytes_out - c0.bytes_out;
    double s5 = 0;
    for (int m5 = 0; m5 < NMETH; m5++)
        s5 += c1.n[m5][4] - c0.n[m5][4];
    range_check(g, data, "after the range attack");
    print_message("range attack: answered %s; %.0f response bytes for "
                  "%.0f requests (%.0f each); the same Range from %s: 200, "
                  "%u bytes, in %ld ms\n",
                  seen, out, total, total > 0 ? out / total : 0, IP_CHECK,
                  RANGE_BLOB_LEN, m.ms);
    if (s5 != 0)
        fail_msg("%.0f requests were answered 5xx during the range attack", s5);
    /* no multipart amplification: whole 4 KiB blobs, the load's <= 4 KiB,
     * the stats documents */
    if (total <= 0 || out > total * 8192)
        fail_msg("%.0f response bytes for %.0f requests during the range "
                 "attack on a %u-byte blob",
                 out, total, RANGE_BLOB_LEN);
    test_end("range attack");
}

/* ---- 5: the byte flipper ---- */

#define FLIP_N 300
#define FLIP_WORKERS 16
#define FLIP_VICTIMS 64
#define FLIP_BODY_MAX 300

enum flip_kind {
    F_PUT,
    F_GET,
    F_RANGE,
    F_HEAD,
    F_DELETE,
    F_FLUSH,
    F_PUT_INM,
    F_PUT_CHUNKED,
    F_KINDS
};
static const char *const k_flip_names[F_KINDS] = {
    "PUT",    "GET",         "GET+Range",         "HEAD",
    "DELETE", "POST /flush", "PUT If-None-Match", "chunked PUT"};

enum flip_outcome {
    O_NONE,
    O_ANSWERED,
    O_CLOSED,
    O_RESET,
    O_HUNG,
    O_GARBAGE,
    O_NOCONN
};

struct victim {
    char guid[HTTP_GUID_BUF];
    uint32_t len;
    uint64_t seed;
    int taken;   /* a mutating request was aimed at it */
    int written; /* a 2xx PUT to it was seen */
    int deleted; /* a 204 DELETE of it was seen */
};

struct flip {
    enum flip_kind kind;
    char guid[HTTP_GUID_BUF]; /* the intended target ("" for /flush) */
    int victim;               /* index, or -1 */
    int fresh;                /* a write to a GUID nothing else names */
    char *req;                /* the flipped request (owned) */
    size_t len;
    int nflips;
    size_t pos[3];
    unsigned char from[3], to[3];
    /* the outcome */
    enum flip_outcome outcome;
    long status, ms;
    char location[HTTP_GUID_BUF]; /* a 201's Location, canonical */
    char answer[96];              /* the start of what came back */
};

static struct {
    struct flip f[FLIP_N];
    struct victim v[FLIP_VICTIMS];
    atomic_int next;
} g_flip;

/* A GUID from the flipper's generator (32 lowercase hex digits). */
static void flip_guid(uint64_t *rng, char out[HTTP_GUID_BUF])
{
    uint64_t a = tu_rand(rng), b = tu_rand(rng);
    snprintf(out, HTTP_GUID_BUF, "%016llx%016llx", (unsigned long long)a,
             (unsigned long long)b);
}

/* A GUID in s[0..n) (32 hex digits, either case, or 8-4-4-4-12) into
 * canonical form; 1 when it is one. */
static int guid_canon(const char *s, size_t n, char out[HTTP_GUID_BUF])
{
    size_t k = 0;
    int dashed = n == 36;
    if (n != 32 && n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (c != '-')
                return 0;
            continue;
        }
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        out[k++] = c;
    }
    out[k] = '\0';
    return k == 32;
}

/* The method and the GUID of /blobs/<guid>[?...] in a request as sent;
 * 1 when its request line names one. */
static int sent_target(const char *req, size_t len, char *method, size_t mcap,
                       char guid[HTTP_GUID_BUF])
{
    const char *end = memmem(req, len, "\r\n", 2);
    const char *p = req, *e = end ? end : req + len;
    size_t n = 0;
    while (p < e && *p != ' ' && n + 1 < mcap)
        method[n++] = *p++;
    method[n] = '\0';
    while (p < e && *p == ' ')
        p++;
    if ((size_t)(e - p) < 7 || memcmp(p, "/blobs/", 7) != 0)
        return 0;
    p += 7;
    const char *g = p;
    while (p < e && *p != ' ' && *p != '?')
        p++;
    return guid_canon(g, (size_t)(p - g), guid);
}

/* A request under construction: text and raw bytes (a body may hold
 * NULs, so never through %s). */
struct sbuf {
    char p[2048];
    size_t n;
};

__attribute__((format(printf, 2, 3))) static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->n, sizeof(b->p) - b->n, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(b->p) - b->n)
        fail_msg("a flipper request does not fit in %zu bytes", sizeof(b->p));
    b->n += (size_t)n;
}

static void sb_mem(struct sbuf *b, const void *d, size_t n)
{
    if (n > sizeof(b->p) - b->n)
        fail_msg("a flipper request does not fit in %zu bytes", sizeof(b->p));
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

/* The request of kind f->kind, valid, into f->req. */
static void flip_build(struct flip *f, uint64_t *rng)
{
    static const char hdr[] = "Host: 127.0.0.1\r\nConnection: close\r\n";
    static struct sbuf b; /* main thread only */
    char body[FLIP_BODY_MAX];
    size_t blen = 1 + tu_rand(rng) % FLIP_BODY_MAX;
    http_fill(body, blen, tu_rand(rng));
    const struct victim *v = f->victim >= 0 ? &g_flip.v[f->victim] : NULL;
    b.n = 0;
    switch (f->kind) {
    case F_PUT:
    case F_PUT_INM:
        sb_printf(&b,
                  "PUT /blobs/%s HTTP/1.1\r\n%s%sContent-Length: %zu\r\n\r\n",
                  f->guid, hdr,
                  f->kind == F_PUT_INM ? "If-None-Match: *\r\n" : "", blen);
        sb_mem(&b, body, blen);
        break;
    case F_GET:
    case F_HEAD:
        sb_printf(&b, "%s /blobs/%s HTTP/1.1\r\n%s\r\n",
                  f->kind == F_GET ? "GET" : "HEAD", f->guid, hdr);
        break;
    case F_RANGE: {
        uint32_t lo = (uint32_t)(tu_rand(rng) % (v ? v->len : 64));
        uint32_t hi = lo + (uint32_t)(tu_rand(rng) % 64);
        sb_printf(&b, "GET /blobs/%s HTTP/1.1\r\n%sRange: bytes=%u-%u\r\n\r\n",
                  f->guid, hdr, lo, hi);
        break;
    }
    case F_DELETE:
        sb_printf(&b, "DELETE /blobs/%s HTTP/1.1\r\n%s\r\n", f->guid, hdr);
        break;
    case F_FLUSH:
        sb_printf(&b, "POST /flush HTTP/1.1\r\n%s\r\n", hdr);
        break;
    case F_PUT_CHUNKED: {
        size_t off = 0;
        int parts = 1 + (int)(tu_rand(rng) % 3);
        sb_printf(&b,
                  "PUT /blobs/%s HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n"
                  "\r\n",
                  f->guid, hdr);
        for (int i = 0; i < parts && off < blen; i++) {
            size_t sz =
                i + 1 == parts ? blen - off : 1 + tu_rand(rng) % (blen - off);
            sb_printf(&b, "%zx\r\n", sz);
            sb_mem(&b, body + off, sz);
            sb_printf(&b, "\r\n");
            off += sz;
        }
        sb_printf(&b, "0\r\n\r\n");
        break;
    }
    default:
        break;
    }
    f->req = malloc(b.n);
    if (!f->req)
        fail_msg("out of memory building request %d", (int)(f - g_flip.f));
    memcpy(f->req, b.p, b.n);
    f->len = b.n;
}

/* 1-3 bytes of f->req replaced by other random values. */
static void flip_bytes(struct flip *f, uint64_t *rng)
{
    f->nflips = 1 + (int)(tu_rand(rng) % 3);
    for (int i = 0; i < f->nflips; i++) {
        size_t p;
        int again;
        do {
            p = tu_rand(rng) % f->len;
            again = 0;
            for (int k = 0; k < i; k++)
                again |= f->pos[k] == p;
        } while (again);
        unsigned char was = (unsigned char)f->req[p], to;
        do
            to = (unsigned char)tu_rand(rng);
        while (to == was);
        f->pos[i] = p;
        f->from[i] = was;
        f->to[i] = to;
        f->req[p] = (char)to;
    }
}

/* A victim no mutating request was aimed at yet, or -1. */
static int victim_take(void)
{
    for (int i = 0; i < FLIP_VICTIMS; i++) {
        if (!g_flip.v[i].taken) {
            g_flip.v[i].taken = 1;
            return i;
        }
    }
    return -1;
}

/* The 300 requests, from the seed alone. */
static void flip_plan(uint64_t seed)
{
    uint64_t rng = seed;
    for (int i = 0; i < FLIP_VICTIMS; i++) {
        struct victim *v = &g_flip.v[i];
        memset(v, 0, sizeof(*v));
        flip_guid(&rng, v->guid);
        v->len = 16 + (uint32_t)(tu_rand(&rng) % 497);
        v->seed = tu_rand(&rng);
    }
    for (int i = 0; i < FLIP_N; i++) {
        struct flip *f = &g_flip.f[i];
        memset(f, 0, sizeof(*f));
        f->kind = (enum flip_kind)(tu_rand(&rng) % F_KINDS);
        f->victim = -1;
        switch (f->kind) {
        case F_GET:
        case F_RANGE:
        case F_HEAD:
            f->victim = (int)(tu_rand(&rng) % FLIP_VICTIMS);
            break;
        case F_DELETE:
            f->victim = victim_take();
            break;
        case F_PUT_INM:
            if (tu_rand(&rng) % 2)
                f->victim = victim_take();
            break;
        default:
            break;
        }
        if (f->victim >= 0)
            memcpy(f->guid, g_flip.v[f->victim].guid, HTTP_GUID_BUF);
        else if (f->kind != F_FLUSH)
            flip_guid(&rng, f->guid);
        f->fresh = f->victim < 0 && (f->kind == F_PUT || f->kind == F_PUT_INM ||
                                     f->kind == F_PUT_CHUNKED);
        flip_build(f, &rng);
        flip_bytes(f, &rng);
    }
}

/* Send f from 127.0.0.4 and wait for a status line or a close. */
static void flip_send(struct flip *f)
{
    char buf[8192];
    size_t n = 0;
    int fd = http_raw_connect_from(&g_srv, IP_FLIP);
    if (fd < 0) {
        f->outcome = O_NOCONN;
        snprintf(f->answer, sizeof(f->answer), "connect: %s", strerror(errno));
        return;
    }
    uint64_t t0 = http_mono_ms(), end = t0 + FLIP_ANSWER_MS;
    (void)http_raw_send(fd, f->req, f->len); /* it may close early */
    f->outcome = O_NONE;
    while (f->outcome == O_NONE) {
        uint64_t now = http_mono_ms();
        if (now >= end) {
            f->outcome = n ? O_GARBAGE : O_HUNG;
            break;
        }
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(end - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t got = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got > 0) {
            struct http_resp r;
            n += (size_t)got;
            buf[n] = '\0';
            if (http_raw_parse(buf, n, &r) == 0) {
                f->status = r.status;
                f->outcome = r.status ? O_ANSWERED : O_GARBAGE;
                char loc[256];
                if (r.status == 201 &&
                    http_header(&r, "Location", loc, sizeof(loc)) &&
                    strncmp(loc, "/blobs/", 7) == 0)
                    guid_canon(loc + 7, strlen(loc + 7), f->location);
                http_resp_free(&r);
            } else if (n + 1 >= sizeof(buf)) {
                f->outcome = O_GARBAGE;
            }
            continue;
        }
        /* EOF, or a reset */
        f->outcome = n ? O_GARBAGE : got == 0 ? O_CLOSED : O_RESET;
    }
    f->ms = (long)(http_mono_ms() - t0);
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < sizeof(f->answer); i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r' && i + 1 < n && buf[i + 1] == '\n')
            break;
        if (c < 0x20 || c > 0x7e)
            k += (size_t)snprintf(f->answer + k, sizeof(f->answer) - k,
                                  "\\x%02x", c);
        else
            f->answer[k++] = (char)c;
    }
    f->answer[k] = '\0';
    close(fd);
}

static void *flip_worker(void *arg)
{
    (void)arg;
    for (;;) {
        int i = atomic_fetch_add(&g_flip.next, 1);
        if (i >= FLIP_N)
            return NULL;
        flip_send(&g_flip.f[i]);
    }
}

/* "#12 (chunked PUT), bytes 5 'T'->\x80, ...: <answer>" to stderr. */
static void flip_show(const struct flip *f, const char *why)
{
    char what[256];
    size_t n = 0;
    for (int k = 0; k < f->nflips && n + 40 < sizeof(what); k++)
        n += (size_t)snprintf(what + n, sizeof(what) - n,
                              "%sbyte %zu 0x%02x->0x%02x", k ? ", " : "",
                              f->pos[k], f->from[k], f->to[k]);
    fprintf(stderr, "flipper: #%d (%s %s; %s): %s after %ld ms: %s [%s]\n",
            (int)(f - g_flip.f), k_flip_names[f->kind], f->guid, what, why,
            f->ms, f->status ? "status" : "no status", f->answer);
}

static int model_find(const char *g)
{
    for (size_t i = 0; i < g_model.n; i++) {
        if (strcmp(g_model.g[i], g) == 0)
            return (int)i;
    }
    return -1;
}

static void model_add(const char *g)
{
    if (model_find(g) >= 0)
        return;
    if (g_model.n == g_model.cap) {
        size_t nc = g_model.cap ? 2 * g_model.cap : 512;
        void *p = realloc(g_model.g, nc * sizeof(*g_model.g));
        if (!p)
            fail_msg("out of memory");
        g_model.g = p;
        g_model.cap = nc;
    }
    memcpy(g_model.g[g_model.n++], g, HTTP_GUID_BUF);
}

static void model_del(int i)
{
    memcpy(g_model.g[i], g_model.g[--g_model.n], HTTP_GUID_BUF);
}

static struct victim *victim_of(const char *g)
{
    for (int i = 0; i < FLIP_VICTIMS; i++) {
        if (strcmp(g_flip.v[i].guid, g) == 0)
            return &g_flip.v[i];
    }
    return NULL;
}

/*
 * Fold the answers into the model; returns the anomalies (each shown):
 * a 201 without a Location, a 204 to a DELETE or a PUT of a GUID that was
 * not known to exist, a 2xx to anything else than the kind asked.
 */
static int flip_fold(int *created, int *deleted, int *replaced)
{
    int bad = 0;
    for (int i = 0; i < FLIP_N; i++) {
        struct flip *f = &g_flip.f[i];
        char method[16], g[HTTP_GUID_BUF];
        if (f->outcome != O_ANSWERED || f->status < 200 || f->status > 299)
            continue;
        int named = sent_target(f->req, f->len, method, sizeof(method), g);
        if (f->status == 201) {
            if (!f->location[0]) {
                flip_show(f, "201 without a Location naming a GUID");
                bad++;
                continue;
            }
            if (model_find(f->location) >= 0) {
                flip_show(f, "201 for a GUID that existed");
                bad++;
            }
            model_add(f->location);
            (*created)++;
        } else if (f->status == 204 && named && !strcmp(method, "DELETE")) {
            int k = model_find(g);
            if (k < 0) {
                flip_show(f, "204 to a DELETE of a GUID not known to exist");
                bad++;
                continue;
            }
            model_del(k);
            struct victim *v = victim_of(g);
            if (v)
                v->deleted = 1;
            (*deleted)++;
        } else if (f->status == 204 && named && !strcmp(method, "PUT")) {
            if (model_find(g) < 0) {
                flip_show(f, "204 to a PUT of a GUID not known to exist");
                bad++;
                continue;
            }
            struct victim *v = victim_of(g);
            if (v)
                v->written = 1;
            (*replaced)++;
        } else if (f->status == 204 || f->status == 201) {
            flip_show(f, "a 2xx write that names no blob");
            bad++;
        }
    }
    return bad;
}

/* The seed: BLOBD_FLIP_SEED, else a random one. */
static uint64_t flip_seed(void)
{
    const char *env = getenv("BLOBD_FLIP_SEED");
    uint64_t seed;
    if (env && *env)
        return strtoull(env, NULL, 0);
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
    return seed;
}

/* Send every request, FLIP_WORKERS at a time; the threads started. */
static int flip_run(void)
{
    pthread_t th[FLIP_WORKERS];
    int nth = 0;
    atomic_init(&g_flip.next, 0);
    for (; nth < FLIP_WORKERS; nth++) {
        if (pthread_create(&th[nth], NULL, flip_worker, NULL) != 0)
            break;
    }
    if (nth == 0)
        fail_msg("flipper: pthread_create failed");
    for (int i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    return nth;
}

/* BLOBD_FLIP_DUMP=<dir>: every flipped request as it was sent, named by
 * its number and the status it got (0: none). */
static void flip_dump(void)
{
    const char *dir = getenv("BLOBD_FLIP_DUMP");
    for (int i = 0; dir && i < FLIP_N; i++) {
        char fn[600];
        snprintf(fn, sizeof(fn), "%s/flip-%03d-%ld.bin", dir, i,
                 g_flip.f[i].status);
        FILE *o = fopen(fn, "wb");
        if (o) {
            fwrite(g_flip.f[i].req, 1, g_flip.f[i].len, o);
            fclose(o);
        }
    }
}

/*
 * Print what came back (statuses, closes by kind, closed at once or by a
 * deadline) and show each request that got neither a status line nor a
 * clean close within FLIP_ANSWER_MS; returns how many.
 */
static int flip_report(long run_ms, int nth)
{
    int statuses[600] = {0}, closed = 0, reset = 0, at_once = 0, late = 0;
    int kind_closes[F_KINDS] = {0};
    long worst = 0;
    for (int i = 0; i < FLIP_N; i++) {
        const struct flip *f = &g_flip.f[i];
        if (f->ms > worst)
            worst = f->ms;
        if (f->outcome == O_ANSWERED && f->status < 600)
            statuses[f->status]++;
        if (f->outcome == O_CLOSED || f->outcome == O_RESET) {
            closed += f->outcome == O_CLOSED;
            reset += f->outcome == O_RESET;
            at_once += f->ms < 1000; /* the HTTP layer gave up on it */
            kind_closes[f->kind]++;
            if (getenv("BLOBD_FLIP_VERBOSE"))
                flip_show(f, "closed without an answer");
        }
        if (f->outcome == O_HUNG || f->outcome == O_GARBAGE ||
            f->outcome == O_NOCONN || f->ms > FLIP_ANSWER_MS) {
            flip_show(f, f->outcome == O_HUNG ? "neither answered nor closed"
                         : f->outcome == O_GARBAGE ? "no parseable status line"
                         : f->outcome == O_NOCONN  ? "no connection"
                                                   : "too late");
            late++;
        }
    }
    char seen[1024], kinds[512];
    size_t sn = 0, kn = 0;
    for (int st = 100; st < 600; st++) {
        if (statuses[st] && sn + 16 < sizeof(seen))
            sn += (size_t)snprintf(seen + sn, sizeof(seen) - sn, "%s%d x%d",
                                   sn ? ", " : "", st, statuses[st]);
    }
    seen[sn] = '\0';
    for (int k = 0; k < F_KINDS; k++) {
        if (kind_closes[k] && kn + 40 < sizeof(kinds))
            kn += (size_t)snprintf(kinds + kn, sizeof(kinds) - kn, "%s%s x%d",
                                   kn ? ", " : "", k_flip_names[k],
                                   kind_closes[k]);
    }
    kinds[kn] = '\0';
    print_message("flipper: %d requests in %ld ms, %d at a time from %s: "
                  "%s; closed without an answer %d, reset %d (%s; %d "
                  "within 1 s, %d later); the slowest %ld ms\n",
                  FLIP_N, run_ms, nth, IP_FLIP, seen, closed, reset, kinds,
                  at_once, closed + reset - at_once, worst);
    return late;
}

/*
 * A refused write stored nothing under its GUID; what the answers created
 * exists; a victim no 2xx write touched is intact, one a 204 deleted is
 * gone.  *absent and *present count the fresh writes of each kind.
 */
static void flip_check_stored(int *absent, int *present)
{
    *absent = *present = 0;
    for (int i = 0; i < FLIP_N; i++) {
        const struct flip *f = &g_flip.f[i];
        char w[160];
        if (!f->fresh)
            continue;
        if (model_find(f->guid) >= 0) {
            (*present)++; /* checked below, with everything created */
            continue;
        }
        snprintf(w, sizeof(w), "flipped request #%d (%s), answered %ld", i,
                 k_flip_names[f->kind], f->status);
        check_absent(f->guid, w);
        (*absent)++;
    }
    for (size_t i = 0; i < g_model.n; i++) {
        const struct victim *v = victim_of(g_model.g[i]);
        struct http_resp r;
        if (v && !v->written) {
            char data[512];
            http_fill(data, v->len, v->seed);
            check_data(v->guid, data, v->len, "a victim no 2xx write touched");
            continue;
        }
        long st = check_get(g_model.g[i], &r);
        http_resp_free(&r);
        if (st != 200)
            fail_msg("flipper: GET /blobs/%s: %ld, want 200 (created or "
                     "written, and not deleted, by the answers)",
                     g_model.g[i], st);
    }
    for (int i = 0; i < FLIP_VICTIMS; i++) {
        if (g_flip.v[i].deleted)
            check_absent(g_flip.v[i].guid, "a victim deleted with 204");
    }
}

static void test_flipper(void **state)
{
    (void)state;
    test_begin();
    uint64_t seed = flip_seed();
    print_message("flipper: seed %llu (BLOBD_FLIP_SEED=%llu repeats it)\n",
                  (unsigned long long)seed, (unsigned long long)seed);
    flip_plan(seed);
    g_model.n = 0;
    /* the victims, stored cleanly from 127.0.0.5 */
    for (int i = 0; i < FLIP_VICTIMS; i++) {
        const struct victim *v = &g_flip.v[i];
        char data[512];
        http_fill(data, v->len, v->seed);
        check_put(v->guid, data, v->len, "a flipper victim");
        model_add(v->guid);
    }

    uint64_t t0 = http_mono_ms();
    int nth = flip_run();
    long run_ms = (long)(http_mono_ms() - t0);
    flip_dump();
    int late = flip_report(run_ms, nth);
    if (late)
        fail_msg("flipper: %d requests got neither a status line nor a "
                 "clean close within %d ms (see stderr; seed %llu)",
                 late, FLIP_ANSWER_MS, (unsigned long long)seed);
    int created = 0, deleted = 0, replaced = 0;
    int bad = flip_fold(&created, &deleted, &replaced);
    if (bad)
        fail_msg("flipper: %d answers disagree with what existed (see "
                 "stderr; seed %llu)",
                 bad, (unsigned long long)seed);
    int absent, present;
    flip_check_stored(&absent, &present);

    /* the count: the load's, the tests' own, the flipper's (S3) */
    size_t nload = load_pause();
    double entries = stat1("manifest.entries");
    load_resume();
    double want = (double)nload + g_own_blobs + (double)g_model.n;
    print_message("flipper: %d victims; acknowledged %d creations, %d "
                  "deletes, %d replacements; %d refused writes stored "
                  "nothing, %d created what they meant to; "
                  "manifest.entries %.0f = %zu of the load + %d of the "
                  "tests + %zu of the flipper\n",
                  FLIP_VICTIMS, created, deleted, replaced, absent, present,
                  entries, nload, g_own_blobs, g_model.n);
    if (entries != want)
        fail_msg("flipper: manifest.entries is %.0f, want %.0f: %zu of the "
                 "load, %d of the tests, %d victims + %d created - %d "
                 "deleted (seed %llu)",
                 entries, want, nload, g_own_blobs, FLIP_VICTIMS, created,
                 deleted, (unsigned long long)seed);
    for (int i = 0; i < FLIP_N; i++) {
        free(g_flip.f[i].req);
        g_flip.f[i].req = NULL;
    }
    test_end("flipper");
}

/* ---- 6: afterwards ---- */

static void test_after_all(void **state)
{
    (void)state;
    test_begin();
    long ops = atomic_load(&g_load.ops), fails = atomic_load(&g_load.fails);
    long lmax = atomic_load(&g_load.max_ms);
    load_stop();
    char *buf = malloc(4096);
    assert_non_null(buf);
    for (size_t i = 0; i < g_load.n; i++) {
        http_fill(buf, g_load.blobs[i].len, LOAD_SEED + i);
        check_data(g_load.blobs[i].guid, buf, g_load.blobs[i].len,
                   "a blob of the load");
    }
    free(buf);
    print_message("load: %ld PUT+GET from %s over the whole file, %ld "
                  "failed, the slowest %ld ms; its %zu blobs intact\n",
                  ops, IP_LOAD, fails, lmax, g_load.n);
    if (fails != 0)
        fail_msg("%ld of the load's %ld PUT+GET failed", fails, ops);
    test_end("after all");
    print_message("prober over the whole file: %ld GETs from %s, worst %ld "
                  "ms, %ld failed\n",
                  g_probe_total.probes, IP_PROBE, g_probe_total.max_ms,
                  g_probe_total.fails);
    if (g_probe_total.fails != 0 || g_probe_total.max_ms >= PROBE_MAX_MS)
        fail_msg("the prober over the whole file: %ld failed, worst %ld ms "
                 "(want 0, < %d)",
                 g_probe_total.fails, g_probe_total.max_ms, PROBE_MAX_MS);
    long rss = srv_rss_kib(&g_srv);
    print_message("after: RSS %ld KiB (%+ld)\n", rss, rss - g_base.rss);
    assert_int_equal(srv_stop(&g_srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_attack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_all, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
