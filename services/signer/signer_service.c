/* signer_service.c -- start and stop the signer: key, register, idempotency index, sockets, Redis. */
#include "signer.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cp_config.h"
#include "cp_log.h"
#include "cp_zmq.h"

/* Publish the verifier key beside the register (0644) so tools and the gateway can find it. */
static int write_vkey(signer_t *s, const char *dir, char *err, size_t errlen) {
  char vkey[512], path[4200];
  if (cp_vkey_format(s->key.name, s->key.pk, vkey, sizeof vkey - 1) != 0)
    return cp_err(err, errlen, "cannot format the verifier key");
  size_t len = strlen(vkey);
  vkey[len++] = '\n';
  snprintf(path, sizeof path, "%s/vkey", dir);
  return cp_write_file_atomic(path, vkey, len, 0644, err, errlen);
}

int signer_start(signer_t *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->notify_hold = UINT64_MAX;
  s->shard = (int)cp_cfg_int("SHARD");
  s->batch_max = (int)cp_cfg_int("SIGNER_BATCH_MAX");
  s->batch_wait_ms = (int)cp_cfg_int("SIGNER_BATCH_WAIT_MS");
  const char *keypath = cp_cfg_str("SIGNING_KEY");
  const char *dir = cp_cfg_str("REGISTER_DIR");
  char *kdir = cp_strdup(keypath);
  int rc = cp_mkdirs(dirname(kdir), 0700, err, errlen);
  free(kdir);
  if (rc != 0) return -1;
  if (cp_signkey_load(keypath, cp_cfg_str("LOG_ORIGIN"), true, &s->key, err, errlen) != 0) return -1;
  if (reg_open(dir, &s->key, &s->log, err, errlen) != 0) return -1;
  if (write_vkey(s, dir, err, errlen) != 0) return -1;
  int64_t t0 = cp_mono_ms();
  s->index = signer_index_new();
  if (signer_index_build(s->index, s->log, err, errlen) != 0) return -1;
  s->start_size = reg_size(s->log);
  cp_log_info("register open", CP_KV_STR("dir", dir), CP_KV_INT("size", s->start_size),
              CP_KV_INT("events_indexed", signer_index_count(s->index)), CP_KV_INT("index_ms", cp_mono_ms() - t0),
              CP_KV_INT("shard", s->shard), CP_KV_END);

  int hwm = (int)cp_cfg_int("BUS_HWM");
  s->zctx = zmq_ctx_new();
  if (s->zctx == NULL) return cp_err(err, errlen, "zmq_ctx_new failed");
  s->pull = cp_zmq_socket(s->zctx, ZMQ_PULL, cp_cfg_str("SIGNER_BIND"), true, hwm, SIGNER_MAX_RECORD_BYTES, err, errlen);
  if (s->pull == NULL) return -1;
  s->notify = cp_zmq_socket(s->zctx, ZMQ_PUSH, cp_cfg_str("BUS_NOTIFY_IN"), false, hwm, 0, err, errlen);
  if (s->notify == NULL) return -1;
  s->results = cp_zmq_socket(s->zctx, ZMQ_PUB, cp_cfg_str("BUS_RESULTS_IN"), false, hwm, 0, err, errlen);
  if (s->results == NULL) return -1;

  /* Redis is not needed to sign: without it the register still grows and Redis catches up later */
  char rerr[CP_ERRLEN];
  s->redis = cp_redis_new(cp_cfg_str("REDIS_HOST"), (int)cp_cfg_int("REDIS_PORT"),
                          (int)cp_cfg_int("REDIS_TIMEOUT_MS"), rerr, sizeof rerr);
  if (s->redis == NULL) {
    cp_log_warn("redis unavailable at start; will retry", CP_KV_STR("error", rerr), CP_KV_END);
    s->redis_retry_at = cp_mono_ms() + SIGNER_REDIS_RETRY_MS;
  }
  signer_redis_apply(s);   /* re-apply what a crash between fsync and Redis left behind */
  signer_redis_mark_indexed(s);
  return 0;
}

void signer_stop(signer_t *s) {
  cp_zmq_close(&s->pull);
  cp_zmq_close(&s->notify);
  cp_zmq_close(&s->results);
  if (s->zctx != NULL) {
    zmq_ctx_term(s->zctx);
    s->zctx = NULL;
  }
  cp_redis_destroy(&s->redis);
  signer_index_destroy(&s->index);
  reg_close(&s->log);
  cp_signkey_wipe(&s->key);
}
