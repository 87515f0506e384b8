/*
 * cache.h - the memory budget and the frame cache for GETs.
 *
 * The budget (SPEC §4) counts every large buffer the server holds:
 * request frames (upload bodies and read targets, also while the store's
 * threads hold them), response buffers and the cache.  The cache is
 * evicted first; only when the rest does not fit is a request refused
 * (503 over_budget).
 *
 * The cache keeps verified copies of whole blobs, keyed by GUID and
 * version, bounded in bytes, least recently used first out.
 */
#ifndef BLOBD_SERVER_CACHE_H
#define BLOBD_SERVER_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct server_budget {
    atomic_uint_least64_t used;
    uint64_t limit;             /* bytes; 0 = no limit */
    struct server_cache *cache; /* evicted first; may be NULL */
};

/* Charge n bytes: 0, or -1 when they do not fit even after evicting the
 * cache (nothing charged then). */
int budget_take(struct server_budget *b, uint64_t n);
void budget_give(struct server_budget *b, uint64_t n);

/* A refcounted buffer of len bytes (charged to the budget while alive). */
struct cbuf {
    atomic_int refs;
    struct server_budget *budget;
    size_t len;
    uint8_t data[];
};

/* A new buffer holding a copy of data[0..len) with one reference, or NULL
 * (out of budget or memory). */
struct cbuf *cbuf_copy(struct server_budget *b, const void *data, size_t len);
void cbuf_ref(struct cbuf *c);
void cbuf_unref(struct cbuf *c);

struct server_cache;

/* limit: bytes the cache may hold; 0 disables it (NULL is returned and
 * every function below accepts NULL). */
struct server_cache *cache_new(uint64_t limit, struct server_budget *b);
void cache_free(struct server_cache *c);
/* The cached buffer of (guid, version) with a reference taken, or NULL. */
struct cbuf *cache_get(struct server_cache *c, const uint8_t *guid,
                       uint64_t version);
/* Cache buf as (guid, version) if that version is still the blob's
 * current one in st (checked under the cache lock, so a change that
 * completes before or after is never left cached: see cache.c K2). */
void cache_put(struct server_cache *c, struct store *st, const uint8_t *guid,
               uint64_t version, struct cbuf *buf);
/* Forget guid: called when a change to it completes. */
void cache_drop(struct server_cache *c, const uint8_t *guid);
/* Evict until at least n bytes were freed or the cache is empty; the
 * bytes freed. */
uint64_t cache_shrink(struct server_cache *c, uint64_t n);
void cache_stats(struct server_cache *c, uint64_t *bytes, uint64_t *limit,
                 uint64_t *hits, uint64_t *misses);

#endif
