/*
 * test_http_lifecycle.c - blobd's process lifecycle (SPEC §4): exit codes
 * and messages for bad flags and values, --help, a port in use, a locked,
 * corrupt or unwritable data dir; the shutdown sequence with requests in
 * flight (every 2xx write survives), suspended durable writes answered at
 * shutdown, a second SIGTERM exiting at once, and a client that
 * disconnects mid-upload.
 *
 * The exit-code cases run the binary ($BLOBD_BIN) directly with their own
 * --listen / --data-dir and capture its stdout and stderr; the others use
 * the srv.h harness.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "srv.h"

/* Exit codes (server/main.c, server/README.md). */
#define EX_USAGE_ 64
#define EX_CORRUPT_ 65
#define EX_NOLISTEN_ 69
#define EX_CANTCREAT_ 73
#define EX_LOCKED_ 75

static struct srv g_srv;
static char *g_tmp; /* a temp dir of the test's own */

static int setup(void **state)
{
    (void)state;
    memset(&g_srv, 0, sizeof(g_srv));
    g_tmp = NULL;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_srv.dir[0])
        srv_fini(&g_srv);
    memset(&g_srv, 0, sizeof(g_srv));
    if (g_tmp) {
        chmod(g_tmp, 0700);
        tu_rmtree(g_tmp);
    }
    g_tmp = NULL;
    return 0;
}

/* ---- helpers ---- */

static const char *tmpdir(void)
{
    if (!g_tmp)
        g_tmp = tu_mkdtemp("life");
    return g_tmp;
}

static int status_of(int ws)
{
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    if (WIFSIGNALED(ws))
        return 128 + WTERMSIG(ws);
    return 255;
}

/*
 * Run $BLOBD_BIN with args (NULL-terminated) and extra environment
 * entries (may be NULL), stdout and stderr into out (NUL-terminated,
 * truncated at cap).  Returns its exit status (128+sig when killed), or
 * -1 when it ran longer than timeout_ms (it is killed then).  *ms gets the
 * run time.
 */
static int run_blobd(const char *const *args, const char *const *env, char *out,
                     size_t cap, int timeout_ms, uint64_t *ms)
{
    const char *bin = getenv("BLOBD_BIN");
    if (!bin || !*bin)
        fail_msg("BLOBD_BIN is not set: run this test through ctest");
    const char *argv[32];
    size_t n = 0;
    argv[n++] = bin;
    for (size_t i = 0; args && args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        fail_msg("pipe: %s", strerror(errno));
    pid_t parent = getpid();
    uint64_t t0 = http_mono_ms();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(p[1], 1);
        dup2(p[1], 2);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    int timed_out = 0;
    if (cap)
        out[0] = '\0';
    for (;;) {
        uint64_t now = http_mono_ms();
        if (now - t0 >= (uint64_t)timeout_ms) {
            timed_out = 1;
            break;
        }
        struct pollfd pf = {p[0], POLLIN, 0};
        int pr = poll(&pf, 1, (int)((uint64_t)timeout_ms - (now - t0)));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char buf[4096];
        ssize_t r = read(p[0], buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* EOF: the child (and anything it forked) is done */
        size_t take = (size_t)r;
        if (cap && got + take > cap - 1)
            take = cap - 1 - got;
        if (cap) {
            memcpy(out + got, buf, take);
            got += take;
            out[got] = '\0';
        }
    }
    close(p[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (ms)
        *ms = http_mono_ms() - t0;
    return timed_out ? -1 : status_of(ws);
}

static void expect_exit(const char *what, int got, int want, const char *out)
{
    if (got != want)
        fail_msg("%s: exit status %d, want %d; output:\n%s", what, got, want,
                 out);
}

static void expect_output(const char *what, const char *out, const char *needle)
{
    if (!strstr(out, needle))
        fail_msg("%s: the output does not mention \"%s\":\n%s", what, needle,
                 out);
}

/* A raw TCP connection to the server (for requests curl will not send);
 * fails the test when it cannot be made. */
static int sock_connect(struct srv *s)
{
    int fd = http_raw_connect(s);
    if (fd < 0)
        fail_msg("connect to port %d: %s", s->port, strerror(errno));
    return fd;
}

/* Read until the end of a response's header block (or EOF, or timeout):
 * its status, 0 when the connection closed without one, -1 on a
 * timeout. */
static int sock_status(int fd, int timeout_ms)
{
    char buf[4096];
    size_t n = 0;
    uint64_t end = http_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        buf[n] = '\0';
        char *hdr = strstr(buf, "\r\n\r\n");
        if (hdr) {
            int st = 0;
            if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1)
                return 0;
            if (st >= 100 && st < 200) { /* interim: drop it */
                size_t used = (size_t)(hdr + 4 - buf);
                memmove(buf, buf + used, n - used);
                n -= used;
                continue;
            }
            return st;
        }
        uint64_t now = http_mono_ms();
        if (now >= end)
            return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(end - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        n += (size_t)r;
        if (n >= sizeof(buf) - 1)
            return 0;
    }
}

/* ---- exit codes ---- */

static void test_bad_flags(void **state)
{
    (void)state;
    char out[8192], data[2048], what[128];
    int st;
    snprintf(data, sizeof(data), "%s/data", tmpdir());

    const char *a1[] = {"--listen", "127.0.0.1:0",    "--data-dir",
                        data,       "--no-such-flag", NULL};
    st = run_blobd(a1, NULL, out, sizeof(out), 10000, NULL);
    expect_exit("--no-such-flag", st, EX_USAGE_, out);
    expect_output("--no-such-flag", out, "--no-such-flag");

    static const char *const bad[][2] = {
        {"--flush-interval-ms", "abc"}, {"--flush-interval-ms", "-5"},
        {"--listen", "nonsense"},       {"--listen", "127.0.0.1:99999"},
        {"--shutdown-timeout", "1x"},   {"--backend", "floppy"},
        {"--sync-writes=maybe", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *a[8];
        size_t n = 0;
        if (strcmp(bad[i][0], "--listen") != 0) {
            a[n++] = "--listen";
            a[n++] = "127.0.0.1:0";
        }
        a[n++] = "--data-dir";
        a[n++] = data;
        a[n++] = bad[i][0];
        if (bad[i][1])
            a[n++] = bad[i][1];
        a[n] = NULL;
        snprintf(what, sizeof(what), "%s %s", bad[i][0],
                 bad[i][1] ? bad[i][1] : "");
        st = run_blobd(a, NULL, out, sizeof(out), 10000, NULL);
        expect_exit(what, st, EX_USAGE_, out);
        /* the message names the flag (without its "=value") */
        char flag[64];
        snprintf(flag, sizeof(flag), "%.*s", (int)strcspn(bad[i][0], "="),
                 bad[i][0]);
        expect_output(what, out, flag + 2);
    }

    /* a value missing at the end */
    const char *a3[] = {"--data-dir", data, "--flush-interval-ms", NULL};
    st = run_blobd(a3, NULL, out, sizeof(out), 10000, NULL);
    expect_exit("--flush-interval-ms without a value", st, EX_USAGE_, out);

    /* a bad value from the environment */
    const char *a4[] = {"--listen", "127.0.0.1:0", "--data-dir", data, NULL};
    const char *e4[] = {"BLOBD_FLUSH_INTERVAL_MS=abc", NULL};
    st = run_blobd(a4, e4, out, sizeof(out), 10000, NULL);
    expect_exit("BLOBD_FLUSH_INTERVAL_MS=abc", st, EX_USAGE_, out);
    expect_output("BLOBD_FLUSH_INTERVAL_MS=abc", out, "FLUSH_INTERVAL_MS");

    /* none of that created the data dir */
    struct stat sb;
    if (stat(data, &sb) == 0)
        fail_msg("a refused start created the data dir %s", data);
}

static void test_help(void **state)
{
    (void)state;
    char out[16384];
    const char *a[] = {"--help", NULL};
    int st = run_blobd(a, NULL, out, sizeof(out), 10000, NULL);
    expect_exit("--help", st, 0, out);
    static const char *const flags[] = {"--listen",
                                        "--data-dir",
                                        "--flush-interval-ms",
                                        "--sync-writes",
                                        "--shutdown-timeout",
                                        "--read-only",
                                        "--backend",
                                        "--direct"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        expect_output("--help", out, flags[i]);
    const char *v[] = {"--version", NULL};
    st = run_blobd(v, NULL, out, sizeof(out), 10000, NULL);
    expect_exit("--version", st, 0, out);
    expect_output("--version", out, "blobd");
}

static void test_port_in_use(void **state)
{
    (void)state;
    char out[8192], data[2048], listen_arg[64], port_s[16];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t sl = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
    int port = ntohs(a.sin_port);
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", port);
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(data, sizeof(data), "%s/data", tmpdir());
    const char *args[] = {"--listen", listen_arg, "--data-dir", data, NULL};
    int st = run_blobd(args, NULL, out, sizeof(out), 10000, NULL);
    close(fd);
    expect_exit("port in use", st, EX_NOLISTEN_, out);
    expect_output("port in use", out, port_s);
}

static void test_locked(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    char out[8192], g[API_GUID_STRLEN + 1];
    uint64_t ms = 0;
    srv_up(s, NULL);
    http_guid_rand(g);
    uint8_t body[1000];
    http_fill(body, sizeof(body), 1);
    assert_int_equal(http_put(s, g, body, sizeof(body), NULL), 201);

    const char *args[] = {"--listen", "127.0.0.1:0", "--data-dir", s->data,
                          NULL};
    int st = run_blobd(args, NULL, out, sizeof(out), 30000, &ms);
    expect_exit("a second blobd on a locked data dir", st, EX_LOCKED_, out);
    expect_output("a second blobd on a locked data dir", out, "locked");
    print_message("the second blobd gave up after %" PRIu64 " ms\n", ms);
    if (ms < 4000 || ms > 15000)
        fail_msg("the second blobd exited after %" PRIu64 " ms, want ~5 s", ms);

    /* the first one is untouched */
    assert_int_equal(http_status(s, "GET", "/readyz", NULL, NULL, 0), 200);
    http_expect_blob(s, g, sizeof(body), 1, NULL, NULL);
    assert_int_equal(http_put(s, g, body, 10, NULL), 204);
    assert_int_equal(srv_stop(s), 0);
}

static void test_corrupt(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    char out[8192], g[API_GUID_STRLEN + 1], mf[2048];
    srv_up(s, NULL);
    http_guid_rand(g);
    uint8_t body[1000];
    http_fill(body, sizeof(body), 1);
    assert_int_equal(http_put(s, g, body, sizeof(body), NULL), 201);
    assert_int_equal(srv_stop(s), 0);

    snprintf(mf, sizeof(mf), "%s/manifest.bin", s->data);
    struct stat sb;
    if (stat(mf, &sb) != 0)
        print_message("note: no manifest.bin after a clean stop; writing "
                      "one\n");
    char junk[4096];
    memset(junk, 'X', sizeof(junk));
    int fd = open(mf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);

    const char *args[] = {"--listen", "127.0.0.1:0", "--data-dir", s->data,
                          NULL};
    int st = run_blobd(args, NULL, out, sizeof(out), 20000, NULL);
    expect_exit("corrupt manifest.bin", st, EX_CORRUPT_, out);
    expect_output("corrupt manifest.bin", out, "manifest.bin");
    /* refused, not repaired: the file is as we left it */
    assert_int_equal(stat(mf, &sb), 0);
    assert_int_equal(sb.st_size, 4096);
}

static void test_unwritable(void **state)
{
    (void)state;
    char out[8192], file[2048], under[2100], ww[2048], wwdata[2100];
    const char *t = tmpdir();
    int st;

    /* a data dir below a regular file */
    snprintf(file, sizeof(file), "%s/file", t);
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(under, sizeof(under), "%s/data", file);
    const char *a1[] = {"--listen", "127.0.0.1:0", "--data-dir", under, NULL};
    st = run_blobd(a1, NULL, out, sizeof(out), 20000, NULL);
    expect_exit("data dir below a regular file", st, EX_CANTCREAT_, out);
    expect_output("data dir below a regular file", out, under);

    /* the data dir is a regular file */
    const char *a2[] = {"--listen", "127.0.0.1:0", "--data-dir", file, NULL};
    st = run_blobd(a2, NULL, out, sizeof(out), 20000, NULL);
    expect_exit("data dir is a regular file", st, EX_CANTCREAT_, out);

    /* world-writable: insecure */
    snprintf(ww, sizeof(ww), "%s/ww", t);
    assert_int_equal(mkdir(ww, 0700), 0);
    assert_int_equal(chmod(ww, 0777), 0);
    const char *a3[] = {"--listen", "127.0.0.1:0", "--data-dir", ww, NULL};
    st = run_blobd(a3, NULL, out, sizeof(out), 20000, NULL);
    expect_exit("world-writable data dir", st, EX_CANTCREAT_, out);
    expect_output("world-writable data dir", out, "writable");
    snprintf(wwdata, sizeof(wwdata), "%s/store.lock", ww);
    struct stat sb;
    if (stat(wwdata, &sb) == 0)
        fail_msg("blobd created %s in a world-writable dir", wwdata);
}

/* ---- shutdown ---- */

#define WRITERS 8

struct wrec {
    char guid[API_GUID_STRLEN + 1];
    size_t len;
    uint64_t seed;
};

struct writer {
    struct srv *s;
    int id;
    atomic_int *stop;
    struct wrec *ok; /* acknowledged with 2xx */
    size_t nok, cap;
    int n503, nfail, nother;
    long other;
};

static void *writer_main(void *p)
{
    struct writer *w = p;
    uint64_t rs = ((uint64_t)w->id << 40) ^ http_mono_ms();
    uint8_t *buf = malloc(200000);
    if (!buf)
        return NULL;
    for (uint64_t k = 0; !atomic_load(w->stop); k++) {
        struct wrec rec;
        http_guid_rand(rec.guid);
        rec.len = (size_t)(tu_rand(&rs) % 200000);
        rec.seed = ((uint64_t)w->id << 32) | k;
        http_fill(buf, rec.len, rec.seed);
        char path[160];
        struct http_resp r;
        snprintf(path, sizeof(path), "/blobs/%s", rec.guid);
        memset(&r, 0, sizeof(r));
        if (http_req(w->s, "PUT", path, NULL, buf, rec.len, &r) != 0) {
            w->nfail++;
            continue;
        }
        long st = r.status;
        http_resp_free(&r);
        if (st >= 200 && st < 300) {
            if (w->nok == w->cap) {
                size_t nc = w->cap ? 2 * w->cap : 256;
                struct wrec *q = realloc(w->ok, nc * sizeof(*q));
                if (!q)
                    break;
                w->ok = q;
                w->cap = nc;
            }
            w->ok[w->nok++] = rec;
        } else if (st == 503) {
            w->n503++;
        } else if (st == 0) {
            w->nfail++;
            break; /* not listening any more: this writer is done */
        } else {
            w->nother++;
            w->other = st;
        }
    }
    free(buf);
    return NULL;
}

static void test_graceful_inflight(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--flush-interval-ms", "0", "--shutdown-timeout", "8",
                          NULL};
    srv_up(s, args);
    atomic_int stop = 0;
    struct writer w[WRITERS];
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){.s = s, .id = i, .stop = &stop};
        assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    }
    http_sleep_ms(800);
    uint64_t t0 = http_mono_ms();
    srv_signal(s, SIGTERM);
    int st = srv_wait(s, (8 + 5) * 1000);
    uint64_t took = http_mono_ms() - t0;
    atomic_store(&stop, 1);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);

    size_t total = 0;
    int n503 = 0, nfail = 0;
    for (int i = 0; i < WRITERS; i++) {
        total += w[i].nok;
        n503 += w[i].n503;
        nfail += w[i].nfail;
        if (w[i].nother)
            fail_msg("writer %d: %d answers that were neither 2xx nor 503, "
                     "e.g. %ld",
                     i, w[i].nother, w[i].other);
    }
    print_message("%zu PUTs acknowledged, %d answered 503, %d without an "
                  "answer; exit %d after %" PRIu64 " ms\n",
                  total, n503, nfail, st, took);
    if (st < 0)
        fail_msg("blobd still running %" PRIu64 " ms after SIGTERM", took);
    if (st != 0)
        fail_msg("exit status %d after SIGTERM, want 0 (log %s)", st, s->log);
    if (total < WRITERS)
        fail_msg("only %zu PUTs acknowledged before the shutdown", total);

    srv_restart(s, args, NULL);
    for (int i = 0; i < WRITERS; i++) {
        for (size_t k = 0; k < w[i].nok; k++)
            http_expect_blob(s, w[i].ok[k].guid, w[i].ok[k].len,
                             w[i].ok[k].seed, NULL, NULL);
        free(w[i].ok);
        w[i].ok = NULL;
    }
    assert_int_equal(srv_stop(s), 0);
}

#define SUSPENDED 8
#define SUSP_LEN 150000

static void test_suspended_at_shutdown(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--flush-interval-ms", "0", NULL};
    srv_up(s, args);
    int fd[SUSPENDED], status[SUSPENDED];
    char guid[SUSPENDED][API_GUID_STRLEN + 1];
    uint8_t *body = malloc(SUSP_LEN);
    assert_non_null(body);

    /* requests in flight: headers and half of each body */
    for (int i = 0; i < SUSPENDED; i++) {
        char head[256];
        http_guid_rand(guid[i]);
        int hl = snprintf(head, sizeof(head),
                          "PUT /blobs/%s?fsync=true HTTP/1.1\r\n"
                          "Host: 127.0.0.1\r\nContent-Length: %d\r\n\r\n",
                          guid[i], SUSP_LEN);
        fd[i] = sock_connect(s);
        http_fill(body, SUSP_LEN, 7000 + (uint64_t)i);
        if (http_raw_send(fd[i], head, (size_t)hl) ||
            http_raw_send(fd[i], body, SUSP_LEN / 2))
            fail_msg("send: %s", strerror(errno));
    }
    http_sleep_ms(300);
    /* the rest of every body, then SIGTERM at once */
    for (int i = 0; i < SUSPENDED; i++) {
        http_fill(body, SUSP_LEN, 7000 + (uint64_t)i);
        if (http_raw_send(fd[i], body + SUSP_LEN / 2, SUSP_LEN - SUSP_LEN / 2))
            fail_msg("send: %s", strerror(errno));
    }
    srv_signal(s, SIGTERM);
    int ok = 0;
    for (int i = 0; i < SUSPENDED; i++) {
        status[i] = sock_status(fd[i], 15000);
        close(fd[i]);
        if (status[i] < 0)
            fail_msg("PUT %d ?fsync=true: no answer within 15 s of SIGTERM", i);
        if (status[i] == 0)
            fail_msg("PUT %d ?fsync=true: the connection closed without an "
                     "answer",
                     i);
        if (status[i] == 201)
            ok++;
        else if (status[i] != 503)
            fail_msg("PUT %d ?fsync=true: status %d, want 201 or 503", i,
                     status[i]);
    }
    int st = srv_wait(s, (8 + 5) * 1000);
    print_message("%d of %d durable PUTs acknowledged at shutdown; exit %d\n",
                  ok, SUSPENDED, st);
    if (st != 0)
        fail_msg("exit status %d after SIGTERM, want 0 (log %s)", st, s->log);

    srv_restart(s, args, NULL);
    for (int i = 0; i < SUSPENDED; i++)
        if (status[i] == 201)
            http_expect_blob(s, guid[i], SUSP_LEN, 7000 + (uint64_t)i, NULL,
                             NULL);
    free(body);
    assert_int_equal(srv_stop(s), 0);
}

static void test_second_sigterm(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--shutdown-timeout", "30", NULL};
    srv_up(s, args);
    char g[API_GUID_STRLEN + 1], head[256];
    uint8_t part[30000];
    http_guid_rand(g);
    http_fill(part, sizeof(part), 5);
    int hl = snprintf(head, sizeof(head),
                      "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Length: 100000\r\n\r\n",
                      g);
    int fd = sock_connect(s);
    if (http_raw_send(fd, head, (size_t)hl) ||
        http_raw_send(fd, part, sizeof(part)))
        fail_msg("send: %s", strerror(errno));
    http_sleep_ms(300);

    srv_signal(s, SIGTERM);
    http_sleep_ms(500);
    int st = srv_wait(s, 0);
    if (st >= 0)
        fail_msg("blobd exited (%d) 0.5 s after SIGTERM with an upload in "
                 "flight and --shutdown-timeout 30",
                 st);
    uint64_t t0 = http_mono_ms();
    srv_signal(s, SIGTERM);
    st = srv_wait(s, 2000);
    uint64_t took = http_mono_ms() - t0;
    close(fd);
    if (st < 0)
        fail_msg("blobd still running 2 s after a second SIGTERM");
    print_message("second SIGTERM: exit %d after %" PRIu64 " ms\n", st, took);
    assert_int_equal(st, 128 + SIGTERM);
}

/* A client that never finishes its upload holds shutdown only for
 * --shutdown-timeout; acknowledged writes are flushed all the same. */
static void test_shutdown_timeout(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    const char *args[] = {"--shutdown-timeout", "1", "--flush-interval-ms", "0",
                          NULL};
    srv_up(s, args);
    char g[API_GUID_STRLEN + 1], done[API_GUID_STRLEN + 1], head[256];
    uint8_t part[30000];
    http_guid_rand(g);
    http_guid_rand(done);
    http_fill(part, sizeof(part), 6);
    assert_int_equal(http_put(s, done, part, sizeof(part), NULL), 201);
    int hl = snprintf(head, sizeof(head),
                      "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Length: 100000\r\n\r\n",
                      g);
    int fd = sock_connect(s);
    if (http_raw_send(fd, head, (size_t)hl) ||
        http_raw_send(fd, part, sizeof(part)))
        fail_msg("send: %s", strerror(errno));
    http_sleep_ms(300);
    uint64_t t0 = http_mono_ms();
    srv_signal(s, SIGTERM);
    int st = srv_wait(s, 6000);
    uint64_t took = http_mono_ms() - t0;
    close(fd);
    if (st < 0)
        fail_msg("blobd still running 6 s after SIGTERM with "
                 "--shutdown-timeout 1");
    print_message("shutdown with a stalled upload: exit %d after %" PRIu64
                  " ms\n",
                  st, took);
    assert_int_equal(st, 0);
    if (took < 900)
        fail_msg("exited after %" PRIu64 " ms: did not wait for the upload",
                 took);
    assert_true(srv_log_has(s, "still in flight after --shutdown-timeout"));
    srv_restart(s, NULL, NULL);
    http_expect_blob(s, done, sizeof(part), 6, NULL, NULL);
    http_expect_absent(s, g, "its upload never finished");
    assert_int_equal(srv_stop(s), 0);
}

static void test_client_disconnect(void **state)
{
    (void)state;
    struct srv *s = &g_srv;
    srv_up(s, NULL);
    char g[API_GUID_STRLEN + 1], g2[API_GUID_STRLEN + 1], head[256];
    static uint8_t part[100000];
    http_guid_rand(g);
    http_guid_rand(g2);
    http_fill(part, sizeof(part), 9);
    int hl = snprintf(head, sizeof(head),
                      "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Length: 524288\r\n\r\n",
                      g);
    for (int round = 0; round < 3; round++) {
        int fd = sock_connect(s);
        if (http_raw_send(fd, head, (size_t)hl) ||
            http_raw_send(fd, part, sizeof(part)))
            fail_msg("send: %s", strerror(errno));
        if (round == 1)
            http_sleep_ms(100);
        close(fd);
    }
    http_sleep_ms(300);
    http_expect_absent(s, g, "its upload was cut off");
    assert_int_equal(http_status(s, "GET", "/healthz", NULL, NULL, 0), 200);
    assert_int_equal(http_status(s, "GET", "/readyz", NULL, NULL, 0), 200);
    assert_int_equal(http_put(s, g2, part, sizeof(part), NULL), 201);
    http_expect_blob(s, g2, sizeof(part), 9, NULL, NULL);
    http_expect_absent(s, g, "its upload was cut off");
    assert_int_equal(http_put(s, g, part, 1000, NULL), 201);

    /* nothing of the cut-off uploads was left queued for a flush */
    assert_int_equal(srv_stop(s), 0);
    srv_restart(s, NULL, NULL);
    http_expect_blob(s, g, 1000, 9, NULL, NULL);
    http_expect_blob(s, g2, sizeof(part), 9, NULL, NULL);
    assert_int_equal(srv_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graceful_inflight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_suspended_at_shutdown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_disconnect, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
