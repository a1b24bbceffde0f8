/* notify_sched.h -- per-endpoint scheduling: claimed deliveries wait in a local queue
 * and start, oldest first, as slots of the deliverer and of their endpoint free up. */
#ifndef NOTIFY_SCHED_H
#define NOTIFY_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cp_util.h"
#include "notify_deliver.h"
#include "notify_retry.h"

/* What the scheduler promises:
 *  - never more than per_endpoint transfers in flight to one "host:port" (0 = no limit),
 *    nor more than the deliverer's concurrency;
 *  - queued deliveries start oldest first, but an endpoint at its limit never holds back
 *    the deliveries of another endpoint queued behind it;
 *  - a delivery that waited longer than queue_wait_ms (its lease must outlive its attempt)
 *    is handed back (release callback) instead of started, as is one that cannot start;
 *  - fair to every destination: an endpoint whose last attempt got no HTTP answer (timeout,
 *    refused) may have one transfer in flight, and all such endpoints together at most half
 *    of the deliverer's slots, so receivers that hang never delay one that answers; after
 *    WEBHOOK_BREAKER_FAILS unanswered attempts in a row it is parked (its deliveries stay in
 *    Redis, retried after the park by one probe whose answer closes the breaker);
 *  - claims for endpoints that answer 2xx quickly may take up to per_endpoint x 16 (at
 *    most 256) beyond the free slots, queued here (nt_sched_claim_loads); slow or failing
 *    endpoints get no such allowance, so their deliveries stay in Redis for any replica. */
typedef struct nt_sched nt_sched_t;

/* A delivery handed back (not attempted): the service records an NT_MARK_RELEASE. */
typedef void (*nt_sched_release_fn)(const char *id, void *arg);

/* dlv is borrowed (it must outlive the scheduler). */
nt_sched_t *nt_sched_new(nt_deliverer_t *dlv, int per_endpoint, int64_t queue_wait_ms,
                         nt_sched_release_fn release, void *arg);
/* Frees queued deliveries without handing them back (see nt_sched_hand_back_all). */
void nt_sched_destroy(nt_sched_t **s);

/* Queue claimed deliveries (takes each batch[i], leaving it zeroed). */
void nt_sched_enqueue(nt_sched_t *s, nt_claimed_t *batch, size_t n);
/* Start what may start now; hand back the stale ones. No Redis. */
void nt_sched_start(nt_sched_t *s);
/* Deliveries waiting in the queue. */
size_t nt_sched_queued(const nt_sched_t *s);
/* A finished attempt to url with its HTTP status (0 = no answer: timeout, refused, ...): feeds
 * the endpoint's answer time, success and circuit breaker. */
void nt_sched_result(nt_sched_t *s, const char *url, int status, int64_t ms);
/* The circuit breaker: after `fails` attempts in a row with no HTTP answer an endpoint is
 * parked for park_ms (doubling, up to 16x, each time it is parked again without answering in
 * between); 0 = off. */
void nt_sched_set_breaker(nt_sched_t *s, int fails, int64_t park_ms);
/* After results, with due work maybe in Redis: is a claim worth it (free slots with an
 * empty queue, or a fast endpoint's queue down to half its allowance)? */
bool nt_sched_hungry(const nt_sched_t *s, size_t free_slots);
/* The per-endpoint loads of the next claim (in flight + queued - allowance, so a fast
 * endpoint takes its allowance on top of the per-endpoint limit) into *loads (malloc'd,
 * caller frees; its strings point into the scheduler and deliverer until the next
 * enqueue/start). Returns the claim size: free slots plus the fast endpoints' free
 * allowance, bounded by the queue's free room. */
size_t nt_sched_claim_loads(nt_sched_t *s, nt_ep_load_t **loads, size_t *nloads);
/* Shutdown: hand back every queued delivery (release callback) and empty the queue. */
void nt_sched_hand_back_all(nt_sched_t *s);

#endif
