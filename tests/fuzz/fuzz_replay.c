/*
 * fuzz_replay.c - libFuzzer target: log replay at open (store/manifest.c
 * mf_load: log listing, headers, commit groups, torn tails, LSN order,
 * records applied over an optional snapshot), through store_open.
 *
 * Input: the fuzz_store.h prelude (flags, blobs.dat size), one signed
 * byte each for the name of log A and log B (the name's LSN is the
 * header's first LSN plus it: 0 names a log correctly), then sections
 * separated by FS_SEP: manifest.bin if FS_SNAPSHOT, log A, and log B if
 * FS_TWO_LOGS (the last section takes the rest; a missing one is not
 * created).  Logs are in fuzz_store.h's compact form.  The store opens
 * read-only (a torn tail is only reported) or writable (FS_WRITABLE: a
 * torn tail is truncated, the next generation appended), and must open
 * or fail cleanly (S1-S4).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_store.h"
#include "store.h"
#include "store_int.h"

#define FR_HEAD (FS_PRELUDE + 2)
#define FR_MAX_SECTIONS 3

struct fr_section {
    const uint8_t *p;
    size_t len;
    int present;
};

/* Split [p, p + len) at FS_SEP into at most max sections. */
static void fr_split(const uint8_t *p, size_t len, struct fr_section *s,
                     size_t max)
{
    for (size_t i = 0; i < max; i++) {
        const uint8_t *sep = NULL;
        if (i + 1 < max && len >= FS_SEP_LEN)
            sep = memmem(p, len, FS_SEP, FS_SEP_LEN);
        s[i].p = p;
        s[i].present = 1;
        if (!sep) {
            s[i].len = len;
            return;
        }
        s[i].len = (size_t)(sep - p);
        len -= s[i].len + FS_SEP_LEN;
        p = sep + FS_SEP_LEN;
    }
}

/* Write one log section; 0, or -1 when its name is taken or on ENOMEM. */
static int fr_log(struct fs_dir *d, const struct fr_section *s, unsigned flags,
                  int delta)
{
    size_t n = 0;
    uint8_t *file = fs_log_expand(s->p, s->len, flags, &n);
    char name[32];
    if (!file)
        return -1;
    mf_log_name(name, fs_log_name_lsn(file, n, delta));
    int rc = fs_write(d, name, file, n);
    free(file);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fr_section sec[FR_MAX_SECTIONS];
    struct fs_dir d;
    if (size < FR_HEAD)
        return 0;
    unsigned flags = data[0];
    size_t nsec = 1 + !!(flags & FS_SNAPSHOT) + !!(flags & FS_TWO_LOGS), i = 0;
    memset(sec, 0, sizeof(sec));
    fr_split(data + FR_HEAD, size - FR_HEAD, sec, nsec);
    FUZZ_CHECK(fs_dir_new(&d) == 0, "cannot create a temp dir");
    int ok = (flags & FS_NO_DATA) || fs_data_file(&d, data) == 0;
    if (ok && (flags & FS_SNAPSHOT)) {
        uint8_t *snap = malloc(sec[0].len ? sec[0].len : 1);
        ok = snap != NULL;
        if (ok) {
            memcpy(snap, sec[0].p, sec[0].len);
            size_t n = fs_fix_snapshot(snap, sec[0].len, flags);
            ok = !fs_snapshot_big(snap, n) &&
                 fs_write(&d, MF_SNAP_NAME, snap, n) == 0;
            free(snap);
        }
        i++;
    }
    if (ok && sec[i].present)
        ok = fr_log(&d, &sec[i], flags, (int8_t)data[FS_PRELUDE]) == 0;
    i++;
    /* A second log named like the first is left out: a directory holds
     * one file per name. */
    if (ok && (flags & FS_TWO_LOGS) && sec[i].present)
        fr_log(&d, &sec[i], flags, (int8_t)data[FS_PRELUDE + 1]);
    if (ok)
        fs_open_and_check(&d, flags, store_crc32c(data, size));
    fs_dir_free(&d);
    return 0;
}
