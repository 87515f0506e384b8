/*
 * probe.c - decides whether the data file can use O_DIRECT: statx
 * (STATX_DIOALIGN) must report alignments that 4 KiB I/O satisfies, and
 * an aligned read through the backend must be accepted.  Called once at
 * open; the mode never changes afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/stat.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "store_int.h"

int store_probe_direct(struct store_io *io, int fd, const char **why)
{
    struct statx stx;
    memset(&stx, 0, sizeof(stx));
    if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0) {
        *why = "statx failed";
        return 0;
    }
    if (stx.stx_mask & STATX_DIOALIGN) {
        if (stx.stx_dio_mem_align == 0 || stx.stx_dio_offset_align == 0) {
            *why = "the filesystem does not support O_DIRECT (statx)";
            return 0;
        }
        if (STORE_PAGE_SIZE % stx.stx_dio_mem_align != 0 ||
            STORE_PAGE_SIZE % stx.stx_dio_offset_align != 0) {
            *why = "O_DIRECT alignment exceeds 4 KiB (statx)";
            return 0;
        }
    }
    void *buf = aligned_alloc(STORE_PAGE_SIZE, STORE_PAGE_SIZE);
    if (!buf) {
        *why = "out of memory";
        return 0;
    }
    ssize_t n = io->pread(io, fd, buf, STORE_PAGE_SIZE, 0);
    free(buf);
    if (n < 0) {
        *why = n == -EINVAL ? "an aligned O_DIRECT read was refused (EINVAL)"
                            : "an aligned O_DIRECT read failed";
        return 0;
    }
    *why = "";
    return 1;
}
