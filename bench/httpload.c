/* httpload.c -- a small keep-alive HTTP/1.1 load generator for the gateway benchmarks: N persistent
 * connections spread over T threads (epoll each), one request in flight per connection (no
 * pipelining), a fixed request (or a cycle of bodies, or of paths, one per line of a file), latency of every
 * request kept for exact percentiles. Prints key=value lines (--kv) or a sentence.
 *
 *   httpload -p PORT [-h 127.0.0.1] [-c 32] [-t 1] [-d 5] [-w 0.5] [-m GET] [-u /path]
 *            [-H 'Name: value']... [-b bodies.txt | -U paths.txt] [--kv]
 *
 * Loopback benchmarking only: it talks to the host and port it is given, stops after -d seconds. */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HL_BUF 262144        /* receive buffer per connection (largest response head + body kept) */
#define HL_MAX_CONNS 4096    /* most connections */
#define HL_MAX_HEADERS 16    /* most -H options */

/* One prepared request (head + body). */
typedef struct {
  char *data;   // bytes to send
  size_t len;   // their count
} hl_req_t;

/* One connection's state. */
typedef struct {
  int fd;              // socket
  size_t next;         // index of the next request in the cycle
  size_t sent;         // bytes of the current request written
  const hl_req_t *cur; // request in flight (NULL = none)
  char *buf;           // received bytes not yet consumed
  size_t have;         // bytes in buf
  int64_t t0;          // ns when the request in flight was started
} hl_conn_t;

/* One thread's work and results. */
typedef struct {
  pthread_t th;        // the thread
  int first, count;    // connections [first, first + count) of the global list
  uint64_t done;       // responses read in the measured window
  uint64_t errors;     // of which not 2xx
  uint64_t failed;     // connection failures (connect, reset, short read)
  uint32_t *lat;       // latencies in µs of the measured window
  size_t nlat, caplat; // used / allocated
} hl_thread_t;

static struct {
  struct sockaddr_in addr; // target
  hl_req_t *reqs;          // request cycle
  size_t nreqs;            // its length
  int64_t start_ns;        // measured window start (after warm-up)
  int64_t end_ns;          // window end
} g;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) {
    perror("malloc");
    exit(2);
  }
  return p;
}

static int conn_open(hl_conn_t *c) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&g.addr, sizeof g.addr) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  c->have = 0;
  c->cur = NULL;
  return 0;
}

/* Length of a complete response at the start of buf (0 = not complete yet, -1 = malformed);
 * *status gets the status code. */
static long response_len(const char *buf, size_t have, int *status) {
  const char *end = memmem(buf, have, "\r\n\r\n", 4);
  if (end == NULL) return have > HL_BUF / 2 ? -1 : 0;
  size_t head = (size_t)(end - buf) + 4;
  if (have < 12 || memcmp(buf, "HTTP/1.", 7) != 0) return -1;
  *status = atoi(buf + 9);
  long body = 0;
  for (const char *p = buf; p < end;) {
    const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
    if (eol == NULL) break;
    if ((size_t)(eol - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0) body = atol(p + 15);
    p = eol + 2;
  }
  if (body < 0 || head + (size_t)body > HL_BUF) return -1;
  return have >= head + (size_t)body ? (long)(head + (size_t)body) : 0;
}

/* Write as much of the current request as the socket takes; 0 ok, -1 failed. */
static int conn_send(hl_conn_t *c) {
  if (c->cur == NULL) {
    c->cur = &g.reqs[c->next++ % g.nreqs];
    c->sent = 0;
    c->t0 = now_ns();
  }
  while (c->sent < c->cur->len) {
    ssize_t n = send(c->fd, c->cur->data + c->sent, c->cur->len - c->sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (n <= 0) return -1;
    c->sent += (size_t)n;
  }
  return 0;
}

static void lat_add(hl_thread_t *t, uint32_t us) {
  if (t->nlat == t->caplat) {
    t->caplat = t->caplat ? t->caplat * 2 : 65536;
    t->lat = realloc(t->lat, t->caplat * sizeof *t->lat);
    if (t->lat == NULL) {
      perror("realloc");
      exit(2);
    }
  }
  t->lat[t->nlat++] = us;
}

static void *run(void *arg) {
  hl_thread_t *t = arg;
  hl_conn_t *conns = calloc((size_t)t->count, sizeof *conns);
  int ep = epoll_create1(0);
  if (conns == NULL || ep < 0) {
    perror("epoll/calloc");
    exit(2);
  }
  for (int i = 0; i < t->count; i++) {
    hl_conn_t *c = &conns[i];
    c->buf = xmalloc(HL_BUF);
    c->next = (size_t)(t->first + i);
    if (conn_open(c) != 0) {
      fprintf(stderr, "httpload: connect: %s\n", strerror(errno));
      exit(2);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    if (conn_send(c) != 0) t->failed++;
  }
  struct epoll_event evs[256];
  for (;;) {
    int64_t now = now_ns();
    if (now >= g.end_ns) break;
    int ms = (int)((g.end_ns - now) / 1000000) + 1;
    int n = epoll_wait(ep, evs, 256, ms > 100 ? 100 : ms);
    for (int i = 0; i < n; i++) {
      hl_conn_t *c = evs[i].data.ptr;
      ssize_t r = recv(c->fd, c->buf + c->have, HL_BUF - c->have, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      bool broken = r <= 0;
      int status = 0;
      long len = 0;
      if (!broken) {
        c->have += (size_t)r;
        len = response_len(c->buf, c->have, &status);
        broken = len < 0;
      }
      if (broken) { /* reconnect and resend */
        t->failed++;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (conn_open(c) != 0) continue; /* dropped for the rest of the run */
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (conn_send(c) != 0) t->failed++;
        continue;
      }
      if (len == 0) continue; /* more to come */
      int64_t done = now_ns();
      if (c->t0 >= g.start_ns && done <= g.end_ns) {
        t->done++;
        if (status < 200 || status > 299) t->errors++;
        int64_t us = (done - c->t0) / 1000;
        lat_add(t, (uint32_t)(us > UINT32_MAX ? UINT32_MAX : us));
      }
      memmove(c->buf, c->buf + len, c->have - (size_t)len);
      c->have -= (size_t)len;
      c->cur = NULL;
      if (conn_send(c) != 0) t->failed++;
    }
  }
  for (int i = 0; i < t->count; i++) {
    if (conns[i].fd >= 0) close(conns[i].fd);
    free(conns[i].buf);
  }
  free(conns);
  close(ep);
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void usage(void) {
  fprintf(stderr, "usage: httpload -p PORT [-h HOST] [-c CONNS] [-t THREADS] [-d SECONDS] [-w WARMUP_S] "
                  "[-m METHOD] [-u PATH] [-H 'Name: value']... [-b BODY_LINES_FILE | -U PATHS_FILE] [--kv]\n");
  exit(2);
}

/* Add one request to the cycle: method and path, the -H headers, and the body when not NULL. */
static void add_request(const char *method, const char *path, char **hdrs, int nh, const char *body) {
  char head[4096];
  int k = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: bench\r\n", method, path);
  for (int i = 0; i < nh; i++) k += snprintf(head + k, sizeof head - (size_t)k, "%s\r\n", hdrs[i]);
  if ((size_t)k >= sizeof head - 64) usage();
  g.reqs = realloc(g.reqs, (g.nreqs + 1) * sizeof *g.reqs);
  if (g.reqs == NULL) exit(2);
  hl_req_t *r = &g.reqs[g.nreqs++];
  size_t sz = (size_t)k + (body != NULL ? strlen(body) : 0) + 64;
  r->data = xmalloc(sz);
  if (body == NULL) r->len = (size_t)snprintf(r->data, sz, "%s\r\n", head);
  else r->len = (size_t)snprintf(r->data, sz, "%sContent-Length: %zu\r\n\r\n%s", head, strlen(body), body);
}

/* One request per non-empty line of file: the line is the body (as_path false, on `path`) or the
 * path (as_path true, no body). */
static void add_requests_from(const char *file, bool as_path, const char *method, const char *path,
                              char **hdrs, int nh) {
  FILE *f = fopen(file, "r");
  if (f == NULL) {
    fprintf(stderr, "httpload: %s: %s\n", file, strerror(errno));
    exit(2);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    if (n == 0) continue;
    if (as_path) add_request(method, line, hdrs, nh, NULL);
    else add_request(method, path, hdrs, nh, line);
  }
  free(line);
  fclose(f);
  if (g.nreqs == 0) {
    fprintf(stderr, "httpload: %s has no %s\n", file, as_path ? "paths" : "bodies");
    exit(2);
  }
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *method = "GET", *path = "/", *bodyfile = NULL, *pathfile = NULL;
  int port = 0, conns = 32, threads = 1;
  double secs = 5, warm = 0.5;
  bool kv = false;
  char *hdrs[HL_MAX_HEADERS];
  int nh = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--kv") == 0) { kv = true; continue; }
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (strcmp(a, "-h") == 0) host = v;
    else if (strcmp(a, "-p") == 0) port = atoi(v);
    else if (strcmp(a, "-c") == 0) conns = atoi(v);
    else if (strcmp(a, "-t") == 0) threads = atoi(v);
    else if (strcmp(a, "-d") == 0) secs = atof(v);
    else if (strcmp(a, "-w") == 0) warm = atof(v);
    else if (strcmp(a, "-m") == 0) method = v;
    else if (strcmp(a, "-u") == 0) path = v;
    else if (strcmp(a, "-b") == 0) bodyfile = v;
    else if (strcmp(a, "-U") == 0) pathfile = v;
    else if (strcmp(a, "-H") == 0 && nh < HL_MAX_HEADERS) hdrs[nh++] = (char *)v;
    else usage();
  }
  if (port <= 0 || port > 65535 || conns < 1 || conns > HL_MAX_CONNS || threads < 1 || threads > conns ||
      secs <= 0 || secs > 3600 || warm < 0 || warm > 600 || (bodyfile != NULL && pathfile != NULL))
    usage();
  g.addr.sin_family = AF_INET;
  g.addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &g.addr.sin_addr) != 1) usage();
  if (pathfile != NULL) add_requests_from(pathfile, true, method, path, hdrs, nh);
  else if (bodyfile != NULL) add_requests_from(bodyfile, false, method, path, hdrs, nh);
  else add_request(method, path, hdrs, nh, NULL);

  g.start_ns = now_ns() + (int64_t)(warm * 1e9);
  g.end_ns = g.start_ns + (int64_t)(secs * 1e9);
  hl_thread_t *ts = calloc((size_t)threads, sizeof *ts);
  if (ts == NULL) exit(2);
  for (int i = 0, first = 0; i < threads; i++) {
    ts[i].first = first;
    ts[i].count = conns / threads + (i < conns % threads);
    first += ts[i].count;
    if (pthread_create(&ts[i].th, NULL, run, &ts[i]) != 0) exit(2);
  }
  uint64_t done = 0, errors = 0, failed = 0;
  size_t nlat = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(ts[i].th, NULL);
    done += ts[i].done;
    errors += ts[i].errors;
    failed += ts[i].failed;
    nlat += ts[i].nlat;
  }
  uint32_t *lat = xmalloc((nlat + 1) * sizeof *lat);
  size_t k = 0;
  for (int i = 0; i < threads; i++) {
    if (ts[i].nlat) memcpy(lat + k, ts[i].lat, ts[i].nlat * sizeof *lat);
    k += ts[i].nlat;
    free(ts[i].lat);
  }
  qsort(lat, nlat, sizeof *lat, cmp_u32);
#define PCT(p) (nlat ? lat[(size_t)((double)nlat * (p) / 100.0) < nlat ? (size_t)((double)nlat * (p) / 100.0) : nlat - 1] : 0)
  double rps = (double)done / secs;
  if (kv)
    printf("requests=%llu\nerrors=%llu\nconn_failures=%llu\nseconds=%.3f\nrps=%.1f\np50_us=%u\np90_us=%u\n"
           "p99_us=%u\np999_us=%u\nmax_us=%u\n",
           (unsigned long long)done, (unsigned long long)errors, (unsigned long long)failed, secs, rps, PCT(50),
           PCT(90), PCT(99), PCT(99.9), nlat ? lat[nlat - 1] : 0);
  else
    printf("%s %s: %.0f requests/s (%llu in %.1f s, %llu not 2xx, %llu connection failures), %d connections, "
           "%d threads; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           method, path, rps, (unsigned long long)done, secs, (unsigned long long)errors,
           (unsigned long long)failed, conns, threads, PCT(50) / 1000.0, PCT(99) / 1000.0,
           nlat ? lat[nlat - 1] / 1000.0 : 0);
  free(lat);
  free(ts);
  for (size_t i = 0; i < g.nreqs; i++) free(g.reqs[i].data);
  free(g.reqs);
  return 0;
}
