/*
 * test_check_cli.c - blobd-check as a command: usage errors and what is
 * not a store get their documented exit codes; a store held open by a
 * writer is "in use" (2) unless --force; progress appears on a terminal
 * (a pseudo-terminal from forkpty) and never without one, and never on
 * stdout.  Every run against a data dir is fingerprinted (ck_run_dir).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "check_testutil.h"
#include "store_int.h"

#define PROGRESS_BLOBS 300

static char *store_with(const char *tag, int n, uint32_t len)
{
    char *dir = tu_mkdtemp(tag);
    struct store *st = tu_open(dir, NULL);
    for (int i = 0; i < n; i++) {
        uint8_t g[16];
        tu_guid_num(g, 0xabc000 + (uint64_t)i);
        tu_put(st, g, len, (uint64_t)i);
    }
    struct store_flush_result fr;
    assert_int_equal(store_flush(st, &fr), 0);
    store_close(st);
    return dir;
}

static void expect_exit(const char *const *args, int status, const char *in)
{
    struct ck_run r;
    ck_run(&r, args);
    if (r.status != status || (in && !strstr(r.err, in)))
        fail_msg("%s: exit %d, expected %d; stderr: %s", args[0] ? args[0] : "",
                 r.status, status, r.err);
    assert_string_equal(r.out, "");
    ck_run_free(&r);
}

static void test_usage_errors(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    expect_exit(none, 64, "DATA_DIR is missing");
    const char *bad[] = {"--bogus", "/tmp", NULL};
    expect_exit(bad, 64, "unknown option '--bogus'");
    const char *two[] = {"/tmp", "/var", NULL};
    expect_exit(two, 64, "extra");
    const char *io[] = {"--io", "mmap", "/tmp", NULL};
    expect_exit(io, 64, "--io");
    const char *noval[] = {"/tmp", "--io", NULL};
    expect_exit(noval, 64, "--io needs a value");

    struct ck_run r;
    const char *help[] = {"--help", NULL};
    ck_run(&r, help);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: blobd-check"));
    assert_non_null(strstr(r.out, "64  usage"));
    assert_non_null(strstr(r.out, "66  DATA_DIR"));
    assert_non_null(strstr(r.out, "2   the store is in use"));
    ck_run_free(&r);
    const char *ver[] = {"--version", NULL};
    ck_run(&r, ver);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "blobd-check ", 12) == 0);
    ck_run_free(&r);
}

/* expect_exit, and dir unchanged by the run. */
static void expect_exit_in(const char *dir, const char *const *args, int status,
                           const char *in)
{
    struct ck_snap *before = malloc(sizeof(*before));
    struct ck_snap *after = malloc(sizeof(*after));
    assert_non_null(before);
    assert_non_null(after);
    ck_snap_take(dir, before);
    expect_exit(args, status, in);
    ck_snap_take(dir, after);
    ck_snap_assert_same(before, after);
    free(before);
    free(after);
}

static void test_not_a_store(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("check-nostore");
    /* Missing, empty, a file, a holt store. */
    char *missing = tu_path(dir, "missing");
    const char *a1[] = {missing, NULL};
    expect_exit_in(dir, a1, 66, "No such file");
    const char *a2[] = {dir, NULL};
    expect_exit_in(dir, a2, 66, "not a blobd store");
    char *file = tu_path(dir, "file");
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    const char *a3[] = {file, NULL};
    expect_exit_in(dir, a3, 66, "Not a directory");
    char *holt = tu_path(dir, MF_HOLT_LOG_NAME);
    fd = open(holt, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(unlink(file), 0);
    struct ck_run r;
    const char *json[] = {"--json", NULL};
    cJSON *root = ck_run_json(&r, dir, json + 1);
    assert_int_equal(r.status, 66);
    assert_string_equal(ck_str(root, "status"), "error");
    assert_non_null(strstr(ck_str(root, "message"), "holt"));
    cJSON_Delete(root);
    ck_run_free(&r);
    free(missing);
    free(file);
    free(holt);
    tu_rmtree(dir);
}

static void test_in_use(void **state)
{
    (void)state;
    char *dir = store_with("check-inuse", 3, 5000);
    struct store *st = tu_open(dir, NULL); /* holds store.lock */
    struct ck_run r;
    ck_run_dir(&r, dir, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "in use"));
    assert_non_null(strstr(r.err, "--force"));
    assert_string_equal(r.out, "");
    ck_run_free(&r);

    cJSON *root = ck_run_json(&r, dir, NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(ck_str(root, "status"), "in_use");
    assert_non_null(strstr(ck_str(root, "message"), "in use"));
    cJSON_Delete(root);
    ck_run_free(&r);

    const char *force[] = {"--force", NULL};
    root = ck_run_json(&r, dir, force);
    assert_int_equal(r.status, 0);
    assert_string_equal(ck_str(root, "status"), "warning");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "forced")));
    assert_string_equal(ck_str(root, "message"), "");
    assert_non_null(ck_finding(root, "warnings", "store_in_use"));
    assert_int_equal((int)ck_num(root, "entries"), 3);
    assert_int_equal((int)ck_num(root, "blobs_checked"), 3);
    cJSON_Delete(root);
    ck_run_free(&r);

    /* Released: a plain check passes again. */
    store_close(st);
    ck_run_dir(&r, dir, NULL);
    assert_int_equal(r.status, 0);
    ck_run_free(&r);

    /* A shared lock (what a read-only opener or another check holds) is
     * not a writer: the check runs. */
    char *lock = tu_path(dir, MF_LOCK_NAME);
    int lfd = open(lock, O_RDONLY | O_CLOEXEC);
    assert_true(lfd >= 0);
    assert_int_equal(flock(lfd, LOCK_SH | LOCK_NB), 0);
    ck_run_dir(&r, dir, NULL);
    assert_int_equal(r.status, 0);
    ck_run_free(&r);
    /* ... and an exclusive one, taken without any store, is. */
    assert_int_equal(flock(lfd, LOCK_EX | LOCK_NB), 0);
    ck_run_dir(&r, dir, NULL);
    assert_int_equal(r.status, 2);
    ck_run_free(&r);
    close(lfd);
    free(lock);
    tu_rmtree(dir);
}

/* The progress line on a terminal, and none without one. */
static void test_progress(void **state)
{
    (void)state;
    char *dir = store_with("check-progress", PROGRESS_BLOBS, 4096);
    const char *args[] = {dir, NULL};
    struct ck_run r;
    ck_run_pty(&r, args);
    assert_int_equal(r.status, 0);
    char want[64];
    snprintf(want, sizeof(want), "%d/%d blobs", PROGRESS_BLOBS, PROGRESS_BLOBS);
    if (!strstr(r.err, "\rblobs: ") || !strstr(r.err, want) ||
        !strstr(r.err, "MiB/s") || !strstr(r.err, "ETA") ||
        !strstr(r.err, "\rmanifest: "))
        fail_msg("no progress line on the terminal:\n%s", r.err);
    assert_null(strchr(r.out, '\r')); /* the report itself is clean */
    assert_non_null(strstr(r.out, "sound"));
    ck_run_free(&r);

    /* --json on a terminal: progress still only on stderr, and stdout is
     * one JSON document. */
    const char *jargs[] = {"--json", dir, NULL};
    ck_run_pty(&r, jargs);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "\rblobs: "));
    assert_null(strchr(r.out, '\r'));
    cJSON *root = cJSON_Parse(r.out);
    assert_non_null(root);
    assert_int_equal((int)ck_num(root, "blobs_checked"), PROGRESS_BLOBS);
    cJSON_Delete(root);
    ck_run_free(&r);

    /* No terminal: nothing on stderr at all. */
    ck_run_dir(&r, dir, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    ck_run_free(&r);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_not_a_store),
        cmocka_unit_test(test_in_use),
        cmocka_unit_test(test_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
