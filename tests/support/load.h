/*
 * load.h - a write load over HTTP and a model of what must survive a crash,
 * shared by the kill -9 and power-loss tests (tests/integration).
 *
 * A load is a pool of GUIDs and writer threads that PUT, DELETE and POST
 * /flush against a blobd on 127.0.0.1:<port>.  Every GUID belongs to one
 * thread (GUID i to thread i % threads), so the operations on one GUID are
 * sequential.  The model remembers, per GUID, the last state known durable
 * and every operation attempted after it; after a crash and a restart,
 * load_check reads every GUID back and compares it byte for byte with
 * what the durability contract (SPEC §2, docs/durability.md) allows.
 *
 * The operations, each picked at random by a writer:
 *   PUT /blobs/<g>              a new content: bytes http_fill(seed), the
 *                               length a function of the seed (0..524288
 *                               bytes: mostly small, some exactly 512 KiB);
 *                               every PUT has a seed of its own;
 *   PUT /blobs/<g>?fsync=true   the same, answered once durable;
 *   DELETE /blobs/<g>[?fsync=true];
 *   POST /flush                 now and then, by any writer.
 *
 * Model invariants:
 *  L1. A state becomes durable when its operation answered 2xx with
 *      Blob-Durable: true, or when a POST /flush that started after that
 *      2xx arrived answered 200.  A logical clock orders the two: an
 *      answer takes a tick after it arrived, a flush takes one before it
 *      is sent (and one after its 200 arrived, for L5); an operation is
 *      covered by a flush answered 200 when its tick is below the tick
 *      that flush took before it was sent.
 *  L2. An operation whose outcome is unknown (a transport error or
 *      timeout, or an answer other than 2xx and a DELETE's 404: 503,
 *      507, a PUT's 500 write_failed; any other is also an anomaly, L4)
 *      may still take effect later, so its GUID is frozen: no other
 *      operation is sent on it until the next check.  The unknown
 *      operation is therefore always the last in its GUID's list.
 *  L3. After a restart a GUID must hold its last durable state or the
 *      result of one of the operations attempted after it (acknowledged
 *      or not): never an older state, never torn or mixed bytes.
 *  L4. While the server runs, every answer must agree with the visible
 *      state the model knows: a PUT is 201 on an absent GUID and 204 on a
 *      present one, a DELETE is 204 or 404 likewise, ?fsync=true answers
 *      carry Blob-Durable: true, every 2xx write carries Blob-Durable.
 *      A disagreement is an anomaly (a failure, reported like a
 *      violation).
 *  L5. A simulated power cut (load_cut, just before the cut) ends what
 *      counts as evidence: a Blob-Durable: true or a flush's 200 received
 *      after it makes nothing durable.  A real power cut leaves no process
 *      to answer; a simulated one (EXT4_IOC_SHUTDOWN) does, and an
 *      fdatasync that straddles the shutdown can return 0 for data the
 *      filesystem then loses (seen on Linux 6.18 with a plain C program,
 *      no blobd involved: syncs that returned before the ioctl never lost
 *      data, some that returned after it did).  Such an answer's state
 *      stays among the allowed ones; when the GUID is found before it,
 *      load_check writes a NOTE and counts it (postcut_lost), it is not a
 *      violation.  A test that SIGSTOPs the server before cutting needs
 *      no load_cut: every answer it gets was sent before the cut.
 *
 * Thread rules: load_new, load_start, load_cut, load_halt, load_join,
 * load_check, load_totals and load_free are called from one thread (the
 * test's); load_cut and load_halt may be called while the writers run;
 * load_check only while no writer runs.  No function here fails the test
 * itself: the caller does, on the numbers returned (cmocka wants its main
 * thread).
 */
#ifndef BLOBD_LOAD_H
#define BLOBD_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct load;

struct load_opts {
    unsigned threads;  /* writer threads (0: 4) */
    unsigned guids;    /* GUID pool (0: 48) */
    uint64_t seed;     /* choices and contents */
    long timeout_ms;   /* per request (0: 10 000); connect: 2 000 */
    unsigned flush_pm; /* POST /flush per mille of operations (0: 60) */
};

/* Totals since load_new; every field only grows. */
struct load_totals {
    uint64_t attempted;       /* PUT and DELETE requests sent */
    uint64_t acked;           /* answered 2xx (404 to a DELETE not counted) */
    uint64_t acked_sync;      /* of those, Blob-Durable: true */
    uint64_t flushed;         /* acked Blob-Durable: false, covered by a flush
                               * (L1) by the time of a check */
    uint64_t not_found;       /* DELETE answered 404 (as the model expected) */
    uint64_t unknown;         /* outcome unknown (L2) */
    uint64_t flushes;         /* POST /flush sent */
    uint64_t flushes_ok;      /* answered 200 */
    uint64_t checks;          /* load_check runs */
    uint64_t checked;         /* GUIDs read back and compared */
    uint64_t at_durable;      /* found at their last durable state */
    uint64_t at_later;        /* found at the result of a later operation */
    uint64_t at_unacked;      /* of those, of an unacknowledged one */
    uint64_t violations;      /* L3 broken */
    uint64_t postcut_acks;    /* L5: Blob-Durable: true received after a cut */
    uint64_t postcut_flushes; /* L5: flushes answered 200 after a cut */
    uint64_t postcut_lost;    /* L5: GUIDs found before such an answer */
    uint64_t anomalies;       /* L4 broken */
};

/* A load with its GUID pool (random GUIDs); no thread yet.  NULL when out
 * of memory. */
struct load *load_new(const struct load_opts *o);
/* Stop the writers if they run, free everything. */
void load_free(struct load *l);

/* Start the writers against 127.0.0.1:port.  0, or -errno when a thread
 * cannot be made (the ones made are stopped again). */
int load_start(struct load *l, int port);
/* The power is cut now (L5): answers received from here on until the
 * next load_check prove nothing durable.  Safe while the writers run. */
void load_cut(struct load *l);
/* Ask the writers to stop after the request each has in flight; returns
 * at once (safe while they run: call it just before killing the server,
 * so none starts a request after the kill). */
void load_halt(struct load *l);
/* load_halt, then wait for the writers to end. */
void load_join(struct load *l);

/*
 * After a restart, with no writer running: resolve the model (L1), GET
 * every GUID from 127.0.0.1:port and compare (L3), each violation written
 * to out with the GUID, the states allowed and what was found (status,
 * length, the first offset differing from each allowed content, and
 * whether it is an older state); then POST /flush, so that what was found
 * is durable, and make it every GUID's durable state.  Returns the number
 * of violations (0 is good), or -1 when the check could not be made (a
 * GET without an answer, a flush not answered 200; the reason is written
 * to out).
 */
int load_check(struct load *l, int port, FILE *out);

/* The anomalies (L4) seen since load_new, written to out (at most the
 * first 20 in full); returns their number. */
uint64_t load_anomalies(struct load *l, FILE *out);

void load_totals(const struct load *l, struct load_totals *t);

/* ---- server logs ---- */

/* The last line of the file at path that contains needle, from the
 * needle on, without its newline, in out (cap bytes with the NUL); 1 when
 * found, 0 when not (out empty). */
int load_log_last(const char *path, const char *needle, char *out, size_t cap);
/* Write the last max_bytes of the file at path to out, between marker
 * lines that name it. */
void load_log_tail(FILE *out, const char *path, size_t max_bytes);

#endif
