/*
 * test_http_powerloss.c - power loss under load, through HTTP:
 * blobd on a loop-mounted ext4 image that is cut with EXT4_IOC_SHUTDOWN
 * (EXT4_GOING_FLAGS_NOLOGFLUSH: the journal is not flushed, so whatever
 * the filesystem had not made durable is lost, as at a power cut).  After
 * each cut every GUID must be in its last acknowledged-durable state or
 * the result of an operation attempted after it (support/load.h L3).
 *
 * Root only: without root every test skips with a message, and with
 * BLOBD_NO_SKIP=1 (CI) that skip is a failure.  Each test:
 *  1. makes a 384 MiB sparse image in its temp dir, attaches it with
 *     `losetup --find --show` (optionally --sector-size 4096), runs
 *     mkfs.ext4 -q on it and mounts it on <tmp>/mnt; the data dir is
 *     <tmp>/mnt/data (a later --data-dir than srv.c's would win too, but
 *     srv.c takes s->data, which is set before the first start);
 *  2. per cut: the load runs for a random 50..600 ms; the filesystem is
 *     shut down (ioctl on a descriptor of the mount point) while it runs,
 *     in one of two ways, by turns: "frozen", the server is SIGSTOPped
 *     first, so it answers nothing after the cut and every answer the
 *     writers received must hold; "live", the writers go on for another
 *     0..100 ms and the server meets the failed filesystem (EIO, the
 *     sticky failure); then the writers are told to stop and the server
 *     is SIGKILLed;
 *     the filesystem is unmounted (lazily only if a plain umount keeps
 *     failing, which the output says) and mounted again (journal replay);
 *     the server is restarted on it and load_check compares every GUID,
 *     then flushes so what it found is the next cut's baseline;
 *  3. the teardown kills the server, unmounts and detaches the loop
 *     device whatever happened, so a failed test leaves nothing mounted
 *     (on a violation the temp dir, image included, is kept and named).
 *     A killed test skips the teardown (a CTest timeout, a sanitizer's
 *     abort), so the process also runs in a mount namespace of its own
 *     and the loop device has autoclear: both go with the process.
 * The variants: default (512-byte sectors; pread and io_uring by turns,
 * as in test_http_kill, each with frozen and live cuts); a loop device
 * with 4096-byte logical sectors (the same); the server as uid/gid 65534
 * with RLIMIT_MEMLOCK 64 KiB, started by this file's own fork/exec
 * (srv.c's child cannot drop privileges), so io_uring runs without fixed
 * buffers, which its "ready:" line must say.
 *
 * In a live cut an fdatasync that straddles the shutdown can return 0 for
 * data that is then lost (a kernel matter, shown without blobd: see load.h
 * L5), so answers received after a live cut prove nothing; each such
 * answer found lost is printed as a NOTE and counted, not failed.  Frozen
 * cuts have no such answers and are checked strictly.  After a kill the
 * unprivileged server's io_uring rings can stay charged to uid 65534's
 * locked memory for a moment, so its restart is retried while
 * io_uring_queue_init fails with ENOMEM (counted and printed).
 *
 * mke2fs gives the 384 MiB image 1 KiB blocks with 512-byte sectors (its
 * "small" type) and 4 KiB blocks with 4096-byte sectors, so the first two
 * variants also differ in the filesystem block size (printed).
 *
 * What this does not model: the loop device writes into the host's page
 * cache of the image file, which survives the cut, so a write that
 * reached the device but was never flushed by a cache flush survives
 * too.  The cut loses what ext4 held (dirty pages, the uncommitted
 * journal), not a drive's volatile cache.
 *
 * Cuts per variant: $BLOBD_POWER_CUTS (default 20; the slow entry 100).
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <linux/types.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "load.h"
#include "srv.h"

#ifndef EXT4_IOC_SHUTDOWN
#define EXT4_IOC_SHUTDOWN _IOR('X', 125, __u32)
#endif
#ifndef EXT4_GOING_FLAGS_NOLOGFLUSH
#define EXT4_GOING_FLAGS_NOLOGFLUSH 0x2
#endif

#define PL_CUTS_DEFAULT 20
#define PL_IMAGE_BYTES (384ll << 20)
#define PL_CUT_MIN_MS 50
#define PL_CUT_MAX_MS 600
#define PL_AFTER_MAX_MS 100
#define PL_UMOUNT_TRIES 100 /* 50 ms apart */
#define PL_NOBODY 65534
#define PL_MEMLOCK (64 * 1024)
#define PL_START_TIMEOUT_MS 10000
#define LISTEN_NEEDLE "listening on 127.0.0.1:"

extern char **environ;

struct pl {
    struct srv s;
    struct load *l;
    char img[700];
    char mnt[700];
    char bin[700]; /* the unprivileged variant's copy of the server */
    char loop[64];
    int have_srv, attached, mounted, keep;
    int loopfd;            /* held while attached (see pl_attach) */
    unsigned ring_retries; /* pl_start_unpriv */
    int unpriv;
    int sector; /* logical sector size of the loop device; 0: default */
};

static unsigned pl_cuts(void)
{
    const char *e = getenv("BLOBD_POWER_CUTS");
    if (e && *e) {
        char *end;
        unsigned long v = strtoul(e, &end, 10);
        if (*end == '\0' && v > 0 && v < 1000000)
            return (unsigned)v;
        fail_msg("BLOBD_POWER_CUTS=%s is not a positive number", e);
    }
    return PL_CUTS_DEFAULT;
}

/* Skip (or fail under BLOBD_NO_SKIP) when this cannot run here. */
static void pl_require(void)
{
    const char *why = NULL;
    if (geteuid() != 0)
        why = "not root (loop devices, mount and EXT4_IOC_SHUTDOWN need it)";
    else if (access("/dev/loop-control", R_OK | W_OK) != 0)
        why = "no /dev/loop-control";
    else if (system("command -v losetup >/dev/null 2>&1 && "
                    "command -v mkfs.ext4 >/dev/null 2>&1") != 0)
        why = "losetup or mkfs.ext4 missing (util-linux, e2fsprogs)";
    if (!why)
        return;
    if (getenv("BLOBD_NO_SKIP"))
        fail_msg("power-loss test cannot run: %s; and BLOBD_NO_SKIP is set",
                 why);
    printf("SKIP: power-loss test: %s\n", why);
    skip();
}

/* ---- the filesystem ---- */

static void pl_attach(struct pl *p)
{
    char cmd[1024], out[256] = "";
    snprintf(cmd, sizeof(cmd), "losetup --find --show %s '%s' 2>&1",
             p->sector ? "--sector-size 4096" : "", p->img);
    FILE *f = popen(cmd, "r");
    if (!f)
        fail_msg("popen %s: %s", cmd, strerror(errno));
    if (!fgets(out, sizeof(out), f))
        out[0] = '\0';
    int st = pclose(f);
    out[strcspn(out, "\n")] = '\0';
    if (st != 0 || strncmp(out, "/dev/loop", 9) != 0 ||
        strlen(out) >= sizeof(p->loop)) {
        if (getenv("BLOBD_NO_SKIP"))
            fail_msg("%s: status %d: %s", cmd, st, out);
        printf("SKIP: power-loss test: %s failed: %s\n", cmd, out);
        skip();
    }
    strcpy(p->loop, out);
    p->attached = 1;
    /* Autoclear, and a descriptor held until the teardown: the device
     * stays between the cuts' unmounts and goes away by itself when this
     * process dies, even by SIGKILL (a CTest timeout). */
    p->loopfd = open(p->loop, O_RDONLY | O_CLOEXEC);
    struct loop_info64 li;
    if (p->loopfd < 0 || ioctl(p->loopfd, LOOP_GET_STATUS64, &li) != 0)
        fail_msg("open/LOOP_GET_STATUS64 %s: %s", p->loop, strerror(errno));
    li.lo_flags |= LO_FLAGS_AUTOCLEAR;
    if (ioctl(p->loopfd, LOOP_SET_STATUS64, &li) != 0)
        fail_msg("LOOP_SET_STATUS64 %s (autoclear): %s", p->loop,
                 strerror(errno));
}

static void pl_detach(struct pl *p)
{
    if (!p->attached)
        return;
    /* With the filesystem unmounted this detaches at once; if it is still
     * mounted (lazily), autoclear detaches it when the mount goes. */
    if (ioctl(p->loopfd, LOOP_CLR_FD, 0) == 0 || errno == ENXIO)
        p->attached = 0;
    else
        fprintf(stderr, "powerloss: LOOP_CLR_FD %s: %s (autoclear is set)\n",
                p->loop, strerror(errno));
    close(p->loopfd);
    p->loopfd = -1;
}

static void pl_mount(struct pl *p)
{
    if (mount(p->loop, p->mnt, "ext4", 0, NULL) != 0)
        fail_msg("mount %s on %s: %s", p->loop, p->mnt, strerror(errno));
    p->mounted = 1;
}

/* Unmount; lazily when a plain umount keeps failing (said on stdout).
 * Returns 1 when it had to be lazy. */
static int pl_umount(struct pl *p)
{
    if (!p->mounted)
        return 0;
    int err = 0;
    for (int i = 0; i < PL_UMOUNT_TRIES; i++) {
        if (umount2(p->mnt, 0) == 0) {
            p->mounted = 0;
            return 0;
        }
        err = errno;
        if (err != EBUSY)
            break;
        http_sleep_ms(50);
    }
    printf("powerloss: umount %s: %s; unmounting lazily\n", p->mnt,
           strerror(err));
    if (umount2(p->mnt, MNT_DETACH) != 0)
        fprintf(stderr, "powerloss: umount2(%s, MNT_DETACH): %s\n", p->mnt,
                strerror(errno));
    else
        p->mounted = 0;
    return 1;
}

/* The image, the loop device, ext4 and the mount; the data dir. */
static void pl_prepare(struct pl *p)
{
    struct srv *s = &p->s;
    srv_init(s);
    p->have_srv = 1;
    snprintf(p->img, sizeof(p->img), "%s/disk.img", s->dir);
    snprintf(p->mnt, sizeof(p->mnt), "%s/mnt", s->dir);
    int fd = open(p->img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, PL_IMAGE_BYTES) != 0)
        fail_msg("make %s: %s", p->img, strerror(errno));
    close(fd);
    pl_attach(p);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "mkfs.ext4 -q %s", p->loop);
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
    if (mkdir(p->mnt, 0755) != 0)
        fail_msg("mkdir %s: %s", p->mnt, strerror(errno));
    pl_mount(p);
    if (snprintf(s->data, sizeof(s->data), "%s/data", p->mnt) >=
        (int)sizeof(s->data))
        fail_msg("data dir path too long");
    if (mkdir(s->data, 0700) != 0)
        fail_msg("mkdir %s: %s", s->data, strerror(errno));
    if (p->unpriv) {
        char cp[2200];
        /* uid 65534 must reach the data dir and run the binary. */
        if (chown(s->data, PL_NOBODY, PL_NOBODY) != 0 ||
            chmod(s->dir, 0711) != 0)
            fail_msg("chown/chmod for uid %d: %s", PL_NOBODY, strerror(errno));
        snprintf(p->bin, sizeof(p->bin), "%s/blobd", s->dir);
        snprintf(cp, sizeof(cp), "cp '%s' '%s' && chmod 0755 '%s'", s->bin,
                 p->bin, p->bin);
        if (system(cp) != 0)
            fail_msg("%s failed", cp);
    }
}

/* EXT4_IOC_SHUTDOWN without flushing the journal: the power cut. */
static void pl_cut(struct pl *p)
{
    int fd = open(p->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", p->mnt, strerror(errno));
    __u32 flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
    if (ioctl(fd, EXT4_IOC_SHUTDOWN, &flags) != 0) {
        int err = errno;
        close(fd);
        fail_msg("ioctl(%s, EXT4_IOC_SHUTDOWN, NOLOGFLUSH): %s", p->mnt,
                 strerror(err));
    }
    close(fd);
}

/* ---- the server ---- */

/* The child of pl_spawn: only async-signal-safe calls. */
static void pl_child(int logfd, pid_t parent, char **argv)
{
    static const char m_lim[] = "powerloss: setrlimit(RLIMIT_MEMLOCK) failed\n";
    static const char m_id[] = "powerloss: dropping to uid 65534 failed\n";
    static const char m_exec[] = "powerloss: execve of the server failed\n";
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGPIPE, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0 && devnull != 0) {
        dup2(devnull, 0);
        close(devnull);
    }
    dup2(logfd, 1);
    dup2(logfd, 2);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    struct rlimit ml = {PL_MEMLOCK, PL_MEMLOCK};
    ssize_t w;
    if (setrlimit(RLIMIT_MEMLOCK, &ml) != 0) {
        w = write(2, m_lim, sizeof(m_lim) - 1);
        _exit(127);
    }
    if (setgroups(0, NULL) != 0 || setgid(PL_NOBODY) != 0 ||
        setuid(PL_NOBODY) != 0 || getuid() != PL_NOBODY) {
        w = write(2, m_id, sizeof(m_id) - 1);
        _exit(127);
    }
    /* After the change of credentials, which clears it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    execve(argv[0], argv, environ);
    w = write(2, m_exec, sizeof(m_exec) - 1);
    (void)w;
    _exit(127);
}

/* The port of the last "listening on" line of s->log after byte from; 0
 * if none yet. */
static int pl_find_port(const struct srv *s, off_t from)
{
    char buf[65536];
    int fd = open(s->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int port = 0;
    for (const char *q = buf; (q = strstr(q, LISTEN_NEEDLE)) != NULL; q++) {
        const char *d = q + strlen(LISTEN_NEEDLE);
        char *e;
        long v = strtol(d, &e, 10);
        if (e > d && *e != '\0' && v > 0 && v < 65536)
            port = (int)v;
    }
    return port;
}

/* srv_start for the unprivileged variant: the same argv and log, the
 * child as uid/gid 65534 with RLIMIT_MEMLOCK 64 KiB.  Returns 0 once it
 * listens, or its exit status when it exited before that (the log says
 * why); fails the test on a timeout. */
static int pl_spawn(struct pl *p, const char *const *extra)
{
    struct srv *s = &p->s;
    char *argv[16];
    size_t i = 0;
    argv[i++] = p->bin;
    argv[i++] = (char *)"--listen";
    argv[i++] = (char *)"127.0.0.1:0";
    argv[i++] = (char *)"--data-dir";
    argv[i++] = s->data;
    for (size_t j = 0; extra[j] && i < 15; j++)
        argv[i++] = (char *)extra[j];
    argv[i] = NULL;
    int logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0)
        fail_msg("open %s: %s", s->log, strerror(errno));
    struct stat st;
    off_t from = fstat(logfd, &st) == 0 ? st.st_size : 0;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0)
        pl_child(logfd, parent, argv);
    close(logfd);
    s->pid = pid;
    s->port = 0;
    s->exit_status = -1;
    uint64_t deadline = http_mono_ms() + PL_START_TIMEOUT_MS;
    while ((s->port = pl_find_port(s, from)) == 0) {
        int ws;
        if (waitpid(pid, &ws, WNOHANG) == pid) {
            s->pid = 0;
            s->exit_status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128;
            return s->exit_status ? s->exit_status : 255;
        }
        if (http_mono_ms() > deadline) {
            load_log_tail(stderr, s->log, 4000);
            fail_msg("the unprivileged server did not listen within %d ms",
                     PL_START_TIMEOUT_MS);
        }
        http_sleep_ms(5);
    }
    return 0;
}

/*
 * Start the unprivileged server.  Right after the previous one was killed
 * its io_uring rings may still be charged to uid 65534's locked memory
 * (the kernel frees them asynchronously), so the new one's
 * io_uring_queue_init can fail with ENOMEM under the 64 KiB limit and
 * --backend io_uring refuses to start (before it listens, or after, when
 * it opens the store): that is retried (counted in p->ring_retries),
 * anything else fails the test.
 */
static void pl_start_unpriv(struct pl *p, const char *const *argv)
{
    static const char enomem[] = "io_uring_queue_init: Cannot allocate memory";
    char last[512];
    for (int i = 0;; i++) {
        int st = pl_spawn(p, argv);
        /* The server listens before it opens the store, so the ENOMEM
         * can also end it after it listened: then it exits before it is
         * ready (srv_wait_ready reaps it and clears pid). */
        int listened = st == 0;
        if (listened && srv_wait_ready(&p->s) == 0)
            break;
        load_log_last(p->s.log, "error", last, sizeof(last));
        int exited = !listened || p->s.pid == 0;
        if (!exited || !strstr(last, enomem) || i == 50) {
            load_log_tail(stderr, p->s.log, 4000);
            if (listened)
                fail_msg("the unprivileged server did not become ready "
                         "(try %d): %s",
                         i + 1, last);
            fail_msg("the unprivileged server exited with status %d before "
                     "listening (try %d): %s",
                     st, i + 1, last);
        }
        p->ring_retries++;
        http_sleep_ms(100);
    }
}

/* Cut c is frozen (the server stopped before the cut) or live (it runs
 * into the failed filesystem): by turns, each backend getting both. */
static int pl_frozen(const struct pl *p, unsigned cut)
{
    return p->unpriv ? cut % 2 : (cut / 2) % 2;
}

/* SIGSTOP the server and wait until all its threads have stopped: from
 * here on it sends no answer, so none can rest on a sync that straddles
 * the cut (load.h L5) and every answer received must hold. */
static void pl_freeze(struct pl *p)
{
    if (kill(p->s.pid, SIGSTOP) != 0)
        fail_msg("SIGSTOP %d: %s", (int)p->s.pid, strerror(errno));
    for (;;) {
        int ws;
        pid_t w = waitpid(p->s.pid, &ws, WUNTRACED);
        if (w == p->s.pid && WIFSTOPPED(ws))
            return;
        if (w < 0 && errno != EINTR)
            fail_msg("waitpid %d: %s", (int)p->s.pid, strerror(errno));
        if (w == p->s.pid && (WIFEXITED(ws) || WIFSIGNALED(ws))) {
            p->s.pid = 0;
            fail_msg("the server died before the cut (wait status 0x%x)", ws);
        }
    }
}

static const char *pl_backend(const struct pl *p, unsigned cut)
{
    if (p->unpriv)
        return "io_uring";
    return cut % 2 ? "io_uring" : "pread";
}

/* Start the server for cut (its backend) and check its "ready:" line. */
static void pl_start(struct pl *p, unsigned cut, char *line, size_t cap)
{
    const char *backend = pl_backend(p, cut);
    const char *argv[] = {"--flush-interval-ms", "50", "--backend", backend,
                          NULL};
    if (p->unpriv)
        pl_start_unpriv(p, argv);
    else
        srv_restart(&p->s, argv, NULL);
    if (!load_log_last(p->s.log, "ready: ", line, cap))
        fail_msg("no \"ready:\" line in %s", p->s.log);
    char want[32];
    snprintf(want, sizeof(want), "(%s,", backend);
    if (!strstr(line, want))
        fail_msg("asked for --backend %s, the server says: %s", backend, line);
    if (p->unpriv && !strstr(line, "without fixed buffers"))
        fail_msg("as uid %d with RLIMIT_MEMLOCK %d the server should run "
                 "io_uring without fixed buffers; it says: %s",
                 PL_NOBODY, PL_MEMLOCK, line);
}

static void pl_check(struct pl *p, unsigned cut)
{
    int v = load_check(p->l, p->s.port, stderr);
    if (v == 0)
        return;
    load_log_tail(stderr, p->s.log, 12000);
    p->keep = 1;
    if (v < 0)
        fail_msg("cut %u: the check could not be made (above)", cut);
    fail_msg("cut %u: %d GUID(s) in a state the durability contract does "
             "not allow (above)",
             cut, v);
}

/* ---- the test ---- */

static void pl_run(struct pl *p, const char *name)
{
    pl_require();
    unsigned cuts = pl_cuts();
    uint64_t seed = tu_seed();
    uint64_t rng = seed ^ 0x706f776572u;
    struct load_opts o = {.seed = seed};
    char line[512];
    struct load_totals t0, t1;
    uint64_t start_ms = http_mono_ms();
    unsigned lazy = 0, nfrozen = 0;

    p->l = load_new(&o);
    assert_non_null(p->l);
    pl_prepare(p);
    struct statvfs vfs;
    if (statvfs(p->mnt, &vfs) != 0)
        fail_msg("statvfs %s: %s", p->mnt, strerror(errno));
    printf("powerloss %s: %s on %s (%d-byte sectors, ext4 %lu-byte blocks), "
           "data dir %s\n",
           name, p->img, p->loop, p->sector ? p->sector : 512,
           (unsigned long)vfs.f_bsize, p->s.data);
    pl_start(p, 0, line, sizeof(line));
    printf("powerloss %s: %s\n", name, line);
    pl_check(p, 0);
    for (unsigned c = 0; c < cuts; c++) {
        load_totals(p->l, &t0);
        long delay =
            PL_CUT_MIN_MS +
            (long)(tu_rand(&rng) % (PL_CUT_MAX_MS - PL_CUT_MIN_MS + 1));
        long after = (long)(tu_rand(&rng) % (PL_AFTER_MAX_MS + 1));
        uint64_t c0 = http_mono_ms();
        int rc = load_start(p->l, p->s.port);
        if (rc != 0)
            fail_msg("load_start: %s", strerror(-rc));
        http_sleep_ms(delay);
        int frozen = pl_frozen(p, c);
        if (frozen) {
            pl_freeze(p);
            pl_cut(p);
            after = 0;
            nfrozen++;
        } else {
            load_cut(p->l); /* load.h L5 */
            pl_cut(p);
            http_sleep_ms(after);
        }
        load_halt(p->l);
        srv_kill(&p->s);
        load_join(p->l);
        lazy += (unsigned)pl_umount(p);
        pl_mount(p);
        pl_start(p, c + 1, line, sizeof(line));
        pl_check(p, c + 1);
        load_totals(p->l, &t1);
        printf("powerloss %s %3u/%u %-8s %-6s @%3ld+%3ld ms: ops %3" PRIu64
               " acked %3" PRIu64 " sync %3" PRIu64 " unknown %2" PRIu64
               " flush %2" PRIu64 "/%-2" PRIu64 " | check: durable %2" PRIu64
               " later %2" PRIu64 " (unacked %" PRIu64
               ") post-cut lost %" PRIu64 " | %" PRIu64 " ms\n",
               name, c + 1, cuts, pl_backend(p, c), frozen ? "frozen" : "live",
               delay, after, t1.attempted - t0.attempted, t1.acked - t0.acked,
               t1.acked_sync - t0.acked_sync, t1.unknown - t0.unknown,
               t1.flushes_ok - t0.flushes_ok, t1.flushes - t0.flushes,
               t1.at_durable - t0.at_durable, t1.at_later - t0.at_later,
               t1.at_unacked - t0.at_unacked, t1.postcut_lost - t0.postcut_lost,
               http_mono_ms() - c0);
        fflush(stdout);
    }

    int st = srv_stop(&p->s);
    uint64_t anomalies = load_anomalies(p->l, stderr);
    load_totals(p->l, &t1);
    printf(
        "powerloss %s: %u cuts (%u frozen) in %.1f s (seed %" PRIu64
        "), %u lazy unmounts: %" PRIu64 " writes attempted, %" PRIu64
        " acknowledged (%" PRIu64 " Blob-Durable: true, %" PRIu64
        " more made durable by a POST /flush), %" PRIu64
        " outcomes unknown; %" PRIu64 "/%" PRIu64
        " flushes answered 200; %" PRIu64 " GUIDs checked: %" PRIu64
        " at the last durable state, %" PRIu64 " at a later one (%" PRIu64
        " unacknowledged); after the live cuts (load.h L5) %" PRIu64
        " Blob-Durable: true and %" PRIu64 " flush answers, %" PRIu64
        " GUIDs found before one of them; %u io_uring start retries; %" PRIu64
        " violations, %" PRIu64 " anomalies\n",
        name, cuts, nfrozen, (double)(http_mono_ms() - start_ms) / 1000.0, seed,
        lazy, t1.attempted, t1.acked, t1.acked_sync, t1.flushed, t1.unknown,
        t1.flushes_ok, t1.flushes, t1.checked, t1.at_durable, t1.at_later,
        t1.at_unacked, t1.postcut_acks, t1.postcut_flushes, t1.postcut_lost,
        p->ring_retries, t1.violations, anomalies);
    fflush(stdout);
    if (st != 0) {
        load_log_tail(stderr, p->s.log, 4000);
        fail_msg("the server exited with status %d at the final stop", st);
    }
    if (anomalies) {
        load_log_tail(stderr, p->s.log, 12000);
        p->keep = 1;
        fail_msg("%" PRIu64 " answers disagreed with the model (above)",
                 anomalies);
    }
}

static int pl_setup(void **state, int sector, int unpriv)
{
    struct pl *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    p->sector = sector;
    p->unpriv = unpriv;
    p->loopfd = -1;
    *state = p;
    return 0;
}

static int pl_setup_default(void **state)
{
    return pl_setup(state, 0, 0);
}

static int pl_setup_4k(void **state)
{
    return pl_setup(state, 4096, 0);
}

static int pl_setup_unpriv(void **state)
{
    return pl_setup(state, 0, 1);
}

/* Whatever happened: no server, no writer, nothing mounted, no loop
 * device; the temp dir removed unless a violation keeps it. */
static int pl_teardown(void **state)
{
    struct pl *p = *state;
    if (!p)
        return 0;
    if (p->l)
        load_join(p->l);
    if (p->have_srv && p->s.pid > 0)
        srv_kill(&p->s);
    pl_umount(p);
    pl_detach(p);
    if (p->mounted || p->attached)
        fprintf(stderr, "powerloss: %s%s still %s\n", p->mounted ? p->mnt : "",
                p->attached ? p->loop : "",
                p->mounted ? "mounted" : "attached");
    if (p->have_srv) {
        if (p->keep || p->mounted) {
            fprintf(stderr, "powerloss: keeping %s (image %s)\n", p->s.dir,
                    p->img);
            p->s.dir[0] = '\0';
        }
        srv_fini(&p->s);
    }
    load_free(p->l);
    free(p);
    *state = NULL;
    return 0;
}

static void test_power_default(void **state)
{
    pl_run(*state, "default");
}

static void test_power_4k_sectors(void **state)
{
    pl_run(*state, "4k-sectors");
}

static void test_power_unprivileged(void **state)
{
    pl_run(*state, "unprivileged");
}

/* Before any thread: as root, a mount namespace of this process's own,
 * so that every mount it makes disappears with it, even after a SIGKILL
 * (a CTest timeout) that skips the teardown. */
static void pl_private_mounts(void)
{
    if (geteuid() != 0)
        return;
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fprintf(stderr,
                "powerloss: no private mount namespace (%s): a killed "
                "test may leave its mount behind\n",
                strerror(errno));
}

int main(void)
{
    pl_private_mounts();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_default, pl_setup_default,
                                        pl_teardown),
        cmocka_unit_test_setup_teardown(test_power_4k_sectors, pl_setup_4k,
                                        pl_teardown),
        cmocka_unit_test_setup_teardown(test_power_unprivileged,
                                        pl_setup_unpriv, pl_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
