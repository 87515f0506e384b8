/*
 * test_http_systemd.c - socket activation: a listening socket passed by
 * systemd (LISTEN_FDS=1, LISTEN_PID, fd 3) is used instead of --listen,
 * and the server answers on it; a LISTEN_PID naming another process is
 * ignored (the socket is not taken).
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_fds),
        cmocka_unit_test(test_listen_pid_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
