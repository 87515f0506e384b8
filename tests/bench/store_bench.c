/*
 * store_bench.c - write + group-commit throughput of the async store:
 * T submitter threads each keep one durable (?fsync=true) 512 KiB write in
 * flight for S seconds; prints writes/s, MB/s, group commits and writes
 * per commit.  A figure, never an assertion: run it next to fio
 * (tests/bench/store_vs_fio.sh).
 *
 *   store_bench DIR [pread|io_uring] [threads=16] [seconds=10] [nonfsync]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

struct waiter {
    pthread_mutex_t m;
    pthread_cond_t c;
    int done;
    enum store_outcome out;
};

static struct store *g_st;
static int g_seconds, g_durable = 1;
static atomic_uint_fast64_t g_writes, g_failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void done_cb(void *arg, const struct store_completion *c)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->m);
    w->done = 1;
    w->out = c->outcome;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

static void *submitter(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    void *frame = store_frame_alloc(g_st);
    struct waiter w;
    pthread_mutex_init(&w.m, NULL);
    pthread_cond_init(&w.c, NULL);
    memset(frame, (int)id, STORE_FRAME_SIZE);
    double end = now_s() + g_seconds;
    for (uint64_t n = 0; now_s() < end; n++) {
        uint8_t guid[16] = {0};
        memcpy(guid, &id, 8);
        uint64_t k = n % 64; /* 64 GUIDs per thread: rewrites free slots */
        memcpy(guid + 8, &k, 8);
        w.done = 0;
        if (store_submit_write(g_st, guid, frame, STORE_FRAME_SIZE, NULL,
                               g_durable, done_cb, &w) != 0) {
            atomic_fetch_add(&g_failed, 1);
            continue;
        }
        pthread_mutex_lock(&w.m);
        while (!w.done)
            pthread_cond_wait(&w.c, &w.m);
        pthread_mutex_unlock(&w.m);
        if (w.out == STORE_OUT_CREATED || w.out == STORE_OUT_REPLACED)
            atomic_fetch_add(&g_writes, 1);
        else
            atomic_fetch_add(&g_failed, 1);
    }
    store_frame_free(g_st, frame);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s DIR [pread|io_uring] [threads] [seconds] "
                "[nonfsync]\n",
                argv[0]);
        return 2;
    }
    struct store_config cfg;
    store_config_init(&cfg, argv[1]);
    cfg.async = 1;
    cfg.backend = argc > 2 && strcmp(argv[2], "pread") == 0
                      ? STORE_BACKEND_PREAD
                      : STORE_BACKEND_IO_URING;
    int threads = argc > 3 ? atoi(argv[3]) : 16;
    g_seconds = argc > 4 ? atoi(argv[4]) : 10;
    g_durable = !(argc > 5 && strcmp(argv[5], "nonfsync") == 0);
    cfg.log_level = STORE_LOG_WARN;
    int rc;
    char err[512];
    g_st = store_open(&cfg, &rc, err, sizeof(err));
    if (!g_st) {
        fprintf(stderr, "store_open: %s\n", err);
        return 1;
    }
    struct store_stats s0, s1;
    store_get_stats(g_st, &s0);
    pthread_t *t = calloc((size_t)threads, sizeof(*t));
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, submitter, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    store_get_stats(g_st, &s1);
    uint64_t w = atomic_load(&g_writes);
    uint64_t commits = s1.flushes - s0.flushes;
    printf("{\"backend\":\"%s\",\"direct\":%d,\"threads\":%d,\"durable\":%d,"
           "\"seconds\":%.2f,\"writes\":%" PRIu64 ",\"failed\":%" PRIu64
           ",\"writes_per_s\":%.1f,\"mb_per_s\":%.1f,\"group_commits\":%" PRIu64
           ",\"writes_per_commit\":%.2f}\n",
           s1.backend, s1.direct, threads, g_durable, dt, w,
           (uint64_t)atomic_load(&g_failed), (double)w / dt,
           (double)w * STORE_FRAME_SIZE / dt / 1e6, commits,
           commits ? (double)w / (double)commits : 0.0);
    free(t);
    store_close(g_st);
    return 0;
}
