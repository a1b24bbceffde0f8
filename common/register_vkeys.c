/* register_vkeys.c -- the register directory's key files: vkeys (every verifier key, oldest first) and vkey. */
#include "cp_regkeys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split text into trimmed non-empty lines appended to *v. */
static void add_lines(const char *text, size_t len, char ***v, size_t *n) {
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *a = p, *b = le;
    while (a < b && (*a == ' ' || *a == '\t' || *a == '\r')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r')) b--;
    if (b > a) {
      *v = realloc(*v, (*n + 1) * sizeof **v);
      if (*v == NULL) abort();
      char *s = cp_xmalloc((size_t)(b - a) + 1);
      memcpy(s, a, (size_t)(b - a));
      s[b - a] = '\0';
      (*v)[(*n)++] = s;
    }
    p = le + 1;
  }
}

int reg_vkeys_read(const char *dir, char ***vkeys, size_t *n, char *err, size_t errlen) {
  *vkeys = NULL;
  *n = 0;
  char path[4200];
  uint8_t *buf = NULL;
  size_t len = 0;
  char rerr[CP_ERRLEN];
  snprintf(path, sizeof path, "%s/vkeys", dir);
  if (cp_read_file(path, (size_t)REG_KEYS_MAX * REG_VKEY_MAX, &buf, &len, rerr, sizeof rerr) != 0) {
    snprintf(path, sizeof path, "%s/vkey", dir);
    if (cp_read_file(path, REG_VKEY_MAX, &buf, &len, rerr, sizeof rerr) != 0)
      return cp_err(err, errlen, "register %s has neither vkeys nor vkey: %s", dir, rerr);
  }
  add_lines((const char *)buf, len, vkeys, n);
  free(buf);
  int rc = -1;
  if (*n == 0) {
    cp_err(err, errlen, "register %s: %s lists no verifier key", dir, path);
    goto out;
  }
  for (size_t i = 0; i < *n; i++) {
    char name[128], perr[CP_ERRLEN];
    unsigned char pk[32], id[CP_KEYID_BYTES];
    if (cp_vkey_parse((*vkeys)[i], name, sizeof name, pk, id, perr, sizeof perr) != 0) {
      cp_err(err, errlen, "%s line %zu: %s", path, i + 1, perr);
      goto out;
    }
  }
  rc = 0;
out:
  if (rc != 0) {
    reg_vkeys_free(vkeys, *n);
    *n = 0;
  }
  return rc;
}

void reg_vkeys_free(char ***vkeys, size_t n) {
  if (vkeys == NULL || *vkeys == NULL) return;
  for (size_t i = 0; i < n; i++) free((*vkeys)[i]);
  free(*vkeys);
  *vkeys = NULL;
}

int reg_vkeys_publish(const char *dir, const char *vkey, char *err, size_t errlen) {
  char path[4200];
  uint8_t *buf = NULL;
  size_t len = 0;
  char **v = NULL;
  size_t n = 0;
  int rc = -1;
  snprintf(path, sizeof path, "%s/vkeys", dir);
  if (cp_read_file(path, (size_t)REG_KEYS_MAX * REG_VKEY_MAX, &buf, &len, NULL, 0) == 0) {
    add_lines((const char *)buf, len, &v, &n);
  } else {
    /* first publication: start the list with the key currently published, if any */
    char vpath[4200];
    snprintf(vpath, sizeof vpath, "%s/vkey", dir);
    if (cp_read_file(vpath, REG_VKEY_MAX, &buf, &len, NULL, 0) == 0) add_lines((const char *)buf, len, &v, &n);
  }
  free(buf);
  buf = NULL;
  bool have = false;
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], vkey) == 0) have = true;
  size_t cap = (n + 1) * (REG_VKEY_MAX + 1) + 1, used = 0;
  char *text = cp_xmalloc(cap);
  for (size_t i = 0; i < n; i++) used += (size_t)snprintf(text + used, cap - used, "%s\n", v[i]);
  if (!have) used += (size_t)snprintf(text + used, cap - used, "%s\n", vkey);
  if (cp_write_file_atomic(path, text, used, 0644, err, errlen) != 0) goto out;
  snprintf(path, sizeof path, "%s/vkey", dir);
  used = (size_t)snprintf(text, cap, "%s\n", vkey);
  if (cp_write_file_atomic(path, text, used, 0644, err, errlen) != 0) goto out;
  rc = 0;
out:
  free(text);
  reg_vkeys_free(&v, n);
  return rc;
}

