/* verify_awards.c -- derived awards: all 16 Care Certificate standards verified => the Care Certificate.
 *
 * Race-free without locks: every replica does, per passing standard,
 *   SADD cp:w:{hex}:cc <code>             (the set of required codes this worker has)
 *   SMISMEMBER cp:w:{hex}:cc <required...>  (are they all there now?)
 * and only when all are present
 *   SADD cp:w:{hex}:awards <award>         (returns 1 exactly once, to exactly one caller)
 * Redis runs each command atomically, so when the last two standards of a worker are
 * verified at the same moment by two replicas, at least one sees the full set, and
 * SADD ... awards lets exactly one of them issue the award.
 *
 * Known limit: if verify dies between "SADD awards = 1" and pushing the award record, the
 * award is not re-issued by a redrive (SADD now returns 0); `carepass reindex` rebuilds it. */
#include "verify.h"
#include "cp_util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AWARDS_PER_CODE 4   /* derived awards one code may count towards (CC needs 1) */

/* The worker's pseudonym as hex, or false when the event has none of the right size. */
static bool pseudonym_hex(const Carepass__V1__PendingEvent *ev, char hex[2 * CP_PSEUDONYM_BYTES + 1]) {
  if (ev->worker_pseudonym.len != CP_PSEUDONYM_BYTES || ev->worker_pseudonym.data == NULL)
    return false;
  cp_hex(ev->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
  return true;
}

/* Does item `it` take part in a derived award? Fills the award it counts towards. */
static const cat_qual_t *award_candidate(const verify_t *v, const verify_item_t *it) {
  if (it->state != VITEM_PASS || it->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD)
    return NULL;
  const cat_qual_t *aw[AWARDS_PER_CODE];
  size_t na = cat_awards_requiring(v->cat, it->ev->qualification_code, aw, AWARDS_PER_CODE);
  return na > 0 ? aw[0] : NULL;   /* one award per code is all the catalogue uses */
}

static int exec_pipeline(verify_t *v, redisReply ***rep, int *nrep) {
  *rep = NULL;
  *nrep = 0;
  return cp_redis_pipeline_exec(v->redis, rep, nrep);
}

static void free_replies(redisReply **rep, int nrep) {
  for (int i = 0; i < nrep; i++)
    freeReplyObject(rep[i]);
  free(rep);
}

int verify_awards_record(verify_t *v, verify_item_t *items, size_t n) {
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  char key[VERIFY_KEY_MAX];
  const cat_qual_t *cand[VERIFY_BATCH_MAX];
  bool complete[VERIFY_BATCH_MAX];
  assert(n <= VERIFY_BATCH_MAX);
  int queued = 0;

  /* Round 1: add each passing standard to the worker's set, then ask which requirements are present. */
  cp_redis_pipeline_begin(v->redis);
  for (size_t i = 0; i < n; i++) {
    items[i].award = NULL;
    complete[i] = false;
    cand[i] = award_candidate(v, &items[i]);
    if (cand[i] == NULL || !pseudonym_hex(items[i].ev, hex)) {
      cand[i] = NULL;
      continue;
    }
    snprintf(key, sizeof key, CP_KEY_W_CC_FMT, hex);
    cp_redis_append(v->redis, "SADD %s %s", key, items[i].ev->qualification_code);
    const cat_qual_t *aw = cand[i];
    size_t argc = 2 + aw->nrequires;
    const char **argv = cp_xcalloc(argc, sizeof *argv);
    argv[0] = "SMISMEMBER";
    argv[1] = key;
    for (size_t r = 0; r < aw->nrequires; r++)
      argv[2 + r] = aw->requires[r];
    cp_redis_append_argv(v->redis, (int)argc, argv, NULL);
    free(argv);
    queued += 2;
  }
  if (queued == 0)
    return 0;
  redisReply **rep;
  int nrep;
  if (exec_pipeline(v, &rep, &nrep) != 0)
    return -1;
  int k = 0;
  int nfull = 0;
  for (size_t i = 0; i < n; i++) {
    if (cand[i] == NULL)
      continue;
    k++;   /* SADD reply: 0 or 1, either way we check membership (a redrive must still count) */
    const redisReply *m = rep[k++];
    if (m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements != cand[i]->nrequires)
      continue;
    bool all = true;
    for (size_t r = 0; r < m->elements && all; r++)
      all = m->element[r]->type == REDIS_REPLY_INTEGER && m->element[r]->integer == 1;
    complete[i] = all;
    nfull += all;
  }
  free_replies(rep, nrep);
  if (nfull == 0)
    return 0;

  /* Round 2: the first SADD of the award code wins and issues it. */
  cp_redis_pipeline_begin(v->redis);
  for (size_t i = 0; i < n; i++) {
    if (!complete[i])
      continue;
    bool ok = pseudonym_hex(items[i].ev, hex);
    assert(ok);
    (void)ok;
    snprintf(key, sizeof key, CP_KEY_W_AWARDS_FMT, hex);
    cp_redis_append(v->redis, "SADD %s %s", key, cand[i]->code);
  }
  if (exec_pipeline(v, &rep, &nrep) != 0)
    return -1;
  k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!complete[i])
      continue;
    const redisReply *a = rep[k++];
    if (a != NULL && a->type == REDIS_REPLY_INTEGER && a->integer == 1)
      items[i].award = cand[i];
  }
  free_replies(rep, nrep);
  return 0;
}

void verify_award_event(const Carepass__V1__PendingEvent *src, const cat_qual_t *award,
                        char idbuf[64], Carepass__V1__PendingEvent *out) {
  assert(src != NULL && award != NULL && out != NULL);
  char hex[2 * CP_PSEUDONYM_BYTES + 1] = "";
  if (!pseudonym_hex(src, hex))
    assert(!"award for an event without a pseudonym");
  snprintf(idbuf, 64, "award:%s:%.16s", award->code, hex);
  Carepass__V1__PendingEvent init = CAREPASS__V1__PENDING_EVENT__INIT;
  *out = init;
  out->provider_id = (char *)VERIFY_AWARD_PROVIDER;
  out->provider_event_id = idbuf;
  out->worker_pseudonym = src->worker_pseudonym;   /* shares the source's bytes */
  out->qualification_code = (char *)award->code;
  /* The award dates from the standard that completed the set. */
  out->completion_date = src->completion_date;
  out->assessor_id = (char *)"";
  out->kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  out->received_at = cp_now_ms();
  out->reply_to = (char *)"";
}
