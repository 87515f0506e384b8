/*
 * test_backup_hold.c - the backup procedure of docs/operations.md ("Taking
 * a backup"), followed step by step against a live blobd while a writer
 * keeps changing the store, then checked by opening the copy with a
 * second blobd.
 *
 * 1. Before the hold: blobs created, rewritten and deleted, a compaction
 *    (so manifest.bin exists) and more changes after it, all flushed.
 * 2. A writer thread starts: rewrites, new blobs (empty ones too),
 *    deletes and POST /flush, one every few milliseconds.
 * 3. The procedure: POST /admin/hold; copy log-*.blg and manifest.bin,
 *    then blobs.dat, each in small chunks with sleeps in between, reading
 *    each file to its end as it grows, so that the writer's commit groups
 *    and data writes interleave with the copy.  Twice the copy waits until
 *    the writer has made more changes and flushed: once the newest log's
 *    header is copied (so groups are appended while that log is being
 *    read), and between the two groups of files.  Then check that the
 *    hold lasted the whole copy (blobd_held, blobd_holds_expired_total,
 *    blobd_generation) and DELETE /admin/hold.  The writer goes on after
 *    the release, when freed slots are reused again.
 * 4. The copy is opened three times by a second blobd: read-only as it
 *    is; read-only with half of the live log's next commit group appended
 *    to it (what a copy that read the log in the middle of an append
 *    holds; skipped when the copy already ended in a torn group), which
 *    must open as a torn tail; and writable, which truncates that tail.
 *
 * Each time, every GUID the test touched must hold a state it may hold: the
 * state after the last change acknowledged before the POST /admin/hold was
 * sent, or the state after a later change (whose commit group the copy may
 * have caught), byte for byte with its acknowledged ETag; never torn
 * bytes, never an older state.  A blob deleted before the hold is absent.
 * The listing holds no GUID the test did not write.  When the build has
 * blobd-check ($BLOBD_CHECK), it must find the copy sound (exit 0, a torn
 * tail being a warning) before each open, as the verification step of the
 * procedure.
 *
 * BLOBD_BACKUP_DATA_FIRST=1 copies blobs.dat before the logs, the order
 * the procedure forbids; the checks then fail, which shows why the order
 * is part of the procedure (not a CTest entry).
 */
#include "srv.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"

#define NGUID 320      /* the GUID pool */
#define NPRE 48        /* blobs created before the hold */
#define W_MAX_OPS 300  /* the writer stops changing the store after these */
#define W_PAUSE_MS 4   /* between two of the writer's requests */
#define LOG_CHUNK 1024 /* the slow copy of the logs */
#define LOG_PAUSE_MS 4
#define DATA_CHUNK (1 << 20) /* the slow copy of blobs.dat */
#define DATA_PAUSE_MS 2
#define GROUP_BLOCK 64 /* format.md: headers and records are 64 bytes */

enum op_kind { OP_PUT, OP_DEL };

struct op {
    enum op_kind kind;
    uint64_t seed; /* OP_PUT: the bytes are http_fill(len, seed) */
    uint32_t len;
    char etag[API_ETAG_MAX];
    uint64_t acked_ns; /* CLOCK_MONOTONIC after the answer arrived */
};

struct guid_state {
    char guid[HTTP_GUID_BUF];
    int used; /* written at least once */
    int live; /* exists now, as far as the writer knows */
    struct op *ops;
    size_t nops, cap;
};

static struct srv g_a, g_b;
static struct guid_state g_pool[NGUID];
static size_t g_nused;
static uint64_t g_rng;
static uint64_t g_next_seed;
static uint64_t g_hold_ns; /* when POST /admin/hold was about to be sent */

static pthread_t g_writer;
static int g_writer_running;
static atomic_int w_stop;
static atomic_long w_ops, w_flushes, w_errors;
static char w_error[512]; /* the writer's first error; read after join */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the model and the changes (main thread, then the writer alone) ---- */

static struct op *op_add(struct guid_state *g)
{
    if (g->nops == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 8;
        struct op *p = realloc(g->ops, ncap * sizeof(*p));
        if (!p)
            abort();
        g->ops = p;
        g->cap = ncap;
    }
    struct op *o = &g->ops[g->nops];
    memset(o, 0, sizeof(*o));
    return o;
}

/* Sizes from empty to a whole frame, mostly small. */
static uint32_t pick_len(void)
{
    uint64_t r = tu_rand(&g_rng) % 100;
    if (r < 8)
        return 0;
    if (r < 40)
        return 1 + (uint32_t)(tu_rand(&g_rng) % 4096);
    if (r < 85)
        return 4097 + (uint32_t)(tu_rand(&g_rng) % 61440);
    return 65537 + (uint32_t)(tu_rand(&g_rng) % (API_MAX_BODY - 65536));
}

/* Record the writer's first error; 0 so callers can return it. */
static int w_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int w_fail(const char *fmt, ...)
{
    if (atomic_fetch_add(&w_errors, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w_error, sizeof(w_error), fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* PUT a new version of g; 1 if acknowledged. */
static int do_put(struct guid_state *g, uint8_t *buf)
{
    uint32_t len = pick_len();
    uint64_t seed = g_next_seed++;
    char path[64];
    http_fill(buf, len, seed);
    snprintf(path, sizeof(path), "/blobs/%s", g->guid);
    struct http_resp r;
    if (http_req(&g_a, "PUT", path, NULL, buf, len, &r) < 0)
        return w_fail("PUT %s: no answer", g->guid);
    uint64_t t = mono_ns();
    int ok = r.status == 201 || r.status == 204;
    char etag[API_ETAG_MAX] = "";
    if (ok && !http_header(&r, "ETag", etag, sizeof(etag)))
        ok = 0;
    long status = r.status;
    http_resp_free(&r);
    if (!ok)
        return w_fail("PUT %s: status %ld, want 201/204 with an ETag", g->guid,
                      status);
    struct op *o = op_add(g);
    o->kind = OP_PUT;
    o->seed = seed;
    o->len = len;
    memcpy(o->etag, etag, sizeof(o->etag));
    o->acked_ns = t;
    g->nops++;
    g->used = g->live = 1;
    return 1;
}

static int do_delete(struct guid_state *g)
{
    char path[64];
    snprintf(path, sizeof(path), "/blobs/%s", g->guid);
    struct http_resp r;
    if (http_req(&g_a, "DELETE", path, NULL, NULL, 0, &r) < 0)
        return w_fail("DELETE %s: no answer", g->guid);
    uint64_t t = mono_ns();
    long status = r.status;
    http_resp_free(&r);
    if (status != 204)
        return w_fail("DELETE %s: status %ld, want 204", g->guid, status);
    struct op *o = op_add(g);
    o->kind = OP_DEL;
    o->acked_ns = t;
    g->nops++;
    g->live = 0;
    return 1;
}

static int do_flush(void)
{
    long st = http_status(&g_a, "POST", "/flush", NULL, NULL, 0);
    if (st != 200)
        return w_fail("POST /flush: status %ld, want 200", st);
    return 1;
}

/* A live GUID at random, or NULL. */
static struct guid_state *pick_live(void)
{
    size_t nlive = 0;
    for (size_t i = 0; i < g_nused; i++)
        nlive += g_pool[i].live;
    if (!nlive)
        return NULL;
    size_t k = (size_t)(tu_rand(&g_rng) % nlive);
    for (size_t i = 0; i < g_nused; i++)
        if (g_pool[i].live && k-- == 0)
            return &g_pool[i];
    return NULL;
}

/* A GUID never written, or NULL when the pool is spent.  Deleted GUIDs
 * are never written again, so a delete stays visible in the model. */
static struct guid_state *pick_new(void)
{
    return g_nused < NGUID ? &g_pool[g_nused++] : NULL;
}

/* One change at random: rewrite, new blob, delete or flush. */
static void one_change(uint8_t *buf)
{
    uint64_t r = tu_rand(&g_rng) % 100;
    struct guid_state *g;
    if (r < 10) {
        if (do_flush())
            atomic_fetch_add(&w_flushes, 1);
        return;
    }
    if (r < 25 && (g = pick_live()) != NULL) {
        do_delete(g);
        return;
    }
    if (r < 55 && (g = pick_new()) != NULL) {
        do_put(g, buf);
        return;
    }
    if ((g = pick_live()) != NULL)
        do_put(g, buf);
}

static void *writer_main(void *arg)
{
    uint8_t *buf = arg;
    while (!atomic_load(&w_stop) && atomic_load(&w_errors) == 0) {
        if (atomic_load(&w_ops) < W_MAX_OPS) {
            one_change(buf);
            atomic_fetch_add(&w_ops, 1);
        }
        http_sleep_ms(W_PAUSE_MS);
    }
    return NULL;
}

/* Wait until the writer has made n more changes and flushed once more. */
static void wait_writer(long n, const char *when)
{
    long ops0 = atomic_load(&w_ops), fl0 = atomic_load(&w_flushes);
    uint64_t end = http_mono_ms() + 10000;
    while ((atomic_load(&w_ops) < ops0 + n || atomic_load(&w_flushes) <= fl0) &&
           atomic_load(&w_ops) < W_MAX_OPS && http_mono_ms() < end &&
           atomic_load(&w_errors) == 0)
        http_sleep_ms(2);
    if (atomic_load(&w_ops) < ops0 + n && atomic_load(&w_ops) < W_MAX_OPS)
        fail_msg("%s: the writer made %ld changes in 10 s, want %ld", when,
                 atomic_load(&w_ops) - ops0, n);
}

/* ---- the slow copy ---- */

/*
 * Copy src to dst in chunks of chunk bytes with pause_ms between them,
 * up to the end of file as the reader finds it (as cp does).  All-zero
 * chunks are skipped, leaving holes (cp --sparse=always).  Once past
 * wait_at bytes (0: never), wait until the writer has made more changes
 * and flushed, so that commit groups are appended while the file is being
 * copied.  Returns the bytes copied.
 */
static uint64_t slow_copy(const char *src, const char *dst, size_t chunk,
                          long pause_ms, uint64_t wait_at)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        fail_msg("open %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        fail_msg("create %s: %s", dst, strerror(errno));
    char *buf = malloc(chunk);
    static const char zero[4096];
    assert_non_null(buf);
    uint64_t off = 0;
    for (;;) {
        ssize_t n = pread(in, buf, chunk, (off_t)off);
        if (n < 0)
            fail_msg("pread %s at %" PRIu64 ": %s", src, off, strerror(errno));
        if (n == 0)
            break;
        int blank = 1;
        for (ssize_t i = 0; i < n && blank; i += (ssize_t)sizeof(zero)) {
            size_t m =
                (size_t)(n - i) < sizeof(zero) ? (size_t)(n - i) : sizeof(zero);
            blank = memcmp(buf + i, zero, m) == 0;
        }
        if (!blank && pwrite(out, buf, (size_t)n, (off_t)off) != n)
            fail_msg("pwrite %s at %" PRIu64 ": %s", dst, off, strerror(errno));
        off += (uint64_t)n;
        if (wait_at && off >= wait_at) {
            wait_writer(5, "in the middle of the log copy");
            wait_at = 0;
        }
        http_sleep_ms(pause_ms);
    }
    if (ftruncate(out, (off_t)off) != 0 || fsync(out) != 0)
        fail_msg("ftruncate/fsync %s: %s", dst, strerror(errno));
    free(buf);
    close(in);
    close(out);
    return off;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The log-*.blg names of dir, sorted (by LSN: the names are fixed-width
 * hex); *n gets their count.  Caller frees each and the array. */
static char **list_logs(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("opendir %s: %s", dir, strerror(errno));
    char **v = NULL;
    size_t k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 9 || strncmp(e->d_name, "log-", 4) != 0 ||
            strcmp(e->d_name + l - 4, ".blg") != 0)
            continue;
        char **nv = realloc(v, (k + 1) * sizeof(*v));
        assert_non_null(nv);
        v = nv;
        v[k] = strdup(e->d_name);
        assert_non_null(v[k]);
        k++;
    }
    closedir(d);
    qsort(v, k, sizeof(*v), cmp_str);
    *n = k;
    return v;
}

struct copy_info {
    char newest_log[64];  /* the last log copied */
    uint64_t newest_size; /* its bytes in the copy */
    long ops_during;      /* writer changes made while copying */
    int had_snapshot;
};

static void copy_logs(const char *from, const char *to, struct copy_info *ci)
{
    size_t n = 0;
    char **logs = list_logs(from, &n);
    if (n == 0)
        fail_msg("%s holds no log-*.blg", from);
    for (size_t i = 0; i < n; i++) {
        char *s = tu_path(from, logs[i]), *d = tu_path(to, logs[i]);
        uint64_t sz =
            slow_copy(s, d, LOG_CHUNK, LOG_PAUSE_MS, i + 1 == n ? 4096 : 0);
        if (i + 1 == n) {
            snprintf(ci->newest_log, sizeof(ci->newest_log), "%s", logs[i]);
            ci->newest_size = sz;
        }
        free(s);
        free(d);
        free(logs[i]);
    }
    free(logs);
    char *s = tu_path(from, "manifest.bin"), *d = tu_path(to, "manifest.bin");
    ci->had_snapshot = access(s, F_OK) == 0;
    if (ci->had_snapshot)
        slow_copy(s, d, LOG_CHUNK, LOG_PAUSE_MS, 0);
    free(s);
    free(d);
}

static void copy_data(const char *from, const char *to)
{
    char *s = tu_path(from, "blobs.dat"), *d = tu_path(to, "blobs.dat");
    slow_copy(s, d, DATA_CHUNK, DATA_PAUSE_MS, 0);
    free(s);
    free(d);
}

/* ---- checks ---- */

static double metric(struct srv *s, const char *name)
{
    double v = 0;
    if (!http_metric_value(s, NULL, name, &v))
        fail_msg("/metrics has no %s", name);
    return v;
}

/* GET /admin/stats, parsed; caller deletes. */
static cJSON *stats(struct srv *s)
{
    struct http_resp r;
    http_req_ok(s, "GET", "/admin/stats", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /admin/stats");
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    http_resp_free(&r);
    if (!j)
        fail_msg("GET /admin/stats: the body is not JSON");
    return j;
}

static const cJSON *jpath(const cJSON *j, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    x = x ? cJSON_GetObjectItemCaseSensitive(x, b) : NULL;
    if (!x)
        fail_msg("/admin/stats has no %s.%s", a, b);
    return x;
}

static struct guid_state *find_guid(const char *guid)
{
    for (size_t i = 0; i < g_nused; i++)
        if (!strcmp(g_pool[i].guid, guid))
            return &g_pool[i];
    return NULL;
}

/* Index of the last change of g acknowledged before the hold, or -1. */
static long last_before_hold(const struct guid_state *g)
{
    long k = -1;
    for (size_t j = 0; j < g->nops; j++)
        if (g->ops[j].acked_ns < g_hold_ns)
            k = (long)j;
    return k;
}

struct tally {
    size_t present, absent, later; /* later: a change made during the copy */
    size_t deleted_before_hold;    /* absent as they must be */
    size_t rewritten_before_hold;  /* at their pre-hold version */
};

/* GET every GUID of the model from s and check it (see the file header). */
static void check_copy(struct srv *s, const char *what, struct tally *t)
{
    memset(t, 0, sizeof(*t));
    uint8_t *want = malloc(API_MAX_BODY);
    assert_non_null(want);
    for (size_t i = 0; i < g_nused; i++) {
        struct guid_state *g = &g_pool[i];
        long k = last_before_hold(g);
        struct http_resp r;
        long st = http_get(s, g->guid, &r);
        char etag[API_ETAG_MAX] = "";
        if (st == 200)
            http_header(&r, "ETag", etag, sizeof(etag));
        long match = -2; /* the change whose state the copy holds */
        for (long j = k; j < (long)g->nops && match == -2; j++) {
            if (j < 0 || g->ops[j].kind == OP_DEL) {
                if (st == 404)
                    match = j;
                continue;
            }
            const struct op *o = &g->ops[j];
            if (st != 200 || r.body_len != o->len || strcmp(etag, o->etag))
                continue;
            http_fill(want, o->len, o->seed);
            if (memcmp(r.body, want, o->len) == 0)
                match = j;
        }
        if (match == -2) {
            char got[160];
            if (st == 200)
                snprintf(got, sizeof(got), "200, %zu bytes, ETag %s",
                         r.body_len, etag);
            else
                snprintf(got, sizeof(got), "%ld%s%.80s", st,
                         r.body_len ? " " : "", r.body_len ? r.body : "");
            const struct op *ko = k >= 0 ? &g->ops[k] : NULL;
            fail_msg("%s: GET %s: %s; want the state after change %ld of %zu "
                     "(the last acknowledged before the hold: %s %s) or a "
                     "later one",
                     what, g->guid, got, k, g->nops,
                     !ko                  ? "none"
                     : ko->kind == OP_DEL ? "DELETE"
                                          : "PUT, ETag",
                     ko && ko->kind == OP_PUT ? ko->etag : "");
        }
        http_resp_free(&r);
        if (st == 200)
            t->present++;
        else
            t->absent++;
        if (match > k)
            t->later++;
        if (k >= 0 && g->ops[k].kind == OP_DEL && k > 0 &&
            k + 1 == (long)g->nops)
            t->deleted_before_hold++;
        if (match == k && k > 0 && g->ops[k].kind == OP_PUT)
            t->rewritten_before_hold++;
    }
    free(want);

    /* The listing: nothing the test did not write, as many as found. */
    char after[HTTP_GUID_BUF] = "";
    size_t listed = 0;
    for (;;) {
        char path[128];
        snprintf(path, sizeof(path), "/blobs?limit=1000%s%s",
                 after[0] ? "&after=" : "", after);
        struct http_resp r;
        http_req_ok(s, "GET", path, NULL, NULL, 0, &r);
        http_expect_status(&r, 200, "GET /blobs");
        cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
        http_resp_free(&r);
        const cJSON *blobs = j ? cJSON_GetObjectItem(j, "blobs") : NULL;
        if (!cJSON_IsArray(blobs))
            fail_msg("%s: GET %s: not a listing page", what, path);
        const cJSON *b;
        cJSON_ArrayForEach(b, blobs)
        {
            const cJSON *gv = cJSON_GetObjectItem(b, "guid");
            if (!cJSON_IsString(gv) || !find_guid(gv->valuestring))
                fail_msg("%s: the listing holds %s, which was never written",
                         what, cJSON_IsString(gv) ? gv->valuestring : "?");
            listed++;
        }
        const cJSON *next = cJSON_GetObjectItem(j, "next");
        if (cJSON_IsString(next))
            snprintf(after, sizeof(after), "%s", next->valuestring);
        cJSON_Delete(j);
        if (!cJSON_IsString(next))
            break;
    }
    if (listed != t->present)
        fail_msg("%s: the listing holds %zu blobs, GET found %zu", what, listed,
                 t->present);
}

/* The last lines of s's log, for a failure message. */
static void print_log_tail(struct srv *s)
{
    size_t n = 0;
    char *p = http_read_file(s->log, &n);
    if (p)
        print_message("---- %s (tail) ----\n%s\n", s->log,
                      p + (n > 1500 ? n - 1500 : 0));
    free(p);
}

/* blobd-check DIR (the verification step of the procedure), when the
 * build has it: it must exit 0.  Its output goes to out. */
static void run_check(const char *dir, const char *out, const char *what)
{
    const char *bin = getenv("BLOBD_CHECK");
    if (!bin || !*bin) {
        print_message("%s: no blobd-check in this build, not run\n", what);
        return;
    }
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execl(bin, bin, dir, (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        char *p = http_read_file(out, NULL);
        print_message("---- blobd-check %s ----\n%s\n", dir, p ? p : "");
        free(p);
        fail_msg("%s: blobd-check exited %d, want 0 (sound)", what,
                 WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws));
    }
}

/* Wait until s serves blobs (a read-only server never becomes ready). */
static void wait_serving(struct srv *s, const char *what)
{
    uint64_t end = http_mono_ms() + 10000;
    long st = 0;
    while (http_mono_ms() < end) {
        st = http_status(s, "GET", "/blobs?limit=1", NULL, NULL, 0);
        if (st == 200)
            return;
        int ex = srv_wait(s, 20);
        if (ex >= 0) {
            print_log_tail(s);
            fail_msg("%s: blobd exited %d instead of opening the copy", what,
                     ex);
        }
    }
    print_log_tail(s);
    fail_msg("%s: GET /blobs still answers %ld after 10 s", what, st);
}

/*
 * Append to the copy's newest log the first half of the next commit group
 * that the live log holds past the copied end: what a copy made while that
 * group was being appended can hold.  Returns 0 when the live log has no
 * complete group there yet.
 */
static int append_half_group(const struct copy_info *ci)
{
    char *live = tu_path(g_a.data, ci->newest_log);
    char *copy = tu_path(g_b.data, ci->newest_log);
    uint64_t gstart = (ci->newest_size + 4095) / 4096 * 4096;
    int rc = 0;
    int in = open(live, O_RDONLY | O_CLOEXEC);
    int out = open(copy, O_WRONLY | O_CLOEXEC);
    if (in < 0 || out < 0)
        fail_msg("open %s or %s: %s", live, copy, strerror(errno));
    uint8_t hdr[GROUP_BLOCK];
    struct stat sb;
    if (fstat(in, &sb) == 0 &&
        pread(in, hdr, sizeof(hdr), (off_t)gstart) == (ssize_t)sizeof(hdr) &&
        memcmp(hdr, "BLOBDGRP", 8) == 0) {
        uint32_t count = (uint32_t)hdr[16] | (uint32_t)hdr[17] << 8 |
                         (uint32_t)hdr[18] << 16 | (uint32_t)hdr[19] << 24;
        uint64_t whole = (uint64_t)GROUP_BLOCK * (count + 2);
        uint64_t half = (uint64_t)GROUP_BLOCK * ((count + 3) / 2);
        if (count > 0 && (uint64_t)sb.st_size >= gstart + whole) {
            uint8_t *buf = malloc(half);
            assert_non_null(buf);
            if (pread(in, buf, half, (off_t)gstart) != (ssize_t)half ||
                pwrite(out, buf, half, (off_t)gstart) != (ssize_t)half ||
                fsync(out) != 0)
                fail_msg("copying half a group of %s: %s", live,
                         strerror(errno));
            free(buf);
            rc = 1;
        }
    }
    close(in);
    close(out);
    free(live);
    free(copy);
    return rc;
}

static void test_backup_hold(void **state)
{
    (void)state;
    int data_first = getenv("BLOBD_BACKUP_DATA_FIRST") &&
                     !strcmp(getenv("BLOBD_BACKUP_DATA_FIRST"), "1");
    g_rng = tu_seed();
    g_next_seed = tu_rand(&g_rng);
    for (size_t i = 0; i < NGUID; i++)
        http_guid_rand(g_pool[i].guid);
    uint8_t *buf = malloc(API_MAX_BODY), *wbuf = malloc(API_MAX_BODY);
    assert_non_null(buf);
    assert_non_null(wbuf);

    const char *const argv[] = {"--flush-interval-ms", "100", "--hold-timeout",
                                "120", NULL};
    srv_up(&g_a, argv);

    /* 1. Before the hold: creates, rewrites, deletes, a compaction, more
     * changes after it, all flushed. */
    for (int i = 0; i < NPRE; i++)
        do_put(pick_new(), buf);
    for (int i = 0; i < 16; i++)
        do_put(&g_pool[i], buf);
    for (int i = 16; i < 24; i++)
        do_delete(&g_pool[i]);
    do_flush();
    double c0 = metric(&g_a, "blobd_compactions_total");
    struct http_resp r;
    http_req_ok(&g_a, "POST", "/admin/compact", NULL, NULL, 0, &r);
    http_expect_status(&r, 202, "POST /admin/compact");
    http_resp_free(&r);
    uint64_t end = http_mono_ms() + 10000;
    while (metric(&g_a, "blobd_compactions_total") <= c0 &&
           http_mono_ms() < end)
        http_sleep_ms(10);
    if (metric(&g_a, "blobd_compactions_total") <= c0)
        fail_msg("POST /admin/compact: no compaction completed in 10 s");
    for (int i = 0; i < 8; i++)
        do_put(&g_pool[i], buf);
    for (int i = 24; i < 28; i++)
        do_delete(&g_pool[i]);
    for (int i = 0; i < 8; i++)
        do_put(pick_new(), buf);
    do_flush();
    if (atomic_load(&w_errors))
        fail_msg("before the hold: %s", w_error);
    char *snap = tu_path(g_a.data, "manifest.bin");
    if (access(snap, F_OK) != 0)
        fail_msg("no manifest.bin after a compaction");
    free(snap);

    /* 2. The writer. */
    if (pthread_create(&g_writer, NULL, writer_main, wbuf) != 0)
        fail_msg("pthread_create failed");
    g_writer_running = 1;
    wait_writer(20, "before the hold");

    /* 3. The procedure of docs/operations.md, "Taking a backup". */
    srv_init(&g_b); /* the copy goes straight into its data dir */
    if (mkdir(g_b.data, 0700) != 0)
        fail_msg("mkdir %s: %s", g_b.data, strerror(errno));
    g_hold_ns = mono_ns();
    http_req_ok(&g_a, "POST", "/admin/hold", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "POST /admin/hold");
    if (!strstr(r.body, "\"held\":true"))
        fail_msg("POST /admin/hold: %s", r.body);
    http_resp_free(&r);
    double expired = metric(&g_a, "blobd_holds_expired_total");
    double gen = metric(&g_a, "blobd_generation");

    struct copy_info ci = {0};
    long ops0 = atomic_load(&w_ops);
    if (data_first)
        copy_data(g_a.data, g_b.data);
    else
        copy_logs(g_a.data, g_b.data, &ci);
    wait_writer(10, "between the two parts of the copy");
    if (data_first)
        copy_logs(g_a.data, g_b.data, &ci);
    else
        copy_data(g_a.data, g_b.data);
    ci.ops_during = atomic_load(&w_ops) - ops0;

    if (metric(&g_a, "blobd_held") != 1 ||
        metric(&g_a, "blobd_holds_expired_total") != expired ||
        metric(&g_a, "blobd_generation") != gen)
        fail_msg("the hold lapsed during the copy (held %.0f, expired %.0f "
                 "-> %.0f)",
                 metric(&g_a, "blobd_held"), expired,
                 metric(&g_a, "blobd_holds_expired_total"));
    http_req_ok(&g_a, "DELETE", "/admin/hold", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "DELETE /admin/hold");
    http_resp_free(&r);
    if (metric(&g_a, "blobd_held") != 0)
        fail_msg("blobd_held is still 1 after DELETE /admin/hold");

    /* The writer goes on after the release (slots are reused again) until
     * the live log holds a whole group past the copied end. */
    wait_writer(10, "after the release");
    atomic_store(&w_stop, 1);
    pthread_join(g_writer, NULL);
    g_writer_running = 0;
    if (atomic_load(&w_errors))
        fail_msg("writer: %s", w_error);
    do_flush();
    if (ci.ops_during < 10)
        fail_msg("the writer made only %ld changes during the copy",
                 ci.ops_during);
    int st = srv_stop(&g_a);
    if (st != 0)
        fail_msg("the first server exited %d at SIGTERM, want 0", st);

    size_t changes = 0;
    for (size_t i = 0; i < g_nused; i++)
        changes += g_pool[i].nops;
    print_message("backup: %zu GUIDs, %zu changes, %ld of them during the "
                  "copy; newest log %s copied at %" PRIu64 " bytes%s\n",
                  g_nused, changes, ci.ops_during, ci.newest_log,
                  ci.newest_size,
                  data_first ? " (blobs.dat copied first)" : "");

    /* 4a. The copy as it is, read-only (it changes nothing on disk). */
    const char *const ro[] = {"--read-only", NULL};
    struct tally t;
    char *check_out = tu_path(g_b.dir, "blobd-check.out");
    run_check(g_b.data, check_out, "the copy");
    if (srv_start(&g_b, ro, NULL) != 0)
        fail_msg("blobd --read-only on the copy did not start");
    wait_serving(&g_b, "read-only copy");
    check_copy(&g_b, "read-only copy", &t);
    cJSON *j = stats(&g_b);
    int torn = cJSON_IsTrue(jpath(j, "manifest", "torn_tail_found"));
    cJSON_Delete(j);
    srv_stop(&g_b);
    print_message("copy: %zu present, %zu absent, %zu in a state from during "
                  "the copy, %zu deleted and %zu rewritten before the hold; "
                  "torn tail %s\n",
                  t.present, t.absent, t.later, t.deleted_before_hold,
                  t.rewritten_before_hold, torn ? "yes" : "no");
    if (t.deleted_before_hold == 0 || t.rewritten_before_hold == 0)
        fail_msg("the model has no blob deleted (%zu) or rewritten (%zu) "
                 "before the hold left in that state",
                 t.deleted_before_hold, t.rewritten_before_hold);
    /* Groups were appended while the newest log was being copied (the copy
     * waited for them), so the copy holds some changes made after the
     * hold was taken. */
    if (t.later == 0)
        fail_msg("the copy holds no change made during the copy");

    /* 4b. A commit group cut in half at the end of the newest log. */
    if (!torn) {
        if (!append_half_group(&ci))
            fail_msg("the live log %s has no whole group past %" PRIu64,
                     ci.newest_log, ci.newest_size);
        run_check(g_b.data, check_out, "the copy with half a group");
        if (srv_start(&g_b, ro, NULL) != 0)
            fail_msg("blobd --read-only on the copy with half a group did "
                     "not start");
        wait_serving(&g_b, "read-only copy with half a group");
        j = stats(&g_b);
        torn = cJSON_IsTrue(jpath(j, "manifest", "torn_tail_found"));
        cJSON_Delete(j);
        if (!torn)
            fail_msg("half a commit group at the end of %s did not open as a "
                     "torn tail",
                     ci.newest_log);
        check_copy(&g_b, "read-only copy with half a group", &t);
        srv_stop(&g_b);
    }

    /* 4c. Writable: the torn tail is truncated, nothing else changes. */
    srv_restart(&g_b, NULL, NULL);
    j = stats(&g_b);
    if (!cJSON_IsTrue(jpath(j, "manifest", "torn_tail_found")))
        fail_msg("the writable open of the copy found no torn tail");
    cJSON_Delete(j);
    if (!srv_log_has(&g_b, "torn tail at offset"))
        fail_msg("the writable open logged no torn tail");
    check_copy(&g_b, "writable copy", &t);
    st = srv_stop(&g_b);
    if (st != 0)
        fail_msg("the server on the copy exited %d at SIGTERM, want 0", st);

    free(check_out);
    free(buf);
    free(wbuf);
}

static int teardown(void **state)
{
    (void)state;
    atomic_store(&w_stop, 1);
    if (g_writer_running) /* a failure left it running: it uses g_a */
        pthread_join(g_writer, NULL);
    if (g_a.dir[0])
        srv_fini(&g_a);
    if (g_b.dir[0])
        srv_fini(&g_b);
    for (size_t i = 0; i < NGUID; i++)
        free(g_pool[i].ops);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_backup_hold, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
