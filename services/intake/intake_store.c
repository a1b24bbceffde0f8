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
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t *h = cp_xcalloc(queued, sizeof *h);
  size_t j = 0;
  for (size_t k = 0; k < nreq; k++) {
    for (size_t i = 0; i < reqs[k]->n && j < queued; i++) {
      if (!reqs[k]->ans[i].waiting) continue;
      cp_key_t key;
      h[j++] = cp_redis_pipe_cmd(p, "HMGET %s state reason msg index",
                                 cp_key_event(&key, reqs[k]->provider, reqs[k]->ans[i].event_id));
    }
  }
  int rc = cp_redis_pipe_exec(p, in->redis);
  if (rc != 0) {
    if (cp_redis_reconnect(in->redis) != 0) { /* the next tick tries again */ }
    cp_log_warn("redis unavailable while refreshing waiting requests",
                CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
    goto out;
  }
  j = 0;
  for (size_t k = 0; k < nreq; k++) {
    for (size_t i = 0; i < reqs[k]->n && j < queued; i++) {
      if (!reqs[k]->ans[i].waiting) continue;
      ing_claim_t st;
      ing_claim_from_hmget(cp_redis_pipe_reply(p, h[j++]), &st);
      if (st.st == ING_ST_REJECTED || st.st == ING_ST_COMMITTED)
        intake_answer_final(reqs[k], i, st.st, st.reason, st.message, st.index);
      ing_claim_clear(&st);
    }
  }
out:
  free(h);
  cp_redis_pipe_destroy(&p);
  return rc;
}
