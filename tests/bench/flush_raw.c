/*
 * flush_raw.c - the syscalls of one blobd flush, timed raw, for
 * http_bench.py's flush scenario.
 *
 *   flush_raw DIR ROUNDS [BLOBS]
 *
 * In DIR (created if missing) it makes raw.dat, preallocated and written
 * once for 2 x BLOBS slots of 512 KiB (BLOBS defaults to 16), and raw.log,
 * a 4 KiB header block.  Then, ROUNDS times:
 *
 *   untimed: BLOBS O_DIRECT pwrites of 512 KiB into one half of raw.dat
 *            (the halves alternate, as blobd alternates between the fresh
 *            slots of a rewrite and the ones the previous flush freed);
 *   timed:   what store/store.c flush_locked + append_group do for BLOBS
 *            pending records:
 *              fdatasync(raw.dat)
 *              pwrite((BLOBS + 2) x 64 bytes) to raw.log at the next
 *                4 KiB-aligned offset past the previous group
 *              fdatasync(raw.log)
 *
 * It prints one JSON line: p50, p99, mean, min and max of the whole flush
 * in microseconds, and the p50 of each of the three calls.  The files are
 * removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLOT (512u * 1024u)
#define REC 64u
#define BLOCK 4096u

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
    size_t k = (size_t)((p / 100.0) * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static void die(const char *what, const char *path)
{
    fprintf(stderr, "flush_raw: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void write_all(int fd, const void *buf, size_t len, off_t off,
                      const char *path)
{
    ssize_t w = pwrite(fd, buf, len, off);
    if (w < 0)
        die("pwrite", path);
    if ((size_t)w != len) {
        errno = EIO;
        die("short pwrite", path);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: flush_raw DIR ROUNDS [BLOBS]\n");
        return 64;
    }
    const char *dir = argv[1];
    char *end;
    long rounds = strtol(argv[2], &end, 10);
    if (*end || rounds < 1 || rounds > 10000000) {
        fprintf(stderr, "flush_raw: bad ROUNDS %s\n", argv[2]);
        return 64;
    }
    long blobs = 16;
    if (argc == 4) {
        blobs = strtol(argv[3], &end, 10);
        if (*end || blobs < 1 || blobs > 4096) {
            fprintf(stderr, "flush_raw: bad BLOBS %s\n", argv[3]);
            return 64;
        }
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        die("mkdir", dir);

    char data_path[4096], log_path[4096];
    snprintf(data_path, sizeof(data_path), "%s/raw.dat", dir);
    snprintf(log_path, sizeof(log_path), "%s/raw.log", dir);
    int dfd = open(data_path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC,
                   0600);
    if (dfd < 0)
        die("open (O_DIRECT)", data_path);
    int lfd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (lfd < 0)
        die("open", log_path);

    size_t nslots = 2 * (size_t)blobs;
    int rc = posix_fallocate(dfd, 0, (off_t)(nslots * SLOT));
    if (rc != 0 && rc != EOPNOTSUPP) {
        errno = rc;
        die("fallocate", data_path);
    }
    void *frame = NULL;
    rc = posix_memalign(&frame, BLOCK, SLOT);
    if (rc != 0) {
        errno = rc;
        die("posix_memalign", "");
    }
    for (size_t i = 0; i < SLOT; i++)
        ((uint8_t *)frame)[i] = (uint8_t)(i * 131u + 7u);
    /* Write every slot once, so the timed rounds rewrite written blocks
     * as blobd does once its freed slots are reused. */
    for (size_t s = 0; s < nslots; s++)
        write_all(dfd, frame, SLOT, (off_t)(s * SLOT), data_path);
    if (fdatasync(dfd) < 0)
        die("fdatasync", data_path);

    size_t group = REC * ((size_t)blobs + 2);
    uint8_t *rec = calloc(1, group > BLOCK ? group : BLOCK);
    if (!rec)
        die("calloc", "");
    memset(rec, 0xa5, group);
    write_all(lfd, rec, BLOCK, 0, log_path); /* the header block */
    if (fdatasync(lfd) < 0)
        die("fdatasync", log_path);
    uint64_t log_end = BLOCK;

    double *tot = calloc((size_t)rounds, sizeof(double));
    double *t_ds = calloc((size_t)rounds, sizeof(double));
    double *t_lw = calloc((size_t)rounds, sizeof(double));
    double *t_ls = calloc((size_t)rounds, sizeof(double));
    if (!tot || !t_ds || !t_lw || !t_ls)
        die("calloc", "");

    for (long r = 0; r < rounds; r++) {
        size_t half = (size_t)(r % 2) * (size_t)blobs;
        for (long b = 0; b < blobs; b++)
            write_all(dfd, frame, SLOT, (off_t)((half + (size_t)b) * SLOT),
                      data_path);
        uint64_t off = (log_end + BLOCK - 1) / BLOCK * BLOCK;
        double t0 = now_us();
        if (fdatasync(dfd) < 0)
            die("fdatasync", data_path);
        double t1 = now_us();
        write_all(lfd, rec, group, (off_t)off, log_path);
        double t2 = now_us();
        if (fdatasync(lfd) < 0)
            die("fdatasync", log_path);
        double t3 = now_us();
        log_end = off + group;
        tot[r] = t3 - t0;
        t_ds[r] = t1 - t0;
        t_lw[r] = t2 - t1;
        t_ls[r] = t3 - t2;
    }

    double sum = 0;
    for (long r = 0; r < rounds; r++)
        sum += tot[r];
    size_t n = (size_t)rounds;
    qsort(tot, n, sizeof(double), cmp_double);
    qsort(t_ds, n, sizeof(double), cmp_double);
    qsort(t_lw, n, sizeof(double), cmp_double);
    qsort(t_ls, n, sizeof(double), cmp_double);
    printf("{\"rounds\":%ld,\"blobs\":%ld,\"log_bytes\":%zu,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,"
           "\"min_us\":%.1f,\"max_us\":%.1f,"
           "\"data_fdatasync_p50_us\":%.1f,\"log_pwrite_p50_us\":%.1f,"
           "\"log_fdatasync_p50_us\":%.1f}\n",
           rounds, blobs, group, pct(tot, n, 50), pct(tot, n, 99),
           sum / (double)n, tot[0], tot[n - 1], pct(t_ds, n, 50),
           pct(t_lw, n, 50), pct(t_ls, n, 50));

    close(dfd);
    close(lfd);
    unlink(data_path);
    unlink(log_path);
    free(frame);
    free(rec);
    free(tot);
    free(t_ds);
    free(t_lw);
    free(t_ls);
    return 0;
}
