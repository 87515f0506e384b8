/*
 * metrics.c - see metrics.h.
 *
 * Invariants:
 *  X1. Every counter only grows (open_connections aside) and is updated
 *      with relaxed atomics: a snapshot may see one request's counters
 *      half applied, never a torn number.
 *  X2. A latency lands in the first bucket whose bound (api_hist_bounds,
 *      seconds) is at least the value, else in the +Inf bucket.
 */
#include "metrics.h"

#include <string.h>

#define RELAXED memory_order_relaxed

void metrics_request(struct server_metrics *m, enum api_method method,
                     int status, uint64_t in, uint64_t out)
{
    int cls = status / 100 - 1;
    if ((unsigned)method > API_M_OTHER)
        method = API_M_OTHER;
    if (cls < 0 || cls > 4)
        cls = 4;
    atomic_fetch_add_explicit(&m->requests[method][cls], 1, RELAXED);
    atomic_fetch_add_explicit(&m->bytes_in, in, RELAXED);
    atomic_fetch_add_explicit(&m->bytes_out, out, RELAXED);
}

void metrics_latency(struct server_metrics *m, enum api_op op, uint64_t ns)
{
    if ((unsigned)op >= API_OP_COUNT)
        return;
    double s = (double)ns / 1e9;
    unsigned b = 0;
    while (b < API_HIST_BUCKETS && s > api_hist_bounds[b]) /* X2 */
        b++;
    atomic_fetch_add_explicit(&m->lat[op].bucket[b], 1, RELAXED);
    atomic_fetch_add_explicit(&m->lat[op].count, 1, RELAXED);
    atomic_fetch_add_explicit(&m->lat[op].sum_ns, ns, RELAXED);
}

void metrics_snapshot(struct server_metrics *m, struct api_http_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i <= API_M_OTHER; i++)
        for (int c = 0; c < 5; c++)
            out->requests[i][c] =
                atomic_load_explicit(&m->requests[i][c], RELAXED);
    out->bytes_in = atomic_load_explicit(&m->bytes_in, RELAXED);
    out->bytes_out = atomic_load_explicit(&m->bytes_out, RELAXED);
    out->open_connections = atomic_load_explicit(&m->open_connections, RELAXED);
    out->checksum_failures =
        atomic_load_explicit(&m->checksum_failures, RELAXED);
    out->read_errors = atomic_load_explicit(&m->read_errors, RELAXED);
    for (int e = 0; e < API_ERR_COUNT; e++)
        out->write_refusals[e] = atomic_load_explicit(&m->refusals[e], RELAXED);
    for (int op = 0; op < API_OP_COUNT; op++) {
        struct api_hist *h = &out->latency[op];
        h->count = atomic_load_explicit(&m->lat[op].count, RELAXED);
        h->sum =
            (double)atomic_load_explicit(&m->lat[op].sum_ns, RELAXED) / 1e9;
        for (int b = 0; b <= API_HIST_BUCKETS; b++)
            h->bucket[b] = atomic_load_explicit(&m->lat[op].bucket[b], RELAXED);
    }
}
