/* input_csv.c -- RFC 4180 CSV records: quoted fields, doubled quotes, newlines inside quotes. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* A growing array of malloc'd field strings. */
typedef struct {
  char **v;     // fields
  size_t n;     // fields used
  size_t cap;   // fields allocated
} field_list_t;

static void push_field(field_list_t *l, const char *start, size_t len) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    char **v = realloc(l->v, cap * sizeof *v);
    if (v == NULL) abort(); /* OOM is fatal in carepass (see cp_xmalloc) */
    l->v = v;
    l->cap = cap;
  }
  char *s = cp_xmalloc(len + 1);
  memcpy(s, start, len);
  s[len] = '\0';
  l->v[l->n++] = s;
}

void cli_csv_free(char ***fields, size_t nfields) {
  if (fields == NULL || *fields == NULL) return;
  for (size_t i = 0; i < nfields; i++) free((*fields)[i]);
  free(*fields);
  *fields = NULL;
}

int cli_csv_split(const char *text, char ***fields, size_t *nfields, char *err, size_t errlen) {
  field_list_t l = {0};
  size_t tlen = strlen(text);
  /* the record's own line ending is not part of the last field */
  while (tlen > 0 && (text[tlen - 1] == '\n' || text[tlen - 1] == '\r')) tlen--;
  char *buf = cp_xmalloc(tlen + 1); /* unescaped field text; never longer than the input */
  size_t i = 0;
  for (;;) {
    size_t n = 0;
    if (i < tlen && text[i] == '"') {
      size_t open_at = i;
      i++;
      for (;;) {
        if (i >= tlen) {
          cp_err(err, errlen, "unterminated quoted field starting at character %zu", open_at + 1);
          goto err;
        }
        if (text[i] == '"') {
          if (i + 1 < tlen && text[i + 1] == '"') { buf[n++] = '"'; i += 2; continue; }
          i++;
          break;
        }
        buf[n++] = text[i++];
      }
      if (i < tlen && text[i] != ',') {
        cp_err(err, errlen, "unexpected character '%c' after a closing quote at character %zu",
               text[i], i + 1);
        goto err;
      }
    } else {
      while (i < tlen && text[i] != ',') {
        if (text[i] == '"') {
          cp_err(err, errlen, "stray quote inside an unquoted field at character %zu "
                 "(quote the whole field and double the quote)", i + 1);
          goto err;
        }
        buf[n++] = text[i++];
      }
    }
    push_field(&l, buf, n);
    if (i >= tlen) break;
    i++; /* skip the comma; a trailing comma yields a last empty field */
    if (i == tlen) { push_field(&l, "", 0); break; }
  }
  free(buf);
  *fields = l.v;
  *nfields = l.n;
  return 0;
err:
  free(buf);
  cli_csv_free(&l.v, l.n);
  return -1;
}
