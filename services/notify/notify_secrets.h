/* notify_secrets.h -- which webhook secrets sign a delivery: a provider's from the secret store
 * (CAREPASS_WEBHOOK_SECRETS, followed on disk), a subscription's as the claim read it from its
 * hash; the worker's own webhook has none (v1a only). */
#ifndef NOTIFY_SECRETS_H
#define NOTIFY_SECRETS_H

#include <stdint.h>
#include "cp_catalogue.h"
#include "cp_util.h"
#include "notify_retry.h"
#include "notify_sign.h"

typedef struct nt_secrets_src nt_secrets_src_t;

/* Open the store at path (a missing file: no provider has a secret yet). providers is borrowed:
 * it tells an older delivery (no recipient stored) that goes to its provider's webhook. */
int nt_secrets_src_new(const char *path, const prov_registry_t *providers, nt_secrets_src_t **out,
                       char *err, size_t errlen) CP_WUR;
void nt_secrets_src_destroy(nt_secrets_src_t **src);
/* Re-read the store when it changed (cheap; call every turn). */
void nt_secrets_src_refresh(nt_secrets_src_t *src);
/* The secrets that sign c's attempt at now_s into *out (n = 0: v1a only). A provider without a
 * secret is logged once (its id, never a secret). */
void nt_secrets_for(void *src, const nt_claimed_t *c, int64_t now_s, nt_secrets_t *out);

#endif
