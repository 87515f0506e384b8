/*
 * test_lock.c - store.lock and the data directory's security (SPEC §3:
 * "store.lock held with an exclusive flock for the life of the store; a
 * second opener waits up to 5 s then fails with a clear message", files
 * O_CLOEXEC|O_NOFOLLOW mode 0600 in a 0700 directory, a world-writable dir
 * refused, a forked child or a replaced lock file never a second writer).
 *
 * Cross-process cases fork (no exec) and report through the child's exit
 * status; a child never calls cmocka and leaves with _exit().  No test
 * forks while a second thread is running.  The handover test closes a store
 * from a second thread while the main thread waits in store_open.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Open with a chosen lock timeout; returns NULL with *rc and err set. */
static struct store *open_wait(const char *dir, unsigned timeout_ms, int *rc,
                               char *err, size_t errlen)
{
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.log_fn = tu_log_quiet;
    cfg.lock_timeout_ms = timeout_ms;
    return store_open(&cfg, rc, err, errlen);
}

static struct store *open_ro(const char *dir, int ignore_lock, int *rc,
                             char *err, size_t errlen)
{
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.log_fn = tu_log_quiet;
    cfg.read_only = 1;
    cfg.ignore_lock = ignore_lock;
    return store_open(&cfg, rc, err, errlen);
}

/* Wait for a forked child and return its exit code (-signal if killed). */
static int wait_child(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? -WTERMSIG(status) : -1000;
}

static void write_ok(struct store *st, uint8_t b, uint32_t len, uint64_t seed)
{
    uint8_t g[16];
    tu_guid_fill(g, b);
    tu_put(st, g, len, seed);
}

static int try_write(struct store *st, uint8_t b, enum store_outcome *out)
{
    uint8_t g[16];
    void *f = store_frame_alloc(st);
    if (!f)
        return -ENOMEM;
    tu_guid_fill(g, b);
    tu_pattern(f, 5000, 99);
    int rc = store_write(st, g, f, 5000, NULL, out, NULL);
    store_frame_free(st, f);
    return rc;
}

/* Ask for a message to mention "locked". */
static void assert_locked_msg(const char *err)
{
    if (!strcasestr(err, "locked"))
        fail_msg("the lock failure message does not say \"locked\": \"%s\"",
                 err);
}

/* ---- second opener ---------------------------------------------------- */

static void second_open_same_process(unsigned timeout, unsigned expect_ms)
{
    char *dir = tu_mkdtemp("lock-same");
    struct store *st1 = tu_open(dir, NULL);
    int rc = 0;
    char err[512] = "";
    uint64_t t0 = now_ms();
    struct store *st2 = open_wait(dir, timeout, &rc, err, sizeof(err));
    uint64_t waited = now_ms() - t0;
    if (st2)
        fail_msg("a second writable open of a locked store succeeded");
    assert_int_equal(rc, STORE_E_LOCKED);
    assert_locked_msg(err);
    printf("second open (timeout %u ms) failed after %" PRIu64 " ms: %s\n",
           timeout, waited, err);
    if (waited + 20 < expect_ms || waited > expect_ms + 2000)
        fail_msg("waited %" PRIu64 " ms, expected about %u ms", waited,
                 expect_ms);
    /* The owner is unaffected. */
    write_ok(st1, 1, 100, 1);
    assert_int_equal(store_flush(st1, NULL), 0);
    store_close(st1);
    tu_rmtree(dir);
}

static void test_second_open_waits_then_locked(void **state)
{
    (void)state;
    second_open_same_process(300, 300);
}

/* lock_timeout_ms 0 is the documented default of 5 s. */
static void test_second_open_default_wait_5s(void **state)
{
    (void)state;
    second_open_same_process(0, 5000);
}

static void test_second_open_other_process(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lock-proc");
    struct store *st1 = tu_open(dir, NULL);
    write_ok(st1, 1, 4096, 1);
    assert_int_equal(store_flush(st1, NULL), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = 0;
        char err[512] = "";
        struct store *st = open_wait(dir, 200, &rc, err, sizeof(err));
        if (st)
            _exit(10);
        if (rc != STORE_E_LOCKED)
            _exit(11);
        if (!strcasestr(err, "locked"))
            _exit(12);
        /* A read-only open without ignore_lock is refused too. */
        st = open_ro(dir, 0, &rc, err, sizeof(err));
        if (st || rc != STORE_E_LOCKED)
            _exit(13);
        _exit(0);
    }
    int code = wait_child(pid);
    if (code != 0)
        fail_msg("child: %s",
                 code == 10   ? "second writable open succeeded"
                 : code == 11 ? "open failed, but not with STORE_E_LOCKED"
                 : code == 12 ? "message does not mention \"locked\""
                 : code == 13 ? "read-only open (no ignore_lock) not LOCKED"
                              : "died");
    /* The owner still writes. */
    write_ok(st1, 2, 4096, 2);
    assert_int_equal(store_flush(st1, NULL), 0);
    store_close(st1);
    tu_rmtree(dir);
}

/* The reverse: another process holds the store; it is ours once that
 * process exits (the lock dies with its holder). */
static void test_lock_released_when_holder_exits(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lock-exit");
    int p2c[2], c2p[2];
    assert_int_equal(pipe(p2c), 0);
    assert_int_equal(pipe(c2p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p2c[1]);
        close(c2p[0]);
        int rc = 0;
        struct store *st = open_wait(dir, 2000, &rc, NULL, 0);
        char c = st ? 'o' : 'e';
        if (write(c2p[1], &c, 1) != 1)
            _exit(2);
        if (!st)
            _exit(3);
        /* Wait for the parent's go, then die without closing. */
        if (read(p2c[0], &c, 1) != 1)
            _exit(4);
        _exit(0);
    }
    close(p2c[0]);
    close(c2p[1]);
    char c = 0;
    assert_int_equal(read(c2p[0], &c, 1), 1);
    assert_int_equal(c, 'o');
    int rc = 0;
    char err[512] = "";
    struct store *st = open_wait(dir, 150, &rc, err, sizeof(err));
    assert_null(st);
    assert_int_equal(rc, STORE_E_LOCKED);
    assert_locked_msg(err);
    assert_int_equal(write(p2c[1], "x", 1), 1);
    assert_int_equal(wait_child(pid), 0);
    close(p2c[1]);
    close(c2p[0]);
    st = open_wait(dir, 2000, &rc, err, sizeof(err));
    if (!st)
        fail_msg("open after the holder exited: %s", err);
    write_ok(st, 3, 10, 3);
    store_close(st);
    tu_rmtree(dir);
}

/* ---- handover --------------------------------------------------------- */

struct handover {
    struct store *st;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
    uint64_t close_started;
};

static void *closer(void *arg)
{
    struct handover *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->started)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    sleep_ms(100);
    pthread_mutex_lock(&h->mu);
    h->close_started = now_ms();
    pthread_mutex_unlock(&h->mu);
    store_close(h->st);
    return NULL;
}

static void test_handover_on_close(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lock-handover");
    struct handover h;
    memset(&h, 0, sizeof(h));
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    h.st = tu_open(dir, NULL);
    write_ok(h.st, 7, 70000, 7);
    assert_int_equal(store_flush(h.st, NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, closer, &h), 0);
    uint64_t t0 = now_ms(); /* before the closer's 100 ms start */
    pthread_mutex_lock(&h.mu);
    h.started = 1;
    pthread_cond_signal(&h.cv);
    pthread_mutex_unlock(&h.mu);
    int rc = 0;
    char err[512] = "";
    struct store *st2 = open_wait(dir, 2000, &rc, err, sizeof(err));
    uint64_t done = now_ms(), waited = done - t0;
    assert_int_equal(pthread_join(th, NULL), 0);
    if (!st2)
        fail_msg("open during the handover failed after %" PRIu64 " ms: %s",
                 waited, err);
    printf("handover: second open succeeded after %" PRIu64 " ms\n", waited);
    assert_true(waited >= 100);
    assert_true(done >= h.close_started); /* not before the close */
    assert_true(waited < 2000);
    uint8_t g[16];
    tu_guid_fill(g, 7);
    tu_check(st2, g, 70000, 7);
    write_ok(st2, 8, 1, 8);
    assert_int_equal(store_flush(st2, NULL), 0);
    store_close(st2);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
    tu_rmtree(dir);
}

/* ---- no second writer ------------------------------------------------- */

static void test_forked_child_cannot_write(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lock-fork");
    struct store *st = tu_open(dir, NULL);
    write_ok(st, 1, 9000, 1);
    assert_int_equal(store_flush(st, NULL), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        enum store_outcome out = STORE_OUT_NONE;
        uint8_t g[16];
        int rc = try_write(st, 2, &out);
        if (rc != STORE_E_NOT_OWNER)
            _exit(10);
        if (out != STORE_OUT_STORE_FAILED)
            _exit(11);
        tu_guid_fill(g, 1);
        if (store_delete(st, g, NULL, &out) != STORE_E_NOT_OWNER)
            _exit(12);
        if (store_flush(st, NULL) != STORE_E_NOT_OWNER)
            _exit(13);
        if (store_compact(st) != STORE_E_NOT_OWNER)
            _exit(14);
        _exit(0);
    }
    int code = wait_child(pid);
    if (code != 0)
        fail_msg("forked child: %s (code %d)",
                 code == 10   ? "write not refused with STORE_E_NOT_OWNER"
                 : code == 11 ? "refused write's outcome not STORE_FAILED"
                 : code == 12 ? "delete not refused with STORE_E_NOT_OWNER"
                 : code == 13 ? "flush not refused with STORE_E_NOT_OWNER"
                 : code == 14 ? "compact not refused with STORE_E_NOT_OWNER"
                              : "died",
                 code);
    /* The parent still owns the store and nothing of the child's landed. */
    uint8_t g[16];
    tu_guid_fill(g, 2);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, g, &info), STORE_E_NOT_FOUND);
    write_ok(st, 3, 12345, 3);
    assert_int_equal(store_flush(st, NULL), 0);
    tu_guid_fill(g, 1);
    tu_check(st, g, 9000, 1);
    store_close(st);
    st = tu_open(dir, NULL);
    tu_check(st, g, 9000, 1);
    tu_guid_fill(g, 3);
    tu_check(st, g, 12345, 3);
    assert_int_equal(store_count(st), 2);
    store_close(st);
    tu_rmtree(dir);
}

static void replaced_lock_case(int by_rename)
{
    char *dir = tu_mkdtemp("lock-replaced");
    struct store *st = tu_open(dir, NULL);
    write_ok(st, 1, 100, 1);
    assert_int_equal(store_flush(st, NULL), 0);
    write_ok(st, 2, 100, 2); /* pending: must not reach the disk */
    char *lock = tu_path(dir, "store.lock");
    if (by_rename) {
        char *tmp = tu_path(dir, "store.lock.new");
        int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(rename(tmp, lock), 0);
        free(tmp);
    } else {
        assert_int_equal(unlink(lock), 0);
        int fd = open(lock, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    enum store_outcome out = STORE_OUT_NONE;
    uint8_t g[16];
    assert_int_equal(try_write(st, 3, &out), STORE_E_NOT_OWNER);
    tu_guid_fill(g, 1);
    assert_int_equal(store_delete(st, g, NULL, &out), STORE_E_NOT_OWNER);
    assert_int_equal(store_flush(st, NULL), STORE_E_NOT_OWNER);
    assert_int_equal(store_compact(st), STORE_E_NOT_OWNER);
    /* Reads still work. */
    tu_check(st, g, 100, 1);
    /* Removing the lock file is refused the same way. */
    assert_int_equal(unlink(lock), 0);
    assert_int_equal(try_write(st, 3, &out), STORE_E_NOT_OWNER);
    store_close(st);
    /* The store holds what was flushed before the replacement. */
    st = tu_open(dir, NULL);
    tu_check(st, g, 100, 1);
    tu_guid_fill(g, 2);
    struct store_blob_info info;
    assert_int_equal(store_stat(st, g, &info), STORE_E_NOT_FOUND);
    store_close(st);
    free(lock);
    tu_rmtree(dir);
}

static void test_replaced_lock_file_refuses_writes(void **state)
{
    (void)state;
    replaced_lock_case(0);
}

static void test_renamed_over_lock_file_refuses_writes(void **state)
{
    (void)state;
    replaced_lock_case(1);
}

/* ---- directory and file security --------------------------------------- */

static void test_world_writable_dir_refused(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lock-insecure");
    static const mode_t modes[] = {0777, 01777, 0702};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        assert_int_equal(chmod(dir, modes[i]), 0);
        int rc = 0;
        char err[512] = "";
        struct store *st = open_wait(dir, 200, &rc, err, sizeof(err));
        if (st)
            fail_msg("a data dir of mode %o was accepted", (unsigned)modes[i]);
        assert_int_equal(rc, STORE_E_INSECURE_DIR);
        assert_true(err[0] != 0);
        /* Nothing was created in it. */
        DIR *d = opendir(dir);
        struct dirent *de;
        assert_non_null(d);
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                fail_msg("refused open left %s behind", de->d_name);
        closedir(d);
    }
    /* Group-writable is not world-writable: accepted. */
    assert_int_equal(chmod(dir, 0770), 0);
    struct store *st = tu_open(dir, NULL);
    store_close(st);
    assert_int_equal(chmod(dir, 0700), 0);
    tu_rmtree(dir);
}

/* Every descriptor this process has open on a file under dir must be
 * close-on-exec.  Returns how many were checked. */
static int check_cloexec(const char *dir)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    size_t dl = strlen(dir);
    int checked = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int fd = atoi(de->d_name);
        if (fd == dirfd(d))
            continue;
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        if (strncmp(target, dir, dl) != 0 ||
            (target[dl] != '/' && target[dl] != 0))
            continue;
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || !(fl & FD_CLOEXEC))
            fail_msg("fd %d on %s is not close-on-exec", fd, target);
        checked++;
    }
    closedir(d);
    return checked;
}

static void test_modes_and_cloexec(void **state)
{
    (void)state;
    char *parent = tu_mkdtemp("lock-modes");
    char *dir = tu_path(parent, "data");
    /* umask 0: the store itself must ask for 0700 and 0600. */
    mode_t old_mask = umask(0);
    struct store *st = tu_open(dir, NULL);
    for (uint8_t i = 1; i <= 40; i++)
        write_ok(st, i, 6000u * i, i);
    assert_int_equal(store_flush(st, NULL), 0);
    assert_int_equal(store_compact(st), 0); /* manifest.bin + a new log */
    write_ok(st, 41, 10, 41);
    assert_int_equal(store_flush(st, NULL), 0);
    int nfd = check_cloexec(dir);
    umask(old_mask);
    printf("%d descriptors on the store, all close-on-exec\n", nfd);
    assert_true(nfd >= 3); /* dir, lock, data, log */

    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    if ((sb.st_mode & 07777) != 0700)
        fail_msg("new data dir has mode %o, want 0700",
                 (unsigned)(sb.st_mode & 07777));
    DIR *d = opendir(dir);
    struct dirent *de;
    int files = 0, have_snap = 0, have_log = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = tu_path(dir, de->d_name);
        assert_int_equal(lstat(p, &sb), 0);
        if (!S_ISREG(sb.st_mode) || (sb.st_mode & 07777) != 0600)
            fail_msg("%s has mode %o, want a regular file of mode 0600", p,
                     (unsigned)(sb.st_mode & 07777));
        have_snap |= !strcmp(de->d_name, "manifest.bin");
        have_log |= !strncmp(de->d_name, "log-", 4);
        files++;
        free(p);
    }
    closedir(d);
    assert_true(have_snap);
    assert_true(have_log);
    assert_true(files >= 4); /* store.lock, blobs.dat, manifest.bin, log */
    store_close(st);
    free(dir);
    tu_rmtree(parent);
}

/* O_NOFOLLOW: a symlink planted in place of a store file is refused, and
 * its target is left alone. */
static void test_symlinked_files_refused(void **state)
{
    (void)state;
    static const char *names[] = {"store.lock", "blobs.dat"};
    for (size_t i = 0; i < 2; i++) {
        char *dir = tu_mkdtemp("lock-symlink");
        char *victim = tu_mkdtemp("lock-victim");
        char *target = tu_path(victim, "target");
        char *link = tu_path(dir, names[i]);
        if (i == 1) { /* a store that has a lock file already */
            struct store *st = tu_open(dir, NULL);
            store_close(st);
            char *data = tu_path(dir, "blobs.dat");
            assert_int_equal(unlink(data), 0);
            free(data);
        }
        int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(symlink(target, link), 0);
        int rc = 0;
        char err[512] = "";
        struct store *st = open_wait(dir, 200, &rc, err, sizeof(err));
        if (st)
            fail_msg("open followed a symlinked %s", names[i]);
        assert_true(rc < 0);
        struct stat sb;
        assert_int_equal(stat(target, &sb), 0);
        assert_int_equal(sb.st_size, 0);
        free(link);
        free(target);
        tu_rmtree(victim);
        tu_rmtree(dir);
    }
}

/* ---- read-only opens --------------------------------------------------- */

static void test_read_only_ignore_lock(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("lock-ro");
    struct store *st = tu_open(dir, NULL);
    write_ok(st, 1, 33333, 1);
    assert_int_equal(store_flush(st, NULL), 0);

    int rc = 0;
    char err[512] = "";
    uint64_t t0 = now_ms();
    struct store *ro = open_ro(dir, 0, &rc, err, sizeof(err));
    uint64_t waited = now_ms() - t0;
    assert_null(ro);
    assert_int_equal(rc, STORE_E_LOCKED);
    assert_locked_msg(err);
    printf("read-only open of a locked store failed after %" PRIu64 " ms\n",
           waited);

    ro = open_ro(dir, 1, &rc, err, sizeof(err));
    if (!ro)
        fail_msg("read-only open with ignore_lock: %s", err);
    uint8_t g[16];
    tu_guid_fill(g, 1);
    tu_check(ro, g, 33333, 1);
    assert_int_equal(store_count(ro), 1);
    enum store_outcome out = STORE_OUT_NONE;
    assert_int_equal(try_write(ro, 2, &out), STORE_E_READONLY);
    assert_int_equal(store_delete(ro, g, NULL, &out), STORE_E_READONLY);
    assert_int_equal(store_flush(ro, NULL), STORE_E_READONLY);
    /* The writer is not disturbed by the reader. */
    write_ok(st, 2, 10, 2);
    assert_int_equal(store_flush(st, NULL), 0);
    store_close(ro);
    write_ok(st, 3, 10, 3);
    assert_int_equal(store_flush(st, NULL), 0);
    store_close(st);

    /* ignore_lock without read_only is an invalid configuration. */
    struct store_config cfg;
    store_config_init(&cfg, dir);
    cfg.log_fn = tu_log_quiet;
    cfg.ignore_lock = 1;
    ro = store_open(&cfg, &rc, err, sizeof(err));
    assert_null(ro);
    assert_int_equal(rc, STORE_E_INVALID);

    /* Unlocked: a read-only open succeeds without ignore_lock. */
    ro = open_ro(dir, 0, &rc, err, sizeof(err));
    if (!ro)
        fail_msg("read-only open of an unlocked store: %s", err);
    assert_int_equal(store_count(ro), 3);
    store_close(ro);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_open_waits_then_locked),
        cmocka_unit_test(test_second_open_default_wait_5s),
        cmocka_unit_test(test_second_open_other_process),
        cmocka_unit_test(test_lock_released_when_holder_exits),
        cmocka_unit_test(test_handover_on_close),
        cmocka_unit_test(test_forked_child_cannot_write),
        cmocka_unit_test(test_replaced_lock_file_refuses_writes),
        cmocka_unit_test(test_renamed_over_lock_file_refuses_writes),
        cmocka_unit_test(test_world_writable_dir_refused),
        cmocka_unit_test(test_modes_and_cloexec),
        cmocka_unit_test(test_symlinked_files_refused),
        cmocka_unit_test(test_read_only_ignore_lock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
