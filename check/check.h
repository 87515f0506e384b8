/*
 * check.h - PRIVATE to check/: the state of one run of blobd-check, the
 * offline store verifier (docs/check.md), shared by its files.
 *
 *   main.c      options, the lock probe, phases, exit status
 *   findings.c  the list of warnings and errors, each with its location
 *   map.c       the GUID -> entry and slot -> entry maps replay builds
 *   replay.c    manifest.bin and every log, replayed with the store's rules
 *   data.c      blobs.dat: size, bounds, then every live blob's CRC32C
 *   report.c    the human summary and the --json document
 *   progress.c  the one-line progress display on a terminal
 *
 * Invariants:
 *  K1. Read-only: every file of the data directory is opened O_RDONLY;
 *      nothing in it is written, truncated, renamed, created or removed.
 *      The only lock taken is a shared flock on an existing store.lock.
 *  K2. Replay follows store/manifest.c (docs/format.md "Recovery"): what
 *      open would refuse is an error, what open repairs or ignores (a torn
 *      tail, an empty log left by an interrupted creation, a leftover
 *      manifest.bin.tmp) is a warning.
 *  K3. Once the manifest cannot be replayed to its end (a broken sequence,
 *      a damaged group followed by valid ones, an unusable snapshot), the
 *      map no longer describes the store: later records are still checked
 *      for structure but not applied, and blob data is not verified.
 * Threads: one; nothing here is thread-safe.
 */
#ifndef BLOBD_CHECK_H
#define BLOBD_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Exit statuses (docs/check.md); 64, 66 and 70 as in sysexits.h. */
#define CHK_EXIT_OK 0
#define CHK_EXIT_DAMAGED 1
#define CHK_EXIT_IN_USE 2
#define CHK_EXIT_USAGE 64
#define CHK_EXIT_NOINPUT 66
#define CHK_EXIT_SOFTWARE 70

/* Findings kept for the report; the totals count every one. */
#define CHK_FINDINGS_MAX 1000

enum chk_sev { CHK_WARN = 0, CHK_ERR = 1 };

/* Which optional location fields of a finding are set. */
#define CHK_HAS_OFFSET 1u
#define CHK_HAS_SLOT 2u
#define CHK_HAS_LSN 4u
#define CHK_HAS_BYTES 8u

/* Where a finding is: a file (name inside the data directory), a byte
 * offset in it, the GUID concerned (and a second one for a conflict), a
 * slot, an LSN, a byte count (e.g. what open will drop). */
struct chk_loc {
    const char *file;
    const uint8_t *guid;
    const uint8_t *other_guid;
    unsigned has;
    uint64_t offset, slot, lsn, bytes;
};

struct chk_finding {
    enum chk_sev sev;
    const char *code; /* static, stable snake_case */
    char *message;
    char *file;
    int has_guid, has_other;
    uint8_t guid[STORE_GUID_SIZE], other_guid[STORE_GUID_SIZE];
    unsigned has;
    uint64_t offset, slot, lsn, bytes;
};

/* ---- map.c ---- */

#define CHK_NONE UINT32_MAX /* no entry; also "no slot" for empty blobs */

struct chk_entry {
    uint8_t guid[STORE_GUID_SIZE];
    uint64_t version;
    uint32_t slot; /* CHK_NONE for an empty blob */
    uint32_t len, crc;
    uint32_t live;
};

/* Entries live in a vector (indices stay valid; freed ones are reused);
 * two open-addressing tables find them by GUID and by slot. */
struct chk_map {
    struct chk_entry *e;
    size_t ne, ce;
    uint32_t *freed;
    size_t nfreed, cfreed;
    uint32_t *gtab; /* entry index + 1; 0 = empty */
    size_t gcap, gcount;
    uint64_t *stab; /* slot << 32 | (entry index + 1); 0 = empty */
    size_t scap, scount;
    uint64_t live;
};

void chk_map_init(struct chk_map *m);
void chk_map_free(struct chk_map *m);
/* Index of guid's entry or CHK_NONE. */
uint32_t chk_map_find(const struct chk_map *m, const uint8_t *guid);
/* Add a new entry (the GUID must be absent): its index, or CHK_NONE when
 * out of memory. */
uint32_t chk_map_add(struct chk_map *m, const struct chk_entry *e);
/* Remove entry i (and its slot, if it holds one). */
void chk_map_remove(struct chk_map *m, uint32_t i);
/* The entry holding slot, or CHK_NONE. */
uint32_t chk_map_slot(const struct chk_map *m, uint32_t slot);
/* Record that entry i holds slot; 0 or -1 when out of memory. */
int chk_map_slot_set(struct chk_map *m, uint32_t slot, uint32_t i);
void chk_map_slot_clear(struct chk_map *m, uint32_t slot);

/* A SET that named a slot another live GUID held (R4 in replay.c). */
struct chk_suspect {
    uint32_t slot;
    uint8_t guid[STORE_GUID_SIZE];
    const char *file; /* a log's name in struct chk */
    uint64_t off, lsn;
};

/* ---- progress.c ---- */

struct chk_progress {
    int on; /* stderr is a terminal */
    const char *phase;
    uint64_t done, total; /* units of the phase */
    const char *unit;     /* "MiB" or "blobs" */
    uint64_t bytes;       /* bytes read in the phase, for the rate */
    double t0, last;
    size_t width; /* length of the line last drawn */
};

void chk_progress_start(struct chk_progress *p, const char *phase,
                        const char *unit, uint64_t total);
/* Redraw at most ten times a second (force: now). */
void chk_progress_update(struct chk_progress *p, uint64_t done, uint64_t bytes,
                         int force);
/* Erase the line. */
void chk_progress_end(struct chk_progress *p);

/* ---- the run ---- */

enum chk_io { CHK_IO_AUTO = 0, CHK_IO_URING, CHK_IO_PREAD };

struct chk_log_file {
    char name[32];
    uint64_t first_lsn, size, end;
    int ignored; /* an empty newest log: open removes it */
};

struct chk {
    /* options */
    const char *dir;
    int json, force;
    enum chk_io io;

    int dirfd;
    int lockfd;
    int in_use; /* the lock was held by someone else (--force) */

    /* fatal: the directory is not a store or cannot be read (exit 66), or
     * the checker ran out of memory (70).  msg says why, or why the store
     * counts as in use. */
    int fatal;
    char msg[512];

    struct chk_finding *f;
    size_t nf, cf;
    uint64_t nwarn, nerr;

    uint8_t uuid[16];
    int have_uuid;
    uint64_t generation;
    int replay_ok; /* K3 */
    uint64_t next_slot;

    struct {
        int present;
        uint64_t bytes, entries, last_lsn, next_slot, generation;
    } snap;
    struct {
        struct chk_log_file *files;
        size_t nfiles;
        uint64_t bytes, groups, records, applied, first_lsn, next_lsn;
        int torn;
        char torn_file[32];
        uint64_t torn_offset, torn_end, torn_bytes;
    } log;
    struct {
        int present;
        int fd;
        uint64_t bytes, slots; /* slots: ceil(bytes / frame) */
        int direct;
        const char *io; /* "io_uring" or "pread" */
        char note[160]; /* why not O_DIRECT / not io_uring */
    } data;

    struct chk_map map;
    struct chk_suspect *sus;
    size_t nsus, csus;
    uint64_t batch_records; /* SET and DELETE records since the last batch */
    /* Records the batch holds: the store's own rule (store/manifest.c's
     * slot conflicts are judged on the state each batch leaves), from the
     * live entries when the batch started, so the two cannot differ. */
    uint64_t batch_limit;
    uint64_t entries, live_bytes;
    uint64_t blobs_total, blobs_checked, bytes_read;
    int blobs_skipped; /* K3: data not verified */

    struct chk_progress prog;
};

/* findings.c: record a finding (printf-style message). */
void chk_add(struct chk *c, enum chk_sev sev, const char *code,
             const struct chk_loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Mark the run fatal (exit status code) with a message; returns -1. */
int chk_fatal(struct chk *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void chk_findings_free(struct chk *c);
void chk_guid_format(const uint8_t g[16], char out[33]);

/* replay.c: load manifest.bin and replay the logs into c->map.  0, or -1
 * when fatal. */
int chk_replay(struct chk *c);

/* data.c: stat blobs.dat (before replay: bounds need its size). */
int chk_data_open(struct chk *c);
/* data.c: data file size against the entries, then every blob. */
int chk_data_verify(struct chk *c);
void chk_data_close(struct chk *c);

/* report.c */
const char *chk_status(const struct chk *c);
void chk_report_human(const struct chk *c);
/* 0, or -1 when the document cannot be built (out of memory). */
int chk_report_json(const struct chk *c);

#endif
