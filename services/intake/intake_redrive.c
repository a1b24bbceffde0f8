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
  redisReply *due = cp_redis_cmd(in->redis, "ZRANGEBYSCORE %s -inf %s LIMIT 0 %d", cp_key_pending(),
                                 now_s, INTAKE_REDRIVE_LIMIT);
  if (due == NULL) {
    cp_log_warn("redrive: redis unavailable", CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
    return;
  }
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t *h = NULL;
  if (due->type != REDIS_REPLY_ARRAY || due->elements == 0) goto done;

  /* one pipeline: the state and pending bytes of every due member ("<provider>:<event>", the
   * tag of its cp:ev key) */
  h = cp_xcalloc(due->elements, sizeof *h);
  for (size_t i = 0; i < due->elements; i++) {
    const redisReply *m = due->element[i];
    cp_key_t key;
    h[i] = cp_redis_pipe_cmd(p, "HMGET %s state pending", cp_key_event_of_member(&key, m->str, m->len));
  }
  if (cp_redis_pipe_exec(p, in->redis) != 0) {
    cp_log_warn("redrive: redis unavailable", CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
    goto done;
  }

  /* second pipeline: reschedule what was re-sent, forget what is final */
  char next_s[24];
  snprintf(next_s, sizeof next_s, "%" PRId64, cp_now_ms() + in->redrive_after_ms);
  size_t resent = 0, dropped = 0, blocked = 0;
  cp_redis_pipe_t *upd = cp_redis_pipe_new();
  for (size_t i = 0; i < due->elements; i++) {
    const redisReply *m = due->element[i];
    const redisReply *r = cp_redis_reply_array(cp_redis_pipe_reply(p, h[i]), 2);
    bool accepted = r != NULL && cp_redis_reply_is_str(r->element[0], "accepted");
    if (accepted && r->element[1]->type == REDIS_REPLY_STRING) {
      if (intake_forward_verify(in, (const uint8_t *)r->element[1]->str, r->element[1]->len) != 0)
        blocked++;
      else
        resent++;
      /* reschedule even when the queue was full: the next scan tries again */
      (void)cp_redis_pipe_cmd(upd, "ZADD %s %s %b", cp_key_pending(), next_s, m->str, m->len);
    } else {
      /* final (or gone): nothing more to redrive */
      dropped++;
      (void)cp_redis_pipe_cmd(upd, "ZREM %s %b", cp_key_pending(), m->str, m->len);
    }
  }
  if (cp_redis_pipe_exec(upd, in->redis) != 0)
    cp_log_warn("redrive: redis unavailable", CP_KV_STR("error", cp_redis_errstr(in->redis)), CP_KV_END);
  cp_redis_pipe_destroy(&upd);
  if (resent + blocked > 0)
    cp_log_info("redrive", CP_KV_INT("resent", resent), CP_KV_INT("queue_full", blocked),
                CP_KV_INT("final", dropped), CP_KV_END);
done:
  free(h);
  cp_redis_pipe_destroy(&p);
  freeReplyObject(due);
}
