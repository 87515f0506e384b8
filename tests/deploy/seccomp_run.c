/*
 * seccomp_run.c - run a command under a Docker/OCI seccomp profile
 * (deploy/seccomp/blobd.json), loaded the way a container runtime loads
 * it: the default action, one rule per allowed system call name, then
 * exec.  The filter is inherited by the command and every thread it
 * starts.
 *
 *   usage: seccomp_run PROFILE COMMAND [ARG...]
 *
 * What it understands, and why it refuses the rest:
 *  1. defaultAction SCMP_ACT_ERRNO (with defaultErrnoRet, EPERM without
 *     it, as Docker), SCMP_ACT_ALLOW, SCMP_ACT_KILL or SCMP_ACT_LOG.
 *  2. Entries {names, action}: SCMP_ACT_ALLOW, or SCMP_ACT_ERRNO with
 *     errnoRet.  An entry with args, includes or excludes is refused: a
 *     loader that skipped those conditions would test a different filter
 *     from the one the runtime installs.
 *  3. The filter covers the native architecture only, which the profile
 *     must name (archMap or architectures): a system call made through
 *     another ABI is killed, as the runtime's filter does for an
 *     architecture the profile does not list.
 *  4. A name libseccomp does not know at all is an error (a typo in the
 *     profile allows nothing); a known name this architecture lacks is
 *     skipped, as runc skips it.
 *
 * Exit status: 126 when the profile is unreadable or wrong or the filter
 * cannot be loaded (one line on stderr saying which), 127 when the
 * command cannot be executed; otherwise the command's own.
 */
#include <ctype.h>
#include <errno.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define EXIT_BAD_PROFILE 126
#define EXIT_NO_EXEC 127
/* A profile is a few KiB; anything far larger is not one. */
#define PROFILE_MAX (1024 * 1024)

static const char *profile_path;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "seccomp_run: %s: ", profile_path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The whole file as a NUL-terminated string (caller frees), or NULL. */
static char *read_file(const char *path)
{
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail("cannot open: %s", strerror(errno));
        return NULL;
    }
    buf = malloc(PROFILE_MAX + 1);
    if (!buf) {
        fail("out of memory");
        goto out;
    }
    size_t n = fread(buf, 1, PROFILE_MAX + 1, f);
    if (ferror(f) || n > PROFILE_MAX) {
        fail("%s", ferror(f) ? strerror(errno) : "larger than 1 MiB");
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
out:
    fclose(f);
    return buf;
}

/* "SCMP_ARCH_X86_64" -> the libseccomp token, or 0. */
static uint32_t arch_token(const char *name)
{
    static const char prefix[] = "SCMP_ARCH_";
    char low[32];
    size_t i;
    if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    name += sizeof(prefix) - 1;
    for (i = 0; name[i] && i + 1 < sizeof(low); i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[i] = '\0';
    return seccomp_arch_resolve_name(low);
}

/* 1 if the profile names the native architecture (3), 0 if not. */
static int has_native_arch(const cJSON *prof)
{
    uint32_t native = seccomp_arch_native();
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(prof, "archMap"))
    {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "architecture");
        if (cJSON_IsString(a) && arch_token(a->valuestring) == native)
            return 1;
    }
    cJSON_ArrayForEach(e,
                       cJSON_GetObjectItemCaseSensitive(prof, "architectures"))
    {
        if (cJSON_IsString(e) && arch_token(e->valuestring) == native)
            return 1;
    }
    return 0;
}

/* The errno of an SCMP_ACT_ERRNO: the item `key` of obj, else EPERM. */
static int errno_of(const cJSON *obj, const char *key, int *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *err = EPERM;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 4095) {
        fail("%s is not an errno number", key);
        return -1;
    }
    *err = v->valueint;
    return 0;
}

/* The libseccomp action for the action string s (1, 2); -1 if refused. */
static int parse_action(const char *s, const cJSON *obj, const char *errkey,
                        int is_default, uint32_t *act)
{
    int e;
    if (!strcmp(s, "SCMP_ACT_ALLOW")) {
        *act = SCMP_ACT_ALLOW;
        return 0;
    }
    if (!strcmp(s, "SCMP_ACT_ERRNO")) {
        if (errno_of(obj, errkey, &e) < 0)
            return -1;
        *act = SCMP_ACT_ERRNO((uint32_t)e);
        return 0;
    }
    if (is_default && !strcmp(s, "SCMP_ACT_KILL")) {
        *act = SCMP_ACT_KILL;
        return 0;
    }
    if (is_default && !strcmp(s, "SCMP_ACT_LOG")) {
        *act = SCMP_ACT_LOG;
        return 0;
    }
    fail("action %s is not supported by this loader", s);
    return -1;
}

/* Add the rules of one "syscalls" entry (2, 4); 0 or -1. */
static int add_entry(scmp_filter_ctx ctx, const cJSON *ent, size_t idx,
                     unsigned *added)
{
    static const char *const conditions[] = {"args", "includes", "excludes"};
    for (size_t i = 0; i < sizeof(conditions) / sizeof(conditions[0]); i++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(ent, conditions[i]);
        /* Docker writes "args": null, or an empty object, for none. */
        if (c && !cJSON_IsNull(c) && cJSON_GetArraySize(c) > 0) {
            fail("syscalls[%zu] has %s: conditional entries are not "
                 "supported by this loader",
                 idx, conditions[i]);
            return -1;
        }
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(ent, "action");
    if (!cJSON_IsString(act)) {
        fail("syscalls[%zu] has no action", idx);
        return -1;
    }
    uint32_t action;
    if (parse_action(act->valuestring, ent, "errnoRet", 0, &action) < 0)
        return -1;
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(ent, "names");
    if (!cJSON_IsArray(names) || cJSON_GetArraySize(names) == 0) {
        fail("syscalls[%zu] has no names", idx);
        return -1;
    }
    const cJSON *n;
    cJSON_ArrayForEach(n, names)
    {
        if (!cJSON_IsString(n)) {
            fail("syscalls[%zu]: a name that is not a string", idx);
            return -1;
        }
        int nr = seccomp_syscall_resolve_name(n->valuestring);
        if (nr == __NR_SCMP_ERROR) {
            fail("syscalls[%zu]: '%s' is not a system call", idx,
                 n->valuestring);
            return -1;
        }
        if (nr < 0)
            continue; /* not on this architecture (4) */
        int rc = seccomp_rule_add(ctx, action, nr, 0);
        if (rc < 0) {
            fail("seccomp_rule_add(%s): %s", n->valuestring, strerror(-rc));
            return -1;
        }
        (*added)++;
    }
    return 0;
}

/* Build and load the filter of prof; 0 or -1 (reported). */
static int load_profile(const cJSON *prof)
{
    int rc = -1;
    scmp_filter_ctx ctx = NULL;
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(prof, "defaultAction");
    uint32_t def_action;
    if (!cJSON_IsString(def)) {
        fail("no defaultAction");
        goto out;
    }
    if (parse_action(def->valuestring, prof, "defaultErrnoRet", 1,
                     &def_action) < 0)
        goto out;
    if (!has_native_arch(prof)) {
        fail("no archMap or architectures entry for this machine's "
             "architecture");
        goto out;
    }
    ctx = seccomp_init(def_action);
    if (!ctx) {
        fail("seccomp_init failed");
        goto out;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(prof, "syscalls");
    if (!cJSON_IsArray(list)) {
        fail("no syscalls list");
        goto out;
    }
    unsigned added = 0;
    size_t idx = 0;
    const cJSON *ent;
    cJSON_ArrayForEach(ent, list)
    {
        if (add_entry(ctx, ent, idx++, &added) < 0)
            goto out;
    }
    int lrc = seccomp_load(ctx);
    if (lrc < 0) {
        fail("seccomp_load: %s", strerror(-lrc));
        goto out;
    }
    fprintf(stderr, "seccomp_run: %s loaded: %u system calls allowed\n",
            profile_path, added);
    rc = 0;
out:
    if (ctx)
        seccomp_release(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: seccomp_run PROFILE COMMAND [ARG...]\n");
        return EXIT_BAD_PROFILE;
    }
    profile_path = argv[1];
    char *text = read_file(profile_path);
    if (!text)
        return EXIT_BAD_PROFILE;
    cJSON *prof = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(prof)) {
        fail("not a JSON object");
        cJSON_Delete(prof);
        return EXIT_BAD_PROFILE;
    }
    int rc = load_profile(prof);
    cJSON_Delete(prof);
    if (rc < 0)
        return EXIT_BAD_PROFILE;
    execv(argv[2], argv + 2);
    /* Refused by the profile itself (EPERM) if execve is not allowed. */
    fprintf(stderr, "seccomp_run: exec %s: %s\n", argv[2], strerror(errno));
    return EXIT_NO_EXEC;
}
