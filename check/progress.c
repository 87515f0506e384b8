/*
 * progress.c - one status line on stderr, rewritten in place with \r:
 * the phase, how far it is, the read rate and the time left.  Drawn only
 * when stderr is a terminal (p->on), so logs and pipes never see it.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define REDRAW_S 0.1
#define MIB (1024.0 * 1024.0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void chk_progress_start(struct chk_progress *p, const char *phase,
                        const char *unit, uint64_t total)
{
    p->phase = phase;
    p->unit = unit;
    p->total = total;
    p->done = p->bytes = 0;
    p->t0 = now_s();
    p->last = 0;
    chk_progress_update(p, 0, 0, 1);
}

static void format_eta(char *out, size_t len, double s)
{
    if (s < 0 || s > 359999) {
        snprintf(out, len, "--:--");
        return;
    }
    unsigned t = (unsigned)(s + 0.5);
    if (t >= 3600)
        snprintf(out, len, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, len, "%u:%02u", t / 60, t % 60);
}

void chk_progress_update(struct chk_progress *p, uint64_t done, uint64_t bytes,
                         int force)
{
    if (!p->on)
        return;
    double t = now_s();
    if (!force && t - p->last < REDRAW_S)
        return;
    p->last = t;
    p->done = done;
    p->bytes = bytes;
    double el = t - p->t0;
    double rate = el > 0 ? (double)bytes / MIB / el : 0;
    double frac = p->total ? (double)done / (double)p->total : 1;
    char eta[16];
    format_eta(eta, sizeof(eta),
               done && el > 0 && p->total > done ? el / frac - el
               : p->total <= done                ? 0
                                                 : -1);
    char line[160];
    int n;
    if (strcmp(p->unit, "MiB") == 0)
        n = snprintf(line, sizeof(line),
                     "%s: %.1f/%.1f MiB (%.0f%%), %.1f MiB/s, ETA %s", p->phase,
                     (double)done / MIB, (double)p->total / MIB, 100 * frac,
                     rate, eta);
    else
        n = snprintf(line, sizeof(line),
                     "%s: %llu/%llu %s (%.0f%%), %.1f MiB/s, ETA %s", p->phase,
                     (unsigned long long)done, (unsigned long long)p->total,
                     p->unit, 100 * frac, rate, eta);
    if (n < 0)
        return;
    size_t w = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    /* Spaces over what a longer previous line left, rather than a
     * terminal escape: works on any terminal. */
    fprintf(stderr, "\r%s%*s", line, (int)(p->width > w ? p->width - w : 0),
            "");
    fflush(stderr);
    p->width = w;
}

void chk_progress_end(struct chk_progress *p)
{
    if (!p->on || !p->width)
        return;
    fprintf(stderr, "\r%*s\r", (int)p->width, "");
    fflush(stderr);
    p->width = 0;
}
