/* redis_script.c -- Lua scripts: SHA-1 computed once, called by EVALSHA, loaded again after NOSCRIPT. */
#include "redis_internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SHA-1 (FIPS 180-4), only to name scripts as Redis does: not for security ---------- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t b[64]) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (bb & c) | (~bb & d); k = 0x5A827999; }
    else if (i < 40) { f = bb ^ c ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (bb & c) | (bb & d) | (c & d); k = 0x8F1BBCDC; }
    else { f = bb ^ c ^ d; k = 0xCA62C1D6; }
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rol(bb, 30);
    bb = a;
    a = t;
  }
  h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e;
}

static void sha1_hex(const char *msg, size_t len, char out[41]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const uint8_t *m = (const uint8_t *)msg;
  size_t done = 0;
  for (; len - done >= 64; done += 64) sha1_block(h, m + done);
  uint8_t tail[128] = {0};
  size_t rest = len - done;
  memcpy(tail, m + done, rest);
  tail[rest] = 0x80;
  size_t tl = rest + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
  sha1_block(h, tail);
  if (tl == 128) sha1_block(h, tail + 64);
  for (int i = 0; i < 5; i++) snprintf(out + 8 * i, 9, "%08x", h[i]);
}

/* ---- the script registry ------------------------------------------------------------------ */

static pthread_mutex_t sha_lock = PTHREAD_MUTEX_INITIALIZER;   /* first use, from any thread */

const char *cp_redis_script_sha(cp_redis_script_t *s) {
  if (atomic_load_explicit(&s->ready, memory_order_acquire)) return s->sha;
  pthread_mutex_lock(&sha_lock);
  if (!atomic_load_explicit(&s->ready, memory_order_relaxed)) {
    sha1_hex(s->src, strlen(s->src), s->sha);
    atomic_store_explicit(&s->ready, 1, memory_order_release);
  }
  pthread_mutex_unlock(&sha_lock);
  return s->sha;
}

bool cpr_script_loaded(const cp_redis_t *r, const cp_redis_script_t *s) {
  for (size_t i = 0; i < r->nloaded; i++)
    if (r->loaded[i] == s) return true;
  return false;
}

void cpr_script_mark(cp_redis_t *r, const cp_redis_script_t *s) {
  if (cpr_script_loaded(r, s)) return;
  if (r->nloaded == r->loadedcap) {
    r->loadedcap = r->loadedcap ? 2 * r->loadedcap : 16;
    r->loaded = cp_xrealloc(r->loaded, r->loadedcap * sizeof *r->loaded);
  }
  r->loaded[r->nloaded++] = s;
}

void cpr_scripts_forget(cp_redis_t *r) { r->nloaded = 0; }

bool cpr_is_noscript(const redisReply *r) {
  return r != NULL && r->type == REDIS_REPLY_ERROR && r->str != NULL && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* "EVALSHA sha nkeys args..." as a fresh argv of argc + 3 (the caller frees both arrays). */
static void script_argv(cp_redis_script_t *s, int argc, const char **argv, const size_t *lens,
                        const char ***out, size_t **outlens, char nkeys[16]) {
  const char **a = cp_xcalloc((size_t)argc + 3, sizeof *a);
  size_t *l = cp_xcalloc((size_t)argc + 3, sizeof *l);
  snprintf(nkeys, 16, "%d", s->nkeys);
  a[0] = "EVALSHA";
  a[1] = cp_redis_script_sha(s);
  a[2] = nkeys;
  for (int i = 0; i < 3; i++) l[i] = strlen(a[i]);
  for (int i = 0; i < argc; i++) {
    a[3 + i] = argv[i];
    l[3 + i] = lens != NULL ? lens[i] : strlen(argv[i]);
  }
  *out = a;
  *outlens = l;
}

redisReply *cp_redis_eval(cp_redis_t *r, cp_redis_script_t *s, int argc, const char **argv, const size_t *lens) {
  assert(argc >= s->nkeys);
  char nkeys[16];
  const char **a = NULL;
  size_t *l = NULL;
  script_argv(s, argc, argv, lens, &a, &l, nkeys);
  redisReply *rep = cp_redis_cmd_argv(r, argc + 3, a, l);
  if (rep == NULL && strncmp(r->errstr, "NOSCRIPT", 8) == 0) {
    /* nothing ran: run it with its source, which also caches it on the server */
    a[0] = "EVAL";
    a[1] = s->src;
    l[0] = 4;
    l[1] = strlen(s->src);
    rep = cp_redis_cmd_argv(r, argc + 3, a, l);
  }
  if (rep != NULL) cpr_script_mark(r, s);
  free(a);
  free(l);
  return rep;
}
