/*
 * test_http_list.c - GET /blobs against a real blobd (SPEC §2): pages in
 * GUID order with {guid, size, etag}, the "next" cursor (present only
 * while more entries remain), limit default and clamping, bad query
 * values, after= at and past the end, and deletes leaving the listing.
 *
 * The group's server starts empty; test_list_bulk fills it with NBULK
 * blobs from several client threads and records what each PUT returned,
 * and the later tests check pages against that record.  Tests run in the
 * order of main()'s table.
 */
#include "srv.h"
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"

#define NBULK 2500
#define NTHREADS 6
#define LIST_MAX 10000
/* Every blob takes a preallocated 512 KiB slot of blobs.dat: the clamp
 * test's LIST_MAX + 100 blobs need about 5.3 GB of free space. */

struct ent {
    char guid[HTTP_GUID_BUF];
    size_t size;
    char etag[API_ETAG_MAX];
    int deleted;
    int seen;
};

static struct srv S;
static struct ent *E; /* sorted by GUID once filled */
static size_t NE;
static int bulk_ok;

static int group_setup(void **state)
{
    (void)state;
    srv_up(&S, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(E);
    srv_fini(&S);
    return 0;
}

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ent *)a)->guid, ((const struct ent *)b)->guid);
}

static struct ent *ent_find(const char *guid)
{
    struct ent key;
    snprintf(key.guid, sizeof(key.guid), "%s", guid);
    return bsearch(&key, E, NE, sizeof(*E), ent_cmp);
}

/* ---- creating many blobs from several threads ---- */

struct filler {
    struct ent *v;
    size_t from, n;
    size_t size_mod;
    atomic_size_t *next;
    atomic_int *failures;
    atomic_long *bad_status;
};

static void *fill_thread(void *arg)
{
    struct filler *f = arg;
    uint8_t body[256];
    for (;;) {
        size_t i = atomic_fetch_add(f->next, 1);
        if (i >= f->n)
            break;
        struct ent *e = &f->v[f->from + i];
        http_guid_rand(e->guid);
        /* size_mod 0: empty blobs, which take no slot in blobs.dat */
        e->size = f->size_mod ? 1 + (f->from + i) * 7 % f->size_mod : 0;
        http_fill(body, e->size, f->from + i);
        long st = http_put(&S, e->guid, body, e->size, e->etag);
        if (st != 201 || e->etag[0] != '"') {
            atomic_fetch_add(f->failures, 1);
            atomic_store(f->bad_status, st);
        }
    }
    return NULL;
}

/* Create n more blobs (E grows); asserts every PUT gave 201 + ETag. */
static void create_blobs(size_t n, size_t size_mod)
{
    struct ent *v = realloc(E, (NE + n) * sizeof(*E));
    assert_non_null(v);
    E = v;
    memset(E + NE, 0, n * sizeof(*E));
    atomic_size_t next = 0;
    atomic_int failures = 0;
    atomic_long bad_status = 0;
    struct filler f = {E, NE, n, size_mod, &next, &failures, &bad_status};
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fill_thread, &f), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&failures))
        fail_msg("%d of %zu PUTs failed (one answered %ld)",
                 atomic_load(&failures), n, atomic_load(&bad_status));
    NE += n;
    qsort(E, NE, sizeof(*E), ent_cmp);
    for (size_t i = 1; i < NE; i++)
        assert_string_not_equal(E[i - 1].guid, E[i].guid);
}

/* ---- listing ---- */

/* GET /blobs<query>: asserts 200, JSON with a "blobs" array, "next" a
 * string when present.  Returns the parsed document (caller deletes). */
static cJSON *list_get(const char *query)
{
    char path[256];
    struct http_resp r;
    char ct[128];
    snprintf(path, sizeof(path), "/blobs%s", query);
    assert_int_equal(http_req(&S, "GET", path, NULL, NULL, 0, &r), 0);
    if (r.status != 200)
        fail_msg("GET %s: %ld, want 200: %.300s", path, r.status, r.body);
    assert_true(http_header(&r, "Content-Type", ct, sizeof(ct)));
    if (strncmp(ct, "application/json", 16) != 0)
        fail_msg("GET %s: Content-Type %s", path, ct);
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    if (!j)
        fail_msg("GET %s: not JSON: %.300s", path, r.body);
    http_resp_free(&r);
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(j, "blobs");
    if (!cJSON_IsArray(blobs))
        fail_msg("GET %s: no \"blobs\" array", path);
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(j, "next");
    if (next && !cJSON_IsString(next))
        fail_msg("GET %s: \"next\" is not a string", path);
    return j;
}

static int is_canonical(const char *g)
{
    if (strlen(g) != 32)
        return 0;
    for (; *g; g++) {
        if (!((*g >= '0' && *g <= '9') || (*g >= 'a' && *g <= 'f')))
            return 0;
    }
    return 1;
}

/*
 * Check one page against E: every entry canonical, strictly after *prev
 * (updated), one of ours and not deleted, with its size and etag; marks
 * them seen.  Returns the number of entries; *next gets the cursor or "".
 */
static size_t check_page(const cJSON *j, char prev[HTTP_GUID_BUF],
                         char next[HTTP_GUID_BUF])
{
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(j, "blobs");
    const cJSON *nx = cJSON_GetObjectItemCaseSensitive(j, "next");
    const cJSON *it;
    size_t n = 0;
    cJSON_ArrayForEach(it, blobs)
    {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(it, "guid");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(it, "size");
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(it, "etag");
        if (!cJSON_IsString(g) || !cJSON_IsNumber(sz) || !cJSON_IsString(et))
            fail_msg("entry %zu lacks guid/size/etag", n);
        if (!is_canonical(g->valuestring))
            fail_msg("entry GUID %s is not canonical", g->valuestring);
        if (prev[0] && strcmp(g->valuestring, prev) <= 0)
            fail_msg("GUID %s does not come after %s", g->valuestring, prev);
        struct ent *e = ent_find(g->valuestring);
        if (!e)
            fail_msg("listed GUID %s was never created", g->valuestring);
        if (e->deleted)
            fail_msg("deleted GUID %s is still listed", e->guid);
        if (e->seen)
            fail_msg("GUID %s listed twice", e->guid);
        e->seen = 1;
        if (sz->valuedouble != (double)e->size)
            fail_msg("GUID %s: size %.0f, PUT sent %zu", e->guid,
                     sz->valuedouble, e->size);
        if (strcmp(et->valuestring, e->etag) != 0)
            fail_msg("GUID %s: etag %s, PUT answered %s", e->guid,
                     et->valuestring, e->etag);
        strcpy(prev, e->guid);
        n++;
    }
    next[0] = '\0';
    if (nx) {
        if (n == 0)
            fail_msg("an empty page with \"next\": %s", nx->valuestring);
        if (strcmp(nx->valuestring, prev) != 0)
            fail_msg("\"next\" %s is not the page's last GUID %s",
                     nx->valuestring, prev);
        strcpy(next, nx->valuestring);
    }
    return n;
}

static size_t live_count(void)
{
    size_t n = 0;
    for (size_t i = 0; i < NE; i++)
        n += !E[i].deleted;
    return n;
}

/* Walk every page with limit; checks every live blob appears exactly once
 * in order, full pages while "next" is given, and the page count. */
static void walk_all(size_t limit)
{
    char prev[HTTP_GUID_BUF] = "", next[HTTP_GUID_BUF] = "", q[128];
    size_t total = 0, pages = 0, live = live_count();
    for (size_t i = 0; i < NE; i++)
        E[i].seen = 0;
    for (;;) {
        if (next[0])
            snprintf(q, sizeof(q), "?limit=%zu&after=%s", limit, next);
        else
            snprintf(q, sizeof(q), "?limit=%zu", limit);
        cJSON *j = list_get(q);
        size_t n = check_page(j, prev, next);
        cJSON_Delete(j);
        pages++;
        total += n;
        if (next[0] && n != limit)
            fail_msg("limit %zu: page %zu has %zu entries and a next", limit,
                     pages, n);
        if (!next[0])
            break;
        if (pages > live + 2)
            fail_msg("limit %zu: more pages than blobs", limit);
    }
    if (total != live)
        fail_msg("limit %zu: %zu entries listed, %zu blobs live", limit, total,
                 live);
    size_t want_pages = live == 0 ? 1 : (live + limit - 1) / limit;
    if (pages != want_pages)
        fail_msg("limit %zu: %zu pages for %zu blobs, want %zu (the last "
                 "full page must not carry a next)",
                 limit, pages, live, want_pages);
}

static void expect_empty(const char *query)
{
    cJSON *j = list_get(query);
    const cJSON *blobs = cJSON_GetObjectItemCaseSensitive(j, "blobs");
    int ok = cJSON_GetArraySize(blobs) == 0 &&
             !cJSON_GetObjectItemCaseSensitive(j, "next");
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!ok) {
        char copy[300];
        snprintf(copy, sizeof(copy), "%s", txt ? txt : "?");
        free(txt);
        fail_msg("GET /blobs%s: want {\"blobs\":[]} without next, got %s",
                 query, copy);
    }
    free(txt);
}

/* ---- the tests ---- */

static void test_list_empty(void **state)
{
    (void)state;
    char g[HTTP_GUID_BUF], q[128];
    expect_empty("");
    expect_empty("?limit=5");
    http_guid_rand(g);
    snprintf(q, sizeof(q), "?after=%s", g);
    expect_empty(q);
}

static void test_list_bad_query(void **state)
{
    (void)state;
    static const char *const bad_limit[] = {
        "?limit=0",
        "?limit=-1",
        "?limit=abc",
        "?limit=1.5",
        "?limit=%2B5",
        "?limit=10abc",
        "?limit=99999999999999999999999999",
    };
    char g[HTTP_GUID_BUF], q[128];
    struct http_resp r;
    for (size_t i = 0; i < sizeof(bad_limit) / sizeof(bad_limit[0]); i++) {
        snprintf(q, sizeof(q), "/blobs%s", bad_limit[i]);
        assert_int_equal(http_req(&S, "GET", q, NULL, NULL, 0, &r), 0);
        if (r.status != 400)
            fail_msg("GET %s: %ld, want 400 bad_query", q, r.status);
        http_expect_error(&r, 400, "bad_query", NULL);
        http_resp_free(&r);
    }
    http_guid_rand(g);
    const char *bad_after[4];
    char a1[64], a2[64], a3[64];
    snprintf(a1, sizeof(a1), "%.31s", g);
    snprintf(a2, sizeof(a2), "%s0", g);
    snprintf(a3, sizeof(a3), "%s", g);
    a3[3] = 'g';
    bad_after[0] = "xyz";
    bad_after[1] = a1;
    bad_after[2] = a2;
    bad_after[3] = a3;
    for (size_t i = 0; i < 4; i++) {
        snprintf(q, sizeof(q), "/blobs?after=%s&limit=10", bad_after[i]);
        assert_int_equal(http_req(&S, "GET", q, NULL, NULL, 0, &r), 0);
        if (r.status != 400)
            fail_msg("GET %s: %ld, want 400 bad_guid", q, r.status);
        http_expect_error(&r, 400, "bad_guid", NULL);
        http_resp_free(&r);
    }
}

static void test_list_bulk(void **state)
{
    (void)state;
    create_blobs(NBULK, 200);
    bulk_ok = 1;
    walk_all(1000);
    /* NBULK is a multiple of 500: the last page is full and has no next. */
    walk_all(500);
    walk_all(LIST_MAX);
    walk_all(7);
}

static void test_list_default_limit(void **state)
{
    (void)state;
    char prev[HTTP_GUID_BUF] = "", next[HTTP_GUID_BUF];
    if (!bulk_ok)
        skip();
    for (size_t i = 0; i < NE; i++)
        E[i].seen = 0;
    cJSON *j = list_get("");
    size_t n = check_page(j, prev, next);
    cJSON_Delete(j);
    assert_int_equal(n, API_LIST_DEFAULT);
    /* The first page is the first 1000 GUIDs, and next is the 1000th. */
    assert_string_equal(next, E[API_LIST_DEFAULT - 1].guid);
    for (size_t i = 0; i < API_LIST_DEFAULT; i++)
        assert_true(E[i].seen);
}

static void test_list_after(void **state)
{
    (void)state;
    char q[128], prev[HTTP_GUID_BUF], next[HTTP_GUID_BUF];
    if (!bulk_ok)
        skip();
    /* After the last GUID: an empty page, no next. */
    snprintf(q, sizeof(q), "?after=%s", E[NE - 1].guid);
    expect_empty(q);
    expect_empty("?after=ffffffffffffffffffffffffffffffff&limit=3");

    /* After an existing GUID: the ones strictly after it. */
    for (size_t i = 0; i < NE; i++)
        E[i].seen = 0;
    snprintf(q, sizeof(q), "?after=%s&limit=3", E[99].guid);
    cJSON *j = list_get(q);
    strcpy(prev, E[99].guid);
    assert_int_equal(check_page(j, prev, next), 3);
    cJSON_Delete(j);
    assert_true(E[100].seen && E[101].seen && E[102].seen);
    assert_string_equal(next, E[102].guid);

    /* The second-last GUID with a big limit: one entry and no next. */
    snprintf(q, sizeof(q), "?after=%s&limit=50", E[NE - 2].guid);
    j = list_get(q);
    strcpy(prev, E[NE - 2].guid);
    assert_int_equal(check_page(j, prev, next), 1);
    cJSON_Delete(j);
    assert_string_equal(next, "");

    /* The dashed and upper-case forms of after are accepted. */
    char d[40];
    const char *g = E[99].guid;
    snprintf(d, sizeof(d), "%.8s-%.4s-%.4s-%.4s-%.12s", g, g + 8, g + 12,
             g + 16, g + 20);
    for (char *p = d; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    snprintf(q, sizeof(q), "?after=%s&limit=1", d);
    j = list_get(q);
    for (size_t i = 0; i < NE; i++)
        E[i].seen = 0;
    strcpy(prev, E[99].guid);
    assert_int_equal(check_page(j, prev, next), 1);
    cJSON_Delete(j);
    assert_true(E[100].seen);
}

static void test_list_after_delete(void **state)
{
    (void)state;
    char q[128], path[64], prev[HTTP_GUID_BUF], next[HTTP_GUID_BUF];
    if (!bulk_ok)
        skip();
    static const size_t del[] = {1234, 0, 999, 1000};
    for (size_t k = 0; k < sizeof(del) / sizeof(del[0]); k++) {
        snprintf(path, sizeof(path), "/blobs/%s", E[del[k]].guid);
        assert_int_equal(http_status(&S, "DELETE", path, NULL, NULL, 0), 204);
        E[del[k]].deleted = 1;
    }
    for (size_t i = 0; i < NE; i++)
        E[i].seen = 0;
    snprintf(q, sizeof(q), "?after=%s&limit=2", E[1233].guid);
    cJSON *j = list_get(q);
    strcpy(prev, E[1233].guid);
    assert_int_equal(check_page(j, prev, next), 2);
    cJSON_Delete(j);
    assert_true(E[1235].seen && E[1236].seen);

    /* after= a deleted GUID still works as a cursor. */
    snprintf(q, sizeof(q), "?after=%s&limit=1", E[1234].guid);
    j = list_get(q);
    for (size_t i = 0; i < NE; i++)
        E[i].seen = 0;
    strcpy(prev, E[1234].guid);
    assert_int_equal(check_page(j, prev, next), 1);
    cJSON_Delete(j);
    assert_true(E[1235].seen);

    walk_all(1000);
    walk_all(998);
}

/* Over LIST_MAX blobs, so a larger limit is seen to be clamped. */
static void test_list_clamp(void **state)
{
    (void)state;
    char prev[HTTP_GUID_BUF] = "", next[HTTP_GUID_BUF], q[128];
    if (!bulk_ok)
        skip();
    create_blobs(LIST_MAX + 100 - live_count(), 0); /* no disk space */
    for (size_t i = 0; i < NE; i++)
        E[i].seen = 0;
    cJSON *j = list_get("?limit=20000");
    size_t n = check_page(j, prev, next);
    cJSON_Delete(j);
    if (n != LIST_MAX)
        fail_msg("limit=20000 gave %zu entries, want the clamp %d", n,
                 LIST_MAX);
    assert_true(next[0] != '\0');
    snprintf(q, sizeof(q), "?limit=20000&after=%s", next);
    j = list_get(q);
    assert_int_equal(check_page(j, prev, next), 100);
    cJSON_Delete(j);
    assert_string_equal(next, "");
    walk_all(LIST_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_empty),
        cmocka_unit_test(test_list_bad_query),
        cmocka_unit_test(test_list_bulk),
        cmocka_unit_test(test_list_default_limit),
        cmocka_unit_test(test_list_after),
        cmocka_unit_test(test_list_after_delete),
        cmocka_unit_test(test_list_clamp),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
