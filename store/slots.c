/*
 * slots.c - the reusable-slot set, the reader pin table and the slot
 * bitmap used while replaying.
 *
 * Invariants:
 *  S1. A slot is in the reusable set only when no durable manifest state
 *      refers to it and no reader pins it (the store enforces the "when";
 *      this file only keeps the sets).
 *  S2. Holes found at open are kept as ranges, so a sparse store does not
 *      expand into one entry per free slot; ranges are stored highest
 *      first and popped from the lowest.
 * Threads: none of its own; the store's lock protects every call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

void slots_init(struct slots *s)
{
    memset(s, 0, sizeof(*s));
}

void slots_free(struct slots *s)
{
    free(s->singles);
    free(s->ranges);
    memset(s, 0, sizeof(*s));
}

int slots_pop(struct slots *s, uint32_t *slot)
{
    if (s->nsingles > 0) {
        *slot = s->singles[--s->nsingles];
        s->total--;
        return 0;
    }
    if (s->nranges == 0)
        return -1;
    struct slot_range *r = &s->ranges[s->nranges - 1];
    *slot = r->next;
    if (r->next == r->end)
        s->nranges--;
    else
        r->next++;
    s->total--;
    return 0;
}

int slots_push(struct slots *s, uint32_t slot)
{
    if (s->nsingles == s->csingles) {
        size_t n = s->csingles ? s->csingles * 2 : 64;
        uint32_t *v = realloc(s->singles, n * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->singles = v;
        s->csingles = n;
    }
    s->singles[s->nsingles++] = slot;
    s->total++;
    return 0;
}

static int range_push(struct slots *s, uint32_t lo, uint32_t hi)
{
    if (s->nranges == s->cranges) {
        size_t n = s->cranges ? s->cranges * 2 : 16;
        struct slot_range *v = realloc(s->ranges, n * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->ranges = v;
        s->cranges = n;
    }
    s->ranges[s->nranges].next = lo;
    s->ranges[s->nranges].end = hi;
    s->nranges++;
    s->total += (uint64_t)hi - lo + 1;
    return 0;
}

/* 1 if word w of b is entirely val (words past the end are all zero). */
static int word_is(const struct bitmap *b, uint64_t w, uint64_t val)
{
    return w * 64 >= b->nbits ? val == 0 : b->w[w] == val;
}

int slots_rebuild(struct slots *s, const struct bitmap *used,
                  uint64_t next_slot)
{
    slots_free(s);
    /* Walk down from the top so ranges end up highest first (S2); whole
     * words of used or free slots are skipped at once. */
    uint64_t i = next_slot;
    while (i > 0) {
        while (i > 0 && bitmap_get(used, i - 1))
            i -= (i % 64 == 0 && word_is(used, (i - 1) / 64, UINT64_MAX)) ? 64
                                                                          : 1;
        if (i == 0)
            break;
        uint64_t hi = i - 1;
        while (i > 0 && !bitmap_get(used, i - 1))
            i -= (i % 64 == 0 && word_is(used, (i - 1) / 64, 0)) ? 64 : 1;
        int rc = range_push(s, (uint32_t)i, (uint32_t)hi);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int pins_add(struct pins *p, uint32_t slot)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].slot == slot) {
            p->v[i].count++;
            return 0;
        }
    }
    if (p->n == p->cap) {
        size_t n = p->cap ? p->cap * 2 : 32;
        struct pin *v = realloc(p->v, n * sizeof(*v));
        if (!v)
            return -ENOMEM;
        p->v = v;
        p->cap = n;
    }
    p->v[p->n].slot = slot;
    p->v[p->n].count = 1;
    p->v[p->n].deferred = 0;
    p->n++;
    return 0;
}

int pins_release(struct pins *p, uint32_t slot)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].slot != slot)
            continue;
        if (--p->v[i].count > 0)
            return 0;
        int deferred = (int)p->v[i].deferred;
        p->v[i] = p->v[--p->n];
        return deferred;
    }
    return 0;
}

int pins_defer(struct pins *p, uint32_t slot)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].slot == slot) {
            p->v[i].deferred = 1;
            return 1;
        }
    }
    return 0;
}

int bitmap_ensure(struct bitmap *b, uint64_t nbits)
{
    if (nbits <= b->nbits)
        return 0;
    uint64_t words = (b->nbits + 63) / 64;
    uint64_t nwords = (nbits + 63) / 64;
    if (nwords > words) {
        uint64_t grow = words * 2 > nwords ? words * 2 : nwords;
        uint64_t *w = realloc(b->w, grow * sizeof(*w));
        if (!w)
            return -ENOMEM;
        memset(w + words, 0, (grow - words) * sizeof(*w));
        b->w = w;
        b->nbits = grow * 64;
        return 0;
    }
    b->nbits = words * 64;
    return 0;
}
