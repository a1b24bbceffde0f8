/* cmd_reindex.c -- `carepass reindex`: rebuild every derived Redis key from the register alone, by
 * replaying every entry (signature checked) through the projection the signer runs live
 * (common/projection.c, PROJ_REPLAY). */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "carepass/v1/internal.pb-c.h"
#include "carepass/v1/register.pb-c.h"
#include "cp_catalogue.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_dates.h"
#include "cp_projection.h"
#include "cp_redis.h"
#include "cp_regkeys.h"
#include "cp_register.h"

#define REINDEX_PIPELINE 2048   /* commands per Redis pipeline */

/* What the walk needs. */
typedef struct {
  cp_redis_t *r;                 // Redis
  cp_redis_pipe_t *pipe;         // commands queued for Redis
  proj_t *proj;                  // the projection (replay)
  cp_subject_store_t *subjects;  // opens format-2 entries (NULL when there is no store)
  reg_log_t *log;                // the register (walked)
  reg_log_t *look;               // a second handle for look-ups during the walk (its tile cache is its own)
  cat_catalogue_t *cat;          // catalogue (Care Certificate standards -> award)
  reg_keyspan_t *spans;          // key history (signatures checked while walking)
  size_t nspans;                 // spans in use
  bool legacy;                   // no genesis key entry: the register's vkey signs everything
  uint64_t entries;              // entries indexed
  uint64_t records, revocations, awards, keys;   // by type
  uint64_t bad;                  // entries skipped (undecodable or bad signature)
  char err[CP_ERRLEN];           // first error
} rx_t;

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass reindex [--shard N]\n\n"
          "Rebuild every derived Redis key from the register ($CAREPASS_REGISTER_DIR)\n"
          "alone, e.g. after Redis lost its data: for each entry (signature checked with\n"
          "the key valid at its index) the event state cp:ev:{provider:event} (state\n"
          "committed, index, and the intake digest so that a resent event gets the same\n"
          "answer), the worker's entry list cp:w:{pseudonym}:entries, the revoked_by,\n"
          "revoked_index and revoked_at markers of revoked events, the Care Certificate\n"
          "progress set cp:w:{..}:cc,\n"
          "the awards set cp:w:{..}:awards and generations cp:w:{..}:award_gen (with\n"
          "the id of the last keyed award, <code>:last; no secret is needed), the\n"
          "late award withdrawals cp:award_wd (an award followed by a revocation of a\n"
          "standard it requires but not by its own revocation: verify then sends it),\n"
          "and finally cp:reg:{shard}:indexed.\n"
          "Rejected events are not in the register and are not restored. Safe to re-run.\n"
          "It is the projection the signer runs after each commit (common/projection.c),\n"
          "replayed over the whole log.\n\n"
          "  --shard N   the register shard (default 0)\n");
}

static int flush(rx_t *x) {
  if (cp_redis_pipe_count(x->pipe) == 0) return 0;
  int rc = cp_redis_pipe_exec(x->pipe, x->r);
  if (rc != 0)
    cp_err(x->err, sizeof x->err, "Redis: %s", cp_redis_errstr(x->r));
  else
    rc = cp_redis_pipe_check(x->pipe, "Redis", x->err, sizeof x->err);
  cp_redis_pipe_reset(x->pipe);
  return rc;
}

static int walk_fn(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  rx_t *x = arg;
  char err[CP_ERRLEN];
  Carepass__V1__PassportEntry *pe = NULL, *target = NULL;
  if (!x->legacy && reg_keys_feed(&x->spans, &x->nspans, index, entry, len, err, sizeof err) != 0) {
    cp_err(x->err, sizeof x->err, "key history: %s", err);
    return -1;
  }
  if (index == 0 && x->nspans == 0 && !x->legacy) {
    /* a register from before key history: its one vkey signs everything */
    char vk[REG_VKEY_MAX];
    snprintf(err, sizeof err, "%s/vkey", reg_dir(x->log));
    uint8_t *b = NULL;
    size_t bl = 0;
    if (cp_read_file(err, REG_VKEY_MAX, &b, &bl, x->err, sizeof x->err) != 0) return -1;
    char *nl = strpbrk((char *)b, "\r\n");
    if (nl) *nl = '\0';
    snprintf(vk, sizeof vk, "%s", (char *)b);
    free(b);
    if (reg_keys_from_vkey(vk, &x->spans, &x->nspans, x->err, sizeof x->err) != 0) return -1;
    x->legacy = true;
  }
  if (reg_entry_check(x->spans, x->nspans, index, entry, len, &pe, NULL, err, sizeof err) != 0) {
    fprintf(stderr, "carepass reindex: skipping entry %" PRIu64 ": %s\n", index, err);
    x->bad++;
    return 0;
  }
  x->entries++;
  switch (pe->entry_type) {
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY: x->keys++; break;
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD: x->records++; break;
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD: x->awards++; break;
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION: x->revocations++; break;
    default: break;
  }
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION && pe->revokes_index < index) {
    uint8_t *tb = NULL;
    size_t tl = 0;
    if (reg_read_entry(x->look, pe->revokes_index, &tb, &tl, err, sizeof err) != 0 ||
        reg_entry_check(x->spans, x->nspans, pe->revokes_index, tb, tl, &target, NULL, err, sizeof err) != 0)
      target = NULL;
    free(tb);
  }
  proj_entry(x->proj, x->pipe, index, pe, target);
  if (target != NULL) protobuf_c_message_free_unpacked(&target->base, NULL);
  protobuf_c_message_free_unpacked(&pe->base, NULL);
  if (cp_redis_pipe_count(x->pipe) >= REINDEX_PIPELINE && flush(x) != 0) return -1;
  return 0;
}

int cmd_reindex(int argc, char **argv) {
  long shard = 0;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--shard") == 0 && i + 1 < argc) {
      if (cli_parse_long(argv[++i], 0, 1023, &shard) != 0) {
        cli_error("reindex", "--shard must be 0..1023");
        return CLI_EXIT_USAGE;
      }
    } else {
      cli_error("reindex", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (cli_config("reindex") != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN];
  rx_t x;
  memset(&x, 0, sizeof x);
  int rc = CLI_EXIT_FAIL;
  const char *host = cp_cfg_str(CP_OPT_REDIS_HOST);
  int port = (int)cp_cfg_int(CP_OPT_REDIS_PORT);
  if (cat_load(cp_cfg_str(CP_OPT_CATALOGUE), &x.cat, err, sizeof err) != 0) {
    cli_error("reindex", "catalogue: %s", err);
    goto out;
  }
  if (reg_open(cp_cfg_str(CP_OPT_REGISTER_DIR), NULL, &x.log, err, sizeof err) != 0) {
    cli_error("reindex", "register: %s", err);
    goto out;
  }
  if (reg_open(cp_cfg_str(CP_OPT_REGISTER_DIR), NULL, &x.look, err, sizeof err) != 0) {
    cli_error("reindex", "register: %s", err);
    goto out;
  }
  x.r = cp_redis_new(host, port, (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, sizeof err);
  if (x.r == NULL) {
    cli_error("reindex", "Redis at %s:%d: %s", host, port, err);
    goto out;
  }
  uint64_t size = reg_size(x.log);
  x.pipe = cp_redis_pipe_new();
  x.proj = proj_new(PROJ_REPLAY, x.cat, cp_today());
  /* format-2 entries open through the subject key store, when there is one (read, never made) */
  if (cli_subjects_open("reindex", 0, &x.subjects) != 0) goto out;
  proj_set_subjects(x.proj, x.subjects);
  if (size > 0 && reg_foreach_entry(x.log, 0, size, walk_fn, &x, err, sizeof err) != 0) {
    (void)flush(&x);
    cli_error("reindex", "%s", x.err[0] ? x.err : err);
    goto out;
  }
  if (flush(&x) != 0) {
    cli_error("reindex", "%s", x.err);
    goto out;
  }
  /* last: the indexed marker, so a signer starting now replays nothing twice */
  proj_indexed(x.pipe, (int)shard, size);
  if (flush(&x) != 0) {
    cli_error("reindex", "%s", x.err);
    goto out;
  }
  printf("reindexed %" PRIu64 " entries of %s (%" PRIu64 " records, %" PRIu64 " revocations, %" PRIu64
         " derived awards, %" PRIu64 " key entries); %" PRIu64 " skipped; cp:reg:{%ld}:indexed = %" PRIu64 "\n",
         x.entries, cp_cfg_str(CP_OPT_REGISTER_DIR), x.records, x.revocations, x.awards, x.keys, x.bad, shard, size);
  rc = x.bad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
  free(x.spans);
  proj_destroy(&x.proj);
  cp_subject_store_close(&x.subjects);
  cp_redis_pipe_destroy(&x.pipe);
  cp_redis_destroy(&x.r);
  reg_close(&x.log);
  reg_close(&x.look);
  cat_destroy(&x.cat);
  return rc;
}
