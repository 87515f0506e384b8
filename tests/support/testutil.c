/*
 * testutil.c - see testutil.h.
 */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *tu_mkdtemp(const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    char buf[4096];
    if (!tmp || !*tmp)
        tmp = "/tmp";
    snprintf(buf, sizeof(buf), "%s/blobd-%s-XXXXXX", tmp, tag);
    if (!mkdtemp(buf)) {
        fprintf(stderr, "mkdtemp %s: %s\n", buf, strerror(errno));
        abort();
    }
    return strdup(buf);
}

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

void tu_rmtree(char *path)
{
    if (!path)
        return;
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void tu_guid_fill(uint8_t guid[16], uint8_t b)
{
    memset(guid, b, 16);
}

void tu_guid_num(uint8_t guid[16], uint64_t n)
{
    memset(guid, 0, 8);
    for (int i = 0; i < 8; i++)
        guid[15 - i] = (uint8_t)(n >> (8 * i));
}

uint64_t tu_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tu_pattern(void *buf, size_t len, uint64_t seed)
{
    uint8_t *p = buf;
    uint64_t s = seed * 0x100000001b3ull + 7, r = 0;
    for (size_t i = 0; i < len; i++) {
        if ((i & 7) == 0)
            r = tu_rand(&s);
        p[i] = (uint8_t)(r >> (8 * (i & 7)));
    }
}

int tu_pattern_ok(const void *buf, size_t len, uint64_t seed)
{
    const uint8_t *p = buf;
    uint64_t s = seed * 0x100000001b3ull + 7, r = 0;
    for (size_t i = 0; i < len; i++) {
        if ((i & 7) == 0)
            r = tu_rand(&s);
        if (p[i] != (uint8_t)(r >> (8 * (i & 7))))
            return 0;
    }
    return 1;
}

void tu_log_quiet(void *ctx, enum store_log_level level, const char *msg)
{
    (void)ctx;
    if (level <= STORE_LOG_WARN && getenv("BLOBD_TEST_VERBOSE"))
        fprintf(stderr, "store: %s\n", msg);
}

enum store_backend tu_backend(void)
{
    const char *b = getenv("BLOBD_TEST_BACKEND");
    if (b && strcmp(b, "io_uring") == 0)
        return STORE_BACKEND_IO_URING;
    return STORE_BACKEND_PREAD;
}

struct store *tu_try_open(const char *dir, struct store_io *io, int *rc,
                          char *errbuf, size_t errlen)
{
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.io = io;
    cfg.backend = tu_backend();
    cfg.log_fn = tu_log_quiet;
    cfg.lock_timeout_ms = 200;
    return store_open(&cfg, rc, errbuf, errlen);
}

struct store *tu_open(const char *dir, struct store_io *io)
{
    int rc = 0;
    char err[512] = "";
    struct store *st = tu_try_open(dir, io, &rc, err, sizeof(err));
    if (!st)
        fail_msg("store_open(%s): %s (%s)", dir, err, store_strerror(rc));
    return st;
}

uint64_t tu_put(struct store *st, const uint8_t guid[16], uint32_t len,
                uint64_t seed)
{
    void *f = store_frame_alloc(st);
    enum store_outcome out = STORE_OUT_NONE;
    uint64_t v = 0;
    assert_non_null(f);
    tu_pattern(f, len, seed);
    int rc = store_write(st, guid, f, len, NULL, &out, &v);
    if (rc != 0)
        fail_msg("store_write: %s (%s)", store_strerror(rc),
                 store_outcome_name(out));
    assert_true(out == STORE_OUT_CREATED || out == STORE_OUT_REPLACED);
    store_frame_free(st, f);
    return v;
}

void tu_check(struct store *st, const uint8_t guid[16], uint32_t len,
              uint64_t seed)
{
    void *f = store_frame_alloc(st);
    struct store_blob_info info;
    int rc = store_read(st, guid, f, &info);
    if (rc != 0)
        fail_msg("store_read: %s", store_strerror(rc));
    assert_int_equal(info.len, len);
    assert_true(tu_pattern_ok(f, len, seed));
    store_frame_free(st, f);
}

uint64_t tu_put_byte100(struct store *st, const uint8_t guid[16], uint8_t b)
{
    void *f = store_frame_alloc(st);
    enum store_outcome out = STORE_OUT_NONE;
    uint64_t v = 0;
    memset(f, 0, STORE_FRAME_SIZE);
    ((uint8_t *)f)[100] = b;
    int rc = store_write(st, guid, f, STORE_FRAME_SIZE, NULL, &out, &v);
    if (rc != 0)
        fail_msg("store_write: %s", store_strerror(rc));
    store_frame_free(st, f);
    return v;
}

int tu_byte100(struct store *st, const uint8_t guid[16])
{
    void *f = store_frame_alloc(st);
    struct store_blob_info info;
    int rc = store_read(st, guid, f, &info);
    if (rc != 0)
        fail_msg("store_read: %s", store_strerror(rc));
    int b = ((uint8_t *)f)[100];
    store_frame_free(st, f);
    return b;
}

uint64_t tu_seed(void)
{
    static uint64_t seed;
    static int done;
    if (!done) {
        const char *e = getenv("BLOBD_TEST_SEED");
        if (e)
            seed = strtoull(e, NULL, 0);
        else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                   (uint64_t)getpid();
        }
        fprintf(stderr, "test seed: BLOBD_TEST_SEED=%llu\n",
                (unsigned long long)seed);
        done = 1;
    }
    return seed;
}
