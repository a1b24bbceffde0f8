/* outbox.c -- the notification outbox stream: writing an entry, reading one back, acknowledging,
 * and the figures an operator watches (see cp_outbox.h). */
#include "cp_outbox.h"

#include <stdlib.h>
#include <string.h>

#include "cp_codec.h"
#include "cp_keys.h"

int cp_outbox_pack(const Carepass__V1__NotifyJob *job, uint8_t **buf, size_t *len) {
  if (cp_pb_pack(&job->base, buf, len) != 0) return -1;
  if (*len > CP_OUTBOX_JOB_MAX) {   /* a reader would drop it: refuse it here, loudly */
    free(*buf);
    *buf = NULL;
    return -1;
  }
  return 0;
}

int cp_outbox_add(cp_redis_pipe_t *pipe, const Carepass__V1__NotifyJob *job) {
  uint8_t *buf = NULL;
  size_t len = 0;
  if (cp_outbox_pack(job, &buf, &len) != 0) return -1;
  (void)cp_redis_pipe_cmd(pipe, "XADD %s * " CP_OUTBOX_FIELD " %b", cp_key_outbox(), buf, len);
  free(buf);
  return 0;
}

int cp_outbox_entry(const redisReply *e, cp_outbox_entry_t *out) {
  memset(out, 0, sizeof *out);
  if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 1) return -1;
  const redisReply *id = e->element[0];
  if (id->type != REDIS_REPLY_STRING || id->len == 0 || id->len >= CP_OUTBOX_ID_MAX) return -1;
  memcpy(out->id, id->str, id->len);
  out->id[id->len] = '\0';
  if (e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY) return -1;
  const redisReply *f = e->element[1];
  for (size_t k = 0; k + 1 < f->elements; k += 2) {
    if (f->element[k]->type != REDIS_REPLY_STRING || f->element[k + 1]->type != REDIS_REPLY_STRING) continue;
    if (f->element[k]->len == strlen(CP_OUTBOX_FIELD) && memcmp(f->element[k]->str, CP_OUTBOX_FIELD, f->element[k]->len) == 0) {
      out->job = (const uint8_t *)f->element[k + 1]->str;
      out->len = f->element[k + 1]->len;
      return 0;
    }
  }
  return -1;
}

void cp_outbox_ack(cp_redis_pipe_t *pipe, const char *const *ids, size_t n) {
  if (n == 0) return;
  (void)cp_redis_pipe_start(pipe, NULL);
  cp_redis_pipe_arg(pipe, "XACK");
  cp_redis_pipe_arg(pipe, cp_key_outbox());
  cp_redis_pipe_arg(pipe, CP_OUTBOX_GROUP);
  for (size_t i = 0; i < n; i++) cp_redis_pipe_arg(pipe, ids[i]);
  (void)cp_redis_pipe_start(pipe, NULL);
  cp_redis_pipe_arg(pipe, "XDEL");
  cp_redis_pipe_arg(pipe, cp_key_outbox());
  for (size_t i = 0; i < n; i++) cp_redis_pipe_arg(pipe, ids[i]);
}

int cp_outbox_stats(cp_redis_t *r, int64_t now_ms, cp_outbox_stats_t *out) {
  memset(out, 0, sizeof *out);
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t hlen = cp_redis_pipe_cmd(p, "XLEN %s", cp_key_outbox());
  cp_redis_handle_t hfirst = cp_redis_pipe_cmd(p, "XRANGE %s - + COUNT 1", cp_key_outbox());
  cp_redis_handle_t hgroups = cp_redis_pipe_cmd(p, "XINFO GROUPS %s", cp_key_outbox());
  int rc = cp_redis_pipe_exec(p, r);
  if (rc == 0) {
    const redisReply *x = cp_redis_pipe_reply(p, hlen);
    if (x != NULL && x->type == REDIS_REPLY_INTEGER) out->length = x->integer;
    x = cp_redis_pipe_reply(p, hfirst);
    if (x != NULL && x->type == REDIS_REPLY_ARRAY && x->elements == 1 && x->element[0]->type == REDIS_REPLY_ARRAY &&
        x->element[0]->elements >= 1 && x->element[0]->element[0]->type == REDIS_REPLY_STRING) {
      long long ms = strtoll(x->element[0]->element[0]->str, NULL, 10);   /* "<ms>-<seq>" */
      out->oldest_age_ms = now_ms > ms ? now_ms - ms : 0;
    }
    x = cp_redis_pipe_reply(p, hgroups);   /* an error when the stream does not exist yet */
    for (size_t g = 0; x != NULL && x->type == REDIS_REPLY_ARRAY && g < x->elements; g++) {
      const redisReply *grp = x->element[g];
      if (grp->type != REDIS_REPLY_ARRAY) continue;
      const char *name = cp_redis_hfield(grp, "name");
      if (name == NULL || strcmp(name, CP_OUTBOX_GROUP) != 0) continue;
      for (size_t k = 0; k + 1 < grp->elements; k += 2) {
        const redisReply *key = grp->element[k], *val = grp->element[k + 1];
        if (key->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_INTEGER) continue;
        if (strcmp(key->str, "pending") == 0) out->pending = val->integer;
        if (strcmp(key->str, "consumers") == 0) out->consumers = val->integer;
      }
    }
  }
  cp_redis_pipe_destroy(&p);
  return rc;
}
