/* intake_redrive.h -- re-send accepted events that have no final state yet (intake_redrive.c). */
#ifndef INTAKE_REDRIVE_H
#define INTAKE_REDRIVE_H

#include "intake.h"

void intake_redrive(intake_t *in);

#endif
