/* bundle.c -- tlog-proof@v1 and carepass-passport/v1 bundles: build from a register, write, parse. */
#include "cp_bundle.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing text buffer (OOM is fatal in carepass). */
typedef struct {
  char *buf;    // text, NUL-terminated
  size_t len;   // bytes used (without the NUL)
  size_t cap;   // bytes allocated
} sbuf_t;

static void sb_put(sbuf_t *s, const char *p, size_t n) {
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 1024;
    while (cap < s->len + n + 1) cap *= 2;
    char *b = realloc(s->buf, cap);
    if (b == NULL) abort();
    s->buf = b;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  s->buf[s->len] = '\0';
}

static void sb_str(sbuf_t *s, const char *p) { sb_put(s, p, strlen(p)); }

/* Next line of text[*pos..len): sets *line, *linelen (without "\n"), moves *pos past
 * the newline. Returns false when there is no complete line. */
static bool next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *linelen) {
  if (*pos >= len) return false;
  const char *nl = memchr(text + *pos, '\n', len - *pos);
  if (nl == NULL) return false;
  *line = text + *pos;
  *linelen = (size_t)(nl - (text + *pos));
  *pos = (size_t)(nl - text) + 1;
  return true;
}

/* Strict decimal (no sign, no leading zeroes unless "0"), fits uint64. */
static int parse_u64(const char *s, size_t n, uint64_t *out) {
  if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* Base64 of a line segment into out (at most outmax bytes); exact. */
static int b64_segment(const char *s, size_t n, uint8_t *out, size_t outmax, size_t *outlen) {
  char *tmp = cp_xmalloc(n + 1);
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  int rc = cp_b64_decode(tmp, out, outmax, outlen);
  free(tmp);
  return rc;
}

/* ---- tlog-proof ---------------------------------------------------------- */

void cp_tlog_proof_clear(cp_tlog_proof_t *p) {
  if (p == NULL) return;
  free(p->entry);
  free(p->checkpoint);
  memset(p, 0, sizeof *p);
}

int cp_tlog_proof_from_log(reg_log_t *log, uint64_t index, cp_tlog_proof_t *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  uint64_t size = reg_size(log);
  if (index >= size)
    return cp_err(err, errlen, "entry %" PRIu64 " is not in the register (checkpoint size %" PRIu64 ")", index,
                  size);
  if (reg_read_entry(log, index, &p->entry, &p->entry_len, err, errlen) != 0) goto err;
  if (reg_inclusion_proof(log, index, size, p->proof, &p->nproof, err, errlen) != 0) goto err;
  p->index = index;
  p->checkpoint = cp_strdup(reg_checkpoint_note(log));
  p->checkpoint_len = strlen(p->checkpoint);
  /* never hand out a proof that does not verify against its own checkpoint */
  uint8_t root[REG_HASH_BYTES];
  reg_root(log, root);
  if (cp_tlog_proof_check(p, size, root, err, errlen) != 0) goto err;
  return 0;
err:
  cp_tlog_proof_clear(p);
  return -1;
}

int cp_tlog_proof_format(const cp_tlog_proof_t *p, char **out, size_t *outlen, char *err, size_t errlen) {
  if (p->checkpoint == NULL || p->checkpoint_len == 0) return cp_err(err, errlen, "proof has no checkpoint");
  sbuf_t s = {0};
  char line[128];
  sb_str(&s, CP_TLOG_PROOF_HEADER "\n");
  if (p->entry_len > 0) {
    size_t need = sodium_base64_ENCODED_LEN(p->entry_len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = cp_xmalloc(need);
    if (cp_b64_encode(p->entry, p->entry_len, b64, need) != 0) abort();
    sb_str(&s, "extra ");
    sb_str(&s, b64);
    sb_str(&s, "\n");
    free(b64);
  }
  snprintf(line, sizeof line, "index %" PRIu64 "\n", p->index);
  sb_str(&s, line);
  for (size_t i = 0; i < p->nproof; i++) {
    char b64[64];
    if (cp_b64_encode(p->proof[i], REG_HASH_BYTES, b64, sizeof b64) != 0) abort();
    sb_str(&s, b64);
    sb_str(&s, "\n");
  }
  sb_str(&s, "\n");
  sb_put(&s, p->checkpoint, p->checkpoint_len);
  *out = s.buf;
  *outlen = s.len;
  return 0;
}

int cp_tlog_proof_parse(const char *text, size_t len, cp_tlog_proof_t *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  size_t pos = 0, n;
  const char *ln;
  if (!next_line(text, len, &pos, &ln, &n) || n != strlen(CP_TLOG_PROOF_HEADER) ||
      memcmp(ln, CP_TLOG_PROOF_HEADER, n) != 0)
    return cp_err(err, errlen, "not a tlog-proof: the first line must be \"" CP_TLOG_PROOF_HEADER "\"");
  if (!next_line(text, len, &pos, &ln, &n)) return cp_err(err, errlen, "tlog-proof ends before its index line");
  if (n >= 6 && memcmp(ln, "extra ", 6) == 0) {
    size_t cap = (n - 6) / 4 * 3 + 3;
    p->entry = cp_xmalloc(cap + 1);
    if (b64_segment(ln + 6, n - 6, p->entry, cap, &p->entry_len) != 0 || p->entry_len == 0) {
      cp_err(err, errlen, "tlog-proof extra line is not valid base64");
      goto err;
    }
    if (!next_line(text, len, &pos, &ln, &n)) {
      cp_err(err, errlen, "tlog-proof ends before its index line");
      goto err;
    }
  }
  if (n < 7 || memcmp(ln, "index ", 6) != 0 || parse_u64(ln + 6, n - 6, &p->index) != 0) {
    cp_err(err, errlen, "tlog-proof index line is not \"index <decimal>\"");
    goto err;
  }
  for (;;) {
    if (!next_line(text, len, &pos, &ln, &n)) {
      cp_err(err, errlen, "tlog-proof has no empty line before its checkpoint");
      goto err;
    }
    if (n == 0) break;
    if (p->nproof == REG_PROOF_MAX) {
      cp_err(err, errlen, "tlog-proof has more than %d proof hashes", REG_PROOF_MAX);
      goto err;
    }
    uint8_t h[REG_HASH_BYTES + 3];
    size_t hl = 0;
    if (b64_segment(ln, n, h, sizeof h, &hl) != 0 || hl != REG_HASH_BYTES) {
      cp_err(err, errlen, "tlog-proof proof hash %zu is not a base64 SHA-256 hash", p->nproof + 1);
      goto err;
    }
    memcpy(p->proof[p->nproof++], h, REG_HASH_BYTES);
  }
  if (pos >= len) {
    cp_err(err, errlen, "tlog-proof has no checkpoint");
    goto err;
  }
  if (len - pos > REG_CHECKPOINT_MAX) {
    cp_err(err, errlen, "tlog-proof checkpoint is larger than %d bytes", REG_CHECKPOINT_MAX);
    goto err;
  }
  p->checkpoint_len = len - pos;
  p->checkpoint = cp_xmalloc(p->checkpoint_len + 1);
  memcpy(p->checkpoint, text + pos, p->checkpoint_len);
  p->checkpoint[p->checkpoint_len] = '\0';
  if (memchr(p->checkpoint, '\0', p->checkpoint_len) != NULL) {
    cp_err(err, errlen, "tlog-proof checkpoint contains a NUL byte");
    goto err;
  }
  return 0;
err:
  cp_tlog_proof_clear(p);
  return -1;
}

int cp_tlog_proof_check(const cp_tlog_proof_t *p, uint64_t size, const uint8_t root[REG_HASH_BYTES], char *err,
                        size_t errlen) {
  if (p->entry_len == 0) return cp_err(err, errlen, "the proof carries no entry (no extra line)");
  if (p->index >= size)
    return cp_err(err, errlen, "index %" PRIu64 " is beyond the checkpoint's tree size %" PRIu64, p->index, size);
  uint8_t leaf[REG_HASH_BYTES];
  reg_leaf_hash(p->entry, p->entry_len, leaf);
  if (reg_verify_inclusion(leaf, p->index, size, p->proof, p->nproof, root) != 0)
    return cp_err(err, errlen, "the inclusion proof of entry %" PRIu64 " does not lead to the checkpoint root",
                  p->index);
  return 0;
}

/* ---- passport bundle ------------------------------------------------------ */

void cp_passport_init(cp_passport_t *b, const char *worker_hex, const char *checkpoint, size_t len) {
  memset(b, 0, sizeof *b);
  snprintf(b->worker, sizeof b->worker, "%s", worker_hex);
  b->checkpoint = cp_xmalloc(len + 1);
  memcpy(b->checkpoint, checkpoint, len);
  b->checkpoint[len] = '\0';
  b->checkpoint_len = len;
}

void cp_passport_add(cp_passport_t *b, cp_proof_kind_t kind, cp_tlog_proof_t *p) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    cp_passport_item_t *items = realloc(b->items, cap * sizeof *items);
    if (items == NULL) abort();
    b->items = items;
    b->cap = cap;
  }
  b->items[b->n].kind = kind;
  b->items[b->n].proof = *p;
  b->n++;
  memset(p, 0, sizeof *p);
}

void cp_passport_add_opening(cp_passport_t *b, uint64_t index, const uint8_t r[32]) {
  if (b->nopen == b->capopen) {
    b->capopen = b->capopen ? b->capopen * 2 : 16;
    b->openings = cp_xrealloc(b->openings, b->capopen * sizeof *b->openings);
  }
  b->openings[b->nopen].index = index;
  memcpy(b->openings[b->nopen].r, r, 32);
  b->nopen++;
  b->open_sorted = false;
}

static int by_index(const void *a, const void *b) {
  uint64_t x = ((const cp_passport_opening_t *)a)->index, y = ((const cp_passport_opening_t *)b)->index;
  return x < y ? -1 : x > y;
}

const cp_passport_opening_t *cp_passport_opening(cp_passport_t *b, uint64_t index) {
  if (!b->open_sorted) {
    if (b->nopen > 1) qsort(b->openings, b->nopen, sizeof *b->openings, by_index);
    b->open_sorted = true;
  }
  cp_passport_opening_t key = {.index = index};
  return b->nopen ? bsearch(&key, b->openings, b->nopen, sizeof *b->openings, by_index) : NULL;
}

void cp_passport_clear(cp_passport_t *b) {
  if (b == NULL) return;
  for (size_t i = 0; i < b->n; i++) cp_tlog_proof_clear(&b->items[i].proof);
  free(b->items);
  free(b->openings);
  free(b->checkpoint);
  memset(b, 0, sizeof *b);
}

static bool hex64_ok(const char *s, size_t n) {
  if (n != 64) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

int cp_passport_format(const cp_passport_t *b, char **out, size_t *outlen, char *err, size_t errlen) {
  if (!hex64_ok(b->worker, strlen(b->worker))) return cp_err(err, errlen, "worker pseudonym is not 64 hex digits");
  sbuf_t s = {0};
  char line[160];
  sb_str(&s, b->nopen > 0 ? CP_PASSPORT_HEADER_V2 "\n" : CP_PASSPORT_HEADER "\n");
  snprintf(line, sizeof line, "worker %s\ncheckpoint %zu\n", b->worker, b->checkpoint_len);
  sb_str(&s, line);
  sb_put(&s, b->checkpoint, b->checkpoint_len);
  for (size_t i = 0; i < b->n; i++) {
    char *pt = NULL;
    size_t pl = 0;
    if (cp_tlog_proof_format(&b->items[i].proof, &pt, &pl, err, errlen) != 0) {
      free(s.buf);
      return -1;
    }
    snprintf(line, sizeof line, "proof %s %zu\n", b->items[i].kind == CP_PROOF_KEY ? "key" : "entry", pl);
    sb_str(&s, line);
    sb_put(&s, pt, pl);
    free(pt);
  }
  for (size_t i = 0; i < b->nopen; i++) {
    char hex[65];
    cp_hex(b->openings[i].r, 32, hex);
    snprintf(line, sizeof line, "opening %" PRIu64 " %s\n", b->openings[i].index, hex);
    sb_str(&s, line);
  }
  sb_str(&s, "end\n");
  *out = s.buf;
  *outlen = s.len;
  return 0;
}

/* Read the block of "<word> <N>" (N bytes after the line); blk and blklen point into text. */
static int read_block(const char *text, size_t len, size_t *pos, const char *ln, size_t n, size_t prefix,
                      const char **blk, size_t *blklen, char *err, size_t errlen) {
  uint64_t v;
  if (parse_u64(ln + prefix, n - prefix, &v) != 0)
    return cp_err(err, errlen, "passport bundle: bad byte count in \"%.*s\"", (int)(n > 60 ? 60 : n), ln);
  if (v > len - *pos)
    return cp_err(err, errlen, "passport bundle is truncated (a block of %" PRIu64 " bytes runs past the end)", v);
  *blk = text + *pos;
  *blklen = (size_t)v;
  *pos += (size_t)v;
  return 0;
}

int cp_passport_parse(const char *text, size_t len, cp_passport_t *b, char *err, size_t errlen) {
  memset(b, 0, sizeof *b);
  size_t pos = 0, n;
  const char *ln, *blk;
  size_t blklen;
  if (len > CP_BUNDLE_MAX) return cp_err(err, errlen, "passport bundle is larger than %u bytes", CP_BUNDLE_MAX);
  if (!next_line(text, len, &pos, &ln, &n) || n != strlen(CP_PASSPORT_HEADER) ||
      (memcmp(ln, CP_PASSPORT_HEADER, n) != 0 && memcmp(ln, CP_PASSPORT_HEADER_V2, n) != 0))
    return cp_err(err, errlen, "not a passport bundle: the first line must be \"" CP_PASSPORT_HEADER "\" or \""
                  CP_PASSPORT_HEADER_V2 "\"");
  bool v2 = memcmp(ln, CP_PASSPORT_HEADER_V2, n) == 0;
  if (!next_line(text, len, &pos, &ln, &n) || n < 7 || memcmp(ln, "worker ", 7) != 0 || !hex64_ok(ln + 7, n - 7))
    return cp_err(err, errlen, "passport bundle: second line must be \"worker <64 hex digits>\"");
  memcpy(b->worker, ln + 7, 64);
  b->worker[64] = '\0';
  if (!next_line(text, len, &pos, &ln, &n) || n < 12 || memcmp(ln, "checkpoint ", 11) != 0) {
    cp_err(err, errlen, "passport bundle: third line must be \"checkpoint <bytes>\"");
    goto err;
  }
  if (read_block(text, len, &pos, ln, n, 11, &blk, &blklen, err, errlen) != 0) goto err;
  if (blklen == 0 || blklen > REG_CHECKPOINT_MAX || memchr(blk, '\0', blklen) != NULL) {
    cp_err(err, errlen, "passport bundle: the checkpoint block is empty, too large or not text");
    goto err;
  }
  b->checkpoint = cp_xmalloc(blklen + 1);
  memcpy(b->checkpoint, blk, blklen);
  b->checkpoint[blklen] = '\0';
  b->checkpoint_len = blklen;
  for (;;) {
    if (!next_line(text, len, &pos, &ln, &n)) {
      cp_err(err, errlen, "passport bundle is truncated (no \"end\" line)");
      goto err;
    }
    if (n == 3 && memcmp(ln, "end", 3) == 0) break;
    if (v2 && n > 8 && memcmp(ln, "opening ", 8) == 0) {
      const char *sp = memchr(ln + 8, ' ', n - 8);
      uint64_t index;
      uint8_t r[32];
      if (sp == NULL || parse_u64(ln + 8, (size_t)(sp - (ln + 8)), &index) != 0 ||
          !hex64_ok(sp + 1, n - (size_t)(sp + 1 - ln)) ||
          sodium_hex2bin(r, sizeof r, sp + 1, 64, NULL, NULL, NULL) != 0) {
        cp_err(err, errlen, "passport bundle: an opening line must be \"opening <index> <64 hex digits>\"");
        goto err;
      }
      if (b->nopen >= CP_BUNDLE_ITEMS_MAX) {
        cp_err(err, errlen, "passport bundle has more than %d openings", CP_BUNDLE_ITEMS_MAX);
        goto err;
      }
      cp_passport_add_opening(b, index, r);
      continue;
    }
    cp_proof_kind_t kind;
    size_t prefix;
    if (n > 10 && memcmp(ln, "proof key ", 10) == 0) kind = CP_PROOF_KEY, prefix = 10;
    else if (n > 12 && memcmp(ln, "proof entry ", 12) == 0) kind = CP_PROOF_ENTRY, prefix = 12;
    else {
      cp_err(err, errlen, "passport bundle: unexpected line \"%.*s\"", (int)(n > 60 ? 60 : n), ln);
      goto err;
    }
    if (b->n >= CP_BUNDLE_ITEMS_MAX) {
      cp_err(err, errlen, "passport bundle has more than %d proofs", CP_BUNDLE_ITEMS_MAX);
      goto err;
    }
    if (read_block(text, len, &pos, ln, n, prefix, &blk, &blklen, err, errlen) != 0) goto err;
    cp_tlog_proof_t p;
    char perr[CP_ERRLEN];
    if (cp_tlog_proof_parse(blk, blklen, &p, perr, sizeof perr) != 0) {
      cp_err(err, errlen, "passport bundle: proof %zu: %s", b->n + 1, perr);
      goto err;
    }
    if (p.checkpoint_len != b->checkpoint_len || memcmp(p.checkpoint, b->checkpoint, p.checkpoint_len) != 0) {
      cp_err(err, errlen, "passport bundle: proof %zu (index %" PRIu64 ") is against another checkpoint than the bundle's",
             b->n + 1, p.index);
      cp_tlog_proof_clear(&p);
      goto err;
    }
    cp_passport_add(b, kind, &p);
  }
  if (pos != len) {
    cp_err(err, errlen, "passport bundle has data after its \"end\" line");
    goto err;
  }
  (void)cp_passport_opening(b, 0);   /* sorts them */
  for (size_t i = 1; i < b->nopen; i++)
    if (b->openings[i].index == b->openings[i - 1].index) {
      cp_err(err, errlen, "passport bundle: entry %" PRIu64 " has two openings", b->openings[i].index);
      goto err;
    }
  return 0;
err:
  cp_passport_clear(b);
  return -1;
}
