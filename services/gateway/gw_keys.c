/* gw_keys.c -- the public keys the gateway publishes: GET /v1/vkey (the register's note verifier
 * key, <REGISTER_DIR>/vkey written by the signer) and GET /v1/webhook-key (notify's Standard
 * Webhooks public key "whpk_...", <dir of NOTIFY_SIGNING_KEY>/notify.pub written by notify). */
#include "gw_internal.h"
#include "gw_http.h"
#include "gw_core_routes.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_config.h"

/* First line of a small text file into out ("" when unreadable). */
static void read_line(const char *path, char *out, size_t outlen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  out[0] = '\0';
  if (cp_read_file(path, 4096, &buf, &len, NULL, 0) != 0) return;
  size_t n = strcspn((const char *)buf, "\r\n");
  if (n < outlen) {
    memcpy(out, buf, n);
    out[n] = '\0';
  }
  free(buf);
}

void gw_keys_refresh(gw_t *gw) {
  char path[4200], vkey[256], whpk[256];
  snprintf(path, sizeof path, "%s/vkey", gw->cfg.register_dir);
  read_line(path, vkey, sizeof vkey);
  char copy[4096];
  snprintf(copy, sizeof copy, "%s", cp_cfg_str(CP_OPT_NOTIFY_SIGNING_KEY));
  snprintf(path, sizeof path, "%s/notify.pub", dirname(copy));
  read_line(path, whpk, sizeof whpk);
  pthread_mutex_lock(&gw->keys_lock);
  /* keep the last good value if a file is briefly unreadable */
  if (vkey[0]) snprintf(gw->vkey, sizeof gw->vkey, "%s", vkey);
  if (whpk[0] && strncmp(whpk, "whpk_", 5) == 0) snprintf(gw->webhook_key, sizeof gw->webhook_key, "%s", whpk);
  pthread_mutex_unlock(&gw->keys_lock);
}

static void reply_key(gw_req_t *req, const char *which, bool vkey) {
  gw_t *gw = req->gw;
  char key[260];
  pthread_mutex_lock(&gw->keys_lock);
  snprintf(key, sizeof key, "%s", vkey ? gw->vkey : gw->webhook_key);
  pthread_mutex_unlock(&gw->keys_lock);
  if (key[0] == '\0') {
    gw_keys_refresh(gw);
    pthread_mutex_lock(&gw->keys_lock);
    snprintf(key, sizeof key, "%s", vkey ? gw->vkey : gw->webhook_key);
    pthread_mutex_unlock(&gw->keys_lock);
  }
  if (key[0] == '\0') {
    gw_reply_error(req, 404, GW_E_NOT_FOUND, "the %s is not published yet (has the %s started?)", which,
                   vkey ? "signer" : "notify service");
    return;
  }
  size_t n = strlen(key);
  key[n++] = '\n';
  gw_reply_bytes(req, 200, "text/plain; charset=utf-8", key, n);
  gw_reply_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=300");
}

void gw_vkey_get(gw_req_t *req) { reply_key(req, "register verifier key", true); }
void gw_webhook_key_get(gw_req_t *req) { reply_key(req, "webhook public key", false); }
