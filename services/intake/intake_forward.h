/* intake_forward.h -- queue new events to verify (intake_forward.c). */
#ifndef INTAKE_FORWARD_H
#define INTAKE_FORWARD_H

#include "intake.h"

/* PUSH pending bytes to verify without blocking; -1 when the queue is full/unreachable. */
int intake_forward_verify(intake_t *in, const uint8_t *pending, size_t len) CP_WUR;

#endif
