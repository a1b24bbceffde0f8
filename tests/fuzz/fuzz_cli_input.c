/* fuzz_cli_input.c -- the event files `carepass submit` reads (tools/carepass/input_*.c): the
 * CSV reader (header, RFC 4180 records, cells into events) and the NDJSON reader, through the
 * same cli_input_from_stream / cli_input_next loop as cmd_submit.c, plus cli_csv_split on its own.
 * Input: one byte choosing the format (0 sniff, 1 CSV, 2 NDJSON; others sniff), then the file. */
#include "cli.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    inited = true;
  }
  if (size < 1) return 0;
  cli_format_t fmt = data[0] == 1 ? CLI_FMT_CSV : data[0] == 2 ? CLI_FMT_NDJSON : CLI_FMT_AUTO;
  const char *name = data[0] == 3 ? "events.csv" : data[0] == 4 ? "events.ndjson" : "events";
  char err[CP_ERRLEN];
  /* the file as cli_input_open gets it: a regular file (a memfd), read as a stream */
  static fuzz_file_t file = {-1, ""};
  FILE *fp = fopen(fuzz_file_put(&file, data + 1, size - 1), "r");
  if (fp == NULL) abort();
  cli_input_t *in = NULL;
  if (cli_input_from_stream(fp, name, fmt, &in, err, sizeof err) == 0) {
    for (int k = 0; k < 100000; k++) {
      cli_event_t ev;
      cli_event_init(&ev);
      int rc = cli_input_next(in, &ev, err, sizeof err);
      cli_event_clear(&ev);
      if (rc == 0) break; /* the end; -1 = a bad record, the reader goes on to the next */
    }
    long long done = 0, total = 0;
    cli_input_progress(in, &done, &total);
    (void)cli_input_ignored_columns(in);
    cli_input_destroy(&in);
  }
  /* one CSV record split on its own (the text must be a C string) */
  char *text = cp_xmalloc(size);
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';
  char **fields = NULL;
  size_t nfields = 0;
  if (cli_csv_split(text, &fields, &nfields, err, sizeof err) == 0) cli_csv_free(&fields, nfields);
  free(text);
  return 0;
}
