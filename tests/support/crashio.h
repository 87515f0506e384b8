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
 * crashio_crash_random() is a milder, seeded reading of the same: each
 * unsynced pwritev independently reached the disk, did not, or reached it
 * only in part (torn at a 4 KiB boundary); everything else is undone as in
 * crashio_crash().
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

/*
 * A crash where the disk kept some of the unsynced writes.  Undo records
 * are still taken newest first; each one left by a pwritev gets a fate from
 * a splitmix64 stream seeded with seed (the same seed and the same history
 * give the same disk):
 *   undone: as in crashio_crash (the old bytes come back);
 *   kept:   not applied (the write reached the disk);
 *   torn:   a cut is chosen among the file offsets that are multiples of
 *           4096 strictly inside the write; the pages before it keep the
 *           new bytes, the rest get the old ones back.  A write with no
 *           such offset inside (one page or less) is undone instead.
 * The file size after an undone or torn write is the largest of its size
 * before the write, the end of what survived of it, and the end of every
 * newer kept or torn write of that file (so undoing an older write never
 * cuts off a newer one that survived); bytes below that size that were
 * past the old end of file become zeros.  A kept newer write that an older
 * undone or torn write overlaps loses the overlap: those pages go back to
 * what they held before the older write, which is still a state they had
 * since the last sync.
 * Records of ftruncate, fallocate and open(O_TRUNC), and every directory
 * record (create, rename, unlink), are applied as crashio_crash applies
 * them.  Then every call fails, as after crashio_crash.
 */
void crashio_crash_random(struct crashio *c, uint64_t seed);

/* What the last crash did with the records of pwritev calls: how many were
 * undone, kept and torn (crashio_crash: all undone).  Any may be NULL. */
void crashio_crash_counts(struct crashio *c, size_t *undone, size_t *kept,
                          size_t *torn);

#endif
