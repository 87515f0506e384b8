/*
 * report.c - what a run found: a human summary followed by each finding,
 * or one JSON document whose shape docs/check.md fixes (stable keys; a
 * key is never removed or renamed, new ones may be added).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "store_int.h"

#define MIB (1024.0 * 1024.0)

const char *chk_status(const struct chk *c)
{
    if (c->fatal)
        return "error";
    if (c->in_use && !c->force)
        return "in_use";
    if (c->nerr)
        return "damaged";
    return c->nwarn ? "warning" : "ok";
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static void print_finding(const struct chk_finding *f)
{
    printf("%-7s %s: %s\n", f->sev == CHK_ERR ? "error" : "warning", f->code,
           f->message ? f->message : "");
}

void chk_report_human(const struct chk *c)
{
    char u[37] = "unknown";
    if (c->have_uuid)
        store_uuid_format(c->uuid, u);
    printf("blobd-check %s: ", c->dir);
    if (c->nerr)
        printf("DAMAGED (%" PRIu64 " %s, %" PRIu64 " %s)\n", c->nerr,
               plural(c->nerr, "error", "errors"), c->nwarn,
               plural(c->nwarn, "warning", "warnings"));
    else if (c->nwarn)
        printf("sound, %" PRIu64 " %s\n", c->nwarn,
               plural(c->nwarn, "warning", "warnings"));
    else
        printf("sound\n");
    printf("  store      uuid %s, generation %" PRIu64 "%s\n", u, c->generation,
           c->in_use ? " (in use: checked with --force)" : "");
    if (c->snap.present)
        printf("  snapshot   %s: %" PRIu64 " bytes, %" PRIu64
               " entries, last LSN %" PRIu64 ", next slot %" PRIu64 "\n",
               MF_SNAP_NAME, c->snap.bytes, c->snap.entries, c->snap.last_lsn,
               c->snap.next_slot);
    else
        printf("  snapshot   none (no compaction yet)\n");
    printf("  logs       %zu %s, %" PRIu64 " bytes, %" PRIu64 " %s, %" PRIu64
           " %s (%" PRIu64 " past the snapshot), next LSN %" PRIu64 "\n",
           c->log.nfiles, plural(c->log.nfiles, "file", "files"), c->log.bytes,
           c->log.groups, plural(c->log.groups, "group", "groups"),
           c->log.records, plural(c->log.records, "record", "records"),
           c->log.applied, c->log.next_lsn);
    if (c->data.present)
        printf("  data file  %s: %" PRIu64 " bytes (%" PRIu64
               " slots), %s%s%s%s%s\n",
               MF_DATA_NAME, c->data.bytes, c->data.slots,
               c->data.direct ? "O_DIRECT" : "buffered",
               c->data.io ? " reads via " : "", c->data.io ? c->data.io : "",
               c->data.note[0] ? "; " : "", c->data.note);
    else
        printf("  data file  %s: absent\n", MF_DATA_NAME);
    printf("  entries    %" PRIu64 " live, %.1f MiB\n", c->entries,
           (double)c->live_bytes / MIB);
    if (c->blobs_skipped)
        printf("  blobs      not checked: the manifest could not be "
               "replayed to its end\n");
    else
        printf("  blobs      %" PRIu64 " of %" PRIu64
               " checked (CRC32C), %.1f MiB read\n",
               c->blobs_checked, c->blobs_total, (double)c->bytes_read / MIB);
    for (size_t i = 0; i < c->nf; i++)
        if (c->f[i].sev == CHK_ERR)
            print_finding(&c->f[i]);
    for (size_t i = 0; i < c->nf; i++)
        if (c->f[i].sev == CHK_WARN)
            print_finding(&c->f[i]);
    if (c->nerr + c->nwarn > c->nf)
        printf("... and %" PRIu64 " more findings not listed\n",
               c->nerr + c->nwarn - c->nf);
}

/* ---- JSON ---- */

static int add_num(cJSON *o, const char *k, uint64_t v)
{
    return cJSON_AddNumberToObject(o, k, (double)v) ? 0 : -1;
}

static cJSON *finding_json(const struct chk_finding *f)
{
    cJSON *o = cJSON_CreateObject();
    char g[33];
    int bad = !o;
    bad = bad || !cJSON_AddStringToObject(o, "code", f->code);
    bad = bad ||
          !cJSON_AddStringToObject(o, "message", f->message ? f->message : "");
    if (!bad && f->file)
        bad = !cJSON_AddStringToObject(o, "file", f->file);
    if (!bad && (f->has & CHK_HAS_OFFSET))
        bad = add_num(o, "offset", f->offset) < 0;
    if (!bad && f->has_guid) {
        chk_guid_format(f->guid, g);
        bad = !cJSON_AddStringToObject(o, "guid", g);
    }
    if (!bad && f->has_other) {
        chk_guid_format(f->other_guid, g);
        bad = !cJSON_AddStringToObject(o, "other_guid", g);
    }
    if (!bad && (f->has & CHK_HAS_SLOT))
        bad = add_num(o, "slot", f->slot) < 0;
    if (!bad && (f->has & CHK_HAS_LSN))
        bad = add_num(o, "lsn", f->lsn) < 0;
    if (!bad && (f->has & CHK_HAS_BYTES))
        bad = add_num(o, "bytes", f->bytes) < 0;
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int findings_json(cJSON *root, const struct chk *c, enum chk_sev sev,
                         const char *key)
{
    cJSON *a = cJSON_AddArrayToObject(root, key);
    if (!a)
        return -1;
    for (size_t i = 0; i < c->nf; i++) {
        if (c->f[i].sev != sev)
            continue;
        cJSON *o = finding_json(&c->f[i]);
        if (!o)
            return -1;
        cJSON_AddItemToArray(a, o);
    }
    return 0;
}

static int snapshot_json(cJSON *root, const struct chk *c)
{
    cJSON *s = cJSON_AddObjectToObject(root, "snapshot");
    if (!s || !cJSON_AddBoolToObject(s, "present", c->snap.present))
        return -1;
    return add_num(s, "bytes", c->snap.bytes) |
           add_num(s, "entries", c->snap.entries) |
           add_num(s, "last_lsn", c->snap.last_lsn) |
           add_num(s, "next_slot", c->snap.next_slot) |
           add_num(s, "generation", c->snap.generation);
}

static int log_json(cJSON *root, const struct chk *c)
{
    cJSON *l = cJSON_AddObjectToObject(root, "log");
    if (!l)
        return -1;
    int rc = add_num(l, "files", c->log.nfiles) |
             add_num(l, "bytes", c->log.bytes) |
             add_num(l, "groups", c->log.groups) |
             add_num(l, "records", c->log.records) |
             add_num(l, "records_applied", c->log.applied) |
             add_num(l, "first_lsn", c->log.first_lsn) |
             add_num(l, "next_lsn", c->log.next_lsn);
    if (rc < 0)
        return -1;
    if (!c->log.torn)
        return cJSON_AddNullToObject(l, "torn_tail") ? 0 : -1;
    cJSON *t = cJSON_AddObjectToObject(l, "torn_tail");
    if (!t || !cJSON_AddStringToObject(t, "file", c->log.torn_file))
        return -1;
    return add_num(t, "offset", c->log.torn_offset) |
           add_num(t, "truncate_to", c->log.torn_end) |
           add_num(t, "bytes_dropped", c->log.torn_bytes);
}

static int data_json(cJSON *root, const struct chk *c)
{
    cJSON *d = cJSON_AddObjectToObject(root, "data_file");
    if (!d || !cJSON_AddBoolToObject(d, "present", c->data.present) ||
        !cJSON_AddBoolToObject(d, "direct", c->data.direct) ||
        !cJSON_AddStringToObject(d, "io", c->data.io ? c->data.io : "none") ||
        !cJSON_AddStringToObject(d, "note", c->data.note))
        return -1;
    return add_num(d, "bytes", c->data.bytes) |
           add_num(d, "slots", c->data.slots) |
           add_num(d, "next_slot", c->next_slot);
}

static cJSON *build(const struct chk *c)
{
    cJSON *root = cJSON_CreateObject();
    char u[37] = "";
    if (!root)
        return NULL;
    if (c->have_uuid)
        store_uuid_format(c->uuid, u);
    int bad = !cJSON_AddStringToObject(root, "status", chk_status(c)) ||
              !cJSON_AddStringToObject(root, "data_dir", c->dir) ||
              !cJSON_AddStringToObject(root, "version", BLOBD_VERSION) ||
              !cJSON_AddStringToObject(root, "message", c->msg) ||
              !cJSON_AddBoolToObject(root, "forced", c->in_use && c->force) ||
              !cJSON_AddStringToObject(root, "uuid", u);
    bad = bad || add_num(root, "generation", c->generation) < 0 ||
          add_num(root, "entries", c->entries) < 0 ||
          add_num(root, "live_bytes", c->live_bytes) < 0 ||
          !cJSON_AddBoolToObject(root, "replay_complete", c->replay_ok) ||
          add_num(root, "blobs_total", c->blobs_total) < 0 ||
          add_num(root, "blobs_checked", c->blobs_checked) < 0 ||
          add_num(root, "bytes_read", c->bytes_read) < 0;
    bad = bad || log_json(root, c) < 0 || snapshot_json(root, c) < 0 ||
          data_json(root, c) < 0;
    bad = bad || add_num(root, "warnings_total", c->nwarn) < 0 ||
          add_num(root, "errors_total", c->nerr) < 0 ||
          findings_json(root, c, CHK_WARN, "warnings") < 0 ||
          findings_json(root, c, CHK_ERR, "errors") < 0;
    if (bad) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int chk_report_json(const struct chk *c)
{
    cJSON *root = build(c);
    char *s = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!s)
        return -1;
    fputs(s, stdout);
    fputc('\n', stdout);
    cJSON_free(s);
    return 0;
}
