/*
 * api.h - the blobd HTTP API as socket-free code: routing, GUIDs, entity
 * tags and preconditions, Range, body length rules, query values, the
 * error table and the JSON documents.  It never includes libmicrohttpd:
 * the server hands it header values as C strings (NULL when absent) and
 * turns its answers into responses.  docs/api.md is the user's view.
 *
 * Conventions: functions return 0 or a negative value; strings they
 * allocate are malloc'ed and freed by the caller.  Everything here is
 * reentrant and safe to call from any thread.
 *
 * Invariants:
 *  I1. A GUID from a URL or a query is accepted only as 32 hex digits (any
 *      case) or the dashed 8-4-4-4-12 form; nothing else, no prefix, no
 *      suffix.  Output always uses the canonical form (32 lowercase hex).
 *  I2. An entity tag matches only a version of ours ("<gen>-<n>", both
 *      decimal, gen >= 1); any other tag is kept but never matches.
 *  I3. A Range value is either served exactly as RFC 9110 §14 says, or
 *      ignored (whole blob, 200): never a partial guess.
 */
#ifndef BLOBD_API_H
#define BLOBD_API_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define API_GUID_SIZE STORE_GUID_SIZE
#define API_GUID_STRLEN 32            /* canonical form, without the NUL */
#define API_MAX_BODY STORE_FRAME_SIZE /* 524 288 bytes */
#define API_LIST_DEFAULT 1000u
#define API_LIST_MAX STORE_LIST_MAX /* larger limits are clamped */
#define API_RETRY_AFTER_S 1         /* Retry-After on every 503 */

/* ---- errors ----
 * X(name, status, code, message): every error response is
 * {"error": "<code>", "message": "<message>"} with this status.  Codes are
 * stable: clients and tests may key on them. */
#define API_ERRORS(X)                                                          \
    X(BAD_GUID, 400, "bad_guid",                                               \
      "a GUID is 32 hex digits or the dashed 8-4-4-4-12 form")                 \
    X(BAD_QUERY, 400, "bad_query", "a query parameter has a bad value")        \
    X(BAD_REQUEST, 400, "bad_request", "the request is malformed")             \
    X(BAD_LENGTH, 400, "bad_length", "the Content-Length header is invalid")   \
    X(BAD_PRECONDITION, 400, "bad_precondition",                               \
      "an If-Match or If-None-Match header is malformed")                      \
    X(NOT_FOUND, 404, "not_found", "no such blob")                             \
    X(NO_ROUTE, 404, "no_route", "no such resource")                           \
    X(METHOD_NOT_ALLOWED, 405, "method_not_allowed",                           \
      "the method is not allowed on this resource")                            \
    X(TIMEOUT, 408, "timeout", "the request took too long to arrive")          \
    X(LENGTH_REQUIRED, 411, "length_required",                                 \
      "a body needs Content-Length or chunked transfer encoding")              \
    X(PRECONDITION_FAILED, 412, "precondition_failed",                         \
      "a precondition did not hold")                                           \
    X(TOO_LARGE, 413, "too_large", "a blob is at most 524288 bytes")           \
    X(URI_TOO_LONG, 414, "uri_too_long", "the request URI is too long")        \
    X(RANGE_NOT_SATISFIABLE, 416, "range_not_satisfiable",                     \
      "no requested range lies within the blob")                               \
    X(HEADERS_TOO_LARGE, 431, "headers_too_large",                             \
      "the request headers are too large")                                     \
    X(INTERNAL, 500, "internal", "internal error")                             \
    X(CORRUPT_DATA, 500, "corrupt_data",                                       \
      "the stored data failed its checksum and is not served")                 \
    X(IO_ERROR, 500, "io_error", "reading the data file failed")               \
    X(OVERLOADED, 503, "overloaded", "the server is overloaded, retry later")  \
    X(STORE_FAILED, 503, "store_failed",                                       \
      "the store refuses writes after a failed sync; restart to recover")      \
    X(READ_ONLY, 503, "read_only", "the server was started read-only")         \
    X(NOT_READY, 503, "not_ready", "the store is still opening")               \
    X(DRAINING, 503, "draining", "the server is shutting down")                \
    X(NO_SPACE, 507, "no_space", "not enough space on the data filesystem")    \
    X(UNAUTHORIZED, 401, "unauthorized",                                       \
      "a bearer token is required (Authorization: Bearer <token>)")            \
    X(FORBIDDEN, 403, "forbidden", "the token's role does not allow this")     \
    X(BAD_DIGEST, 400, "bad_digest",                                           \
      "a Content-MD5 or Content-Digest header is malformed")                   \
    X(DIGEST_MISMATCH, 400, "digest_mismatch",                                 \
      "the body does not match its Content-MD5 or Content-Digest")             \
    X(HELD, 409, "held", "a hold is in place: compaction waits for release")   \
    X(OVER_BUDGET, 503, "over_budget",                                         \
      "the memory budget is spent, retry later")                               \
    X(BAD_URI, 400, "bad_uri",                                                 \
      "the request target holds a NUL, a control byte or an escaped path")     \
    X(BAD_FRAMING, 400, "bad_framing",                                         \
      "conflicting Content-Length or Transfer-Encoding headers")               \
    X(BAD_HEADER, 400, "bad_header",                                           \
      "a header name is malformed or an HTTP/1.1 request has no Host")         \
    X(UNSUPPORTED_TE, 501, "unsupported_transfer_encoding",                    \
      "the only transfer coding accepted is a single chunked")                 \
    X(WRITE_FAILED, 500, "write_failed",                                       \
      "writing the blob to the data file failed; nothing was stored")

enum api_error {
    API_ERR_NONE = 0, /* not an error: api_route's "allowed" */
#define API_X_ENUM(name, status, code, msg) API_ERR_##name,
    API_ERRORS(API_X_ENUM)
#undef API_X_ENUM
        API_ERR_COUNT
};

int api_error_status(enum api_error e);
const char *api_error_code(enum api_error e);
const char *api_error_message(enum api_error e);
/* {"error": code, "message": message or the table's}; NULL on ENOMEM. */
char *api_error_json(enum api_error e, const char *message);
/* The standard reason phrase of an HTTP status ("Not Found"), or "". */
const char *api_status_reason(int status);

/* ---- GUIDs ---- */

/* Parse s[0..len) (I1).  0 or -1. */
int api_guid_parse(const char *s, size_t len, uint8_t out[API_GUID_SIZE]);
/* Canonical form: 32 lowercase hex digits and a NUL. */
void api_guid_format(const uint8_t g[API_GUID_SIZE],
                     char out[API_GUID_STRLEN + 1]);
/* A new server-chosen GUID: the first 6 bytes are now_ms (milliseconds
 * since the epoch) big-endian, the other 10 come from getrandom(2), so
 * byte order is creation order across milliseconds.  0 or -errno. */
int api_guid_new(uint64_t now_ms, uint8_t out[API_GUID_SIZE]);

/* ---- routes ---- */

enum api_method {
    API_M_GET = 0,
    API_M_HEAD,
    API_M_PUT,
    API_M_POST,
    API_M_DELETE,
    API_M_OTHER
};
enum api_method api_method_parse(const char *method);

enum api_route_kind {
    API_R_NONE = 0,      /* no such resource: 404 no_route */
    API_R_BLOB,          /* /blobs/{guid}: GET HEAD PUT DELETE */
    API_R_BLOBS,         /* /blobs: GET (list) POST (create) */
    API_R_FLUSH,         /* /flush: POST */
    API_R_HEALTHZ,       /* /healthz: GET HEAD */
    API_R_READYZ,        /* /readyz: GET HEAD */
    API_R_ADMIN_STATS,   /* /admin/stats: GET */
    API_R_ADMIN_COMPACT, /* /admin/compact: POST */
    API_R_ADMIN_HOLD,    /* /admin/hold: POST (hold or renew) DELETE */
    API_R_METRICS,       /* /metrics: GET */
    API_R_STATUS         /* /: GET HEAD (the status page) */
};

struct api_route {
    enum api_route_kind kind;
    uint8_t guid[API_GUID_SIZE]; /* API_R_BLOB */
    const char *allow; /* the Allow header of the resource ("GET, HEAD") */
};

/*
 * Route a request for path (the decoded path, without the query).
 * Returns 0 when the method is allowed on the resource, else the error to
 * answer with: API_ERR_NO_ROUTE, API_ERR_BAD_GUID (the path is /blobs/
 * followed by something that is not a GUID, "/blobs/" and "/blobs/x/y"
 * included), API_ERR_METHOD_NOT_ALLOWED (r->allow says what is).  The
 * resource is decided first: an unknown path is NO_ROUTE and a bad GUID
 * BAD_GUID whatever the method.  Paths match exactly (case-sensitive, no
 * trailing-slash variants).  r->kind and r->allow are set in every case
 * but NO_ROUTE (kind API_R_NONE, allow NULL); r->guid only on success.
 */
int api_route(enum api_method m, const char *path, struct api_route *r);

/* ---- what the HTTP library lets through ----
 * libmicrohttpd 0.9.75 decodes the target before the router sees it and
 * takes the first of repeated framing headers; these checks run on what
 * arrived instead. */
#define API_TARGET_MAX 4096        /* bytes of request target: else 414 */
#define API_HEADER_BYTES_MAX 16384 /* names, values, ": " and CRLFs: 431 */
#define API_HEADER_FIELDS_MAX 64   /* header lines: else 431 */

/*
 * The raw request target as received: API_ERR_NONE, API_ERR_URI_TOO_LONG,
 * or API_ERR_BAD_URI for any byte outside visible ASCII, any
 * percent-escape in the path (no route needs one; decoded slashes and NULs
 * would change what is addressed), and in the query a malformed escape or
 * one that decodes to a NUL or control byte.
 */
enum api_error api_check_target(const char *raw);

/* Header lines of one request, fed one at a time. */
struct api_header_check {
    unsigned fields;
    size_t bytes;
    unsigned content_length; /* Content-Length lines */
    unsigned transfer_encoding;
    int te_not_chunked; /* some Transfer-Encoding value is not "chunked" */
    int bad_name;       /* a name that is not an RFC 9110 token */
    int host;
};
void api_header_check_add(struct api_header_check *c, const char *name,
                          const char *value);
/*
 * The verdict: API_ERR_NONE, API_ERR_HEADERS_TOO_LARGE (431),
 * API_ERR_BAD_HEADER (a malformed name; no Host in HTTP/1.1),
 * API_ERR_UNSUPPORTED_TE (501: anything but one "chunked"),
 * API_ERR_BAD_FRAMING (Content-Length repeated, or with a
 * Transfer-Encoding).  http11: the request said HTTP/1.1.
 */
enum api_error api_header_verdict(const struct api_header_check *c, int http11);

/* ---- entity tags and preconditions ---- */

#define API_ETAG_MAX 48 /* room for "\"<gen>-<n>\"" and a NUL */
#define API_ETAGS_MAX 16

/* A parsed If-Match / If-None-Match value: "*" or a list of tags. */
struct api_etags {
    int present; /* the header was sent */
    int any;     /* "*" */
    size_t n;    /* tags kept (at most API_ETAGS_MAX) */
    struct {
        uint64_t version; /* ours (I2), else 0 */
        int ours;         /* the tag is "<gen>-<n>" of ours */
        int weak;         /* W/ prefix */
    } v[API_ETAGS_MAX];
};

/* The strong ETag of a version: "\"<gen>-<n>\"". */
void api_etag(uint64_t version, char out[API_ETAG_MAX]);
/*
 * Parse a header value (NULL = absent: present 0).  Returns 0 or -1 when
 * the value is not "*" or a comma-separated list of entity tags (RFC 9110
 * §8.8.3: optional W/ then a quoted string of etagc; OWS around elements,
 * empty elements skipped).  A list with no tag at all, "*" inside a list,
 * or more than API_ETAGS_MAX tags is -1 as well.  A tag is ours only if
 * its text is exactly what api_etag writes (strong comparison is a string
 * comparison: "01-2" is not "1-2").
 */
int api_etags_parse(const char *value, struct api_etags *out);
/* Does version match a tag of e?  strong: weak tags never match (If-Match);
 * else W/ is ignored (If-None-Match).  "*" matches any version. */
int api_etags_match(const struct api_etags *e, uint64_t version, int strong);

/* The state of a blob a precondition is decided against. */
struct api_cur {
    int exists;
    uint64_t version;
};

/* The values are the statuses; none is 1, which api_cond_write returns
 * for "look the blob up". */
enum api_cond {
    API_COND_OK = 0,
    API_COND_FAILED = 412,      /* 412 */
    API_COND_NOT_MODIFIED = 304 /* 304 (GET and HEAD only) */
};

/*
 * GET/HEAD (RFC 9110 §13.2.2): If-Match present and not matching (strong;
 * an absent blob matches nothing, "*" needs it to exist) -> FAILED; else
 * If-None-Match present and matching (weak; "*" matches an existing blob)
 * -> NOT_MODIFIED; else OK.  An absent blob with no failing condition is
 * OK: the caller answers 404.  NULL etags = absent headers; NULL cur = an
 * absent blob.
 */
enum api_cond api_cond_read(const struct api_etags *if_match,
                            const struct api_etags *if_none_match,
                            const struct api_cur *cur);

/*
 * PUT/POST/DELETE: turn the conditions into one store precondition that
 * the I/O thread decides atomically with the change.
 *
 * Without cur (NULL) it answers the cases that need no lookup:
 *   none                         -> 0, STORE_PRE_NONE
 *   If-Match: *                  -> 0, STORE_PRE_EXISTS
 *   If-Match: one tag of ours, strong, no If-None-Match
 *     (foreign and weak tags beside it never match and are ignored)
 *                                -> 0, STORE_PRE_VERSION
 *   If-Match with no strong tag of ours -> API_COND_FAILED
 *   If-None-Match: *, no If-Match -> 0, STORE_PRE_ABSENT
 *   anything else                -> 1: look the blob up and call again
 *                                   with cur.
 * With cur it evaluates both headers against cur as api_cond_read does
 * (a matching If-None-Match is FAILED, never NOT_MODIFIED, for writes)
 * and pins the answer to that state: STORE_PRE_VERSION cur->version or
 * STORE_PRE_ABSENT, so a change that slips in between fails with 412.
 * A case of the list above that needs no lookup is answered as without
 * cur even when cur is given.
 * Returns 0 (pre set), 1 (needs cur) or API_COND_FAILED (412, not 1).
 */
int api_cond_write(const struct api_etags *if_match,
                   const struct api_etags *if_none_match,
                   const struct api_cur *cur, struct store_precond *pre);

/* If-Range (RFC 9110 §13.1.5): 1 when the Range header applies: value
 * NULL, or a strong tag of ours equal to version (one tag, OWS around it
 * allowed).  A date, a weak tag, a list or another tag -> 0 (serve the
 * whole blob). */
int api_if_range(const char *value, uint64_t version);

/* ---- Range ---- */

#define API_RANGES_MAX 16 /* more ranges than this -> ignored (200) */

struct api_range {
    uint64_t first, last; /* inclusive, within the blob */
};

enum api_range_kind {
    API_RANGE_NONE = 0,     /* no header, invalid or abusive: 200 whole */
    API_RANGE_SINGLE,       /* 206 with Content-Range: r[0] */
    API_RANGE_MULTI,        /* 206 multipart/byteranges: r[0..n) */
    API_RANGE_UNSATISFIABLE /* 416 with Content-Range: bytes * /len */
};

struct api_ranges {
    enum api_range_kind kind;
    size_t n;
    struct api_range r[API_RANGES_MAX];
};

/*
 * Decide a Range header (value NULL = absent) against a blob of len bytes.
 * Syntax (RFC 9110 §14.1.1): "bytes=" then a comma-separated list (OWS
 * around elements, empty elements allowed) of "a-b", "a-" or "-n" with
 * decimal a, b, n.  Unit name case-insensitive; no space around "=".
 *  - unparseable (a number that overflows uint64 included, or no range at
 *    all as in "bytes=" or "bytes=,"), another unit, any "a-b" with b < a,
 *    or more than API_RANGES_MAX ranges (satisfiable or not): NONE
 *    (ignored).
 *  - "a-b" with a >= len, "a-" with a >= len, "-0": unsatisfiable, dropped;
 *    b >= len is cut to len - 1; "-n" is the last min(n, len) bytes.
 *  - nothing satisfiable left: UNSATISFIABLE (a 0-byte blob satisfies no
 *    range).
 *  - exactly one left: SINGLE.
 *  - several left: NONE if any two overlap or if their total is larger
 *    than len (the abuse limits); else MULTI, in the order the client gave
 *    them.
 */
void api_range_parse(const char *value, uint64_t len, struct api_ranges *out);

/* "bytes a-b/len", or "bytes * /len" (no space) when r is NULL.  Returns
 * the length written (snprintf). */
int api_content_range(char *buf, size_t cap, const struct api_range *r,
                      uint64_t len);

/* ---- multipart/byteranges ---- */

#define API_BOUNDARY_LEN 32
#define API_PART_HEAD_MAX 192

/* A fresh random boundary: API_BOUNDARY_LEN hex digits and a NUL. */
int api_boundary_new(char out[API_BOUNDARY_LEN + 1]);
/* The Content-Type of a multipart response:
 * "multipart/byteranges; boundary=<b>". */
int api_multipart_type(char *buf, size_t cap, const char *boundary);
/* The text before part i's data:
 *   [CRLF if i > 0] "--" b CRLF "Content-Type: application/octet-stream"
 *   CRLF "Content-Range: bytes a-b/len" CRLF CRLF
 * and the closing text CRLF "--" b "--" CRLF.  Both return the length
 * (as snprintf: when it is >= cap the text was cut; API_PART_HEAD_MAX is
 * enough for an API_BOUNDARY_LEN boundary). */
size_t api_multipart_part_head(char *buf, size_t cap, const char *boundary,
                               size_t i, const struct api_range *r,
                               uint64_t len);
size_t api_multipart_tail(char *buf, size_t cap, const char *boundary);

/* ---- request bodies ---- */

enum api_body {
    API_BODY_LENGTH = 0,      /* Content-Length given and <= API_MAX_BODY */
    API_BODY_CHUNKED,         /* count while reading, stop past API_MAX_BODY */
    API_BODY_TOO_LARGE,       /* 413 before reading anything */
    API_BODY_LENGTH_REQUIRED, /* 411 */
    API_BODY_BAD_LENGTH       /* 400 bad_length */
};

/* Decide from the headers (NULL = absent) how a PUT/POST body arrives;
 * *len gets the Content-Length (0 unless LENGTH or TOO_LARGE; UINT64_MAX
 * when it overflows).  Content-Length is 1*DIGIT (no sign, no spaces, no
 * list, leading zeros allowed): a digit string above API_MAX_BODY, even
 * one that overflows uint64, is TOO_LARGE; anything else BAD_LENGTH.
 * Transfer-Encoding "chunked" (case-insensitive, OWS around) wins over
 * Content-Length; any other Transfer-Encoding ("gzip, chunked" included:
 * we decode no coding) is LENGTH_REQUIRED.  The server runs
 * api_header_verdict first, which refuses a Transfer-Encoding other than
 * one exact "chunked" and one together with Content-Length, so there only
 * the first and the last rules are reached. */
enum api_body api_body_kind(const char *content_length,
                            const char *transfer_encoding, uint64_t *len);

/* ---- query values ---- */

/* "true"/"1" -> 1, "false"/"0" -> 0, NULL -> 0; else -1 (case-sensitive;
 * "" is -1). */
int api_parse_bool(const char *s, int *out);
/* limit: NULL -> API_LIST_DEFAULT; 1..∞ decimal (leading zeros allowed),
 * clamped to API_LIST_MAX; 0, "", a sign, garbage or overflow -> -1. */
int api_parse_limit(const char *s, size_t *out);

/* ---- store results to HTTP ---- */

/* A write/delete/flush completion: the status to answer with and, for
 * errors, *err (err may be NULL; untouched on success).  CREATED 201,
 * REPLACED and DELETED 204, NOT_FOUND 404, PRECONDITION_FAILED 412,
 * NO_SPACE 507, OVERLOADED 503; STORE_FAILED 503 store_failed, but by rc
 * READONLY 503 read_only, STOPPED 503 draining, TOO_LARGE 413, INVALID
 * 500 internal; NONE with rc 0 is 200 (a flush), with rc != 0 as
 * api_store_error(rc). */
int api_outcome_status(enum store_outcome o, int rc, enum api_error *err);
/* A store error code (from a submit or a read) to an API error:
 * NOT_FOUND, CHECKSUM -> corrupt_data, NOSPACE (and -ENOSPC, -EDQUOT) ->
 * no_space, FAILED -> store_failed, READONLY, OVERLOADED, STOPPED ->
 * draining, PRECONDITION, TOO_LARGE; -ENOMEM -> internal; any other
 * -errno -> io_error; everything else (0 included) -> internal. */
enum api_error api_store_error(int rc);

/* ---- JSON documents (cJSON, unformatted; NULL on ENOMEM) ---- */

/* {"blobs": [{"guid", "size", "etag"}...], "next": "<guid>"}: next (the
 * last GUID of the page) only when more entries remain. */
char *api_json_list(const struct store_blob_info *v, size_t n, int more);
/* {"guid", "size", "etag", "durable"}: the body of a 201. */
char *api_json_created(const uint8_t guid[API_GUID_SIZE], uint32_t size,
                       uint64_t version, int durable);
/* {"records", "log_bytes", "data_synced", "duration_seconds",
 *  "compaction_started"}: the body of POST /flush. */
char *api_json_flush(const struct store_flush_result *r);

/* ---- auth (SPEC §4) ---- */

enum api_role {
    API_ROLE_NONE = 0, /* open to everyone */
    API_ROLE_READ,
    API_ROLE_WRITE,
    API_ROLE_ADMIN /* each role includes the ones before it */
};

/* The role a request needs: /healthz, /readyz, / (the status page's HTML;
 * the stats it polls need read): none; GET/HEAD of blobs
 * and listings, /admin/stats, /metrics: read; PUT, POST, DELETE of blobs
 * and POST /flush: write; /admin/compact and /admin/hold: admin. */
enum api_role api_route_role(enum api_route_kind kind, enum api_method m);
/* Parse "Authorization: Bearer <token>" (scheme case-insensitive, one or
 * more spaces, token68 characters).  0 with *tok and *len pointing into
 * value, or -1 (absent or malformed). */
int api_bearer(const char *value, const char **tok, size_t *len);
/* Compare in time that depends only on the lengths' maximum, never on
 * where the bytes differ: 1 if equal. */
int api_token_equal(const char *a, size_t alen, const char *b, size_t blen);

/* ---- upload digests (nettle) ---- */

struct api_digests {
    int has_md5, has_sha256;
    uint8_t md5[16];
    uint8_t sha256[32];
};

/*
 * Parse Content-MD5 (base64 of 16 bytes, RFC 1864) and Content-Digest
 * (RFC 9530: a dictionary of algorithm=:base64:, of which sha-256 is
 * checked and unknown algorithms are ignored).  NULL = absent.  0, or -1
 * when a header is present but malformed (wrong base64, wrong length,
 * bad syntax): 400 bad_digest.
 */
int api_digests_parse(const char *content_md5, const char *content_digest,
                      struct api_digests *d);
/* 0 when every digest present matches data[0..len), else -1 (400
 * digest_mismatch: nothing stored). */
int api_digests_check(const struct api_digests *d, const void *data,
                      size_t len);

/* ---- observability: /admin/stats and /metrics ---- */

/* Latency histograms: upper bounds in seconds (a last +Inf bucket is
 * implicit). */
#define API_HIST_BUCKETS 14
extern const double api_hist_bounds[API_HIST_BUCKETS];

struct api_hist {
    uint64_t count;
    double sum;                            /* seconds */
    uint64_t bucket[API_HIST_BUCKETS + 1]; /* per bucket, not cumulative;
                                              the last is +Inf */
};
/* Add one observation. */
void api_hist_add(struct api_hist *h, double seconds);

enum api_op {
    API_OP_PUT = 0,
    API_OP_GET,
    API_OP_DELETE,
    API_OP_FLUSH,
    API_OP_COUNT
};

/* What the server counts (a snapshot). */
struct api_http_stats {
    uint64_t requests[API_M_OTHER + 1][5]; /* [method][status / 100 - 1] */
    uint64_t bytes_in, bytes_out;          /* bodies */
    uint64_t open_connections;
    uint64_t checksum_failures; /* reads refused: stored CRC32C mismatch */
    uint64_t read_errors;       /* reads failed with an I/O error */
    uint64_t write_refusals[API_ERR_COUNT]; /* writes answered with an
                                               error, by code */
    /* connections (limits, and what was closed for them) */
    uint64_t threads; /* HTTP threads */
    uint64_t max_connections, max_connections_per_client, fd_limit;
    uint64_t header_timeouts;     /* closed: headers not in time */
    uint64_t rejected_per_client; /* refused: over the per-client limit */
    uint64_t bodies_abandoned;    /* closed: the client left mid-body */
    struct api_hist latency[API_OP_COUNT];
};

struct api_server_stats {
    const char *version;
    const char *state; /* "opening", "ready", "draining" */
    double uptime_seconds;
    int store_open;   /* 0 while opening: store is all zero */
    int store_failed; /* a sticky failure: writes are refused */
    int not_ready;    /* another reason /readyz is 503 (read-only, below
                         the headroom) */
    struct store_stats store;
    uint64_t cache_bytes, cache_limit, cache_hits, cache_misses;
    uint64_t mem_used, mem_limit;
    uint64_t mem_connections; /* the HTTP library's per-connection buffers,
                                 outside the budget */
    struct api_http_stats http;
};

/*
 * The /admin/stats document: fixed sections with stable snake_case keys
 * (SPEC §4): process, manifest, compaction, flush, data_file, io, cache,
 * memory, http.  NULL on ENOMEM.
 */
char *api_json_stats(const struct api_server_stats *s);
/* The same numbers as Prometheus text exposition (version 0.0.4): names
 * prefixed blobd_, counters _total, durations _seconds, histograms for
 * PUT, GET, DELETE and flush, labels from fixed sets only.  NULL on
 * ENOMEM; *len gets the length. */
char *api_metrics_text(const struct api_server_stats *s, size_t *len);

#endif
