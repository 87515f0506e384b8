/*
 * fuzz_store.h - what fuzz_snapshot and fuzz_replay share: turning a fuzz
 * input into a data directory (manifest.bin, logs, a sparse blobs.dat),
 * opening it through the real store_open, checking what an accepted
 * store looks like, and removing the directory again.
 *
 * Input layout (both targets; docs/format.md has the file formats):
 *
 *   byte 0     flags (FS_*)
 *   bytes 1-2  blobs.dat size in 4 KiB units (u16 LE) ...
 *   byte 3     ... shifted left by (byte & 15): sparse, at most
 *              FS_CHEAP_SLOTS frames (32 GiB)
 *   then       the target's payload
 *
 * Logs are given in a compact form (fs_log_expand): a sequence of 64-byte
 * units written one after the other, except that a unit starting with
 * "BLOBDGRP" is placed at the next 4096-byte boundary (as the store
 * places groups; replay looks for groups nowhere else) and a unit
 * "FUZZPAD!" only pads to the next boundary.  A real log converts to this
 * form by dropping the zero padding before each group (fs_log_compact).
 *
 * Checksums and counts are hard for a fuzzer to get right, so two flags
 * repair them after the mutation (FS_FIX_CRC: every 64-byte seal, snapshot
 * entry CRC and group CRC; FS_FIX_COUNT: entry and record counts and
 * record LSNs), which lets mutations reach the checks behind them; without
 * the flags the bytes are taken as they are.
 *
 * Invariants checked for every store that opens (fs_open_and_check):
 *  S1. Open either succeeds or fails with a negative code and a message.
 *  S2. The listing is in strictly ascending GUID order, every entry is
 *      found again by store_stat with the same length and version, and
 *      lengths are at most one frame; store_count and the stats agree.
 *  S3. Free slots + slots in use == next_slot (holes rebuilt exactly).
 *  S4. (FS_ROUNDTRIP, writable) the store accepts a new blob and a delete,
 *      flushes and compacts; reopened read-only it lists exactly the
 *      expected entries and serves the new blob's bytes.
 */
#ifndef BLOBD_FUZZ_STORE_H
#define BLOBD_FUZZ_STORE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define FS_FIX_CRC 0x01u
#define FS_FIX_COUNT 0x02u
#define FS_WRITABLE 0x04u
#define FS_ROUNDTRIP 0x08u
#define FS_NO_DATA 0x10u
#define FS_SNAPSHOT 0x20u /* fuzz_replay: the first section is manifest.bin */
#define FS_TWO_LOGS 0x40u /* fuzz_replay: a second log section follows */

/* An empty store whose snapshot says next_slot = 2^32 - 1 is valid, and
 * its open takes 2^26 steps of 64 slots (store/slots.c slots_rebuild: ~50
 * ms, far more instrumented), and libFuzzer rewards every longer walk as new
 * coverage.  So blobs.dat is capped at FS_CHEAP_SLOTS frames and a
 * snapshot whose next_slot lies between FS_CHEAP_SLOTS and the largest
 * valid one is not opened: the checks around it are plain comparisons,
 * covered below the cap. */
#define FS_CHEAP_SLOTS (UINT64_C(1) << 16)

#define FS_PRELUDE 4 /* flags and the data file size */
#define FS_UNIT 64
#define FS_SEP "#BLOBDFZ" /* separates fuzz_replay's sections */
#define FS_SEP_LEN 8
#define FS_PAD "FUZZPAD!"

struct fs_dir {
    char path[PATH_MAX];
    int dirfd;
};

/* A fresh directory under $BLOBD_FUZZ_TMPDIR, else /dev/shm (tmpfs: the
 * store's fsyncs cost nothing), else $TMPDIR, else /tmp.  0 or -1. */
int fs_dir_new(struct fs_dir *d);
/* Remove everything in it and the directory itself. */
void fs_dir_free(struct fs_dir *d);
/* Create name in d with buf[0..len).  0 or -1. */
int fs_write(struct fs_dir *d, const char *name, const void *buf, size_t len);
/* blobs.dat of the size the prelude p[1..3] names (sparse).  0 or -1. */
int fs_data_file(struct fs_dir *d, const uint8_t *prelude);
/* The size the prelude names. */
uint64_t fs_data_size(const uint8_t *prelude);
/* Prelude bytes 1-3 for a size (rounded up to 4 KiB units). */
void fs_data_prelude(uint64_t size, uint8_t *prelude);

/* 1 when a snapshot's next_slot is above FS_CHEAP_SLOTS but valid. */
int fs_snapshot_big(const uint8_t *snap, size_t len);
/* Repair a snapshot in place (FS_FIX_CRC, FS_FIX_COUNT); returns the
 * length to write (FS_FIX_COUNT drops bytes past the trailer). */
size_t fs_fix_snapshot(uint8_t *buf, size_t len, unsigned flags);
/* Expand a compact log section into file bytes, repairing as flags say;
 * malloc'ed, *out_len its length.  NULL on ENOMEM. */
uint8_t *fs_log_expand(const uint8_t *sec, size_t len, unsigned flags,
                       size_t *out_len);
/* The inverse for a real log: drop the zero units before each group.
 * malloc'ed; NULL on ENOMEM. */
uint8_t *fs_log_compact(const uint8_t *file, size_t len, size_t *out_len);
/* The LSN a log file is named for: its header's first LSN (1 when it has
 * no whole header) plus delta. */
uint64_t fs_log_name_lsn(const uint8_t *file, size_t len, int delta);

/* Open the store in d as flags say (read-only unless FS_WRITABLE), check
 * S1-S3, and with FS_ROUNDTRIP S4.  seed varies the round trip.  Returns
 * 1 when the store opened, 0 when it was refused. */
int fs_open_and_check(struct fs_dir *d, unsigned flags, uint64_t seed);

#endif
