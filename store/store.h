/*
 * store.h - the blobd storage engine: public interface and manual.
 *
 * A store is a directory holding:
 *   blobs.dat            packed data file; the blob in slot N lives at byte
 *                        N * STORE_FRAME_SIZE, written 4 KiB aligned.
 *   manifest.bin         snapshot of the GUID -> entry map (may be absent).
 *   log-<LSN>.blg        append-only logs of commit groups, named by the
 *                        first LSN they hold, replayed over the snapshot.
 *   store.lock           flock'd exclusively while a writer has the store.
 * The byte layout is in docs/format.md.
 *
 * Guarantees (numbers are cited in store.c):
 *  G1. A change is durable after the store_flush() that follows it returns 0:
 *      the data file is synced before the log group naming the change is
 *      appended and synced.
 *  G2. A live slot is never overwritten: a rewrite goes to a fresh slot and
 *      the old one is reused only after the remap is durable and no reader
 *      holds it.  A crash never tears a flushed blob.
 *  G3. A failed fsync/fdatasync, an EIO on a log write or a failed
 *      truncate-back of the log is sticky: every later write, delete and
 *      flush fails with STORE_E_FAILED until the store is reopened.
 *  G4. Reads never wait behind a flush, an fsync or a compaction: the
 *      index lock is held only to resolve and pin, never across I/O.
 *  G5. An ETag value (generation, n) is never reused, even for a write lost
 *      in a crash: the generation is made durable at open before any write.
 *
 * Threads: every function is safe to call from any thread.  Writes, deletes,
 * flushes and compaction switches and commits are serialized among
 * themselves; reads, stats and listings run concurrently with all of them.
 * With cfg.async the store runs its own threads: the I/O thread (every
 * submitted write, delete and flush, with group commit), reader threads
 * (store_submit_read) and a timer thread (background compaction, expiry of
 * jobs queued past their deadline).  Frames must be given back with
 * store_frame_free before store_close.
 *
 * Caveats:
 *  - store_close() does not flush; changes not flushed are lost.
 *  - A Range read of at most STORE_RANGE_NOVERIFY_MAX bytes is served from
 *    the pages that cover it and is not checked against the blob's CRC32C
 *    (the whole blob would have to be read).  Larger ranges and full reads
 *    are verified.
 *  - Versions pack the open generation (24 bits) and the write counter
 *    within that open (40 bits); a store refuses to open writable after
 *    2^24 - 1 generations, and writes fail with STORE_E_OVERFLOW after
 *    2^40 - 1 writes in one open.
 *  - Slots are 32-bit: at most 2^32 - 1 slots (2 PiB of data file).
 */
#ifndef BLOBD_STORE_H
#define BLOBD_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_GUID_SIZE 16
#define STORE_FRAME_SIZE (512u * 1024u)
#define STORE_PAGE_SIZE 4096u
#define STORE_RANGE_NOVERIFY_MAX (64u * 1024u)
#define STORE_LIST_MAX 10000u

/*
 * Status codes: 0 is OK, a negative errno passes through, and the project's
 * own codes live in one reserved range below STORE_E_BASE.
 */
#define STORE_E_BASE (-100000)
#define STORE_ERRORS(X)                                                        \
    X(CORRUPT, 1, "store files are corrupt")                                   \
    X(BAD_FORMAT, 2, "not a blobd store file (wrong magic or version)")        \
    X(FOREIGN, 3, "file belongs to another store (UUID mismatch)")             \
    X(LOCKED, 4, "store is locked by another live instance")                   \
    X(FAILED, 5, "store failed earlier (sticky); reopen to recover")           \
    X(NOSPACE, 6, "no space left for the data")                                \
    X(NOT_FOUND, 7, "no such blob")                                            \
    X(PRECONDITION, 8, "precondition failed")                                  \
    X(READONLY, 9, "store is open read-only")                                  \
    X(NOT_OWNER, 10, "this process does not own the store lock")               \
    X(TOO_LARGE, 11, "blob larger than one frame")                             \
    X(NO_DIRECT, 12, "O_DIRECT required but not supported here")               \
    X(INSECURE_DIR, 13, "data directory is writable by others")                \
    X(OVERFLOW, 14, "version counter exhausted")                               \
    X(RANGE, 15, "range outside the blob")                                     \
    X(INVALID, 16, "invalid argument")                                         \
    X(CHECKSUM, 17, "blob data does not match its CRC32C")                     \
    X(OVERLOADED, 18, "too many queued jobs; try again later")                 \
    X(STOPPED, 19, "the store is shutting down")                               \
    X(HELD, 20, "compaction paused by a hold")                                 \
    X(NO_URING, 21, "io_uring required but unavailable")

enum store_err {
#define STORE_ERR_ENUM(name, n, msg) STORE_E_##name = STORE_E_BASE - (n),
    STORE_ERRORS(STORE_ERR_ENUM)
#undef STORE_ERR_ENUM
};

/* A static message for any status code (negative errno included). */
const char *store_strerror(int rc);
/* A stable short name: "corrupt", "nospace", "EIO" ... */
const char *store_errname(int rc);

struct store;
struct store_io; /* see store_io.h */

enum store_direct { STORE_DIRECT_AUTO = 0, STORE_DIRECT_ON, STORE_DIRECT_OFF };

enum store_backend {
    STORE_BACKEND_AUTO = 0, /* io_uring, else pread (logged, reported) */
    STORE_BACKEND_PREAD,
    STORE_BACKEND_IO_URING /* required: open fails without it */
};

enum store_log_level {
    STORE_LOG_ERROR = 0,
    STORE_LOG_WARN,
    STORE_LOG_INFO,
    STORE_LOG_DEBUG
};

struct store_config {
    const char *dir; /* data directory; created 0700 if missing */
    enum store_direct direct;
    int read_only;            /* open for the verifier: changes nothing */
    int ignore_lock;          /* read-only only: open even if locked */
    unsigned lock_timeout_ms; /* 0 = default 5000 */
    uint64_t headroom_min;    /* 0 = default 64 MiB */
    /* The I/O backend; NULL = a new pread/pwritev backend owned by the
     * store.  A backend passed in is borrowed and must outlive the store. */
    struct store_io *io;
    /* Log sink; NULL = stderr.  Called from any thread, never with a store
     * lock held. */
    void (*log_fn)(void *ctx, enum store_log_level level, const char *msg);
    void *log_ctx;
    enum store_log_level log_level; /* 0 = errors only ... */

    /* Backend chosen when io is NULL. */
    enum store_backend backend;
    unsigned fixed_frames; /* io_uring registered frames; 0 = 32 (max 32) */
    int no_fixed_frames;   /* register none */
    /* Test seams: io_uring ring creation / buffer registration fail with
     * -errno as if the kernel had refused (EPERM, ENOSYS, ENOMEM...). */
    int uring_fail_ring, uring_fail_register;

    /* The I/O thread and the async API (store_submit_*). */
    int async;
    unsigned queue_max;         /* queued jobs; 0 = 4096 */
    unsigned job_timeout_ms;    /* 0 = 30000 */
    unsigned flush_interval_ms; /* 0 = flush only on request or pressure */
    unsigned read_threads;      /* async readers; 0 = 16 */
};

void store_config_init(struct store_config *cfg, const char *dir);

/*
 * Open (and, when writable, lock and recover) the store.  On failure
 * returns NULL with *rc set and, if errbuf is given, a message naming the
 * file, offset or syscall.
 */
struct store *store_open(const struct store_config *cfg, int *rc, char *errbuf,
                         size_t errlen);
/* Close without flushing and release the lock.  NULL is a no-op. */
void store_close(struct store *st);

/*
 * Frames: STORE_FRAME_SIZE bytes, 4 KiB aligned, from a bounded pool.
 * A frame's contents are unspecified when it is handed out.
 */
void *store_frame_alloc(struct store *st);
void store_frame_free(struct store *st, void *frame);

/* A blob's entry. version packs (generation << 40) | n. */
struct store_blob_info {
    uint8_t guid[STORE_GUID_SIZE];
    uint32_t len;
    uint32_t crc;
    uint64_t version;
};

static inline uint64_t store_version_generation(uint64_t v)
{
    return v >> 40;
}
static inline uint64_t store_version_counter(uint64_t v)
{
    return v & ((UINT64_C(1) << 40) - 1);
}
/* Formats the strong ETag "\"<generation>-<n>\"" (quotes included). */
int store_etag(uint64_t version, char *buf, size_t len);

enum store_precond_kind {
    STORE_PRE_NONE = 0,
    STORE_PRE_ABSENT, /* must not exist (If-None-Match: *) */
    STORE_PRE_EXISTS, /* must exist, any version */
    STORE_PRE_VERSION /* must exist with exactly this version */
};

struct store_precond {
    enum store_precond_kind kind;
    uint64_t version;
};

enum store_outcome {
    STORE_OUT_NONE = 0,
    STORE_OUT_CREATED,
    STORE_OUT_REPLACED,
    STORE_OUT_DELETED,
    STORE_OUT_NOT_FOUND,
    STORE_OUT_PRECONDITION_FAILED,
    STORE_OUT_NO_SPACE,
    STORE_OUT_OVERLOADED,
    STORE_OUT_STORE_FAILED
};
const char *store_outcome_name(enum store_outcome o);

/* One write of a batch.  The frame is borrowed for the call; the store
 * zero-pads it in place from len up to the next 4 KiB boundary. */
struct store_write {
    const uint8_t *guid;
    void *frame;
    uint32_t len;
    struct store_precond pre;
    /* results */
    enum store_outcome outcome;
    int rc;           /* 0 or the error behind a failed outcome */
    uint64_t version; /* new version on CREATED / REPLACED */
};

/*
 * Write a batch.  Items are applied in order (duplicate GUIDs: the last
 * write wins, earlier ones report REPLACED/CREATED as if applied and then
 * replaced); preconditions are decided atomically with the write.  Returns
 * 0 when every item has an outcome, or a negative code when the batch as a
 * whole was refused (sticky failure, read-only, not owner, bad argument):
 * then every item's outcome says so as well.
 */
int store_write_batch(struct store *st, struct store_write *w, size_t n);
/* One write; returns 0 on CREATED/REPLACED, else the item's rc. */
int store_write(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                void *frame, uint32_t len, const struct store_precond *pre,
                enum store_outcome *out, uint64_t *version);

/* Delete.  0 on DELETED; STORE_E_NOT_FOUND; STORE_E_PRECONDITION. */
int store_delete(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                 const struct store_precond *pre, enum store_outcome *out);

/* Result of a flush. */
struct store_flush_result {
    uint64_t records;     /* log records made durable */
    uint64_t log_bytes;   /* bytes appended to the log */
    uint64_t data_synced; /* 1 when the data file was synced */
    uint64_t duration_ns;
    int compaction_started;
};

/*
 * Make every change acknowledged before the call durable (G1).  Returns 0,
 * STORE_E_NOSPACE (log append out of space: records stay pending and are
 * retried), STORE_E_FAILED (sticky) or a negative errno.
 */
int store_flush(struct store *st, struct store_flush_result *res);
/* Compact the manifest now: new log, snapshot, remove covered logs. */
int store_compact(struct store *st);
int store_needs_flush(struct store *st);

/* Lookup without reading data (HEAD).  0 or STORE_E_NOT_FOUND. */
int store_stat(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
               struct store_blob_info *info);

/* Read a whole blob into a frame and verify its CRC32C. */
int store_read(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
               void *frame, struct store_blob_info *info);

/*
 * Read bytes [off, off + len) of a blob into frame; *data points at them
 * inside frame.  off + len must lie within the blob (else STORE_E_RANGE,
 * with info filled so the caller can retry against the current length).
 * Ranges up to STORE_RANGE_NOVERIFY_MAX are read page-aligned without
 * verification; larger ones read and verify the whole blob.
 */
int store_read_range(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                     uint64_t off, uint32_t len, void *frame,
                     const uint8_t **data, struct store_blob_info *info);

/* Batched full reads: one index pass, then the reads; per-item rc. */
int store_read_batch(struct store *st, const uint8_t (*guids)[16],
                     void **frames, struct store_blob_info *infos, int *rcs,
                     size_t n);

/*
 * List up to limit entries (clamped to STORE_LIST_MAX) with GUID strictly
 * greater than after (NULL = from the start), in GUID order.  *more is set
 * when entries remain past the page.  Returns the number copied or < 0.
 */
int store_list(struct store *st, const uint8_t *after, size_t limit,
               struct store_blob_info *out, int *more);

uint64_t store_count(struct store *st);

struct store_stats {
    /* manifest */
    uint64_t entries, next_slot;
    uint64_t free_singles, free_ranges, free_total;
    uint64_t pending_deltas, pending_free, pinned;
    uint64_t log_bytes, log_records, snapshot_bytes, generation;
    uint64_t index_bytes; /* resident bytes of the index */
    /* compaction */
    uint64_t compactions, compaction_failures;
    int compaction_running;
    int64_t compaction_last_unix_ms;
    uint64_t compaction_last_ns, compaction_bytes_before,
        compaction_bytes_after;
    /* flush */
    uint64_t flushes, flush_failures;
    int64_t flush_last_unix_ms;
    uint64_t flush_last_ns;
    int flush_in_progress, needs_flush;
    uint64_t unflushed_blobs, unflushed_bytes;
    char last_sticky_error[256];
    /* data file */
    uint64_t data_file_bytes, preallocated_slots, fs_free_bytes, headroom;
    /* io */
    char backend[16];
    char backend_note[160]; /* a fallback and its reason, or "" */
    int direct;
    uint64_t queue_depth, registered_buffers, registered_buffers_in_use;
    uint64_t data_writes;           /* blob frames written to the data file */
    uint64_t data_write_calls;      /* the pwritev calls that wrote them */
    uint64_t writes_superseded;     /* acknowledged writes a later write of the
                                       same GUID in one batch replaced before
                                       any I/O: they have no data of their own */
    uint64_t data_syncs, log_syncs; /* fdatasync of blobs.dat / the log */
    /* holds */
    int held;
    uint64_t holds_expired;
    /* open */
    int read_only;
    uint64_t torn_tail_offset; /* offset of a torn tail found at open */
    int torn_tail_found;
    char uuid[37];
};
void store_get_stats(struct store *st, struct store_stats *s);

/* Sticky failure state: 0 or the code that made it sticky. */
int store_failed(struct store *st);

/* ---- the async API (needs cfg.async) ----
 *
 * One thread owned by the store runs every submitted write, delete and
 * flush.  Each round it takes all queued jobs, writes every run of queued
 * writes as one coalesced submission, applies deletes in order, and if any
 * job asked for durability (or pressure or the flush timer says so) makes
 * one group commit for all of them: one data sync, one log append + sync.
 *
 * Completion callbacks run on the I/O thread (reads: on a reader thread);
 * they must not block and must not call into the store.  A submit returns
 * 0 (the callback will run exactly once) or a negative code (it will not):
 * STORE_E_OVERLOADED when the queue is full, STORE_E_INVALID, or
 * STORE_E_STOPPED once store_close has begun.  A job still queued when its
 * deadline (cfg.job_timeout_ms after submission, CLOCK_MONOTONIC) passes
 * completes with STORE_OUT_OVERLOADED; a job already handed to the kernel
 * may still take effect.
 */
struct store_completion {
    enum store_outcome outcome;
    int rc;           /* 0, or the error behind a failed outcome */
    uint64_t version; /* writes: the new version */
    int durable;      /* 1 once the change survives a crash */
    struct store_flush_result flush; /* flush jobs: what the commit did */
};

typedef void store_done_fn(void *arg, const struct store_completion *c);

/* Write len bytes of frame (which must stay untouched until the callback;
 * the store zero-pads its tail).  durable: complete only after the group
 * commit that makes the write durable (?fsync=true). */
int store_submit_write(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                       void *frame, uint32_t len,
                       const struct store_precond *pre, int durable,
                       store_done_fn *done, void *arg);
int store_submit_delete(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                        const struct store_precond *pre, int durable,
                        store_done_fn *done, void *arg);
/* Completes once every change acknowledged before the call is durable;
 * concurrent flushes share one group commit.  outcome NONE and rc 0 on
 * success, else NO_SPACE or STORE_FAILED. */
int store_submit_flush(struct store *st, store_done_fn *done, void *arg);

struct store_read_result {
    int rc; /* 0, STORE_E_NOT_FOUND, STORE_E_RANGE, STORE_E_CHECKSUM, -errno */
    struct store_blob_info info;
    const uint8_t *data; /* inside the caller's frame */
    uint32_t len;
};

typedef void store_read_fn(void *arg, const struct store_read_result *r);

/* Read a whole blob (len == STORE_READ_ALL) or bytes [off, off + len) into
 * frame, as store_read / store_read_range would, on a reader thread. */
#define STORE_READ_ALL UINT32_MAX
int store_submit_read(struct store *st, const uint8_t guid[STORE_GUID_SIZE],
                      uint64_t off, uint32_t len, void *frame,
                      store_read_fn *done, void *arg);

/* ---- holds and background compaction ----
 * A hold (for a file-level backup) flushes, then pauses slot reuse and
 * compaction until released or until timeout_ms passes (0: no timeout).
 * Holding again renews it. */
int store_hold(struct store *st, unsigned timeout_ms);
int store_release(struct store *st);
/* Ask the background thread to compact now (async stores); returns at once. */
int store_request_compaction(struct store *st);

/*
 * Async stores, at shutdown: refuse new submits with STORE_E_STOPPED,
 * finish every queued job and read (their callbacks run), and stop the
 * store's threads.  The synchronous API keeps working (a final store_flush)
 * until store_close.  Idempotent; a no-op on a synchronous store.
 */
void store_stop(struct store *st);

/* CRC32C (Castagnoli) as the format uses it: ~crc32_iscsi(buf, len, ~0). */
uint32_t store_crc32c(const void *buf, size_t len);

#endif
