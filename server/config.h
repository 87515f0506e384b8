/*
 * config.h - the server's configuration: one table (config.c) drives the
 * command line, the environment (BLOBD_<NAME>), validation, --help and the
 * configuration reference of docs/operations.md.
 */
#ifndef BLOBD_SERVER_CONFIG_H
#define BLOBD_SERVER_CONFIG_H

#include <stdio.h>

#define CONFIG_STR_MAX 1024

struct server_config {
    char listen[CONFIG_STR_MAX]; /* host:port */
    char data_dir[CONFIG_STR_MAX];
    unsigned http_threads; /* 0 = one per CPU */
    unsigned max_connections;
    unsigned conn_memory_kib;    /* libmicrohttpd's buffer per connection */
    unsigned max_per_client;     /* 0 = no limit */
    unsigned connection_timeout; /* seconds */
    unsigned header_timeout;     /* seconds */
    unsigned flush_interval_ms;
    int sync_writes;
    unsigned backend; /* enum store_backend */
    unsigned direct;  /* enum store_direct */
    int read_only;
    unsigned shutdown_timeout; /* seconds */
    unsigned queue_max;
    unsigned job_timeout_ms;
    unsigned log_level; /* enum log_level */
    /* auth: comma-separated bearer tokens per role ("" = none) */
    char read_tokens[CONFIG_STR_MAX];
    char write_tokens[CONFIG_STR_MAX];
    char admin_tokens[CONFIG_STR_MAX];
    char trusted_proxies[CONFIG_STR_MAX]; /* comma-separated IPs / CIDRs */
    int access_log;
    unsigned hold_timeout; /* seconds */
    unsigned cache_mib;    /* frame cache; 0 = off */
    unsigned memory_mib;   /* the memory budget; 0 = no limit */
};

enum config_result {
    CONFIG_OK = 0,
    CONFIG_HELP,    /* --help or --help-markdown was printed */
    CONFIG_VERSION, /* --version was printed */
    CONFIG_ERROR    /* the message is in err */
};

/* Defaults, then the environment, then argv (later wins).  On
 * CONFIG_ERROR, err holds a message naming the flag or variable. */
enum config_result server_config_load(struct server_config *cfg, int argc,
                                      char **argv, char *err, size_t errlen);
/* The --help text, from the table. */
void server_config_usage(FILE *out);
/* The configuration reference (--help-markdown): a Markdown table of every
 * option, from the same table, between these two marker lines, exactly the
 * block that scripts/gen-docs.sh puts into docs/operations.md. */
#define SERVER_CONFIG_MD_BEGIN "<!-- config-reference:begin -->"
#define SERVER_CONFIG_MD_END "<!-- config-reference:end -->"
void server_config_markdown(FILE *out);
/* Parse "host:port" or "[v6]:port"; 0 or -1. */
int server_config_split_listen(const char *s, char *host, size_t hostlen,
                               unsigned *port);

#endif
