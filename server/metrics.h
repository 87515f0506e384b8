/*
 * metrics.h - the server's counters and latency histograms, updated
 * lock-free from the HTTP threads and read as one snapshot for
 * /admin/stats and /metrics.
 */
#ifndef BLOBD_SERVER_METRICS_H
#define BLOBD_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "api.h"

struct server_metrics {
    atomic_uint_least64_t requests[API_M_OTHER + 1][5];
    atomic_uint_least64_t bytes_in, bytes_out;
    atomic_uint_least64_t open_connections;
    atomic_uint_least64_t checksum_failures, read_errors;
    atomic_uint_least64_t refusals[API_ERR_COUNT];
    struct {
        atomic_uint_least64_t count, sum_ns;
        atomic_uint_least64_t bucket[API_HIST_BUCKETS + 1];
    } lat[API_OP_COUNT];
};

/* A finished request: its method, status, body bytes in and out. */
void metrics_request(struct server_metrics *m, enum api_method method,
                     int status, uint64_t in, uint64_t out);
/* One latency observation of op, in nanoseconds. */
void metrics_latency(struct server_metrics *m, enum api_op op, uint64_t ns);
/* Copy the counters (each read atomically; the set is not a transaction). */
void metrics_snapshot(struct server_metrics *m, struct api_http_stats *out);

#endif
