/* cmd_reindex.c -- `carepass reindex`: rebuild every derived Redis key from the register alone. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "carepass/v1/internal.pb-c.h"
#include "carepass/v1/register.pb-c.h"
#include "cp_catalogue.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_ingest.h"
#include "cp_keys.h"
#include "cp_redis.h"
#include "cp_regkeys.h"
#include "cp_register.h"

#define REINDEX_PIPELINE 2048   /* entries per Redis pipeline */
#define AWARDS_PER_CODE 4       /* derived awards one code may count towards */
#define REINDEX_OPERATOR "carepass-operator"   /* provider id of operator revocations (carepass revoke) */

/* Append a worker's index only once (a re-run adds nothing twice). */
static const char RPUSH_ONCE[] =
    "if redis.call('LPOS', KEYS[1], ARGV[1]) == false then return redis.call('RPUSH', KEYS[1], ARGV[1]) end return 0";

/* A derived award entry: held again, at the generation of its id. The generation is written only
 * when present already (a re-run: the revocations after it in the walk write it again), so a first
 * award that was never withdrawn leaves no generation, as verify leaves it.
 * KEYS[1] cp:w:{hex}:awards, KEYS[2] cp:w:{hex}:award_gen; ARGV[1] code, ARGV[2] generation. */
static const char AWARD_HELD[] =
    "redis.call('SADD', KEYS[1], ARGV[1]) "
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end "
    "return 0";

/* A revoked standard withdraws the award it counts towards when that award is held at this point
 * of the walk, as verify does: out of the awards set, generation +1, and, until the award's own
 * revocation comes later in the walk (AWARD_REVOKED deletes it), a late-withdrawal record in
 * cp:award_wd, from which verify sends that revocation (services/verify/verify_withdraw.c).
 * KEYS[1] cp:w:{hex}:awards, KEYS[2] cp:w:{hex}:award_gen, KEYS[3] cp:award_wd (another hash slot:
 * not yet Cluster-ready, see cp_keys.h); ARGV[1] award code, ARGV[2] pseudonym hex, ARGV[3] the
 * revocation's date. */
static const char STANDARD_REVOKED[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end "
    "local g = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') "
    "redis.call('SREM', KEYS[1], ARGV[1]) "
    "redis.call('HSET', KEYS[2], ARGV[1], tostring(g + 1)) "
    "redis.call('HSETNX', KEYS[3], ARGV[1] .. ':' .. tostring(g) .. ':' .. ARGV[2], '0 ' .. ARGV[3]) "
    "return 1";

/* A revoked derived award of generation ARGV[2]: withdrawn unless its generation moved on already
 * (a revoked standard withdrew it first). KEYS[1] cp:w:{hex}:awards, KEYS[2] cp:w:{hex}:award_gen;
 * ARGV[1] code, ARGV[2] the revoked generation, ARGV[3] that generation + 1. */
static const char AWARD_REVOKED[] =
    "local g = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') "
    "if g <= tonumber(ARGV[2]) then "
    "  redis.call('SREM', KEYS[1], ARGV[1]) "
    "  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) "
    "end "
    "return 0";

/* What the walk needs. */
typedef struct {
  cp_redis_t *r;                 // Redis
  reg_log_t *log;                // the register (walked)
  reg_log_t *look;               // a second handle for look-ups during the walk (its tile cache is its own)
  cat_catalogue_t *cat;          // catalogue (Care Certificate standards -> award)
  reg_keyspan_t *spans;          // key history (signatures checked while walking)
  size_t nspans;                 // spans in use
  bool legacy;                   // no genesis key entry: the register's vkey signs everything
  size_t queued;                 // commands queued in the pipeline
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
          "answer), the worker's entry list cp:w:{pseudonym}:entries, the revoked_by\n"
          "marker of revoked events, the Care Certificate progress set cp:w:{..}:cc,\n"
          "the awards set cp:w:{..}:awards and generations cp:w:{..}:award_gen, the\n"
          "late award withdrawals cp:award_wd (an award followed by a revocation of a\n"
          "standard it requires but not by its own revocation: verify then sends it),\n"
          "and finally cp:reg:{shard}:indexed.\n"
          "Rejected events are not in the register and are not restored. Safe to re-run.\n\n"
          "  --shard N   the register shard (default 0)\n");
}

static int flush(rx_t *x) {
  if (x->queued == 0) return 0;
  redisReply **rep = NULL;
  int n = 0;
  int rc = cp_redis_pipeline_exec(x->r, &rep, &n);
  for (int i = 0; i < n; i++) {
    if (rep[i] == NULL || rep[i]->type == REDIS_REPLY_ERROR) {
      if (rc == 0) cp_err(x->err, sizeof x->err, "Redis: %s", rep[i] ? rep[i]->str : "no reply");
      rc = -1;
    }
    if (rep[i] != NULL) freeReplyObject(rep[i]);
  }
  free(rep);
  if (rc != 0 && x->err[0] == '\0') cp_err(x->err, sizeof x->err, "Redis: %s", cp_redis_errstr(x->r));
  x->queued = 0;
  return rc;
}

static void cmd(rx_t *x, int argc, const char **argv) {
  cp_redis_append_argv(x->r, argc, argv, NULL);
  x->queued++;
}

/* The digest intake stored for an event: its PendingEvent rebuilt from the entry, hashed as intake does. */
static int event_digest(const Carepass__V1__PassportEntry *pe, const char *revokes_event_id, char hex[65]) {
  Carepass__V1__PendingEvent ev = CAREPASS__V1__PENDING_EVENT__INIT;
  ev.provider_id = pe->provider_id;
  ev.provider_event_id = pe->provider_event_id;
  ev.worker_pseudonym = pe->worker_pseudonym;
  ev.qualification_code = pe->qualification_code;
  ev.completion_date = pe->completion_date;
  ev.assessor_id = pe->assessor_id;
  ev.evidence_hash = pe->evidence_hash;
  bool rev = pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION;
  ev.kind = rev ? CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION : CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  ev.revokes_event_id = (char *)(rev ? revokes_event_id : "");
  ev.revocation_reason = rev ? pe->reason_code : (char *)"";
  return ing_pending_digest(&ev, hex);
}


/* A revocation undoes the award progress of what it revokes, as verify does: a
 * revoked standard leaves the worker's progress set, and withdraws the award it
 * counts towards if that is held at this point of the walk (STANDARD_REVOKED:
 * the award's revocation may not be on the register yet, e.g. the standard was
 * revoked before the award committed; then a late-withdrawal record in
 * cp:award_wd makes verify send it); a revoked derived award leaves the awards
 * set and its generation moves past the revoked award's (award ids are
 * award:<code>:<hex16>[:g<N>]), so the next award gets a new id. Award entries
 * set the generation from their id again, so running reindex twice (without
 * flushing Redis) gives the same state. */
static void undo_award_progress(rx_t *x, const Carepass__V1__PassportEntry *rev,
                                const Carepass__V1__PassportEntry *target) {
  if (target->worker_pseudonym.len != CP_PSEUDONYM_BYTES) return;
  char thex[2 * CP_PSEUDONYM_BYTES + 1], key[100], akey[100], gkey[100];
  cp_hex(target->worker_pseudonym.data, CP_PSEUDONYM_BYTES, thex);
  snprintf(akey, sizeof akey, CP_KEY_W_AWARDS_FMT, thex);
  snprintf(gkey, sizeof gkey, CP_KEY_W_AWARD_GEN_FMT, thex);
  const cat_qual_t *aw[AWARDS_PER_CODE];
  if (target->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD && x->cat != NULL &&
      cat_awards_requiring(x->cat, target->qualification_code, aw, AWARDS_PER_CODE) > 0) {
    snprintf(key, sizeof key, CP_KEY_W_CC_FMT, thex);
    const char *srem[] = {"SREM", key, target->qualification_code};
    cmd(x, 3, srem);
    const char *date = rev->completion_date != NULL ? rev->completion_date : "";
    const char *ev[] = {"EVAL", STANDARD_REVOKED, "3", akey, gkey, CP_KEY_AWARD_WD, aw[0]->code, thex, date};
    cmd(x, 9, ev);
  } else if (target->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD) {
    const char *g = strstr(target->provider_event_id, ":g");
    unsigned long long gen = g != NULL ? strtoull(g + 2, NULL, 10) : 0;
    char cur[24], next[24], field[200];
    snprintf(cur, sizeof cur, "%llu", gen);
    snprintf(next, sizeof next, "%llu", gen + 1);
    const char *ev[] = {"EVAL", AWARD_REVOKED, "2", akey, gkey, target->qualification_code, cur, next};
    cmd(x, 8, ev);
    /* its revocation is on the register: no late withdrawal left to finish */
    snprintf(field, sizeof field, "%s:%llu:%s", target->qualification_code, gen, thex);
    const char *hdel[] = {"HDEL", CP_KEY_AWARD_WD, field};
    cmd(x, 3, hdel);
  }
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
  char idx[24], evkey[300], member[300];
  snprintf(idx, sizeof idx, "%" PRIu64, index);
  x->entries++;
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY) {
    x->keys++;
    goto done;
  }
  char revokes_event_id[300] = "";
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION && pe->revokes_index < index) {
    uint8_t *tb = NULL;
    size_t tl = 0;
    if (reg_read_entry(x->look, pe->revokes_index, &tb, &tl, err, sizeof err) == 0 &&
        reg_entry_check(x->spans, x->nspans, pe->revokes_index, tb, tl, &target, NULL, err, sizeof err) == 0) {
      /* an operator revocation names "<provider>:<event id>" (cmd_revoke.c), a provider's its own event */
      if (strcmp(pe->provider_id, REINDEX_OPERATOR) == 0)
        snprintf(revokes_event_id, sizeof revokes_event_id, "%s:%s", target->provider_id, target->provider_event_id);
      else
        snprintf(revokes_event_id, sizeof revokes_event_id, "%s", target->provider_event_id);
    }
    free(tb);
  }
  /* the event state, as the signer leaves it (plus intake's digest) */
  snprintf(evkey, sizeof evkey, CP_KEY_EVENT_FMT, pe->provider_id, pe->provider_event_id);
  snprintf(member, sizeof member, "%s:%s", pe->provider_id, pe->provider_event_id);
  {
    const char *hset[] = {"HSET", evkey, "state", "committed", "index", idx};
    cmd(x, 6, hset);
    const char *hdel[] = {"HDEL", evkey, "pending", "reason", "msg"};
    cmd(x, 5, hdel);
    const char *zrem[] = {"ZREM", CP_KEY_PENDING, member};
    cmd(x, 3, zrem);
  }
  if (pe->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD) {
    char digest[65];
    if (event_digest(pe, revokes_event_id, digest) == 0) {
      const char *hset[] = {"HSET", evkey, "digest", digest};
      cmd(x, 4, hset);
    }
  }
  char hex[2 * CP_PSEUDONYM_BYTES + 1] = "";
  if (pe->worker_pseudonym.len == CP_PSEUDONYM_BYTES) {
    char wkey[100];
    cp_hex(pe->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
    snprintf(wkey, sizeof wkey, CP_KEY_W_ENTRIES_FMT, hex);
    const char *ev[] = {"EVAL", RPUSH_ONCE, "1", wkey, idx};
    cmd(x, 5, ev);
  }
  switch (pe->entry_type) {
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD: {
      x->records++;
      const cat_qual_t *aw[AWARDS_PER_CODE];
      if (hex[0] && x->cat != NULL && cat_awards_requiring(x->cat, pe->qualification_code, aw, AWARDS_PER_CODE) > 0) {
        char key[100];
        snprintf(key, sizeof key, CP_KEY_W_CC_FMT, hex);
        const char *sadd[] = {"SADD", key, pe->qualification_code};
        cmd(x, 3, sadd);
        const char *hset[] = {"HSET", evkey, "qcode", pe->qualification_code};
        cmd(x, 4, hset);
      }
      break;
    }
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD:
      x->awards++;
      if (hex[0]) {
        char key[100], gkey[100], gen[24];
        const char *g = strstr(pe->provider_event_id, ":g");
        snprintf(gen, sizeof gen, "%llu", g != NULL ? strtoull(g + 2, NULL, 10) : 0ULL);
        snprintf(key, sizeof key, CP_KEY_W_AWARDS_FMT, hex);
        snprintf(gkey, sizeof gkey, CP_KEY_W_AWARD_GEN_FMT, hex);
        const char *ev[] = {"EVAL", AWARD_HELD, "2", key, gkey, pe->qualification_code, gen};
        cmd(x, 7, ev);
      }
      break;
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION:
      x->revocations++;
      if (target != NULL) {
        char tkey[300];
        snprintf(tkey, sizeof tkey, CP_KEY_EVENT_FMT, target->provider_id, target->provider_event_id);
        const char *hsetnx[] = {"HSETNX", tkey, "revoked_by", pe->provider_event_id};
        cmd(x, 4, hsetnx);
        undo_award_progress(x, pe, target);
      }
      break;
    default:
      break;
  }
done:
  if (target != NULL) protobuf_c_message_free_unpacked(&target->base, NULL);
  protobuf_c_message_free_unpacked(&pe->base, NULL);
  if (x->queued >= REINDEX_PIPELINE) {
    if (flush(x) != 0) return -1;
    cp_redis_pipeline_begin(x->r);
  }
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
  cp_redis_pipeline_begin(x.r);
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
  {
    char key[64], val[24];
    snprintf(key, sizeof key, CP_KEY_REG_INDEXED_FMT, (int)shard);
    snprintf(val, sizeof val, "%" PRIu64, size);
    const char *set[] = {"SET", key, val};
    redisReply *rep = cp_redis_cmd_argv(x.r, 3, set, NULL);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
      cli_error("reindex", "Redis SET %s: %s", key, rep ? rep->str : cp_redis_errstr(x.r));
      if (rep) freeReplyObject(rep);
      goto out;
    }
    freeReplyObject(rep);
  }
  printf("reindexed %" PRIu64 " entries of %s (%" PRIu64 " records, %" PRIu64 " revocations, %" PRIu64
         " derived awards, %" PRIu64 " key entries); %" PRIu64 " skipped; cp:reg:{%ld}:indexed = %" PRIu64 "\n",
         x.entries, cp_cfg_str(CP_OPT_REGISTER_DIR), x.records, x.revocations, x.awards, x.keys, x.bad, shard, size);
  rc = x.bad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
  free(x.spans);
  cp_redis_destroy(&x.r);
  reg_close(&x.log);
  reg_close(&x.look);
  cat_destroy(&x.cat);
  return rc;
}
