/* gw_loop.c -- the gateway's event loops: GATEWAY_THREADS threads, each driving its own
 * libmicrohttpd daemon (external epoll mode) on the same listening address (SO_REUSEPORT: the
 * kernel spreads new connections over the loops), and its own queue of employer checks.
 *
 * Why not MHD's own thread pool: a check needs Redis, and the cheap way to ask Redis is one
 * pipeline for many checks. With MHD's threads that took a hand-off to a batch thread and back
 * (a futex wake and an ITC wake per batch, each a context switch, which on this kind of VM costs
 * more than the check itself). Here the thread that read the requests sends their pipeline,
 * waits for it, answers and writes the replies: no hand-off at all. One loop iteration:
 *
 *   MHD_run_wait   read what arrived; POST /v1/check handlers suspend and queue (gw_check_batch.c)
 *   gw_checkq_run  one pipeline for the queued checks, answers, views written, connections
 *                  resumed, MHD_run to send the replies (and to read what arrived meanwhile,
 *                  which may queue more: repeated until the queue is empty)
 *
 * Connection limits are kept across the loops (each daemon would otherwise count only its own):
 * the accept policy refuses a connection when the address or the whole gateway is at its limit,
 * and MHD's connection notifications count them in and out. Between the policy check and the
 * count a simultaneous accept on another loop may slip in: the limits can be passed by at most
 * GATEWAY_THREADS - 1 for an instant.
 *
 * Fair shares of the connections: past (100 - GATEWAY_RESERVED_PCT) % of GATEWAY_MAX_CONNECTIONS,
 * only addresses with fewer than GATEWAY_FEW_CONNECTIONS open connections are let in, so a few
 * addresses each at GATEWAY_PER_IP_LIMIT cannot take every slot (17 x 64 = 1,088 > 1,024 did).
 * A trusted proxy (GATEWAY_TRUSTED_PROXIES) carries many clients: it is not held to the
 * per-address cap or the fair share; instead each proxied client address may have
 * GATEWAY_PER_IP_LIMIT requests open at once (counted from its head to its answer, in the same
 * table: gw_sock_forwarded), past which it gets 429 TOO_MANY_CONNECTIONS.
 *
 * Slow clients (GATEWAY_TIMEOUT_S is MHD's idle timeout: a byte every few seconds resets it): every
 * connection has a state (gw_sock_t, MHD's socket context) with the time its request head began --
 * the connection's start for the first request, the request line (MHD's URI callback) for the next
 * ones on a keep-alive connection -- and, while a body is read, when it began and how many bytes came.
 * Each loop sweeps its connections every GW_SWEEP_MS: a head older than GATEWAY_HEAD_TIMEOUT_S, or
 * a body that, GATEWAY_HEAD_TIMEOUT_S after its head, averages less than GATEWAY_MIN_BODY_RATE
 * bytes/s, is closed (shutdown(2) of its socket: MHD sees the end and cleans up as for any close;
 * counted in carepass_gateway_slow_closed_total{phase}). An idle keep-alive connection between
 * requests is MHD's idle timeout's business; a request line sent slowly on one is too (the head
 * deadline starts when the request line is complete). */
#include "gw_loop.h"

#include "gw_check.h"
#include "gw_dispatch.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cp_log.h"
#include "gw_internal.h"
#include "gw_metrics.h"

#define GW_LOOP_TICK_MS 100   /* longest sleep of an idle loop (the stop flag is seen this soon) */
#define GW_SWEEP_MS 250       /* how often a loop looks for slow connections */
#define GW_LIMIT_BUCKETS 1024 /* hash buckets of the per-address connection counts */

/* Open connections from one client address. */
typedef struct addr_count {
  struct addr_count *next;  // bucket chain
  unsigned char addr[16];   // IPv4 (first 4 bytes) or IPv6 address
  int family;               // AF_INET or AF_INET6
  int n;                    // open connections (the node is freed at 0)
} addr_count_t;

/* One connection's state (MHD's socket context), on its loop's list. */
struct gw_sock {
  struct gw_sock *prev, *next; // the loop's list of open connections
  struct gw_loop *loop;        // the loop that serves it
  struct MHD_Connection *conn; // the connection
  addr_count_t *addr;          // the peer's count node (NULL: not counted)
  bool trusted;                // the peer is a trusted proxy
  bool closing;                // the sweep shut it down
  int64_t head_ms;             // monotonic ms the current request head began (0 = none being read)
  int64_t body_ms;             // monotonic ms its body began to be read (0 = none being read)
  uint64_t body_bytes;         // body bytes received so far
  addr_count_t *fwd;           // the proxied client's count node, held while its request is open
};

/* One loop: a thread, its daemon and its check queue. */
typedef struct gw_loop {
  struct gw_loops *all;     // the set it belongs to
  int idx;                  // 0..n-1 (log lines)
  struct MHD_Daemon *mhd;   // its daemon (external epoll mode)
  gw_checkq_t *checks;      // its employer checks (used on this thread only)
  gw_rcache_t *rcache;      // its rendered records (used on this thread only)
  pthread_t thread;         // the thread
  bool started;             // thread created and not joined
  gw_sock_t *socks;         // its open connections (this loop's thread only)
  int64_t next_sweep_ms;    // when it next looks for slow ones
} gw_loop_t;

struct gw_loops {
  gw_t *gw;                             // the gateway
  gw_loop_t *loop;                      // the loops
  int n;                                // how many
  atomic_bool stop;                     // set by gw_loops_stop: answer what is queued, then exit
  pthread_mutex_t lock;                 // guards total and bucket
  int total;                            // open connections over all loops
  addr_count_t *bucket[GW_LIMIT_BUCKETS]; // open connections by client address
};

/* ---- connection limits ----------------------------------------------------------- */

static bool addr_key(const struct sockaddr *sa, unsigned char out[16], int *family) {
  memset(out, 0, 16);
  if (sa == NULL) return false;
  *family = sa->sa_family;
  if (sa->sa_family == AF_INET) {
    memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    return true;
  }
  return false;
}

static addr_count_t **addr_slot(struct gw_loops *ls, const unsigned char key[16], int family) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 16777619u;
  addr_count_t **pp = &ls->bucket[h % GW_LIMIT_BUCKETS];
  while (*pp != NULL && ((*pp)->family != family || memcmp((*pp)->addr, key, 16) != 0)) pp = &(*pp)->next;
  return pp;
}

/* MHD's accept policy: MHD_NO when the gateway or the address is at its limit. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *sa, socklen_t salen) {
  (void)salen;
  struct gw_loops *ls = cls;
  const gw_config_t *cfg = &ls->gw->cfg;
  unsigned char key[16];
  int family = 0;
  bool ok = true;
  bool trusted = gw_proxy_trusted(cfg, sa);
  int shared = cfg->max_connections - (int)((long)cfg->max_connections * cfg->reserved_pct / 100);
  pthread_mutex_lock(&ls->lock);
  if (ls->total >= cfg->max_connections) ok = false;
  else if (!trusted && addr_key(sa, key, &family)) {
    addr_count_t *a = *addr_slot(ls, key, family);
    int n = a != NULL ? a->n : 0;
    if (cfg->per_ip_limit > 0 && n >= cfg->per_ip_limit) ok = false;
    else if (ls->total >= shared && n >= cfg->few_connections) ok = false; /* the reserved share */
  }
  pthread_mutex_unlock(&ls->lock);
  return ok ? MHD_YES : MHD_NO;
}

/* Count one more on the node for key (made when absent); the caller holds ls->lock. */
static addr_count_t *count_in(struct gw_loops *ls, const unsigned char key[16], int family) {
  addr_count_t **pp = addr_slot(ls, key, family);
  if (*pp == NULL) {
    *pp = cp_xcalloc(1, sizeof **pp);
    memcpy((*pp)->addr, key, 16);
    (*pp)->family = family;
  }
  (*pp)->n++;
  return *pp;
}

/* Count one less (the node is freed at 0); the caller holds ls->lock. */
static void count_out(struct gw_loops *ls, addr_count_t *a) {
  if (a == NULL || --a->n > 0) return;
  addr_count_t **pp = addr_slot(ls, a->addr, a->family);
  assert(*pp == a);
  *pp = a->next;
  free(a);
}

/* MHD's connection notifications (on the loop's thread): count connections in and out, and keep
 * each one's state (gw_sock_t) on the loop's list. */
static void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
  gw_loop_t *l = cls;
  struct gw_loops *ls = l->all;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    gw_sock_t *k = cp_xcalloc(1, sizeof *k);
    k->loop = l;
    k->conn = conn;
    k->head_ms = cp_mono_ms();
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    unsigned char key[16];
    int family = 0;
    pthread_mutex_lock(&ls->lock);
    ls->total++;
    if (ci != NULL && addr_key(ci->client_addr, key, &family)) k->addr = count_in(ls, key, family);
    pthread_mutex_unlock(&ls->lock);
    k->trusted = ci != NULL && gw_proxy_trusted(&ls->gw->cfg, ci->client_addr);
    k->next = l->socks;
    if (l->socks != NULL) l->socks->prev = k;
    l->socks = k;
    *socket_context = k;
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    gw_sock_t *k = *socket_context;
    *socket_context = NULL;
    pthread_mutex_lock(&ls->lock);
    ls->total--;
    if (k != NULL) {
      count_out(ls, k->addr);
      count_out(ls, k->fwd);
    }
    pthread_mutex_unlock(&ls->lock);
    if (k == NULL) return;
    if (k->prev != NULL) k->prev->next = k->next;
    else l->socks = k->next;
    if (k->next != NULL) k->next->prev = k->prev;
    free(k);
  }
}

/* MHD's URI callback: a request line is complete. A keep-alive connection's next head begins. */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *conn) {
  (void)cls;
  (void)uri;
  gw_sock_t *k = gw_sock_of(conn);
  if (k != NULL && k->head_ms == 0) k->head_ms = cp_mono_ms();
  return NULL; /* the dispatcher makes its state on its first call */
}

gw_sock_t *gw_sock_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci != NULL ? ci->socket_context : NULL;
}

bool gw_sock_trusted(const gw_sock_t *k) { return k != NULL && k->trusted; }

void gw_sock_head_done(gw_sock_t *k, bool body) {
  if (k == NULL) return;
  k->head_ms = 0;
  k->body_ms = body ? cp_mono_ms() : 0;
  k->body_bytes = 0;
}

void gw_sock_body(gw_sock_t *k, size_t n) {
  if (k != NULL) k->body_bytes += n;
}

void gw_sock_body_done(gw_sock_t *k) {
  if (k != NULL) k->body_ms = 0;
}

int gw_sock_forwarded(gw_sock_t *k, const char *client_ip) {
  if (k == NULL || k->fwd != NULL) return 0;
  struct gw_loops *ls = k->loop->all;
  int limit = ls->gw->cfg.per_ip_limit;
  unsigned char a[16];
  int family = AF_INET;
  memset(a, 0, sizeof a);
  if (inet_pton(AF_INET, client_ip, a) != 1) {
    family = AF_INET6;
    if (inet_pton(AF_INET6, client_ip, a) != 1) return 0; /* not an address: not counted */
  }
  int rc = 0;
  pthread_mutex_lock(&ls->lock);
  addr_count_t *c = *addr_slot(ls, a, family);
  if (limit > 0 && c != NULL && c->n >= limit) rc = -1;
  else k->fwd = count_in(ls, a, family);
  pthread_mutex_unlock(&ls->lock);
  return rc;
}

void gw_sock_request_done(gw_sock_t *k) {
  if (k == NULL) return;
  k->head_ms = 0; /* the next head begins with its request line (uri_seen) */
  k->body_ms = 0;
  if (k->fwd != NULL) {
    struct gw_loops *ls = k->loop->all;
    pthread_mutex_lock(&ls->lock);
    count_out(ls, k->fwd);
    k->fwd = NULL;
    pthread_mutex_unlock(&ls->lock);
  }
}

/* Close the connections of l that are too slow (see the top comment). */
static void sweep(gw_loop_t *l, int64_t now) {
  const gw_config_t *cfg = &l->all->gw->cfg;
  int64_t head_ms = (int64_t)cfg->head_timeout_s * 1000;
  for (gw_sock_t *k = l->socks; k != NULL; k = k->next) {
    if (k->closing) continue;
    const char *phase = NULL;
    if (k->head_ms != 0 && now - k->head_ms > head_ms) phase = "head";
    else if (k->body_ms != 0 && cfg->min_body_rate > 0 && now - k->body_ms > head_ms &&
             k->body_bytes * 1000 < (uint64_t)cfg->min_body_rate * (uint64_t)(now - k->body_ms - head_ms))
      phase = "body";
    if (phase == NULL) continue;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(k->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL) continue;
    k->closing = true;
    (void)shutdown(ci->connect_fd, SHUT_RDWR); /* MHD reads the end on its next turn and closes */
    char labels[32];
    snprintf(labels, sizeof labels, "phase=\"%s\"", phase);
    gw_metric_add(l->all->gw, "carepass_gateway_slow_closed_total", labels, 1);
  }
}

/* ---- the loops ---------------------------------------------------------------------- */

/* The check queue's pump: send what is ready, read what arrived. */
static void pump(void *mhd) { (void)MHD_run(mhd); }

static void *loop_main(void *arg) {
  gw_loop_t *l = arg;
  gw_checkq_bind(l->checks);
  gw_rcache_bind(l->rcache);
  while (!atomic_load(&l->all->stop)) {
    /* wait for the network only when no check is queued (a resumed connection or a timeout
     * due sooner makes MHD wait less) */
    (void)MHD_run_wait(l->mhd, gw_checkq_pending(l->checks) ? 0 : GW_LOOP_TICK_MS);
    gw_checkq_run(l->checks, pump, l->mhd);
    int64_t now = cp_mono_ms();
    if (now >= l->next_sweep_ms) {
      sweep(l, now);
      l->next_sweep_ms = now + GW_SWEEP_MS;
    }
  }
  /* stopping: what is queued is answered; the replies get a last few turns to go out */
  gw_checkq_close(l->checks);
  for (int i = 0; i < 4; i++) {
    gw_checkq_run(l->checks, pump, l->mhd);
    (void)MHD_run_wait(l->mhd, 10);
  }
  gw_rcache_bind(NULL);
  gw_checkq_bind(NULL);
  return NULL;
}

static struct MHD_Daemon *start_daemon(gw_t *gw, gw_loop_t *l, uint16_t port, const struct sockaddr_in *sa) {
  struct gw_loops *ls = l->all;
  /* MHD's own connection limits are per daemon: the shared ones above do the counting, MHD's
   * total stays as a backstop */
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  return MHD_start_daemon(
      flags, port, accept_policy, ls, gw_dispatch, gw,
      MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)sa,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, gw->cfg.conn_memory,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)gw->cfg.timeout_s,
      /* a backstop above the shared count (which refuses first, at exactly max_connections): at
       * its own limit MHD stops accepting and a client would hang in the backlog, not be refused;
       * and 0.9.75 stops a little short of the number given */
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)gw->cfg.max_connections + (unsigned)gw->cfg.threads + 16u,
      MHD_OPTION_NOTIFY_COMPLETED, gw_dispatch_completed, gw,
      MHD_OPTION_NOTIFY_CONNECTION, conn_notify, l,
      MHD_OPTION_URI_LOG_CALLBACK, uri_seen, l,
      MHD_OPTION_EXTERNAL_LOGGER, gw_mhd_log, gw,
      MHD_OPTION_UNESCAPE_CALLBACK, gw_unescape, gw,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
      /* SIGPIPE is ignored process-wide (cp_service_init), so MHD may use sendfile() for tiles on
       * our threads (it does so unasked only on threads it started itself) */
      MHD_OPTION_SIGPIPE_HANDLED_BY_APP, (int)1,
      MHD_OPTION_END);
}

/* Make the daemons, then start the threads; -1 with err (the caller destroys what was made). */
static int loops_start(gw_t *gw, struct gw_loops *ls, char *err, size_t errlen) {
  ls->gw = gw;
  pthread_mutex_init(&ls->lock, NULL);
  atomic_init(&ls->stop, false);
  ls->n = gw->cfg.threads;
  ls->loop = cp_xcalloc((size_t)ls->n, sizeof *ls->loop);

  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)gw->cfg.port);
  if (inet_pton(AF_INET, gw->cfg.bind_host, &sa.sin_addr) != 1)
    return cp_err(err, errlen, "CAREPASS_GATEWAY_BIND host %s is not an IPv4 address", gw->cfg.bind_host);
  /* every daemon is made before any thread starts, so a failure leaves nothing running */
  for (int i = 0; i < ls->n; i++) {
    gw_loop_t *l = &ls->loop[i];
    l->all = ls;
    l->idx = i;
    if (gw_checkq_new(&l->checks, gw->cfg.redis_host, gw->cfg.redis_port, gw->cfg.redis_timeout_ms, &gw_check_jobs,
                      err, errlen) != 0)
      return -1;
    l->rcache = gw_rcache_new();
    l->mhd = start_daemon(gw, l, ntohs(sa.sin_port), &sa);
    if (l->mhd == NULL)
      return cp_err(err, errlen, "cannot listen on %s:%d (MHD_start_daemon failed: %s)", gw->cfg.bind_host,
                    gw->cfg.port, strerror(errno));
    if (sa.sin_port == 0) { /* port 0: the others listen on the port the first one got */
      const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_BIND_PORT);
      if (di == NULL || di->port == 0) return cp_err(err, errlen, "cannot learn the gateway's port");
      sa.sin_port = htons(di->port);
    }
  }
  for (int i = 0; i < ls->n; i++) {
    gw_loop_t *l = &ls->loop[i];
    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    if (rc != 0) return cp_err(err, errlen, "pthread_create: %s", strerror(rc));
    l->started = true;
  }
  return 0;
}

int gw_loops_new(gw_loops_t **out, gw_t *gw, char *err, size_t errlen) {
  struct gw_loops *ls = cp_xcalloc(1, sizeof *ls);
  *out = NULL;
  if (loops_start(gw, ls, err, errlen) != 0) {
    gw_loops_destroy(&ls);
    return -1;
  }
  *out = ls;
  return 0;
}

void gw_loops_stop(gw_loops_t *ls) {
  if (ls == NULL) return;
  atomic_store(&ls->stop, true);
  for (int i = 0; i < ls->n; i++) {
    gw_loop_t *l = &ls->loop[i];
    if (!l->started) continue;
    pthread_join(l->thread, NULL);
    l->started = false;
  }
}

void gw_loops_destroy(gw_loops_t **lsp) {
  struct gw_loops *ls = *lsp;
  if (ls == NULL) return;
  gw_loops_stop(ls);
  for (int i = 0; i < ls->n; i++) {
    gw_loop_t *l = &ls->loop[i];
    if (l->mhd != NULL) MHD_stop_daemon(l->mhd); /* closes what is still open (CLOSED notices) */
    gw_checkq_destroy(&l->checks);
    gw_rcache_destroy(&l->rcache);
  }
  for (size_t b = 0; b < GW_LIMIT_BUCKETS; b++)
    while (ls->bucket[b] != NULL) {
      addr_count_t *a = ls->bucket[b];
      ls->bucket[b] = a->next;
      free(a);
    }
  pthread_mutex_destroy(&ls->lock);
  free(ls->loop);
  free(ls);
  *lsp = NULL;
}
