/* intake_forward.h -- queue new events to verify and notify (intake_forward.c). */
#ifndef INTAKE_FORWARD_H
#define INTAKE_FORWARD_H

#include "intake.h"

/* PUSH pending bytes to verify without blocking; -1 when the queue is full/unreachable. */
int intake_forward_verify(intake_t *in, const uint8_t *pending, size_t len) CP_WUR;
void intake_forward_accepted(intake_t *in, const Carepass__V1__PendingEvent *pe);

#endif
