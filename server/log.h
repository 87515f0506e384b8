/*
 * log.h - the server's log: one line per event on stderr,
 *   2026-11-25T21:40:00.123Z <level> <message>
 * with levels error, warn, info, debug.  Safe from any thread (one write(2)
 * per line).
 */
#ifndef BLOBD_SERVER_LOG_H
#define BLOBD_SERVER_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void server_log_set_level(enum log_level level);
enum log_level server_log_level(void);
void server_log(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void server_vlog(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
