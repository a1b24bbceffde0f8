/* utf8.c -- UTF-8 well-formedness check (RFC 3629, table 3-7 of the Unicode standard). */
#include "cp_utf8.h"

#include <stdint.h>

bool cp_utf8_valid(const void *s, size_t len) {
  const uint8_t *p = s;
  size_t i = 0;
  while (i < len) {
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;           /* continuation bytes that follow */
    uint8_t lo = 0x80;  /* allowed range of the first continuation byte */
    uint8_t hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;      /* overlong below U+0800 */
      else if (c == 0xED) hi = 0x9F; /* surrogates U+D800..U+DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;      /* overlong below U+10000 */
      else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
      return false; /* 0x80..0xC1 (continuation or overlong lead), 0xF5..0xFF */
    }
    if (len - i - 1 < n) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k <= n; k++)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    i += n + 1;
  }
  return true;
}
