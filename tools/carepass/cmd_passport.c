/* cmd_passport.c -- `carepass passport`: a worker's records from the register, each signature and inclusion proof checked. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_bundle.h"
#include "cp_catalogue.h"
#include "cp_codec.h"
#include "cp_config.h"
#include "cp_crypto.h"
#include "cp_dates.h"
#include "cp_keys.h"
#include "cp_redis.h"
#include "cp_register.h"
#include "cp_regkeys.h"
#include "cp_subject.h"

#define PASSPORT_MAX_ENTRIES 100000 /* most index entries read for one worker */

/* One register entry of the worker, as read and checked. */
typedef struct {
  uint64_t index;                   // register index
  Carepass__V1__PassportEntry *pe;  // decoded entry (NULL if it could not be read/decoded)
  char problem[2 * CP_ERRLEN];        // why pe is NULL or the entry is not the worker's ("" = fine)
  bool sig_ok;                      // Ed25519 signature verified with the register key
  bool incl_ok;                     // inclusion proof verified against the signed checkpoint
  bool revoked;                     // a later revocation entry names this index
  uint64_t revoked_by;              // index of that revocation
  char revoke_reason[64];           // its reason code
  int64_t revoked_at;               // its issued_at (unix seconds)
  bool has_r;                       // format 2: the opening's r from the worker's index (cp:w:{hex}:r)
  uint8_t r[CP_SUBJECT_R_BYTES];
} pp_row_t;

/* What the run needs: the register, its verifier key and the signed tree head. */
typedef struct {
  reg_log_t *log;                   // register, read-only
  unsigned char pk[32];             // register signing public key
  unsigned char key_id[CP_KEYID_BYTES]; // its note key id
  uint64_t size;                    // checkpoint tree size
  uint8_t root[REG_HASH_BYTES];     // checkpoint root hash
  unsigned char pseudonym[CP_PSEUDONYM_BYTES]; // the worker
  reg_keyspan_t *spans;             // key history: which key may sign which indexes
  size_t nspans;                    // number of spans
} pp_ctx_t;

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass passport NI_NUMBER [--vkey FILE] [--out FILE] [--role ROLE [--started DATE]]\n\n"
          "Show the worker's passport: every register entry listed for the worker in\n"
          "Redis, read from the register ($CAREPASS_REGISTER_DIR), with its Ed25519\n"
          "signature checked and its inclusion in the current signed checkpoint proved.\n"
          "Status is valid, expired (valid until is past) or revoked (by a later\n"
          "revocation entry). Exit status 1 if any check failed.\n\n"
          "  --vkey FILE   the register's verifier key (note vkey format);\n"
          "                default <REGISTER_DIR>/vkey\n"
          "  --out FILE    also write the passport bundle (carepass-passport/v1, or v2\n"
          "                with the openings of format-2 entries: the\n"
          "                checkpoint, the register's key entries and a tlog-proof of\n"
          "                every entry of the worker) for `carepass verify` offline\n"
          "  --role ROLE   also say whether the worker is ready today for a role of the\n"
          "                Care Workforce Pathway ($CAREPASS_ROLES); exit 3 when every\n"
          "                check passed but they are not\n"
          "  --started DATE  a new starter in the role since DATE (its grace period)\n");
}

/* Read, decode and check entry row->index. */
static void check_entry(pp_ctx_t *c, pp_row_t *row) {
  uint8_t *buf = NULL;
  size_t len = 0;
  char err[CP_ERRLEN];
  Carepass__V1__SignedEntry *se = NULL;
  if (reg_read_entry(c->log, row->index, &buf, &len, err, sizeof err) != 0) {
    snprintf(row->problem, sizeof row->problem, "cannot read entry: %s", err);
    goto out;
  }
  /* inclusion: leaf hash of the stored bytes, audit path from the tiles, root from the signed checkpoint */
  if (row->index < c->size) {
    reg_hash_t proof[REG_PROOF_MAX];
    size_t n = 0;
    uint8_t leaf[REG_HASH_BYTES];
    reg_leaf_hash(buf, len, leaf);
    if (reg_inclusion_proof(c->log, row->index, c->size, proof, &n, err, sizeof err) == 0)
      row->incl_ok = reg_verify_inclusion(leaf, row->index, c->size, proof, n, c->root) == 0;
    else
      snprintf(row->problem, sizeof row->problem, "no inclusion proof: %s", err);
  } else {
    snprintf(row->problem, sizeof row->problem, "index %llu is beyond the checkpoint (size %llu)",
             (unsigned long long)row->index, (unsigned long long)c->size);
  }
  se = (Carepass__V1__SignedEntry *)cp_pb_unpack(&carepass__v1__signed_entry__descriptor, buf, len,
                                                 REG_ENTRY_MAX, err, sizeof err);
  if (se == NULL) {
    snprintf(row->problem, sizeof row->problem, "not a SignedEntry: %s", err);
    goto out;
  }
  /* the signing key must be the one the key history says was valid at this index */
  const reg_keyspan_t *span = se->key_id.len == CP_KEYID_BYTES
                                  ? reg_keys_for(c->spans, c->nspans, se->key_id.data, row->index)
                                  : NULL;
  row->sig_ok = span != NULL && se->signature.len == 64 &&
                cp_verify_entry(span->pk, se->entry.data, se->entry.len, se->signature.data);
  row->pe = (Carepass__V1__PassportEntry *)cp_pb_unpack(&carepass__v1__passport_entry__descriptor,
                                                        se->entry.data, se->entry.len, REG_ENTRY_MAX,
                                                        err, sizeof err);
  if (row->pe == NULL) {
    snprintf(row->problem, sizeof row->problem, "not a PassportEntry: %s", err);
    goto out;
  }
  if (row->pe->version >= 2) {   /* format 2: the opening from the worker's index must open it */
    cp_opening_t op;
    memcpy(op.pseudonym, c->pseudonym, CP_PSEUDONYM_BYTES);
    memcpy(op.r, row->r, sizeof op.r);
    if (!row->has_r || row->pe->subject.len != CP_SUBJECT_BYTES || !cp_subject_opens(row->pe->subject.data, &op))
      snprintf(row->problem, sizeof row->problem, "entry does not open to this worker (Redis index is wrong)");
  } else if (row->pe->worker_pseudonym.len != CP_PSEUDONYM_BYTES ||
             memcmp(row->pe->worker_pseudonym.data, c->pseudonym, CP_PSEUDONYM_BYTES) != 0) {
    snprintf(row->problem, sizeof row->problem, "entry belongs to another worker (Redis index is wrong)");
  }
out:
  if (se != NULL) protobuf_c_message_free_unpacked(&se->base, NULL);
  free(buf);
}

static int cmp_row(const void *a, const void *b) {
  uint64_t x = ((const pp_row_t *)a)->index, y = ((const pp_row_t *)b)->index;
  return x < y ? -1 : x > y;
}

/* Load the worker's register indexes from Redis, sorted and without duplicates. */
static int load_indexes(const char *hex, pp_row_t **rows, size_t *nrows) {
  char err[CP_ERRLEN];
  const char *host = cp_cfg_str(CP_OPT_REDIS_HOST);
  int port = (int)cp_cfg_int(CP_OPT_REDIS_PORT);
  cp_redis_t *r = cp_redis_new(host, port, (int)cp_cfg_int(CP_OPT_REDIS_TIMEOUT_MS), err, sizeof err);
  if (r == NULL) {
    cli_error("passport", "Redis at %s:%d: %s", host, port, err);
    return -1;
  }
  cp_key_t key;
  redisReply *rep = cp_redis_cmd(r, "LRANGE %s 0 %d", cp_key_w_entries(&key, hex), PASSPORT_MAX_ENTRIES - 1);
  if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
    cli_error("passport", "Redis LRANGE: %s", rep == NULL ? cp_redis_errstr(r) : "unexpected reply");
    if (rep != NULL) freeReplyObject(rep);
    cp_redis_destroy(&r);
    return -1;
  }
  *rows = cp_xcalloc(rep->elements + 1, sizeof **rows);
  *nrows = 0;
  for (size_t i = 0; i < rep->elements; i++) {
    const redisReply *e = rep->element[i];
    char *end = NULL;
    if (e->type != REDIS_REPLY_STRING) continue;
    unsigned long long v = strtoull(e->str, &end, 10);
    if (end == e->str || *end != '\0') continue;
    (*rows)[(*nrows)++].index = v;
  }
  freeReplyObject(rep);
  qsort(*rows, *nrows, sizeof **rows, cmp_row);
  /* the openings of format-2 entries (index -> hex r) */
  rep = cp_redis_cmd(r, "HGETALL %s", cp_key_w_openings(&key, hex));
  if (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
      const redisReply *k = rep->element[i], *v = rep->element[i + 1];
      char *end = NULL;
      if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
      unsigned long long idx = strtoull(k->str, &end, 10);
      if (end == k->str || *end != '\0') continue;
      pp_row_t want = {.index = idx};
      pp_row_t *row = bsearch(&want, *rows, *nrows, sizeof **rows, cmp_row);
      if (row != NULL && sodium_hex2bin(row->r, sizeof row->r, v->str, v->len, NULL, NULL, NULL) == 0)
        row->has_r = true;
    }
  }
  if (rep != NULL) freeReplyObject(rep);
  cp_redis_destroy(&r);
  size_t k = 0;
  for (size_t i = 0; i < *nrows; i++)
    if (k == 0 || (*rows)[k - 1].index != (*rows)[i].index) (*rows)[k++] = (*rows)[i];
  *nrows = k;
  return 0;
}

/* Open the register and check its checkpoint with the verifier key. */
static int open_register(pp_ctx_t *c, const char *vkey_path) {
  char err[CP_ERRLEN], name[128];
  const char *dir = cp_cfg_str(CP_OPT_REGISTER_DIR);
  char defpath[4200];
  if (vkey_path == NULL) {
    snprintf(defpath, sizeof defpath, "%s/vkey", dir);
    vkey_path = defpath;
  }
  uint8_t *vk = NULL;
  size_t vlen = 0;
  if (cp_read_file(vkey_path, 4096, &vk, &vlen, err, sizeof err) != 0) {
    cli_error("passport", "verifier key: %s", err);
    return -1;
  }
  while (vlen > 0 && (vk[vlen - 1] == '\n' || vk[vlen - 1] == '\r' || vk[vlen - 1] == ' ')) vk[--vlen] = '\0';
  int rc = -1;
  if (cp_vkey_parse((char *)vk, name, sizeof name, c->pk, c->key_id, err, sizeof err) != 0) {
    cli_error("passport", "%s: %s", vkey_path, err);
    goto out;
  }
  if (reg_open(dir, NULL, &c->log, err, sizeof err) != 0) {
    cli_error("passport", "register: %s", err);
    goto out;
  }
  const char *note = reg_checkpoint_note(c->log);
  char origin[256];
  if (reg_checkpoint_open(note, strlen(note), (char *)vk, origin, sizeof origin, &c->size, c->root, err,
                          sizeof err) != 0) {
    cli_error("passport", "the register's checkpoint does not verify with %s: %s", vkey_path, err);
    goto out;
  }
  /* key history from the register's key entries; a register written before key
   * entries existed has one key, the vkey's, for every index */
  if (reg_keys_load(c->log, &c->spans, &c->nspans, err, sizeof err) != 0 &&
      reg_keys_from_vkey((char *)vk, &c->spans, &c->nspans, err, sizeof err) != 0) {
    cli_error("passport", "key history: %s", err);
    goto out;
  }
  bool anchored = false;
  for (size_t i = 0; i < c->nspans; i++)
    if (memcmp(c->spans[i].key_id, c->key_id, CP_KEYID_BYTES) == 0) anchored = true;
  if (!anchored) {
    cli_error("passport", "the verifier key %s is not in the register's key history", vkey_path);
    goto out;
  }
  rc = 0;
out:
  free(vk);
  return rc;
}

/* Write the passport bundle: the checkpoint, the key entries, a proof of each row. */
static int write_bundle(pp_ctx_t *c, const pp_row_t *rows, size_t nrows, const char *hex, const char *path) {
  char err[CP_ERRLEN];
  const char *note = reg_checkpoint_note(c->log);
  cp_passport_t b;
  cp_passport_init(&b, hex, note, strlen(note));
  char *text = NULL;
  size_t len = 0;
  int rc = -1;
  uint64_t *keys = NULL;
  size_t nkeys = 0;
  if (cli_key_entries(c->log, &keys, &nkeys, err, sizeof err) != 0) {
    cli_error("passport", "key history: %s", err);
    goto out;
  }
  for (size_t i = 0; i < nkeys + nrows; i++) {
    uint64_t index = i < nkeys ? keys[i] : rows[i - nkeys].index;
    cp_tlog_proof_t p;
    if (cp_tlog_proof_from_log(c->log, index, &p, err, sizeof err) != 0) {
      cli_error("passport", "proof of entry %llu: %s", (unsigned long long)index, err);
      goto out;
    }
    cp_passport_add(&b, i < nkeys ? CP_PROOF_KEY : CP_PROOF_ENTRY, &p);
    if (i >= nkeys && rows[i - nkeys].has_r && rows[i - nkeys].pe != NULL && rows[i - nkeys].pe->version >= 2)
      cp_passport_add_opening(&b, index, rows[i - nkeys].r);
  }
  if (cp_passport_format(&b, &text, &len, err, sizeof err) != 0) {
    cli_error("passport", "%s", err);
    goto out;
  }
  if (cli_write_output("passport", path, text, len) != 0) goto out;
  printf("passport bundle written to %s (%zu entries, %zu key entries)\n", path, nrows, nkeys);
  rc = 0;
out:
  free(keys);
  free(text);
  cp_passport_clear(&b);
  return rc;
}

/* The status column of a row. */
static void status_text(const pp_row_t *row, int32_t today, char *out, size_t outlen) {
  const Carepass__V1__PassportEntry *pe = row->pe;
  if (pe == NULL) { snprintf(out, outlen, "unreadable"); return; }
  if (pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION) {
    snprintf(out, outlen, "revokes #%llu (%s)", (unsigned long long)pe->revokes_index, pe->reason_code);
    return;
  }
  if (row->revoked) {
    snprintf(out, outlen, "revoked (by #%llu, %s)", (unsigned long long)row->revoked_by, row->revoke_reason);
    return;
  }
  int32_t until;
  if (pe->valid_until[0] != '\0' && cp_date_parse(pe->valid_until, &until) == 0 && until < today) {
    snprintf(out, outlen, "expired");
    return;
  }
  snprintf(out, outlen, "valid");
}

int cmd_passport(int argc, char **argv) {
  const char *ni = NULL, *vkey_path = NULL, *out_path = NULL, *role_id = NULL, *started_s = NULL;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--vkey") == 0 && i + 1 < argc) vkey_path = argv[++i];
    else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out_path = argv[++i];
    else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) role_id = argv[++i];
    else if (strcmp(argv[i], "--started") == 0 && i + 1 < argc) started_s = argv[++i];
    else if (argv[i][0] != '-' && ni == NULL) ni = argv[i];
    else {
      /* never echo what might be an NI number */
      cli_error("passport", "unexpected argument %d", i);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (ni == NULL) {
    cli_error("passport", "NI_NUMBER is required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (cli_config("passport") != 0) return CLI_EXIT_USAGE;
  int32_t started = -1;
  if (started_s != NULL && (role_id == NULL || cp_date_parse(started_s, &started) != 0)) {
    cli_error("passport", "--started needs --role and a real date YYYY-MM-DD");
    return CLI_EXIT_USAGE;
  }
  roles_t *roles = NULL;
  const role_t *role = NULL;

  int rc = CLI_EXIT_FAIL;
  pp_ctx_t c = {0};
  pp_row_t *rows = NULL;
  size_t nrows = 0;
  cat_catalogue_t *cat = NULL;
  char err[CP_ERRLEN], hex[2 * CP_PSEUDONYM_BYTES + 1];
  int prc = cli_worker_pseudonym("passport", ni, c.pseudonym);
  if (prc != CLI_EXIT_OK) return prc;
  cp_hex(c.pseudonym, CP_PSEUDONYM_BYTES, hex);

  if (cat_load(cp_cfg_str(CP_OPT_CATALOGUE), &cat, err, sizeof err) != 0) {
    cli_error("passport", "catalogue (titles will be missing): %s", err);
    cat = NULL;
  }
  if (role_id != NULL && (roles = cli_roles_load("passport", cat, role_id, &role)) == NULL) {
    rc = CLI_EXIT_USAGE;
    goto out;
  }
  if (load_indexes(hex, &rows, &nrows) != 0) goto out;
  printf("Passport for worker %.8s\n", hex);
  if (nrows == 0 && out_path == NULL) {
    printf("no records\n");
    rc = CLI_EXIT_OK;
    goto out;
  }
  if (open_register(&c, vkey_path) != 0) goto out;
  printf("register %s: checkpoint size %llu, signature ok\n\n", cp_cfg_str(CP_OPT_REGISTER_DIR),
         (unsigned long long)c.size);

  for (size_t i = 0; i < nrows; i++) check_entry(&c, &rows[i]);
  /* revocations point back at the worker's earlier entries */
  for (size_t i = 0; i < nrows; i++) {
    const Carepass__V1__PassportEntry *pe = rows[i].pe;
    if (pe == NULL || pe->entry_type != CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION || rows[i].problem[0])
      continue;
    for (size_t j = 0; j < nrows; j++)
      if (rows[j].index == pe->revokes_index && rows[j].index < rows[i].index) {
        rows[j].revoked = true;
        rows[j].revoked_by = rows[i].index;
        rows[j].revoked_at = pe->issued_at;
        snprintf(rows[j].revoke_reason, sizeof rows[j].revoke_reason, "%s", pe->reason_code);
      }
  }

  int32_t today = cp_today();
  bool all_ok = true;
  printf("%-6s %-10s %-44s %-9s %-10s %-11s %-30s %-9s %s\n", "index", "code", "title", "provider",
         "completed", "valid until", "status", "signature", "inclusion");
  for (size_t i = 0; i < nrows; i++) {
    const pp_row_t *row = &rows[i];
    const Carepass__V1__PassportEntry *pe = row->pe;
    const cat_qual_t *q = (pe != NULL && cat != NULL) ? cat_find(cat, pe->qualification_code) : NULL;
    char status[96], title[45];
    status_text(row, today, status, sizeof status);
    snprintf(title, sizeof title, "%.44s", q != NULL ? q->title : "");
    if (pe != NULL && pe->entry_type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_DERIVED_AWARD && strlen(title) < 34)
      snprintf(title + strlen(title), sizeof title - strlen(title), " (award)");
    printf("%-6llu %-10s %-44s %-9s %-10s %-11s %-30s %-9s %s\n", (unsigned long long)row->index,
           pe ? pe->qualification_code : "?", title, pe ? pe->provider_id : "?",
           pe ? pe->completion_date : "?", pe && pe->valid_until[0] ? pe->valid_until : "-", status,
           row->sig_ok ? "ok" : "FAILED", row->incl_ok ? "ok" : "FAILED");
    if (row->problem[0]) printf("       problem: %s\n", row->problem);
    if (!row->sig_ok || !row->incl_ok || row->problem[0]) all_ok = false;
  }
  if (out_path != NULL && write_bundle(&c, rows, nrows, hex, out_path) != 0) all_ok = false;
  printf("\n%zu entries; %s\n", nrows, all_ok ? "every signature and inclusion proof checked ok"
                                               : "SOME CHECKS FAILED");
  rc = all_ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
  if (role != NULL) {   /* the worker's authentic records or awards count */
    role_record_t *recs = cp_xcalloc(nrows + 1, sizeof *recs);
    size_t n = 0;
    for (size_t i = 0; i < nrows; i++) {
      if (!rows[i].sig_ok || !rows[i].incl_ok || rows[i].problem[0]) continue;
      Carepass__V1__PassportEntry rev = CAREPASS__V1__PASSPORT_ENTRY__INIT;   /* only its issued_at is read */
      rev.issued_at = rows[i].revoked_at;
      if (role_record_of(rows[i].pe, rows[i].revoked ? &rev : NULL, rows[i].index, &recs[n])) n++;
    }
    role_answer_t answer;
    cli_role_print(stdout, cat, role, recs, n, today, started, &answer);
    free(recs);
    if (rc == CLI_EXIT_OK && answer.verdict == ROLE_NOT_READY) rc = CLI_EXIT_NOT_READY;
  }
out:
  roles_destroy(&roles);
  for (size_t i = 0; i < nrows; i++)
    if (rows[i].pe != NULL) protobuf_c_message_free_unpacked(&rows[i].pe->base, NULL);
  free(rows);
  reg_close(&c.log);
  free(c.spans);
  cat_destroy(&cat);
  return rc;
}
