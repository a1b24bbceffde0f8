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
 * GATEWAY_THREADS - 1 for an instant. */
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

#include "cp_log.h"

#define GW_LOOP_TICK_MS 100   /* longest sleep of an idle loop (the stop flag is seen this soon) */
#define GW_LIMIT_BUCKETS 1024 /* hash buckets of the per-address connection counts */

/* Open connections from one client address. */
typedef struct addr_count {
  struct addr_count *next;  // bucket chain
  unsigned char addr[16];   // IPv4 (first 4 bytes) or IPv6 address
  int family;               // AF_INET or AF_INET6
  int n;                    // open connections (the node is freed at 0)
} addr_count_t;

/* One loop: a thread, its daemon and its check queue. */
typedef struct {
  struct gw_loops *all;     // the set it belongs to
  int idx;                  // 0..n-1 (log lines)
  struct MHD_Daemon *mhd;   // its daemon (external epoll mode)
  gw_checkq_t *checks;      // its employer checks (used on this thread only)
  gw_rcache_t *rcache;      // its rendered records (used on this thread only)
  pthread_t thread;         // the thread
  bool started;             // thread created and not joined
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
  pthread_mutex_lock(&ls->lock);
  if (ls->total >= cfg->max_connections) ok = false;
  else if (cfg->per_ip_limit > 0 && addr_key(sa, key, &family)) {
    addr_count_t *a = *addr_slot(ls, key, family);
    if (a != NULL && a->n >= cfg->per_ip_limit) ok = false;
  }
  pthread_mutex_unlock(&ls->lock);
  return ok ? MHD_YES : MHD_NO;
}

/* MHD's connection notifications: count connections in and out. *socket_context holds the
 * address's count node while the connection is open (the node lives while n > 0). */
static void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
  struct gw_loops *ls = cls;
  pthread_mutex_lock(&ls->lock);
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    ls->total++;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    unsigned char key[16];
    int family = 0;
    if (ci != NULL && addr_key(ci->client_addr, key, &family)) {
      addr_count_t **pp = addr_slot(ls, key, family);
      if (*pp == NULL) {
        *pp = cp_xcalloc(1, sizeof **pp);
        memcpy((*pp)->addr, key, 16);
        (*pp)->family = family;
      }
      (*pp)->n++;
      *socket_context = *pp;
    }
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    ls->total--;
    addr_count_t *a = *socket_context;
    *socket_context = NULL;
    if (a != NULL && --a->n == 0) {
      addr_count_t **pp = addr_slot(ls, a->addr, a->family);
      assert(*pp == a);
      *pp = a->next;
      free(a);
    }
  }
  pthread_mutex_unlock(&ls->lock);
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

static struct MHD_Daemon *start_daemon(gw_t *gw, struct gw_loops *ls, uint16_t port, const struct sockaddr_in *sa) {
  /* MHD's own connection limits are per daemon: the shared ones above do the counting, MHD's
   * total stays as a backstop */
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  return MHD_start_daemon(
      flags, port, accept_policy, ls, gw_dispatch, gw,
      MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)sa,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, gw->cfg.conn_memory,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)gw->cfg.timeout_s,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)gw->cfg.max_connections,
      MHD_OPTION_NOTIFY_COMPLETED, gw_dispatch_completed, gw,
      MHD_OPTION_NOTIFY_CONNECTION, conn_notify, ls,
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
    l->mhd = start_daemon(gw, ls, ntohs(sa.sin_port), &sa);
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
