/* cmd_verify.c -- `carepass verify`: offline check of a tlog-proof or passport bundle, with a verification statement. */
#include "cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_ascwds.h"
#include "cp_bundle.h"
#include "cp_catalogue.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_dates.h"
#include "cp_regkeys.h"
#include "cp_subject.h"
#include "cp_register.h"

/* Outcome of one check. */
typedef enum {
  V_PASSED = 0,      // the check was made and holds
  V_FAILED = 1,      // the check was made and does not hold
  V_NOT_EST = 2,     // the check could not be made from what the bundle holds
} v_result_t;

static const char *const RESULT_WORD[] = {"passed", "failed", "not established"};

/* One proof of the bundle, as checked. */
typedef struct {
  const cp_tlog_proof_t *p;            // the proof (owned by the bundle)
  bool key;                            // a key entry (key history) rather than a worker entry
  Carepass__V1__PassportEntry *pe;     // decoded entry (NULL if undecodable)
  bool sig_ok;                         // signature by the key valid at its index
  bool incl_ok;                        // included in the (trusted or not) checkpoint
  const reg_keyspan_t *span;           // key that signed it (when sig_ok)
  char sig_err[CP_ERRLEN];             // why the signature check failed
  char incl_err[CP_ERRLEN];            // why the inclusion check failed
  long revoked_by;                     // index into the rows of the revocation naming it, -1 = none
  bool worker_bad;                     // the entry is not shown to be the bundle's worker's
} v_row_t;

/* The whole run. */
typedef struct {
  int failed;                          // checks that failed
  int not_established;                 // checks not established
  char checkpoint_signer[REG_VKEY_MAX]; // vkey that signed the checkpoint ("" = none trusted)
  bool cp_trusted;                     // checkpoint signature verified with a trusted key
  uint64_t size;                       // checkpoint tree size
  uint8_t root[REG_HASH_BYTES];        // checkpoint root
  char origin[256];                    // checkpoint origin
} v_run_t;

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass verify FILE --vkey VKEY [--at YYYY-MM-DD] [--role ROLE [--started YYYY-MM-DD]]\n\n"
          "Check offline (no network, no Redis) a tlog-proof (c2sp.org/tlog-proof@v1,\n"
          "from `carepass proof`) or a passport bundle (carepass-passport/v1, from\n"
          "`carepass passport --out`): the checkpoint signature (by VKEY or a key the\n"
          "bundle's key history chains to from VKEY), each entry's Ed25519 signature by\n"
          "the key valid at its index, each entry's inclusion in the checkpoint, the\n"
          "revocations in the bundle and expiry on the date. Prints one line per check\n"
          "(passed / failed / not established, with the reason) and a verification\n"
          "statement. Exit status 0 only when no check failed.\n\n"
          "  --vkey VKEY   the register's verifier key: a file holding it, or the note\n"
          "                vkey text itself (<name>+<8 hex>+<base64>)\n"
          "  --at DATE     judge validity on DATE (default today; CAREPASS_TODAY)\n"
          "  --role ROLE   also say whether the authentic, valid records are enough for a\n"
          "                role of the Care Workforce Pathway ($CAREPASS_ROLES, e.g.\n"
          "                care-worker, registered-manager): ready, ready until the first\n"
          "                expiry, or not ready with what is missing or expired (exit 3\n"
          "                when every check passed but the worker is not ready)\n"
          "  --started DATE  the worker is a new starter in the role since DATE: what the\n"
          "                role allows a grace period for may still be pending\n"
          "  --asc-wds OUT --establishment ID --worker-id ID\n"
          "                also write the verified passport's training as an ASC-WDS training\n"
          "                bulk-upload file (LOCALESTID, UNIQUEWORKERID, CATEGORY, DESCRIPTION,\n"
          "                DATECOMPLETED, EXPIRYDATE, ACCREDITED, NOTES) to the file OUT, with\n"
          "                the workplace's and worker's ids as ASC-WDS knows them; revoked records,\n"
          "                qualifications and codes without a checked category\n"
          "                ($CAREPASS_ASCWDS_CATEGORIES) are left out and named on stderr\n");
}

static void line(v_run_t *r, v_result_t res, const char *fmt, ...) CP_PRINTF(3, 4);
static void line(v_run_t *r, v_result_t res, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  /* "<check>: <result> (<reason>)"; the check and the reason are split at the first '|' */
  char *bar = strchr(what, '|');
  if (bar != NULL) *bar = '\0';
  printf("%s: %s", what, RESULT_WORD[res]);
  if (bar != NULL && bar[1] != '\0') printf(" (%s)", bar + 1);
  printf("\n");
  if (res == V_FAILED) r->failed++;
  if (res == V_NOT_EST) r->not_established++;
}

/* --vkey: a file holding the vkey, or the vkey text. */
static int load_vkey(const char *arg, char *out, size_t outlen, char *err, size_t errlen) {
  struct stat st;
  if (stat(arg, &st) == 0) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (cp_read_file(arg, 64 * 1024, &buf, &len, err, errlen) != 0) return -1;
    char *nl = strpbrk((char *)buf, "\r\n");
    if (nl != NULL) *nl = '\0';
    char *s = (char *)buf;
    while (*s == ' ' || *s == '\t') s++;
    int rc = snprintf(out, outlen, "%s", s) >= (int)outlen ? cp_err(err, errlen, "%s: verifier key is too long", arg) : 0;
    free(buf);
    return rc;
  }
  if (strchr(arg, '+') == NULL) return cp_err(err, errlen, "%s: no such file, and not a vkey (<name>+<id>+<key>)", arg);
  if (snprintf(out, outlen, "%s", arg) >= (int)outlen) return cp_err(err, errlen, "verifier key is too long");
  return 0;
}

static int cmp_proof_index(const void *a, const void *b) {
  uint64_t x = (*(const cp_tlog_proof_t *const *)a)->index, y = (*(const cp_tlog_proof_t *const *)b)->index;
  return x < y ? -1 : x > y;
}

/* Key history from the bundle's key entries (chained from the genesis entry), or
 * the VKEY alone. Prints the key-history line. *first_trusted is the first span
 * whose key may sign the checkpoint (VKEY's span and later ones). */
static int key_history(v_run_t *r, cp_passport_t *b, const char *vkey, reg_keyspan_t **spans, size_t *n,
                       size_t *first_trusted) {
  char err[CP_ERRLEN], vname[128];
  uint8_t vpk[32], vid[CP_KEYID_BYTES];
  *spans = NULL;
  *n = 0;
  *first_trusted = 0;
  if (cp_vkey_parse(vkey, vname, sizeof vname, vpk, vid, err, sizeof err) != 0) {
    line(r, V_FAILED, "verifier key|%s", err);
    return -1;
  }
  size_t nk = 0;
  for (size_t i = 0; i < b->n; i++) nk += b->items[i].kind == CP_PROOF_KEY;
  if (nk == 0) {
    if (reg_keys_from_vkey(vkey, spans, n, err, sizeof err) != 0) {
      line(r, V_FAILED, "verifier key|%s", err);
      return -1;
    }
    line(r, V_NOT_EST, "key history|the bundle holds no key entries; every entry must be signed by %s+%02x%02x%02x%02x",
         vname, vid[0], vid[1], vid[2], vid[3]);
    return 0;
  }
  const cp_tlog_proof_t **kp = cp_xcalloc(nk, sizeof *kp);
  size_t k = 0;
  for (size_t i = 0; i < b->n; i++)
    if (b->items[i].kind == CP_PROOF_KEY) kp[k++] = &b->items[i].proof;
  qsort(kp, nk, sizeof *kp, cmp_proof_index);
  int rc = -1;
  for (size_t i = 0; i < nk; i++) {
    if (reg_keys_feed(spans, n, kp[i]->index, kp[i]->entry, kp[i]->entry_len, err, sizeof err) != 0) {
      line(r, V_FAILED, "key history|%s", err);
      goto out;
    }
  }
  if (*n == 0) {
    line(r, V_FAILED, "key history|the bundle's key proofs hold no key entry");
    goto out;
  }
  for (size_t i = 0; i < *n; i++) {
    if (memcmp((*spans)[i].key_id, vid, CP_KEYID_BYTES) == 0 && memcmp((*spans)[i].pk, vpk, 32) == 0) {
      *first_trusted = i;
      line(r, V_PASSED, "key history|%zu key(s); %s+%02x%02x%02x%02x is key %zu, and each later key is announced by an entry signed by the key before it",
           *n, vname, vid[0], vid[1], vid[2], vid[3], i + 1);
      rc = 0;
      goto out;
    }
  }
  line(r, V_FAILED, "key history|the verifier key %s+%02x%02x%02x%02x is not one of the register's %zu key(s) in the bundle",
       vname, vid[0], vid[1], vid[2], vid[3], *n);
out:
  free(kp);
  if (rc != 0) {
    free(*spans);
    *spans = NULL;
    *n = 0;
  }
  return rc;
}

/* The checkpoint: signed by a trusted key? Fills r->size/root either way (when parseable). */
static void check_checkpoint(v_run_t *r, const char *note, size_t len, const reg_keyspan_t *spans, size_t n,
                             size_t first_trusted) {
  char err[CP_ERRLEN];
  size_t nt = n - first_trusted;
  char **vk = cp_xcalloc(nt ? nt : 1, sizeof *vk);
  for (size_t i = 0; i < nt; i++) {
    vk[i] = cp_xmalloc(REG_VKEY_MAX);
    if (reg_keys_vkey(&spans[first_trusted + i], vk[i], REG_VKEY_MAX) != 0) vk[i][0] = '\0';
  }
  size_t which = 0;
  if (nt > 0 && reg_checkpoint_open_any(note, len, (const char *const *)vk, nt, r->origin, sizeof r->origin, &r->size,
                                        r->root, &which, err, sizeof err) == 0) {
    r->cp_trusted = true;
    snprintf(r->checkpoint_signer, sizeof r->checkpoint_signer, "%s", vk[which]);
    char *plus = strchr(r->checkpoint_signer, '+');
    if (plus != NULL && (plus = strchr(plus + 1, '+')) != NULL) *plus = '\0';   /* name+id is enough */
    line(r, V_PASSED, "checkpoint signature|%s, tree size %" PRIu64 ", signed by %s", r->origin, r->size,
         r->checkpoint_signer);
  } else {
    line(r, V_FAILED, "checkpoint signature|%s", err);
    char perr[CP_ERRLEN];
    if (reg_checkpoint_parse(note, len, r->origin, sizeof r->origin, &r->size, r->root, perr, sizeof perr) != 0)
      r->size = 0;
  }
  for (size_t i = 0; i < nt; i++) free(vk[i]);
  free(vk);
}

static const char *entry_kind(const Carepass__V1__PassportEntry *pe) {
  switch (pe->entry_type) {
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD: return "record";
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION: return "revocation";
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD: return "derived award";
    case CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY: return "key entry";
    default: return "entry of unknown type";
  }
}

/* Signature (key valid at the index) and inclusion of one proof. */
/* Is a worker entry the bundle's worker's? Format 1 names the pseudonym; format 2 must open to it
 * with the bundle's opening for that index (no opening: nothing shows it). Failures only. */
static void check_worker(v_run_t *r, v_row_t *row, const char *worker, cp_passport_t *bundle) {
  int failed = r->failed;
  const Carepass__V1__PassportEntry *pe = row->pe;
  uint64_t index = row->p->index;
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_KEY) {
    line(r, V_FAILED, "entry %" PRIu64 " worker|the entry names no worker", index);
  } else if (pe->version >= 2) {
    const cp_passport_opening_t *o = cp_passport_opening(bundle, index);
    cp_opening_t op;
    if (o == NULL) {
      line(r, V_FAILED, "entry %" PRIu64 " worker|the bundle carries no opening for this entry, so nothing shows "
           "it is the worker's", index);
    } else if (sodium_hex2bin(op.pseudonym, sizeof op.pseudonym, worker, strlen(worker), NULL, NULL, NULL) != 0 ||
               (memcpy(op.r, o->r, sizeof op.r), pe->subject.len != CP_SUBJECT_BYTES) ||
               !cp_subject_opens(pe->subject.data, &op)) {
      line(r, V_FAILED, "entry %" PRIu64 " worker|the entry's subject does not open to the bundle's worker "
           "(another worker's entry, or a wrong opening)", index);
    }
  } else if (pe->worker_pseudonym.len != 32) {
    line(r, V_FAILED, "entry %" PRIu64 " worker|the entry names no worker", index);
  } else {
    char hex[65];
    cp_hex(pe->worker_pseudonym.data, 32, hex);
    if (strcmp(hex, worker) != 0)
      line(r, V_FAILED, "entry %" PRIu64 " worker|the entry belongs to another worker than the bundle's", index);
  }
  row->worker_bad = r->failed != failed;
}

/* The records readiness may count: authentic (signature, inclusion, trusted checkpoint), the
 * bundle's worker's, records or awards; revoked from their revocation's day. */
static size_t role_records(const v_run_t *r, const v_row_t *rows, size_t nrows, role_record_t *out) {
  size_t n = 0;
  for (size_t i = 0; i < nrows; i++) {
    const v_row_t *row = &rows[i];
    if (row->key || !row->sig_ok || !row->incl_ok || !r->cp_trusted || row->worker_bad) continue;
    const Carepass__V1__PassportEntry *rev = row->revoked_by >= 0 ? rows[row->revoked_by].pe : NULL;
    if (role_record_of(row->pe, rev, row->p->index, &out[n])) n++;
  }
  return n;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Every opening must be for a worker entry the bundle holds: an opening of anything else claims
 * an entry the bundle does not show. */
static void check_openings(v_run_t *r, const v_row_t *rows, size_t nrows, const cp_passport_t *b) {
  if (b->nopen == 0) return;
  uint64_t *have = cp_xcalloc(nrows ? nrows : 1, sizeof *have);
  size_t nh = 0;
  for (size_t i = 0; i < nrows; i++)
    if (!rows[i].key) have[nh++] = rows[i].p->index;
  qsort(have, nh, sizeof *have, cmp_u64);
  for (size_t i = 0; i < b->nopen; i++)
    if (bsearch(&b->openings[i].index, have, nh, sizeof *have, cmp_u64) == NULL)
      line(r, V_FAILED, "bundle format|the bundle carries an opening for entry %" PRIu64 ", which it does not hold",
           b->openings[i].index);
  free(have);
}

static void check_row(v_run_t *r, v_row_t *row, const reg_keyspan_t *spans, size_t n, const char *worker,
                      cp_passport_t *bundle) {
  const cp_tlog_proof_t *p = row->p;
  const char *what = row->key ? "key entry" : "entry";
  char err[CP_ERRLEN];
  if (p->entry_len == 0) {
    line(r, V_FAILED, "%s %" PRIu64 " signature|the proof carries no entry (no extra line)", what, p->index);
  } else if (reg_entry_check(spans, n, p->index, p->entry, p->entry_len, &row->pe, &row->span, row->sig_err,
                             sizeof row->sig_err) == 0) {
    row->sig_ok = true;
    char vk[REG_VKEY_MAX];
    if (reg_keys_vkey(row->span, vk, sizeof vk) != 0) vk[0] = '\0';
    char *plus = strchr(vk, '+');
    if (plus != NULL && (plus = strchr(plus + 1, '+')) != NULL) *plus = '\0';
    line(r, V_PASSED, "%s %" PRIu64 " signature|%s, Ed25519 by %s, a key valid at index %" PRIu64, what, p->index,
         entry_kind(row->pe), vk, p->index);
  } else {
    line(r, V_FAILED, "%s %" PRIu64 " signature|%s", what, p->index, row->sig_err);
    /* decode without trusting it, for the statement */
    Carepass__V1__SignedEntry *se = (Carepass__V1__SignedEntry *)cp_pb_unpack(
        &carepass__v1__signed_entry__descriptor, p->entry, p->entry_len, REG_ENTRY_MAX, err, sizeof err);
    if (se != NULL) {
      row->pe = (Carepass__V1__PassportEntry *)cp_pb_unpack(&carepass__v1__passport_entry__descriptor,
                                                            se->entry.data, se->entry.len, REG_ENTRY_MAX, err,
                                                            sizeof err);
      protobuf_c_message_free_unpacked(&se->base, NULL);
    }
  }
  if (r->size == 0) {
    line(r, V_NOT_EST, "%s %" PRIu64 " inclusion|the checkpoint could not be read", what, p->index);
  } else if (cp_tlog_proof_check(p, r->size, r->root, row->incl_err, sizeof row->incl_err) == 0) {
    row->incl_ok = true;
    if (r->cp_trusted)
      line(r, V_PASSED, "%s %" PRIu64 " inclusion|%zu-hash proof to the root of the signed checkpoint (size %" PRIu64 ")",
           what, p->index, p->nproof, r->size);
    else
      line(r, V_NOT_EST, "%s %" PRIu64 " inclusion|the proof leads to the checkpoint root, but the checkpoint signature failed",
           what, p->index);
  } else {
    line(r, V_FAILED, "%s %" PRIu64 " inclusion|%s", what, p->index, row->incl_err);
  }
  if (!row->key && worker != NULL && row->pe != NULL) check_worker(r, row, worker, bundle);
}

/* Validity of one record on the date; appends the statement sentence to st. */
static void check_validity(v_run_t *r, v_row_t *rows, size_t nrows, size_t i, bool passport, const char *date,
                           int32_t day, const cat_catalogue_t *cat, FILE *st) {
  v_row_t *row = &rows[i];
  const Carepass__V1__PassportEntry *pe = row->pe;
  uint64_t idx = row->p->index;
  const Carepass__V1__PassportEntry *rev = row->revoked_by >= 0 ? rows[row->revoked_by].pe : NULL;
  char rday[11] = "";
  if (rev != NULL) cp_date_format((int32_t)((rev->issued_at < 0 ? 0 : rev->issued_at) / 86400), rday);
  /* revocation */
  reg_status_t rs = reg_status_on(pe->completion_date, pe->valid_until,
                                  rev != NULL ? (rev->issued_at < 0 ? 0 : rev->issued_at) : -1, day);
  if (rev != NULL && rs == REG_STATUS_REVOKED)
    line(r, V_FAILED, "entry %" PRIu64 " revocation|revoked by entry %" PRIu64 " (%s) on %s, on or before %s", idx,
         rows[row->revoked_by].p->index, rev->reason_code, rday, date);
  else if (rev != NULL)
    line(r, V_PASSED, "entry %" PRIu64 " revocation|revoked by entry %" PRIu64 " (%s) only on %s, after %s", idx,
         rows[row->revoked_by].p->index, rev->reason_code, rday, date);
  else if (passport)
    line(r, V_PASSED, "entry %" PRIu64 " revocation|no revocation in the bundle names index %" PRIu64, idx, idx);
  else
    line(r, V_NOT_EST, "entry %" PRIu64 " revocation|a single-entry proof cannot show that no revocation exists", idx);
  /* completion and expiry */
  reg_status_t cs = reg_status_on(pe->completion_date, "", -1, day);
  reg_status_t es = reg_status_on(pe->completion_date, pe->valid_until, -1, day);
  if (cs == REG_STATUS_BAD_DATE || es == REG_STATUS_BAD_DATE)
    line(r, V_FAILED, "entry %" PRIu64 " dates|completion date or valid-until is not a real date", idx);
  else if (cs == REG_STATUS_NOT_YET)
    line(r, V_FAILED, "entry %" PRIu64 " completion|completed %s, after %s", idx, pe->completion_date, date);
  else if (es == REG_STATUS_EXPIRED)
    line(r, V_FAILED, "entry %" PRIu64 " expiry|expired: valid until %s, before %s", idx, pe->valid_until, date);
  else if (pe->valid_until[0] == '\0')
    line(r, V_PASSED, "entry %" PRIu64 " expiry|does not expire (completed %s)", idx, pe->completion_date);
  else
    line(r, V_PASSED, "entry %" PRIu64 " expiry|valid until %s (completed %s)", idx, pe->valid_until,
         pe->completion_date);

  /* the statement */
  reg_status_t all = reg_record_status(pe, rev, date);
  const cat_qual_t *q = cat != NULL ? cat_find(cat, pe->qualification_code) : NULL;
  fprintf(st, "%s %" PRIu64 " (%s%s%s, %s, completed %s) ",
          pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD ? "Award" : "Record", idx,
          q != NULL ? q->title : pe->qualification_code, q != NULL ? ", " : "",
          q != NULL ? pe->qualification_code : "", pe->provider_id, pe->completion_date);
  bool authentic = row->sig_ok && row->incl_ok && r->cp_trusted;
  if (all == REG_STATUS_VALID && authentic) {
    fprintf(st, "was valid on %s: its signature verifies with the register key valid at index %" PRIu64
                ", it is included in the checkpoint of size %" PRIu64 " signed by %s, %s, and it %s.\n",
            date, idx, r->size, r->checkpoint_signer,
            rev != NULL ? "its revocation took effect only later"
                        : (passport ? "no revocation in the bundle names it" : "its revocation status is not established by a single-entry proof"),
            pe->valid_until[0] ? "had not expired" : "does not expire");
    return;
  }
  fprintf(st, "was NOT established as valid on %s:", date);
  if (!row->sig_ok) fprintf(st, " the signature check failed (%s);", row->sig_err);
  if (!row->incl_ok) fprintf(st, " inclusion in the checkpoint was not shown%s%s;", row->incl_err[0] ? ": " : "", row->incl_err);
  if (!r->cp_trusted) fprintf(st, " the checkpoint signature did not verify;");
  if (all == REG_STATUS_REVOKED)
    fprintf(st, " it was revoked by entry %" PRIu64 " (%s) on %s;", rows[row->revoked_by].p->index, rev->reason_code, rday);
  else if (all == REG_STATUS_NOT_YET)
    fprintf(st, " it was completed only on %s;", pe->completion_date);
  else if (all == REG_STATUS_EXPIRED)
    fprintf(st, " it expired (valid until %s);", pe->valid_until);
  else if (all == REG_STATUS_BAD_DATE)
    fprintf(st, " its dates are malformed;");
  fprintf(st, "\n");
}

int cmd_verify(int argc, char **argv) {
  const char *file = NULL, *vkey_arg = NULL, *at = NULL, *role_id = NULL, *started_s = NULL;
  const char *ascwds = NULL, *estid = NULL, *workerid = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--vkey") == 0 && i + 1 < argc) vkey_arg = argv[++i];
    else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc) at = argv[++i];
    else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) role_id = argv[++i];
    else if (strcmp(argv[i], "--started") == 0 && i + 1 < argc) started_s = argv[++i];
    else if (strcmp(argv[i], "--asc-wds") == 0 && i + 1 < argc) ascwds = argv[++i];
    else if (strcmp(argv[i], "--establishment") == 0 && i + 1 < argc) estid = argv[++i];
    else if (strcmp(argv[i], "--worker-id") == 0 && i + 1 < argc) workerid = argv[++i];
    else if (argv[i][0] != '-' && file == NULL) file = argv[i];
    else {
      cli_error("verify", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (file == NULL || vkey_arg == NULL) {
    cli_error("verify", "FILE and --vkey VKEY are required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if ((ascwds != NULL) != (estid != NULL) || (ascwds != NULL) != (workerid != NULL)) {
    cli_error("verify", "--asc-wds OUT needs --establishment ID and --worker-id ID (the workplace's and the "
              "worker's ids in ASC-WDS), and they need it");
    return CLI_EXIT_USAGE;
  }
  if (ascwds != NULL && (strcmp(ascwds, "-") == 0 || ascwds[0] == '\0')) {
    cli_error("verify", "--asc-wds takes a file name (the report goes to standard output)");
    return CLI_EXIT_USAGE;
  }
  if (ascwds != NULL && (!ascwds_id_ok(estid) || !ascwds_id_ok(workerid))) {
    cli_error("verify", "--establishment and --worker-id must be 1 to %d printable characters without commas or "
              "quotes", ASCWDS_ID_MAX);
    return CLI_EXIT_USAGE;
  }
  if (cli_config("verify") != 0) return CLI_EXIT_USAGE;   /* CAREPASS_TODAY, CAREPASS_CATALOGUE */
  char err[CP_ERRLEN], vkey[REG_VKEY_MAX];
  int32_t day;
  char date[11];
  if (at != NULL) {
    if (cp_date_parse(at, &day) != 0) {
      cli_error("verify", "--at must be a real date YYYY-MM-DD");
      return CLI_EXIT_USAGE;
    }
  } else {
    day = cp_today();
  }
  cp_date_format(day, date);
  int32_t started = -1;
  if (started_s != NULL && (role_id == NULL || cp_date_parse(started_s, &started) != 0)) {
    cli_error("verify", "--started needs --role and a real date YYYY-MM-DD");
    return CLI_EXIT_USAGE;
  }

  if (load_vkey(vkey_arg, vkey, sizeof vkey, err, sizeof err) != 0) {
    cli_error("verify", "%s", err);
    return CLI_EXIT_USAGE;
  }
  /* the catalogue gives titles in the statement; it is a local file (optional) */
  cat_catalogue_t *cat = NULL;
  if (cat_load(cp_cfg_str(CP_OPT_CATALOGUE), &cat, err, sizeof err) != 0)
    cat = NULL;
  const role_t *role = NULL;
  roles_t *roles = NULL;
  if (role_id != NULL && (roles = cli_roles_load("verify", cat, role_id, &role)) == NULL) {
    cat_destroy(&cat);
    return CLI_EXIT_USAGE;
  }

  int rc = CLI_EXIT_FAIL;
  uint8_t *text = NULL;
  size_t len = 0;
  cp_passport_t b = {0};
  cp_tlog_proof_t single = {0};
  reg_keyspan_t *spans = NULL;
  size_t nspans = 0, first_trusted = 0;
  v_row_t *rows = NULL;
  size_t nrows = 0;
  v_run_t r = {0};
  char *stmt = NULL;
  size_t stmtlen = 0;
  FILE *st = NULL;
  bool passport;

  if (cp_read_file(file, CP_BUNDLE_MAX, &text, &len, err, sizeof err) != 0) {
    cli_error("verify", "%s", err);
    goto out;
  }
  passport = len >= strlen(CP_PASSPORT_HEADER) && (memcmp(text, CP_PASSPORT_HEADER, strlen(CP_PASSPORT_HEADER)) == 0 ||
                                                   memcmp(text, CP_PASSPORT_HEADER_V2, strlen(CP_PASSPORT_HEADER_V2)) == 0);
  if (passport) {
    if (cp_passport_parse((char *)text, len, &b, err, sizeof err) != 0) {
      line(&r, V_FAILED, "bundle format|%s", err);
      goto out;
    }
    line(&r, V_PASSED, "bundle format|passport bundle (%s) for worker %.8s, %zu proof(s)%s",
         b.nopen ? CP_PASSPORT_HEADER_V2 : CP_PASSPORT_HEADER, b.worker, b.n,
         b.nopen ? ", with openings of its format-2 entries" : "");
  } else {
    if (cp_tlog_proof_parse((char *)text, len, &single, err, sizeof err) != 0) {
      line(&r, V_FAILED, "bundle format|%s", err);
      goto out;
    }
    line(&r, V_PASSED, "bundle format|tlog-proof (" CP_TLOG_PROOF_HEADER ") of entry %" PRIu64, single.index);
    cp_passport_init(&b, "", single.checkpoint, single.checkpoint_len);
    cp_passport_add(&b, CP_PROOF_ENTRY, &single);
  }

  if (key_history(&r, &b, vkey, &spans, &nspans, &first_trusted) != 0) {
    /* without a key history no signature can be judged: check with VKEY alone */
    if (reg_keys_from_vkey(vkey, &spans, &nspans, err, sizeof err) != 0) goto out;
    first_trusted = 0;
  }
  check_checkpoint(&r, b.checkpoint, b.checkpoint_len, spans, nspans, first_trusted);

  rows = cp_xcalloc(b.n ? b.n : 1, sizeof *rows);
  nrows = b.n;
  for (size_t i = 0; i < nrows; i++) {
    rows[i].p = &b.items[i].proof;
    rows[i].key = b.items[i].kind == CP_PROOF_KEY;
    rows[i].revoked_by = -1;
    check_row(&r, &rows[i], spans, nspans, passport ? b.worker : NULL, &b);
  }
  check_openings(&r, rows, nrows, &b);
  /* revocations present in the bundle (only authentic ones count) */
  for (size_t i = 0; i < nrows; i++) {
    const Carepass__V1__PassportEntry *pe = rows[i].pe;
    if (rows[i].key || pe == NULL || !rows[i].sig_ok || !rows[i].incl_ok ||
        pe->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION)
      continue;
    for (size_t j = 0; j < nrows; j++)
      if (!rows[j].key && rows[j].p->index == pe->revokes_index && rows[j].p->index < rows[i].p->index &&
          (rows[j].revoked_by < 0 || rows[rows[j].revoked_by].pe->issued_at > pe->issued_at))
        rows[j].revoked_by = (long)i;
  }
  st = open_memstream(&stmt, &stmtlen);
  if (st == NULL) abort();
  size_t nrec = 0;
  for (size_t i = 0; i < nrows; i++) {
    const Carepass__V1__PassportEntry *pe = rows[i].pe;
    if (rows[i].key || pe == NULL) continue;
    if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD ||
        pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD) {
      check_validity(&r, rows, nrows, i, passport, date, day, cat, st);
      nrec++;
    } else if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION) {
      fprintf(st, "Revocation %" PRIu64 " (%s, %s) withdraws entry %" PRIu64 " from %s%s.\n", rows[i].p->index,
              pe->reason_code, pe->provider_id, pe->revokes_index, "its issue date",
              rows[i].sig_ok && rows[i].incl_ok && r.cp_trusted ? "" : " (NOT authentic: see the checks above)");
    }
  }
  fclose(st);
  st = NULL;
  printf("\nVerification statement (%s):\n%s", date, stmt != NULL ? stmt : "");
  if (nrec == 0 && passport) printf("The bundle holds no records.\n");
  printf("%s: %d check(s) failed, %d not established.\n", r.failed ? "NOT VERIFIED" : "VERIFIED", r.failed,
         r.not_established);
  rc = r.failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
  if (role != NULL && passport) {
    role_record_t *recs = cp_xcalloc(nrows + 1, sizeof *recs);
    role_answer_t answer;
    cli_role_print(stdout, cat, role, recs, role_records(&r, rows, nrows, recs), day, started, &answer);
    free(recs);
    if (rc == CLI_EXIT_OK && answer.verdict == ROLE_NOT_READY) rc = CLI_EXIT_NOT_READY;
  } else if (role != NULL) {
    printf("\nReadiness: not established (a single-entry proof is not the worker's whole passport)\n");
  }
  if (ascwds != NULL) {
    if (!passport || r.failed) {
      cli_error("verify", "no ASC-WDS file written: %s", !passport ? "a single-entry proof is not a passport"
                                                                    : "the bundle did not verify");
      if (rc == CLI_EXIT_OK) rc = CLI_EXIT_FAIL;
    } else {
      role_record_t *recs = cp_xcalloc(nrows + 1, sizeof *recs);
      char origin[128];   /* the checkpoint's first line: the register's origin */
      size_t ol = strcspn(b.checkpoint, "\n");
      snprintf(origin, sizeof origin, "%.*s", (int)(ol < sizeof origin ? ol : sizeof origin - 1), b.checkpoint);
      int arc = cli_ascwds_write(ascwds, estid, workerid, cat, recs, role_records(&r, rows, nrows, recs), origin);
      free(recs);
      if (arc != CLI_EXIT_OK) rc = arc;
    }
  }
out:
  if (r.failed && rc == CLI_EXIT_FAIL && rows == NULL) printf("NOT VERIFIED: %d check(s) failed.\n", r.failed);
  if (st != NULL) fclose(st);
  free(stmt);
  for (size_t i = 0; i < nrows; i++)
    if (rows[i].pe != NULL) protobuf_c_message_free_unpacked(&rows[i].pe->base, NULL);
  free(rows);
  free(spans);
  cp_passport_clear(&b);
  cp_tlog_proof_clear(&single);
  free(text);
  roles_destroy(&roles);
  cat_destroy(&cat);
  return rc;
}

/* ---- key entries of a register (for `passport --out`) ---- */

int cli_key_entries(reg_log_t *log, uint64_t **indexes, size_t *n, char *err, size_t errlen) {
  *indexes = NULL;
  *n = 0;
  reg_keyspan_t *spans = NULL;
  size_t ns = 0;
  char kerr[CP_ERRLEN];
  if (reg_size(log) == 0) return 0;
  if (reg_keys_load(log, &spans, &ns, kerr, sizeof kerr) != 0) {
    /* a register written before key history has no genesis entry: no key entries to add */
    if (strstr(kerr, "no genesis") != NULL) return 0;
    return cp_err(err, errlen, "%s", kerr);
  }
  *indexes = cp_xcalloc(ns ? ns : 1, sizeof **indexes);
  for (size_t i = 0; i < ns; i++) (*indexes)[i] = spans[i].key_index;
  *n = ns;
  free(spans);
  return 0;
}
