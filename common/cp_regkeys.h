/* cp_regkeys.h -- the register's key history (key entries in the log) and the
 * record status rule ("was it valid on date X").
 *
 * Key history lives in the log itself. A KEY entry (PassportEntry.entry_type =
 * ENTRY_TYPE_KEY, key_public = the announced Ed25519 public key, key_name = its
 * note key name, i.e. the log origin) is appended:
 *   - at index 0 of every new log (the genesis key entry), signed by the key it
 *     announces;
 *   - by `carepass rotate-key`, announcing the new key, signed by the OLD key.
 * A key announced at index k is valid for indexes k+1 .. (index of the next key
 * entry), inclusive: the old key signs the entry that hands over. The genesis
 * key is valid from 0 (it signs its own announcement). The handover checkpoint
 * carries the signatures of both keys (signed-note allows several lines).
 *
 * The register directory also holds `vkeys`: every verifier key ever used, one
 * note vkey per line, oldest first (`vkey` is the current one).
 *
 * Registers written before key entries existed have no genesis entry: use
 * reg_keys_from_vkey to treat their one key as valid for every index. */
#ifndef CP_REGKEYS_H
#define CP_REGKEYS_H

#include "cp_util.h"
#include "cp_register.h"
#include "carepass/v1/register.pb-c.h"

#define REG_KEYS_MAX 1024           /* most key entries accepted in one register */
#define REG_VKEY_MAX 512            /* longest vkey line (name + key id + base64) */

/* A signing key and the register indexes it may sign. */
typedef struct {
  uint8_t key_id[CP_KEYID_BYTES];   // note key id of (name, pk)
  uint8_t pk[32];                   // Ed25519 public key
  char name[128];                   // key name (the log origin)
  uint64_t key_index;               // index of the key entry that announced it
  uint64_t from_index;              // first index this key may sign (key_index + 1, or 0 for genesis)
  uint64_t to_index;                // last index it may sign; UINT64_MAX while current
} reg_keyspan_t;

/* ---- building the key history (register_keys.c) ---------------------------- */

/* Feed one register entry (SignedEntry bytes at `index`) into a key history
 * being built in index order. Non-KEY entries are ignored (return 0). A KEY entry
 * is checked: well formed (32-byte key, non-empty name equal to the previous key's
 * name), signed by the key valid at `index` (or, for the first key entry, which
 * must be at index 0, by the key it announces); then the current span is closed
 * at `index` and a new span starts at index + 1. *spans is realloc'd (free()
 * it). Returns 0, or -1 with err naming what failed. */
int reg_keys_feed(reg_keyspan_t **spans, size_t *n, uint64_t index, const uint8_t *entry,
                  size_t len, char *err, size_t errlen) CP_WUR;

/* Scan every entry of the log for key entries (O(size)) and return the key
 * history in *out (malloc'd, free()) with *n spans. Refuses a log whose entry 0
 * is not a key entry ("no genesis key entry"): call reg_keys_from_vkey then. */
int reg_keys_load(reg_log_t *log, reg_keyspan_t **out, size_t *n, char *err, size_t errlen) CP_WUR;

/* A one-span history for a register without key entries: the key in `vkey`
 * (note vkey text) valid for every index. */
int reg_keys_from_vkey(const char *vkey, reg_keyspan_t **out, size_t *n, char *err,
                       size_t errlen) CP_WUR;

/* The span of key_id that covers `index`, or NULL when that key was not valid
 * at that index (or is unknown). */
const reg_keyspan_t *reg_keys_for(const reg_keyspan_t *spans, size_t n,
                                  const uint8_t key_id[CP_KEYID_BYTES], uint64_t index);

/* Note vkey text of a span into out (REG_VKEY_MAX bytes). */
int reg_keys_vkey(const reg_keyspan_t *span, char *out, size_t outlen) CP_WUR;

/* ---- making entries (register_sign.c) -------------------------------------- */

/* Sign the PassportEntry pe with key and pack it as a SignedEntry (entry bytes, key id,
 * Ed25519 signature) into a malloc'd buffer: the one way every entry of the register is
 * made. -1 with err when packing fails or the result exceeds REG_ENTRY_MAX. */
int reg_entry_sign(const cp_signkey_t *key, const Carepass__V1__PassportEntry *pe, uint8_t **out,
                   size_t *outlen, char *err, size_t errlen) CP_WUR;

/* Build the KEY entry announcing (name, pk), signed by `signer` (the key itself for
 * the genesis entry, the old key for a rotation), packed as a SignedEntry into a
 * malloc'd buffer. */
int reg_key_entry_build(const cp_signkey_t *signer, const char *name, const uint8_t pk[32],
                        int64_t issued_at, uint8_t **out, size_t *outlen, char *err,
                        size_t errlen) CP_WUR;

/* ---- checking entries (register_keys.c) ------------------------------------ */

/* Decode a SignedEntry at `index`, check that its key id names a key valid at
 * that index and that the Ed25519 signature verifies with it. On 0, *out (may
 * be NULL if not wanted) is the decoded PassportEntry (free with
 * protobuf_c_message_free_unpacked(&(*out)->base, NULL)) and *span (may be
 * NULL) the key used. -1 with err saying what failed ("entry 12 is signed by
 * key 1a2b3c4d, which is not valid at index 12 (valid 0..5)"). */
int reg_entry_check(const reg_keyspan_t *spans, size_t n, uint64_t index, const uint8_t *entry,
                    size_t len, Carepass__V1__PassportEntry **out, const reg_keyspan_t **span,
                    char *err, size_t errlen) CP_WUR;

/* ---- the register directory's key files (register_vkeys.c) ---------------- */

/* Read dir/vkeys (one vkey per line, oldest first) into a malloc'd array of
 * malloc'd strings (free with reg_vkeys_free). A missing file falls back to
 * dir/vkey as a one-line list. */
int reg_vkeys_read(const char *dir, char ***vkeys, size_t *n, char *err, size_t errlen) CP_WUR;
void reg_vkeys_free(char ***vkeys, size_t n);
/* Make sure dir/vkeys lists `vkey` (appending it when new; creating the file from
 * dir/vkey first when it is missing) and write dir/vkey = vkey; both crash-safe. */
int reg_vkeys_publish(const char *dir, const char *vkey, char *err, size_t errlen) CP_WUR;

/* ---- checkpoints signed by several keys (register_checkpoint.c) ---------- */

/* Like reg_checkpoint_sign but with one signature line per key (all keys must
 * have the same name, which is the origin). */
int reg_checkpoint_sign_multi(const cp_signkey_t *const *keys, size_t nkeys, uint64_t size,
                              const uint8_t root[REG_HASH_BYTES], char *out, size_t outlen,
                              char *err, size_t errlen) CP_WUR;
/* Like reg_checkpoint_open but accepts a note with a valid signature by ANY of
 * the n verifier keys. *which (may be NULL) is the index in vkeys of the first
 * key whose signature verified. */
int reg_checkpoint_open_any(const char *note, size_t notelen, const char *const *vkeys, size_t n,
                            char *origin, size_t originlen, uint64_t *size,
                            uint8_t root[REG_HASH_BYTES], size_t *which, char *err,
                            size_t errlen) CP_WUR;
/* How many signature lines of the note verify with the given verifier keys
 * (each key counted at most once). -1 when the note is malformed. */
int reg_checkpoint_count_sigs(const char *note, size_t notelen, const char *const *vkeys, size_t n,
                              char *err, size_t errlen) CP_WUR;

/* ---- record status on a date (register_status.c): one rule for everyone --- */

/* Status of a RECORD / DERIVED_AWARD entry on a date. */
typedef enum {
  REG_STATUS_VALID = 0,        // completed on or before the date, not expired, not revoked
  REG_STATUS_NOT_YET = 1,      // completion_date is after the date
  REG_STATUS_EXPIRED = 2,      // valid_until is before the date
  REG_STATUS_REVOKED = 3,      // a revocation took effect on or before the date
  REG_STATUS_NOT_RECORD = 4,   // the entry is a revocation or key entry, not a record
  REG_STATUS_BAD_DATE = 5,     // the entry or the date has a malformed date
} reg_status_t;

/* The rule: valid on date X (a day, YYYY-MM-DD) iff completion_date <= X,
 * (valid_until is "" or X <= valid_until), and not revoked by a revocation whose
 * issued_at (UTC date of it) is <= X. `revocation` is the REVOCATION entry that
 * revokes this record (or NULL when there is none); a revocation issued after X
 * does not make the record invalid on X. Revocation wins over expiry/not-yet only
 * when it is in effect on X. */
reg_status_t reg_record_status(const Carepass__V1__PassportEntry *entry,
                               const Carepass__V1__PassportEntry *revocation, const char *date);
/* The same rule over plain values: revoked_at is the revocation's issued_at (unix
 * seconds) or -1 when not revoked; date is a day number (cp_date_parse). */
reg_status_t reg_status_on(const char *completion_date, const char *valid_until,
                           int64_t revoked_at, int32_t day);
/* Short lower-case word for a status ("valid", "not yet valid", "expired",
 * "revoked", "not a record", "bad date"). */
const char *reg_status_str(reg_status_t st);

#endif
