/* cli.h -- the carepass command-line tool: commands, shared option helpers and
 * the CSV / NDJSON event readers used by `carepass submit`. */
#ifndef CP_CLI_H
#define CP_CLI_H

#include <stdio.h>
#include "cp_roles.h"
#include "cp_util.h"
#include "carepass/v1/event.pb-c.h"

/* Exit codes of every command. */
enum {
  CLI_EXIT_OK = 0,       // done (submit: every event answered, even if some were rejected)
  CLI_EXIT_FAIL = 1,     // the work failed (transport, file, check failed)
  CLI_EXIT_USAGE = 2,    // bad command line or configuration
  CLI_EXIT_NOT_READY = 3, // verify/passport --role: every check passed, but not ready for the role
};

/* Print the readiness of records for role on day (cli_role.c): the verdict, each requirement with
 * the record that meets it or what is missing, expired or pending, and the rule's basis. */
#include "cp_roles.h"
void cli_role_print(FILE *out, const cat_catalogue_t *cat, const role_t *role, const role_record_t *recs, size_t n,
                    int32_t day, int32_t started, role_answer_t *answer);
/* The worker's keyed pseudonym from an NI number (normalised; keyed with PSEUDONYM_SECRET; the
 * number is never echoed). CLI_EXIT_OK, or the exit status with the reason printed. */
int cli_worker_pseudonym(const char *cmd, const char *ni, unsigned char out[32]) CP_WUR;
/* Open the subject key store (SUBJECT_KEYS) when it exists, flags as cp_subject_store_open; 0 with
 * *st NULL when there is none (a format-1 register); -1 with the reason printed. */
#include "cp_subject.h"
int cli_subjects_open(const char *cmd, unsigned flags, cp_subject_store_t **st) CP_WUR;
/* Load data/roles.json (CAREPASS_ROLES) against cat and find id; NULL with the reason printed. */
roles_t *cli_roles_load(const char *cmd, const cat_catalogue_t *cat, const char *id, const role_t **role);

/* Write the authentic records recs[0..n) of a verified passport (role_record_t, cmd_verify.c) as an
 * ASC-WDS training bulk-upload file (common/cp_ascwds.h) to the file out, for workplace
 * estid and worker workerid; revoked records (whenever revoked), qualifications and codes without
 * a checked category are left out and named on stderr. CLI_EXIT_OK or the exit status, reason
 * printed. */
int cli_ascwds_write(const char *out, const char *estid, const char *workerid, const cat_catalogue_t *cat,
                     const role_record_t *recs, size_t n, const char *origin) CP_WUR;

/* Reason code for an input line that could not be parsed (local to the CLI). */
#define CLI_R_MALFORMED_LINE "MALFORMED_LINE"

/* ---- commands (cmd_<name>.c); each gets argv[0] = command name ---- */
int cmd_keygen(int argc, char **argv);
int cmd_registry_keys(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_passport(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_rotate_key(int argc, char **argv);
int cmd_leave(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_proof(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_reindex(int argc, char **argv);
int cmd_webhooks(int argc, char **argv);
int cmd_webhook_secret(int argc, char **argv);
int cmd_provider_token(int argc, char **argv);
int cmd_worker_token(int argc, char **argv);
int cmd_employer_token(int argc, char **argv);
int cmd_token(int argc, char **argv);

/* ---- proofs and offline verification (cmd_proof.c, cmd_verify.c) ---- */
struct reg_log;
/* Write text to path atomically (mode 0644), or to stdout when path is NULL; prints the error. */
int cli_write_output(const char *cmd, const char *path, const char *text, size_t len) CP_WUR;
/* Indexes (ascending, malloc'd) of the key entries of the register: its key history. */
int cli_key_entries(struct reg_log *log, uint64_t **indexes, size_t *n, char *err, size_t errlen) CP_WUR;

/* ---- shared helpers (cli_util.c) ---- */
/* Print "carepass <cmd>: <message>" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) CP_PRINTF(2, 3);
/* Is argv[i] "--help" or "-h"? */
bool cli_is_help(const char *arg);
/* Load the CLI configuration (CP_SVC_CLI); on failure print and return -1. */
int cli_config(const char *cmd) CP_WUR;
/* Parse a decimal in [min, max]; 0 / -1. */
int cli_parse_long(const char *s, long min, long max, long *out) CP_WUR;
/* Make a token of kind for subject valid for lifetime_s from now with the deployment secret
 * ($CAREPASS_TOKEN_SECRET, created if missing), print it on stdout and its id and expiry on
 * stderr ("token id: ..."), and wipe it: the one way provider-token and employer-token issue a
 * token. CLI_EXIT_OK, or the exit status with the reason printed (the subject is the caller's
 * checked registry id, so it may be named). */
#include "cp_token.h"
int cli_token_print(const char *cmd, cp_token_kind_t kind, const char *subject, int64_t lifetime_s) CP_WUR;
/* The command line of a token command "CMD ID [--days N]" (provider-token, employer-token): *id and
 * *days (default_days unless given, 1..max_days). -1 when the caller goes on; else the exit status,
 * with the help (help_fn) or the error printed. */
int cli_token_args(const char *cmd, int argc, char **argv, const char *id_name, long default_days, long max_days,
                   void (*help_fn)(FILE *out), const char **id, long *days);
/* Read the first Z85 CurveZMQ key (40 chars of the Z85 alphabet) found in the
 * file at path: a ".pub" file, or a key-pair file written by cp_curve_load (its
 * public key is the first one). */
int cli_read_z85_key(const char *path, char out[41], char *err, size_t errlen) CP_WUR;

/* ---- event input (input_*.c) ---- */

/* Input formats of `carepass submit`. */
typedef enum {
  CLI_FMT_AUTO = 0,   // sniff: extension .ndjson/.jsonl/.csv, else the first non-blank byte
  CLI_FMT_CSV,        // header row of proto field names, RFC 4180 quoting
  CLI_FMT_NDJSON,     // one JSON object per line
} cli_format_t;

/* One event read from a file, in the shape of the wire message. */
typedef struct {
  Carepass__V1__CompletionEvent pb;  // the event; its strings and evidence_hash.data are malloc'd and owned here
  long line;                       // 1-based line number where the event starts in the file
} cli_event_t;

/* Initialise ev as an empty completion event (all strings ""). */
void cli_event_init(cli_event_t *ev);
/* Free the strings of ev and re-initialise it. A cli_event_t may be copied by
 * value (it holds no pointer into itself); exactly one copy is cleared. */
void cli_event_clear(cli_event_t *ev);

/* Set one field of ev by its proto field name from text (CSV cell or JSON
 * string). Returns 0, 1 when the name is not a known field (ignored), or -1
 * with err set when the value is invalid (bad hex, unknown kind). */
int cli_event_set(cli_event_t *ev, const char *field, const char *value, char *err,
                  size_t errlen) CP_WUR;

/* Is name one of CompletionEvent's field names? */
bool cli_event_field_known(const char *name);
/* Decode exactly 64 hex digits into 32 bytes; 0 / -1. */
int cli_hex32(const char *hex, uint8_t out[32]) CP_WUR;

/* Parse one NDJSON line (a JSON object) into ev; -1 with err set if malformed. */
int cli_ndjson_parse_line(const char *line, cli_event_t *ev, char *err, size_t errlen) CP_WUR;

/* Split one CSV record from `text` (RFC 4180: quoted fields, "" inside quotes,
 * newlines inside quotes). Fields are malloc'd into *fields (caller frees with
 * cli_csv_free). Returns 0, or -1 with err set on an unterminated quote or a
 * stray quote inside an unquoted field. */
int cli_csv_split(const char *text, char ***fields, size_t *nfields, char *err,
                  size_t errlen) CP_WUR;
void cli_csv_free(char ***fields, size_t nfields);

/* A streaming reader over a file of events. */
typedef struct cli_input cli_input_t;

/* Open path ("-" = stdin) in format fmt (CLI_FMT_AUTO sniffs). For CSV the
 * header row is read and checked here. */
int cli_input_open(const char *path, cli_format_t fmt, cli_input_t **out, char *err,
                   size_t errlen) CP_WUR;
/* Read from an open stream (takes ownership of fp; used by tests with fmemopen). */
int cli_input_from_stream(FILE *fp, const char *name, cli_format_t fmt, cli_input_t **out,
                          char *err, size_t errlen) CP_WUR;
/* Next event: 1 = *ev filled, 0 = end of input, -1 = the record starting at
 * ev->line is malformed (err says why; reading can continue), -2 = I/O error. */
int cli_input_next(cli_input_t *in, cli_event_t *ev, char *err, size_t errlen) CP_WUR;
/* The format being read (after sniffing). */
cli_format_t cli_input_format(const cli_input_t *in);
/* Bytes consumed so far and total size (0 when unknown, e.g. a pipe): for progress. */
void cli_input_progress(const cli_input_t *in, long long *done, long long *total);
/* Columns of the CSV header that are not event fields (ignored), comma-separated, or "". */
const char *cli_input_ignored_columns(const cli_input_t *in);
void cli_input_destroy(cli_input_t **in);

#endif
