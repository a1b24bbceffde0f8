/* config_table.c -- every CAREPASS_* variable: default, bounds, who reads it, meaning.
 * Add an option here and it appears in --help and the README table. */
#include "cp_config.h"

#define K (1024LL)
#define REDIS_USERS (CP_SVC_INTAKE | CP_SVC_VERIFY | CP_SVC_SIGNER | CP_SVC_NOTIFY | CP_SVC_CLI | CP_SVC_GATEWAY)

const cp_config_def_t cp_config_table[] = {
  /* everyone */
  {"LOG_LEVEL", CP_CFG_STR, "info", 0, 8, CP_SVC_ALL, "minimum log level: debug, info, warn or error"},
  {"HEALTH_DIR", CP_CFG_STR, "", 0, 4096, CP_SVC_ALL & ~CP_SVC_CLI, "directory for <service>.health heartbeat files (empty = none)"},
  {"TODAY", CP_CFG_STR, "", 0, 10, CP_SVC_ALL, "override today's date (YYYY-MM-DD) for tests; empty = the real clock"},
  {"TODAY_FILE", CP_CFG_STR, "", 0, 4096, CP_SVC_ALL, "file holding today's date (YYYY-MM-DD), re-read every 200 ms, for tests that move the clock; wins over TODAY; empty = unused"},

  /* Redis */
  {"REDIS_HOST", CP_CFG_STR, "127.0.0.1", 1, 255, REDIS_USERS, "Redis host"},
  {"REDIS_PORT", CP_CFG_INT, "6379", 1, 65535, REDIS_USERS, "Redis port"},
  {"REDIS_TIMEOUT_MS", CP_CFG_INT, "2000", 10, 60000, REDIS_USERS, "Redis connect and command timeout in milliseconds"},

  /* the bus: queues are zmq_proxy pairs; the bus binds both ends, services connect */
  {"BUS_VERIFY_IN", CP_CFG_STR, "tcp://127.0.0.1:5601", 1, 255, CP_SVC_BUS | CP_SVC_INTAKE | CP_SVC_GATEWAY | CP_SVC_CLI, "verify queue, producer side (intake PUSHes accepted events here, `carepass revoke` operator revocations)"},
  {"BUS_VERIFY_OUT", CP_CFG_STR, "tcp://127.0.0.1:5602", 1, 255, CP_SVC_BUS | CP_SVC_VERIFY, "verify queue, consumer side (verify replicas PULL from here)"},
  {"BUS_NOTIFY_IN", CP_CFG_STR, "tcp://127.0.0.1:5603", 1, 255, CP_SVC_BUS | CP_SVC_VERIFY | CP_SVC_SIGNER | CP_SVC_INTAKE | CP_SVC_GATEWAY, "notify queue, producer side (verify and signer PUSH notification jobs)"},
  {"BUS_NOTIFY_OUT", CP_CFG_STR, "tcp://127.0.0.1:5604", 1, 255, CP_SVC_BUS | CP_SVC_NOTIFY, "notify queue, consumer side (notify replicas PULL from here)"},
  {"BUS_RESULTS_IN", CP_CFG_STR, "tcp://127.0.0.1:5605", 1, 255, CP_SVC_BUS | CP_SVC_VERIFY | CP_SVC_SIGNER, "results topic, publisher side (final event outcomes, XSUB)"},
  {"BUS_RESULTS_OUT", CP_CFG_STR, "tcp://127.0.0.1:5606", 1, 255, CP_SVC_BUS | CP_SVC_INTAKE | CP_SVC_GATEWAY, "results topic, subscriber side (intake waits for committed acks, XPUB)"},
  {"BUS_HWM", CP_CFG_INT, "100000", 100, 10000000, CP_SVC_ALL & ~CP_SVC_CLI, "ZeroMQ high-water mark (messages queued per socket)"},

  /* intake */
  {"INTAKE_BIND", CP_CFG_STR, "tcp://127.0.0.1:5555", 1, 255, CP_SVC_INTAKE, "provider-facing ROUTER endpoint (CurveZMQ)"},
  {"INTAKE_ENDPOINT", CP_CFG_STR, "tcp://127.0.0.1:5555", 1, 255, CP_SVC_CLI, "where the CLI connects to intake"},
  {"INTAKE_CURVE_KEY", CP_CFG_STR, "var/keys/intake.curve", 1, 4096, CP_SVC_INTAKE | CP_SVC_CLI, "intake's CurveZMQ server key pair file (created at first start; public key also in <file>.pub)"},
  {"INTAKE_ID", CP_CFG_STR, "", 0, 64, CP_SVC_INTAKE, "this intake replica's id for result routing (empty = hostname-pid)"},
  {"MAX_MESSAGE_BYTES", CP_CFG_INT, "4194304", 1024, 67108864, CP_SVC_INTAKE | CP_SVC_GATEWAY, "largest SubmitRequest answered with an error reply; twice this drops the connection"},
  {"MAX_BATCH", CP_CFG_INT, "1000", 1, 100000, CP_SVC_INTAKE | CP_SVC_GATEWAY | CP_SVC_CLI, "most events in one batch"},
  {"ACK_TIMEOUT_MS", CP_CFG_INT, "30000", 100, 600000, CP_SVC_INTAKE | CP_SVC_GATEWAY, "how long a committed-ack request waits before answering with the states reached"},
  {"REDRIVE_AFTER_MS", CP_CFG_INT, "30000", 100, 86400000, CP_SVC_INTAKE | CP_SVC_GATEWAY | CP_SVC_VERIFY | CP_SVC_CLI, "re-send an accepted event to verify if it has no final state after this long (also derived awards and operator revocations)"},
  {"PSEUDONYM_SECRET", CP_CFG_STR, "var/keys/pseudonym.secret", 1, 4096, CP_SVC_INTAKE | CP_SVC_CLI | CP_SVC_GATEWAY, "deployment secret for worker pseudonyms (created at first start, 0600)"},

  /* catalogue and registry */
  {"CATALOGUE", CP_CFG_STR, "data/catalogue.json", 1, 4096, CP_SVC_VERIFY | CP_SVC_CLI | CP_SVC_GATEWAY, "qualification catalogue file"},
  {"PROVIDERS", CP_CFG_STR, "data/providers.json", 1, 4096, CP_SVC_INTAKE | CP_SVC_VERIFY | CP_SVC_NOTIFY | CP_SVC_CLI | CP_SVC_GATEWAY, "provider registry file"},

  /* signer */
  {"SIGNER_ENDPOINTS", CP_CFG_STR, "tcp://127.0.0.1:5610", 1, 4096, CP_SVC_VERIFY | CP_SVC_CLI, "comma-separated signer shard endpoints, in shard order (verify routes by worker pseudonym)"},
  {"SIGNER_BIND", CP_CFG_STR, "tcp://127.0.0.1:5610", 1, 255, CP_SVC_SIGNER, "this signer shard's PULL endpoint"},
  {"SHARD", CP_CFG_INT, "0", 0, 1023, CP_SVC_SIGNER, "register shard number this signer owns"},
  {"REGISTER_DIR", CP_CFG_STR, "var/register", 1, 4096, CP_SVC_SIGNER | CP_SVC_CLI | CP_SVC_GATEWAY, "register (tlog-tiles) directory of the shard"},
  {"LOG_ORIGIN", CP_CFG_STR, "carepass.local/register", 1, 120, CP_SVC_SIGNER | CP_SVC_CLI | CP_SVC_GATEWAY, "checkpoint origin line and signing key name"},
  {"SIGNING_KEY", CP_CFG_STR, "var/keys/signer.key", 1, 4096, CP_SVC_SIGNER | CP_SVC_CLI, "Ed25519 register signing key file (created at first start, 0600)"},
  {"SIGNER_BATCH_MAX", CP_CFG_INT, "1024", 1, 65536, CP_SVC_SIGNER, "most entries appended per batch (one fsync per batch)"},
  {"SIGNER_BATCH_WAIT_MS", CP_CFG_INT, "5", 0, 1000, CP_SVC_SIGNER, "how long to wait for more entries before closing a batch"},

  /* notify */
  {"NOTIFY_SIGNING_KEY", CP_CFG_STR, "var/keys/notify.key", 1, 4096, CP_SVC_NOTIFY | CP_SVC_CLI | CP_SVC_GATEWAY, "Ed25519 webhook signing key file (created at first start, 0600)"},
  {"WEBHOOK_TIMEOUT_MS", CP_CFG_INT, "5000", 100, 60000, CP_SVC_NOTIFY, "per-delivery HTTP timeout"},
  {"WEBHOOK_MAX_ATTEMPTS", CP_CFG_INT, "0", 0, 100000, CP_SVC_NOTIFY, "attempts before a delivery goes to the dead-letter list (0 = no count limit: WEBHOOK_RETRY_WINDOW_S decides)"},
  {"WEBHOOK_RETRY_WINDOW_S", CP_CFG_INT, "259200", 1, 2592000, CP_SVC_NOTIFY, "a delivery still failing this long after it was created goes to the dead-letter list (3 days)"},
  {"WEBHOOK_BACKOFF_MS", CP_CFG_INT, "1000", 1, 3600000, CP_SVC_NOTIFY, "first retry delay; doubles each attempt, with jitter"},
  {"WEBHOOK_BACKOFF_MAX_MS", CP_CFG_INT, "3600000", 1, 86400000, CP_SVC_NOTIFY, "longest retry delay"},
  {"WEBHOOK_CONCURRENCY", CP_CFG_INT, "64", 1, 4096, CP_SVC_NOTIFY, "deliveries in flight at once"},
  {"WEBHOOK_PER_ENDPOINT", CP_CFG_INT, "8", 1, 4096, CP_SVC_NOTIFY, "deliveries in flight at once to one host:port (per notify replica); more wait in Redis (a few, for endpoints that answer fast, in notify)"},
  {"EXPIRY_SCAN_MS", CP_CFG_INT, "1000", 50, 3600000, CP_SVC_NOTIFY, "how often notify looks for records passing an expiry threshold (90/30/7 days before, the day after)"},
  {"EXPIRY_SCAN_BATCH", CP_CFG_INT, "256", 1, 100000, CP_SVC_NOTIFY, "most records one expiry scan takes"},

  /* gateway (HTTP edge) */
  {"GATEWAY_BIND", CP_CFG_STR, "127.0.0.1:8080", 3, 255, CP_SVC_GATEWAY, "HTTP listen address host:port (IPv4; 0.0.0.0 = every interface)"},
  {"GATEWAY_THREADS", CP_CFG_INT, "4", 1, 256, CP_SVC_GATEWAY, "HTTP event loops (threads), each with its own libmicrohttpd daemon on the shared address; each loop waits for Redis during its batches of checks"},
  {"GATEWAY_MAX_BODY", CP_CFG_INT, "1048576", 1024, 67108864, CP_SVC_GATEWAY, "largest request body in bytes; bigger gets 413 BODY_TOO_LARGE"},
  {"GATEWAY_TIMEOUT_S", CP_CFG_INT, "30", 1, 3600, CP_SVC_GATEWAY, "a connection idle (or sending this slowly) this long is closed (slowloris)"},
  {"GATEWAY_PER_IP_LIMIT", CP_CFG_INT, "64", 0, 100000, CP_SVC_GATEWAY, "concurrent connections from one client address (0 = no limit)"},
  {"GATEWAY_MAX_CONNECTIONS", CP_CFG_INT, "1024", 1, 100000, CP_SVC_GATEWAY, "concurrent HTTP connections in total"},
  {"GATEWAY_CONN_MEMORY", CP_CFG_INT, "32768", 4096, 1048576, CP_SVC_GATEWAY, "memory per connection for the request line and headers; more gets 431/413"},
  {"TOKEN_SECRET", CP_CFG_STR, "var/keys/token.secret", 1, 4096, CP_SVC_GATEWAY | CP_SVC_CLI, "deployment secret that MACs provider (cpp_) and worker (cpw_) API tokens (created at first start, 0600)"},
};

const size_t cp_config_table_len = sizeof(cp_config_table) / sizeof(cp_config_table[0]);
