/*
 * http.c - libmicrohttpd wiring: one request state machine per request,
 * bodies streamed into store frames, writes and reads handed to the
 * store's threads with the connection suspended until they complete.
 *
 * A request moves RQ_NEW -> [RQ_BODY] -> RQ_WAIT -> RQ_DONE, or answers at
 * once.  The access handler runs on libmicrohttpd's threads; completions
 * run on the store's I/O or reader threads.
 *
 * Invariants:
 *  H1. A completion only records its result in the request and resumes
 *      the connection; the response is built on the handler's thread when
 *      libmicrohttpd calls it again.  The connection is suspended before
 *      the job is submitted, so a completion can never resume a connection
 *      that is not suspended yet.
 *  H2. The end of a body is the call with no data after at least one call
 *      in RQ_BODY, and the byte count must equal Content-Length; a call
 *      after a resume in any other state never counts as a body's end.
 *  H3. A frame belongs to exactly one owner: the request (body, read
 *      target), the store (while a job runs) or a response buffer (until
 *      libmicrohttpd frees the response).  Every frame goes back to the
 *      store before the store is closed: libmicrohttpd is stopped first.
 *  H4. Nothing is stored unless the whole body arrived within the limit:
 *      the write is submitted only at H2's end.
 *  H5. The O_DIRECT data file is never handed to libmicrohttpd; responses
 *      point into refcounted frames.
 *  H6. A request without a body is answered (or suspended) from the second
 *      call on: libmicrohttpd 0.9.75 closes a connection whose response
 *      was queued in the first call, which would end keep-alive.
 */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "log.h"
#include "server.h"
#include "status.h"

enum req_state { RQ_NEW = 0, RQ_HEADERS, RQ_BODY, RQ_WAIT, RQ_DONE };
enum req_job { JOB_NONE = 0, JOB_WRITE, JOB_DELETE, JOB_FLUSH, JOB_READ };

/* What a GET needs: an answer now (status != 0) or a read. */
struct get_plan {
    int status; /* 0: read; else answer with it */
    enum api_error err;
    int have; /* info is valid */
    struct store_blob_info info;
    struct api_ranges ranges;
    uint64_t off;
    uint32_t len; /* STORE_READ_ALL for a whole read */
};

struct req {
    struct server *srv;
    struct MHD_Connection *conn;
    enum api_method m;
    struct api_route route;
    enum req_state state;
    enum req_job job;
    int retries;
    /* body (PUT, POST) */
    uint8_t *frame;
    uint64_t expect;
    int chunked;
    uint32_t got;
    int over;
    /* writes */
    uint8_t guid[API_GUID_SIZE];
    struct store_precond pre;
    int pre_derived; /* pre pinned from a lookup (api_cond_write) */
    int durable;
    /* reads */
    struct api_etags if_match, if_none_match;
    struct get_plan plan;
    /* upload digests */
    struct api_digests digests;
    /* counters and the access log */
    uint64_t t0; /* CLOCK_MONOTONIC ns at the first call */
    int status;
    size_t bytes_out;
    char method[16]; /* for the access log */
    char url[256];
    /* what the library let through (api_check_target, on the raw target) */
    enum api_error target_err;
    struct server_conn *sc; /* the connection's entry (conns.c) */
    int begun;              /* request_begin ran: the headers are in */
    /* results, written by a completion before the resume (H1) */
    struct store_completion comp;
    struct store_read_result rd;
    int submit_rc;
};

/* A response buffer: a frame or a cached buffer, and optional extra
 * memory, freed when the last response using them is destroyed (H3,
 * H5). */
struct rbuf {
    atomic_int refs;
    struct server *srv;
    void *frame;
    struct cbuf *cb;
    void *extra;
};

/* Frames for requests are charged to the memory budget (cache.h). */
static void *frame_alloc(struct server *s)
{
    if (budget_take(&s->budget, STORE_FRAME_SIZE) < 0)
        return NULL;
    void *f = store_frame_alloc(s->st);
    if (!f)
        budget_give(&s->budget, STORE_FRAME_SIZE);
    return f;
}

static void frame_free(struct server *s, void *f)
{
    if (!f)
        return;
    store_frame_free(s->st, f);
    budget_give(&s->budget, STORE_FRAME_SIZE);
}

static void rbuf_release(void *cls)
{
    struct rbuf *b = cls;
    if (atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    frame_free(b->srv, b->frame);
    cbuf_unref(b->cb);
    free(b->extra);
    free(b);
}

struct req;
static void log_safe(char *dst, size_t cap, const char *src);
static struct rbuf *rbuf_new(struct req *r, void *frame, struct cbuf *cb,
                             void *extra);
static enum MHD_Result respond_blob(struct req *r,
                                    const struct store_blob_info *info,
                                    const uint8_t *whole, const uint8_t *slice,
                                    size_t slice_len, struct rbuf *owner);

static enum server_state srv_state(const struct server *s)
{
    return (enum server_state)atomic_load(&((struct server *)s)->state);
}

/* ---- responses ---- */

static void add_common(struct req *r, struct MHD_Response *resp)
{
    if (srv_state(r->srv) == SRV_DRAINING)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

/* Queue resp (body_len bytes of body, for the counters) and end the
 * request's work. */
static enum MHD_Result queue(struct req *r, int status,
                             struct MHD_Response *resp, size_t body_len)
{
    if (!resp)
        return MHD_NO;
    r->status = status;
    r->bytes_out = r->m == API_M_HEAD ? 0 : body_len;
    add_common(r, resp);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->state = RQ_DONE;
    r->job = JOB_NONE; /* answered */
    return ret;
}

/* A response owning json (freed by libmicrohttpd, or here on failure);
 * *len gets its length. */
static struct MHD_Response *json_response(char *json, size_t *len)
{
    if (!json)
        return NULL;
    *len = strlen(json);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(*len, json, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(json);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    return resp;
}

static enum MHD_Result send_json(struct req *r, int status, char *json)
{
    size_t len = 0;
    struct MHD_Response *resp = json_response(json, &len);
    return resp ? queue(r, status, resp, len) : MHD_NO;
}

/* An error response: JSON body, and the headers its status needs. */
static enum MHD_Result send_error_status(struct req *r, enum api_error e,
                                         int status, const char *message)
{
    size_t len = 0;
    struct MHD_Response *resp = json_response(api_error_json(e, message), &len);
    if (!resp)
        return MHD_NO;
    if (r->m == API_M_PUT || r->m == API_M_POST || r->m == API_M_DELETE)
        atomic_fetch_add_explicit(&r->srv->metrics.refusals[e], 1,
                                  memory_order_relaxed);
    if (status == 503) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", API_RETRY_AFTER_S);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (e == API_ERR_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"blobd\"");
    if (e == API_ERR_METHOD_NOT_ALLOWED && r->route.allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->route.allow);
    if (e == API_ERR_RANGE_NOT_SATISFIABLE && r->plan.have) {
        char cr[64];
        api_content_range(cr, sizeof(cr), NULL, r->plan.info.len);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    }
    /* An answer in the first call: before a body was read (it would be
     * taken for the next request) or to a request whose framing or
     * target was refused.  libmicrohttpd closes the connection (H6). */
    if (r->state == RQ_NEW) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        if (r->m == API_M_PUT || r->m == API_M_POST)
            server_conns_linger(r->sc); /* C5: a body may be on its way */
    }
    return queue(r, status, resp, len);
}

static enum MHD_Result send_error(struct req *r, enum api_error e,
                                  const char *message)
{
    return send_error_status(r, e, api_error_status(e), message);
}

static struct MHD_Response *empty_response(void)
{
    return MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
}

static void add_etag(struct MHD_Response *resp, uint64_t version)
{
    char etag[API_ETAG_MAX];
    api_etag(version, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
}

static const char *header(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static const char *query(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- completions (store threads; H1) ---- */

static void on_done(void *arg, const struct store_completion *c)
{
    struct req *r = arg;
    if (c->outcome == STORE_OUT_CREATED || c->outcome == STORE_OUT_REPLACED)
        cache_drop(r->srv->cache, r->guid); /* K2 in cache.c */
    else if (c->outcome == STORE_OUT_DELETED)
        cache_drop(r->srv->cache, r->route.guid);
    r->comp = *c;
    r->state = RQ_DONE;
    MHD_resume_connection(r->conn);
}

static void on_read(void *arg, const struct store_read_result *rd)
{
    struct req *r = arg;
    r->rd = *rd;
    r->state = RQ_DONE;
    MHD_resume_connection(r->conn);
}

/* Suspend, then submit (H1).  On a refused submit the request is resumed
 * at once with submit_rc set. */
static enum MHD_Result submit(struct req *r)
{
    struct store *st = r->srv->st;
    int rc;
    r->state = RQ_WAIT;
    r->submit_rc = 0;
    server_conns_body(r->sc, 0);
    memset(&r->comp, 0, sizeof(r->comp));
    memset(&r->rd, 0, sizeof(r->rd));
    MHD_suspend_connection(r->conn);
    switch (r->job) {
    case JOB_WRITE:
        rc = store_submit_write(st, r->guid, r->frame, r->got, &r->pre,
                                r->durable, on_done, r);
        break;
    case JOB_DELETE:
        rc = store_submit_delete(st, r->route.guid, &r->pre, r->durable,
                                 on_done, r);
        break;
    case JOB_FLUSH:
        rc = store_submit_flush(st, on_done, r);
        break;
    case JOB_READ:
        rc = store_submit_read(st, r->route.guid, r->plan.off, r->plan.len,
                               r->frame, on_read, r);
        break;
    default:
        rc = STORE_E_INVALID;
        break;
    }
    if (rc < 0) {
        r->submit_rc = rc;
        r->state = RQ_DONE;
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* ---- conditions ---- */

/* Parse If-Match / If-None-Match into r; 0 or an error was queued. */
static int parse_conditions(struct req *r, enum MHD_Result *ret)
{
    if (api_etags_parse(header(r, MHD_HTTP_HEADER_IF_MATCH), &r->if_match) <
            0 ||
        api_etags_parse(header(r, MHD_HTTP_HEADER_IF_NONE_MATCH),
                        &r->if_none_match) < 0) {
        *ret = send_error(r, API_ERR_BAD_PRECONDITION, NULL);
        return -1;
    }
    return 0;
}

/* Decide a write's store precondition (a lookup if the headers need one).
 * 0, or -1 with a 412 queued. */
static int write_precondition(struct req *r, const uint8_t *guid,
                              enum MHD_Result *ret)
{
    int c = api_cond_write(&r->if_match, &r->if_none_match, NULL, &r->pre);
    r->pre_derived = 0;
    if (c == 1) {
        struct store_blob_info info;
        struct api_cur cur = {0, 0};
        if (store_stat(r->srv->st, guid, &info) == 0) {
            cur.exists = 1;
            cur.version = info.version;
        }
        c = api_cond_write(&r->if_match, &r->if_none_match, &cur, &r->pre);
        r->pre_derived = 1;
    }
    if (c != 0) {
        *ret = send_error(r, API_ERR_PRECONDITION_FAILED, NULL);
        return -1;
    }
    return 0;
}

/* ?fsync: 0 or -1 with a 400 queued. */
static int parse_fsync(struct req *r, enum MHD_Result *ret)
{
    int v;
    if (api_parse_bool(query(r, "fsync"), &v) < 0) {
        *ret = send_error(r, API_ERR_BAD_QUERY, "fsync is true or false");
        return -1;
    }
    r->durable = v || r->srv->cfg.sync_writes;
    return 0;
}

/* ---- writes: PUT, POST, DELETE ---- */

static enum MHD_Result write_begin(struct req *r)
{
    enum MHD_Result ret;
    uint64_t len = 0;
    switch (api_body_kind(header(r, MHD_HTTP_HEADER_CONTENT_LENGTH),
                          header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING), &len)) {
    case API_BODY_LENGTH:
        r->expect = len;
        break;
    case API_BODY_CHUNKED:
        r->chunked = 1;
        break;
    case API_BODY_TOO_LARGE:
        return send_error(r, API_ERR_TOO_LARGE, NULL);
    case API_BODY_LENGTH_REQUIRED:
        return send_error(r, API_ERR_LENGTH_REQUIRED, NULL);
    case API_BODY_BAD_LENGTH:
    default:
        return send_error(r, API_ERR_BAD_LENGTH, NULL);
    }
    if (parse_fsync(r, &ret) < 0 || parse_conditions(r, &ret) < 0)
        return ret;
    if (api_digests_parse(header(r, "Content-MD5"), header(r, "Content-Digest"),
                          &r->digests) < 0)
        return send_error(r, API_ERR_BAD_DIGEST, NULL);
    if (r->route.kind == API_R_BLOB) {
        memcpy(r->guid, r->route.guid, API_GUID_SIZE);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ms =
            (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        if (api_guid_new(ms, r->guid) < 0)
            return send_error(r, API_ERR_INTERNAL, "getrandom failed");
    }
    if (write_precondition(r, r->guid, &ret) < 0)
        return ret;
    if (r->route.kind == API_R_BLOBS && r->pre.kind == STORE_PRE_NONE)
        r->pre.kind = STORE_PRE_ABSENT; /* a new GUID never replaces one */
    r->frame = frame_alloc(r->srv);
    if (!r->frame)
        return send_error(r, API_ERR_OVER_BUDGET, NULL);
    r->state = RQ_BODY;
    r->job = JOB_WRITE;
    server_conns_body(r->sc, 1);
    return MHD_YES;
}

/* A piece of the body: copy it into the frame, or count it past the
 * limit (H4). */
static enum MHD_Result write_body(struct req *r, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    server_conns_body(r->sc, 1);
    if (r->over || (uint64_t)r->got + n > API_MAX_BODY ||
        (!r->chunked && (uint64_t)r->got + n > r->expect)) {
        /* Only a chunked body can get here: cut it off now. */
        r->over = 1;
        server_log(LOG_DEBUG, "chunked body past %u bytes: cut off",
                   API_MAX_BODY);
        size_t len;
        struct MHD_Response *resp =
            json_response(api_error_json(API_ERR_TOO_LARGE, NULL), &len);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
        enum MHD_Result ret = MHD_queue_response(r->conn, 413, resp);
        r->status = 413;
        MHD_destroy_response(resp);
        /* libmicrohttpd refuses a response in the middle of a body: then
         * closing the connection is the answer. */
        return ret == MHD_YES ? MHD_YES : MHD_NO;
    }
    memcpy(r->frame + r->got, data, n);
    r->got += (uint32_t)n;
    return MHD_YES;
}

static enum MHD_Result write_answer(struct req *r)
{
    if (r->submit_rc < 0)
        return send_error(r, api_store_error(r->submit_rc), NULL);
    enum api_error err = API_ERR_INTERNAL;
    int status = api_outcome_status(r->comp.outcome, r->comp.rc, &err);
    if (status == 412 && r->m == API_M_POST && r->retries < 3 &&
        r->pre.kind == STORE_PRE_ABSENT && !r->if_none_match.present &&
        !r->if_match.present) {
        /* A server-chosen GUID that exists already: choose again. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r->retries++;
        if (api_guid_new((uint64_t)ts.tv_sec * 1000 +
                             (uint64_t)ts.tv_nsec / 1000000,
                         r->guid) == 0)
            return submit(r);
    }
    if (status >= 400) {
        if (status == 503 && r->comp.outcome == STORE_OUT_STORE_FAILED)
            server_log(LOG_DEBUG, "write refused: %s",
                       store_strerror(r->comp.rc));
        /* Not sticky (only a failed sync or log write is): not
         * store_failed, which says restart.  An EIO is this write's own
         * data write, which stored nothing; anything else (ENOMEM in a
         * group commit, say) may have applied the write without making
         * it durable, which overloaded already warns of. */
        if (err == API_ERR_STORE_FAILED && !store_failed(r->srv->st))
            err =
                r->comp.rc == -EIO ? API_ERR_WRITE_FAILED : API_ERR_OVERLOADED;
        return send_error(r, err, NULL);
    }
    struct MHD_Response *resp;
    size_t len = 0;
    if (status == 201) {
        resp = json_response(
            api_json_created(r->guid, r->got, r->comp.version, r->comp.durable),
            &len);
        if (!resp)
            return MHD_NO;
        char loc[16 + API_GUID_STRLEN];
        char g[API_GUID_STRLEN + 1];
        api_guid_format(r->guid, g);
        snprintf(loc, sizeof(loc), "/blobs/%s", g);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, loc);
    } else {
        resp = empty_response();
        if (!resp)
            return MHD_NO;
    }
    if (r->job == JOB_WRITE)
        add_etag(resp, r->comp.version);
    MHD_add_response_header(resp, "Blob-Durable",
                            r->comp.durable ? "true" : "false");
    return queue(r, status, resp, len);
}

static enum MHD_Result delete_begin(struct req *r)
{
    enum MHD_Result ret;
    if (parse_fsync(r, &ret) < 0 || parse_conditions(r, &ret) < 0 ||
        write_precondition(r, r->route.guid, &ret) < 0)
        return ret;
    r->job = JOB_DELETE;
    return submit(r);
}

/* ---- reads: GET, HEAD ---- */

/* Decide what a GET or HEAD answers against info (NULL: absent). */
static void plan_get(struct req *r, const struct store_blob_info *info,
                     struct get_plan *p)
{
    struct api_cur cur = {info != NULL, info ? info->version : 0};
    memset(p, 0, sizeof(*p));
    if (info) {
        p->have = 1;
        p->info = *info;
    }
    enum api_cond c = api_cond_read(&r->if_match, &r->if_none_match, &cur);
    if (c == API_COND_FAILED) {
        p->status = 412;
        p->err = API_ERR_PRECONDITION_FAILED;
        return;
    }
    if (c == API_COND_NOT_MODIFIED) {
        p->status = 304;
        return;
    }
    if (!info) {
        p->status = 404;
        p->err = API_ERR_NOT_FOUND;
        return;
    }
    if (r->m == API_M_HEAD) { /* Range applies to GET only */
        p->status = 200;
        return;
    }
    const char *range = header(r, MHD_HTTP_HEADER_RANGE);
    if (range &&
        !api_if_range(header(r, MHD_HTTP_HEADER_IF_RANGE), info->version))
        range = NULL;
    api_range_parse(range, info->len, &p->ranges);
    switch (p->ranges.kind) {
    case API_RANGE_UNSATISFIABLE:
        p->status = 416;
        p->err = API_ERR_RANGE_NOT_SATISFIABLE;
        return;
    case API_RANGE_SINGLE:
        p->off = p->ranges.r[0].first;
        p->len = (uint32_t)(p->ranges.r[0].last - p->ranges.r[0].first + 1);
        if (p->len > STORE_RANGE_NOVERIFY_MAX) {
            /* The store reads and verifies the whole blob for these
             * anyway: ask for it, slice it here, and let it be cached. */
            p->off = 0;
            p->len = STORE_READ_ALL;
        }
        return;
    default:
        p->off = 0;
        p->len = STORE_READ_ALL;
        if (info->len == 0)
            p->status = 200; /* nothing to read */
        return;
    }
}

static void add_blob_headers(struct MHD_Response *resp,
                             const struct store_blob_info *info)
{
    add_etag(resp, info->version);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
}

static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls, (void)pos, (void)buf, (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* Answer a plan that needs no read. */
static enum MHD_Result answer_plan(struct req *r)
{
    struct get_plan *p = &r->plan;
    struct MHD_Response *resp;
    if (p->status == 304) {
        resp = empty_response();
        if (!resp)
            return MHD_NO;
        if (p->have)
            add_etag(resp, p->info.version);
        return queue(r, 304, resp, 0);
    }
    if (p->status != 200)
        return send_error(r, p->err, NULL);
    /* HEAD, or an empty blob: the headers of the whole blob. */
    if (r->m == API_M_HEAD && p->info.len > 0)
        resp = MHD_create_response_from_callback(p->info.len, 4096, no_body,
                                                 NULL, NULL);
    else
        resp = empty_response();
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    add_blob_headers(resp, &p->info);
    return queue(r, 200, resp, 0);
}

static enum MHD_Result get_begin(struct req *r)
{
    enum MHD_Result ret;
    if (parse_conditions(r, &ret) < 0)
        return ret;
    struct store_blob_info info;
    int rc = store_stat(r->srv->st, r->route.guid, &info);
    plan_get(r, rc == 0 ? &info : NULL, &r->plan);
    if (r->plan.status)
        return answer_plan(r);
    struct cbuf *cb =
        cache_get(r->srv->cache, r->route.guid, r->plan.info.version);
    if (cb) /* a verified copy of this very version */
        return respond_blob(r, &r->plan.info, cb->data, NULL, 0,
                            rbuf_new(r, NULL, cb, NULL));
    r->frame = frame_alloc(r->srv);
    if (!r->frame)
        return send_error(r, API_ERR_OVER_BUDGET, NULL);
    r->job = JOB_READ;
    return submit(r);
}

/* A response buffer owning frame (taken from the request: H3) or a
 * reference to cb, and extra; NULL on ENOMEM (then nothing is owned:
 * the caller still has them). */
static struct rbuf *rbuf_new(struct req *r, void *frame, struct cbuf *cb,
                             void *extra)
{
    struct rbuf *b = malloc(sizeof(*b));
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->srv = r->srv;
    b->frame = frame;
    b->cb = cb;
    b->extra = extra;
    if (frame == r->frame)
        r->frame = NULL;
    return b;
}

/* The multipart/byteranges body of the plan's ranges over whole. */
static enum MHD_Result respond_multipart(struct req *r,
                                         const struct store_blob_info *info,
                                         const uint8_t *whole,
                                         struct rbuf *owner)
{
    const struct api_ranges *rg = &r->plan.ranges;
    char boundary[API_BOUNDARY_LEN + 1];
    size_t n = rg->n;
    char *heads = malloc((n + 1) * API_PART_HEAD_MAX);
    struct MHD_IoVec *iov = malloc((2 * n + 1) * sizeof(*iov));
    if (!heads || !iov || api_boundary_new(boundary) < 0) {
        free(heads);
        free(iov);
        rbuf_release(owner);
        return MHD_NO;
    }
    owner->extra = heads;
    size_t k = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        char *h = heads + i * API_PART_HEAD_MAX;
        size_t hl = api_multipart_part_head(h, API_PART_HEAD_MAX, boundary, i,
                                            &rg->r[i], info->len);
        iov[k].iov_base = h;
        iov[k++].iov_len = hl;
        iov[k].iov_base = whole + rg->r[i].first;
        iov[k++].iov_len = (size_t)(rg->r[i].last - rg->r[i].first + 1);
    }
    char *t = heads + n * API_PART_HEAD_MAX;
    iov[k].iov_base = t;
    iov[k++].iov_len = api_multipart_tail(t, API_PART_HEAD_MAX, boundary);
    for (size_t i = 0; i < k; i++)
        total += iov[i].iov_len;
    struct MHD_Response *resp =
        MHD_create_response_from_iovec(iov, (unsigned)k, rbuf_release, owner);
    free(iov); /* the response keeps its own copy of the vector */
    if (!resp) {
        rbuf_release(owner);
        return MHD_NO;
    }
    char ct[128];
    api_multipart_type(ct, sizeof(ct), boundary);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ct);
    add_blob_headers(resp, info);
    return queue(r, 206, resp, total);
}

/* Answer the plan (200 whole, 206 single or multipart) from whole (the
 * whole blob) or, for a single range read on its own, from slice; owner
 * keeps the memory alive until libmicrohttpd is done with it. */
static enum MHD_Result respond_blob(struct req *r,
                                    const struct store_blob_info *info,
                                    const uint8_t *whole, const uint8_t *slice,
                                    size_t slice_len, struct rbuf *owner)
{
    if (!owner)
        return MHD_NO;
    const struct api_ranges *rg = &r->plan.ranges;
    if (rg->kind == API_RANGE_MULTI)
        return respond_multipart(r, info, whole, owner);
    const uint8_t *data = whole;
    size_t len = info->len;
    if (rg->kind == API_RANGE_SINGLE) {
        len = (size_t)(rg->r[0].last - rg->r[0].first + 1);
        data = whole ? whole + rg->r[0].first : slice;
        if (!whole && slice_len != len) {
            rbuf_release(owner);
            return send_error(r, API_ERR_INTERNAL, "short range read");
        }
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(
            len, (void *)data, rbuf_release, owner);
    if (!resp) {
        rbuf_release(owner);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    add_blob_headers(resp, info);
    int status = 200;
    if (rg->kind == API_RANGE_SINGLE) {
        char cr[80];
        api_content_range(cr, sizeof(cr), &rg->r[0], info->len);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        status = 206;
    }
    return queue(r, status, resp, len);
}

static enum MHD_Result read_answer(struct req *r)
{
    if (r->submit_rc < 0)
        return send_error(r, api_store_error(r->submit_rc), NULL);
    const struct store_read_result *rd = &r->rd;
    char g[API_GUID_STRLEN + 1];
    api_guid_format(r->route.guid, g);
    if (rd->rc == STORE_E_CHECKSUM)
        atomic_fetch_add(&r->srv->metrics.checksum_failures, 1);
    else if (rd->rc < 0 && rd->rc != STORE_E_NOT_FOUND &&
             rd->rc != STORE_E_RANGE)
        atomic_fetch_add(&r->srv->metrics.read_errors, 1);
    if (rd->rc == STORE_E_CHECKSUM) {
        server_log(LOG_ERROR,
                   "blob %s version %" PRIu64 ": stored data fails its "
                   "CRC32C; not served",
                   g, rd->info.version);
        return send_error(r, API_ERR_CORRUPT_DATA, NULL);
    }
    if (rd->rc != 0 && rd->rc != STORE_E_NOT_FOUND && rd->rc != STORE_E_RANGE) {
        server_log(LOG_ERROR, "blob %s: read failed: %s", g,
                   store_strerror(rd->rc));
        return send_error(r, api_store_error(rd->rc), NULL);
    }
    if (rd->rc != 0 || rd->info.version != r->plan.info.version) {
        /* Replaced or deleted since the lookup: decide again against what
         * is there now. */
        struct get_plan old = r->plan;
        plan_get(r, rd->rc == STORE_E_NOT_FOUND ? NULL : &rd->info, &r->plan);
        if (r->plan.status)
            return answer_plan(r);
        int same =
            rd->rc == 0 && r->plan.off == old.off && r->plan.len == old.len;
        if (!same) {
            if (++r->retries > 3)
                return send_error(r, API_ERR_OVERLOADED,
                                  "the blob keeps changing");
            return submit(r);
        }
    }
    struct server *s = r->srv;
    if (r->plan.len != STORE_READ_ALL) /* a page-aligned range read */
        return respond_blob(r, &rd->info, NULL, rd->data, rd->len,
                            rbuf_new(r, r->frame, NULL, NULL));
    /* A whole, verified read: keep a copy in the cache (if it is still
     * the current version, K2) and answer from it, so the frame goes
     * back at once. */
    struct cbuf *cb =
        s->cache ? cbuf_copy(&s->budget, rd->data, rd->len) : NULL;
    if (!cb)
        return respond_blob(r, &rd->info, rd->data, NULL, 0,
                            rbuf_new(r, r->frame, NULL, NULL));
    cache_put(s->cache, s->st, r->route.guid, rd->info.version, cb);
    frame_free(s, r->frame);
    r->frame = NULL;
    return respond_blob(r, &rd->info, cb->data, NULL, 0,
                        rbuf_new(r, NULL, cb, NULL));
}

/* ---- listing, flush, health ---- */

static enum MHD_Result list_answer(struct req *r)
{
    size_t limit;
    uint8_t after[API_GUID_SIZE];
    const char *a = query(r, "after");
    if (api_parse_limit(query(r, "limit"), &limit) < 0)
        return send_error(r, API_ERR_BAD_QUERY,
                          "limit is a positive whole number");
    if (a && api_guid_parse(a, strlen(a), after) < 0)
        return send_error(r, API_ERR_BAD_GUID, "after is not a GUID");
    struct store_blob_info *v = malloc(limit * sizeof(*v));
    if (!v)
        return MHD_NO;
    int more = 0;
    int n = store_list(r->srv->st, a ? after : NULL, limit, v, &more);
    if (n < 0) {
        free(v);
        return send_error(r, api_store_error(n), NULL);
    }
    char *json = api_json_list(v, (size_t)n, more);
    free(v);
    return send_json(r, 200, json);
}

static enum MHD_Result flush_answer(struct req *r)
{
    if (r->submit_rc < 0)
        return send_error(r, api_store_error(r->submit_rc), NULL);
    if (r->comp.outcome != STORE_OUT_NONE || r->comp.rc != 0) {
        enum api_error err = API_ERR_INTERNAL;
        api_outcome_status(r->comp.outcome, r->comp.rc, &err);
        if (r->comp.outcome == STORE_OUT_NONE)
            err = api_store_error(r->comp.rc);
        return send_error(r, err, NULL);
    }
    return send_json(r, 200, api_json_flush(&r->comp.flush));
}

/* /readyz: why writes would be refused now, or -1 when ready. */
static int not_ready_reason(struct server *s)
{
    switch (srv_state(s)) {
    case SRV_OPENING:
        return API_ERR_NOT_READY;
    case SRV_DRAINING:
        return API_ERR_DRAINING;
    default:
        break;
    }
    if (s->cfg.read_only)
        return API_ERR_READ_ONLY;
    if (store_failed(s->st))
        return API_ERR_STORE_FAILED;
    struct store_stats ss;
    store_get_stats(s->st, &ss);
    if (ss.fs_free_bytes < ss.headroom)
        return API_ERR_NO_SPACE;
    return -1;
}

static enum MHD_Result health_answer(struct req *r)
{
    if (r->route.kind == API_R_READYZ) {
        int why = not_ready_reason(r->srv);
        if (why >= 0) /* always 503, whatever the reason's own status */
            return send_error_status(r, (enum api_error)why, 503, NULL);
    }
    const char *body = r->route.kind == API_R_READYZ ? "{\"status\":\"ready\"}"
                                                     : "{\"status\":\"ok\"}";
    size_t len = strlen(body);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    return queue(r, 200, resp, len);
}

/* ---- observability and admin ---- */

uint64_t server_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void server_collect_stats(struct server *s, struct api_server_stats *out)
{
    static const char *const states[] = {"opening", "ready", "draining"};
    memset(out, 0, sizeof(*out));
    out->version = BLOBD_VERSION;
    out->state = states[srv_state(s)];
    out->uptime_seconds = (double)(server_mono_ns() - s->started_ns) / 1e9;
    if (srv_state(s) != SRV_OPENING && s->st) {
        out->store_open = 1;
        store_get_stats(s->st, &out->store);
        out->store_failed = store_failed(s->st) != 0;
    }
    metrics_snapshot(&s->metrics, &out->http);
    out->http.threads = s->cfg.http_threads;
    out->http.max_connections = s->cfg.max_connections;
    out->http.max_connections_per_client = s->cfg.max_per_client;
    out->http.fd_limit = s->conns.fd_limit;
    out->http.header_timeouts = atomic_load(&s->conns.header_timeouts);
    out->http.bodies_abandoned = atomic_load(&s->conns.bodies_abandoned);
    out->http.rejected_per_client = atomic_load(&s->conns.per_client_rejects);
    out->not_ready = srv_state(s) == SRV_READY && s->st &&
                     not_ready_reason(s) >= 0 && !out->store_failed;
    cache_stats(s->cache, &out->cache_bytes, &out->cache_limit,
                &out->cache_hits, &out->cache_misses);
    out->mem_used = atomic_load(&s->budget.used);
    out->mem_limit = s->budget.limit;
    out->mem_connections =
        out->http.open_connections * (uint64_t)s->cfg.conn_memory_kib * 1024;
}

static enum MHD_Result stats_answer(struct req *r)
{
    struct api_server_stats ss;
    server_collect_stats(r->srv, &ss);
    return send_json(r, 200, api_json_stats(&ss));
}

static enum MHD_Result metrics_answer(struct req *r)
{
    struct api_server_stats ss;
    size_t len = 0;
    server_collect_stats(r->srv, &ss);
    char *text = api_metrics_text(&ss, &len);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    return queue(r, 200, resp, len);
}

static enum MHD_Result compact_answer(struct req *r)
{
    struct store_stats ss;
    store_get_stats(r->srv->st, &ss);
    if (ss.held)
        return send_error(r, API_ERR_HELD, NULL);
    int rc = store_request_compaction(r->srv->st);
    if (rc < 0)
        return send_error(r, api_store_error(rc), NULL);
    server_log(LOG_INFO, "compaction requested over HTTP");
    return send_json(r, 202, strdup("{\"compaction\":\"requested\"}"));
}

static enum MHD_Result hold_answer(struct req *r)
{
    struct server *s = r->srv;
    char body[128];
    if (r->m == API_M_DELETE) {
        /* Idempotent: releasing when nothing is held is not an error. */
        if (store_release(s->st) == 0)
            server_log(LOG_INFO, "hold released");
        return send_json(r, 200, strdup("{\"held\":false}"));
    }
    /* Flushes first (store_hold), so the files are consistent. */
    int rc = store_hold(s->st, s->cfg.hold_timeout * 1000u);
    if (rc < 0)
        return send_error(r, api_store_error(rc), NULL);
    server_log(LOG_INFO, "hold taken for %u s", s->cfg.hold_timeout);
    snprintf(body, sizeof(body), "{\"held\":true,\"expires_in_seconds\":%u}",
             s->cfg.hold_timeout);
    return send_json(r, 200, strdup(body));
}

/* GET and HEAD /: the status page, open to all (it asks for a token
 * itself).  The CSP lets in only the page's own inline blocks and requests
 * to this origin; no-cache because the page changes with the binary. */
static enum MHD_Result status_answer(struct req *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        server_status_html_len, (void *)server_status_html,
        MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/html; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "Content-Security-Policy", server_status_csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    return queue(r, 200, resp, server_status_html_len);
}

/* Auth (SPEC §4): 0 when the request may go on, else an error was
 * queued. */
static int check_auth(struct req *r, enum MHD_Result *ret)
{
    const struct server_access *a = &r->srv->access;
    enum api_role need = api_route_role(r->route.kind, r->m);
    if (!server_access_auth_on(a) || need == API_ROLE_NONE)
        return 0;
    const char *tok;
    size_t len;
    enum api_role have = API_ROLE_NONE;
    if (api_bearer(header(r, MHD_HTTP_HEADER_AUTHORIZATION), &tok, &len) == 0)
        have = server_access_role(a, tok, len);
    if (have == API_ROLE_NONE) {
        *ret = send_error(r, API_ERR_UNAUTHORIZED, NULL);
        return -1;
    }
    if (have < need) {
        *ret = send_error(r, API_ERR_FORBIDDEN, NULL);
        return -1;
    }
    return 0;
}

/* ---- the access handler ---- */

static enum MHD_Result first_call(struct req *r, const char *url)
{
    struct server *s = r->srv;
    int e = api_route(r->m, url, &r->route);
    enum MHD_Result ret;
    if (e != API_ERR_NO_ROUTE && check_auth(r, &ret) < 0)
        return ret; /* a known resource: no token, no further answer */
    if (e != 0)
        return send_error(r, (enum api_error)e, NULL);
    switch (r->route.kind) {
    case API_R_HEALTHZ:
    case API_R_READYZ:
        return health_answer(r);
    case API_R_ADMIN_STATS:
        return stats_answer(r);
    case API_R_METRICS:
        return metrics_answer(r);
    case API_R_STATUS:
        return status_answer(r);
    default:
        break;
    }
    switch (srv_state(s)) {
    case SRV_OPENING:
        return send_error(r, API_ERR_NOT_READY, NULL);
    case SRV_DRAINING:
        return send_error(r, API_ERR_DRAINING, NULL);
    default:
        break;
    }
    switch (r->route.kind) {
    case API_R_BLOB:
        if (r->m == API_M_PUT)
            return write_begin(r);
        if (r->m == API_M_DELETE)
            return delete_begin(r);
        return get_begin(r);
    case API_R_BLOBS:
        if (r->m == API_M_POST)
            return write_begin(r);
        return list_answer(r);
    case API_R_FLUSH:
        r->job = JOB_FLUSH;
        return submit(r);
    case API_R_ADMIN_COMPACT:
        return compact_answer(r);
    case API_R_ADMIN_HOLD:
        return hold_answer(r);
    default:
        return send_error(r, API_ERR_NO_ROUTE, NULL);
    }
}

static struct req *req_new(struct server *s, struct MHD_Connection *conn)
{
    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->srv = s;
    r->conn = conn;
    r->m = API_M_OTHER; /* until the headers are in: the library does not
                           say which method it refused */
    r->t0 = server_mono_ns();
    atomic_fetch_add(&s->inflight, 1);
    return r;
}

/* libmicrohttpd's URI log callback: the raw target, before the library
 * decodes it or splits off the query.  The request starts here. */
static void *on_target(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct server *s = cls;
    struct req *r = req_new(s, conn);
    if (!r)
        return NULL;
    r->target_err = api_check_target(uri);
    if (s->cfg.access_log)
        log_safe(r->url, sizeof(r->url), uri);
    return r;
}

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value)
{
    (void)kind;
    api_header_check_add(cls, key, value);
    return MHD_YES;
}

/* What libmicrohttpd 0.9.75 lets through: a decoded target, repeated or
 * conflicting framing headers, oversized headers.  0, or an error. */
static enum api_error request_refusal(struct req *r, const char *version)
{
    if (r->target_err != API_ERR_NONE)
        return r->target_err;
    struct api_header_check c;
    memset(&c, 0, sizeof(c));
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, check_header, &c);
    return api_header_verdict(&c, version && !strcmp(version, "HTTP/1.1"));
}

/* The first call: the headers are complete. */
static enum MHD_Result request_begin(struct req *r, const char *url,
                                     const char *method, const char *version)
{
    struct server *s = r->srv;
    r->begun = 1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->sc = ci ? ci->socket_context : NULL;
    server_conns_busy(r->sc);
    r->m = api_method_parse(method);
    if (s->cfg.access_log) {
        log_safe(r->method, sizeof(r->method), method);
        if (!r->url[0])
            log_safe(r->url, sizeof(r->url), url);
    }
    enum api_error e = request_refusal(r, version);
    if (e != API_ERR_NONE)
        return send_error(r, e, NULL);
    /* A request with a body is decided now, before the body is read
     * (413, 411, 412 early: libmicrohttpd then closes the connection,
     * which the unread body needs anyway).  Any other request waits for
     * the next call: libmicrohttpd closes the connection after a
     * response queued in the first call (H6). */
    if ((r->m == API_M_PUT || r->m == API_M_POST) && !strncmp(url, "/blobs", 6))
        return first_call(r, url);
    r->state = RQ_HEADERS;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    if (!r) { /* on_target could not allocate */
        r = req_new(s, conn);
        if (!r)
            return MHD_NO;
        *con_cls = r;
    }
    if (!r->begun)
        return request_begin(r, url, method, version);
    switch (r->state) {
    case RQ_HEADERS:
        if (*upload_size > 0) { /* a body nobody asked for: dropped */
            *upload_size = 0;
            return MHD_YES;
        }
        if (s->hooks && server_hooks_route(s, conn, url, method)) {
            r->state = RQ_DONE;
            return MHD_YES;
        }
        return first_call(r, url);
    case RQ_BODY:
        if (*upload_size > 0)
            return write_body(r, upload, upload_size);
        if (r->over)
            return MHD_YES; /* a 413 is queued */
        if (!r->chunked && r->got < r->expect)
            return MHD_YES; /* H2: an empty call is not the end */
        if (api_digests_check(&r->digests, r->frame, r->got) < 0)
            return send_error(r, API_ERR_DIGEST_MISMATCH, NULL);
        return submit(r);
    case RQ_DONE:
        if (*upload_size > 0) { /* a body nobody asked for: dropped */
            *upload_size = 0;
            return MHD_YES;
        }
        switch (r->job) { /* resumed with a result (H1) */
        case JOB_WRITE:
        case JOB_DELETE:
            return write_answer(r);
        case JOB_FLUSH:
            return flush_answer(r);
        case JOB_READ:
            return read_answer(r);
        default:
            return MHD_YES; /* answered already */
        }
    case RQ_WAIT: /* resumed before the completion: cannot happen (H1) */
    case RQ_NEW:  /* a body arrived after an answer in the first call */
    default:
        *upload_size = 0;
        return MHD_YES;
    }
}

/* The op a request's latency counts under, or API_OP_COUNT for none. */
static enum api_op req_op(const struct req *r)
{
    if (r->route.kind == API_R_FLUSH)
        return API_OP_FLUSH;
    if (r->route.kind == API_R_BLOBS && r->m == API_M_POST)
        return API_OP_PUT;
    if (r->route.kind != API_R_BLOB)
        return API_OP_COUNT;
    switch (r->m) {
    case API_M_PUT:
        return API_OP_PUT;
    case API_M_GET:
    case API_M_HEAD:
        return API_OP_GET;
    case API_M_DELETE:
        return API_OP_DELETE;
    default:
        return API_OP_COUNT;
    }
}

/* Counters and the access log line of a finished request. */
static void account(struct server *s, struct req *r,
                    struct MHD_Connection *conn,
                    enum MHD_RequestTerminationCode toe)
{
    uint64_t ns = server_mono_ns() - r->t0;
    int status = r->status ? r->status : 0;
    if (status) {
        metrics_request(&s->metrics, r->m, status, r->got, r->bytes_out);
        enum api_op op = req_op(r);
        if (op != API_OP_COUNT)
            metrics_latency(&s->metrics, op, ns);
    }
    if (!s->cfg.access_log)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char client[64];
    server_access_client(
        &s->access, ci ? ci->client_addr : NULL,
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-For"),
        client, sizeof(client));
    server_log(LOG_INFO, "access %s \"%s %.200s\" %d %zu %.3f ms%s", client,
               r->method, r->url, status, r->bytes_out, (double)ns / 1e6,
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                                                          : " (cut short)");
}

/* Copy src for a log line: bytes outside printable ASCII, '"' and '\\'
 * become %XX, so a decoded path can never start a new line or end the
 * quoted field early; cut to cap. */
static void log_safe(char *dst, size_t cap, const char *src)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *src && n + 4 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            dst[n++] = '%';
            dst[n++] = hex[c >> 4];
            dst[n++] = hex[c & 15];
        } else {
            dst[n++] = (char)c;
        }
    }
    dst[n] = '\0';
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->metrics.open_connections, 1);
        server_conns_open(s, conn, socket_ctx);
    } else {
        server_conns_close(s, socket_ctx);
        atomic_fetch_sub(&s->metrics.open_connections, 1);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct req *r = *con_cls;
    if (!r)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        server_log(LOG_DEBUG, "request ended early (code %d)", (int)toe);
    if (!r->status) { /* refused by libmicrohttpd itself (e.g. a bad
                         Content-Length): count what it sent */
        const union MHD_ConnectionInfo *hi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
        if (hi)
            r->status = (int)hi->http_status; /* 0 if none was sent */
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    server_conns_idle(s, ci ? ci->socket_context : NULL); /* C2 */
    account(s, r, conn, toe);
    frame_free(s, r->frame);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    server_log(LOG_DEBUG, "http: %s", buf);
}

int server_http_start(struct server *s, int listen_fd, char *err, size_t errlen)
{
    unsigned threads = s->cfg.http_threads;
    if (threads == 0) {
        /* The CPUs this process may run on (taskset, a container's
         * cpuset), not every CPU of the machine. */
        cpu_set_t set;
        long n = sched_getaffinity(0, sizeof(set), &set) == 0
                     ? CPU_COUNT(&set)
                     : sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
        s->cfg.http_threads = threads; /* reported in /admin/stats */
    }
    if (server_conns_fd_limit(s) < 0) {
        snprintf(err, errlen,
                 "the file descriptor limit leaves no room for "
                 "connections");
        return -1;
    }
    if (server_conns_start(s) < 0) {
        snprintf(err, errlen, "cannot start the connection watchdog");
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* The logger first: the library logs while it reads later options. */
    s->mhd = MHD_start_daemon(
        flags, 0, server_conns_accept, s, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_LISTEN_SOCKET,
        listen_fd, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)s->cfg.conn_memory_kib * 1024, MHD_OPTION_CONNECTION_TIMEOUT,
        s->cfg.connection_timeout, MHD_OPTION_URI_LOG_CALLBACK, on_target, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    if (!s->mhd) {
        server_conns_stop(s);
        snprintf(err, errlen, "libmicrohttpd failed to start");
        return -1;
    }
    return 0;
}

void server_http_stop(struct server *s)
{
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    server_conns_stop(s); /* every connection has reported its close */
}
