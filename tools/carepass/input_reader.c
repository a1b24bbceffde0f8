/* input_reader.c -- stream events out of a CSV or NDJSON file, one record at a time, with line numbers. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CLI_RECORD_MAX (1024 * 1024) /* longest record accepted; longer ones are malformed */

struct cli_input {
  FILE *fp;              // the stream (owned; stdin is not closed)
  char *name;            // file name for messages
  cli_format_t fmt;      // CSV or NDJSON once sniffed
  long line;             // lines consumed so far
  char *pushback;        // a line read while sniffing, returned first (NULL if none)
  char **cols;           // CSV header columns
  size_t ncols;          // number of CSV header columns
  bool *col_known;       // per column: is it an event field
  char *ignored;         // comma-separated ignored column names ("" if none)
  long long done;        // bytes consumed
  long long total;       // file size, 0 when unknown
};

/* Read one physical line (with its newline) into a malloc'd string; NULL at EOF. */
static char *read_line(cli_input_t *in) {
  if (in->pushback != NULL) {
    char *l = in->pushback;
    in->pushback = NULL;
    in->line++;
    return l;
  }
  char *l = NULL;
  size_t cap = 0;
  ssize_t n = getline(&l, &cap, in->fp);
  if (n < 0) {
    free(l);
    return NULL;
  }
  in->done += n;
  in->line++;
  return l;
}

static bool is_blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return false;
  return true;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Decide CSV or NDJSON from the first non-blank line (kept as pushback). */
static void sniff(cli_input_t *in) {
  for (;;) {
    char *l = read_line(in);
    if (l == NULL) { in->fmt = CLI_FMT_NDJSON; return; } /* empty input: nothing to parse either way */
    if (is_blank(l)) { free(l); continue; }
    const char *p = l;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) p += 3;
    while (*p == ' ' || *p == '\t') p++;
    in->fmt = (*p == '{') ? CLI_FMT_NDJSON : CLI_FMT_CSV;
    in->pushback = l;
    in->line--; /* the pushed-back line is counted again when it is returned */
    return;
  }
}

/* Trim blanks (and a UTF-8 BOM) around a header cell in place. */
static char *trim(char *s) {
  if ((unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF) s += 3;
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
  return s;
}

/* Read one CSV record: lines are joined while a quote is open. */
static char *read_csv_record(cli_input_t *in, long *start_line) {
  char *rec = NULL;
  size_t len = 0, quotes = 0;
  for (;;) {
    char *l = read_line(in);
    if (l == NULL) return rec; /* EOF (inside quotes: the split reports it) */
    if (rec == NULL && is_blank(l)) { free(l); continue; }
    if (rec == NULL) *start_line = in->line;
    size_t n = strlen(l);
    for (size_t i = 0; i < n; i++) quotes += (l[i] == '"');
    if (rec == NULL) {
      rec = l;
      len = n;
    } else {
      char *r = realloc(rec, len + n + 1);
      if (r == NULL) abort();
      memcpy(r + len, l, n + 1);
      rec = r;
      len += n;
      free(l);
    }
    if (quotes % 2 == 0 || len > CLI_RECORD_MAX) return rec;
  }
}

static int read_header(cli_input_t *in, char *err, size_t errlen) {
  long start = 0;
  char *rec = read_csv_record(in, &start);
  char **f = NULL;
  size_t nf = 0;
  if (rec == NULL) return 0; /* empty file: no events */
  if (cli_csv_split(rec, &f, &nf, err, errlen) != 0) {
    char inner[CP_ERRLEN];
    snprintf(inner, sizeof inner, "%s", err);
    cp_err(err, errlen, "%s: line %ld (header): %s", in->name, start, inner);
    goto err;
  }
  in->cols = cp_xcalloc(nf, sizeof *in->cols);
  in->col_known = cp_xcalloc(nf, sizeof *in->col_known);
  in->ncols = nf;
  size_t nknown = 0, iglen = 0;
  for (size_t i = 0; i < nf; i++) {
    in->cols[i] = cp_strdup(trim(f[i]));
    for (size_t j = 0; j < i; j++)
      if (in->cols[i][0] && strcmp(in->cols[i], in->cols[j]) == 0) {
        cp_err(err, errlen, "%s: line %ld (header): column \"%.64s\" appears twice", in->name, start,
               in->cols[i]);
        goto err;
      }
    in->col_known[i] = cli_event_field_known(in->cols[i]);
    nknown += in->col_known[i];
    if (!in->col_known[i]) iglen += strlen(in->cols[i]) + 1;
  }
  if (nknown == 0) {
    cp_err(err, errlen, "%s: line %ld: the header row names no event fields (expected columns "
           "such as provider_event_id,ni_number,qualification_code,completion_date)", in->name, start);
    goto err;
  }
  in->ignored = cp_xcalloc(iglen + 1, 1);
  for (size_t i = 0; i < nf; i++) {
    if (in->col_known[i]) continue;
    if (in->ignored[0]) strcat(in->ignored, ",");
    strcat(in->ignored, in->cols[i]);
  }
  cli_csv_free(&f, nf);
  free(rec);
  return 0;
err:
  cli_csv_free(&f, nf);
  free(rec);
  return -1;
}

int cli_input_from_stream(FILE *fp, const char *name, cli_format_t fmt, cli_input_t **out,
                          char *err, size_t errlen) {
  cli_input_t *in = cp_xcalloc(1, sizeof *in);
  in->fp = fp;
  in->name = cp_strdup(name);
  in->fmt = fmt;
  struct stat st;
  if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode)) in->total = st.st_size;
  if (in->fmt == CLI_FMT_AUTO) {
    if (ends_with(name, ".ndjson") || ends_with(name, ".jsonl"))
      in->fmt = CLI_FMT_NDJSON;
    else if (ends_with(name, ".csv"))
      in->fmt = CLI_FMT_CSV;
    else
      sniff(in);
  }
  if (in->fmt == CLI_FMT_CSV && read_header(in, err, errlen) != 0) {
    cli_input_destroy(&in);
    return -1;
  }
  if (in->ignored == NULL) in->ignored = cp_strdup("");
  *out = in;
  return 0;
}

int cli_input_open(const char *path, cli_format_t fmt, cli_input_t **out, char *err, size_t errlen) {
  FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (fp == NULL) return cp_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
  return cli_input_from_stream(fp, strcmp(path, "-") == 0 ? "<stdin>" : path, fmt, out, err, errlen);
}

static int next_csv(cli_input_t *in, cli_event_t *ev, char *err, size_t errlen) {
  long start = in->line + 1;
  char *rec = read_csv_record(in, &start);
  char **f = NULL;
  size_t nf = 0;
  int rc = -1;
  if (rec == NULL) return ferror(in->fp) ? -2 : 0;
  ev->line = start;
  if (in->ncols == 0) { /* no header (empty file) */
    cp_err(err, errlen, "no header row");
    goto out;
  }
  if (strlen(rec) > CLI_RECORD_MAX) {
    cp_err(err, errlen, "record longer than %d bytes", CLI_RECORD_MAX);
    goto out;
  }
  if (cli_csv_split(rec, &f, &nf, err, errlen) != 0) goto out;
  if (nf != in->ncols) {
    cp_err(err, errlen, "%zu fields, but the header has %zu columns", nf, in->ncols);
    goto out;
  }
  for (size_t i = 0; i < nf; i++) {
    if (!in->col_known[i]) continue;
    char inner[CP_ERRLEN];
    if (cli_event_set(ev, in->cols[i], f[i], inner, sizeof inner) < 0) {
      cp_err(err, errlen, "%s", inner);
      goto out;
    }
  }
  rc = 1;
out:
  cli_csv_free(&f, nf);
  free(rec);
  return rc;
}

static int next_ndjson(cli_input_t *in, cli_event_t *ev, char *err, size_t errlen) {
  for (;;) {
    char *l = read_line(in);
    if (l == NULL) return ferror(in->fp) ? -2 : 0;
    ev->line = in->line;
    if (is_blank(l)) { free(l); continue; }
    int rc = 1;
    if (strlen(l) > CLI_RECORD_MAX) rc = cp_err(err, errlen, "line longer than %d bytes", CLI_RECORD_MAX);
    else if (cli_ndjson_parse_line(l, ev, err, errlen) != 0) rc = -1;
    free(l);
    return rc;
  }
}

int cli_input_next(cli_input_t *in, cli_event_t *ev, char *err, size_t errlen) {
  cli_event_clear(ev);
  int rc = in->fmt == CLI_FMT_CSV ? next_csv(in, ev, err, errlen) : next_ndjson(in, ev, err, errlen);
  if (rc == -2) cp_err(err, errlen, "reading %s: %s", in->name, strerror(errno));
  if (rc != 1) {
    long line = ev->line;
    cli_event_clear(ev);
    ev->line = line;
  }
  return rc;
}

cli_format_t cli_input_format(const cli_input_t *in) { return in->fmt; }

void cli_input_progress(const cli_input_t *in, long long *done, long long *total) {
  *done = in->done;
  *total = in->total;
}

const char *cli_input_ignored_columns(const cli_input_t *in) { return in->ignored; }

void cli_input_destroy(cli_input_t **inp) {
  if (inp == NULL || *inp == NULL) return;
  cli_input_t *in = *inp;
  if (in->fp != NULL && in->fp != stdin) fclose(in->fp);
  for (size_t i = 0; i < in->ncols; i++) free(in->cols[i]);
  free(in->cols);
  free(in->col_known);
  free(in->ignored);
  free(in->pushback);
  free(in->name);
  free(in);
  *inp = NULL;
}
