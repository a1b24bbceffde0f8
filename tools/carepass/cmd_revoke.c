/* cmd_revoke.c -- `carepass revoke`: operator revocations (one index, or a provider's records from a date) sent to the signer. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "carepass/v1/internal.pb-c.h"
#include "carepass/v1/register.pb-c.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_dates.h"
#include "cp_keys.h"
#include "cp_reasons.h"
#include "cp_redis.h"
#include "cp_regkeys.h"
#include "cp_register.h"
#include "cp_zmq.h"

#define CMD "revoke"
#define REVOKE_PROVIDER "carepass-operator"   /* provider id of operator revocations */
#define REVOKE_EVENT_FMT "op-revoke-%" PRIu64  /* their event id: one per revoked index (idempotent) */
#define REVOKE_WAIT_S 30                       /* default bound on waiting for the commits */
#define REVOKE_POLL_MS 200                     /* pause between Redis polls */

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass revoke INDEX --reason CODE [options]\n"
          "       carepass revoke --provider ID --from YYYY-MM-DD --reason CODE [options]\n\n"
          "Operator revocation. The first form revokes the record at register index\n"
          "INDEX; the second every record of provider ID completed on or after the date\n"
          "that is not revoked yet (de-accreditation, fraud). Each revocation is a\n"
          "register entry (provider " REVOKE_PROVIDER ", event id op-revoke-<index>, so\n"
          "running the command again never revokes twice) sent to the signer shard; the\n"
          "command waits until Redis shows each one committed and prints its index.\n"
          "A record is revoked from the moment (issued_at) of its revocation entry.\n\n"
          "  --reason CODE      ISSUED_IN_ERROR, FRAUD, PROVIDER_DEACCREDITED,\n"
          "                     ASSESSMENT_INVALID, DUPLICATE, WORKER_REQUEST or OTHER\n"
          "  --dir DIR          register directory (default $CAREPASS_REGISTER_DIR)\n"
          "  --signer ENDPOINTS signer shard endpoints, comma-separated in shard order\n"
          "                     (default $CAREPASS_SIGNER_ENDPOINTS)\n"
          "  --wait SECONDS     how long to wait for the commits (default %d; 0 = do not wait)\n"
          "  --dry-run          list what would be revoked, send nothing\n",
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
} scan_t;

static void add_target(scan_t *sc, uint64_t index, const Carepass__V1__PassportEntry *pe) {
  sc->t = realloc(sc->t, (sc->nt + 1) * sizeof *sc->t);
  if (sc->t == NULL) abort();
  target_t *t = &sc->t[sc->nt++];
  memset(t, 0, sizeof *t);
  t->index = index;
  if (pe->worker_pseudonym.len == 32) memcpy(t->pseudonym, pe->worker_pseudonym.data, 32);
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

/* Send one revocation to the shard of the record's worker (routing as verify does). */
static int send_revocation(void **socks, size_t nsocks, const target_t *t, const char *reason) {
  Carepass__V1__PendingEvent ev = CAREPASS__V1__PENDING_EVENT__INIT;
  ev.provider_id = (char *)REVOKE_PROVIDER;
  ev.provider_event_id = (char *)t->op_event;
  ev.worker_pseudonym.data = (uint8_t *)t->pseudonym;
  ev.worker_pseudonym.len = 32;
  ev.qualification_code = t->qualification;
  ev.kind = CAREPASS__V1__EVENT_KIND__EVENT_KIND_REVOCATION;
  ev.revokes_event_id = t->event_id;
  ev.revocation_reason = (char *)reason;
  ev.received_at = cp_now_ms();
  Carepass__V1__VerifiedRecord rec = CAREPASS__V1__VERIFIED_RECORD__INIT;
  rec.event = &ev;
  rec.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION;
  rec.revokes_index = t->index;
  rec.reason_code = (char *)reason;
  rec.valid_until = (char *)"";
  /* first two pseudonym bytes, big-endian, modulo the shard count (verify_shard_of) */
  size_t shard = (((size_t)t->pseudonym[0] << 8) | t->pseudonym[1]) % nsocks;
  return cp_zmq_send_pb(socks[shard], &rec.base, 0);
}

/* Poll Redis until every target's op event is committed or the deadline passes. */
static size_t wait_commits(cp_redis_t *r, target_t *t, size_t nt, int wait_s) {
  int64_t deadline = cp_mono_ms() + (int64_t)wait_s * 1000;
  size_t done = 0;
  for (;;) {
    done = 0;
    for (size_t i = 0; i < nt; i++) {
      if (!t[i].done) {
        char key[300];
        snprintf(key, sizeof key, CP_KEY_EVENT_FMT, REVOKE_PROVIDER, t[i].op_event);
        redisReply *rep = cp_redis_cmd(r, "HMGET %s state index", key);
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[0]->type == REDIS_REPLY_STRING && strcmp(rep->element[0]->str, "committed") == 0 &&
            rep->element[1]->type == REDIS_REPLY_STRING) {
          t[i].done = true;
          t[i].revocation_index = strtoull(rep->element[1]->str, NULL, 10);
        }
        if (rep != NULL) freeReplyObject(rep);
      }
      done += t[i].done ? 1 : 0;
    }
    if (done == nt || cp_mono_ms() >= deadline) return done;
    usleep(REVOKE_POLL_MS * 1000);
  }
}

int cmd_revoke(int argc, char **argv) {
  const char *index_s = NULL, *provider = NULL, *from_s = NULL, *reason = NULL, *dir = NULL, *signer = NULL;
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
    } else if (strcmp(argv[i], "--signer") == 0 && i + 1 < argc) {
      signer = argv[++i];
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
  scan_t sc = {UINT64_MAX, provider, 0, NULL, 0, NULL, 0, -1, NULL, 0};
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
  if (dir == NULL) dir = cp_cfg_str("REGISTER_DIR");
  if (signer == NULL) signer = getenv("CAREPASS_SIGNER_ENDPOINTS");
  if (signer == NULL || signer[0] == '\0') signer = cp_cfg_str("SIGNER_ENDPOINTS");

  char err[CP_ERRLEN], serr[CP_ERRLEN] = "";
  int rc = CLI_EXIT_FAIL;
  reg_log_t *log = NULL;
  void *zctx = NULL;
  void **socks = NULL;
  size_t nsocks = 0;
  cp_redis_t *redis = NULL;
  char *list = NULL;
  sc.err = serr;
  sc.errlen = sizeof serr;
  if (reg_open(dir, NULL, &log, err, sizeof err) != 0) {
    cli_error(CMD, "%s", err);
    goto out;
  }
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

  /* one PUSH socket per shard, in CAREPASS_SIGNER_ENDPOINTS order */
  zctx = zmq_ctx_new();
  if (zctx == NULL) {
    cli_error(CMD, "zmq_ctx_new failed");
    goto out;
  }
  list = cp_strdup(signer);
  size_t cap = 1;
  for (const char *c = list; *c; c++) cap += *c == ',';
  socks = cp_xcalloc(cap, sizeof *socks);
  char *save = NULL;
  for (char *ep = strtok_r(list, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
    while (*ep == ' ') ep++;
    if (*ep == '\0') continue;
    socks[nsocks] = cp_zmq_socket(zctx, ZMQ_PUSH, ep, false, 100000, 0, err, sizeof err);
    if (socks[nsocks] == NULL) {
      cli_error(CMD, "signer endpoint %s: %s", ep, err);
      goto out;
    }
    nsocks++;
  }
  if (nsocks == 0) {
    cli_error(CMD, "no signer endpoint (set CAREPASS_SIGNER_ENDPOINTS or --signer)");
    goto out;
  }
  if (wait_s > 0) {
    redis = cp_redis_new(cp_cfg_str("REDIS_HOST"), (int)cp_cfg_int("REDIS_PORT"),
                         (int)cp_cfg_int("REDIS_TIMEOUT_MS"), err, sizeof err);
    if (redis == NULL) {
      cli_error(CMD, "Redis: %s (needed to see the commits; --wait 0 sends without waiting)", err);
      goto out;
    }
  }
  for (size_t i = 0; i < sc.nt; i++)
    if (send_revocation(socks, nsocks, &sc.t[i], reason) != 0) {
      cli_error(CMD, "sending the revocation of entry %" PRIu64 ": %s", sc.t[i].index, zmq_strerror(zmq_errno()));
      goto out;
    }
  if (wait_s == 0) {
    /* LINGER is 0 on carepass sockets: give the queued messages a moment to leave */
    usleep(500 * 1000);
    printf("sent %zu revocation(s); not waiting for the commits\n", sc.nt);
    rc = CLI_EXIT_OK;
    goto out;
  }
  size_t done = wait_commits(redis, sc.t, sc.nt, (int)wait_s);
  for (size_t i = 0; i < sc.nt; i++) {
    if (sc.t[i].done)
      printf("entry %" PRIu64 " revoked by entry %" PRIu64 " (%s)\n", sc.t[i].index, sc.t[i].revocation_index, reason);
    else
      printf("entry %" PRIu64 ": revocation not committed within %lds (run the command again; it is idempotent)\n",
             sc.t[i].index, wait_s);
  }
  rc = done == sc.nt ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
  for (size_t i = 0; i < sc.nt; i++) {
    free(sc.t[i].qualification);
    free(sc.t[i].provider_id);
    free(sc.t[i].event_id);
  }
  free(sc.t);
  free(sc.revs);
  for (size_t i = 0; i < nsocks; i++) cp_zmq_close(&socks[i]);
  free(socks);
  free(list);
  if (zctx != NULL) zmq_ctx_term(zctx);
  cp_redis_destroy(&redis);
  reg_close(&log);
  return rc;
}
