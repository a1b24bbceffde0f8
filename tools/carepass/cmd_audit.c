/* cmd_audit.c -- `carepass audit`: audit a whole register (a directory or a tlog-tiles URL) with the
 * register library's audit (reg_audit_run, common/register_audit.c); here: arguments, HTTP, output. */
#include "cli.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cp_regkeys.h"
#include "cp_register.h"

#define AUDIT_HTTP_TIMEOUT_S 30L      /* per-request timeout for URLs */

/* ---- a mirror over HTTP(S) as the audit's file source ------------------------ */

/* An HTTP(S) base URL. */
typedef struct {
  const char *url;     // base URL without trailing '/'
  CURL *curl;          // reused handle (keep-alive)
} http_src_t;

/* libcurl write callback state: the body goes straight into the audit's buffer. */
typedef struct {
  uint8_t **buf;  // the caller's buffer (grown)
  size_t *cap;    // its size
  size_t len;     // bytes in it
  size_t max;     // refuse more than this
  bool over;      // the body exceeded max
} body_t;

static size_t body_write(char *p, size_t sz, size_t nm, void *arg) {
  body_t *b = arg;
  size_t n = sz * nm;
  if (b->len + n > b->max) {
    b->over = true;
    return 0;
  }
  if (*b->cap < b->len + n + 1) {
    uint8_t *nb = realloc(*b->buf, b->len + n + 1);
    if (nb == NULL) abort();
    *b->buf = nb;
    *b->cap = b->len + n + 1;
  }
  memcpy(*b->buf + b->len, p, n);
  b->len += n;
  (*b->buf)[b->len] = '\0';
  return n;
}

/* reg_fetch_fn over HTTP: GET <url>/<rel>; a 404 is "missing". */
static int http_fetch(void *arg, const char *rel, size_t max, uint8_t **buf, size_t *cap, size_t *len, bool *missing,
                      char *err, size_t errlen) {
  http_src_t *s = arg;
  *len = 0;
  *missing = false;
  char url[4400];
  snprintf(url, sizeof url, "%s/%s", s->url, rel);
  body_t b = {buf, cap, 0, max, false};
  curl_easy_setopt(s->curl, CURLOPT_URL, url);
  curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, body_write);
  curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &b);
  CURLcode rc = curl_easy_perform(s->curl);
  long status = 0;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    if (b.over) return cp_err(err, errlen, "%s is larger than the limit of %zu bytes", url, max);
    return cp_err(err, errlen, "GET %s: %s", url, curl_easy_strerror(rc));
  }
  if (status == 404) {
    *missing = true;
    return cp_err(err, errlen, "GET %s: 404 (missing)", url);
  }
  if (status != 200) return cp_err(err, errlen, "GET %s: HTTP status %ld", url, status);
  if (*cap < 1) {
    *buf = cp_xcalloc(1, 1);
    *cap = 1;
  }
  (*buf)[b.len] = '\0';
  *len = b.len;
  return 0;
}

/* ---- output ------------------------------------------------------------------- */

/* What the audit reports to. */
typedef struct {
  const char *where;     // DIR_OR_URL as given
  bool progress;         // print progress (stderr is a TTY)
  double t0;             // walk start (monotonic s)
  double last_progress;  // when progress was last printed
} out_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_check(void *arg, reg_verdict_t v, const char *check, const char *why) {
  out_t *o = arg;
  if (o->progress) fprintf(stderr, "\r%60s\r", "");
  printf("%s: %s (%s)\n", check, v == REG_CHECK_PASSED ? "passed" : v == REG_CHECK_FAILED ? "failed" : "not established",
         why);
  fflush(stdout);
}

static void on_begin(void *arg, const char *origin, uint64_t size) {
  out_t *o = arg;
  printf("register %s: checkpoint %s, tree size %" PRIu64 "\n", o->where, origin, size);
  fflush(stdout);
  o->t0 = now_s();
}

static void on_progress(void *arg, uint64_t done, uint64_t size, bool last) {
  out_t *o = arg;
  if (!o->progress) return;
  double t = now_s();
  if (!last && t - o->last_progress < 0.5) return;
  o->last_progress = t;
  double rate = (double)done / (t - o->t0 > 1e-9 ? t - o->t0 : 1e-9);
  fprintf(stderr, "\raudited %" PRIu64 " / %" PRIu64 " entries (%.0f%%), %.0f entries/s   ", done, size,
          size ? 100.0 * (double)done / (double)size : 100.0, rate);
}

static void help(FILE *out) {
  fprintf(out,
          "usage: carepass audit DIR_OR_URL --vkey VKEY [--since CHECKPOINT_FILE]\n"
          "                      [--threads N] [--no-signatures]\n\n"
          "Audit a whole register: read every entry bundle (tlog-tiles layout, from a\n"
          "directory or an http(s):// base URL such as http://host:port/log), recompute\n"
          "the Merkle tree and compare every hash tile at every level, check every\n"
          "entry's Ed25519 signature with the key valid at its index (key history from\n"
          "the key entries of the log), the checkpoint root and signature (by VKEY or a\n"
          "later key the history chains to), and consistency with an earlier checkpoint.\n"
          "Progress on stderr when it is a terminal; entries/s at the end.\n"
          "Exit status 0 only when every check passed.\n\n"
          "  --vkey VKEY        verifier key: a file holding it, or the vkey text\n"
          "  --since FILE       an earlier checkpoint note: prove the log only grew from it\n"
          "  --threads N        hashing and signature-verification threads (default: online CPUs)\n"
          "  --no-signatures    check the tree only (a mirror's quick check)\n");
}

/* --vkey: a file holding it, or the text. */
static int read_vkey(const char *arg, char *out, size_t outlen, char *err, size_t errlen) {
  struct stat st;
  if (stat(arg, &st) != 0) {
    if (snprintf(out, outlen, "%s", arg) >= (int)outlen) return cp_err(err, errlen, "verifier key too long");
    return 0;
  }
  uint8_t *b = NULL;
  size_t l = 0;
  if (cp_read_file(arg, 64 * 1024, &b, &l, err, errlen) != 0) return -1;
  char *nl = strpbrk((char *)b, "\r\n");
  if (nl != NULL) *nl = '\0';
  int rc = snprintf(out, outlen, "%s", (char *)b) >= (int)outlen ? cp_err(err, errlen, "verifier key too long") : 0;
  free(b);
  return rc;
}

int cmd_audit(int argc, char **argv) {
  const char *where = NULL, *vkey_arg = NULL, *since = NULL;
  long threads = sysconf(_SC_NPROCESSORS_ONLN);
  bool sigs = true;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) { help(stdout); return CLI_EXIT_OK; }
    if (strcmp(argv[i], "--vkey") == 0 && i + 1 < argc) vkey_arg = argv[++i];
    else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) since = argv[++i];
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      if (cli_parse_long(argv[++i], 1, REG_AUDIT_THREADS_MAX, &threads) != 0) {
        cli_error("audit", "--threads must be 1..%d", REG_AUDIT_THREADS_MAX);
        return CLI_EXIT_USAGE;
      }
    } else if (strcmp(argv[i], "--no-signatures") == 0) sigs = false;
    else if (argv[i][0] != '-' && where == NULL) where = argv[i];
    else {
      cli_error("audit", "unexpected argument \"%s\"", argv[i]);
      help(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (where == NULL || vkey_arg == NULL) {
    cli_error("audit", "DIR_OR_URL and --vkey VKEY are required");
    help(stderr);
    return CLI_EXIT_USAGE;
  }
  if (threads < 1) threads = 1;
  if (threads > REG_AUDIT_THREADS_MAX) threads = REG_AUDIT_THREADS_MAX;
  char err[CP_ERRLEN], vkey[REG_VKEY_MAX], vname[128];
  uint8_t vpk[32], vid[CP_KEYID_BYTES];
  if (read_vkey(vkey_arg, vkey, sizeof vkey, err, sizeof err) != 0 ||
      cp_vkey_parse(vkey, vname, sizeof vname, vpk, vid, err, sizeof err) != 0) {
    cli_error("audit", "--vkey: %s", err);
    return CLI_EXIT_USAGE;
  }

  out_t out = {where, isatty(STDERR_FILENO), 0, 0};
  reg_audit_opts_t o = {.dir = where, .vkey = vkey, .signatures = sigs, .threads = (int)threads, .since = since,
                        .check = on_check, .begin = on_begin, .progress = on_progress, .arg = &out};
  http_src_t http = {NULL, NULL};
  char *base = NULL;
  int rc = CLI_EXIT_FAIL;
  if (strncmp(where, "http://", 7) == 0 || strncmp(where, "https://", 8) == 0) {
    base = cp_strdup(where);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') base[--bl] = '\0';
    http.url = base;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (http.curl = curl_easy_init()) == NULL) {
      cli_error("audit", "libcurl could not be initialised");
      goto out;
    }
    curl_easy_setopt(http.curl, CURLOPT_TIMEOUT, AUDIT_HTTP_TIMEOUT_S);
    curl_easy_setopt(http.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(http.curl, CURLOPT_USERAGENT, "carepass-audit/1");
    o.fetch = http_fetch;
    o.fetch_arg = &http;
  }
  reg_audit_result_t res;
  if (reg_audit_run(&o, &res) != 0) goto out;   /* the checkpoint could not be read: reported, no verdict */
  if (res.complete)
    printf("audited %" PRIu64 " entries in %.2f s: %.0f entries/s (%s)\n", res.size, res.seconds,
           res.seconds > 0 ? (double)res.size / res.seconds : 0.0, sigs ? "signatures verified" : "tree only");
  printf("%s: %d check(s) failed\n", res.failed ? "AUDIT FAILED" : "AUDIT PASSED", res.failed);
  rc = res.failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
  if (http.curl != NULL) {
    curl_easy_cleanup(http.curl);
    curl_global_cleanup();
  }
  free(base);
  return rc;
}
