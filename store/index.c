/*
 * index.c - the GUID-ordered index: a sorted array of sorted chunks of at
 * most INDEX_CHUNK_CAP entries.
 *
 * Invariants:
 *  I1. No chunk is empty; entries ascend strictly across chunk boundaries.
 *  I2. A full chunk first lends an entry to a neighbour with room before
 *      it splits; an append past the last entry starts a new chunk instead
 *      of splitting, so time-ordered GUIDs pack chunks full.
 *  I3. A chunk that falls under a quarter full merges into a neighbour
 *      that can take it, so deletes cannot strand memory.
 *  I4. lead[i] holds the first 8 bytes of chunk i's first GUID (i >= 1;
 *      lead[0] is never read).  Every change touches one chunk and its
 *      neighbours, so after it lead is refreshed around that chunk.
 *  I5. An entry above every other one is appended to the last chunk
 *      without a search: a snapshot (sorted) loads in linear time.
 * Threads: none of its own; the store's lock protects every call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

void index_init(struct index *ix)
{
    memset(ix, 0, sizeof(*ix));
}

void index_free(struct index *ix)
{
    for (size_t i = 0; i < ix->nchunks; i++)
        free(ix->chunks[i]);
    free(ix->chunks);
    free(ix->lead);
    memset(ix, 0, sizeof(*ix));
}

/* memcmp order, as two big-endian words: no call for 16 bytes. */
static inline int guid_cmp(const uint8_t *a, const uint8_t *b)
{
    uint64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    if (x == y) {
        memcpy(&x, a + 8, 8);
        memcpy(&y, b + 8, 8);
        if (x == y)
            return 0;
    }
    return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
}

static uint64_t lead_of(const uint8_t *guid)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | guid[i];
    return v;
}

/* I4: refresh lead around chunk ci after a change there. */
static void lead_refresh(struct index *ix, size_t ci)
{
    size_t lo = ci > 0 ? ci - 1 : 0, hi = ci + 2;
    if (hi > ix->nchunks)
        hi = ix->nchunks;
    for (size_t i = lo; i < hi; i++)
        if (ix->chunks[i]->n > 0)
            ix->lead[i] = lead_of(ix->chunks[i]->e[0].guid);
}

/* The chunk that holds guid or would receive it: the last chunk whose
 * first entry is <= guid, or chunk 0.  The leads decide unless equal. */
static size_t find_chunk(const struct index *ix, const uint8_t *guid)
{
    uint64_t key = lead_of(guid);
    size_t lo = 0, hi = ix->nchunks;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t l = ix->lead[mid];
        if (l < key ||
            (l == key && guid_cmp(ix->chunks[mid]->e[0].guid, guid) <= 0))
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Position of guid in c, or where it would go; *found says which. */
static uint32_t find_pos(const struct index_chunk *c, const uint8_t *guid,
                         int *found)
{
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int r = guid_cmp(c->e[mid].guid, guid);
        if (r == 0) {
            *found = 1;
            return mid;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

struct index_entry *index_find(struct index *ix, const uint8_t *guid)
{
    if (ix->nchunks == 0)
        return NULL;
    struct index_chunk *c = ix->chunks[find_chunk(ix, guid)];
    int found;
    uint32_t p = find_pos(c, guid, &found);
    return found ? &c->e[p] : NULL;
}

struct index_entry *index_find_next(struct index *ix, const uint8_t *guid,
                                    struct index_cursor *cur)
{
    if (ix->nchunks == 0)
        return NULL;
    if (!cur->valid || cur->ci >= ix->nchunks) {
        cur->ci = find_chunk(ix, guid);
        cur->pos = 0;
        cur->valid = 1;
    }
    /* Forward to the last chunk whose first entry is <= guid, as
     * find_chunk would pick; mostly this chunk or the next. */
    uint64_t key = lead_of(guid);
    size_t ci = cur->ci;
    while (ci + 1 < ix->nchunks &&
           (ix->lead[ci + 1] < key ||
            (ix->lead[ci + 1] == key &&
             guid_cmp(ix->chunks[ci + 1]->e[0].guid, guid) <= 0)))
        ci++;
    if (ci != cur->ci) {
        cur->ci = ci;
        cur->pos = 0;
    }
    /* Forward inside the chunk: the entries pass by in order. */
    struct index_chunk *c = ix->chunks[ci];
    uint32_t p = cur->pos;
    int r = 1;
    while (p < c->n && (r = guid_cmp(c->e[p].guid, guid)) < 0)
        p++;
    cur->pos = p;
    return p < c->n && r == 0 ? &c->e[p] : NULL;
}

static int insert_chunk_ptr(struct index *ix, size_t at, struct index_chunk *c)
{
    if (ix->nchunks == ix->cap) {
        size_t ncap = ix->cap ? ix->cap * 2 : 16;
        uint64_t *l = realloc(ix->lead, ncap * sizeof(*l));
        if (!l)
            return -ENOMEM;
        ix->lead = l;
        struct index_chunk **v = realloc(ix->chunks, ncap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ix->chunks = v;
        ix->cap = ncap;
    }
    memmove(&ix->chunks[at + 1], &ix->chunks[at],
            (ix->nchunks - at) * sizeof(ix->chunks[0]));
    memmove(&ix->lead[at + 1], &ix->lead[at],
            (ix->nchunks - at) * sizeof(ix->lead[0]));
    ix->chunks[at] = c;
    ix->lead[at] = c->n > 0 ? lead_of(c->e[0].guid) : 0;
    ix->nchunks++;
    return 0;
}

static void remove_chunk_ptr(struct index *ix, size_t at)
{
    free(ix->chunks[at]);
    memmove(&ix->chunks[at], &ix->chunks[at + 1],
            (ix->nchunks - at - 1) * sizeof(ix->chunks[0]));
    memmove(&ix->lead[at], &ix->lead[at + 1],
            (ix->nchunks - at - 1) * sizeof(ix->lead[0]));
    ix->nchunks--;
}

static void chunk_insert(struct index_chunk *c, uint32_t pos,
                         const struct index_entry *e)
{
    memmove(&c->e[pos + 1], &c->e[pos], (c->n - pos) * sizeof(c->e[0]));
    c->e[pos] = *e;
    c->n++;
}

static void chunk_delete(struct index_chunk *c, uint32_t pos)
{
    memmove(&c->e[pos], &c->e[pos + 1], (c->n - pos - 1) * sizeof(c->e[0]));
    c->n--;
}

static struct index_chunk *chunk_new(void)
{
    struct index_chunk *c = malloc(sizeof(*c));
    if (c)
        c->n = 0;
    return c;
}

/* Insert a new entry at pos of full chunk ci (I2). */
static int insert_full(struct index *ix, size_t ci, uint32_t pos,
                       const struct index_entry *e)
{
    struct index_chunk *c = ix->chunks[ci];
    struct index_chunk *next = ci + 1 < ix->nchunks ? ix->chunks[ci + 1] : 0;
    struct index_chunk *prev = ci > 0 ? ix->chunks[ci - 1] : 0;

    if (pos == c->n && !next) { /* append past the end: new last chunk */
        struct index_chunk *nc = chunk_new();
        if (!nc)
            return -ENOMEM;
        chunk_insert(nc, 0, e);
        if (insert_chunk_ptr(ix, ci + 1, nc) < 0) {
            free(nc);
            return -ENOMEM;
        }
        return 0;
    }
    if (next && next->n < INDEX_CHUNK_CAP) { /* lend the last entry */
        if (pos == c->n) {
            chunk_insert(next, 0, e);
            return 0;
        }
        chunk_insert(next, 0, &c->e[c->n - 1]);
        c->n--;
        chunk_insert(c, pos, e);
        return 0;
    }
    if (prev && prev->n < INDEX_CHUNK_CAP) { /* lend the first entry */
        if (pos == 0) {
            chunk_insert(prev, prev->n, e);
            return 0;
        }
        chunk_insert(prev, prev->n, &c->e[0]);
        chunk_delete(c, 0);
        chunk_insert(c, pos - 1, e);
        return 0;
    }
    struct index_chunk *nc = chunk_new();
    if (!nc)
        return -ENOMEM;
    uint32_t half = INDEX_CHUNK_CAP / 2;
    memcpy(nc->e, &c->e[half], (c->n - half) * sizeof(c->e[0]));
    nc->n = c->n - half;
    c->n = half;
    if (insert_chunk_ptr(ix, ci + 1, nc) < 0) {
        memcpy(&c->e[half], nc->e, nc->n * sizeof(c->e[0]));
        c->n += nc->n;
        free(nc);
        return -ENOMEM;
    }
    if (pos <= half)
        chunk_insert(c, pos, e);
    else
        chunk_insert(nc, pos - half, e);
    return 0;
}

int index_put(struct index *ix, const struct index_entry *e,
              struct index_entry *old, int *had_old)
{
    *had_old = 0;
    if (ix->nchunks == 0) {
        struct index_chunk *c = chunk_new();
        if (!c)
            return -ENOMEM;
        if (insert_chunk_ptr(ix, 0, c) < 0) {
            free(c);
            return -ENOMEM;
        }
    }
    size_t ci = ix->nchunks - 1;
    struct index_chunk *c = ix->chunks[ci];
    uint32_t pos;
    if (c->n > 0 && guid_cmp(c->e[c->n - 1].guid, e->guid) < 0) {
        pos = c->n; /* I5: above everything, no search */
    } else {
        ci = find_chunk(ix, e->guid);
        c = ix->chunks[ci];
        int found;
        pos = find_pos(c, e->guid, &found);
        if (found) {
            *old = c->e[pos];
            *had_old = 1;
            c->e[pos] = *e;
            return 0;
        }
    }
    int rc = 0;
    if (c->n < INDEX_CHUNK_CAP)
        chunk_insert(c, pos, e);
    else
        rc = insert_full(ix, ci, pos, e);
    if (rc == 0) {
        ix->count++;
        lead_refresh(ix, ci);
    }
    return rc;
}

/* I3: merge chunk ci into a neighbour when it is under a quarter full. */
static void maybe_merge(struct index *ix, size_t ci)
{
    struct index_chunk *c = ix->chunks[ci];
    if (c->n == 0) {
        remove_chunk_ptr(ix, ci);
        return;
    }
    if (c->n >= INDEX_CHUNK_CAP / 4)
        return;
    if (ci > 0 && ix->chunks[ci - 1]->n + c->n <= INDEX_CHUNK_CAP) {
        struct index_chunk *p = ix->chunks[ci - 1];
        memcpy(&p->e[p->n], c->e, c->n * sizeof(c->e[0]));
        p->n += c->n;
        remove_chunk_ptr(ix, ci);
    } else if (ci + 1 < ix->nchunks &&
               ix->chunks[ci + 1]->n + c->n <= INDEX_CHUNK_CAP) {
        struct index_chunk *n = ix->chunks[ci + 1];
        memmove(&n->e[c->n], n->e, n->n * sizeof(n->e[0]));
        memcpy(n->e, c->e, c->n * sizeof(c->e[0]));
        n->n += c->n;
        remove_chunk_ptr(ix, ci);
    }
}

int index_remove(struct index *ix, const uint8_t *guid, struct index_entry *old)
{
    if (ix->nchunks == 0)
        return STORE_E_NOT_FOUND;
    size_t ci = find_chunk(ix, guid);
    struct index_chunk *c = ix->chunks[ci];
    int found;
    uint32_t pos = find_pos(c, guid, &found);
    if (!found)
        return STORE_E_NOT_FOUND;
    if (old)
        *old = c->e[pos];
    chunk_delete(c, pos);
    ix->count--;
    maybe_merge(ix, ci);
    if (ix->nchunks > 0)
        lead_refresh(ix, ci < ix->nchunks ? ci : ix->nchunks - 1);
    return 0;
}

size_t index_list(struct index *ix, const uint8_t *after, size_t limit,
                  struct index_entry *out, int *more)
{
    size_t ci = 0, n = 0;
    uint32_t pos = 0;
    *more = 0;
    if (ix->nchunks == 0)
        return 0;
    if (after) {
        int found;
        ci = find_chunk(ix, after);
        pos = find_pos(ix->chunks[ci], after, &found);
        if (found)
            pos++;
    }
    for (; ci < ix->nchunks; ci++, pos = 0) {
        struct index_chunk *c = ix->chunks[ci];
        for (; pos < c->n; pos++) {
            if (n == limit) {
                *more = 1;
                return n;
            }
            out[n++] = c->e[pos];
        }
    }
    return n;
}

size_t index_bytes(const struct index *ix)
{
    return ix->nchunks * sizeof(struct index_chunk) +
           ix->cap * (sizeof(ix->chunks[0]) + sizeof(ix->lead[0]));
}
