/* main.c -- signer: the single writer of one register shard. Parse, start, loop until SIGTERM, stop. */
#include <stdio.h>

#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"
#include "signer.h"

int main(int argc, char **argv) {
  int code = 0;
  if (cp_service_init(argc, argv, SIGNER_NAME, CP_SVC_SIGNER,
                      "sign verified records and append them to one register shard (tlog-tiles)", &code) != 0)
    return code;
  static signer_t s;
  char err[CP_ERRLEN];
  int rc = 0;
  if (signer_start(&s, err, sizeof err) != 0) {
    cp_log_error("signer cannot start", CP_KV_STR("error", err), CP_KV_END);
    rc = 1;
    goto out;
  }
  cp_log_info("signer started", CP_KV_INT("size", reg_size(s.log)), CP_KV_END);
  while (!cp_stop_requested) {
    cp_service_heartbeat(SIGNER_NAME);
    if (signer_batch_run(&s) != 0) {
      cp_log_error("signer loop failed", CP_KV_END);
      rc = 1;
      break;
    }
  }
  /* SIGTERM: the signed batch still held is appended and announced before exit */
  if (rc == 0 && signer_batch_drain(&s) != 0) {
    cp_log_error("signer could not append its last batch", CP_KV_END);
    rc = 1;
  }
  cp_log_info("signer stopping", CP_KV_INT("size", reg_size(s.log)), CP_KV_INT("appended", s.appended),
              CP_KV_INT("duplicates", s.duplicates), CP_KV_INT("dropped", s.dropped), CP_KV_END);
out:
  signer_stop(&s);
  cp_config_free();
  return rc;
}
