/* cp_bundle.h -- offline proof files: c2sp.org/tlog-proof@v1 bundles and carepass
 * passport bundles (read and write). Shared by the CLI (`carepass proof`,
 * `carepass passport --out`, `carepass verify`) and the HTTP gateway (download).
 *
 * 1. tlog-proof (https://c2sp.org/tlog-proof, v1), one register entry:
 *
 *      c2sp.org/tlog-proof@v1
 *      extra <base64 of the SignedEntry bytes, exactly as stored in the log>
 *      index <decimal index, no leading zeroes>
 *      <base64 SHA-256 hash>            inclusion proof (RFC 6962 2.1.1), leaf sibling first,
 *      ...                              zero or more lines
 *      <empty line>
 *      <the signed checkpoint note, verbatim, to the end of the file>
 *
 *    carepass puts the entry itself in the spec's opaque `extra` line: it is the
 *    data needed to reconstruct the record hash (leaf = SHA-256(0x00 || extra)).
 *    As the spec says, extra is not trusted: a verifier recomputes the leaf hash
 *    from it and checks the inclusion proof and the entry's own Ed25519 signature.
 *
 * 2. passport bundle, every entry of one worker (records, revocations, derived
 *    awards) plus the key entries needed to verify them, all against one checkpoint:
 *
 *      carepass-passport/v1
 *      worker <64 hex: the worker's keyed pseudonym (no personal data)>
 *      checkpoint <N>
 *      <N bytes: the signed checkpoint note, verbatim>
 *      proof key <N>                    zero or more: a key entry of the register
 *      <N bytes: a tlog-proof as in 1.>
 *      proof entry <N>                  zero or more: one entry of the worker
 *      <N bytes: a tlog-proof as in 1.>
 *      end
 *
 *    carepass-passport/v2 is the same with, before "end", one line per entry of
 *    register format 2 (cp_subject.h), the opening that shows it is the worker's:
 *
 *      opening <index> <64 hex: r>      the entry's subject is BLAKE2b-256(domain ||
 *                                       worker pseudonym || r)
 *
 *    A writer uses v2 only when there are openings, so a format-1 passport is
 *    byte-for-byte what it was.
 *
 *    Lines end with "\n"; every <N> is the exact byte count of the block that
 *    follows the header line; after a block comes the next header line. Each
 *    embedded tlog-proof is a complete file on its own, and its checkpoint must be
 *    byte-identical to the bundle's. Unknown header lines are refused (a newer
 *    version gets a new first line). A reader refuses anything larger than
 *    CP_BUNDLE_MAX bytes or with more than CP_BUNDLE_ITEMS_MAX proofs. */
#ifndef CP_BUNDLE_H
#define CP_BUNDLE_H

#include "cp_register.h"

#define CP_TLOG_PROOF_HEADER "c2sp.org/tlog-proof@v1"
#define CP_PASSPORT_HEADER "carepass-passport/v1"
#define CP_PASSPORT_HEADER_V2 "carepass-passport/v2"
#define CP_BUNDLE_MAX (64u * 1024 * 1024)  /* largest bundle file read */
#define CP_BUNDLE_ITEMS_MAX 100000         /* most proofs in one passport bundle */

/* One tlog-proof: an entry, its index, its inclusion proof and the checkpoint. */
typedef struct {
  uint8_t *entry;                   // the SignedEntry bytes (the `extra` line); malloc'd
  size_t entry_len;                 // length of entry (0 = no extra line)
  uint64_t index;                   // the entry's index in the log
  reg_hash_t proof[REG_PROOF_MAX];  // inclusion proof, leaf sibling first
  size_t nproof;                    // hashes in proof
  char *checkpoint;                 // the signed checkpoint note, NUL-terminated; malloc'd
  size_t checkpoint_len;            // its length
} cp_tlog_proof_t;

/* What a proof in a passport bundle is for. */
typedef enum {
  CP_PROOF_KEY = 1,     // a key entry: the register's key history
  CP_PROOF_ENTRY = 2,   // an entry of the worker: record, revocation or derived award
} cp_proof_kind_t;

/* One proof of a passport bundle. */
typedef struct {
  cp_proof_kind_t kind;   // key entry or worker entry
  cp_tlog_proof_t proof;  // the proof (its checkpoint equals the bundle's)
} cp_passport_item_t;

/* The opening of a format-2 entry: its index and the r of its subject commitment. */
typedef struct {
  uint64_t index;
  uint8_t r[32];
} cp_passport_opening_t;

/* A passport bundle. */
typedef struct {
  char worker[2 * 32 + 1];    // worker pseudonym, hex
  char *checkpoint;           // signed checkpoint note, NUL-terminated; malloc'd
  size_t checkpoint_len;      // its length
  cp_passport_item_t *items;  // proofs, in file order
  size_t n;                   // items in use
  size_t cap;                 // items allocated
  cp_passport_opening_t *openings;  // v2: openings of format-2 entries, in file order
  size_t nopen, capopen;
  bool open_sorted;                 // openings sorted by index (cp_passport_opening sorts them)
} cp_passport_t;

/* ---- tlog-proof ---------------------------------------------------------- */

/* Build the proof of entry `index` from a register, against the register's
 * current checkpoint (the entry must be below its size). */
int cp_tlog_proof_from_log(reg_log_t *log, uint64_t index, cp_tlog_proof_t *p, char *err,
                           size_t errlen) CP_WUR;
/* Write p in the tlog-proof@v1 text format into a malloc'd, NUL-terminated buffer. */
int cp_tlog_proof_format(const cp_tlog_proof_t *p, char **out, size_t *outlen, char *err,
                         size_t errlen) CP_WUR;
/* Parse a tlog-proof@v1 text (strictly: header, optional extra, index, hashes,
 * empty line, checkpoint). p is filled; free with cp_tlog_proof_clear. */
int cp_tlog_proof_parse(const char *text, size_t len, cp_tlog_proof_t *p, char *err,
                        size_t errlen) CP_WUR;
/* Free what p holds and zero it; safe on a zeroed p. */
void cp_tlog_proof_clear(cp_tlog_proof_t *p);
/* 0 when p's entry is included at p->index in the tree (size, root), using p's proof. */
int cp_tlog_proof_check(const cp_tlog_proof_t *p, uint64_t size, const uint8_t root[REG_HASH_BYTES],
                        char *err, size_t errlen) CP_WUR;

/* ---- passport bundle ------------------------------------------------------ */

/* Start an empty bundle for worker (hex) against checkpoint note (copied). */
void cp_passport_init(cp_passport_t *b, const char *worker_hex, const char *checkpoint, size_t len);
/* Append a proof; takes ownership of what *p holds (and zeroes *p). */
void cp_passport_add(cp_passport_t *b, cp_proof_kind_t kind, cp_tlog_proof_t *p);
/* Add the opening of the format-2 entry at index. */
void cp_passport_add_opening(cp_passport_t *b, uint64_t index, const uint8_t r[32]);
/* The opening of index, or NULL (sorts the openings once: O(log n) a look-up). */
const cp_passport_opening_t *cp_passport_opening(cp_passport_t *b, uint64_t index);
/* Write the bundle in the carepass-passport/v1 format, v2 when it has openings (malloc'd, NUL-terminated). */
int cp_passport_format(const cp_passport_t *b, char **out, size_t *outlen, char *err,
                       size_t errlen) CP_WUR;
/* Parse a carepass-passport/v1 or v2 text; checks that every embedded proof's
 * checkpoint equals the bundle's, and that no index has two openings. Free with cp_passport_clear. */
int cp_passport_parse(const char *text, size_t len, cp_passport_t *b, char *err, size_t errlen) CP_WUR;
void cp_passport_clear(cp_passport_t *b);

#endif
