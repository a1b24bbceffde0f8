// verify_standardwebhooks.mjs -- check captured webhook deliveries with the Standard Webhooks
// reference library (npm standardwebhooks, pinned in tests/package.json), as a receiver would:
// new Webhook(secret).verify(payload, headers).
//
// stdin: a JSON array of {"secret": "whsec_...", "headers": {"webhook-id": ..., ...},
//        "body_b64": "<the exact body bytes, base64>"}
// stdout: a JSON array, one {"ok": true} or {"ok": false, "error": "..."} per input, in order.
// Exit status 0 when it ran (whatever the verdicts), 3 when the module is not installed.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
let Webhook;
try {
  ({ Webhook } = require("standardwebhooks"));   // resolves to tests/node_modules
} catch (e) {
  process.stderr.write(`standardwebhooks is not installed (npm ci --prefix tests): ${e.message}\n`);
  process.exit(3);
}

const items = JSON.parse(readFileSync(0, "utf8"));
const out = items.map(({ secret, headers, body_b64 }) => {
  try {
    new Webhook(secret).verify(Buffer.from(body_b64, "base64"), headers);
    return { ok: true };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(out) + "\n");
