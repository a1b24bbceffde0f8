/* notify_expiry_scan.c -- the expiry scan of the service loop: every EXPIRY_SCAN_MS, the
 * webhooks of records passing an expiry threshold today (notify_expiry.c does the work). */
#include "notify_expiry_scan.h"
#include "notify_expiry.h"
#include "cp_dates.h"
#include "cp_log.h"

#define EXPIRY_LEASE_MS 30000    /* an expiry scan's hold on a record (a dead replica's comes back) */

/* Every EXPIRY_SCAN_MS: webhooks for records passing an expiry threshold today. */
void nt_expiry_scan_turn(nt_service_t *s) {
  char err[CP_ERRLEN];
  int64_t mono = cp_mono_ms();
  if (mono < s->next_scan || nt_loop_redis_paused(s)) return;
  s->next_scan = mono + s->scan_every_ms;
  size_t emitted = 0, created = 0;
  int rc = nt_expiry_scan(s->redis, s->providers, cp_today(), cp_now_ms(), EXPIRY_LEASE_MS,
                          s->scan_batch, &emitted, &created, err, sizeof err);
  s->st.expiry_records += emitted;
  s->st.fanout += created;
  if (rc < 0) nt_loop_redis_failed(s, err);
  if (created) s->next_claim = 0;
  if (emitted == s->scan_batch) s->next_scan = mono;   /* more may be waiting */
  if (emitted)
    cp_log_info("expiry scan", CP_KV_INT("records", emitted), CP_KV_INT("deliveries", created), CP_KV_END);
}

