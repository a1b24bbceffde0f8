/* cmd_leave.c -- `carepass leave`: a worker leaves the voluntary register (issue 11, item 3).
 *
 * With the shard's signer stopped (the subject key store has one writer, the signer; this
 * command takes the register lock to be sure): the worker's key and slots are removed from the
 * subject key store's files (crypto-shredding: their format-2 entries can then be opened or
 * linked by nobody, the operator included; the entries stay in the public register, anonymous,
 * and every signature and tile still verifies), then the worker's derived Redis state is
 * deleted (their index and openings, Care Certificate progress, share codes, subscriptions,
 * views, consents (ongoing access, also out of each employer's staff set), and the expiry
 * schedules of their entries). `carepass reindex` afterwards rebuilds
 * nothing of them. Format-1 entries name the pseudonym itself and cannot be unlinked this way:
 * the command says how many of those remain. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_keys.h"
#include "cp_redis.h"
#include "cp_register.h"
#include "cp_subject.h"

#define CMD "leave"

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass leave NI_NUMBER\n\n"
          "The worker leaves the voluntary register. Run it with the shard's signer stopped.\n"
          "Their key is deleted from the subject key store ($CAREPASS_SUBJECT_KEYS), so their\n"
          "format-2 entries can no longer be opened or linked to each other by anyone, the\n"
          "operator included; the entries stay in the register, anonymous, and audits still\n"
          "verify every signature. Their derived state in Redis is deleted: their index,\n"
          "Care Certificate progress, share codes, subscriptions, views and the expiry\n"
          "schedules of their entries. Backups of the store keep the key until they expire.\n"
          "Prints how many entries became unlinkable, and how many format-1 entries (which\n"
          "name the worker's pseudonym itself) remain linkable.\n");
}

/* Delete the worker's derived Redis state; *entries gets their register indexes (for the count
 * of format-1 entries). 0, or -1 with err. */
static int forget_in_redis(cp_redis_t *r, const char *hex, uint64_t **entries, size_t *n, char *err, size_t errlen) {
  cp_key_t k;
  *entries = NULL;
  *n = 0;
  redisReply *l = cp_redis_cmd(r, "LRANGE %s 0 -1", cp_key_w_entries(&k, hex));
  if (l == NULL) return cp_err(err, errlen, "Redis: %s", cp_redis_errstr(r));
  *entries = cp_xcalloc(l->elements + 1, sizeof **entries);
  for (size_t i = 0; i < l->elements; i++) {
    if (l->element[i]->type != REDIS_REPLY_STRING) continue;
    uint64_t idx = strtoull(l->element[i]->str, NULL, 10);
    (*entries)[(*n)++] = idx;
    cp_key_t e;
    freeReplyObject(cp_redis_cmd(r, "DEL %s", cp_key_exp(&e, idx)));
    freeReplyObject(cp_redis_cmd(r, "ZREM %s %" PRIu64, cp_key_exp_due(), idx));
  }
  freeReplyObject(l);
  /* share codes and subscriptions, found through the worker's sets */
  char pat[CP_KEY_MAX];
  snprintf(pat, sizeof pat, "cp:w:{%s}:sc", hex);
  redisReply *codes = cp_redis_cmd(r, "SMEMBERS %s", pat);
  for (size_t i = 0; codes != NULL && i < codes->elements; i++) {
    const char *id = codes->element[i]->str;
    redisReply *h = cp_redis_cmd(r, "HGET cp:scid:{%s} code", id);
    if (h != NULL && h->type == REDIS_REPLY_STRING) freeReplyObject(cp_redis_cmd(r, "DEL cp:sc:{%s}", h->str));
    if (h != NULL) freeReplyObject(h);
    freeReplyObject(cp_redis_cmd(r, "DEL cp:scid:{%s} cp:scid:{%s}:subs cp:scid:{%s}:sub_urls", id, id, id));
  }
  if (codes != NULL) freeReplyObject(codes);
  snprintf(pat, sizeof pat, "cp:w:{%s}:subs", hex);
  redisReply *subs = cp_redis_cmd(r, "SMEMBERS %s", pat);
  for (size_t i = 0; subs != NULL && i < subs->elements; i++)
    freeReplyObject(cp_redis_cmd(r, "DEL cp:sub:{%s}", subs->element[i]->str));
  if (subs != NULL) freeReplyObject(subs);
  /* consents (ongoing access): each consent's hash and its place in its employer's staff set */
  redisReply *cns = cp_redis_cmd(r, "SMEMBERS %s", cp_key_w_consents(&k, hex));
  for (size_t i = 0; cns != NULL && cns->type == REDIS_REPLY_ARRAY && i < cns->elements; i++) {
    if (cns->element[i]->type != REDIS_REPLY_STRING) continue;
    const char *id = cns->element[i]->str;
    cp_key_t ck, sk;
    redisReply *emp = cp_redis_cmd(r, "HGET %s employer", cp_key_consent(&ck, id));
    if (emp != NULL && emp->type == REDIS_REPLY_STRING)
      freeReplyObject(cp_redis_cmd(r, "SREM %s %s", cp_key_emp_staff(&sk, emp->str), id));
    if (emp != NULL) freeReplyObject(emp);
    freeReplyObject(cp_redis_cmd(r, "DEL %s", ck.s));
  }
  if (cns != NULL) freeReplyObject(cns);
  /* every cp:w:{hex}:* key (one hash slot: the worker's tag) */
  snprintf(pat, sizeof pat, "cp:w:{%s}:*", hex);
  char cursor[32] = "0";
  do {
    redisReply *sc = cp_redis_cmd(r, "SCAN %s MATCH %s COUNT 100", cursor, pat);
    if (sc == NULL || sc->type != REDIS_REPLY_ARRAY || sc->elements != 2) {
      if (sc != NULL) freeReplyObject(sc);
      return cp_err(err, errlen, "Redis SCAN: %s", cp_redis_errstr(r));
    }
    snprintf(cursor, sizeof cursor, "%s", sc->element[0]->str);
    for (size_t i = 0; i < sc->element[1]->elements; i++)
      freeReplyObject(cp_redis_cmd(r, "DEL %s", sc->element[1]->element[i]->str));
    freeReplyObject(sc);
  } while (strcmp(cursor, "0") != 0);
  return 0;
}

int cmd_leave(int argc, char **argv) {
  const char *ni = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      help(stdout);
      return CLI_EXIT_OK;
    }
    if (argv[i][0] == '-' || ni != NULL) {
      cli_error(CMD, "unexpected argument %d", i);   /* never echo what might be an NI number */
      help(stderr);
      return CLI_EXIT_USAGE;
    }
    ni = argv[i];
  }
  if (ni == NULL) {
    cli_error(CMD, "NI_NUMBER is required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config(CMD) != 0) return CLI_EXIT_USAGE;
  char err[CP_ERRLEN], hex[2 * CP_PSEUDONYM_BYTES + 1];
  unsigned char pseudonym[CP_PSEUDONYM_BYTES];
  int rc = CLI_EXIT_FAIL;
  cp_signkey_t key;
  memset(&key, 0, sizeof key);
  reg_log_t *log = NULL;
  cp_subject_store_t *st = NULL;
  cp_redis_t *r = NULL;
  uint64_t *entries = NULL;
  size_t nentries = 0;
  int prc = cli_worker_pseudonym(CMD, ni, pseudonym);
  if (prc != CLI_EXIT_OK) return prc;
  cp_hex(pseudonym, CP_PSEUDONYM_BYTES, hex);
  /* the register lock: the signer (the store's writer) must be stopped */
  if (cp_signkey_load(cp_cfg_str(CP_OPT_SIGNING_KEY), cp_cfg_str(CP_OPT_LOG_ORIGIN), false, &key, err, sizeof err) != 0) {
    cli_error(CMD, "signing key: %s", err);
    goto out;
  }
  if (reg_open(cp_cfg_str(CP_OPT_REGISTER_DIR), &key, &log, err, sizeof err) != 0) {
    cli_error(CMD, "%s%s", err, strstr(err, "locked") ? " (stop the shard's signer first)" : "");
    goto out;
  }
  size_t unlinked = 0;
  if (cli_subjects_open(CMD, CP_SUBJECT_WRITER, &st) != 0) goto out;
  if (st != NULL && cp_subject_store_shred(st, pseudonym, &unlinked, err, sizeof err) != 0) {
    cli_error(CMD, "%s", err);
    goto out;
  }
  r = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                   (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, sizeof err);
  if (r == NULL || forget_in_redis(r, hex, &entries, &nentries, err, sizeof err) != 0) {
    cli_error(CMD, "the key is deleted (%zu entries unlinkable), but Redis: %s; run `carepass reindex` to finish",
              unlinked, err);
    goto out;
  }
  /* format-1 entries name the pseudonym itself: say how many stay linkable */
  size_t v1 = 0;
  for (size_t i = 0; i < nentries; i++) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (reg_read_entry(log, entries[i], &buf, &len, err, sizeof err) != 0) continue;
    Carepass__V1__SignedEntry *se = carepass__v1__signed_entry__unpack(NULL, len, buf);
    Carepass__V1__PassportEntry *pe =
        se != NULL ? carepass__v1__passport_entry__unpack(NULL, se->entry.len, se->entry.data) : NULL;
    if (pe != NULL && pe->version < 2) v1++;
    if (pe != NULL) carepass__v1__passport_entry__free_unpacked(pe, NULL);
    if (se != NULL) carepass__v1__signed_entry__free_unpacked(se, NULL);
    free(buf);
  }
  printf("left the register: %zu entries can no longer be opened or linked; derived state deleted", unlinked);
  if (v1 > 0) printf("; %zu format-1 entries still name the worker's pseudonym (migrate the register to format 2)", v1);
  printf("\n");
  rc = CLI_EXIT_OK;
out:
  sodium_memzero(pseudonym, sizeof pseudonym);
  free(entries);
  cp_redis_destroy(&r);
  cp_subject_store_close(&st);
  reg_close(&log);
  cp_signkey_wipe(&key);
  return rc;
}
