/*
 * test_kill9.c - kill -9 at random moments; the store must recover to a
 * state the durability contract allows (SPEC §2, store.h G1/G2).
 *
 * Usage: test_kill9 [ROUNDS] [--async]   (default 100; BLOBD_TEST_SEED
 * repeats the random choices, though not the kernel's timing).  The child
 * opens the store on tu_backend() ($BLOBD_TEST_BACKEND), as the parent does.
 *
 * One store directory lives across all rounds.  Each round:
 *  1. The parent forks a child that opens the store (retrying while the
 *     previous holder's lock is still there), says "O", and loops over
 *     random operations on a pool of NGUID GUIDs:
 *       write  a fresh seed's tu_pattern, 0..524288 bytes;
 *       delete;
 *       flush.
 *     Before each operation it writes "A <id> <guid> <W|D|F> <seed> <len>"
 *     to a pipe and after it returns "K <id> <outcome> <rc>"; after a flush
 *     that returned 0, "D <id>": every operation before that flush is
 *     durable.  (Each line is one write() of < PIPE_BUF bytes: atomic.)
 *  2. The parent waits 1-60 ms after "O" (every 10th round: up to twice
 *     the mean open time after the fork, so the kill can land inside open
 *     and recovery), SIGKILLs
 *     the child, reaps it and reads every line.
 *  3. The parent opens the store (plain tu_open) and reads every GUID.
 *     With D the last durable flush and A the last attempted operation,
 *     S_k is the state after the operations before k (on top of the state
 *     the previous round recovered; an unacknowledged last operation is
 *     taken as applied).  Checked:
 *       - per GUID (the contract): its state is S_D's, or the result of a
 *         later attempted operation on it, i.e. S_k for some k in [D, A+1];
 *         never older, never torn (STORE_E_CHECKSUM is a failure);
 *       - the whole store: one cut k in [D, A+1] fits every GUID at once
 *         (a flush covers everything acknowledged before it, so the
 *         recovered state is a prefix of the child's sequence);
 *       - the child's acknowledgements agree with the model (CREATED only
 *         for a GUID absent, NOT_FOUND only for an absent one, ...);
 *       - store_list lists exactly the GUIDs present.
 *     The recovered state is the next round's baseline.
 * Content is identified by length plus tu_pattern_ok against the candidate
 * seeds (every write uses a new seed).  On failure the store directory is
 * kept and its path printed.
 *
 * --async: the child opens with cfg.async = 1 and keeps up to KID_SLOTS
 * jobs in flight through store_submit_write / store_submit_delete (each
 * durable with probability 1/4) and store_submit_flush, every write from
 * its own frame, untouched until its completion.  It still writes
 * "A <id> ..." before each submit (ids are the queue's order, A2); the
 * completion callback (on the I/O thread) writes "K <id> <outcome> <rc>"
 * and, in the same write(), "D <id>" when the completion makes something
 * durable: a write or delete whose completion says durable makes that op
 * durable; a flush completing with rc 0 makes durable every op whose "K"
 * line came before the flush's "A" line (acknowledged before the flush was
 * submitted).  Acknowledgements come out of order.  The parent takes the
 * largest op id made durable so, Dop, and checks the same things with the
 * cuts k in [Dop + 1, A + 1]: every op up to Dop is in the recovered state
 * (the store replays whole commit groups, which hold changes in queue
 * order, so what survives is a prefix of the queue).  A submit the store
 * refuses is reported as an acknowledged failure.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NGUID 32
#define OPEN_WAIT_MS 30000
#define LOCK_RETRIES 100
#define KID_SLOTS 16 /* --async: jobs in flight in the child */

static unsigned g_rounds = 100;
static int g_async; /* --async */

/* ---- helpers ---------------------------------------------------------- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
    return now_us() / 1000;
}

static void guid_of(uint8_t g[16], unsigned i)
{
    tu_guid_num(g, 0x4b394b39000000ull + i);
}

/* ---- the child -------------------------------------------------------- */

static void say(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(int fd, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof(line))
        _exit(5);
    if (write(fd, line, (size_t)n) != n)
        _exit(6);
}

static void child(const char *dir, int fd, unsigned round, uint64_t seed)
{
    struct store *st = NULL;
    int rc = 0;
    char err[512] = "";
    for (int i = 0; i < LOCK_RETRIES && !st; i++) {
        st = tu_try_open(dir, NULL, &rc, err, sizeof(err));
        if (!st && rc != STORE_E_LOCKED)
            break;
    }
    if (!st) {
        say(fd, "E open: %.200s (%s)\n", err, store_strerror(rc));
        _exit(3);
    }
    say(fd, "O\n");
    uint64_t rng = seed;
    uint8_t *frame = store_frame_alloc(st);
    if (!frame)
        _exit(4);
    for (uint32_t id = 1;; id++) {
        unsigned r = (unsigned)(tu_rand(&rng) % 100);
        unsigned gi = (unsigned)(tu_rand(&rng) % NGUID);
        uint8_t g[16];
        guid_of(g, gi);
        enum store_outcome out = STORE_OUT_NONE;
        if (r < 62) {
            uint32_t len = (uint32_t)(tu_rand(&rng) % (STORE_FRAME_SIZE + 1));
            uint64_t s = (uint64_t)(round + 1) << 32 | id;
            tu_pattern(frame, len, s);
            say(fd, "A %" PRIu32 " %u W %" PRIu64 " %" PRIu32 "\n", id, gi, s,
                len);
            rc = store_write(st, g, frame, len, NULL, &out, NULL);
        } else if (r < 85) {
            say(fd, "A %" PRIu32 " %u D 0 0\n", id, gi);
            rc = store_delete(st, g, NULL, &out);
        } else {
            say(fd, "A %" PRIu32 " 0 F 0 0\n", id);
            rc = store_flush(st, NULL);
        }
        say(fd, "K %" PRIu32 " %d %d\n", id, (int)out, rc);
        if (r >= 85 && rc == 0)
            say(fd, "D %" PRIu32 "\n", id);
    }
}

/* ---- the async child (--async) ------------------------------------------ */

struct kid;

struct kjob {
    struct kid *k;
    uint32_t id;
    char kind; /* W D F */
    int slot;
};

struct kid {
    int fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *frame[KID_SLOTS];
    int busy[KID_SLOTS];
    struct kjob job[KID_SLOTS];
};

static int kid_take(struct kid *k)
{
    pthread_mutex_lock(&k->mu);
    for (;;) {
        for (int i = 0; i < KID_SLOTS; i++) {
            if (!k->busy[i]) {
                k->busy[i] = 1;
                pthread_mutex_unlock(&k->mu);
                return i;
            }
        }
        pthread_cond_wait(&k->cv, &k->mu);
    }
}

static void kid_release(struct kid *k, int i)
{
    pthread_mutex_lock(&k->mu);
    k->busy[i] = 0;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

/* The completion, on the I/O thread: "K" and, if it made anything
 * durable, "D", in one write() so no kill separates them. */
static void kid_done(void *arg, const struct store_completion *c)
{
    struct kjob *j = arg;
    int durable = j->kind == 'F' ? c->rc == 0 && c->outcome == STORE_OUT_NONE
                                 : c->durable;
    if (durable)
        say(j->k->fd, "K %" PRIu32 " %d %d\nD %" PRIu32 "\n", j->id,
            (int)c->outcome, c->rc, j->id);
    else
        say(j->k->fd, "K %" PRIu32 " %d %d\n", j->id, (int)c->outcome, c->rc);
    kid_release(j->k, j->slot);
}

static void child_async(const char *dir, int fd, unsigned round, uint64_t seed)
{
    struct store *st = NULL;
    int rc = 0;
    char err[512] = "";
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.backend = tu_backend();
    cfg.log_fn = tu_log_quiet;
    cfg.lock_timeout_ms = 200;
    cfg.async = 1;
    for (int i = 0; i < LOCK_RETRIES && !st; i++) {
        st = store_open(&cfg, &rc, err, sizeof(err));
        if (!st && rc != STORE_E_LOCKED)
            break;
    }
    if (!st) {
        say(fd, "E open: %.200s (%s)\n", err, store_strerror(rc));
        _exit(3);
    }
    say(fd, "O\n");
    static struct kid k;
    k.fd = fd;
    pthread_mutex_init(&k.mu, NULL);
    pthread_cond_init(&k.cv, NULL);
    for (int i = 0; i < KID_SLOTS; i++)
        if (!(k.frame[i] = store_frame_alloc(st)))
            _exit(4);
    uint64_t rng = seed;
    for (uint32_t id = 1;; id++) {
        int s = kid_take(&k);
        unsigned r = (unsigned)(tu_rand(&rng) % 100);
        unsigned gi = (unsigned)(tu_rand(&rng) % NGUID);
        int durable = tu_rand(&rng) % 4 == 0;
        uint8_t g[16];
        guid_of(g, gi);
        struct kjob *j = &k.job[s];
        j->k = &k;
        j->id = id;
        j->slot = s;
        if (r < 62) {
            uint32_t len = (uint32_t)(tu_rand(&rng) % (STORE_FRAME_SIZE + 1));
            uint64_t sd = (uint64_t)(round + 1) << 32 | id;
            tu_pattern(k.frame[s], len, sd);
            j->kind = 'W';
            say(fd, "A %" PRIu32 " %u W %" PRIu64 " %" PRIu32 "\n", id, gi, sd,
                len);
            rc = store_submit_write(st, g, k.frame[s], len, NULL, durable,
                                    kid_done, j);
        } else if (r < 85) {
            j->kind = 'D';
            say(fd, "A %" PRIu32 " %u D 0 0\n", id, gi);
            rc = store_submit_delete(st, g, NULL, durable, kid_done, j);
        } else {
            j->kind = 'F';
            say(fd, "A %" PRIu32 " 0 F 0 0\n", id);
            rc = store_submit_flush(st, kid_done, j);
        }
        if (rc != 0) { /* refused: no completion will come */
            say(fd, "K %" PRIu32 " %d %d\n", id, (int)STORE_OUT_STORE_FAILED,
                rc);
            kid_release(&k, s);
        }
    }
}

/* ---- the parent's record of a round ------------------------------------ */

struct gstate {
    int exists;
    uint64_t seed;
    uint32_t len;
};

struct op {
    int attempted, acked;
    unsigned g;
    char kind; /* W D F */
    uint64_t seed;
    uint32_t len;
    int outcome, rc;
    uint32_t acks_before; /* --async flush: "K" lines before its "A" */
};

struct round_log {
    char *buf;
    size_t len, cap;
    int opened;
    char err[256];
    struct op *ops; /* by id, 1-based */
    uint32_t nops;  /* highest id attempted */
    /* The first cut that must be in the recovered state: ops with a lower
     * id are durable (sync: the last good flush's id; --async: one past
     * the largest id made durable), 0 if none. */
    uint32_t durable;
    /* --async: ackmax[j] is the largest id of a successful write or delete
     * among the first j "K" lines. */
    uint32_t *ackmax;
    uint32_t nacks, ackcap;
    int unacked_flush; /* --async: a flush had no completion at the kill */
};

static int drain(int fd, struct round_log *rl, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    if (n < 0 && errno != EINTR)
        return -1;
    if (n <= 0)
        return 0;
    if (rl->cap - rl->len < 65536) {
        rl->cap = rl->cap ? rl->cap * 2 : 1 << 20;
        rl->buf = realloc(rl->buf, rl->cap);
        assert_non_null(rl->buf);
    }
    ssize_t r = read(fd, rl->buf + rl->len, rl->cap - rl->len - 1);
    if (r < 0)
        return errno == EINTR ? 0 : -1;
    if (r == 0)
        return 1; /* EOF */
    rl->len += (size_t)r;
    rl->buf[rl->len] = 0;
    if (!rl->opened && (strncmp(rl->buf, "O\n", 2) == 0))
        rl->opened = 1;
    return 0;
}

static int op_ok(const struct op *o)
{
    return o->rc == 0 && (o->kind == 'W' ? o->outcome == STORE_OUT_CREATED ||
                                               o->outcome == STORE_OUT_REPLACED
                                         : o->outcome == STORE_OUT_DELETED);
}

/* --async: the "K" line of op id, in pipe order. */
static void note_ack(struct round_log *rl, uint32_t id)
{
    if (rl->nacks + 1 >= rl->ackcap) {
        rl->ackcap = rl->ackcap ? rl->ackcap * 2 : 1024;
        rl->ackmax = realloc(rl->ackmax, rl->ackcap * sizeof(rl->ackmax[0]));
        assert_non_null(rl->ackmax);
        if (rl->nacks == 0)
            rl->ackmax[0] = 0;
    }
    const struct op *o = &rl->ops[id];
    uint32_t m = rl->ackmax[rl->nacks];
    if (o->kind != 'F' && op_ok(o) && id > m)
        m = id;
    rl->ackmax[++rl->nacks] = m;
}

/* --async: "D <id>": op id's completion made something durable. */
static void durable_async(struct round_log *rl, uint32_t id, const char *p)
{
    if (id == 0 || id > rl->nops || !rl->ops[id].acked)
        fail_msg("durable mark \"%s\" before its acknowledgement", p);
    const struct op *o = &rl->ops[id];
    uint32_t upto; /* the largest op id made durable by this mark */
    if (o->kind == 'F') {
        if (o->rc != 0 || o->outcome != STORE_OUT_NONE)
            fail_msg("durable mark \"%s\" for a failed flush", p);
        upto = rl->ackmax ? rl->ackmax[o->acks_before] : 0;
    } else {
        if (!op_ok(o))
            fail_msg("durable mark \"%s\" for a failed change", p);
        upto = id;
    }
    if (upto && upto + 1 > rl->durable)
        rl->durable = upto + 1;
}

/* Parse the lines; a malformed log fails the test. */
static void parse(struct round_log *rl)
{
    uint32_t cap = 0;
    char *p = rl->buf ? rl->buf : (char *)"";
    char *end = p + rl->len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break; /* unterminated tail: impossible with atomic writes */
        *nl = 0;
        uint32_t id = 0;
        unsigned g = 0;
        char kind = 0;
        uint64_t seed = 0;
        uint32_t len = 0;
        int outcome = 0, rc = 0;
        if (p[0] == 'O') {
            rl->opened = 1;
        } else if (p[0] == 'E') {
            snprintf(rl->err, sizeof(rl->err), "%s", p + 2);
        } else if (p[0] == 'A' &&
                   sscanf(p, "A %" SCNu32 " %u %c %" SCNu64 " %" SCNu32, &id,
                          &g, &kind, &seed, &len) == 5) {
            if (id != rl->nops + 1 || g >= NGUID)
                fail_msg("child line out of order: \"%s\" after op %" PRIu32, p,
                         rl->nops);
            if (id >= cap) {
                cap = cap ? cap * 2 : 1024;
                rl->ops = realloc(rl->ops, (cap + 1) * sizeof(rl->ops[0]));
                assert_non_null(rl->ops);
            }
            struct op *o = &rl->ops[id];
            memset(o, 0, sizeof(*o));
            o->attempted = 1;
            o->g = g;
            o->kind = kind;
            o->seed = seed;
            o->len = len;
            o->acks_before = rl->nacks;
            rl->nops = id;
        } else if (p[0] == 'K' &&
                   sscanf(p, "K %" SCNu32 " %d %d", &id, &outcome, &rc) == 3) {
            if (g_async ? id == 0 || id > rl->nops || rl->ops[id].acked
                        : id != rl->nops || rl->ops[id].acked)
                fail_msg("ack \"%s\" does not follow its attempt", p);
            rl->ops[id].acked = 1;
            rl->ops[id].outcome = outcome;
            rl->ops[id].rc = rc;
            if (g_async)
                note_ack(rl, id);
        } else if (p[0] == 'D' && sscanf(p, "D %" SCNu32, &id) == 1) {
            if (g_async) {
                durable_async(rl, id, p);
            } else {
                if (id != rl->nops || rl->ops[id].kind != 'F' ||
                    !rl->ops[id].acked || rl->ops[id].rc != 0)
                    fail_msg("durable mark \"%s\" does not follow a good "
                             "flush",
                             p);
                rl->durable = id;
            }
        } else {
            fail_msg("unparsable child line \"%s\"", p);
        }
        p = nl + 1;
    }
    for (uint32_t id = 1; id < rl->nops && !g_async; id++)
        if (!rl->ops[id].acked)
            fail_msg("op %" PRIu32 " was never acknowledged, yet op %" PRIu32
                     " was attempted",
                     id, rl->nops);
    for (uint32_t id = 1; id <= rl->nops && g_async; id++)
        if (rl->ops[id].kind == 'F' && !rl->ops[id].acked)
            rl->unacked_flush = 1;
}

/* What the store holds for one GUID. */
struct observed {
    int exists;
    uint32_t len;
    int rc;
    uint8_t *data;
};

static int matches(const struct observed *ob, const struct gstate *s)
{
    if (!s->exists)
        return !ob->exists;
    return ob->exists && ob->len == s->len &&
           tu_pattern_ok(ob->data, ob->len, s->seed);
}

static void describe(char *buf, size_t n, const struct gstate *s)
{
    if (!s->exists)
        snprintf(buf, n, "absent");
    else
        snprintf(buf, n, "seed %#" PRIx64 " len %" PRIu32, s->seed, s->len);
}

/* Apply op to the model state of its GUID; ack-consistency problems go to
 * *bad (first one kept). */
static void apply(struct gstate *S, const struct op *o, uint32_t id, char *bad,
                  size_t badlen)
{
    struct gstate *s = &S[o->g];
    if (o->kind == 'F')
        return;
    if (!o->acked) { /* in flight: may have taken effect */
        if (o->kind == 'W') {
            s->exists = 1;
            s->seed = o->seed;
            s->len = o->len;
        } else {
            s->exists = 0;
        }
        return;
    }
    if (o->kind == 'W') {
        if (o->rc == 0 && (o->outcome == STORE_OUT_CREATED ||
                           o->outcome == STORE_OUT_REPLACED)) {
            int want = s->exists ? STORE_OUT_REPLACED : STORE_OUT_CREATED;
            if (o->outcome != want && !bad[0])
                snprintf(bad, badlen,
                         "op %" PRIu32 " (write guid %u) acknowledged %s but "
                         "the GUID was %s",
                         id, o->g,
                         store_outcome_name((enum store_outcome)o->outcome),
                         s->exists ? "present" : "absent");
            s->exists = 1;
            s->seed = o->seed;
            s->len = o->len;
        } else if (!bad[0]) {
            snprintf(bad, badlen, "op %" PRIu32 " (write guid %u) failed: %s",
                     id, o->g, store_strerror(o->rc));
        }
    } else {
        if (o->rc == 0 && o->outcome == STORE_OUT_DELETED) {
            if (!s->exists && !bad[0])
                snprintf(bad, badlen,
                         "op %" PRIu32 " deleted guid %u, which was absent", id,
                         o->g);
            s->exists = 0;
        } else if (o->rc == STORE_E_NOT_FOUND) {
            if (s->exists && !bad[0])
                snprintf(bad, badlen,
                         "op %" PRIu32 " found no guid %u, which was present",
                         id, o->g);
        } else if (!bad[0]) {
            snprintf(bad, badlen, "op %" PRIu32 " (delete guid %u) failed: %s",
                     id, o->g, store_strerror(o->rc));
        }
    }
}

struct totals {
    int64_t open_us_sum; /* fork to "O", summed over normal rounds */
    uint64_t open_n;
    uint64_t ops, writes, deletes, flushes_durable, kills_in_open,
        kills_in_flush, rounds_past_durable, checked_blobs;
};

/* ---- one round -------------------------------------------------------- */

static void run_round(const char *dir, unsigned round, uint64_t *prng,
                      struct gstate *base, struct totals *t)
{
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    uint64_t child_seed = tu_rand(prng);
    int early = round % 10 == 9;
    int delay = 1 + (int)(tu_rand(prng) % 60);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        if (g_async)
            child_async(dir, pfd[1], round, child_seed);
        else
            child(dir, pfd[1], round, child_seed);
        _exit(7);
    }
    close(pfd[1]);
    struct round_log rl;
    memset(&rl, 0, sizeof(rl));
    int64_t start = now_ms(), start_us = now_us(), deadline = -1;
    int eof = 0;
    if (early) {
        /* Inside open and recovery: up to twice the mean time from the
         * fork to "O" seen so far (2 ms before any was seen). */
        int64_t mean = t->open_n ? t->open_us_sum / (int64_t)t->open_n : 1000;
        int64_t us = (int64_t)(tu_rand(prng) % (uint64_t)(2 * mean + 1));
        struct timespec ts = {.tv_sec = us / 1000000,
                              .tv_nsec = (long)(us % 1000000) * 1000};
        nanosleep(&ts, NULL);
        deadline = start;
    }
    for (;;) {
        int64_t now = now_ms();
        if (deadline < 0 && rl.opened) {
            deadline = now + delay;
            t->open_us_sum += now_us() - start_us;
            t->open_n++;
        }
        if (deadline >= 0 && now >= deadline)
            break;
        if (deadline < 0 && now - start > OPEN_WAIT_MS)
            break;
        int wait = deadline >= 0 ? (int)(deadline - now) : 100;
        int r = drain(pfd[0], &rl, wait);
        if (r != 0) {
            eof = 1;
            break;
        }
    }
    kill(pid, SIGKILL);
    while (!eof) {
        int r = drain(pfd[0], &rl, 1000);
        if (r != 0)
            break;
    }
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    parse(&rl);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("round %u: the child ended by itself (status %#x): %s", round,
                 (unsigned)status, rl.err[0] ? rl.err : "no message");
    if (!rl.opened && !early)
        fail_msg("round %u: the child did not open the store in %d ms", round,
                 OPEN_WAIT_MS);
    if (!rl.opened)
        t->kills_in_open++;
    if (g_async
            ? rl.unacked_flush
            : rl.nops && rl.ops[rl.nops].kind == 'F' && !rl.ops[rl.nops].acked)
        t->kills_in_flush++;
    t->ops += rl.nops;

    /* Recover and look at every GUID. */
    struct store *st = tu_open(dir, NULL);
    struct observed ob[NGUID];
    char bad[512] = "";
    for (unsigned i = 0; i < NGUID; i++) {
        uint8_t g[16];
        struct store_blob_info info;
        guid_of(g, i);
        ob[i].data = store_frame_alloc(st);
        assert_non_null(ob[i].data);
        ob[i].rc = store_read(st, g, ob[i].data, &info);
        ob[i].exists = ob[i].rc == 0;
        ob[i].len = ob[i].exists ? info.len : 0;
        if (ob[i].rc != 0 && ob[i].rc != STORE_E_NOT_FOUND && !bad[0])
            snprintf(bad, sizeof(bad), "guid %u: store_read: %s%s", i,
                     store_strerror(ob[i].rc),
                     ob[i].rc == STORE_E_CHECKSUM ? " (torn blob)" : "");
    }
    t->checked_blobs += NGUID;

    /* Walk the cuts k = D .. A+1. */
    uint32_t D = rl.durable, A = rl.nops;
    struct gstate S[NGUID];
    memcpy(S, base, sizeof(S));
    char ackbad[256] = "";
    for (uint32_t id = 1; id < D; id++) {
        apply(S, &rl.ops[id], id, ackbad, sizeof(ackbad));
        if (rl.ops[id].kind == 'W' && rl.ops[id].rc == 0)
            t->writes++;
        if (rl.ops[id].kind == 'D' && rl.ops[id].rc == 0)
            t->deletes++;
    }
    if (D)
        t->flushes_durable++;
    int cur[NGUID], any[NGUID];
    uint32_t fit = 0; /* first cut that fits every GUID, 0 = none */
    struct gstate fit_state[NGUID];
    for (unsigned i = 0; i < NGUID; i++) {
        cur[i] = matches(&ob[i], &S[i]);
        any[i] = cur[i];
    }
    uint32_t k0 = D ? D : 1; /* cut k: ops with id < k applied */
    for (uint32_t k = k0;; k++) {
        int all = 1;
        for (unsigned i = 0; i < NGUID; i++)
            all &= cur[i];
        if (all && !fit) {
            fit = k;
            memcpy(fit_state, S, sizeof(S));
        }
        if (k > A)
            break;
        const struct op *o = &rl.ops[k];
        apply(S, o, k, ackbad, sizeof(ackbad));
        if (o->kind != 'F') {
            cur[o->g] = matches(&ob[o->g], &S[o->g]);
            any[o->g] |= cur[o->g];
        }
    }
    if (!bad[0] && ackbad[0])
        snprintf(bad, sizeof(bad), "the child's acknowledgements: %s", ackbad);
    for (unsigned i = 0; i < NGUID && !bad[0]; i++) {
        if (any[i])
            continue;
        /* Not the durable state nor any later attempted result. */
        char want[96], got[96];
        memcpy(S, base, sizeof(S));
        for (uint32_t id = 1; id < D; id++)
            apply(S, &rl.ops[id], id, ackbad, sizeof(ackbad));
        describe(want, sizeof(want), &S[i]);
        if (ob[i].exists) {
            uint32_t older = 0;
            for (uint32_t id = 1; id < D; id++) {
                const struct op *o = &rl.ops[id];
                struct gstate w = {1, o->seed, o->len};
                if (o->kind == 'W' && o->g == i && matches(&ob[i], &w))
                    older = id;
            }
            if (older)
                snprintf(got, sizeof(got),
                         "the older write of op %" PRIu32 " (%" PRIu32
                         " bytes)",
                         older, ob[i].len);
            else
                snprintf(got, sizeof(got),
                         "%" PRIu32 " bytes matching no candidate", ob[i].len);
        } else
            snprintf(got, sizeof(got), "absent");
        snprintf(bad, sizeof(bad),
                 "guid %u holds %s; durable state (%s %" PRIu32
                 ") is %s, later attempts are listed above",
                 i, got, g_async ? "every op before" : "flush op", D, want);
        for (uint32_t id = D ? D : 1; id <= A; id++)
            if (rl.ops[id].kind != 'F' && rl.ops[id].g == i)
                printf("  round %u op %" PRIu32 ": %c seed %#" PRIx64
                       " len %" PRIu32 " %s\n",
                       round, id, rl.ops[id].kind, rl.ops[id].seed,
                       rl.ops[id].len,
                       rl.ops[id].acked
                           ? store_outcome_name(
                                 (enum store_outcome)rl.ops[id].outcome)
                           : "(not acknowledged)");
    }
    if (!bad[0] && !fit)
        snprintf(bad, sizeof(bad),
                 "every GUID is in an allowed state, but no single cut in "
                 "[%" PRIu32 ", %" PRIu32 "] fits them all: the recovered "
                 "store is not a prefix of the operations",
                 D, A + 1);

    /* store_list lists exactly the GUIDs present. */
    if (!bad[0]) {
        struct store_blob_info li[NGUID + 1];
        int more = 0, present = 0;
        int n = store_list(st, NULL, NGUID + 1, li, &more);
        for (unsigned i = 0; i < NGUID; i++)
            present += ob[i].exists;
        if (n != present || more)
            snprintf(bad, sizeof(bad),
                     "store_list gives %d entries (more %d), %d GUIDs present",
                     n, more, present);
        for (int j = 0; j < n && !bad[0]; j++) {
            unsigned i = 0;
            uint8_t g[16];
            for (; i < NGUID; i++) {
                guid_of(g, i);
                if (memcmp(g, li[j].guid, 16) == 0)
                    break;
            }
            if (i == NGUID || !ob[i].exists || li[j].len != ob[i].len)
                snprintf(bad, sizeof(bad),
                         "store_list entry %d is not a present GUID", j);
        }
    }
    for (unsigned i = 0; i < NGUID; i++)
        store_frame_free(st, ob[i].data);
    store_close(st);
    if (bad[0]) {
        printf("round %u: %" PRIu32 " ops, %s %" PRIu32 ", store kept at %s\n",
               round, A,
               g_async ? "durable up to before op" : "last durable flush op", D,
               dir);
        fflush(stdout);
        fail_msg("round %u: %s", round, bad);
    }
    if (fit > k0)
        for (uint32_t id = k0; id < fit; id++)
            if (rl.ops[id].kind != 'F') {
                t->rounds_past_durable++;
                break;
            }
    memcpy(base, fit_state, sizeof(fit_state));
    free(rl.ops);
    free(rl.buf);
    free(rl.ackmax);
}

static void test_kill9_rounds(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("kill9");
    uint64_t rng = tu_seed() ^ 0x6b696c6c39ull;
    struct gstate base[NGUID];
    struct totals t;
    memset(base, 0, sizeof(base));
    memset(&t, 0, sizeof(t));
    signal(SIGPIPE, SIG_IGN);
    int64_t t0 = now_ms();
    for (unsigned r = 0; r < g_rounds; r++)
        run_round(dir, r, &rng, base, &t);
    int64_t t1 = now_ms();

    struct store *st = tu_open(dir, NULL);
    struct store_stats s;
    store_get_stats(st, &s);
    store_close(st);
    unsigned present = 0;
    for (unsigned i = 0; i < NGUID; i++)
        present += base[i].exists;
    printf("%s%u rounds in %.1f s: %" PRIu64 " ops attempted, %" PRIu64
           " blobs checked; %" PRIu64 " rounds with a durable flush, "
           "%" PRIu64 " recovered past the last durable flush, %" PRIu64
           " killed in open (mean open %.1f ms), %" PRIu64
           " killed in a flush; store now %u "
           "blobs, generation %" PRIu64 ", log %" PRIu64
           " bytes, snapshot %" PRIu64 " bytes, data file %" PRIu64 " bytes\n",
           g_async ? "async, " : "", g_rounds, (double)(t1 - t0) / 1000.0,
           t.ops, t.checked_blobs, t.flushes_durable, t.rounds_past_durable,
           t.kills_in_open,
           t.open_n ? (double)t.open_us_sum / (double)t.open_n / 1000.0 : 0.0,
           t.kills_in_flush, present, s.generation, s.log_bytes,
           s.snapshot_bytes, s.data_file_bytes);
    assert_int_equal(s.entries, present);
    tu_rmtree(dir);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        unsigned long n = strtoul(argv[i], &end, 10);
        if (strcmp(argv[i], "--async") == 0) {
            g_async = 1;
        } else if (!end || *end || n == 0) {
            fprintf(stderr, "usage: %s [ROUNDS] [--async]\n", argv[0]);
            return 2;
        } else {
            g_rounds = (unsigned)n;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_rounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
