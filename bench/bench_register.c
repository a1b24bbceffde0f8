/* bench_register.c -- signer hot path benchmark: raw Ed25519 signing rate vs build+sign+append to a register. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "carepass/v1/register.pb-c.h"
#include "cp_codec.h"
#include "cp_crypto.h"
#include "cp_register.h"
#include "cp_regkeys.h"

#define RAW_MSG_BYTES 200        /* message length for the raw signing baseline */
#define WORKER_POOL 4096         /* distinct worker pseudonyms the synthetic entries cycle through */
#define READ_SAMPLE_MAX 20000    /* random reg_read_entry calls in the read-back phase */
#define PIPE_CHUNK_BATCHES 16    /* (e): batches per pipelined run between two raw signing slices */

/* Command-line options. */
typedef struct {
  uint64_t entries;      // entries to append in phase (b)
  size_t batch;          // entries per reg_append (one fsync'd batch)
  double sign_seconds;   // wall time for each raw signing measurement
  const char *base;      // directory in which the temporary register is made
  bool sign_only;        // only measure (a) and print it
  bool kv;               // also print machine-readable key=value lines
  bool keep;             // keep the temporary register (prints its path)
  bool no_serial;        // skip (b), the one-thread append phase (only (e))
} opts_t;

/* Timings of one phase. */
typedef struct {
  double wall;   // wall-clock seconds
  double cpu;    // process CPU seconds
} span_t;

/* Results of the append phase, split by step. */
typedef struct {
  span_t total;       // whole phase
  double build_sign;  // seconds building, packing, signing and wrapping entries
  double append;      // seconds inside reg_append (writes + fsyncs)
  size_t bytes;       // total SignedEntry bytes appended
  uint64_t batches;   // reg_append calls
  double raw_sign;    // seconds spent in the raw signing slice paired with each batch
} append_res_t;

/* State shared with the verification callback. */
typedef struct {
  const cp_signkey_t *key;  // the key that signed every entry
  uint64_t ok;              // entries whose signature verified
  uint64_t bad;             // entries that did not decode or verify
} verify_ctx_t;

static double now_s(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static span_t span_start(void) {
  span_t s = {now_s(CLOCK_MONOTONIC), now_s(CLOCK_PROCESS_CPUTIME_ID)};
  return s;
}

static span_t span_end(span_t start) {
  span_t s = {now_s(CLOCK_MONOTONIC) - start.wall, now_s(CLOCK_PROCESS_CPUTIME_ID) - start.cpu};
  return s;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_register [options]\n"
          "  --entries N       entries to build, sign and append (default 200000)\n"
          "  --batch B         entries per reg_append batch, one fsync'd write each (default 1024)\n"
          "  --sign-seconds S  seconds per raw signing measurement (default 2)\n"
          "  --dir DIR         where to make the temporary register (default $TMPDIR or /tmp)\n"
          "  --sign-only       only measure the raw Ed25519 signing rate\n"
          "  --kv              also print key=value lines (for scripts)\n"
          "  --keep            keep the temporary register and print its path\n"
          "  --pipeline-only   skip (b), measure only the pipelined append (e)\n");
}

static int parse_opts(int argc, char **argv, opts_t *o) {
  static const struct option longopts[] = {
      {"entries", required_argument, NULL, 'n'}, {"batch", required_argument, NULL, 'b'},
      {"sign-seconds", required_argument, NULL, 's'}, {"dir", required_argument, NULL, 'd'},
      {"sign-only", no_argument, NULL, 'S'},        {"kv", no_argument, NULL, 'k'},
      {"keep", no_argument, NULL, 'K'},             {"help", no_argument, NULL, 'h'},
      {"pipeline-only", no_argument, NULL, 'P'},
      {NULL, 0, NULL, 0}};
  const char *tmp = getenv("TMPDIR");
  *o = (opts_t){200000, 1024, 2.0, tmp && tmp[0] ? tmp : "/tmp", false, false, false, false};
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    errno = 0;
    switch (c) {
      case 'n':
        o->entries = strtoull(optarg, &end, 10);
        if (errno || *end || o->entries < 1 || o->entries > 100000000ULL) {
          fprintf(stderr, "bench_register: --entries must be 1..100000000\n");
          return -1;
        }
        break;
      case 'b': {
        unsigned long long b = strtoull(optarg, &end, 10);
        if (errno || *end || b < 1 || b > 65536) {
          fprintf(stderr, "bench_register: --batch must be 1..65536\n");
          return -1;
        }
        o->batch = (size_t)b;
        break;
      }
      case 's':
        o->sign_seconds = strtod(optarg, &end);
        if (errno || *end || !(o->sign_seconds >= 0.05 && o->sign_seconds <= 60)) {
          fprintf(stderr, "bench_register: --sign-seconds must be 0.05..60\n");
          return -1;
        }
        break;
      case 'd': o->base = optarg; break;
      case 'S': o->sign_only = true; break;
      case 'k': o->kv = true; break;
      case 'K': o->keep = true; break;
      case 'P': o->no_serial = true; break;
      case 'h': usage(stdout); exit(0);
      default: usage(stderr); return -1;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return -1;
  }
  return 0;
}

/* (a) Raw libsodium signing: crypto_sign_detached over RAW_MSG_BYTES-byte
 * messages for about `seconds`; returns signatures per wall second. */
static double raw_sign_rate(const cp_signkey_t *key, double seconds, double *cpu_rate) {
  unsigned char msg[RAW_MSG_BYTES], sig[crypto_sign_BYTES];
  randombytes_buf(msg, sizeof msg);
  uint64_t n = 0;
  span_t t0 = span_start();
  double deadline = t0.wall + seconds;
  for (;;) {
    for (int i = 0; i < 256; i++, n++) {
      memcpy(msg, &n, sizeof n); /* a different message each time */
      crypto_sign_detached(sig, NULL, msg, sizeof msg, key->sk);
    }
    if (now_s(CLOCK_MONOTONIC) >= deadline) break;
  }
  span_t t = span_end(t0);
  *cpu_rate = (double)n / t.cpu;
  return (double)n / t.wall;
}

/* n raw verifications over one RAW_MSG_BYTES-byte message (baseline for (d));
 * returns wall seconds. */
static double raw_verify_slice(const cp_signkey_t *key, size_t n) {
  unsigned char msg[RAW_MSG_BYTES], sig[crypto_sign_BYTES];
  memset(msg, 0xa5, sizeof msg);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, key->sk);
  size_t bad = 0;
  double t0 = now_s(CLOCK_MONOTONIC);
  for (size_t i = 0; i < n; i++)
    if (crypto_sign_verify_detached(sig, msg, sizeof msg, key->pk) != 0) bad++;
  double t = now_s(CLOCK_MONOTONIC) - t0;
  if (bad) fprintf(stderr, "bench_register: %zu raw verifications failed\n", bad);
  return t;
}

/* Synthetic but realistic record i: the fields the signer fills from a
 * VerifiedRecord (see services/signer/signer_entry.c). No personal data: the
 * worker is a pseudonym from the pool. */
static const char *const QUAL_CODES[] = {"RF-FIRE", "RF-MH",   "RF-BLS",  "RF-SAFEG", "RF-IPC",
                                         "RF-HS",   "CPD-DEM", "CPD-AUT", "L2-ASCC",  "CC-STD-07"};

/* Build, pack, sign and wrap entry i; returns the malloc'd SignedEntry bytes. */
static int make_signed_entry(const cp_signkey_t *key, const uint8_t (*workers)[CP_PSEUDONYM_BYTES],
                             uint64_t i, int64_t issued_at, uint8_t **out, size_t *outlen) {
  char event_id[48], completion[11], valid_until[11], assessor[24];
  uint8_t evidence[32];
  unsigned month = (unsigned)(i % 12) + 1, day = (unsigned)(i % 28) + 1;
  snprintf(event_id, sizeof event_id, "bench-%010llu", (unsigned long long)i);
  snprintf(completion, sizeof completion, "2025-%02u-%02u", month, day);
  snprintf(valid_until, sizeof valid_until, "2026-%02u-%02u", month, day);
  snprintf(assessor, sizeof assessor, "ASR-0001-%03u", (unsigned)(i % 1000));
  memcpy(evidence, workers[(i * 7 + 3) % WORKER_POOL], sizeof evidence);
  memcpy(evidence, &i, sizeof i);

  Carepass__V1__PassportEntry pe = CAREPASS__V1__PASSPORT_ENTRY__INIT;
  pe.version = 1;
  pe.worker_pseudonym.data = (uint8_t *)workers[i % WORKER_POOL];
  pe.worker_pseudonym.len = CP_PSEUDONYM_BYTES;
  pe.qualification_code = (char *)QUAL_CODES[i % CP_ARRAY_LEN(QUAL_CODES)];
  pe.provider_id = "PRV-0001";
  pe.assessor_id = assessor;
  pe.completion_date = completion;
  pe.valid_until = valid_until;
  pe.evidence_hash.data = evidence;
  pe.evidence_hash.len = sizeof evidence;
  pe.provider_event_id = event_id;
  pe.issued_at = issued_at;
  pe.entry_type = CAREPASS__V1__ENTRY_TYPE__ENTRY_TYPE_RECORD;

  char err[CP_ERRLEN];
  return reg_entry_sign(key, &pe, out, outlen, err, sizeof err);
}

/* n raw signatures over RAW_MSG_BYTES-byte messages; returns wall seconds. */
static double raw_sign_slice(const cp_signkey_t *key, size_t n, uint64_t salt) {
  unsigned char msg[RAW_MSG_BYTES], sig[crypto_sign_BYTES];
  memset(msg, 0x5a, sizeof msg);
  double t0 = now_s(CLOCK_MONOTONIC);
  for (size_t i = 0; i < n; i++) {
    uint64_t v = salt + i;
    memcpy(msg, &v, sizeof v);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, key->sk);
  }
  return now_s(CLOCK_MONOTONIC) - t0;
}

/* (b) Build + sign + append `o->entries` entries in batches of `o->batch`.
 * Before each batch, a raw signing slice of the same count runs, so that (a)
 * and (b) see the same machine load (this host is shared and noisy); the
 * slices are not counted in (b)'s time. */
static int append_phase(const opts_t *o, const cp_signkey_t *key, reg_log_t *log,
                        const uint8_t (*workers)[CP_PSEUDONYM_BYTES], append_res_t *res) {
  char err[CP_ERRLEN];
  uint8_t **bufs = cp_xcalloc(o->batch, sizeof *bufs);
  size_t *lens = cp_xcalloc(o->batch, sizeof *lens);
  int rc = -1;
  memset(res, 0, sizeof *res);
  int64_t issued_at = (int64_t)time(NULL);
  double wall = 0, cpu = 0;
  for (uint64_t done = 0; done < o->entries;) {
    size_t n = (size_t)(o->entries - done < o->batch ? o->entries - done : o->batch);
    res->raw_sign += raw_sign_slice(key, n, done);
    span_t t0 = span_start();
    double s0 = t0.wall;
    for (size_t j = 0; j < n; j++) {
      if (make_signed_entry(key, workers, done + j, issued_at, &bufs[j], &lens[j]) != 0) {
        fprintf(stderr, "bench_register: packing entry %llu failed\n", (unsigned long long)(done + j));
        goto err;
      }
      res->bytes += lens[j];
    }
    double s1 = now_s(CLOCK_MONOTONIC);
    uint64_t first = 0;
    if (reg_append(log, (const uint8_t *const *)bufs, lens, n, &first, err, sizeof err) != 0) {
      fprintf(stderr, "bench_register: reg_append: %s\n", err);
      goto err;
    }
    double s2 = now_s(CLOCK_MONOTONIC);
    res->build_sign += s1 - s0;
    res->append += s2 - s1;
    res->batches++;
    for (size_t j = 0; j < n; j++) {
      free(bufs[j]);
      bufs[j] = NULL;
    }
    span_t t = span_end(t0);
    wall += t.wall;
    cpu += t.cpu;
    done += n;
  }
  res->total.wall = wall;
  res->total.cpu = cpu;
  rc = 0;
err:
  for (size_t j = 0; j < o->batch; j++) free(bufs[j]);
  free(bufs);
  free(lens);
  return rc;
}

/* One batch built and signed on the worker thread of (e). */
typedef struct {
  const cp_signkey_t *key;                        // signing key
  const uint8_t (*workers)[CP_PSEUDONYM_BYTES];   // pseudonym pool
  uint64_t first;                                 // index of the batch's first entry
  size_t n;                                       // entries in the batch
  int64_t issued_at;                              // issued_at of every entry
  uint8_t **bufs;                                 // SignedEntry bytes (malloc'd each)
  size_t *lens;                                   // their lengths
  size_t bytes;                                   // total bytes
  int rc;                                         // 0, or -1 when packing failed
} signjob_t;

static void *sign_job(void *arg) {
  signjob_t *j = arg;
  j->bytes = 0;
  j->rc = 0;
  for (size_t k = 0; k < j->n; k++) {
    if (make_signed_entry(j->key, j->workers, j->first + k, j->issued_at, &j->bufs[k], &j->lens[k]) != 0) {
      j->rc = -1;
      return NULL;
    }
    j->bytes += j->lens[k];
  }
  return NULL;
}

static void job_clear(signjob_t *j) {
  for (size_t k = 0; k < j->n; k++) {
    free(j->bufs[k]);
    j->bufs[k] = NULL;
  }
}

/* (e) The signer's pipeline (services/signer/signer_batch.c): batch k+1 is built and
 * signed on a worker thread while this thread appends batch k (reg_append, fsyncs).
 * Run in chunks of PIPE_CHUNK_BATCHES batches; each chunk starts with an empty
 * pipeline and ends when its last batch is durable (the fill and drain are timed),
 * and between chunks, with nothing else running, a raw signing slice of the same
 * count is the baseline under the same load. */
static int pipeline_phase(const opts_t *o, const cp_signkey_t *key, reg_log_t *log,
                          const uint8_t (*workers)[CP_PSEUDONYM_BYTES], append_res_t *res) {
  char err[CP_ERRLEN];
  signjob_t jobs[2];
  int rc = -1;
  memset(res, 0, sizeof *res);
  int64_t issued_at = (int64_t)time(NULL);
  for (int i = 0; i < 2; i++) {
    jobs[i] = (signjob_t){key, workers, 0, 0, issued_at, cp_xcalloc(o->batch, sizeof(uint8_t *)),
                          cp_xcalloc(o->batch, sizeof(size_t)), 0, 0};
  }
  uint64_t base = reg_size(log);   /* entry numbering continues after (b) */
  for (uint64_t done = 0; done < o->entries;) {
    uint64_t chunk = o->entries - done;
    if (chunk > (uint64_t)o->batch * PIPE_CHUNK_BATCHES) chunk = (uint64_t)o->batch * PIPE_CHUNK_BATCHES;
    res->raw_sign += raw_sign_slice(key, (size_t)chunk, base + done);
    span_t t0 = span_start();
    int cur = 0;
    signjob_t *held = NULL;
    uint64_t off = 0;
    for (;;) {
      signjob_t *j = NULL;
      pthread_t th;
      bool started = false;
      if (off < chunk) {
        j = &jobs[cur];
        cur ^= 1;
        j->first = base + done + off;
        j->n = (size_t)(chunk - off < o->batch ? chunk - off : o->batch);
        off += j->n;
        if (pthread_create(&th, NULL, sign_job, j) == 0) started = true;
        else sign_job(j);
      }
      if (held != NULL) {
        uint64_t first = 0;
        double a0 = now_s(CLOCK_MONOTONIC);
        int arc = held->rc == 0 ? reg_append(log, (const uint8_t *const *)held->bufs, held->lens, held->n, &first,
                                            err, sizeof err) : -1;
        res->append += now_s(CLOCK_MONOTONIC) - a0;
        if (arc != 0) {
          fprintf(stderr, "bench_register: pipelined reg_append: %s\n", held->rc ? "packing failed" : err);
          if (started) pthread_join(th, NULL);
          goto err;
        }
        res->bytes += held->bytes;
        res->batches++;
        job_clear(held);
      }
      if (started) pthread_join(th, NULL);
      held = j;
      if (held == NULL) break;   /* the chunk's last batch is durable */
    }
    span_t t = span_end(t0);
    res->total.wall += t.wall;
    res->total.cpu += t.cpu;
    done += chunk;
  }
  rc = 0;
err:
  for (int i = 0; i < 2; i++) {
    job_clear(&jobs[i]);
    free(jobs[i].bufs);
    free(jobs[i].lens);
  }
  return rc;
}

/* Decode a SignedEntry and check its key id and signature. */
static bool verify_one(const cp_signkey_t *key, const uint8_t *e, size_t len) {
  char err[CP_ERRLEN];
  Carepass__V1__SignedEntry *se = (Carepass__V1__SignedEntry *)cp_pb_unpack(
      &carepass__v1__signed_entry__descriptor, e, len, REG_ENTRY_MAX, err, sizeof err);
  if (se == NULL) return false;
  bool ok = se->signature.len == crypto_sign_BYTES && se->key_id.len == CP_KEYID_BYTES &&
            memcmp(se->key_id.data, key->key_id, CP_KEYID_BYTES) == 0 &&
            cp_verify_entry(key->pk, se->entry.data, se->entry.len, se->signature.data);
  protobuf_c_message_free_unpacked(&se->base, NULL);
  return ok;
}

static int verify_cb(void *arg, uint64_t index, const uint8_t *entry, size_t len) {
  verify_ctx_t *v = arg;
  if (verify_one(v->key, entry, len))
    v->ok++;
  else
    v->bad++;
  return 0;
}

/* Remove the temporary directory tree (paths made by mkdtemp: no quoting issues). */
static void rmtree(const char *dir) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "bench_register: could not remove %s\n", dir);
}

static void row(const char *what, double rate, const char *unit, const char *note) {
  printf("  %-46s %12.0f %-10s %s\n", what, rate, unit, note ? note : "");
}

int main(int argc, char **argv) {
  opts_t o;
  if (parse_opts(argc, argv, &o) != 0) return 2;
  if (cp_crypto_init() != 0) {
    fprintf(stderr, "bench_register: libsodium failed to initialise\n");
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int status = 1;
  char err[CP_ERRLEN];
  char tmpl[4096] = "";
  char regdir[4200];
  reg_log_t *log = NULL;
  uint8_t (*workers)[CP_PSEUDONYM_BYTES] = NULL;
  cp_signkey_t key;
  memset(&key, 0, sizeof key);
  snprintf(key.name, sizeof key.name, "bench.carepass.invalid/register");
  crypto_sign_keypair(key.pk, key.sk);
  cp_key_id(key.name, key.pk, key.key_id);

  /* (a) before */
  double cpu_a1 = 0, cpu_a2 = 0;
  double sign_a1 = raw_sign_rate(&key, o.sign_seconds, &cpu_a1);
  if (o.sign_only) {
    printf("bench_register: raw Ed25519 signing, one core, %d-byte messages, %.1f s\n", RAW_MSG_BYTES,
           o.sign_seconds);
    row("(a) crypto_sign_detached", sign_a1, "sig/s", "wall");
    row("    same, per CPU second", cpu_a1, "sig/s", "cpu");
    if (o.kv) printf("sign_per_s=%.0f\nsign_per_cpu_s=%.0f\n", sign_a1, cpu_a1);
    status = 0;
    goto done;
  }

  /* a pool of worker pseudonyms, as intake would have made them */
  unsigned char secret[CP_SECRET_BYTES];
  randombytes_buf(secret, sizeof secret);
  workers = cp_xmalloc(WORKER_POOL * sizeof *workers);
  for (unsigned w = 0; w < WORKER_POOL; w++) {
    char ni[16];
    snprintf(ni, sizeof ni, "ZZ%06uA", w); /* placeholder id: never a real NI number */
    cp_pseudonym(secret, ni, workers[w]);
  }
  sodium_memzero(secret, sizeof secret);

  snprintf(tmpl, sizeof tmpl, "%s/cp-bench-register-XXXXXX", o.base);
  if (mkdtemp(tmpl) == NULL) {
    fprintf(stderr, "bench_register: mkdtemp %s: %s\n", tmpl, strerror(errno));
    tmpl[0] = '\0';
    goto done;
  }
  snprintf(regdir, sizeof regdir, "%s/register", tmpl);
  if (reg_open(regdir, &key, &log, err, sizeof err) != 0) {
    fprintf(stderr, "bench_register: reg_open: %s\n", err);
    goto done;
  }

  /* (b) */
  append_res_t ar;
  memset(&ar, 0, sizeof ar);
  if (!o.no_serial && append_phase(&o, &key, log, (const uint8_t(*)[CP_PSEUDONYM_BYTES])workers, &ar) != 0) goto done;
  double append_rate = o.no_serial ? 0 : (double)o.entries / ar.total.wall;

  /* (e) */
  append_res_t pr;
  if (pipeline_phase(&o, &key, log, (const uint8_t(*)[CP_PSEUDONYM_BYTES])workers, &pr) != 0) goto done;
  double pipe_rate = (double)o.entries / pr.total.wall;
  double pipe_sign = (double)o.entries / pr.raw_sign;
  double pipe_ratio = pipe_rate / pipe_sign;
  uint64_t total = o.no_serial ? o.entries : 2 * o.entries;

  /* (a) the interleaved raw slices are the baseline for the ratio; the
   * before/after runs are printed to show how noisy the machine was */
  double sign_a2 = raw_sign_rate(&key, o.sign_seconds, &cpu_a2);
  double sign_rate = o.no_serial ? pipe_sign : (double)o.entries / ar.raw_sign;
  double ratio = o.no_serial ? 0 : append_rate / sign_rate;

  /* (d) read back and verify every entry (sequential), then random single reads */
  reg_close(&log);
  if (reg_open(regdir, NULL, &log, err, sizeof err) != 0) {
    fprintf(stderr, "bench_register: reg_open (read-only): %s\n", err);
    goto done;
  }
  if (reg_size(log) != total) {
    fprintf(stderr, "bench_register: register has %llu entries, expected %llu\n",
            (unsigned long long)reg_size(log), (unsigned long long)total);
    goto done;
  }
  /* in chunks of one batch, each paired with a raw verification slice of the same count */
  verify_ctx_t vc = {&key, 0, 0};
  double seq_wall = 0, raw_verify_wall = 0;
  for (uint64_t from = 0; from < total; from += o.batch) {
    uint64_t to = from + o.batch < total ? from + o.batch : total;
    raw_verify_wall += raw_verify_slice(&key, (size_t)(to - from));
    double c0 = now_s(CLOCK_MONOTONIC);
    if (reg_foreach_entry(log, from, to, verify_cb, &vc, err, sizeof err) != 0) {
      fprintf(stderr, "bench_register: reg_foreach_entry: %s\n", err);
      goto done;
    }
    seq_wall += now_s(CLOCK_MONOTONIC) - c0;
  }
  double seq_verify_rate = (double)total / seq_wall;
  double raw_verify = (double)total / raw_verify_wall;
  span_t t0;

  uint64_t sample = total < READ_SAMPLE_MAX ? total : READ_SAMPLE_MAX, rbad = 0;
  t0 = span_start();
  for (uint64_t k = 0; k < sample; k++) {
    uint64_t idx = (uint64_t)randombytes_uniform((uint32_t)(total > UINT32_MAX ? UINT32_MAX : total));
    uint8_t *buf = NULL;
    size_t len = 0;
    if (reg_read_entry(log, idx, &buf, &len, err, sizeof err) != 0) {
      fprintf(stderr, "bench_register: reg_read_entry %llu: %s\n", (unsigned long long)idx, err);
      goto done;
    }
    if (!verify_one(&key, buf, len)) rbad++;
    free(buf);
  }
  span_t tr = span_end(t0);
  double rand_verify_rate = (double)sample / tr.wall;

  printf("bench_register: %llu entries per phase, batches of %zu, register in %s\n", (unsigned long long)o.entries,
         o.batch, o.base);
  printf("  avg SignedEntry %.0f bytes; raw signing over %d-byte messages\n",
         (double)(ar.bytes + pr.bytes) / (double)total, RAW_MSG_BYTES);
  printf("  %-46s %12s %-10s %s\n", "measure", "rate", "unit", "note");
  if (!o.no_serial) {
    row("(a) raw crypto_sign_detached, one core", sign_rate, "sig/s", "interleaved with (b)");
    printf("  %-46s %12.0f / %.0f   (%.1f s each; load check)\n", "    separate runs before / after", sign_a1,
           sign_a2, o.sign_seconds);
    row("(b) build+pack+sign+wrap+reg_append", append_rate, "entries/s", "wall, one thread");
    printf("  %-46s %11.1f%% / %.1f%%\n", "    time in build+sign / in reg_append",
           100 * ar.build_sign / ar.total.wall, 100 * ar.append / ar.total.wall);
    row("    build+sign alone (excl. reg_append)", (double)o.entries / ar.build_sign, "entries/s", NULL);
    row("    per CPU second", (double)o.entries / ar.total.cpu, "entries/s", "cpu");
    printf("  %-46s %12.3f\n", "    ratio build+sign alone / (a)", (double)o.entries / ar.build_sign / sign_rate);
    printf("  %-46s %12.3f %-10s %s\n", "(c) ratio (b)/(a)", ratio, "",
           ratio >= 0.5 ? "target >= 0.5: MET" : "target >= 0.5: NOT MET");
  } else {
    printf("  %-46s %12.0f / %.0f   (%.1f s each; load check)\n", "raw signing, separate runs before / after",
           sign_a1, sign_a2, o.sign_seconds);
  }
  row("(e) pipelined: sign k+1 on a thread | append k", pipe_rate, "entries/s", "wall, 2 threads");
  row("    raw crypto_sign_detached, one core", pipe_sign, "sig/s", "between (e)'s runs");
  printf("  %-46s %12.1f ms  (%.0f%% of (e)'s wall time)\n", "    mean reg_append per batch",
         pr.batches ? 1000 * pr.append / (double)pr.batches : 0.0, 100 * pr.append / pr.total.wall);
  printf("  %-46s %12.3f %-10s %s\n", "    ratio (e)/raw", pipe_ratio, "",
         pipe_ratio >= 0.5 ? "target >= 0.5: MET" : "target >= 0.5: NOT MET");
  row("(d) read back + cp_verify_entry, sequential", seq_verify_rate, "entries/s",
      vc.bad ? "SOME FAILED" : "all verified");
  row("    reg_read_entry (random) + verify", rand_verify_rate, "entries/s",
      rbad ? "SOME FAILED" : "sampled");
  row("    raw crypto_sign_verify_detached", raw_verify, "verif/s", "interleaved");
  printf("  %-46s %12.3f\n", "    ratio sequential verify / raw verify", seq_verify_rate / raw_verify);
  if (o.kv)
    printf("sign_per_s=%.0f\nappend_per_s=%.0f\nratio=%.4f\npipe_sign_per_s=%.0f\npipe_append_per_s=%.0f\n"
           "pipe_ratio=%.4f\nverify_seq_per_s=%.0f\nverify_random_per_s=%.0f\nraw_verify_per_s=%.0f\n",
           sign_rate, append_rate, ratio, pipe_sign, pipe_rate, pipe_ratio, seq_verify_rate, rand_verify_rate,
           raw_verify);
  if (vc.ok != total || vc.bad || rbad) {
    fprintf(stderr, "bench_register: %llu of %llu entries failed verification\n",
            (unsigned long long)(vc.bad + rbad), (unsigned long long)total);
    goto done;
  }
  status = 0;
done:
  reg_close(&log);
  if (tmpl[0]) {
    if (o.keep)
      printf("register kept in %s\n", regdir);
    else
      rmtree(tmpl);
  }
  free(workers);
  cp_signkey_wipe(&key);
  return status;
}
