/* intake_redrive.c -- re-send accepted events that have no final state after REDRIVE_AFTER_MS
 * (lost on the bus, or a verify/signer crashed). Several replicas may redrive the same event;
 * verify and signer are idempotent, so that only costs work. */
#include "intake_redrive.h"

#include "intake_forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_keys.h"
#include "cp_log.h"

void intake_redrive(intake_t *in) {
  char now_s[24];
  snprintf(now_s, sizeof now_s, "%" PRId64, cp_now_ms());
  redisReply *due = cp_redis_cmd(in->redis, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %d", CP_KEY_PENDING,
                                 now_s, INTAKE_REDRIVE_LIMIT);
  if (due == NULL) {
    cp_log_warn("redrive: redis unavailable", CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
    return;
  }
  redisReply **rep = NULL;
  int nrep = 0;
  if (due->type != REDIS_REPLY_ARRAY || due->elements == 0) goto done;

  /* one pipeline: the state and pending bytes of every due member */
  cp_redis_pipeline_begin(in->redis);
  for (size_t i = 0; i < due->elements; i++) {
    const redisReply *m = due->element[i];
    char key[200];
    snprintf(key, sizeof key, "cp:ev:{%.*s}", (int)m->len, m->str);
    cp_redis_append(in->redis, "HMGET %s state pending", key);
  }
  if (cp_redis_pipeline_exec(in->redis, &rep, &nrep) != 0 || (size_t)nrep != due->elements) {
    cp_log_warn("redrive: redis unavailable", CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
    goto done;
  }

  /* second pipeline: reschedule what was re-sent, forget what is final */
  char next_s[24];
  snprintf(next_s, sizeof next_s, "%" PRId64, cp_now_ms() + in->redrive_after_ms);
  size_t resent = 0, dropped = 0, blocked = 0;
  cp_redis_pipeline_begin(in->redis);
  for (size_t i = 0; i < due->elements; i++) {
    const redisReply *m = due->element[i];
    const redisReply *r = rep[i];
    const char *argv[4] = {"ZREM", CP_KEY_PENDING, m->str, NULL};
    size_t len[4] = {4, strlen(CP_KEY_PENDING), m->len, 0};
    bool accepted = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                    r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len == 8 &&
                    memcmp(r->element[0]->str, "accepted", 8) == 0;
    bool have_bytes = accepted && r->element[1]->type == REDIS_REPLY_STRING;
    if (have_bytes) {
      if (intake_forward_verify(in, (const uint8_t *)r->element[1]->str, r->element[1]->len) != 0)
        blocked++;
      else
        resent++;
      /* reschedule even when the queue was full: the next scan tries again */
      argv[0] = "ZADD";
      argv[2] = next_s;
      argv[3] = m->str;
      len[0] = 4;
      len[2] = strlen(next_s);
      len[3] = m->len;
      cp_redis_append_argv(in->redis, 4, argv, len);
    } else {
      /* final (or gone): nothing more to redrive */
      dropped++;
      cp_redis_append_argv(in->redis, 3, argv, len);
    }
  }
  redisReply **rep2 = NULL;
  int nrep2 = 0;
  if (cp_redis_pipeline_exec(in->redis, &rep2, &nrep2) != 0)
    cp_log_warn("redrive: redis unavailable", CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
  cp_redis_replies_free(rep2, nrep2);
  if (resent + blocked > 0)
    cp_log_info("redrive", CP_KV_INT("resent", resent), CP_KV_INT("queue_full", blocked),
                CP_KV_INT("final", dropped), CP_KV_END);
done:
  cp_redis_replies_free(rep, nrep);
  freeReplyObject(due);
}
