/* token_revoke.c -- the bearer-token revocation list: a file of token ids, followed on disk; see cp_token.h. */
#include "cp_token.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_log.h"

#define REVLIST_FILE_MAX ((size_t)CP_TOKEN_REVOKED_MAX * 80) /* bytes read at most */

/* One id (so qsort/bsearch can move them). */
typedef struct {
  uint8_t b[CP_TOKEN_ID_BYTES];  // the token id
} revid_t;

struct cp_token_revlist {
  char *path;            // the list file
  pthread_mutex_t lock;  // guards everything below (gateway threads check concurrently)
  revid_t *ids;          // sorted ids in force
  size_t n;              // how many
  bool present;          // the file existed at the last look
  dev_t dev;             // identity of the file last looked at (rename gives a new inode)
  ino_t ino;             // inode of it
  off_t size;            // its size
  struct timespec mtime; // its modification time
  bool failed;           // the last changed version could not be read (logged once)
};

static int cmp_id(const void *a, const void *b) { return memcmp(a, b, CP_TOKEN_ID_BYTES); }

/* Parse the file's text into a sorted, de-duplicated array. */
static int parse_list(const char *path, const char *text, revid_t **out, size_t *nout, char *err,
                      size_t errlen) {
  size_t cap = 16, n = 0, lineno = 0;
  revid_t *v = cp_xmalloc(cap * sizeof *v);
  const char *p = text;
  while (*p != '\0') {
    const char *nl = strchr(p, '\n');
    size_t ll = nl != NULL ? (size_t)(nl - p) : strlen(p);
    lineno++;
    while (ll > 0 && (p[ll - 1] == '\r' || p[ll - 1] == ' ' || p[ll - 1] == '\t')) ll--;
    const char *q = p;
    while (ll > 0 && (*q == ' ' || *q == '\t')) { q++; ll--; }
    if (ll > 0 && *q != '#') {
      char hex[CP_TOKEN_ID_HEX];
      if (ll != 2 * CP_TOKEN_ID_BYTES) goto bad;
      memcpy(hex, q, ll);
      hex[ll] = '\0';
      if (n == CP_TOKEN_REVOKED_MAX) {
        cp_err(err, errlen, "%s: more than %d token ids", path, CP_TOKEN_REVOKED_MAX);
        goto err;
      }
      if (n == cap) v = cp_xrealloc(v, (cap *= 2) * sizeof *v);
      if (cp_token_id_parse(hex, v[n].b) != 0) goto bad;
      n++;
    }
    p = nl != NULL ? nl + 1 : p + strlen(p);
  }
  qsort(v, n, sizeof *v, cmp_id);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (k == 0 || memcmp(v[k - 1].b, v[i].b, CP_TOKEN_ID_BYTES) != 0) v[k++] = v[i];
  *out = v;
  *nout = k;
  return 0;
bad:
  cp_err(err, errlen, "%s line %zu: not a token id (32 hex digits)", path, lineno);
err:
  free(v);
  return -1;
}

/* Read path into a sorted list; a missing file is an empty list (*present false). */
static int read_list(const char *path, revid_t **out, size_t *n, bool *present, char *err, size_t errlen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  *out = NULL;
  *n = 0;
  *present = false;
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    return cp_err(err, errlen, "stat %s: %s", path, strerror(errno));
  }
  *present = true;
  if (cp_read_file(path, REVLIST_FILE_MAX, &buf, &len, err, errlen) != 0) return -1;
  if (memchr(buf, '\0', len) != NULL) {
    free(buf);
    return cp_err(err, errlen, "%s: contains a NUL byte", path);
  }
  int rc = parse_list(path, (const char *)buf, out, n, err, errlen);
  free(buf);
  return rc;
}

static bool same_file(const cp_token_revlist_t *rl, bool present, const struct stat *st) {
  if (!present) return !rl->present;
  return rl->present && rl->dev == st->st_dev && rl->ino == st->st_ino && rl->size == st->st_size &&
         rl->mtime.tv_sec == st->st_mtim.tv_sec && rl->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* Re-read the file when it changed; called with rl->lock held. */
static void refresh(cp_token_revlist_t *rl) {
  struct stat st;
  bool present = stat(rl->path, &st) == 0;
  if (!present && errno != ENOENT) return; /* cannot tell: keep what is in force */
  if (same_file(rl, present, &st)) return;
  if (!present) {
    /* the file went away (writes rename over it, so never mid-write): an unmounted volume must
     * not un-revoke anything; keep the list in force until a file is there again */
    if (!rl->failed)
      cp_log_error("token revocation list missing; the previous list stays in force",
                   CP_KV_STR("path", rl->path), CP_KV_INT("revoked", rl->n), CP_KV_END);
    rl->failed = true;
    return;
  }
  char err[CP_ERRLEN];
  revid_t *ids = NULL;
  size_t n = 0;
  bool now_present = false;
  if (read_list(rl->path, &ids, &n, &now_present, err, sizeof err) != 0) {
    if (!rl->failed)
      cp_log_error("token revocation list unreadable; the previous list stays in force",
                   CP_KV_STR("error", err), CP_KV_INT("revoked", rl->n), CP_KV_END);
    rl->failed = true;
    return;
  }
  rl->failed = false;
  free(rl->ids);
  rl->ids = ids;
  rl->n = n;
  rl->present = present;
  if (present) {
    rl->dev = st.st_dev;
    rl->ino = st.st_ino;
    rl->size = st.st_size;
    rl->mtime = st.st_mtim;
  }
  cp_log_info("token revocation list loaded", CP_KV_STR("path", rl->path), CP_KV_INT("revoked", n),
              CP_KV_END);
}

int cp_token_revlist_new(const char *path, cp_token_revlist_t **out, char *err, size_t errlen) {
  *out = NULL;
  cp_token_revlist_t *rl = cp_xcalloc(1, sizeof *rl);
  rl->path = cp_strdup(path);
  pthread_mutex_init(&rl->lock, NULL);
  struct stat st;
  bool present = stat(path, &st) == 0;
  if (read_list(path, &rl->ids, &rl->n, &rl->present, err, errlen) != 0) goto err;
  if (present && rl->present) {
    rl->dev = st.st_dev;
    rl->ino = st.st_ino;
    rl->size = st.st_size;
    rl->mtime = st.st_mtim;
  }
  *out = rl;
  return 0;
err:
  cp_token_revlist_destroy(&rl);
  return -1;
}

void cp_token_revlist_destroy(cp_token_revlist_t **rlp) {
  if (rlp == NULL || *rlp == NULL) return;
  cp_token_revlist_t *rl = *rlp;
  pthread_mutex_destroy(&rl->lock);
  free(rl->ids);
  free(rl->path);
  free(rl);
  *rlp = NULL;
}

bool cp_token_revlist_has(cp_token_revlist_t *rl, const uint8_t id[CP_TOKEN_ID_BYTES]) {
  pthread_mutex_lock(&rl->lock);
  refresh(rl);
  bool hit = rl->n > 0 && bsearch(id, rl->ids, rl->n, sizeof *rl->ids, cmp_id) != NULL;
  pthread_mutex_unlock(&rl->lock);
  return hit;
}

size_t cp_token_revlist_count(cp_token_revlist_t *rl) {
  pthread_mutex_lock(&rl->lock);
  refresh(rl);
  size_t n = rl->n;
  pthread_mutex_unlock(&rl->lock);
  return n;
}

int cp_token_revoke(const char *path, const char *id_hex, bool *added, char *err, size_t errlen) {
  int rc = -1, lfd = -1;
  revid_t *ids = NULL;
  size_t n = 0;
  bool present = false;
  char *text = NULL;
  uint8_t id[CP_TOKEN_ID_BYTES];
  size_t llen = strlen(path) + 6;
  char *lock = cp_xmalloc(llen);
  *added = false;
  snprintf(lock, llen, "%s.lock", path);
  if (cp_token_id_parse(id_hex, id) != 0) {
    cp_err(err, errlen, "not a token id (32 hex digits)");
    goto err;
  }
  /* two revokers at once must not lose one of the ids: read-modify-write under an flock */
  lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lfd < 0) {
    cp_err(err, errlen, "open %s: %s", lock, strerror(errno));
    goto err;
  }
  if (flock(lfd, LOCK_EX) != 0) {
    cp_err(err, errlen, "flock %s: %s", lock, strerror(errno));
    goto err;
  }
  if (read_list(path, &ids, &n, &present, err, errlen) != 0) goto err;
  if (n > 0 && bsearch(id, ids, n, sizeof *ids, cmp_id) != NULL) {
    rc = 0;
    goto err;
  }
  if (n >= CP_TOKEN_REVOKED_MAX) {
    cp_err(err, errlen, "%s already holds %d token ids", path, CP_TOKEN_REVOKED_MAX);
    goto err;
  }
  static const char head[] = "# carepass revoked token ids (carepass token revoke); one per line\n";
  size_t cap = sizeof head + (n + 1) * (2 * CP_TOKEN_ID_BYTES + 1) + 1, len = 0;
  text = cp_xmalloc(cap);
  memcpy(text, head, sizeof head - 1);
  len = sizeof head - 1;
  for (size_t i = 0; i <= n; i++) {
    cp_hex(i < n ? ids[i].b : id, CP_TOKEN_ID_BYTES, text + len);
    len += 2 * CP_TOKEN_ID_BYTES;
    text[len++] = '\n';
  }
  if (cp_write_file_atomic(path, text, len, 0600, err, errlen) != 0) goto err;
  *added = true;
  rc = 0;
err:
  if (lfd >= 0) close(lfd); /* releases the flock */
  free(text);
  free(ids);
  free(lock);
  return rc;
}
