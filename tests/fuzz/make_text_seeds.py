#!/usr/bin/python3
"""make_text_seeds.py -- writes the seeds of the fuzz targets that take wire messages, HTTP and
data files, from the project's own sample data (data/). Run once by hand from tests/fuzz with
PYTHONPATH=<build>/gen/py (Debian's python3-protobuf); its output is committed. The register
seeds come from make_seeds.c."""
import json
import os

from carepass.v1 import event_pb2 as E

DATA = '../../data/'


def put(rel, b):
    os.makedirs(os.path.dirname(rel), exist_ok=True)
    with open(rel, 'wb') as f:
        f.write(b if isinstance(b, bytes) else b.encode())


def ev(d):
    e = E.CompletionEvent()
    for k, v in d.items():
        if k == 'evidence_hash':
            e.evidence_hash = bytes.fromhex(v)
        elif k == 'kind':
            e.kind = 2 if v == 'revocation' else 1
        else:
            setattr(e, k, v)
    return e


evs = [json.loads(l) for l in open(DATA + 'sample-events.ndjson')]
rv = [json.loads(l) for l in open(DATA + 'sample-revocations.ndjson')]
nd = open(DATA + 'sample-events.ndjson', 'rb').read().split(b'\n')
csv = open(DATA + 'sample-events.csv', 'rb').read().split(b'\n')

# SubmitRequest frames, valid and the text faults the wire check judges
r = E.SubmitRequest(request_id='req-1', ack=1)
r.events.extend([ev(d) for d in evs[:3]])
put('corpus/submit_request/seed-three-events', r.SerializeToString())
r = E.SubmitRequest(request_id='req-2', ack=2)
r.events.extend([ev(evs[0])])
put('corpus/submit_request/seed-committed', r.SerializeToString())
r = E.SubmitRequest(request_id='req-3', ack=1)
r.events.extend([ev(d) for d in rv[:2]])
put('corpus/submit_request/seed-revocations', r.SerializeToString())
r = E.SubmitRequest(request_id='req-4')
e = ev(evs[1])
e.assessor_id = 'ASR\x00x'
r.events.extend([e])
put('corpus/submit_request/seed-nul-in-string', r.SerializeToString())
b = bytearray(E.SubmitRequest(request_id='req-5', events=[ev(evs[2])]).SerializeToString())
b[b.find(b'CC-STD-03') + 2] = 0xff
put('corpus/submit_request/seed-invalid-utf8', bytes(b))
put('corpus/submit_request/seed-empty', b'')

# CLI input: a format byte (0 sniff, 1 CSV, 2 NDJSON, 3 "events.csv", 4 "events.ndjson") + the file
put('corpus/cli_input/seed-csv', b'\x01' + b'\n'.join(csv[:5]) + b'\n')
put('corpus/cli_input/seed-csv-sniffed', b'\x00' + b'\n'.join(csv[:3]) + b'\n')
put('corpus/cli_input/seed-csv-quoted', b'\x03' + csv[0] +
    b'\r\n"q,1",PRV-0001,AB123456C,CC-STD-01,2025-05-06,"ASR ""x""",,completion,,\r\n"multi\nline",,,,,,,,,\n')
put('corpus/cli_input/seed-ndjson', b'\x02' + b'\n'.join(nd[:4]) + b'\n')
put('corpus/cli_input/seed-ndjson-revocations', b'\x04' + open(DATA + 'sample-revocations.ndjson', 'rb').read()[:1500])

# POST /v1/events bodies: a byte (media type % 5, ack (/5) % 4), then the body
put('corpus/gw_events/seed-json-array', b'\x01' + json.dumps(evs[:3]).encode())
put('corpus/gw_events/seed-ndjson', b'\x02' + b'\n'.join(nd[:3]) + b'\n')
put('corpus/gw_events/seed-committed', b'\x06' + json.dumps([evs[0]]).encode())
put('corpus/gw_events/seed-kind-int', b'\x00' + json.dumps([dict(evs[1], kind=2, evidence_hash='')]).encode())
put('corpus/gw_events/seed-empty-array', b'\x01[]')

# POST /v1/check bodies: a byte (bit 1 = the form, POST /check; else odd = /v1/check/bundle), then the body
put('corpus/gw_check/seed-check', b'\x00' + json.dumps(
    {"share_code": "ABC-DEF-GHJ", "date_of_birth": "1990-04-12", "employer": "Oak House Care"}).encode())
put('corpus/gw_check/seed-bundle', b'\x01' + json.dumps({"share_code": "ABCDEFGHJ", "date_of_birth": "1990-04-12"}).encode())
put('corpus/gw_check/seed-form', b'\x02' + b'share_code=ABC-DEF-GHJ&dob_day=12&dob_month=4&dob_year=1990'
    b'&role=care-worker&employer=Oak+%3Cb%3ETree%3C%2Fb%3E')
put('corpus/gw_check/seed-form-bad', b'\x02' + b'share_code=%ff%00&dob_day=%&dob_month=99&dob_year=&role=x&role=y')
put('corpus/gw_check/seed-format', b'\x00' + json.dumps(
    {"share_code": "ABC-DEF-GHJ", "date_of_birth": "1990-04-12", "format": "bundle", "employer": "\u202eevil"}).encode())

# POST /v1/subscriptions bodies
put('corpus/gw_subscribe/seed-subscribe', json.dumps(
    {"share_code": "ABC-DEF-GHJ", "date_of_birth": "1990-04-12", "url": "https://hooks.example.com/carepass",
     "employer": "Oak House Care", "events": ["record.revoked", "record.expiring"]}))
put('corpus/gw_subscribe/seed-private-url', json.dumps(
    {"share_code": "ABC-DEF-GHJ", "date_of_birth": "1990-04-12", "url": "http://[::ffff:127.0.0.1]:80/x"}))
put('corpus/gw_subscribe/seed-all-events', json.dumps(
    {"share_code": "ABC-DEF-GHJ", "date_of_birth": "1990-04-12", "url": "https://203.0.113.9/hook", "events": None}))

# raw HTTP: what a client sends on one connection
H = 'Host: gateway.fuzz\r\n'
put('corpus/gw_request/seed-healthz', 'GET /healthz HTTP/1.1\r\n' + H + '\r\n')
put('corpus/gw_request/seed-page', 'GET / HTTP/1.1\r\n' + H + '\r\n')
put('corpus/gw_request/seed-log', 'GET /log/checkpoint HTTP/1.1\r\n' + H + '\r\nGET /log/tile/0/000.p/5 HTTP/1.1\r\n' + H +
    '\r\nGET /log/tile/entries/000.p/5 HTTP/1.1\r\n' + H + '\r\n')
put('corpus/gw_request/seed-keys', 'GET /v1/vkey HTTP/1.1\r\n' + H + '\r\nGET /v1/webhook-key HTTP/1.1\r\n' + H +
    'Connection: close\r\n\r\n')
body = json.dumps(evs[:2])
put('corpus/gw_request/seed-events', 'POST /v1/events?ack=accepted HTTP/1.1\r\n' + H +
    'Authorization: Bearer @PROVIDER_TOKEN@\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body))
body = '{"share_code":"ABC-DEF-GHJ","date_of_birth":"1990-04-12"}'
put('corpus/gw_request/seed-check-forwarded', 'POST /v1/check HTTP/1.1\r\n' + H +
    'X-Forwarded-For: 198.51.100.7, 10.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body))
put('corpus/gw_request/seed-share-codes', 'GET /v1/share-codes HTTP/1.1\r\n' + H + 'Authorization: Bearer @WORKER_TOKEN@\r\n\r\n'
    'DELETE /v1/share-codes/abc HTTP/1.1\r\n' + H + 'Authorization: Bearer @WORKER_TOKEN@\r\nContent-Length: 0\r\n\r\n')
put('corpus/gw_request/seed-chunked', 'POST /v1/subscriptions HTTP/1.1\r\n' + H +
    'Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n')
put('corpus/gw_request/seed-bad-framing', 'POST /v1/check HTTP/1.1\r\n' + H + 'Content-Length: 2\r\nTransfer-Encoding: gzip\r\n\r\n{}')
put('corpus/gw_request/seed-bad-method', b'P\xffOST /v1/check HTTP/1.1\r\n' + H.encode() + b'\r\n')
put('corpus/gw_request/seed-views', 'GET /v1/views HTTP/1.1\r\n' + H + 'Authorization: Bearer cpw_AAAA\r\n\r\n'
    'GET /log/tile/0/x001/234 HTTP/1.1\r\n' + H + '\r\n')

# the provider registry and the catalogue
put('corpus/providers/seed-sample', open(DATA + 'providers.json', 'rb').read())
put('corpus/providers/seed-small', json.dumps({"version": 1, "providers": [
    {"id": "PRV-9", "name": "n", "curve_public_key": "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
     "webhook_url": "https://hooks.example.com/x",
     "approvals": [{"code": "RF-*", "from": "2015-01-01", "to": "2030-12-31"}]}]}))
put('corpus/providers/seed-bad-url', json.dumps({"version": 1, "providers": [
    {"id": "PRV-9", "name": "n", "curve_public_key": "", "webhook_url": "http://169.254.169.254/", "approvals": []}]}))
put('corpus/employers/seed-sample', open(DATA + 'employers.json', 'rb').read())
put('corpus/employers/seed-bad-cqc', json.dumps({"version": 1, "employers": [
    {"id": "EMP-9", "name": "n", "cqc_location_id": "1-12x", "webhook_url": "https://hooks.example.com/x"}]}))
put('corpus/gw_request/seed-employer', 'GET /v1/subscriptions HTTP/1.1\r\n' + H + 'Authorization: Bearer @EMPLOYER_TOKEN@\r\n\r\n'
    'DELETE /v1/subscriptions/sub_00 HTTP/1.1\r\n' + H + 'Authorization: Bearer @EMPLOYER_TOKEN@\r\nContent-Length: 0\r\n\r\n'
    'POST /v1/check HTTP/1.1\r\n' + H + 'Authorization: Bearer cpe_AAAA\r\nContent-Length: 2\r\n\r\n{}')
put('corpus/catalogue/seed-sample', open(DATA + 'catalogue.json', 'rb').read())
put('corpus/catalogue/seed-small', json.dumps({"version": 1, "qualifications": [
    {"code": "RF-X", "title": "t", "kind": "refresher", "assessed": False, "refresh_months": 12, "derived": False},
    {"code": "AW", "title": "a", "kind": "award", "derived": True, "requires": ["RF-X"]}]}))

# checkpoint and tlog-proof edge cases (the spec's example; a size of 2^64-1)
put('corpus/checkpoint/seed-huge-size', 'carepass.local/register\n18446744073709551615\n'
    '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\u2014 carepass.local/register AAAAAAAA\n')
put('corpus/tlog_proof/seed-spec', 'c2sp.org/tlog-proof@v1\nextra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6\nindex 73894\n'
    'gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n\nexample.com/fancylog\n109482\n'
    'sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n\u2014 example.com/fancylog hI2DJw==\n')
