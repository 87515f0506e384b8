/*
 * util.c - status codes, CRC32C, ETags and little-endian helpers shared by
 * the store's files.  No state; thread-safe.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <isa-l/crc.h>

#include "store.h"
#include "store_int.h"

const char *store_strerror(int rc)
{
    if (rc == 0)
        return "ok";
    switch (rc) {
#define STORE_ERR_MSG(name, n, msg)                                            \
    case STORE_E_##name:                                                       \
        return msg;
        STORE_ERRORS(STORE_ERR_MSG)
#undef STORE_ERR_MSG
    default:
        break;
    }
    if (rc < 0 && rc > -4096)
        return strerror(-rc);
    return "unknown error";
}

const char *store_errname(int rc)
{
    if (rc == 0)
        return "ok";
    switch (rc) {
#define STORE_ERR_NAME(name, n, msg)                                           \
    case STORE_E_##name:                                                       \
        return #name;
        STORE_ERRORS(STORE_ERR_NAME)
#undef STORE_ERR_NAME
    default:
        break;
    }
    if (rc < 0 && rc > -4096) {
        const char *n = strerrorname_np(-rc);
        return n ? n : "errno";
    }
    return "unknown";
}

const char *store_outcome_name(enum store_outcome o)
{
    static const char *const names[] = {
        [STORE_OUT_NONE] = "none",
        [STORE_OUT_CREATED] = "created",
        [STORE_OUT_REPLACED] = "replaced",
        [STORE_OUT_DELETED] = "deleted",
        [STORE_OUT_NOT_FOUND] = "not_found",
        [STORE_OUT_PRECONDITION_FAILED] = "precondition_failed",
        [STORE_OUT_NO_SPACE] = "no_space",
        [STORE_OUT_OVERLOADED] = "overloaded",
        [STORE_OUT_STORE_FAILED] = "store_failed",
    };
    if ((unsigned)o < sizeof(names) / sizeof(names[0]) && names[o])
        return names[o];
    return "unknown";
}

uint32_t store_crc32c(const void *buf, size_t len)
{
    return store_crc32c_cont(0, buf, len);
}

uint32_t store_crc32c_cont(uint32_t crc, const void *buf, size_t len)
{
    crc = ~crc;
    const unsigned char *p = buf;
    /* crc32_iscsi takes an int length: feed it in bounded pieces. */
    while (len > 0) {
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        crc = crc32_iscsi((unsigned char *)p, n, crc);
        p += n;
        len -= (size_t)n;
    }
    return ~crc;
}

int store_etag(uint64_t version, char *buf, size_t len)
{
    int n = snprintf(buf, len, "\"%" PRIu64 "-%" PRIu64 "\"",
                     store_version_generation(version),
                     store_version_counter(version));
    return (n < 0 || (size_t)n >= len) ? STORE_E_INVALID : n;
}

void store_uuid_format(const uint8_t u[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[u[i] >> 4];
        out[j++] = hex[u[i] & 15];
    }
    out[j] = 0;
}
