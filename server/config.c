/*
 * config.c - the configuration table and its parser.
 *
 * Every option is one row: name, kind, default, bounds, help.  The same
 * row parses --name=value / --name value, the environment variable
 * BLOBD_<NAME> (upper case, dashes as underscores), checks bounds, prints
 * --help and prints the configuration reference of docs/operations.md
 * (--help-markdown), so they can never disagree.
 *
 * Invariants:
 *  C1. Every field of struct server_config is set from its default before
 *      the environment and argv are read; a bad value anywhere is an error
 *      naming where it came from, never silently replaced.
 *  C2. Numbers are decimal digits only, within the row's bounds.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum opt_kind {
    OPT_STRING,
    OPT_LIST,
    OPT_UINT,
    OPT_BOOL,
    OPT_ENUM,
    OPT_LISTEN
};

struct opt {
    const char *name;
    enum opt_kind kind;
    size_t off;
    const char *def;
    unsigned long min, max;     /* OPT_UINT */
    const char *const *choices; /* OPT_ENUM: NULL-terminated */
    const char *help;
};

static const char *const backend_names[] = {"auto", "pread", "io_uring", NULL};
static const char *const direct_names[] = {"auto", "on", "off", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          NULL};

#define OFF(f) offsetof(struct server_config, f)

static const struct opt opts[] = {
    {"listen", OPT_LISTEN, OFF(listen), "127.0.0.1:8080", 0, 0, NULL,
     "address:port to listen on ([v6]:port for IPv6; port 0 picks a free "
     "one); a socket passed by systemd (LISTEN_FDS) wins"},
    {"data-dir", OPT_STRING, OFF(data_dir), "./data", 0, 0, NULL,
     "the store's directory (created 0700 if missing)"},
    {"http-threads", OPT_UINT, OFF(http_threads), "0", 0, 64, NULL,
     "HTTP threads; 0 = one per CPU the process may run on"},
    {"max-connections", OPT_UINT, OFF(max_connections), "4096", 1, 1000000,
     NULL,
     "open connections at most (the file descriptor limit is raised to "
     "fit, or this is lowered with a warning)"},
    {"connection-memory", OPT_UINT, OFF(conn_memory_kib), "32", 32, 1024, NULL,
     "KiB of buffer per connection for its request line, headers and body "
     "reads (a larger one reads an upload in fewer recv calls); outside the "
     "memory budget: --max-connections times this at most"},
    {"max-connections-per-client", OPT_UINT, OFF(max_per_client), "128", 0,
     1000000, NULL,
     "open connections from one address at most; 0 = no limit; trusted "
     "proxies are exempt"},
    {"connection-timeout", OPT_UINT, OFF(connection_timeout), "30", 1, 3600,
     NULL, "seconds a connection may stay silent in the middle of a request"},
    {"header-timeout", OPT_UINT, OFF(header_timeout), "10", 1, 3600, NULL,
     "seconds from a connection's start, or its previous answer, to the end "
     "of a request's headers, however slowly they trickle; also how long an "
     "idle keep-alive connection is kept"},
    {"flush-interval-ms", OPT_UINT, OFF(flush_interval_ms), "1000", 0, 3600000,
     NULL,
     "flush acknowledged changes this often; 0 = only on request or "
     "pressure"},
    {"sync-writes", OPT_BOOL, OFF(sync_writes), "false", 0, 0, NULL,
     "answer every write only once it is durable (as ?fsync=true)"},
    {"backend", OPT_ENUM, OFF(backend), "auto", 0, 0, backend_names,
     "I/O backend: auto (io_uring, else pread), pread, io_uring"},
    {"direct", OPT_ENUM, OFF(direct), "auto", 0, 0, direct_names,
     "O_DIRECT on the data file: auto, on (required), off"},
    {"read-only", OPT_BOOL, OFF(read_only), "false", 0, 0, NULL,
     "open the store read-only: writes answer 503"},
    {"shutdown-timeout", OPT_UINT, OFF(shutdown_timeout), "8", 0, 3600, NULL,
     "seconds to drain requests at shutdown"},
    {"queue-max", OPT_UINT, OFF(queue_max), "4096", 1, 1048576, NULL,
     "queued writes, deletes and flushes at most; past it 503"},
    {"job-timeout-ms", OPT_UINT, OFF(job_timeout_ms), "30000", 100, 3600000,
     NULL, "a queued write waiting longer is answered 503"},
    {"log-level", OPT_ENUM, OFF(log_level), "info", 0, 0, level_names,
     "error, warn, info or debug"},
    {"access-log", OPT_BOOL, OFF(access_log), "false", 0, 0, NULL,
     "log one line per request with the client address"},
    {"trusted-proxies", OPT_LIST, OFF(trusted_proxies), "", 0, 0, NULL,
     "comma-separated addresses or CIDRs whose X-Forwarded-For is "
     "believed"},
    {"read-tokens", OPT_LIST, OFF(read_tokens), "", 0, 0, NULL,
     "comma-separated bearer tokens that may read (GET, HEAD, listings, "
     "/admin/stats, /metrics); with any token set, requests need one "
     "(prefer the environment: argv is visible to other users)"},
    {"write-tokens", OPT_LIST, OFF(write_tokens), "", 0, 0, NULL,
     "bearer tokens that may also write (PUT, POST, DELETE, /flush)"},
    {"admin-tokens", OPT_LIST, OFF(admin_tokens), "", 0, 0, NULL,
     "bearer tokens that may do everything (/admin/compact, /admin/hold)"},
    {"cache-size", OPT_UINT, OFF(cache_mib), "256", 0, 1048576, NULL,
     "MiB of verified blobs kept in memory for GETs; 0 turns the cache off"},
    {"memory-budget", OPT_UINT, OFF(memory_mib), "1024", 0, 1048576, NULL,
     "MiB for upload and read frames, response buffers and the cache "
     "together; past it requests get 503 over_budget; 0 = no limit"},
    {"hold-timeout", OPT_UINT, OFF(hold_timeout), "600", 1, 86400, NULL,
     "seconds a hold (POST /admin/hold) lasts unless renewed"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

int server_config_split_listen(const char *s, char *host, size_t hostlen,
                               unsigned *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5)
        return -1;
    unsigned long v = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (unsigned)v;
    return 0;
}

/* Set one option from a string; 0 or -1 with err filled. */
static int opt_set(const struct opt *o, struct server_config *cfg,
                   const char *v, const char *from, char *err, size_t errlen)
{
    char *field = (char *)cfg + o->off;
    switch (o->kind) {
    case OPT_LISTEN: {
        char host[256];
        unsigned port;
        if (server_config_split_listen(v, host, sizeof(host), &port) < 0) {
            snprintf(err, errlen,
                     "%s: '%s' is not an address:port (e.g. 127.0.0.1:8080)",
                     from, v);
            return -1;
        }
    } /* fall through */
    case OPT_LIST:
        if (strlen(v) >= CONFIG_STR_MAX) {
            snprintf(err, errlen, "%s: the value is too long", from);
            return -1;
        }
        strcpy(field, v);
        return 0;
    case OPT_STRING:
        if (strlen(v) >= CONFIG_STR_MAX || !*v) {
            snprintf(err, errlen, "%s: the value is %s", from,
                     *v ? "too long" : "empty");
            return -1;
        }
        strcpy(field, v);
        return 0;
    case OPT_UINT: {
        unsigned long n = 0;
        const char *p = v;
        if (!*p)
            goto bad_num;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p) || n > 100000000ul) /* C2 */
                goto bad_num;
            n = n * 10 + (unsigned long)(*p - '0');
        }
        if (n < o->min || n > o->max)
            goto bad_num;
        *(unsigned *)(void *)field = (unsigned)n;
        return 0;
    bad_num:
        snprintf(err, errlen, "%s: '%s' is not a number in %lu..%lu", from, v,
                 o->min, o->max);
        return -1;
    }
    case OPT_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
            *(int *)(void *)field = 1;
            return 0;
        }
        if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
            *(int *)(void *)field = 0;
            return 0;
        }
        snprintf(err, errlen, "%s: '%s' is not true or false", from, v);
        return -1;
    case OPT_ENUM:
        for (unsigned i = 0; o->choices[i]; i++) {
            if (!strcmp(v, o->choices[i])) {
                *(unsigned *)(void *)field = i;
                return 0;
            }
        }
        snprintf(err, errlen, "%s: '%s' is not one of", from, v);
        for (unsigned i = 0; o->choices[i]; i++) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, "%s %s", i ? "," : "", o->choices[i]);
        }
        return -1;
    }
    return -1;
}

static void env_name(const struct opt *o, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "BLOBD_");
    for (const char *p = o->name; *p && n + 1 < cap; p++)
        buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n] = '\0';
}

static const struct opt *opt_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

void server_config_usage(FILE *out)
{
    fprintf(out, "usage: blobd [options]\n\n"
                 "Every option can also be set with the environment variable "
                 "shown;\nflags win over the environment.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        char env[64], arg[96];
        env_name(o, env, sizeof(env));
        if (o->kind == OPT_BOOL)
            snprintf(arg, sizeof(arg), "--%s", o->name);
        else
            snprintf(arg, sizeof(arg), "--%s=VALUE", o->name);
        fprintf(out, "  %-28s %s\n  %-28s (default %s; env %s)\n", arg, o->help,
                "", *o->def ? o->def : "none", env);
    }
    fprintf(out, "  %-28s %s\n  %-28s %s\n  %-28s %s\n", "--help",
            "print this and exit", "--help-markdown",
            "print the options as the Markdown table of docs/operations.md "
            "and exit",
            "--version", "print the version and exit");
}

/* Markdown table cells: a '|' in the text would end the cell early. */
static void md_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

/* The values a row accepts, as parsed by opt_set (C2). */
static void md_values(FILE *out, const struct opt *o)
{
    switch (o->kind) {
    case OPT_LISTEN:
        fputs("`host:port` or `[v6]:port`", out);
        break;
    case OPT_STRING:
        fprintf(out, "non-empty, at most %d bytes", CONFIG_STR_MAX - 1);
        break;
    case OPT_LIST:
        fprintf(out, "comma-separated, at most %d bytes; empty = none",
                CONFIG_STR_MAX - 1);
        break;
    case OPT_UINT:
        fprintf(out, "`%lu`..`%lu`", o->min, o->max);
        break;
    case OPT_BOOL:
        fputs("`true`, `false` (or `1`/`0`, `yes`/`no`); the flag alone is "
              "`true`",
              out);
        break;
    case OPT_ENUM:
        for (unsigned i = 0; o->choices[i]; i++)
            fprintf(out, "%s`%s`", i ? ", " : "", o->choices[i]);
        break;
    }
}

void server_config_markdown(FILE *out)
{
    fputs(SERVER_CONFIG_MD_BEGIN
          "\n"
          "<!-- generated from the option table of server/config.c by "
          "scripts/gen-docs.sh (blobd --help-markdown): edit the table, not "
          "this block -->\n\n"
          "| flag | environment | default | values | meaning |\n"
          "|---|---|---|---|---|\n",
          out);
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        char env[64];
        env_name(o, env, sizeof(env));
        fprintf(out, "| `--%s` | `%s` | ", o->name, env);
        if (*o->def)
            fprintf(out, "`%s`", o->def);
        else
            fputs("none", out);
        fputs(" | ", out);
        md_values(out, o);
        fputs(" | ", out);
        md_text(out, o->help);
        fputs(" |\n", out);
    }
    fputs("\n" SERVER_CONFIG_MD_END "\n", out);
}

enum config_result server_config_load(struct server_config *cfg, int argc,
                                      char **argv, char *err, size_t errlen)
{
    char from[128];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++) { /* C1 */
        snprintf(from, sizeof(from), "default of --%s", opts[i].name);
        if (opt_set(&opts[i], cfg, opts[i].def, from, err, errlen) < 0)
            return CONFIG_ERROR;
    }
    for (size_t i = 0; i < NOPTS; i++) {
        char env[64];
        env_name(&opts[i], env, sizeof(env));
        const char *v = getenv(env);
        if (!v)
            continue;
        snprintf(from, sizeof(from), "environment %s", env);
        if (opt_set(&opts[i], cfg, v, from, err, errlen) < 0)
            return CONFIG_ERROR;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            server_config_usage(stdout);
            return CONFIG_HELP;
        }
        if (!strcmp(a, "--help-markdown")) {
            server_config_markdown(stdout);
            return CONFIG_HELP;
        }
        if (!strcmp(a, "--version")) {
            printf("blobd %s\n", BLOBD_VERSION);
            return CONFIG_VERSION;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = opt_find(name, nlen);
        if (!o) {
            snprintf(err, errlen, "unknown option '%.*s' (see --help)",
                     (int)(nlen + 2), a);
            return CONFIG_ERROR;
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (o->kind == OPT_BOOL)
            v = "true";
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            snprintf(err, errlen, "--%s needs a value", o->name);
            return CONFIG_ERROR;
        }
        snprintf(from, sizeof(from), "--%s", o->name);
        if (opt_set(o, cfg, v, from, err, errlen) < 0)
            return CONFIG_ERROR;
    }
    return CONFIG_OK;
}
