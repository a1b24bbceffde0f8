/* cmd_revoke.c -- `carepass revoke`: operator revocations (one index, or a provider's records from a date) sent through verify. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "carepass/v1/internal.pb-c.h"
#include "carepass/v1/register.pb-c.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_dates.h"
#include "cp_ingest.h"
#include "cp_keys.h"
#include "cp_outbox.h"
#include "cp_reasons.h"
#include "cp_redis.h"
#include "cp_regkeys.h"
#include "cp_register.h"
#include "cp_subject.h"
#include "cp_zmq.h"

#define CMD "revoke"
#define REVOKE_PROVIDER "carepass-operator"   /* provider id of operator revocations */
#define REVOKE_EVENT_FMT "op-revoke-%" PRIu64  /* their event id: one per revoked index (idempotent) */
#define REVOKE_WAIT_S 30                       /* default bound on waiting for the commits */
#define REVOKE_POLL_MS 200                     /* pause between Redis polls */
#define REVOKE_REF_MAX 160                     /* "<provider>:<event id>" of a revoked record (verify's limit) */

/* Forget a stale claim of an operator event (refused earlier, or made with another --reason and never
 * committed) so it can be claimed afresh; a committed one is never touched. KEYS[1] its cp:ev key,
 * KEYS[2] cp:pending, ARGV[1] its pending member. */
static cp_redis_script_t forget_stale = CP_REDIS_SCRIPT("forget stale operator event", 2,
    "if redis.call('HGET', KEYS[1], 'state') == 'committed' then return 0 end "
    "redis.call('DEL', KEYS[1]) redis.call('ZREM', KEYS[2], ARGV[1]) return 1");

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass revoke INDEX --reason CODE [options]\n"
          "       carepass revoke --provider ID --from YYYY-MM-DD --reason CODE [options]\n\n"
          "Operator revocation. The first form revokes the record at register index\n"
          "INDEX; the second every record of provider ID completed on or after the date\n"
          "that is not revoked yet (de-accreditation, fraud). Each revocation is a\n"
          "register entry (provider " REVOKE_PROVIDER ", event id op-revoke-<index>, so\n"
          "running the command again never revokes twice). It is recorded in Redis as a\n"
          "pending event (re-sent by intake's redrive if it gets lost) and goes through\n"
          "verify like a provider's revocation, so revoking one of the Care Certificate\n"
          "standards withdraws the worker's Care Certificate too (reason\n"
          "REQUIREMENT_REVOKED); no provider rule applies to operator revocations. The\n"
          "command waits until Redis shows each one committed and prints its index; a\n"
          "revocation verify refuses (e.g. Redis does not know the record: run\n"
          "`carepass reindex`) is printed with its reason, and running the command\n"
          "again retries it. A record is revoked from the moment (issued_at) of its\n"
          "revocation entry.\n\n"
          "  --reason CODE      ISSUED_IN_ERROR, FRAUD, PROVIDER_DEACCREDITED,\n"
          "                     ASSESSMENT_INVALID, DUPLICATE, WORKER_REQUEST or OTHER\n"
          "  --dir DIR          register directory (default $CAREPASS_REGISTER_DIR)\n"
          "  --bus ENDPOINT     the bus verify queue (default $CAREPASS_BUS_VERIFY_IN)\n"
          "  --wait SECONDS     how long to wait for the commits (default %d; 0 = do not wait)\n"
          "  --dry-run          list what would be revoked, send nothing\n"
          "  --signer ENDPOINTS ignored (revocations no longer go straight to the signer)\n",
          REVOKE_WAIT_S);
}

/* One record to revoke. */
typedef struct {
  uint64_t index;                  // register index of the record
  uint8_t pseudonym[32];           // its worker (routes the revocation to the worker's shard)
  char *qualification;             // its qualification code (malloc'd)
  char *provider_id;               // its provider (malloc'd)
  char *event_id;                  // its provider event id (malloc'd)
  char op_event[48];               // op-revoke-<index>
  bool done;                       // committed (seen in Redis)
  bool refused;                    // verify refused it (reason in refusal)
  char refusal[320];               // "<REASON>: <sentence>" when refused
  uint64_t revocation_index;       // where the revocation entry landed
} target_t;

/* A revocation already in the register. */
typedef struct {
  uint64_t index;                  // the revocation entry
  uint64_t revokes;                // the index it revokes
  char reason[64];                 // its reason code
} seen_rev_t;

/* Scan state over the whole register. */
typedef struct {
  uint64_t only;                   // index mode: the one index wanted (UINT64_MAX = provider mode)
  const char *provider;            // provider mode: provider id
  int32_t from;                    // provider mode: first completion day
  target_t *t;                     // candidate targets (malloc'd)
  size_t nt;                       // how many
  seen_rev_t *revs;                // revocations found (malloc'd)
  size_t nrevs;                    // how many
  int32_t only_type;               // index mode: entry type of the wanted index (-1 unseen)
  char *err;                       // error text
  size_t errlen;                   // its size
  cp_subject_store_t *subjects;    // opens format-2 entries' workers (NULL: no store)
} scan_t;

static void add_target(scan_t *sc, uint64_t index, const Carepass__V1__PassportEntry *pe) {
  sc->t = realloc(sc->t, (sc->nt + 1) * sizeof *sc->t);
  if (sc->t == NULL) abort();
  target_t *t = &sc->t[sc->nt++];
  memset(t, 0, sizeof *t);
  t->index = index;
  cp_opening_t op;
  if (pe->worker_pseudonym.len == 32) {
    memcpy(t->pseudonym, pe->worker_pseudonym.data, 32);
  } else if (pe->version >= 2 && sc->subjects != NULL &&
             cp_subject_store_open_entry(sc->subjects, pe->subject.data, pe->subject.len, pe->subject_slot.data,
                                         pe->subject_slot.len, pe->sealed_opening.data, pe->sealed_opening.len,
                                         &op) == CP_SUBJECT_OK) {
    memcpy(t->pseudonym, op.pseudonym, 32);   /* the revocation's own subject is this worker's */
    sodium_memzero(&op, sizeof op);
  }   /* else a worker who left: the revocation names no one (zero pseudonym) */
  t->qualification = cp_strdup(pe->qualification_code);
  t->provider_id = cp_strdup(pe->provider_id);
  t->event_id = cp_strdup(pe->provider_event_id);
  snprintf(t->op_event, sizeof t->op_event, REVOKE_EVENT_FMT, index);
}

static int scan_entry(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  scan_t *sc = arg;
  char err[CP_ERRLEN];
  Carepass__V1__SignedEntry *se = (Carepass__V1__SignedEntry *)cp_pb_unpack(
      &carepass__v1__signed_entry__descriptor, entry, len, REG_ENTRY_MAX, err, sizeof err);
  if (se == NULL) return cp_err(sc->err, sc->errlen, "entry %" PRIu64 " is not a SignedEntry: %s", index, err);
  Carepass__V1__PassportEntry *pe = (Carepass__V1__PassportEntry *)cp_pb_unpack(
      &carepass__v1__passport_entry__descriptor, se->entry.data, se->entry.len, REG_ENTRY_MAX, err, sizeof err);
  protobuf_c_message_free_unpacked(&se->base, NULL);
  if (pe == NULL) return cp_err(sc->err, sc->errlen, "entry %" PRIu64 " is not a PassportEntry: %s", index, err);
  bool record = pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD ||
                pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD;
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION) {
    sc->revs = realloc(sc->revs, (sc->nrevs + 1) * sizeof *sc->revs);
    if (sc->revs == NULL) abort();
    seen_rev_t *r = &sc->revs[sc->nrevs++];
    r->index = index;
    r->revokes = pe->revokes_index;
    snprintf(r->reason, sizeof r->reason, "%s", pe->reason_code);
  }
  if (sc->only != UINT64_MAX) {
    if (index == sc->only) {
      sc->only_type = (int32_t)pe->entry_type;
      if (record) add_target(sc, index, pe);
    }
  } else if (record && strcmp(pe->provider_id, sc->provider) == 0) {
    int32_t day;
    if (cp_date_parse(pe->completion_date, &day) == 0 && day >= sc->from) add_target(sc, index, pe);
  }
  protobuf_c_message_free_unpacked(&pe->base, NULL);
  return 0;
}

static const seen_rev_t *revoked_by(const scan_t *sc, uint64_t index) {
  for (size_t i = 0; i < sc->nrevs; i++)
    if (sc->revs[i].revokes == index && sc->revs[i].index > index) return &sc->revs[i];
  return NULL;
}

/* The operator revocation event of target t; strings point into t, reason and ref. verify reads
 * the revoked record from revokes_event_id = "<provider>:<event id>" (see verify.h). */
static void build_event(const target_t *t, const char *reason, char ref[REVOKE_REF_MAX],
                        Carepass__V1__PendingEvent *ev) {
  Carepass__V1__PendingEvent init = CAREPASS__V1__PENDING_EVENT__INIT;
  *ev = init;
  snprintf(ref, REVOKE_REF_MAX, "%s:%s", t->provider_id, t->event_id);
  ev->provider_id = (char *)REVOKE_PROVIDER;
  ev->provider_event_id = (char *)t->op_event;
  ev->worker_pseudonym.data = (uint8_t *)t->pseudonym;
  ev->worker_pseudonym.len = 32;
  ev->qualification_code = t->qualification;
  ev->kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION;
  ev->revokes_event_id = ref;
  ev->revocation_reason = (char *)reason;
  ev->reply_to = (char *)"";   /* nobody subscribes: the command polls Redis */
}

/* Record one revocation as a pending event in Redis (as intake records a provider's; idempotent by
 * its event id) and push it to verify. A claim that is already committed marks t done; a stale one
 * (refused before, or another --reason never committed) is forgotten and claimed again, once. */
static int claim_and_send(cp_redis_t *r, int64_t redrive_ms, void *sock, target_t *t,
                          const char *reason, char *err, size_t errlen) {
  char ref[REVOKE_REF_MAX], digest[65];
  Carepass__V1__PendingEvent ev;
  if (strlen(t->provider_id) + 1 + strlen(t->event_id) >= REVOKE_REF_MAX)
    return cp_err(err, errlen, "its provider and event id are too long to name");
  build_event(t, reason, ref, &ev);
  if (ing_pending_digest(&ev, digest) != 0)
    return cp_err(err, errlen, "cannot digest the revocation event");
  ev.received_at = cp_now_ms();
  uint8_t *packed = NULL;
  size_t plen = 0;
  if (cp_pb_pack(&ev.base, &packed, &plen) != 0)
    return cp_err(err, errlen, "cannot pack the revocation event");
  Carepass__V1__NotifyJob job;
  ing_accepted_job(&ev, &job);
  uint8_t *notice = NULL;
  size_t nlen = 0;
  if (cp_outbox_pack(&job, &notice, &nlen) != 0) {
    free(packed);
    return cp_err(err, errlen, "cannot pack the revocation's notice");
  }
  int rc = -1;
  for (int attempt = 0; attempt < 2; attempt++) {
    ing_claim_req_t req = {t->op_event, digest, packed, plen, notice, nlen};
    ing_claim_t c;
    /* an operator's revocation is never held back by the outbox bound */
    if (ing_store_claim(r, redrive_ms, INT64_MAX, REVOKE_PROVIDER, &req, 1, &c) != 0) {
      cp_err(err, errlen, "Redis: %s", cp_redis_errstr(r));
      break;
    }
    bool stale = c.reused || c.st == ING_ST_REJECTED;
    if (c.st == ING_ST_COMMITTED && !c.reused) {
      t->done = true;
      t->revocation_index = c.index;
      rc = 0;
    } else if (!stale) {   /* new, or still pending from an earlier run: (re-)send; verify is idempotent */
      rc = cp_zmq_send_pb(sock, &ev.base, 0);
      if (rc != 0) cp_err(err, errlen, "bus: %s", zmq_strerror(zmq_errno()));
    }
    ing_claim_clear(&c);
    if (!stale) break;
    cp_key_t key, member;
    const char *argv[] = {cp_key_event(&key, REVOKE_PROVIDER, t->op_event), cp_key_pending(),
                          cp_key_pending_member(&member, REVOKE_PROVIDER, t->op_event)};
    redisReply *rep = cp_redis_eval(r, &forget_stale, 3, argv, NULL);
    bool forgot = cp_redis_reply_is_int(rep, 1);
    if (rep != NULL) freeReplyObject(rep);
    if (!forgot) {
      cp_err(err, errlen, "event %s:%s is used for another revocation", REVOKE_PROVIDER, t->op_event);
      break;
    }
  }
  free(packed);
  free(notice);
  return rc;
}

/* Poll Redis until every target's op event is final (committed, or refused by verify) or the
 * deadline passes; returns how many are final. */
static size_t wait_commits(cp_redis_t *r, target_t *t, size_t nt, int wait_s) {
  int64_t deadline = cp_mono_ms() + (int64_t)wait_s * 1000;
  size_t done = 0;
  for (;;) {
    done = 0;
    for (size_t i = 0; i < nt; i++) {
      if (!t[i].done && !t[i].refused) {
        cp_key_t key;
        redisReply *rep = cp_redis_cmd(r, "HMGET %s state index reason msg",
                                       cp_key_event(&key, REVOKE_PROVIDER, t[i].op_event));
        if (cp_redis_reply_array(rep, 4) != NULL && rep->element[0]->type == REDIS_REPLY_STRING) {
          const redisReply *const *e = (const redisReply *const *)rep->element;
          if (strcmp(e[0]->str, "committed") == 0 && e[1]->type == REDIS_REPLY_STRING) {
            t[i].done = true;
            t[i].revocation_index = strtoull(e[1]->str, NULL, 10);
          } else if (strcmp(e[0]->str, "rejected") == 0) {
            t[i].refused = true;
            snprintf(t[i].refusal, sizeof t[i].refusal, "%s: %s",
                     e[2]->type == REDIS_REPLY_STRING ? e[2]->str : "?",
                     e[3]->type == REDIS_REPLY_STRING ? e[3]->str : "");
          }
        }
        if (rep != NULL) freeReplyObject(rep);
      }
      done += (t[i].done || t[i].refused) ? 1 : 0;
    }
    if (done == nt || cp_mono_ms() >= deadline) return done;
    usleep(REVOKE_POLL_MS * 1000);
  }
}

int cmd_revoke(int argc, char **argv) {
  const char *index_s = NULL, *provider = NULL, *from_s = NULL, *reason = NULL, *dir = NULL, *bus = NULL;
  long wait_s = REVOKE_WAIT_S;
  bool dry = false;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      help(stdout);
      return CLI_EXIT_OK;
    } else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
      reason = argv[++i];
    } else if (strcmp(argv[i], "--provider") == 0 && i + 1 < argc) {
      provider = argv[++i];
    } else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
      from_s = argv[++i];
    } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else if (strcmp(argv[i], "--bus") == 0 && i + 1 < argc) {
      bus = argv[++i];
    } else if (strcmp(argv[i], "--signer") == 0 && i + 1 < argc) {
      i++;
      fprintf(stderr, "carepass " CMD ": --signer is ignored: revocations go through verify (see --bus)\n");
    } else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
      if (cli_parse_long(argv[++i], 0, 3600, &wait_s) != 0) {
        cli_error(CMD, "--wait must be 0..3600 seconds");
        return CLI_EXIT_USAGE;
      }
    } else if (strcmp(argv[i], "--dry-run") == 0) {
      dry = true;
    } else if (argv[i][0] != '-' && index_s == NULL) {
      index_s = argv[i];
    } else {
      cli_error(CMD, "unexpected argument \"%s\" (try --help)", argv[i]);
      return CLI_EXIT_USAGE;
    }
  }
  if (reason == NULL || !cp_revocation_reason_valid(reason)) {
    cli_error(CMD, "--reason must be one of ISSUED_IN_ERROR, FRAUD, PROVIDER_DEACCREDITED, ASSESSMENT_INVALID, "
                   "DUPLICATE, WORKER_REQUEST, OTHER");
    return CLI_EXIT_USAGE;
  }
  if ((index_s != NULL) == (provider != NULL) || (provider != NULL) != (from_s != NULL)) {
    cli_error(CMD, "give either INDEX, or --provider ID with --from YYYY-MM-DD (try --help)");
    return CLI_EXIT_USAGE;
  }
  scan_t sc = {UINT64_MAX, provider, 0, NULL, 0, NULL, 0, -1, NULL, 0, NULL};
  if (index_s != NULL) {
    char *end = NULL;
    if (index_s[0] < '0' || index_s[0] > '9' || (sc.only = strtoull(index_s, &end, 10), *end != '\0') ||
        sc.only == UINT64_MAX) {
      cli_error(CMD, "INDEX \"%s\" is not a register index", index_s);
      return CLI_EXIT_USAGE;
    }
  } else if (cp_date_parse(from_s, &sc.from) != 0) {
    cli_error(CMD, "--from \"%s\" is not a YYYY-MM-DD date", from_s);
    return CLI_EXIT_USAGE;
  }
  if (cli_config(CMD) != 0) return CLI_EXIT_USAGE;
  if (dir == NULL) dir = cp_cfg_str(CP_OPT_REGISTER_DIR);
  if (bus == NULL) bus = cp_cfg_str(CP_OPT_BUS_VERIFY_IN);

  char err[CP_ERRLEN], serr[CP_ERRLEN] = "";
  int rc = CLI_EXIT_FAIL;
  reg_log_t *log = NULL;
  void *zctx = NULL;
  void *sock = NULL;
  cp_redis_t *redis = NULL;
  sc.err = serr;
  sc.errlen = sizeof serr;
  if (reg_open(dir, NULL, &log, err, sizeof err) != 0) {
    cli_error(CMD, "%s", err);
    goto out;
  }
  if (cli_subjects_open(CMD, 0, &sc.subjects) != 0) goto out;
  if (sc.only != UINT64_MAX && sc.only >= reg_size(log)) {
    cli_error(CMD, "index %" PRIu64 " is not in the register (size %" PRIu64 ")", sc.only, reg_size(log));
    goto out;
  }
  err[0] = '\0';
  if (reg_foreach_entry(log, 0, reg_size(log), scan_entry, &sc, err, sizeof err) != 0) {
    cli_error(CMD, "reading the register: %s", serr[0] ? serr : err);
    goto out;
  }
  if (sc.only != UINT64_MAX && sc.nt == 0) {
    cli_error(CMD, "entry %" PRIu64 " is a %s entry, not a record; only records and derived awards can be revoked",
              sc.only,
              sc.only_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION ? "revocation"
              : sc.only_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY      ? "key"
                                                                              : "non-record");
    goto out;
  }
  /* already revoked: say so and leave it (a second revocation would add nothing) */
  size_t keep = 0;
  for (size_t i = 0; i < sc.nt; i++) {
    const seen_rev_t *r = revoked_by(&sc, sc.t[i].index);
    if (r != NULL) {
      printf("entry %" PRIu64 " is already revoked by entry %" PRIu64 " (%s); nothing to do\n", sc.t[i].index,
             r->index, r->reason);
      free(sc.t[i].qualification);
      free(sc.t[i].provider_id);
      free(sc.t[i].event_id);
    } else {
      sc.t[keep++] = sc.t[i];
    }
  }
  sc.nt = keep;
  if (sc.nt == 0) {
    if (sc.only == UINT64_MAX) printf("no unrevoked record of provider %s completed on or after %s\n", provider, from_s);
    rc = CLI_EXIT_OK;
    goto out;
  }
  if (dry) {
    for (size_t i = 0; i < sc.nt; i++)
      printf("would revoke entry %" PRIu64 " (%s %s)\n", sc.t[i].index, sc.t[i].provider_id, sc.t[i].qualification);
    rc = CLI_EXIT_OK;
    goto out;
  }

  /* Redis holds the claims (and shows the commits); the bus takes them to verify */
  redis = cp_redis_new(cp_cfg_str(CP_OPT_REDIS_HOST), (int)cp_cfg_int(CP_OPT_REDIS_PORT),
                       (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, sizeof err);
  if (redis == NULL) {
    cli_error(CMD, "Redis: %s (operator revocations are recorded there before they are sent)", err);
    goto out;
  }
  if (ing_store_init(redis, err, sizeof err) != 0) {
    cli_error(CMD, "Redis: %s", err);
    goto out;
  }
  zctx = zmq_ctx_new();
  if (zctx == NULL) {
    cli_error(CMD, "zmq_ctx_new failed");
    goto out;
  }
  sock = cp_zmq_socket(zctx, ZMQ_PUSH, bus, false, 100000, 0, err, sizeof err);
  if (sock == NULL) {
    cli_error(CMD, "bus endpoint %s: %s", bus, err);
    goto out;
  }
  int64_t redrive_ms = cp_cfg_int(CP_OPT_REDRIVE_AFTER_MS);
  for (size_t i = 0; i < sc.nt; i++)
    if (claim_and_send(redis, redrive_ms, sock, &sc.t[i], reason, err, sizeof err) != 0) {
      cli_error(CMD, "sending the revocation of entry %" PRIu64 ": %s", sc.t[i].index, err);
      goto out;
    }
  if (wait_s == 0) {
    /* LINGER is 0 on carepass sockets: give the queued messages a moment to leave (a message lost
     * here is re-sent by intake's redrive: the claim is in Redis) */
    usleep(500 * 1000);
    printf("sent %zu revocation(s); not waiting for the commits\n", sc.nt);
    rc = CLI_EXIT_OK;
    goto out;
  }
  size_t done = wait_commits(redis, sc.t, sc.nt, (int)wait_s);
  size_t refused = 0;
  for (size_t i = 0; i < sc.nt; i++) {
    if (sc.t[i].done)
      printf("entry %" PRIu64 " revoked by entry %" PRIu64 " (%s)\n", sc.t[i].index, sc.t[i].revocation_index, reason);
    else if (sc.t[i].refused)
      refused++, printf("entry %" PRIu64 ": revocation refused by verify: %s\n", sc.t[i].index, sc.t[i].refusal);
    else
      printf("entry %" PRIu64 ": revocation not committed within %lds (run the command again; it is idempotent)\n",
             sc.t[i].index, wait_s);
  }
  rc = done == sc.nt && refused == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
  for (size_t i = 0; i < sc.nt; i++) {
    free(sc.t[i].qualification);
    free(sc.t[i].provider_id);
    free(sc.t[i].event_id);
  }
  free(sc.t);
  free(sc.revs);
  cp_zmq_close(&sock);
  if (zctx != NULL) zmq_ctx_term(zctx);
  cp_redis_destroy(&redis);
  cp_subject_store_close(&sc.subjects);
  reg_close(&log);
  return rc;
}
