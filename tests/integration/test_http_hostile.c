/*
 * test_http_hostile.c - what a hostile or broken client sends, over raw
 * sockets:
 *
 *  1. Content-Length twice (equal or not): 400 bad_framing;
 *  2. Content-Length with Transfer-Encoding: chunked: 400 bad_framing;
 *  3. any Transfer-Encoding but one "chunked" (on bodyless requests too):
 *     501 unsupported_transfer_encoding, at once;
 *  4. a malformed Content-Length: 400 (libmicrohttpd's own answer);
 *  5. NULs, control bytes, bytes >= 0x80 and percent-escapes in the path,
 *     NUL and control escapes in the query: 400 bad_uri, for GET too;
 *  6. a target over 4096 bytes: 414 uri_too_long (past libmicrohttpd's
 *     buffer: its own 414);
 *  7. a header section over 16 KiB or over 64 fields: 431
 *     headers_too_large (past the buffer: the library's 431);
 *  8. a header name that is not a token, an HTTP/1.1 request without Host:
 *     400 bad_header;
 *  9. slowloris: with --header-timeout 2 a request whose headers trickle,
 *     a silent connection and an idle keep-alive one are all closed 2..5 s
 *     in, a slow but complete request is answered; counted in
 *     http.header_timeouts and blobd_connections_closed_total.
 * 10. a client that sends part of an upload's body (Content-Length or
 *     chunked) and closes at once: nothing stored, and the connection and
 *     its frame are freed within SETTLE_MS, long before the idle timeout
 *     (libmicrohttpd alone can miss the end of such a stream).
 *
 * Every refusal is followed by the server closing the connection (EOF
 * within 2 s of the answer) and nothing stored.  One server runs the whole
 * group (--header-timeout 2, --cache-size 0 so memory.used_bytes measures
 * only request frames and response buffers) with a prober GETting /healthz
 * from 127.0.0.2 every 100 ms throughout; the last test checks it was
 * always answered within 2 s, then that descriptors, open connections,
 * memory.used_bytes and RSS are back to their baselines.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "srv.h"

#define ANSWER_MS 3000    /* a refusal arrives within */
#define AT_ONCE_MS 2000   /* a bodyless refusal arrives within */
#define CLOSE_MS 2000     /* the server closes after its answer within */
#define SETTLE_MS 3000    /* counts return to their baselines within */
#define PROBE_MAX_MS 2000 /* the prober's worst latency */
#define RSS_SLACK_KIB (64L * 1024)
#define HT_S 2 /* --header-timeout */
#define SLOW_CONNS 20

static const char *const k_args[] = {"--header-timeout", "2", "--cache-size",
                                     "0", NULL};

static struct srv g_srv;
static struct http_prober g_prober;
static struct {
    int fds;
    double open;
    double mem;
    long rss;
} g_base;

/* Sockets the running test opened; its teardown closes what is left. */
#define MAX_TRACKED 64
static int g_fds[MAX_TRACKED];
static int g_nfds;

/* ---- fixtures ---- */

static int group_setup(void **state)
{
    (void)state;
    srv_init(&g_srv);
    int rc = srv_start(&g_srv, k_args, NULL);
    if (rc != 0)
        fail_msg("the server did not start with --header-timeout 2 "
                 "--cache-size 0 (%d); log in %s",
                 rc, g_srv.log);
    if (srv_wait_ready(&g_srv) != 0)
        fail_msg("the server on port %d did not become ready", g_srv.port);
    /* the baselines: after one request, its connection gone */
    assert_int_equal(http_status(&g_srv, "GET", "/healthz", NULL, NULL, 0),
                     200);
    http_sleep_ms(200);
    g_base.fds = srv_fd_count(&g_srv);
    g_base.rss = srv_rss_kib(&g_srv);
    if (g_base.fds < 0 || g_base.rss < 0)
        fail_msg("cannot read /proc/%d", (int)g_srv.pid);
    /* the stats request counts itself among the open connections */
    g_base.open = http_stats_num(&g_srv, NULL, "http.open_connections");
    g_base.mem = http_stats_num(&g_srv, NULL, "memory.used_bytes");
    print_message("baseline: %d fds, %.0f open connections, memory.used_bytes "
                  "%.0f, RSS %ld KiB\n",
                  g_base.fds, g_base.open, g_base.mem, g_base.rss);
    http_prober_start(&g_prober, &g_srv, "127.0.0.2", "/healthz");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    http_prober_stop(&g_prober, NULL, NULL);
    if (g_srv.dir[0])
        srv_fini(&g_srv);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    g_nfds = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g_nfds; i++)
        close(g_fds[i]);
    g_nfds = 0;
    return 0;
}

/* ---- helpers ---- */

/* A connection from ip, tracked; fails the test when it cannot be made. */
static int conn_open(const char *ip, const char *what)
{
    if (g_nfds == MAX_TRACKED)
        fail_msg("%s: more than %d sockets at once", what, MAX_TRACKED);
    int fd = http_raw_connect_from(&g_srv, ip);
    if (fd < 0)
        fail_msg("%s: connect from %s to port %d: %s", what, ip, g_srv.port,
                 strerror(errno));
    g_fds[g_nfds++] = fd;
    return fd;
}

static void conn_close(int fd)
{
    for (int i = 0; i < g_nfds; i++) {
        if (g_fds[i] == fd) {
            g_fds[i] = g_fds[--g_nfds];
            break;
        }
    }
    close(fd);
}

/* A request built with printf; *len gets its length.  Owned. */
__attribute__((format(printf, 2, 3))) static char *reqf(size_t *len,
                                                        const char *fmt, ...)
{
    va_list ap;
    char *p = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        fail_msg("out of memory building a request");
    *len = (size_t)n;
    return p;
}

/* n bytes of c (NUL-terminated).  Owned. */
static char *fill(char c, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        fail_msg("out of memory for %zu bytes", n);
    memset(p, c, n);
    p[n] = '\0';
    return p;
}

/*
 * Send req[0..len) on a fresh connection from 127.0.0.1 and read one
 * answer into *r (fails when none arrives within timeout_ms).  Returns the
 * connection, still tracked, for expect_closed.
 */
static int exchange(const void *req, size_t len, int timeout_ms,
                    struct http_resp *r, const char *what)
{
    static char buf[256 * 1024];
    int fd = conn_open("127.0.0.1", what);
    uint64_t t0 = http_mono_ms();
    /* the server may answer and close before it has read everything */
    (void)http_raw_send(fd, req, len);
    long n = http_raw_read(fd, buf, sizeof(buf), timeout_ms);
    if (n <= 0 || http_raw_parse(buf, (size_t)n, r) != 0 || r->status == 0)
        fail_msg("%s: no answer within %d ms (%ld bytes: %.200s)", what,
                 timeout_ms, n, n > 0 ? buf : "");
    long ms = (long)(http_mono_ms() - t0);
    if (ms > timeout_ms)
        fail_msg("%s: the answer took %ld ms, want < %d", what, ms, timeout_ms);
    return fd;
}

/* The server closes fd within CLOSE_MS of its answer r. */
static void expect_closed(int fd, const struct http_resp *r, const char *what)
{
    if (http_raw_wait_eof(fd, CLOSE_MS) < 0)
        fail_msg("%s: answered %ld, but the connection is still open %d ms "
                 "later",
                 what, r->status, CLOSE_MS);
    conn_close(fd);
}

/*
 * A request that must be refused with status and the connection closed;
 * code: the JSON error code (NULL: libmicrohttpd answers, the status is
 * all there is to check).  guid (may be NULL): must not be stored
 * afterwards.  Frees req.
 */
static void refused(char *req, size_t len, int timeout_ms, long status,
                    const char *code, const char *guid, const char *what)
{
    struct http_resp r;
    int fd = exchange(req, len, timeout_ms, &r, what);
    free(req);
    if (code)
        http_expect_error(&r, status, code, what);
    else
        http_expect_status(&r, status, what);
    expect_closed(fd, &r, what);
    http_resp_free(&r);
    if (guid)
        http_expect_absent(&g_srv, guid, what);
}

/* A request (with Connection: close, or HTTP/1.0) that must be answered
 * with status, the connection closed.  Frees req. */
static void answered(char *req, size_t len, long status, const char *what)
{
    struct http_resp r;
    int fd = exchange(req, len, ANSWER_MS, &r, what);
    free(req);
    http_expect_status(&r, status, what);
    expect_closed(fd, &r, what);
    http_resp_free(&r);
}

/* PUT /blobs/<guid> with body "hello" and the extra header lines hdrs
 * (each ending in CRLF); the request, owned. */
static char *put_hello(size_t *len, const char *guid, const char *hdrs)
{
    return reqf(len,
                "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                "Content-Length: 5\r\n\r\nhello",
                guid, hdrs);
}

/* ---- 1, 2: framing ---- */

static void test_content_length_twice(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF];
    size_t len;
    char *req;
    http_guid_rand(g);

    req = reqf(&len,
               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
               g);
    refused(req, len, ANSWER_MS, 400, "bad_framing", g,
            "PUT with Content-Length: 5 twice");

    req = reqf(&len,
               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Length: 5\r\nContent-Length: 3\r\n\r\nhello",
               g);
    refused(req, len, ANSWER_MS, 400, "bad_framing", g,
            "PUT with Content-Length: 5 and Content-Length: 3");

    req = reqf(&len,
               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Length: 3\r\nContent-Length: 5\r\n\r\nhello",
               g);
    refused(req, len, ANSWER_MS, 400, "bad_framing", g,
            "PUT with Content-Length: 3 and Content-Length: 5");
}

static void test_content_length_and_chunked(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF];
    size_t len;
    char *req;
    http_guid_rand(g);

    req = reqf(&len,
               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n",
               g);
    refused(req, len, ANSWER_MS, 400, "bad_framing", g,
            "PUT with Content-Length and Transfer-Encoding: chunked");

    req = reqf(&len,
               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n",
               g);
    refused(req, len, ANSWER_MS, 400, "bad_framing", g,
            "PUT with Transfer-Encoding: chunked, then Content-Length");
}

/* ---- 3: transfer codings ---- */

static void test_transfer_encodings(void **state)
{
    (void)state;
    static const struct {
        const char *hdrs, *body, *what;
    } cases[] = {
        {"Transfer-Encoding: gzip\r\n", "5\r\nhello\r\n0\r\n\r\n",
         "PUT with Transfer-Encoding: gzip"},
        {"Transfer-Encoding: gzip, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n",
         "PUT with Transfer-Encoding: gzip, chunked"},
        {"Transfer-Encoding: identity\r\nContent-Length: 5\r\n", "hello",
         "PUT with Transfer-Encoding: identity and a Content-Length"},
        {"Transfer-Encoding: chunked, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n",
         "PUT with Transfer-Encoding: chunked, chunked"},
        {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
         "5\r\nhello\r\n0\r\n\r\n",
         "PUT with two Transfer-Encoding: chunked lines"},
    };
    char g[HTTP_GUID_BUF], kept[HTTP_GUID_BUF];
    size_t len;
    char *req;
    http_guid_rand(g);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req =
            reqf(&len, "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n%s",
                 g, cases[i].hdrs, cases[i].body);
        refused(req, len, ANSWER_MS, 501, "unsupported_transfer_encoding", g,
                cases[i].what);
    }

    /* bodyless requests: answered the same, at once */
    http_guid_rand(kept);
    assert_int_equal(http_put(&g_srv, kept, "kept", 4, NULL), 201);
    req = reqf(&len,
               "GET /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Transfer-Encoding: gzip\r\n\r\n",
               kept);
    refused(req, len, AT_ONCE_MS, 501, "unsupported_transfer_encoding", NULL,
            "GET with Transfer-Encoding: gzip");
    req = reqf(&len,
               "GET /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
               "\r\n",
               kept);
    refused(req, len, AT_ONCE_MS, 501, "unsupported_transfer_encoding", NULL,
            "GET with two Transfer-Encoding: chunked lines and no body");
    req = reqf(&len,
               "DELETE /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Transfer-Encoding: gzip, chunked\r\n\r\n",
               kept);
    refused(req, len, AT_ONCE_MS, 501, "unsupported_transfer_encoding", NULL,
            "DELETE with Transfer-Encoding: gzip, chunked");
    req = reqf(&len,
               "DELETE /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Transfer-Encoding: identity\r\n\r\n",
               kept);
    refused(req, len, AT_ONCE_MS, 501, "unsupported_transfer_encoding", NULL,
            "DELETE with Transfer-Encoding: identity");
    http_expect_data(&g_srv, kept, "kept", 4, NULL,
                     "the refused DELETEs did not delete it");
}

/* ---- 4: Content-Length values libmicrohttpd refuses itself ---- */

static void test_bad_content_length(void **state)
{
    (void)state;
    static const char *const values[] = {"+5", "-1", "5, 5", "abc"};
    char g[HTTP_GUID_BUF], what[128];
    size_t len;
    http_guid_rand(g);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char *req = reqf(&len,
                         "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Content-Length: %s\r\n\r\nhello",
                         g, values[i]);
        snprintf(what, sizeof(what), "PUT with Content-Length: %s", values[i]);
        refused(req, len, ANSWER_MS, 400, NULL, g, what);
    }
}

/* ---- 5: request target tricks ---- */

/* A random GUID whose first digit is '0' (so "%30" spells it). */
static void guid_zero(char g[HTTP_GUID_BUF])
{
    http_guid_rand(g);
    g[0] = '0';
}

/* The targets that must be refused with bad_uri, for guid g (g[0] is
 * '0'): prefix, the GUID (without its '0' when skip0), suffix. */
static const struct {
    const char *pre;
    int skip0;
    const char *post;
} k_bad[] = {
    {"/blobs/", 0, "%00x"},
    {"/blobs/", 0, "?fsync=tr%00ue"},
    {"/blobs/%30", 1, ""}, /* "%30" spells the leading '0' */
    {"/blobs%2F", 0, ""},
    {"/blobs%2f", 0, ""},
    {"/blobs/", 0, "%zz"},
    {"/blobs/", 0, "%"},
    {"/blobs/", 0, "\x01"},
    {"/blobs/", 0, "\x7f"},
    {"/blobs/", 0, "\x80"},
    {"/blobs/", 0, "\xff"},
    {"/blobs/", 0, "?fsync=true\x01"},
    {"/blobs/", 0, "?fsync=tr%01ue"},
    {"/blobs/", 0, "?fsync=tr%1fue"},
    {"/blobs/", 0, "?fsync=tr%1Fue"},
    {"/blobs/", 0, "?fsync=tr%7fue"},
    {"/blobs/", 0, "?x=%0a"},
    {"/blobs/", 0, "?x=%0D"},
};
#define NBAD (sizeof(k_bad) / sizeof(k_bad[0]))

/* Target i of k_bad for g.  Owned. */
static char *bad_target(size_t i, const char *g)
{
    char *t = NULL;
    if (asprintf(&t, "%s%s%s", k_bad[i].pre, g + k_bad[i].skip0,
                 k_bad[i].post) < 0)
        fail_msg("out of memory");
    return t;
}

/* The target with its bytes outside visible ASCII shown as \xNN. */
static void shown(char *dst, size_t cap, const char *t)
{
    size_t n = 0;
    for (; *t && n + 5 < cap; t++) {
        unsigned char c = (unsigned char)*t;
        if (c < 0x21 || c > 0x7e)
            n += (size_t)snprintf(dst + n, cap - n, "\\x%02x", c);
        else
            dst[n++] = (char)c;
    }
    dst[n] = '\0';
}

static void test_target_tricks_put(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF], what[256], t[160];
    size_t len;
    guid_zero(g);
    for (size_t i = 0; i < NBAD; i++) {
        char *target = bad_target(i, g);
        shown(t, sizeof(t), target);
        snprintf(what, sizeof(what), "PUT %s", t);
        char *req = reqf(&len,
                         "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Content-Length: 5\r\n\r\nhello",
                         target);
        free(target);
        refused(req, len, ANSWER_MS, 400, "bad_uri", g, what);
    }

    /* escapes in the query that decode to visible text are fine */
    char *req = reqf(&len,
                     "PUT /blobs/%s?fsync=%%74rue HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: 5\r\n\r\nhello",
                     g);
    answered(req, len, 201, "PUT ?fsync=%74rue");
    http_expect_data(&g_srv, g, "hello", 5, NULL, "PUT with ?fsync=%74rue");
}

static void test_target_tricks_get(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF], what[256], t[160];
    size_t len;
    guid_zero(g);
    assert_int_equal(http_put(&g_srv, g, "secret", 6, NULL), 201);

    char *req = reqf(&len,
                     "GET /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n",
                     g);
    answered(req, len, 200, "GET of the blob with a clean target");
    req = reqf(&len,
               "GET /blobs/%s?x=%%41%%20b HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Connection: close\r\n\r\n",
               g);
    answered(req, len, 200, "GET ?x=%41%20b");

    for (size_t i = 0; i < NBAD; i++) {
        char *target = bad_target(i, g);
        shown(t, sizeof(t), target);
        snprintf(what, sizeof(what), "GET %s (the blob exists)", t);
        req = reqf(&len, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
        free(target);
        refused(req, len, ANSWER_MS, 400, "bad_uri", NULL, what);
    }
    http_expect_data(&g_srv, g, "secret", 6, NULL, NULL);
}

/* ---- 6: long targets ---- */

/* "/blobs/<g>?pad=aaa..." of exactly total bytes.  Owned. */
static char *long_target(const char *g, size_t total)
{
    char head[128];
    int hn = snprintf(head, sizeof(head), "/blobs/%s?pad=", g);
    char *pad = fill('a', total - (size_t)hn);
    char *t = NULL;
    if (asprintf(&t, "%s%s", head, pad) < 0)
        fail_msg("out of memory");
    free(pad);
    return t;
}

static void test_long_target(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF], e[HTTP_GUID_BUF];
    size_t len;
    char *t, *req;
    http_guid_rand(g);
    http_guid_rand(e);
    assert_int_equal(http_put(&g_srv, e, "there", 5, NULL), 201);

    /* 4096 bytes is allowed */
    t = long_target(e, API_TARGET_MAX);
    req = reqf(
        &len, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        t);
    free(t);
    answered(req, len, 200, "GET with a 4096-byte target");

    t = long_target(g, 5000);
    req = reqf(&len,
               "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
               "\r\nhello",
               t);
    free(t);
    refused(req, len, ANSWER_MS, 414, "uri_too_long", g,
            "PUT with a 5000-byte target");

    t = long_target(e, 5000);
    req = reqf(&len, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", t);
    free(t);
    refused(req, len, ANSWER_MS, 414, "uri_too_long", NULL,
            "GET with a 5000-byte target");

    /* past libmicrohttpd's buffer: its own answer */
    t = long_target(g, 40000);
    req = reqf(&len,
               "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
               "\r\nhello",
               t);
    free(t);
    refused(req, len, ANSWER_MS, 414, NULL, g, "PUT with a 40000-byte target");
}

/* ---- 7: large header sections ---- */

/* count lines "X-Fnnn: <size bytes>\r\n".  Owned. */
static char *header_lines(int count, size_t size)
{
    char *v = fill('v', size);
    size_t cap = (size_t)count * (size + 16) + 1, n = 0;
    char *p = malloc(cap);
    if (!p)
        fail_msg("out of memory");
    p[0] = '\0';
    for (int i = 0; i < count; i++)
        n += (size_t)snprintf(p + n, cap - n, "X-F%03d: %s\r\n", i, v);
    free(v);
    return p;
}

static void test_large_headers(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF], ok[HTTP_GUID_BUF];
    size_t len;
    char *h, *req;
    http_guid_rand(g);
    http_guid_rand(ok);

    h = fill('a', 20000);
    req = reqf(&len,
               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: %s\r\n"
               "Content-Length: 5\r\n\r\nhello",
               g, h);
    free(h);
    refused(req, len, ANSWER_MS, 431, "headers_too_large", g,
            "PUT with a 20000-byte header");

    /* 10 x 1700 bytes: no single header is large, the section is */
    h = header_lines(10, 1700);
    req = put_hello(&len, g, h);
    free(h);
    refused(req, len, ANSWER_MS, 431, "headers_too_large", g,
            "PUT with 17 KB of headers in 10 fields");

    /* Host, Content-Length and 63 more: 65 fields */
    h = header_lines(63, 1);
    req = put_hello(&len, g, h);
    free(h);
    refused(req, len, ANSWER_MS, 431, "headers_too_large", g,
            "PUT with 65 header fields");

    /* Host, Connection, Content-Length and 61 more: 64 fields are fine */
    h = header_lines(61, 1);
    req = reqf(&len,
               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Connection: close\r\n%sContent-Length: 5\r\n\r\nhello",
               ok, h);
    free(h);
    answered(req, len, 201, "PUT with 64 header fields");
    http_expect_data(&g_srv, ok, "hello", 5, NULL, "PUT with 64 fields");

    /* past libmicrohttpd's buffer: its own answer */
    h = fill('a', 40000);
    req = reqf(&len,
               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: %s\r\n"
               "Content-Length: 5\r\n\r\nhello",
               g, h);
    free(h);
    refused(req, len, ANSWER_MS, 431, NULL, g, "PUT with a 40000-byte header");
}

/* ---- 8: header names, Host ---- */

static void test_header_names_and_host(void **state)
{
    (void)state;
    static const char *const lines[] = {"X-A : b\r\n", "X@A: b\r\n",
                                        "X(A): b\r\n", "X\"A: b\r\n"};
    char g[HTTP_GUID_BUF], what[128], t[64];
    size_t len;
    char *req;
    http_guid_rand(g);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        shown(t, sizeof(t), lines[i]);
        snprintf(what, sizeof(what), "PUT with the header line %s", t);
        req = put_hello(&len, g, lines[i]);
        refused(req, len, ANSWER_MS, 400, "bad_header", g, what);
    }

    req = reqf(&len, "PUT /blobs/%s HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
               g);
    refused(req, len, ANSWER_MS, 400, "bad_header", g,
            "HTTP/1.1 PUT without Host");
    req = reqf(&len, "GET /healthz HTTP/1.1\r\n\r\n");
    refused(req, len, ANSWER_MS, 400, "bad_header", NULL,
            "HTTP/1.1 GET /healthz without Host");
    /* HTTP/1.0 needs none (and its connection ends after the answer) */
    req = reqf(&len, "GET /healthz HTTP/1.0\r\n\r\n");
    answered(req, len, 200, "HTTP/1.0 GET /healthz without Host");
}

/* ---- 9: slowloris ---- */

enum slow_kind { SLOW_TRICKLE, SLOW_SILENT, SLOW_IDLE };

struct slow {
    int fd;
    enum slow_kind kind;
    uint64_t t0;        /* connect; for SLOW_IDLE its answer */
    uint64_t next_send; /* SLOW_TRICKLE: the next byte */
    size_t sent;
    long closed_ms; /* after t0; -1 while open */
};

/* A client that sends a whole request over 1.5 s, 100 ms apart. */
struct polite {
    int fd;
    long status;
    long ms;
};

static void *polite_main(void *arg)
{
    struct polite *p = arg;
    static const char req[] =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    size_t len = sizeof(req) - 1, pieces = 16, off = 0;
    uint64_t t0 = http_mono_ms();
    for (size_t i = 0; i < pieces; i++) {
        size_t end = len * (i + 1) / pieces;
        if (http_raw_send(p->fd, req + off, end - off) != 0)
            return NULL;
        off = end;
        if (i + 1 < pieces)
            http_sleep_ms(100);
    }
    char buf[4096];
    long n = http_raw_read(p->fd, buf, sizeof(buf), 3000);
    p->ms = (long)(http_mono_ms() - t0);
    p->status = n > 0 ? http_raw_status(buf) : 0;
    return NULL;
}

static const char *slow_name(enum slow_kind k)
{
    return k == SLOW_TRICKLE  ? "trickling headers"
           : k == SLOW_SILENT ? "silent"
                              : "idle keep-alive";
}

/* Has s been closed by the server?  Reads (and drops) what it sent. */
static int slow_closed(struct slow *s)
{
    char buf[1024];
    for (;;) {
        ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return 1; /* EOF, or reset */
    }
}

/* Drive the slow connections until all are closed or 6 s pass. */
static void slow_run(struct slow *c, int n)
{
    static const char line[] = "X-Slowloris: ";
    uint64_t end = http_mono_ms() + 6000;
    int open = n;
    while (open > 0 && http_mono_ms() < end) {
        struct pollfd pf[SLOW_CONNS + 4];
        int map[SLOW_CONNS + 4], np = 0;
        for (int i = 0; i < n; i++) {
            if (c[i].closed_ms >= 0)
                continue;
            pf[np].fd = c[i].fd;
            pf[np].events = POLLIN;
            pf[np].revents = 0;
            map[np++] = i;
        }
        int pr = poll(pf, (nfds_t)np, 10);
        uint64_t now = http_mono_ms();
        for (int k = 0; pr > 0 && k < np; k++) {
            struct slow *s = &c[map[k]];
            if (pf[k].revents && slow_closed(s)) {
                s->closed_ms = (long)(now - s->t0);
                open--;
            }
        }
        for (int i = 0; i < n; i++) {
            struct slow *s = &c[i];
            if (s->kind != SLOW_TRICKLE || s->closed_ms >= 0 ||
                now < s->next_send)
                continue;
            char b = s->sent < sizeof(line) - 1 ? line[s->sent] : 'a';
            ssize_t w = send(s->fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                s->closed_ms = (long)(now - s->t0); /* EPIPE, ECONNRESET */
                open--;
                continue;
            }
            s->sent += w > 0 ? 1 : 0;
            s->next_send += 200;
        }
    }
}

static void test_slowloris(void **state)
{
    (void)state;
    static const char *const ips[] = {"127.0.0.10", "127.0.0.11", "127.0.0.12",
                                      "127.0.0.13"};
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    struct slow c[SLOW_CONNS + 2];
    int n = 0;
    memset(c, 0, sizeof(c));

    /* an idle keep-alive connection after a complete exchange */
    c[n].kind = SLOW_IDLE;
    c[n].fd = conn_open("127.0.0.1", "idle keep-alive connection");
    {
        static const char req[] =
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        char buf[4096];
        if (http_raw_send(c[n].fd, req, sizeof(req) - 1) != 0)
            fail_msg("keep-alive GET: send: %s", strerror(errno));
        long got = http_raw_read(c[n].fd, buf, sizeof(buf), ANSWER_MS);
        if (got <= 0 || http_raw_status(buf) != 200)
            fail_msg("keep-alive GET /healthz: no 200 (%.200s)",
                     got > 0 ? buf : "nothing");
        c[n].t0 = http_mono_ms();
        c[n].closed_ms = -1;
        n++;
    }
    /* a connection that never sends a byte */
    c[n].kind = SLOW_SILENT;
    c[n].t0 = http_mono_ms();
    c[n].fd = conn_open("127.0.0.1", "silent connection");
    c[n].closed_ms = -1;
    n++;
    /* 20 whose headers trickle in, a byte every 200 ms */
    for (int i = 0; i < SLOW_CONNS; i++, n++) {
        c[n].kind = SLOW_TRICKLE;
        c[n].t0 = http_mono_ms();
        c[n].fd = conn_open(ips[i % 4], "slowloris connection");
        c[n].closed_ms = -1;
        c[n].sent = 0;
        if (http_raw_send(c[n].fd, head, sizeof(head) - 1) != 0)
            fail_msg("slowloris connection %d: send: %s", i, strerror(errno));
        c[n].next_send = http_mono_ms() + 200;
    }
    /* and a polite client that takes 1.5 s over its whole request */
    struct polite pol = {conn_open("127.0.0.1", "slow but complete request"), 0,
                         0};
    pthread_t th;
    int rc = pthread_create(&th, NULL, polite_main, &pol);
    if (rc != 0)
        fail_msg("pthread_create: %s", strerror(rc));

    slow_run(c, n);
    pthread_join(th, NULL);

    long lo_ms = 0, hi_ms = 0;
    for (int i = 0; i < n; i++) {
        if (c[i].kind != SLOW_TRICKLE || c[i].closed_ms < 0)
            continue;
        if (!lo_ms || c[i].closed_ms < lo_ms)
            lo_ms = c[i].closed_ms;
        if (c[i].closed_ms > hi_ms)
            hi_ms = c[i].closed_ms;
    }
    print_message("slowloris: closed after %ld..%ld ms; silent after %ld ms; "
                  "idle keep-alive %ld ms after its answer; a request sent "
                  "over 1.5 s: %ld after %ld ms\n",
                  lo_ms, hi_ms, c[1].closed_ms, c[0].closed_ms, pol.status,
                  pol.ms);
    char bad[2048];
    size_t bl = 0;
    bad[0] = '\0';
    for (int i = 0; i < n; i++) {
        /* the idle connection's t0 is when the client had the answer */
        long lo = c[i].kind == SLOW_IDLE ? HT_S * 1000 - 100 : HT_S * 1000;
        if (c[i].closed_ms >= lo && c[i].closed_ms <= 5000)
            continue;
        if (bl + 100 < sizeof(bad))
            bl += (size_t)snprintf(
                bad + bl, sizeof(bad) - bl, "\n  #%d (%s): %s %ld ms", i,
                slow_name(c[i].kind),
                c[i].closed_ms < 0 ? "still open after" : "closed after",
                c[i].closed_ms < 0 ? (long)(http_mono_ms() - c[i].t0)
                                   : c[i].closed_ms);
    }
    if (bl)
        fail_msg("with --header-timeout %d, want each closed 2..5 s in:%s",
                 HT_S, bad);
    if (pol.status != 200)
        fail_msg("a complete request sent over 1.5 s: status %ld after %ld "
                 "ms, want 200 (the header deadline is %d s)",
                 pol.status, pol.ms, HT_S);
    for (int i = 0; i < n; i++)
        conn_close(c[i].fd);
    conn_close(pol.fd);

    /* nothing before this test ran into the header deadline */
    double after = http_stats_num(&g_srv, NULL, "http.header_timeouts");
    if (after < SLOW_CONNS)
        fail_msg("http.header_timeouts is %.0f after %d slowloris "
                 "connections were closed",
                 after, SLOW_CONNS);
    double m = 0;
    if (!http_metric_value(
            &g_srv, NULL,
            "blobd_connections_closed_total{reason=\"header_timeout\"}", &m))
        fail_msg("/metrics: no "
                 "blobd_connections_closed_total{reason=\"header_timeout\"}");
    if (m < after)
        fail_msg("/metrics: header_timeout closes %.0f, /admin/stats %.0f", m,
                 after);
}

/* ---- 10: clients that leave in the middle of a body ---- */

#define LEAVERS 5 /* of each framing */

static void test_client_leaves_mid_body(void **state)
{
    (void)state;
    char guids[2 * LEAVERS][HTTP_GUID_BUF];
    char *part = fill('x', 100000);
    double before = http_stats_num(&g_srv, NULL, "http.bodies_abandoned");
    for (int i = 0; i < 2 * LEAVERS; i++) {
        http_guid_rand(guids[i]);
        size_t len;
        char *req = i < LEAVERS
                        ? reqf(&len,
                               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Length: 400000\r\n\r\n%s",
                               guids[i], part)
                        : reqf(&len,
                               "PUT /blobs/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n186a0\r\n%s",
                               guids[i], part);
        int fd = conn_open("127.0.0.1", "a client leaving mid-body");
        if (http_raw_send(fd, req, len) < 0)
            fail_msg("sending part of a body: %s", strerror(errno));
        conn_close(fd);
        free(req);
    }
    free(part);
    uint64_t t0 = http_mono_ms(), end = t0 + SETTLE_MS;
    double open, mem;
    for (;;) {
        open = http_stats_num(&g_srv, NULL, "http.open_connections");
        mem = http_stats_num(&g_srv, NULL, "memory.used_bytes");
        if ((open <= g_base.open && mem <= g_base.mem) || http_mono_ms() > end)
            break;
        http_sleep_ms(50);
    }
    double left =
        http_stats_num(&g_srv, NULL, "http.bodies_abandoned") - before;
    print_message("%d clients left mid-body: connections and frames freed "
                  "after %ld ms; %.0f of them closed by blobd's check of a "
                  "quiet body (http.bodies_abandoned), the rest seen by "
                  "libmicrohttpd\n",
                  2 * LEAVERS, (long)(http_mono_ms() - t0), left);
    if (open > g_base.open || mem > g_base.mem)
        fail_msg("%d clients left in the middle of their bodies, and %d ms "
                 "later http.open_connections is %.0f (%.0f at the start) "
                 "and memory.used_bytes %.0f (%.0f): their connections and "
                 "frames wait for the idle timeout",
                 2 * LEAVERS, SETTLE_MS, open, g_base.open, mem, g_base.mem);
    for (int i = 0; i < 2 * LEAVERS; i++)
        http_expect_absent(&g_srv, guids[i], "a body cut short");
}

/* ---- 11, 12: the prober, and nothing left behind ---- */

/* What the server's descriptors point at, to stderr. */
static void dump_fds(struct srv *s)
{
    char dir[64], path[384], to[256];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)s->pid);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, to, sizeof(to) - 1);
        to[n > 0 ? n : 0] = '\0';
        fprintf(stderr, "  fd %s -> %s\n", e->d_name, to);
    }
    closedir(d);
}

static void test_after_all(void **state)
{
    (void)state;
    long max_ms = 0, fails = 0;
    long probes = http_prober_stop(&g_prober, &max_ms, &fails);
    print_message("prober: %ld GETs from 127.0.0.2, worst %ld ms, %ld "
                  "failed\n",
                  probes, max_ms, fails);
    if (probes < 10)
        fail_msg("the prober made only %ld requests", probes);
    if (fails != 0)
        fail_msg("%ld of %ld GET /healthz from 127.0.0.2 failed during the "
                 "hostile traffic (see stderr)",
                 fails, probes);
    if (max_ms >= PROBE_MAX_MS)
        fail_msg("a GET /healthz from 127.0.0.2 took %ld ms during the "
                 "hostile traffic, want < %d",
                 max_ms, PROBE_MAX_MS);

    uint64_t end = http_mono_ms() + SETTLE_MS;
    int fds;
    while ((fds = srv_fd_count(&g_srv)) > g_base.fds && http_mono_ms() < end)
        http_sleep_ms(50);
    if (fds > g_base.fds) {
        dump_fds(&g_srv);
        fail_msg("the server holds %d descriptors %d ms on, %d at the start",
                 fds, SETTLE_MS, g_base.fds);
    }

    double open, mem;
    end = http_mono_ms() + SETTLE_MS;
    for (;;) {
        open = http_stats_num(&g_srv, NULL, "http.open_connections");
        mem = http_stats_num(&g_srv, NULL, "memory.used_bytes");
        if ((open == g_base.open && mem == g_base.mem) || http_mono_ms() > end)
            break;
        http_sleep_ms(50);
    }
    if (open != g_base.open)
        fail_msg("http.open_connections is %.0f, %.0f at the start", open,
                 g_base.open);
    if (mem != g_base.mem)
        fail_msg("memory.used_bytes is %.0f, %.0f at the start", mem,
                 g_base.mem);
    long rss = srv_rss_kib(&g_srv);
    print_message("after: %d fds, RSS %ld KiB (%+ld)\n", fds, rss,
                  rss - g_base.rss);
    if (rss < 0 || rss >= g_base.rss + RSS_SLACK_KIB)
        fail_msg("RSS %ld KiB, %ld at the start: want less than %ld more", rss,
                 g_base.rss, RSS_SLACK_KIB);
    assert_int_equal(srv_stop(&g_srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_content_length_twice, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_content_length_and_chunked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transfer_encodings, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_content_length, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_target_tricks_put, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_target_tricks_get, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_names_and_host, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slowloris, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_leaves_mid_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_after_all, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
