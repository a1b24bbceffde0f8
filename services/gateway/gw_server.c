/* gw_server.c -- the gateway's lifecycle: configuration, start (Redis script, bus sockets, keys,
 * the committed-ack waiter, the event loops), its turn (key refresh) and stop in reverse order. */
#include "gw.h"
#include "gw_metrics.h"
#include "gw_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cp_config.h"
#include "cp_ingest.h"
#include "cp_log.h"
#include "cp_zmq.h"
#include "gw_internal.h"
#include "gw_loop.h"
#include "gw_wait.h"

#define GW_KEYS_REFRESH_MS 2000 /* how often the verifier and notify keys are re-read */

/* host:port of the option `name` into host (256 bytes) and *port. */
static int parse_bind(const char *name, const char *bind, char host[256], int *port_out, char *err,
                      size_t errlen) {
  const char *colon = strrchr(bind, ':');
  if (colon == NULL || colon == bind || (size_t)(colon - bind) >= 256)
    return cp_err(err, errlen, "CAREPASS_%s=%s: expected host:port", name, bind);
  memcpy(host, bind, (size_t)(colon - bind));
  host[colon - bind] = '\0';
  char *end = NULL;
  long port = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
    return cp_err(err, errlen, "CAREPASS_%s=%s: bad port", name, bind);
  *port_out = (int)port;
  return 0;
}

static int load_config(gw_config_t *cfg, char *err, size_t errlen) {
  if (parse_bind("GATEWAY_BIND", cp_cfg_str(CP_OPT_GATEWAY_BIND), cfg->bind_host, &cfg->port, err, errlen) != 0)
    return -1;
  const char *mb = cp_cfg_str(CP_OPT_GATEWAY_METRICS_BIND);
  if (mb[0] != '\0' &&
      parse_bind("GATEWAY_METRICS_BIND", mb, cfg->metrics_host, &cfg->metrics_port, err, errlen) != 0)
    return -1;
  if (gw_proxies_parse(cp_cfg_str(CP_OPT_GATEWAY_TRUSTED_PROXIES), cfg, err, errlen) != 0) return -1;
  const char *fh = cp_cfg_str(CP_OPT_GATEWAY_FORWARDED_HEADER);
  if (strcasecmp(fh, "forwarded") == 0) cfg->forwarded_rfc7239 = true;
  else if (strcasecmp(fh, "x-forwarded-for") != 0)
    return cp_err(err, errlen, "CAREPASS_GATEWAY_FORWARDED_HEADER=%s: expected x-forwarded-for or forwarded", fh);
  cfg->head_timeout_s = (int)cp_cfg_int(CP_OPT_GATEWAY_HEAD_TIMEOUT_S);
  cfg->min_body_rate = (int)cp_cfg_int(CP_OPT_GATEWAY_MIN_BODY_RATE);
  cfg->reserved_pct = (int)cp_cfg_int(CP_OPT_GATEWAY_RESERVED_PCT);
  cfg->few_connections = (int)cp_cfg_int(CP_OPT_GATEWAY_FEW_CONNECTIONS);
  cfg->fails_per_address = (int)cp_cfg_int(CP_OPT_GATEWAY_CHECK_FAILS_PER_ADDRESS);
  cfg->fails_per_code = (int)cp_cfg_int(CP_OPT_GATEWAY_CHECK_FAILS_PER_CODE);
  cfg->fails_per_employer = (int)cp_cfg_int(CP_OPT_GATEWAY_CHECK_FAILS_PER_EMPLOYER);
  cfg->subs_per_code = (int)cp_cfg_int(CP_OPT_GATEWAY_SUBS_PER_CODE);
  cfg->subs_per_worker = (int)cp_cfg_int(CP_OPT_GATEWAY_SUBS_PER_WORKER);
  cfg->consents_per_worker = (int)cp_cfg_int(CP_OPT_GATEWAY_CONSENTS_PER_WORKER);
  cfg->entry_format = (int)cp_cfg_int(CP_OPT_ENTRY_FORMAT);
  cfg->secret_overlap_s = cp_cfg_int(CP_OPT_WEBHOOK_SECRET_OVERLAP_S);
  cfg->threads = (int)cp_cfg_int(CP_OPT_GATEWAY_THREADS);
  cfg->max_body = (size_t)cp_cfg_int(CP_OPT_GATEWAY_MAX_BODY);
  cfg->timeout_s = (int)cp_cfg_int(CP_OPT_GATEWAY_TIMEOUT_S);
  cfg->per_ip_limit = (int)cp_cfg_int(CP_OPT_GATEWAY_PER_IP_LIMIT);
  cfg->max_connections = (int)cp_cfg_int(CP_OPT_GATEWAY_MAX_CONNECTIONS);
  cfg->conn_memory = (size_t)cp_cfg_int(CP_OPT_GATEWAY_CONN_MEMORY);
  cfg->max_batch = (size_t)cp_cfg_int(CP_OPT_MAX_BATCH);
  cfg->ack_timeout_ms = cp_cfg_int(CP_OPT_ACK_TIMEOUT_MS);
  cfg->redrive_after_ms = cp_cfg_int(CP_OPT_REDRIVE_AFTER_MS);
  cfg->outbox_max = cp_cfg_int(CP_OPT_OUTBOX_MAX);
  snprintf(cfg->redis_host, sizeof cfg->redis_host, "%s", cp_cfg_str(CP_OPT_REDIS_HOST));
  cfg->redis_port = (int)cp_cfg_int(CP_OPT_REDIS_PORT);
  cfg->redis_timeout_ms = (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS);
  snprintf(cfg->register_dir, sizeof cfg->register_dir, "%s", cp_cfg_str(CP_OPT_REGISTER_DIR));
  snprintf(cfg->log_origin, sizeof cfg->log_origin, "%s", cp_cfg_str(CP_OPT_LOG_ORIGIN));
  return 0;
}

int gw_new(gw_t **out, char *err, size_t errlen) {
  *out = NULL;
  gw_t *gw = cp_xcalloc(1, sizeof *gw);
  pthread_mutex_init(&gw->reg_lock, NULL);
  pthread_mutex_init(&gw->push_lock, NULL);
  pthread_mutex_init(&gw->redis_lock, NULL);
  pthread_mutex_init(&gw->keys_lock, NULL);
  int hwm = (int)cp_cfg_int(CP_OPT_BUS_HWM);
  gw->metrics = gw_metrics_new();
  if (load_config(&gw->cfg, err, errlen) != 0) goto err;
  if (prov_load(cp_cfg_str(CP_OPT_PROVIDERS), &gw->providers, err, errlen) != 0) goto err;
  if (emp_load(cp_cfg_str(CP_OPT_EMPLOYERS), &gw->employers, err, errlen) != 0) goto err;
  if (cat_load(cp_cfg_str(CP_OPT_CATALOGUE), &gw->catalogue, err, errlen) != 0) goto err;
  if (roles_load(cp_cfg_str(CP_OPT_ROLES), gw->catalogue, &gw->roles, err, errlen) != 0) goto err;
  if (ascwds_load(cp_cfg_str(CP_OPT_ASCWDS_CATEGORIES), gw->catalogue, &gw->ascwds, err, errlen) != 0) goto err;
  if (cp_secret_load(cp_cfg_str(CP_OPT_TOKEN_SECRET), true, gw->token_secret, err, errlen) != 0) goto err;
  if (cp_secret_load(cp_cfg_str(CP_OPT_PSEUDONYM_SECRET), true, gw->pseudonym_secret, err, errlen) != 0) goto err;
  if (cp_secret_load(cp_cfg_str(CP_OPT_SHARE_CODE_SECRET), true, gw->share_code_secret, err, errlen) != 0) goto err;
  if (cp_token_revlist_new(cp_cfg_str(CP_OPT_REVOKED_TOKENS), &gw->revoked, err, errlen) != 0) goto err;

  /* Redis must be reachable at start (to load the claim script); later outages give 503s */
  cp_redis_t *r = cp_redis_new(gw->cfg.redis_host, gw->cfg.redis_port, gw->cfg.redis_timeout_ms, err, errlen);
  if (r == NULL) goto err;
  int rc = ing_store_init(r, err, errlen);
  cp_redis_destroy(&r);
  if (rc != 0) goto err;

  gw->zctx = zmq_ctx_new();
  if (gw->zctx == NULL) {
    cp_err(err, errlen, "zmq_ctx_new: %s", zmq_strerror(errno));
    goto err;
  }
  gw->verify_push = cp_zmq_socket(gw->zctx, ZMQ_PUSH, cp_cfg_str(CP_OPT_BUS_VERIFY_IN), false, hwm, 0, err, errlen);
  if (gw->verify_push == NULL) goto err;
  gw_keys_refresh(gw);
  gw_metrics_describe_core(gw);
  if (gw_waiter_new(&gw->waiter, gw, err, errlen) != 0) goto err;
  if (gw_loops_new(&gw->loops, gw, err, errlen) != 0) goto err;
  if (gw_ops_start(gw, err, errlen) != 0) goto err;
  cp_log_info("gateway listening", CP_KV_STR("host", gw->cfg.bind_host), CP_KV_INT("port", gw->cfg.port),
              CP_KV_INT("threads", gw->cfg.threads), CP_KV_INT("routes", gw_routes_len),
              CP_KV_INT("providers", prov_count(gw->providers)), CP_KV_INT("trusted_proxies", gw->cfg.trusted.n),
              CP_KV_END);
  *out = gw;
  return 0;
err:
  gw_destroy(&gw);
  return -1;
}

int gw_turn(gw_t *gw, int timeout_ms) {
  int64_t now = cp_mono_ms();
  if (now >= gw->next_keys_ms) {
    gw_keys_refresh(gw); /* the signer and notify may create their keys after we start */
    gw->next_keys_ms = now + GW_KEYS_REFRESH_MS;
  }
  usleep((useconds_t)timeout_ms * 1000); /* the loops and the waiter serve on their own threads */
  return 0;
}

int gw_drain(gw_t *gw) {
  cp_log_info("gateway stopping", CP_KV_END);
  /* answer the requests waiting for committed acks (they are suspended: MHD cannot stop while a
   * connection is suspended; the loops send the answers), then stop the loops (each answers its
   * queued checks first) */
  gw_waiter_drain(gw->waiter);
  gw_loops_stop(gw->loops);
  gw_ops_stop(gw);
  return 0;
}

void gw_destroy(gw_t **gwp) {
  if (gwp == NULL || *gwp == NULL) return;
  gw_t *gw = *gwp;
  /* the order of gw_drain (it may not have run: a start-up failure), then the daemons */
  gw_waiter_drain(gw->waiter);
  gw_ops_stop(gw);
  gw_loops_destroy(&gw->loops);
  gw_waiter_destroy(&gw->waiter);
  cp_zmq_close(&gw->verify_push);
  if (gw->zctx != NULL) zmq_ctx_term(gw->zctx);
  for (size_t i = 0; i < gw->nredis; i++) cp_redis_destroy(&gw->redis_all[i]);
  free(gw->redis_all);
  reg_close(&gw->reg);
  prov_destroy(&gw->providers);
  emp_destroy(&gw->employers);
  roles_destroy(&gw->roles);
  ascwds_destroy(&gw->ascwds);
  cat_destroy(&gw->catalogue);
  gw_metrics_destroy(&gw->metrics);
  sodium_memzero(gw->token_secret, sizeof gw->token_secret);
  sodium_memzero(gw->pseudonym_secret, sizeof gw->pseudonym_secret);
  sodium_memzero(gw->share_code_secret, sizeof gw->share_code_secret);
  cp_token_revlist_destroy(&gw->revoked);
  pthread_mutex_destroy(&gw->reg_lock);
  pthread_mutex_destroy(&gw->push_lock);
  pthread_mutex_destroy(&gw->redis_lock);
  pthread_mutex_destroy(&gw->keys_lock);
  free(gw);
  *gwp = NULL;
}
