/* cp_url_check.h -- where a webhook may point: the URL's form and the addresses it may reach.
 *
 * A webhook URL (a provider registry's webhook_url, an employer's subscription) is refused when
 *   - it is not http:// or https://, has no host, carries userinfo (user@host), a fragment, a
 *     bad port, or characters outside printable ASCII;
 *   - its host is an address literal (IPv4 in any inet_aton form: 127.1, 2130706433,
 *     0177.0.0.1, 0x7f.1; IPv6 in brackets) in a forbidden range: unspecified, loopback,
 *     private (10/8, 172.16/12, 192.168/16), CGNAT (100.64/10), link-local (169.254/16,
 *     fe80::/10), multicast (224/4, ff00::/8), reserved (0/8, 240/4, broadcast), IPv6 ULA
 *     (fc00::/7), and IPv4-mapped / IPv4-compatible / NAT64 / 6to4 forms of a forbidden IPv4.
 * A host *name* cannot be judged without DNS: the gateway and the registry loader accept a
 * well-formed name, and notify judges every address the name resolves to at the moment it
 * connects (cp_url_addr_allowed from CURLOPT_OPENSOCKETFUNCTION), so a name that resolves, or
 * later rebinds, to a forbidden address is never connected to.
 *
 * The operator's allow list (CAREPASS_WEBHOOK_ALLOW_HOSTS: comma-separated host names and
 * CIDRs such as "receiver.internal,10.20.0.0/16,127.0.0.1/32") admits named internal hosts
 * and ranges for tests and private deployments: a URL whose host name is on it may reach any
 * address; an address inside an allowed CIDR is allowed. */
#ifndef CP_URL_CHECK_H
#define CP_URL_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "cp_cidr.h"
#include "cp_util.h"

#define CP_URL_HOST_MAX 256     /* longest host name (bytes incl. NUL) */
#define CP_URL_ALLOW_MAX 64     /* most entries in an allow list */

/* A parsed allow list (value type; an empty list allows nothing extra). */
typedef struct {
  size_t nhosts;                                   // host names in hosts
  char hosts[CP_URL_ALLOW_MAX][CP_URL_HOST_MAX];   // lower-case host names
  cp_cidr_list_t nets;                             // allowed address ranges
} cp_url_allow_t;

/* The parts of a URL that matter for where it goes. */
typedef struct {
  char host[CP_URL_HOST_MAX];  // lower-case host, without brackets for IPv6
  bool literal;                // host is an address literal (then addr is set)
  struct sockaddr_storage addr;// the literal's address (port 0)
  int port;                    // explicit port or the scheme's default
} cp_url_t;

/* Parse "a.example,10.0.0.0/8,::1/128" (spaces allowed around entries; "" = empty list).
 * -1 with a message naming the bad entry. */
int cp_url_allow_parse(const char *spec, cp_url_allow_t *out, char *err, size_t errlen) CP_WUR;

/* Parse and judge a webhook URL without DNS (see above). 0 = acceptable; -1 with the reason in
 * err (a sentence a person can act on; the URL itself is not repeated). allow may be NULL. */
int cp_url_check(const char *url, const cp_url_allow_t *allow, cp_url_t *out, char *err,
                 size_t errlen) CP_WUR;

/* Whether a connection to sa may be made: true when the address is public or inside an
 * allowed CIDR. why (may be NULL) receives the class of a refused address ("loopback", ...). */
bool cp_url_addr_allowed(const struct sockaddr *sa, const cp_url_allow_t *allow, const char **why);

/* The process's allow list: CAREPASS_WEBHOOK_ALLOW_HOSTS parsed once (the config table has
 * checked its form; an unloaded table gives the empty default). Never NULL. */
const cp_url_allow_t *cp_url_allow_config(void);

/* Whether host (lower-case) is one of the allow list's host names. */
bool cp_url_host_allowed(const char *host, const cp_url_allow_t *allow);

#endif
