/*
 * replay.c - manifest.bin and the logs, checked and replayed the way
 * store/manifest.c does at open (docs/format.md "Recovery"), but never
 * stopping at the first problem and never writing: every record that open
 * would refuse becomes an error with its file, offset, LSN, GUID and slot;
 * what open repairs becomes a warning saying what open will do (K2).
 *
 * Records are decoded with the store's own mf_decode_record; the group
 * header and commit record, static in manifest.c, are read here from
 * docs/format.md.
 *
 * Invariants:
 *  R1. A group is applied only after all of it (header, every record's CRC
 *      and LSN, the commit record and its group CRC) has been checked, as
 *      open does (M2 in manifest.c).
 *  R2. The torn-tail rule is open's (M3): a bad group with no valid group
 *      of this store at a later 4 KiB boundary with an LSN at or past the
 *      expected one, in the newest log, is a torn tail; open truncates the
 *      log to the end of the last good group.  Any other bad group is
 *      damage.
 *  R3. Records the snapshot covers (LSN <= its last LSN) are checked but
 *      not applied.
 *  R4. Slot conflicts are judged as the store judges them: on the state a
 *      batch of records leaves (a batch ends at the end of each log, and at
 *      the first group boundary after mf_replay_batch_limit records).  A SET
 *      naming a slot another GUID holds is a suspect; it is a conflict
 *      only if, at the end of its batch, both GUIDs still hold the slot.
 *      Records are still applied one by one in LSN order, which gives the
 *      same map as the store's GUID-sorted batches: per GUID, the last
 *      record decides.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "store_int.h"

#define SCAN_RECS 1024 /* records (or snapshot entries) read per pread */
#define OFF_CRC 60     /* 64-byte blocks: CRC32C of bytes 0..59 at 60 */

struct group_hdr {
    uint64_t first_lsn;
    uint32_t count;
};

static uint64_t round_block(uint64_t v)
{
    return (v + MF_BLOCK - 1) / MF_BLOCK * MF_BLOCK;
}

static int sealed_ok(const uint8_t *p)
{
    return le_get32(p + OFF_CRC) == store_crc32c(p, OFF_CRC);
}

/* Read exactly len bytes at off: 0, 1 at the end of the file, -errno. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n =
            pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 1;
        done += (size_t)n;
    }
    return 0;
}

static void read_error(struct chk *c, const char *name, uint64_t off, int rc)
{
    struct chk_loc loc = {.file = name, .has = CHK_HAS_OFFSET, .offset = off};
    chk_add(c, CHK_ERR, "read_error", &loc, "%s at offset %" PRIu64 ": %s",
            name, off, strerror(-rc));
    c->replay_ok = 0;
}

static void progress_bytes(struct chk *c, uint64_t n)
{
    c->prog.bytes += n;
    chk_progress_update(&c->prog, c->prog.bytes, c->prog.bytes, 0);
}

/* A slot is valid for a length: an empty blob has none, any other one a
 * slot inside blobs.dat (manifest.c slot_ok). */
static int slot_ok(const struct chk *c, uint64_t slot, uint32_t len)
{
    if (len == 0)
        return slot == MF_SLOT_NONE;
    return slot < MF_MAX_SLOTS && slot < c->data.slots;
}

static int oom(struct chk *c)
{
    return chk_fatal(c, CHK_EXIT_SOFTWARE, "out of memory replaying %s",
                     c->dir);
}

/* ---- snapshot ---- */

/* Entry of the snapshot at eoff; 0 or -1 (fatal). */
static int snap_entry(struct chk *c, const uint8_t *p, uint64_t eoff,
                      const uint8_t *prev, int have_prev)
{
    const char *name = MF_SNAP_NAME;
    uint64_t slot = le_get64(p + 16);
    uint32_t len = le_get32(p + 24);
    uint64_t ver = le_get64(p + 32);
    struct chk_loc loc = {.file = name,
                          .guid = p,
                          .has = CHK_HAS_OFFSET | CHK_HAS_SLOT,
                          .offset = eoff,
                          .slot = slot};
    char g[33];
    chk_guid_format(p, g);
    if (le_get32(p + 44) != store_crc32c(p, 44)) {
        loc.guid = NULL;
        loc.has = CHK_HAS_OFFSET;
        chk_add(c, CHK_ERR, "snapshot_entry_crc", &loc,
                "%s at offset %" PRIu64 ": entry checksum mismatch", name,
                eoff);
        return 0;
    }
    if (have_prev && memcmp(prev, p, STORE_GUID_SIZE) >= 0) {
        char pg[33];
        chk_guid_format(prev, pg);
        loc.other_guid = prev;
        chk_add(c, CHK_ERR, "snapshot_entry_order", &loc,
                "%s at offset %" PRIu64 ": GUID %s does not follow %s "
                "(entries must be in strictly ascending GUID order)",
                name, eoff, g, pg);
        return 0;
    }
    if (len > STORE_FRAME_SIZE) {
        chk_add(c, CHK_ERR, "snapshot_entry_length", &loc,
                "%s at offset %" PRIu64 ": GUID %s has length %" PRIu32
                ", more than one frame (%u)",
                name, eoff, g, len, STORE_FRAME_SIZE);
        return 0;
    }
    if (!slot_ok(c, slot, len) || (len > 0 && slot >= c->snap.next_slot)) {
        const char *why = len == 0 ? "an empty blob must have no slot"
                          : slot >= c->snap.next_slot
                              ? "at or past the snapshot's next_slot"
                              : "past the end of " MF_DATA_NAME;
        chk_add(c, CHK_ERR, "slot_out_of_bounds", &loc,
                "%s at offset %" PRIu64 ": GUID %s names slot %" PRIu64
                " (%s; next_slot %" PRIu64 ", %s covers %" PRIu64 " slots)",
                name, eoff, g, slot, why, c->snap.next_slot, MF_DATA_NAME,
                c->data.slots);
        return 0;
    }
    if (store_version_generation(ver) > c->snap.generation) {
        chk_add(c, CHK_ERR, "snapshot_entry_version", &loc,
                "%s at offset %" PRIu64 ": GUID %s has a version of "
                "generation %" PRIu64 ", after the snapshot's %" PRIu64,
                name, eoff, g, store_version_generation(ver),
                c->snap.generation);
        return 0;
    }
    uint32_t owner = len > 0 ? chk_map_slot(&c->map, (uint32_t)slot) : CHK_NONE;
    if (owner != CHK_NONE) {
        char og[33];
        chk_guid_format(c->map.e[owner].guid, og);
        loc.other_guid = c->map.e[owner].guid;
        chk_add(c, CHK_ERR, "slot_conflict", &loc,
                "%s at offset %" PRIu64 ": slot %" PRIu64
                " is claimed by two GUIDs, %s and %s",
                name, eoff, slot, g, og);
        return 0;
    }
    struct chk_entry e = {.version = ver,
                          .slot = len > 0 ? (uint32_t)slot : CHK_NONE,
                          .len = len,
                          .crc = le_get32(p + 28)};
    memcpy(e.guid, p, STORE_GUID_SIZE);
    uint32_t i = chk_map_add(&c->map, &e);
    if (i == CHK_NONE || (len > 0 && chk_map_slot_set(&c->map, e.slot, i) < 0))
        return oom(c);
    return 0;
}

/* The snapshot header; 0 usable, 1 not (reported), -1 fatal. */
static int snap_header(struct chk *c, const uint8_t *h, uint64_t *count)
{
    const char *name = MF_SNAP_NAME;
    struct chk_loc loc = {.file = name, .has = CHK_HAS_OFFSET, .offset = 0};
    if (memcmp(h, MF_HOLT_MAGIC, 8) == 0)
        return chk_fatal(c, CHK_EXIT_NOINPUT,
                         "%s/%s is a holt FileBlobStore manifest, not a blobd "
                         "store",
                         c->dir, name);
    if (memcmp(h, MF_SNAP_MAGIC, 8) != 0) {
        chk_add(c, CHK_ERR, "snapshot_bad_magic", &loc,
                "%s: not a blobd snapshot (bad magic)", name);
        return 1;
    }
    if (le_get32(h + 8) != MF_VERSION ||
        le_get32(h + 12) != MF_SNAP_ENTRY_SIZE) {
        chk_add(c, CHK_ERR, "snapshot_bad_version", &loc,
                "%s: format version %" PRIu32 " with %" PRIu32
                "-byte entries is not supported (expected %u, %u)",
                name, le_get32(h + 8), le_get32(h + 12), MF_VERSION,
                MF_SNAP_ENTRY_SIZE);
        return 1;
    }
    if (!sealed_ok(h)) {
        chk_add(c, CHK_ERR, "snapshot_header_crc", &loc,
                "%s at offset 0: header checksum mismatch", name);
        return 1;
    }
    c->snap.last_lsn = le_get64(h + 32);
    c->snap.next_slot = le_get64(h + 40);
    c->snap.entries = *count = le_get64(h + 48);
    c->snap.generation = le_get32(h + 56);
    memcpy(c->uuid, h + 16, 16);
    c->have_uuid = 1;
    if (c->snap.last_lsn > MF_MAX_LSN) {
        chk_add(c, CHK_ERR, "snapshot_bad_header", &loc,
                "%s: last LSN %" PRIu64 " is beyond the largest possible", name,
                c->snap.last_lsn);
        return 1;
    }
    uint64_t want = MF_SNAP_HDR_SIZE + MF_SNAP_TRAILER_SIZE;
    if (*count > (UINT64_MAX - want) / MF_SNAP_ENTRY_SIZE ||
        c->snap.next_slot > MF_MAX_SLOTS ||
        c->snap.bytes != want + *count * MF_SNAP_ENTRY_SIZE) {
        loc.has |= CHK_HAS_BYTES;
        loc.bytes = c->snap.bytes;
        chk_add(c, CHK_ERR, "snapshot_bad_size", &loc,
                "%s: size %" PRIu64 " does not match %" PRIu64
                " entries and next_slot %" PRIu64,
                name, c->snap.bytes, *count, c->snap.next_slot);
        return 1;
    }
    c->generation = c->snap.generation;
    c->next_slot = c->snap.next_slot;
    return 0;
}

static int snap_trailer(struct chk *c, int fd, uint64_t off, uint64_t count,
                        uint32_t crc)
{
    const char *name = MF_SNAP_NAME;
    uint8_t t[MF_SNAP_TRAILER_SIZE];
    struct chk_loc loc = {.file = name, .has = CHK_HAS_OFFSET, .offset = off};
    int rc = read_at(fd, t, sizeof(t), off);
    if (rc < 0) {
        read_error(c, name, off, rc);
    } else if (rc > 0) {
        chk_add(c, CHK_ERR, "snapshot_truncated", &loc,
                "%s: truncated at offset %" PRIu64 " (no trailer)", name, off);
    } else if (memcmp(t, MF_SNAP_END_MAGIC, 8) != 0 || !sealed_ok(t) ||
               le_get64(t + 8) != count) {
        chk_add(c, CHK_ERR, "snapshot_trailer", &loc,
                "%s at offset %" PRIu64 ": bad trailer (magic, checksum or "
                "entry count)",
                name, off);
    } else if (le_get32(t + 16) != crc) {
        chk_add(c, CHK_ERR, "snapshot_trailer", &loc,
                "%s at offset %" PRIu64 ": the entries' CRC32C is %08" PRIx32
                ", the trailer records %08" PRIx32,
                name, off, crc, le_get32(t + 16));
    }
    return 0;
}

static int load_snapshot(struct chk *c)
{
    const char *name = MF_SNAP_NAME;
    int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return chk_fatal(c, CHK_EXIT_NOINPUT, "open %s/%s: %s", c->dir, name,
                         strerror(errno));
    uint8_t *buf = NULL;
    uint8_t h[MF_SNAP_HDR_SIZE];
    uint64_t count = 0;
    struct stat sb;
    int rc = 0;
    c->snap.present = 1;
    if (fstat(fd, &sb) < 0) {
        rc = chk_fatal(c, CHK_EXIT_NOINPUT, "fstat %s/%s: %s", c->dir, name,
                       strerror(errno));
        goto out;
    }
    c->snap.bytes = (uint64_t)sb.st_size;
    int r = read_at(fd, h, sizeof(h), 0);
    if (r != 0) {
        if (r < 0) {
            read_error(c, name, 0, r);
        } else {
            struct chk_loc loc = {.file = name};
            chk_add(c, CHK_ERR, "snapshot_truncated", &loc,
                    "%s: %" PRIu64 " bytes, shorter than its header", name,
                    c->snap.bytes);
        }
        c->replay_ok = 0;
        goto out;
    }
    r = snap_header(c, h, &count);
    if (r != 0) {
        rc = r < 0 ? -1 : 0;
        c->replay_ok = 0;
        goto out;
    }
    buf = malloc(SCAN_RECS * MF_SNAP_ENTRY_SIZE);
    if (!buf) {
        rc = oom(c);
        goto out;
    }
    uint32_t crc = 0;
    uint8_t prev[STORE_GUID_SIZE];
    int have_prev = 0;
    uint64_t off = MF_SNAP_HDR_SIZE;
    for (uint64_t done = 0; done < count;) {
        uint64_t n = count - done > SCAN_RECS ? SCAN_RECS : count - done;
        r = read_at(fd, buf, n * MF_SNAP_ENTRY_SIZE, off);
        if (r < 0) {
            read_error(c, name, off, r);
            goto out;
        }
        if (r > 0) { /* the size was checked: it shrank since */
            struct chk_loc loc = {
                .file = name, .has = CHK_HAS_OFFSET, .offset = off};
            chk_add(c, CHK_ERR, "snapshot_truncated", &loc,
                    "%s: truncated at offset %" PRIu64 " while being read",
                    name, off);
            c->replay_ok = 0;
            goto out;
        }
        crc = store_crc32c_cont(crc, buf, n * MF_SNAP_ENTRY_SIZE);
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *p = buf + i * MF_SNAP_ENTRY_SIZE;
            if (snap_entry(c, p, off + i * MF_SNAP_ENTRY_SIZE, prev,
                           have_prev) < 0) {
                rc = -1;
                goto out;
            }
            if (le_get32(p + 44) == store_crc32c(p, 44)) {
                memcpy(prev, p, STORE_GUID_SIZE);
                have_prev = 1;
            }
        }
        done += n;
        off += n * MF_SNAP_ENTRY_SIZE;
        progress_bytes(c, n * MF_SNAP_ENTRY_SIZE);
    }
    rc = snap_trailer(c, fd, off, count, crc);
out:
    free(buf);
    close(fd);
    return rc;
}

/* ---- records ---- */

static int apply_set(struct chk *c, const struct mf_record *r, const char *name,
                     uint64_t off)
{
    char g[33];
    chk_guid_format(r->guid, g);
    struct chk_loc loc = {.file = name,
                          .guid = r->guid,
                          .has = CHK_HAS_OFFSET | CHK_HAS_LSN | CHK_HAS_SLOT,
                          .offset = off,
                          .lsn = r->lsn,
                          .slot = r->slot};
    if (r->len <= STORE_FRAME_SIZE && !slot_ok(c, r->slot, r->len)) {
        chk_add(c, CHK_ERR, "slot_out_of_bounds", &loc,
                "%s at offset %" PRIu64 " (LSN %" PRIu64 "): GUID %s names "
                "slot %" PRIu64 " (%s; %s covers %" PRIu64 " slots)",
                name, off, r->lsn, g, r->slot,
                r->len == 0 ? "an empty blob must have no slot"
                            : "out of bounds",
                MF_DATA_NAME, c->data.slots);
        return 0;
    }
    if (r->len > STORE_FRAME_SIZE) {
        chk_add(c, CHK_ERR, "record_length", &loc,
                "%s at offset %" PRIu64 " (LSN %" PRIu64 "): GUID %s has "
                "length %" PRIu32 ", more than one frame",
                name, off, r->lsn, g, r->len);
        return 0;
    }
    uint64_t gen = store_version_generation(r->version);
    if (gen == 0 || gen > c->generation) {
        chk_add(c, CHK_ERR, "record_version", &loc,
                "%s at offset %" PRIu64 " (LSN %" PRIu64 "): GUID %s has a "
                "version of generation %" PRIu64
                " before that generation was opened (current %" PRIu64 ")",
                name, off, r->lsn, g, gen, c->generation);
        return 0;
    }
    uint32_t cur = chk_map_find(&c->map, r->guid);
    int suspect = 0;
    if (r->len > 0) {
        uint32_t owner = chk_map_slot(&c->map, (uint32_t)r->slot);
        suspect = owner != CHK_NONE && owner != cur;
    }
    struct chk_entry e = {.version = r->version,
                          .slot = r->len > 0 ? (uint32_t)r->slot : CHK_NONE,
                          .len = r->len,
                          .crc = r->crc,
                          .live = 1};
    memcpy(e.guid, r->guid, STORE_GUID_SIZE);
    if (cur != CHK_NONE) {
        uint32_t old = c->map.e[cur].slot;
        if (old != CHK_NONE && chk_map_slot(&c->map, old) == cur)
            chk_map_slot_clear(&c->map, old);
        c->map.e[cur] = e; /* a rewrite: the GUID keeps its entry */
    } else {
        cur = chk_map_add(&c->map, &e);
        if (cur == CHK_NONE)
            return oom(c);
    }
    if (r->len == 0)
        return 0;
    if (r->slot + 1 > c->next_slot)
        c->next_slot = r->slot + 1;
    if (!suspect)
        return chk_map_slot_set(&c->map, e.slot, cur) < 0 ? oom(c) : 0;
    /* R4: the slot is held by another GUID now; whether that is a
     * conflict is decided at the end of the batch. */
    if (c->nsus == c->csus) {
        size_t cap = c->csus ? c->csus * 2 : 16;
        struct chk_suspect *v = realloc(c->sus, cap * sizeof(*v));
        if (!v)
            return oom(c);
        c->sus = v;
        c->csus = cap;
    }
    struct chk_suspect *sp = &c->sus[c->nsus++];
    sp->slot = e.slot;
    memcpy(sp->guid, r->guid, STORE_GUID_SIZE);
    sp->file = name;
    sp->off = off;
    sp->lsn = r->lsn;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int has_slot(const uint64_t *v, size_t n, uint32_t slot)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t s = (uint32_t)(v[mid] >> 32);
        if (s == slot)
            return 1;
        if (s < slot)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Report a slot that the batch left with more than one holder (hold: the
 * live entries holding it; sus: the suspect claims of it, in LSN order),
 * and make the slot map whole again. */
static int settle_slot(struct chk *c, uint32_t slot, const uint64_t *hold,
                       size_t nhold, const struct chk_suspect *sus, size_t nsus)
{
    if (nhold == 0) {
        chk_map_slot_clear(&c->map, slot);
        return 0;
    }
    uint32_t first = (uint32_t)hold[0];
    if (nhold > 1) {
        /* Name the last claim whose GUID still holds the slot, and one
         * other holder. */
        const struct chk_suspect *claim = NULL;
        uint32_t ci = (uint32_t)hold[1];
        for (size_t k = 0; k < nsus; k++) {
            uint32_t i = chk_map_find(&c->map, sus[k].guid);
            for (size_t h = 0; i != CHK_NONE && h < nhold; h++) {
                if ((uint32_t)hold[h] == i) {
                    claim = &sus[k];
                    ci = i;
                }
            }
        }
        uint32_t other = ci == first ? (uint32_t)hold[1] : first;
        char g[33], og[33];
        chk_guid_format(c->map.e[ci].guid, g);
        chk_guid_format(c->map.e[other].guid, og);
        struct chk_loc loc = {.guid = c->map.e[ci].guid,
                              .other_guid = c->map.e[other].guid,
                              .has = CHK_HAS_SLOT,
                              .slot = slot};
        if (claim) {
            loc.file = claim->file;
            loc.has |= CHK_HAS_OFFSET | CHK_HAS_LSN;
            loc.offset = claim->off;
            loc.lsn = claim->lsn;
            chk_add(c, CHK_ERR, "slot_conflict", &loc,
                    "%s at offset %" PRIu64 " (LSN %" PRIu64 "): slot %" PRIu32
                    " is claimed by %zu GUIDs: %s is set "
                    "on it while %s holds it",
                    claim->file, claim->off, claim->lsn, slot, nhold, g, og);
        } else {
            chk_add(c, CHK_ERR, "slot_conflict", &loc,
                    "slot %" PRIu32 " is claimed by %zu GUIDs: %s and %s", slot,
                    nhold, g, og);
        }
        first = other;
    }
    return chk_map_slot_set(&c->map, slot, first) < 0 ? oom(c) : 0;
}

/* R4: the end of a batch.  Every slot a record claimed while another GUID
 * held it must have one holder left. */
static int settle_batch(struct chk *c)
{
    c->batch_records = 0;
    if (!c->nsus)
        return 0;
    int rc = -1;
    uint64_t *slots = malloc(c->nsus * sizeof(*slots));
    uint64_t *hold = NULL;
    size_t nslots = 0, nhold = 0, chold = 0;
    if (!slots)
        goto out;
    for (size_t k = 0; k < c->nsus; k++)
        slots[k] = (uint64_t)c->sus[k].slot << 32 | k;
    qsort(slots, c->nsus, sizeof(*slots), cmp_u64);
    nslots = c->nsus;
    /* One pass over the entries finds every holder of those slots. */
    for (size_t i = 0; i < c->map.ne; i++) {
        const struct chk_entry *e = &c->map.e[i];
        if (!e->live || e->slot == CHK_NONE ||
            !has_slot(slots, nslots, e->slot))
            continue;
        if (nhold == chold) {
            chold = chold ? chold * 2 : 16;
            uint64_t *v = realloc(hold, chold * sizeof(*v));
            if (!v)
                goto out;
            hold = v;
        }
        hold[nhold++] = (uint64_t)e->slot << 32 | i;
    }
    qsort(hold, nhold, sizeof(*hold), cmp_u64);
    struct chk_suspect *sorted = malloc(c->nsus * sizeof(*sorted));
    if (!sorted)
        goto out;
    for (size_t k = 0; k < nslots; k++)
        sorted[k] = c->sus[(uint32_t)slots[k]]; /* by slot, LSN order kept */
    rc = 0;
    for (size_t k = 0, h = 0; k < nslots && rc == 0;) {
        uint32_t slot = sorted[k].slot;
        size_t k2 = k, h0;
        while (k2 < nslots && sorted[k2].slot == slot)
            k2++;
        while (h < nhold && (uint32_t)(hold[h] >> 32) < slot)
            h++;
        h0 = h;
        while (h < nhold && (uint32_t)(hold[h] >> 32) == slot)
            h++;
        rc = settle_slot(c, slot, hold + h0, h - h0, sorted + k, k2 - k);
        k = k2;
    }
    free(sorted);
out:
    free(slots);
    free(hold);
    c->nsus = 0;
    return rc < 0 && !c->fatal ? oom(c) : rc;
}

static int apply_record(struct chk *c, const struct mf_record *r,
                        const char *name, uint64_t off)
{
    if (r->type == MF_REC_OPEN) {
        if (r->version <= c->generation || r->version > MF_MAX_GENERATION) {
            struct chk_loc loc = {.file = name,
                                  .has = CHK_HAS_OFFSET | CHK_HAS_LSN,
                                  .offset = off,
                                  .lsn = r->lsn};
            chk_add(c, CHK_ERR, "open_generation", &loc,
                    "%s at offset %" PRIu64 " (LSN %" PRIu64
                    "): generation %" PRIu64 " does not follow %" PRIu64,
                    name, off, r->lsn, r->version, c->generation);
            return 0;
        }
        c->generation = r->version;
        return 0;
    }
    if (r->type == MF_REC_SET)
        return apply_set(c, r, name, off);
    uint32_t i = chk_map_find(&c->map, r->guid);
    if (i != CHK_NONE)
        chk_map_remove(&c->map, i);
    return 0;
}

/* ---- groups ---- */

/* A valid group header at off: magic, CRC, our UUID, a sane count.
 * 0 valid, 1 not, -errno. */
static int read_group_header(struct chk *c, int fd, uint64_t off,
                             struct group_hdr *g)
{
    uint8_t h[MF_REC_SIZE];
    int rc = read_at(fd, h, sizeof(h), off);
    if (rc != 0)
        return rc;
    if (memcmp(h, MF_GROUP_MAGIC, 8) != 0 || !sealed_ok(h) ||
        memcmp(h + 24, c->uuid, 16) != 0)
        return 1;
    g->first_lsn = le_get64(h + 8);
    g->count = le_get32(h + 16);
    if (g->count == 0 || g->count > MF_GROUP_MAX_RECORDS ||
        g->first_lsn > MF_MAX_LSN)
        return 1;
    return 0;
}

/* R1: every record and the commit of the group at off.  0 valid, 1 not
 * (*bad: the offset of the first bad block), -errno. */
static int check_group(int fd, uint64_t off, const struct group_hdr *g,
                       uint8_t *buf, uint64_t *bad)
{
    uint8_t h[MF_REC_SIZE];
    *bad = off;
    int rc = read_at(fd, h, sizeof(h), off);
    if (rc != 0)
        return rc;
    uint32_t crc = store_crc32c(h, sizeof(h));
    uint64_t pos = off + MF_REC_SIZE;
    for (uint32_t done = 0; done < g->count;) {
        uint32_t n = g->count - done > SCAN_RECS ? SCAN_RECS : g->count - done;
        rc = read_at(fd, buf, (size_t)n * MF_REC_SIZE, pos);
        if (rc != 0) {
            *bad = pos;
            return rc;
        }
        for (uint32_t i = 0; i < n; i++) {
            struct mf_record r;
            if (mf_decode_record(buf + (size_t)i * MF_REC_SIZE, &r) < 0 ||
                r.lsn != g->first_lsn + done + i) {
                *bad = pos + (uint64_t)i * MF_REC_SIZE;
                return 1;
            }
        }
        crc = store_crc32c_cont(crc, buf, (size_t)n * MF_REC_SIZE);
        done += n;
        pos += (uint64_t)n * MF_REC_SIZE;
    }
    uint8_t t[MF_REC_SIZE];
    *bad = pos;
    rc = read_at(fd, t, sizeof(t), pos);
    if (rc != 0)
        return rc;
    if (memcmp(t, MF_COMMIT_MAGIC, 8) != 0 || !sealed_ok(t) ||
        le_get64(t + 8) != g->first_lsn || le_get32(t + 16) != g->count ||
        le_get32(t + 20) != crc)
        return 1;
    return 0;
}

/* Pass 2: apply a checked group's records past the snapshot (R3). */
static int apply_group(struct chk *c, int fd, uint64_t off,
                       const struct group_hdr *g, uint8_t *buf,
                       const char *name)
{
    uint64_t pos = off + MF_REC_SIZE;
    for (uint32_t done = 0; done < g->count;) {
        uint32_t n = g->count - done > SCAN_RECS ? SCAN_RECS : g->count - done;
        int rc = read_at(fd, buf, (size_t)n * MF_REC_SIZE, pos);
        if (rc != 0) {
            read_error(c, name, pos, rc < 0 ? rc : -EIO);
            return 0;
        }
        for (uint32_t i = 0; i < n; i++) {
            struct mf_record r;
            uint64_t roff = pos + (uint64_t)i * MF_REC_SIZE;
            if (mf_decode_record(buf + (size_t)i * MF_REC_SIZE, &r) < 0) {
                read_error(c, name, roff, -EIO); /* changed since pass 1 */
                return 0;
            }
            if (r.lsn <= c->snap.last_lsn)
                continue;
            if (c->batch_records == 0)
                c->batch_limit = mf_replay_batch_limit(c->map.live);
            if (apply_record(c, &r, name, roff) < 0)
                return -1;
            c->log.applied++;
            c->batch_records += r.type != MF_REC_OPEN;
        }
        done += n;
        pos += (uint64_t)n * MF_REC_SIZE;
    }
    return 0;
}

/* R2: a valid group header at a later block with an LSN at or past lsn? */
static int later_group(struct chk *c, int fd, uint64_t from, uint64_t size,
                       uint64_t lsn, uint64_t *at, struct group_hdr *found)
{
    for (uint64_t off = round_block(from + 1); off + MF_REC_SIZE <= size;
         off += MF_BLOCK) {
        int rc = read_group_header(c, fd, off, found);
        if (rc < 0)
            return rc;
        if (rc == 0 && found->first_lsn >= lsn) {
            *at = off;
            return 1;
        }
    }
    return 0;
}

/* ---- logs ---- */

static int cmp_log(const void *a, const void *b)
{
    const struct chk_log_file *x = a, *y = b;
    return x->first_lsn < y->first_lsn ? -1 : x->first_lsn > y->first_lsn;
}

static int list_logs(struct chk *c)
{
    int dfd = dup(c->dirfd);
    if (dfd < 0)
        return chk_fatal(c, CHK_EXIT_NOINPUT, "dup %s: %s", c->dir,
                         strerror(errno));
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        return chk_fatal(c, CHK_EXIT_NOINPUT, "opendir %s: %s", c->dir,
                         strerror(e));
    }
    rewinddir(d);
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t lsn;
        if (strcmp(de->d_name, MF_SNAP_TMP_NAME) == 0) {
            struct chk_loc loc = {.file = MF_SNAP_TMP_NAME};
            chk_add(c, CHK_WARN, "snapshot_tmp", &loc,
                    "%s: left by an interrupted compaction; open removes it",
                    MF_SNAP_TMP_NAME);
            continue;
        }
        if (mf_parse_log_name(de->d_name, &lsn) < 0)
            continue;
        if (lsn > MF_MAX_LSN) {
            struct chk_loc loc = {.file = de->d_name};
            chk_add(c, CHK_ERR, "log_bad_name", &loc,
                    "%s: LSN %" PRIu64 " is beyond the largest possible",
                    de->d_name, lsn);
            c->replay_ok = 0;
            continue;
        }
        if (c->log.nfiles == cap) {
            cap = cap ? cap * 2 : 8;
            struct chk_log_file *v = realloc(c->log.files, cap * sizeof(*v));
            if (!v) {
                rc = oom(c);
                break;
            }
            c->log.files = v;
        }
        struct chk_log_file *lg = &c->log.files[c->log.nfiles++];
        memset(lg, 0, sizeof(*lg));
        lg->first_lsn = lsn;
        /* mf_parse_log_name accepted it: exactly 24 characters. */
        memcpy(lg->name, de->d_name, strnlen(de->d_name, 24));
        struct stat sb;
        if (fstatat(c->dirfd, lg->name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
            lg->size = (uint64_t)sb.st_size;
    }
    closedir(d);
    if (rc == 0 && c->log.nfiles > 1)
        qsort(c->log.files, c->log.nfiles, sizeof(c->log.files[0]), cmp_log);
    return rc;
}

/* 1 if the newest log's header never reached the disk (manifest.c
 * empty_header): shorter than a header, or all zeros. */
static int empty_header(int fd, uint64_t size)
{
    uint8_t h[MF_LOG_HDR_SIZE];
    if (size < MF_LOG_HDR_SIZE)
        return 1;
    if (read_at(fd, h, sizeof(h), 0) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(h); i++)
        if (h[i])
            return 0;
    return 1;
}

/* 0 when the log header is sound (reported otherwise: 1). */
static int log_header(struct chk *c, int fd, const struct chk_log_file *lg)
{
    uint8_t h[MF_LOG_HDR_SIZE];
    const char *name = lg->name;
    struct chk_loc loc = {.file = name, .has = CHK_HAS_OFFSET, .offset = 0};
    int rc = read_at(fd, h, sizeof(h), 0);
    if (rc < 0) {
        read_error(c, name, 0, rc);
        return 1;
    }
    if (rc > 0 || memcmp(h, MF_LOG_MAGIC, 8) != 0) {
        chk_add(c, CHK_ERR, "log_bad_magic", &loc,
                "%s: not a blobd log (bad magic)", name);
        return 1;
    }
    if (le_get32(h + 8) != MF_VERSION) {
        chk_add(c, CHK_ERR, "log_bad_version", &loc,
                "%s: log format version %" PRIu32
                " is not supported (expected %u)",
                name, le_get32(h + 8), MF_VERSION);
        return 1;
    }
    if (!sealed_ok(h)) {
        chk_add(c, CHK_ERR, "log_header_crc", &loc,
                "%s at offset 0: log header checksum mismatch", name);
        return 1;
    }
    if (le_get64(h + 32) != lg->first_lsn) {
        loc.has |= CHK_HAS_LSN;
        loc.lsn = le_get64(h + 32);
        chk_add(c, CHK_ERR, "log_header_lsn", &loc,
                "%s: header LSN %" PRIu64 " does not match its name", name,
                le_get64(h + 32));
        return 1;
    }
    if (!c->have_uuid) {
        memcpy(c->uuid, h + 16, 16);
        c->have_uuid = 1;
    } else if (memcmp(c->uuid, h + 16, 16) != 0) {
        chk_add(c, CHK_ERR, "log_foreign", &loc,
                "%s belongs to another store (UUID mismatch)", name);
        return 1;
    }
    return 0;
}

/* A bad group at off (R2): damage, a covered tail, or a torn tail.
 * Returns 1 to go on scanning this log from *off, 0 to stop. */
static int bad_group(struct chk *c, int fd, size_t li, uint64_t *off,
                     uint64_t bad, uint64_t *lsn)
{
    struct chk_log_file *lg = &c->log.files[li];
    int last = li + 1 == c->log.nfiles;
    uint64_t at = 0;
    struct group_hdr g;
    struct chk_loc loc = {.file = lg->name,
                          .has = CHK_HAS_OFFSET | CHK_HAS_LSN,
                          .offset = *off,
                          .lsn = *lsn};
    int rc = later_group(c, fd, *off, lg->size, *lsn, &at, &g);
    if (rc < 0) {
        read_error(c, lg->name, *off, rc);
        return 0;
    }
    if (rc > 0) {
        chk_add(c, CHK_ERR, "log_group_damaged", &loc,
                "%s at offset %" PRIu64 ": damaged commit group (first bad "
                "block at offset %" PRIu64 ") followed by a valid one at "
                "offset %" PRIu64 ": records from LSN %" PRIu64 " are lost",
                lg->name, *off, bad, at, *lsn);
        c->replay_ok = 0;
        *off = at;
        *lsn = g.first_lsn;
        return 1;
    }
    if (!last && c->log.files[li + 1].first_lsn > c->snap.last_lsn) {
        chk_add(c, CHK_ERR, "log_group_damaged", &loc,
                "%s at offset %" PRIu64 ": damaged commit group (first bad "
                "block at offset %" PRIu64 ") followed by %s, which holds "
                "records the snapshot does not cover",
                lg->name, *off, bad, c->log.files[li + 1].name);
        c->replay_ok = 0;
        *lsn = c->log.files[li + 1].first_lsn;
        return 0;
    }
    if (!last) {
        chk_add(c, CHK_WARN, "log_covered_tail", &loc,
                "%s at offset %" PRIu64 ": damaged tail of a log the "
                "snapshot covers; open ignores it",
                lg->name, *off);
        *lsn = c->log.files[li + 1].first_lsn;
        return 0;
    }
    c->log.torn = 1;
    c->log.torn_offset = *off;
    return 0;
}

static void torn_tail(struct chk *c, const struct chk_log_file *lg)
{
    c->log.torn_end = lg->end;
    c->log.torn_bytes = lg->size - lg->end;
    snprintf(c->log.torn_file, sizeof(c->log.torn_file), "%s", lg->name);
    struct chk_loc loc = {.file = lg->name,
                          .has = CHK_HAS_OFFSET | CHK_HAS_BYTES,
                          .offset = c->log.torn_offset,
                          .bytes = c->log.torn_bytes};
    chk_add(c, CHK_WARN, "torn_tail", &loc,
            "%s: torn tail at offset %" PRIu64 " (an interrupted flush); "
            "open truncates the log to %" PRIu64 " bytes, dropping %" PRIu64
            " bytes that were never acknowledged as durable",
            lg->name, c->log.torn_offset, lg->end, c->log.torn_bytes);
}

/* One log; *lsn is the LSN the next record must carry.  0 or -1. */
static int replay_log(struct chk *c, size_t li, uint64_t *lsn, uint8_t *buf)
{
    struct chk_log_file *lg = &c->log.files[li];
    int last = li + 1 == c->log.nfiles;
    int fd = openat(c->dirfd, lg->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return chk_fatal(c, CHK_EXIT_NOINPUT, "open %s/%s: %s", c->dir,
                         lg->name, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        int e = errno;
        close(fd);
        return chk_fatal(c, CHK_EXIT_NOINPUT, "fstat %s/%s: %s", c->dir,
                         lg->name, strerror(e));
    }
    lg->size = (uint64_t)sb.st_size;
    c->log.bytes += lg->size;
    if (last && lg->size <= MF_LOG_HDR_SIZE && empty_header(fd, lg->size)) {
        struct chk_loc loc = {.file = lg->name};
        chk_add(c, CHK_WARN, "log_empty", &loc,
                "%s: empty log left by an interrupted creation; open "
                "removes it",
                lg->name);
        lg->ignored = 1;
        close(fd);
        return 0;
    }
    int rc = 0;
    if (log_header(c, fd, lg) != 0) {
        c->replay_ok = 0;
        if (!last)
            *lsn = c->log.files[li + 1].first_lsn;
        goto out;
    }
    uint64_t off = MF_BLOCK;
    lg->end = MF_LOG_HDR_SIZE;
    while (off < lg->size) {
        struct group_hdr g;
        uint64_t bad = off;
        int r = read_group_header(c, fd, off, &g);
        if (r == 0 && g.first_lsn != *lsn) {
            /* A torn write keeps the LSN it was given: this is not one. */
            struct chk_loc loc = {.file = lg->name,
                                  .has = CHK_HAS_OFFSET | CHK_HAS_LSN,
                                  .offset = off,
                                  .lsn = g.first_lsn};
            chk_add(c, CHK_ERR, "log_group_lsn", &loc,
                    "%s at offset %" PRIu64 ": group starts at LSN %" PRIu64
                    " where %" PRIu64 " was expected",
                    lg->name, off, g.first_lsn, *lsn);
            c->replay_ok = 0;
            *lsn = g.first_lsn;
        }
        if (r == 0)
            r = check_group(fd, off, &g, buf, &bad);
        if (r < 0) {
            read_error(c, lg->name, bad, r);
            goto out;
        }
        if (r > 0) {
            if (bad_group(c, fd, li, &off, bad, lsn))
                continue;
            break;
        }
        if (c->replay_ok && apply_group(c, fd, off, &g, buf, lg->name) < 0) {
            rc = -1;
            goto out;
        }
        if (c->batch_records >= c->batch_limit && settle_batch(c) < 0) {
            rc = -1;
            goto out;
        }
        c->log.groups++;
        c->log.records += g.count;
        *lsn += g.count;
        lg->end = off + MF_REC_SIZE * ((uint64_t)g.count + 2);
        off = round_block(lg->end);
        progress_bytes(c, MF_REC_SIZE * ((uint64_t)g.count + 2));
    }
    if (!c->log.torn && lg->size > lg->end && last) {
        /* Bytes after the last group that start no group: a torn tail. */
        c->log.torn = 1;
        c->log.torn_offset = lg->end;
    }
    if (c->log.torn && last)
        torn_tail(c, lg);
out:
    close(fd);
    /* R4: a batch never spans two logs. */
    if (rc == 0 && settle_batch(c) < 0)
        rc = -1;
    return rc;
}

static int replay_logs(struct chk *c, int snap_usable)
{
    uint8_t *buf = malloc(SCAN_RECS * MF_REC_SIZE);
    if (!buf)
        return oom(c);
    int rc = 0;
    uint64_t lsn =
        c->log.nfiles ? c->log.files[0].first_lsn : c->snap.last_lsn + 1;
    c->log.first_lsn = lsn;
    if (c->log.nfiles && snap_usable &&
        (lsn == 0 || lsn > c->snap.last_lsn + 1)) {
        struct chk_loc loc = {.file = c->log.files[0].name,
                              .has = CHK_HAS_LSN,
                              .lsn = c->snap.last_lsn + 1};
        chk_add(c, CHK_ERR, "log_gap", &loc,
                "log records %" PRIu64 "..%" PRIu64
                " are missing (no log holds them; the first log is %s)",
                c->snap.last_lsn + 1, lsn ? lsn - 1 : 0, c->log.files[0].name);
        c->replay_ok = 0;
    }
    for (size_t i = 0; i < c->log.nfiles && rc == 0; i++) {
        const struct chk_log_file *lg = &c->log.files[i];
        if (lg->first_lsn != lsn) {
            struct chk_loc loc = {
                .file = lg->name, .has = CHK_HAS_LSN, .lsn = lg->first_lsn};
            chk_add(c, CHK_ERR, "log_sequence", &loc,
                    "%s: starts at LSN %" PRIu64 " but the previous log "
                    "ends before %" PRIu64 " (%s)",
                    lg->name, lg->first_lsn, lsn,
                    lg->first_lsn < lsn ? "sequence goes backwards"
                                        : "records missing");
            c->replay_ok = 0;
            lsn = lg->first_lsn;
        }
        rc = replay_log(c, i, &lsn, buf);
    }
    c->log.next_lsn = lsn > c->snap.last_lsn ? lsn : c->snap.last_lsn + 1;
    free(buf);
    return rc;
}

int chk_replay(struct chk *c)
{
    c->replay_ok = 1;
    if (list_logs(c) < 0)
        return -1;
    uint64_t total = 0;
    struct stat sb;
    if (fstatat(c->dirfd, MF_SNAP_NAME, &sb, AT_SYMLINK_NOFOLLOW) == 0)
        total += (uint64_t)sb.st_size;
    for (size_t i = 0; i < c->log.nfiles; i++)
        total += c->log.files[i].size;
    chk_progress_start(&c->prog, "manifest", "MiB", total);
    if (load_snapshot(c) < 0)
        return -1;
    int snap_usable = c->replay_ok;
    if (replay_logs(c, snap_usable) < 0)
        return -1;
    chk_progress_update(&c->prog, c->prog.bytes, c->prog.bytes, 1);
    size_t nlogs = 0;
    for (size_t i = 0; i < c->log.nfiles; i++)
        nlogs += !c->log.files[i].ignored;
    if (!c->have_uuid && (c->map.live > 0 || nlogs > 0)) {
        chk_add(c, CHK_ERR, "no_uuid", NULL,
                "the manifest has no store UUID (no readable snapshot or log "
                "header)");
        c->replay_ok = 0;
    }
    return 0;
}
