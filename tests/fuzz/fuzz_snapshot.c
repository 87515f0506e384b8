/*
 * fuzz_snapshot.c - libFuzzer target: manifest.bin as the store loads it
 * (store/manifest.c load_snapshot, through store_open).
 *
 * Input: the fuzz_store.h prelude (flags, blobs.dat size), then the bytes
 * of manifest.bin, repaired as the flags say (FS_FIX_CRC, FS_FIX_COUNT).
 * A fresh directory gets that snapshot, no log, and a sparse blobs.dat
 * (unless FS_NO_DATA); the store is opened read-only, or writable with
 * FS_WRITABLE (which also writes the next generation's log), and must
 * open cleanly or fail cleanly (S1-S4 of fuzz_store.h).  A snapshot whose
 * next_slot is past FS_CHEAP_SLOTS is skipped (fuzz_store.h says why).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_store.h"
#include "store.h"
#include "store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FS_PRELUDE)
        return 0;
    unsigned flags = data[0];
    size_t len = size - FS_PRELUDE;
    uint8_t *snap = malloc(len ? len : 1);
    struct fs_dir d;
    if (!snap)
        return 0;
    memcpy(snap, data + FS_PRELUDE, len);
    len = fs_fix_snapshot(snap, len, flags);
    if (fs_snapshot_big(snap, len)) {
        free(snap);
        return 0;
    }
    FUZZ_CHECK(fs_dir_new(&d) == 0, "cannot create a temp dir");
    if (fs_write(&d, MF_SNAP_NAME, snap, len) == 0 &&
        ((flags & FS_NO_DATA) || fs_data_file(&d, data) == 0))
        fs_open_and_check(&d, flags, store_crc32c(data, size));
    fs_dir_free(&d);
    free(snap);
    return 0;
}
