/* fuzz_gw.c -- the gateway without a listening socket, for the gateway fuzz targets (fuzz_gw.h). */
#include "fuzz_gw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cp_config.h"
#include "cp_token.h"
#include "fuzz_util.h"
#include "gw.h"
#include "gw_dispatch.h"
#include "gw_internal.h"
#include "gw_metrics.h"

#define REQ_MAX (1u << 20)         /* most request bytes sent */
#define REDIS_CLOSED_PORT 1        /* nothing listens there: Redis is "down" */

static gw_t gw;
static struct MHD_Daemon *daemon_;
static char provider_token[CP_TOKEN_MAX], worker_token[CP_TOKEN_MAX], employer_token[CP_TOKEN_MAX];

static void fill_config(gw_config_t *cfg) {
  snprintf(cfg->bind_host, sizeof cfg->bind_host, "127.0.0.1");
  cfg->port = 0;
  cfg->threads = 1;
  cfg->max_body = (size_t)cp_cfg_int(CP_OPT_GATEWAY_MAX_BODY);
  cfg->timeout_s = (int)cp_cfg_int(CP_OPT_GATEWAY_TIMEOUT_S);
  cfg->per_ip_limit = (int)cp_cfg_int(CP_OPT_GATEWAY_PER_IP_LIMIT);
  cfg->max_connections = (int)cp_cfg_int(CP_OPT_GATEWAY_MAX_CONNECTIONS);
  cfg->conn_memory = (size_t)cp_cfg_int(CP_OPT_GATEWAY_CONN_MEMORY);
  cfg->head_timeout_s = (int)cp_cfg_int(CP_OPT_GATEWAY_HEAD_TIMEOUT_S);
  cfg->min_body_rate = (int)cp_cfg_int(CP_OPT_GATEWAY_MIN_BODY_RATE);
  cfg->reserved_pct = (int)cp_cfg_int(CP_OPT_GATEWAY_RESERVED_PCT);
  cfg->few_connections = (int)cp_cfg_int(CP_OPT_GATEWAY_FEW_CONNECTIONS);
  cfg->fails_per_address = (int)cp_cfg_int(CP_OPT_GATEWAY_CHECK_FAILS_PER_ADDRESS);
  cfg->fails_per_code = (int)cp_cfg_int(CP_OPT_GATEWAY_CHECK_FAILS_PER_CODE);
  cfg->fails_per_employer = (int)cp_cfg_int(CP_OPT_GATEWAY_CHECK_FAILS_PER_EMPLOYER);
  cfg->subs_per_code = (int)cp_cfg_int(CP_OPT_GATEWAY_SUBS_PER_CODE);
  cfg->subs_per_worker = (int)cp_cfg_int(CP_OPT_GATEWAY_SUBS_PER_WORKER);
  cfg->max_batch = (size_t)cp_cfg_int(CP_OPT_MAX_BATCH);
  cfg->ack_timeout_ms = cp_cfg_int(CP_OPT_ACK_TIMEOUT_MS);
  cfg->redrive_after_ms = cp_cfg_int(CP_OPT_REDRIVE_AFTER_MS);
  cfg->outbox_max = cp_cfg_int(CP_OPT_OUTBOX_MAX);
  snprintf(cfg->redis_host, sizeof cfg->redis_host, "127.0.0.1");
  cfg->redis_port = REDIS_CLOSED_PORT;
  cfg->redis_timeout_ms = 100;
  fuzz_source_path(cfg->register_dir, sizeof cfg->register_dir, "tests/fuzz/fixtures/register");
  snprintf(cfg->log_origin, sizeof cfg->log_origin, "carepass.local/register");
  /* the peer (127.0.0.1) is a trusted proxy: X-Forwarded-For from the input is read */
  char err[CP_ERRLEN];
  if (gw_proxies_parse("127.0.0.0/8", cfg, err, sizeof err) != 0) abort();
}

void fuzz_gw_init(void) {
  if (daemon_ != NULL) return;
  fuzz_quiet();
  if (sodium_init() < 0) abort();
  signal(SIGPIPE, SIG_IGN);
  char err[CP_ERRLEN], path[4096];
  pthread_mutex_init(&gw.reg_lock, NULL);
  pthread_mutex_init(&gw.push_lock, NULL);
  pthread_mutex_init(&gw.redis_lock, NULL);
  pthread_mutex_init(&gw.keys_lock, NULL);
  gw.metrics = gw_metrics_new();
  fill_config(&gw.cfg);
  fuzz_source_path(path, sizeof path, "data/providers.json");
  if (prov_load(path, &gw.providers, err, sizeof err) != 0) abort();
  fuzz_source_path(path, sizeof path, "data/employers.json");
  if (emp_load(path, &gw.employers, err, sizeof err) != 0) abort();
  fuzz_source_path(path, sizeof path, "data/catalogue.json");
  if (cat_load(path, &gw.catalogue, err, sizeof err) != 0) abort();
  fuzz_source_path(path, sizeof path, "data/roles.json");
  if (roles_load(path, gw.catalogue, &gw.roles, err, sizeof err) != 0) abort();
  memset(gw.token_secret, 0x5a, sizeof gw.token_secret);
  memset(gw.pseudonym_secret, 0xa5, sizeof gw.pseudonym_secret);
  memset(gw.share_code_secret, 0x3c, sizeof gw.share_code_secret);
  if (cp_token_revlist_new("/nonexistent/carepass-fuzz/revoked", &gw.revoked, err, sizeof err) != 0) abort();
  fuzz_source_path(path, sizeof path, "tests/fuzz/fixtures/register/vkey");
  FILE *fp = fopen(path, "r");
  if (fp == NULL || fgets(gw.vkey, sizeof gw.vkey, fp) == NULL) abort();
  fclose(fp);
  gw.vkey[strcspn(gw.vkey, "\n")] = '\0';
  snprintf(gw.webhook_key, sizeof gw.webhook_key, "whpk_fuzz");
  int64_t now = (int64_t)time(NULL);
  if (cp_token_make(gw.token_secret, CP_TOKEN_PROVIDER, "PRV-0001", now + 86400, provider_token,
                    sizeof provider_token, NULL) != 0 ||
      cp_token_make(gw.token_secret, CP_TOKEN_WORKER,
                    "1111111111111111111111111111111111111111111111111111111111111111", now + 3600, worker_token,
                    sizeof worker_token, NULL) != 0 ||
      cp_token_make(gw.token_secret, CP_TOKEN_EMPLOYER, "EMP-0001", now + 86400, employer_token,
                    sizeof employer_token, NULL) != 0)
    abort();
  daemon_ = MHD_start_daemon(
      MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, gw_dispatch, &gw,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, gw.cfg.conn_memory,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)gw.cfg.timeout_s,
      MHD_OPTION_NOTIFY_COMPLETED, gw_dispatch_completed, &gw,
      MHD_OPTION_EXTERNAL_LOGGER, gw_mhd_log, &gw,
      MHD_OPTION_UNESCAPE_CALLBACK, gw_unescape, &gw,
      MHD_OPTION_END);
  if (daemon_ == NULL) abort();
}

/* Copy req into out with the token placeholders replaced; returns the length. */
static size_t substitute(const uint8_t *req, size_t len, uint8_t *out, size_t cap) {
  static const char *const marks[] = {"@PROVIDER_TOKEN@", "@WORKER_TOKEN@", "@EMPLOYER_TOKEN@"};
  const char *const toks[] = {provider_token, worker_token, employer_token};
  size_t o = 0;
  for (size_t i = 0; i < len && o < cap;) {
    bool done = false;
    for (size_t k = 0; k < sizeof marks / sizeof marks[0] && !done; k++) {
      size_t ml = strlen(marks[k]), tl = strlen(toks[k]);
      if (len - i >= ml && memcmp(req + i, marks[k], ml) == 0 && cap - o >= tl) {
        memcpy(out + o, toks[k], tl);
        o += tl;
        i += ml;
        done = true;
      }
    }
    if (!done) out[o++] = req[i++];
  }
  return o;
}

static unsigned connections(void) {
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  return di != NULL ? di->num_connections : 0;
}

/* Write n bytes as one client connection and run the daemon until the answer stops coming. */
static int send_bytes(const uint8_t *buf, size_t n) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
  peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (MHD_add_connection(daemon_, sv[0], (const struct sockaddr *)&peer, sizeof peer) != MHD_YES) {
    close(sv[1]); /* MHD closed sv[0] */
    return 0;
  }
  size_t sent = 0, got = 0;
  int status = 0, idle = 0;
  char head[16];
  for (int it = 0; it < 10000 && idle < 4; it++) {
    bool progress = false;
    if (sent < n) {
      ssize_t w = send(sv[1], buf + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w > 0) {
        sent += (size_t)w;
        progress = true;
      }
    }
    if (MHD_run(daemon_) != MHD_YES) break;
    char rd[65536];
    ssize_t r;
    while ((r = recv(sv[1], rd, sizeof rd, MSG_DONTWAIT)) > 0) {
      progress = true;
      for (ssize_t i = 0; i < r && got < sizeof head - 1; i++) head[got++] = rd[i];
    }
    if (r == 0) break; /* the gateway closed the connection */
    idle = progress ? 0 : idle + 1;
  }
  head[got] = '\0';
  if (got >= 12 && strncmp(head, "HTTP/1.", 7) == 0) status = atoi(head + 9);
  if (getenv("FUZZ_GW_VERBOSE") != NULL) fprintf(stderr, "fuzz_gw: first answer %d\n", status);
  /* the client goes away; the daemon notices and completes the request */
  close(sv[1]);
  for (int it = 0; it < 1000 && connections() > 0; it++) (void)MHD_run(daemon_);
  return status;
}

int fuzz_gw_send(const uint8_t *req, size_t len) {
  fuzz_gw_init();
  static uint8_t buf[REQ_MAX + 4096];
  if (len > REQ_MAX) len = REQ_MAX;
  return send_bytes(buf, substitute(req, len, buf, sizeof buf));
}

int fuzz_gw_post(const char *path, const char *content_type, bool provider, const uint8_t *body, size_t len) {
  fuzz_gw_init();
  char auth[CP_TOKEN_MAX + 64] = "", ct[256] = "", head[4096];
  if (provider) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", provider_token);
  if (content_type != NULL) snprintf(ct, sizeof ct, "Content-Type: %s\r\n", content_type);
  int hl = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: gateway.fuzz\r\n%s%sContent-Length: %zu\r\n\r\n",
                    path, auth, ct, len);
  if (hl < 0 || (size_t)hl >= sizeof head) abort();
  if (len > REQ_MAX) len = REQ_MAX;
  uint8_t *msg = cp_xmalloc((size_t)hl + len);
  memcpy(msg, head, (size_t)hl);
  if (len > 0) memcpy(msg + hl, body, len);
  int status = send_bytes(msg, (size_t)hl + len); /* the body goes as it is (no substitution) */
  free(msg);
  return status;
}
