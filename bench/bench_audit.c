/* bench_audit.c -- audit speed: `carepass audit` entries/s on a large register beside the raw Ed25519 verify rate. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_codec.h"
#include "cp_crypto.h"
#include "cp_regkeys.h"
#include "cp_register.h"

#define BATCH 4096            /* entries per reg_append while building */
#define RAW_MSG_BYTES 200     /* message length of the raw verify baseline (about an entry) */
#define THREADS_MAX 16        /* most verify threads measured */

/* Command-line options. */
typedef struct {
  uint64_t entries;       // entries in the register (plus the genesis key entry)
  const char *base;       // where the temporary register is made
  const char *carepass;   // the carepass CLI binary
  double verify_seconds;  // wall time of each raw verify measurement
  int threads;            // audit / raw verify threads
  bool keep;              // keep the register
} opts_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One raw verify measurement thread. */
typedef struct {
  const cp_signkey_t *key;   // key whose signature is checked
  double seconds;            // how long to run
  uint64_t count;            // verifications done
} rawv_t;

static void *raw_verify(void *arg) {
  rawv_t *r = arg;
  unsigned char msg[RAW_MSG_BYTES], sig[64];
  memset(msg, 0x5a, sizeof msg);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, r->key->sk);
  double end = now_s() + r->seconds;
  while (now_s() < end)
    for (int i = 0; i < 64; i++) {
      if (crypto_sign_verify_detached(sig, msg, sizeof msg, r->key->pk) != 0) abort();
      r->count++;
    }
  return NULL;
}

/* Verifications per second over `threads` threads. */
static double raw_verify_rate(const cp_signkey_t *key, int threads, double seconds) {
  pthread_t th[THREADS_MAX];
  rawv_t r[THREADS_MAX];
  double t0 = now_s();
  for (int i = 0; i < threads; i++) {
    r[i] = (rawv_t){key, seconds, 0};
    if (pthread_create(&th[i], NULL, raw_verify, &r[i]) != 0) abort();
  }
  uint64_t total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    total += r[i].count;
  }
  return (double)total / (now_s() - t0);
}

static int make_entry(const cp_signkey_t *key, uint64_t i, uint8_t **out, size_t *outlen) {
  char event_id[48], completion[11], valid_until[11];
  uint8_t worker[32], evidence[32];
  memset(worker, 0, sizeof worker);
  uint64_t w = i % 100000;
  memcpy(worker, &w, sizeof w);
  memset(evidence, 0x11, sizeof evidence);
  memcpy(evidence, &i, sizeof i);
  snprintf(event_id, sizeof event_id, "audit-%010llu", (unsigned long long)i);
  snprintf(completion, sizeof completion, "2025-%02u-%02u", (unsigned)(i % 12) + 1, (unsigned)(i % 28) + 1);
  snprintf(valid_until, sizeof valid_until, "2026-%02u-%02u", (unsigned)(i % 12) + 1, (unsigned)(i % 28) + 1);
  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  pe.version = 1;
  pe.worker_pseudonym.data = worker;
  pe.worker_pseudonym.len = sizeof worker;
  pe.qualification_code = (char *)"RF-MH";
  pe.provider_id = (char *)"PRV-0001";
  pe.assessor_id = (char *)"ASR-0001-001";
  pe.completion_date = completion;
  pe.valid_until = valid_until;
  pe.evidence_hash.data = evidence;
  pe.evidence_hash.len = sizeof evidence;
  pe.provider_event_id = event_id;
  pe.issued_at = 1750000000;
  pe.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD;
  char err[CP_ERRLEN];
  return reg_entry_sign(key, &pe, out, outlen, err, sizeof err);
}

/* Build the register: genesis key entry, then o->entries records, in batches. */
static int build(const opts_t *o, const cp_signkey_t *key, const char *dir) {
  char err[CP_ERRLEN];
  reg_log_t *log = NULL;
  if (reg_open(dir, key, &log, err, sizeof err) != 0) {
    fprintf(stderr, "bench_audit: %s\n", err);
    return -1;
  }
  uint8_t **bufs = calloc(BATCH, sizeof *bufs);
  size_t *lens = calloc(BATCH, sizeof *lens);
  uint64_t first;
  int rc = -1;
  if (reg_key_entry_build(key, key->name, key->pk, 1750000000, &bufs[0], &lens[0], err, sizeof err) != 0 ||
      reg_append(log, (const uint8_t *const *)bufs, lens, 1, &first, err, sizeof err) != 0) {
    fprintf(stderr, "bench_audit: genesis: %s\n", err);
    goto out;
  }
  free(bufs[0]);
  bufs[0] = NULL;
  double t0 = now_s(), last = t0;
  for (uint64_t done = 0; done < o->entries;) {
    size_t n = o->entries - done < BATCH ? (size_t)(o->entries - done) : BATCH;
    for (size_t j = 0; j < n; j++)
      if (make_entry(key, done + j, &bufs[j], &lens[j]) != 0) goto out;
    if (reg_append(log, (const uint8_t *const *)bufs, lens, n, &first, err, sizeof err) != 0) {
      fprintf(stderr, "bench_audit: append: %s\n", err);
      goto out;
    }
    for (size_t j = 0; j < n; j++) {
      free(bufs[j]);
      bufs[j] = NULL;
    }
    done += n;
    if (isatty(STDERR_FILENO) && now_s() - last > 1) {
      last = now_s();
      fprintf(stderr, "\rbuilding: %llu / %llu entries", (unsigned long long)done, (unsigned long long)o->entries);
    }
  }
  if (isatty(STDERR_FILENO)) fprintf(stderr, "\r%50s\r", "");
  printf("  built %llu entries in %.1f s\n", (unsigned long long)o->entries + 1, now_s() - t0);
  rc = 0;
out:
  for (size_t j = 0; j < BATCH; j++) free(bufs[j]);
  free(bufs);
  free(lens);
  reg_close(&log);
  return rc;
}

/* Run `carepass audit dir --vkey vkey [extra]`; returns the entries/s it printed (or -1). */
static double run_audit(const opts_t *o, const char *dir, const char *vkey, const char *extra) {
  char cmd[8192], line[1024];
  snprintf(cmd, sizeof cmd, "'%s' audit '%s' --vkey '%s' --threads %d %s 2>/dev/null", o->carepass, dir, vkey,
           o->threads, extra);
  FILE *p = popen(cmd, "r");
  if (p == NULL) return -1;
  double rate = -1;
  bool passed = false;
  while (fgets(line, sizeof line, p) != NULL) {
    double r;
    if (sscanf(line, "audited %*u entries in %*f s: %lf entries/s", &r) == 1) rate = r;
    if (strncmp(line, "AUDIT PASSED", 12) == 0) passed = true;
  }
  int st = pclose(p);
  if (!passed || st != 0) {
    fprintf(stderr, "bench_audit: `%s` did not pass (status %d)\n", cmd, st);
    return -1;
  }
  return rate;
}

static void usage(FILE *out) {
  fprintf(out,
          "usage: bench_audit [--entries N] [--dir BASE] [--carepass PATH] [--threads N]\n"
          "                   [--verify-seconds S] [--keep]\n"
          "Builds a register of N signed entries (default 1000000) in a temporary\n"
          "directory under BASE (default /tmp), then prints the raw Ed25519 verify rate\n"
          "(1 thread and N threads) and `carepass audit` entries/s with and without\n"
          "signature verification, measured in the same run.\n");
}

int main(int argc, char **argv) {
  opts_t o = {1000000, "/tmp", NULL, 1.0, 2, false};
  static const struct option lo[] = {{"entries", 1, NULL, 'n'}, {"dir", 1, NULL, 'd'}, {"carepass", 1, NULL, 'c'},
                                     {"threads", 1, NULL, 't'}, {"verify-seconds", 1, NULL, 's'},
                                     {"keep", 0, NULL, 'k'}, {"help", 0, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (c) {
      case 'n': o.entries = strtoull(optarg, NULL, 10); break;
      case 'd': o.base = optarg; break;
      case 'c': o.carepass = optarg; break;
      case 't': o.threads = atoi(optarg); break;
      case 's': o.verify_seconds = atof(optarg); break;
      case 'k': o.keep = true; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (o.entries == 0 || o.threads < 1 || o.threads > THREADS_MAX || o.verify_seconds <= 0) {
    usage(stderr);
    return 2;
  }
  char cpath[PATH_MAX + 32];
  if (o.carepass == NULL) {
    /* default: the CLI of the same build tree (<build>/bench/bench_audit -> <build>/tools/carepass) */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 2;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL) *slash = '\0';
    snprintf(cpath, sizeof cpath, "%s/../tools/carepass", self);
    o.carepass = cpath;
  }
  if (cp_crypto_init() != 0) return 1;
  char dir[PATH_MAX], keyfile[PATH_MAX + 16], vkeyfile[PATH_MAX + 16], reg[PATH_MAX + 16], err[CP_ERRLEN];
  snprintf(dir, sizeof dir, "%s/bench_audit.XXXXXX", o.base);
  if (mkdtemp(dir) == NULL) {
    fprintf(stderr, "bench_audit: mkdtemp %s: %s\n", dir, strerror(errno));
    return 1;
  }
  snprintf(keyfile, sizeof keyfile, "%s/signer.key", dir);
  snprintf(vkeyfile, sizeof vkeyfile, "%s/vkey", dir);
  snprintf(reg, sizeof reg, "%s/register", dir);
  cp_signkey_t key;
  char vkey[REG_VKEY_MAX];
  int rc = 1;
  if (cp_signkey_load(keyfile, "bench.local/audit", true, &key, err, sizeof err) != 0 ||
      cp_vkey_format(key.name, key.pk, vkey, sizeof vkey) != 0) {
    fprintf(stderr, "bench_audit: key: %s\n", err);
    goto out;
  }
  {
    FILE *f = fopen(vkeyfile, "w");
    if (f == NULL || fprintf(f, "%s\n", vkey) < 0 || fclose(f) != 0) goto out;
  }
  printf("bench_audit: %llu entries, %d thread(s), %ld online CPU(s)\n", (unsigned long long)o.entries, o.threads,
         sysconf(_SC_NPROCESSORS_ONLN));
  if (build(&o, &key, reg) != 0) goto out;

  double v1a = raw_verify_rate(&key, 1, o.verify_seconds);
  double vna = raw_verify_rate(&key, o.threads, o.verify_seconds);
  double full = run_audit(&o, reg, vkeyfile, "");
  double tree = run_audit(&o, reg, vkeyfile, "--no-signatures");
  double v1b = raw_verify_rate(&key, 1, o.verify_seconds);
  double vnb = raw_verify_rate(&key, o.threads, o.verify_seconds);
  if (full < 0 || tree < 0) goto out;
  double v1 = (v1a + v1b) / 2, vn = (vna + vnb) / 2;
  printf("  %-52s %12s  %s\n", "measure", "rate", "unit");
  printf("  %-52s %12.0f  verify/s   (before %.0f, after %.0f)\n", "(a) raw crypto_sign_verify_detached, 1 thread", v1,
         v1a, v1b);
  printf("  %-52s %12.0f  verify/s   (before %.0f, after %.0f)\n", "(b) raw verify, all audit threads", vn, vna, vnb);
  printf("  %-52s %12.0f  entries/s\n", "(c) carepass audit, every signature verified", full);
  printf("  %-52s %12.0f  entries/s\n", "(d) carepass audit --no-signatures (tree, tiles)", tree);
  printf("  (c) / (b) = %.2f   (the audit's share of the raw verify ceiling)\n", full / vn);
  printf("  target 200000 entries/s: (c) %s, (d) %s\n", full >= 200000 ? "met" : "NOT met",
         tree >= 200000 ? "met" : "NOT met");
  printf("kv: entries=%llu threads=%d raw_verify_1=%.0f raw_verify_n=%.0f audit_full=%.0f audit_tree=%.0f\n",
         (unsigned long long)o.entries, o.threads, v1, vn, full, tree);
  rc = 0;
out:
  cp_signkey_wipe(&key);
  if (o.keep) {
    printf("  register kept in %s\n", dir);
  } else {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_audit: could not remove %s\n", dir);
  }
  return rc;
}
