/*
 * mhd_ref.c - a bare libmicrohttpd server answering from memory: the
 * ceiling of our HTTP library for http_bench.py.
 *
 *   mhd_ref PORT THREADS CONN_MEMORY_KIB
 *                             listen on 127.0.0.1:PORT until SIGINT/SIGTERM
 *   mhd_ref --version         print the libmicrohttpd version
 *
 * It starts the daemon with the flags blobd uses (server/http.c
 * server_http_start): an internal polling thread with epoll, a thread pool
 * of THREADS, suspend/resume allowed, CONN_MEMORY_KIB of memory per
 * connection (blobd's --connection-memory; http_bench.py passes its
 * default), at most 4096 connections, 30 s connection timeout.
 *
 *   GET /blobs/<x>                  200, one persistent 512 KiB buffer
 *   GET /blobs/<x> + Range: bytes=  206 with that slice and Content-Range
 *                                   (a-b, a- or -n; one range), 416 past
 *                                   the end; anything else is ignored (200)
 *   PUT /blobs/<x>                  the body is copied into a 512 KiB buffer
 *                                   of the request; 201 once it is complete
 *                                   (413 past 512 KiB).  The buffers are
 *                                   reused, as blobd reuses its frames: a
 *                                   fresh malloc of 512 KiB per request
 *                                   costs page faults that blobd does not
 *                                   pay
 *   anything else                   404
 *
 * Like blobd, a request is answered from the second call of the access
 * handler on (the first only sets up the request), so keep-alive is kept
 * and a PUT with "Expect: 100-continue" gets its 100 Continue.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BLOB_SIZE (512u * 1024u)
#define CONN_LIMIT 4096u
#define CONN_TIMEOUT 30u

static uint8_t *blob; /* the one buffer every GET answers from */

/* Upload buffers, kept for reuse once a request is done. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *pool[CONN_LIMIT];
static size_t pool_n;

static uint8_t *buf_get(void)
{
    uint8_t *b = NULL;
    pthread_mutex_lock(&pool_lock);
    if (pool_n > 0)
        b = pool[--pool_n];
    pthread_mutex_unlock(&pool_lock);
    return b ? b : malloc(BLOB_SIZE);
}

static void buf_put(uint8_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&pool_lock);
    if (pool_n < CONN_LIMIT) {
        pool[pool_n++] = b;
        b = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    free(b);
}

enum kind { K_GET = 1, K_PUT, K_OTHER };

struct req {
    enum kind kind;
    uint8_t *buf; /* PUT: the body lands here */
    size_t got;
    int over;
};

static int is_blob_path(const char *url)
{
    return strncmp(url, "/blobs/", 7) == 0 && url[7] != '\0' &&
           strchr(url + 7, '/') == NULL;
}

/* Parse a decimal number of at most 19 digits; the end in *end. */
static int parse_u64(const char *s, const char **end, uint64_t *v)
{
    uint64_t n = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 19) {
        n = n * 10 + (uint64_t)(*s - '0');
        s++;
        digits++;
    }
    if (digits == 0 || (*s >= '0' && *s <= '9'))
        return -1;
    *v = n;
    *end = s;
    return 0;
}

/*
 * One range of "bytes=a-b", "bytes=a-" or "bytes=-n" against a blob of
 * size bytes: 1 with [*first, *last], 0 when it should be ignored
 * (absent, malformed, several ranges), -1 when it is unsatisfiable.
 */
static int parse_range(const char *h, uint64_t size, uint64_t *first,
                       uint64_t *last)
{
    const char *p;
    uint64_t a = 0, b = 0;
    if (!h || strncmp(h, "bytes=", 6) != 0)
        return 0;
    p = h + 6;
    if (*p == '-') {
        if (parse_u64(p + 1, &p, &b) < 0 || *p != '\0')
            return 0;
        if (b == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (parse_u64(p, &p, &a) < 0 || *p != '-')
        return 0;
    p++;
    if (*p == '\0') {
        b = size - 1;
    } else if (parse_u64(p, &p, &b) < 0 || *p != '\0' || b < a) {
        return 0;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return 1;
}

static enum MHD_Result answer_empty(struct MHD_Connection *c,
                                    unsigned int status)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result answer_get(struct MHD_Connection *c)
{
    uint64_t first = 0, last = BLOB_SIZE - 1;
    const char *range =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    int r = parse_range(range, BLOB_SIZE, &first, &last);
    unsigned int status = MHD_HTTP_OK;
    char cr[64];
    if (r < 0) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        snprintf(cr, sizeof(cr), "bytes */%u", BLOB_SIZE);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        enum MHD_Result ret =
            MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (r == 0) {
        first = 0;
        last = BLOB_SIZE - 1;
    } else {
        status = MHD_HTTP_PARTIAL_CONTENT;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        (size_t)(last - first + 1), blob + first, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (r > 0) {
        snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%u", first,
                 last, BLOB_SIZE);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    (void)cls;
    (void)version;
    struct req *r = *req_cls;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        if (is_blob_path(url) && strcmp(method, MHD_HTTP_METHOD_GET) == 0) {
            r->kind = K_GET;
        } else if (is_blob_path(url) &&
                   strcmp(method, MHD_HTTP_METHOD_PUT) == 0) {
            r->kind = K_PUT;
            r->buf = buf_get();
            if (!r->buf) {
                free(r);
                return MHD_NO;
            }
        } else {
            r->kind = K_OTHER;
        }
        *req_cls = r;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (r->kind == K_PUT) {
            size_t n = *upload_size;
            if (r->got + n > BLOB_SIZE) {
                r->over = 1;
                n = BLOB_SIZE - r->got;
            }
            memcpy(r->buf + r->got, upload_data, n);
            r->got += n;
        }
        *upload_size = 0; /* a body of anything else is read and dropped */
        return MHD_YES;
    }
    switch (r->kind) {
    case K_GET:
        return answer_get(c);
    case K_PUT:
        return answer_empty(c, r->over ? MHD_HTTP_CONTENT_TOO_LARGE
                                       : MHD_HTTP_CREATED);
    default:
        return answer_empty(c, MHD_HTTP_NOT_FOUND);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct req *r = *req_cls;
    if (!r)
        return;
    buf_put(r->buf);
    free(r);
    *req_cls = NULL;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", MHD_get_version());
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: mhd_ref PORT THREADS CONN_MEMORY_KIB | "
                        "mhd_ref --version\n");
        return 64;
    }
    char *end;
    unsigned long port = strtoul(argv[1], &end, 10);
    if (*end || port == 0 || port > 65535) {
        fprintf(stderr, "mhd_ref: bad port %s\n", argv[1]);
        return 64;
    }
    unsigned long threads = strtoul(argv[2], &end, 10);
    if (*end || threads == 0 || threads > 256) {
        fprintf(stderr, "mhd_ref: bad thread count %s\n", argv[2]);
        return 64;
    }
    /* blobd's --connection-memory: the body read size follows from it */
    unsigned long conn_kib = strtoul(argv[3], &end, 10);
    if (*end || conn_kib < 32 || conn_kib > 1024) {
        fprintf(stderr, "mhd_ref: bad connection memory %s KiB\n", argv[3]);
        return 64;
    }
    blob = malloc(BLOB_SIZE);
    if (!blob) {
        fprintf(stderr, "mhd_ref: out of memory\n");
        return 70;
    }
    uint64_t x = 0x9e3779b97f4a7c15u; /* any bytes will do, not zeros */
    for (size_t i = 0; i < BLOB_SIZE; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        blob[i] = (uint8_t)x;
    }

    /* The signals are taken by sigwait below, not by any thread. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
        MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)conn_kib * 1024,
        MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_ref: cannot start on 127.0.0.1:%lu\n", port);
        free(blob);
        return 69;
    }
    fprintf(stderr, "mhd_ref: libmicrohttpd %s on 127.0.0.1:%lu, %lu threads\n",
            MHD_get_version(), port, threads);

    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    MHD_stop_daemon(d);
    while (pool_n > 0)
        free(pool[--pool_n]);
    free(blob);
    return 0;
}
