/*
 * log.c - timestamped, levelled log lines on stderr.
 *
 * Invariants:
 *  L1. A line is formatted into one buffer and written with one write(2),
 *      so lines from different threads never interleave.
 *  L2. A line is at most LOG_LINE_MAX bytes; longer messages are cut and
 *      end with "...".
 */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static atomic_int log_level = LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void server_log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum log_level server_log_level(void)
{
    return (enum log_level)atomic_load(&log_level);
}

void server_vlog(enum log_level level, const char *fmt, va_list ap)
{
    if ((int)level > atomic_load(&log_level))
        return;
    char line[LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ",
                          ts.tv_nsec / 1000000, level_names[level]);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    if ((size_t)m >= sizeof(line) - n - 1) { /* L2 */
        n = sizeof(line) - 5;
        memcpy(line + n, "...", 3);
        n += 3;
    } else {
        n += (size_t)m;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n); /* L1 */
    (void)w;
}

void server_log(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    server_vlog(level, fmt, ap);
    va_end(ap);
}
