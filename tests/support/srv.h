/*
 * srv.h - integration test support: run a real blobd on 127.0.0.1 port 0
 * in its own temp dir, and talk to it with libcurl.
 *
 * A server is started as a child process (fork + exec of the blobd binary
 * named by $BLOBD_BIN, which CTest sets) with --listen 127.0.0.1:0, a data
 * dir inside the test's temp dir, and its stderr sent to a log file there.
 * The port is read from the log line "listening on 127.0.0.1:<port>".
 * Every test gets its own temp dir (tu_mkdtemp), so tests run in parallel
 * under ctest -j.  Requests have a 20 s timeout.
 */
#ifndef BLOBD_SRV_H
#define BLOBD_SRV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct srv {
    pid_t pid; /* 0 when not running */
    int port;
    char dir[512];   /* the test's temp dir (owned) */
    char data[600];  /* dir/data: the data dir */
    char log[600];   /* dir/blobd.log: the server's stderr */
    char bin[512];   /* the binary */
    int exit_status; /* after srv_stop/srv_wait: exit code, or 128+sig */
    int nofile;      /* > 0: the child's RLIMIT_NOFILE {nofile, nofile}; set it
                      * after srv_init (which zeroes it) and before srv_start */
};

/* Make the temp dir; no server yet.  Aborts the test on failure. */
void srv_init(struct srv *s);
/* Start blobd with extra argv (NULL-terminated; may be NULL) and extra
 * environment entries "NAME=value" (NULL-terminated; may be NULL).
 * Waits until the port is known.  Returns 0, or the server's exit status
 * (> 0) if it exited before listening, or -1 on a timeout (10 s). */
int srv_start(struct srv *s, const char *const *argv, const char *const *env);
/* Wait until GET /readyz answers 200 (10 s); 0 or -1. */
int srv_wait_ready(struct srv *s);
/* srv_init + srv_start + srv_wait_ready; aborts the test on failure. */
void srv_up(struct srv *s, const char *const *argv);
/* srv_start + srv_wait_ready in the same dir (after srv_stop or srv_kill),
 * with the same conventions as srv_start; fails the test ("restart: ...")
 * when the server does not start or does not become ready. */
void srv_restart(struct srv *s, const char *const *argv,
                 const char *const *env);
/* SIGTERM, wait for exit (20 s, then SIGKILL); returns the exit status. */
int srv_stop(struct srv *s);
/* SIGKILL, reap. */
void srv_kill(struct srv *s);
/* Send a signal without waiting. */
void srv_signal(struct srv *s, int sig);
/* Wait up to timeout_ms for the child to exit: its status, or -1. */
int srv_wait(struct srv *s, int timeout_ms);
/* Stop if running and remove the temp dir. */
void srv_fini(struct srv *s);
/* 1 if the log file contains needle. */
int srv_log_has(struct srv *s, const char *needle);
/* The running server's open descriptors (entries of /proc/<pid>/fd), or
 * -1 when they cannot be read. */
int srv_fd_count(struct srv *s);
/* The running server's VmRSS in KiB (/proc/<pid>/status), or -1. */
long srv_rss_kib(struct srv *s);

/* One HTTP exchange. */
struct http_resp {
    long status;
    char *body; /* NUL-terminated as well; owned */
    size_t body_len;
    char *headers; /* raw header block of the final response; owned */
};

/* The value of a response header (case-insensitive name) copied into buf;
 * 1 if found. */
int http_header(const struct http_resp *r, const char *name, char *buf,
                size_t cap);
void http_resp_free(struct http_resp *r);

/*
 * Send method to http://127.0.0.1:<port><path> with extra headers
 * ("Name: value", NULL-terminated; may be NULL) and a body (NULL = none;
 * body_len bytes are sent with Content-Length).  Returns 0 with *r filled
 * (status 0 if the connection failed or was closed early), -1 otherwise.
 */
int http_req(struct srv *s, const char *method, const char *path,
             const char *const *headers, const void *body, size_t body_len,
             struct http_resp *r);
/* Convenience: the status only (body and headers dropped). */
long http_status(struct srv *s, const char *method, const char *path,
                 const char *const *headers, const void *body, size_t body_len);
/* PUT /blobs/<guid> with a body; returns the status, copies ETag if etag
 * is not NULL (API_ETAG_MAX bytes). */
long http_put(struct srv *s, const char *guid, const void *body, size_t len,
              char *etag);
/* GET /blobs/<guid>; returns the status and the body (owned by *r). */
long http_get(struct srv *s, const char *guid, struct http_resp *r);

/* Deterministic test data: byte i of blob seed is a function of (seed, i). */
void http_fill(void *buf, size_t len, uint64_t seed);

/* ---- helpers for the HTTP integration tests ---- */

#define HTTP_GUID_BUF 33 /* 32 hex digits and a NUL */

/* A random GUID (getrandom) in canonical form: 32 lowercase hex digits. */
void http_guid_rand(char out[HTTP_GUID_BUF]);

/* A whole file, NUL-terminated (malloc'd); *len (may be NULL) gets its
 * size.  NULL if it cannot be read. */
char *http_read_file(const char *path, size_t *len);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t http_mono_ms(void);
/* Sleep ms milliseconds (resumed after a signal). */
void http_sleep_ms(long ms);

/* http_req that fails the test when the request cannot be made at all;
 * returns the status (0 if the connection failed or was closed early). */
long http_req_ok(struct srv *s, const char *method, const char *path,
                 const char *const *headers, const void *body, size_t body_len,
                 struct http_resp *r);

/* Assert that r's status is want; what names the exchange in a failure. */
void http_expect_status(const struct http_resp *r, long want, const char *what);

/* Assert that r is an error answer of the API: the status, Content-Type
 * application/json and a JSON body {"error": code, "message": "..."} with
 * a non-empty message.  what names the exchange in a failure (NULL: the
 * code does). */
void http_expect_error(const struct http_resp *r, long status, const char *code,
                       const char *what);

/* Assert that r carries Retry-After with a whole number of seconds >= 1. */
void http_expect_retry_after(const struct http_resp *r, const char *what);

/* Copy r's ETag into out (API_ETAG_MAX bytes); fails the test when there
 * is none or it is not a quoted strong tag. */
void http_etag_of(const struct http_resp *r, char *out, const char *what);

/*
 * Assert that GET /blobs/<guid> answers 200 with exactly data[0..len) and,
 * when etag is not NULL, that ETag.  what (may be NULL) is added to the
 * failure message: "GET <guid> (what): ...".
 */
void http_expect_data(struct srv *s, const char *guid, const void *data,
                      size_t len, const char *etag, const char *what);
/* http_expect_data with the len bytes of http_fill(seed). */
void http_expect_blob(struct srv *s, const char *guid, size_t len,
                      uint64_t seed, const char *etag, const char *what);
/* Assert that GET /blobs/<guid> answers 404; what as for http_expect_data. */
void http_expect_absent(struct srv *s, const char *guid, const char *what);

/* Assert that header name of r equals want exactly (case-sensitive value). */
void http_assert_header(const struct http_resp *r, const char *name,
                        const char *want);

/* Assert got[0..got_len) == want[0..want_len); names the first differing
 * offset (what says which exchange it was). */
void http_assert_bytes(const void *got, size_t got_len, const void *want,
                       size_t want_len, const char *what);

/*
 * Send body with Transfer-Encoding: chunked (PUT, POST or another method),
 * handing curl at most chunk bytes per read so the chunks stay small.
 * Same conventions as http_req; a server that answers early and closes is
 * reported with the status it sent, if it sent one.
 */
int http_req_chunked(struct srv *s, const char *method, const char *path,
                     const void *body, size_t len, size_t chunk,
                     struct http_resp *r);

/* ---- raw sockets, for what libcurl will not send ---- */

/* A blocking TCP connection to the server (close-on-exec); fd, or -1
 * with errno set. */
int http_raw_connect(struct srv *s);
/* Write all of buf (MSG_NOSIGNAL); 0 or -1. */
int http_raw_send(int fd, const void *buf, size_t len);
/*
 * Read one response into buf (NUL-terminated, cap includes the NUL): up to
 * the end of the headers plus Content-Length bytes of body (1xx interim
 * answers are kept in buf and skipped), or until EOF or timeout_ms without
 * the response being complete.  Returns the bytes read, or -1 on a read
 * error before anything arrived.
 */
long http_raw_read(int fd, char *buf, size_t cap, int timeout_ms);
/* Split a raw answer (as http_raw_read returns it) into *r: the status,
 * header block and body of the final (non-1xx) response.  0 or -1 when buf
 * holds no complete header block. */
int http_raw_parse(const char *buf, size_t len, struct http_resp *r);
/* The status of the first response in buf ("HTTP/1.x NNN"), or 0. */
int http_raw_status(const char *buf);
/* Connect, send req, read one response (http_raw_read), close. */
long http_raw_exchange(struct srv *s, const void *req, size_t len, char *out,
                       size_t cap, int timeout_ms);

/* ---- several client addresses (loopback takes any 127/8 source) ---- */

/* http_raw_connect from src_ip ("127.0.0.2"; NULL: the kernel's choice,
 * 127.0.0.1): the socket is bound to it before connecting.  The connect
 * gives up after 5 s.  fd, or -1 with errno set. */
int http_raw_connect_from(struct srv *s, const char *src_ip);
/*
 * Wait until the server closes fd: EOF, or ECONNRESET/EPIPE (anything it
 * sends first is read and dropped).  Returns the milliseconds waited, or
 * -1 when fd is still open after timeout_ms.
 */
long http_raw_wait_eof(int fd, int timeout_ms);
/*
 * GET path from src_ip (NULL: 127.0.0.1) on a fresh connection, with Host
 * and Connection: close; the whole exchange (connect included) within
 * timeout_ms.  Returns the status, 0 on a failure or timeout; *ms (may be
 * NULL) gets the elapsed milliseconds.  Safe from any thread.
 */
long http_get_from(struct srv *s, const char *src_ip, const char *path,
                   int timeout_ms, long *ms);
/* http_get_from that keeps the answer in *r (owned; zeroed, status 0, on
 * a failure). */
long http_get_from_resp(struct srv *s, const char *src_ip, const char *path,
                        int timeout_ms, struct http_resp *r);
/*
 * The number at a dotted path ("http.open_connections") of GET
 * /admin/stats, fetched from src_ip (NULL: 127.0.0.1).  Fails the test
 * when the request fails, is not 200 or holds no number there.
 */
double http_stats_num(struct srv *s, const char *src_ip, const char *path);
/*
 * The value of the sample series (the name with its labels, exactly as
 * /metrics prints it: blobd_up or x_total{reason="y"}) of GET
 * /metrics from src_ip (NULL: 127.0.0.1) in *out; 1 when the sample is
 * there, 0 when not.  Fails the test when /metrics does not answer 200.
 */
int http_metric_value(struct srv *s, const char *src_ip, const char *series,
                      double *out);

/*
 * A prober: a thread that GETs path from src_ip on a fresh connection
 * every 100 ms (http_get_from, 5 s timeout) until stopped, recording the
 * worst latency and the probes that did not answer 200 (each printed to
 * stderr).  The struct is the caller's; its fields are the thread's until
 * http_prober_stop.
 */
struct http_prober {
    struct srv *s;
    char src_ip[64];
    char path[256];
    pthread_t thread;
    atomic_int stop;
    int running;
    long probes, fails, max_ms;
};
/* Start probing; fails the test when the thread cannot be created. */
void http_prober_start(struct http_prober *p, struct srv *s, const char *src_ip,
                       const char *path);
/* Stop and join (no-op when not running); returns the number of probes
 * made, *max_ms and *fails (may be NULL) get the worst latency and the
 * failures. */
long http_prober_stop(struct http_prober *p, long *max_ms, long *fails);

#endif
