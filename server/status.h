/*
 * status.h - the status page served at GET / (SPEC §4): server/status.html
 * turned into C data at build time by server/embed_status.cmake.
 *
 * Invariants:
 *  S1. The page is self-contained: one HTML document whose only style and
 *      script are inline, and which requests nothing but ./admin/stats and
 *      ./readyz (relative, so it works under any path prefix).
 *  S2. server_status_csp names the SHA-256 of exactly those two inline
 *      blocks, computed from the same bytes as server_status_html, so the
 *      browser runs them and nothing else.
 *
 * Read-only data: safe from any thread.
 */
#ifndef BLOBD_STATUS_H
#define BLOBD_STATUS_H

#include <stddef.h>

/* The page's bytes (not NUL-terminated). */
extern const unsigned char server_status_html[];
extern const size_t server_status_html_len;
/* The Content-Security-Policy header value of the page (S2). */
extern const char server_status_csp[];

#endif
