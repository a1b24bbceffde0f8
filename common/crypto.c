/* crypto.c -- Ed25519 note keys, entry signatures, deployment secrets, CurveZMQ key files, base64. */
#include "cp_crypto.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define NOTE_ALG_ED25519 0x01  /* note signature algorithm byte for Ed25519 */
#define KEYFILE_MAX 4096       /* key files are tiny; refuse anything bigger */

int cp_crypto_init(void) { return sodium_init() < 0 ? -1 : 0; }

/* ---- base64 -------------------------------------------------------------- */

int cp_b64_encode(const uint8_t *in, size_t len, char *out, size_t outlen) {
  if (outlen < sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL)) return -1;
  sodium_bin2base64(out, outlen, in, len, sodium_base64_VARIANT_ORIGINAL);
  return 0;
}

int cp_b64_decode(const char *in, uint8_t *out, size_t outmax, size_t *outlen) {
  const char *end = NULL;
  size_t n = 0;
  if (sodium_base642bin(out, outmax, in, strlen(in), NULL, &n, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    return -1;
  if (end == NULL || *end != '\0') return -1; /* trailing garbage */
  *outlen = n;
  return 0;
}

/* ---- files --------------------------------------------------------------- */

/* 1 if path exists, 0 if not, -1 on another error. Refuses group/other-accessible files. */
static int key_file_state(const char *path, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    return cp_err(err, errlen, "stat %s: %s", path, strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return cp_err(err, errlen, "%s is not a regular file", path);
  if ((st.st_mode & 077) != 0)
    return cp_err(err, errlen,
                  "%s has mode %04o: key files must not be readable by group or others; "
                  "run: chmod 600 %s",
                  path, (unsigned)(st.st_mode & 07777), path);
  return 1;
}

/* Create the directory holding path (0700) if needed. */
static int make_parent(const char *path, char *err, size_t errlen) {
  char *copy = cp_strdup(path);
  int rc = cp_mkdirs(dirname(copy), 0700, err, errlen);
  free(copy);
  return rc;
}

/* Read a small key file and strip trailing whitespace. */
static int read_key_text(const char *path, char **out, char *err, size_t errlen) {
  uint8_t *buf = NULL;
  size_t len = 0;
  if (cp_read_file(path, KEYFILE_MAX, &buf, &len, err, errlen) != 0) return -1;
  if (memchr(buf, '\0', len) != NULL) {
    sodium_memzero(buf, len);
    free(buf);
    return cp_err(err, errlen, "%s: unexpected NUL byte", path);
  }
  while (len > 0 && isspace(buf[len - 1])) buf[--len] = '\0';
  *out = (char *)buf;
  return 0;
}

static void free_secret_text(char **s) {
  if (*s != NULL) {
    sodium_memzero(*s, strlen(*s));
    free(*s);
    *s = NULL;
  }
}

/* ---- note keys ----------------------------------------------------------- */

void cp_key_id(const char *name, const unsigned char pk[32], unsigned char id[CP_KEYID_BYTES]) {
  crypto_hash_sha256_state st;
  unsigned char h[crypto_hash_sha256_BYTES];
  const unsigned char sep[2] = {'\n', NOTE_ALG_ED25519};
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, (const unsigned char *)name, strlen(name));
  crypto_hash_sha256_update(&st, sep, sizeof sep);
  crypto_hash_sha256_update(&st, pk, 32);
  crypto_hash_sha256_final(&st, h);
  memcpy(id, h, CP_KEYID_BYTES);
}

/* A note key name: non-empty, printable, no '+' and no whitespace. */
static bool note_name_ok(const char *name, size_t max) {
  size_t n = strlen(name);
  if (n == 0 || n >= max) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c <= 0x20 || c == 0x7f || c == '+') return false;
  }
  return true;
}

static bool parse_hex8(const char *s, size_t len, unsigned char id[4]) {
  if (len != 8) return false;
  for (size_t i = 0; i < 8; i++)
    if (!isxdigit((unsigned char)s[i])) return false;
  size_t bin = 0;
  return sodium_hex2bin(id, 4, s, 8, NULL, &bin, NULL) == 0 && bin == 4;
}

int cp_vkey_format(const char *name, const unsigned char pk[32], char *out, size_t outlen) {
  unsigned char id[CP_KEYID_BYTES], blob[33];
  char idhex[9], b64[64];
  if (!note_name_ok(name, 128)) return -1;
  cp_key_id(name, pk, id);
  cp_hex(id, sizeof id, idhex);
  blob[0] = NOTE_ALG_ED25519;
  memcpy(blob + 1, pk, 32);
  if (cp_b64_encode(blob, sizeof blob, b64, sizeof b64) != 0) return -1;
  int n = snprintf(out, outlen, "%s+%s+%s", name, idhex, b64);
  return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

int cp_vkey_parse(const char *vkey, char *name, size_t namelen, unsigned char pk[32],
                  unsigned char id[CP_KEYID_BYTES], char *err, size_t errlen) {
  const char *p1 = strchr(vkey, '+');
  const char *p2 = p1 ? strchr(p1 + 1, '+') : NULL;
  /* name and id end at the first two '+'; the base64 key itself may contain '+' */
  if (p1 == NULL || p2 == NULL)
    return cp_err(err, errlen, "verifier key is not <name>+<hex id>+<base64 key>");
  size_t nlen = (size_t)(p1 - vkey);
  if (nlen == 0 || nlen >= namelen) return cp_err(err, errlen, "verifier key name is empty or too long");
  unsigned char fid[4], blob[64], want[4];
  if (!parse_hex8(p1 + 1, (size_t)(p2 - p1 - 1), fid))
    return cp_err(err, errlen, "verifier key id is not 8 hex digits");
  size_t blen = 0;
  if (cp_b64_decode(p2 + 1, blob, sizeof blob, &blen) != 0 || blen != 33 ||
      blob[0] != NOTE_ALG_ED25519)
    return cp_err(err, errlen, "verifier key is not an Ed25519 note key");
  memcpy(name, vkey, nlen);
  name[nlen] = '\0';
  if (!note_name_ok(name, namelen)) return cp_err(err, errlen, "verifier key name is invalid");
  cp_key_id(name, blob + 1, want);
  if (memcmp(want, fid, 4) != 0)
    return cp_err(err, errlen, "verifier key id does not match its name and key");
  memcpy(pk, blob + 1, 32);
  memcpy(id, fid, 4);
  return 0;
}

/* Parse "PRIVATE+KEY+<name>+<hex id>+<base64(0x01||seed)>" into key. */
static int signkey_parse(const char *path, const char *text, cp_signkey_t *key, char *err,
                         size_t errlen) {
  static const char prefix[] = "PRIVATE+KEY+";
  unsigned char blob[64], fid[4];
  size_t blen = 0;
  int rc = -1;
  if (strncmp(text, prefix, sizeof prefix - 1) != 0)
    return cp_err(err, errlen, "%s is not a note signer key (PRIVATE+KEY+...)", path);
  const char *nm = text + sizeof prefix - 1;
  const char *p1 = strchr(nm, '+');
  const char *p2 = p1 ? strchr(p1 + 1, '+') : NULL;
  if (p1 == NULL || p2 == NULL) { /* the base64 key after p2 may contain '+' */
    cp_err(err, errlen, "%s is not a note signer key (PRIVATE+KEY+<name>+<id>+<key>)", path);
    goto out;
  }
  size_t nlen = (size_t)(p1 - nm);
  if (nlen == 0 || nlen >= sizeof key->name) {
    cp_err(err, errlen, "%s: key name is empty or longer than %zu", path, sizeof key->name - 1);
    goto out;
  }
  memcpy(key->name, nm, nlen);
  key->name[nlen] = '\0';
  if (!note_name_ok(key->name, sizeof key->name)) {
    cp_err(err, errlen, "%s: key name is invalid", path);
    goto out;
  }
  if (!parse_hex8(p1 + 1, (size_t)(p2 - p1 - 1), fid)) {
    cp_err(err, errlen, "%s: key id is not 8 hex digits", path);
    goto out;
  }
  if (cp_b64_decode(p2 + 1, blob, sizeof blob, &blen) != 0 || blen != 33 ||
      blob[0] != NOTE_ALG_ED25519) {
    cp_err(err, errlen, "%s: key is not base64 of an Ed25519 seed", path);
    goto out;
  }
  if (crypto_sign_seed_keypair(key->pk, key->sk, blob + 1) != 0) {
    cp_err(err, errlen, "%s: cannot derive the key pair", path);
    goto out;
  }
  cp_key_id(key->name, key->pk, key->key_id);
  if (memcmp(key->key_id, fid, 4) != 0) {
    cp_err(err, errlen, "%s: key id does not match the key (file damaged?)", path);
    goto out;
  }
  rc = 0;
out:
  sodium_memzero(blob, sizeof blob);
  if (rc != 0) cp_signkey_wipe(key);
  return rc;
}

int cp_signkey_load(const char *path, const char *name, bool create, cp_signkey_t *key,
                    char *err, size_t errlen) {
  memset(key, 0, sizeof *key);
  int st = key_file_state(path, err, errlen);
  if (st < 0) return -1;
  if (st == 1) {
    char *text = NULL;
    if (read_key_text(path, &text, err, errlen) != 0) return -1;
    int rc = signkey_parse(path, text, key, err, errlen);
    free_secret_text(&text);
    return rc;
  }
  if (!create) return cp_err(err, errlen, "%s: no such key file", path);
  if (name == NULL || !note_name_ok(name, sizeof key->name))
    return cp_err(err, errlen, "cannot create %s: key name \"%s\" must be 1..%zu printable characters without '+' or spaces",
                  path, name ? name : "", sizeof key->name - 1);
  if (make_parent(path, err, errlen) != 0) return -1;

  unsigned char blob[33];
  char b64[64], idhex[9], text[300];
  int rc = -1;
  snprintf(key->name, sizeof key->name, "%s", name);
  crypto_sign_keypair(key->pk, key->sk);
  cp_key_id(key->name, key->pk, key->key_id);
  blob[0] = NOTE_ALG_ED25519;
  crypto_sign_ed25519_sk_to_seed(blob + 1, key->sk);
  cp_hex(key->key_id, 4, idhex);
  if (cp_b64_encode(blob, sizeof blob, b64, sizeof b64) != 0) goto out;
  /* no trailing newline: the file is exactly what note.NewSigner accepts */
  int n = snprintf(text, sizeof text, "PRIVATE+KEY+%s+%s+%s", key->name, idhex, b64);
  if (n < 0 || (size_t)n >= sizeof text) {
    cp_err(err, errlen, "key name too long");
    goto out;
  }
  rc = cp_write_file_atomic(path, text, (size_t)n, 0600, err, errlen);
out:
  sodium_memzero(blob, sizeof blob);
  sodium_memzero(b64, sizeof b64);
  sodium_memzero(text, sizeof text);
  if (rc != 0) cp_signkey_wipe(key);
  return rc;
}

void cp_signkey_wipe(cp_signkey_t *key) {
  if (key != NULL) sodium_memzero(key, sizeof *key);
}

/* ---- entry signatures ---------------------------------------------------- */

static uint8_t *domain_msg(const uint8_t *entry, size_t len, size_t *mlen) {
  size_t dl = sizeof CP_ENTRY_DOMAIN - 1;
  uint8_t *m = cp_xmalloc(dl + len);
  memcpy(m, CP_ENTRY_DOMAIN, dl);
  if (len > 0) memcpy(m + dl, entry, len);
  *mlen = dl + len;
  return m;
}

void cp_sign_entry(const cp_signkey_t *key, const uint8_t *entry, size_t len, unsigned char sig[64]) {
  size_t mlen;
  uint8_t *m = domain_msg(entry, len, &mlen);
  crypto_sign_detached(sig, NULL, m, mlen, key->sk);
  free(m);
}

bool cp_verify_entry(const unsigned char pk[32], const uint8_t *entry, size_t len,
                     const unsigned char sig[64]) {
  size_t mlen;
  uint8_t *m = domain_msg(entry, len, &mlen);
  bool ok = crypto_sign_verify_detached(sig, m, mlen, pk) == 0;
  free(m);
  return ok;
}

/* ---- deployment secret --------------------------------------------------- */

/* Read the secret of an existing file (checked by key_file_state first). */
static int secret_read(const char *path, unsigned char secret[CP_SECRET_BYTES], char *err, size_t errlen) {
  char *text = NULL;
  size_t bin = 0;
  if (read_key_text(path, &text, err, errlen) != 0) return -1;
  int rc = 0;
  if (strlen(text) != 2 * CP_SECRET_BYTES ||
      sodium_hex2bin(secret, CP_SECRET_BYTES, text, strlen(text), NULL, &bin, NULL) != 0 ||
      bin != CP_SECRET_BYTES)
    rc = cp_err(err, errlen, "%s must hold %d hex digits", path, 2 * CP_SECRET_BYTES);
  free_secret_text(&text);
  if (rc != 0) sodium_memzero(secret, CP_SECRET_BYTES);
  return rc;
}

/* Creation is exclusive (cp_write_file_exclusive: temp file, fsync, link): replicas that start
 * at once over one key directory may each make a secret, but only the first link wins and the
 * others read the winner's, so they never end up with different secrets. */
int cp_secret_load(const char *path, bool create, unsigned char secret[CP_SECRET_BYTES], char *err,
                   size_t errlen) {
  int st = key_file_state(path, err, errlen);
  if (st < 0) return -1;
  if (st == 1) return secret_read(path, secret, err, errlen);
  if (!create) return cp_err(err, errlen, "%s: no such secret file", path);
  if (make_parent(path, err, errlen) != 0) return -1;
  char hex[2 * CP_SECRET_BYTES + 2];
  randombytes_buf(secret, CP_SECRET_BYTES);
  cp_hex(secret, CP_SECRET_BYTES, hex);
  hex[2 * CP_SECRET_BYTES] = '\n';
  int rc = cp_write_file_exclusive(path, hex, 2 * CP_SECRET_BYTES + 1, 0600, err, errlen);
  sodium_memzero(hex, sizeof hex);
  if (rc == 1) {   /* another process made it first: theirs is the secret */
    sodium_memzero(secret, CP_SECRET_BYTES);
    int won = key_file_state(path, err, errlen);
    if (won == 1) rc = secret_read(path, secret, err, errlen);
    else rc = won < 0 ? -1 : cp_err(err, errlen, "%s: made by another process, then gone", path);
  }
  if (rc != 0) sodium_memzero(secret, CP_SECRET_BYTES);
  return rc;
}

/* ---- CurveZMQ key pair --------------------------------------------------- */

static bool z85_key_ok(const char *z) {
  uint8_t bin[32];
  return strlen(z) == 40 && zmq_z85_decode(bin, z) != NULL;
}

/* Write <path>.pub (0644) unless it already holds pub. */
static int curve_write_pub(const char *path, const char *pub, char *err, size_t errlen) {
  size_t plen = strlen(path) + 5;
  char *pubpath = cp_xmalloc(plen);
  snprintf(pubpath, plen, "%s.pub", path);
  char line[42];
  snprintf(line, sizeof line, "%s\n", pub);
  uint8_t *cur = NULL;
  size_t curlen = 0;
  int rc = 0;
  if (cp_read_file(pubpath, 4096, &cur, &curlen, NULL, 0) != 0 || curlen != 41 ||
      memcmp(cur, line, 41) != 0)
    rc = cp_write_file_atomic(pubpath, line, 41, 0644, err, errlen);
  free(cur);
  free(pubpath);
  return rc;
}

int cp_curve_load(const char *path, bool create, char pub_z85[41], char sec_z85[41], char *err,
                  size_t errlen) {
  int st = key_file_state(path, err, errlen);
  if (st < 0) return -1;
  if (st == 1) {
    char *text = NULL;
    int rc = -1;
    if (read_key_text(path, &text, err, errlen) != 0) return -1;
    pub_z85[0] = sec_z85[0] = '\0';
    char *save = NULL;
    for (char *ln = strtok_r(text, "\n", &save); ln != NULL; ln = strtok_r(NULL, "\n", &save)) {
      size_t n = strlen(ln);
      while (n > 0 && isspace((unsigned char)ln[n - 1])) ln[--n] = '\0';
      if (strncmp(ln, "public=", 7) == 0 && n - 7 == 40) memcpy(pub_z85, ln + 7, 41);
      else if (strncmp(ln, "secret=", 7) == 0 && n - 7 == 40) memcpy(sec_z85, ln + 7, 41);
    }
    char derived[41];
    if (!z85_key_ok(pub_z85) || !z85_key_ok(sec_z85)) {
      cp_err(err, errlen, "%s must hold the lines public=<40 Z85 chars> and secret=<40 Z85 chars>", path);
    } else if (zmq_curve_public(derived, sec_z85) != 0 || strcmp(derived, pub_z85) != 0) {
      cp_err(err, errlen, "%s: the public key does not belong to the secret key", path);
    } else {
      rc = curve_write_pub(path, pub_z85, err, errlen);
    }
    free_secret_text(&text);
    if (rc != 0) sodium_memzero(sec_z85, 41);
    return rc;
  }
  if (!create) return cp_err(err, errlen, "%s: no such CurveZMQ key file", path);
  if (make_parent(path, err, errlen) != 0) return -1;
  if (zmq_curve_keypair(pub_z85, sec_z85) != 0)
    return cp_err(err, errlen, "zmq_curve_keypair: %s (libzmq built without CURVE?)",
                  zmq_strerror(errno));
  char text[128];
  int n = snprintf(text, sizeof text, "public=%s\nsecret=%s\n", pub_z85, sec_z85);
  int rc = cp_write_file_atomic(path, text, (size_t)n, 0600, err, errlen);
  sodium_memzero(text, sizeof text);
  if (rc == 0) rc = curve_write_pub(path, pub_z85, err, errlen);
  if (rc != 0) sodium_memzero(sec_z85, 41);
  return rc;
}
