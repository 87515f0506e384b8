/*
 * store_int.h - PRIVATE to store/: the index, slot allocator, pin table,
 * manifest format and the store's internal state.  Nothing outside store/
 * includes this header (tests of internals excepted).
 */
#ifndef BLOBD_STORE_INT_H
#define BLOBD_STORE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store.h"
#include "store_io.h"

/* ---- little-endian encoding (never structs cast over buffers) ---- */

static inline void le_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void le_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void le_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t le_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static inline uint64_t le_get64(const uint8_t *p)
{
    return (uint64_t)le_get32(p) | (uint64_t)le_get32(p + 4) << 32;
}

/* CRC32C of the concatenation of what crc covered and buf[0..len). */
uint32_t store_crc32c_cont(uint32_t crc, const void *buf, size_t len);

void store_uuid_format(const uint8_t u[16], char out[37]);

/* ---- index: GUID -> entry, in GUID order (index.c) ----
 * A sorted array of sorted chunks.  Lookup O(log n); insert and remove
 * O(log n + chunk) plus, on a split or merge, a move of the chunk pointer
 * array.  Not thread-safe: the store's lock protects it. */

struct index_entry {
    uint8_t guid[STORE_GUID_SIZE];
    uint32_t slot;
    uint32_t len;
    uint32_t crc;
    uint32_t ver_lo, ver_hi; /* 4-byte aligned halves keep the entry 36 B */
};
_Static_assert(sizeof(struct index_entry) == 36, "index entry is 36 bytes");

static inline uint64_t ix_version(const struct index_entry *e)
{
    return (uint64_t)e->ver_hi << 32 | e->ver_lo;
}
static inline void ix_set_version(struct index_entry *e, uint64_t v)
{
    e->ver_lo = (uint32_t)v;
    e->ver_hi = (uint32_t)(v >> 32);
}

/* An empty blob (len 0) takes no slot: SLOT_NONE in memory, MF_SLOT_NONE
 * in records and snapshot entries. */
#define SLOT_NONE UINT32_MAX
#define MF_SLOT_NONE UINT64_MAX

static inline uint64_t slot_to_disk(uint32_t slot)
{
    return slot == SLOT_NONE ? MF_SLOT_NONE : slot;
}

#define INDEX_CHUNK_CAP 128

struct index_chunk {
    uint32_t n;
    uint32_t pad;
    struct index_entry e[INDEX_CHUNK_CAP];
};

struct index {
    struct index_chunk **chunks;
    /* lead[i]: the first 8 bytes of chunk i's first GUID, big-endian, so
     * the search for a chunk reads one contiguous array instead of a
     * cache line in every chunk it passes (I4 in index.c). */
    uint64_t *lead;
    size_t nchunks, cap;
    uint64_t count;
};

void index_init(struct index *ix);
void index_free(struct index *ix);
struct index_entry *index_find(struct index *ix, const uint8_t *guid);
/* A place in the index for lookups in ascending GUID order (replay's
 * sorted batches): each one starts where the last ended instead of
 * searching from the top.  Any insert or removal invalidates it. */
struct index_cursor {
    size_t ci;
    uint32_t pos;
    int valid;
};
/* index_find for a guid above the cursor's last one; moves the cursor. */
struct index_entry *index_find_next(struct index *ix, const uint8_t *guid,
                                    struct index_cursor *cur);
/* Insert or replace.  *had_old and *old describe a replaced entry.
 * 0 or -ENOMEM. */
int index_put(struct index *ix, const struct index_entry *e,
              struct index_entry *old, int *had_old);
/* 0 (old filled) or STORE_E_NOT_FOUND. */
int index_remove(struct index *ix, const uint8_t *guid,
                 struct index_entry *old);
/* Copy up to limit entries with guid > after (after NULL: from the
 * start).  *more = 1 if entries remain. */
size_t index_list(struct index *ix, const uint8_t *after, size_t limit,
                  struct index_entry *out, int *more);
size_t index_bytes(const struct index *ix);

/* ---- slots: reusable slots and reader pins (slots.c) ---- */

struct bitmap;

struct slot_range {
    uint32_t next, end; /* inclusive; popped from next upward */
};

struct slots {
    uint32_t *singles;
    size_t nsingles, csingles;
    struct slot_range *ranges; /* highest first, so the lowest pops last */
    size_t nranges, cranges;
    uint64_t total;
};

void slots_init(struct slots *s);
void slots_free(struct slots *s);
/* 0 and *slot, or -1 when none is free. */
int slots_pop(struct slots *s, uint32_t *slot);
int slots_push(struct slots *s, uint32_t slot);
/* Rebuild from the used-slot bitmap: holes below next_slot as ranges.
 * Bits at or past used->nbits count as free. */
int slots_rebuild(struct slots *s, const struct bitmap *used,
                  uint64_t next_slot);

struct pin {
    uint32_t slot;
    uint32_t count;
    uint32_t deferred; /* freed while pinned: reusable at the last unpin */
};

struct pins {
    struct pin *v;
    size_t n, cap;
};

int pins_add(struct pins *p, uint32_t slot);
/* Drop one pin; returns 1 when the slot was deferred and is now free. */
int pins_release(struct pins *p, uint32_t slot);
/* If slot is pinned, mark it deferred and return 1. */
int pins_defer(struct pins *p, uint32_t slot);

/* Bitmap helpers for replay. */
struct bitmap {
    uint64_t *w;
    uint64_t nbits;
};
int bitmap_ensure(struct bitmap *b, uint64_t nbits);
static inline int bitmap_get(const struct bitmap *b, uint64_t i)
{
    return i < b->nbits && (b->w[i / 64] >> (i % 64)) & 1;
}
static inline void bitmap_set(struct bitmap *b, uint64_t i)
{
    b->w[i / 64] |= UINT64_C(1) << (i % 64);
}
static inline void bitmap_clear(struct bitmap *b, uint64_t i)
{
    if (i < b->nbits)
        b->w[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

/* ---- manifest format (manifest.c, docs/format.md) ---- */

/* Compaction starts once the log holds at least COMPACT_MIN_BYTES and
 * COMPACT_RATIO times the size of a snapshot of the index. */
#define COMPACT_MIN_BYTES (1ull << 20)
#define COMPACT_RATIO 4u

#define MF_BLOCK 4096u
#define MF_REC_SIZE 64u
#define MF_SNAP_HDR_SIZE 64u
#define MF_SNAP_ENTRY_SIZE 48u
#define MF_SNAP_TRAILER_SIZE 64u
#define MF_LOG_HDR_SIZE 64u
#define MF_VERSION 1u
#define MF_MAX_SLOTS UINT32_MAX
#define MF_MAX_GENERATION ((UINT64_C(1) << 24) - 1)
#define MF_MAX_COUNTER ((UINT64_C(1) << 40) - 1)
/* The largest LSN a file may carry: far beyond what any store reaches
 * (MF_MAX_COUNTER per open), and low enough that no LSN arithmetic can
 * wrap.  A larger one in a snapshot, a log name or a group is corrupt. */
#define MF_MAX_LSN (UINT64_C(1) << 62)
#define MF_GROUP_MAX_RECORDS (1u << 24)

#define MF_SNAP_MAGIC "BLOBDSNP"
#define MF_SNAP_END_MAGIC "BLOBDEND"
#define MF_LOG_MAGIC "BLOBDLOG"
#define MF_GROUP_MAGIC "BLOBDGRP"
#define MF_COMMIT_MAGIC "BLOBDCMT"
#define MF_HOLT_MAGIC "ARTSNMNF"

enum mf_rec_type { MF_REC_SET = 1, MF_REC_DELETE = 2, MF_REC_OPEN = 3 };

struct mf_record {
    enum mf_rec_type type;
    uint64_t lsn;
    uint8_t guid[STORE_GUID_SIZE];
    uint64_t slot;
    uint32_t len, crc;
    uint64_t version; /* SET: version; OPEN: generation */
};

void mf_encode_record(uint8_t out[MF_REC_SIZE], const struct mf_record *r);
/* 0, or -1 when the record's CRC or type is bad. */
int mf_decode_record(const uint8_t in[MF_REC_SIZE], struct mf_record *r);

/* Encode a whole group (header, records with LSNs from first_lsn, commit)
 * into buf, which must hold MF_REC_SIZE * (n + 2) bytes. */
void mf_encode_group(uint8_t *buf, const uint8_t uuid[16], uint64_t first_lsn,
                     const struct mf_record *recs, size_t n);
void mf_encode_log_header(uint8_t out[MF_LOG_HDR_SIZE], const uint8_t uuid[16],
                          uint64_t first_lsn);

/* Name of the log whose first LSN is lsn: "log-%016" PRIx64 ".blg". */
void mf_log_name(char out[32], uint64_t lsn);
/* 0 and *lsn if name is a log name, else -1. */
int mf_parse_log_name(const char *name, uint64_t *lsn);

#define MF_SNAP_NAME "manifest.bin"
#define MF_SNAP_TMP_NAME "manifest.bin.tmp"
#define MF_DATA_NAME "blobs.dat"
#define MF_LOCK_NAME "store.lock"
#define MF_HOLT_LOG_NAME "manifest.log"

/* One log file found at open. */
struct mf_log {
    uint64_t first_lsn;
    uint64_t end;  /* committed end: the byte after its last valid group */
    uint64_t size; /* file size found */
};

/* What replay produced. */
struct mf_state {
    uint8_t uuid[16];
    int have_uuid;
    uint64_t snap_lsn;   /* last LSN the snapshot covers (0: none) */
    uint64_t snap_bytes; /* size of manifest.bin (0: none) */
    uint64_t next_lsn;   /* LSN the next record gets */
    uint64_t generation; /* highest generation seen */
    uint64_t next_slot;
    uint64_t log_records; /* records in logs past the snapshot */
    struct mf_log *logs;  /* in LSN order */
    size_t nlogs;
    int torn_tail;
    uint64_t torn_offset; /* in the last log */
    struct bitmap used;   /* slots in use (freed after open) */
};

struct mf_ctx {
    struct store_io *io;
    int dirfd;
    int read_only;
    const char *dir; /* for messages */
    char *err;       /* message buffer */
    size_t errlen;
    void (*warn)(void *ctx, const char *msg);
    void *warn_ctx;
    /* Slots blobs.dat covers (ceil(size / frame)): a durable entry can
     * never lie past it, since the data sync precedes its record. */
    uint64_t data_slots;
};

/* Load manifest.bin and replay every log over it into ix and state.
 * Writable opens truncate a torn tail (logged); read-only opens only
 * report it.  Returns 0 or a code with ctx->err naming file and offset. */
int mf_load(struct mf_ctx *ctx, struct index *ix, struct mf_state *state);
/* Records a replay batch holds before it is applied, at least (tests lower
 * it to cross batch boundaries with small logs). */
extern uint32_t mf_replay_batch_max;
/* The records a batch that starts with entries GUIDs in the index holds:
 * mf_replay_batch_max, or an eighth of the entries when that is more (a
 * batch walks the whole index, so with a large index fewer, larger batches
 * keep replay linear in its size). */
uint64_t mf_replay_batch_limit(uint64_t entries);
void mf_state_free(struct mf_state *state);

/* Where a snapshot's entries come from: pages in GUID order after a
 * cursor (after NULL: from the start), the header's tail fields read at
 * the end of the scan, and whether to give up (shutdown). */
struct mf_snap_src {
    size_t (*page)(void *arg, const uint8_t *after, struct index_entry *out,
                   size_t max);
    void (*tail)(void *arg, uint64_t *next_slot, uint64_t *generation);
    int (*abandon)(void *arg);
    void *arg;
};

/* Write manifest.bin.tmp from src and fsync it (removed again on any
 * failure).  *bytes gets its size; *sync_failed is set when an fsync
 * failed (sticky for the caller). */
int mf_write_snapshot_tmp(struct mf_ctx *ctx, const struct mf_snap_src *src,
                          const uint8_t uuid[16], uint64_t last_lsn,
                          uint64_t *bytes, int *sync_failed);
/* Rename manifest.bin.tmp over manifest.bin and fsync the directory: the
 * one manifest commit (M5). */
int mf_commit_snapshot(struct mf_ctx *ctx, int *sync_failed);
/* Create a new empty log named for first_lsn, synced with its directory.
 * Returns the fd or a negative code; *sync_failed as for snapshots. */
int mf_create_log(struct mf_ctx *ctx, const uint8_t uuid[16],
                  uint64_t first_lsn, int *sync_failed);

/* ---- the store (store.c) ----
 * Defined here so iothread.c can reach it; nothing outside store/ sees it.
 */
#define FRAME_POOL_MAX 64

struct store_async;

struct store {
    char *dir;
    int read_only;
    enum store_log_level log_level;
    void (*log_fn)(void *ctx, enum store_log_level level, const char *msg);
    void *log_ctx;
    uint64_t headroom_min;

    struct store_io *io;
    int io_owned;
    int dirfd, lockfd, datafd, logfd;
    pid_t owner_pid;
    dev_t lock_dev;
    ino_t lock_ino;
    int direct;
    uint8_t uuid[16];

    pthread_mutex_t wlock;
    pthread_mutex_t lock;

    /* under lock */
    struct index ix;
    struct slots free;
    struct pins pins;
    uint64_t next_slot;
    struct mf_record *pend;
    size_t npend, cpend;
    uint32_t *pend_free;
    size_t npf, cpf;
    uint64_t unflushed_blobs, unflushed_bytes;
    /* I/O counters (under lock): blob frames written, the pwritev calls
     * that wrote them, acknowledged writes superseded in their batch by a
     * later write of the same GUID (no data of their own), and syncs. */
    uint64_t data_writes, data_write_calls, writes_superseded;
    uint64_t data_syncs, log_syncs;
    int data_dirty;
    int sticky;
    char sticky_msg[256];

    /* under wlock (read under lock for stats) */
    uint64_t prealloc_slots;
    int no_fallocate;
    uint64_t generation, counter;
    uint64_t next_lsn;
    uint64_t log_first; /* first LSN of the current log */
    uint64_t log_end;   /* committed end of the current log */
    uint64_t *logs;     /* first LSNs of every log file, ascending */
    size_t nlogs, clogs;
    uint64_t log_bytes, log_records, snap_bytes;
    uint64_t compact_retry_at;

    /* stats, under lock */
    uint64_t flushes, flush_failures, flush_last_ns;
    int64_t flush_last_ms;
    int flush_in_progress;
    uint64_t compactions, compaction_failures, compaction_last_ns;
    uint64_t compaction_before, compaction_after;
    int64_t compaction_last_ms;
    int compaction_running;
    int torn_tail;
    uint64_t torn_offset;

    /* compaction and holds, under lock */
    int scanning; /* a compaction scans: no slot is reused */
    uint8_t scan_end[STORE_GUID_SIZE]; /* the scan stops after this GUID */
    int scan_has_end;                  /* 0: the index was empty */
    int held; /* a hold: no slot reuse, no compaction */
    uint64_t holds_expired;
    uint64_t hold_until;       /* CLOCK_MONOTONIC ns; 0 = no timeout */
    int stopping;              /* store_close began: abandon a compaction */
    pthread_cond_t compact_cv; /* signalled when a compaction ends */

    struct store_async *as; /* the I/O thread and readers (iothread.c) */
    char io_note[160];      /* why the backend is what it is */
    int io_required_failed; /* io_uring required and unavailable (io_note) */

    pthread_mutex_t frame_lock;
    void *frames[FRAME_POOL_MAX];
    size_t nframes;
};

void store_log(struct store *st, enum store_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 when pending work crossed a flush threshold (SPEC §2: 4096 deltas,
 * 1024 pending-free slots, 256 MiB unflushed). */
int store_flush_pressure(struct store *st);
/* 1 once DATA_SYNC_BYTES were written since the last data sync. */
int store_sync_data_due(struct store *st);
/* fdatasync blobs.dat alone, without committing the pending records: a
 * later flush then has less to sync.  0 or an error (a failed sync is
 * sticky). */
int store_sync_data(struct store *st);
/* 1 when the logs call for a compaction (and no hold forbids it). */
int store_compaction_due(struct store *st);
/* Run one compaction from this thread (switch, scan, barrier, commit).
 * barrier makes every change so far durable: NULL = store_flush. */
int store_compact_run(struct store *st, int (*barrier)(struct store *st));

/* iothread.c */
int iothread_start(struct store *st, const struct store_config *cfg);
/* Stop accepting, finish or fail every queued job, join the threads. */
void iothread_stop(struct store *st);
void iothread_free(struct store *st);
/* Wake the compaction thread (async stores). */
void iothread_kick_compaction(struct store *st);
void iothread_stats(struct store *st, uint64_t *queue_depth);

/* Fill io with the pread backend's stateless syscall functions (the
 * io_uring backend starts from them and replaces what goes to the ring). */
void store_io_pread_fill(struct store_io *io);

/* ---- O_DIRECT probe (probe.c) ---- */

/* 1 if fd accepts 4 KiB aligned O_DIRECT I/O per statx(STATX_DIOALIGN)
 * and an aligned read; 0 if not; sets *why for the log. */
int store_probe_direct(struct store_io *io, int fd, const char **why);

#endif
