/* make_seeds.c -- writes the fuzz targets' register fixture and the seeds made from it, with the
 * project's own writer: a small register (a key entry, records of two workers, a revocation)
 * signed by a fresh key, then its checkpoint, tiles, entry bundles, tlog-proofs and a passport
 * bundle. Run once by hand (tests/fuzz/README.md); its output is committed.
 *   fuzz_make_seeds <tests/fuzz directory>
 * writes fixtures/register/{checkpoint,vkey,tile/...} and corpus/<target>/seed-*. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_bundle.h"
#include "cp_regkeys.h"
#include "cp_register.h"

#define ORIGIN "carepass.local/register"

static const char *out_dir;
static reg_log_t *reg_log;

static void die(const char *what, const char *err) {
  fprintf(stderr, "make_seeds: %s: %s\n", what, err);
  exit(1);
}

static void put(const char *rel, const void *buf, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", out_dir, rel);
  for (char *p = path + strlen(out_dir) + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die(path, strerror(errno));
    *p = '/';
  }
  FILE *fp = fopen(path, "wb");
  if (fp == NULL || fwrite(buf, 1, len, fp) != len || fclose(fp) != 0) die(path, strerror(errno));
}

static void putf(const char *rel, const char *text) { put(rel, text, strlen(text)); }

/* The audit target's input: the register's files, each as [u8 name length][name][u32 BE length][bytes]. */
static uint8_t *pack;
static size_t pack_len;
static void pack_file(const char *rel, const uint8_t *buf, size_t len) {
  pack = realloc(pack, pack_len + 1 + strlen(rel) + 4 + len);
  if (pack == NULL) abort();
  pack[pack_len++] = (uint8_t)strlen(rel);
  memcpy(pack + pack_len, rel, strlen(rel));
  pack_len += strlen(rel);
  for (int s = 24; s >= 0; s -= 8) pack[pack_len++] = (uint8_t)(len >> s);
  memcpy(pack + pack_len, buf, len);
  pack_len += len;
}

static void copy_register_file(const char *regdir, const char *rel, const char *seed_name) {
  char src[256], dst[256];
  snprintf(src, sizeof src, "%s/%s", regdir, rel);
  FILE *fp = fopen(src, "rb");
  if (fp == NULL) die(src, strerror(errno));
  uint8_t *buf = malloc(1u << 20);
  if (buf == NULL) abort();
  size_t len = fread(buf, 1, 1u << 20, fp);
  fclose(fp);
  snprintf(dst, sizeof dst, "fixtures/register/%s", rel);
  put(dst, buf, len);
  pack_file(rel, buf, len);
  if (seed_name != NULL) { /* the tiles target's input: the path, a newline, the file */
    size_t rl = strlen(rel);
    uint8_t *seed = malloc(rl + 1 + len);
    if (seed == NULL) abort();
    memcpy(seed, rel, rl);
    seed[rl] = '\n';
    memcpy(seed + rl + 1, buf, len);
    snprintf(dst, sizeof dst, "corpus/tiles/%s", seed_name);
    put(dst, seed, rl + 1 + len);
    free(seed);
  }
  free(buf);
}

static uint64_t append_record(const cp_signkey_t *key, uint8_t worker, const char *code, const char *id,
                              Carepass__V1__EntryType type, uint64_t revokes) {
  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  uint8_t pseudo[32], hash[32];
  memset(pseudo, worker, sizeof pseudo);
  memset(hash, 0xab, sizeof hash);
  pe.version = 1;
  pe.worker_pseudonym = (ProtobufCBinaryData){sizeof pseudo, pseudo};
  pe.qualification_code = (char *)code;
  pe.provider_id = "PRV-0001";
  pe.assessor_id = "ASR-42";
  pe.completion_date = "2024-03-01";
  pe.valid_until = strncmp(code, "RF-", 3) == 0 ? "2025-03-01" : "";
  pe.evidence_hash = (ProtobufCBinaryData){sizeof hash, hash};
  pe.provider_event_id = (char *)id;
  pe.issued_at = 1709300000;
  pe.entry_type = type;
  pe.revokes_index = revokes;
  pe.reason_code = type == CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION ? "ISSUED_IN_ERROR" : "";
  uint8_t *e = NULL;
  size_t l = 0;
  uint64_t first = 0;
  char err[CP_ERRLEN];
  if (reg_entry_sign(key, &pe, &e, &l, err, sizeof err) != 0) die("sign", err);
  if (reg_append(reg_log, (const uint8_t *const *)&e, &l, 1, &first, err, sizeof err) != 0) die("append", err);
  free(e);
  return first;
}

static void proof_text(uint64_t index, char **text, size_t *len, cp_tlog_proof_t *keep) {
  cp_tlog_proof_t p;
  char err[CP_ERRLEN];
  if (cp_tlog_proof_from_log(reg_log, index, &p, err, sizeof err) != 0) die("proof", err);
  if (cp_tlog_proof_format(&p, text, len, err, sizeof err) != 0) die("proof format", err);
  if (keep != NULL) *keep = p;
  else cp_tlog_proof_clear(&p);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s TESTS_FUZZ_DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  if (sodium_init() < 0) abort();
  char tmp[] = "/tmp/fuzz_seeds.XXXXXX", keyfile[64], regdir[64], err[CP_ERRLEN];
  if (mkdtemp(tmp) == NULL) die("mkdtemp", strerror(errno));
  snprintf(keyfile, sizeof keyfile, "%s/key", tmp);
  snprintf(regdir, sizeof regdir, "%s/reg", tmp);
  cp_signkey_t key;
  if (cp_signkey_load(keyfile, ORIGIN, true, &key, err, sizeof err) != 0) die("key", err);
  if (reg_open(regdir, &key, &reg_log, err, sizeof err) != 0) die("open", err);
  uint8_t *e0 = NULL;
  size_t l0 = 0;
  uint64_t first;
  if (reg_key_entry_build(&key, key.name, key.pk, 1, &e0, &l0, err, sizeof err) != 0) die("key entry", err);
  if (reg_append(reg_log, (const uint8_t *const *)&e0, &l0, 1, &first, err, sizeof err) != 0) die("append", err);
  free(e0);
  const uint8_t W = 0x11, OTHER = 0x22;
  uint64_t r1 = append_record(&key, W, "CC-STD-01", "ev-1", CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, 0);
  uint64_t r2 = append_record(&key, W, "RF-MH", "ev-2", CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, 0);
  (void)append_record(&key, OTHER, "CC-STD-02", "ev-3", CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD, 0);
  uint64_t r4 = append_record(&key, W, "CC-STD-01", "ev-4", CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_REVOCATION, r1);
  uint64_t size = reg_size(reg_log);

  char vkey[REG_VKEY_MAX];
  if (cp_vkey_format(key.name, key.pk, vkey, sizeof vkey) != 0) die("vkey", "format");
  char vline[REG_VKEY_MAX + 2];
  snprintf(vline, sizeof vline, "%s\n", vkey);
  putf("fixtures/register/vkey", vline);
  const char *note = reg_checkpoint_note(reg_log);
  putf("corpus/checkpoint/seed-checkpoint", note);
  pack_file("checkpoint", (const uint8_t *)note, strlen(note));
  putf("fixtures/register/checkpoint", note);
  copy_register_file(regdir, "tile/0/000.p/5", "seed-tile0");
  copy_register_file(regdir, "tile/entries/000.p/5", "seed-bundle");
  put("corpus/audit/seed-register", pack, pack_len);

  /* one tlog-proof per kind of entry; and a passport of worker W */
  static const char *names[] = {"seed-key-entry", "seed-record", "seed-revocation"};
  const uint64_t which[] = {0, r2, r4};
  for (size_t i = 0; i < 3; i++) {
    char *text = NULL, rel[128];
    size_t len = 0;
    proof_text(which[i], &text, &len, NULL);
    snprintf(rel, sizeof rel, "corpus/tlog_proof/%s", names[i]);
    put(rel, text, len);
    snprintf(rel, sizeof rel, "corpus/verify/%s.tlog-proof", names[i]);
    put(rel, text, len);
    free(text);
  }
  char hex[65];
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", W);
  cp_passport_t b;
  cp_passport_init(&b, hex, note, strlen(note));
  for (uint64_t i = 0; i < size; i++) {
    cp_tlog_proof_t p;
    char *text = NULL;
    size_t len = 0;
    proof_text(i, &text, &len, &p);
    free(text);
    if (i == 0) cp_passport_add(&b, CP_PROOF_KEY, &p);
    else if (i == 3) cp_tlog_proof_clear(&p); /* the other worker's */
    else cp_passport_add(&b, CP_PROOF_ENTRY, &p);
  }
  char *text = NULL;
  size_t len = 0;
  if (cp_passport_format(&b, &text, &len, err, sizeof err) != 0) die("passport", err);
  put("corpus/passport/seed-passport", text, len);
  put("corpus/verify/seed-passport", text, len);
  free(text);
  cp_passport_clear(&b);
  reg_close(&reg_log);
  cp_signkey_wipe(&key);
  unlink(keyfile); /* the fixture is never signed again */
  printf("make_seeds: register of %llu entries; fixtures and seeds written under %s (remove %s)\n",
         (unsigned long long)size, out_dir, tmp);
  return 0;
}
