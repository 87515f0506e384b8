/*
 * crashio.c - crash simulation wrapper around a store_io backend (see
 * crashio.h).
 *
 * Every file or directory seen through the wrapper gets an object keyed by
 * (st_dev, st_ino) holding the wrapper's own descriptor to it, opened via
 * /proc/self/fd without O_DIRECT, so undo I/O needs no alignment.  Objects
 * live until crashio_free; the own descriptor also keeps an inode from
 * being reused while its object exists.  Before each change an undo record
 * is pushed on one list, newest first:
 *   data   (pwritev, ftruncate, fallocate, open with O_TRUNC): the old size
 *          and the old bytes of the range below it (fallocate changes no
 *          bytes, so only the size); dropped by a sync of the file;
 *   create (openat with O_CREAT of a missing name): unlink the name;
 *   rename: rename back and recreate the replaced target from a copy;
 *   unlink: recreate the file from a copy;
 *          the last three are dropped by an fsync of the directory.
 * When a replaced or unlinked file is recreated, its object's own fd is
 * pointed at the copy, so older data records of that file land there.
 * Data records of pwritev calls also carry the write's length, so that
 * crashio_crash_random can keep or tear them (see crashio.h); while it
 * runs, each object's keep_end is the end of the newest surviving bytes of
 * kept or torn writes not cut off since by a strict record.
 *
 * Thread rules: one mutex guards everything and is held across each call
 * into the inner backend, so a change and its undo record are atomic.
 */
#include "crashio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cfile {
    dev_t dev;
    ino_t ino;
    int fd;            /* own descriptor, -1 if it could not be opened */
    int refs;          /* caller descriptors opened on it through the wrapper */
    uint64_t keep_end; /* crashio_crash_random only (see the top) */
    struct cfile *next;
};

enum undo_kind { UNDO_DATA, UNDO_CREATE, UNDO_RENAME, UNDO_UNLINK };

struct undo {
    struct undo *next; /* the next older record */
    enum undo_kind kind;
    struct cfile *f;    /* DATA: the file; others: directory of name */
    uint64_t size, off; /* DATA: old size; where bytes go back */
    int write;          /* DATA: left by a pwritev of wlen bytes at off */
    uint64_t wlen;
    unsigned char *bytes; /* DATA: old bytes; RENAME/UNLINK: old file */
    size_t len;
    int saved;              /* RENAME/UNLINK: bytes/mode hold the old file */
    mode_t mode;            /* its permission bits */
    struct cfile *victim;   /* its object, if any */
    char *name;             /* CREATE/UNLINK: the name; RENAME: "to" */
    struct cfile *from_dir; /* RENAME: directory of from */
    char *from;
};

struct crashio {
    struct store_io io; /* what crashio_io returns; io.ctx points here */
    struct store_io *inner;
    pthread_mutex_t mu;
    struct cfile *files;
    struct undo *undo; /* newest first */
    size_t pending;
    int dead;
    size_t undone, kept, torn; /* pwritev records, by the last crash */
};

static struct crashio *cio_of(struct store_io *io)
{
    return io->ctx;
}

/* pread/pwrite all of [off, off + len); -errno on failure.  A read that
 * hits end of file zero-fills the rest. */
static int io_full(int fd, unsigned char *buf, size_t len, uint64_t off,
                   int write)
{
    while (len > 0) {
        ssize_t n = write ? pwrite(fd, buf, len, (off_t)off)
                          : pread(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            if (write)
                return -EIO;
            memset(buf, 0, len);
            break;
        }
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static struct cfile *cf_find(struct crashio *c, dev_t dev, ino_t ino)
{
    for (struct cfile *f = c->files; f; f = f->next)
        if (f->dev == dev && f->ino == ino)
            return f;
    return NULL;
}

/* The object of the inode st describes, created if new.  own is a
 * descriptor to adopt for a new object (closed if not needed); -1: open
 * one through /proc/self/fd/fd.  NULL if out of memory. */
static struct cfile *cf_get(struct crashio *c, const struct stat *st, int fd,
                            int own)
{
    struct cfile *f = cf_find(c, st->st_dev, st->st_ino);
    char path[64];
    if (f)
        goto out;
    f = calloc(1, sizeof(*f));
    if (!f)
        goto out;
    if (own < 0) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        own = open(path, O_RDWR | O_CLOEXEC);
        if (own < 0)
            own = open(path, O_RDONLY | O_CLOEXEC);
    }
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->fd = own;
    own = -1;
    f->next = c->files;
    c->files = f;
out:
    if (own >= 0)
        close(own);
    return f;
}

/* The object of a caller's descriptor. */
static struct cfile *cf_of_fd(struct crashio *c, int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    return cf_get(c, &st, fd, -1);
}

/* The object of the directory holding name (relative to dirfd); *base is
 * the last component of name.  NULL if it cannot be opened. */
static struct cfile *cf_dir(struct crashio *c, int dirfd, const char *name,
                            const char **base)
{
    const char *slash = strrchr(name, '/');
    char *parent = NULL;
    struct stat st;
    int pfd;
    *base = slash ? slash + 1 : name;
    if (slash) {
        parent = strndup(name, slash == name ? 1 : (size_t)(slash - name));
        if (!parent)
            return NULL;
    }
    pfd = openat(dirfd, parent ? parent : ".",
                 O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(parent);
    if (pfd < 0)
        return NULL;
    if (fstat(pfd, &st) < 0) {
        close(pfd);
        return NULL;
    }
    return cf_get(c, &st, pfd, pfd);
}

static void undo_free(struct undo *u)
{
    if (!u)
        return;
    free(u->bytes);
    free(u->name);
    free(u->from);
    free(u);
}

static void undo_push(struct crashio *c, struct undo *u)
{
    u->next = c->undo;
    c->undo = u;
    c->pending++;
}

/* Drop the data records of f and, if dirs, its directory records. */
static void undo_drop(struct crashio *c, struct cfile *f, int dirs)
{
    struct undo **pp = &c->undo;
    while (*pp) {
        struct undo *u = *pp;
        if (u->f == f && (u->kind == UNDO_DATA || dirs)) {
            *pp = u->next;
            undo_free(u);
            c->pending--;
        } else {
            pp = &u->next;
        }
    }
}

/* A directory record for name in d (the name is copied). */
static struct undo *undo_new(enum undo_kind kind, struct cfile *d,
                             const char *name)
{
    struct undo *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->kind = kind;
    u->f = d;
    u->name = strdup(name);
    if (!u->name) {
        free(u);
        return NULL;
    }
    return u;
}

/* Push a data record for [off, off + len) of f: its size now and, if
 * bytes, its bytes in the range below that size (write: the record of a
 * pwritev of len bytes).  0 if f is untracked. */
static int undo_data(struct crashio *c, struct cfile *f, uint64_t off,
                     uint64_t len, int bytes, int write)
{
    struct stat st;
    struct undo *u;
    int rc = 0;
    if (!f || f->fd < 0 || fstat(f->fd, &st) < 0)
        return 0;
    u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->kind = UNDO_DATA;
    u->f = f;
    u->size = (uint64_t)st.st_size;
    u->off = off;
    u->write = write;
    u->wlen = write ? len : 0;
    if (bytes && off < u->size) {
        u->len = (size_t)(len < u->size - off ? len : u->size - off);
        u->bytes = malloc(u->len ? u->len : 1);
        if (!u->bytes) {
            rc = -ENOMEM;
            goto out;
        }
        rc = io_full(f->fd, u->bytes, u->len, off, 0);
        if (rc < 0)
            goto out;
    }
    undo_push(c, u);
    u = NULL;
out:
    undo_free(u);
    return rc;
}

/* Copy the regular file name in d (described by st) into u. */
static int undo_save(struct crashio *c, struct undo *u, struct cfile *d,
                     const char *name, const struct stat *st)
{
    int fd, rc;
    fd = openat(d->fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    u->len = (size_t)st->st_size;
    u->bytes = malloc(u->len ? u->len : 1);
    rc = u->bytes ? io_full(fd, u->bytes, u->len, 0, 0) : -ENOMEM;
    close(fd);
    if (rc < 0)
        return rc;
    u->saved = 1;
    u->mode = st->st_mode & 07777;
    u->victim = cf_find(c, st->st_dev, st->st_ino);
    return 0;
}

static void undo_warn(const char *what, const char *name, int err)
{
    fprintf(stderr, "crashio: undo %s %s: %s\n", what, name ? name : "",
            strerror(err));
}

/* Recreate the file saved in u as u->name in u->f. */
static void undo_recreate(struct undo *u)
{
    int fd =
        openat(u->f->fd, u->name,
               O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC | O_NOFOLLOW, u->mode);
    if (fd < 0) {
        undo_warn("recreate", u->name, errno);
        return;
    }
    int rc = io_full(fd, u->bytes, u->len, 0, 1);
    if (rc < 0)
        undo_warn("recreate", u->name, -rc);
    if (fchmod(fd, u->mode) < 0)
        undo_warn("chmod", u->name, errno);
    if (u->victim) {
        /* Older data records of the old file now apply to the copy. */
        if (u->victim->fd >= 0)
            close(u->victim->fd);
        u->victim->fd = fd;
    } else {
        close(fd);
    }
}

static void undo_apply(struct undo *u)
{
    int rc;
    switch (u->kind) {
    case UNDO_DATA:
        if (u->f->fd < 0)
            break;
        if (ftruncate(u->f->fd, (off_t)u->size) < 0) {
            undo_warn("ftruncate", NULL, errno);
            break;
        }
        rc = io_full(u->f->fd, u->bytes, u->len, u->off, 1);
        if (rc < 0)
            undo_warn("write", NULL, -rc);
        break;
    case UNDO_CREATE:
        if (unlinkat(u->f->fd, u->name, 0) < 0)
            undo_warn("create", u->name, errno);
        break;
    case UNDO_RENAME:
        if (renameat(u->f->fd, u->name, u->from_dir->fd, u->from) < 0)
            undo_warn("rename", u->name, errno);
        if (u->saved)
            undo_recreate(u);
        break;
    case UNDO_UNLINK:
        undo_recreate(u);
        break;
    }
}

static int cio_openat(struct store_io *io, int dirfd, const char *name,
                      int flags, mode_t mode)
{
    struct crashio *c = cio_of(io);
    struct cfile *d = NULL, *f;
    struct undo *u = NULL;
    const char *base = name;
    struct stat st;
    int exists = 1, rc;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        rc = -EIO;
        goto out;
    }
    if (flags & (O_CREAT | O_TRUNC)) {
        d = cf_dir(c, dirfd, name, &base);
        if (d)
            exists = fstatat(d->fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    }
    if (d && !exists && (flags & O_CREAT)) {
        u = undo_new(UNDO_CREATE, d, base);
        if (!u) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if (d && exists && (flags & O_TRUNC) && S_ISREG(st.st_mode) &&
        (flags & O_ACCMODE) != O_RDONLY) {
        int tfd = openat(d->fd, base, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (tfd >= 0) {
            rc = undo_data(c, cf_get(c, &st, tfd, tfd), 0, UINT64_MAX, 1, 0);
            if (rc < 0)
                goto out;
        }
    }
    rc = c->inner->openat(c->inner, dirfd, name, flags, mode);
    if (rc < 0)
        goto out;
    if (u) {
        undo_push(c, u);
        u = NULL;
    }
    f = cf_of_fd(c, rc);
    if (f)
        f->refs++;
out:
    undo_free(u);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cio_close(struct store_io *io, int fd)
{
    struct crashio *c = cio_of(io);
    struct stat st;
    int rc;
    pthread_mutex_lock(&c->mu);
    if (fstat(fd, &st) == 0) {
        struct cfile *f = cf_find(c, st.st_dev, st.st_ino);
        if (f && f->refs > 0)
            f->refs--;
    }
    rc = c->inner->close(c->inner, fd);
    if (c->dead)
        rc = 0;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static ssize_t cio_pread(struct store_io *io, int fd, void *buf, size_t len,
                         uint64_t off)
{
    struct crashio *c = cio_of(io);
    ssize_t rc;
    pthread_mutex_lock(&c->mu);
    rc = c->dead ? -EIO : c->inner->pread(c->inner, fd, buf, len, off);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static ssize_t cio_pwritev(struct store_io *io, int fd, const struct iovec *iov,
                           int iovcnt, uint64_t off)
{
    struct crashio *c = cio_of(io);
    uint64_t len = 0;
    ssize_t rc;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        rc = -EIO;
        goto out;
    }
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    struct undo *older = c->undo;
    rc = undo_data(c, cf_of_fd(c, fd), off, len, 1, 1);
    if (rc == 0)
        rc = c->inner->pwritev(c->inner, fd, iov, iovcnt, off);
    /* What reached the file: nothing on an error, a prefix if short. */
    if (c->undo != older && (rc < 0 || (uint64_t)rc < len))
        c->undo->wlen = rc < 0 ? 0 : (uint64_t)rc;
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cio_sync(struct store_io *io, int fd, enum store_io_sync kind)
{
    struct crashio *c = cio_of(io);
    int rc;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        rc = -EIO;
        goto out;
    }
    rc = c->inner->sync(c->inner, fd, kind);
    if (rc == 0) {
        struct cfile *f = cf_of_fd(c, fd);
        if (f)
            undo_drop(c, f, kind == STORE_IO_FSYNC);
    }
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cio_fallocate(struct store_io *io, int fd, uint64_t off,
                         uint64_t len)
{
    struct crashio *c = cio_of(io);
    int rc;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        rc = -EIO;
        goto out;
    }
    rc = undo_data(c, cf_of_fd(c, fd), off, len, 0, 0);
    if (rc == 0)
        rc = c->inner->fallocate(c->inner, fd, off, len);
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cio_ftruncate(struct store_io *io, int fd, uint64_t len)
{
    struct crashio *c = cio_of(io);
    int rc;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        rc = -EIO;
        goto out;
    }
    rc = undo_data(c, cf_of_fd(c, fd), len, UINT64_MAX, 1, 0);
    if (rc == 0)
        rc = c->inner->ftruncate(c->inner, fd, len);
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cio_renameat(struct store_io *io, int dirfd, const char *from,
                        const char *to)
{
    struct crashio *c = cio_of(io);
    struct cfile *dfrom, *dto;
    const char *bfrom, *bto;
    struct stat sf, st;
    struct undo *u = NULL;
    int rc;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        rc = -EIO;
        goto out;
    }
    dfrom = cf_dir(c, dirfd, from, &bfrom);
    dto = cf_dir(c, dirfd, to, &bto);
    if (dfrom && dto &&
        fstatat(dfrom->fd, bfrom, &sf, AT_SYMLINK_NOFOLLOW) == 0) {
        int target = fstatat(dto->fd, bto, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!target || sf.st_dev != st.st_dev || sf.st_ino != st.st_ino) {
            rc = -ENOMEM;
            u = undo_new(UNDO_RENAME, dto, bto);
            if (!u)
                goto out;
            u->from_dir = dfrom;
            u->from = strdup(bfrom);
            if (!u->from)
                goto out;
            if (target && S_ISREG(st.st_mode)) {
                rc = undo_save(c, u, dto, bto, &st);
                if (rc < 0)
                    goto out;
            }
        }
    }
    rc = c->inner->renameat(c->inner, dirfd, from, to);
    if (rc == 0 && u) {
        undo_push(c, u);
        u = NULL;
    }
out:
    undo_free(u);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cio_unlinkat(struct store_io *io, int dirfd, const char *name)
{
    struct crashio *c = cio_of(io);
    struct cfile *d;
    const char *base;
    struct stat st;
    struct undo *u = NULL;
    int rc;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        rc = -EIO;
        goto out;
    }
    d = cf_dir(c, dirfd, name, &base);
    if (d && fstatat(d->fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode)) {
        rc = -ENOMEM;
        u = undo_new(UNDO_UNLINK, d, base);
        if (!u)
            goto out;
        rc = undo_save(c, u, d, base, &st);
        if (rc < 0)
            goto out;
    }
    rc = c->inner->unlinkat(c->inner, dirfd, name);
    if (rc == 0 && u) {
        undo_push(c, u);
        u = NULL;
    }
out:
    undo_free(u);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cio_fstatvfs(struct store_io *io, int fd, uint64_t *avail)
{
    struct crashio *c = cio_of(io);
    int rc;
    pthread_mutex_lock(&c->mu);
    rc = c->dead ? -EIO : c->inner->fstatvfs(c->inner, fd, avail);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void cio_destroy(struct store_io *io)
{
    crashio_free(cio_of(io));
}

struct crashio *crashio_new(struct store_io *inner)
{
    struct crashio *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->inner = inner;
    c->io.name = "crashio";
    c->io.ctx = c;
    c->io.openat = cio_openat;
    c->io.close = cio_close;
    c->io.pread = cio_pread;
    c->io.pwritev = cio_pwritev;
    c->io.sync = cio_sync;
    c->io.fallocate = cio_fallocate;
    c->io.ftruncate = cio_ftruncate;
    c->io.renameat = cio_renameat;
    c->io.unlinkat = cio_unlinkat;
    c->io.fstatvfs = cio_fstatvfs;
    c->io.destroy = cio_destroy;
    return c;
}

struct store_io *crashio_io(struct crashio *c)
{
    return &c->io;
}

void crashio_free(struct crashio *c)
{
    if (!c)
        return;
    if (c->inner)
        c->inner->destroy(c->inner);
    while (c->undo) {
        struct undo *u = c->undo;
        c->undo = u->next;
        undo_free(u);
    }
    while (c->files) {
        struct cfile *f = c->files;
        c->files = f->next;
        if (f->fd >= 0)
            close(f->fd);
        free(f);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void crashio_crash(struct crashio *c)
{
    pthread_mutex_lock(&c->mu);
    c->undone = c->kept = c->torn = 0;
    while (c->undo) {
        struct undo *u = c->undo;
        c->undo = u->next;
        c->undone += u->kind == UNDO_DATA && u->write;
        undo_apply(u);
        undo_free(u);
    }
    c->pending = 0;
    c->dead = 1;
    pthread_mutex_unlock(&c->mu);
}

static uint64_t cio_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Write len zero bytes at off of fd. */
static int zero_range(int fd, uint64_t off, uint64_t len)
{
    static const unsigned char zeros[4096];
    while (len > 0) {
        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
        int rc = io_full(fd, (unsigned char *)zeros, n, off, 1);
        if (rc < 0)
            return rc;
        off += n;
        len -= n;
    }
    return 0;
}

/* Undo the pwritev record u from cut on (cut == u->off: all of it), as
 * crashio.h describes for crashio_crash_random. */
static void undo_write_from(struct undo *u, uint64_t cut)
{
    struct cfile *f = u->f;
    uint64_t end = u->off + u->wlen, old_end = u->off + u->len;
    uint64_t size = u->size;
    int rc;
    if (f->fd < 0)
        return;
    if (cut > u->off && cut > size)
        size = cut;
    if (f->keep_end > size)
        size = f->keep_end;
    if (ftruncate(f->fd, (off_t)size) < 0) {
        undo_warn("ftruncate", NULL, errno);
        return;
    }
    if (cut < old_end) {
        rc = io_full(f->fd, u->bytes + (cut - u->off), (size_t)(old_end - cut),
                     cut, 1);
        if (rc < 0)
            undo_warn("write", NULL, -rc);
    }
    uint64_t z0 = cut > old_end ? cut : old_end, z1 = end < size ? end : size;
    if (z0 < z1) {
        rc = zero_range(f->fd, z0, z1 - z0);
        if (rc < 0)
            undo_warn("write", NULL, -rc);
    }
}

void crashio_crash_random(struct crashio *c, uint64_t seed)
{
    uint64_t rng = seed;
    pthread_mutex_lock(&c->mu);
    c->undone = c->kept = c->torn = 0;
    for (struct cfile *f = c->files; f; f = f->next)
        f->keep_end = 0;
    while (c->undo) {
        struct undo *u = c->undo;
        c->undo = u->next;
        if (u->kind != UNDO_DATA || !u->write) {
            undo_apply(u);
            if (u->kind == UNDO_DATA && u->f->keep_end > u->size)
                u->f->keep_end = u->size; /* cut off by a strict record */
            undo_free(u);
            continue;
        }
        uint64_t end = u->off + u->wlen;
        uint64_t first = (u->off / 4096 + 1) * 4096; /* first cut candidate */
        switch (cio_rand(&rng) % 3) {
        case 0: /* undone */
            c->undone++;
            undo_write_from(u, u->off);
            break;
        case 1: /* kept */
            c->kept++;
            if (u->wlen > 0 && end > u->f->keep_end)
                u->f->keep_end = end;
            break;
        default: /* torn, or undone if no page boundary lies inside */
            if (first >= end) {
                c->undone++;
                undo_write_from(u, u->off);
                break;
            }
            c->torn++;
            uint64_t cut =
                first + cio_rand(&rng) % ((end - first + 4095) / 4096) * 4096;
            undo_write_from(u, cut);
            if (cut > u->f->keep_end)
                u->f->keep_end = cut;
            break;
        }
        undo_free(u);
    }
    c->pending = 0;
    c->dead = 1;
    pthread_mutex_unlock(&c->mu);
}

void crashio_crash_counts(struct crashio *c, size_t *undone, size_t *kept,
                          size_t *torn)
{
    pthread_mutex_lock(&c->mu);
    if (undone)
        *undone = c->undone;
    if (kept)
        *kept = c->kept;
    if (torn)
        *torn = c->torn;
    pthread_mutex_unlock(&c->mu);
}

size_t crashio_pending(struct crashio *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->pending;
    pthread_mutex_unlock(&c->mu);
    return n;
}
