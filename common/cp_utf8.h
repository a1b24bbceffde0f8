/* cp_utf8.h -- is a byte string well-formed UTF-8 (RFC 3629)? One validator for every edge. */
#ifndef CP_UTF8_H
#define CP_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len-1] is well-formed UTF-8: no stray continuation bytes, no truncated
 * sequence, no overlong form, no surrogate (U+D800..U+DFFF), nothing above U+10FFFF.
 * NUL bytes are valid UTF-8 here; callers that refuse them check for them separately. */
bool cp_utf8_valid(const void *s, size_t len);

#endif
