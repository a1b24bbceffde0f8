/* test_notify_sched.c -- notify's per-endpoint scheduling: the claim script's per-endpoint
 * cap against a real redis-server, and the local queue (nt_sched) against a real libcurl
 * deliverer and loopback listeners that hold connections open until the test answers. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "cp_config.h"
#include <sodium.h>

#include "redis_server.h"

#include "cp_redis.h"
#include "notify_deliver.h"
#include "notify_fanout.h"
#include "notify_jobs.h"
#include "notify_keys.h"
#include "notify_retry.h"
#include "notify_sched.h"

#define TIMEOUT_MS 2000       /* cp_redis command timeout */
#define LEASE_MS 60000        /* claim lease: nothing comes back by itself during a test */
#define HTTP_TIMEOUT_MS 30000 /* deliverer timeout: held connections stay in flight */
#define WAIT_BOUND_MS 10000   /* bound on waiting for curl to connect or finish */
#define PER_EP 2              /* the per-endpoint limit the tests use */

static cp_redis_t *R;         /* the Redis tests' connection to their redis-server */

/* A loopback TCP listener on a free port; nothing is accepted unless a test does it, so
 * connections wait in its backlog and their requests stay in flight. */
static int listener(int *port) {
  int fd = loopback_socket(port);   /* redis_server.h */
  assert_int_equal(listen(fd, 64), 0);
  return fd;
}

/* A redis-server for the group (redis_server.h) and a connection to it. */
static int redis_setup(void **state) {
  char err[CP_ERRLEN];
  if (setup(state) != 0) return -1;
  const srv_t *s = *state;
  R = cp_redis_new("127.0.0.1", s->port, TIMEOUT_MS, err, sizeof err);
  return R ? 0 : -1;
}

static int redis_teardown(void **state) {
  cp_redis_destroy(&R);
  return teardown(state);
}

/* Each Redis test starts from an empty database. */
static int redis_flush(void **state) {
  (void)state;
  redisReply *rep = cp_redis_cmd(R, "FLUSHALL");
  if (!rep) return -1;
  freeReplyObject(rep);
  return 0;
}

/* ---- the claim script: at most the per-endpoint cap per host:port --------------------- */

#define URL_A "http://a.example:8080/hook"
#define URL_B "https://B.example/hook"
#define EP_A "a.example:8080"
#define EP_B "b.example:443"

/* n deliveries to url, ids "msg_<prefix>..." so that ZRANGEBYSCORE (one score: due now)
 * returns them in id order: every A before every B. */
static void create_n(cp_redis_t *r, const char *prefix, const char *url, int n, int64_t now) {
  char err[CP_ERRLEN];
  for (int i = 0; i < n; i++) {
    char id[NT_ID_SIZE];
    snprintf(id, sizeof id, "msg_%s%031d", prefix, i);
    bool created = false;
    assert_int_equal(nt_delivery_create(r, id, url, "{}", "record.committed", "PRV-1", now, &created,
                                        err, sizeof err), 0);
    assert_true(created);
  }
}

/* Counts of a claim per endpoint (by URL). */
static void count_eps(const nt_claimed_t *c, size_t n, int *a, int *b) {
  *a = *b = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(c[i].url, URL_A) == 0) (*a)++;
    else if (strcmp(c[i].url, URL_B) == 0) (*b)++;
    else fail_msg("unexpected url %s", c[i].url);
  }
}

static void free_claims(nt_claimed_t *c, size_t n) {
  for (size_t i = 0; i < n; i++) nt_claimed_free(&c[i]);
}

static long long due_now(cp_redis_t *r, int64_t now) {
  redisReply *rep = cp_redis_cmd(r, "ZCOUNT %s -inf %lld", cp_key_nt_due(), (long long)now);
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
  long long v = rep->integer;
  freeReplyObject(rep);
  return v;
}

/* The endpoint the claim script keys its cap on is the one nt_endpoint writes. */
static void test_endpoint_of_url(void **state) {
  (void)state;
  char ep[300];
  nt_endpoint(URL_A, ep, sizeof ep);
  assert_string_equal(ep, EP_A);
  nt_endpoint(URL_B, ep, sizeof ep);
  assert_string_equal(ep, EP_B);        /* host lower-cased, default https port */
  nt_endpoint("http://C.example/x", ep, sizeof ep);
  assert_string_equal(ep, "c.example:80");
}

/* One endpoint at its cap never hides another's deliveries queued behind it; the rest
 * stay due in Redis. */
static void test_claim_caps_each_endpoint(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  int64_t now = cp_now_ms();
  create_n(R, "a", URL_A, 5, now);
  create_n(R, "b", URL_B, 5, now);
  nt_claimed_t c[10];
  size_t n = 0;
  int a, b;
  assert_int_equal(nt_claim_limited(R, now, LEASE_MS, 10, PER_EP, NULL, 0, c, &n, err, sizeof err), 0);
  assert_int_equal(n, 2 * PER_EP);
  count_eps(c, n, &a, &b);
  assert_int_equal(a, PER_EP);
  assert_int_equal(b, PER_EP);
  for (size_t i = 0; i < n; i++) assert_int_equal(c[i].attempts, 1);
  free_claims(c, n);
  assert_int_equal(due_now(R, now), 10 - 2 * PER_EP);   /* the rest wait, due */
}

/* The caller's loads count: an endpoint already at the cap in this replica takes
 * nothing; when its slots free up (lower load), its waiting deliveries go. */
static void test_claim_counts_loads(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  int64_t now = cp_now_ms();
  create_n(R, "a", URL_A, 4, now);
  create_n(R, "b", URL_B, 4, now);
  nt_claimed_t c[8];
  size_t n = 0;
  int a, b;
  nt_ep_load_t full_a[] = {{.endpoint = EP_A, .inflight = PER_EP}};
  assert_int_equal(nt_claim_limited(R, now, LEASE_MS, 8, PER_EP, full_a, 1, c, &n, err, sizeof err), 0);
  count_eps(c, n, &a, &b);
  assert_int_equal(a, 0);
  assert_int_equal(b, PER_EP);
  free_claims(c, n);

  nt_ep_load_t both_full[] = {{.endpoint = EP_A, .inflight = PER_EP}, {.endpoint = EP_B, .inflight = PER_EP}};
  assert_int_equal(nt_claim_limited(R, now, LEASE_MS, 8, PER_EP, both_full, 2, c, &n, err, sizeof err), 0);
  assert_int_equal(n, 0);

  nt_ep_load_t one_free[] = {{.endpoint = EP_A, .inflight = PER_EP - 1}, {.endpoint = EP_B, .inflight = PER_EP}};
  assert_int_equal(nt_claim_limited(R, now, LEASE_MS, 8, PER_EP, one_free, 2, c, &n, err, sizeof err), 0);
  count_eps(c, n, &a, &b);
  assert_int_equal(a, 1);
  assert_int_equal(b, 0);
  free_claims(c, n);
}

/* A negative load is an allowance: a fast endpoint takes that many more (to queue them
 * locally); max still bounds the claim; no cap (0) takes everything due. */
static void test_claim_allowance_and_no_cap(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  int64_t now = cp_now_ms();
  create_n(R, "a", URL_A, 8, now);
  create_n(R, "b", URL_B, 3, now);
  nt_claimed_t c[16];
  size_t n = 0;
  int a, b;
  nt_ep_load_t allow_a[] = {{.endpoint = EP_A, .inflight = -3}};
  assert_int_equal(nt_claim_limited(R, now, LEASE_MS, 16, PER_EP, allow_a, 1, c, &n, err, sizeof err), 0);
  count_eps(c, n, &a, &b);
  assert_int_equal(a, PER_EP + 3);
  assert_int_equal(b, PER_EP);
  free_claims(c, n);

  assert_int_equal(nt_claim(R, now, LEASE_MS, 2, c, &n, err, sizeof err), 0);
  assert_int_equal(n, 2);   /* max bounds it */
  free_claims(c, n);
  assert_int_equal(nt_claim(R, now, LEASE_MS, 16, c, &n, err, sizeof err), 0);
  assert_int_equal(n, 11 - (PER_EP + 3) - PER_EP - 2);   /* the rest, whatever endpoint */
  free_claims(c, n);
  assert_int_equal(due_now(R, now), 0);
}

/* A delivered one leaves the schedule; a released one comes back due with its attempt
 * not counted. */
static void test_claim_after_marks(void **state) {
  (void)state;
  char err[CP_ERRLEN];
  int64_t now = cp_now_ms();
  create_n(R, "a", URL_A, 3, now);
  nt_claimed_t c[4];
  size_t n = 0;
  assert_int_equal(nt_claim_limited(R, now, LEASE_MS, 4, PER_EP, NULL, 0, c, &n, err, sizeof err), 0);
  assert_int_equal(n, PER_EP);
  assert_int_equal(nt_mark_delivered(R, c[0].id, 200, err, sizeof err), 0);
  assert_int_equal(nt_release(R, c[1].id, now, err, sizeof err), 0);
  char released[NT_ID_SIZE];
  snprintf(released, sizeof released, "%s", c[1].id);
  free_claims(c, n);
  assert_int_equal(nt_claim_limited(R, now, LEASE_MS, 4, PER_EP, NULL, 0, c, &n, err, sizeof err), 0);
  assert_int_equal(n, 2);   /* the released one and the one that waited */
  bool seen = false;
  for (size_t i = 0; i < n; i++)
    if (strcmp(c[i].id, released) == 0) {
      seen = true;
      assert_int_equal(c[i].attempts, 1);   /* the handed-back attempt did not count */
    }
  assert_true(seen);
  free_claims(c, n);
}

/* ---- the local queue: nt_sched over a real deliverer ----------------------------------- */

typedef struct {
  char dir[64];               // temp directory: the signing key
  cp_signkey_t key;           // webhook signing key
  int lfd[2];                 // listeners A and B (connections wait in their backlog)
  char url[2][64];            // http://127.0.0.1:<port>/hook of each
  char ep[2][32];             // their endpoints
  nt_deliverer_t *dlv;        // the deliverer
  nt_sched_t *sched;          // the scheduler under test
  char released[32][NT_ID_SIZE]; // ids handed back, in order
  size_t nreleased;           // entries used in released
  size_t results;             // finished attempts seen
} lq_t;

static void on_release(const char *id, void *arg) {
  lq_t *q = arg;
  assert_true(q->nreleased < CP_ARRAY_LEN(q->released));
  snprintf(q->released[q->nreleased++], NT_ID_SIZE, "%s", id);
}

static void on_result(const nt_result_t *res, void *arg) {
  lq_t *q = arg;
  q->results++;
  nt_sched_result(q->sched, res->d->url, (int)res->status, res->elapsed_ms);
}

static lq_t *lq_new(int concurrency, int per_endpoint, int64_t queue_wait_ms) {
  char err[CP_ERRLEN], path[96];
  lq_t *q = cp_xcalloc(1, sizeof *q);
  snprintf(q->dir, sizeof q->dir, "/tmp/cp-test-ntlq-XXXXXX");
  assert_non_null(mkdtemp(q->dir));
  snprintf(path, sizeof path, "%s/notify.key", q->dir);
  assert_int_equal(cp_signkey_load(path, "carepass-notify", true, &q->key, err, sizeof err), 0);
  for (int i = 0; i < 2; i++) {
    int port;
    q->lfd[i] = listener(&port);
    snprintf(q->url[i], sizeof q->url[i], "http://127.0.0.1:%d/hook", port);
    snprintf(q->ep[i], sizeof q->ep[i], "127.0.0.1:%d", port);
  }
  q->dlv = nt_deliverer_new(&q->key, concurrency, HTTP_TIMEOUT_MS, err, sizeof err);
  assert_non_null(q->dlv);
  q->sched = nt_sched_new(q->dlv, per_endpoint, queue_wait_ms, on_release, q);
  return q;
}

static void lq_destroy(lq_t **qp) {
  lq_t *q = *qp;
  nt_sched_destroy(&q->sched);
  assert_null(q->sched);
  nt_deliverer_destroy(&q->dlv);
  for (int i = 0; i < 2; i++) close(q->lfd[i]);
  cp_signkey_wipe(&q->key);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", q->dir);
  assert_int_equal(system(cmd), 0);
  free(q);
  *qp = NULL;
}

/* Queue n claimed deliveries to endpoint e (0 = A, 1 = B), ids "msg_<tag><i>". */
static void lq_enqueue(lq_t *q, int e, char tag, int n) {
  nt_claimed_t *batch = cp_xcalloc((size_t)n, sizeof *batch);
  for (int i = 0; i < n; i++) {
    snprintf(batch[i].id, sizeof batch[i].id, "msg_%c%031d", tag, i);
    batch[i].attempts = 1;
    batch[i].url = cp_strdup(q->url[e]);
    batch[i].body = cp_strdup("{}");
    snprintf(batch[i].type, sizeof batch[i].type, "record.committed");
    snprintf(batch[i].provider, sizeof batch[i].provider, "PRV-1");
    batch[i].created_ms = cp_now_ms();
  }
  nt_sched_enqueue(q->sched, batch, (size_t)n);
  for (int i = 0; i < n; i++) assert_null(batch[i].url);   /* taken */
  free(batch);
}

static int inflight(const lq_t *q, int e) { return nt_deliverer_ep_inflight(q->dlv, q->ep[e]); }

/* Answer one held request on endpoint e with 200: drive curl until a connection is in
 * the listener's backlog, accept it, read the request, answer, then drive curl until
 * the attempt has finished. */
static void answer_one(lq_t *q, int e) {
  int64_t until = cp_mono_ms() + WAIT_BOUND_MS;
  int c = -1;
  while (c < 0 && cp_mono_ms() < until) {
    assert_int_equal(nt_deliverer_run(q->dlv, NULL, 0, 20, on_result, q), 0);
    struct pollfd p = {.fd = q->lfd[e], .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 20) == 1) c = accept(q->lfd[e], NULL, NULL);
  }
  assert_true(c >= 0);
  char buf[8192];
  size_t got = 0;
  while (got < sizeof buf - 1 && cp_mono_ms() < until) {   /* headers, then the 2-byte body */
    assert_int_equal(nt_deliverer_run(q->dlv, NULL, 0, 10, on_result, q), 0);
    struct pollfd p = {.fd = c, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 10) != 1) continue;
    ssize_t r = read(c, buf + got, sizeof buf - 1 - got);
    assert_true(r > 0);
    got += (size_t)r;
    buf[got] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (end && strlen(end + 4) >= 2) break;
  }
  static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  assert_int_equal(write(c, reply, sizeof reply - 1), (ssize_t)(sizeof reply - 1));
  size_t before = q->results;
  while (q->results == before && cp_mono_ms() < until)
    assert_int_equal(nt_deliverer_run(q->dlv, NULL, 0, 20, on_result, q), 0);
  assert_int_equal(q->results, before + 1);
  close(c);
}

/* At most per_endpoint in flight to one host:port; an endpoint at its limit does not
 * hold back the other's deliveries queued behind it; when a slot frees, the next
 * waiting one of that endpoint starts. */
static void test_sched_per_endpoint_and_fairness(void **state) {
  (void)state;
  lq_t *q = lq_new(8, PER_EP, 60000);
  lq_enqueue(q, 0, 'a', 5);
  lq_enqueue(q, 1, 'b', 5);
  nt_sched_start(q->sched);
  assert_int_equal(inflight(q, 0), PER_EP);
  assert_int_equal(inflight(q, 1), PER_EP);
  assert_int_equal(nt_sched_queued(q->sched), 10 - 2 * PER_EP);
  nt_sched_start(q->sched);   /* nothing more may start */
  assert_int_equal(inflight(q, 0), PER_EP);
  assert_int_equal(nt_sched_queued(q->sched), 10 - 2 * PER_EP);

  answer_one(q, 0);
  assert_int_equal(inflight(q, 0), PER_EP - 1);
  nt_sched_start(q->sched);
  assert_int_equal(inflight(q, 0), PER_EP);
  assert_int_equal(inflight(q, 1), PER_EP);
  assert_int_equal(nt_sched_queued(q->sched), 10 - 2 * PER_EP - 1);
  assert_int_equal(q->nreleased, 0);
  lq_destroy(&q);
  assert_null(q);
}

/* The deliverer's concurrency bounds the total; oldest first: B gets what A left. */
static void test_sched_total_concurrency(void **state) {
  (void)state;
  lq_t *q = lq_new(3, PER_EP, 60000);
  lq_enqueue(q, 0, 'a', 5);
  lq_enqueue(q, 1, 'b', 5);
  nt_sched_start(q->sched);
  assert_int_equal(nt_deliverer_inflight(q->dlv), 3);
  assert_int_equal(inflight(q, 0), PER_EP);
  assert_int_equal(inflight(q, 1), 1);
  assert_int_equal(nt_sched_queued(q->sched), 7);
  lq_destroy(&q);
}

/* No per-endpoint limit (0): one endpoint may take every slot. */
static void test_sched_no_limit(void **state) {
  (void)state;
  lq_t *q = lq_new(4, 0, 60000);
  lq_enqueue(q, 0, 'a', 6);
  nt_sched_start(q->sched);
  assert_int_equal(inflight(q, 0), 4);
  assert_int_equal(nt_sched_queued(q->sched), 2);
  lq_destroy(&q);
}

/* A delivery that waited past queue_wait_ms is handed back, not started. */
static void test_sched_stale_handed_back(void **state) {
  (void)state;
  lq_t *q = lq_new(8, PER_EP, 1);
  lq_enqueue(q, 0, 'a', 3);
  sleep_ms(20);
  nt_sched_start(q->sched);
  assert_int_equal(nt_deliverer_inflight(q->dlv), 0);
  assert_int_equal(nt_sched_queued(q->sched), 0);
  assert_int_equal(q->nreleased, 3);
  lq_destroy(&q);
}

/* At shutdown every queued one is handed back (the started ones are the deliverer's). */
static void test_sched_hand_back_all(void **state) {
  (void)state;
  lq_t *q = lq_new(8, 1, 60000);
  lq_enqueue(q, 0, 'a', 3);
  nt_sched_start(q->sched);
  assert_int_equal(inflight(q, 0), 1);
  nt_sched_hand_back_all(q->sched);
  assert_int_equal(nt_sched_queued(q->sched), 0);
  assert_int_equal(q->nreleased, 2);
  assert_string_equal(q->released[0], "msg_a0000000000000000000000000000001");
  assert_string_equal(q->released[1], "msg_a0000000000000000000000000000002");
  lq_destroy(&q);
}

static int load_of(const nt_ep_load_t *l, size_t n, const char *ep) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(l[i].endpoint, ep) == 0) return l[i].inflight;
  return 0;
}

/* The next claim's loads: in flight + queued for an endpoint with no allowance; a fast
 * 2xx endpoint gets per_endpoint x 16 of allowance (negative load, larger claim). */
static void test_sched_claim_loads(void **state) {
  (void)state;
  lq_t *q = lq_new(8, PER_EP, 60000);
  nt_ep_load_t *l = NULL;
  size_t nl = 0;
  assert_true(nt_sched_hungry(q->sched, 8));   /* free slots, nothing queued */
  assert_int_equal(nt_sched_claim_loads(q->sched, &l, &nl), 8);
  assert_int_equal(nl, 0);
  free(l);

  lq_enqueue(q, 0, 'a', 5);
  lq_enqueue(q, 1, 'b', 3);
  nt_sched_start(q->sched);
  assert_false(nt_sched_hungry(q->sched, 4));   /* queued work and no fast endpoint */
  size_t max = nt_sched_claim_loads(q->sched, &l, &nl);
  assert_int_equal(max, 8 - 2 * PER_EP);
  assert_int_equal(load_of(l, nl, q->ep[0]), PER_EP + 3);
  assert_int_equal(load_of(l, nl, q->ep[1]), PER_EP + 1);
  free(l);

  nt_sched_result(q->sched, q->url[0], 200, 5);   /* A answers 2xx quickly: it becomes fast */
  int allowance = PER_EP * 16;
  assert_true(nt_sched_hungry(q->sched, 4));   /* A's queue is below half its allowance */
  max = nt_sched_claim_loads(q->sched, &l, &nl);
  assert_int_equal(load_of(l, nl, q->ep[0]), PER_EP + 3 - allowance);
  assert_int_equal(load_of(l, nl, q->ep[1]), PER_EP + 1);
  assert_int_equal(max, (size_t)(8 - 2 * PER_EP) + (size_t)(allowance - 3));
  nt_sched_result(q->sched, q->url[0], 500, 5);   /* a failure: no allowance any more */
  free(l);
  lq_destroy(&q);
}

/* Queue n deliveries to an arbitrary url (ids "msg_<tag><i>"). */
static void lq_enqueue_url(lq_t *q, const char *url, char tag, int n) {
  nt_claimed_t *batch = cp_xcalloc((size_t)n, sizeof *batch);
  for (int i = 0; i < n; i++) {
    snprintf(batch[i].id, sizeof batch[i].id, "msg_%c%031d", tag, i);
    batch[i].attempts = 1;
    batch[i].url = cp_strdup(url);
    batch[i].body = cp_strdup("{}");
    snprintf(batch[i].type, sizeof batch[i].type, "record.committed");
    snprintf(batch[i].provider, sizeof batch[i].provider, "PRV-1");
    batch[i].created_ms = cp_now_ms();
  }
  nt_sched_enqueue(q->sched, batch, (size_t)n);
  free(batch);
}

/* Fair to every destination: an endpoint that did not answer gets one transfer at a time, and
 * such endpoints together at most half the slots, so a healthy one always has room. */
static void test_sched_failing_endpoints_share_half(void **state) {
  (void)state;
  lq_t *q = lq_new(8, 4, 60000);             /* 8 slots, 4 per endpoint: 4 for failing ones */
  nt_sched_set_breaker(q->sched, 100, 60000); /* not parked in this test */
  const char *bad[6] = {"http://127.0.0.1:1/h", "http://127.0.0.1:2/h", "http://127.0.0.1:3/h",
                        "http://127.0.0.1:4/h", "http://127.0.0.1:5/h", "http://127.0.0.1:6/h"};
  for (int i = 0; i < 6; i++) {
    nt_sched_result(q->sched, bad[i], 0, 2000);   /* no answer */
    lq_enqueue_url(q, bad[i], (char)('a' + i), 3);
  }
  lq_enqueue(q, 0, 'z', 6);                  /* A: healthy (never failed), queued last */
  nt_sched_start(q->sched);
  int suspects = 0;
  char ep[32];
  for (int i = 0; i < 6; i++) {
    snprintf(ep, sizeof ep, "127.0.0.1:%d", i + 1);
    int n = nt_deliverer_ep_inflight(q->dlv, ep);
    assert_true(n <= 1);                     /* one at a time each */
    suspects += n;
  }
  assert_int_equal(suspects, 4);             /* half the slots */
  assert_int_equal(inflight(q, 0), 4);       /* the healthy one gets the rest, up to its limit */
  /* the next claim asks Redis for nothing more for failing endpoints */
  nt_ep_load_t *l = NULL;
  size_t nl = 0;
  (void)nt_sched_claim_loads(q->sched, &l, &nl);
  for (size_t i = 0; i < nl; i++)
    if (strcmp(l[i].endpoint, q->ep[0]) != 0) assert_true(l[i].inflight >= 4);
  free(l);
  lq_destroy(&q);
}

/* The breaker: after `fails` unanswered attempts the endpoint is parked (its queued deliveries go
 * back to Redis, the claim asks for none); after the park one probe goes; an answer (any status)
 * closes the breaker. */
static void test_sched_breaker_parks_and_probes(void **state) {
  (void)state;
  lq_t *q = lq_new(8, 4, 60000);
  nt_sched_set_breaker(q->sched, 2, 150);
  nt_sched_result(q->sched, q->url[0], 0, 2000);
  lq_enqueue(q, 0, 'a', 3);
  nt_sched_start(q->sched);
  assert_int_equal(inflight(q, 0), 1);       /* failing, not parked: one at a time */
  nt_sched_result(q->sched, q->url[0], 0, 2000);   /* second in a row: parked */
  lq_enqueue(q, 0, 'b', 2);
  size_t before = q->nreleased;
  nt_sched_start(q->sched);
  assert_int_equal(q->nreleased - before, 4); /* the 2 left of 'a' and both of 'b' handed back */
  assert_int_equal(nt_sched_queued(q->sched), 0);
  nt_ep_load_t *l = NULL;
  size_t nl = 0;
  (void)nt_sched_claim_loads(q->sched, &l, &nl);
  assert_true(load_of(l, nl, q->ep[0]) >= 4); /* parked: Redis keeps its deliveries */
  free(l);
  usleep(200 * 1000);                        /* the park is over: one probe */
  lq_enqueue(q, 0, 'c', 3);
  int held = inflight(q, 0);
  nt_sched_start(q->sched);
  assert_int_equal(inflight(q, 0), held < 1 ? 1 : held);
  nt_sched_result(q->sched, q->url[0], 503, 5);   /* it answered: closed again */
  nt_sched_start(q->sched);
  assert_true(inflight(q, 0) > 1);
  lq_destroy(&q);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  signal(SIGPIPE, SIG_IGN);
  /* the local receivers are on loopback, which notify refuses unless allowed (cp_url_check.h) */
  char err[256];
  setenv("CAREPASS_WEBHOOK_ALLOW_HOSTS", "127.0.0.0/8", 1);
  if (cp_config_load(CP_SVC_NOTIFY, err, sizeof err) != 0) {
    fprintf(stderr, "config: %s\n", err);
    return 1;
  }
  const struct CMUnitTest redis_tests[] = {
      cmocka_unit_test(test_endpoint_of_url),
      cmocka_unit_test_setup(test_claim_caps_each_endpoint, redis_flush),
      cmocka_unit_test_setup(test_claim_counts_loads, redis_flush),
      cmocka_unit_test_setup(test_claim_allowance_and_no_cap, redis_flush),
      cmocka_unit_test_setup(test_claim_after_marks, redis_flush),
  };
  const struct CMUnitTest local_tests[] = {
      cmocka_unit_test(test_sched_per_endpoint_and_fairness),
      cmocka_unit_test(test_sched_total_concurrency),
      cmocka_unit_test(test_sched_failing_endpoints_share_half),
      cmocka_unit_test(test_sched_breaker_parks_and_probes),
      cmocka_unit_test(test_sched_no_limit),
      cmocka_unit_test(test_sched_stale_handed_back),
      cmocka_unit_test(test_sched_hand_back_all),
      cmocka_unit_test(test_sched_claim_loads),
  };
  int failed = cmocka_run_group_tests_name("notify claim (redis)", redis_tests, redis_setup, redis_teardown);
  failed += cmocka_run_group_tests_name("notify local queue", local_tests, NULL, NULL);
  return failed;
}
