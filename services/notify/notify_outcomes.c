/* notify_outcomes.c -- outcome batching: the outcomes of finished attempts are recorded
 * in batches and sent together with the next claim on the non-blocking connection. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "notify_outcomes.h"
#include "cp_log.h"

void nt_outcomes_add(nt_service_t *s, char op, const char *id, int status, int64_t t_ms) {
  if (s->nmarks == s->markcap) {
    s->markcap = s->markcap ? 2 * s->markcap : 64;
    s->marks = cp_xrealloc(s->marks, s->markcap * sizeof *s->marks);
  }
  if (s->nmarks == 0) s->marks_since = cp_mono_ms();
  nt_mark_t *m = &s->marks[s->nmarks++];
  memset(m, 0, sizeof *m);
  m->op = op;
  snprintf(m->id, sizeof m->id, "%s", id);
  m->status = status;
  m->t_ms = t_ms;
}

/* A finished attempt: queue its outcome (recorded in Redis with the others of this
 * loop turn, by nt_outcomes_send) and log one line. */
void nt_outcomes_on_result(const nt_result_t *res, void *arg) {
  nt_service_t *s = arg;
  const nt_claimed_t *c = res->d;
  int status = (int)res->status;
  const char *outcome;
  if (status >= 200 && status < 300) {
    s->st.delivered++;
    outcome = "delivered";
    nt_outcomes_add(s, NT_MARK_DELIVERED, c->id, status, 0);
  } else if ((s->max_attempts > 0 && c->attempts >= s->max_attempts) ||
             (c->created_ms > 0 && cp_now_ms() - c->created_ms >= s->retry_window_ms)) {
    s->st.failed++;
    s->st.dead++;
    outcome = "dead";
    nt_outcomes_add(s, NT_MARK_DEAD, c->id, status, cp_now_ms());
  } else {
    s->st.failed++;
    outcome = "retry";
    int64_t now = cp_now_ms(), due = now + nt_backoff_ms(c->attempts, s->backoff_ms, s->backoff_max_ms);
    /* The last try lands at the end of the retry window, not after it. */
    if (c->created_ms > 0 && due > c->created_ms + s->retry_window_ms)
      due = c->created_ms + s->retry_window_ms > now ? c->created_ms + s->retry_window_ms : now + 1;
    nt_outcomes_add(s, NT_MARK_RETRY, c->id, status, due);
  }
  cp_log(status >= 200 && status < 300 ? CP_LOG_INFO : CP_LOG_WARN, "webhook delivery",
         CP_KV_STR("id", c->id), CP_KV_STR("type", c->type), CP_KV_STR("provider", c->provider),
         CP_KV_INT("status", status), CP_KV_INT("attempt", c->attempts),
         CP_KV_STR("outcome", outcome), CP_KV_INT("ms", res->elapsed_ms),
         CP_KV_STR("error", res->curl_code ? res->error : ""), CP_KV_END);
  nt_sched_result(s->sched, c->url, (int)status, res->elapsed_ms);
  s->results = true;                  /* a slot (and an endpoint slot) is free again */
}

/* Should this turn claim? Always when forced (next_claim passed: new deliveries were
 * stored, the last claim filled up, or the CLAIM_EVERY_MS period); otherwise only
 * after results and while Redis may hold due work: when nothing local can use a free
 * slot, or a fast endpoint's queue is down to half its allowance. */
static bool want_claim(nt_service_t *s, size_t free_slots, int64_t mono) {
  if (mono >= s->next_claim) return true;
  if (!s->results || !s->due_maybe) return false;
  return nt_sched_hungry(s->sched, free_slots);
}

/* Put the outcomes of a failed pipe back in front of the queue of outcomes (marks are
 * idempotent, so re-sending ones that did run is harmless). */
static void restore_sent(nt_service_t *s) {
  for (size_t i = 0; i < s->nsent; i++)
    nt_outcomes_add(s, s->sent[i].op, s->sent[i].id, s->sent[i].status, s->sent[i].t_ms);
  s->nsent = 0;
}

/* Once per loop turn, without waiting: when no pipe is in flight, send the queued
 * outcomes and (when want_claim says so) a claim on the non-blocking connection;
 * nt_outcomes_collect reads the replies. Outcomes alone wait a little to share a round trip
 * (a crash meanwhile can only mean a re-send of the same webhook-id). */
void nt_outcomes_send(nt_service_t *s, bool claim) {
  char err[CP_ERRLEN];
  if (nt_aredis_busy(s->ar) || nt_loop_redis_paused(s)) return;
  int64_t mono = cp_mono_ms();
  nt_ep_load_t *loads = NULL;
  size_t nloads = 0, room = 0;
  if (claim && want_claim(s, nt_deliverer_room(s->dlv), mono)) room = nt_sched_claim_loads(s->sched, &loads, &nloads);
  bool marks_due = s->nmarks >= NT_MARKS_FLUSH_N || (s->nmarks > 0 && (!claim || mono - s->marks_since >= NT_MARKS_FLUSH_MS));
  if (!marks_due && room == 0) {
    free(loads);
    return;
  }
  cp_redis_pipe_t *p = s->pipe;
  cp_redis_pipe_reset(p);
  s->nmark_calls = nt_marks_calls(s->nmarks);
  s->mark_calls = cp_xrealloc(s->mark_calls, (s->nmark_calls + 1) * sizeof *s->mark_calls);
  nt_marks_append(p, s->marks, s->nmarks, s->mark_calls);
  s->claiming = room > 0;
  s->claim_room = room;
  if (room > 0) {
    /* Look 4x past the free slots (as a plain claim does, so one full endpoint does not
     * hide others) but only 1x past the prefetch part (ids of endpoints it is for). */
    size_t free_slots = nt_deliverer_room(s->dlv), scan = 0;
    if (s->per_endpoint > 0) scan = 4 * free_slots + (room > free_slots ? room - free_slots : 0) + 64;
    if (scan > 4096) scan = room > 4096 ? room : 4096;
    s->claim = nt_claim_append(p, cp_now_ms(), s->lease_ms, room, scan, s->per_endpoint, loads, nloads);
  }
  free(loads);   /* its endpoint strings were copied into the pipe */
  /* the outcomes move to `sent` until their replies are in */
  nt_mark_t *t = s->sent;
  size_t tcap = s->sentcap;
  s->sent = s->marks;
  s->sentcap = s->markcap;
  s->nsent = s->nmarks;
  s->marks = t;
  s->markcap = tcap;
  s->nmarks = 0;
  if (room > 0) s->results = false;   /* results from now on call for the next claim */
  if (nt_aredis_send(s->ar, p, s->redis, err, sizeof err) < 0) {
    restore_sent(s);
    s->claiming = false;
    nt_loop_redis_failed(s, err);
  }
}

/* The replies of the pipe in flight, if they are in: outcomes recorded; claimed
 * deliveries go to the local queue and start. */
void nt_outcomes_collect(nt_service_t *s) {
  char err[CP_ERRLEN];
  if (!nt_aredis_busy(s->ar)) return;
  int rc = nt_aredis_progress(s->ar, err, sizeof err);
  if (rc == 0) return;
  cp_redis_pipe_t *p = s->pipe;
  if (rc > 0 && cp_redis_pipe_fix_noscript(p, s->redis, err, sizeof err) < 0) rc = -1;
  if (rc < 0) {   /* a claim that ran meanwhile comes back when its lease ends */
    restore_sent(s);
    s->claiming = false;
    nt_loop_redis_failed(s, err);
    return;
  }
  for (size_t i = 0; i < s->nmark_calls; i++) {
    const redisReply *rep = cp_redis_pipe_reply(p, s->mark_calls[i]);
    if (!rep || cp_redis_reply_is_error(rep)) {
      /* a script failure, not a connection one: the lease brings those deliveries back */
      s->st.redis_errors++;
      cp_err(err, sizeof err, "recording delivery outcomes: %s", rep ? rep->str : "no reply");
      cp_log_error("redis error", CP_KV_STR("error", err), CP_KV_END);
    }
  }
  s->nsent = 0;
  s->nmark_calls = 0;
  if (!s->claiming) return;
  size_t room = s->claim_room, n = 0;
  s->claiming = false;
  nt_claimed_t *batch = cp_xcalloc(room, sizeof *batch);
  bool more = false;
  if (nt_claim_parse(cp_redis_pipe_reply(p, s->claim), room, batch, &n, &more, err, sizeof err) < 0) {
    nt_loop_redis_failed(s, err);
    free(batch);
    return;
  }
  int64_t mono = cp_mono_ms();
  s->due_maybe = more;
  /* A full batch means more may be due: claim again next turn. Otherwise wait for
   * want_claim or the next period. */
  s->next_claim = n == room ? mono : mono + NT_CLAIM_EVERY_MS;
  nt_sched_enqueue(s->sched, batch, n);
  free(batch);
  nt_sched_start(s->sched);
}

/* Wait (bounded) for the pipe in flight, then record every queued outcome on the
 * blocking connection: at shutdown. */
void nt_outcomes_settle(nt_service_t *s) {
  char err[CP_ERRLEN];
  int64_t until = cp_mono_ms() + NT_DRAIN_MS;
  while (nt_aredis_busy(s->ar) && cp_mono_ms() < until) {
    short ev = 0;
    int fd = nt_aredis_fd(s->ar, &ev);
    if (fd >= 0) {
      struct pollfd pfd = {.fd = fd, .events = ev, .revents = 0};
      (void)poll(&pfd, 1, NT_WAIT_MS);
    }
    nt_outcomes_collect(s);
  }
  if (s->nmarks == 0) return;
  if (nt_marks_apply(s->redis, s->marks, s->nmarks, err, sizeof err) < 0)
    cp_log_warn("could not record outcomes; their leases will bring them back",
                CP_KV_INT("deliveries", s->nmarks), CP_KV_STR("error", err), CP_KV_END);
  else
    s->nmarks = 0;
}


void nt_outcomes_release(const char *id, void *arg) {
  nt_outcomes_add(arg, NT_MARK_RELEASE, id, 0, cp_now_ms());
}
