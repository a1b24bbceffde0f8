/* whsec.c -- Standard Webhooks whsec_ secrets and the providers' secret store file (cp_whsec.h). */
#include "cp_whsec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "cp_log.h"

#define PREFIX_LEN (sizeof CP_WHSEC_PREFIX - 1)
#define LINE_MAX_BYTES 512                                  /* a store line is at most ~240 bytes */
#define STORE_FILE_MAX ((size_t)CP_WHSEC_STORE_MAX * LINE_MAX_BYTES)

_Static_assert(PREFIX_LEN + sodium_base64_ENCODED_LEN(CP_WHSEC_MAX_BYTES, sodium_base64_VARIANT_ORIGINAL) <=
                   CP_WHSEC_SIZE,
               "CP_WHSEC_SIZE holds the longest secret");

void cp_whsec_new(char out[CP_WHSEC_SIZE]) {
  unsigned char raw[CP_WHSEC_BYTES];
  randombytes_buf(raw, sizeof raw);
  memcpy(out, CP_WHSEC_PREFIX, PREFIX_LEN);
  sodium_bin2base64(out + PREFIX_LEN, CP_WHSEC_SIZE - PREFIX_LEN, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
  sodium_memzero(raw, sizeof raw);
}

int cp_whsec_parse(const char *text, cp_whsec_key_t *key, char *err, size_t errlen) {
  memset(key, 0, sizeof *key);
  size_t n = text ? strlen(text) : 0;
  if (n < PREFIX_LEN || memcmp(text, CP_WHSEC_PREFIX, PREFIX_LEN) != 0)
    return cp_err(err, errlen, "a webhook secret starts with \"whsec_\"");
  if (n >= CP_WHSEC_SIZE)
    return cp_err(err, errlen, "a webhook secret is at most %d bytes long (base64 of %d bytes)", CP_WHSEC_SIZE - 1,
                  CP_WHSEC_MAX_BYTES);
  size_t len = 0;
  const char *end = NULL;
  if (sodium_base642bin(key->key, sizeof key->key, text + PREFIX_LEN, n - PREFIX_LEN, NULL, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text + n) {
    cp_whsec_key_wipe(key);
    return cp_err(err, errlen, "a webhook secret is \"whsec_\" and padded standard base64");
  }
  if (len < CP_WHSEC_MIN_BYTES) {
    cp_whsec_key_wipe(key);
    return cp_err(err, errlen, "a webhook secret has %zu bytes; at least %d are needed", len, CP_WHSEC_MIN_BYTES);
  }
  key->len = len;
  return 0;
}

void cp_whsec_key_wipe(cp_whsec_key_t *key) {
  if (key) sodium_memzero(key, sizeof *key);
}

/* ---- the store ------------------------------------------------------------------------------ */

struct cp_whsec_store {
  cp_whsec_entry_t *e;   // entries sorted by provider id
  size_t n;              // entries used
  size_t cap;            // entries allocated
};

static cp_whsec_store_t *store_new(void) { return cp_xcalloc(1, sizeof(cp_whsec_store_t)); }

void cp_whsec_store_destroy(cp_whsec_store_t **stp) {
  cp_whsec_store_t *st = stp ? *stp : NULL;
  if (!st) return;
  if (st->e) sodium_memzero(st->e, st->cap * sizeof *st->e);
  free(st->e);
  free(st);
  *stp = NULL;
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const cp_whsec_entry_t *)a)->provider, ((const cp_whsec_entry_t *)b)->provider);
}

const cp_whsec_entry_t *cp_whsec_store_find(const cp_whsec_store_t *st, const char *provider) {
  if (!st || st->n == 0 || !provider) return NULL;
  cp_whsec_entry_t key;
  if (strlen(provider) >= sizeof key.provider) return NULL;
  snprintf(key.provider, sizeof key.provider, "%s", provider);
  return bsearch(&key, st->e, st->n, sizeof *st->e, cmp_entry);
}

size_t cp_whsec_store_count(const cp_whsec_store_t *st) { return st ? st->n : 0; }

static bool id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

/* Copy the next space-separated field of *p (at most max-1 bytes) into out; false when none or too long. */
static bool next_field(const char **p, char *out, size_t max) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strcspn(s, " \t");
  if (n == 0 || n >= max) return false;
  memcpy(out, s, n);
  out[n] = '\0';
  *p = s + n;
  return true;
}

static bool parse_int(const char *s, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0) return false;
  *out = (int64_t)v;
  return true;
}

/* One line into e; false when malformed. */
static bool parse_line(const char *line, cp_whsec_entry_t *e) {
  char num[24], prev_until[24];
  cp_whsec_key_t k;
  const char *p = line;
  memset(e, 0, sizeof *e);
  bool ok = next_field(&p, e->provider, sizeof e->provider) && next_field(&p, e->secret, sizeof e->secret) &&
            next_field(&p, num, sizeof num) && next_field(&p, e->previous, sizeof e->previous) &&
            next_field(&p, prev_until, sizeof prev_until);
  while (ok && (*p == ' ' || *p == '\t')) p++;
  ok = ok && *p == '\0' && parse_int(num, &e->created) && parse_int(prev_until, &e->previous_until);
  for (const char *c = e->provider; ok && *c; c++) ok = id_char(*c);
  ok = ok && cp_whsec_parse(e->secret, &k, NULL, 0) == 0;
  cp_whsec_key_wipe(&k);
  if (ok && strcmp(e->previous, "-") == 0) {
    e->previous[0] = '\0';
    ok = e->previous_until == 0;
  } else if (ok) {
    ok = cp_whsec_parse(e->previous, &k, NULL, 0) == 0;
    cp_whsec_key_wipe(&k);
  }
  if (!ok) sodium_memzero(e, sizeof *e);
  return ok;
}

static void store_add(cp_whsec_store_t *st, const cp_whsec_entry_t *e) {
  if (st->n == st->cap) {
    size_t cap = st->cap ? 2 * st->cap : 16;
    cp_whsec_entry_t *ne = cp_xcalloc(cap, sizeof *ne);   /* not realloc: the old copy is wiped */
    if (st->e) {
      memcpy(ne, st->e, st->n * sizeof *ne);
      sodium_memzero(st->e, st->cap * sizeof *st->e);
      free(st->e);
    }
    st->e = ne;
    st->cap = cap;
  }
  st->e[st->n++] = *e;
}

/* Parse the file's text (NUL-terminated) into a new store. */
static int parse_store(const char *path, const char *text, cp_whsec_store_t **out, char *err, size_t errlen) {
  cp_whsec_store_t *st = store_new();
  char line[LINE_MAX_BYTES];
  size_t lineno = 0;
  for (const char *p = text; *p;) {
    size_t raw = strcspn(p, "\n"), ll = raw;   /* raw: where the next line starts; ll: trimmed */
    lineno++;
    if (ll >= sizeof line) {
      cp_err(err, errlen, "%s line %zu: longer than %d bytes", path, lineno, LINE_MAX_BYTES - 1);
      goto err;
    }
    memcpy(line, p, ll);
    line[ll] = '\0';
    while (ll > 0 && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t')) line[--ll] = '\0';
    const char *q = line;
    while (*q == ' ' || *q == '\t') q++;
    if (*q != '\0' && *q != '#') {
      cp_whsec_entry_t e;
      if (st->n == CP_WHSEC_STORE_MAX) {
        cp_err(err, errlen, "%s: more than %d providers", path, CP_WHSEC_STORE_MAX);
        goto err;
      }
      if (!parse_line(q, &e)) {
        cp_err(err, errlen,
               "%s line %zu: expected \"<provider id> <whsec_ secret> <created> <whsec_ previous or -> <until>\"",
               path, lineno);
        goto err;
      }
      store_add(st, &e);
      sodium_memzero(&e, sizeof e);
    }
    p += raw;
    if (*p == '\n') p++;
  }
  sodium_memzero(line, sizeof line);
  qsort(st->e, st->n, sizeof *st->e, cmp_entry);
  for (size_t i = 1; i < st->n; i++)
    if (strcmp(st->e[i - 1].provider, st->e[i].provider) == 0) {
      cp_err(err, errlen, "%s: provider %s is listed twice", path, st->e[i].provider);
      goto err;
    }
  *out = st;
  return 0;
err:
  sodium_memzero(line, sizeof line);
  cp_whsec_store_destroy(&st);
  return -1;
}

/* Read the whole file from fd (already open) after checking its mode; the buffer is wiped by the caller. */
static int read_fd(int fd, const char *path, char **out, char *err, size_t errlen) {
  struct stat st;
  *out = NULL;
  if (fstat(fd, &st) != 0) return cp_err(err, errlen, "stat %s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return cp_err(err, errlen, "%s is not a regular file", path);
  if (st.st_mode & 077)
    return cp_err(err, errlen, "%s may be read by group or others (mode %03o); it must be 0600", path,
                  (unsigned)(st.st_mode & 0777));
  if ((uint64_t)st.st_size > STORE_FILE_MAX)
    return cp_err(err, errlen, "%s is %lld bytes; the limit is %zu", path, (long long)st.st_size, STORE_FILE_MAX);
  size_t cap = (size_t)st.st_size, n = 0;
  char *buf = cp_xmalloc(cap + 1);
  while (n < cap) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      cp_err(err, errlen, "read %s: %s", path, strerror(errno));
      sodium_memzero(buf, cap + 1);
      free(buf);
      return -1;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  if (memchr(buf, '\0', n) != NULL) {
    sodium_memzero(buf, cap + 1);
    free(buf);
    return cp_err(err, errlen, "%s contains a NUL byte", path);
  }
  *out = buf;
  return 0;
}

int cp_whsec_store_read(const char *path, cp_whsec_store_t **out, char *err, size_t errlen) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      *out = store_new();
      return 0;
    }
    return cp_err(err, errlen, "open %s: %s", path, strerror(errno));
  }
  char *text = NULL;
  int rc = read_fd(fd, path, &text, err, errlen);
  close(fd);
  if (rc == 0) {
    size_t len = strlen(text);
    rc = parse_store(path, text, out, err, errlen);
    sodium_memzero(text, len);
    free(text);
  }
  return rc;
}

/* The store as file text (malloc'd; the caller wipes and frees it). */
static char *store_text(const cp_whsec_store_t *st, size_t *len) {
  static const char head[] =
      "# carepass webhook secrets of training providers (carepass webhook-secret); mode 0600; never commit or log\n"
      "# <provider id> <whsec_ current> <created unix s> <whsec_ previous or -> <previous valid until unix s>\n";
  size_t cap = sizeof head + st->n * LINE_MAX_BYTES;
  char *out = cp_xmalloc(cap);
  size_t n = (size_t)snprintf(out, cap, "%s", head);
  for (size_t i = 0; i < st->n; i++) {
    const cp_whsec_entry_t *e = &st->e[i];
    n += (size_t)snprintf(out + n, cap - n, "%s %s %lld %s %lld\n", e->provider, e->secret, (long long)e->created,
                          e->previous[0] ? e->previous : "-", (long long)(e->previous[0] ? e->previous_until : 0));
  }
  *len = n;
  return out;
}

int cp_whsec_store_issue(const char *path, const char *provider, bool rotate, int64_t now_s, int64_t overlap_s,
                         cp_whsec_entry_t *out, bool *made, char *err, size_t errlen) {
  char lock_path[4200];
  cp_whsec_store_t *st = NULL;
  char *text = NULL;
  size_t tlen = 0;
  int rc = -1;
  *made = false;
  memset(out, 0, sizeof *out);
  size_t plen = strlen(provider);
  if (plen == 0 || plen >= PROV_ID_MAX) return cp_err(err, errlen, "a provider id is 1..%d characters", PROV_ID_MAX - 1);
  for (size_t i = 0; i < plen; i++)
    if (!id_char(provider[i])) return cp_err(err, errlen, "a provider id is made of A-Z a-z 0-9 . _ -");
  if ((size_t)snprintf(lock_path, sizeof lock_path, "%s.lock", path) >= sizeof lock_path)
    return cp_err(err, errlen, "the store path is too long");
  int lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return cp_err(err, errlen, "open %s: %s", lock_path, strerror(errno));
  if (flock(lock, LOCK_EX) != 0) {
    cp_err(err, errlen, "lock %s: %s", lock_path, strerror(errno));
    goto out;
  }
  if (cp_whsec_store_read(path, &st, err, errlen) != 0) goto out;
  cp_whsec_entry_t *e = (cp_whsec_entry_t *)cp_whsec_store_find(st, provider);
  if (e && !rotate) {
    *out = *e;
    rc = 0;
    goto out;
  }
  if (e) {   /* rotate: the current secret becomes the previous one, for the overlap */
    memcpy(e->previous, e->secret, sizeof e->previous);
    e->previous_until = now_s + overlap_s;
  } else {
    if (st->n == CP_WHSEC_STORE_MAX) {
      cp_err(err, errlen, "%s already holds %d providers, the most allowed", path, CP_WHSEC_STORE_MAX);
      goto out;
    }
    cp_whsec_entry_t ne;
    memset(&ne, 0, sizeof ne);
    snprintf(ne.provider, sizeof ne.provider, "%s", provider);
    store_add(st, &ne);
    qsort(st->e, st->n, sizeof *st->e, cmp_entry);
    e = (cp_whsec_entry_t *)cp_whsec_store_find(st, provider);
  }
  cp_whsec_new(e->secret);
  e->created = now_s;
  text = store_text(st, &tlen);
  if (cp_write_file_atomic(path, text, tlen, 0600, err, errlen) != 0) goto out;
  *out = *e;
  *made = true;
  rc = 0;
out:
  if (text) {
    sodium_memzero(text, tlen);
    free(text);
  }
  cp_whsec_store_destroy(&st);
  close(lock);   /* releases the flock */
  return rc;
}

/* ---- following the store on disk ------------------------------------------------------------ */

struct cp_whsec_follow {
  char *path;              // the store file
  cp_whsec_store_t *st;    // the store in force
  bool present;            // the file existed at the last load
  dev_t dev;               // identity of the file loaded (an atomic rename gives a new inode)
  ino_t ino;               // inode of it
  off_t size;              // its size
  struct timespec mtime;   // its modification time
  int64_t next_look;       // monotonic ms of the next stat
  bool failed;             // the last changed version did not load (logged once)
};

static void remember(cp_whsec_follow_t *f, bool present, const struct stat *st) {
  f->present = present;
  if (!present) return;
  f->dev = st->st_dev;
  f->ino = st->st_ino;
  f->size = st->st_size;
  f->mtime = st->st_mtim;
}

int cp_whsec_follow_new(const char *path, cp_whsec_follow_t **out, char *err, size_t errlen) {
  cp_whsec_follow_t *f = cp_xcalloc(1, sizeof *f);
  *out = NULL;
  f->path = cp_strdup(path);
  struct stat st;
  bool present = stat(path, &st) == 0;
  if (cp_whsec_store_read(path, &f->st, err, errlen) != 0) {
    cp_whsec_follow_destroy(&f);
    return -1;
  }
  remember(f, present, &st);
  f->next_look = cp_mono_ms() + CP_WHSEC_FOLLOW_MS;
  *out = f;
  return 0;
}

void cp_whsec_follow_refresh(cp_whsec_follow_t *f) {
  int64_t mono = cp_mono_ms();
  if (mono < f->next_look) return;
  f->next_look = mono + CP_WHSEC_FOLLOW_MS;
  struct stat st;
  bool present = stat(f->path, &st) == 0;
  if (!present && errno != ENOENT) return;   /* cannot tell: keep what is in force */
  bool same = present ? f->present && f->dev == st.st_dev && f->ino == st.st_ino && f->size == st.st_size &&
                            f->mtime.tv_sec == st.st_mtim.tv_sec && f->mtime.tv_nsec == st.st_mtim.tv_nsec
                      : !f->present;
  if (same) return;
  char err[CP_ERRLEN];
  cp_whsec_store_t *nst = NULL;
  if (!present) {
    /* writes rename over the file, so it is never missing mid-write: keep the secrets in force (a
     * volume not mounted must not turn v1 signatures off) */
    if (!f->failed)
      cp_log_error("webhook secret store missing; the secrets loaded stay in force", CP_KV_STR("path", f->path),
                   CP_KV_INT("providers", cp_whsec_store_count(f->st)), CP_KV_END);
    f->failed = true;
    return;
  }
  if (cp_whsec_store_read(f->path, &nst, err, sizeof err) != 0) {
    if (!f->failed)
      cp_log_error("webhook secret store unreadable; the secrets loaded stay in force", CP_KV_STR("error", err),
                   CP_KV_END);
    f->failed = true;
    return;
  }
  f->failed = false;
  cp_whsec_store_destroy(&f->st);
  f->st = nst;
  remember(f, true, &st);
  cp_log_info("webhook secret store loaded", CP_KV_STR("path", f->path),
              CP_KV_INT("providers", cp_whsec_store_count(f->st)), CP_KV_END);
}

const cp_whsec_store_t *cp_whsec_follow_store(const cp_whsec_follow_t *f) { return f->st; }

void cp_whsec_follow_destroy(cp_whsec_follow_t **fp) {
  cp_whsec_follow_t *f = fp ? *fp : NULL;
  if (!f) return;
  cp_whsec_store_destroy(&f->st);
  free(f->path);
  free(f);
  *fp = NULL;
}
