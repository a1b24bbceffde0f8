/* cmd_submit.c -- `carepass submit`: stream events from a CSV / NDJSON file to intake over CurveZMQ, pipelined. */
#include "cli.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "cp_codec.h"
#include "cp_config.h"
#include "cp_crypto.h"

#define SUBMIT_DEFAULT_BATCH 500
#define SUBMIT_DEFAULT_INFLIGHT 8
#define SUBMIT_DEFAULT_TIMEOUT_S 60
#define SUBMIT_MAX_INFLIGHT 64
#define SUBMIT_REPLY_MAX (256LL * 1024 * 1024) /* largest reply frame accepted */
#define SUBMIT_POLL_MS 100
#define SUBMIT_PROGRESS_MS 100

/* Options of one submit run. */
typedef struct {
  const char *file;         // input file ("-" = stdin)
  const char *provider_key; // provider's CurveZMQ key pair file
  const char *server_key;   // intake's public key file
  const char *endpoint;     // intake endpoint
  const char *provider;     // filled into events with an empty provider_id (NULL = none)
  long batch;               // events per request
  long inflight;            // requests in flight at once
  long timeout_s;           // seconds without an answer before giving up
  Carepass__V1__AckLevel ack; // ack level asked for
  cli_format_t fmt;         // input format (AUTO = sniff)
  bool quiet;               // no per-event lines
  bool json;                // per-event lines as JSON objects
} submit_opts_t;

/* One request sent and not yet answered. */
typedef struct {
  bool used;                // slot holds a request
  char request_id[32];      // id echoed by intake
  cli_event_t *events;      // the batch's events (owned)
  size_t n;                 // number of events
  int64_t deadline_ms;      // monotonic ms after which intake is declared silent
} slot_t;

/* Count of rejections for one reason code. */
typedef struct {
  char code[48];            // reason code
  uint64_t count;           // events rejected with it
} reason_count_t;

/* Totals and output state of the run. */
typedef struct {
  const submit_opts_t *o;   // options
  uint64_t total;           // events read (including malformed lines)
  uint64_t sent;            // events sent to intake
  uint64_t answered;        // events with an answer (including local rejections)
  uint64_t committed;       // outcome committed
  uint64_t accepted;        // outcome accepted (not final yet)
  uint64_t rejected;        // outcome rejected (intake, verify or local)
  uint64_t unanswered;      // events intake replied to without an answer for them
  reason_count_t *reasons;  // rejections by reason code
  size_t nreasons;          // entries in reasons
  bool progress;            // draw a progress bar on stderr
  bool bar_drawn;           // a progress bar is on the terminal now
  int64_t bar_ms;           // monotonic ms of the last redraw
  cli_input_t *in;          // the input (for progress)
} submit_run_t;

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass submit FILE --provider-key KEYFILE [options]\n\n"
          "Send completion / revocation events to intake and print what happened to\n"
          "each. FILE is CSV (a header row of field names: provider_event_id,provider_id,\n"
          "ni_number,qualification_code,completion_date,assessor_id,evidence_hash,kind,\n"
          "revokes_event_id,revocation_reason) or NDJSON (.ndjson/.jsonl, or sniffed);\n"
          "\"-\" reads stdin. evidence_hash is 64 hex digits; kind is completion or\n"
          "revocation. A line that cannot be parsed is reported with its line number and\n"
          "counted as rejected (MALFORMED_LINE); the others are still sent.\n\n"
          "  --provider-key FILE  the provider's CurveZMQ key pair (carepass keygen)\n"
          "  --server-key FILE    intake's public key (default $CAREPASS_INTAKE_CURVE_KEY.pub)\n"
          "  --endpoint EP        intake endpoint (default $CAREPASS_INTAKE_ENDPOINT)\n"
          "  --provider ID        provider id for events whose provider_id is empty\n"
          "  --batch N            events per request (default %d, at most $CAREPASS_MAX_BATCH)\n"
          "  --ack LEVEL          accepted or committed (default committed)\n"
          "  --inflight N         requests in flight at once (default %d, 1..%d)\n"
          "  --timeout S          give up when intake has not answered for S seconds (default %d)\n"
          "  --format F           csv or ndjson (default: by extension, else sniffed)\n"
          "  --quiet              no per-event lines, only the summary\n"
          "  --json               one JSON object per event on stdout (summary on stderr)\n\n"
          "Per-event lines (tab-separated): provider_event_id, outcome, reason code (- when\n"
          "none), then the message, or \"index N\" for a committed entry.\n"
          "Exit status: 0 when every event was answered (even if some were rejected),\n"
          "1 on a transport failure or missing answers, 2 on a usage error.\n",
          SUBMIT_DEFAULT_BATCH, SUBMIT_DEFAULT_INFLIGHT, SUBMIT_MAX_INFLIGHT, SUBMIT_DEFAULT_TIMEOUT_S);
}

/* ---- output ---- */

static void bar_clear(submit_run_t *r) {
  if (!r->bar_drawn) return;
  fputs("\r\033[K", stderr);
  r->bar_drawn = false;
}

static void bar_draw(submit_run_t *r, bool force) {
  if (!r->progress) return;
  int64_t now = cp_mono_ms();
  if (!force && now - r->bar_ms < SUBMIT_PROGRESS_MS) return;
  r->bar_ms = now;
  long long done = 0, total = 0;
  cli_input_progress(r->in, &done, &total);
  char bar[32];
  int pct = total > 0 ? (int)(done * 100 / total) : -1;
  int fill = pct < 0 ? 0 : pct * 30 / 100;
  for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '-';
  bar[30] = '\0';
  if (pct >= 0)
    fprintf(stderr, "\r\033[K[%s] %3d%%  read %llu  answered %llu", bar, pct,
            (unsigned long long)r->total, (unsigned long long)r->answered);
  else
    fprintf(stderr, "\r\033[Kread %llu  answered %llu", (unsigned long long)r->total,
            (unsigned long long)r->answered);
  fflush(stderr);
  r->bar_drawn = true;
}

static void count_reason(submit_run_t *r, const char *code) {
  for (size_t i = 0; i < r->nreasons; i++)
    if (strcmp(r->reasons[i].code, code) == 0) {
      r->reasons[i].count++;
      return;
    }
  reason_count_t *v = realloc(r->reasons, (r->nreasons + 1) * sizeof *v);
  if (v == NULL) abort();
  r->reasons = v;
  snprintf(v[r->nreasons].code, sizeof v[r->nreasons].code, "%s", code);
  v[r->nreasons].count = 1;
  r->nreasons++;
}

/* Replace tabs and newlines so that one event stays one tab-separated line. */
static void one_line(const char *in, char *out, size_t outlen) {
  size_t j = 0;
  for (size_t i = 0; in[i] && j + 1 < outlen; i++)
    out[j++] = (in[i] == '\t' || in[i] == '\n' || in[i] == '\r') ? ' ' : in[i];
  out[j] = '\0';
}

static const char *outcome_name(Carepass__V1__Outcome o) {
  switch (o) {
  case CAREPASS__V1__OUTCOME__OUTCOME_ACCEPTED: return "accepted";
  case CAREPASS__V1__OUTCOME__OUTCOME_REJECTED: return "rejected";
  case CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED: return "committed";
  default: return "unspecified";
  }
}

/* Record and print the outcome of one event. line 0 = unknown. */
static void report(submit_run_t *r, long line, const char *event_id, Carepass__V1__Outcome outcome,
                   const char *reason, const char *message, uint64_t index) {
  r->answered++;
  switch (outcome) {
  case CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED: r->committed++; break;
  case CAREPASS__V1__OUTCOME__OUTCOME_ACCEPTED: r->accepted++; break;
  case CAREPASS__V1__OUTCOME__OUTCOME_REJECTED:
    r->rejected++;
    count_reason(r, reason && reason[0] ? reason : "UNSPECIFIED");
    break;
  default: r->unanswered++; r->answered--; break;
  }
  if (r->o->quiet) return;
  bar_clear(r);
  if (r->o->json) {
    json_t *o = json_object();
    if (line > 0) json_object_set_new(o, "line", json_integer(line));
    json_object_set_new(o, "provider_event_id", json_string(event_id ? event_id : ""));
    json_object_set_new(o, "outcome", json_string(outcome_name(outcome)));
    json_object_set_new(o, "reason_code", json_string(reason ? reason : ""));
    json_object_set_new(o, "message", json_string(message ? message : ""));
    if (outcome == CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED)
      json_object_set_new(o, "entry_index", json_integer((json_int_t)index));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (s != NULL) printf("%s\n", s);
    free(s);
    json_decref(o);
    return;
  }
  char id[160], msg[600];
  one_line(event_id && event_id[0] ? event_id : "-", id, sizeof id);
  if (outcome == CAREPASS__V1__OUTCOME__OUTCOME_COMMITTED)
    snprintf(msg, sizeof msg, "index %llu", (unsigned long long)index);
  else
    one_line(message && message[0] ? message : "-", msg, sizeof msg);
  printf("%s\t%s\t%s\t%s\n", id, outcome_name(outcome), reason && reason[0] ? reason : "-", msg);
}

static void print_summary(submit_run_t *r) {
  bar_clear(r);
  FILE *out = r->o->json ? stderr : stdout;
  fflush(stdout);
  fprintf(out, "summary: %llu events: %llu committed, %llu accepted, %llu rejected",
          (unsigned long long)r->total, (unsigned long long)r->committed,
          (unsigned long long)r->accepted, (unsigned long long)r->rejected);
  uint64_t missing = r->total - r->answered;
  if (missing > 0) fprintf(out, ", %llu without an answer", (unsigned long long)missing);
  fputc('\n', out);
  for (size_t i = 0; i < r->nreasons; i++)
    fprintf(out, "  rejected %-30s %llu\n", r->reasons[i].code, (unsigned long long)r->reasons[i].count);
  fflush(out);
}

/* ---- transport ---- */

static void slot_clear(slot_t *s) {
  for (size_t i = 0; i < s->n; i++) cli_event_clear(&s->events[i]);
  free(s->events);
  memset(s, 0, sizeof *s);
}

/* Send the batch in s as one SubmitRequest frame. */
static int send_batch(void *sock, const submit_opts_t *o, slot_t *s, char *err, size_t errlen) {
  Carepass__V1__SubmitRequest req = CAREPASS__V1__SUBMIT_REQUEST__INIT;
  Carepass__V1__CompletionEvent **evs = cp_xcalloc(s->n, sizeof *evs);
  for (size_t i = 0; i < s->n; i++) evs[i] = &s->events[i].pb;
  req.events = evs;
  req.n_events = s->n;
  req.ack = o->ack;
  req.request_id = s->request_id;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = cp_pb_pack(&req.base, &buf, &len);
  free(evs);
  if (rc != 0) return cp_err(err, errlen, "cannot encode the request");
  /* ZMQ_DONTWAIT never blocks here: the DEALER queues up to its HWM, far above our in-flight limit */
  if (zmq_send(sock, buf, len, 0) < 0) {
    int e = errno;
    free(buf);
    return cp_err(err, errlen, "zmq_send to %s: %s", o->endpoint, zmq_strerror(e));
  }
  free(buf);
  s->deadline_ms = cp_mono_ms() + o->timeout_s * 1000;
  return 0;
}

/* Handle one reply frame. Returns 0, or -1 if it answers no request in flight (ignored). */
static int handle_reply(submit_run_t *r, slot_t *slots, size_t nslots, const uint8_t *buf, size_t len,
                        size_t *inflight) {
  char err[CP_ERRLEN];
  Carepass__V1__SubmitReply *rep = (Carepass__V1__SubmitReply *)cp_pb_unpack(
      &carepass__v1__submit_reply__descriptor, buf, len, (size_t)SUBMIT_REPLY_MAX, err, sizeof err);
  if (rep == NULL) {
    bar_clear(r);
    cli_error("submit", "intake sent a reply that cannot be decoded (%s); ignored", err);
    return -1;
  }
  slot_t *s = NULL;
  for (size_t i = 0; i < nslots && s == NULL; i++)
    if (slots[i].used && strcmp(slots[i].request_id, rep->request_id) == 0) s = &slots[i];
  if (s == NULL) {
    bar_clear(r);
    cli_error("submit", "intake answered request \"%.40s\", which is not in flight; ignored", rep->request_id);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return -1;
  }
  if (rep->error_code != NULL && rep->error_code[0] != '\0') {
    for (size_t i = 0; i < s->n; i++)
      report(r, s->events[i].line, s->events[i].pb.provider_event_id,
             CAREPASS__V1__OUTCOME__OUTCOME_REJECTED, rep->error_code, rep->error_message, 0);
  } else {
    for (size_t i = 0; i < s->n; i++) {
      const Carepass__V1__EventReply *e = i < rep->n_replies ? rep->replies[i] : NULL;
      if (e != NULL && strcmp(e->provider_event_id, s->events[i].pb.provider_event_id) != 0) e = NULL;
      if (e == NULL) {
        bar_clear(r);
        cli_error("submit", "line %ld: intake's reply has no answer for event \"%.64s\"", s->events[i].line,
                  s->events[i].pb.provider_event_id);
        r->unanswered++;
        continue;
      }
      report(r, s->events[i].line, e->provider_event_id, e->outcome, e->reason_code, e->message,
             e->entry_index);
    }
  }
  protobuf_c_message_free_unpacked(&rep->base, NULL);
  slot_clear(s);
  (*inflight)--;
  return 0;
}

/* Read the next batch of up to o->batch events into s (malformed lines are
 * reported on the way). Returns 1 with a batch, 0 at end of input, -1 on I/O error. */
static int read_batch(submit_run_t *r, slot_t *s, unsigned *seq, bool *eof) {
  const submit_opts_t *o = r->o;
  s->events = cp_xcalloc((size_t)o->batch, sizeof *s->events);
  s->n = 0;
  while (s->n < (size_t)o->batch) {
    cli_event_t *ev = &s->events[s->n];
    cli_event_init(ev);
    char err[CP_ERRLEN];
    int rc = cli_input_next(r->in, ev, err, sizeof err);
    if (rc == 0) { *eof = true; break; }
    if (rc == -2) {
      bar_clear(r);
      cli_error("submit", "%s", err);
      slot_clear(s);
      return -1;
    }
    r->total++;
    if (rc == -1) {
      char id[32], msg[CP_ERRLEN + 32];
      snprintf(id, sizeof id, "line:%ld", ev->line);
      snprintf(msg, sizeof msg, "line %ld: %s", ev->line, err);
      bar_clear(r);
      fprintf(stderr, "carepass submit: %s: %s\n", o->file, msg);
      report(r, ev->line, id, CAREPASS__V1__OUTCOME__OUTCOME_REJECTED, CLI_R_MALFORMED_LINE, msg, 0);
      cli_event_clear(ev);
      continue;
    }
    if (o->provider != NULL && ev->pb.provider_id[0] == '\0') {
      char ignored[8];
      if (cli_event_set(ev, "provider_id", o->provider, ignored, sizeof ignored) != 0) abort();
    }
    s->n++;
  }
  if (s->n == 0) {
    slot_clear(s);
    return 0;
  }
  s->used = true;
  snprintf(s->request_id, sizeof s->request_id, "cli-%ld-%u", (long)getpid(), ++*seq);
  r->sent += s->n;
  return 1;
}

/* The submit loop: keep up to o->inflight requests out, read replies, stop at
 * end of input when everything is answered. Returns an exit code. */
static int submit_loop(submit_run_t *r, void *sock) {
  const submit_opts_t *o = r->o;
  slot_t slots[SUBMIT_MAX_INFLIGHT];
  memset(slots, 0, sizeof slots);
  size_t inflight = 0;
  unsigned seq = 0;
  bool eof = false;
  int rc = CLI_EXIT_OK;
  char err[CP_ERRLEN];
  while (!eof || inflight > 0) {
    while (!eof && inflight < (size_t)o->inflight) {
      slot_t *s = NULL;
      for (size_t i = 0; i < (size_t)o->inflight && s == NULL; i++)
        if (!slots[i].used) s = &slots[i];
      assert(s != NULL);
      int b = read_batch(r, s, &seq, &eof);
      if (b < 0) { rc = CLI_EXIT_FAIL; goto out; }
      if (b == 0) break;
      if (send_batch(sock, o, s, err, sizeof err) != 0) {
        bar_clear(r);
        cli_error("submit", "%s", err);
        rc = CLI_EXIT_FAIL;
        goto out;
      }
      inflight++;
      bar_draw(r, false);
    }
    if (inflight == 0) break;
    zmq_pollitem_t pi = {.socket = sock, .events = ZMQ_POLLIN};
    int n = zmq_poll(&pi, 1, SUBMIT_POLL_MS);
    if (n < 0) {
      if (errno == EINTR) continue;
      cli_error("submit", "zmq_poll: %s", zmq_strerror(errno));
      rc = CLI_EXIT_FAIL;
      goto out;
    }
    while (n > 0) {
      zmq_msg_t m;
      zmq_msg_init(&m);
      if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        break;
      }
      /* intake answers a DEALER with exactly one frame; drop anything that is not that */
      bool more = zmq_msg_more(&m);
      if (!more && handle_reply(r, slots, (size_t)o->inflight, zmq_msg_data(&m), zmq_msg_size(&m),
                                &inflight) == 0) {
        /* intake is alive and answering: give the others a fresh deadline */
        int64_t d = cp_mono_ms() + o->timeout_s * 1000;
        for (size_t i = 0; i < (size_t)o->inflight; i++)
          if (slots[i].used && slots[i].deadline_ms < d) slots[i].deadline_ms = d;
      }
      zmq_msg_close(&m);
      while (more) { /* drain a multipart message */
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) { zmq_msg_close(&m); break; }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
      }
    }
    bar_draw(r, false);
    int64_t now = cp_mono_ms();
    for (size_t i = 0; i < (size_t)o->inflight; i++)
      if (slots[i].used && now > slots[i].deadline_ms) {
        bar_clear(r);
        cli_error("submit", "no answer from intake at %s within %ld s — is it running, and is your "
                  "key registered?", o->endpoint, o->timeout_s);
        rc = CLI_EXIT_FAIL;
        goto out;
      }
  }
  if (r->unanswered > 0) rc = CLI_EXIT_FAIL;
out:
  for (size_t i = 0; i < SUBMIT_MAX_INFLIGHT; i++)
    if (slots[i].used) slot_clear(&slots[i]);
  return rc;
}

static void *open_dealer(void *ctx, const submit_opts_t *o, const char *pub, const char *sec,
                         const char *server, char *err, size_t errlen) {
  void *s = zmq_socket(ctx, ZMQ_DEALER);
  if (s == NULL) {
    cp_err(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
    return NULL;
  }
  int linger = 0, hwm = 100000;
  int64_t maxmsg = SUBMIT_REPLY_MAX;
  if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
      zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
      zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
      zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
      zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 40) != 0 ||
      zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40) != 0 ||
      zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40) != 0) {
    cp_err(err, errlen, "zmq_setsockopt: %s", zmq_strerror(errno));
    zmq_close(s);
    return NULL;
  }
  if (zmq_connect(s, o->endpoint) != 0) {
    cp_err(err, errlen, "zmq_connect %s: %s", o->endpoint, zmq_strerror(errno));
    zmq_close(s);
    return NULL;
  }
  return s;
}

static int usage_error(const char *fmt, ...) CP_PRINTF(1, 2);
static int usage_error(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cli_error("submit", "%s", msg);
  fprintf(stderr, "(carepass submit --help shows the options)\n");
  return CLI_EXIT_USAGE;
}

int cmd_submit(int argc, char **argv) {
  submit_opts_t o = {.batch = SUBMIT_DEFAULT_BATCH, .inflight = SUBMIT_DEFAULT_INFLIGHT,
                     .timeout_s = SUBMIT_DEFAULT_TIMEOUT_S,
                     .ack = CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_COMMITTED};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (cli_is_help(a)) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) { o.quiet = true; continue; }
    if (strcmp(a, "--json") == 0) { o.json = true; continue; }
    if (a[0] == '-' && a[1] == '-') {
      if (v == NULL) return usage_error("%s needs a value", a);
      i++;
      if (strcmp(a, "--provider-key") == 0) o.provider_key = v;
      else if (strcmp(a, "--server-key") == 0) o.server_key = v;
      else if (strcmp(a, "--endpoint") == 0) o.endpoint = v;
      else if (strcmp(a, "--provider") == 0) o.provider = v;
      else if (strcmp(a, "--batch") == 0) {
        if (cli_parse_long(v, 1, 1000000, &o.batch) != 0) return usage_error("--batch %s is not a positive number", v);
      } else if (strcmp(a, "--inflight") == 0) {
        if (cli_parse_long(v, 1, SUBMIT_MAX_INFLIGHT, &o.inflight) != 0)
          return usage_error("--inflight %s is not a number in 1..64", v);
      } else if (strcmp(a, "--timeout") == 0) {
        if (cli_parse_long(v, 1, 86400, &o.timeout_s) != 0)
          return usage_error("--timeout %s is not a number of seconds in 1..86400", v);
      } else if (strcmp(a, "--ack") == 0) {
        if (strcmp(v, "accepted") == 0) o.ack = CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_ACCEPTED;
        else if (strcmp(v, "committed") == 0) o.ack = CAREPASS__V1__ACK_LEVEL__ACK_LEVEL_COMMITTED;
        else return usage_error("--ack %s: use accepted or committed", v);
      } else if (strcmp(a, "--format") == 0) {
        if (strcmp(v, "csv") == 0) o.fmt = CLI_FMT_CSV;
        else if (strcmp(v, "ndjson") == 0 || strcmp(v, "jsonl") == 0) o.fmt = CLI_FMT_NDJSON;
        else return usage_error("--format %s: use csv or ndjson", v);
      } else {
        return usage_error("unknown option %s", a);
      }
      continue;
    }
    if (o.file != NULL && strcmp(a, "-") != 0) return usage_error("unexpected argument \"%s\" (one FILE only)", a);
    o.file = a;
  }
  if (o.file == NULL) return usage_error("%s", "FILE is required");
  if (o.provider_key == NULL) return usage_error("%s", "--provider-key KEYFILE is required");
  if (cli_config("submit") != 0) return CLI_EXIT_USAGE;
  long max_batch = (long)cp_cfg_int(CP_OPT_MAX_BATCH);
  if (o.batch > max_batch) {
    return usage_error("--batch %ld is larger than CAREPASS_MAX_BATCH (%ld)", o.batch, max_batch);
  }
  if (o.endpoint == NULL) o.endpoint = cp_cfg_str(CP_OPT_INTAKE_ENDPOINT);
  char server_path[4200];
  if (o.server_key == NULL) {
    snprintf(server_path, sizeof server_path, "%s.pub", cp_cfg_str(CP_OPT_INTAKE_CURVE_KEY));
    o.server_key = server_path;
  }

  int rc = CLI_EXIT_FAIL;
  char err[CP_ERRLEN], pub[41], sec[41], server[41];
  void *ctx = NULL, *sock = NULL;
  submit_run_t r = {.o = &o};
  if (cp_curve_load(o.provider_key, false, pub, sec, err, sizeof err) != 0) {
    cli_error("submit", "provider key: %s", err);
    return CLI_EXIT_FAIL;
  }
  if (cli_read_z85_key(o.server_key, server, err, sizeof err) != 0) {
    cli_error("submit", "intake's public key: %s", err);
    goto out;
  }
  if (cli_input_open(o.file, o.fmt, &r.in, err, sizeof err) != 0) {
    cli_error("submit", "%s", err);
    goto out;
  }
  if (cli_input_ignored_columns(r.in)[0] != '\0')
    fprintf(stderr, "carepass submit: %s: ignoring columns that are not event fields: %s\n", o.file,
            cli_input_ignored_columns(r.in));
  r.progress = isatty(STDERR_FILENO) && !o.quiet;
  ctx = zmq_ctx_new();
  if (ctx == NULL) {
    cli_error("submit", "zmq_ctx_new: %s", zmq_strerror(errno));
    goto out;
  }
  sock = open_dealer(ctx, &o, pub, sec, server, err, sizeof err);
  if (sock == NULL) {
    cli_error("submit", "%s", err);
    goto out;
  }
  sodium_memzero(sec, sizeof sec);
  rc = submit_loop(&r, sock);
  print_summary(&r);
out:
  sodium_memzero(sec, sizeof sec);
  if (sock != NULL) zmq_close(sock);
  if (ctx != NULL) zmq_ctx_term(ctx);
  cli_input_destroy(&r.in);
  free(r.reasons);
  return rc;
}
