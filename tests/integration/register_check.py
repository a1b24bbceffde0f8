"""register_check.py -- an independent reader of a carepass register directory, for tests.

Written from the specs (C2SP tlog-tiles, tlog-checkpoint, signed-note, RFC 6962) with
Python's hashlib and python3-nacl, sharing no code with the C implementation, so that
tests can check the C writer against a second implementation:

    reg = Register(path)              # reads vkey, checkpoint, entry bundles
    reg.verify_checkpoint()           # Ed25519 note signature with the vkey
    reg.entries                       # list of SignedEntry bytes, index order
    reg.root() == reg.checkpoint_root # RFC 6962 root over every entry
    reg.verify_entry(i)               # Ed25519 over "carepass/entry/v1\\n" || entry

Key history (key rotation): entry 0 of a new register is a KEY entry (entry_type 4)
announcing the signing key, signed by itself; each rotation appends a KEY entry
announcing the new key, signed by the old one. A key announced at index k signs
indexes k+1 .. (next key entry), inclusive; the genesis key signs from 0.

    spans = reg.key_history(register_pb2)      # [KeySpan], checked link by link
    reg.verify_entry_history(i, register_pb2)  # with the key valid at index i
    reg.checkpoint_signers()                   # key ids whose note signatures verify (vkeys)
"""

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

ENTRY_DOMAIN = b"carepass/entry/v1\n"
TILE_WIDTH = 256
ENTRY_TYPE_KEY = 4
NO_END = 2**64 - 1


@dataclass
class KeySpan:
    """A signing key and the register indexes it may sign."""
    key_id: bytes      # note key id (4 bytes)
    public_key: bytes  # Ed25519 public key
    name: str          # key name (the origin)
    key_index: int     # index of the key entry announcing it
    first: int         # first index it may sign
    last: int          # last index it may sign (NO_END while current)


def key_id_of(name, pk):
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + pk).digest()[:4]


def tile_index_path(n):
    """C2SP tlog-tiles index encoding: 1234067 -> x001/x234/067."""
    parts = []
    while True:
        parts.append(n % 1000)
        n //= 1000
        if n == 0:
            break
    parts.reverse()
    return "/".join([f"x{p:03d}" for p in parts[:-1]] + [f"{parts[-1]:03d}"])


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves):
    """RFC 6962 Merkle tree hash of a list of leaf hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(leaves, index):
    """RFC 6962 audit path for leaves[index] (list of hashes, leaf to root)."""
    n = len(leaves)
    if n <= 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if index < k:
        return inclusion_path(leaves[:k], index) + [merkle_root(leaves[k:])]
    return inclusion_path(leaves[k:], index - k) + [merkle_root(leaves[:k])]


def parse_vkey(text):
    """note vkey "<name>+<8 hex id>+<base64(0x01 || pk)>" -> (name, key id bytes, pk)."""
    name, hexid, b64 = text.strip().split("+", 2)
    raw = base64.b64decode(b64)
    if raw[0] != 0x01 or len(raw) != 33:
        raise ValueError("not an Ed25519 note verifier key")
    pk = raw[1:]
    want_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + pk).digest()[:4]
    if want_id.hex() != hexid:
        raise ValueError("vkey key id does not match its key")
    return name, want_id, pk


class Register:
    """A register directory as an auditor would read it."""

    def __init__(self, path):
        self.path = Path(path)
        self.vkey_name, self.key_id, self.public_key = parse_vkey(
            (self.path / "vkey").read_text())
        self.note = (self.path / "checkpoint").read_bytes()
        body, sep, sigs = self.note.partition(b"\n\n")
        if not sep:
            raise ValueError("checkpoint is not a signed note")
        self.body = body + b"\n"
        self.signature_lines = sigs.decode().splitlines()
        lines = body.decode().split("\n")
        self.origin = lines[0]
        self.size = int(lines[1])
        self.checkpoint_root = base64.b64decode(lines[2])
        self.entries = self._read_entries()

    def verify_checkpoint(self):
        """True when a signature line by our key verifies over the note body."""
        vk = nacl.signing.VerifyKey(self.public_key)
        for line in self.signature_lines:
            if not line.startswith("\u2014 "):
                continue
            _, name, b64 = line.split(" ")
            raw = base64.b64decode(b64)
            if name != self.vkey_name or raw[:4] != self.key_id:
                continue
            vk.verify(self.body, raw[4:])  # raises BadSignatureError
            return True
        return False

    def _read_entries(self):
        entries = []
        full = self.size // TILE_WIDTH
        for n in range(full + (1 if self.size % TILE_WIDTH else 0)):
            rel = "tile/entries/" + tile_index_path(n)
            width = TILE_WIDTH if n < full else self.size % TILE_WIDTH
            if width != TILE_WIDTH:
                rel += f".p/{width}"
            data = (self.path / rel).read_bytes()
            pos, got = 0, 0
            while pos < len(data):
                ln = int.from_bytes(data[pos:pos + 2], "big")
                entries.append(data[pos + 2:pos + 2 + ln])
                pos += 2 + ln
                got += 1
            if got != width or pos != len(data):
                raise ValueError(f"{rel}: {got} entries, expected {width}")
        return entries

    def leaves(self):
        return [leaf_hash(e) for e in self.entries]

    def root(self):
        return merkle_root(self.leaves())

    def level0_tile_hashes(self, n):
        """The hashes stored in level-0 tile n (at its width for this checkpoint)."""
        full = self.size // TILE_WIDTH
        width = TILE_WIDTH if n < full else self.size % TILE_WIDTH
        rel = "tile/0/" + tile_index_path(n) + ("" if width == TILE_WIDTH else f".p/{width}")
        data = (self.path / rel).read_bytes()
        return [data[i:i + 32] for i in range(0, len(data), 32)]

    def signed_entry(self, i, register_pb2):
        se = register_pb2.SignedEntry()
        se.ParseFromString(self.entries[i])
        return se

    def passport_entry(self, i, register_pb2):
        pe = register_pb2.PassportEntry()
        pe.ParseFromString(self.signed_entry(i, register_pb2).entry)
        return pe

    def verify_entry(self, i, register_pb2):
        """True when entry i's Ed25519 signature verifies with the register key."""
        se = self.signed_entry(i, register_pb2)
        if bytes(se.key_id) != self.key_id:
            return False
        nacl.signing.VerifyKey(self.public_key).verify(ENTRY_DOMAIN + se.entry, se.signature)
        return True

    def verify_inclusion(self, i):
        """Recompute the audit path for entry i and check it leads to the checkpoint root."""
        leaves = self.leaves()
        h = leaves[i]
        index, size = i, len(leaves)
        path = inclusion_path(leaves, i)
        # walk up RFC 9162 style
        fn, sn = index, size - 1
        for p in path:
            if sn == 0:
                return False
            if fn % 2 == 1 or fn == sn:
                h = node_hash(p, h)
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
            else:
                h = node_hash(h, p)
            fn >>= 1
            sn >>= 1
        return sn == 0 and h == self.checkpoint_root

    # ---- key history (additive; see the module docstring) ----------------------

    def vkeys(self):
        """[(name, key id, pk)] from the vkeys file (every key ever used), else vkey."""
        f = self.path / "vkeys"
        lines = f.read_text().split() if f.exists() else [(self.path / "vkey").read_text()]
        return [parse_vkey(line) for line in lines if line.strip()]

    def checkpoint_signers(self):
        """Key ids (bytes) of the known keys whose signature line on the checkpoint verifies."""
        good = set()
        for line in self.signature_lines:
            if not line.startswith("\u2014 "):
                continue
            _, name, b64 = line.split(" ")
            raw = base64.b64decode(b64)
            for kname, kid, pk in self.vkeys():
                if name == kname and raw[:4] == kid:
                    try:
                        nacl.signing.VerifyKey(pk).verify(self.body, raw[4:])
                        good.add(kid)
                    except nacl.exceptions.BadSignatureError:
                        pass
        return good

    def key_history(self, register_pb2, entries=None):
        """Key spans from the KEY entries, each link checked; raises ValueError if broken."""
        entries = self.entries if entries is None else entries
        spans = []
        for i, raw in enumerate(entries):
            se = register_pb2.SignedEntry()
            se.ParseFromString(raw)
            pe = register_pb2.PassportEntry()
            pe.ParseFromString(se.entry)
            if pe.entry_type != ENTRY_TYPE_KEY:
                if i == 0:
                    raise ValueError("entry 0 is not a genesis key entry")
                continue
            pk, name = bytes(pe.key_public), pe.key_name
            if len(pk) != 32 or not name:
                raise ValueError(f"key entry {i} is malformed")
            if not spans:
                if i != 0:
                    raise ValueError("first key entry is not at index 0")
                signer_pk, signer_id = pk, key_id_of(name, pk)
            else:
                cur = spans[-1]
                if name != cur.name:
                    raise ValueError(f"key entry {i} changes the key name")
                signer_pk, signer_id = cur.public_key, cur.key_id
            if bytes(se.key_id) != signer_id:
                raise ValueError(f"key entry {i} is not signed by the expected key")
            nacl.signing.VerifyKey(signer_pk).verify(ENTRY_DOMAIN + se.entry, se.signature)
            if spans:
                spans[-1].last = i
            spans.append(KeySpan(key_id_of(name, pk), pk, name, i, 0 if not spans else i + 1, NO_END))
        return spans

    @staticmethod
    def key_for(spans, key_id, index):
        """The span of key_id valid at index, or None."""
        for sp in spans:
            if sp.key_id == bytes(key_id) and sp.first <= index <= sp.last:
                return sp
        return None

    def verify_entry_history(self, i, register_pb2, spans=None, raw=None):
        """True when entry i (or `raw` placed at i) is signed by the key valid at index i."""
        spans = self.key_history(register_pb2) if spans is None else spans
        se = register_pb2.SignedEntry()
        se.ParseFromString(self.entries[i] if raw is None else raw)
        sp = self.key_for(spans, se.key_id, i)
        if sp is None:
            return False
        try:
            nacl.signing.VerifyKey(sp.public_key).verify(ENTRY_DOMAIN + se.entry, se.signature)
        except nacl.exceptions.BadSignatureError:
            return False
        return True
