/*
 * fuzz_cond.c - libFuzzer target: If-Match / If-None-Match parsing
 * (api_etags_parse) and the decisions built on it (api_etags_match,
 * api_cond_read, api_cond_write) against a fuzzed current blob.
 *
 * Input: bytes 0-7 the current version (u64 little-endian), byte 8 flags
 * (bit 0: the blob exists; bit 1: If-Match sent; bit 2: If-None-Match
 * sent), then the If-Match value, a newline, the If-None-Match value.
 *
 * Invariants:
 *  C1. A parsed list is "*" (no tags) or 1..API_ETAGS_MAX tags; a tag is
 *      ours only when the value holds exactly api_etag's text for its
 *      version (I2, A3); the ETag of any version of generation >= 1 parses
 *      back as ours with that version, and W/ of it as weak.
 *  C2. api_etags_match is the loop api.h describes.
 *  C3. api_cond_write agrees with evaluating the headers on the current
 *      state (api_cond_read, a matching If-None-Match failing a write):
 *      a precondition decided without a lookup holds for this state
 *      exactly when the headers do; a 412 without a lookup means the
 *      headers fail for this state; with the state, 0 pins that state
 *      (VERSION of it, or ABSENT) and 412 means the headers fail.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fuzz.h"

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* C1 for a parsed value. */
static void check_parsed(const char *value, const struct api_etags *e)
{
    FUZZ_CHECK(e->present, "parsed \"%s\" but not present", value);
    if (e->any) {
        FUZZ_CHECK(e->n == 0, "\"*\" with %zu tags", e->n);
        return;
    }
    FUZZ_CHECK(e->n >= 1 && e->n <= API_ETAGS_MAX, "%zu tags in \"%s\"", e->n,
               value);
    for (size_t i = 0; i < e->n; i++) {
        if (!e->v[i].ours) {
            FUZZ_CHECK(e->v[i].version == 0, "a foreign tag with a version");
            continue;
        }
        char etag[API_ETAG_MAX];
        api_etag(e->v[i].version, etag);
        FUZZ_CHECK(store_version_generation(e->v[i].version) >= 1,
                   "tag %zu of \"%s\" is ours with generation 0", i, value);
        FUZZ_CHECK(strstr(value, etag) != NULL,
                   "tag %zu of \"%s\" taken as %s, which it does not hold", i,
                   value, etag);
    }
}

/* C2: the reference loop. */
static int ref_match(const struct api_etags *e, uint64_t version, int strong)
{
    if (!e->present)
        return 0;
    if (e->any)
        return 1;
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i].ours && e->v[i].version == version &&
            !(strong && e->v[i].weak))
            return 1;
    return 0;
}

/* Does a store precondition hold for the state?  (store.c precond_ok) */
static int pre_holds(const struct store_precond *p, const struct api_cur *c)
{
    switch (p->kind) {
    case STORE_PRE_NONE:
        return 1;
    case STORE_PRE_ABSENT:
        return !c->exists;
    case STORE_PRE_EXISTS:
        return c->exists;
    case STORE_PRE_VERSION:
        return c->exists && c->version == p->version;
    }
    FUZZ_CHECK(0, "unknown precondition kind %d", (int)p->kind);
    return 0;
}

/* C1's converse: our own ETag parses back as ours. */
static void check_own_etag(uint64_t version)
{
    char etag[API_ETAG_MAX], buf[2 * API_ETAG_MAX + 8];
    struct api_etags e;
    if (store_version_generation(version) < 1)
        return;
    api_etag(version, etag);
    snprintf(buf, sizeof(buf), " W/%s ,%s", etag, etag);
    FUZZ_CHECK(api_etags_parse(buf, &e) == 0 && e.n == 2 && e.v[0].ours &&
                   e.v[0].weak && e.v[0].version == version && e.v[1].ours &&
                   !e.v[1].weak && e.v[1].version == version,
               "own ETags \"%s\" not parsed as ours", buf);
}

static void check_conditions(const struct api_etags *im,
                             const struct api_etags *inm,
                             const struct api_cur *cur)
{
    const struct api_etags *pim = im->present ? im : NULL;
    const struct api_etags *pinm = inm->present ? inm : NULL;
    uint64_t v = cur->exists ? cur->version : 0;
    /* C2 */
    for (int strong = 0; strong < 2; strong++) {
        FUZZ_CHECK(api_etags_match(im, v, strong) == ref_match(im, v, strong),
                   "If-Match match (strong %d) differs", strong);
        FUZZ_CHECK(api_etags_match(inm, v, strong) == ref_match(inm, v, strong),
                   "If-None-Match match (strong %d) differs", strong);
    }
    enum api_cond rd = api_cond_read(pim, pinm, cur);
    FUZZ_CHECK(rd == API_COND_OK || rd == API_COND_FAILED ||
                   rd == API_COND_NOT_MODIFIED,
               "api_cond_read returned %d", (int)rd);
    FUZZ_CHECK(api_cond_read(pim, pinm, cur->exists ? cur : NULL) == rd,
               "api_cond_read: an absent blob and NULL differ");
    /* What RFC 9110 says of this state for a write (C3). */
    int ok = rd == API_COND_OK;
    if (!pim && !pinm)
        FUZZ_CHECK(ok, "no precondition, yet not OK");
    struct store_precond pre;
    int w = api_cond_write(pim, pinm, NULL, &pre);
    FUZZ_CHECK(w == 0 || w == 1 || w == API_COND_FAILED,
               "api_cond_write without state returned %d", w);
    if (w == 0)
        FUZZ_CHECK(pre_holds(&pre, cur) == ok,
                   "precondition kind %d (version %" PRIu64
                   ") decided without a lookup %s for exists %d version "
                   "%" PRIu64 " where the headers %s",
                   (int)pre.kind, pre.version,
                   pre_holds(&pre, cur) ? "holds" : "fails", cur->exists,
                   cur->version, ok ? "hold" : "fail");
    if (w == API_COND_FAILED)
        FUZZ_CHECK(!ok, "412 without a lookup, but the headers hold for "
                        "this state");
    int w2 = api_cond_write(pim, pinm, cur, &pre);
    if (w != 1) {
        FUZZ_CHECK(w2 == w, "a case answered without a lookup changed with "
                            "the state");
        return;
    }
    FUZZ_CHECK(w2 == 0 || w2 == API_COND_FAILED,
               "api_cond_write with state returned %d", w2);
    FUZZ_CHECK((w2 == 0) == ok, "api_cond_write with state: %d, headers %s", w2,
               ok ? "hold" : "fail");
    if (w2 == 0) {
        if (cur->exists)
            FUZZ_CHECK(pre.kind == STORE_PRE_VERSION &&
                           pre.version == cur->version,
                       "the state is not pinned (kind %d)", (int)pre.kind);
        else
            FUZZ_CHECK(pre.kind == STORE_PRE_ABSENT,
                       "absence is not pinned (kind %d)", (int)pre.kind);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    struct api_cur cur = {.exists = data[8] & 1, .version = get64(data)};
    char *text = fuzz_strndup(data + 9, size - 9);
    if (!text)
        return 0;
    char *inm_text = strchr(text, '\n');
    if (inm_text)
        *inm_text++ = '\0';
    else
        inm_text = text + strlen(text);
    const char *im_value = data[8] & 2 ? text : NULL;
    const char *inm_value = data[8] & 4 ? inm_text : NULL;
    struct api_etags im, inm;
    int rim = api_etags_parse(im_value, &im);
    int rinm = api_etags_parse(inm_value, &inm);
    FUZZ_CHECK(rim == 0 || rim == -1, "api_etags_parse returned %d", rim);
    FUZZ_CHECK(rinm == 0 || rinm == -1, "api_etags_parse returned %d", rinm);
    if (rim == 0 && im_value)
        check_parsed(im_value, &im);
    if (rinm == 0 && inm_value)
        check_parsed(inm_value, &inm);
    FUZZ_CHECK(im_value || (rim == 0 && !im.present), "absent If-Match");
    check_own_etag(cur.version);
    /* The server answers 400 for a malformed value: no decision then. */
    if (rim == 0 && rinm == 0)
        check_conditions(&im, &inm, &cur);
    free(text);
    return 0;
}
