/* cp_cidr.h -- address ranges (CIDRs) for operator lists: the gateway's trusted proxies and the
 * webhook allow list. An address is held in 16-byte form, IPv4 as ::ffff:a.b.c.d, so an IPv4
 * address and its IPv4-mapped IPv6 form are the same address to every check. */
#ifndef CP_CIDR_H
#define CP_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "cp_util.h"

#define CP_CIDR_MAX 64   /* most ranges in one list */

/* One range: an address in 16-byte form and how many leading bits of it must match. */
typedef struct {
  unsigned char addr[16];   // the range's address
  int bits;                 // prefix length over the 16 bytes (IPv4 /n is 96 + n)
} cp_cidr_t;

/* A list of ranges (value type; empty = matches nothing). */
typedef struct {
  cp_cidr_t r[CP_CIDR_MAX]; // the ranges
  int n;                    // ranges in r
} cp_cidr_list_t;

/* The 16-byte form of an AF_INET or AF_INET6 address (a struct in_addr / in6_addr). */
void cp_addr_to16(int family, const void *addr, unsigned char out[16]);

/* The 16-byte form of a socket address; false for a family other than AF_INET / AF_INET6. */
bool cp_addr_from_sa(const struct sockaddr *sa, unsigned char out[16]);

/* Whether a 16-byte address is an IPv4 one (::ffff:a.b.c.d). */
bool cp_addr_is_v4(const unsigned char a[16]);

/* Parse an address literal of exactly n bytes ("192.0.2.1", "2001:db8::1"; inet_pton forms only). */
bool cp_addr_parse(const char *s, size_t n, unsigned char out[16]);

/* The textual form of a 16-byte address (IPv4 as a dotted quad). */
void cp_addr_text(const unsigned char a[16], char *out, size_t outlen);

/* Parse one entry "ADDR" or "ADDR/BITS" of n bytes into c; false when it is neither. */
bool cp_cidr_parse_one(const char *s, size_t n, cp_cidr_t *c);

/* Append one range to a list; -1 with a message naming what (the setting) when full or bad. */
int cp_cidr_add(cp_cidr_list_t *list, const char *s, size_t n, const char *what, char *err,
                size_t errlen) CP_WUR;

/* Whether a 16-byte address lies in one of the list's ranges. */
bool cp_cidr_contains(const cp_cidr_list_t *list, const unsigned char a[16]);

#endif
