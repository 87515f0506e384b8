/*
 * test_http_systemd.c - socket activation: a listening socket passed by
 * systemd (LISTEN_FDS=1, LISTEN_PID, fd 3) is used instead of --listen,
 * and the server answers on it; a LISTEN_PID naming another process is
 * ignored (the socket is not taken); a passed fd 3 that is not a listening
 * stream socket (a file, a socket never listened on) ends the start with
 * exit 69 and a message naming it.
 */
#include "srv.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* A listening socket on 127.0.0.1, any port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    socklen_t sl = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Start the server with fd as its fd 3; other_pid: LISTEN_PID names some
 * other process instead of the server. */
static void start_activated(struct srv *s, int fd, int other_pid,
                            const char *listen)
{
    int logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    assert_true(logfd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(logfd, 1);
        dup2(logfd, 2);
        if (fd != 3) {
            dup2(fd, 3);
            close(fd);
        }
        char pidbuf[32];
        snprintf(pidbuf, sizeof(pidbuf), "%d",
                 other_pid ? (int)getppid() : (int)getpid());
        setenv("LISTEN_PID", pidbuf, 1);
        setenv("LISTEN_FDS", "1", 1);
        execl(s->bin, s->bin, "--listen", listen, "--data-dir", s->data,
              (char *)NULL);
        _exit(127);
    }
    close(logfd);
    s->pid = pid;
}

static void test_listen_fds(void **state)
{
    (void)state;
    struct srv s;
    srv_init(&s);
    int port;
    int fd = listener(&port);
    /* --listen names a port nobody uses: the passed socket must win. */
    start_activated(&s, fd, 0, "127.0.0.1:1");
    close(fd);
    s.port = port;
    assert_int_equal(srv_wait_ready(&s), 0);
    char g[HTTP_GUID_BUF];
    http_guid_rand(g);
    assert_int_equal(http_put(&s, g, "socket", 6, NULL), 201);
    struct http_resp r;
    assert_int_equal(http_get(&s, g, &r), 200);
    http_assert_bytes(r.body, r.body_len, "socket", 6,
                      "GET over the passed socket");
    http_resp_free(&r);
    assert_int_equal(srv_stop(&s), 0);
    srv_fini(&s);
}

static void test_listen_pid_mismatch(void **state)
{
    (void)state;
    struct srv s;
    srv_init(&s);
    int port;
    int fd = listener(&port);
    /* LISTEN_PID is not the server's: it listens on --listen instead. */
    start_activated(&s, fd, 1, "127.0.0.1:0");
    for (int i = 0; i < 500 && !srv_log_has(&s, "listening on 127.0.0.1:"); i++)
        usleep(20000);
    assert_true(srv_log_has(&s, "listening on 127.0.0.1:"));
    char line[64];
    snprintf(line, sizeof(line), "listening on 127.0.0.1:%d\n", port);
    assert_false(srv_log_has(&s, line));
    close(fd);
    assert_int_equal(srv_stop(&s), 0);
    srv_fini(&s);
}

/* fd 3 is not a listening socket: exit 69, the log says why. */
static void refused_fd(int fd, const char *what)
{
    struct srv s;
    srv_init(&s);
    start_activated(&s, fd, 0, "127.0.0.1:0");
    close(fd);
    int st = srv_wait(&s, 10000);
    if (st != 69)
        fail_msg("%s as fd 3: exit status %d, want 69", what, st);
    if (!srv_log_has(&s, "fd 3 is not a listening stream socket"))
        fail_msg("%s as fd 3: the log does not say fd 3 is not a listening "
                 "socket",
                 what);
    srv_fini(&s);
}

static void test_listen_fds_not_a_listener(void **state)
{
    (void)state;
    char path[] = "/tmp/blobd-systemd-XXXXXX";
    int f = mkstemp(path);
    assert_true(f >= 0);
    unlink(path);
    refused_fd(f, "a regular file");
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sock >= 0);
    refused_fd(sock, "a socket that never listened");
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(u >= 0);
    refused_fd(u, "a UDP socket");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_fds_not_a_listener),
        cmocka_unit_test(test_listen_fds),
        cmocka_unit_test(test_listen_pid_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
