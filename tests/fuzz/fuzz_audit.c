/* fuzz_audit.c -- a whole register as a hostile mirror serves it to `carepass audit`
 * (common/register_audit.c reg_audit_run, with a fetch function in place of HTTP): the
 * checkpoint, every entry bundle and hash tile at every level, the key history, every entry's
 * signature (against the fixture register's key) and, when the input has one, consistency with
 * an earlier checkpoint ("since").
 * Input: the mirror's files, each as [u8 name length][name][u32 big-endian length][bytes]
 * (names as in the register: "checkpoint", "tile/0/000.p/5", "tile/entries/000.p/5", "since");
 * a file not in the input is missing. tests/fuzz/make_seeds.c writes such a pack. */
#include "cp_regkeys.h"
#include "cp_register.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FILES_MAX 64

typedef struct {
  char name[256];      // relative path
  const uint8_t *buf;  // into the input
  size_t len;          // its length
} mfile_t;

typedef struct {
  mfile_t f[FILES_MAX]; // the files
  size_t n;             // how many
} mirror_t;

static int mem_fetch(void *arg, const char *rel, size_t max, uint8_t **buf, size_t *cap, size_t *len,
                     bool *missing, char *err, size_t errlen) {
  mirror_t *m = arg;
  *len = 0;
  *missing = false;
  for (size_t i = 0; i < m->n; i++) {
    if (strcmp(m->f[i].name, rel) != 0) continue;
    if (m->f[i].len > max) return cp_err(err, errlen, "%s is %zu bytes; the limit is %zu", rel, m->f[i].len, max);
    if (*cap < m->f[i].len + 1) {
      *cap = m->f[i].len + 1;
      *buf = cp_xrealloc(*buf, *cap);
    }
    if (m->f[i].len > 0) memcpy(*buf, m->f[i].buf, m->f[i].len);
    (*buf)[m->f[i].len] = '\0';
    *len = m->f[i].len;
    return 0;
  }
  *missing = true;
  return cp_err(err, errlen, "%s is missing", rel);
}

static void on_check(void *arg, reg_verdict_t v, const char *check, const char *why) {
  (void)arg, (void)v, (void)check, (void)why;
}

static char vkey[REG_VKEY_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool inited;
  static fuzz_file_t since_file = {-1, ""};
  if (!inited) {
    fuzz_quiet();
    if (sodium_init() < 0) abort();
    char path[4096];
    fuzz_source_path(path, sizeof path, "tests/fuzz/fixtures/register/vkey");
    FILE *fp = fopen(path, "r");
    if (fp == NULL || fgets(vkey, sizeof vkey, fp) == NULL) abort();
    fclose(fp);
    vkey[strcspn(vkey, "\n")] = '\0';
    inited = true;
  }
  mirror_t *m = cp_xcalloc(1, sizeof *m);
  size_t pos = 0;
  const char *since = NULL;
  while (pos < size && m->n < FILES_MAX) {
    size_t nl = data[pos++];
    if (size - pos < nl + 4) break;
    mfile_t *f = &m->f[m->n];
    memcpy(f->name, data + pos, nl);
    f->name[nl] = '\0';
    pos += nl;
    size_t len = (size_t)data[pos] << 24 | (size_t)data[pos + 1] << 16 | (size_t)data[pos + 2] << 8 | data[pos + 3];
    pos += 4;
    if (len > size - pos) len = size - pos;
    f->buf = data + pos;
    f->len = len;
    pos += len;
    if (strcmp(f->name, "since") == 0) since = fuzz_file_put(&since_file, f->buf, f->len);
    m->n++;
  }
  for (int pass = 0; pass < 2; pass++) {
    reg_audit_opts_t o = {
      .fetch = mem_fetch,
      .fetch_arg = m,
      .vkey = pass == 0 ? vkey : NULL,   /* with the key history and signatures; then the tree only */
      .signatures = pass == 0,
      .threads = 1,
      .since = pass == 0 ? since : NULL,
      .check = on_check,
    };
    reg_audit_result_t res;
    FUZZ_TRY(reg_audit_run(&o, &res));
  }
  free(m);
  return 0;
}
