/* verify_loop.c -- verify's lifecycle, sockets and its receive loop: take batches off the bus, run them. */
#include "verify.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_dates.h"
#include "cp_log.h"
#include "cp_service.h"
#include "cp_zmq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define COUNTS_LOG_MS 30000     /* counters log line, when they changed */
#define REDIS_RETRY_MS 500      /* pause before retrying a batch after a Redis failure */

static void sleep_ms(int ms) {
  (void)zmq_poll(NULL, 0, ms);   /* interruptible by signals, unlike a busy loop */
}

/* Connect to Redis, retrying until it answers or a stop is requested. */
static cp_redis_t *redis_connect(char *err, size_t errlen) {
  int64_t last_log = 0;
  for (;;) {
    cp_redis_t *r = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                                 (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, errlen);
    if (r != NULL || cp_stop_requested)
      return r;
    if (cp_mono_ms() - last_log >= 5000) {
      cp_log_warn("waiting for redis", CP_KV_STR("error", err), CP_KV_END);
      last_log = cp_mono_ms();
    }
    sleep_ms(1000);
  }
}

int verify_new(verify_t **out, cat_catalogue_t **cat, prov_registry_t **reg, char *err,
               size_t errlen) {
  verify_t *v = cp_xcalloc(1, sizeof *v);
  *out = NULL;
  v->cat = *cat;
  *cat = NULL;
  v->reg = *reg;
  *reg = NULL;
  v->items = cp_xcalloc(VERIFY_BATCH_MAX, sizeof *v->items);
  v->last_counts = cp_mono_ms();
  v->redrive_after_ms = cp_cfg_int(CP_OPT_REDRIVE_AFTER_MS);
  int hwm = (int)cp_cfg_int(CP_OPT_BUS_HWM);
  char *list = NULL;
  /* the award ids' key: made by the first replica to start, read by the others (cp_secret_load) */
  if (cp_secret_load(cp_cfg_str(CP_OPT_AWARD_TAG_SECRET), true, v->award_secret, err, errlen) != 0)
    goto err;
  v->redis = redis_connect(err, errlen);
  if (v->redis == NULL)
    goto err;
  v->zctx = zmq_ctx_new();
  if (v->zctx == NULL) {
    cp_err(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
    goto err;
  }
  v->pull = cp_zmq_socket(v->zctx, ZMQ_PULL, cp_cfg_str(CP_OPT_BUS_VERIFY_OUT), false, hwm,
                          VERIFY_MAX_EVENT_BYTES, err, errlen);
  if (v->pull == NULL)
    goto err;
  v->results = cp_zmq_socket(v->zctx, ZMQ_PUB, cp_cfg_str(CP_OPT_BUS_RESULTS_IN), false, hwm, 0, err, errlen);
  if (v->results == NULL)
    goto err;
  /* One PUSH socket per signer shard, in the order of CAREPASS_SIGNER_ENDPOINTS. */
  list = cp_strdup(cp_cfg_str(CP_OPT_SIGNER_ENDPOINTS));
  size_t cap = 1;
  for (const char *c = list; *c; c++)
    cap += *c == ',';
  v->shards = cp_xcalloc(cap, sizeof *v->shards);
  char *save = NULL;
  for (char *ep = strtok_r(list, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
    while (*ep == ' ')
      ep++;
    if (*ep == '\0')
      continue;
    v->shards[v->nshards] = cp_zmq_socket(v->zctx, ZMQ_PUSH, ep, false, hwm, 0, err, errlen);
    if (v->shards[v->nshards] == NULL)
      goto err;
    v->nshards++;
  }
  if (v->nshards == 0) {
    cp_err(err, errlen, "CAREPASS_SIGNER_ENDPOINTS names no endpoint");
    goto err;
  }
  free(list);
  cp_log_info("verify running", CP_KV_INT("shards", v->nshards),
              CP_KV_INT("qualifications", cat_count(v->cat)), CP_KV_INT("providers", prov_count(v->reg)),
              CP_KV_END);
  *out = v;
  return 0;
err:
  free(list);
  verify_destroy(&v);
  return -1;
}

/* Free the events of the batch in hand and clear their slots. */
static void items_clear(verify_item_t *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (items[i].ev != NULL)
      protobuf_c_message_free_unpacked(&items[i].ev->base, NULL);
    memset(&items[i], 0, sizeof items[i]);
  }
}

void verify_destroy(verify_t **vp) {
  verify_t *v = *vp;
  if (v == NULL)
    return;
  for (size_t i = 0; i < v->nshards; i++)
    cp_zmq_close(&v->shards[i]);
  free(v->shards);
  cp_zmq_close(&v->pull);
  cp_zmq_close(&v->results);
  if (v->zctx != NULL)
    zmq_ctx_term(v->zctx);
  cp_redis_destroy(&v->redis);
  free(v->items);
  prov_destroy(&v->reg);
  cat_destroy(&v->cat);
  sodium_memzero(v->award_secret, sizeof v->award_secret);
  free(v);
  *vp = NULL;
}

/* Receive one message (one frame expected) and turn it into a batch item. False when
 * nothing was waiting. A bad message becomes a VITEM_DROP item (counted, logged). */
static bool recv_item(verify_t *v, verify_item_t *it) {
  uint8_t *buf = NULL;
  size_t len = 0;
  char err[CP_ERRLEN];
  memset(it, 0, sizeof *it);
  if (cp_zmq_recv_frame(v->pull, &buf, &len, ZMQ_DONTWAIT) != 0)
    return false;
  v->counts.received++;
  int more = 0;
  size_t ml = sizeof more;
  bool extra = false;
  while (zmq_getsockopt(v->pull, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
    uint8_t *b2;
    size_t l2;
    if (cp_zmq_recv_frame(v->pull, &b2, &l2, 0) != 0)
      break;
    free(b2);
    extra = true;
  }
  it->state = VITEM_DROP;
  it->ev = extra ? NULL : (Carepass__V1__PendingEvent *)cp_pb_unpack(
      &carepass__v1__pending_event__descriptor, buf, len, VERIFY_MAX_EVENT_BYTES, err, sizeof err);
  free(buf);
  if (it->ev == NULL) {
    v->counts.malformed++;
    cp_log_warn("dropped a bad message from the bus", CP_KV_STR("error", extra ? "multipart" : err), CP_KV_END);
    return true;
  }
  const Carepass__V1__PendingEvent *ev = it->ev;
  bool fits = cp_key_event_into(it->key, sizeof it->key, ev->provider_id, ev->provider_event_id);
  if (ev->provider_id[0] == '\0' || ev->provider_event_id[0] == '\0' || !fits ||
      strlen(ev->revokes_event_id) > (strcmp(ev->provider_id, VERIFY_OPERATOR_PROVIDER) == 0
                                          ? VERIFY_OPERATOR_TARGET_MAX : 64)) {
    v->counts.malformed++;
    cp_log_warn("dropped an event without a usable provider / event id", CP_KV_END);
    return true;
  }
  it->usable = true;   /* the batch stages decide its state */
  return true;
}

void verify_log_counts(const verify_t *v) {
  const verify_counts_t *c = &v->counts;
  cp_log_info("counts", CP_KV_INT("received", c->received), CP_KV_INT("passed", c->passed),
              CP_KV_INT("rejected", c->rejected), CP_KV_INT("replayed", c->replayed),
              CP_KV_INT("awards", c->awards), CP_KV_INT("award_redrives", c->award_redrives),
              CP_KV_INT("award_late_withdrawals", c->award_late_withdrawals),
              CP_KV_INT("award_late_revokes", c->award_late_revokes),
              CP_KV_INT("malformed", c->malformed),
              CP_KV_INT("redis_errors", c->redis_errors), CP_KV_END);
}

int verify_turn(verify_t *v, int timeout_ms) {
  int64_t now = cp_mono_ms();
  if (now - v->last_counts >= COUNTS_LOG_MS) {
    if (v->counts.received != v->logged_received)
      verify_log_counts(v);
    v->logged_received = v->counts.received;
    v->last_counts = now;
  }
  if (now - v->last_wd >= VERIFY_AWARD_WD_TICK_MS) {
    /* late award withdrawals: a Redis failure here is retried on the next tick */
    if (verify_awards_withdraw_tick(v) != 0) {
      v->counts.redis_errors++;
      cp_log_warn("redis failed; late award withdrawals retried later",
                  CP_KV_STR("error", cp_redis_errstr(v->redis)), CP_KV_END);
      if (cp_redis_reconnect(v->redis) != 0) {
        /* still down: the next tick fails fast and tries again */
      }
    }
    v->last_wd = cp_mono_ms();
  }
  zmq_pollitem_t pi = {.socket = v->pull, .events = ZMQ_POLLIN};
  if (zmq_poll(&pi, 1, timeout_ms) <= 0)
    return 0;
  verify_item_t *items = v->items;
  size_t n = 0;
  while (n < VERIFY_BATCH_MAX && recv_item(v, &items[n]))
    n++;
  if (n == 0)
    return 0;
  int32_t today = cp_today();
  while (verify_batch(v, items, n, today) != 0) {
    /* Nothing was sent: reconnect and run the same batch again (every write is idempotent).
     * If we are stopping instead, the events stay pending in Redis and intake redrives them. */
    v->counts.redis_errors++;
    cp_log_warn("redis failed; retrying batch", CP_KV_STR("error", cp_redis_errstr(v->redis)),
                CP_KV_INT("events", n), CP_KV_END);
    if (cp_stop_requested)
      break;
    sleep_ms(REDIS_RETRY_MS);
    if (cp_redis_reconnect(v->redis) != 0) {
      /* still down: the next attempt fails fast and we wait again */
    }
  }
  items_clear(items, n);
  return 0;
}
