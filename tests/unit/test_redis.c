/* test_redis.c -- the Redis layer against a real redis-server: commands, error replies, pipelines by
 * handle, scripts by EVALSHA (reloaded after NOSCRIPT), reconnects, reply helpers, key builders. */
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

#include "cp_keys.h"
#include "cp_redis.h"

#include "redis_server.h"

#define TIMEOUT_MS 2000       /* cp_redis command timeout */

static cp_redis_t *connect_to(const srv_t *s) {
  char err[CP_ERRLEN] = "";
  cp_redis_t *r = cp_redis_new("127.0.0.1", s->port, TIMEOUT_MS, err, sizeof err);
  if (r == NULL) fail_msg("cp_redis_new: %s", err);
  return r;
}

static long long client_id(cp_redis_t *r) {
  redisReply *rep = cp_redis_cmd(r, "CLIENT ID");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
  long long id = rep->integer;
  freeReplyObject(rep);
  return id;
}

static void expect_str(redisReply *rep, const char *want) {
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STRING);
  assert_int_equal(rep->len, strlen(want));
  assert_memory_equal(rep->str, want, rep->len);
  freeReplyObject(rep);
}

/* Plain commands, printf-style and argv (binary-safe); a refused connection. */
static void test_cmd(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  redisReply *rep = cp_redis_cmd(r, "SET %s %s", "cp:test:{k}", "v1");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  expect_str(cp_redis_cmd(r, "GET %s", "cp:test:{k}"), "v1");
  rep = cp_redis_cmd(r, "INCRBY cp:test:{n} %d", 41);
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
  assert_int_equal(rep->integer, 41);
  freeReplyObject(rep);
  rep = cp_redis_cmd(r, "GET cp:test:{missing}");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_NIL);
  freeReplyObject(rep);

  /* argv with a NUL byte inside the value */
  const char *argv[] = {"HSET", "cp:ev:{PRV-0001:e1}", "pending", "a\0b"};
  const size_t lens[] = {4, strlen(argv[1]), 7, 3};
  rep = cp_redis_cmd_argv(r, 4, argv, lens);
  assert_non_null(rep);
  assert_int_equal(rep->integer, 1);
  freeReplyObject(rep);
  rep = cp_redis_cmd(r, "HGET %s %s", argv[1], "pending");
  assert_non_null(rep);
  assert_int_equal(rep->len, 3);
  assert_memory_equal(rep->str, "a\0b", 3);
  freeReplyObject(rep);
  /* %b binary-safe formatting */
  rep = cp_redis_cmd(r, "SET cp:test:{b} %b", "x\0y", (size_t)3);
  assert_non_null(rep);
  freeReplyObject(rep);
  rep = cp_redis_cmd(r, "STRLEN cp:test:{b}");
  assert_int_equal(rep->integer, 3);
  freeReplyObject(rep);
  cp_redis_destroy(&r);
  assert_null(r);
  cp_redis_destroy(&r); /* safe on NULL */

  /* nothing listening: NULL and a message naming host:port */
  char err[CP_ERRLEN] = "";
  int dead = free_port();
  assert_null(cp_redis_new("127.0.0.1", dead, 500, err, sizeof err));
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", dead);
  assert_non_null(strstr(err, want));
}

/* An error reply is NULL + errstr, and the connection stays usable. */
static void test_error_reply(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  long long id = client_id(r);
  redisReply *rep = cp_redis_cmd(r, "SET cp:test:{str} x");
  freeReplyObject(rep);
  assert_null(cp_redis_cmd(r, "LPUSH cp:test:{str} y")); /* wrong type */
  assert_non_null(strstr(cp_redis_errstr(r), "WRONGTYPE"));
  assert_null(cp_redis_cmd(r, "NOSUCHCOMMAND a b"));
  assert_non_null(strstr(cp_redis_errstr(r), "unknown command"));
  const char *argv[] = {"INCR", "cp:test:{str}"};
  assert_null(cp_redis_cmd_argv(r, 2, argv, NULL));
  assert_non_null(strstr(cp_redis_errstr(r), "not an integer"));
  /* same connection: an error reply is not a connection error */
  assert_int_equal(client_id(r), id);
  expect_str(cp_redis_cmd(r, "GET cp:test:{str}"), "x");
  cp_redis_destroy(&r);
}

/* The server drops our connection (CLIENT KILL): the next command reconnects once and succeeds. */
static void test_reconnect_after_client_kill(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_redis_t *admin = connect_to(s);
  long long id = client_id(r);
  redisReply *rep = cp_redis_cmd(admin, "CLIENT KILL ID %lld", id);
  assert_non_null(rep);
  assert_int_equal(rep->integer, 1);
  freeReplyObject(rep);

  rep = cp_redis_cmd(r, "SET cp:test:{after-kill} 1");
  assert_non_null(rep);
  assert_int_equal(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  long long id2 = client_id(r);
  assert_true(id2 != id); /* a new connection */

  /* killed while a pipe is queued: exec fails (-1, no replies, errstr set) and keeps the commands;
   * exec again reconnects and runs them, replies by handle */
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t i1 = cp_redis_pipe_cmd(p, "INCR cp:test:{ctr}");
  cp_redis_handle_t i2 = cp_redis_pipe_cmd(p, "INCR cp:test:{ctr}");
  cp_redis_handle_t g = cp_redis_pipe_cmd(p, "GET cp:test:{after-kill}");
  rep = cp_redis_cmd(admin, "CLIENT KILL ID %lld", id2);
  freeReplyObject(rep);
  assert_int_equal(cp_redis_pipe_exec(p, r), -1);
  assert_null(cp_redis_pipe_reply(p, g));
  assert_true(cp_redis_errstr(r)[0] != '\0');
  assert_int_equal(cp_redis_pipe_exec(p, r), 0);
  const redisReply *a1 = cp_redis_pipe_reply(p, i1), *a2 = cp_redis_pipe_reply(p, i2);
  assert_int_equal(a1->type, REDIS_REPLY_INTEGER);
  assert_true(cp_redis_reply_is_int(a2, a1->integer + 1));
  assert_true(cp_redis_reply_is_str(cp_redis_pipe_reply(p, g), "1"));
  assert_true(client_id(r) != id2);
  cp_redis_pipe_destroy(&p);

  cp_redis_destroy(&admin);
  cp_redis_destroy(&r);
}

/* Redis goes away and comes back on the same port: commands fail (NULL + errstr)
 * while it is down and work again, without a new cp_redis_t, once it is back. */
static void test_reconnect_after_restart(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  redisReply *rep = cp_redis_cmd(r, "SET cp:test:{before} 1");
  freeReplyObject(rep);

  srv_stop(s);
  assert_null(cp_redis_cmd(r, "PING"));
  const char *e = cp_redis_errstr(r);
  assert_true(e[0] != '\0');
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", s->port);
  assert_non_null(strstr(e, want));
  assert_int_equal(cp_redis_reconnect(r), -1);
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  cp_redis_handle_t ping = cp_redis_pipe_cmd(p, "PING");
  assert_int_equal(cp_redis_pipe_exec(p, r), -1);   /* down: fails, commands kept */

  assert_int_equal(srv_start(s), 0);
  assert_int_equal(cp_redis_pipe_exec(p, r), 0);    /* back: the same pipe runs */
  const redisReply *pong = cp_redis_pipe_reply(p, ping);
  assert_non_null(pong);
  assert_string_equal(pong->str, "PONG");
  cp_redis_pipe_destroy(&p);
  rep = cp_redis_cmd(r, "PING");
  assert_non_null(rep);
  assert_string_equal(rep->str, "PONG");
  freeReplyObject(rep);
  /* no persistence: the old key is gone, the server is a fresh one */
  rep = cp_redis_cmd(r, "EXISTS cp:test:{before}");
  assert_int_equal(rep->integer, 0);
  freeReplyObject(rep);

  /* restart again while connected (no failed command in between) */
  srv_stop(s);
  assert_int_equal(srv_start(s), 0);
  rep = cp_redis_cmd(r, "SET cp:test:{after} 2"); /* the stale connection fails; one reconnect + retry */
  assert_non_null(rep);
  freeReplyObject(rep);
  expect_str(cp_redis_cmd(r, "GET cp:test:{after}"), "2");
  assert_int_equal(cp_redis_reconnect(r), 0);
  cp_redis_destroy(&r);
}

/* How many times the server ran `cmd` (INFO commandstats), e.g. "eval", "evalsha". */
static long long calls_of(cp_redis_t *r, const char *cmd) {
  redisReply *rep = cp_redis_cmd(r, "INFO commandstats");
  assert_non_null(rep);
  char want[64];
  snprintf(want, sizeof want, "cmdstat_%s:calls=", cmd);
  const char *at = strstr(rep->str, want);
  long long n = at != NULL ? atoll(at + strlen(want)) : 0;
  freeReplyObject(rep);
  return n;
}

static cp_redis_script_t incr_by = CP_REDIS_SCRIPT("incr_by", 1,
    "return redis.call('INCRBY', KEYS[1], ARGV[1])");
static cp_redis_script_t echo_args = CP_REDIS_SCRIPT("echo_args", 2,
    "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2]}");

/* Our SHA-1 of a script is the one Redis computes, at every length around the block edges. */
static void test_script_sha(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  char src[300];
  for (size_t len = 9; len < sizeof src - 1; len += (len > 50 && len < 70) ? 1 : 13) {
    memset(src, 'x', len);   /* "return 'xx...x'" of exactly len bytes */
    memcpy(src, "return '", 8);
    src[len - 1] = '\'';
    src[len] = '\0';
    cp_redis_script_t sc = CP_REDIS_SCRIPT("len", 0, src);
    redisReply *rep = cp_redis_cmd(r, "SCRIPT LOAD %s", src);
    assert_non_null(rep);
    assert_string_equal(rep->str, cp_redis_script_sha(&sc));
    freeReplyObject(rep);
  }
  assert_string_equal(cp_redis_script_sha(&incr_by), cp_redis_script_sha(&incr_by)); /* computed once */
  cp_redis_destroy(&r);
}

/* One script call: EVALSHA, and after SCRIPT FLUSH the same call still works. */
static void test_eval(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  const char *argv[] = {"cp:test:{n}", "5"};
  for (int i = 1; i <= 3; i++) {
    redisReply *rep = cp_redis_eval(r, &incr_by, 2, argv, NULL);
    assert_non_null(rep);
    assert_int_equal(rep->integer, 5 * i);
    freeReplyObject(rep);
    if (i == 2) freeReplyObject(cp_redis_cmd(r, "SCRIPT FLUSH"));
  }
  assert_int_equal(calls_of(r, "evalsha"), 3);
  assert_int_equal(calls_of(r, "eval"), 2);   /* the first call ever, and the one after the flush */
  const char *bad[] = {"cp:test:{str}", "x"};
  freeReplyObject(cp_redis_cmd(r, "SET cp:test:{str} s"));
  assert_null(cp_redis_eval(r, &incr_by, 2, bad, NULL));   /* an error reply: NULL + errstr */
  assert_non_null(strstr(cp_redis_errstr(r), "not an integer"));
  cp_redis_destroy(&r);
}

/* Replies by handle, whatever the mix of printf-style, argv, built and script commands. */
static void test_pipe_handles(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  enum { N = 200 };
  cp_redis_handle_t push[N], get[N];
  for (int i = 0; i < N; i++) {
    push[i] = cp_redis_pipe_cmd(p, "RPUSH cp:test:{list} %d", i);
    const char *argv[] = {"SET", "cp:test:{k}", "v"};
    char val[16];
    snprintf(val, sizeof val, "v%d", i);
    argv[2] = val;
    (void)cp_redis_pipe_argv(p, 3, argv, NULL);
    cp_redis_handle_t h = cp_redis_pipe_start(p, NULL);
    cp_redis_pipe_arg(p, "GET");
    cp_redis_pipe_argf(p, "cp:test:{%s}", "k");
    get[i] = h;
  }
  const char *sargv[] = {"cp:test:{a}", "cp:test:{b}", "x\0y", "z"};
  const size_t slens[] = {11, 11, 3, 1};
  cp_redis_handle_t sc = cp_redis_pipe_script(p, &echo_args, 4, sargv, slens);
  cp_redis_handle_t bad = cp_redis_pipe_cmd(p, "INCR cp:test:{k}");   /* "v199": an error reply */
  cp_redis_handle_t all = cp_redis_pipe_cmd(p, "LRANGE cp:test:{list} 0 -1");
  assert_int_equal(cp_redis_pipe_count(p), 3 * N + 3);
  assert_null(cp_redis_pipe_reply(p, all));   /* not run yet */
  assert_int_equal(cp_redis_pipe_exec(p, r), 0);
  for (int i = N - 1; i >= 0; i--) {   /* any order */
    assert_true(cp_redis_reply_is_int(cp_redis_pipe_reply(p, push[i]), i + 1));
    char want[16];
    snprintf(want, sizeof want, "v%d", i);
    assert_true(cp_redis_reply_is_str(cp_redis_pipe_reply(p, get[i]), want));
  }
  const redisReply *e = cp_redis_reply_array(cp_redis_pipe_reply(p, sc), 4);
  assert_non_null(e);
  assert_true(cp_redis_reply_is_str(e->element[1], "cp:test:{b}"));
  assert_int_equal(e->element[2]->len, 3);
  assert_memory_equal(e->element[2]->str, "x\0y", 3);
  assert_true(cp_redis_reply_is_error(cp_redis_pipe_reply(p, bad)));
  char err[CP_ERRLEN];
  assert_int_equal(cp_redis_pipe_check(p, "test", err, sizeof err), -1);
  assert_non_null(strstr(err, "not an integer"));
  assert_int_equal(cp_redis_pipe_reply(p, all)->elements, N);

  /* reset: reuse the pipe; an empty pipe runs without I/O */
  cp_redis_pipe_reset(p);
  assert_int_equal(cp_redis_pipe_exec(p, r), 0);
  cp_redis_handle_t ok = cp_redis_pipe_cmd(p, "GET cp:test:{k}");
  assert_int_equal(cp_redis_pipe_exec(p, r), 0);
  assert_int_equal(cp_redis_pipe_check(p, "test", err, sizeof err), 0);
  assert_true(cp_redis_reply_is_str(cp_redis_pipe_reply(p, ok), "v199"));
  cp_redis_pipe_destroy(&p);
  assert_null(p);
  cp_redis_pipe_destroy(&p);   /* safe on NULL */
  cp_redis_destroy(&r);
}

/* Scripts in pipelines: loaded once per connection in the same round trip, then EVALSHA only;
 * after SCRIPT FLUSH or a reconnect the calls still work, without the caller knowing. */
static void test_pipe_scripts(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_redis_t *admin = connect_to(s);
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  const char *argv[] = {"cp:test:{n}", "1"};
  long long total = 0;
  for (int round = 0; round < 6; round++) {
    cp_redis_pipe_reset(p);
    cp_redis_handle_t h[10];
    for (int i = 0; i < 10; i++) h[i] = cp_redis_pipe_script(p, &incr_by, 2, argv, NULL);
    if (round == 2) freeReplyObject(cp_redis_cmd(admin, "SCRIPT FLUSH"));
    if (round == 4) freeReplyObject(cp_redis_cmd(admin, "CLIENT KILL TYPE normal SKIPME yes"));
    int rc = cp_redis_pipe_exec(p, r);
    if (rc != 0) {   /* killed: the commands are kept; exec again */
      assert_int_equal(round, 4);
      assert_int_equal(cp_redis_pipe_exec(p, r), 0);
    }
    for (int i = 0; i < 10; i++) assert_true(cp_redis_reply_is_int(cp_redis_pipe_reply(p, h[i]), ++total));
  }
  assert_int_equal(calls_of(admin, "eval"), 10);   /* only the 10 calls right after the flush */
  assert_int_equal(calls_of(admin, "evalsha"), 60);
  assert_true(calls_of(admin, "script|load") <= 3);   /* first connection, after the flush?, after the kill */
  cp_redis_pipe_destroy(&p);
  cp_redis_destroy(&admin);
  cp_redis_destroy(&r);
}

/* Growth: big values and many arguments (cp_xrealloc), binary-safe. */
static void test_pipe_growth(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  enum { BIG = 100000, ARGS = 3000 };
  char *big = cp_xmalloc(BIG);
  for (size_t i = 0; i < BIG; i++) big[i] = (char)(i % 251);
  cp_redis_handle_t set = cp_redis_pipe_cmd(p, "SET cp:test:{big} %b", big, (size_t)BIG);
  cp_redis_handle_t sadd = cp_redis_pipe_start(p, NULL);
  cp_redis_pipe_arg(p, "SADD");
  cp_redis_pipe_arg(p, "cp:test:{set}");
  for (int i = 0; i < ARGS; i++) cp_redis_pipe_argf(p, "m%d", i);
  cp_redis_handle_t get = cp_redis_pipe_cmd(p, "GET cp:test:{big}");
  assert_int_equal(cp_redis_pipe_exec(p, r), 0);
  assert_int_equal(cp_redis_pipe_reply(p, set)->type, REDIS_REPLY_STATUS);
  assert_true(cp_redis_reply_is_int(cp_redis_pipe_reply(p, sadd), ARGS));
  const redisReply *g = cp_redis_pipe_reply(p, get);
  assert_int_equal(g->len, BIG);
  assert_memory_equal(g->str, big, BIG);
  free(big);
  cp_redis_pipe_destroy(&p);
  cp_redis_destroy(&r);
}

/* The reply helpers on real replies. */
static void test_reply_helpers(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  freeReplyObject(cp_redis_cmd(r, "HSET cp:test:{h} a 42 b hello c %s", ""));
  redisReply *m = cp_redis_cmd(r, "HMGET cp:test:{h} a b c missing");
  assert_non_null(cp_redis_reply_array(m, 4));
  assert_null(cp_redis_reply_array(m, 3));
  assert_int_equal(cp_redis_reply_u64(m->element[0]), 42);
  assert_int_equal(cp_redis_reply_u64(m->element[1]), 0);
  assert_int_equal(cp_redis_reply_u64(m->element[3]), 0);
  char buf[6];
  assert_true(cp_redis_reply_copy(m->element[1], buf, sizeof buf));
  assert_string_equal(buf, "hello");
  assert_false(cp_redis_reply_copy(m->element[1], buf, 5));   /* does not fit */
  assert_false(cp_redis_reply_copy(m->element[3], buf, sizeof buf));   /* nil */
  char *d = cp_redis_reply_strdup(m->element[1]);
  assert_string_equal(d, "hello");
  free(d);
  assert_null(cp_redis_reply_strdup(m->element[2]));   /* empty */
  assert_true(cp_redis_reply_is_str(m->element[1], "hello"));
  assert_false(cp_redis_reply_is_str(m->element[1], "hell"));
  freeReplyObject(m);
  redisReply *all = cp_redis_cmd(r, "HGETALL cp:test:{h}");
  assert_string_equal(cp_redis_hfield(all, "b"), "hello");
  assert_null(cp_redis_hfield(all, "missing"));
  freeReplyObject(all);
  redisReply *n = cp_redis_cmd(r, "HLEN cp:test:{h}");
  assert_true(cp_redis_reply_is_int(n, 3));
  assert_int_equal(cp_redis_reply_u64(n), 3);
  freeReplyObject(n);
  cp_redis_destroy(&r);
}

/* Every key family: one builder, the formats of the old macros, a {hash tag} on its entity. */
static void test_keys(void **state) {
  (void)state;
  cp_key_t k;
  assert_string_equal(cp_key_event(&k, "PRV-0001", "e1"), "cp:ev:{PRV-0001:e1}");
  assert_string_equal(cp_key_pending_member(&k, "PRV-0001", "e1"), "PRV-0001:e1");
  assert_string_equal(cp_key_pending(), "cp:pending");
  char small[20];
  assert_true(cp_key_event_into(small, sizeof small, "P", "e1"));
  assert_string_equal(small, "cp:ev:{P:e1}");
  assert_false(cp_key_event_into(small, sizeof small, "PRV-0001", "event-1"));   /* 23 bytes */
  assert_string_equal(small, "");
  assert_string_equal(cp_key_event_of_member(&k, "PRV-0001:e1xyz", 11), "cp:ev:{PRV-0001:e1}");
  assert_string_equal(cp_key_w_entries(&k, "ab"), "cp:w:{ab}:entries");
  assert_string_equal(cp_key_w_cc(&k, "ab"), "cp:w:{ab}:cc");
  assert_string_equal(cp_key_w_awards(&k, "ab"), "cp:w:{ab}:awards");
  assert_string_equal(cp_key_w_award_gen(&k, "ab"), "cp:w:{ab}:award_gen");
  assert_string_equal(cp_key_award_wd(), "cp:award_wd");
  assert_string_equal(cp_key_award_wd_field(&k, "CC", 2, "ab"), "CC:2:ab");
  assert_string_equal(cp_key_reg_indexed(&k, 3), "cp:reg:{3}:indexed");
  assert_string_equal(cp_key_nt_delivery(&k, "msg_1"), "cp:nt:d:{msg_1}");
  assert_string_equal(cp_key_nt_due(), "cp:nt:due");
  assert_string_equal(cp_key_nt_dead(), "cp:nt:dead");
  assert_string_equal(cp_key_exp_due(), "cp:exp:due");
  assert_string_equal(cp_key_exp_lease(), "cp:exp:lease");
  assert_string_equal(cp_key_exp(&k, 17), "cp:exp:{17}");
  assert_string_equal(cp_key_sub(&k, "sub_1"), "cp:sub:{sub_1}");
  assert_string_equal(cp_key_w_subs(&k, "ab"), "cp:w:{ab}:subs");
  assert_string_equal(cp_key_w_profile(&k, "ab"), "cp:w:{ab}:profile");
  assert_string_equal(cp_key_sc(&k, "ff"), "cp:sc:{ff}");
  assert_string_equal(cp_key_scid(&k, "sc_1"), "cp:scid:{sc_1}");
  assert_string_equal(cp_key_scid_subs(&k, "sc_1"), "cp:scid:{sc_1}:subs");
  assert_string_equal(cp_key_w_sc(&k, "ab"), "cp:w:{ab}:sc");
  assert_string_equal(cp_key_w_views(&k, "ab"), "cp:w:{ab}:views");
  assert_string_equal(cp_key_rl_ip(&k, "127.0.0.1"), "cp:rl:ip:{127.0.0.1}");
  assert_string_equal(cp_key_rl_code(&k, "ff"), "cp:rl:code:{ff}");
}

/* A pipe sent on the caller's own connection (as notify's non-blocking one): scripts loaded on the
 * cp_redis_t, commands appended to the raw context, replies handed back, NOSCRIPT re-run. */
static void test_pipe_on_own_connection(void **state) {
  srv_t *s = *state;
  cp_redis_t *r = connect_to(s);
  cp_redis_t *admin = connect_to(s);
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
  assert_true(c != NULL && !c->err);
  cp_redis_pipe_t *p = cp_redis_pipe_new();
  char err[CP_ERRLEN];
  const char *argv[] = {"cp:test:{own}", "2"};
  for (int round = 0; round < 2; round++) {
    cp_redis_pipe_reset(p);
    cp_redis_handle_t a = cp_redis_pipe_script(p, &incr_by, 2, argv, NULL);
    cp_redis_handle_t b = cp_redis_pipe_cmd(p, "GET cp:test:{own}");
    if (round == 1) freeReplyObject(cp_redis_cmd(admin, "SCRIPT FLUSH"));   /* after the load: NOSCRIPT */
    assert_int_equal(cp_redis_pipe_load_scripts(p, r, err, sizeof err), 0);
    if (round == 1) freeReplyObject(cp_redis_cmd(admin, "SCRIPT FLUSH"));
    assert_int_equal(cp_redis_pipe_append_to(p, c), 0);
    redisReply **reps = cp_xcalloc(2, sizeof *reps);
    for (int i = 0; i < 2; i++) assert_int_equal(redisGetReply(c, (void **)&reps[i]), REDIS_OK);
    cp_redis_pipe_take_replies(p, reps, 2);
    if (round == 1) assert_true(cp_redis_reply_is_error(cp_redis_pipe_reply(p, a)));   /* NOSCRIPT */
    assert_int_equal(cp_redis_pipe_fix_noscript(p, r, err, sizeof err), 0);
    assert_true(cp_redis_reply_is_int(cp_redis_pipe_reply(p, a), 2 * (round + 1)));
    if (round == 0) assert_true(cp_redis_reply_is_str(cp_redis_pipe_reply(p, b), "2"));
  }
  cp_redis_pipe_destroy(&p);
  redisFree(c);
  cp_redis_destroy(&admin);
  cp_redis_destroy(&r);
}

int main(void) {
  if (access(REDIS_SERVER, X_OK) != 0) {
    fprintf(stderr, "test_redis: %s not found; install redis-server\n", REDIS_SERVER);
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* writing to a connection the server closed */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_cmd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_reply, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reconnect_after_client_kill, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reconnect_after_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_script_sha, setup, teardown),
      cmocka_unit_test_setup_teardown(test_eval, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipe_handles, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipe_scripts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipe_growth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipe_on_own_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reply_helpers, setup, teardown),
      cmocka_unit_test(test_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
