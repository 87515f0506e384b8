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
    size_t nchunks, cap;
    uint64_t count;
};

void index_init(struct index *ix);
void index_free(struct index *ix);
struct index_entry *index_find(struct index *ix, const uint8_t *guid);
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
void mf_state_free(struct mf_state *state);

/* Write manifest.bin from the index: tmp, fsync, rename, fsync dir (the
 * one manifest commit).  *bytes gets the snapshot size; *sync_failed is
 * set when an fsync failed (sticky for the caller). */
int mf_write_snapshot(struct mf_ctx *ctx, struct index *ix,
                      const uint8_t uuid[16], uint64_t last_lsn,
                      uint64_t next_slot, uint64_t generation, uint64_t *bytes,
                      int *sync_failed);
/* Create a new empty log named for first_lsn, synced with its directory.
 * Returns the fd or a negative code; *sync_failed as for snapshots. */
int mf_create_log(struct mf_ctx *ctx, const uint8_t uuid[16],
                  uint64_t first_lsn, int *sync_failed);

/* ---- O_DIRECT probe (probe.c) ---- */

/* 1 if fd accepts 4 KiB aligned O_DIRECT I/O per statx(STATX_DIOALIGN)
 * and an aligned read; 0 if not; sets *why for the log. */
int store_probe_direct(struct store_io *io, int fd, const char **why);

#endif
