/*
 * test_http_access.c - the access log and trusted proxies (SPEC §4): one
 * line per request with the client address; X-Forwarded-For is believed
 * only from a trusted proxy, and only as far as the chain of trusted
 * proxies goes; from anyone else the peer address is logged.  Clients
 * connect from 127.0.0.1 (trusted here) and 127.0.0.2 (not trusted).
 */
#include "srv.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One GET /healthz from source address src with an X-Forwarded-For
 * header (NULL: none); the status. */
static long get_from(struct srv *s, const char *src, const char *xff)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        fail_msg("bind %s: %s", src, strerror(errno));
    a.sin_port = htons((uint16_t)s->port);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        fail_msg("connect: %s", strerror(errno));
    char req[512], out[4096];
    int n = snprintf(req, sizeof(req),
                     "GET /healthz HTTP/1.1\r\nHost: x\r\n%s%s%s"
                     "Connection: close\r\n\r\n",
                     xff ? "X-Forwarded-For: " : "", xff ? xff : "",
                     xff ? "\r\n" : "");
    assert_int_equal(http_raw_send(fd, req, (size_t)n), 0);
    long got = http_raw_read(fd, out, sizeof(out), 5000);
    close(fd);
    return got > 0 ? http_raw_status(out) : -1;
}

/* The log holds an access line for /healthz naming client. */
static void expect_logged(struct srv *s, const char *client)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "access %s \"GET /healthz\" 200 ", client);
    for (int i = 0; i < 100 && !srv_log_has(s, needle); i++)
        http_sleep_ms(20);
    if (!srv_log_has(s, needle))
        fail_msg("no access line \"%s\" in %s", needle, s->log);
}

static void test_trusted_proxies(void **state)
{
    (void)state;
    struct srv s;
    const char *args[] = {"--access-log", "--trusted-proxies",
                          "127.0.0.1, 10.9.0.0/16", NULL};
    srv_up(&s, args);

    /* From a trusted proxy: the forwarded client. */
    assert_int_equal(get_from(&s, "127.0.0.1", "203.0.113.7"), 200);
    expect_logged(&s, "203.0.113.7");
    /* A chain: right to left past trusted proxies (10.9.x.x) to the
     * first address that is not one; what the client itself claimed
     * further left is not believed. */
    assert_int_equal(
        get_from(&s, "127.0.0.1", "198.51.100.1, 192.0.2.44, 10.9.3.4"), 200);
    expect_logged(&s, "192.0.2.44");
    assert_false(srv_log_has(&s, "access 198.51.100.1 "));
    /* From an untrusted peer: its own address, whatever it forwards. */
    assert_int_equal(get_from(&s, "127.0.0.2", "203.0.113.99"), 200);
    expect_logged(&s, "127.0.0.2");
    assert_false(srv_log_has(&s, "access 203.0.113.99 "));
    /* Garbage in the header from a trusted proxy: the proxy is logged. */
    assert_int_equal(get_from(&s, "127.0.0.1", "not-an-address"), 200);
    expect_logged(&s, "127.0.0.1");
    assert_int_equal(srv_stop(&s), 0);
    srv_fini(&s);
}

/* A target cannot forge a log line: it is logged as it arrived (an
 * escaped path is refused, 400 bad_uri, and still logged), and raw bytes
 * outside printable ASCII, quotes and backslashes are logged as %XX. */
static void test_log_escaping(void **state)
{
    (void)state;
    struct srv s;
    const char *args[] = {"--access-log", NULL};
    srv_up(&s, args);
    assert_int_equal(
        http_status(&s, "GET", "/x%0Aaccess%20forged%22q", NULL, NULL, 0), 400);
    for (int i = 0; i < 100 && !srv_log_has(&s, "access 127.0.0.1 \"GET /x");
         i++)
        http_sleep_ms(20);
    assert_true(srv_log_has(&s, "\"GET /x%0Aaccess%20forged%22q\" 400 "));
    assert_false(srv_log_has(&s, "\naccess forged"));
    /* Raw bytes libcurl would not send. */
    static const char raw[] =
        "GET /y\x01\"\\\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n";
    char out[2048];
    assert_true(http_raw_exchange(&s, raw, sizeof(raw) - 1, out, sizeof(out),
                                  5000) > 0);
    assert_int_equal(http_raw_status(out), 400);
    for (int i = 0; i < 100 && !srv_log_has(&s, "access 127.0.0.1 \"GET /y");
         i++)
        http_sleep_ms(20);
    assert_true(srv_log_has(&s, "\"GET /y%01%22%5C%C3%A9\" 400 "));
    assert_int_equal(srv_stop(&s), 0);
    srv_fini(&s);
}

static void test_no_access_log(void **state)
{
    (void)state;
    struct srv s;
    srv_up(&s, NULL);
    assert_int_equal(get_from(&s, "127.0.0.2", NULL), 200);
    http_sleep_ms(100);
    assert_false(srv_log_has(&s, " access "));
    assert_int_equal(srv_stop(&s), 0);
    srv_fini(&s);
}

static void test_bad_proxy_list(void **state)
{
    (void)state;
    struct srv s;
    srv_init(&s);
    const char *args[] = {"--trusted-proxies", "127.0.0.1/40", NULL};
    int rc = srv_start(&s, args, NULL);
    assert_int_equal(rc, 64);
    assert_true(srv_log_has(&s, "--trusted-proxies"));
    srv_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trusted_proxies),
        cmocka_unit_test(test_log_escaping),
        cmocka_unit_test(test_no_access_log),
        cmocka_unit_test(test_bad_proxy_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
