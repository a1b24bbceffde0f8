/* cp_subject.h -- the subject of a register entry without linking a worker's entries (issue 11).
 *
 * In the entry format v2 an entry does not carry the worker's pseudonym. It carries:
 *   subject   C = BLAKE2b-256("carepass/subject/v1\n" || pseudonym || r), r 32 fresh random
 *             bytes per entry: a hiding, binding commitment; two entries of one worker have
 *             unrelated subjects, and an opening (pseudonym, r) proves which worker it names;
 *   slot      16 fresh random bytes per entry, naming (only inside the subject key store) the
 *             worker key the opening is sealed under;
 *   sealed    nonce(24) || XChaCha20-Poly1305-IETF(K_w, pseudonym || r), with associated data
 *             "carepass/opening/v1\n" || C || slot, so an opening cannot be moved to another entry.
 *
 * The subject key store (a directory beside the register, never served) holds, per worker, a
 * random 32-byte key K_w found by a keyed id of the pseudonym, and the slot -> worker map. It is
 * the one place that links a worker's entries: reindex opens every entry with it, and a worker
 * who leaves is shredded -- their key and slots are removed from the store's files, after which
 * nobody (the operator included) can open or link their entries; the entries stay, anonymous,
 * and every signature and tile still verifies.
 *
 * Files (each written by one signer: the store's single writer is the shard's signer):
 *   store.secret  32 bytes hex, 0600: keys the worker-key id (wkid = BLAKE2b-128 keyed, of the pseudonym)
 *   workers       "carepass-subject-workers/v1\n" then records wkid(16) || K_w(32)
 *   slots         "carepass-subject-slots/v1\n"   then records slot(16) || wkid(16)
 * New records are appended and fsynced by cp_subject_store_flush before the register batch that
 * uses them is appended, so every committed entry's slot is durable; a record torn by a crash
 * (a tail shorter than a record) is cut off at open. Shredding rewrites both files without the
 * worker (temporary file, fsync, rename, directory fsync).
 */
#ifndef CP_SUBJECT_H
#define CP_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_crypto.h"
#include "cp_util.h"

#define CP_SUBJECT_BYTES 32
#define CP_SUBJECT_R_BYTES 32
#define CP_SUBJECT_SLOT_BYTES 16
#define CP_SUBJECT_KEY_BYTES 32
#define CP_SUBJECT_WKID_BYTES 16
#define CP_SUBJECT_NONCE_BYTES 24
#define CP_SUBJECT_MAC_BYTES 16
/* nonce || ciphertext of pseudonym || r || tag */
#define CP_SUBJECT_SEALED_BYTES (CP_SUBJECT_NONCE_BYTES + CP_PSEUDONYM_BYTES + CP_SUBJECT_R_BYTES + CP_SUBJECT_MAC_BYTES)

/* What an entry carries about its worker. */
typedef struct {
  uint8_t subject[CP_SUBJECT_BYTES];
  uint8_t slot[CP_SUBJECT_SLOT_BYTES];
  uint8_t sealed[CP_SUBJECT_SEALED_BYTES];
} cp_subject_t;

/* The opening of a subject: what a worker gives out (in a bundle) to show entries are theirs. */
typedef struct {
  uint8_t pseudonym[CP_PSEUDONYM_BYTES];
  uint8_t r[CP_SUBJECT_R_BYTES];
} cp_opening_t;

typedef enum {
  CP_SUBJECT_OK = 0,
  CP_SUBJECT_UNKNOWN_SLOT,   // the store has no such slot: shredded, or never this store's
  CP_SUBJECT_NO_KEY,         // the slot names a worker whose key is gone (shredded)
  CP_SUBJECT_BAD_SEAL,       // the sealed opening does not open under the worker's key
  CP_SUBJECT_MISMATCH,       // it opens, but not to the entry's subject
  CP_SUBJECT_MALFORMED,      // wrong lengths
} cp_subject_status_t;

/* A short sentence for a status (static). */
const char *cp_subject_status_text(cp_subject_status_t st);

/* C = BLAKE2b-256("carepass/subject/v1\n" || pseudonym || r). */
void cp_subject_commit(const uint8_t pseudonym[CP_PSEUDONYM_BYTES], const uint8_t r[CP_SUBJECT_R_BYTES],
                       uint8_t out[CP_SUBJECT_BYTES]);
/* Does the opening open to subject? Constant time. Needs no key: offline verify uses it. */
bool cp_subject_opens(const uint8_t subject[CP_SUBJECT_BYTES], const cp_opening_t *op);

/* Seal / open an opening under a worker key (the store uses these; exposed for tests and for
 * reading without a store). open checks that the opening opens to subject. */
void cp_subject_seal(const uint8_t key[CP_SUBJECT_KEY_BYTES], const cp_opening_t *op,
                     const uint8_t slot[CP_SUBJECT_SLOT_BYTES], cp_subject_t *out);
cp_subject_status_t cp_subject_unseal(const uint8_t key[CP_SUBJECT_KEY_BYTES], const uint8_t *subject,
                                      size_t subject_len, const uint8_t *slot, size_t slot_len,
                                      const uint8_t *sealed, size_t sealed_len, cp_opening_t *out);

/* ---- sealed payloads (consent entries) ------------------------------------------------------
 * A consent entry carries, beside its subject, a short payload (the employer id) that only the
 * worker key opens: sealed_payload = nonce(24) || XChaCha20-Poly1305-IETF(K_w, payload), with
 * associated data "carepass/payload/v1\n" || subject || slot (its own domain: a sealed opening
 * cannot pass for a payload, nor a payload be moved to another entry). Shredding the worker key
 * makes it unreadable with the rest of the worker's entries. */
#define CP_SUBJECT_PAYLOAD_MAX 64   /* longest payload (an employer id is at most 16 bytes) */
#define CP_SUBJECT_SEALED_PAYLOAD_MAX (CP_SUBJECT_NONCE_BYTES + CP_SUBJECT_PAYLOAD_MAX + CP_SUBJECT_MAC_BYTES)

/* Seal len (1..CP_SUBJECT_PAYLOAD_MAX) bytes for the entry with this subject and slot; out has room
 * for CP_SUBJECT_SEALED_PAYLOAD_MAX, *outlen is set. -1 when len is out of bounds. */
int cp_subject_payload_seal(const uint8_t key[CP_SUBJECT_KEY_BYTES], const uint8_t subject[CP_SUBJECT_BYTES],
                            const uint8_t slot[CP_SUBJECT_SLOT_BYTES], const uint8_t *payload, size_t len,
                            uint8_t *out, size_t *outlen) CP_WUR;
/* Open a sealed payload into out (room for CP_SUBJECT_PAYLOAD_MAX + 1: it is NUL-terminated). */
cp_subject_status_t cp_subject_payload_open(const uint8_t key[CP_SUBJECT_KEY_BYTES], const uint8_t *subject,
                                            size_t subject_len, const uint8_t *slot, size_t slot_len,
                                            const uint8_t *sealed, size_t sealed_len, uint8_t *out,
                                            size_t *outlen);

/* ---- the store -------------------------------------------------------------------------- */

typedef struct cp_subject_store cp_subject_store_t;

/* Open the store in dir and read every record into memory. flags: CP_SUBJECT_CREATE makes it
 * (with a new store.secret) when it does not exist; CP_SUBJECT_WRITER opens it for the store's
 * one writer (the signer, or a command run with the signer stopped), which cuts a torn tail and
 * may flush and shred. A reader (no flag) changes nothing on disk: a tail being written now is
 * not read, and flush/shred are refused. Refuses files readable by group/other. */
#define CP_SUBJECT_CREATE 1u
#define CP_SUBJECT_WRITER 2u
int cp_subject_store_open(const char *dir, unsigned flags, cp_subject_store_t **out, char *err,
                          size_t errlen) CP_WUR;
void cp_subject_store_close(cp_subject_store_t **s);

/* The subject of a new entry of this worker: fresh r and slot, the worker's key (made when the
 * worker has none), sealed. The new records are pending until cp_subject_store_flush. The zero
 * pseudonym names no one (`carepass revoke` of an entry whose worker left): it gets a subject that
 * nobody can open and nothing in the store. */
void cp_subject_store_new(cp_subject_store_t *s, const uint8_t pseudonym[CP_PSEUDONYM_BYTES],
                          cp_subject_t *out);
/* Append and fsync the pending records. 0, or -1 with err (nothing is then known durable: the
 * caller must not append the entries that use them). */
int cp_subject_store_flush(cp_subject_store_t *s, char *err, size_t errlen) CP_WUR;

/* Open an entry's subject through the store. */
cp_subject_status_t cp_subject_store_open_entry(const cp_subject_store_t *s, const uint8_t *subject,
                                                size_t subject_len, const uint8_t *slot, size_t slot_len,
                                                const uint8_t *sealed, size_t sealed_len, cp_opening_t *out);

/* Seal a payload under the worker key of subj's slot (a subject just made by cp_subject_store_new).
 * -1 when the slot is not the store's (the anonymous subject) or len is out of bounds. */
int cp_subject_store_seal_payload(const cp_subject_store_t *s, const cp_subject_t *subj, const uint8_t *payload,
                                  size_t len, uint8_t *out, size_t *outlen) CP_WUR;
/* Open an entry's sealed payload through the store (out as for cp_subject_payload_open). */
cp_subject_status_t cp_subject_store_open_payload(const cp_subject_store_t *s, const uint8_t *subject,
                                                  size_t subject_len, const uint8_t *slot, size_t slot_len,
                                                  const uint8_t *sealed, size_t sealed_len, uint8_t *out,
                                                  size_t *outlen);

/* Leaving the register: remove the worker's key and every slot of theirs from the store's files,
 * durably. *slots_removed says how many entries became unlinkable. 0, or -1 with err (the files
 * are then as before). A worker with no key is not an error (0 slots). */
int cp_subject_store_shred(cp_subject_store_t *s, const uint8_t pseudonym[CP_PSEUDONYM_BYTES],
                           size_t *slots_removed, char *err, size_t errlen) CP_WUR;

/* Counts, for status and tests. */
size_t cp_subject_store_workers(const cp_subject_store_t *s);
size_t cp_subject_store_slots(const cp_subject_store_t *s);

#endif
