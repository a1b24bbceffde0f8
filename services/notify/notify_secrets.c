/* notify_secrets.c -- the webhook secrets (v1 signatures) of each delivery's recipient. */
#include "notify_secrets.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "cp_log.h"
#include "cp_whsec.h"

#define WARNED_MAX 4096   /* providers remembered as warned about (past it: no more warnings) */

struct nt_secrets_src {
  cp_whsec_follow_t *store;           // the providers' secret store, followed on disk
  const prov_registry_t *providers;   // the registry (borrowed): webhook URLs of older deliveries
  char (*warned)[PROV_ID_MAX];        // providers already warned about (no secret: v1a only)
  size_t nwarned;                     // entries used in warned
};

int nt_secrets_src_new(const char *path, const prov_registry_t *providers, nt_secrets_src_t **out,
                       char *err, size_t errlen) {
  nt_secrets_src_t *s = cp_xcalloc(1, sizeof *s);
  *out = NULL;
  s->providers = providers;
  if (cp_whsec_follow_new(path, &s->store, err, errlen) != 0) {
    free(s);
    return -1;
  }
  s->warned = cp_xcalloc(WARNED_MAX, sizeof *s->warned);
  cp_log_info("webhook secrets", CP_KV_STR("path", path),
              CP_KV_INT("providers", cp_whsec_store_count(cp_whsec_follow_store(s->store))), CP_KV_END);
  *out = s;
  return 0;
}

void nt_secrets_src_destroy(nt_secrets_src_t **sp) {
  nt_secrets_src_t *s = sp ? *sp : NULL;
  if (!s) return;
  cp_whsec_follow_destroy(&s->store);
  free(s->warned);
  free(s);
  *sp = NULL;
}

void nt_secrets_src_refresh(nt_secrets_src_t *s) { cp_whsec_follow_refresh(s->store); }

/* Add one secret (text) to out when it parses; false when it does not. */
static bool add_secret(nt_secrets_t *out, const char *text) {
  char err[CP_ERRLEN];
  if (out->n >= NT_SECRETS_MAX || !text[0]) return false;
  if (cp_whsec_parse(text, &out->key[out->n], err, sizeof err) != 0) return false;
  out->n++;
  return true;
}

static void warn_once(nt_secrets_src_t *s, const char *provider) {
  for (size_t i = 0; i < s->nwarned; i++)
    if (strcmp(s->warned[i], provider) == 0) return;
  if (s->nwarned < WARNED_MAX) snprintf(s->warned[s->nwarned++], PROV_ID_MAX, "%s", provider);
  cp_log_warn("provider has no webhook secret; its webhooks carry v1a (Ed25519) only until the operator makes "
              "one (carepass webhook-secret PROVIDER)",
              CP_KV_STR("provider", provider), CP_KV_END);
}

static void provider_secrets(nt_secrets_src_t *s, const char *provider, int64_t now_s, nt_secrets_t *out) {
  const cp_whsec_entry_t *e = cp_whsec_store_find(cp_whsec_follow_store(s->store), provider);
  if (!e) {
    warn_once(s, provider);
    return;
  }
  (void)add_secret(out, e->secret);   /* the store checked every secret when it loaded */
  if (e->previous[0] && e->previous_until > now_s) (void)add_secret(out, e->previous);
}

void nt_secrets_for(void *arg, const nt_claimed_t *c, int64_t now_s, nt_secrets_t *out) {
  nt_secrets_src_t *s = arg;
  memset(out, 0, sizeof *out);
  if (strncmp(c->to, "sub:", 4) == 0) {
    if (c->secret[0] && !add_secret(out, c->secret))
      cp_log_warn("subscription webhook secret unreadable; signed v1a only", CP_KV_STR("id", c->id),
                  CP_KV_STR("subscription", c->to + 4), CP_KV_END);
    if (c->prev_secret[0] && c->prev_until > now_s) (void)add_secret(out, c->prev_secret);
    return;
  }
  if (strncmp(c->to, "provider:", 9) == 0) {
    provider_secrets(s, c->to + 9, now_s, out);
    return;
  }
  if (c->to[0] == '\0') {   /* stored before recipients were: the provider's own webhook only */
    const prov_t *p = prov_find(s->providers, c->provider);
    if (p && p->webhook_url[0] && c->url && strcmp(p->webhook_url, c->url) == 0)
      provider_secrets(s, p->id, now_s, out);
  }
  /* "worker": the worker's own webhook has no secret (v1a only) */
}
