/* notify_outbox.h -- notify's side of the outbox (notify_outbox.c): a consumer of the stream
 * cp:{outbox} in the group "notify" (common/cp_outbox.h). */
#ifndef NOTIFY_OUTBOX_H
#define NOTIFY_OUTBOX_H

#include <stdbool.h>
#include "notify_loop.h"

#define NT_OUTBOX_COUNT 256            /* most entries read (or taken over) per call */
#define NT_CONSUMER_FORGET_LEASES 10   /* a consumer with nothing pending, idle this many leases, is forgotten */

/* Name this replica's consumer (<hostname>-<pid>: a container restarted keeps its name and
 * rereads what it held) and the lease after which another replica takes entries over. */
void nt_outbox_init(nt_service_t *s, int64_t lease_ms);

/* One turn: make the group if needed; take over entries another replica held past the lease
 * (and, after a whole pass, forget consumers gone for good); read this replica's own unacknowledged
 * entries after a start or a failure, else new ones; store their deliveries with the
 * acknowledgement. True when more may be waiting right now. */
bool nt_outbox_turn(nt_service_t *s);

#endif
