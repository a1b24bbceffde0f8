/* fuzz_verify.c -- `carepass verify FILE --vkey VKEY --at DATE` end to end (tools/carepass/
 * cmd_verify.c, the command itself): a tlog-proof or a passport bundle from anyone, checked
 * offline against the fixture register's key -- checkpoint signature, key history, each entry's
 * signature with the key valid at its index, inclusion, revocations, validity on the date, and
 * the statement. The input is the file (written to a memfd, since the command reads a path);
 * the command's report goes to /dev/null. */
#include "cli.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char vkey_path[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz_file_t file = {-1, ""};
  static bool inited;
  if (!inited) {
    fuzz_quiet();
    char cat[4096];
    fuzz_source_path(cat, sizeof cat, "data/catalogue.json");
    setenv("CAREPASS_CATALOGUE", cat, 1);
    fuzz_source_path(vkey_path, sizeof vkey_path, "tests/fuzz/fixtures/register/vkey");
    if (freopen("/dev/null", "w", stdout) == NULL) abort();
    inited = true;
  }
  char *argv[] = {"verify", (char *)fuzz_file_put(&file, data, size), "--vkey", vkey_path, "--at", "2024-06-01",
                  NULL};
  (void)cmd_verify(6, argv);
  fflush(stdout);
  return 0;
}
