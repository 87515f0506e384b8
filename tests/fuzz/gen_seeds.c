/*
 * gen_seeds.c - writes the seed corpora of fuzz_snapshot and fuzz_replay
 * from stores the real store code built: a fresh store, writes and
 * deletes, a second generation, a compaction (snapshot and its new log),
 * a snapshot beside the stale log it covers, and a torn tail.  Each state
 * becomes inputs in fuzz_store.h's layout (read-only, writable with the
 * round trip, and with the repair flags).
 *
 *   cmake --build build --target fuzz_gen_seeds
 *   build/tests/fuzz/fuzz_gen_seeds tests/fuzz/corpus
 *
 * Not part of any test; run it again when the on-disk format changes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_store.h"
#include "store.h"
#include "store_int.h"

#define GS_MAX_LOGS 4

/* Which variants to write (bits: ro, rw, fixed): the large states only
 * get the round-trip one, to keep the corpus small. */
static unsigned gs_variants = 7;

struct gs_file {
    uint8_t *p;
    size_t len;
    uint64_t lsn; /* logs */
};

struct gs_state {
    struct gs_file snap;
    int has_snap;
    struct gs_file log[GS_MAX_LOGS];
    size_t nlogs;
    uint64_t data_size;
};

static void die(const char *what)
{
    fprintf(stderr, "gen_seeds: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0)
        die(path);
    uint8_t *buf = malloc((size_t)sb.st_size + 1);
    if (!buf || read(fd, buf, (size_t)sb.st_size) != sb.st_size)
        die(path);
    close(fd);
    *len = (size_t)sb.st_size;
    return buf;
}

static void state_free(struct gs_state *s)
{
    free(s->snap.p);
    for (size_t i = 0; i < s->nlogs; i++)
        free(s->log[i].p);
    memset(s, 0, sizeof(*s));
}

/* The files of a closed store. */
static void capture(const char *dir, struct gs_state *s)
{
    char path[4096];
    struct stat sb;
    memset(s, 0, sizeof(*s));
    snprintf(path, sizeof(path), "%s/%s", dir, MF_SNAP_NAME);
    if (stat(path, &sb) == 0) {
        s->snap.p = slurp(path, &s->snap.len);
        s->has_snap = 1;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, MF_DATA_NAME);
    if (stat(path, &sb) == 0)
        s->data_size = (uint64_t)sb.st_size;
    DIR *d = opendir(dir);
    if (!d)
        die(dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t lsn;
        if (mf_parse_log_name(de->d_name, &lsn) < 0)
            continue;
        if (s->nlogs == GS_MAX_LOGS) {
            fprintf(stderr, "gen_seeds: too many logs in %s\n", dir);
            exit(1);
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        s->log[s->nlogs].p = slurp(path, &s->log[s->nlogs].len);
        s->log[s->nlogs++].lsn = lsn;
    }
    closedir(d);
    for (size_t i = 1; i < s->nlogs; i++) /* LSN order */
        for (size_t j = i; j > 0 && s->log[j].lsn < s->log[j - 1].lsn; j--) {
            struct gs_file t = s->log[j];
            s->log[j] = s->log[j - 1];
            s->log[j - 1] = t;
        }
}

static void put(const char *dir, const char *target, const char *name,
                const uint8_t *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
        die(path);
    printf("%s (%zu bytes)\n", path, len);
}

struct gs_buf {
    uint8_t *p;
    size_t len, cap;
};

static void add(struct gs_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            die("realloc");
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* One compact log section, checked to expand back to the file. */
static void add_log(struct gs_buf *b, const struct gs_file *f, size_t cut)
{
    size_t n, m;
    uint8_t *c = fs_log_compact(f->p, f->len, &n);
    uint8_t *back = c ? fs_log_expand(c, n, 0, &m) : NULL;
    if (!back || m != f->len || memcmp(back, f->p, m) != 0) {
        fprintf(stderr, "gen_seeds: log %" PRIu64 " does not round-trip\n",
                f->lsn);
        exit(1);
    }
    add(b, c, n > cut ? n - cut : 0);
    free(back);
    free(c);
}

/* Replay inputs of a state: the snapshot if any and the last one or two
 * logs; cut bytes off the last log's compact form (a torn tail). */
static void emit_replay(const char *out, const char *tag,
                        const struct gs_state *s, size_t first_log, size_t cut)
{
    static const unsigned variants[] = {
        0, FS_WRITABLE | FS_ROUNDTRIP, FS_FIX_CRC | FS_FIX_COUNT | FS_WRITABLE};
    static const char *const vname[] = {"ro", "rw", "fixed"};
    size_t nlogs = s->nlogs - first_log;
    for (size_t v = 0; v < 3; v++) {
        struct gs_buf b = {0};
        uint8_t head[FS_PRELUDE + 2] = {0};
        if (!(gs_variants & (1u << v)))
            continue;
        head[0] = (uint8_t)(variants[v] | (s->has_snap ? FS_SNAPSHOT : 0) |
                            (nlogs > 1 ? FS_TWO_LOGS : 0));
        fs_data_prelude(s->data_size, head);
        add(&b, head, sizeof(head));
        if (s->has_snap) {
            add(&b, s->snap.p, s->snap.len);
            add(&b, FS_SEP, FS_SEP_LEN);
        }
        for (size_t i = first_log; i < s->nlogs; i++) {
            if (i > first_log)
                add(&b, FS_SEP, FS_SEP_LEN);
            add_log(&b, &s->log[i], i + 1 == s->nlogs ? cut : 0);
        }
        char name[128];
        snprintf(name, sizeof(name), "%s-%s", tag, vname[v]);
        put(out, "replay", name, b.p, b.len);
        free(b.p);
    }
}

static void emit_snapshot(const char *out, const char *tag,
                          const struct gs_state *s)
{
    static const unsigned variants[] = {0, FS_WRITABLE | FS_ROUNDTRIP,
                                        FS_FIX_CRC | FS_FIX_COUNT};
    static const char *const vname[] = {"ro", "rw", "fixed"};
    for (size_t v = 0; v < 3; v++) {
        struct gs_buf b = {0};
        uint8_t head[FS_PRELUDE] = {(uint8_t)variants[v]};
        if (!(gs_variants & (1u << v)))
            continue;
        fs_data_prelude(s->data_size, head);
        add(&b, head, sizeof(head));
        add(&b, s->snap.p, s->snap.len);
        char name[128];
        snprintf(name, sizeof(name), "%s-%s", tag, vname[v]);
        put(out, "snapshot", name, b.p, b.len);
        free(b.p);
    }
}

/* ---- building stores ---- */

static void quiet(void *ctx, enum store_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

static struct store *gs_open(const char *dir)
{
    struct store_config cfg;
    char err[512];
    int rc;
    store_config_init(&cfg, dir);
    cfg.direct = STORE_DIRECT_OFF;
    cfg.backend = STORE_BACKEND_PREAD;
    cfg.log_fn = quiet;
    struct store *st = store_open(&cfg, &rc, err, sizeof(err));
    if (!st) {
        fprintf(stderr, "gen_seeds: open %s: %s\n", dir, err);
        exit(1);
    }
    return st;
}

static void gs_put(struct store *st, uint8_t id, uint32_t len)
{
    uint8_t guid[16];
    void *frame = store_frame_alloc(st);
    memset(guid, 0, sizeof(guid));
    guid[0] = 0x10;
    guid[15] = id;
    for (uint32_t i = 0; i < len; i++)
        ((uint8_t *)frame)[i] = (uint8_t)(i * 7 + id);
    if (store_write(st, guid, frame, len, NULL, NULL, NULL) != 0) {
        fprintf(stderr, "gen_seeds: write failed\n");
        exit(1);
    }
    store_frame_free(st, frame);
}

static void gs_del(struct store *st, uint8_t id)
{
    uint8_t guid[16];
    memset(guid, 0, sizeof(guid));
    guid[0] = 0x10;
    guid[15] = id;
    if (store_delete(st, guid, NULL, NULL) != 0) {
        fprintf(stderr, "gen_seeds: delete failed\n");
        exit(1);
    }
}

static void gs_flush(struct store *st)
{
    struct store_flush_result r;
    if (store_flush(st, &r) != 0) {
        fprintf(stderr, "gen_seeds: flush failed\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <tests/fuzz/corpus>\n", argv[0]);
        return 2;
    }
    const char *out = argv[1];
    char dir[] = "/tmp/blobd-gen-seeds-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp");
    struct gs_state s, stale;
    struct store *st;
    char cmd[4200];

    /* 1. A fresh store: one log holding the first generation's OPEN. */
    st = gs_open(dir);
    store_close(st);
    capture(dir, &s);
    emit_replay(out, "fresh", &s, 0, 0);
    state_free(&s);

    /* 2. Writes (one empty blob, one of several pages), a rewrite and a
     * delete in two flushes. */
    st = gs_open(dir);
    gs_put(st, 1, 100);
    gs_put(st, 2, 0);
    gs_put(st, 3, 9000);
    gs_flush(st);
    gs_put(st, 1, 4096);
    gs_del(st, 2);
    gs_put(st, 4, 1);
    gs_flush(st);
    store_close(st);
    capture(dir, &s);
    emit_replay(out, "writes", &s, 0, 0);
    emit_replay(out, "writes-torn", &s, 0, 100);
    state_free(&s);

    /* 3. A third generation and more writes, then a compaction. */
    st = gs_open(dir);
    gs_put(st, 5, 3);
    gs_put(st, 6, 0);
    gs_flush(st);
    capture(dir, &stale); /* the log the snapshot is about to cover */
    if (store_compact(st) != 0) {
        fprintf(stderr, "gen_seeds: compaction failed\n");
        return 1;
    }
    store_close(st);
    capture(dir, &s);
    emit_snapshot(out, "compacted", &s);
    emit_replay(out, "compacted", &s, 0, 0);
    /* The snapshot beside the stale log it covers and the new log. */
    if (stale.nlogs == 1 && s.nlogs == 1 && s.has_snap) {
        struct gs_state both = s;
        both.log[0] = stale.log[0];
        both.log[1] = s.log[0];
        both.nlogs = 2;
        emit_replay(out, "stale-log", &both, 0, 0);
        emit_replay(out, "two-logs-no-snapshot",
                    &(struct gs_state){.log = {stale.log[0], s.log[0]},
                                       .nlogs = 2,
                                       .data_size = s.data_size},
                    0, 0);
    }
    state_free(&s);
    state_free(&stale);

    /* 4. After the compaction: more groups in the new log, a delete of a
     * snapshot entry and an empty snapshot later. */
    st = gs_open(dir);
    gs_del(st, 3);
    gs_put(st, 7, 70000);
    gs_flush(st);
    store_close(st);
    capture(dir, &s);
    emit_replay(out, "after-compaction", &s, 0, 0);
    emit_replay(out, "after-compaction-torn", &s, 0, 30);
    state_free(&s);

    st = gs_open(dir);
    for (uint8_t id = 1; id < 8; id++)
        store_delete(st, (uint8_t[16]){0x10, [15] = id}, NULL, NULL);
    gs_flush(st);
    store_compact(st);
    store_close(st);
    capture(dir, &s);
    emit_snapshot(out, "empty", &s);
    state_free(&s);

    /* 5. Enough entries to split and merge index chunks (128 each): 200
     * blobs, a compaction (a snapshot of 200 entries), 166 deletes. */
    gs_variants = 2;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*", dir);
    if (system(cmd) != 0)
        return 1;
    st = gs_open(dir);
    for (unsigned i = 0; i < 200; i++) {
        uint8_t guid[16] = {0x20, (uint8_t)(i >> 8), (uint8_t)i};
        void *frame = store_frame_alloc(st);
        memset(frame, (int)i, 64);
        if (store_write(st, guid, frame, i % 3 ? 64 : 0, NULL, NULL, NULL))
            return 1;
        store_frame_free(st, frame);
    }
    gs_flush(st);
    capture(dir, &stale);
    if (store_compact(st) != 0)
        return 1;
    capture(dir, &s);
    emit_snapshot(out, "many", &s);
    state_free(&s);
    for (unsigned i = 0; i < 200; i++)
        if (i % 6 != 0)
            store_delete(st, (uint8_t[16]){0x20, (uint8_t)(i >> 8), (uint8_t)i},
                         NULL, NULL);
    gs_flush(st);
    store_close(st);
    capture(dir, &s);
    emit_replay(out, "many-deletes", &s, 0, 0);
    if (stale.nlogs == 1 && s.nlogs == 1)
        emit_replay(out, "many-two-logs",
                    &(struct gs_state){.log = {stale.log[0], s.log[0]},
                                       .nlogs = 2,
                                       .data_size = s.data_size},
                    0, 0);
    state_free(&s);
    state_free(&stale);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
