/*
 * access.c - see access.h.
 *
 * Invariants:
 *  Z1. A presented token is compared with every configured token with
 *      api_token_equal, and the loop never exits early, so the time taken
 *      says nothing about which token (or which prefix) matched.
 *  Z2. X-Forwarded-For is believed only from a trusted proxy, and only as
 *      far as the chain of trusted proxies goes (read right to left).
 */
#include "access.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MIN 16

static int is_token68(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (isalnum((unsigned char)s[i]) || strchr("-._~+/", s[i])))
        i++;
    if (i == 0)
        return 0;
    while (i < n && s[i] == '=')
        i++;
    return i == n;
}

static int add_tokens(struct server_access *a, const char *list,
                      enum api_role role, const char *opt, char *err,
                      size_t errlen)
{
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && isspace((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        if (n > 0) {
            if (n < TOKEN_MIN || !is_token68(p, n)) {
                snprintf(err, errlen,
                         "--%s: a token is at least %d characters of "
                         "A-Z a-z 0-9 - . _ ~ + / (then = padding)",
                         opt, TOKEN_MIN);
                return -1;
            }
            struct server_token *v =
                realloc(a->tokens, (a->ntokens + 1) * sizeof(*v));
            if (!v)
                goto nomem;
            a->tokens = v;
            v[a->ntokens].tok = strndup(p, n);
            if (!v[a->ntokens].tok)
                goto nomem;
            v[a->ntokens].len = n;
            v[a->ntokens].role = role;
            a->ntokens++;
        }
        p += end ? (size_t)(end - p) + 1 : strlen(p);
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static int parse_cidr(const char *s, size_t n, struct server_cidr *c)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(c, 0, sizeof(*c));
    unsigned max;
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    c->prefix = max;
    if (slash) {
        char *e;
        unsigned long v = strtoul(slash + 1, &e, 10);
        if (!isdigit((unsigned char)slash[1]) || *e || v > max)
            return -1;
        c->prefix = (unsigned)v;
    }
    return 0;
}

static int add_proxies(struct server_access *a, const char *list, char *err,
                       size_t errlen)
{
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && isspace((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n > 0 && isspace((unsigned char)p[n - 1]))
            n--;
        if (n > 0) {
            struct server_cidr c;
            if (parse_cidr(p, n, &c) < 0) {
                snprintf(err, errlen,
                         "--trusted-proxies: '%.*s' is not an address or "
                         "CIDR",
                         (int)(n > 64 ? 64 : n), p);
                return -1;
            }
            struct server_cidr *v =
                realloc(a->proxies, (a->nproxies + 1) * sizeof(*v));
            if (!v) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            a->proxies = v;
            v[a->nproxies++] = c;
        }
        p += end ? (size_t)(end - p) + 1 : strlen(p);
    }
    return 0;
}

int server_access_init(struct server_access *a, const struct server_config *cfg,
                       char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    if (add_tokens(a, cfg->read_tokens, API_ROLE_READ, "read-tokens", err,
                   errlen) < 0 ||
        add_tokens(a, cfg->write_tokens, API_ROLE_WRITE, "write-tokens", err,
                   errlen) < 0 ||
        add_tokens(a, cfg->admin_tokens, API_ROLE_ADMIN, "admin-tokens", err,
                   errlen) < 0 ||
        add_proxies(a, cfg->trusted_proxies, err, errlen) < 0) {
        server_access_free(a);
        return -1;
    }
    return 0;
}

void server_access_free(struct server_access *a)
{
    for (size_t i = 0; i < a->ntokens; i++)
        free(a->tokens[i].tok);
    free(a->tokens);
    free(a->proxies);
    memset(a, 0, sizeof(*a));
}

int server_access_auth_on(const struct server_access *a)
{
    return a->ntokens > 0;
}

enum api_role server_access_role(const struct server_access *a, const char *tok,
                                 size_t len)
{
    unsigned role = API_ROLE_NONE;
    for (size_t i = 0; i < a->ntokens; i++) { /* Z1 */
        unsigned eq = (unsigned)api_token_equal(tok, len, a->tokens[i].tok,
                                                a->tokens[i].len);
        unsigned mask = 0u - (eq & 1u);
        unsigned r = (unsigned)a->tokens[i].role;
        unsigned better = 0u - (unsigned)(r > role);
        role = (role & ~(mask & better)) | (r & mask & better);
    }
    return (enum api_role)role;
}

static int cidr_match(const struct server_cidr *c, int family,
                      const unsigned char *addr)
{
    if (c->family != family)
        return 0;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char m = (unsigned char)(0xffu << (8 - rest));
    return (c->addr[full] & m) == (addr[full] & m);
}

int server_addr_key(const struct sockaddr *sa, unsigned char out[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
               4);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 =
            &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(out, a6->s6_addr + 12, 4);
            return AF_INET;
        }
        memcpy(out, a6->s6_addr, 16);
        return AF_INET6;
    }
    return -1;
}

int server_access_trusted_addr(const struct server_access *a, int family,
                               const unsigned char *addr)
{
    for (size_t i = 0; i < a->nproxies; i++)
        if (cidr_match(&a->proxies[i], family, addr))
            return 1;
    return 0;
}

int server_access_trusted(const struct server_access *a,
                          const struct sockaddr *peer)
{
    unsigned char b[16];
    int fam = peer ? server_addr_key(peer, b) : -1;
    return fam > 0 && server_access_trusted_addr(a, fam, b);
}

static void format_peer(const struct sockaddr *peer, char *out, size_t cap)
{
    unsigned char b[16];
    int fam = peer ? server_addr_key(peer, b) : -1;
    if (fam < 0 || !inet_ntop(fam, b, out, (socklen_t)cap))
        snprintf(out, cap, "-");
}

void server_access_client(const struct server_access *a,
                          const struct sockaddr *peer, const char *xff,
                          char *out, size_t cap)
{
    format_peer(peer, out, cap);
    if (!xff || !server_access_trusted(a, peer)) /* Z2 */
        return;
    /* Right to left: skip trusted proxies, take the first other one. */
    const char *end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end;
        while (start > xff && start[-1] != ',')
            start--;
        const char *s = start, *e = end;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        char buf[INET6_ADDRSTRLEN];
        unsigned char b[16];
        size_t n = (size_t)(e - s);
        if (n == 0 || n >= sizeof(buf))
            return; /* garbage: keep what we have */
        memcpy(buf, s, n);
        buf[n] = '\0';
        int fam = inet_pton(AF_INET, buf, b) == 1    ? AF_INET
                  : inet_pton(AF_INET6, buf, b) == 1 ? AF_INET6
                                                     : -1;
        if (fam < 0)
            return;
        snprintf(out, cap, "%s", buf);
        if (!server_access_trusted_addr(a, fam, b))
            return;
        end = start > xff ? start - 1 : xff;
    }
}
