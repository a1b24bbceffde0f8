/* notify_expiry_scan.h -- the expiry scan of the notify loop (notify_expiry_scan.c). */
#ifndef NOTIFY_EXPIRY_SCAN_H
#define NOTIFY_EXPIRY_SCAN_H

#include <stdbool.h>
#include "notify_loop.h"

/* Every EXPIRY_SCAN_MS, the webhooks of records passing an
 * expiry threshold today. */
void nt_expiry_scan_turn(nt_service_t *s);

#endif
