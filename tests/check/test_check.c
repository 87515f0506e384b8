/*
 * test_check.c - blobd-check against stores built with the real store API
 * (store_open / write / flush / delete / compact) and then damaged by
 * hand: a sound and an empty store pass; a torn log tail is a warning that
 * names what open drops, and the store then opens; a flipped bit before
 * valid groups, a slot conflict, a truncated data file, a changed payload
 * byte and wrong magics are damage.  Where the store has an opinion (open
 * refuses, a read fails its CRC32C), the test asks it too, so the checker
 * and the store agree.  Every run of the checker is fingerprinted: nothing
 * in the data dir may change (ck_run_dir).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "check_testutil.h"
#include "store_int.h"

#define FRAME STORE_FRAME_SIZE

static void guid_of(uint8_t g[16], uint64_t i)
{
    tu_guid_num(g, 0xc0de0000 + i);
}

static void put_i(struct store *st, uint64_t i, uint32_t len, uint64_t seed)
{
    uint8_t g[16];
    guid_of(g, i);
    tu_put(st, g, len, seed);
}

static void flush_ok(struct store *st)
{
    struct store_flush_result fr;
    assert_int_equal(store_flush(st, &fr), 0);
}

static uint64_t generation(struct store *st)
{
    struct store_stats s;
    store_get_stats(st, &s);
    return s.generation;
}

/* The store refuses to open dir (read-only, so nothing is repaired). */
static void store_refuses(const char *dir, int code)
{
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.read_only = 1;
    cfg.backend = STORE_BACKEND_PREAD;
    cfg.log_fn = tu_log_quiet;
    int rc = 0;
    char err[512] = "";
    struct store *st = store_open(&cfg, &rc, err, sizeof(err));
    if (st) {
        store_close(st);
        fail_msg("the store opens %s, which the checker calls damaged", dir);
    }
    if (code && rc != code)
        fail_msg("store_open: %s (%s), expected %s", store_errname(rc), err,
                 store_errname(code));
}

static void expect_status(const cJSON *root, const struct ck_run *r, int status,
                          const char *word)
{
    if (r->status != status || strcmp(ck_str(root, "status"), word) != 0)
        fail_msg("exit %d status %s, expected %d %s\n%s\n%s", r->status,
                 ck_str(root, "status"), status, word, r->out, r->err);
}

/* A store of n blobs, i = 1..n, blob i of 1000 + i bytes; flushed. */
static char *small_store(const char *tag, int n)
{
    char *dir = tu_mkdtemp(tag);
    struct store *st = tu_open(dir, NULL);
    for (int i = 1; i <= n; i++)
        put_i(st, (uint64_t)i, 1000u + (uint32_t)i, (uint64_t)i);
    flush_ok(st);
    store_close(st);
    return dir;
}

/* ---- sound stores ---- */

static void test_sound_store(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("check-sound");
    struct store *st = tu_open(dir, NULL);
    static const uint32_t lens[] = {0, 1, 4095, 4096, 4097, 100000, FRAME};
    uint64_t n = 40;
    for (uint64_t i = 1; i <= n; i++)
        put_i(st, i, lens[i % 7] + (i % 7 == 6 ? 0 : (uint32_t)i), i);
    flush_ok(st);
    for (uint64_t i = 1; i <= 10; i++) /* rewrites: fresh slots */
        put_i(st, i, 2000 + (uint32_t)i, 100 + i);
    for (uint64_t i = 11; i <= 15; i++) {
        uint8_t g[16];
        guid_of(g, i);
        assert_int_equal(store_delete(st, g, NULL, NULL), 0);
    }
    flush_ok(st);
    assert_int_equal(store_compact(st), 0);
    for (uint64_t i = 41; i <= 50; i++)
        put_i(st, i, 3000 + (uint32_t)i, i);
    put_i(st, 20, 0, 7); /* a blob becomes empty */
    uint8_t g21[16];
    guid_of(g21, 21);
    assert_int_equal(store_delete(st, g21, NULL, NULL), 0);
    flush_ok(st);

    /* What the store itself says the checker must find. */
    uint64_t entries = store_count(st), bytes = 0, nonempty = 0;
    struct store_blob_info *info = calloc(entries + 1, sizeof(*info));
    int more = 0;
    assert_int_equal(store_list(st, NULL, entries + 1, info, &more),
                     (int)entries);
    for (uint64_t i = 0; i < entries; i++) {
        bytes += info[i].len;
        nonempty += info[i].len > 0;
    }
    free(info);
    store_close(st);
    assert_int_equal(entries, 50 - 5 - 1);

    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 0, "ok");
    assert_int_equal((uint64_t)ck_num(root, "entries"), entries);
    assert_int_equal((uint64_t)ck_num(root, "live_bytes"), bytes);
    assert_int_equal((uint64_t)ck_num(root, "blobs_checked"), nonempty);
    assert_int_equal((uint64_t)ck_num(root, "errors_total"), 0);
    assert_int_equal(ck_count(root, "errors", NULL), 0);
    assert_int_equal(ck_count(root, "warnings", NULL), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "replay_complete")));
    const cJSON *snap = cJSON_GetObjectItem(root, "snapshot");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(snap, "present")));
    const cJSON *log = cJSON_GetObjectItem(root, "log");
    assert_true(ck_num(log, "records_applied") > 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(log, "torn_tail")));
    assert_string_equal(ck_str(root, "data_dir"), dir);
    cJSON_Delete(root);
    ck_run_free(&r);

    /* The other read path gives the same answer. */
    const char *pread_opt[] = {"--io", "pread", NULL};
    root = ck_run_json(&r, dir, pread_opt);
    expect_status(root, &r, 0, "ok");
    assert_string_equal(ck_str(cJSON_GetObjectItem(root, "data_file"), "io"),
                        "pread");
    assert_int_equal((uint64_t)ck_num(root, "blobs_checked"), nonempty);
    cJSON_Delete(root);
    ck_run_free(&r);

    /* The human report. */
    ck_run_dir(&r, dir, NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "sound"));
    assert_non_null(strstr(r.out, "44 live"));
    assert_string_equal(r.err, ""); /* no terminal: no progress */
    ck_run_free(&r);
    tu_rmtree(dir);
}

static void test_empty_store(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("check-empty");
    store_close(tu_open(dir, NULL));
    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 0, "ok");
    assert_int_equal((int)ck_num(root, "entries"), 0);
    assert_int_equal((int)ck_num(root, "blobs_checked"), 0);
    assert_int_equal(ck_count(root, "errors", NULL), 0);
    cJSON_Delete(root);
    ck_run_free(&r);

    /* A store.lock that was never created is not created by the check. */
    char *lock = tu_path(dir, MF_LOCK_NAME);
    assert_int_equal(unlink(lock), 0);
    ck_run_dir(&r, dir, NULL);
    assert_int_equal(r.status, 0);
    assert_int_not_equal(access(lock, F_OK), 0);
    ck_run_free(&r);
    free(lock);
    tu_rmtree(dir);
}

/* ---- torn tails ---- */

/* Checks a torn tail of `dropped` bytes after the group ending at good,
 * then opens the store (which repairs it) and checks again. */
static void expect_torn(const char *dir, const char *log, uint64_t good,
                        uint64_t dropped, const uint8_t *kept,
                        const uint8_t *lost)
{
    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 0, "warning");
    const cJSON *w = ck_finding(root, "warnings", "torn_tail");
    assert_non_null(w);
    assert_int_equal((uint64_t)ck_num(w, "bytes"), dropped);
    assert_string_equal(ck_str(w, "file"), strrchr(log, '/') + 1);
    char num[32];
    snprintf(num, sizeof(num), "dropping %" PRIu64 " bytes", dropped);
    assert_non_null(strstr(ck_str(w, "message"), num));
    const cJSON *t =
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "log"), "torn_tail");
    assert_int_equal((uint64_t)ck_num(t, "bytes_dropped"), dropped);
    assert_int_equal((uint64_t)ck_num(t, "truncate_to"), good);
    assert_int_equal(ck_count(root, "errors", NULL), 0);
    cJSON_Delete(root);
    ck_run_free(&r);

    /* The store agrees: it opens, finds the tail and keeps what was
     * flushed before it. */
    struct store *st = tu_open(dir, NULL);
    struct store_stats s;
    store_get_stats(st, &s);
    assert_int_equal(s.torn_tail_found, 1);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, kept, &info), 0);
    if (lost)
        assert_int_equal(store_stat(st, lost, &info), STORE_E_NOT_FOUND);
    store_close(st);
    root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 0, "ok");
    cJSON_Delete(root);
    ck_run_free(&r);
}

static void test_torn_tail_cut(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("check-torn");
    struct store *st = tu_open(dir, NULL);
    uint8_t a[16], b[16];
    guid_of(a, 1);
    guid_of(b, 2);
    tu_put(st, a, 5000, 1);
    flush_ok(st);
    char *log = ck_last_log(dir);
    uint64_t good = ck_fsize(log);
    tu_put(st, b, 6000, 2);
    flush_ok(st);
    store_close(st);
    struct ck_log l;
    ck_scan_log(log, &l);
    uint64_t last = l.goff[l.ngroups - 1];
    assert_true(last >= good && l.end > last);
    /* Cut in the middle of the last group's record. */
    uint64_t cut = last + (l.end - last) / 2;
    ck_truncate(log, cut);
    expect_torn(dir, log, good, cut - good, a, b);
    free(log);
    tu_rmtree(dir);
}

static void test_torn_tail_garbage(void **state)
{
    (void)state;
    static const size_t sizes[] = {100, 6000};
    for (size_t k = 0; k < 2; k++) {
        char *dir = small_store("check-garbage", 3);
        char *log = ck_last_log(dir);
        uint64_t good = ck_fsize(log);
        uint8_t junk[6000];
        uint64_t seed = 42 + k;
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (uint8_t)tu_rand(&seed);
        ck_pwrite(log, junk, sizes[k], good);
        uint8_t a[16];
        guid_of(a, 3);
        expect_torn(dir, log, good, sizes[k], a, NULL);
        free(log);
        tu_rmtree(dir);
    }
}

/* ---- damage ---- */

static void test_flipped_bit_before_valid_groups(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("check-flip");
    struct store *st = tu_open(dir, NULL);
    for (uint64_t i = 1; i <= 3; i++) {
        put_i(st, i, 2000, i);
        flush_ok(st);
    }
    store_close(st);
    char *log = ck_last_log(dir);
    struct ck_log l;
    ck_scan_log(log, &l);
    assert_true(l.ngroups >= 4); /* OPEN, then one per flush */
    uint64_t g = l.goff[l.ngroups - 3];
    ck_flip_bit(log, g + 64 + 20, 3); /* inside the first record's GUID */

    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 1, "damaged");
    const cJSON *e = ck_finding(root, "errors", "log_group_damaged");
    assert_non_null(e);
    assert_string_equal(ck_str(e, "file"), strrchr(log, '/') + 1);
    assert_int_equal((uint64_t)ck_num(e, "offset"), g);
    assert_null(ck_finding(root, "warnings", "torn_tail"));
    cJSON_Delete(root);
    ck_run_free(&r);
    store_refuses(dir, STORE_E_CORRUPT);
    free(log);
    tu_rmtree(dir);
}

static void test_slot_conflict(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("check-conflict");
    struct store *st = tu_open(dir, NULL);
    uint8_t a[16], b[16], c[16];
    guid_of(a, 1);
    guid_of(b, 2);
    guid_of(c, 3);
    tu_put(st, a, 3000, 1);
    tu_put(st, b, 3000, 2);
    flush_ok(st);
    uint64_t gen = generation(st);
    store_close(st);
    uint64_t slot = ck_slot_of(dir, a);

    /* A well-formed group (the store's own encoder, valid CRCs) that puts
     * a second GUID on a's live slot. */
    char *log = ck_last_log(dir);
    struct ck_log l;
    ck_scan_log(log, &l);
    struct mf_record rec;
    memset(&rec, 0, sizeof(rec));
    rec.type = MF_REC_SET;
    memcpy(rec.guid, c, 16);
    rec.slot = slot;
    rec.len = 3000;
    rec.crc = 0x12345678;
    rec.version = gen << 40 | 999;
    uint8_t buf[3 * MF_REC_SIZE];
    mf_encode_group(buf, l.uuid, l.next_lsn, &rec, 1);
    uint64_t off = (l.end + 4095) / 4096 * 4096;
    ck_pwrite(log, buf, sizeof(buf), off);

    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 1, "damaged");
    const cJSON *e = ck_finding(root, "errors", "slot_conflict");
    assert_non_null(e);
    char ha[33], hc[33];
    ck_hex(a, ha);
    ck_hex(c, hc);
    assert_string_equal(ck_str(e, "guid"), hc);
    assert_string_equal(ck_str(e, "other_guid"), ha);
    assert_int_equal((uint64_t)ck_num(e, "slot"), slot);
    assert_int_equal((uint64_t)ck_num(e, "offset"), off + MF_REC_SIZE);
    assert_int_equal((uint64_t)ck_num(e, "lsn"), l.next_lsn);
    assert_non_null(strstr(ck_str(e, "message"), ha));
    assert_non_null(strstr(ck_str(e, "message"), hc));
    cJSON_Delete(root);
    ck_run_free(&r);

    /* Both GUIDs in the human report too. */
    ck_run_dir(&r, dir, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.out, "slot_conflict"));
    assert_non_null(strstr(r.out, ha));
    assert_non_null(strstr(r.out, hc));
    ck_run_free(&r);
    store_refuses(dir, STORE_E_CORRUPT);
    free(log);
    tu_rmtree(dir);
}

/* A SET that names a live slot, withdrawn by a later record of the same
 * batch (the holder is deleted), leaves one holder: the store opens such a
 * log, so the checker accepts it too. */
static void test_slot_claim_withdrawn(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("check-withdrawn");
    struct store *st = tu_open(dir, NULL);
    uint8_t a[16], b[16], c[16];
    guid_of(a, 1);
    guid_of(b, 2);
    guid_of(c, 3);
    tu_put(st, a, 3000, 1);
    tu_put(st, b, 3000, 2);
    flush_ok(st);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, a, &info), 0);
    uint64_t gen = generation(st);
    store_close(st);

    char *log = ck_last_log(dir);
    struct ck_log l;
    ck_scan_log(log, &l);
    struct mf_record rec[2];
    memset(rec, 0, sizeof(rec));
    rec[0].type = MF_REC_SET; /* c takes a's slot and bytes ... */
    memcpy(rec[0].guid, c, 16);
    rec[0].slot = ck_slot_of(dir, a);
    rec[0].len = info.len;
    rec[0].crc = info.crc;
    rec[0].version = gen << 40 | 999;
    rec[1].type = MF_REC_DELETE; /* ... and a lets go of it */
    memcpy(rec[1].guid, a, 16);
    uint8_t buf[4 * MF_REC_SIZE];
    mf_encode_group(buf, l.uuid, l.next_lsn, rec, 2);
    ck_pwrite(log, buf, sizeof(buf), (l.end + 4095) / 4096 * 4096);

    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 0, "ok");
    assert_int_equal((int)ck_num(root, "entries"), 2);
    assert_int_equal((int)ck_num(root, "blobs_checked"), 2);
    cJSON_Delete(root);
    ck_run_free(&r);
    st = tu_open(dir, NULL);
    tu_check(st, c, 3000, 1);
    assert_int_equal(store_stat(st, a, &info), STORE_E_NOT_FOUND);
    store_close(st);
    free(log);
    tu_rmtree(dir);
}

static void test_data_file_truncated(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("check-datashort");
    struct store *st = tu_open(dir, NULL);
    uint8_t g[3][16];
    for (int i = 0; i < 3; i++) {
        guid_of(g[i], (uint64_t)i + 1);
        tu_put(st, g[i], 300000, (uint64_t)i);
    }
    flush_ok(st);
    store_close(st);
    uint64_t s1 = ck_slot_of(dir, g[1]), s2 = ck_slot_of(dir, g[2]);
    assert_int_equal(s1, 1);
    assert_int_equal(s2, 2);
    char *data = tu_path(dir, MF_DATA_NAME);
    ck_truncate(data, FRAME + FRAME / 2);

    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 1, "damaged");
    char h1[33], h2[33];
    ck_hex(g[1], h1);
    ck_hex(g[2], h2);
    const cJSON *e = ck_finding(root, "errors", "data_short");
    assert_non_null(e);
    assert_string_equal(ck_str(e, "guid"), h1);
    assert_int_equal((uint64_t)ck_num(e, "slot"), 1);
    e = ck_finding(root, "errors", "slot_out_of_bounds");
    assert_non_null(e);
    assert_string_equal(ck_str(e, "guid"), h2);
    assert_int_equal((uint64_t)ck_num(e, "slot"), 2);
    assert_non_null(ck_finding(root, "warnings", "data_size_unaligned"));
    cJSON_Delete(root);
    ck_run_free(&r);
    store_refuses(dir, STORE_E_CORRUPT);
    free(data);
    tu_rmtree(dir);
}

static void test_payload_byte_flipped(void **state)
{
    (void)state;
    char *dir = small_store("check-payload", 5);
    uint8_t g[16];
    guid_of(g, 4);
    uint64_t slot = ck_slot_of(dir, g);
    char *data = tu_path(dir, MF_DATA_NAME);
    ck_flip_bit(data, slot * FRAME + 777, 0);

    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 1, "damaged");
    assert_int_equal(ck_count(root, "errors", NULL), 1);
    const cJSON *e = ck_finding(root, "errors", "blob_crc");
    assert_non_null(e);
    char h[33];
    ck_hex(g, h);
    assert_string_equal(ck_str(e, "guid"), h);
    assert_int_equal((uint64_t)ck_num(e, "slot"), slot);
    assert_int_equal((uint64_t)ck_num(e, "offset"), slot * FRAME);
    assert_int_equal((int)ck_num(root, "blobs_checked"), 5);
    cJSON_Delete(root);
    ck_run_free(&r);

    /* The store agrees: the read fails its CRC32C. */
    struct store *st = tu_open(dir, NULL);
    void *f = store_frame_alloc(st);
    struct store_blob_info info;
    assert_int_equal(store_read(st, g, f, &info), STORE_E_CHECKSUM);
    store_frame_free(st, f);
    store_close(st);
    free(data);
    tu_rmtree(dir);
}

static void magic_damaged(const char *dir, const char *file, const char *code,
                          int store_code)
{
    char *path = tu_path(dir, file);
    ck_pwrite(path, "NOTMAGIC", 8, 0);
    struct ck_run r;
    cJSON *root = ck_run_json(&r, dir, NULL);
    expect_status(root, &r, 1, "damaged");
    const cJSON *e = ck_finding(root, "errors", code);
    if (!e)
        fail_msg("no %s error after a wrong magic in %s:\n%s", code, file,
                 r.out);
    assert_string_equal(ck_str(e, "file"), file);
    cJSON_Delete(root);
    ck_run_free(&r);
    if (store_code)
        store_refuses(dir, store_code);
    free(path);
}

static void test_wrong_magic(void **state)
{
    (void)state;
    /* The snapshot: a compacted store has one. */
    char *dir = tu_mkdtemp("check-magic-snap");
    struct store *st = tu_open(dir, NULL);
    put_i(st, 1, 5000, 1);
    flush_ok(st);
    assert_int_equal(store_compact(st), 0);
    store_close(st);
    magic_damaged(dir, MF_SNAP_NAME, "snapshot_bad_magic", STORE_E_BAD_FORMAT);
    tu_rmtree(dir);

    /* The log. */
    dir = small_store("check-magic-log", 2);
    char *log = ck_last_log(dir);
    magic_damaged(dir, strrchr(log, '/') + 1, "log_bad_magic",
                  STORE_E_BAD_FORMAT);
    free(log);
    tu_rmtree(dir);

    /* blobs.dat has no header (docs/format.md): what lies at its start is
     * the blob in slot 0, and a "magic" written there is caught by that
     * blob's CRC32C. */
    dir = small_store("check-magic-data", 2);
    uint8_t g[16];
    guid_of(g, 1);
    assert_int_equal(ck_slot_of(dir, g), 0);
    magic_damaged(dir, MF_DATA_NAME, "blob_crc", 0);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sound_store),
        cmocka_unit_test(test_empty_store),
        cmocka_unit_test(test_torn_tail_cut),
        cmocka_unit_test(test_torn_tail_garbage),
        cmocka_unit_test(test_flipped_bit_before_valid_groups),
        cmocka_unit_test(test_slot_conflict),
        cmocka_unit_test(test_slot_claim_withdrawn),
        cmocka_unit_test(test_data_file_truncated),
        cmocka_unit_test(test_payload_byte_flipped),
        cmocka_unit_test(test_wrong_magic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
