/* test_url_check.c -- where a webhook may point (common/url_check.c, cidr.c): URL forms, every
 * forbidden address class in its disguises, host names, the operator's allow list, and the
 * connect-time address check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "cp_url_check.h"

static int check(const char *url, const cp_url_allow_t *allow, char *err, size_t errlen) {
  cp_url_t u;
  return cp_url_check(url, allow, &u, err, errlen);
}

#define ACCEPTED(url, allow)                                                       \
  do {                                                                             \
    char e_[256] = "";                                                             \
    if (check(url, allow, e_, sizeof e_) != 0) fail_msg("%s refused: %s", url, e_); \
  } while (0)

#define REFUSED(url, allow, needle)                                                    \
  do {                                                                                 \
    char e_[256] = "";                                                                 \
    if (check(url, allow, e_, sizeof e_) == 0) fail_msg("%s accepted", url);           \
    if (strstr(e_, needle) == NULL) fail_msg("%s: \"%s\" lacks \"%s\"", url, e_, needle); \
  } while (0)

static void test_forms(void **state) {
  (void)state;
  ACCEPTED("https://hooks.example.org/carepass", NULL);
  ACCEPTED("http://hooks.example.org:8443/a?b=c", NULL);
  ACCEPTED("HTTPS://Hooks.Example.ORG", NULL);
  ACCEPTED("https://93.184.216.34/x", NULL);
  ACCEPTED("https://[2606:2800:220:1:248:1893:25c8:1946]:443/x", NULL);
  REFUSED("ftp://hooks.example.org/", NULL, "https://");
  REFUSED("file:///etc/passwd", NULL, "https://");
  REFUSED("gopher://x/", NULL, "https://");
  REFUSED("https://", NULL, "no host");
  REFUSED("https:///path", NULL, "no host");
  REFUSED("https://user:pw@hooks.example.org/", NULL, "user name");
  REFUSED("https://hooks.example.org@127.0.0.1/", NULL, "user name");
  REFUSED("https://hooks.example.org/#frag", NULL, "fragment");
  REFUSED("https://hooks.example.org:0/", NULL, "port");
  REFUSED("https://hooks.example.org:65536/", NULL, "port");
  REFUSED("https://hooks.example.org:80a/", NULL, "port");
  REFUSED("https://hooks.example.org:/", NULL, "port");
  REFUSED("https://hooks example.org/", NULL, "space");
  REFUSED("https://hooks.example.org/\xc3\xa9", NULL, "non-ASCII");
  REFUSED("https://hooks.example.org\\@evil/", NULL, "backslash");
  REFUSED("https://hoo%6bs.example.org/", NULL, "only letters");
  REFUSED("https://[::1/", NULL, "closing");
  REFUSED("https://[::1]x/", NULL, "after its IPv6");
  REFUSED("https://[not-v6]/", NULL, "not an IPv6");
  REFUSED("https://a..b/", NULL, "empty label");
  REFUSED("https://.a/", NULL, "empty label");
}

static void test_forbidden_literals(void **state) {
  (void)state;
  static const char *const loop[] = {
      "http://127.0.0.1/",       "http://127.1/",         "http://2130706433/",
      "http://0177.0.0.1/",      "http://0x7f.1/",        "http://0x7f000001/",
      "http://127.0.0.1./",      "http://[::1]/",         "http://[::ffff:127.0.0.1]/",
      "http://[::ffff:7f00:1]/", "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/",
      "http://[0:0:0:0:0:0:0:1]/",
  };
  for (size_t i = 0; i < sizeof loop / sizeof loop[0]; i++) REFUSED(loop[i], NULL, "loopback");
  REFUSED("http://10.1.2.3/", NULL, "private");
  REFUSED("http://172.16.0.1/", NULL, "private");
  REFUSED("http://172.31.255.255/", NULL, "private");
  REFUSED("http://192.168.1.1/", NULL, "private");
  REFUSED("http://100.64.0.1/", NULL, "shared address");
  REFUSED("http://169.254.169.254/latest/meta-data/", NULL, "link-local");
  REFUSED("http://[fe80::1]/", NULL, "link-local");
  REFUSED("http://[fd00::1]/", NULL, "unique local");
  REFUSED("http://[ff02::1]/", NULL, "multicast");
  REFUSED("http://224.0.0.1/", NULL, "multicast");
  REFUSED("http://0.0.0.0/", NULL, "reserved");
  REFUSED("http://0/", NULL, "reserved");
  REFUSED("http://255.255.255.255/", NULL, "broadcast");
  REFUSED("http://[::]/", NULL, "unspecified");
  REFUSED("http://[::ffff:10.0.0.1]/", NULL, "private");
  REFUSED("http://[2001::1]/", NULL, "Teredo");
  REFUSED("http://192.0.2.1/", NULL, "documentation");
  REFUSED("http://999.1.1.1/", NULL, "not one");
  REFUSED("http://1.2.3.4.5/", NULL, "not one");
  REFUSED("http://localhost/", NULL, "loopback name");
  REFUSED("http://LOCALHOST./", NULL, "loopback name");
  REFUSED("http://a.localhost/", NULL, "loopback name");
  /* next to the forbidden ranges, public */
  ACCEPTED("http://172.32.0.1/", NULL);
  ACCEPTED("http://100.128.0.1/", NULL);
  ACCEPTED("http://[2002:5db8:d822::]/", NULL); /* 6to4 of 93.184.216.34 */
  ACCEPTED("http://localhost.example.org/", NULL);
  ACCEPTED("http://example.com1/", NULL);
}

static void test_allow_list(void **state) {
  (void)state;
  cp_url_allow_t allow;
  char err[256];
  assert_int_equal(cp_url_allow_parse(" receiver.internal, 127.0.0.1/32 ,10.20.0.0/16,::1", &allow, err,
                                      sizeof err), 0);
  assert_int_equal(allow.nhosts, 1);
  assert_int_equal(allow.nets.n, 3);
  ACCEPTED("http://127.0.0.1:9000/hook", &allow);
  ACCEPTED("http://[::1]:9000/hook", &allow);
  ACCEPTED("http://[::ffff:127.0.0.1]:9000/hook", &allow);
  ACCEPTED("http://10.20.3.4/", &allow);
  ACCEPTED("http://Receiver.Internal/", &allow);
  REFUSED("http://127.0.0.2/", &allow, "loopback");
  REFUSED("http://10.21.0.1/", &allow, "private");
  REFUSED("http://localhost/", &allow, "loopback name");
  assert_int_equal(cp_url_allow_parse("localhost", &allow, err, sizeof err), 0);
  ACCEPTED("http://localhost:8080/", &allow);
  assert_int_equal(cp_url_allow_parse("", &allow, err, sizeof err), 0);
  assert_int_equal(allow.nhosts + (size_t)allow.nets.n, 0);
  assert_int_equal(cp_url_allow_parse("10.0.0.0/33", &allow, err, sizeof err), -1);
  assert_non_null(strstr(err, "entry 1"));
  assert_int_equal(cp_url_allow_parse("a.b, ba!d", &allow, err, sizeof err), -1);
  assert_non_null(strstr(err, "entry 2"));
  assert_int_equal(cp_url_allow_parse("::1/129", &allow, err, sizeof err), -1);
}

static void test_connect_time(void **state) {
  (void)state;
  cp_url_allow_t allow;
  char err[128];
  assert_int_equal(cp_url_allow_parse("127.0.0.1", &allow, err, sizeof err), 0);
  struct sockaddr_in s4 = {.sin_family = AF_INET};
  struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
  const char *why = NULL;
  inet_pton(AF_INET, "127.0.0.1", &s4.sin_addr);
  assert_false(cp_url_addr_allowed((struct sockaddr *)&s4, NULL, &why));
  assert_string_equal(why, "loopback");
  assert_true(cp_url_addr_allowed((struct sockaddr *)&s4, &allow, NULL));
  inet_pton(AF_INET, "169.254.169.254", &s4.sin_addr);
  assert_false(cp_url_addr_allowed((struct sockaddr *)&s4, &allow, &why));
  assert_string_equal(why, "link-local");
  inet_pton(AF_INET, "93.184.216.34", &s4.sin_addr);
  assert_true(cp_url_addr_allowed((struct sockaddr *)&s4, NULL, NULL));
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr);
  assert_false(cp_url_addr_allowed((struct sockaddr *)&s6, NULL, NULL));
  assert_true(cp_url_addr_allowed((struct sockaddr *)&s6, &allow, NULL));
  inet_pton(AF_INET6, "64:ff9b::7f00:1", &s6.sin6_addr);
  assert_true(cp_url_addr_allowed((struct sockaddr *)&s6, &allow, NULL));
  inet_pton(AF_INET6, "fd12::1", &s6.sin6_addr);
  assert_false(cp_url_addr_allowed((struct sockaddr *)&s6, &allow, NULL));
  inet_pton(AF_INET6, "2606:2800:220:1::1", &s6.sin6_addr);
  assert_true(cp_url_addr_allowed((struct sockaddr *)&s6, NULL, NULL));
  struct sockaddr su = {.sa_family = AF_UNIX};
  assert_false(cp_url_addr_allowed(&su, &allow, &why));
  assert_true(cp_url_host_allowed("receiver.internal", &(cp_url_allow_t){.nhosts = 1, .hosts = {"receiver.internal"}}));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forms),
      cmocka_unit_test(test_forbidden_literals),
      cmocka_unit_test(test_allow_list),
      cmocka_unit_test(test_connect_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
