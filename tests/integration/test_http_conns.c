/*
 * test_http_conns.c - connection limits, over raw sockets from several
 * loopback addresses:
 *
 *  1. --max-connections-per-client: the connections past it are closed at
 *     once, the others work, other addresses are not affected; counted in
 *     http.rejected_per_client and blobd_connections_closed_total; a
 *     closed connection frees its slot;
 *  2. trusted proxies (--trusted-proxies) are exempt from it;
 *  3. 0 means no per-client limit;
 *  4. --max-connections bounds the total (libmicrohttpd splits it across
 *     its threads, so somewhat fewer may stay open);
 *  5. the file descriptor limit: a server whose RLIMIT_NOFILE is too low
 *     for --max-connections lowers the latter and says so; by default the
 *     limit leaves room for every connection;
 *  6. 1 500 keep-alive connections from four addresses all answered; the
 *     server's RSS and memory.used_bytes with them open are printed, and
 *     descriptors and open connections return to their baselines.
 *
 * Connections "stay open" when the server neither closes them within the
 * window nor fails to answer a GET /healthz on them.
 */
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "srv.h"

#define WINDOW_MS 2000 /* connections past a limit are closed within */
#define ANSWER_MS 3000
#define SETTLE_MS 3000
#define MANY 1500
#define MANY_NOFILE 1700 /* the test's own descriptors for MANY */
#define MAX_FDS 2048

static struct srv g_srv;

/* Sockets the running test opened; its teardown closes what is left. */
static int g_fds[MAX_FDS];
static int g_nfds;

static int setup(void **state)
{
    (void)state;
    memset(&g_srv, 0, sizeof(g_srv));
    g_nfds = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g_nfds; i++)
        close(g_fds[i]);
    g_nfds = 0;
    if (g_srv.dir[0])
        srv_fini(&g_srv);
    memset(&g_srv, 0, sizeof(g_srv));
    return 0;
}

/* ---- helpers ---- */

/* n connections from ip into fds (tracked); fails the test when one
 * cannot be made.  pause_ms between them (0: none). */
static void conns_open(const char *ip, int n, int *fds, int pause_ms)
{
    for (int i = 0; i < n; i++) {
        if (g_nfds == MAX_FDS)
            fail_msg("more than %d sockets at once", MAX_FDS);
        int fd = http_raw_connect_from(&g_srv, ip);
        if (fd < 0)
            fail_msg("connection %d from %s to port %d: %s", i, ip, g_srv.port,
                     strerror(errno));
        g_fds[g_nfds++] = fd;
        fds[i] = fd;
        if (pause_ms > 0 && i + 1 < n)
            http_sleep_ms(pause_ms);
    }
}

static void conns_close(const int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < g_nfds; k++) {
            if (g_fds[k] == fds[i]) {
                g_fds[k] = g_fds[--g_nfds];
                break;
            }
        }
        close(fds[i]);
    }
}

/* Has the server closed fd (EOF, reset)?  What it sent first is dropped. */
static int is_closed(int fd)
{
    char buf[1024];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return 1;
    }
}

/* Watch fds[0..n) for the whole of window_ms; closed[i] = 1 for each the
 * server closes.  Returns how many were closed. */
static int watch_closed(const int *fds, int n, int window_ms, int *closed)
{
    struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
    int *map = calloc((size_t)n, sizeof(*map));
    if (!pf || !map)
        fail_msg("out of memory");
    int count = 0;
    for (int i = 0; i < n; i++)
        closed[i] = 0;
    uint64_t end = http_mono_ms() + (uint64_t)window_ms;
    for (uint64_t now; (now = http_mono_ms()) < end;) {
        int np = 0;
        for (int i = 0; i < n; i++) {
            if (closed[i])
                continue;
            pf[np].fd = fds[i];
            pf[np].events = POLLIN;
            pf[np].revents = 0;
            map[np++] = i;
        }
        long left = (long)(end - now);
        if (np == 0)
            break; /* all closed: none left to watch */
        int pr = poll(pf, (nfds_t)np, left > 100 ? 100 : (int)left);
        for (int k = 0; pr > 0 && k < np; k++) {
            if (pf[k].revents && is_closed(pf[k].fd)) {
                closed[map[k]] = 1;
                count++;
            }
        }
    }
    free(pf);
    free(map);
    return count;
}

/* Is b[0..n) a complete answer (headers and Content-Length bytes)? */
static int answer_done(const char *b, size_t n)
{
    const char *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t hdr = (size_t)(end - b) + 4;
    long cl = 0;
    for (const char *p = b; p < end;) {
        const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            cl = strtol(p + 15, NULL, 10);
        p = eol + 2;
    }
    return n >= hdr + (size_t)cl;
}

/* What serve_all found on a connection besides a status. */
#define ANS_TIMEOUT 0 /* no (complete) answer in time */
#define ANS_SEND -1   /* the request could not be sent */
#define ANS_EOF -2    /* closed without an answer */
#define ANS_RESET -3  /* reset (or another read error) without an answer */

/*
 * Send a keep-alive GET /healthz on each of fds[0..n) and read every
 * answer within timeout_ms; status[i] gets each status, or an ANS_ code.
 * Returns how many were 200.
 */
static int serve_all(const int *fds, int n, int timeout_ms, int *status)
{
    static const char req[] =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    const size_t cap = 2048;
    char *buf = calloc((size_t)n, cap);
    size_t *got = calloc((size_t)n, sizeof(*got));
    int *done = calloc((size_t)n, sizeof(*done));
    struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
    int *map = calloc((size_t)n, sizeof(*map));
    if (!buf || !got || !done || !pf || !map)
        fail_msg("out of memory");
    int left = n, ok = 0;
    for (int i = 0; i < n; i++) {
        status[i] = 0;
        if (http_raw_send(fds[i], req, sizeof(req) - 1) != 0) {
            status[i] = ANS_SEND;
            done[i] = 1;
            left--;
        }
    }
    uint64_t end = http_mono_ms() + (uint64_t)timeout_ms;
    for (uint64_t now; left > 0 && (now = http_mono_ms()) < end;) {
        int np = 0;
        for (int i = 0; i < n; i++) {
            if (done[i])
                continue;
            pf[np].fd = fds[i];
            pf[np].events = POLLIN;
            pf[np].revents = 0;
            map[np++] = i;
        }
        long wait = (long)(end - now);
        int pr = poll(pf, (nfds_t)np, wait > 100 ? 100 : (int)wait);
        for (int k = 0; pr > 0 && k < np; k++) {
            if (!pf[k].revents)
                continue;
            int i = map[k];
            char *b = buf + (size_t)i * cap;
            ssize_t r =
                recv(fds[i], b + got[i], cap - 1 - got[i], MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r > 0) {
                got[i] += (size_t)r;
                b[got[i]] = '\0';
                if (!answer_done(b, got[i]) && got[i] < cap - 1)
                    continue;
                status[i] = http_raw_status(b);
            } else {
                status[i] = r == 0 ? ANS_EOF : ANS_RESET;
            }
            done[i] = 1; /* answered, or closed without an answer */
            left--;
        }
    }
    for (int i = 0; i < n; i++)
        ok += status[i] == 200;
    free(buf);
    free(got);
    free(done);
    free(pf);
    free(map);
    return ok;
}

/* What became of the n connections serve_all reported on, into buf:
 * "1494 answered 200, 6 closed without an answer (the first: #617)". */
static void outcomes(const int *st, int n, char *buf, size_t cap)
{
    static const struct {
        int code;
        const char *what;
    } kinds[] = {
        {200, "answered 200"},
        {ANS_TIMEOUT, "had no answer in time"},
        {ANS_SEND, "could not be sent the request"},
        {ANS_EOF, "were closed without an answer"},
        {ANS_RESET, "were reset without an answer"},
    };
    size_t len = 0;
    int other = 0, other_first = -1;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        int known = 0;
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            known |= st[i] == kinds[k].code;
        if (!known && other++ == 0)
            other_first = i;
    }
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        int count = 0, first = -1;
        for (int i = 0; i < n; i++) {
            if (st[i] == kinds[k].code && count++ == 0)
                first = i;
        }
        if (count && len + 80 < cap)
            len += (size_t)snprintf(buf + len, cap - len, "%s%d %s",
                                    len ? ", " : "", count, kinds[k].what);
        if (count && kinds[k].code != 200 && len + 40 < cap)
            len += (size_t)snprintf(buf + len, cap - len, " (the first: #%d)",
                                    first);
    }
    if (other && len + 80 < cap)
        snprintf(buf + len, cap - len, "%s%d another status (#%d: %d)",
                 len ? ", " : "", other, other_first, st[other_first]);
}

/* serve_all that must answer all n with 200 within timeout_ms; what names
 * them. */
static void expect_served_within(const int *fds, int n, int timeout_ms,
                                 const char *what)
{
    char out[512];
    int *st = calloc((size_t)n, sizeof(*st));
    if (!st)
        fail_msg("out of memory");
    int ok = serve_all(fds, n, timeout_ms, st);
    if (ok != n) {
        outcomes(st, n, out, sizeof(out));
        free(st);
        fail_msg("%s: GET /healthz on each of %d connections: %s", what, n,
                 out);
    }
    free(st);
}

static void expect_served(const int *fds, int n, const char *what)
{
    expect_served_within(fds, n, ANSWER_MS, what);
}

/* Poll /admin/stats from ip until http.open_connections <= want. */
static void wait_open_at_most(const char *ip, double want, const char *what)
{
    uint64_t end = http_mono_ms() + SETTLE_MS;
    double v;
    for (;;) {
        v = http_stats_num(&g_srv, ip, "http.open_connections");
        if (v <= want || http_mono_ms() > end)
            break;
        http_sleep_ms(50);
    }
    if (v > want)
        fail_msg("%s: http.open_connections is %.0f %d ms on, want %.0f", what,
                 v, SETTLE_MS, want);
}

/* The sample of a /metrics series fetched from ip; fails when absent. */
static double metric(const char *ip, const char *series)
{
    double v = 0;
    if (!http_metric_value(&g_srv, ip, series, &v))
        fail_msg("/metrics: no sample %s", series);
    return v;
}

/* ---- 1: per client ---- */

static void test_per_client(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-connections-per-client", "4",
                                       NULL};
    int fds[10], closed[10], keep[4], n_keep = 0;
    long ms = 0;
    srv_up(&g_srv, args);
    /* srv_up's own requests came from 127.0.0.1: gone before counting */
    wait_open_at_most("127.0.0.2", 1, "after the server started");

    conns_open("127.0.0.1", 10, fds, 0);
    uint64_t t0 = http_mono_ms();
    /* another address is not affected */
    long st = http_get_from(&g_srv, "127.0.0.2", "/healthz", WINDOW_MS, &ms);
    if (st != 200)
        fail_msg("GET /healthz from 127.0.0.2 while 127.0.0.1 is at its "
                 "limit: status %ld after %ld ms, want 200 within %d ms",
                 st, ms, WINDOW_MS);
    long spent = (long)(http_mono_ms() - t0);
    int c = watch_closed(
        fds, 10, WINDOW_MS > spent ? WINDOW_MS - (int)spent : 0, closed);
    if (c != 6)
        fail_msg("10 connections from 127.0.0.1 with "
                 "--max-connections-per-client 4: %d closed within %d ms, "
                 "want 6",
                 c, WINDOW_MS);
    for (int i = 0; i < 10; i++) {
        if (!closed[i])
            keep[n_keep++] = fds[i];
    }
    expect_served(keep, n_keep, "the 4 connections within the limit");

    double rej =
        http_stats_num(&g_srv, "127.0.0.2", "http.rejected_per_client");
    if (rej < 6)
        fail_msg("http.rejected_per_client is %.0f, want >= 6", rej);
    double m = metric("127.0.0.2",
                      "blobd_connections_closed_total{reason=\"per_client\"}");
    if (m < 6)
        fail_msg("blobd_connections_closed_total{reason=\"per_client\"} is "
                 "%.0f, want >= 6",
                 m);

    /* closing the 4 frees their slots: 4 new ones work, a 5th does not */
    conns_close(fds, 10);
    wait_open_at_most("127.0.0.2", 1, "after closing every connection");
    int again[5], closed2[5];
    conns_open("127.0.0.1", 4, again, 0);
    expect_served(again, 4, "4 new connections after the others closed");
    conns_open("127.0.0.1", 1, again + 4, 0);
    if (watch_closed(again + 4, 1, WINDOW_MS, closed2) != 1)
        fail_msg("a 5th connection from 127.0.0.1 was not closed within %d "
                 "ms",
                 WINDOW_MS);
    conns_close(again, 5);
    assert_int_equal(srv_stop(&g_srv), 0);
}

/* ---- 2: trusted proxies ---- */

static void test_trusted_proxy_exempt(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-connections-per-client", "2",
                                       "--trusted-proxies", "127.0.0.3/32",
                                       NULL};
    int proxy[10], local[3], pclosed[10], lclosed[3];
    srv_up(&g_srv, args);

    conns_open("127.0.0.3", 10, proxy, 0);
    expect_served(proxy, 10, "10 connections from the trusted proxy");

    wait_open_at_most("127.0.0.2", 10 + 1, "before 127.0.0.1 connects");
    conns_open("127.0.0.1", 3, local, 50);
    int lc = watch_closed(local, 3, WINDOW_MS, lclosed);
    if (lc != 1 || !lclosed[2])
        fail_msg("3 connections from 127.0.0.1 with "
                 "--max-connections-per-client 2: closed %d, %d, %d; want "
                 "only the 3rd",
                 lclosed[0], lclosed[1], lclosed[2]);
    expect_served(local, 2, "the 2 connections from 127.0.0.1");
    if (watch_closed(proxy, 10, 100, pclosed) != 0)
        fail_msg("a connection from the trusted proxy was closed");
    expect_served(proxy, 10, "the trusted proxy's connections, again");
    conns_close(proxy, 10);
    conns_close(local, 3);
    assert_int_equal(srv_stop(&g_srv), 0);
}

/* ---- 3: no per-client limit ---- */

static void test_per_client_off(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-connections-per-client", "0",
                                       NULL};
    int fds[20];
    srv_up(&g_srv, args);
    conns_open("127.0.0.1", 20, fds, 0);
    expect_served(fds, 20,
                  "20 connections from 127.0.0.1 with "
                  "--max-connections-per-client 0");
    conns_close(fds, 20);
    assert_int_equal(srv_stop(&g_srv), 0);
}

/* ---- 4: the total ---- */

static void test_total_limit(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-connections",
                                       "16",
                                       "--max-connections-per-client",
                                       "0",
                                       "--http-threads",
                                       "2",
                                       NULL};
    int fds[40], closed[40], sts[40], waiting[40], nwait = 0;
    srv_up(&g_srv, args);
    conns_open("127.0.0.1", 40, fds, 0);
    /* At the limit libmicrohttpd stops accepting: nothing is closed, the
     * connections past it wait in the listen backlog (docs/api.md,
     * "Connections and limits"). */
    int c = watch_closed(fds, 40, WINDOW_MS, closed);
    if (c != 0)
        fail_msg("--max-connections 16: %d of 40 connections were closed; "
                 "past the limit they wait",
                 c);
    int served = serve_all(fds, 40, ANSWER_MS, sts);
    print_message("--max-connections 16, 2 threads: of 40 connections %d "
                  "answered, %d waiting\n",
                  served, 40 - served);
    /* The limit is split across the threads: one may be full first. */
    if (served > 16 || served < 8)
        fail_msg("--max-connections 16: %d of 40 connections answered, want "
                 "8..16",
                 served);
    for (int i = 0; i < 40; i++) {
        if (sts[i] == 200)
            close(fds[i]);
        else
            waiting[nwait++] = fds[i];
    }
    /* Closing the served ones lets the waiting ones in: each gets the
     * answer to the GET it sent while waiting; each is closed once
     * answered, to make room for the rest. */
    uint64_t end = http_mono_ms() + 10000;
    int answered = 0;
    char buf[2048];
    while (answered < nwait && http_mono_ms() < end) {
        for (int i = 0; i < nwait; i++) {
            if (waiting[i] < 0)
                continue;
            struct pollfd p = {waiting[i], POLLIN, 0};
            if (poll(&p, 1, 0) <= 0)
                continue;
            long n = http_raw_read(waiting[i], buf, sizeof(buf), 2000);
            if (n <= 0 || http_raw_status(buf) != 200)
                fail_msg("a connection let in after waiting got %.60s",
                         n > 0 ? buf : "nothing");
            close(waiting[i]);
            waiting[i] = -1;
            answered++;
        }
        http_sleep_ms(20);
    }
    if (answered < nwait)
        fail_msg("--max-connections 16: %d of %d waiting connections were "
                 "answered within 10 s of slots freeing",
                 answered, nwait);
    assert_int_equal(srv_stop(&g_srv), 0);
}

/* ---- the buffer per connection (--connection-memory) ---- */

static void test_connection_memory(void **state)
{
    (void)state;
    static const char *const bad[] = {"--connection-memory", "16", NULL};
    srv_init(&g_srv);
    int rc = srv_start(&g_srv, bad, NULL);
    if (rc != 64 || !srv_log_has(&g_srv, "connection-memory"))
        fail_msg("--connection-memory 16 (under 32): exit %d, want 64 with "
                 "a message naming the option; log %s",
                 rc, g_srv.log);
    srv_fini(&g_srv);

    static const char *const args[] = {"--connection-memory", "128", NULL};
    srv_up(&g_srv, args);
    int fds[8];
    conns_open("127.0.0.1", 8, fds, 0);
    expect_served(fds, 8, "8 connections with 128 KiB each");
    /* 8 and the stats request itself (each poll is a connection of its
     * own, so the count is read from the bytes) */
    double bytes = http_stats_num(&g_srv, NULL, "memory.connections_bytes");
    double each = 128.0 * 1024;
    if (bytes < 9 * each || bytes / each != (double)(long)(bytes / each))
        fail_msg("memory.connections_bytes %.0f with 9 or more connections "
                 "open: want a multiple of 128 KiB, at least 9 of them",
                 bytes);
    /* A whole blob still goes through the larger reads intact. */
    char g[HTTP_GUID_BUF];
    size_t len = 512 * 1024;
    char *blob = malloc(len);
    assert_non_null(blob);
    http_fill(blob, len, 0xc0de);
    http_guid_rand(g);
    assert_int_equal(http_put(&g_srv, g, blob, len, NULL), 201);
    struct http_resp r;
    assert_int_equal(http_get(&g_srv, g, &r), 200);
    http_assert_bytes(r.body, r.body_len, blob, len,
                      "a 512 KiB blob with 128 KiB per connection");
    http_resp_free(&r);
    free(blob);
    conns_close(fds, 8);
    assert_int_equal(srv_stop(&g_srv), 0);
}

/* ---- 5: the file descriptor limit ---- */

static void test_fd_limit(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-connections", "1000", NULL};
    srv_init(&g_srv);
    g_srv.nofile = 256;
    int rc = srv_start(&g_srv, args, NULL);
    if (rc != 0)
        fail_msg("with RLIMIT_NOFILE 256 and --max-connections 1000 the "
                 "server did not start (%d); log %s",
                 rc, g_srv.log);
    if (srv_wait_ready(&g_srv) != 0)
        fail_msg("with RLIMIT_NOFILE 256 the server did not become ready");
    if (!srv_log_has(&g_srv, "max-connections lowered to"))
        fail_msg("RLIMIT_NOFILE 256, --max-connections 1000: the log does not "
                 "say \"max-connections lowered to\"");
    double maxc = http_stats_num(&g_srv, NULL, "http.max_connections");
    double lim = http_stats_num(&g_srv, NULL, "http.fd_limit");
    print_message("RLIMIT_NOFILE 256: http.max_connections %.0f, "
                  "http.fd_limit %.0f\n",
                  maxc, lim);
    if (maxc > 256 || maxc < 1)
        fail_msg("RLIMIT_NOFILE 256: http.max_connections is %.0f", maxc);
    if (lim != 256)
        fail_msg("RLIMIT_NOFILE 256: http.fd_limit is %.0f", lim);
    assert_int_equal(http_status(&g_srv, "GET", "/healthz", NULL, NULL, 0),
                     200);
    assert_int_equal(srv_stop(&g_srv), 0);
    srv_fini(&g_srv);

    /* by default the limit leaves room for every connection */
    srv_up(&g_srv, NULL);
    maxc = http_stats_num(&g_srv, NULL, "http.max_connections");
    lim = http_stats_num(&g_srv, NULL, "http.fd_limit");
    print_message("defaults: http.max_connections %.0f, http.fd_limit %.0f\n",
                  maxc, lim);
    if (lim < maxc + 64)
        fail_msg("defaults: http.fd_limit %.0f < http.max_connections %.0f "
                 "+ 64",
                 lim, maxc);
    assert_int_equal(srv_stop(&g_srv), 0);
}

/* ---- 6: 1 500 connections ---- */

static void test_many_connections(void **state)
{
    (void)state;
    /* --header-timeout 60: connections opened first wait, idle, for the
     * others; on a slow machine that may take longer than the default 10 s
     * (SYNs past the listen backlog are retried after 1 s, 3 s).
     * --max-connections 3000: each HTTP thread's share (the limit is split
     * across them) holds all 1 500, however unevenly the threads accept.
     * With 2000 (shares of 1 000) one CI run saw 1 116 answered and 384
     * left unaccepted for 20 s, as if one thread was full and the other
     * missed the backlog's wake-up (see docs/api.md, the limit). */
    static const char *const args[] = {"--max-connections",
                                       "3000",
                                       "--max-connections-per-client",
                                       "0",
                                       "--header-timeout",
                                       "60",
                                       NULL};
    static const char *const ips[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3",
                                      "127.0.0.4"};
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        fail_msg("getrlimit: %s", strerror(errno));
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < MANY_NOFILE) {
        if (getenv("BLOBD_NO_SKIP"))
            fail_msg("the hard RLIMIT_NOFILE is %llu, %d connections need "
                     "%d, and BLOBD_NO_SKIP is set",
                     (unsigned long long)rl.rlim_max, MANY, MANY_NOFILE);
        print_message("skipped: the hard RLIMIT_NOFILE is %llu, %d "
                      "connections need %d\n",
                      (unsigned long long)rl.rlim_max, MANY, MANY_NOFILE);
        skip();
        return;
    }
    /* the soft limit up to the hard one (the server inherits it) */
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? 65536 : rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur < want) {
        struct rlimit nl = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) != 0)
            fail_msg("setrlimit(RLIMIT_NOFILE, %llu): %s",
                     (unsigned long long)want, strerror(errno));
    }

    srv_up(&g_srv, args);
    assert_int_equal(http_status(&g_srv, "GET", "/healthz", NULL, NULL, 0),
                     200);
    http_sleep_ms(200);
    int base_fds = srv_fd_count(&g_srv);
    long rss_idle = srv_rss_kib(&g_srv);
    /* counts itself among the open connections */
    double base_open = http_stats_num(&g_srv, NULL, "http.open_connections");
    double mem_idle = http_stats_num(&g_srv, NULL, "memory.used_bytes");

    int *fds = calloc(MANY, sizeof(*fds));
    if (!fds)
        fail_msg("out of memory");
    uint64_t t0 = http_mono_ms(), slowest = 0;
    for (int i = 0; i < MANY; i++) {
        uint64_t c0 = http_mono_ms();
        conns_open(ips[i % 4], 1, fds + i, 0);
        if (http_mono_ms() - c0 > slowest)
            slowest = http_mono_ms() - c0;
    }
    uint64_t t1 = http_mono_ms();
    print_message("%d connections opened in %llu ms (the slowest connect: "
                  "%llu ms)\n",
                  MANY, (unsigned long long)(t1 - t0),
                  (unsigned long long)slowest);
    expect_served_within(fds, MANY, 20000, "1500 keep-alive connections");
    uint64_t t2 = http_mono_ms();
    long rss_busy = srv_rss_kib(&g_srv);
    double open_busy = http_stats_num(&g_srv, NULL, "http.open_connections");
    double mem_busy = http_stats_num(&g_srv, NULL, "memory.used_bytes");
    int fds_busy = srv_fd_count(&g_srv);
    printf("%d connections: opened in %llu ms, all answered in %llu ms; "
           "server RSS %ld KiB idle, %ld KiB with them open (%.1f KiB "
           "each); memory.used_bytes %.0f idle, %.0f with them open; %d "
           "descriptors (%d idle), http.open_connections %.0f\n",
           MANY, (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1),
           rss_idle, rss_busy, (double)(rss_busy - rss_idle) / MANY, mem_idle,
           mem_busy, fds_busy, base_fds, open_busy);
    if (open_busy < MANY)
        fail_msg("http.open_connections is %.0f with %d open", open_busy, MANY);

    conns_close(fds, MANY);
    free(fds);
    /* Closing 1 500 takes the server's threads a while when the machine
     * is busy (ctest -j beside a compile): 10 s.  Past that, watch on to
     * the idle timeout (30 s) to tell slowness from a missed end of
     * stream in the failure message. */
    uint64_t c0 = http_mono_ms();
    int left;
    while ((left = srv_fd_count(&g_srv)) > base_fds &&
           http_mono_ms() < c0 + 10000)
        http_sleep_ms(50);
    if (left > base_fds) {
        int at10 = left;
        while ((left = srv_fd_count(&g_srv)) > base_fds &&
               http_mono_ms() < c0 + 40000)
            http_sleep_ms(200);
        fail_msg("after closing %d connections the server held %d "
                 "descriptors 10 s on (%d idle); %s %.1f s after the close",
                 MANY, at10, base_fds,
                 left > base_fds ? "still more than idle" : "back to idle",
                 (double)(http_mono_ms() - c0) / 1000);
    }
    wait_open_at_most(NULL, base_open, "after closing the connections");
    assert_int_equal(srv_stop(&g_srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_per_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trusted_proxy_exempt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_per_client_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_memory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
