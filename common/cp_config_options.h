/* cp_config_options.h -- the configuration table itself: every CAREPASS_* variable, one row each.
 * Included by cp_config.h (which makes the cp_opt_t enum of it) and config_table.c (which makes
 * the table); add a row here and it appears in --help, the README table and as CP_OPT_<NAME>.
 *   CP_OPT(name, type, default, min, max, services, validator, meaning)
 * min/max bound the value of an INT and the length of a STR; the validator (CP_V_*, cp_config.h)
 * checks the form of the value beyond its bounds. */
#ifndef CP_CONFIG_REDIS_USERS
#define CP_CONFIG_REDIS_USERS (CP_SVC_INTAKE | CP_SVC_VERIFY | CP_SVC_SIGNER | CP_SVC_NOTIFY | CP_SVC_CLI | CP_SVC_GATEWAY)
#endif

/* everyone */
CP_OPT(LOG_LEVEL, STR, "info", 0, 8, CP_SVC_ALL, CP_V_LOG_LEVEL,
       "minimum log level: debug, info, warn or error")
CP_OPT(HEALTH_DIR, STR, "", 0, 4096, CP_SVC_ALL & ~CP_SVC_CLI, CP_V_PATH,
       "directory for <service>.health heartbeat files (empty = none)")
CP_OPT(TODAY, STR, "", 0, 10, CP_SVC_ALL, CP_V_DATE,
       "override today's date (YYYY-MM-DD) for tests; empty = the real clock")
CP_OPT(TODAY_FILE, STR, "", 0, 4096, CP_SVC_ALL, CP_V_PATH,
       "file holding today's date (YYYY-MM-DD), re-read every 200 ms, for tests that move the clock; wins over TODAY; empty = unused")
CP_OPT(TEST_CRASH_POINT, STR, "", 0, 64, CP_SVC_SIGNER | CP_SVC_VERIFY, CP_V_CRASH_POINT,
       "tests only: SIGKILL this process the n-th time it reaches the named point (<point>:<n>, cp_crash.h); empty = off")

/* Redis */
CP_OPT(REDIS_HOST, STR, "127.0.0.1", 1, 255, CP_CONFIG_REDIS_USERS, CP_V_HOST,
       "Redis host")
CP_OPT(REDIS_PORT, INT, "6379", 1, 65535, CP_CONFIG_REDIS_USERS, CP_V_PORT,
       "Redis port")
CP_OPT(REDIS_TIMEOUT_MS, INT, "2000", 10, 60000, CP_CONFIG_REDIS_USERS, CP_V_DURATION,
       "Redis connect and command timeout in milliseconds")
CP_OPT(REDIS_SENTINELS, STR, "", 0, 1023, CP_CONFIG_REDIS_USERS, CP_V_NONE,
       "Redis Sentinel addresses host:port,host:port: the primary is asked of them at every (re)connect, so a failover is followed (empty = REDIS_HOST:REDIS_PORT)")
CP_OPT(REDIS_MASTER_NAME, STR, "carepass", 1, 127, CP_CONFIG_REDIS_USERS, CP_V_NONE,
       "the name the sentinels monitor the primary under (with REDIS_SENTINELS)")
CP_OPT(REDIS_MIN_REPLICAS, INT, "0", 0, 16, CP_CONFIG_REDIS_USERS, CP_V_NONE,
       "an accepted ack is given only once the event's claim has reached this many replicas (WAIT); 0 = the primary alone")
CP_OPT(REDIS_REPLICA_TIMEOUT_MS, INT, "1000", 10, 60000, CP_CONFIG_REDIS_USERS, CP_V_DURATION,
       "how long a claim waits for REDIS_MIN_REPLICAS replicas before the batch is answered unavailable (resend)")

/* the bus: queues are zmq_proxy pairs; the bus binds both ends, services connect */
CP_OPT(BUS_VERIFY_IN, STR, "tcp://127.0.0.1:5601", 1, 255, CP_SVC_BUS | CP_SVC_INTAKE | CP_SVC_GATEWAY | CP_SVC_CLI, CP_V_ZMQ_ENDPOINT,
       "verify queue, producer side (intake PUSHes accepted events here, `carepass revoke` operator revocations)")
CP_OPT(BUS_VERIFY_OUT, STR, "tcp://127.0.0.1:5602", 1, 255, CP_SVC_BUS | CP_SVC_VERIFY, CP_V_ZMQ_ENDPOINT,
       "verify queue, consumer side (verify replicas PULL from here)")
CP_OPT(BUS_RESULTS_IN, STR, "tcp://127.0.0.1:5605", 1, 255, CP_SVC_BUS | CP_SVC_VERIFY | CP_SVC_SIGNER, CP_V_ZMQ_ENDPOINT,
       "results topic, publisher side (final event outcomes, XSUB)")
CP_OPT(BUS_RESULTS_OUT, STR, "tcp://127.0.0.1:5606", 1, 255, CP_SVC_BUS | CP_SVC_INTAKE | CP_SVC_GATEWAY, CP_V_ZMQ_ENDPOINT,
       "results topic, subscriber side (intake waits for committed acks, XPUB)")
CP_OPT(OUTBOX_MAX, INT, "1000000", 100, 100000000, CP_SVC_INTAKE | CP_SVC_GATEWAY, CP_V_NONE,
       "most notifications owed and not yet stored by notify (the outbox stream cp:{outbox}); at the bound new events are answered BUSY (not stored; resend later)")
CP_OPT(BUS_HWM, INT, "100000", 100, 10000000, CP_SVC_ALL & ~CP_SVC_CLI, CP_V_NONE,
       "ZeroMQ high-water mark (messages queued per socket)")

/* intake */
CP_OPT(INTAKE_BIND, STR, "tcp://127.0.0.1:5555", 1, 255, CP_SVC_INTAKE, CP_V_ZMQ_ENDPOINT,
       "provider-facing ROUTER endpoint (CurveZMQ)")
CP_OPT(INTAKE_ENDPOINT, STR, "tcp://127.0.0.1:5555", 1, 255, CP_SVC_CLI, CP_V_ZMQ_ENDPOINT,
       "where the CLI connects to intake")
CP_OPT(INTAKE_CURVE_KEY, STR, "var/keys/intake.curve", 1, 4096, CP_SVC_INTAKE | CP_SVC_CLI, CP_V_PATH,
       "intake's CurveZMQ server key pair file (created at first start; public key also in <file>.pub)")
CP_OPT(INTAKE_ID, STR, "", 0, 64, CP_SVC_INTAKE, CP_V_NAME,
       "this intake replica's id for result routing (empty = hostname-pid)")
CP_OPT(MAX_MESSAGE_BYTES, INT, "4194304", 1024, 67108864, CP_SVC_INTAKE | CP_SVC_GATEWAY, CP_V_NONE,
       "largest SubmitRequest answered with an error reply; twice this drops the connection")
CP_OPT(MAX_BATCH, INT, "1000", 1, 100000, CP_SVC_INTAKE | CP_SVC_GATEWAY | CP_SVC_CLI, CP_V_NONE,
       "most events in one batch")
CP_OPT(ACK_TIMEOUT_MS, INT, "30000", 100, 600000, CP_SVC_INTAKE | CP_SVC_GATEWAY, CP_V_DURATION,
       "how long a committed-ack request waits before answering with the states reached")
CP_OPT(REDRIVE_AFTER_MS, INT, "30000", 100, 86400000, CP_SVC_INTAKE | CP_SVC_GATEWAY | CP_SVC_VERIFY | CP_SVC_CLI, CP_V_DURATION,
       "re-send an accepted event to verify if it has no final state after this long (also derived awards and operator revocations)")
CP_OPT(PSEUDONYM_SECRET, STR, "var/keys/pseudonym.secret", 1, 4096, CP_SVC_INTAKE | CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_PATH,
       "deployment secret for worker pseudonyms (created at first start, 0600)")

/* verify */
CP_OPT(AWARD_TAG_SECRET, STR, "var/keys/award-tag.secret", 1, 4096, CP_SVC_VERIFY, CP_V_PATH,
       "deployment secret that keys the tag in derived-award event ids, so no one can find a worker's awards from a pseudonym (created at first start, 0600; verify replicas share it)")

/* catalogue and registry */
CP_OPT(ROLES, STR, "data/roles.json", 1, 4096, CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_PATH,
       "the Care Workforce Pathway roles and what each requires (data/roles.json)")
CP_OPT(ASCWDS_CATEGORIES, STR, "data/asc-wds-categories.json", 1, 4096, CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_PATH,
       "carepass codes mapped to ASC-WDS training categories, for the training bulk-upload file (data/asc-wds-categories.json)")
CP_OPT(CATALOGUE, STR, "data/catalogue.json", 1, 4096, CP_SVC_VERIFY | CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_PATH,
       "qualification catalogue file")
CP_OPT(PROVIDERS, STR, "data/providers.json", 1, 4096, CP_SVC_INTAKE | CP_SVC_VERIFY | CP_SVC_NOTIFY | CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_PATH,
       "provider registry file")
CP_OPT(EMPLOYERS, STR, "data/employers.json", 1, 4096, CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_PATH,
       "employer registry file: who may hold an employer token (cpe_...), own subscriptions and the per-employer failed-check ceiling")

/* signer */
CP_OPT(SIGNER_ENDPOINTS, STR, "tcp://127.0.0.1:5610", 1, 4096, CP_SVC_VERIFY | CP_SVC_CLI, CP_V_ZMQ_ENDPOINTS,
       "comma-separated signer shard endpoints, in shard order (verify routes by worker pseudonym)")
CP_OPT(SIGNER_BIND, STR, "tcp://127.0.0.1:5610", 1, 255, CP_SVC_SIGNER, CP_V_ZMQ_ENDPOINT,
       "this signer shard's PULL endpoint")
CP_OPT(SHARD, INT, "0", 0, 1023, CP_SVC_SIGNER, CP_V_NONE,
       "register shard number this signer owns")
CP_OPT(REGISTER_DIR, STR, "var/register", 1, 4096, CP_SVC_SIGNER | CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_PATH,
       "register (tlog-tiles) directory of the shard")
CP_OPT(LOG_ORIGIN, STR, "carepass.local/register", 1, 120, CP_SVC_SIGNER | CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_ORIGIN,
       "checkpoint origin line and signing key name")
CP_OPT(SIGNING_KEY, STR, "var/keys/signer.key", 1, 4096, CP_SVC_SIGNER | CP_SVC_CLI, CP_V_PATH,
       "Ed25519 register signing key file (created at first start, 0600)")
CP_OPT(ENTRY_FORMAT, INT, "2", 1, 2, CP_SVC_SIGNER | CP_SVC_GATEWAY, CP_V_NONE,
       "register entry format the signer writes: 2 (the worker as a per-entry commitment: nothing in the public register links a worker's entries), or 1 (the worker's pseudonym in every entry; for registers not yet migrated; the gateway then refuses consents, which need 2)")
CP_OPT(SUBJECT_KEYS, STR, "var/keys/subject-keys", 1, 4096, CP_SVC_SIGNER | CP_SVC_CLI, CP_V_PATH,
       "subject key store directory (per-worker keys that open format-2 entries; created at first start, 0700; never served, back up with the register)")
CP_OPT(SIGNER_BATCH_MAX, INT, "1024", 1, 65536, CP_SVC_SIGNER, CP_V_NONE,
       "most entries appended per batch (one fsync per batch)")
CP_OPT(SIGNER_BATCH_WAIT_MS, INT, "5", 0, 1000, CP_SVC_SIGNER, CP_V_DURATION,
       "how long to wait for more entries before closing a batch")

/* notify */
CP_OPT(NOTIFY_SIGNING_KEY, STR, "var/keys/notify.key", 1, 4096, CP_SVC_NOTIFY | CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_PATH,
       "Ed25519 webhook signing key file (created at first start, 0600)")
CP_OPT(WEBHOOK_SECRETS, STR, "var/keys/webhook-secrets", 1, 4096, CP_SVC_NOTIFY | CP_SVC_CLI, CP_V_PATH,
       "training providers' webhook secrets (whsec_, the v1 HMAC signature), one 0600 file written by carepass webhook-secret; notify re-reads it when it changes (missing = none: v1a only)")
CP_OPT(WEBHOOK_SECRET_OVERLAP_S, INT, "86400", 0, 2592000, CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_DURATION,
       "after a webhook secret is rotated (carepass webhook-secret --rotate, POST /v1/subscriptions/<id>/secret) the previous one still signs for this long")
CP_OPT(WEBHOOK_ALLOW_HOSTS, STR, "", 0, 4096, CP_SVC_INTAKE | CP_SVC_VERIFY | CP_SVC_NOTIFY | CP_SVC_CLI | CP_SVC_GATEWAY, CP_V_ALLOW_LIST,
       "internal webhook destinations allowed beside public addresses: host names and address ranges, e.g. \"hooks.internal,10.20.0.0/16\" (empty = public addresses only)")
CP_OPT(NOTIFY_OUTBOX_LEASE_MS, INT, "30000", 500, 3600000, CP_SVC_NOTIFY, CP_V_DURATION,
       "an outbox entry a notify replica read and has not acknowledged for this long is taken over by another (the replica is presumed dead)")
CP_OPT(WEBHOOK_TIMEOUT_MS, INT, "5000", 100, 60000, CP_SVC_NOTIFY, CP_V_DURATION,
       "per-delivery HTTP timeout")
CP_OPT(WEBHOOK_MAX_ATTEMPTS, INT, "0", 0, 100000, CP_SVC_NOTIFY, CP_V_NONE,
       "attempts before a delivery goes to the dead-letter list (0 = no count limit: WEBHOOK_RETRY_WINDOW_S decides)")
CP_OPT(WEBHOOK_RETRY_WINDOW_S, INT, "259200", 1, 2592000, CP_SVC_NOTIFY, CP_V_DURATION,
       "a delivery still failing this long after it was created goes to the dead-letter list (3 days)")
CP_OPT(WEBHOOK_BACKOFF_MS, INT, "1000", 1, 3600000, CP_SVC_NOTIFY, CP_V_DURATION,
       "first retry delay; doubles each attempt, with jitter")
CP_OPT(WEBHOOK_BACKOFF_MAX_MS, INT, "3600000", 1, 86400000, CP_SVC_NOTIFY, CP_V_DURATION,
       "longest retry delay")
CP_OPT(WEBHOOK_BREAKER_FAILS, INT, "5", 0, 1000, CP_SVC_NOTIFY, CP_V_NONE,
       "attempts in a row without an HTTP answer (timeout, refused) after which an endpoint is parked (0 = never parked; a failing endpoint still gets one transfer at a time)")
CP_OPT(WEBHOOK_BREAKER_PARK_MS, INT, "30000", 100, 3600000, CP_SVC_NOTIFY, CP_V_DURATION,
       "how long a parked endpoint gets no deliveries (doubling, up to 16x, while it stays silent); then one probe")
CP_OPT(WEBHOOK_CONCURRENCY, INT, "64", 1, 4096, CP_SVC_NOTIFY, CP_V_NONE,
       "deliveries in flight at once")
CP_OPT(WEBHOOK_PER_ENDPOINT, INT, "8", 1, 4096, CP_SVC_NOTIFY, CP_V_NONE,
       "deliveries in flight at once to one host:port (per notify replica); more wait in Redis (a few, for endpoints that answer fast, in notify)")
CP_OPT(EXPIRY_SCAN_MS, INT, "1000", 50, 3600000, CP_SVC_NOTIFY, CP_V_DURATION,
       "how often notify looks for records passing an expiry threshold (90/30/7 days before, the day after)")
CP_OPT(EXPIRY_SCAN_BATCH, INT, "256", 1, 100000, CP_SVC_NOTIFY, CP_V_NONE,
       "most records one expiry scan takes")

/* gateway (HTTP edge) */
CP_OPT(GATEWAY_BIND, STR, "127.0.0.1:8080", 3, 255, CP_SVC_GATEWAY, CP_V_HOSTPORT,
       "HTTP listen address host:port (IPv4; 0.0.0.0 = every interface)")
CP_OPT(GATEWAY_THREADS, INT, "4", 1, 256, CP_SVC_GATEWAY, CP_V_NONE,
       "HTTP event loops (threads), each with its own libmicrohttpd daemon on the shared address; each loop waits for Redis during its batches of checks")
CP_OPT(GATEWAY_MAX_BODY, INT, "1048576", 1024, 67108864, CP_SVC_GATEWAY, CP_V_NONE,
       "largest request body in bytes; bigger gets 413 BODY_TOO_LARGE")
CP_OPT(GATEWAY_TIMEOUT_S, INT, "30", 1, 3600, CP_SVC_GATEWAY, CP_V_DURATION,
       "a connection idle (or sending this slowly) this long is closed (slowloris)")
CP_OPT(GATEWAY_CHECK_FAILS_PER_ADDRESS, INT, "60", 1, 100000, CP_SVC_GATEWAY, CP_V_NONE,
       "failed share-code checks from one client address per 15 minutes before it is refused (429): high enough for an office of managers behind one address, see README \"Rate limits\"")
CP_OPT(GATEWAY_CHECK_FAILS_PER_CODE, INT, "5", 1, 100, CP_SVC_GATEWAY, CP_V_NONE,
       "failed checks naming one share code per 15 minutes, from any address, before the code is locked (429): the defence against date-of-birth guessing")
CP_OPT(GATEWAY_CHECK_FAILS_PER_EMPLOYER, INT, "200", 1, 100000, CP_SVC_GATEWAY, CP_V_NONE,
       "failed share-code checks per 15 minutes of one authenticated employer (Bearer cpe_...), counted per employer instead of per address; the per-code limit still holds, see README \"Rate limits\"")
CP_OPT(GATEWAY_PER_IP_LIMIT, INT, "64", 0, 100000, CP_SVC_GATEWAY, CP_V_NONE,
       "concurrent connections from one client address (0 = no limit)")
CP_OPT(GATEWAY_MAX_CONNECTIONS, INT, "1024", 1, 100000, CP_SVC_GATEWAY, CP_V_NONE,
       "concurrent HTTP connections in total")
CP_OPT(GATEWAY_CONN_MEMORY, INT, "32768", 4096, 1048576, CP_SVC_GATEWAY, CP_V_NONE,
       "memory per connection for the request line and headers; more gets 431/413")
CP_OPT(GATEWAY_HEAD_TIMEOUT_S, INT, "10", 1, 3600, CP_SVC_GATEWAY, CP_V_DURATION,
       "the whole request head (request line and headers) must arrive within this many seconds of the connection (or, on keep-alive, of the request line); slower is closed")
CP_OPT(GATEWAY_MIN_BODY_RATE, INT, "1024", 0, 100000000, CP_SVC_GATEWAY, CP_V_NONE,
       "bytes per second a request body must average once GATEWAY_HEAD_TIMEOUT_S has passed since its head; slower is closed (0 = off)")
CP_OPT(GATEWAY_RESERVED_PCT, INT, "25", 0, 90, CP_SVC_GATEWAY, CP_V_NONE,
       "percent of GATEWAY_MAX_CONNECTIONS kept for addresses with fewer than GATEWAY_FEW_CONNECTIONS connections, so a few busy addresses cannot fill every slot")
CP_OPT(GATEWAY_FEW_CONNECTIONS, INT, "4", 1, 100000, CP_SVC_GATEWAY, CP_V_NONE,
       "an address with fewer open connections than this may use the reserved share of connections")
CP_OPT(GATEWAY_TRUSTED_PROXIES, STR, "", 0, 4096, CP_SVC_GATEWAY, CP_V_NONE,
       "addresses and CIDRs (IPv4, IPv6; comma-separated) of the proxies in front: from them the client address is the right-most untrusted GATEWAY_FORWARDED_HEADER entry; empty = the peer is the client")
CP_OPT(GATEWAY_FORWARDED_HEADER, STR, "x-forwarded-for", 9, 15, CP_SVC_GATEWAY, CP_V_NONE,
       "which header the trusted proxies set: x-forwarded-for or forwarded (RFC 7239 for=); only that one is read")
CP_OPT(GATEWAY_SUBS_PER_CODE, INT, "5", 1, 1000, CP_SVC_GATEWAY, CP_V_NONE,
       "most live subscriptions made with one share code (409 SUBSCRIPTION_LIMIT past it)")
CP_OPT(GATEWAY_SUBS_PER_WORKER, INT, "50", 1, 100000, CP_SVC_GATEWAY, CP_V_NONE,
       "most live subscriptions about one worker, over all their share codes (409 SUBSCRIPTION_LIMIT past it)")
CP_OPT(GATEWAY_CONSENTS_PER_WORKER, INT, "20", 1, 1000, CP_SVC_GATEWAY, CP_V_NONE,
       "most live ongoing-access consents one worker may hold, pending ones included (409 CONSENT_LIMIT past it)")
CP_OPT(GATEWAY_METRICS_BIND, STR, "127.0.0.1:9464", 0, 255, CP_SVC_GATEWAY, CP_V_NONE,
       "operator-only listener host:port (IPv4) serving GET /metrics and /healthz; /metrics is not served on GATEWAY_BIND; empty = off")
CP_OPT(TOKEN_SECRET, STR, "var/keys/token.secret", 1, 4096, CP_SVC_GATEWAY | CP_SVC_CLI, CP_V_PATH,
       "deployment secret that MACs provider (cpp_) and worker (cpw_) API tokens (created at first start, 0600)")
CP_OPT(REVOKED_TOKENS, STR, "var/keys/revoked-tokens", 1, 4096, CP_SVC_GATEWAY | CP_SVC_CLI, CP_V_PATH,
       "revocation list of API token ids (carepass token revoke); the gateway re-reads it when it changes (missing = none)")
CP_OPT(SHARE_CODE_SECRET, STR, "var/keys/share-code.secret", 1, 4096, CP_SVC_GATEWAY, CP_V_PATH,
       "deployment secret that keys share-code hashes, apart from the token secret (created at first start, 0600)")

