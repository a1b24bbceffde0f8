/* fuzz_tiles.c -- what a register mirror serves, piece by piece (common/register_tiles.c,
 * register_keys.c, register_status.c): tile paths (reg_tile_parse_path, and reg_tile_path /
 * reg_tile_width on what parsed), entry bundles walked with reg_bundle_next, and each entry of a
 * bundle as `carepass audit` and the gateway take it: the key history fed from it
 * (reg_keys_feed), its signature checked against the fixture register's key (reg_entry_check),
 * and a record's status on a date (reg_record_status). A hash tile is just 32-byte hashes
 * (reg_hashes_root over them). Input: the first line is a tile path, the rest the file's bytes. */
#include "carepass/v1/register.pb-c.h"
#include "cp_regkeys.h"
#include "cp_register.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static reg_keyspan_t *vspans;
static size_t nvspans;

static void load_keys(void) {
  char path[4096], vkey[REG_VKEY_MAX], err[CP_ERRLEN];
  fuzz_source_path(path, sizeof path, "tests/fuzz/fixtures/register/vkey");
  FILE *fp = fopen(path, "r");
  if (fp == NULL || fgets(vkey, sizeof vkey, fp) == NULL) abort();
  fclose(fp);
  vkey[strcspn(vkey, "\n")] = '\0';
  if (reg_keys_from_vkey(vkey, &vspans, &nvspans, err, sizeof err) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    if (sodium_init() < 0) abort();
    load_keys();
    inited = true;
  }
  const uint8_t *nl = memchr(data, '\n', size);
  size_t plen = nl != NULL ? (size_t)(nl - data) : size;
  const uint8_t *body = nl != NULL ? nl + 1 : data + size;
  size_t blen = size - (size_t)(body - data);
  char path[128];
  if (plen < sizeof path) {
    memcpy(path, data, plen);
    path[plen] = '\0';
    int level = 0;
    uint64_t index = 0;
    unsigned width = 0;
    if (reg_tile_parse_path(path, &level, &index, &width) == 0) {
      char again[REG_PATH_MAX];
      /* what parsed is canonical: written back it is the same path */
      if (reg_tile_path(again, sizeof again, level, index, width) != 0 || strcmp(again, path) != 0) abort();
      (void)reg_tile_width(index * REG_TILE_WIDTH + width, level, index);
    }
  }
  /* the body as an entry bundle */
  reg_keyspan_t *spans = NULL;
  size_t nspans = 0, pos = 0;
  const uint8_t *e = NULL;
  size_t elen = 0;
  char err[CP_ERRLEN];
  uint64_t index = 0;
  while (index < REG_TILE_WIDTH && reg_bundle_next(body, blen, &pos, &e, &elen) == 1) {
    if (reg_keys_feed(&spans, &nspans, index, e, elen, err, sizeof err) != 0) {
      /* a bad key entry: the history stops here, as in an audit */
    }
    Carepass__V1__PassportEntry *pe = NULL;
    const reg_keyspan_t *span = NULL;
    if (reg_entry_check(vspans, nvspans, index, e, elen, &pe, &span, err, sizeof err) == 0) {
      (void)reg_status_str(reg_record_status(pe, NULL, "2025-01-01"));
      (void)reg_record_status(pe, pe, "2024-06-01");
      protobuf_c_message_free_unpacked(&pe->base, NULL);
    }
    index++;
  }
  free(spans);
  /* the body as a hash tile */
  size_t nh = blen / REG_HASH_BYTES;
  if (nh > 0 && nh <= REG_TILE_WIDTH) {
    reg_hash_t *h = cp_xmalloc(nh * sizeof *h);
    memcpy(h, body, nh * sizeof *h);
    uint8_t root[REG_HASH_BYTES];
    reg_hashes_root(h, nh, root);
    free(h);
  }
  return 0;
}
