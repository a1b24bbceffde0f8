// openapi_check.mjs -- validate recorded gateway exchanges against the OpenAPI 3.1 document.
//   node openapi_check.mjs services/gateway/web/openapi.json exchanges.jsonl
// Each line of exchanges.jsonl: {"method", "path", "status", "content_type", "listener",
// "json" (parsed body, JSON replies), "truncated"}; written by tests/integration/api_contract.py.
// First the document itself is validated against the OpenAPI 3.1 schema
// (@seriousme/openapi-schema-validator); then each exchange must match a path and operation of the
// document served on its listener ("x-carepass-listeners", default ["api"]), a documented status
// (exact, NXX or default), one of that response's media types, and for JSON the response schema
// (ajv, JSON Schema 2020-12, formats from ajv-formats). Rules the document states in its
// description and that no operation can carry:
//   - a path no operation matches, or an operation not served on that listener: 404 with an Error;
//   - a documented path asked with another method: 405 with an Error;
//   - 431 (request header fields too large) is libmicrohttpd's own answer before any route.
// A path parameter whose name ends in "Path" matches several segments (tlog tile paths).
// Prints "ok N exchanges" or one "FAIL ..." line per violation; exit status 1 on any.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Validator } = require("@seriousme/openapi-schema-validator");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default ?? require("ajv-formats");

const [docPath, exchangesPath] = process.argv.slice(2);
const doc = JSON.parse(readFileSync(docPath, "utf8"));
const failures = [];

const validator = new Validator();
const res = await validator.validate(doc);
if (!res.valid) {
  failures.push(`FAIL the document is not valid OpenAPI ${doc.openapi}: ${JSON.stringify(res.errors).slice(0, 2000)}`);
}

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(doc, "openapi.json");
const compiled = new Map();
const pointer = (parts) => "#/" + parts.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");
function schemaAt(parts) {
  const ref = "openapi.json" + pointer(parts);
  if (!compiled.has(ref)) compiled.set(ref, ajv.compile({ $ref: ref }));
  return compiled.get(ref);
}

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"];
const templates = Object.keys(doc.paths).map((t) => {
  const re = t.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{([A-Za-z0-9_]+)\}/g, (_, name) =>
    name.endsWith("Path") ? "(.*)" : "([^/]+)");
  return { template: t, re: new RegExp("^" + re + "$") };
});
function findPath(path) {
  // an exact template first (/v1/check before /v1/check/{...}), then the first that matches
  return templates.find((t) => t.template === path) ?? templates.find((t) => t.re.test(path));
}
function isError(body) {
  return body && typeof body === "object" && body.error && typeof body.error.code === "string" &&
    /^[A-Z][A-Z0-9_]*$/.test(body.error.code) && typeof body.error.message === "string" && body.error.message.length > 0;
}
function mediaMatches(ctype, media) {
  const base = (ctype || "").split(";")[0].trim().toLowerCase();
  return base === media.toLowerCase();
}

const lines = readFileSync(exchangesPath, "utf8").split("\n").filter((l) => l.trim() !== "");
let n = 0;
for (const line of lines) {
  const ex = JSON.parse(line);
  n++;
  const where = `${ex.method} ${ex.path} -> ${ex.status} (${ex.listener ?? "api"})`;
  const fail = (why) => failures.push(`FAIL ${where}: ${why}`);
  if (ex.status === 431) continue;
  const p = findPath(ex.path);
  const method = ex.method.toLowerCase() === "head" ? "get" : ex.method.toLowerCase();
  const item = p ? doc.paths[p.template] : undefined;
  const op = item ? item[method] : undefined;
  const listeners = op ? (op["x-carepass-listeners"] ?? ["api"]) : [];
  if (!item || (op && !listeners.includes(ex.listener ?? "api"))) {
    if (ex.status !== 404 || !isError(ex.json)) fail("no route serves this path here, so the answer must be 404 with an Error object");
    continue;
  }
  if (!op) {
    if (ex.status !== 405 || !isError(ex.json)) fail(`the document has no ${method} on ${p.template}: the answer must be 405 with an Error object`);
    continue;
  }
  const code = String(ex.status);
  const key = op.responses[code] !== undefined ? code : op.responses[code[0] + "XX"] !== undefined ? code[0] + "XX" :
    op.responses.default !== undefined ? "default" : undefined;
  if (key === undefined) { fail(`status ${code} is not documented for ${method} ${p.template}`); continue; }
  let respParts = ["paths", p.template, method, "responses", key];
  let resp = op.responses[key];
  if (resp.$ref) {
    const name = resp.$ref.split("/").pop();
    respParts = ["components", "responses", name];
    resp = doc.components.responses[name];
  }
  const content = resp.content ?? {};
  if (Object.keys(content).length === 0) continue;
  if (ex.method.toUpperCase() === "HEAD") continue;
  const media = Object.keys(content).find((m) => mediaMatches(ex.content_type, m));
  if (media === undefined) { fail(`content type "${ex.content_type}" is not one of ${Object.keys(content).join(", ")}`); continue; }
  if (!media.endsWith("json") || ex.truncated) continue;
  if (!("json" in ex)) { fail("the body is not valid JSON"); continue; }
  const validate = schemaAt([...respParts, "content", media, "schema"]);
  if (!validate(ex.json)) {
    fail(`body does not match the schema: ${ajv.errorsText(validate.errors, { separator: "; " }).slice(0, 600)}`);
  }
}

for (const f of failures.slice(0, 50)) console.log(f);
if (failures.length > 50) console.log(`FAIL ... and ${failures.length - 50} more`);
console.log(failures.length ? `api contract: ${failures.length} violations in ${n} exchanges` : `api contract: ok, ${n} exchanges match ${docPath.split("/").pop()}`);
process.exit(failures.length ? 1 : 0);
