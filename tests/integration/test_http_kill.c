/*
 * test_http_kill.c - kill -9 under load, through HTTP: after every
 * restart each GUID is in its last acknowledged-durable state or the
 * result of an operation attempted after it, never older, never torn.
 *
 * One data dir lives across all rounds.  Each round:
 *  1. the server runs with --flush-interval-ms 50 on one backend (pread
 *     in even rounds, io_uring in odd ones: half the rounds each, and
 *     every restart switches the backend under the same data dir);
 *  2. the load (support/load.h: 4 writers, 48 GUIDs; PUT, PUT?fsync=true,
 *     DELETE, DELETE?fsync=true, POST /flush) runs for a random 50..600
 *     ms, then the writers are told to stop and the server is SIGKILLed
 *     with their requests in flight;
 *  3. the server is restarted on the next round's backend, and load_check
 *     reads every GUID back against the model (load.h L1-L3), then
 *     flushes so what it found is the next round's durable baseline.
 * Every answer is also checked against the model while the server runs
 * (load.h L4).  A line per round; totals at the end.
 *
 * Rounds: $BLOBD_KILL_ROUNDS (default 50; the slow CTest entry runs 300);
 * $BLOBD_TEST_SEED repeats the random choices, though not the timing.  On
 * a violation the server log's tail is printed and the temp dir kept.
 */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "srv.h"

#define KILL_ROUNDS_DEFAULT 50
#define KILL_MIN_MS 50
#define KILL_MAX_MS 600

static unsigned kill_rounds(void)
{
    const char *e = getenv("BLOBD_KILL_ROUNDS");
    if (e && *e) {
        char *end;
        unsigned long v = strtoul(e, &end, 10);
        if (*end == '\0' && v > 0 && v < 1000000)
            return (unsigned)v;
        fail_msg("BLOBD_KILL_ROUNDS=%s is not a positive number", e);
    }
    return KILL_ROUNDS_DEFAULT;
}

static const char *kill_backend(unsigned round)
{
    return round % 2 ? "io_uring" : "pread";
}

/* Start (or restart) the server on backend, and check that its "ready:"
 * line names it; line gets that line. */
static void kill_start(struct srv *s, const char *backend, char *line,
                       size_t cap)
{
    const char *argv[] = {"--flush-interval-ms", "50", "--backend", backend,
                          NULL};
    srv_restart(s, argv, NULL);
    if (!load_log_last(s->log, "ready: ", line, cap))
        fail_msg("no \"ready:\" line in %s", s->log);
    char want[32];
    snprintf(want, sizeof(want), "(%s,", backend);
    if (!strstr(line, want))
        fail_msg("asked for --backend %s, the server says: %s", backend, line);
}

/* Check the model against the running server; on a violation print the
 * log, keep the temp dir and fail. */
static void kill_check(struct srv *s, struct load *l, unsigned round)
{
    int v = load_check(l, s->port, stderr);
    if (v == 0)
        return;
    load_log_tail(stderr, s->log, 12000);
    fprintf(stderr, "kill: keeping %s (data dir %s)\n", s->dir, s->data);
    s->dir[0] = '\0'; /* srv_fini keeps it */
    if (v < 0)
        fail_msg("round %u: the check could not be made (above)", round);
    fail_msg("round %u: %d GUID(s) in a state the durability contract does "
             "not allow (above)",
             round, v);
}

static void test_kill(void **state)
{
    (void)state;
    unsigned rounds = kill_rounds();
    uint64_t seed = tu_seed();
    uint64_t rng = seed ^ 0x6b696c6cu;
    struct load_opts o = {.seed = seed};
    struct load *l = load_new(&o);
    assert_non_null(l);
    struct srv s;
    char line[512];
    struct load_totals t0, t1;
    uint64_t start_ms = http_mono_ms();

    srv_init(&s);
    kill_start(&s, kill_backend(0), line, sizeof(line));
    kill_check(&s, l, 0); /* all absent */
    for (unsigned r = 0; r < rounds; r++) {
        load_totals(l, &t0);
        long delay = KILL_MIN_MS +
                     (long)(tu_rand(&rng) % (KILL_MAX_MS - KILL_MIN_MS + 1));
        uint64_t r0 = http_mono_ms();
        int rc = load_start(l, s.port);
        if (rc != 0)
            fail_msg("load_start: %s", strerror(-rc));
        http_sleep_ms(delay);
        load_halt(l);
        srv_kill(&s);
        load_join(l);
        const char *next = kill_backend(r + 1 < rounds ? r + 1 : r);
        char ready[512];
        kill_start(&s, next, ready, sizeof(ready));
        kill_check(&s, l, r + 1);
        load_totals(l, &t1);
        printf("kill %3u/%u %-8s @%3ld ms: ops %3" PRIu64 " acked %3" PRIu64
               " sync %3" PRIu64 " unknown %2" PRIu64 " flush %2" PRIu64
               "/%-2" PRIu64 " | check: durable %2" PRIu64 " later %2" PRIu64
               " (unacked %" PRIu64 ") | %" PRIu64 " ms\n",
               r + 1, rounds, kill_backend(r), delay,
               t1.attempted - t0.attempted, t1.acked - t0.acked,
               t1.acked_sync - t0.acked_sync, t1.unknown - t0.unknown,
               t1.flushes_ok - t0.flushes_ok, t1.flushes - t0.flushes,
               t1.at_durable - t0.at_durable, t1.at_later - t0.at_later,
               t1.at_unacked - t0.at_unacked, http_mono_ms() - r0);
        fflush(stdout);
        snprintf(line, sizeof(line), "%s", ready);
    }
    printf("kill: last start: %s\n", line);

    int st = srv_stop(&s);
    uint64_t anomalies = load_anomalies(l, stderr);
    load_totals(l, &t1);
    printf("kill: %u rounds in %.1f s (seed %" PRIu64 "): %" PRIu64
           " writes attempted, %" PRIu64 " acknowledged (%" PRIu64
           " Blob-Durable: true, %" PRIu64 " more made durable by a "
           "POST /flush), %" PRIu64 " DELETEs of absent blobs, %" PRIu64
           " outcomes unknown; %" PRIu64 "/%" PRIu64
           " flushes answered 200; %" PRIu64 " GUIDs checked in %" PRIu64
           " checks: %" PRIu64 " at the last durable state, %" PRIu64
           " at a later one (%" PRIu64 " unacknowledged); %" PRIu64
           " violations, %" PRIu64 " anomalies\n",
           rounds, (double)(http_mono_ms() - start_ms) / 1000.0, seed,
           t1.attempted, t1.acked, t1.acked_sync, t1.flushed, t1.not_found,
           t1.unknown, t1.flushes_ok, t1.flushes, t1.checked, t1.checks,
           t1.at_durable, t1.at_later, t1.at_unacked, t1.violations, anomalies);
    load_free(l);
    if (st != 0) {
        load_log_tail(stderr, s.log, 4000);
        fail_msg("the server exited with status %d at the final stop", st);
    }
    if (anomalies) {
        load_log_tail(stderr, s.log, 12000);
        fprintf(stderr, "kill: keeping %s\n", s.dir);
        fail_msg("%" PRIu64 " answers disagreed with the model (above)",
                 anomalies);
    }
    srv_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
