/*
 * testutil.h - helpers shared by the store tests: temp dirs, GUIDs, frames
 * with known contents, and opening stores on a chosen backend.
 *
 * Every test creates its own directory under $TMPDIR (or /tmp) and removes
 * it at the end, so tests run in parallel under ctest -j.
 */
#ifndef BLOBD_TESTUTIL_H
#define BLOBD_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "store.h"
#include "store_io.h"

/* A fresh temp dir "<TMPDIR>/blobd-<tag>-XXXXXX"; the path is malloc'd. */
char *tu_mkdtemp(const char *tag);
/* rm -rf path, then free(path). */
void tu_rmtree(char *path);
/* Join dir and name into a static-per-call malloc'd path; caller frees. */
char *tu_path(const char *dir, const char *name);

/* guid = 16 bytes of b. */
void tu_guid_fill(uint8_t guid[16], uint8_t b);
/* guid from a 64-bit number (big-endian in the last 8 bytes). */
void tu_guid_num(uint8_t guid[16], uint64_t n);

/* Fill buf[0..len) with a pattern derived from seed. */
void tu_pattern(void *buf, size_t len, uint64_t seed);
/* 1 if buf[0..len) holds tu_pattern(seed). */
int tu_pattern_ok(const void *buf, size_t len, uint64_t seed);

/* The backend named by $BLOBD_TEST_BACKEND ("io_uring"; else pread): what
 * tu_open uses when io is NULL.  CTest runs each store test on both. */
enum store_backend tu_backend(void);

/* Open a writable store at dir on io (NULL = tu_backend()); asserts
 * success. */
struct store *tu_open(const char *dir, struct store_io *io);
/* Open and return rc instead of asserting; errbuf may be NULL. */
struct store *tu_try_open(const char *dir, struct store_io *io, int *rc,
                          char *errbuf, size_t errlen);

/* Write len bytes of tu_pattern(seed); asserts a CREATED/REPLACED. */
uint64_t tu_put(struct store *st, const uint8_t guid[16], uint32_t len,
                uint64_t seed);
/* Read back and check pattern(seed) and len; asserts. */
void tu_check(struct store *st, const uint8_t guid[16], uint32_t len,
              uint64_t seed);
/* Write a frame whose byte 100 is b (the seed tests' buf_with). */
uint64_t tu_put_byte100(struct store *st, const uint8_t guid[16], uint8_t b);
/* Read the blob and return its byte 100 (asserts the read succeeds). */
int tu_byte100(struct store *st, const uint8_t guid[16]);

/* Quiet log sink for stores opened by tests (keeps ctest output short). */
void tu_log_quiet(void *ctx, enum store_log_level level, const char *msg);

/* Seed from $BLOBD_TEST_SEED or the time; printed once. */
uint64_t tu_seed(void);
uint64_t tu_rand(uint64_t *state); /* splitmix64 */

#endif
