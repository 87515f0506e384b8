/*
 * load.c - see load.h: writer threads over a GUID pool, and the model that
 * load_check compares a restarted server against (invariants L1-L5 there).
 *
 * Ownership: struct load owns the GUID pool, every GUID's operation list
 * and history, the writers and their curl handles and buffers.  A GUID's
 * fields are its writer's while the writers run, the caller's otherwise;
 * the clock, the cut and the counters the writers touch are atomics; the
 * list of flushes and the anomaly log have a mutex each.
 */
#include "load.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "srv.h"
#include "testutil.h"

#define LOAD_MAX_BLOB 524288u
#define LOAD_MAX_OPS 200000   /* per GUID between two checks */
#define LOAD_HIST 8           /* earlier durable states kept per GUID */
#define LOAD_MAX_ARCH 1000000 /* past operations kept per GUID */
#define LOAD_ANOM_KEEP 20     /* anomalies kept in full */
#define LOAD_CONNECT_MS 2000L
#define LOAD_CHECK_TIMEOUT_MS 20000L
#define LOAD_CHECK_TRIES 3

enum { OP_PUT = 1, OP_DEL = 2 };
enum { OUT_UNKNOWN = 0, OUT_ACKED = 1 };

/* A GUID's content: absent, or the bytes http_fill(seed) of len bytes.
 * op is the operation that made it (0: none, the start); how says how it
 * became known: 'i' initial, 'a' attempted, 's' Blob-Durable: true, 'f' a
 * flush, 'c' found by a check. */
struct lstate {
    uint64_t seed;
    uint64_t op;
    uint32_t len;
    uint8_t present;
    char how;
};

struct lop {
    uint64_t id;
    uint64_t tick; /* L1: when its 2xx arrived */
    struct lstate res;
    uint8_t kind;
    uint8_t fsync;
    uint8_t outcome;
    uint8_t durable; /* answered Blob-Durable: true */
    long status;     /* the answer (0: none) */
    uint64_t check;  /* the number of checks made before it was sent */
    char etag[24];   /* of a 2xx to a PUT */
};

struct lguid {
    char hex[HTTP_GUID_BUF];
    struct lstate durable; /* L1 */
    struct lstate visible; /* L4: what the server shows now */
    struct lstate found;   /* load_check's scratch */
    long strict;           /* load_check's scratch (L5) */
    int frozen;            /* L2 */
    struct lop *ops;       /* attempted since durable, in order */
    size_t nops, cap;
    struct lstate hist[LOAD_HIST]; /* earlier durable states, newest last */
    unsigned nhist;
    struct lop *arch; /* every earlier operation, oldest first (reports) */
    size_t narch, caparch;
};

/* A POST /flush answered 200: its ticks before sending and after the
 * answer (L1). */
struct lflush {
    uint64_t start, end;
};

struct lbuf {
    char *p;
    size_t n, cap, max;
    int over;
};

struct lworker {
    struct load *l;
    unsigned idx;
    pthread_t th;
    int started;
    CURL *c;
    uint64_t rng;
    uint8_t *data; /* LOAD_MAX_BLOB */
    int port;
};

struct load {
    struct load_opts o;
    struct lguid *g;
    struct lworker *w;
    atomic_int stop;
    int running;
    atomic_uint_fast64_t clock, next_op;
    uint64_t base_wm;              /* the tick of the last check's flush */
    atomic_uint_fast64_t cut_tick; /* load_cut's, 0: none since the check */
    pthread_mutex_t fl_mu; /* the flushes answered 200 since the check */
    struct lflush *fl;
    size_t nfl, capfl;
    atomic_uint_fast64_t attempted, acked, acked_sync, not_found, unknown,
        flushes, flushes_ok;
    uint64_t flushed, checks, checked, at_durable, at_later, at_unacked,
        violations, postcut_acks, postcut_flushes,
        postcut_lost; /* the caller's thread only */
    pthread_mutex_t anom_mu;
    uint64_t anomalies;
    char anom[LOAD_ANOM_KEEP][400];
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_curl_ok;

static void load_global_init(void)
{
    load_curl_ok = curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK;
    signal(SIGPIPE, SIG_IGN);
}

/* ---- contents ---- */

static uint64_t load_mix(uint64_t a, uint64_t b)
{
    uint64_t s = a ^ (b * 0x9e3779b97f4a7c15ull);
    return tu_rand(&s);
}

/* The length of the content of seed: 5 % empty, 7 % exactly 512 KiB, 15 %
 * 4 KiB+1 .. 512 KiB-1, the rest 1 .. 4 KiB. */
static uint32_t load_len(uint64_t seed)
{
    uint64_t r = load_mix(seed, 0x6c656e);
    unsigned p = (unsigned)(r % 100);
    uint64_t x = r >> 8;
    if (p < 5)
        return 0;
    if (p < 12)
        return LOAD_MAX_BLOB;
    if (p < 27)
        return 4097 + (uint32_t)(x % (LOAD_MAX_BLOB - 4097));
    return 1 + (uint32_t)(x % 4096);
}

/* ---- anomalies (L4) ---- */

static void load_anomaly(struct load *l, const struct lguid *g, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));

static void load_anomaly(struct load *l, const struct lguid *g, const char *fmt,
                         ...)
{
    pthread_mutex_lock(&l->anom_mu);
    if (l->anomalies < LOAD_ANOM_KEEP) {
        char *p = l->anom[l->anomalies];
        size_t cap = sizeof(l->anom[0]);
        int n = snprintf(p, cap, "guid %s: ", g ? g->hex : "-");
        if (n < 0 || (size_t)n >= cap)
            n = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p + n, cap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    l->anomalies++;
    pthread_mutex_unlock(&l->anom_mu);
}

uint64_t load_anomalies(struct load *l, FILE *out)
{
    pthread_mutex_lock(&l->anom_mu);
    uint64_t n = l->anomalies;
    for (uint64_t i = 0; i < n && i < LOAD_ANOM_KEEP; i++)
        fprintf(out, "ANOMALY %s\n", l->anom[i]);
    if (n > LOAD_ANOM_KEEP)
        fprintf(out, "ANOMALY ... and %" PRIu64 " more\n", n - LOAD_ANOM_KEEP);
    pthread_mutex_unlock(&l->anom_mu);
    return n;
}

/* ---- HTTP ---- */

struct lresp {
    long status;      /* 0: no answer (transport error, timeout) */
    int blob_durable; /* -1 absent, 0 false, 1 true */
    CURLcode cc;
    char etag[48];
};

static size_t lb_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct lbuf *b = ud;
    size_t n = sz * nm;
    if (!b || n == 0)
        return n;
    if (b->n + n > b->max) {
        b->over = 1;
        return 0;
    }
    if (b->n + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 65536;
        while (ncap < b->n + n)
            ncap *= 2;
        char *q = realloc(b->p, ncap);
        if (!q) {
            b->over = 1;
            return 0;
        }
        b->p = q;
        b->cap = ncap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return n;
}

static size_t lr_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct lresp *r = ud;
    size_t n = sz * nm;
    static const char name[] = "Blob-Durable:";
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        r->blob_durable = -1; /* a new (final or interim) response */
        r->etag[0] = '\0';
    } else if (n > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        size_t k = n - 5;
        const char *v = p + 5;
        while (k && (*v == ' ' || *v == '\t'))
            v++, k--;
        while (k && (v[k - 1] == '\r' || v[k - 1] == '\n'))
            k--;
        if (k >= sizeof(r->etag))
            k = sizeof(r->etag) - 1;
        memcpy(r->etag, v, k);
        r->etag[k] = '\0';
    } else if (n > sizeof(name) - 1 &&
               strncasecmp(p, name, sizeof(name) - 1) == 0) {
        const char *v = p + sizeof(name) - 1;
        const char *e = p + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        if (e - v >= 4 && memcmp(v, "true", 4) == 0)
            r->blob_durable = 1;
        else if (e - v >= 5 && memcmp(v, "false", 5) == 0)
            r->blob_durable = 0;
        else
            r->blob_durable = 2; /* neither: an anomaly */
    }
    return n;
}

/*
 * One exchange on c (kept alive between calls): method, path, and a body
 * of len bytes when body is not NULL.  The answer's body goes to out (may
 * be NULL: dropped).  Fills *r; returns 0, or -1 when curl could not be
 * set up.
 */
static int load_http(CURL *c, int port, long timeout_ms, const char *method,
                     const char *path, const void *body, size_t len,
                     struct lbuf *out, struct lresp *r)
{
    char url[256];
    struct curl_slist *hl = NULL, *t;
    memset(r, 0, sizeof(*r));
    r->blob_durable = -1;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_reset(c); /* keeps the connection */
    if (body) {
        t = curl_slist_append(hl, "Expect:");
        if (t)
            hl = t;
        t = t ? curl_slist_append(hl, "Content-Type:") : NULL;
        if (!t) {
            curl_slist_free_all(hl);
            return -1;
        }
        hl = t;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, LOAD_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, lb_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, lr_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    r->cc = curl_easy_perform(c);
    if (r->cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
    return 0;
}

/* ---- the model ---- */

/* Append an attempted operation to g's list; NULL past LOAD_MAX_OPS or
 * when out of memory (the caller records an anomaly and freezes g). */
static struct lop *lg_push(struct lguid *g)
{
    if (g->nops == g->cap) {
        size_t ncap = g->cap ? g->cap * 2 : 64;
        if (ncap > LOAD_MAX_OPS)
            return NULL;
        struct lop *q = realloc(g->ops, ncap * sizeof(*q));
        if (!q)
            return NULL;
        g->ops = q;
        g->cap = ncap;
    }
    struct lop *op = &g->ops[g->nops++];
    memset(op, 0, sizeof(*op));
    return op;
}

static void lg_hist(struct lguid *g, const struct lstate *s)
{
    if (g->nhist == LOAD_HIST) {
        memmove(g->hist, g->hist + 1, (LOAD_HIST - 1) * sizeof(g->hist[0]));
        g->nhist--;
    }
    g->hist[g->nhist++] = *s;
}

/* Keep n operations for the reports (up to LOAD_MAX_ARCH). */
static void lg_archive(struct lguid *g, const struct lop *ops, size_t n)
{
    if (n == 0)
        return;
    if (g->narch + n > g->caparch) {
        size_t ncap = g->caparch ? g->caparch : 256;
        while (ncap < g->narch + n)
            ncap *= 2;
        if (ncap > LOAD_MAX_ARCH)
            return;
        struct lop *q = realloc(g->arch, ncap * sizeof(*q));
        if (!q)
            return;
        g->arch = q;
        g->caparch = ncap;
    }
    memcpy(g->arch + g->narch, ops, n * sizeof(*ops));
    g->narch += n;
}

static int ls_same(const struct lstate *a, const struct lstate *b)
{
    if (a->present != b->present)
        return 0;
    return !a->present || (a->seed == b->seed && a->len == b->len);
}

static const char *how_name(char how)
{
    switch (how) {
    case 'i':
        return "initial";
    case 'a':
        return "attempted";
    case 's':
        return "answered Blob-Durable: true";
    case 'f':
        return "covered by a flush";
    case 'c':
        return "found by a check";
    default:
        return "?";
    }
}

static void ls_print(FILE *out, const struct lstate *s)
{
    if (s->present)
        fprintf(out, "content seed 0x%016" PRIx64 " len %" PRIu32, s->seed,
                s->len);
    else
        fprintf(out, "absent");
    if (s->op)
        fprintf(out, " (op #%" PRIu64 ")", s->op);
}

static void lop_print(FILE *out, const struct lop *op)
{
    fprintf(out, "%s%s op #%" PRIu64 " -> ",
            op->kind == OP_PUT ? "PUT" : "DELETE",
            op->fsync ? "?fsync=true" : "", op->id);
    ls_print(out, &op->res);
    if (op->outcome == OUT_ACKED)
        fprintf(out, "; answered %ld%s%s Blob-Durable: %s, tick %" PRIu64,
                op->status, op->etag[0] ? " ETag " : "", op->etag,
                op->durable ? "true" : "false", op->tick);
    else if (op->status)
        fprintf(out, "; outcome unknown (answered %ld)", op->status);
    else
        fprintf(out, "; outcome unknown (no answer)");
    fprintf(out, "; sent after check %" PRIu64, op->check);
}

/* ---- the writers ---- */

static void lw_unknown(struct lworker *w, struct lguid *g, struct lop *op,
                       const struct lresp *r)
{
    struct load *l = w->l;
    op->outcome = OUT_UNKNOWN;
    op->status = r->status;
    g->frozen = 1; /* L2 */
    atomic_fetch_add(&l->unknown, 1);
    /* 503 (store_failed, overloaded), 507 (no_space) and a PUT's 500
     * (write_failed) are answers the API has for a failed write. */
    if (r->status != 0 && r->status != 503 && r->status != 507 &&
        !(r->status == 500 && op->kind == OP_PUT))
        load_anomaly(l, g, "op #%" PRIu64 " %s: unexpected status %ld", op->id,
                     op->kind == OP_PUT ? "PUT" : "DELETE", r->status);
}

/* An answer 2xx to op: L1's tick, and L4's checks. */
static void lw_acked(struct lworker *w, struct lguid *g, struct lop *op,
                     const struct lresp *r, long want)
{
    struct load *l = w->l;
    op->tick = atomic_fetch_add(&l->clock, 1);
    op->outcome = OUT_ACKED;
    op->status = r->status;
    op->durable = r->blob_durable == 1;
    size_t el = strnlen(r->etag, sizeof(op->etag) - 1);
    memcpy(op->etag, r->etag, el);
    op->etag[el] = '\0';
    atomic_fetch_add(&l->acked, 1);
    if (op->durable)
        atomic_fetch_add(&l->acked_sync, 1);
    const char *what = op->kind == OP_PUT ? "PUT" : "DELETE";
    if (r->status != want)
        load_anomaly(l, g,
                     "op #%" PRIu64 " %s answered %ld, want %ld (the model "
                     "has it %s)",
                     op->id, what, r->status, want,
                     g->visible.present ? "present" : "absent");
    if (r->blob_durable < 0 || r->blob_durable > 1)
        load_anomaly(l, g, "op #%" PRIu64 " %s %ld: no valid Blob-Durable",
                     op->id, what, r->status);
    else if (op->fsync && !op->durable)
        load_anomaly(l, g,
                     "op #%" PRIu64 " %s?fsync=true answered %ld with "
                     "Blob-Durable: false",
                     op->id, what, r->status);
    g->visible = op->res;
}

static void lw_put(struct lworker *w, struct lguid *g, int fsync)
{
    struct load *l = w->l;
    struct lop *op = lg_push(g);
    if (!op) {
        load_anomaly(l, g, "more than %d operations between checks",
                     LOAD_MAX_OPS);
        g->frozen = 1;
        return;
    }
    op->id = atomic_fetch_add(&l->next_op, 1) + 1;
    op->check = l->checks;
    op->kind = OP_PUT;
    op->fsync = (uint8_t)fsync;
    op->res.present = 1;
    op->res.seed = load_mix(l->o.seed, op->id);
    op->res.len = load_len(op->res.seed);
    op->res.op = op->id;
    op->res.how = 'a';
    http_fill(w->data, op->res.len, op->res.seed);
    char path[96];
    snprintf(path, sizeof(path), "/blobs/%s%s", g->hex,
             fsync ? "?fsync=true" : "");
    struct lresp r;
    atomic_fetch_add(&l->attempted, 1);
    if (load_http(w->c, w->port, l->o.timeout_ms, "PUT", path, w->data,
                  op->res.len, NULL, &r) != 0)
        r.status = 0;
    if (r.status == 201 || r.status == 204)
        lw_acked(w, g, op, &r, g->visible.present ? 204 : 201);
    else
        lw_unknown(w, g, op, &r);
}

static void lw_delete(struct lworker *w, struct lguid *g, int fsync)
{
    struct load *l = w->l;
    struct lop *op = lg_push(g);
    if (!op) {
        load_anomaly(l, g, "more than %d operations between checks",
                     LOAD_MAX_OPS);
        g->frozen = 1;
        return;
    }
    op->id = atomic_fetch_add(&l->next_op, 1) + 1;
    op->check = l->checks;
    op->kind = OP_DEL;
    op->fsync = (uint8_t)fsync;
    op->res.op = op->id;
    op->res.how = 'a';
    char path[96];
    snprintf(path, sizeof(path), "/blobs/%s%s", g->hex,
             fsync ? "?fsync=true" : "");
    struct lresp r;
    atomic_fetch_add(&l->attempted, 1);
    if (load_http(w->c, w->port, l->o.timeout_ms, "DELETE", path, NULL, 0, NULL,
                  &r) != 0)
        r.status = 0;
    if (r.status == 204) {
        lw_acked(w, g, op, &r, g->visible.present ? 204 : 404);
    } else if (r.status == 404) {
        /* Nothing changed: not an operation of the model. */
        if (g->visible.present)
            load_anomaly(l, g,
                         "op #%" PRIu64 " DELETE answered 404 but the model "
                         "has it present (op #%" PRIu64 ")",
                         op->id, g->visible.op);
        g->nops--;
        atomic_fetch_add(&l->not_found, 1);
    } else {
        lw_unknown(w, g, op, &r);
    }
}

static void lw_flush(struct lworker *w)
{
    struct load *l = w->l;
    struct lresp r;
    uint64_t start = atomic_fetch_add(&l->clock, 1); /* L1 */
    atomic_fetch_add(&l->flushes, 1);
    if (load_http(w->c, w->port, l->o.timeout_ms, "POST", "/flush", "", 0, NULL,
                  &r) != 0 ||
        r.status != 200)
        return;
    atomic_fetch_add(&l->flushes_ok, 1);
    uint64_t end = atomic_fetch_add(&l->clock, 1);
    pthread_mutex_lock(&l->fl_mu);
    if (l->nfl == l->capfl && l->capfl < 1000000) {
        size_t ncap = l->capfl ? l->capfl * 2 : 256;
        struct lflush *q = realloc(l->fl, ncap * sizeof(*q));
        if (q) {
            l->fl = q;
            l->capfl = ncap;
        }
    }
    if (l->nfl < l->capfl)
        l->fl[l->nfl++] = (struct lflush){start, end};
    pthread_mutex_unlock(&l->fl_mu);
}

static void *lw_main(void *arg)
{
    struct lworker *w = arg;
    struct load *l = w->l;
    unsigned t = l->o.threads;
    unsigned mine = (l->o.guids + t - 1 - w->idx) / t; /* GUIDs idx + k*t */
    while (!atomic_load(&l->stop)) {
        uint64_t r = tu_rand(&w->rng);
        if (r % 1000 < l->o.flush_pm) {
            lw_flush(w);
            continue;
        }
        /* A random GUID of this writer's that is not frozen. */
        struct lguid *g = NULL;
        unsigned start = (unsigned)((r >> 10) % (mine ? mine : 1));
        for (unsigned k = 0; k < mine && !g; k++) {
            struct lguid *c = &l->g[w->idx + ((start + k) % mine) * t];
            if (!c->frozen)
                g = c;
        }
        if (!g) {
            http_sleep_ms(5);
            continue;
        }
        unsigned p = (unsigned)((r >> 32) % 100);
        if (p < 55)
            lw_put(w, g, 0);
        else if (p < 72)
            lw_put(w, g, 1);
        else if (p < 90)
            lw_delete(w, g, 0);
        else
            lw_delete(w, g, 1);
    }
    return NULL;
}

/* ---- the life cycle ---- */

struct load *load_new(const struct load_opts *o)
{
    pthread_once(&load_once, load_global_init);
    if (!load_curl_ok)
        return NULL;
    struct load *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->o = *o;
    if (!l->o.threads)
        l->o.threads = 4;
    if (!l->o.guids)
        l->o.guids = 48;
    if (l->o.guids < l->o.threads)
        l->o.guids = l->o.threads;
    if (!l->o.timeout_ms)
        l->o.timeout_ms = 10000;
    if (!l->o.flush_pm)
        l->o.flush_pm = 60;
    pthread_mutex_init(&l->anom_mu, NULL);
    pthread_mutex_init(&l->fl_mu, NULL);
    atomic_init(&l->clock, 1);
    l->g = calloc(l->o.guids, sizeof(*l->g));
    l->w = calloc(l->o.threads, sizeof(*l->w));
    if (!l->g || !l->w)
        goto fail;
    for (unsigned i = 0; i < l->o.guids; i++) {
        struct lguid *g = &l->g[i];
        http_guid_rand(g->hex);
        g->durable.how = 'i';
        g->visible = g->durable;
    }
    for (unsigned i = 0; i < l->o.threads; i++) {
        struct lworker *w = &l->w[i];
        w->l = l;
        w->idx = i;
        w->rng = load_mix(l->o.seed, 0x77000000u + i);
        w->data = malloc(LOAD_MAX_BLOB);
        w->c = curl_easy_init();
        if (!w->data || !w->c)
            goto fail;
    }
    return l;
fail:
    load_free(l);
    return NULL;
}

void load_free(struct load *l)
{
    if (!l)
        return;
    load_join(l);
    for (unsigned i = 0; l->w && i < l->o.threads; i++) {
        if (l->w[i].c)
            curl_easy_cleanup(l->w[i].c);
        free(l->w[i].data);
    }
    for (unsigned i = 0; l->g && i < l->o.guids; i++) {
        free(l->g[i].ops);
        free(l->g[i].arch);
    }
    free(l->w);
    free(l->g);
    pthread_mutex_destroy(&l->anom_mu);
    pthread_mutex_destroy(&l->fl_mu);
    free(l->fl);
    free(l);
}

int load_start(struct load *l, int port)
{
    if (l->running)
        return -EBUSY;
    atomic_store(&l->stop, 0);
    l->running = 1;
    for (unsigned i = 0; i < l->o.threads; i++) {
        struct lworker *w = &l->w[i];
        w->port = port;
        int rc = pthread_create(&w->th, NULL, lw_main, w);
        if (rc != 0) {
            load_join(l);
            return -rc;
        }
        w->started = 1;
    }
    return 0;
}

void load_cut(struct load *l)
{
    atomic_store(&l->cut_tick, atomic_fetch_add(&l->clock, 1));
}

void load_halt(struct load *l)
{
    atomic_store(&l->stop, 1);
}

void load_join(struct load *l)
{
    if (!l->running)
        return;
    load_halt(l);
    for (unsigned i = 0; i < l->o.threads; i++) {
        if (l->w[i].started)
            pthread_join(l->w[i].th, NULL);
        l->w[i].started = 0;
    }
    l->running = 0;
}

/* ---- the check ---- */

/* L1's watermarks: the latest start of a flush answered 200 (all), and of
 * one answered before the cut (L5; all when there was no cut). */
struct lwm {
    uint64_t all, cut;
};

static struct lwm load_watermarks(struct load *l, uint64_t cut)
{
    struct lwm w = {l->base_wm, 0};
    w.cut = w.all;
    pthread_mutex_lock(&l->fl_mu);
    for (size_t i = 0; i < l->nfl; i++) {
        if (l->fl[i].start > w.all)
            w.all = l->fl[i].start;
        if ((!cut || l->fl[i].end < cut) && l->fl[i].start > w.cut)
            w.cut = l->fl[i].start;
        if (cut && l->fl[i].end >= cut)
            l->postcut_flushes++;
    }
    pthread_mutex_unlock(&l->fl_mu);
    return w;
}

/* L1 (and L5 with cut != 0): is op known durable? */
static int lop_durable(const struct lop *op, uint64_t wm, uint64_t cut)
{
    if (op->outcome != OUT_ACKED)
        return 0;
    if (op->tick < wm)
        return 1;
    return op->durable && (!cut || op->tick < cut);
}

/* The index of the last operation of g known durable, or -1. */
static long lg_last_durable(const struct lguid *g, uint64_t wm, uint64_t cut)
{
    for (size_t i = g->nops; i-- > 0;) {
        if (lop_durable(&g->ops[i], wm, cut))
            return (long)i;
    }
    return -1;
}

/* Move g's durable state forward to the last operation known durable and
 * drop the operations before it; counts the flushed ones, and keeps in
 * g->strict the operation that would be durable if answers after the cut
 * counted (L5; -1 if none beyond the durable one). */
static void lg_resolve(struct load *l, struct lguid *g, struct lwm wm,
                       uint64_t cut)
{
    for (size_t i = 0; i < g->nops; i++) {
        const struct lop *op = &g->ops[i];
        if (op->outcome == OUT_ACKED && !op->durable && op->tick < wm.cut)
            l->flushed++;
        if (cut && op->outcome == OUT_ACKED && op->durable && op->tick >= cut)
            l->postcut_acks++;
    }
    long d = lg_last_durable(g, wm.cut, cut);
    long ds = lg_last_durable(g, wm.all, 0);
    g->strict = ds > d ? ds - d - 1 : -1;
    if (d < 0)
        return;
    const struct lop *op = &g->ops[d];
    if (!ls_same(&g->durable, &op->res) || g->durable.op != op->res.op)
        lg_hist(g, &g->durable);
    g->durable = op->res;
    g->durable.how = op->durable ? 's' : 'f';
    lg_archive(g, g->ops, (size_t)d + 1);
    size_t rest = g->nops - (size_t)d - 1;
    memmove(g->ops, g->ops + d + 1, rest * sizeof(*g->ops));
    g->nops = rest;
}

/* The first offset where got differs from the content of s, or the
 * shorter length when one is a prefix of the other; -1 if equal. */
static long ls_diff(const struct lstate *s, const uint8_t *got, size_t len,
                    uint8_t *scratch)
{
    http_fill(scratch, s->len, s->seed);
    size_t n = len < s->len ? len : s->len;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != scratch[i])
            return (long)i;
    }
    return len == s->len ? -1 : (long)n;
}

/* Does the answer (status 200 with body, or 404) show state s? */
static int ls_matches(const struct lstate *s, long status, const uint8_t *body,
                      size_t len, uint8_t *scratch)
{
    if (!s->present)
        return status == 404;
    if (status != 200 || len != s->len)
        return 0;
    return ls_diff(s, body, len, scratch) < 0;
}

/* The report of one violation (L3). */
static void lg_report(const struct load *l, FILE *out, const struct lguid *g,
                      long status, const char *etag, const uint8_t *body,
                      size_t len, uint8_t *scratch)
{
    uint64_t cut = atomic_load(&((struct load *)l)->cut_tick);
    fprintf(out, "VIOLATION guid %s: found ", g->hex);
    if (status == 200)
        fprintf(out, "200, %zu bytes, ETag %s\n", len, etag);
    else if (status == 404)
        fprintf(out, "404 (absent)\n");
    else
        fprintf(out, "status %ld (%zu bytes of body)\n", status, len);
    fprintf(out, "  allowed: last durable state: ");
    ls_print(out, &g->durable);
    fprintf(out, ", %s\n", how_name(g->durable.how));
    for (size_t i = 0; i < g->nops; i++) {
        fprintf(out, "  allowed: attempted after it: ");
        lop_print(out, &g->ops[i]);
        fprintf(out, "\n");
    }
    if (status == 200) {
        const struct lstate *c[1 + 64];
        size_t nc = 0;
        if (g->durable.present)
            c[nc++] = &g->durable;
        for (size_t i = 0; i < g->nops && nc < 65; i++) {
            if (g->ops[i].res.present)
                c[nc++] = &g->ops[i].res;
        }
        for (size_t i = 0; i < nc; i++) {
            long d = ls_diff(c[i], body, len, scratch);
            fprintf(out, "  vs ");
            ls_print(out, c[i]);
            fprintf(out,
                    ": first differing offset %ld (got %zu bytes, want "
                    "%" PRIu32 ")\n",
                    d, len, c[i]->len);
        }
    }
    int known = 0;
    for (unsigned i = g->nhist; i-- > 0 && !known;) {
        if (ls_matches(&g->hist[i], status, body, len, scratch)) {
            fprintf(out, "  found is an OLDER durable state: ");
            ls_print(out, &g->hist[i]);
            fprintf(out, ", %s\n", how_name(g->hist[i].how));
            known = 1;
        }
    }
    for (size_t i = g->narch; i-- > 0 && !known && status == 200;) {
        if (ls_matches(&g->arch[i].res, status, body, len, scratch)) {
            fprintf(out, "  found is the content of an EARLIER operation: ");
            lop_print(out, &g->arch[i]);
            fprintf(out, "\n");
            known = 1;
        }
    }
    for (unsigned k = 0; k < l->o.guids && !known && status == 200; k++) {
        const struct lguid *o = &l->g[k];
        for (size_t i = 0; o != g && i < o->narch + o->nops && !known; i++) {
            const struct lop *op =
                i < o->narch ? &o->arch[i] : &o->ops[i - o->narch];
            if (ls_matches(&op->res, status, body, len, scratch)) {
                fprintf(out,
                        "  found is the content of ANOTHER guid %s: ", o->hex);
                lop_print(out, op);
                fprintf(out, "\n");
                known = 1;
            }
        }
    }
    if (!known && status == 200)
        fprintf(out, "  found matches no content the model knows: torn or "
                     "mixed bytes\n");
    if (cut)
        fprintf(out, "  the cut was at tick %" PRIu64 " (load.h L5)\n", cut);
    size_t f0 = l->nfl > 4 ? l->nfl - 4 : 0;
    for (size_t i = f0; i < l->nfl; i++)
        fprintf(out, "  flush answered 200: ticks %" PRIu64 " .. %" PRIu64 "\n",
                l->fl[i].start, l->fl[i].end);
    size_t from = g->narch > 12 ? g->narch - 12 : 0;
    for (size_t i = from; i < g->narch; i++) {
        fprintf(out, "  before: ");
        lop_print(out, &g->arch[i]);
        fprintf(out, "\n");
    }
}

/* L5: when an answer received after the cut would have made a later
 * state durable and g was found before it, say so (a note, not a
 * violation). */
static void lg_postcut(struct load *l, const struct lguid *g, const char *etag,
                       FILE *out)
{
    if (g->strict < 0)
        return;
    for (size_t i = (size_t)g->strict; i < g->nops; i++) {
        if (ls_same(&g->ops[i].res, &g->found))
            return;
    }
    l->postcut_lost++;
    fprintf(out,
            "NOTE guid %s: an answer received after the cut (tick %" PRIu64
            ") is lost: ",
            g->hex, (uint64_t)atomic_load(&l->cut_tick));
    lop_print(out, &g->ops[g->strict]);
    fprintf(out, "; found ");
    ls_print(out, &g->found);
    fprintf(out, ", ETag %s\n", etag);
}

/* GET g: *status and the body in b; 0, or -1 without an answer. */
static int lg_get(CURL *c, int port, const struct lguid *g, struct lbuf *b,
                  long *status, char *etag, size_t etag_cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/blobs/%s", g->hex);
    for (int t = 0; t < LOAD_CHECK_TRIES; t++) {
        struct lresp r;
        b->n = 0;
        b->over = 0;
        if (load_http(c, port, LOAD_CHECK_TIMEOUT_MS, "GET", path, NULL, 0, b,
                      &r) != 0)
            return -1;
        if (r.status != 0 && !b->over) {
            *status = r.status;
            snprintf(etag, etag_cap, "%s", r.etag[0] ? r.etag : "(none)");
            return 0;
        }
        http_sleep_ms(100);
    }
    return -1;
}

/* Compare g with what the server shows (L3); 1 on a violation, 0 when it
 * matches (g->found set), -1 without an answer. */
static int lg_check(struct load *l, CURL *c, int port, struct lguid *g,
                    struct lbuf *b, uint8_t *scratch, FILE *out)
{
    long status = 0;
    char etag[48];
    if (lg_get(c, port, g, b, &status, etag, sizeof(etag)) != 0) {
        fprintf(out, "check: GET /blobs/%s got no answer\n", g->hex);
        return -1;
    }
    const uint8_t *body = (const uint8_t *)b->p;
    l->checked++;
    int hit = 0;
    if (ls_matches(&g->durable, status, body, b->n, scratch)) {
        g->found = g->durable;
        l->at_durable++;
        hit = 1;
    }
    for (size_t i = g->nops; i-- > 0 && !hit;) {
        const struct lop *op = &g->ops[i];
        if (ls_matches(&op->res, status, body, b->n, scratch)) {
            g->found = op->res;
            l->at_later++;
            if (op->outcome != OUT_ACKED)
                l->at_unacked++;
            hit = 1;
        }
    }
    if (!hit) {
        lg_report(l, out, g, status, etag, body, b->n, scratch);
        return 1;
    }
    lg_postcut(l, g, etag, out);
    return 0;
}

int load_check(struct load *l, int port, FILE *out)
{
    int rc = -1, bad = 0;
    struct lbuf b = {.max = LOAD_MAX_BLOB + 1};
    uint8_t *scratch = malloc(LOAD_MAX_BLOB);
    CURL *c = curl_easy_init();
    if (l->running || !scratch || !c) {
        fprintf(out, "check: %s\n",
                l->running ? "the writers still run" : "out of memory");
        goto out;
    }
    l->checks++;
    uint64_t cut = atomic_load(&l->cut_tick);
    struct lwm wm = load_watermarks(l, cut);
    for (unsigned i = 0; i < l->o.guids; i++)
        lg_resolve(l, &l->g[i], wm, cut);
    for (unsigned i = 0; i < l->o.guids; i++) {
        int v = lg_check(l, c, port, &l->g[i], &b, scratch, out);
        if (v < 0)
            goto out;
        bad += v;
    }
    l->violations += (uint64_t)bad;
    if (bad) { /* the model no longer knows these GUIDs: stop here */
        rc = bad;
        goto out;
    }
    /* What was found is what the server shows; a flush makes it durable. */
    struct lresp r;
    uint64_t start = atomic_fetch_add(&l->clock, 1);
    if (load_http(c, port, LOAD_CHECK_TIMEOUT_MS, "POST", "/flush", "", 0, NULL,
                  &r) != 0 ||
        r.status != 200) {
        fprintf(out, "check: POST /flush after the check answered %ld (%s)\n",
                r.status, curl_easy_strerror(r.cc));
        goto out;
    }
    l->base_wm = start;
    atomic_store(&l->cut_tick, 0);
    l->nfl = 0;
    for (unsigned i = 0; i < l->o.guids; i++) {
        struct lguid *g = &l->g[i];
        if (!ls_same(&g->found, &g->durable) || g->found.op != g->durable.op)
            lg_hist(g, &g->durable);
        g->durable = g->found;
        g->durable.how = 'c';
        g->visible = g->durable;
        lg_archive(g, g->ops, g->nops);
        g->nops = 0;
        g->frozen = 0;
    }
    rc = 0;
out:
    if (c)
        curl_easy_cleanup(c);
    free(scratch);
    free(b.p);
    return rc;
}

void load_totals(const struct load *l, struct load_totals *t)
{
    struct load *m = (struct load *)l; /* the atomics' loads */
    memset(t, 0, sizeof(*t));
    t->attempted = atomic_load(&m->attempted);
    t->acked = atomic_load(&m->acked);
    t->acked_sync = atomic_load(&m->acked_sync);
    t->not_found = atomic_load(&m->not_found);
    t->unknown = atomic_load(&m->unknown);
    t->flushes = atomic_load(&m->flushes);
    t->flushes_ok = atomic_load(&m->flushes_ok);
    t->flushed = l->flushed;
    t->checks = l->checks;
    t->checked = l->checked;
    t->at_durable = l->at_durable;
    t->at_later = l->at_later;
    t->at_unacked = l->at_unacked;
    t->violations = l->violations;
    t->postcut_acks = l->postcut_acks;
    t->postcut_flushes = l->postcut_flushes;
    t->postcut_lost = l->postcut_lost;
    pthread_mutex_lock(&m->anom_mu);
    t->anomalies = m->anomalies;
    pthread_mutex_unlock(&m->anom_mu);
}

/* ---- server logs ---- */

int load_log_last(const char *path, const char *needle, char *out, size_t cap)
{
    size_t n = 0;
    int found = 0;
    char *p = http_read_file(path, &n);
    if (cap)
        out[0] = '\0';
    if (!p)
        return 0;
    const char *hit = NULL;
    for (const char *q = p; (q = strstr(q, needle)) != NULL; q++)
        hit = q;
    if (hit && cap) {
        size_t k = strcspn(hit, "\n");
        if (k >= cap)
            k = cap - 1;
        memcpy(out, hit, k);
        out[k] = '\0';
        found = 1;
    }
    free(p);
    return found;
}

void load_log_tail(FILE *out, const char *path, size_t max_bytes)
{
    size_t n = 0;
    char *p = http_read_file(path, &n);
    if (!p) {
        fprintf(out, "(no log at %s)\n", path);
        return;
    }
    size_t from = n > max_bytes ? n - max_bytes : 0;
    while (from > 0 && from < n && p[from - 1] != '\n')
        from++;
    fprintf(out, "---- %s (last %zu bytes) ----\n%s---- end of log ----\n",
            path, n - from, p + from);
    free(p);
}
