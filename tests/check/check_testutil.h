/*
 * check_testutil.h - helpers for the blobd-check tests: run the binary
 * (pipes or a pseudo-terminal) with a time limit, fingerprint a data
 * directory to prove a run changed nothing, look inside logs written by
 * the store, and query the --json report.
 *
 * The binary's path comes from $BLOBD_CHECK (CTest sets it); without it
 * every test fails rather than skips.
 */
#ifndef BLOBD_CHECK_TESTUTIL_H
#define BLOBD_CHECK_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cjson/cJSON.h>

#define CK_RUN_TIMEOUT_S 60
#define CK_MAX_FILES 64
#define CK_MAX_GROUPS 256

struct ck_run {
    int status; /* exit status; 128 + signal if killed */
    char *out;  /* stdout, NUL-terminated */
    char *err;  /* stderr (the terminal's output with ck_run_pty) */
};

/* Run blobd-check with args (NULL-terminated, without argv[0]); stdout
 * and stderr are pipes.  Asserts it finished in time. */
void ck_run(struct ck_run *r, const char *const *args);
/* The same with stderr on a pseudo-terminal (and stdin), stdout a pipe. */
void ck_run_pty(struct ck_run *r, const char *const *args);
void ck_run_free(struct ck_run *r);

/* Run with the data dir as the last argument, fingerprinting the dir
 * before and after and asserting that nothing in it changed (size, mtime,
 * ctime, inode, contents; no file created or removed). */
void ck_run_dir(struct ck_run *r, const char *dir, const char *const *opts);
/* ck_run_dir with --json, asserting the output parses; *root owned by the
 * caller (cJSON_Delete). */
cJSON *ck_run_json(struct ck_run *r, const char *dir, const char *const *opts);

struct ck_file {
    char name[256];
    uint64_t size, ino;
    struct timespec mtim, ctim;
    uint32_t crc;
};

struct ck_snap {
    struct ck_file f[CK_MAX_FILES];
    size_t n;
    struct timespec dir_mtim;
};

void ck_snap_take(const char *dir, struct ck_snap *s);
void ck_snap_assert_same(const struct ck_snap *a, const struct ck_snap *b);

/* ---- logs, read from docs/format.md ---- */

struct ck_log {
    uint8_t uuid[16];
    uint64_t first_lsn, next_lsn;
    uint64_t size; /* file size */
    uint64_t end;  /* end of the last group (64 when none) */
    uint64_t goff[CK_MAX_GROUPS];
    uint32_t gcount[CK_MAX_GROUPS];
    size_t ngroups;
};

/* Full path of the newest log in dir (malloc'd). */
char *ck_last_log(const char *dir);
void ck_scan_log(const char *path, struct ck_log *l);
/* The slot the newest SET record of guid names in dir's newest log. */
uint64_t ck_slot_of(const char *dir, const uint8_t guid[16]);

/* ---- files ---- */

uint64_t ck_fsize(const char *path);
void ck_pwrite(const char *path, const void *buf, size_t len, uint64_t off);
void ck_truncate(const char *path, uint64_t len);
void ck_flip_bit(const char *path, uint64_t off, int bit);

/* ---- the JSON report ---- */

const char *ck_str(const cJSON *o, const char *key);
double ck_num(const cJSON *o, const char *key);
/* The first finding with code in root[list] ("errors" / "warnings"). */
const cJSON *ck_finding(const cJSON *root, const char *list, const char *code);
size_t ck_count(const cJSON *root, const char *list, const char *code);
/* Lowercase hex of a GUID. */
void ck_hex(const uint8_t g[16], char out[33]);

#endif
