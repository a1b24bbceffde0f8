/* projection.c -- a committed register entry applied to the derived Redis state (see cp_projection.h). */
#include "cp_projection.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "carepass/v1/internal.pb-c.h"
#include "cp_crypto.h"
#include "cp_dates.h"
#include "cp_ingest.h"
#include "cp_keys.h"
#include "cp_log.h"
#include "cp_outbox.h"

#define AWARDS_PER_CODE 4   /* derived awards one code may count towards (the Care Certificate needs 1) */

struct proj {
  proj_mode_t mode;            // live (signer) or replay (reindex)
  const cat_catalogue_t *cat;  // catalogue: which codes derived awards require (replay only)
  int32_t today;               // day number an expiry schedule starts from (thresholds passed are skipped)
  const cp_subject_store_t *subjects;  // opens format-2 entries; NULL = none (proj_set_subjects)
};

/* Append a worker's index only once, so that applying an entry again adds nothing twice. */
static cp_redis_script_t rpush_once = CP_REDIS_SCRIPT("rpush once", 1,
    "if redis.call('LPOS', KEYS[1], ARGV[1]) == false then return redis.call('RPUSH', KEYS[1], ARGV[1]) end return 0");

/* Withdraw generation ARGV[2] of award ARGV[1] once (see proj_withdraw_award).
 * KEYS[1] cp:w:{hex}:award_gen, KEYS[2] cp:w:{hex}:awards (one hash slot). */
static cp_redis_script_t withdraw_award = CP_REDIS_SCRIPT("withdraw award", 2,
    "local g = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') "
    "if g == tonumber(ARGV[2]) then "
    "  redis.call('HINCRBY', KEYS[1], ARGV[1], 1) "
    "  redis.call('SREM', KEYS[2], ARGV[1]) "
    "  return 1 "
    "end "
    "return 0");

/* A derived award entry: held again, at the generation of its id. The generation is written only
 * when present already (a replay over built state: the revocations after it in the walk raise it
 * again), so a first award that was never withdrawn leaves no generation, as verify leaves it.
 * A keyed award's id becomes the code's "<code>:last" field, as verify's issue script writes it
 * (services/verify/verify_awards.c issue_award), so that a later revocation names the id the award
 * has; a legacy award (ARGV[3] "") writes none, as the verify that issued it wrote none, and every
 * reader falls back to the legacy id for it.
 * KEYS[1] cp:w:{hex}:awards, KEYS[2] cp:w:{hex}:award_gen; ARGV[1] code, ARGV[2] generation,
 * ARGV[3] the award's id when keyed, else "". */
static cp_redis_script_t award_held = CP_REDIS_SCRIPT("award held", 2,
    "redis.call('SADD', KEYS[1], ARGV[1]) "
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end "
    "if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[1] .. ':last', ARGV[3]) end "
    "return 0");

/* A revoked standard withdraws the award it counts towards when that award is held at this point
 * of the walk, as verify does (verify_awards_revoke): out of the awards set, generation +1, the
 * award's event marked revoked_by its revocation's id, and, until the award's own revocation comes
 * later in the walk (which deletes it), a late-withdrawal record in cp:award_wd, from which verify
 * sends that revocation (services/verify/verify_withdraw.c), its value "0 <date> <award id>".
 * The award is the one of generation g: "<code>:last" when that is of generation g (a keyed award),
 * else the legacy id (an award from before keyed ids has no "<code>:last"). revoke_id is the Lua
 * mirror of proj_award_revoke_id (strip "award:" and any ":g<n>", then "award-revoke:" .. that ..
 * ":" .. gen); the legacy id's ":g<gen>" suffix is added as award_id_of does.
 * KEYS[1] cp:w:{hex}:awards, KEYS[2] cp:w:{hex}:award_gen, KEYS[3] cp:award_wd; ARGV[1] award code,
 * ARGV[2] pseudonym hex, ARGV[3] the revocation's date, ARGV[4] the cp:ev key of an award event
 * with an empty id (the id goes before its closing brace), ARGV[5] the legacy id of generation 0.
 * The award_wd hash and the award's event are not in KEYS: not yet Cluster-ready (see cp_keys.h). */
static cp_redis_script_t standard_revoked = CP_REDIS_SCRIPT("standard revoked", 3,
    "local function revoke_id(id, g) "
    "  local rest = string.gsub(string.sub(id, 7), ':g%d+$', '') "
    "  return 'award-revoke:' .. rest .. ':' .. tostring(g) "
    "end "
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end "
    "local g = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') "
    "redis.call('SREM', KEYS[1], ARGV[1]) "
    "redis.call('HSET', KEYS[2], ARGV[1], tostring(g + 1)) "
    "local id = redis.call('HGET', KEYS[2], ARGV[1] .. ':last') "
    "if not id or tonumber(string.match(id, ':g(%d+)$') or '0') ~= g then "
    "  id = ARGV[5] "
    "  if g > 0 then id = id .. ':g' .. tostring(g) end "
    "end "
    "local ev = string.sub(ARGV[4], 1, -2) .. id .. '}' "
    "redis.call('HSETNX', ev, 'revoked_by', revoke_id(id, g)) "
    "redis.call('HSETNX', KEYS[3], ARGV[1] .. ':' .. tostring(g) .. ':' .. ARGV[2], '0 ' .. ARGV[3] .. ' ' .. id) "
    "return 1");

/* A record's expiry schedule, created once: nothing when its hash exists (scheduled, advanced by
 * notify, done or revoked), so a second apply never moves notify's stage back.
 * KEYS[1] cp:exp:{index}, KEYS[2] cp:exp:due. ARGV: score (day), stage, provider, qual, worker,
 * valid_until, completion_date, event_id, index. */
static cp_redis_script_t exp_schedule = CP_REDIS_SCRIPT("schedule expiry", 2,
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'scheduled', 'stage', ARGV[2], 'provider', ARGV[3],"
    " 'qual', ARGV[4], 'worker', ARGV[5], 'valid_until', ARGV[6], 'completion_date', ARGV[7],"
    " 'event_id', ARGV[8])\n"
    "redis.call('ZADD', KEYS[2], ARGV[1], ARGV[9])\n"
    "return 1\n");

/* A revoked record's schedule retired: out of due and lease, the hash replaced by a tombstone
 * state=revoked kept for PROJ_EXP_TOMBSTONE_TTL_S (so a late apply of the record schedules nothing).
 * KEYS[1] cp:exp:{index}, KEYS[2] cp:exp:due, KEYS[3] cp:exp:lease. ARGV: index, tombstone ttl. */
static cp_redis_script_t exp_retire = CP_REDIS_SCRIPT("revoke expiry", 3,
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], 'state', 'revoked')\n"
    "redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))\n"
    "return 1\n");

int proj_exp_days_before(int stage) {
  static const int days[PROJ_EXP_STAGES] = {90, 30, 7, -1};
  return stage >= 0 && stage < PROJ_EXP_STAGES ? days[stage] : -1;
}

int32_t proj_exp_threshold(int32_t valid_until, int stage) {
  int before = proj_exp_days_before(stage);
  return before > 0 ? valid_until - before : valid_until + 1;
}

void proj_award_tag(const unsigned char secret[CP_SECRET_BYTES], const char *code,
                    const uint8_t pseudonym[CP_PSEUDONYM_BYTES], uint64_t gen, uint8_t tag[PROJ_AWARD_TAG_BYTES]) {
  static const char domain[] = PROJ_AWARD_TAG_DOMAIN;
  uint8_t be[8];
  for (int i = 0; i < 8; i++) be[i] = (uint8_t)(gen >> (56 - 8 * i));
  crypto_generichash_state st;
  crypto_generichash_init(&st, secret, CP_SECRET_BYTES, PROJ_AWARD_TAG_BYTES);
  crypto_generichash_update(&st, (const unsigned char *)domain, sizeof domain - 1);
  crypto_generichash_update(&st, (const unsigned char *)code, strlen(code));
  crypto_generichash_update(&st, (const unsigned char *)"\n", 1);
  crypto_generichash_update(&st, pseudonym, CP_PSEUDONYM_BYTES);
  crypto_generichash_update(&st, be, sizeof be);
  crypto_generichash_final(&st, tag, PROJ_AWARD_TAG_BYTES);
  sodium_memzero(&st, sizeof st);   /* the state holds the keyed pad */
}

/* "award:<code>:<tag>" then ":g<gen>" for gen > 0, whichever the style of tag. */
static void award_id_of(const char *code, const char *tag, uint64_t gen, char out[PROJ_AWARD_ID_MAX]) {
  int n = gen == 0 ? snprintf(out, PROJ_AWARD_ID_MAX, "award:%s:%s", code, tag)
                   : snprintf(out, PROJ_AWARD_ID_MAX, "award:%s:%s:g%" PRIu64, code, tag, gen);
  assert(n > 0 && n < PROJ_AWARD_ID_MAX);   /* catalogue codes are shorter than CAT_CODE_MAX */
  (void)n;
}

void proj_award_id(const unsigned char secret[CP_SECRET_BYTES], const char *code,
                   const uint8_t pseudonym[CP_PSEUDONYM_BYTES], uint64_t gen, char out[PROJ_AWARD_ID_MAX]) {
  uint8_t tag[PROJ_AWARD_TAG_BYTES];
  char t[2 + 2 * PROJ_AWARD_TAG_BYTES] = "k";
  proj_award_tag(secret, code, pseudonym, gen, tag);
  cp_hex(tag, sizeof tag, t + 1);
  award_id_of(code, t, gen, out);
}

void proj_award_id_legacy(const char *code, const char *hex, uint64_t gen, char out[PROJ_AWARD_ID_MAX]) {
  char t[17];
  snprintf(t, sizeof t, "%.16s", hex);
  award_id_of(code, t, gen, out);
}

/* The mirror of this rule in Lua is revoke_id in the standard_revoked script above. */
bool proj_award_revoke_id(const char *award_id, char out[PROJ_AWARD_ID_MAX]) {
  proj_award_ref_t ref;
  out[0] = '\0';
  if (!proj_award_id_parse(award_id, &ref)) return false;
  int n = snprintf(out, PROJ_AWARD_ID_MAX, "award-revoke:%s:%s%s:%" PRIu64, ref.code,
                   ref.style == PROJ_AWARD_KEYED ? "k" : "", ref.tag, ref.gen);
  if (n <= 0 || n >= PROJ_AWARD_ID_MAX) {
    out[0] = '\0';
    return false;
  }
  return true;
}

void proj_award_id_at(const char *code, const char *hex, const char *known, uint64_t gen,
                      char out[PROJ_AWARD_ID_MAX]) {
  proj_award_ref_t ref;
  if (known != NULL && proj_award_id_parse(known, &ref) && ref.gen == gen && strcmp(ref.code, code) == 0 &&
      strlen(known) < PROJ_AWARD_ID_MAX)
    snprintf(out, PROJ_AWARD_ID_MAX, "%s", known);
  else
    proj_award_id_legacy(code, hex, gen, out);
}

static bool lower_hex(const char *h, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return false;
  return true;
}

bool proj_award_id_parse(const char *id, proj_award_ref_t *out) {
  static const char prefix[] = "award:";
  memset(out, 0, sizeof *out);
  if (id == NULL || strncmp(id, prefix, sizeof prefix - 1) != 0) return false;
  const char *c = id + sizeof prefix - 1;
  const char *colon = strchr(c, ':');
  if (colon == NULL || colon == c || (size_t)(colon - c) >= CAT_CODE_MAX) return false;
  memcpy(out->code, c, (size_t)(colon - c));
  out->code[colon - c] = '\0';
  const char *h = colon + 1;
  size_t taglen = 16;
  out->style = PROJ_AWARD_LEGACY;
  if (h[0] == 'k') {   /* a legacy tag is hex, so never starts with 'k' */
    out->style = PROJ_AWARD_KEYED;
    taglen = 2 * PROJ_AWARD_TAG_BYTES;
    h++;
  }
  if (strnlen(h, taglen) < taglen || !lower_hex(h, taglen)) return false;
  memcpy(out->tag, h, taglen);
  out->tag[taglen] = '\0';
  const char *rest = h + taglen;
  if (rest[0] == '\0') return true;
  /* ":g<gen>", gen > 0 in decimal without a leading zero (gen 0 has no suffix) */
  if (rest[0] != ':' || rest[1] != 'g' || rest[2] < '1' || rest[2] > '9') return false;
  for (const char *d = rest + 2; *d; d++)
    if (*d < '0' || *d > '9') return false;
  errno = 0;
  char *end = NULL;
  unsigned long long g = strtoull(rest + 2, &end, 10);
  if (errno != 0 || end == NULL || *end != '\0') return false;
  out->gen = (uint64_t)g;
  return true;
}

bool proj_award_ref_is_of(const proj_award_ref_t *ref, const unsigned char secret[CP_SECRET_BYTES],
                          const uint8_t pseudonym[CP_PSEUDONYM_BYTES]) {
  if (ref->style == PROJ_AWARD_LEGACY) {
    char hex[2 * CP_PSEUDONYM_BYTES + 1];
    cp_hex(pseudonym, CP_PSEUDONYM_BYTES, hex);
    return ref->tag[16] == '\0' && sodium_memcmp(hex, ref->tag, 16) == 0;   /* tag holds >= 17 bytes */
  }
  uint8_t want[PROJ_AWARD_TAG_BYTES], got[PROJ_AWARD_TAG_BYTES];
  size_t bin = 0;
  if (sodium_hex2bin(got, sizeof got, ref->tag, strlen(ref->tag), NULL, &bin, NULL) != 0 || bin != sizeof got)
    return false;
  proj_award_tag(secret, ref->code, pseudonym, ref->gen, want);
  return sodium_memcmp(want, got, sizeof want) == 0;
}

proj_t *proj_new(proj_mode_t mode, const cat_catalogue_t *cat, int32_t today) {
  proj_t *p = cp_xcalloc(1, sizeof *p);
  p->mode = mode;
  p->cat = cat;
  p->today = today;
  return p;
}

void proj_set_subjects(proj_t *p, const cp_subject_store_t *subjects) { p->subjects = subjects; }

void proj_destroy(proj_t **pp) {
  if (pp == NULL || *pp == NULL) return;
  free(*pp);
  *pp = NULL;
}

static bool is_type(const Carepass__V1__PassportEntry *pe, Carepass__V1__EntryType t) { return pe->entry_type == t; }
#define IS(pe, T) is_type((pe), CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_##T)

/* The worker's pseudonym as hex; false when the entry carries none. */
static bool worker_hex(const Carepass__V1__PassportEntry *pe, char hex[2 * CP_PSEUDONYM_BYTES + 1]) {
  if (pe->worker_pseudonym.len != CP_PSEUDONYM_BYTES) return false;
  cp_hex(pe->worker_pseudonym.data, CP_PSEUDONYM_BYTES, hex);
  return true;
}

/* The award a record's code counts towards, or NULL (replay only: needs the catalogue). */
static const cat_qual_t *award_of(const proj_t *p, const Carepass__V1__PassportEntry *pe) {
  const cat_qual_t *aw[AWARDS_PER_CODE];
  if (p->cat == NULL || !IS(pe, RECORD)) return NULL;
  return cat_awards_requiring(p->cat, pe->qualification_code, aw, AWARDS_PER_CODE) > 0 ? aw[0] : NULL;
}

/* The generation in an award id (0 when it is not one). */
static uint64_t award_gen_of(const char *event_id) {
  proj_award_ref_t ref;
  return proj_award_id_parse(event_id, &ref) ? ref.gen : 0;
}

void proj_event_committed(cp_redis_pipe_t *pipe, const char *provider_id, const char *event_id, uint64_t index) {
  cp_key_t ev, member;
  cp_key_event(&ev, provider_id, event_id);
  (void)cp_redis_pipe_cmd(pipe, "HSET %s state committed index %" PRIu64, ev.s, index);
  (void)cp_redis_pipe_cmd(pipe, "HDEL %s pending reason msg", ev.s);
  (void)cp_redis_pipe_cmd(pipe, "ZREM %s %s", cp_key_pending(),
                          cp_key_pending_member(&member, provider_id, event_id));
}

void proj_standard_held(cp_redis_pipe_t *pipe, const char *evkey, const char *hex, const char *code) {
  cp_key_t cc;
  (void)cp_redis_pipe_cmd(pipe, "HSET %s qcode %s", evkey, code);
  (void)cp_redis_pipe_cmd(pipe, "SADD %s %s", cp_key_w_cc(&cc, hex), code);
}

cp_redis_handle_t proj_withdraw_award(cp_redis_pipe_t *pipe, const char *hex, const char *code, uint64_t gen) {
  cp_key_t gkey, akey;
  char g[24];
  snprintf(g, sizeof g, "%" PRIu64, gen);
  const char *argv[] = {cp_key_w_award_gen(&gkey, hex), cp_key_w_awards(&akey, hex), code, g};
  return cp_redis_pipe_script(pipe, &withdraw_award, 4, argv, NULL);
}

void proj_indexed(cp_redis_pipe_t *pipe, int shard, uint64_t size) {
  cp_key_t k;
  (void)cp_redis_pipe_cmd(pipe, "SET %s %" PRIu64, cp_key_reg_indexed(&k, shard), size);
}

/* The expiry schedule of a committed record or award with a valid_until and a worker, starting at
 * the first threshold not yet passed on p->today (none when every one has passed). */
static void queue_exp_schedule(const proj_t *p, cp_redis_pipe_t *pipe, uint64_t index,
                               const Carepass__V1__PassportEntry *pe, const char *hex) {
  int32_t vu;
  if (!hex[0] || pe->valid_until == NULL || !pe->valid_until[0] || cp_date_parse(pe->valid_until, &vu) < 0) return;
  int stage = 0;
  while (stage < PROJ_EXP_STAGES && proj_exp_threshold(vu, stage) <= p->today) stage++;
  if (stage == PROJ_EXP_STAGES) return;   /* every threshold already passed */
  cp_key_t key;
  char score[16], st[8], idx[24];
  snprintf(score, sizeof score, "%d", (int)proj_exp_threshold(vu, stage));
  snprintf(st, sizeof st, "%d", stage);
  snprintf(idx, sizeof idx, "%" PRIu64, index);
  const char *argv[] = {cp_key_exp(&key, index), cp_key_exp_due(), score, st,
                        pe->provider_id ? pe->provider_id : "", pe->qualification_code ? pe->qualification_code : "",
                        hex, pe->valid_until, pe->completion_date ? pe->completion_date : "",
                        pe->provider_event_id ? pe->provider_event_id : "", idx};
  (void)cp_redis_pipe_script(pipe, &exp_schedule, 11, argv, NULL);
}

/* A revocation retires the schedule of the entry it names (a tombstone even where none was). */
static void queue_exp_retire(cp_redis_pipe_t *pipe, uint64_t revoked_index) {
  cp_key_t key;
  char idx[24], ttl[16];
  snprintf(idx, sizeof idx, "%" PRIu64, revoked_index);
  snprintf(ttl, sizeof ttl, "%d", PROJ_EXP_TOMBSTONE_TTL_S);
  const char *argv[] = {cp_key_exp(&key, revoked_index), cp_key_exp_due(), cp_key_exp_lease(), idx, ttl};
  (void)cp_redis_pipe_script(pipe, &exp_retire, 5, argv, NULL);
}

/* The digest intake stored for an event: its PendingEvent rebuilt from the entry, hashed as intake
 * does. A revocation names its target as the provider named it (an operator: "<provider>:<event>"). */
static void queue_digest(cp_redis_pipe_t *pipe, const char *evkey, const Carepass__V1__PassportEntry *pe,
                         const Carepass__V1__PassportEntry *target, const char *employer) {
  char revokes[2 * CP_KEY_MAX] = "";
  bool rev = IS(pe, REVOCATION);
  if (rev && target != NULL) {
    if (strcmp(pe->provider_id, PROJ_OPERATOR_PROVIDER) == 0)
      snprintf(revokes, sizeof revokes, "%s:%s", target->provider_id, target->provider_event_id);
    else
      snprintf(revokes, sizeof revokes, "%s", target->provider_event_id);
  }
  Carepass__V1__PendingEvent ev = CAREPASS__V1__PENDING_EVENT__INIT;
  ev.provider_id = pe->provider_id;
  ev.provider_event_id = pe->provider_event_id;
  ev.worker_pseudonym = pe->worker_pseudonym;
  ev.qualification_code = pe->qualification_code;
  ev.completion_date = pe->completion_date;
  ev.assessor_id = pe->assessor_id;
  ev.evidence_hash = pe->evidence_hash;
  ev.kind = rev ? CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION
        : IS(pe, CONSENT) ? CAREPASS__V1__EVENT_KIND__EVENT_KIND_CONSENT
                          : CAREPASS__V1__EVENT_KIND__EVENT_KIND_COMPLETION;
  ev.employer_id = (char *)(employer != NULL ? employer : "");   /* a consent's, as the gateway claimed it */
  ev.revokes_event_id = revokes;
  ev.revocation_reason = rev ? pe->reason_code : (char *)"";
  char hex[65];
  if (ing_pending_digest(&ev, hex) == 0) (void)cp_redis_pipe_cmd(pipe, "HSET %s digest %s", evkey, hex);
}

/* What a revocation undoes in the award state (replay): a revoked standard leaves the worker's
 * progress set and withdraws the award it counts towards if held; a revoked award is withdrawn
 * at its generation and no late withdrawal of it is left to finish. */
static void queue_award_undo(const proj_t *p, cp_redis_pipe_t *pipe, const Carepass__V1__PassportEntry *rev,
                             const Carepass__V1__PassportEntry *target) {
  char hex[2 * CP_PSEUDONYM_BYTES + 1];
  if (!worker_hex(target, hex)) return;
  cp_key_t k1, k2, k3;
  const cat_qual_t *aw = award_of(p, target);
  if (aw != NULL) {
    (void)cp_redis_pipe_cmd(pipe, "SREM %s %s", cp_key_w_cc(&k1, hex), target->qualification_code);
    char legacy0[PROJ_AWARD_ID_MAX];
    proj_award_id_legacy(aw->code, hex, 0, legacy0);
    const char *argv[] = {cp_key_w_awards(&k1, hex), cp_key_w_award_gen(&k2, hex), cp_key_award_wd(), aw->code, hex,
                          rev->completion_date != NULL ? rev->completion_date : "",
                          cp_key_event(&k3, PROJ_AWARD_PROVIDER, ""), legacy0};
    (void)cp_redis_pipe_script(pipe, &standard_revoked, 8, argv, NULL);
  } else if (IS(target, DERIVED_AWARD)) {
    uint64_t gen = award_gen_of(target->provider_event_id);
    (void)proj_withdraw_award(pipe, hex, target->qualification_code, gen);
    (void)cp_redis_pipe_cmd(pipe, "HDEL %s %s", cp_key_award_wd(),
                            cp_key_award_wd_field(&k3, target->qualification_code, gen, hex));
  }
}

/* What the committed record, award or revocation means for the award state (replay). */
static void queue_award_state(const proj_t *p, cp_redis_pipe_t *pipe, const char *evkey, const char *hex,
                              const Carepass__V1__PassportEntry *pe, const Carepass__V1__PassportEntry *target) {
  cp_key_t k1, k2;
  if (IS(pe, RECORD) && hex[0] && award_of(p, pe) != NULL) {
    proj_standard_held(pipe, evkey, hex, pe->qualification_code);
  } else if (IS(pe, DERIVED_AWARD) && hex[0]) {
    char gen[24];
    proj_award_ref_t ref;
    bool keyed = proj_award_id_parse(pe->provider_event_id, &ref) && ref.style == PROJ_AWARD_KEYED &&
                 strcmp(ref.code, pe->qualification_code) == 0;
    snprintf(gen, sizeof gen, "%" PRIu64, ref.gen);   /* 0 when not an award id (parse clears ref) */
    const char *argv[] = {cp_key_w_awards(&k1, hex), cp_key_w_award_gen(&k2, hex), pe->qualification_code, gen,
                          keyed ? pe->provider_event_id : ""};
    (void)cp_redis_pipe_script(pipe, &award_held, 5, argv, NULL);
  } else if (IS(pe, REVOCATION) && target != NULL) {
    queue_award_undo(p, pipe, pe, target);
  }
}

/* The notice a committed record, award or revocation owes (live only): record.committed or
 * record.revoked into the outbox, in the caller's transaction with the rest of the entry. */
static void queue_notice(cp_redis_pipe_t *pipe, uint64_t index, const Carepass__V1__PassportEntry *pe) {
  Carepass__V1__NotifyJob job = CAREPASS__V1__NOTIFY_JOB__INIT;
  job.type = (char *)(IS(pe, REVOCATION) ? "record.revoked" : "record.committed");
  job.provider_id = pe->provider_id;
  job.provider_event_id = pe->provider_event_id;
  job.reason_code = pe->reason_code;
  job.entry_index = index;
  job.qualification_code = pe->qualification_code;
  job.worker_pseudonym = pe->worker_pseudonym;
  job.occurred_at = pe->issued_at * 1000;   /* issued_at is in seconds */
  job.completion_date = pe->completion_date;
  job.valid_until = pe->valid_until;
  job.revokes_index = pe->revokes_index;
  if (cp_outbox_add(pipe, &job) != 0)
    cp_log_error("notice of a committed entry could not be packed; not sent", CP_KV_INT("index", index), CP_KV_END);
}

/* A format-2 entry seen as a format-1 one: its worker's pseudonym opened through the subject key
 * store into view (none when it does not open: a worker who left). Format 1 is returned as is. */
static const Carepass__V1__PassportEntry *opened(const proj_t *p, const Carepass__V1__PassportEntry *pe,
                                                 Carepass__V1__PassportEntry *view, cp_opening_t *op, bool *has_r) {
  *has_r = false;
  if (pe == NULL || pe->version < 2) return pe;
  *view = *pe;   /* shallow: the view is never freed */
  view->worker_pseudonym.data = NULL;
  view->worker_pseudonym.len = 0;
  if (p->subjects != NULL &&
      cp_subject_store_open_entry(p->subjects, pe->subject.data, pe->subject.len, pe->subject_slot.data,
                                  pe->subject_slot.len, pe->sealed_opening.data, pe->sealed_opening.len,
                                  op) == CP_SUBJECT_OK) {
    view->worker_pseudonym.data = op->pseudonym;
    view->worker_pseudonym.len = CP_PSEUDONYM_BYTES;
    *has_r = true;
  }
  return view;
}

/* The consent id (32 lowercase hex) of a consent event id "consent:<32 hex>"; false otherwise. */
static bool consent_id_of(const char *event_id, char out[PROJ_CONSENT_ID_HEX + 1]) {
  if (event_id == NULL || strncmp(event_id, "consent:", 8) != 0 || strlen(event_id + 8) != PROJ_CONSENT_ID_HEX ||
      !lower_hex(event_id + 8, PROJ_CONSENT_ID_HEX))
    return false;
  memcpy(out, event_id + 8, PROJ_CONSENT_ID_HEX + 1);
  return true;
}

/* The employer id sealed in a consent entry, opened through the subject key store; false when it
 * does not open (no store, the worker left, not a consent) or is not an employer id. */
static bool consent_employer(const proj_t *p, const Carepass__V1__PassportEntry *pe,
                             char out[CP_SUBJECT_PAYLOAD_MAX + 1]) {
  size_t n = 0;
  if (p->subjects == NULL || pe == NULL || !IS(pe, CONSENT) || pe->version < 2 ||
      cp_subject_store_open_payload(p->subjects, pe->subject.data, pe->subject.len, pe->subject_slot.data,
                                    pe->subject_slot.len, pe->sealed_payload.data, pe->sealed_payload.len,
                                    (uint8_t *)out, &n) != CP_SUBJECT_OK ||
      strlen(out) != n || !proj_employer_id_valid(out))
    return false;
  return true;
}

/* A consent entry or its withdrawal (live and replay alike): the consent's hash and the two
 * index sets; nothing else (not the worker's entries, no expiry, no notice to a provider). pe is
 * the opened view (its pseudonym when it opens); raw_pe / raw_target the entries as signed. */
static void queue_consent(const proj_t *p, cp_redis_pipe_t *pipe, uint64_t index, const Carepass__V1__PassportEntry *pe,
                          const Carepass__V1__PassportEntry *raw_pe, const Carepass__V1__PassportEntry *target,
                          const Carepass__V1__PassportEntry *raw_target) {
  char id[PROJ_CONSENT_ID_HEX + 1], emp[CP_SUBJECT_PAYLOAD_MAX + 1], hex[2 * CP_PSEUDONYM_BYTES + 1] = "";
  cp_key_t ck, sk, wk;
  if (IS(pe, CONSENT)) {
    if (!consent_id_of(pe->provider_event_id, id) || !worker_hex(pe, hex) || !consent_employer(p, raw_pe, emp))
      return;   /* its worker left the register: nothing to show anyone */
    (void)cp_redis_pipe_cmd(pipe, "HSET %s employer %s worker %s index %" PRIu64 " since %" PRId64,
                            cp_key_consent(&ck, id), emp, hex, index, pe->issued_at);
    (void)cp_redis_pipe_cmd(pipe, "SADD %s %s", cp_key_emp_staff(&sk, emp), id);
    (void)cp_redis_pipe_cmd(pipe, "SADD %s %s", cp_key_w_consents(&wk, hex), id);
    return;
  }
  /* a withdrawal: the consent it names goes, wherever its parts are still readable */
  if (target == NULL || !IS(target, CONSENT) || !consent_id_of(target->provider_event_id, id)) return;
  (void)cp_redis_pipe_cmd(pipe, "DEL %s", cp_key_consent(&ck, id));
  if (consent_employer(p, raw_target, emp)) (void)cp_redis_pipe_cmd(pipe, "SREM %s %s", cp_key_emp_staff(&sk, emp), id);
  if (worker_hex(target, hex) || worker_hex(pe, hex))
    (void)cp_redis_pipe_cmd(pipe, "SREM %s %s", cp_key_w_consents(&wk, hex), id);
}

void proj_entry(proj_t *p, cp_redis_pipe_t *pipe, uint64_t index, const Carepass__V1__PassportEntry *pe,
                const Carepass__V1__PassportEntry *target) {
  if (IS(pe, KEY)) return;   /* key history: no event, no worker */
  const Carepass__V1__PassportEntry *raw_pe = pe, *raw_target = target;
  Carepass__V1__PassportEntry pview, tview;
  cp_opening_t pop, top;
  bool has_r, target_r;
  pe = opened(p, pe, &pview, &pop, &has_r);
  target = opened(p, target, &tview, &top, &target_r);
  bool consent_side = IS(pe, CONSENT) || strcmp(pe->provider_id, PROJ_CONSENT_PROVIDER) == 0;
  if (target != NULL && (!IS(pe, REVOCATION) || pe->revokes_index >= index ||
                         !(consent_side ? IS(target, CONSENT) : IS(target, RECORD) || IS(target, DERIVED_AWARD))))
    target = NULL;           /* only a record or award (a consent, for a withdrawal) below the revocation is marked */
  if (consent_side) {
    /* a consent and its withdrawal: their event state, the revoked marks, the consent keys */
    proj_event_committed(pipe, pe->provider_id, pe->provider_event_id, index);
    if (target != NULL && IS(target, CONSENT)) {
      cp_key_t tk;
      cp_key_event(&tk, target->provider_id, target->provider_event_id);
      (void)cp_redis_pipe_cmd(pipe, "HSETNX %s revoked_by %s", tk.s, pe->provider_event_id);
      (void)cp_redis_pipe_cmd(pipe, "HSET %s revoked_index %" PRIu64 " revoked_at %" PRId64, tk.s, index,
                              pe->issued_at);
    }
    if (p->mode == PROJ_REPLAY) {   /* the claim's digest: the consent's needs its employer opened */
      char emp[CP_SUBJECT_PAYLOAD_MAX + 1] = "";
      cp_key_t ek;
      if (!IS(pe, CONSENT) || consent_employer(p, raw_pe, emp))
        queue_digest(pipe, cp_key_event(&ek, pe->provider_id, pe->provider_event_id), pe, target, emp);
    }
    queue_consent(p, pipe, index, pe, raw_pe, target, raw_target);
    return;
  }
  cp_key_t ev, wk;
  cp_key_event(&ev, pe->provider_id, pe->provider_event_id);
  char hex[2 * CP_PSEUDONYM_BYTES + 1] = "";
  (void)worker_hex(pe, hex);
  proj_event_committed(pipe, pe->provider_id, pe->provider_event_id, index);
  if (p->mode == PROJ_REPLAY && !IS(pe, DERIVED_AWARD) && strcmp(pe->provider_id, PROJ_AWARD_PROVIDER) != 0)
    queue_digest(pipe, ev.s, pe, target, NULL);
  if (hex[0]) {
    char idx[24];
    snprintf(idx, sizeof idx, "%" PRIu64, index);
    const char *argv[] = {cp_key_w_entries(&wk, hex), idx};
    (void)cp_redis_pipe_script(pipe, &rpush_once, 2, argv, NULL);
    if (has_r) {   /* the opening's r, with which the gateway shows the entry is this worker's */
      char rhex[2 * CP_SUBJECT_R_BYTES + 1];
      cp_hex(pop.r, CP_SUBJECT_R_BYTES, rhex);
      (void)cp_redis_pipe_cmd(pipe, "HSET %s %s %s", cp_key_w_openings(&wk, hex), idx, rhex);
    }
  }
  if (target != NULL) {
    /* revoked_by is the revoking event id (verify sets it first, HSETNX keeps that);
     * revoked_index / revoked_at say where on the register and from when */
    cp_key_t tk;
    cp_key_event(&tk, target->provider_id, target->provider_event_id);
    (void)cp_redis_pipe_cmd(pipe, "HSETNX %s revoked_by %s", tk.s, pe->provider_event_id);
    (void)cp_redis_pipe_cmd(pipe, "HSET %s revoked_index %" PRIu64 " revoked_at %" PRId64, tk.s, index,
                            pe->issued_at);
  }
  if (IS(pe, REVOCATION)) {
    if (pe->revokes_index < index) queue_exp_retire(pipe, pe->revokes_index);
  } else {
    queue_exp_schedule(p, pipe, index, pe, hex);
  }
  if (p->mode == PROJ_REPLAY) queue_award_state(p, pipe, ev.s, hex, pe, target);
  else queue_notice(pipe, index, pe);
}

bool proj_employer_id_valid(const char *id) {
  if (id == NULL || strncmp(id, "EMP-", 4) != 0) return false;
  size_t n = 0;
  for (const char *c = id + 4; *c != '\0'; c++, n++)
    if (*c < '0' || *c > '9' || n >= 12) return false;
  return n >= 4;
}
