/*
 * test_http_diskfull.c - a full disk through HTTP (SPEC §2, docs/
 * durability.md "When the disk is full"), on a small ext4 filesystem
 * loop-mounted as the data dir.
 *
 * New blobs are PUT until blobd refuses to grow blobs.dat below the
 * headroom: from then on new blobs get 507 no_space and /readyz 503
 * no_space, while every stored blob still reads back whole and a flush
 * still works (the log has the headroom to itself).  After DELETE + flush,
 * PUTs that fit in the freed slots succeed, one more is refused again, and
 * a restart finds every flushed blob intact.
 *
 * Needs root (losetup, mount); without it the test skips, and under
 * BLOBD_NO_SKIP=1 (CI) that skip is a failure.  The filesystem is always
 * unmounted and its loop device detached, even when a check fails.
 */
#include "testutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "srv.h"

#define FS_MIB 160        /* the filesystem; the headroom is 64 MiB */
#define BLOB (512 * 1024) /* every blob is the largest there is */
#define MAX_BLOBS 400     /* FS_MIB can never hold this many */
#define FREED 8           /* blobs deleted to make room */

struct fs {
    struct srv s;
    char img[700];
    char loop[64]; /* /dev/loopN, "" when not attached */
    int mounted;
};

static struct fs g_fs;

/* Run a shell command; its exit status (or -1). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void skip_or_fail(const char *why)
{
    if (getenv("BLOBD_NO_SKIP"))
        fail_msg("cannot run: %s, and BLOBD_NO_SKIP is set", why);
    print_message("skipped: %s\n", why);
    skip();
}

static int setup(void **state)
{
    (void)state;
    memset(&g_fs, 0, sizeof(g_fs));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    struct fs *f = &g_fs;
    if (f->s.pid)
        srv_kill(&f->s);
    if (f->mounted &&
        sh("umount %s 2>/dev/null || umount -l %s", f->s.data, f->s.data) != 0)
        fprintf(stderr, "teardown: cannot unmount %s\n", f->s.data);
    if (f->loop[0])
        sh("losetup -d %s", f->loop);
    if (f->s.dir[0])
        srv_fini(&f->s);
    memset(f, 0, sizeof(*f));
    return 0;
}

/* A FS_MIB ext4 filesystem mounted on the server's data dir. */
static void make_fs(struct fs *f)
{
    if (geteuid() != 0)
        skip_or_fail("not root (losetup and mount need it)");
    if (sh("command -v losetup mkfs.ext4 >/dev/null") != 0)
        skip_or_fail("losetup or mkfs.ext4 is missing");
    srv_init(&f->s);
    snprintf(f->img, sizeof(f->img), "%s/fs.img", f->s.dir);
    assert_int_equal(sh("truncate -s %dM %s", FS_MIB, f->img), 0);
    char cmd[900];
    snprintf(cmd, sizeof(cmd), "losetup --find --show %s", f->img);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(f->loop, sizeof(f->loop), p))
        f->loop[0] = '\0';
    int rc = pclose(p);
    f->loop[strcspn(f->loop, "\n")] = '\0';
    if (rc != 0 || !f->loop[0]) {
        f->loop[0] = '\0';
        skip_or_fail("no loop device could be attached");
    }
    assert_int_equal(sh("mkfs.ext4 -q -F %s", f->loop), 0);
    assert_int_equal(mkdir(f->s.data, 0700), 0);
    assert_int_equal(sh("mount %s %s", f->loop, f->s.data), 0);
    f->mounted = 1;
}

static double stat_num(struct srv *s, const char *section, const char *key)
{
    struct http_resp r;
    http_req_ok(s, "GET", "/admin/stats", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, "GET /admin/stats");
    cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, section), key);
    if (!cJSON_IsNumber(v))
        fail_msg("/admin/stats has no number %s.%s", section, key);
    double d = v->valuedouble;
    cJSON_Delete(j);
    http_resp_free(&r);
    return d;
}

static void flush_ok(struct srv *s, const char *what)
{
    struct http_resp r;
    http_req_ok(s, "POST", "/flush", NULL, NULL, 0, &r);
    http_expect_status(&r, 200, what);
    http_resp_free(&r);
}

/* Wait until the store is open: /readyz says anything but not_ready. */
static void wait_open(struct srv *s)
{
    for (int i = 0; i < 200; i++) {
        struct http_resp r;
        http_req_ok(s, "GET", "/readyz", NULL, NULL, 0, &r);
        int opening = r.status == 503 && r.body &&
                      strstr(r.body, "\"not_ready\"") != NULL;
        http_resp_free(&r);
        if (!opening)
            return;
        http_sleep_ms(50);
    }
    fail_msg("the store did not open within 10 s");
}

static void test_disk_full(void **state)
{
    (void)state;
    struct fs *f = &g_fs;
    make_fs(f);
    const char *args[] = {"--flush-interval-ms", "0", NULL};
    assert_int_equal(srv_start(&f->s, args, NULL), 0);
    assert_int_equal(srv_wait_ready(&f->s), 0);

    static char guids[MAX_BLOBS][HTTP_GUID_BUF];
    static uint8_t buf[BLOB];
    int stored = 0;
    long st = 0;
    struct http_resp r;
    /* Fill: new blobs until the first refusal. */
    for (int i = 0; i < MAX_BLOBS; i++) {
        http_guid_rand(guids[i]);
        http_fill(buf, BLOB, (uint64_t)i + 1);
        st = http_put(&f->s, guids[i], buf, BLOB, NULL);
        if (st != 201)
            break;
        stored++;
        if (stored % 32 == 0)
            flush_ok(&f->s, "POST /flush while filling");
    }
    print_message("disk full after %d blobs of 512 KiB on %d MiB\n", stored,
                  FS_MIB);
    if (st != 507)
        fail_msg("after %d blobs: PUT answered %ld, not 507", stored, st);
    assert_true(stored >= 16);
    flush_ok(&f->s, "POST /flush at the headroom");

    /* Refused while full: new blobs, with the right error; /readyz. */
    for (int i = 0; i < 3; i++) {
        char g[HTTP_GUID_BUF];
        http_guid_rand(g);
        http_fill(buf, BLOB, 9000 + (uint64_t)i);
        char path[64];
        snprintf(path, sizeof(path), "/blobs/%s", g);
        http_req_ok(&f->s, "PUT", path, NULL, buf, BLOB, &r);
        http_expect_error(&r, 507, "no_space", "PUT of a new blob when full");
        http_resp_free(&r);
        http_expect_absent(&f->s, g, "refused when full");
    }
    http_req_ok(&f->s, "GET", "/readyz", NULL, NULL, 0, &r);
    http_expect_error(&r, 503, "no_space", "/readyz when full");
    http_resp_free(&r);
    assert_true(stat_num(&f->s, "data_file", "free_bytes") <
                stat_num(&f->s, "data_file", "headroom_bytes"));
    /* Reads keep working. */
    for (int i = 0; i < stored; i++)
        http_expect_blob(&f->s, guids[i], BLOB, (uint64_t)i + 1, NULL,
                         "stored before the disk filled");

    /* Free some slots: DELETE + flush, then PUTs that fit succeed. */
    for (int i = 0; i < FREED; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/blobs/%.32s", guids[i]);
        assert_int_equal(http_status(&f->s, "DELETE", path, NULL, NULL, 0),
                         204);
    }
    flush_ok(&f->s, "POST /flush after the deletes");
    for (int i = 0; i < FREED; i++) {
        http_fill(buf, BLOB, 5000 + (uint64_t)i);
        st = http_put(&f->s, guids[i], buf, BLOB, NULL);
        if (st != 201)
            fail_msg("PUT %d into a freed slot answered %ld", i, st);
    }
    char g[HTTP_GUID_BUF];
    http_guid_rand(g);
    http_fill(buf, BLOB, 9999);
    assert_int_equal(http_put(&f->s, g, buf, BLOB, NULL), 507);
    flush_ok(&f->s, "POST /flush after the reuse");

    /* A restart finds every flushed blob. */
    assert_int_equal(srv_stop(&f->s), 0);
    assert_int_equal(srv_start(&f->s, args, NULL), 0);
    wait_open(&f->s);
    http_req_ok(&f->s, "GET", "/readyz", NULL, NULL, 0, &r);
    http_expect_error(&r, 503, "no_space", "/readyz after the restart, full");
    http_resp_free(&r);
    for (int i = 0; i < stored; i++) {
        uint64_t seed = i < FREED ? 5000 + (uint64_t)i : (uint64_t)i + 1;
        http_expect_blob(&f->s, guids[i], BLOB, seed, NULL,
                         "after a restart on a full disk");
    }
    http_expect_absent(&f->s, g, "refused before the restart");
    assert_int_equal(srv_stop(&f->s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
