/* intake_wait.h -- the table of requests waiting for committed acks (intake_wait.c). */
#ifndef INTAKE_WAIT_H
#define INTAKE_WAIT_H

#include "intake.h"

intake_waits_t *intake_waits_new(void);
void intake_waits_destroy(intake_waits_t **w);
/* Register req (with nwaiting > 0) under each of its waiting answers. */
void intake_waits_add(intake_waits_t *w, intake_req_t *req);
/* Remove req from the table (it is about to be answered). */
void intake_waits_remove(intake_waits_t *w, intake_req_t *req);
/* Apply a final result to every waiting request holding that event. */
void intake_waits_result(intake_waits_t *w, const Carepass__V1__EventResult *res);
/* Set an answer's final state (from a result or Redis); clears waiting. */
void intake_answer_final(intake_req_t *req, size_t i, ing_st_t st, const char *reason,
                         const char *message, uint64_t index);
/* Answer complete requests, re-read due ones from Redis, time out the late ones.
 * With `all`, answer every waiting request now (shutdown). */
void intake_waits_tick(intake_t *in, bool all);
size_t intake_waits_count(const intake_waits_t *w);
/* Monotonic ms of the earliest refresh/deadline (INT64_MAX when nobody waits). */
int64_t intake_waits_next_ms(const intake_waits_t *w);

#endif
