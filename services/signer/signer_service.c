/* signer_service.c -- make and destroy the signer: key, register, idempotency index, sockets, Redis. */
#include "signer.h"

#include <libgen.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cp_config.h"
#include "cp_log.h"
#include "cp_zmq.h"

/* A new register starts with its genesis key entry (index 0): the signing key
 * announces itself, so the log records from the first entry which key signs it. */
static int append_genesis(signer_t *s, char *err, size_t errlen) {
  uint8_t *e = NULL;
  size_t len = 0;
  uint64_t first = 0;
  if (reg_key_entry_build(&s->key, s->key.name, s->key.pk, cp_now_ms() / 1000, &e, &len, err, errlen) != 0)
    return -1;
  const uint8_t *entries[1] = {e};
  int rc = reg_append(s->log, entries, &len, 1, &first, err, errlen);
  if (rc == 0) rc = reg_keys_feed(&s->keys, &s->nkeys, first, e, len, err, errlen);
  free(e);
  if (rc == 0) cp_log_info("genesis key entry appended", CP_KV_INT("index", first), CP_KV_END);
  return rc;
}

/* The signer may only sign with the key the log's key history names as current
 * (after `carepass rotate-key` the old key file is retired; starting with it is refused). */
static int check_current_key(signer_t *s, char *err, size_t errlen) {
  if (s->nkeys == 0) {
    cp_log_warn("register has no key entries (written before key history); its key cannot be rotated",
                CP_KV_INT("size", reg_size(s->log)), CP_KV_END);
    return 0;
  }
  const reg_keyspan_t *cur = &s->keys[s->nkeys - 1];
  if (memcmp(cur->key_id, s->key.key_id, CP_KEYID_BYTES) != 0) {
    char have[9], want[9];
    cp_hex(s->key.key_id, CP_KEYID_BYTES, have);
    cp_hex(cur->key_id, CP_KEYID_BYTES, want);
    return cp_err(err, errlen,
                  "signing key %s is not the register's current key %s (announced at index %llu); "
                  "was the key rotated? point CAREPASS_SIGNING_KEY at the current key file",
                  have, want, (unsigned long long)cur->key_index);
  }
  return 0;
}

/* Everything signer_new does, on an object destroy can always free. */
static int signer_open(signer_t *s, char *err, size_t errlen) {
  s->shard = (int)cp_cfg_int(CP_OPT_SHARD);
  s->batch_max = (int)cp_cfg_int(CP_OPT_SIGNER_BATCH_MAX);
  s->batch_wait_ms = (int)cp_cfg_int(CP_OPT_SIGNER_BATCH_WAIT_MS);
  const char *keypath = cp_cfg_str(CP_OPT_SIGNING_KEY);
  const char *dir = cp_cfg_str(CP_OPT_REGISTER_DIR);
  char *kdir = cp_strdup(keypath);
  int rc = cp_mkdirs(dirname(kdir), 0700, err, errlen);
  free(kdir);
  if (rc != 0) return -1;
  if (cp_signkey_load(keypath, cp_cfg_str(CP_OPT_LOG_ORIGIN), true, &s->key, err, errlen) != 0) return -1;
  /* the subject key store: made for format 2; opened whenever it exists (format-2 entries the
   * register already holds are projected through it) */
  s->entry_format = (int)cp_cfg_int(CP_OPT_ENTRY_FORMAT);
  const char *sk = cp_cfg_str(CP_OPT_SUBJECT_KEYS);
  struct stat skst;
  if (s->entry_format == 2 || stat(sk, &skst) == 0) {
    char *skdir = cp_strdup(sk);
    rc = cp_mkdirs(dirname(skdir), 0700, err, errlen);
    free(skdir);
    if (rc != 0) return -1;
    if (cp_subject_store_open(sk, CP_SUBJECT_WRITER | (s->entry_format == 2 ? CP_SUBJECT_CREATE : 0u), &s->subjects, err, errlen) != 0) return -1;
    cp_log_info("subject key store open", CP_KV_STR("dir", sk), CP_KV_INT("entry_format", s->entry_format),
                CP_KV_INT("workers", (int64_t)cp_subject_store_workers(s->subjects)),
                CP_KV_INT("slots", (int64_t)cp_subject_store_slots(s->subjects)), CP_KV_END);
  }
  if (reg_open(dir, &s->key, &s->log, err, errlen) != 0) return -1;
  int64_t t0 = cp_mono_ms();
  s->index = signer_index_new();
  if (signer_index_build(s->index, s->log, &s->keys, &s->nkeys, err, errlen) != 0) return -1;
  if (reg_size(s->log) == 0 && append_genesis(s, err, errlen) != 0) return -1;
  if (check_current_key(s, err, errlen) != 0) return -1;
  /* publish the verifier key (vkey) and the list of every key ever used (vkeys) for tools */
  char vkey[REG_VKEY_MAX];
  if (cp_vkey_format(s->key.name, s->key.pk, vkey, sizeof vkey) != 0)
    return cp_err(err, errlen, "cannot format the verifier key");
  if (reg_vkeys_publish(dir, vkey, err, errlen) != 0) return -1;
  cp_log_info("register open", CP_KV_STR("dir", dir), CP_KV_INT("size", reg_size(s->log)),
              CP_KV_INT("events_indexed", signer_index_count(s->index)), CP_KV_INT("index_ms", cp_mono_ms() - t0),
              CP_KV_INT("shard", s->shard), CP_KV_END);

  int hwm = (int)cp_cfg_int(CP_OPT_BUS_HWM);
  s->zctx = zmq_ctx_new();
  if (s->zctx == NULL) return cp_err(err, errlen, "zmq_ctx_new failed");
  s->pull = cp_zmq_socket(s->zctx, ZMQ_PULL, cp_cfg_str(CP_OPT_SIGNER_BIND), true, hwm, SIGNER_MAX_RECORD_BYTES, err, errlen);
  if (s->pull == NULL) return -1;
  s->results = cp_zmq_socket(s->zctx, ZMQ_PUB, cp_cfg_str(CP_OPT_BUS_RESULTS_IN), false, hwm, 0, err, errlen);
  if (s->results == NULL) return -1;

  /* Redis is not needed to sign: without it the register still grows and Redis catches up later */
  char rerr[CP_ERRLEN];
  s->redis = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                          (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), rerr, sizeof rerr);
  if (s->redis == NULL) {
    cp_log_warn("redis unavailable at start; will retry", CP_KV_STR("error", rerr), CP_KV_END);
    s->redis_retry_at = cp_mono_ms() + SIGNER_REDIS_RETRY_MS;
  }
  signer_redis_apply(s);   /* re-apply what a crash between fsync and Redis left behind */
  return 0;
}

int signer_new(signer_t **out, char *err, size_t errlen) {
  signer_t *s = cp_xcalloc(1, sizeof *s);
  if (signer_open(s, err, errlen) != 0) {
    signer_destroy(&s);
    *out = NULL;
    return -1;
  }
  cp_log_info("signer started", CP_KV_INT("size", reg_size(s->log)), CP_KV_END);
  *out = s;
  return 0;
}

void signer_log_counts(const signer_t *s) {
  cp_log_info("signer stopping", CP_KV_INT("size", reg_size(s->log)), CP_KV_INT("appended", s->appended),
              CP_KV_INT("duplicates", s->duplicates), CP_KV_INT("dropped", s->dropped), CP_KV_END);
}

void signer_destroy(signer_t **sp) {
  signer_t *s = *sp;
  if (s == NULL) return;
  signer_batch_discard(s);
  cp_zmq_close(&s->pull);
  cp_zmq_close(&s->results);
  if (s->zctx != NULL) zmq_ctx_term(s->zctx);
  cp_redis_destroy(&s->redis);
  signer_index_destroy(&s->index);
  free(s->keys);
  reg_close(&s->log);
  cp_subject_store_close(&s->subjects);
  cp_signkey_wipe(&s->key);
  free(s);
  *sp = NULL;
}
