/*
 * findings.c - the warnings and errors of a run.  Every finding is counted;
 * the first CHK_FINDINGS_MAX are kept with their message and location, so
 * a store damaged everywhere still gives a report of bounded size.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

void chk_guid_format(const uint8_t g[16], char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[g[i] >> 4];
        out[2 * i + 1] = hex[g[i] & 15];
    }
    out[32] = 0;
}

static char *vformat(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

void chk_add(struct chk *c, enum chk_sev sev, const char *code,
             const struct chk_loc *loc, const char *fmt, ...)
{
    if (sev == CHK_ERR)
        c->nerr++;
    else
        c->nwarn++;
    if (c->nf >= CHK_FINDINGS_MAX)
        return;
    if (c->nf == c->cf) {
        size_t cap = c->cf ? c->cf * 2 : 16;
        struct chk_finding *v = realloc(c->f, cap * sizeof(*v));
        if (!v)
            return; /* counted above; the report says some were left out */
        c->f = v;
        c->cf = cap;
    }
    struct chk_finding *f = &c->f[c->nf];
    memset(f, 0, sizeof(*f));
    f->sev = sev;
    f->code = code;
    va_list ap;
    va_start(ap, fmt);
    f->message = vformat(fmt, ap);
    va_end(ap);
    if (!f->message)
        return;
    if (loc) {
        if (loc->file && !(f->file = strdup(loc->file))) {
            free(f->message);
            return;
        }
        if (loc->guid) {
            f->has_guid = 1;
            memcpy(f->guid, loc->guid, STORE_GUID_SIZE);
        }
        if (loc->other_guid) {
            f->has_other = 1;
            memcpy(f->other_guid, loc->other_guid, STORE_GUID_SIZE);
        }
        f->has = loc->has;
        f->offset = loc->offset;
        f->slot = loc->slot;
        f->lsn = loc->lsn;
        f->bytes = loc->bytes;
    }
    c->nf++;
}

int chk_fatal(struct chk *c, int code, const char *fmt, ...)
{
    if (!c->fatal) {
        c->fatal = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
        va_end(ap);
    }
    return -1;
}

void chk_findings_free(struct chk *c)
{
    for (size_t i = 0; i < c->nf; i++) {
        free(c->f[i].message);
        free(c->f[i].file);
    }
    free(c->f);
    c->f = NULL;
    c->nf = c->cf = 0;
}
