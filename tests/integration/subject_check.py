"""subject_check.py -- open register entries of format 2 (common/cp_subject.h) from the subject key
store's files, for tests, with python3-nacl and hashlib (implementations not ours):

    slots = store_keys(system)            # slot -> worker key, read from the store's files
    pseudonym, r = open_sealed(pe, slots) # XChaCha20-Poly1305 with the entry's subject and slot as AD
    worker_of(system, pe)                 # the worker's pseudonym (bytes) of an entry of either format
"""

import hashlib

import nacl.bindings

SUBJECT_DOMAIN = b"carepass/subject/v1\n"
OPENING_DOMAIN = b"carepass/opening/v1\n"
WORKERS_MAGIC = b"carepass-subject-workers/v1\n"
SLOTS_MAGIC = b"carepass-subject-slots/v1\n"


def store_keys(system):
    """slot -> worker key, from the subject key store's files."""
    d = system.keys_dir / "subject-keys"
    w = (d / "workers").read_bytes()
    s = (d / "slots").read_bytes()
    assert w.startswith(WORKERS_MAGIC) and s.startswith(SLOTS_MAGIC)
    w, s = w[len(WORKERS_MAGIC):], s[len(SLOTS_MAGIC):]
    keys = {w[i:i + 16]: w[i + 16:i + 48] for i in range(0, len(w), 48)}
    return {s[i:i + 16]: keys[s[i + 16:i + 32]] for i in range(0, len(s), 32) if s[i + 16:i + 32] in keys}


def open_sealed(pe, slots):
    """(pseudonym, r) of a format-2 entry; raises KeyError for an unknown slot."""
    key = slots[pe.subject_slot]
    nonce, ct = pe.sealed_opening[:24], pe.sealed_opening[24:]
    plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        ct, OPENING_DOMAIN + pe.subject + pe.subject_slot, nonce, key)
    p, r = plain[:32], plain[32:]
    assert hashlib.blake2b(SUBJECT_DOMAIN + p + r, digest_size=32).digest() == pe.subject
    return p, r


def worker_of(system, pe):
    """The worker's pseudonym (32 bytes) named by an entry: format 1 carries it, format 2 is
    opened through the store."""
    if pe.version < 2:
        return pe.worker_pseudonym
    return open_sealed(pe, store_keys(system))[0]
