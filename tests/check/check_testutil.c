/*
 * check_testutil.c - see check_testutil.h.
 */
#include "check_testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "store_int.h"

#define CK_MAX_ARGS 16

static const char *checker(void)
{
    const char *p = getenv("BLOBD_CHECK");
    if (!p || !*p)
        fail_msg("BLOBD_CHECK is not set: run this test through ctest, or "
                 "point it at the blobd-check binary");
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct sink {
    char *buf;
    size_t len, cap;
};

static void sink_add(struct sink *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->buf = realloc(s->buf, s->cap);
        assert_non_null(s->buf);
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = 0;
}

static char *sink_take(struct sink *s)
{
    if (!s->buf)
        sink_add(s, "", 0);
    return s->buf;
}

static void build_argv(const char *argv[CK_MAX_ARGS + 2],
                       const char *const *args)
{
    size_t n = 0;
    argv[n++] = checker();
    for (; args && args[n - 1]; n++) {
        assert_true(n <= CK_MAX_ARGS);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
}

/* Drain fds (-1 = closed) into sinks until all are at EOF or the time
 * limit; a pty master reports the end as EIO. */
static void drain(int fds[2], struct sink sinks[2], pid_t pid)
{
    double deadline = now_s() + CK_RUN_TIMEOUT_S;
    while (fds[0] >= 0 || fds[1] >= 0) {
        struct pollfd p[2];
        for (int i = 0; i < 2; i++) {
            p[i].fd = fds[i];
            p[i].events = POLLIN;
            p[i].revents = 0;
        }
        int left = (int)((deadline - now_s()) * 1000);
        if (left <= 0) {
            kill(pid, SIGKILL);
            fail_msg("blobd-check did not finish within %d s",
                     CK_RUN_TIMEOUT_S);
        }
        int rc = poll(p, 2, left);
        if (rc < 0 && errno == EINTR)
            continue;
        assert_true(rc >= 0);
        for (int i = 0; i < 2; i++) {
            if (fds[i] < 0 || !p[i].revents)
                continue;
            char buf[65536];
            ssize_t n = read(fds[i], buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                close(fds[i]);
                fds[i] = -1;
                continue;
            }
            sink_add(&sinks[i], buf, (size_t)n);
        }
    }
}

static int reap(pid_t pid)
{
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        assert_int_equal(errno, EINTR);
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    return 128 + WTERMSIG(ws);
}

void ck_run(struct ck_run *r, const char *const *args)
{
    const char *argv[CK_MAX_ARGS + 2];
    int out[2], err[2];
    build_argv(argv, args);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    int fds[2] = {out[0], err[0]};
    struct sink sinks[2] = {{0}, {0}};
    drain(fds, sinks, pid);
    r->status = reap(pid);
    r->out = sink_take(&sinks[0]);
    r->err = sink_take(&sinks[1]);
}

void ck_run_pty(struct ck_run *r, const char *const *args)
{
    const char *argv[CK_MAX_ARGS + 2];
    int out[2], master = -1;
    build_argv(argv, args);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    if (pid < 0)
        fail_msg("forkpty: %s", strerror(errno));
    if (pid == 0) {
        dup2(out[1], 1); /* stdin and stderr stay on the terminal */
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    int fds[2] = {out[0], master};
    struct sink sinks[2] = {{0}, {0}};
    drain(fds, sinks, pid);
    r->status = reap(pid);
    r->out = sink_take(&sinks[0]);
    r->err = sink_take(&sinks[1]);
}

void ck_run_free(struct ck_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

void ck_run_dir(struct ck_run *r, const char *dir, const char *const *opts)
{
    const char *args[CK_MAX_ARGS + 1];
    size_t n = 0;
    for (; opts && opts[n]; n++) {
        assert_true(n < CK_MAX_ARGS - 1);
        args[n] = opts[n];
    }
    args[n++] = dir;
    args[n] = NULL;
    struct ck_snap *before = malloc(sizeof(*before));
    struct ck_snap *after = malloc(sizeof(*after));
    assert_non_null(before);
    assert_non_null(after);
    ck_snap_take(dir, before);
    ck_run(r, args);
    ck_snap_take(dir, after);
    if (getenv("BLOBD_TEST_VERBOSE"))
        fprintf(stderr, "blobd-check exit %d\n%s%s", r->status, r->out, r->err);
    ck_snap_assert_same(before, after);
    free(before);
    free(after);
}

cJSON *ck_run_json(struct ck_run *r, const char *dir, const char *const *opts)
{
    const char *args[CK_MAX_ARGS];
    size_t n = 0;
    args[n++] = "--json";
    for (; opts && opts[n - 1]; n++) {
        assert_true(n < CK_MAX_ARGS - 1);
        args[n] = opts[n - 1];
    }
    args[n] = NULL;
    ck_run_dir(r, dir, args);
    cJSON *root = cJSON_Parse(r->out);
    if (!root)
        fail_msg("--json output does not parse (exit %d):\n%s\nstderr:\n%s",
                 r->status, r->out, r->err);
    return root;
}

/* ---- fingerprints ---- */

static uint32_t file_crc(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    static uint8_t buf[1 << 20];
    uint32_t crc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            break;
        crc = store_crc32c_cont(crc, buf, (size_t)n);
    }
    close(fd);
    return crc;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct ck_file *)a)->name,
                  ((const struct ck_file *)b)->name);
}

void ck_snap_take(const char *dir, struct ck_snap *s)
{
    memset(s, 0, sizeof(*s));
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    s->dir_mtim = sb.st_mtim;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        assert_true(s->n < CK_MAX_FILES);
        struct ck_file *f = &s->f[s->n++];
        snprintf(f->name, sizeof(f->name), "%s", de->d_name);
        char *p = tu_path(dir, de->d_name);
        assert_int_equal(lstat(p, &sb), 0);
        f->size = (uint64_t)sb.st_size;
        f->ino = (uint64_t)sb.st_ino;
        f->mtim = sb.st_mtim;
        f->ctim = sb.st_ctim;
        f->crc = S_ISREG(sb.st_mode) ? file_crc(p) : 0;
        free(p);
    }
    closedir(d);
    qsort(s->f, s->n, sizeof(s->f[0]), cmp_file);
}

static int ts_eq(struct timespec a, struct timespec b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

void ck_snap_assert_same(const struct ck_snap *a, const struct ck_snap *b)
{
    if (a->n != b->n) {
        for (size_t i = 0; i < b->n; i++)
            fprintf(stderr, "after: %s\n", b->f[i].name);
        fail_msg("the data dir held %zu files before the check and %zu "
                 "after",
                 a->n, b->n);
    }
    if (!ts_eq(a->dir_mtim, b->dir_mtim))
        fail_msg("the data dir's mtime changed during the check");
    for (size_t i = 0; i < a->n; i++) {
        const struct ck_file *x = &a->f[i], *y = &b->f[i];
        if (strcmp(x->name, y->name) != 0)
            fail_msg("file %s became %s during the check", x->name, y->name);
        if (x->size != y->size || x->ino != y->ino || x->crc != y->crc ||
            !ts_eq(x->mtim, y->mtim) || !ts_eq(x->ctim, y->ctim))
            fail_msg("%s changed during the check (size %" PRIu64 " -> %" PRIu64
                     ", crc %08x -> %08x)",
                     x->name, x->size, y->size, x->crc, y->crc);
    }
}

/* ---- logs ---- */

static uint64_t round_block(uint64_t v)
{
    return (v + 4095) / 4096 * 4096;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, (off_t)done);
        assert_true(r > 0);
        done += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

char *ck_last_log(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char best[256] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n == 24 && strncmp(de->d_name, "log-", 4) == 0 &&
            strcmp(de->d_name + 20, ".blg") == 0 &&
            strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", de->d_name);
    }
    closedir(d);
    if (!best[0])
        fail_msg("no log in %s", dir);
    return tu_path(dir, best);
}

void ck_scan_log(const char *path, struct ck_log *l)
{
    size_t size;
    uint8_t *b = slurp(path, &size);
    memset(l, 0, sizeof(*l));
    assert_true(size >= 64);
    assert_memory_equal(b, "BLOBDLOG", 8);
    memcpy(l->uuid, b + 16, 16);
    l->first_lsn = l->next_lsn = le_get64(b + 32);
    l->size = size;
    l->end = 64;
    for (uint64_t off = 4096; off + 64 <= size;) {
        if (memcmp(b + off, "BLOBDGRP", 8) != 0)
            break;
        uint32_t count = le_get32(b + off + 16);
        uint64_t end = off + 64 * ((uint64_t)count + 2);
        if (end > size)
            break;
        assert_true(l->ngroups < CK_MAX_GROUPS);
        l->goff[l->ngroups] = off;
        l->gcount[l->ngroups++] = count;
        l->next_lsn = le_get64(b + off + 8) + count;
        l->end = end;
        off = round_block(end);
    }
    free(b);
}

uint64_t ck_slot_of(const char *dir, const uint8_t guid[16])
{
    char *path = ck_last_log(dir);
    struct ck_log l;
    ck_scan_log(path, &l);
    size_t size;
    uint8_t *b = slurp(path, &size);
    uint64_t slot = UINT64_MAX;
    for (size_t g = 0; g < l.ngroups; g++) {
        for (uint32_t i = 0; i < l.gcount[g]; i++) {
            struct mf_record r;
            assert_int_equal(mf_decode_record(b + l.goff[g] + 64 * (i + 1), &r),
                             0);
            if (r.type == MF_REC_SET && memcmp(r.guid, guid, 16) == 0)
                slot = r.slot;
        }
    }
    free(b);
    free(path);
    if (slot == UINT64_MAX)
        fail_msg("no SET record of the GUID in the newest log of %s", dir);
    return slot;
}

/* ---- files ---- */

uint64_t ck_fsize(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return (uint64_t)sb.st_size;
}

void ck_pwrite(const char *path, const void *buf, size_t len, uint64_t off)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
        fail_msg("pwrite %s at %" PRIu64 ": %s", path, off, strerror(errno));
    close(fd);
}

void ck_truncate(const char *path, uint64_t len)
{
    if (truncate(path, (off_t)len) != 0)
        fail_msg("truncate %s: %s", path, strerror(errno));
}

void ck_flip_bit(const char *path, uint64_t off, int bit)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= (uint8_t)(1u << bit);
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* ---- JSON ---- */

const char *ck_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        fail_msg("JSON key \"%s\" is not a string", key);
    return v->valuestring;
}

double ck_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("JSON key \"%s\" is not a number", key);
    return v->valuedouble;
}

const cJSON *ck_finding(const cJSON *root, const char *list, const char *code)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, list);
    if (!cJSON_IsArray(a))
        fail_msg("JSON key \"%s\" is not an array", list);
    const cJSON *f;
    cJSON_ArrayForEach(f, a)
    {
        if (strcmp(ck_str(f, "code"), code) == 0)
            return f;
    }
    return NULL;
}

size_t ck_count(const cJSON *root, const char *list, const char *code)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, list);
    if (!cJSON_IsArray(a))
        fail_msg("JSON key \"%s\" is not an array", list);
    size_t n = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, a)
    {
        if (!code || strcmp(ck_str(f, "code"), code) == 0)
            n++;
    }
    return n;
}

void ck_hex(const uint8_t g[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", g[i]);
}
