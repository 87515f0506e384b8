/*
 * gen_store.c - writes a synthetic blobd store that blobd opens as it is,
 * for the scale benchmark (tests/bench/scale.py).
 *
 *   gen_store DIR N [--log at-trigger|none] [--blob-len L] [--real K]
 *                   [--seed S]
 *
 * DIR must not exist or be empty; it is created 0700.  The store holds N
 * live blobs under random GUIDs drawn from the seed, each of L bytes
 * (default 4096) in a slot of its own:
 *
 *  - manifest.bin: a snapshot of the N entries (generation 1, last LSN
 *    N + 1), written with the store's own mf_write_snapshot_tmp and
 *    mf_commit_snapshot;
 *  - log-<N + 2>.blg, created with mf_create_log.  With --log none it
 *    holds nothing (the state right after a compaction).  With --log
 *    at-trigger (the default) it is filled with commit groups of 16 to 256
 *    records (mf_encode_group): rewrites of live GUIDs into fresh slots,
 *    deletes, and re-creates of GUIDs deleted in an earlier group, with an
 *    OPEN record at the start and a few more along the way (restarts).
 *    Slots freed by a group are reused from the next group on, as the
 *    store does.  The last group re-creates every GUID still deleted, so
 *    replay ends with N live entries.  The log stops just under the
 *    compaction trigger of store.c (should_compact: log bytes >= 1 MiB and
 *    >= 4 x the snapshot size of N entries), minus LOG_MARGIN so that the
 *    OPEN group each open of blobd appends does not reach it;
 *  - blobs.dat: sparse, ftruncate'd to next_slot frames and never
 *    preallocated.  A hole reads zeros, so every entry records the CRC32C
 *    of L zero bytes, except the first K entries in GUID order (--real K):
 *    those get random bytes written at their final slot, with their CRC32C.
 *
 * On stdout, when done: key=value lines (entries, next_slot, byte counts,
 * the compaction trigger, uuid, seconds) and one "real=<guid>" line per
 * real blob.  Progress goes to stderr when it is a terminal.
 * Exit status: 0 done, 1 failure (message on stderr), 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_int.h"

/* store.c's compaction trigger (should_compact), from store_int.h. */
#define TRIGGER_MIN_BYTES COMPACT_MIN_BYTES
#define TRIGGER_RATIO COMPACT_RATIO
/* Room left under the trigger for the OPEN groups of later opens (one
 * 4 KiB block each): 16 opens. */
#define LOG_MARGIN (64u * 1024u)
#define GROUP_MIN 16u
#define GROUP_MAX 256u
#define DEAD_MAX 256u /* GUIDs deleted and not yet re-created, at most */
#define RESTARTS 3u   /* OPEN groups inside the log besides the first */
#define OUT_BUF (64u << 20)
#define SLOT_NIL UINT32_MAX

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gen_store: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%zu bytes)", n);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- deterministic random numbers: splitmix64 seeds xoshiro256** ---- */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n), n > 0 (the bias of a 64-bit modulo is negligible). */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* ---- progress on a terminal ---- */

static int g_tty;

static void progress(const char *what, uint64_t done, uint64_t total)
{
    static int last = -1;
    static const char *last_what;
    if (!g_tty || total == 0)
        return;
    int pct = (int)(done * 100 / total);
    if (pct == last && what == last_what)
        return;
    last = pct;
    last_what = what;
    fprintf(stderr, "\rgen_store: %-10s %3d%%", what, pct);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* ---- GUIDs: random, sorted, stored as 16 big-endian bytes ---- */

struct key {
    uint64_t hi, lo;
};

static int key_cmp(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* N random keys in ascending order (bucketed by the top 16 bits, each
 * bucket sorted), written as GUIDs; refuses a duplicate. */
static uint8_t *make_guids(struct rng *r, uint64_t n)
{
    enum { BUCKETS = 1 << 16 };
    struct key *raw = xmalloc(n * sizeof(*raw));
    struct key *sorted = xmalloc(n * sizeof(*sorted));
    uint64_t *start = calloc(BUCKETS + 1, sizeof(*start));
    if (!start)
        die("out of memory");
    for (uint64_t i = 0; i < n; i++) {
        raw[i].hi = rng_next(r);
        raw[i].lo = rng_next(r);
        start[(raw[i].hi >> 48) + 1]++;
        if ((i & 0xfffff) == 0)
            progress("guids", i, 2 * n);
    }
    for (size_t b = 0; b < BUCKETS; b++)
        start[b + 1] += start[b];
    uint64_t *fill = xmalloc(BUCKETS * sizeof(*fill));
    memcpy(fill, start, BUCKETS * sizeof(*fill));
    for (uint64_t i = 0; i < n; i++)
        sorted[fill[raw[i].hi >> 48]++] = raw[i];
    free(fill);
    free(raw);
    for (size_t b = 0; b < BUCKETS; b++) {
        uint64_t len = start[b + 1] - start[b];
        if (len > 1)
            qsort(sorted + start[b], len, sizeof(*sorted), key_cmp);
        if ((b & 0xfff) == 0)
            progress("guids", n + start[b], 2 * n);
    }
    free(start);
    progress("guids", 2 * n, 2 * n);
    uint8_t *g = xmalloc(n * STORE_GUID_SIZE);
    for (uint64_t i = 0; i < n; i++) {
        if (i > 0 && key_cmp(&sorted[i - 1], &sorted[i]) == 0)
            die("two random GUIDs are equal; try another --seed");
        put_be64(g + i * STORE_GUID_SIZE, sorted[i].hi);
        put_be64(g + i * STORE_GUID_SIZE + 8, sorted[i].lo);
    }
    free(sorted);
    return g;
}

/* ---- the generated state ---- */

struct gen {
    uint64_t n;
    uint32_t len;
    uint64_t nreal;
    uint8_t *guid;     /* n x 16, ascending */
    uint32_t *slot;    /* SLOT_NIL for an empty blob */
    uint64_t *version; /* 0: deleted (only while the log is written) */
    uint32_t *crc_real;
    uint32_t crc_zero; /* CRC32C of len zero bytes */
    uint64_t next_slot;
    uint64_t generation;
    uint64_t counter;
    uint64_t seed;
};

static uint32_t entry_crc(const struct gen *g, uint64_t i)
{
    return i < g->nreal ? g->crc_real[i] : g->crc_zero;
}

static uint64_t make_version(uint64_t gen, uint64_t n)
{
    return gen << 40 | n;
}

/* The bytes of real blob i: random, from the seed and i. */
static void real_data(const struct gen *g, uint64_t i, uint8_t *buf)
{
    struct rng r;
    rng_seed(&r, g->seed ^ (UINT64_C(0x5ca1ab1e) + i * UINT64_C(0x9e37)));
    for (uint32_t off = 0; off < g->len; off += 8) {
        uint64_t v = rng_next(&r);
        uint32_t k = g->len - off < 8 ? g->len - off : 8;
        memcpy(buf + off, &v, k);
    }
}

/* ---- the snapshot, through the store's writer ---- */

struct snap_cursor {
    const struct gen *g;
    uint64_t pos;
};

static size_t snap_page(void *arg, const uint8_t *after,
                        struct index_entry *out, size_t max)
{
    struct snap_cursor *c = arg;
    const struct gen *g = c->g;
    (void)after; /* the cursor is exactly after the last entry given */
    size_t k = 0;
    while (k < max && c->pos < g->n) {
        uint64_t i = c->pos++;
        struct index_entry *e = &out[k++];
        memcpy(e->guid, g->guid + i * STORE_GUID_SIZE, STORE_GUID_SIZE);
        e->slot = g->slot[i] == SLOT_NIL ? SLOT_NONE : g->slot[i];
        e->len = g->len;
        e->crc = entry_crc(g, i);
        ix_set_version(e, g->version[i]);
    }
    progress("snapshot", c->pos, g->n);
    return k;
}

static void snap_tail(void *arg, uint64_t *next_slot, uint64_t *generation)
{
    struct snap_cursor *c = arg;
    *next_slot = c->g->next_slot;
    *generation = c->g->generation;
}

/* ---- the log: commit groups into a large buffer, written in order ---- */

struct logw {
    int fd;
    const uint8_t *uuid;
    uint8_t *buf;     /* covers file bytes [base, base + OUT_BUF) */
    uint64_t base;    /* file offset of buf[0], a multiple of MF_BLOCK */
    uint64_t pos;     /* where the next group starts (block aligned) */
    uint64_t end;     /* the end of the last group */
    uint64_t lsn;     /* the LSN the next record gets */
    uint64_t records; /* records written */
    uint64_t groups;
};

static void write_all(int fd, const uint8_t *p, size_t len, uint64_t off,
                      const char *what)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write %s at %" PRIu64 ": %s", what, off,
                n < 0 ? strerror(errno) : "short write");
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
}

/* Write buf up to `upto` (file offset) and start it again at `upto`. */
static void log_flush(struct logw *w, uint64_t upto)
{
    size_t used = (size_t)(upto - w->base);
    write_all(w->fd, w->buf, used, w->base, "the log");
    memset(w->buf, 0, used);
    w->base = upto;
}

static void log_group(struct logw *w, const struct mf_record *recs, size_t n)
{
    uint64_t size = MF_REC_SIZE * ((uint64_t)n + 2);
    if (w->pos + size > w->base + OUT_BUF)
        log_flush(w, w->pos); /* pos is block aligned; zeros before it */
    mf_encode_group(w->buf + (w->pos - w->base), w->uuid, w->lsn, recs, n);
    w->lsn += n;
    w->records += n;
    w->groups++;
    w->end = w->pos + size;
    w->pos = (w->end + MF_BLOCK - 1) / MF_BLOCK * MF_BLOCK;
}

/* Bytes of a group of n records started at the next block. */
static uint64_t group_end_after(const struct logw *w, uint64_t n)
{
    return w->pos + MF_REC_SIZE * (n + 2);
}

struct u32vec {
    uint32_t *v;
    size_t n, cap;
};

static void vpush(struct u32vec *a, uint32_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->v = realloc(a->v, a->cap * sizeof(a->v[0]));
        if (!a->v)
            die("out of memory");
    }
    a->v[a->n++] = x;
}

/* A slot for a rewrite or re-create: one freed by an earlier group, else a
 * never used one. */
static uint32_t take_slot(struct gen *g, struct u32vec *free_slots)
{
    if (g->len == 0)
        return SLOT_NIL;
    if (free_slots->n > 0)
        return free_slots->v[--free_slots->n];
    if (g->next_slot >= MF_MAX_SLOTS)
        die("more than 2^32 - 1 slots");
    return (uint32_t)g->next_slot++;
}

static void set_record(struct mf_record *r, const struct gen *g, uint64_t i)
{
    memset(r, 0, sizeof(*r));
    r->type = MF_REC_SET;
    memcpy(r->guid, g->guid + i * STORE_GUID_SIZE, STORE_GUID_SIZE);
    r->slot = g->slot[i] == SLOT_NIL ? MF_SLOT_NONE : g->slot[i];
    r->len = g->len;
    r->crc = entry_crc(g, i);
    r->version = g->version[i];
}

static void open_group(struct logw *w, struct gen *g)
{
    struct mf_record r;
    memset(&r, 0, sizeof(r));
    r.type = MF_REC_OPEN;
    r.version = ++g->generation;
    g->counter = 0;
    log_group(w, &r, 1);
}

/* Fill the log with churn until it is just under target bytes. */
static void write_churn(struct logw *w, struct gen *g, struct rng *r,
                        uint64_t target)
{
    struct mf_record *recs = xmalloc(GROUP_MAX * sizeof(*recs));
    uint32_t *stamp = calloc(g->n, sizeof(*stamp)); /* group last touched */
    struct u32vec free_slots = {0}, freed_now = {0}, dead = {0}, dead_now = {0};
    if (!stamp)
        die("out of memory");
    /* The final group re-creates at most DEAD_MAX GUIDs, a block later. */
    const uint64_t reserve = MF_BLOCK + MF_REC_SIZE * (DEAD_MAX + 2);
    uint64_t restart_at = target / (RESTARTS + 1);
    uint32_t gno = 0;
    open_group(w, g);
    for (;;) {
        uint64_t live = g->n - dead.n;
        uint64_t n = GROUP_MIN + rng_below(r, GROUP_MAX - GROUP_MIN + 1);
        if (n > live / 2)
            n = live / 2 ? live / 2 : 1;
        if (group_end_after(w, n) + reserve > target)
            break;
        if (w->pos >= restart_at) {
            open_group(w, g);
            restart_at += target / (RESTARTS + 1);
            continue;
        }
        gno++;
        for (uint64_t k = 0; k < n; k++) {
            uint64_t u = rng_below(r, 100), i;
            struct mf_record *rec = &recs[k];
            if (dead.n > 0 && (u < 15 || dead.n + dead_now.n >= DEAD_MAX)) {
                size_t at = (size_t)rng_below(r, dead.n); /* re-create */
                i = dead.v[at];
                dead.v[at] = dead.v[--dead.n];
                g->slot[i] = take_slot(g, &free_slots);
                g->version[i] = make_version(g->generation, ++g->counter);
                stamp[i] = gno;
                set_record(rec, g, i);
                continue;
            }
            do
                i = rng_below(r, g->n);
            while (g->version[i] == 0 || stamp[i] == gno);
            stamp[i] = gno;
            if (g->slot[i] != SLOT_NIL)
                vpush(&freed_now, g->slot[i]);
            if (u < 30 && dead.n + dead_now.n < DEAD_MAX &&
                dead.n + dead_now.n < g->n / 2) {
                g->version[i] = 0; /* delete */
                g->slot[i] = SLOT_NIL;
                vpush(&dead_now, (uint32_t)i);
                memset(rec, 0, sizeof(*rec));
                rec->type = MF_REC_DELETE;
                memcpy(rec->guid, g->guid + i * STORE_GUID_SIZE,
                       STORE_GUID_SIZE);
                continue;
            }
            g->slot[i] = take_slot(g, &free_slots); /* rewrite */
            g->version[i] = make_version(g->generation, ++g->counter);
            set_record(rec, g, i);
        }
        log_group(w, recs, (size_t)n);
        /* What this group freed is reusable from the next group on. */
        for (size_t k = 0; k < freed_now.n; k++)
            vpush(&free_slots, freed_now.v[k]);
        for (size_t k = 0; k < dead_now.n; k++)
            vpush(&dead, dead_now.v[k]);
        freed_now.n = dead_now.n = 0;
        progress("log", w->pos, target);
    }
    if (dead.n > 0) { /* the last flush: everything deleted comes back */
        for (size_t k = 0; k < dead.n; k++) {
            uint64_t i = dead.v[k];
            g->slot[i] = take_slot(g, &free_slots);
            g->version[i] = make_version(g->generation, ++g->counter);
            set_record(&recs[k], g, i);
        }
        log_group(w, recs, dead.n);
    }
    progress("log", target, target);
    free(recs);
    free(stamp);
    free(free_slots.v);
    free(freed_now.v);
    free(dead.v);
    free(dead_now.v);
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr,
            "usage: gen_store DIR N [--log at-trigger|none] [--blob-len L]"
            " [--real K] [--seed S]\n"
            "  N: live blobs (a number, or with a k or M suffix: 10k, 1M)\n"
            "  --log at-trigger  a manifest log just under the compaction"
            " trigger (default)\n"
            "  --log none        snapshot and an empty log (as right after"
            " a compaction)\n"
            "  --blob-len L      bytes per blob, 0..524288 (default 4096)\n"
            "  --real K          random data for the first K blobs in GUID"
            " order (default 0)\n"
            "  --seed S          seed of the GUIDs and the churn (default"
            " 1)\n");
    exit(2);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1000, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1000000, end++;
    if (*end || (v && mul > UINT64_MAX / v))
        return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

static void check_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) < 0) {
        if (errno != ENOENT)
            die("%s: %s", dir, strerror(errno));
        if (mkdir(dir, 0700) < 0)
            die("mkdir %s: %s", dir, strerror(errno));
        return;
    }
    if (!S_ISDIR(sb.st_mode))
        die("%s exists and is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d)
        die("opendir %s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            die("%s is not empty; give a new or empty directory", dir);
    closedir(d);
    if (chmod(dir, 0700) < 0)
        die("chmod %s: %s", dir, strerror(errno));
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *log_mode = "at-trigger";
    uint64_t n = 0, len = 4096, nreal = 0, seed = 1;
    int have_n = 0;
    for (int a = 1; a < argc; a++) {
        const char *s = argv[a];
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h"))
            usage();
        if (!strncmp(s, "--", 2) && !v)
            usage();
        if (!strcmp(s, "--log")) {
            log_mode = v;
            a++;
        } else if (!strcmp(s, "--blob-len")) {
            if (parse_u64(v, &len) < 0 || len > STORE_FRAME_SIZE)
                usage();
            a++;
        } else if (!strcmp(s, "--real")) {
            if (parse_u64(v, &nreal) < 0)
                usage();
            a++;
        } else if (!strcmp(s, "--seed")) {
            if (parse_u64(v, &seed) < 0)
                usage();
            a++;
        } else if (!strncmp(s, "--", 2)) {
            usage();
        } else if (!dir) {
            dir = s;
        } else if (!have_n) {
            if (parse_u64(s, &n) < 0)
                usage();
            have_n = 1;
        } else {
            usage();
        }
    }
    int with_log = !strcmp(log_mode, "at-trigger");
    if (!dir || !have_n || (!with_log && strcmp(log_mode, "none")))
        usage();
    if (n == 0 || n >= MF_MAX_SLOTS - GROUP_MAX * 4) {
        fprintf(stderr, "gen_store: N must be 1 .. 2^32 - 1024\n");
        exit(2);
    }
    if (nreal > n) {
        fprintf(stderr, "gen_store: --real K must not exceed N\n");
        exit(2);
    }
    g_tty = isatty(2);
    double t0 = now_s();

    uint64_t snap_bytes =
        MF_SNAP_HDR_SIZE + n * MF_SNAP_ENTRY_SIZE + MF_SNAP_TRAILER_SIZE;
    uint64_t trigger = TRIGGER_RATIO * snap_bytes;
    if (trigger < TRIGGER_MIN_BYTES)
        trigger = TRIGGER_MIN_BYTES;
    uint64_t target = trigger - LOG_MARGIN;
    uint64_t page_len =
        (len + STORE_PAGE_SIZE - 1) / STORE_PAGE_SIZE * STORE_PAGE_SIZE;

    check_dir(dir);
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        uint64_t need = snap_bytes + (with_log ? target : 0) +
                        nreal * page_len + (64ull << 20);
        if (avail < need)
            die("%s: %" PRIu64 " bytes free, %" PRIu64
                " needed (snapshot, log and real blobs, plus 64 MiB)",
                dir, avail, need);
    }

    struct gen g;
    memset(&g, 0, sizeof(g));
    g.n = n;
    g.len = (uint32_t)len;
    g.nreal = nreal;
    g.seed = seed;
    struct rng r;
    rng_seed(&r, seed);
    g.guid = make_guids(&r, n);
    uint8_t uuid[16];
    for (int i = 0; i < 2; i++) {
        uint64_t v = rng_next(&r);
        memcpy(uuid + 8 * i, &v, 8);
    }
    uuid[6] = (uuid[6] & 0x0f) | 0x40; /* version 4 */
    uuid[8] = (uuid[8] & 0x3f) | 0x80;

    /* Every entry in a slot of its own, in random order, as if created in
     * an order unrelated to their GUIDs; generation 1 made them all. */
    g.slot = xmalloc(n * sizeof(*g.slot));
    g.version = xmalloc(n * sizeof(*g.version));
    g.generation = 1;
    for (uint64_t i = 0; i < n; i++) {
        g.slot[i] = len ? (uint32_t)i : SLOT_NIL;
        g.version[i] = make_version(1, i + 1);
    }
    g.counter = n;
    if (len) {
        for (uint64_t i = n - 1; i > 0; i--) {
            uint64_t j = rng_below(&r, i + 1);
            uint32_t t = g.slot[i];
            g.slot[i] = g.slot[j];
            g.slot[j] = t;
        }
        g.next_slot = n;
    }
    uint8_t *buf = aligned_alloc(STORE_PAGE_SIZE, STORE_FRAME_SIZE);
    if (!buf)
        die("out of memory");
    memset(buf, 0, STORE_FRAME_SIZE);
    g.crc_zero = store_crc32c(buf, len);
    g.crc_real = xmalloc((nreal ? nreal : 1) * sizeof(*g.crc_real));
    for (uint64_t i = 0; i < nreal; i++) {
        real_data(&g, i, buf);
        g.crc_real[i] = store_crc32c(buf, len);
    }

    /* The snapshot: N entries, covering LSNs 1 .. N + 1 (N creates and
     * the OPEN of generation 1). */
    char err[512] = "";
    struct mf_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.io = store_io_pread_new();
    if (!ctx.io)
        die("out of memory");
    ctx.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ctx.dirfd < 0)
        die("open %s: %s", dir, strerror(errno));
    ctx.dir = dir;
    ctx.err = err;
    ctx.errlen = sizeof(err);
    uint64_t snap_lsn = n + 1;
    struct snap_cursor cur = {.g = &g, .pos = 0};
    struct mf_snap_src src = {
        .page = snap_page, .tail = snap_tail, .abandon = NULL, .arg = &cur};
    uint64_t wrote = 0;
    int sync_failed = 0;
    int rc =
        mf_write_snapshot_tmp(&ctx, &src, uuid, snap_lsn, &wrote, &sync_failed);
    if (rc == 0)
        rc = mf_commit_snapshot(&ctx, &sync_failed);
    if (rc < 0)
        die("snapshot: %s", err[0] ? err : store_strerror(rc));

    /* The log after it, named for the next LSN, as compaction leaves it. */
    int logfd = mf_create_log(&ctx, uuid, snap_lsn + 1, &sync_failed);
    if (logfd < 0)
        die("log: %s", err[0] ? err : store_strerror(logfd));
    struct logw w;
    memset(&w, 0, sizeof(w));
    w.fd = logfd;
    w.uuid = uuid;
    w.lsn = snap_lsn + 1;
    w.end = MF_LOG_HDR_SIZE;
    w.pos = MF_BLOCK;
    if (with_log) {
        w.buf = aligned_alloc(MF_BLOCK, OUT_BUF);
        if (!w.buf)
            die("out of memory");
        memset(w.buf, 0, OUT_BUF);
        w.base = MF_BLOCK;
        write_churn(&w, &g, &r, target);
        log_flush(&w, w.end);
        free(w.buf);
    }
    if (fsync(logfd) < 0)
        die("fsync the log: %s", strerror(errno));
    ctx.io->close(ctx.io, logfd);

    /* blobs.dat: sparse up to next_slot frames; real blobs written at
     * their final slots. */
    int dfd = openat(ctx.dirfd, MF_DATA_NAME,
                     O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (dfd < 0)
        die("create %s/%s: %s", dir, MF_DATA_NAME, strerror(errno));
    if (ftruncate(dfd, (off_t)(g.next_slot * STORE_FRAME_SIZE)) < 0)
        die("ftruncate %s/%s to %" PRIu64 " bytes: %s", dir, MF_DATA_NAME,
            g.next_slot * STORE_FRAME_SIZE, strerror(errno));
    for (uint64_t i = 0; i < nreal && len > 0; i++) {
        memset(buf, 0, page_len);
        real_data(&g, i, buf);
        write_all(dfd, buf, page_len, (uint64_t)g.slot[i] * STORE_FRAME_SIZE,
                  MF_DATA_NAME);
        progress("data", i + 1, nreal);
    }
    if (fsync(dfd) < 0)
        die("fsync %s: %s", MF_DATA_NAME, strerror(errno));
    close(dfd);
    if (fsync(ctx.dirfd) < 0)
        die("fsync %s: %s", dir, strerror(errno));

    char u[37];
    store_uuid_format(uuid, u);
    printf("entries=%" PRIu64 "\n", n);
    printf("blob_len=%" PRIu64 "\n", len);
    printf("next_slot=%" PRIu64 "\n", g.next_slot);
    printf("data_file_bytes=%" PRIu64 "\n", g.next_slot * STORE_FRAME_SIZE);
    printf("snapshot_bytes=%" PRIu64 "\n", wrote);
    printf("snapshot_lsn=%" PRIu64 "\n", snap_lsn);
    printf("log=%s\n", with_log ? "at-trigger" : "none");
    printf("log_bytes=%" PRIu64 "\n", with_log ? w.end : MF_LOG_HDR_SIZE);
    printf("log_records=%" PRIu64 "\n", w.records);
    printf("log_groups=%" PRIu64 "\n", w.groups);
    printf("compaction_trigger_bytes=%" PRIu64 "\n", trigger);
    printf("generation=%" PRIu64 "\n", g.generation);
    printf("uuid=%s\n", u);
    printf("seconds=%.3f\n", now_s() - t0);
    for (uint64_t i = 0; i < nreal; i++) {
        printf("real=");
        for (int b = 0; b < STORE_GUID_SIZE; b++)
            printf("%02x", g.guid[i * STORE_GUID_SIZE + b]);
        printf("\n");
    }
    close(ctx.dirfd);
    ctx.io->destroy(ctx.io);
    free(buf);
    free(g.guid);
    free(g.slot);
    free(g.version);
    free(g.crc_real);
    return 0;
}
