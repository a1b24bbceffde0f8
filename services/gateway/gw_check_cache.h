/* gw_check_cache.h -- the employer check's view of the register (gw_check_cache.c): a cache of checked entries (signature
 * by a key valid at the index, inclusion in the current checkpoint) shared by every request,
 * so a check costs no Ed25519 verification and no tile read once an entry has been seen. */
#ifndef GW_CHECK_CACHE_H
#define GW_CHECK_CACHE_H

#include "gw.h"
#include "carepass/v1/register.pb-c.h"

/* What a request needs of one register entry (copied out of the cache under the lock). */
typedef struct {
  uint64_t index;                          // register index
  const Carepass__V1__PassportEntry *pe;   // decoded entry (owned by the cache, lives as long as the
                                           // process), NULL when it could not be read or decoded
  bool sig_ok;                             // signature verifies with a key valid at the index
  bool incl_ok;                            // inclusion proof to the current checkpoint verified
  bool beyond;                             // index is not (yet) covered by the checkpoint
  char problem[320];                       // why sig_ok/incl_ok is false ("" when both hold)
} gw_centry_t;

/* The checkpoint the entries were checked against. */
typedef struct {
  uint64_t size;                           // tree size
  uint8_t root[32];                        // root hash
  char origin[128];                        // origin line
} gw_ccp_t;

/* Look up (checking on first sight) the n entries; fills out[0..n-1] and *cp. 0, or -1 when the
 * register cannot be opened (err says why). Thread-safe (takes gw->reg_lock). */
int gw_check_entries(gw_t *gw, const uint64_t *indexes, size_t n, gw_centry_t *out, gw_ccp_t *cp,
                     char *err, size_t errlen) CP_WUR;

/* The passport bundle (common/cp_bundle.h) of worker_hex holding the key entries of the register
 * and the given entries, all against the current checkpoint, with openings[i] (the r of a
 * format-2 entry; NULL for none) of each given entry. *out is malloc'd. */
int gw_check_bundle(gw_t *gw, const char *worker_hex, const uint64_t *indexes, const uint8_t *const *openings,
                    size_t n, char **out, size_t *outlen, char *err, size_t errlen) CP_WUR;

#endif
