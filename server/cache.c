/*
 * cache.c - see cache.h.
 *
 * Owns: the cache's hash table and LRU list (one mutex), the budget's
 * counter (atomic).
 *
 * Invariants:
 *  K1. At most one entry per GUID; its buffer is a verified copy of the
 *      whole blob at that version (filled only from a full read, whose
 *      CRC32C the store checked).
 *  K2. An entry is inserted only if, under the cache lock, the store
 *      still names that version current; a change drops the GUID under
 *      the same lock after the store applied it.  So either the insert
 *      sees the new version and is skipped, or the drop comes after the
 *      insert and removes it: a replaced or deleted version never stays.
 *  K3. bytes == the sum of the entries' buffer lengths <= limit; the
 *      cache's own reference keeps each buffer charged to the budget
 *      until it is evicted and the last response using it is done.
 *  K4. The budget never goes over its limit: a charge that does not fit
 *      evicts the cache first, then fails without charging anything.
 *  K5. Eviction for the budget and the retry after it run under one
 *      mutex: the bytes an eviction frees are back in the budget before
 *      any other thread decides there is no room.
 */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS_MIN 1024u

struct centry {
    uint8_t guid[STORE_GUID_SIZE];
    uint64_t version;
    struct cbuf *buf;
    struct centry *hnext;       /* hash chain */
    struct centry *prev, *next; /* LRU: head is the most recent */
};

struct server_cache {
    pthread_mutex_t mu;
    struct server_budget *budget;
    uint64_t limit, bytes, hits, misses;
    struct centry **table;
    size_t nbuckets;
    struct centry *head, *tail;
};

/* ---- the budget ---- */

static int budget_try(struct server_budget *b, uint64_t n)
{
    uint64_t cur = atomic_load(&b->used);
    while (cur + n <= b->limit) /* K4 */
        if (atomic_compare_exchange_weak(&b->used, &cur, cur + n))
            return 0;
    return -1;
}

static pthread_mutex_t evict_mu = PTHREAD_MUTEX_INITIALIZER;

int budget_take(struct server_budget *b, uint64_t n)
{
    if (!b || b->limit == 0) {
        if (b)
            atomic_fetch_add(&b->used, n);
        return 0;
    }
    if (budget_try(b, n) == 0)
        return 0;
    if (!b->cache)
        return -1;
    /* K5: one evictor at a time, and the retry under the same lock, so a
     * thread never sees the cache emptied by another before the bytes it
     * freed were given back. */
    pthread_mutex_lock(&evict_mu);
    int rc = budget_try(b, n);
    if (rc < 0) {
        uint64_t cur = atomic_load(&b->used);
        if (cur + n > b->limit)
            cache_shrink(b->cache, cur + n - b->limit);
        rc = budget_try(b, n);
    }
    pthread_mutex_unlock(&evict_mu);
    return rc;
}

void budget_give(struct server_budget *b, uint64_t n)
{
    if (b)
        atomic_fetch_sub(&b->used, n);
}

/* ---- buffers ---- */

struct cbuf *cbuf_copy(struct server_budget *b, const void *data, size_t len)
{
    if (budget_take(b, len) < 0)
        return NULL;
    struct cbuf *c = malloc(sizeof(*c) + (len ? len : 1));
    if (!c) {
        budget_give(b, len);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->budget = b;
    c->len = len;
    if (len)
        memcpy(c->data, data, len);
    return c;
}

void cbuf_ref(struct cbuf *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void cbuf_unref(struct cbuf *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    budget_give(c->budget, c->len);
    free(c);
}

/* ---- the cache ---- */

static size_t bucket_of(const struct server_cache *c, const uint8_t *guid)
{
    uint64_t h;
    memcpy(&h, guid + 8, sizeof(h)); /* random bits for most GUIDs */
    uint64_t l;
    memcpy(&l, guid, sizeof(l));
    h ^= l * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    return (size_t)(h % c->nbuckets);
}

struct server_cache *cache_new(uint64_t limit, struct server_budget *b)
{
    if (limit == 0)
        return NULL;
    struct server_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->limit = limit;
    c->budget = b;
    c->nbuckets = (size_t)(limit / (64u * 1024u));
    if (c->nbuckets < BUCKETS_MIN)
        c->nbuckets = BUCKETS_MIN;
    c->table = calloc(c->nbuckets, sizeof(*c->table));
    if (!c->table) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void lru_unlink(struct server_cache *c, struct centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(struct server_cache *c, struct centry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static struct centry **find(struct server_cache *c, const uint8_t *guid)
{
    struct centry **p = &c->table[bucket_of(c, guid)];
    while (*p && memcmp((*p)->guid, guid, STORE_GUID_SIZE) != 0)
        p = &(*p)->hnext;
    return p;
}

/* Remove *p from the table and the LRU; the buffer to unref after the
 * lock is dropped. */
static struct cbuf *remove_at(struct server_cache *c, struct centry **p)
{
    struct centry *e = *p;
    *p = e->hnext;
    lru_unlink(c, e);
    c->bytes -= e->buf->len;
    struct cbuf *b = e->buf;
    free(e);
    return b;
}

void cache_free(struct server_cache *c)
{
    if (!c)
        return;
    while (c->head) {
        struct centry **p = find(c, c->head->guid);
        cbuf_unref(remove_at(c, p));
    }
    free(c->table);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

struct cbuf *cache_get(struct server_cache *c, const uint8_t *guid,
                       uint64_t version)
{
    if (!c)
        return NULL;
    struct cbuf *b = NULL;
    pthread_mutex_lock(&c->mu);
    struct centry *e = *find(c, guid);
    if (e && e->version == version) {
        b = e->buf;
        cbuf_ref(b);
        lru_unlink(c, e);
        lru_push(c, e);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return b;
}

/* Evict from the LRU tail until need bytes were freed; the buffers go to
 * *out (at most cap of them), the bytes freed are returned. */
static uint64_t evict(struct server_cache *c, uint64_t need, struct cbuf **out,
                      size_t cap, size_t *nout)
{
    uint64_t freed = 0;
    while (c->tail && freed < need && *nout < cap) {
        struct centry **p = find(c, c->tail->guid);
        struct cbuf *b = remove_at(c, p);
        freed += b->len;
        out[(*nout)++] = b;
    }
    return freed;
}

#define EVICT_BATCH 64

void cache_put(struct server_cache *c, struct store *st, const uint8_t *guid,
               uint64_t version, struct cbuf *buf)
{
    if (!c || buf->len > c->limit)
        return;
    struct cbuf *drop[EVICT_BATCH + 1];
    size_t ndrop = 0;
    struct store_blob_info info;
    pthread_mutex_lock(&c->mu);
    if (store_stat(st, guid, &info) != 0 || info.version != version)
        goto out; /* K2: no longer current */
    struct centry **p = find(c, guid);
    if (*p) {
        if ((*p)->version == version)
            goto out; /* there already */
        drop[ndrop++] = remove_at(c, p);
    }
    if (c->bytes + buf->len > c->limit)
        evict(c, c->bytes + buf->len - c->limit, drop, EVICT_BATCH, &ndrop);
    if (c->bytes + buf->len > c->limit)
        goto out;
    struct centry *e = calloc(1, sizeof(*e));
    if (!e)
        goto out;
    memcpy(e->guid, guid, STORE_GUID_SIZE);
    e->version = version;
    e->buf = buf;
    cbuf_ref(buf);
    p = find(c, guid);
    e->hnext = *p;
    *p = e;
    lru_push(c, e);
    c->bytes += buf->len;
out:
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < ndrop; i++)
        cbuf_unref(drop[i]);
}

void cache_drop(struct server_cache *c, const uint8_t *guid)
{
    if (!c)
        return;
    struct cbuf *b = NULL;
    pthread_mutex_lock(&c->mu);
    struct centry **p = find(c, guid);
    if (*p)
        b = remove_at(c, p);
    pthread_mutex_unlock(&c->mu);
    cbuf_unref(b);
}

uint64_t cache_shrink(struct server_cache *c, uint64_t n)
{
    if (!c)
        return 0;
    uint64_t total = 0;
    for (;;) {
        struct cbuf *drop[EVICT_BATCH];
        size_t ndrop = 0;
        pthread_mutex_lock(&c->mu);
        uint64_t freed = evict(c, n - total, drop, EVICT_BATCH, &ndrop);
        int more = c->tail != NULL;
        pthread_mutex_unlock(&c->mu);
        for (size_t i = 0; i < ndrop; i++)
            cbuf_unref(drop[i]);
        total += freed;
        if (total >= n || !more || ndrop == 0)
            return total;
    }
}

void cache_stats(struct server_cache *c, uint64_t *bytes, uint64_t *limit,
                 uint64_t *hits, uint64_t *misses)
{
    *bytes = *limit = *hits = *misses = 0;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    *bytes = c->bytes;
    *limit = c->limit;
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
