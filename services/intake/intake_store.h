/* intake_store.h -- state reads for waiting requests (intake_store.c; claims: ing_store_claim in cp_ingest.h). */
#ifndef INTAKE_STORE_H
#define INTAKE_STORE_H

#include "intake.h"

/* Read the states of the waiting answers of reqs[0..nreq-1] in one pipeline and
 * apply the final ones (clearing waiting). -1 when Redis is unavailable. */
int intake_store_refresh(intake_t *in, intake_req_t **reqs, size_t nreq) CP_WUR;

#endif
