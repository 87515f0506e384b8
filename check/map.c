/*
 * map.c - the state replay builds: entries by GUID, and the entry holding
 * each slot (so a conflict can name both GUIDs).
 *
 * Both tables are open addressing with linear probing, at most half full,
 * and deletion by backward shift (no tombstones), so lookups stay short
 * however many records a log replays.
 *
 * Invariants:
 *  P1. gtab holds exactly the live entries; stab exactly the slots held by
 *      live entries, each by one entry.
 *  P2. An index returned by chk_map_add stays valid until chk_map_remove.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store_int.h"

#define MAP_MIN_CAP 1024u

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t guid_hash(const uint8_t *g)
{
    return mix64(le_get64(g) ^ mix64(le_get64(g + 8)));
}

void chk_map_init(struct chk_map *m)
{
    memset(m, 0, sizeof(*m));
}

void chk_map_free(struct chk_map *m)
{
    free(m->e);
    free(m->freed);
    free(m->gtab);
    free(m->stab);
    memset(m, 0, sizeof(*m));
}

uint32_t chk_map_find(const struct chk_map *m, const uint8_t *guid)
{
    if (!m->gcap)
        return CHK_NONE;
    size_t mask = m->gcap - 1;
    for (size_t h = guid_hash(guid) & mask;; h = (h + 1) & mask) {
        uint32_t v = m->gtab[h];
        if (!v)
            return CHK_NONE;
        if (memcmp(m->e[v - 1].guid, guid, STORE_GUID_SIZE) == 0)
            return v - 1;
    }
}

static void gtab_insert(uint32_t *tab, size_t cap, const struct chk_entry *e,
                        uint32_t i)
{
    size_t mask = cap - 1;
    size_t h = guid_hash(e[i].guid) & mask;
    while (tab[h])
        h = (h + 1) & mask;
    tab[h] = i + 1;
}

static int gtab_grow(struct chk_map *m)
{
    if (2 * (m->gcount + 1) <= m->gcap)
        return 0;
    size_t cap = m->gcap ? m->gcap * 2 : MAP_MIN_CAP;
    uint32_t *t = calloc(cap, sizeof(*t));
    if (!t)
        return -1;
    for (size_t i = 0; i < m->gcap; i++)
        if (m->gtab[i])
            gtab_insert(t, cap, m->e, m->gtab[i] - 1);
    free(m->gtab);
    m->gtab = t;
    m->gcap = cap;
    return 0;
}

uint32_t chk_map_add(struct chk_map *m, const struct chk_entry *e)
{
    if (gtab_grow(m) < 0)
        return CHK_NONE;
    uint32_t i;
    if (m->nfreed) {
        i = m->freed[--m->nfreed];
    } else {
        if (m->ne == m->ce) {
            size_t cap = m->ce ? m->ce * 2 : MAP_MIN_CAP;
            if (cap >= CHK_NONE)
                return CHK_NONE;
            struct chk_entry *v = realloc(m->e, cap * sizeof(*v));
            if (!v)
                return CHK_NONE;
            m->e = v;
            m->ce = cap;
        }
        i = (uint32_t)m->ne++;
    }
    m->e[i] = *e;
    m->e[i].live = 1;
    gtab_insert(m->gtab, m->gcap, m->e, i);
    m->gcount++;
    m->live++;
    return i;
}

/* Backward-shift deletion at position h of a linear-probing table: move
 * later members of the cluster into the hole when their home allows. */
static void gtab_delete(struct chk_map *m, size_t h)
{
    size_t mask = m->gcap - 1;
    size_t j = h;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t v = m->gtab[j];
        if (!v)
            break;
        size_t home = guid_hash(m->e[v - 1].guid) & mask;
        /* v may move to h only if h lies cyclically in [home, j). */
        if (((j - home) & mask) >= ((j - h) & mask)) {
            m->gtab[h] = v;
            h = j;
        }
    }
    m->gtab[h] = 0;
}

void chk_map_remove(struct chk_map *m, uint32_t i)
{
    size_t mask = m->gcap - 1;
    struct chk_entry *e = &m->e[i];
    for (size_t h = guid_hash(e->guid) & mask; m->gtab[h]; h = (h + 1) & mask) {
        if (m->gtab[h] == i + 1) {
            gtab_delete(m, h);
            break;
        }
    }
    if (e->slot != CHK_NONE && chk_map_slot(m, e->slot) == i)
        chk_map_slot_clear(m, e->slot);
    e->live = 0;
    m->gcount--;
    m->live--;
    if (m->nfreed == m->cfreed) {
        size_t cap = m->cfreed ? m->cfreed * 2 : 64;
        uint32_t *v = realloc(m->freed, cap * sizeof(*v));
        if (!v)
            return; /* the index is leaked, never reused: still correct */
        m->freed = v;
        m->cfreed = cap;
    }
    m->freed[m->nfreed++] = i;
}

/* ---- slots ---- */

static size_t slot_home(uint32_t slot, size_t mask)
{
    return (size_t)mix64(slot) & mask;
}

uint32_t chk_map_slot(const struct chk_map *m, uint32_t slot)
{
    if (!m->scap)
        return CHK_NONE;
    size_t mask = m->scap - 1;
    for (size_t h = slot_home(slot, mask);; h = (h + 1) & mask) {
        uint64_t v = m->stab[h];
        if (!v)
            return CHK_NONE;
        if ((uint32_t)(v >> 32) == slot)
            return (uint32_t)v - 1;
    }
}

static void stab_insert(uint64_t *tab, size_t cap, uint64_t v)
{
    size_t mask = cap - 1;
    size_t h = slot_home((uint32_t)(v >> 32), mask);
    while (tab[h])
        h = (h + 1) & mask;
    tab[h] = v;
}

int chk_map_slot_set(struct chk_map *m, uint32_t slot, uint32_t i)
{
    if (m->scap) {
        size_t mask = m->scap - 1;
        for (size_t h = slot_home(slot, mask); m->stab[h]; h = (h + 1) & mask) {
            if ((uint32_t)(m->stab[h] >> 32) == slot) {
                m->stab[h] = (uint64_t)slot << 32 | (i + 1);
                return 0;
            }
        }
    }
    if (2 * (m->scount + 1) > m->scap) {
        size_t cap = m->scap ? m->scap * 2 : MAP_MIN_CAP;
        uint64_t *t = calloc(cap, sizeof(*t));
        if (!t)
            return -1;
        for (size_t k = 0; k < m->scap; k++)
            if (m->stab[k])
                stab_insert(t, cap, m->stab[k]);
        free(m->stab);
        m->stab = t;
        m->scap = cap;
    }
    stab_insert(m->stab, m->scap, (uint64_t)slot << 32 | (i + 1));
    m->scount++;
    return 0;
}

void chk_map_slot_clear(struct chk_map *m, uint32_t slot)
{
    if (!m->scap)
        return;
    size_t mask = m->scap - 1;
    size_t h = slot_home(slot, mask);
    while (m->stab[h] && (uint32_t)(m->stab[h] >> 32) != slot)
        h = (h + 1) & mask;
    if (!m->stab[h])
        return;
    size_t j = h;
    for (;;) {
        j = (j + 1) & mask;
        uint64_t v = m->stab[j];
        if (!v)
            break;
        size_t home = slot_home((uint32_t)(v >> 32), mask);
        if (((j - home) & mask) >= ((j - h) & mask)) {
            m->stab[h] = v;
            h = j;
        }
    }
    m->stab[h] = 0;
    m->scount--;
}
