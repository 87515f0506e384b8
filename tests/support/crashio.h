/*
 * crashio.h - a store_io wrapper that simulates a crash (power loss).
 *
 * It remembers every change made through it that is not yet durable:
 *   - data written (pwritev), allocated (fallocate) or cut (ftruncate) in a
 *     file since that file's last successful sync (fsync or fdatasync);
 *   - names created (openat with O_CREAT of a missing file), renamed or
 *     unlinked in a directory since that directory's last fsync.
 * crashio_crash() undoes all of them, newest first, on the real files, so
 * the disk holds exactly what a power cut would have left in the strictest
 * reading of POSIX.  After the crash every call fails with -EIO, so the
 * store on top can be closed without touching the disk again.
 *
 * Thread-safe (one mutex).  Keeps undo data in memory: meant for tests.
 */
#ifndef BLOBD_CRASHIO_H
#define BLOBD_CRASHIO_H

#include <stddef.h>
#include <stdint.h>

#include "store_io.h"

struct crashio;

/* Wrap inner; the wrapper owns inner and destroys it with itself. */
struct crashio *crashio_new(struct store_io *inner);
struct store_io *crashio_io(struct crashio *c);
void crashio_free(struct crashio *c);

/* Undo every change not made durable; then fail every call. */
void crashio_crash(struct crashio *c);
/* Number of undo records currently held (changes not yet durable). */
size_t crashio_pending(struct crashio *c);

#endif
