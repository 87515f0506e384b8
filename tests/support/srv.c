/*
 * srv.c - see srv.h: a real blobd as a child process on 127.0.0.1 port 0,
 * and the HTTP client side of the integration tests (libcurl, plus raw
 * sockets for requests libcurl will not send).
 *
 * Invariants:
 *  S1. A started server's stdout and stderr go to s->log, opened O_APPEND,
 *      so a restart in the same dir appends; the port is read only from
 *      what this start wrote (the log's size before the fork is the start
 *      of the search), taking the last "listening on 127.0.0.1:" line.
 *  S2. The child dies with the test process (PR_SET_PDEATHSIG), so a test
 *      killed by a CTest timeout leaves no server behind.
 *  S3. Every request uses a fresh curl easy handle, no proxy, a 20 s
 *      timeout and no signals; only the final response's headers are kept.
 *  S4. srv_fini fails the test when the server's log holds a sanitizer
 *      report (ASan, UBSan, LSan, TSan), and keeps the temp dir.
 *
 * Thread rules: srv_* functions are called from the test's main thread;
 * http_* and http_raw_* may be called from several threads at once (curl
 * is initialised once, before the first request, under pthread_once),
 * except those that fail the test (http_*_ok, http_expect_*,
 * http_stats_num, http_metric_value): cmocka wants its main thread.  A
 * prober's thread only calls http_get_from.
 */
#include "srv.h"

#include "testutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "api.h"

extern char **environ;

#define SRV_START_TIMEOUT_MS 10000
#define SRV_READY_TIMEOUT_MS 10000
#define SRV_STOP_TIMEOUT_MS 20000
#define HTTP_TIMEOUT_S 20L
#define LISTEN_NEEDLE "listening on 127.0.0.1:"

/* ---- small helpers ---- */

static pthread_once_t srv_once = PTHREAD_ONCE_INIT;

static void srv_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        fprintf(stderr, "curl_global_init failed\n");
        abort();
    }
    /* A server that closes while we write must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
}

static void srv_global(void)
{
    pthread_once(&srv_once, srv_global_init);
}

uint64_t http_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void http_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int status_of(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return 255;
}

char *http_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t n = 0, cap = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (cap - n < 4096) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *q = realloc(p, ncap);
            if (!q) {
                free(p);
                fclose(f);
                return NULL;
            }
            p = q;
            cap = ncap;
        }
        size_t got = fread(p + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    p[n] = '\0';
    if (len)
        *len = n;
    return p;
}

/* Print the last part of the server log, for a failing start. */
static void srv_dump_log(struct srv *s)
{
    size_t n = 0;
    char *p = http_read_file(s->log, &n);
    if (!p) {
        fprintf(stderr, "(no server log at %s)\n", s->log);
        return;
    }
    size_t from = n > 4000 ? n - 4000 : 0;
    fprintf(stderr, "---- %s (tail) ----\n%s\n---- end of log ----\n", s->log,
            p + from);
    free(p);
}

/* ---- the server process ---- */

void srv_init(struct srv *s)
{
    srv_global();
    memset(s, 0, sizeof(*s));
    s->exit_status = -1;
    const char *bin = getenv("BLOBD_BIN");
    if (!bin || !*bin)
        fail_msg("BLOBD_BIN is not set: run this test through ctest, or set "
                 "BLOBD_BIN to the blobd binary");
    if (access(bin, X_OK) != 0)
        fail_msg("BLOBD_BIN=%s is not an executable: %s (is the server "
                 "built?)",
                 bin, strerror(errno));
    if (strlen(bin) >= sizeof(s->bin))
        fail_msg("BLOBD_BIN is too long");
    strcpy(s->bin, bin);

    char *dir = tu_mkdtemp("http");
    if (strlen(dir) >= sizeof(s->dir))
        fail_msg("temp dir path too long: %s", dir);
    strcpy(s->dir, dir);
    free(dir);
    snprintf(s->data, sizeof(s->data), "%s/data", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/blobd.log", s->dir);
}

/* The port from the last "listening on 127.0.0.1:<port>" line at or after
 * byte from of the log (S1); 0 if none yet. */
static int srv_find_port(struct srv *s, size_t from)
{
    size_t n = 0;
    char *p = http_read_file(s->log, &n);
    int port = 0;
    if (!p)
        return 0;
    if (from > n)
        from = 0; /* the log was replaced: read all of it */
    const char *q = p + from;
    for (;;) {
        const char *hit = strstr(q, LISTEN_NEEDLE);
        if (!hit)
            break;
        const char *d = hit + strlen(LISTEN_NEEDLE);
        long v = 0;
        const char *e = d;
        while (*e >= '0' && *e <= '9' && v < 100000)
            v = v * 10 + (*e++ - '0');
        /* Only a complete number: the line may still be being written. */
        if (e > d && *e != '\0' && v > 0 && v < 65536)
            port = (int)v;
        q = hit + 1;
    }
    free(p);
    return port;
}

/* Build the child's environment: ours, with extra entries replacing those
 * of the same name.  Returns a malloc'd array of borrowed strings. */
static char **srv_envp(const char *const *extra)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    while (extra && extra[k])
        k++;
    char **envp = calloc(n + k + 1, sizeof(*envp));
    if (!envp)
        return NULL;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int replaced = 0;
        for (size_t j = 0; j < k; j++) {
            if (strncmp(extra[j], environ[i], nl) == 0 && extra[j][nl] == '=')
                replaced = 1;
        }
        if (!replaced)
            envp[out++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        envp[out++] = (char *)extra[j];
    envp[out] = NULL;
    return envp;
}

static char **srv_argv(struct srv *s, const char *const *extra)
{
    size_t k = 0;
    while (extra && extra[k])
        k++;
    char **argv = calloc(k + 6, sizeof(*argv));
    if (!argv)
        return NULL;
    size_t i = 0;
    argv[i++] = s->bin;
    argv[i++] = (char *)"--listen";
    argv[i++] = (char *)"127.0.0.1:0";
    argv[i++] = (char *)"--data-dir";
    argv[i++] = s->data;
    for (size_t j = 0; j < k; j++)
        argv[i++] = (char *)extra[j];
    argv[i] = NULL;
    return argv;
}

/* In the child, after fork: only async-signal-safe calls. */
static void srv_child(int logfd, pid_t parent, char **argv, char **envp,
                      int nofile)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* S2 */
    if (getppid() != parent)
        _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0 && devnull != 0) {
        dup2(devnull, 0);
        close(devnull);
    }
    dup2(logfd, 1);
    dup2(logfd, 2);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    if (nofile > 0) {
        struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            static const char m[] = "srv: setrlimit(RLIMIT_NOFILE) failed\n";
            ssize_t w = write(2, m, sizeof(m) - 1);
            (void)w;
            _exit(127);
        }
    }
    execve(argv[0], argv, envp);
    static const char msg[] = "srv: execve of the server failed\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(127);
}

int srv_start(struct srv *s, const char *const *argv, const char *const *env)
{
    srv_global();
    if (s->pid > 0)
        fail_msg("srv_start: a server is already running (pid %d)",
                 (int)s->pid);
    int logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0)
        fail_msg("open %s: %s", s->log, strerror(errno));
    struct stat st;
    size_t from = 0;
    if (fstat(logfd, &st) == 0)
        from = (size_t)st.st_size;
    char **av = srv_argv(s, argv);
    char **ev = srv_envp(env);
    if (!av || !ev)
        fail_msg("srv_start: out of memory");

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0)
        srv_child(logfd, parent, av, ev, s->nofile);
    close(logfd);
    free(av);
    free(ev);
    s->pid = pid;
    s->port = 0;
    s->exit_status = -1;

    uint64_t deadline = http_mono_ms() + SRV_START_TIMEOUT_MS;
    for (;;) {
        int port = srv_find_port(s, from);
        if (port > 0) {
            s->port = port;
            return 0;
        }
        int ws;
        pid_t w = waitpid(pid, &ws, WNOHANG);
        if (w == pid) {
            s->pid = 0;
            s->exit_status = status_of(ws);
            fprintf(stderr,
                    "srv_start: the server exited with status %d "
                    "before listening\n",
                    s->exit_status);
            srv_dump_log(s);
            return s->exit_status > 0 ? s->exit_status : -1;
        }
        if (http_mono_ms() > deadline) {
            fprintf(stderr, "srv_start: no \"%s\" line within %d ms\n",
                    LISTEN_NEEDLE, SRV_START_TIMEOUT_MS);
            srv_dump_log(s);
            return -1;
        }
        http_sleep_ms(5);
    }
}

int srv_wait_ready(struct srv *s)
{
    uint64_t deadline = http_mono_ms() + SRV_READY_TIMEOUT_MS;
    for (;;) {
        long st = http_status(s, "GET", "/readyz", NULL, NULL, 0);
        if (st == 200)
            return 0;
        if (s->pid > 0) {
            int ws;
            if (waitpid(s->pid, &ws, WNOHANG) == s->pid) {
                s->pid = 0;
                s->exit_status = status_of(ws);
                return -1;
            }
        }
        if (http_mono_ms() > deadline)
            return -1;
        http_sleep_ms(10);
    }
}

void srv_up(struct srv *s, const char *const *argv)
{
    srv_init(s);
    int rc = srv_start(s, argv, NULL);
    if (rc != 0)
        fail_msg("the server did not start (%s %d); log in %s",
                 rc > 0 ? "exit status" : "rc", rc, s->log);
    if (srv_wait_ready(s) != 0) {
        srv_dump_log(s);
        fail_msg("the server on port %d did not become ready within %d ms",
                 s->port, SRV_READY_TIMEOUT_MS);
    }
}

void srv_restart(struct srv *s, const char *const *argv, const char *const *env)
{
    int rc = srv_start(s, argv, env);
    if (rc != 0)
        fail_msg("restart: srv_start %d (log %s)", rc, s->log);
    if (srv_wait_ready(s) != 0) {
        srv_dump_log(s);
        fail_msg("restart: not ready (log %s)", s->log);
    }
}

int srv_wait(struct srv *s, int timeout_ms)
{
    if (s->pid <= 0)
        return s->exit_status;
    uint64_t deadline =
        http_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int ws;
        pid_t w = waitpid(s->pid, &ws, WNOHANG);
        if (w == s->pid) {
            s->pid = 0;
            s->exit_status = status_of(ws);
            return s->exit_status;
        }
        if (w < 0 && errno != EINTR) {
            s->pid = 0;
            return -1;
        }
        if (http_mono_ms() >= deadline)
            return -1;
        http_sleep_ms(5);
    }
}

void srv_signal(struct srv *s, int sig)
{
    if (s->pid > 0)
        kill(s->pid, sig);
}

void srv_kill(struct srv *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    int ws;
    while (waitpid(s->pid, &ws, 0) < 0 && errno == EINTR)
        ;
    s->exit_status = status_of(ws);
    s->pid = 0;
}

int srv_stop(struct srv *s)
{
    if (s->pid <= 0)
        return s->exit_status;
    kill(s->pid, SIGTERM);
    int st = srv_wait(s, SRV_STOP_TIMEOUT_MS);
    if (st < 0 && s->pid > 0) {
        fprintf(stderr, "srv_stop: no exit %d ms after SIGTERM: SIGKILL\n",
                SRV_STOP_TIMEOUT_MS);
        srv_kill(s);
        st = s->exit_status;
    }
    if (st >= 128) { /* killed by a signal: show why */
        fprintf(stderr, "srv_stop: the server died with status %d\n", st);
        srv_dump_log(s);
    }
    return st;
}

void srv_fini(struct srv *s)
{
    if (s->pid > 0)
        srv_kill(s);
    /* S4: a sanitizer report in the server's log fails the test, even if
     * the server kept running. */
    static const char *const reports[] = {
        "ERROR: AddressSanitizer", "WARNING: ThreadSanitizer",
        "ERROR: LeakSanitizer", "runtime error:"};
    int bad = 0;
    for (size_t i = 0; s->dir[0] && i < sizeof(reports) / sizeof(*reports); i++)
        bad |= srv_log_has(s, reports[i]);
    if (bad) {
        srv_dump_log(s);
        fprintf(stderr, "srv: keeping %s\n", s->dir);
        s->dir[0] = '\0';
        fail_msg("the server's log holds a sanitizer report");
    }
    if (s->dir[0]) {
        if (getenv("BLOBD_KEEP_TMP"))
            fprintf(stderr, "srv: keeping %s\n", s->dir);
        else
            tu_rmtree(strdup(s->dir));
        s->dir[0] = '\0';
    }
}

int srv_log_has(struct srv *s, const char *needle)
{
    size_t n = 0;
    char *p = http_read_file(s->log, &n);
    if (!p)
        return 0;
    int hit = memmem(p, n, needle, strlen(needle)) != NULL;
    free(p);
    return hit;
}

/* ---- HTTP with libcurl ---- */

struct grow {
    char *p;
    size_t n, cap;
    int oom;
};

static int grow_add(struct grow *g, const void *d, size_t n)
{
    if (g->n + n + 1 > g->cap) {
        size_t ncap = g->cap ? g->cap : 1024;
        while (ncap < g->n + n + 1)
            ncap *= 2;
        char *q = realloc(g->p, ncap);
        if (!q) {
            g->oom = 1;
            return -1;
        }
        g->p = q;
        g->cap = ncap;
    }
    memcpy(g->p + g->n, d, n);
    g->n += n;
    g->p[g->n] = '\0';
    return 0;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    return grow_add(ud, p, sz * nm) == 0 ? sz * nm : 0;
}

/* S3: a status line starts a new header block (interim 1xx, redirects). */
static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct grow *g = ud;
    size_t n = sz * nm;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
        g->n = 0;
    return grow_add(g, p, n) == 0 ? n : 0;
}

struct upload {
    const char *p;
    size_t len, off, chunk;
};

static size_t on_read(char *buf, size_t sz, size_t nm, void *ud)
{
    struct upload *u = ud;
    size_t n = sz * nm;
    if (n > u->chunk)
        n = u->chunk;
    if (n > u->len - u->off)
        n = u->len - u->off;
    memcpy(buf, u->p + u->off, n);
    u->off += n;
    return n;
}

static int has_header(const char *const *headers, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; headers && headers[i]; i++) {
        if (strncasecmp(headers[i], name, nl) == 0 && headers[i][nl] == ':')
            return 1;
    }
    return 0;
}

/* Append one header line to *l; 0 or -1 (ENOMEM). */
static int add_header(struct curl_slist **l, const char *h)
{
    struct curl_slist *t = curl_slist_append(*l, h);
    if (!t)
        return -1;
    *l = t;
    return 0;
}

/* The caller's headers, plus "Expect:" and "Content-Type:" (suppressing
 * curl's defaults) with a body, and chunked framing when asked.  *out may
 * stay NULL (no headers); returns 0 or -1 (ENOMEM). */
static int make_headers(const char *const *headers, int has_body, int chunked,
                        struct curl_slist **out)
{
    struct curl_slist *l = NULL;
    int rc = 0;
    for (size_t i = 0; headers && headers[i] && rc == 0; i++)
        rc = add_header(&l, headers[i]);
    if (rc == 0 && has_body && !has_header(headers, "Expect"))
        rc = add_header(&l, "Expect:");
    if (rc == 0 && has_body && !has_header(headers, "Content-Type"))
        rc = add_header(&l, "Content-Type:");
    if (rc == 0 && chunked && !has_header(headers, "Transfer-Encoding"))
        rc = add_header(&l, "Transfer-Encoding: chunked");
    if (rc != 0) {
        curl_slist_free_all(l);
        l = NULL;
    }
    *out = l;
    return rc;
}

/*
 * One exchange.  body != NULL: sent with Content-Length (up == NULL) or
 * chunked from up.  On a transport error the status is 0, except when the
 * server answered before we finished sending (a send error after a
 * complete status line): then its status is kept.
 */
static int http_do(struct srv *s, const char *method, const char *path,
                   const char *const *headers, const void *body,
                   size_t body_len, struct upload *up, struct http_resp *r)
{
    int rc = -1;
    CURL *c = NULL;
    struct curl_slist *hl = NULL;
    struct grow hb = {0}, bb = {0};
    char *url = NULL;

    srv_global();
    memset(r, 0, sizeof(*r));
    if (asprintf(&url, "http://127.0.0.1:%d%s", s->port, path) < 0) {
        url = NULL;
        goto out;
    }
    c = curl_easy_init();
    if (!c)
        goto out;
    int has_body = body != NULL || up != NULL;
    if (make_headers(headers, has_body, up != NULL, &hl) != 0)
        goto out;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, HTTP_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);

    if (up) {
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, up);
        if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
        } else {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            if (strcmp(method, "PUT") != 0)
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        }
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }

    CURLcode cc = curl_easy_perform(c);
    if (hb.oom || bb.oom)
        goto out;
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (cc == CURLE_OK) {
        r->status = code;
    } else {
        int early = (cc == CURLE_SEND_ERROR) && code > 0;
        r->status = early ? code : 0;
        fprintf(stderr, "http %s %s: %s%s\n", method, path,
                curl_easy_strerror(cc),
                early ? " (after the server answered)" : "");
    }
    if (!bb.p && grow_add(&bb, "", 0) != 0)
        goto out;
    if (!hb.p && grow_add(&hb, "", 0) != 0)
        goto out;
    r->body = bb.p;
    r->body_len = bb.n;
    r->headers = hb.p;
    bb.p = hb.p = NULL;
    rc = 0;
out:
    free(bb.p);
    free(hb.p);
    curl_slist_free_all(hl);
    if (c)
        curl_easy_cleanup(c);
    free(url);
    return rc;
}

int http_req(struct srv *s, const char *method, const char *path,
             const char *const *headers, const void *body, size_t body_len,
             struct http_resp *r)
{
    return http_do(s, method, path, headers, body, body_len, NULL, r);
}

int http_req_chunked(struct srv *s, const char *method, const char *path,
                     const void *body, size_t len, size_t chunk,
                     struct http_resp *r)
{
    struct upload up = {body, len, 0, chunk ? chunk : 65536};
    return http_do(s, method, path, NULL, NULL, 0, &up, r);
}

int http_header(const struct http_resp *r, const char *name, char *buf,
                size_t cap)
{
    size_t nl = strlen(name);
    const char *p = r->headers;
    if (!p)
        return 0;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e = p + ll;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t vl = (size_t)(e - v);
            if (cap) {
                if (vl >= cap)
                    vl = cap - 1;
                memcpy(buf, v, vl);
                buf[vl] = '\0';
            }
            return 1;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return 0;
}

void http_resp_free(struct http_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

long http_status(struct srv *s, const char *method, const char *path,
                 const char *const *headers, const void *body, size_t body_len)
{
    struct http_resp r;
    if (http_req(s, method, path, headers, body, body_len, &r) != 0)
        return -1;
    long st = r.status;
    http_resp_free(&r);
    return st;
}

long http_put(struct srv *s, const char *guid, const void *body, size_t len,
              char *etag)
{
    char path[256];
    struct http_resp r;
    snprintf(path, sizeof(path), "/blobs/%s", guid);
    if (http_req(s, "PUT", path, NULL, body ? body : "", len, &r) != 0)
        return -1;
    long st = r.status;
    if (etag && !http_header(&r, "ETag", etag, API_ETAG_MAX))
        etag[0] = '\0';
    http_resp_free(&r);
    return st;
}

long http_get(struct srv *s, const char *guid, struct http_resp *r)
{
    char path[256];
    snprintf(path, sizeof(path), "/blobs/%s", guid);
    if (http_req(s, "GET", path, NULL, NULL, 0, r) != 0)
        return -1;
    return r->status;
}

void http_fill(void *buf, size_t len, uint64_t seed)
{
    uint8_t *p = buf;
    uint64_t r = 0;
    for (size_t i = 0; i < len; i++) {
        if ((i & 7) == 0) {
            uint64_t st = seed * 0x9e3779b97f4a7c15ull ^ (uint64_t)(i >> 3);
            r = tu_rand(&st);
        }
        p[i] = (uint8_t)(r >> (8 * (i & 7)));
    }
}

/* ---- test helpers ---- */

void http_guid_rand(char out[HTTP_GUID_BUF])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t g[16];
    size_t got = 0;
    while (got < sizeof(g)) {
        ssize_t n = getrandom(g + got, sizeof(g) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail_msg("getrandom: %s", strerror(errno));
        }
        got += (size_t)n;
    }
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[g[i] >> 4];
        out[2 * i + 1] = hex[g[i] & 15];
    }
    out[32] = '\0';
}

long http_req_ok(struct srv *s, const char *method, const char *path,
                 const char *const *headers, const void *body, size_t body_len,
                 struct http_resp *r)
{
    memset(r, 0, sizeof(*r));
    if (http_req(s, method, path, headers, body, body_len, r) != 0)
        fail_msg("%s %s: the request could not be made", method, path);
    return r->status;
}

void http_expect_status(const struct http_resp *r, long want, const char *what)
{
    if (r->status != want)
        fail_msg("%s: status %ld, want %ld; body: %.300s", what, r->status,
                 want, r->body ? r->body : "");
}

void http_expect_error(const struct http_resp *r, long status, const char *code,
                       const char *what)
{
    char label[256], ct[256];
    if (what)
        snprintf(label, sizeof(label), "%s", what);
    else
        snprintf(label, sizeof(label), "error %s", code);
    http_expect_status(r, status, label);
    if (!http_header(r, "Content-Type", ct, sizeof(ct)))
        fail_msg("%s: status %ld (%s): no Content-Type", label, status, code);
    if (strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))
        fail_msg("%s: status %ld (%s): Content-Type \"%s\", not "
                 "application/json",
                 label, status, code, ct);
    cJSON *j = cJSON_ParseWithLength(r->body ? r->body : "", r->body_len);
    if (!j)
        fail_msg("%s: status %ld (%s): body is not JSON: %.300s", label, status,
                 code, r->body ? r->body : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    int ok_e = cJSON_IsString(e) && strcmp(e->valuestring, code) == 0;
    int ok_m = cJSON_IsString(m) && m->valuestring[0] != '\0';
    char *txt = ok_e && ok_m ? NULL : cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!ok_e || !ok_m) {
        char copy[400];
        snprintf(copy, sizeof(copy), "%s", txt ? txt : "?");
        free(txt);
        fail_msg("%s: status %ld: want {\"error\":\"%s\",\"message\":...}, "
                 "got %s",
                 label, status, code, copy);
    }
}

void http_expect_retry_after(const struct http_resp *r, const char *what)
{
    char v[32];
    if (!http_header(r, "Retry-After", v, sizeof(v)) || atoi(v) < 1)
        fail_msg("%s: no Retry-After on a %ld", what, r->status);
}

void http_etag_of(const struct http_resp *r, char *out, const char *what)
{
    if (!http_header(r, "ETag", out, API_ETAG_MAX))
        fail_msg("%s: no ETag header", what);
    if (out[0] != '"')
        fail_msg("%s: ETag %s is not a quoted strong tag", what, out);
}

/* "GET <guid>", with " (what)" when what is not NULL. */
static void get_label(char *buf, size_t cap, const char *guid, const char *what)
{
    if (what)
        snprintf(buf, cap, "GET %s (%s)", guid, what);
    else
        snprintf(buf, cap, "GET %s", guid);
}

void http_expect_data(struct srv *s, const char *guid, const void *data,
                      size_t len, const char *etag, const char *what)
{
    struct http_resp r;
    char label[512], et[API_ETAG_MAX];
    get_label(label, sizeof(label), guid, what);
    memset(&r, 0, sizeof(r));
    long st = http_get(s, guid, &r);
    if (st != 200)
        fail_msg("%s: status %ld, want 200; body %.200s", label, st,
                 r.body ? r.body : "");
    if (r.body_len != len || (len && memcmp(r.body, data, len) != 0))
        fail_msg("%s: %zu bytes that differ from the %zu expected", label,
                 r.body_len, len);
    if (etag) {
        if (!http_header(&r, "ETag", et, sizeof(et)))
            fail_msg("%s: no ETag header, want %s", label, etag);
        if (strcmp(et, etag) != 0)
            fail_msg("%s: ETag %s, want %s", label, et, etag);
    }
    http_resp_free(&r);
}

void http_expect_blob(struct srv *s, const char *guid, size_t len,
                      uint64_t seed, const char *etag, const char *what)
{
    uint8_t *want = malloc(len ? len : 1);
    if (!want)
        fail_msg("out of memory for %zu bytes", len);
    http_fill(want, len, seed);
    http_expect_data(s, guid, want, len, etag, what);
    free(want);
}

void http_expect_absent(struct srv *s, const char *guid, const char *what)
{
    struct http_resp r;
    char label[512];
    get_label(label, sizeof(label), guid, what);
    memset(&r, 0, sizeof(r));
    long st = http_get(s, guid, &r);
    if (st != 404)
        fail_msg("%s: status %ld, want 404; %zu bytes", label, st, r.body_len);
    http_resp_free(&r);
}

void http_assert_header(const struct http_resp *r, const char *name,
                        const char *want)
{
    char v[1024];
    if (!http_header(r, name, v, sizeof(v)))
        fail_msg("status %ld: no %s header (want \"%s\")", r->status, name,
                 want);
    if (strcmp(v, want) != 0)
        fail_msg("status %ld: %s is \"%s\", want \"%s\"", r->status, name, v,
                 want);
}

void http_assert_bytes(const void *got, size_t got_len, const void *want,
                       size_t want_len, const char *what)
{
    const uint8_t *g = got, *w = want;
    size_t n = got_len < want_len ? got_len : want_len;
    for (size_t i = 0; i < n; i++) {
        if (g[i] != w[i])
            fail_msg("%s: byte %zu is 0x%02x, want 0x%02x (lengths %zu, "
                     "want %zu)",
                     what, i, g[i], w[i], got_len, want_len);
    }
    if (got_len != want_len)
        fail_msg("%s: %zu bytes, want %zu (the common prefix matches)", what,
                 got_len, want_len);
}

/* ---- raw sockets ---- */

int http_raw_connect(struct srv *s)
{
    srv_global();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)s->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int http_raw_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* How many bytes of buf[0..n) make up complete responses, skipping 1xx
 * interim answers; 0 while the final one is incomplete. */
static size_t raw_complete(const char *buf, size_t n)
{
    size_t start = 0;
    for (;;) {
        const char *h = buf + start;
        const char *end = memmem(h, n - start, "\r\n\r\n", 4);
        if (!end)
            return 0;
        size_t hdr_end = (size_t)(end - buf) + 4;
        int st = http_raw_status(h);
        if (st >= 100 && st < 200) {
            start = hdr_end;
            continue;
        }
        if (st == 204 || st == 304)
            return hdr_end;
        /* Content-Length within this header block. */
        const char *p = h;
        long cl = -1;
        while (p < end) {
            const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
            if (!eol)
                break;
            if (strncasecmp(p, "Content-Length:", 15) == 0)
                cl = strtol(p + 15, NULL, 10);
            p = eol + 2;
        }
        if (cl < 0)
            return 0; /* until EOF */
        return n - hdr_end >= (size_t)cl ? hdr_end + (size_t)cl : 0;
    }
}

long http_raw_read(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    uint64_t deadline = http_mono_ms() + (uint64_t)timeout_ms;
    if (cap == 0)
        return -1;
    buf[0] = '\0';
    while (n + 1 < cap) {
        uint64_t t = http_mono_ms();
        if (t >= deadline)
            break;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(deadline - t));
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pr == 0)
            break;
        ssize_t got = recv(fd, buf + n, cap - 1 - n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (n == 0)
                return -1;
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        buf[n] = '\0';
        if (raw_complete(buf, n))
            break;
    }
    buf[n] = '\0';
    return (long)n;
}

int http_raw_status(const char *buf)
{
    if (strncmp(buf, "HTTP/1.", 7) != 0 || !buf[7] || buf[8] != ' ')
        return 0;
    const char *d = buf + 9;
    if (!isdigit((unsigned char)d[0]) || !isdigit((unsigned char)d[1]) ||
        !isdigit((unsigned char)d[2]))
        return 0;
    return (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
}

long http_raw_exchange(struct srv *s, const void *req, size_t len, char *out,
                       size_t cap, int timeout_ms)
{
    int fd = http_raw_connect(s);
    if (fd < 0)
        return -1;
    long n = -1;
    if (http_raw_send(fd, req, len) == 0)
        n = http_raw_read(fd, out, cap, timeout_ms);
    close(fd);
    return n;
}

int http_raw_parse(const char *buf, size_t len, struct http_resp *r)
{
    size_t start = 0;
    memset(r, 0, sizeof(*r));
    for (;;) {
        const char *end = memmem(buf + start, len - start, "\r\n\r\n", 4);
        if (!end)
            return -1;
        size_t hdr_end = (size_t)(end - buf) + 4;
        int st = http_raw_status(buf + start);
        if (st >= 100 && st < 200) {
            start = hdr_end;
            continue;
        }
        r->status = st;
        r->headers = strndup(buf + start, hdr_end - start);
        r->body_len = len - hdr_end;
        r->body = malloc(r->body_len + 1);
        if (!r->headers || !r->body) {
            http_resp_free(r);
            return -1;
        }
        memcpy(r->body, buf + hdr_end, r->body_len);
        r->body[r->body_len] = '\0';
        return 0;
    }
}

/* ---- the server process seen from /proc ---- */

int srv_fd_count(struct srv *s)
{
    char path[64];
    if (s->pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)s->pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

long srv_rss_kib(struct srv *s)
{
    char path[64];
    if (s->pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)s->pid);
    char *p = http_read_file(path, NULL);
    if (!p)
        return -1;
    long kib = -1;
    const char *v = strstr(p, "\nVmRSS:");
    if (v)
        kib = strtol(v + 7, NULL, 10);
    free(p);
    return kib;
}

/* ---- several client addresses ---- */

#define RAW_CONNECT_TIMEOUT_MS 5000
#define RAW_FETCH_CAP (4u << 20) /* an answer read by http_get_from_resp */

/* A TCP connection to the server from src_ip (NULL: unbound), given up
 * after timeout_ms; blocking once connected.  fd, or -1 with errno. */
static int raw_connect(struct srv *s, const char *src_ip, int timeout_ms)
{
    srv_global();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (src_ip) {
        struct sockaddr_in b;
        memset(&b, 0, sizeof(b));
        b.sin_family = AF_INET;
        if (inet_pton(AF_INET, src_ip, &b.sin_addr) != 1) {
            errno = EINVAL;
            goto fail;
        }
#ifdef IP_BIND_ADDRESS_NO_PORT
        /* the port is picked at connect, per destination: thousands of
         * connections from one address do not use up the port range */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
        if (bind(fd, (struct sockaddr *)&b, sizeof(b)) != 0)
            goto fail;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)s->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (errno != EINPROGRESS)
            goto fail;
        uint64_t deadline = http_mono_ms() + (uint64_t)timeout_ms;
        for (;;) {
            uint64_t t = http_mono_ms();
            if (t >= deadline) {
                errno = ETIMEDOUT;
                goto fail;
            }
            struct pollfd pf = {fd, POLLOUT, 0};
            int pr = poll(&pf, 1, (int)(deadline - t));
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr < 0)
                goto fail;
            if (pr > 0)
                break;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            goto fail;
        if (err != 0) {
            errno = err;
            goto fail;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
        goto fail;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int http_raw_connect_from(struct srv *s, const char *src_ip)
{
    return raw_connect(s, src_ip, RAW_CONNECT_TIMEOUT_MS);
}

long http_raw_wait_eof(int fd, int timeout_ms)
{
    uint64_t t0 = http_mono_ms();
    uint64_t deadline = t0 + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    char buf[4096];
    for (;;) {
        uint64_t t = http_mono_ms();
        if (t >= deadline)
            return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(deadline - t));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return -1;
        if (pr == 0)
            return -1;
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            continue; /* an answer before the close: dropped */
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        /* EOF, or ECONNRESET and the like: closed */
        return (long)(http_mono_ms() - t0);
    }
}

long http_get_from_resp(struct srv *s, const char *src_ip, const char *path,
                        int timeout_ms, struct http_resp *r)
{
    uint64_t t0 = http_mono_ms();
    long st = 0;
    char *buf = NULL, *req = NULL;
    memset(r, 0, sizeof(*r));
    int fd = raw_connect(s, src_ip, timeout_ms);
    if (fd < 0)
        return 0;
    size_t rl = strlen(path) + 128;
    req = malloc(rl);
    buf = malloc(RAW_FETCH_CAP);
    if (!req || !buf)
        goto out;
    snprintf(req, rl,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: "
             "close\r\n\r\n",
             path, s->port);
    if (http_raw_send(fd, req, strlen(req)) != 0)
        goto out;
    long left = (long)timeout_ms - (long)(http_mono_ms() - t0);
    long n = http_raw_read(fd, buf, RAW_FETCH_CAP, left > 1 ? (int)left : 1);
    if (n <= 0 || http_raw_parse(buf, (size_t)n, r) != 0)
        goto out;
    char cl[32];
    if (http_header(r, "Content-Length", cl, sizeof(cl)) &&
        r->body_len < (size_t)strtoull(cl, NULL, 10)) {
        http_resp_free(r); /* cut short */
        goto out;
    }
    st = r->status;
out:
    if (st == 0)
        http_resp_free(r);
    free(buf);
    free(req);
    close(fd);
    return st;
}

long http_get_from(struct srv *s, const char *src_ip, const char *path,
                   int timeout_ms, long *ms)
{
    struct http_resp r;
    uint64_t t0 = http_mono_ms();
    long st = http_get_from_resp(s, src_ip, path, timeout_ms, &r);
    http_resp_free(&r);
    if (ms)
        *ms = (long)(http_mono_ms() - t0);
    return st;
}

double http_stats_num(struct srv *s, const char *src_ip, const char *path)
{
    struct http_resp r;
    char key[128], shown[200];
    const char *from = src_ip ? src_ip : "127.0.0.1";
    long st = http_get_from_resp(s, src_ip, "/admin/stats", 10000, &r);
    if (st != 200) {
        snprintf(shown, sizeof(shown), "%s", r.body ? r.body : "");
        http_resp_free(&r);
        fail_msg("GET /admin/stats from %s: status %ld (0: no answer); %s",
                 from, st, shown);
    }
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    http_resp_free(&r);
    if (!j)
        fail_msg("GET /admin/stats from %s: the body is not JSON", from);
    const cJSON *cur = j;
    for (const char *p = path; cur && *p;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(key) || !cJSON_IsObject(cur)) {
            cur = NULL;
            break;
        }
        memcpy(key, p, n);
        key[n] = '\0';
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
        p += n;
        if (*p == '.')
            p++;
    }
    if (!cJSON_IsNumber(cur)) {
        char *txt = cur ? cJSON_PrintUnformatted(cur) : NULL;
        snprintf(shown, sizeof(shown), "%s", txt ? txt : "absent");
        free(txt);
        cJSON_Delete(j);
        fail_msg("/admin/stats: %s is not a number (%s)", path, shown);
    }
    double v = cur->valuedouble;
    cJSON_Delete(j);
    return v;
}

int http_metric_value(struct srv *s, const char *src_ip, const char *series,
                      double *out)
{
    struct http_resp r;
    long st = http_get_from_resp(s, src_ip, "/metrics", 10000, &r);
    if (st != 200) {
        http_resp_free(&r);
        fail_msg("GET /metrics from %s: status %ld (0: no answer)",
                 src_ip ? src_ip : "127.0.0.1", st);
    }
    size_t sl = strlen(series);
    int found = 0;
    for (const char *p = r.body; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, series, sl) == 0 && p[sl] == ' ') {
            if (out)
                *out = strtod(p + sl + 1, NULL);
            found = 1;
            break;
        }
        p = eol ? eol + 1 : NULL;
    }
    http_resp_free(&r);
    return found;
}

/* ---- the prober ---- */

#define PROBE_EVERY_MS 100
#define PROBE_TIMEOUT_MS 5000

static void *prober_main(void *arg)
{
    struct http_prober *p = arg;
    while (!atomic_load(&p->stop)) {
        uint64_t t0 = http_mono_ms();
        long ms = 0;
        long st =
            http_get_from(p->s, p->src_ip, p->path, PROBE_TIMEOUT_MS, &ms);
        p->probes++;
        if (ms > p->max_ms)
            p->max_ms = ms;
        if (st != 200) {
            p->fails++;
            fprintf(stderr, "prober: GET %s from %s: status %ld after %ld ms\n",
                    p->path, p->src_ip, st, ms);
        }
        while (!atomic_load(&p->stop) && http_mono_ms() < t0 + PROBE_EVERY_MS)
            http_sleep_ms(5);
    }
    return NULL;
}

void http_prober_start(struct http_prober *p, struct srv *s, const char *src_ip,
                       const char *path)
{
    srv_global();
    memset(p, 0, sizeof(*p));
    p->s = s;
    snprintf(p->src_ip, sizeof(p->src_ip), "%s", src_ip);
    snprintf(p->path, sizeof(p->path), "%s", path);
    atomic_init(&p->stop, 0);
    int rc = pthread_create(&p->thread, NULL, prober_main, p);
    if (rc != 0)
        fail_msg("prober: pthread_create: %s", strerror(rc));
    p->running = 1;
}

long http_prober_stop(struct http_prober *p, long *max_ms, long *fails)
{
    if (p->running) {
        atomic_store(&p->stop, 1);
        pthread_join(p->thread, NULL);
        p->running = 0;
    }
    if (max_ms)
        *max_ms = p->max_ms;
    if (fails)
        *fails = p->fails;
    return p->probes;
}
