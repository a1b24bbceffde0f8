/* main.c -- signer: the single writer of one register shard, run by cp_service_main. */
#include "cp_config.h"
#include "cp_log.h"
#include "cp_service.h"
#include "signer.h"

static int signer_svc_create(void **self, char *err, size_t errlen) {
  signer_t *s = NULL;
  int rc = signer_new(&s, err, errlen);
  *self = s;
  return rc == 0 ? 0 : 1;
}

/* One pass of the batch pipeline: collect and sign the next batch while the held one is appended. */
static int signer_svc_turn(void *self, int timeout_ms) {
  if (signer_batch_run(self, timeout_ms) != 0) {
    cp_log_error("signer loop failed", CP_KV_END);
    return -1;
  }
  return 0;
}

/* SIGTERM: the signed batch still held is appended and announced before exit. */
static int signer_svc_drain(void *self) {
  if (signer_batch_drain(self) != 0) {
    cp_log_error("signer could not append its last batch", CP_KV_END);
    return -1;
  }
  return 0;
}

static void signer_svc_destroy(void **self) {
  signer_t *s = *self;
  if (s != NULL) signer_log_counts(s);
  signer_destroy(&s);
  *self = NULL;
}

static const cp_service_def_t signer_service = {
    .name = SIGNER_NAME,
    .service = CP_SVC_SIGNER,
    .summary = "sign verified records and append them to one register shard (tlog-tiles)",
    .create = signer_svc_create,
    .turn = signer_svc_turn,
    .drain = signer_svc_drain,
    .destroy = signer_svc_destroy,
};

int main(int argc, char **argv) { return cp_service_main(argc, argv, &signer_service); }
