/* replay_main.c -- runs a fuzz target's LLVMFuzzerTestOneInput once on every file of the
 * directories (or files) named on the command line, for builds without libFuzzer (gcc, ASan):
 * the seed corpus and every crash input found stay regression tests (ctest fuzz.replay.<name>).
 * Exits 0 when every input ran; a crash or sanitizer report ends the process as it would in
 * the fuzzer. A missing or empty directory is fine (no inputs yet). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

#define REPLAY_MAX_INPUT (16u * 1024 * 1024) /* larger files are refused (a corpus holds small inputs) */

static int run_file(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) {
    fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
    return -1;
  }
  uint8_t *buf = malloc(REPLAY_MAX_INPUT);
  if (buf == NULL) abort();
  size_t n = fread(buf, 1, REPLAY_MAX_INPUT, fp);
  int bad = ferror(fp) || !feof(fp);
  fclose(fp);
  if (bad) {
    fprintf(stderr, "replay: %s: unreadable or larger than %u bytes\n", path, REPLAY_MAX_INPUT);
    free(buf);
    return -1;
  }
  /* an exact-size copy, so ASan sees a read past the input as it does under libFuzzer */
  uint8_t *exact = malloc(n > 0 ? n : 1);
  if (exact == NULL) abort();
  memcpy(exact, buf, n);
  free(buf);
  (void)LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every regular file of dir, in name order. Returns the files run or -1. */
static long run_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    if (errno == ENOENT) return 0;
    fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue; /* ., .., .gitkeep */
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      names = realloc(names, cap * sizeof *names);
      if (names == NULL) abort();
    }
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    names[n] = malloc(len);
    if (names[n] == NULL) abort();
    snprintf(names[n], len, "%s/%s", dir, e->d_name);
    n++;
  }
  closedir(d);
  if (n > 1) qsort(names, n, sizeof *names, cmp_str);
  long ran = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
      if (run_file(names[i]) != 0) ran = -1;
      else if (ran >= 0) ran++;
    }
    free(names[i]);
  }
  free(names);
  return ran;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize != NULL) LLVMFuzzerInitialize(&argc, &argv);
  long total = 0;
  int failed = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    long ran;
    if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode)) ran = run_file(argv[i]) == 0 ? 1 : -1;
    else ran = run_dir(argv[i]);
    if (ran < 0) failed = 1;
    else total += ran;
  }
  printf("replay: %ld inputs ran%s\n", total, failed ? " (some could not be read)" : "");
  return failed;
}
