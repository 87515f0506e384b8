/*
 * api_obs.c - observability as socket-free code: the latency histograms,
 * the /admin/stats document (cJSON) and the /metrics text (Prometheus
 * exposition format 0.0.4).  Both documents are built from one snapshot,
 * struct api_server_stats, that the server fills; api.h is the manual and
 * SPEC §4 the list of sections.
 *
 * Owns nothing: no state, no locks, no syscalls; every function is
 * reentrant.  api_hist_add is not atomic: the caller serialises updates of
 * one histogram.
 *
 * Invariants:
 *  O1. Both documents come from tables (stats_* and metric_gauges below):
 *      a number is named once per document, and a field the store has not
 *      filled yet (store_open 0) is read from a zeroed copy, so every key
 *      and series is present in every state.
 *  O2. A document is built whole or not at all: a failed allocation (cJSON
 *      or the text buffer) frees everything and returns NULL.
 *  O3. The metrics text grows in one buffer capped at METRICS_CAP; every
 *      write goes through obuf_reserve, so no write can pass its end.
 *  O4. Label values come from fixed sets (methods, status classes, error
 *      codes, operations) except the version, and every label value is
 *      escaped (backslash, double quote, newline) as the format says.
 *  O5. A histogram's buckets are written cumulative, and its +Inf bucket
 *      and _count are the same number (the sum of all buckets), so the
 *      exposition is consistent even if count and buckets were caught
 *      between two updates.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"

const double api_hist_bounds[API_HIST_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10};

void api_hist_add(struct api_hist *h, double seconds)
{
    size_t i = 0;
    if (!(seconds >= 0)) /* negative or NaN: a clock step, count it as 0 */
        seconds = 0;
    while (i < API_HIST_BUCKETS && seconds > api_hist_bounds[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += seconds;
}

static const char *const method_names[API_M_OTHER + 1] = {
    "GET", "HEAD", "PUT", "POST", "DELETE", "OTHER"};
static const char *const class_names[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const op_names[API_OP_COUNT] = {"put", "get", "delete",
                                                   "flush"};

/* ---- field tables (O1) ----
 * Offsets are into struct api_server_stats, store fields included
 * (offsetof(struct api_server_stats, store.entries)). */

enum field_kind {
    F_U64,      /* uint64_t */
    F_BOOL,     /* int, as a boolean */
    F_DOUBLE,   /* double */
    F_NS,       /* uint64_t nanoseconds, as seconds */
    F_MS,       /* int64_t unix milliseconds; <= 0 means never (null) */
    F_STR,      /* char array, always a string */
    F_STR_NULL, /* char array, null when empty */
    F_PSTR,     /* const char *, null when NULL */
    F_GROUP     /* an object of the fields in sub[0..nsub) */
};

struct field {
    const char *key;
    enum field_kind kind;
    size_t off, size; /* where the member is and its sizeof */
    const struct field *sub;
    size_t nsub;
};

#define FS(key, kind, member)                                                  \
    {                                                                          \
        key, kind, offsetof(struct api_server_stats, member),                  \
            sizeof(((struct api_server_stats *)0)->member), NULL, 0            \
    }
#define FST(key, kind, member) FS(key, kind, store.member)
#define FGROUP(key, table)                                                     \
    {                                                                          \
        key, F_GROUP, 0, 0, table, NELEM(table)                                \
    }
/* The longest char array field (F_STR, F_STR_NULL). */
#define FIELD_STR_MAX sizeof(((struct store_stats *)0)->last_sticky_error)
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct field stats_process[] = {
    FS("version", F_PSTR, version),
    FS("state", F_PSTR, state),
    FS("uptime_seconds", F_DOUBLE, uptime_seconds),
};

static const struct field stats_free_slots[] = {
    FST("singles", F_U64, free_singles),
    FST("ranges", F_U64, free_ranges),
    FST("total", F_U64, free_total),
};

static const struct field stats_manifest[] = {
    FST("entries", F_U64, entries),
    FST("next_slot", F_U64, next_slot),
    FGROUP("free_slots", stats_free_slots),
    FST("pending_deltas", F_U64, pending_deltas),
    FST("pending_free", F_U64, pending_free),
    FST("pinned", F_U64, pinned),
    FST("log_bytes", F_U64, log_bytes),
    FST("log_records", F_U64, log_records),
    FST("snapshot_bytes", F_U64, snapshot_bytes),
    FST("generation", F_U64, generation),
    FST("index_bytes", F_U64, index_bytes),
    FST("uuid", F_STR, uuid),
    FST("torn_tail_found", F_BOOL, torn_tail_found),
    FST("torn_tail_offset", F_U64, torn_tail_offset),
};

static const struct field stats_compaction[] = {
    FST("count", F_U64, compactions),
    FST("running", F_BOOL, compaction_running),
    FST("last_unix_ms", F_MS, compaction_last_unix_ms),
    FST("last_duration_seconds", F_NS, compaction_last_ns),
    FST("bytes_before", F_U64, compaction_bytes_before),
    FST("bytes_after", F_U64, compaction_bytes_after),
    FST("failures", F_U64, compaction_failures),
};

static const struct field stats_flush[] = {
    FST("count", F_U64, flushes),
    FST("last_unix_ms", F_MS, flush_last_unix_ms),
    FST("last_duration_seconds", F_NS, flush_last_ns),
    FST("in_progress", F_BOOL, flush_in_progress),
    FST("needs_flush", F_BOOL, needs_flush),
    FST("unflushed_blobs", F_U64, unflushed_blobs),
    FST("unflushed_bytes", F_U64, unflushed_bytes),
    FST("failures", F_U64, flush_failures),
    FS("failed", F_BOOL, store_failed),
    FST("last_sticky_error", F_STR_NULL, last_sticky_error),
};

static const struct field stats_data_file[] = {
    FST("size_bytes", F_U64, data_file_bytes),
    FST("preallocated_slots", F_U64, preallocated_slots),
    FST("free_bytes", F_U64, fs_free_bytes),
    FST("headroom_bytes", F_U64, headroom),
};

static const struct field stats_io[] = {
    FST("backend", F_STR, backend),
    FST("backend_note", F_STR_NULL, backend_note),
    FST("o_direct", F_BOOL, direct),
    FST("queue_depth", F_U64, queue_depth),
    FST("registered_buffers", F_U64, registered_buffers),
    FST("registered_buffers_in_use", F_U64, registered_buffers_in_use),
    FST("read_only", F_BOOL, read_only),
    FST("held", F_BOOL, held),
    FST("holds_expired", F_U64, holds_expired),
    FST("data_writes", F_U64, data_writes),
    FST("data_write_calls", F_U64, data_write_calls),
    FST("writes_superseded", F_U64, writes_superseded),
    FST("data_syncs", F_U64, data_syncs),
    FST("log_syncs", F_U64, log_syncs),
};

static const struct field stats_cache[] = {
    FS("bytes", F_U64, cache_bytes),
    FS("limit_bytes", F_U64, cache_limit),
    FS("hits", F_U64, cache_hits),
    FS("misses", F_U64, cache_misses),
};

static const struct field stats_memory[] = {
    FS("used_bytes", F_U64, mem_used),
    FS("limit_bytes", F_U64, mem_limit),
    FS("connections_bytes", F_U64, mem_connections),
};

static const struct field stats_http_totals[] = {
    FS("threads", F_U64, http.threads),
    FS("bytes_in", F_U64, http.bytes_in),
    FS("bytes_out", F_U64, http.bytes_out),
    FS("open_connections", F_U64, http.open_connections),
    FS("checksum_failures", F_U64, http.checksum_failures),
    FS("read_errors", F_U64, http.read_errors),
    FS("max_connections", F_U64, http.max_connections),
    FS("max_connections_per_client", F_U64, http.max_connections_per_client),
    FS("fd_limit", F_U64, http.fd_limit),
    FS("header_timeouts", F_U64, http.header_timeouts),
    FS("rejected_per_client", F_U64, http.rejected_per_client),
    FS("bodies_abandoned", F_U64, http.bodies_abandoned),
};

/* The sections in document order; http is finished by hand. */
static const struct field stats_sections[] = {
    FGROUP("process", stats_process),       FGROUP("manifest", stats_manifest),
    FGROUP("compaction", stats_compaction), FGROUP("flush", stats_flush),
    FGROUP("data_file", stats_data_file),   FGROUP("io", stats_io),
    FGROUP("cache", stats_cache),           FGROUP("memory", stats_memory),
};

static uint64_t field_u64(const struct api_server_stats *s, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)s + off, sizeof(v));
    return v;
}

static int field_int(const struct api_server_stats *s, size_t off)
{
    int v;
    memcpy(&v, (const char *)s + off, sizeof(v));
    return v;
}

static double field_double(const struct api_server_stats *s, size_t off)
{
    double v;
    memcpy(&v, (const char *)s + off, sizeof(v));
    return v;
}

static int64_t field_i64(const struct api_server_stats *s, size_t off)
{
    int64_t v;
    memcpy(&v, (const char *)s + off, sizeof(v));
    return v;
}

/* A field as a JSON number (the kinds that have one). */
static double field_number(const struct api_server_stats *s,
                           const struct field *f)
{
    switch (f->kind) {
    case F_U64:
        return (double)field_u64(s, f->off);
    case F_BOOL:
        return field_int(s, f->off) ? 1 : 0;
    case F_DOUBLE:
        return field_double(s, f->off);
    case F_NS:
        return (double)field_u64(s, f->off) / 1e9;
    case F_MS:
        return (double)field_i64(s, f->off);
    default:
        return 0;
    }
}

/* A NUL-terminated char array field: stats come from a snapshot the store
 * fills, but never trust that the terminator is there. */
static cJSON *json_char_array(const struct api_server_stats *s,
                              const struct field *f, int null_if_empty)
{
    const char *p = (const char *)s + f->off;
    char buf[FIELD_STR_MAX + 1];
    size_t n = strnlen(p, f->size < FIELD_STR_MAX ? f->size : FIELD_STR_MAX);
    if (n == 0 && null_if_empty)
        return cJSON_CreateNull();
    memcpy(buf, p, n);
    buf[n] = '\0';
    return cJSON_CreateString(buf);
}

static int json_add_fields(cJSON *obj, const struct api_server_stats *s,
                           const struct field *t, size_t n);

static cJSON *json_field(const struct api_server_stats *s,
                         const struct field *f)
{
    const char *str;
    switch (f->kind) {
    case F_BOOL:
        return cJSON_CreateBool(field_int(s, f->off) != 0);
    case F_MS:
        if (field_i64(s, f->off) <= 0)
            return cJSON_CreateNull();
        return cJSON_CreateNumber(field_number(s, f));
    case F_STR:
        return json_char_array(s, f, 0);
    case F_STR_NULL:
        return json_char_array(s, f, 1);
    case F_PSTR:
        memcpy(&str, (const char *)s + f->off, sizeof(str));
        return str ? cJSON_CreateString(str) : cJSON_CreateNull();
    case F_GROUP: {
        cJSON *o = cJSON_CreateObject();
        if (o && json_add_fields(o, s, f->sub, f->nsub) != 0) {
            cJSON_Delete(o);
            o = NULL;
        }
        return o;
    }
    default:
        return cJSON_CreateNumber(field_number(s, f));
    }
}

/* Add every field of t[0..n) to obj; 0 or -1 (ENOMEM). */
static int json_add_fields(cJSON *obj, const struct api_server_stats *s,
                           const struct field *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cJSON *v = json_field(s, &t[i]);
        if (!v || !cJSON_AddItemToObject(obj, t[i].key, v)) {
            cJSON_Delete(v);
            return -1;
        }
    }
    return 0;
}

/* An object of the number v[i] under key names[i], i < n. */
static cJSON *json_counts(const uint64_t *v, const char *const *names, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < n; i++) {
        if (!cJSON_AddNumberToObject(o, names[i], (double)v[i])) {
            cJSON_Delete(o);
            o = NULL;
        }
    }
    return o;
}

/* Add obj[key] = v, taking v; 0 or -1 (v freed). */
static int json_add(cJSON *obj, const char *key, cJSON *v)
{
    if (!v || !cJSON_AddItemToObject(obj, key, v)) {
        cJSON_Delete(v);
        return -1;
    }
    return 0;
}

static int json_http(cJSON *doc, const struct api_http_stats *h,
                     const struct api_server_stats *s)
{
    cJSON *http = cJSON_CreateObject(), *o;
    if (json_add(doc, "http", http) != 0)
        return -1;
    if (!(o = cJSON_CreateObject()) || json_add(http, "requests", o) != 0)
        return -1;
    for (int m = 0; m <= API_M_OTHER; m++)
        if (json_add(o, method_names[m],
                     json_counts(h->requests[m], class_names, 5)) != 0)
            return -1;
    if (json_add_fields(http, s, stats_http_totals, NELEM(stats_http_totals)) !=
        0)
        return -1;
    if (!(o = cJSON_CreateObject()) || json_add(http, "write_refusals", o) != 0)
        return -1;
    for (int e = API_ERR_NONE + 1; e < API_ERR_COUNT; e++)
        if (h->write_refusals[e] > 0 &&
            !cJSON_AddNumberToObject(o, api_error_code((enum api_error)e),
                                     (double)h->write_refusals[e]))
            return -1;
    if (!(o = cJSON_CreateObject()) || json_add(http, "latency", o) != 0)
        return -1;
    for (int i = 0; i < API_OP_COUNT; i++) {
        cJSON *l = cJSON_CreateObject();
        if (json_add(o, op_names[i], l) != 0 ||
            !cJSON_AddNumberToObject(l, "count", (double)h->latency[i].count) ||
            !cJSON_AddNumberToObject(l, "sum_seconds", h->latency[i].sum))
            return -1;
    }
    return 0;
}

/* s with the store section zeroed while the store is not open (O1). */
static void stats_view(const struct api_server_stats *s,
                       struct api_server_stats *v)
{
    *v = *s;
    if (!v->store_open)
        memset(&v->store, 0, sizeof(v->store));
}

char *api_json_stats(const struct api_server_stats *s)
{
    struct api_server_stats v;
    char *out = NULL;
    stats_view(s, &v);
    cJSON *doc = cJSON_CreateObject();
    if (!doc ||
        json_add_fields(doc, &v, stats_sections, NELEM(stats_sections)) != 0 ||
        json_http(doc, &v.http, &v) != 0)
        goto out;
    out = cJSON_PrintUnformatted(doc);
out:
    cJSON_Delete(doc);
    return out;
}

/* ---- the metrics text (O3, O4, O5) ---- */

#define METRICS_CAP (512u * 1024u)
#define METRICS_START (16u * 1024u)

struct obuf {
    char *p;
    size_t len, cap; /* p[0..len) written, p has cap bytes */
    int failed;      /* ENOMEM or over METRICS_CAP: stop writing */
};

/* Room for n more bytes and a NUL; 0 or -1 (b->failed set). */
static int obuf_reserve(struct obuf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (n < b->cap - b->len)
        return 0;
    if (n >= METRICS_CAP - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t cap = b->cap ? b->cap : METRICS_START;
    while (cap - b->len <= n)
        cap *= 2;
    if (cap > METRICS_CAP)
        cap = METRICS_CAP;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void obuf_write(struct obuf *b, const char *s, size_t n)
{
    if (obuf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void obuf_puts(struct obuf *b, const char *s)
{
    obuf_write(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
obuf_printf(struct obuf *b, const char *fmt, ...)
{
    va_list ap;
    char small[128];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        obuf_write(b, small, (size_t)n);
        return;
    }
    if (obuf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A label value with \, " and newline escaped (O4). */
static void obuf_label_value(struct obuf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\')
            obuf_write(b, "\\\\", 2);
        else if (*s == '"')
            obuf_write(b, "\\\"", 2);
        else if (*s == '\n')
            obuf_write(b, "\\n", 2);
        else
            obuf_write(b, s, 1);
    }
}

/* A sample value as the format writes floats: the shortest of %.15g and
 * %.17g that reads back exactly; NaN, +Inf, -Inf by name. */
static void format_double(char out[32], double v)
{
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(out, 32, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, 32, "%.17g", v);
}

static void family(struct obuf *b, const char *name, const char *type,
                   const char *help)
{
    obuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u64(struct obuf *b, const char *name, uint64_t v)
{
    obuf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void sample_double(struct obuf *b, const char *name, double v)
{
    char num[32];
    format_double(num, v);
    obuf_printf(b, "%s %s\n", name, num);
}

/* A family of one unlabelled series, the number from a stats field. */
struct metric {
    const char *name;
    const char *type;
    enum field_kind kind; /* F_U64, F_BOOL, F_DOUBLE, F_NS */
    size_t off;
    const char *help;
};

#define MS(name, type, kind, member, help)                                     \
    {                                                                          \
        name, type, kind, offsetof(struct api_server_stats, member), help      \
    }
#define MST(name, type, kind, member, help)                                    \
    MS(name, type, kind, store.member, help)

static const struct metric metric_plain[] = {
    MS("blobd_uptime_seconds", "gauge", F_DOUBLE, uptime_seconds,
       "Seconds since the process started."),
    MST("blobd_blobs", "gauge", F_U64, entries, "Blobs in the store."),
    MST("blobd_next_slot", "gauge", F_U64, next_slot,
        "The first slot never used in the data file."),
    MST("blobd_free_slots", "gauge", F_U64, free_total,
        "Free slots ready for reuse."),
    MST("blobd_pending_deltas", "gauge", F_U64, pending_deltas,
        "Index changes not yet in the manifest log."),
    MST("blobd_pending_free_slots", "gauge", F_U64, pending_free,
        "Slots freed but not reusable until the next flush."),
    MST("blobd_pinned_slots", "gauge", F_U64, pinned,
        "Slots pinned by reads in progress."),
    MST("blobd_log_bytes", "gauge", F_U64, log_bytes,
        "Bytes of manifest log since the snapshot."),
    MST("blobd_log_records", "gauge", F_U64, log_records,
        "Manifest log records since the snapshot."),
    MST("blobd_snapshot_bytes", "gauge", F_U64, snapshot_bytes,
        "Bytes of the manifest snapshot."),
    MST("blobd_generation", "gauge", F_U64, generation,
        "The manifest generation."),
    MST("blobd_index_bytes", "gauge", F_U64, index_bytes,
        "Resident bytes of the in-memory index."),
    MST("blobd_compactions_total", "counter", F_U64, compactions,
        "Manifest compactions completed."),
    MST("blobd_compaction_failures_total", "counter", F_U64,
        compaction_failures, "Manifest compactions that failed."),
    MST("blobd_compaction_running", "gauge", F_BOOL, compaction_running,
        "1 while a manifest compaction runs."),
    MST("blobd_compaction_last_duration_seconds", "gauge", F_NS,
        compaction_last_ns, "Duration of the last manifest compaction."),
    MST("blobd_flushes_total", "counter", F_U64, flushes,
        "Flushes (group commits) completed."),
    MST("blobd_flush_failures_total", "counter", F_U64, flush_failures,
        "Flushes that failed."),
    MST("blobd_flush_last_duration_seconds", "gauge", F_NS, flush_last_ns,
        "Duration of the last flush."),
    MST("blobd_flush_in_progress", "gauge", F_BOOL, flush_in_progress,
        "1 while a flush runs."),
    MST("blobd_needs_flush", "gauge", F_BOOL, needs_flush,
        "1 when changes wait for a flush."),
    MST("blobd_unflushed_blobs", "gauge", F_U64, unflushed_blobs,
        "Acknowledged changes not yet durable."),
    MST("blobd_unflushed_bytes", "gauge", F_U64, unflushed_bytes,
        "Bytes of acknowledged changes not yet durable."),
    MS("blobd_store_failed", "gauge", F_BOOL, store_failed,
       "1 after a sticky durability failure: writes are refused."),
    MST("blobd_data_file_bytes", "gauge", F_U64, data_file_bytes,
        "Size of the data file."),
    MST("blobd_preallocated_slots", "gauge", F_U64, preallocated_slots,
        "Slots the data file has room for (used or free)."),
    MST("blobd_fs_free_bytes", "gauge", F_U64, fs_free_bytes,
        "Free bytes on the data filesystem."),
    MST("blobd_headroom_bytes", "gauge", F_U64, headroom,
        "Free space kept before the data file may grow."),
    MST("blobd_io_queue_depth", "gauge", F_U64, queue_depth,
        "Jobs queued for the I/O thread."),
    MST("blobd_registered_buffers", "gauge", F_U64, registered_buffers,
        "io_uring registered buffers."),
    MST("blobd_registered_buffers_in_use", "gauge", F_U64,
        registered_buffers_in_use, "io_uring registered buffers in use."),
    MST("blobd_data_writes_total", "counter", F_U64, data_writes,
        "Blob frames written to the data file."),
    MST("blobd_data_write_calls_total", "counter", F_U64, data_write_calls,
        "pwritev calls that wrote blob frames (adjacent frames share one)."),
    MST("blobd_writes_superseded_total", "counter", F_U64, writes_superseded,
        "Acknowledged writes replaced in their batch by a later write of "
        "the same GUID before any I/O."),
    MST("blobd_data_syncs_total", "counter", F_U64, data_syncs,
        "fdatasync calls on the data file."),
    MST("blobd_log_syncs_total", "counter", F_U64, log_syncs,
        "fdatasync calls on the manifest log after a commit group."),
    MST("blobd_o_direct", "gauge", F_BOOL, direct,
        "1 when the data file is opened with O_DIRECT."),
    MST("blobd_read_only", "gauge", F_BOOL, read_only,
        "1 when the store was opened read-only."),
    MST("blobd_held", "gauge", F_BOOL, held,
        "1 while a backup hold is in place."),
    MST("blobd_holds_expired_total", "counter", F_U64, holds_expired,
        "Backup holds that expired without being released."),
    MS("blobd_cache_bytes", "gauge", F_U64, cache_bytes,
       "Bytes in the frame cache."),
    MS("blobd_cache_limit_bytes", "gauge", F_U64, cache_limit,
       "Size limit of the frame cache."),
    MS("blobd_cache_hits_total", "counter", F_U64, cache_hits,
       "Reads served from the frame cache."),
    MS("blobd_cache_misses_total", "counter", F_U64, cache_misses,
       "Reads the frame cache could not serve."),
    MS("blobd_memory_used_bytes", "gauge", F_U64, mem_used,
       "Bytes charged to the memory budget."),
    MS("blobd_memory_limit_bytes", "gauge", F_U64, mem_limit,
       "The memory budget."),
    MS("blobd_memory_connections_bytes", "gauge", F_U64, mem_connections,
       "The HTTP library's buffers of the open connections (outside the "
       "budget, bounded by the connection limit)."),
    MS("blobd_http_received_bytes_total", "counter", F_U64, http.bytes_in,
       "Request body bytes received."),
    MS("blobd_http_sent_bytes_total", "counter", F_U64, http.bytes_out,
       "Response body bytes sent."),
    MS("blobd_http_open_connections", "gauge", F_U64, http.open_connections,
       "Open HTTP connections."),
    MS("blobd_checksum_failures_total", "counter", F_U64,
       http.checksum_failures,
       "Reads refused because the stored CRC32C did not match."),
    MS("blobd_read_errors_total", "counter", F_U64, http.read_errors,
       "Reads that failed with an I/O error."),
    MS("blobd_http_max_connections", "gauge", F_U64, http.max_connections,
       "Open connections at most (--max-connections, after the fd limit)."),
    MS("blobd_http_max_connections_per_client", "gauge", F_U64,
       http.max_connections_per_client,
       "Open connections from one address at most; 0 = no limit."),
    MS("blobd_fd_limit", "gauge", F_U64, http.fd_limit,
       "The process's file descriptor limit (RLIMIT_NOFILE)."),
};

static void metrics_plain(struct obuf *b, const struct api_server_stats *s)
{
    for (size_t i = 0; i < NELEM(metric_plain); i++) {
        const struct metric *m = &metric_plain[i];
        family(b, m->name, m->type, m->help);
        if (m->kind == F_U64) {
            sample_u64(b, m->name, field_u64(s, m->off));
        } else {
            struct field f = {m->name, m->kind, m->off, 0, NULL, 0};
            sample_double(b, m->name, field_number(s, &f));
        }
    }
}

static void metrics_process(struct obuf *b, const struct api_server_stats *s)
{
    int ready = s->state && strcmp(s->state, "ready") == 0 &&
                !s->store_failed && !s->not_ready;
    family(b, "blobd_up", "gauge", "1 while the process runs.");
    sample_u64(b, "blobd_up", 1);
    family(b, "blobd_ready", "gauge",
           "1 when the server is ready and the store accepts writes.");
    sample_u64(b, "blobd_ready", ready ? 1 : 0);
    family(b, "blobd_build_info", "gauge", "The blobd version, as a label.");
    obuf_puts(b, "blobd_build_info{version=\"");
    obuf_label_value(b, s->version ? s->version : "");
    obuf_puts(b, "\"} 1\n");
}

static void metrics_http(struct obuf *b, const struct api_http_stats *h)
{
    family(b, "blobd_http_requests_total", "counter",
           "HTTP requests answered, by method and status class.");
    for (int m = 0; m <= API_M_OTHER; m++)
        for (int c = 0; c < 5; c++)
            obuf_printf(b,
                        "blobd_http_requests_total{method=\"%s\","
                        "code=\"%s\"} %" PRIu64 "\n",
                        method_names[m], class_names[c], h->requests[m][c]);
    family(b, "blobd_connections_closed_total", "counter",
           "Connections closed by the server's own limits, by reason.");
    obuf_printf(b,
                "blobd_connections_closed_total{reason=\"header_timeout\"} "
                "%" PRIu64 "\n",
                h->header_timeouts);
    obuf_printf(b,
                "blobd_connections_closed_total{reason=\"per_client\"} "
                "%" PRIu64 "\n",
                h->rejected_per_client);
    obuf_printf(b,
                "blobd_connections_closed_total{reason=\"client_left\"} "
                "%" PRIu64 "\n",
                h->bodies_abandoned);
    family(b, "blobd_write_refusals_total", "counter",
           "Writes answered with an error, by error code.");
    for (int e = API_ERR_NONE + 1; e < API_ERR_COUNT; e++) {
        obuf_puts(b, "blobd_write_refusals_total{reason=\"");
        obuf_label_value(b, api_error_code((enum api_error)e));
        obuf_printf(b, "\"} %" PRIu64 "\n", h->write_refusals[e]);
    }
}

static void metrics_latency(struct obuf *b, const struct api_http_stats *h)
{
    static const char name[] = "blobd_request_duration_seconds";
    char num[32];
    family(b, name, "histogram",
           "Request latency by operation (flush: the group commit).");
    for (int op = 0; op < API_OP_COUNT; op++) {
        const struct api_hist *l = &h->latency[op];
        uint64_t cum = 0;
        for (int i = 0; i <= API_HIST_BUCKETS; i++) {
            cum += l->bucket[i];
            if (i < API_HIST_BUCKETS)
                format_double(num, api_hist_bounds[i]);
            else
                strcpy(num, "+Inf");
            obuf_printf(b, "%s_bucket{op=\"%s\",le=\"%s\"} %" PRIu64 "\n", name,
                        op_names[op], num, cum);
        }
        format_double(num, l->sum);
        obuf_printf(b, "%s_sum{op=\"%s\"} %s\n", name, op_names[op], num);
        obuf_printf(b, "%s_count{op=\"%s\"} %" PRIu64 "\n", name, op_names[op],
                    cum);
    }
}

char *api_metrics_text(const struct api_server_stats *s, size_t *len)
{
    struct api_server_stats v;
    struct obuf b = {NULL, 0, 0, 0};
    stats_view(s, &v);
    if (len)
        *len = 0;
    metrics_process(&b, &v);
    metrics_plain(&b, &v);
    metrics_http(&b, &v.http);
    metrics_latency(&b, &v.http);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}
