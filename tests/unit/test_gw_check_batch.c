/* test_gw_check_batch.c -- the gateway's check batcher (services/gateway/gw_check_batch.c) against a
 * real redis-server, without HTTP: every check queued on a loop is opened in one pipeline, each
 * check gets its own replies (error replies included), follow-ups are read in a second round,
 * views reach Redis before a check is handed back, checks queued meanwhile go in a later batch of
 * the same run, a Redis failure answers every check of the batch (and the next run reconnects),
 * and a closed or missing queue refuses a check without taking it. */
#include <errno.h>
#include <netinet/in.h>
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

#include "gw_check_batch.h"
#include "redis_server.h"

#define TIMEOUT_MS 2000       /* the queue's connect and reply timeout */

/* ---- a check as the batcher sees it ------------------------------------------------------- */

enum { ST_QUEUED, ST_LOOKED_UP, ST_JUDGED, ST_FINISHED, ST_FAILED };

/* What the steps saw, in the order they were called over all checks ("L3" = lookup of check 3). */
static char trace[1 << 16];
static size_t trace_len;
static int port_now;       /* the server's port, for the view check in done */
static int done_count;     /* checks handed back */
static int views_missing;  /* checks handed back before their view was in Redis */

struct gw_cjob {
  int id;            // check number
  bool follow;       // judge appends one follow-up command
  bool view;         // finish writes a view
  int state;         // ST_*
  char got[64];      // what its lookup read ("(nil)", the value, or "ERR")
  char extra[64];    // its follow-up's reply ("" = none given)
  int *done_flag;    // set when handed back (the job is freed then)
};

static void note(char step, int id) {
  trace_len += (size_t)snprintf(trace + trace_len, sizeof trace - trace_len, "%c%d ", step, id);
}

static int t_lookup(gw_cjob_t *j, redisContext *c) {
  char key[64];
  snprintf(key, sizeof key, "cp:test:{%d}", j->id);
  gw_redis_cmd(c, 2, (const char *[]){"GET", key});
  j->state = ST_LOOKED_UP;
  note('L', j->id);
  return 1;
}

static int t_judge(gw_cjob_t *j, redisReply **rep, redisContext *c) {
  const redisReply *r = rep[0];
  if (r->type == REDIS_REPLY_STRING) snprintf(j->got, sizeof j->got, "%s", r->str);
  else if (r->type == REDIS_REPLY_ERROR) snprintf(j->got, sizeof j->got, "ERR");
  else snprintf(j->got, sizeof j->got, "(nil)");
  j->state = ST_JUDGED;
  note('J', j->id);
  if (!j->follow) return 0;
  char word[32];
  snprintf(word, sizeof word, "echo-%d", j->id);
  gw_redis_cmd(c, 2, (const char *[]){"ECHO", word});
  return 1;
}

static void view_key(int id, char *key, size_t n) { snprintf(key, n, "cp:w:{test%d}:views", id); }

static void t_finish(gw_cjob_t *j, redisReply *extra, gw_cconn_t *cc) {
  if (extra != NULL) {
    snprintf(j->extra, sizeof j->extra, "%s", extra->type == REDIS_REPLY_STRING ? extra->str : "?");
    freeReplyObject(extra);
  }
  if (j->view) {
    char key[64], code[32];
    view_key(j->id, key, sizeof key);
    snprintf(code, sizeof code, "sc_test%d", j->id);
    gw_cconn_view(cc, key, "{\"records\": 1}", code);
  }
  j->state = ST_FINISHED;
  note('F', j->id);
}

static void t_fail(gw_cjob_t *j) {
  j->state = ST_FAILED;
  note('X', j->id);
}

/* Is the view of check id in Redis now? (a separate connection, as a worker listing views) */
static bool view_there(int id) {
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port_now, tv);
  bool ok = false;
  if (c != NULL && !c->err) {
    char key[64];
    view_key(id, key, sizeof key);
    redisReply *r = redisCommand(c, "LLEN %s", key);
    ok = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 1;
    if (r) freeReplyObject(r);
  }
  if (c) redisFree(c);
  return ok;
}

/* The results a test reads after the job is freed. */
typedef struct {
  int state;
  char got[64];
  char extra[64];
  bool handed_back;
} result_t;
static result_t results[2048];

static void t_done(gw_cjob_t **jp) {
  gw_cjob_t *j = *jp;
  if (j->view && j->state == ST_FINISHED && !view_there(j->id)) views_missing++;
  result_t *r = &results[j->id];
  r->state = j->state;
  memcpy(r->got, j->got, sizeof r->got);
  memcpy(r->extra, j->extra, sizeof r->extra);
  r->handed_back = true;
  note('D', j->id);
  done_count++;
  free(j);
  *jp = NULL;
}

static const gw_cjob_ops_t ops = {t_lookup, t_judge, t_finish, t_fail, t_done};

static void reset(int port) {
  trace[0] = '\0';
  trace_len = 0;
  done_count = 0;
  views_missing = 0;
  port_now = port;
  memset(results, 0, sizeof results);
}

static void add(int id, bool follow, bool view) {
  gw_cjob_t *j = cp_xcalloc(1, sizeof *j);
  j->id = id;
  j->follow = follow;
  j->view = view;
  assert_int_equal(gw_checkq_add(&j), 0);
  assert_null(j); /* taken over */
}

static void no_pump(void *arg) { (void)arg; }

static gw_checkq_t *queue_on(int port) {
  gw_checkq_t *q = NULL;
  char err[256] = "";
  assert_int_equal(gw_checkq_new(&q, "127.0.0.1", port, TIMEOUT_MS, &ops, err, sizeof err), 0);
  assert_non_null(q);
  gw_checkq_bind(q);
  return q;
}

static void queue_off(gw_checkq_t **q) {
  gw_checkq_bind(NULL);
  gw_checkq_destroy(q);
  assert_null(*q);
  gw_checkq_destroy(q); /* NULL-safe */
}

static void set_values(const srv_t *s, int n) {
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
  assert_true(c != NULL && !c->err);
  for (int i = 0; i < n; i++) {
    redisReply *r = (i % 7 == 3) ? redisCommand(c, "HSET cp:test:{%d} f v", i) /* GET: WRONGTYPE */
                                 : redisCommand(c, "SET cp:test:{%d} value-%d", i, i);
    assert_non_null(r);
    freeReplyObject(r);
  }
  redisFree(c);
}

static void expect_own(int id) {
  char want[64];
  if (id % 7 == 3) snprintf(want, sizeof want, "ERR");
  else snprintf(want, sizeof want, "value-%d", id);
  assert_string_equal(results[id].got, want);
}

/* Position of a step in the trace (-1 = absent). */
static long at(char step, int id) {
  char w[24];
  snprintf(w, sizeof w, "%c%d ", step, id);
  const char *p = trace;
  while ((p = strstr(p, w)) != NULL) {
    if (p == trace || p[-1] == ' ') return p - trace;
    p++;
  }
  return -1;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Checks queued before a run: all lookups go out before any judge (one pipeline), every judge
 * before any finish, every finish before any hand-back; each check reads its own key, an error
 * reply stays that check's alone; follow-ups come back to the check that asked. */
static void test_one_batch(void **state) {
  srv_t *s = *state;
  enum { N = 40 };
  set_values(s, N);
  reset(s->port);
  gw_checkq_t *q = queue_on(s->port);
  assert_false(gw_checkq_pending(q));
  for (int i = 0; i < N; i++) add(i, i % 2 == 1, false);
  assert_true(gw_checkq_pending(q));
  gw_checkq_run(q, no_pump, NULL);
  assert_false(gw_checkq_pending(q));
  assert_int_equal(done_count, N);
  long last_l = -1, first_j = (long)sizeof trace, last_j = -1, first_f = (long)sizeof trace, last_f = -1,
       first_d = (long)sizeof trace;
  for (int i = 0; i < N; i++) {
    assert_true(results[i].handed_back);
    assert_int_equal(results[i].state, ST_FINISHED);
    expect_own(i);
    if (i % 2 == 1) {
      char want[32];
      snprintf(want, sizeof want, "echo-%d", i);
      assert_string_equal(results[i].extra, want);
    } else {
      assert_string_equal(results[i].extra, "");
    }
    if (at('L', i) > last_l) last_l = at('L', i);
    if (at('J', i) < first_j) first_j = at('J', i);
    if (at('J', i) > last_j) last_j = at('J', i);
    if (at('F', i) < first_f) first_f = at('F', i);
    if (at('F', i) > last_f) last_f = at('F', i);
    if (at('D', i) < first_d) first_d = at('D', i);
  }
  assert_true(last_l < first_j);
  assert_true(last_j < first_f);
  assert_true(last_f < first_d);
  queue_off(&q);
}

/* More checks than one pipeline takes: every one answered with its own value, in one run. */
static void test_many_batches(void **state) {
  srv_t *s = *state;
  enum { N = 1300 };
  set_values(s, N);
  reset(s->port);
  gw_checkq_t *q = queue_on(s->port);
  for (int i = 0; i < N; i++) add(i, i % 5 == 0, false);
  gw_checkq_run(q, no_pump, NULL);
  assert_int_equal(done_count, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(results[i].state, ST_FINISHED);
    expect_own(i);
  }
  assert_false(gw_checkq_pending(q));
  queue_off(&q);
}

/* A view written by finish is in Redis when the check is handed back (its reply may go out). */
static void test_views_before_hand_back(void **state) {
  srv_t *s = *state;
  enum { N = 20 };
  set_values(s, N);
  reset(s->port);
  gw_checkq_t *q = queue_on(s->port);
  for (int i = 0; i < N; i++) add(i, false, true);
  gw_checkq_run(q, no_pump, NULL);
  assert_int_equal(done_count, N);
  assert_int_equal(views_missing, 0);
  /* the view commands' replies are read before the next batch's: a second run still works */
  reset(s->port);
  for (int i = 0; i < N; i++) add(i, true, true);
  gw_checkq_run(q, no_pump, NULL);
  assert_int_equal(done_count, N);
  assert_int_equal(views_missing, 0);
  for (int i = 0; i < N; i++) expect_own(i);
  queue_off(&q);
}

/* Checks queued while the loop pumps (new requests read) are answered in a later batch of the
 * same run, after the first batch was judged. */
static int pumps;
static void pump_adds(void *arg) {
  (void)arg;
  if (pumps++ == 0)
    for (int i = 100; i < 110; i++) add(i, false, false);
}

static void test_queued_meanwhile(void **state) {
  srv_t *s = *state;
  set_values(s, 110);
  reset(s->port);
  pumps = 0;
  gw_checkq_t *q = queue_on(s->port);
  for (int i = 0; i < 10; i++) add(i, false, false);
  gw_checkq_run(q, pump_adds, NULL);
  assert_int_equal(done_count, 20);
  for (int i = 100; i < 110; i++) {
    assert_int_equal(results[i].state, ST_FINISHED);
    expect_own(i);
    assert_true(at('L', i) > at('J', 9)); /* a later batch */
  }
  assert_false(gw_checkq_pending(q));
  queue_off(&q);
}

/* Redis gone: every check of the batch is answered as failed and handed back; when Redis is
 * back on the same address, the next run reconnects and answers normally. */
static void test_redis_failure(void **state) {
  srv_t *s = *state;
  set_values(s, 10);
  reset(s->port);
  gw_checkq_t *q = queue_on(s->port);
  for (int i = 0; i < 10; i++) add(i, false, false);
  gw_checkq_run(q, no_pump, NULL); /* connected now */
  assert_int_equal(done_count, 10);
  srv_stop(s);
  reset(s->port);
  for (int i = 0; i < 10; i++) add(i, false, true);
  gw_checkq_run(q, no_pump, NULL);
  assert_int_equal(done_count, 10);
  for (int i = 0; i < 10; i++) assert_int_equal(results[i].state, ST_FAILED);
  assert_int_equal(srv_start(s), 0);
  set_values(s, 10);
  reset(s->port);
  for (int i = 0; i < 10; i++) add(i, false, false);
  gw_checkq_run(q, no_pump, NULL);
  assert_int_equal(done_count, 10);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(results[i].state, ST_FINISHED);
    expect_own(i);
  }
  queue_off(&q);
}

/* Nothing listening at all: the checks fail, none is lost. */
static void test_never_connected(void **state) {
  (void)state;
  int dead = free_port();
  reset(dead);
  gw_checkq_t *q = queue_on(dead);
  for (int i = 0; i < 5; i++) add(i, false, false);
  gw_checkq_run(q, no_pump, NULL);
  assert_int_equal(done_count, 5);
  for (int i = 0; i < 5; i++) assert_int_equal(results[i].state, ST_FAILED);
  queue_off(&q);
}

/* No queue on this thread, or a closed one: the check is refused and stays the caller's. */
static void test_refused(void **state) {
  srv_t *s = *state;
  gw_cjob_t *j = cp_xcalloc(1, sizeof *j);
  gw_checkq_bind(NULL);
  assert_int_equal(gw_checkq_add(&j), -1);
  assert_non_null(j);
  gw_checkq_t *q = queue_on(s->port);
  gw_checkq_close(q);
  assert_int_equal(gw_checkq_add(&j), -1);
  assert_non_null(j);
  assert_false(gw_checkq_pending(q));
  free(j);
  queue_off(&q);
  /* a queue needs an address and a timeout */
  char err[256] = "";
  assert_int_equal(gw_checkq_new(&q, "", 6379, TIMEOUT_MS, &ops, err, sizeof err), -1);
  assert_null(q);
  assert_true(strlen(err) > 0);
  assert_int_equal(gw_checkq_new(&q, "127.0.0.1", 6379, 0, &ops, err, sizeof err), -1);
  assert_null(q);
}

int main(void) {
  if (access(REDIS_SERVER, X_OK) != 0) {
    fprintf(stderr, "test_gw_check_batch: %s not found; install redis-server\n", REDIS_SERVER);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* writing to a connection the server closed */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_one_batch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_views_before_hand_back, setup, teardown),
      cmocka_unit_test_setup_teardown(test_queued_meanwhile, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redis_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_never_connected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
