/*
 * access.h - who is asking: bearer tokens and their roles, trusted
 * proxies, and the client address a request is logged under.
 */
#ifndef BLOBD_SERVER_ACCESS_H
#define BLOBD_SERVER_ACCESS_H

#include <stddef.h>
#include <sys/socket.h>

#include "api.h"
#include "config.h"

struct server_token {
    char *tok;
    size_t len;
    enum api_role role;
};

struct server_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
};

struct server_access {
    struct server_token *tokens;
    size_t ntokens;
    struct server_cidr *proxies;
    size_t nproxies;
};

/* From cfg's token lists and trusted proxies; 0 or -1 with err filled
 * (a token too short or with characters outside token68, a bad CIDR). */
int server_access_init(struct server_access *a, const struct server_config *cfg,
                       char *err, size_t errlen);
void server_access_free(struct server_access *a);
/* Auth is on when any token is configured. */
int server_access_auth_on(const struct server_access *a);
/* The role of a presented token, comparing it against every configured
 * token in constant time (no early exit); API_ROLE_NONE if unknown. */
enum api_role server_access_role(const struct server_access *a, const char *tok,
                                 size_t len);
/* Is the peer one of the trusted proxies? */
int server_access_trusted(const struct server_access *a,
                          const struct sockaddr *peer);
/* An address as its family and bytes (4 for AF_INET, 16 for AF_INET6;
 * IPv4-mapped IPv6 counts as IPv4); -1 for other families. */
int server_addr_key(const struct sockaddr *sa, unsigned char out[16]);
/* server_access_trusted for an address from server_addr_key. */
int server_access_trusted_addr(const struct server_access *a, int family,
                               const unsigned char *addr);
/* The address to log for a request from peer: the peer itself, or, when
 * the peer is a trusted proxy and X-Forwarded-For is given, the
 * right-most address in it that is not itself a trusted proxy. */
void server_access_client(const struct server_access *a,
                          const struct sockaddr *peer, const char *xff,
                          char *out, size_t cap);

#endif
