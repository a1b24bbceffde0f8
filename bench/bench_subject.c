/* bench_subject.c -- the per-entry cost of register format 2's subject (common/subject.c: a fresh
 * r, slot and nonce, the commitment, the worker-key id, the sealed opening, the store's records,
 * flushed once per batch as the signer does) beside the cost that bounds the pipeline, one
 * Ed25519 signature of an entry-sized message, measured in the same run. Prints figures; asserts
 * nothing.
 *
 *   build/bench/bench_subject [--entries 200000] [--workers 50000] [--batch 1024] [--dir /tmp/...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cp_subject.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long entries = 200000, workers = 50000, batch = 1024;
  const char *dir = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--entries") == 0) entries = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--workers") == 0) workers = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--batch") == 0) batch = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--dir") == 0) dir = argv[i + 1];
  }
  if (entries < 1 || workers < 1 || batch < 1 || cp_crypto_init() != 0) return 2;
  char tmp[] = "/tmp/cp-bench-subject-XXXXXX", path[600], err[CP_ERRLEN];
  if (dir == NULL && (dir = mkdtemp(tmp)) == NULL) return 2;
  snprintf(path, sizeof path, "%s/store", dir);
  cp_subject_store_t *st = NULL;
  if (cp_subject_store_open(path, CP_SUBJECT_CREATE | CP_SUBJECT_WRITER, &st, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  cp_subject_t *out = malloc((size_t)batch * sizeof *out);
  uint8_t p[CP_PSEUDONYM_BYTES] = {0};
  double t0 = now();
  for (long i = 0; i < entries; i++) {
    long w = i % workers;
    memcpy(p, &w, sizeof w);
    cp_subject_store_new(st, p, &out[i % batch]);
    if ((i + 1) % batch == 0 && cp_subject_store_flush(st, err, sizeof err) != 0) return 1;
  }
  if (cp_subject_store_flush(st, err, sizeof err) != 0) return 1;
  double subj = (now() - t0) / (double)entries;
  /* the baseline: one Ed25519 signature of an entry-sized message (about 200 bytes) */
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES], sig[64];
  uint8_t msg[200];
  memset(msg, 0x5a, sizeof msg);
  crypto_sign_keypair(pk, sk);
  t0 = now();
  for (long i = 0; i < entries; i++) {
    msg[0] = (uint8_t)i;
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);
  }
  double sign = (now() - t0) / (double)entries;
  printf("subject of a format-2 entry (%ld entries, %ld workers, flush per %ld): %.2f us/entry | baseline: "
         "Ed25519 signature of 200 bytes: %.2f us | subject / signature = %.2f\n",
         entries, workers, batch, subj * 1e6, sign * 1e6, subj / sign);
  cp_subject_store_close(&st);
  free(out);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) return 1;
  if (dir == tmp) rmdir(tmp);
  return 0;
}
