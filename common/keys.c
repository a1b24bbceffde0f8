/* keys.c -- the Redis key scheme: one builder per key family (see cp_keys.h). */
#include "cp_keys.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "cp_util.h"

static const char *build(cp_key_t *k, const char *fmt, ...) CP_PRINTF(2, 3);
static const char *build(cp_key_t *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(k->s, sizeof k->s, fmt, ap);
  va_end(ap);
  assert(n >= 0 && (size_t)n < sizeof k->s);   /* ids are bounded at the edges */
  (void)n;
  return k->s;
}

const char *cp_key_event(cp_key_t *k, const char *p, const char *e) { return build(k, CP_KEY_EVENT_FMT, p, e); }
bool cp_key_event_into(char *buf, size_t size, const char *p, const char *e) {
  int n = snprintf(buf, size, CP_KEY_EVENT_FMT, p, e);
  if (n >= 0 && (size_t)n < size) return true;
  if (size > 0) buf[0] = '\0';
  return false;
}
const char *cp_key_event_of_member(cp_key_t *k, const char *m, size_t len) {
  return build(k, "cp:ev:{%.*s}", (int)len, m);
}
const char *cp_key_pending(void) { return CP_KEY_PENDING; }
const char *cp_key_pending_member(cp_key_t *k, const char *p, const char *e) { return build(k, "%s:%s", p, e); }

const char *cp_key_w_entries(cp_key_t *k, const char *hex) { return build(k, CP_KEY_W_ENTRIES_FMT, hex); }
const char *cp_key_w_openings(cp_key_t *k, const char *hex) { return build(k, CP_KEY_W_OPENINGS_FMT, hex); }
const char *cp_key_w_cc(cp_key_t *k, const char *hex) { return build(k, CP_KEY_W_CC_FMT, hex); }
const char *cp_key_w_awards(cp_key_t *k, const char *hex) { return build(k, CP_KEY_W_AWARDS_FMT, hex); }
const char *cp_key_w_award_gen(cp_key_t *k, const char *hex) { return build(k, CP_KEY_W_AWARD_GEN_FMT, hex); }

const char *cp_key_consent(cp_key_t *k, const char *hex) { return build(k, CP_KEY_CONSENT_FMT, hex); }
const char *cp_key_emp_staff(cp_key_t *k, const char *emp) { return build(k, CP_KEY_EMP_STAFF_FMT, emp); }
const char *cp_key_w_consents(cp_key_t *k, const char *hex) { return build(k, CP_KEY_W_CONSENTS_FMT, hex); }
const char *cp_key_w_consent_requests(cp_key_t *k, const char *hex) { return build(k, "cp:w:{%s}:cn_req", hex); }

const char *cp_key_award_wd(void) { return CP_KEY_AWARD_WD; }
const char *cp_key_award_wd_field(cp_key_t *k, const char *code, uint64_t gen, const char *hex) {
  return build(k, "%s:%" PRIu64 ":%s", code, gen, hex);
}

const char *cp_key_reg_indexed(cp_key_t *k, int shard) { return build(k, CP_KEY_REG_INDEXED_FMT, shard); }

const char *cp_key_nt_delivery(cp_key_t *k, const char *id) { return build(k, "cp:nt:d:{%s}", id); }
const char *cp_key_nt_due(void) { return "cp:nt:due"; }
const char *cp_key_outbox(void) { return "cp:{outbox}"; }
const char *cp_key_nt_dead(void) { return "cp:nt:dead"; }
const char *cp_key_exp_due(void) { return "cp:exp:due"; }
const char *cp_key_exp_lease(void) { return "cp:exp:lease"; }
const char *cp_key_exp(cp_key_t *k, uint64_t index) { return build(k, "cp:exp:{%" PRIu64 "}", index); }
const char *cp_key_sub(cp_key_t *k, const char *id) { return build(k, "cp:sub:{%s}", id); }
const char *cp_key_w_subs(cp_key_t *k, const char *hex) { return build(k, "cp:w:{%s}:subs", hex); }
const char *cp_key_w_profile(cp_key_t *k, const char *hex) { return build(k, "cp:w:{%s}:profile", hex); }

const char *cp_key_sc(cp_key_t *k, const char *hash) { return build(k, "cp:sc:{%s}", hash); }
const char *cp_key_scid(cp_key_t *k, const char *id) { return build(k, "cp:scid:{%s}", id); }
const char *cp_key_scid_subs(cp_key_t *k, const char *id) { return build(k, "cp:scid:{%s}:subs", id); }
const char *cp_key_scid_sub_urls(cp_key_t *k, const char *id) { return build(k, "cp:scid:{%s}:sub_urls", id); }
const char *cp_key_w_sc(cp_key_t *k, const char *hex) { return build(k, "cp:w:{%s}:sc", hex); }
const char *cp_key_w_views(cp_key_t *k, const char *hex) { return build(k, "cp:w:{%s}:views", hex); }
const char *cp_key_rl_ip(cp_key_t *k, const char *addr) { return build(k, "cp:rl:ip:{%s}", addr); }
const char *cp_key_rl_code(cp_key_t *k, const char *hash) { return build(k, "cp:rl:code:{%s}", hash); }
const char *cp_key_rl_emp(cp_key_t *k, const char *id) { return build(k, "cp:rl:emp:{%s}", id); }
const char *cp_key_emp_subs(cp_key_t *k, const char *id) { return build(k, "cp:emp:{%s}:subs", id); }
const char *cp_key_emp_seen(cp_key_t *k, const char *id) { return build(k, "cp:emp:{%s}:staff_seen", id); }
