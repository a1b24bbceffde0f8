/* intake_store.c -- re-reading the states of events that committed-ack requests wait for
 * (one pipeline per tick). Claims are ing_store_claim (common/ingest_store.c). */
#include "intake_store.h"

#include "intake_req.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_keys.h"
#include "cp_log.h"

int intake_store_refresh(intake_t *in, intake_req_t **reqs, size_t nreq) {
  size_t queued = 0;
  for (size_t k = 0; k < nreq; k++) queued += reqs[k]->nwaiting;
  if (queued == 0) return 0;
  cp_redis_pipeline_begin(in->redis);
  for (size_t k = 0; k < nreq; k++) {
    for (size_t i = 0; i < reqs[k]->n; i++) {
      if (!reqs[k]->ans[i].waiting) continue;
      char key[160];
      snprintf(key, sizeof key, CP_KEY_EVENT_FMT, reqs[k]->provider, reqs[k]->ans[i].event_id);
      cp_redis_append(in->redis, "HMGET %s state reason msg index", key);
    }
  }
  redisReply **rep = NULL;
  int nrep = 0;
  if (cp_redis_pipeline_exec(in->redis, &rep, &nrep) != 0) {
    if (cp_redis_reconnect(in->redis) != 0) { /* the next tick tries again */ }
    cp_log_warn("redis unavailable while refreshing waiting requests",
                CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
    return -1;
  }
  size_t j = 0;
  for (size_t k = 0; k < nreq && j < (size_t)nrep; k++) {
    for (size_t i = 0; i < reqs[k]->n && j < (size_t)nrep; i++) {
      if (!reqs[k]->ans[i].waiting) continue;
      redisReply *r = rep[j++];
      if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4) continue;
      ing_st_t st = r->element[0]->type == REDIS_REPLY_STRING
                           ? ing_state_of(r->element[0]->str, r->element[0]->len)
                           : ING_ST_UNKNOWN;
      if (st != ING_ST_REJECTED && st != ING_ST_COMMITTED) continue;
      char *reason = ing_reply_str(r->element[1]);
      char *msg = ing_reply_str(r->element[2]);
      intake_answer_final(reqs[k], i, st, reason, msg, ing_reply_u64(r->element[3]));
      free(reason);
      free(msg);
    }
  }
  cp_redis_replies_free(rep, nrep);
  return 0;
}
