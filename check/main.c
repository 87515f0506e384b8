/*
 * main.c - blobd-check, the offline verifier of a blobd data directory
 * (SPEC §4, docs/check.md): options, the "in use" probe, the phases, the
 * report and the exit status.
 *
 * Invariants (K1-K3 in check.h):
 *  E1. The lock probe takes the kind of lock a read-only store open takes
 *      (a shared flock, non-blocking) on store.lock opened O_RDONLY, and
 *      keeps it for the whole run, so no blobd can start writing while the
 *      files are read; a missing store.lock is never created.
 *  E2. The exit status is decided in one place (exit_status) from the
 *      findings; nothing else calls exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "store_int.h"

static const char usage_text[] =
    "usage: blobd-check [--json] [--force] [--io auto|io_uring|pread] "
    "DATA_DIR\n"
    "\n"
    "Verify a blobd data directory offline, without changing it: the\n"
    "snapshot (manifest.bin), every log and commit group, the replayed\n"
    "GUID -> slot map (slot conflicts and bounds), the size of blobs.dat,\n"
    "and every live blob's length and CRC32C.\n"
    "\n"
    "  --json      print one JSON document on stdout (docs/check.md)\n"
    "  --force     check even while the store is in use (store.lock held);\n"
    "              the result may then show a store in the middle of a\n"
    "              change\n"
    "  --io MODE   how blobs.dat is read: auto (io_uring, else pread),\n"
    "              io_uring (required) or pread\n"
    "  --help      this text\n"
    "  --version   the version\n"
    "\n"
    "Progress is shown on stderr when it is a terminal.\n"
    "\n"
    "Exit status:\n"
    "  0   the store is sound (warnings, e.g. a torn log tail that the\n"
    "      next open repairs, are allowed)\n"
    "  1   the store is damaged: blobd would refuse to open it, or a blob\n"
    "      does not match its CRC32C\n"
    "  2   the store is in use (store.lock is held) and --force was not\n"
    "      given\n"
    "  64  usage error (unknown option, missing or extra DATA_DIR)\n"
    "  66  DATA_DIR is not a blobd store, or it cannot be read\n"
    "  70  internal error (out of memory, --io io_uring unavailable)\n";

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "blobd-check: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\ntry 'blobd-check --help'\n");
    va_end(ap);
    return CHK_EXIT_USAGE;
}

/* 0 = run, > 0 = exit with (status - 1), after --help/--version/usage. */
static int parse_args(struct chk *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},     {"force", no_argument, NULL, 'f'},
        {"io", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},  {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            c->json = 1;
            break;
        case 'f':
            c->force = 1;
            break;
        case 'i':
            if (strcmp(optarg, "auto") == 0)
                c->io = CHK_IO_AUTO;
            else if (strcmp(optarg, "io_uring") == 0)
                c->io = CHK_IO_URING;
            else if (strcmp(optarg, "pread") == 0)
                c->io = CHK_IO_PREAD;
            else
                return 1 + usage_error("--io: '%s' is not auto, io_uring or "
                                       "pread",
                                       optarg);
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 1 + CHK_EXIT_OK;
        case 'V':
            printf("blobd-check %s\n", BLOBD_VERSION);
            return 1 + CHK_EXIT_OK;
        default:
            if (optopt == 'i')
                return 1 + usage_error("%s needs a value", "--io");
            return 1 + usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return 1 + usage_error("%s is missing", "DATA_DIR");
    if (optind + 1 < argc)
        return 1 + usage_error("one DATA_DIR only; '%s' is extra",
                               argv[optind + 1]);
    c->dir = argv[optind];
    if (!*c->dir)
        return 1 + usage_error("DATA_DIR is empty");
    return 0;
}

static int exists(struct chk *c, const char *name)
{
    struct stat sb;
    return fstatat(c->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Open DATA_DIR and decide whether it holds a blobd store at all. */
static int open_store_dir(struct chk *c)
{
    c->dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->dirfd < 0)
        return chk_fatal(c, CHK_EXIT_NOINPUT, "cannot open %s: %s", c->dir,
                         strerror(errno));
    if (exists(c, MF_HOLT_LOG_NAME))
        return chk_fatal(c, CHK_EXIT_NOINPUT,
                         "%s holds %s: a holt FileBlobStore, not a blobd "
                         "store",
                         c->dir, MF_HOLT_LOG_NAME);
    if (exists(c, MF_DATA_NAME) || exists(c, MF_SNAP_NAME))
        return 0;
    int dfd = dup(c->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        return chk_fatal(c, CHK_EXIT_NOINPUT, "cannot list %s: %s", c->dir,
                         strerror(e));
    }
    int found = 0;
    struct dirent *de;
    uint64_t lsn;
    while (!found && (de = readdir(d)) != NULL)
        found = mf_parse_log_name(de->d_name, &lsn) == 0;
    closedir(d);
    if (!found)
        return chk_fatal(c, CHK_EXIT_NOINPUT,
                         "%s is not a blobd store (no %s, %s or log-*.blg)",
                         c->dir, MF_DATA_NAME, MF_SNAP_NAME);
    return 0;
}

/* E1: is a writer holding store.lock?  Keeps the shared lock when free. */
static int probe_lock(struct chk *c)
{
    c->lockfd =
        openat(c->dirfd, MF_LOCK_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (c->lockfd < 0 && errno == ENOENT)
        return 0; /* never opened by a writer: nothing holds it */
    if (c->lockfd < 0)
        return chk_fatal(c, CHK_EXIT_NOINPUT, "open %s/%s: %s", c->dir,
                         MF_LOCK_NAME, strerror(errno));
    int rc;
    do
        rc = flock(c->lockfd, LOCK_SH | LOCK_NB);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return 0;
    if (errno != EWOULDBLOCK)
        return chk_fatal(c, CHK_EXIT_NOINPUT, "flock %s/%s: %s", c->dir,
                         MF_LOCK_NAME, strerror(errno));
    c->in_use = 1;
    if (!c->force) {
        snprintf(c->msg, sizeof(c->msg),
                 "the store at %s is in use (%s is held by a running blobd "
                 "or another opener); stop it first, or use --force to check "
                 "anyway",
                 c->dir, MF_LOCK_NAME);
    } else {
        struct chk_loc loc = {.file = MF_LOCK_NAME};
        chk_add(c, CHK_WARN, "store_in_use", &loc,
                "%s is held: the store is in use, checked anyway (--force); "
                "findings may show a change in progress, not damage",
                MF_LOCK_NAME);
    }
    return 0;
}

static void dir_mode(struct chk *c)
{
    struct stat sb;
    if (fstat(c->dirfd, &sb) == 0 && (sb.st_mode & S_IWOTH)) {
        chk_add(c, CHK_WARN, "dir_insecure", NULL,
                "%s is writable by every user (mode %o); blobd refuses to "
                "open it for writing until it is 0700",
                c->dir, (unsigned)(sb.st_mode & 07777));
    }
}

static int run(struct chk *c)
{
    if (open_store_dir(c) < 0 || probe_lock(c) < 0)
        return -1;
    if (c->in_use && !c->force)
        return 0;
    dir_mode(c);
    if (chk_data_open(c) < 0 || chk_replay(c) < 0)
        return -1;
    return chk_data_verify(c);
}

/* E2 */
static int exit_status(const struct chk *c)
{
    if (c->fatal)
        return c->fatal;
    if (c->in_use && !c->force)
        return CHK_EXIT_IN_USE;
    return c->nerr ? CHK_EXIT_DAMAGED : CHK_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct chk c;
    memset(&c, 0, sizeof(c));
    c.dirfd = c.lockfd = c.data.fd = -1;
    chk_map_init(&c.map);
    int rc = parse_args(&c, argc, argv);
    if (rc > 0)
        return rc - 1;
    c.prog.on = isatty(STDERR_FILENO);
    run(&c);
    chk_progress_end(&c.prog);
    int status = exit_status(&c);
    if (status == CHK_EXIT_IN_USE || c.fatal)
        fprintf(stderr, "blobd-check: %s\n", c.msg);
    if (c.json) {
        if (chk_report_json(&c) < 0) {
            fprintf(stderr, "blobd-check: out of memory building the JSON "
                            "report\n");
            status = CHK_EXIT_SOFTWARE;
        }
    } else if (status != CHK_EXIT_IN_USE && !c.fatal) {
        chk_report_human(&c);
    }
    chk_data_close(&c);
    if (c.lockfd >= 0)
        close(c.lockfd);
    if (c.dirfd >= 0)
        close(c.dirfd);
    chk_map_free(&c.map);
    free(c.sus);
    chk_findings_free(&c);
    free(c.log.files);
    return status;
}
