/* verify_withdraw.c -- late award withdrawals: revoke an award withdrawn before it committed, once it has.
 *
 * verify_awards_revoke records in HASH cp:award_wd (see cp_keys.h) an award it withdrew while the
 * award was issued but not yet on the register: field "<code>:<gen>:<pseudonym hex>", value
 * "<unix ms last sent, 0 = never> <date of the standard's revocation> <the award's event id>".
 * The id is the one the award has (keyed, or legacy for an award issued before keyed ids); a
 * record written before the third token existed has none, and its award is the legacy one
 * (proj_award_id_at). `carepass reindex` writes
 * the same record when the register holds an award, then a revocation of a standard it requires,
 * and no revocation of the award. Each tick looks at up to VERIFY_AWARD_WD_SCAN fields (HSCAN, the
 * cursor kept between ticks) and, per record, at the award's event and its revocation's event:
 *   revocation committed                   -> done: HDEL the record
 *   award committed, revoked_by ours/unset -> send the revocation (same event id and reason as a
 *                                             withdrawal of a committed award; the signer
 *                                             de-duplicates by event id), again after
 *                                             VERIFY_AWARD_WD_RESEND_MS while not committed
 *   award committed, revoked by another    -> HDEL (that other revocation withdrew it)
 *   award accepted (pending)               -> wait: it reaches the register, by the signer's queue
 *                                             or by intake's redrive (verify_awards_redrive)
 *   award rejected or unknown              -> HDEL: it will not reach the register
 * Several replicas may do the same at once: every step is idempotent. */
#include "verify.h"
#include "cp_keys.h"
#include "cp_log.h"
#include "cp_projection.h"
#include "cp_util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One record of cp:award_wd, parsed. */
typedef struct {
  char field[VERIFY_KEY_MAX];         // the hash field, as stored
  const cat_qual_t *award;            // the derived award (NULL: unusable record, deleted)
  uint64_t gen;                       // its generation
  char hex[2 * CP_PSEUDONYM_BYTES + 1]; // the worker's pseudonym, hex
  uint8_t pseudonym[CP_PSEUDONYM_BYTES]; // the same, bytes
  int64_t sent_ms;                    // when its revocation was last sent (0 = never)
  char date[24];                      // completion date for the revocation entry ("" if none)
  char award_id[VERIFY_AWARD_ID_MAX]; // the award's event id
  char revoke_id[VERIFY_AWARD_ID_MAX]; // its revocation's event id
} wd_rec_t;

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Parse field "<code>:<gen>:<hex>" and value "<sent ms> <date> <award id>" (the id absent in
 * records from before it was written; the date may be empty); false when unusable. */
static bool parse_rec(const verify_t *v, const redisReply *f, const redisReply *val, wd_rec_t *rec) {
  char buf[64 + VERIFY_AWARD_ID_MAX];
  memset(rec, 0, sizeof *rec);
  if (!cp_redis_reply_copy(f, rec->field, sizeof rec->field))
    return false;
  const char *c1 = strchr(rec->field, ':');
  const char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
  if (c1 == NULL || c2 == NULL || c1 == rec->field || (size_t)(c1 - rec->field) >= CAT_CODE_MAX)
    return false;
  char code[CAT_CODE_MAX];
  memcpy(code, rec->field, (size_t)(c1 - rec->field));
  code[c1 - rec->field] = '\0';
  rec->award = cat_find(v->cat, code);
  if (rec->award == NULL || !rec->award->derived)
    return false;
  char *end = NULL;
  if (c1[1] < '0' || c1[1] > '9')
    return false;
  unsigned long long g = strtoull(c1 + 1, &end, 10);
  if (end != c2)
    return false;
  rec->gen = (uint64_t)g;
  const char *h = c2 + 1;
  if (strlen(h) != 2 * CP_PSEUDONYM_BYTES)
    return false;
  for (size_t i = 0; i < CP_PSEUDONYM_BYTES; i++) {
    int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    rec->pseudonym[i] = (uint8_t)(hi << 4 | lo);
  }
  memcpy(rec->hex, h, 2 * CP_PSEUDONYM_BYTES + 1);
  if (!cp_redis_reply_copy(val, buf, sizeof buf))
    return false;
  long long sent = strtoll(buf, &end, 10);
  rec->sent_ms = (end != buf && sent > 0) ? (int64_t)sent : 0;
  while (*end == ' ')
    end++;
  /* "<date> <award id>", "<date>" (a record from before the id), or "<award id>" (no date): the
   * id is the last token, and no date starts with "award:" */
  char id[VERIFY_AWARD_ID_MAX] = "";
  char *sp = strrchr(end, ' ');
  char *tok = sp != NULL ? sp + 1 : end;
  if (strncmp(tok, "award:", 6) == 0) {
    if (strlen(tok) >= sizeof id)
      return false;
    memcpy(id, tok, strlen(tok) + 1);
    *tok = '\0';   /* what is before it is the date */
  }
  size_t dl = strlen(end);
  while (dl > 0 && end[dl - 1] == ' ')
    end[--dl] = '\0';
  snprintf(rec->date, sizeof rec->date, "%.23s", end);
  if (id[0] != '\0') {   /* it must be this record's award: its code, generation and worker */
    proj_award_ref_t ref;
    if (!proj_award_id_parse(id, &ref) || ref.gen != rec->gen || strcmp(ref.code, rec->award->code) != 0 ||
        !proj_award_ref_is_of(&ref, v->award_secret, rec->pseudonym))
      return false;
  }
  proj_award_id_at(rec->award->code, rec->hex, id, rec->gen, rec->award_id);
  return proj_award_revoke_id(rec->award_id, rec->revoke_id);
}

/* Record that the revocation of `field` was sent at `val`, only while the record is still there (a
 * replica may have finished it meanwhile). KEYS[1] cp:award_wd; ARGV[1] field, ARGV[2] value. */
static cp_redis_script_t touch_record = CP_REDIS_SCRIPT("touch late withdrawal", 1,
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end return 0");

/* Send the revocation of the committed award `rec` at register index `index`. */
static int send_late_revocation(verify_t *v, const wd_rec_t *rec, uint64_t index) {
  Carepass__V1__PendingEvent src = CAREPASS__V1__PENDING_EVENT__INIT;
  src.worker_pseudonym.data = (uint8_t *)rec->pseudonym;
  src.worker_pseudonym.len = CP_PSEUDONYM_BYTES;
  src.completion_date = (char *)rec->date;
  Carepass__V1__PendingEvent rev;
  char idbuf[VERIFY_AWARD_ID_MAX], revbuf[VERIFY_AWARD_ID_MAX];
  if (verify_award_revocation_event(&src, rec->award, rec->award_id, idbuf, revbuf, &rev) != 0)
    return 0;   /* cannot happen: parse_rec made rec->award_id an id of rec->award */
  Carepass__V1__VerifiedRecord vr = CAREPASS__V1__VERIFIED_RECORD__INIT;
  vr.event = &rev;
  vr.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION;
  vr.valid_until = (char *)"";
  vr.revokes_index = index;
  vr.reason_code = (char *)VERIFY_AWARD_REVOKE_REASON;
  if (verify_send_record(v, &vr) != 0)
    return -1;
  v->counts.award_late_revokes++;
  cp_log_info("derived award revoked after it committed", CP_KV_STR("award", rec->award->code),
              CP_KV_STR("event", idbuf), CP_KV_INT("revokes_index", index), CP_KV_END);
  return 0;
}

int verify_awards_withdraw_tick(verify_t *v) {
  if (v->wd_cursor[0] == '\0')
    snprintf(v->wd_cursor, sizeof v->wd_cursor, "0");
  char count[16];
  snprintf(count, sizeof count, "%d", VERIFY_AWARD_WD_SCAN);
  const char *scan[] = {"HSCAN", cp_key_award_wd(), v->wd_cursor, "COUNT", count};
  redisReply *r = cp_redis_cmd_argv(v->redis, 5, scan, NULL);
  if (r == NULL)
    return -1;
  int rc = 0;
  wd_rec_t *recs = NULL;
  bool *usable = NULL;
  cp_redis_handle_t *ha = NULL, *hr = NULL;
  size_t nrec = 0;
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  if (cp_redis_reply_array(r, 2) == NULL || r->element[1]->type != REDIS_REPLY_ARRAY) {
    cp_log_warn("redis: unexpected HSCAN reply", CP_KV_STR("key", cp_key_award_wd()), CP_KV_END);
    snprintf(v->wd_cursor, sizeof v->wd_cursor, "0");
    goto out;
  }
  if (!cp_redis_reply_copy(r->element[0], v->wd_cursor, sizeof v->wd_cursor))
    snprintf(v->wd_cursor, sizeof v->wd_cursor, "0");
  const redisReply *kv = r->element[1];
  nrec = kv->elements / 2;
  if (nrec == 0)
    goto out;
  recs = cp_xcalloc(nrec, sizeof *recs);
  usable = cp_xcalloc(nrec, sizeof *usable);
  ha = cp_xcalloc(nrec, sizeof *ha);
  hr = cp_xcalloc(nrec, sizeof *hr);

  /* The award's event and its revocation's event, per record. */
  for (size_t i = 0; i < nrec; i++) {
    usable[i] = parse_rec(v, kv->element[2 * i], kv->element[2 * i + 1], &recs[i]);
    cp_key_t key;
    if (!usable[i]) {
      if (recs[i].field[0] != '\0')
        cp_log_warn("unusable late award withdrawal record; deleted", CP_KV_END);
      continue;
    }
    ha[i] = cp_redis_pipe_cmd(p, "HMGET %s state index revoked_by",
                              cp_key_event(&key, VERIFY_AWARD_PROVIDER, recs[i].award_id));
    hr[i] = cp_redis_pipe_cmd(p, "HGET %s state", cp_key_event(&key, VERIFY_AWARD_PROVIDER, recs[i].revoke_id));
  }
  if (cp_redis_pipe_exec(p, v->redis) != 0) {
    rc = -1;
    goto out;
  }

  /* Decide; the Redis updates go in one pipeline after the sends. */
  int64_t now = cp_now_ms();
  uint64_t index[VERIFY_AWARD_WD_SCAN * 2];
  enum { WD_WAIT, WD_DONE, WD_SEND } act[VERIFY_AWARD_WD_SCAN * 2];
  size_t lim = nrec < CP_ARRAY_LEN(act) ? nrec : CP_ARRAY_LEN(act);   /* HSCAN COUNT is a hint */
  for (size_t i = 0; i < lim; i++) {
    act[i] = WD_DONE;
    if (!usable[i])
      continue;
    const redisReply *a = cp_redis_reply_array(cp_redis_pipe_reply(p, ha[i]), 3);
    const redisReply *rs = cp_redis_pipe_reply(p, hr[i]);
    if (a == NULL) {
      act[i] = WD_WAIT;   /* odd reply: look again next time */
      continue;
    }
    const redisReply *st = a->element[0], *ix = a->element[1], *by = a->element[2];
    char idx[24];
    char *end = NULL;
    if (cp_redis_reply_is_str(rs, "committed")) {
      act[i] = WD_DONE;
    } else if (cp_redis_reply_is_str(st, "committed")) {
      bool by_other = by->type == REDIS_REPLY_STRING && by->len > 0 && !cp_redis_reply_is_str(by, recs[i].revoke_id);
      if (by_other || !cp_redis_reply_copy(ix, idx, sizeof idx) || idx[0] == '\0') {
        act[i] = WD_DONE;
      } else {
        index[i] = (uint64_t)strtoull(idx, &end, 10);
        bool due = recs[i].sent_ms == 0 || now - recs[i].sent_ms >= VERIFY_AWARD_WD_RESEND_MS;
        act[i] = (end != NULL && *end == '\0') ? (due ? WD_SEND : WD_WAIT) : WD_DONE;
      }
    } else if (cp_redis_reply_is_str(st, "accepted")) {
      act[i] = WD_WAIT;
    } else {
      act[i] = WD_DONE;   /* rejected, or no such award: it will not reach the register */
    }
  }

  bool sent[VERIFY_AWARD_WD_SCAN * 2] = {false};   /* after a break below, the rest stay unsent */
  for (size_t i = 0; i < lim; i++) {
    if (!usable[i] || act[i] != WD_SEND)
      continue;
    if (send_late_revocation(v, &recs[i], index[i]) != 0)
      break;   /* stopping: the record stays, the next run sends it */
    sent[i] = true;
  }
  cp_redis_pipe_reset(p);
  for (size_t i = 0; i < lim; i++) {
    if (recs[i].field[0] == '\0')
      continue;
    if (act[i] == WD_DONE) {
      (void)cp_redis_pipe_cmd(p, "HDEL %s %s", cp_key_award_wd(), recs[i].field);
    } else if (act[i] == WD_SEND && sent[i]) {
      char val[64 + VERIFY_AWARD_ID_MAX];   /* the award id kept, so a later tick revokes the same award */
      snprintf(val, sizeof val, "%" PRId64 " %s %s", now, recs[i].date, recs[i].award_id);
      const char *argv[] = {cp_key_award_wd(), recs[i].field, val};
      (void)cp_redis_pipe_script(p, &touch_record, 3, argv, NULL);
    }
  }
  if (cp_redis_pipe_exec(p, v->redis) != 0)
    rc = -1;
out:
  cp_redis_pipe_destroy(&p);
  freeReplyObject(r);
  free(recs);
  free(usable);
  free(ha);
  free(hr);
  return rc;
}
