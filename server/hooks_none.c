/*
 * hooks_none.c - the production build has no test hooks.
 */
#include <stddef.h>

#include "server.h"

struct store_io *server_hooks_init(struct server *s)
{
    (void)s;
    return NULL;
}

void server_hooks_open_delay(void)
{
}

int server_hooks_route(struct server *s, struct MHD_Connection *c,
                       const char *url, const char *method)
{
    (void)s, (void)c, (void)url, (void)method;
    return 0;
}

void server_hooks_free(struct server *s)
{
    (void)s;
}
