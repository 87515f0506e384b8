/*
 * test_http_churn.c - the header-deadline watchdog (server/conns.c) never
 * ends a connection it does not mean to.
 *
 * The watchdog shuts down sockets from outside libmicrohttpd.  If it ever
 * acted on a descriptor after the library had closed it, the kernel would
 * by then have handed the same number to a new connection, and a
 * well-behaved client would see its connection reset.  Here slow clients
 * that the deadline cuts and fast clients that open, use and close
 * connections run together for a few seconds, so descriptor numbers are
 * reused constantly; every fast request must succeed, including keep-alive
 * requests that pause for less than the deadline between them.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "srv.h"

#define RUN_MS 5000
#define SLOW_BATCH 16

struct churn {
    struct srv *s;
    atomic_int stop;
    atomic_long fast_ok, fast_fail, slow_cut, slow_open;
    char why[256]; /* the first fast failure */
    pthread_mutex_t mu;
};

/* A connection from src (a 127/8 address) to the server; -1 on failure. */
static int connect_from(struct srv *s, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto fail;
    a.sin_port = htons((uint16_t)s->port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

static void fast_failed(struct churn *c, const char *what, int err)
{
    atomic_fetch_add(&c->fast_fail, 1);
    pthread_mutex_lock(&c->mu);
    if (!c->why[0])
        snprintf(c->why, sizeof(c->why), "%s (%s)", what,
                 err ? strerror(err) : "no answer");
    pthread_mutex_unlock(&c->mu);
}

/* One GET /healthz on fd, keep-alive; 0 when the answer was 200. */
static int one_get(int fd, char *buf, size_t cap)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: churn\r\n\r\n";
    if (http_raw_send(fd, req, sizeof(req) - 1) != 0)
        return -1;
    long n = http_raw_read(fd, buf, cap, 5000);
    return n > 0 && http_raw_status(buf) == 200 ? 0 : -1;
}

/* Fast clients: a new connection, three requests with pauses shorter
 * than the deadline, close; again and again. */
static void *fast_main(void *arg)
{
    struct churn *c = arg;
    char buf[4096];
    unsigned round = 0;
    while (!atomic_load(&c->stop)) {
        int fd = connect_from(c->s, "127.0.0.2");
        if (fd < 0) {
            fast_failed(c, "connect", errno);
            continue;
        }
        for (int i = 0; i < 3; i++) {
            if (i == 1 && round % 64 == 0)
                http_sleep_ms(300); /* idle, well inside the deadline */
            errno = 0;
            if (one_get(fd, buf, sizeof(buf)) != 0) {
                fast_failed(c, "keep-alive GET", errno);
                break;
            }
            atomic_fetch_add(&c->fast_ok, 1);
        }
        close(fd);
        round++;
    }
    return NULL;
}

/* Slow clients: batches of connections that start a request and never
 * finish its headers; each must be cut by the server. */
static void *slow_main(void *arg)
{
    struct churn *c = arg;
    static const char part[] = "GET /healthz HTTP/1.1\r\nHost: slow\r\nX-A: ";
    while (!atomic_load(&c->stop)) {
        int fds[SLOW_BATCH];
        int n = 0;
        for (int i = 0; i < SLOW_BATCH; i++) {
            int fd = connect_from(c->s, "127.0.0.3");
            if (fd < 0)
                continue;
            http_raw_send(fd, part, i % 2 ? sizeof(part) - 1 : 5);
            fds[n++] = fd;
            atomic_fetch_add(&c->slow_open, 1);
        }
        /* Wait for the server to end each (EOF or reset). */
        uint64_t until = http_mono_ms() + 4000;
        for (int i = 0; i < n; i++) {
            char b[256];
            for (;;) {
                struct pollfd p = {fds[i], POLLIN, 0};
                int64_t left = (int64_t)(until - http_mono_ms());
                if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                    break;
                ssize_t r = recv(fds[i], b, sizeof(b), 0);
                if (r <= 0) {
                    atomic_fetch_add(&c->slow_cut, 1);
                    break;
                }
            }
            close(fds[i]);
        }
    }
    return NULL;
}

static double stat_u64(struct srv *s, const char *section, const char *key)
{
    struct http_resp r;
    http_req_ok(s, "GET", "/admin/stats", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /admin/stats");
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, section), key);
    assert_true(cJSON_IsNumber(v));
    double d = v->valuedouble;
    cJSON_Delete(j);
    http_resp_free(&r);
    return d;
}

static void test_churn(void **state)
{
    (void)state;
    struct srv s;
    const char *args[] = {"--header-timeout", "1",
                          "--max-connections-per-client", "0", NULL};
    srv_up(&s, args);
    struct churn c;
    memset(&c, 0, sizeof(c));
    c.s = &s;
    pthread_mutex_init(&c.mu, NULL);
    pthread_t fast[2], slow;
    assert_int_equal(pthread_create(&slow, NULL, slow_main, &c), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&fast[i], NULL, fast_main, &c), 0);
    http_sleep_ms(RUN_MS);
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(fast[i], NULL);
    pthread_join(slow, NULL);
    pthread_mutex_destroy(&c.mu);

    long ok = atomic_load(&c.fast_ok), bad = atomic_load(&c.fast_fail);
    long cut = atomic_load(&c.slow_cut), opened = atomic_load(&c.slow_open);
    print_message("churn: %ld fast requests, %ld failed; %ld of %ld slow "
                  "connections cut\n",
                  ok, bad, cut, opened);
    if (bad)
        fail_msg("%ld of %ld fast requests failed; first: %s", bad, ok + bad,
                 c.why);
    assert_true(ok >= 100);
    assert_true(opened >= SLOW_BATCH);
    assert_int_equal(cut, opened); /* every slow one was ended */
    assert_true(stat_u64(&s, "http", "header_timeouts") >= (double)cut);
    assert_int_equal(srv_stop(&s), 0);
    srv_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
