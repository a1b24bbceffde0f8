/* redis_pipe.c -- cp_redis_pipe_t: many commands in one round trip, each reply found by its command's handle. */
#include "redis_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One queued command: either preformatted RESP (printf-style) or arguments in the arg table. */
typedef struct {
  cp_redis_script_t *script;  // script to call (EVALSHA prefix added when sent), NULL = plain
  bool resp;                  // true: bytes resp[first .. first + len) are the formatted command
  size_t first;               // resp: offset in p->resp; else index of the first argument
  size_t n;                   // resp: byte length; else number of arguments
} pipe_cmd_t;

struct cp_redis_pipe {
  pipe_cmd_t *cmds;           // queued commands
  size_t ncmds;               // commands queued
  size_t cmdcap;              // entries allocated in cmds
  char *args;                 // every argument's bytes (each followed by a NUL)
  size_t argslen;             // bytes used in args
  size_t argscap;             // bytes allocated in args
  size_t *off;                // offset of each argument in args
  size_t *len;                // length of each argument
  size_t nargs;               // arguments queued
  size_t argcap;              // entries allocated in off / len
  char *resp;                 // formatted commands (printf-style ones)
  size_t resplen;             // bytes used in resp
  size_t respcap;             // bytes allocated in resp
  redisReply **replies;       // after exec: one per command
  size_t nreplies;            // replies held (0 or ncmds)
  uint32_t gen;               // resets so far (stamped on handles)
  bool tx;                    // a MULTI ... EXEC block is queued (at most one per round)
  size_t tx_multi;            // position of its MULTI
  size_t tx_exec;             // position of its EXEC (SIZE_MAX while open)
};

static void grow(void **buf, size_t *cap, size_t need, size_t size, size_t first) {
  if (need <= *cap) return;
  size_t c = *cap ? *cap : first;
  while (c < need) c *= 2;
  *buf = cp_xrealloc(*buf, c * size);
  *cap = c;
}

cp_redis_pipe_t *cp_redis_pipe_new(void) { return cp_xcalloc(1, sizeof(cp_redis_pipe_t)); }

static void free_replies(cp_redis_pipe_t *p) {
  for (size_t i = 0; i < p->nreplies; i++)
    if (p->replies[i] != NULL) freeReplyObject(p->replies[i]);
  free(p->replies);
  p->replies = NULL;
  p->nreplies = 0;
}

void cp_redis_pipe_reset(cp_redis_pipe_t *p) {
  free_replies(p);
  p->ncmds = 0;
  p->nargs = 0;
  p->argslen = 0;
  p->resplen = 0;
  p->tx = false;
  p->gen++;
}

void cp_redis_pipe_destroy(cp_redis_pipe_t **pp) {
  if (pp == NULL || *pp == NULL) return;
  cp_redis_pipe_t *p = *pp;
  free_replies(p);
  free(p->cmds);
  free(p->args);
  free(p->off);
  free(p->len);
  free(p->resp);
  free(p);
  *pp = NULL;
}

size_t cp_redis_pipe_count(const cp_redis_pipe_t *p) { return p->ncmds; }

static cp_redis_handle_t push_cmd(cp_redis_pipe_t *p, pipe_cmd_t c) {
  assert(p->nreplies == 0);   /* reset before queueing after an exec */
  assert(p->ncmds < UINT32_MAX);
  grow((void **)&p->cmds, &p->cmdcap, p->ncmds + 1, sizeof *p->cmds, 64);
  p->cmds[p->ncmds] = c;
  return (cp_redis_handle_t){(uint32_t)p->ncmds++, p->gen};
}

cp_redis_handle_t cp_redis_pipe_start(cp_redis_pipe_t *p, cp_redis_script_t *s) {
  return push_cmd(p, (pipe_cmd_t){.script = s, .resp = false, .first = p->nargs, .n = 0});
}

void cp_redis_pipe_argn(cp_redis_pipe_t *p, const char *s, size_t len) {
  assert(p->ncmds > 0 && !p->cmds[p->ncmds - 1].resp);
  grow((void **)&p->off, &p->argcap, p->nargs + 1, sizeof *p->off, 256);
  p->len = cp_xrealloc(p->len, p->argcap * sizeof *p->len);
  grow((void **)&p->args, &p->argscap, p->argslen + len + 1, 1, 4096);
  if (len > 0) memcpy(p->args + p->argslen, s, len);
  p->args[p->argslen + len] = '\0';
  p->off[p->nargs] = p->argslen;
  p->len[p->nargs] = len;
  p->argslen += len + 1;
  p->nargs++;
  p->cmds[p->ncmds - 1].n++;
}

void cp_redis_pipe_arg(cp_redis_pipe_t *p, const char *s) { cp_redis_pipe_argn(p, s, strlen(s)); }

void cp_redis_pipe_argf(cp_redis_pipe_t *p, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  assert(n >= 0 && (size_t)n < sizeof tmp);   /* numbers and keys only */
  cp_redis_pipe_argn(p, tmp, (size_t)n);
}

cp_redis_handle_t cp_redis_pipe_argv(cp_redis_pipe_t *p, int argc, const char **argv, const size_t *lens) {
  cp_redis_handle_t h = cp_redis_pipe_start(p, NULL);
  for (int i = 0; i < argc; i++) cp_redis_pipe_argn(p, argv[i], lens != NULL ? lens[i] : strlen(argv[i]));
  return h;
}

cp_redis_handle_t cp_redis_pipe_script(cp_redis_pipe_t *p, cp_redis_script_t *s, int argc, const char **argv,
                                       const size_t *lens) {
  assert(s != NULL && argc >= s->nkeys);
  cp_redis_handle_t h = cp_redis_pipe_start(p, s);
  for (int i = 0; i < argc; i++) cp_redis_pipe_argn(p, argv[i], lens != NULL ? lens[i] : strlen(argv[i]));
  return h;
}

cp_redis_handle_t cp_redis_pipe_cmd(cp_redis_pipe_t *p, const char *fmt, ...) {
  char *cmd = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = redisvFormatCommand(&cmd, fmt, ap);
  va_end(ap);
  if (n < 0) abort();   /* out of memory or a malformed format: a programmer error */
  grow((void **)&p->resp, &p->respcap, p->resplen + (size_t)n, 1, 4096);
  memcpy(p->resp + p->resplen, cmd, (size_t)n);
  free(cmd);
  cp_redis_handle_t h = push_cmd(p, (pipe_cmd_t){.script = NULL, .resp = true, .first = p->resplen, .n = (size_t)n});
  p->resplen += (size_t)n;
  return h;
}

/* Append command i to c, as EVALSHA (or, src, as EVAL) when it calls a script. */
static int append_cmd(const cp_redis_pipe_t *p, size_t i, redisContext *c, bool src) {
  const pipe_cmd_t *cmd = &p->cmds[i];
  if (cmd->resp) return redisAppendFormattedCommand(c, p->resp + cmd->first, cmd->n);
  const char *stackv[16] = {0};
  size_t stackl[16] = {0};
  size_t argc = cmd->n + (cmd->script ? 3 : 0);
  const char **argv = argc <= 16 ? stackv : cp_xcalloc(argc, sizeof *argv);
  size_t *lens = argc <= 16 ? stackl : cp_xcalloc(argc, sizeof *lens);
  size_t k = 0;
  char nkeys[16];
  if (cmd->script) {
    snprintf(nkeys, sizeof nkeys, "%d", cmd->script->nkeys);
    argv[0] = src ? "EVAL" : "EVALSHA";
    argv[1] = src ? cmd->script->src : cp_redis_script_sha(cmd->script);
    argv[2] = nkeys;
    for (k = 0; k < 3; k++) lens[k] = strlen(argv[k]);
  }
  for (size_t a = 0; a < cmd->n; a++, k++) {
    argv[k] = p->args + p->off[cmd->first + a];
    lens[k] = p->len[cmd->first + a];
  }
  int rc = redisAppendCommandArgv(c, (int)argc, argv, lens);
  if (argv != stackv) free(argv);
  if (lens != stackl) free(lens);
  return rc;
}

int cp_redis_pipe_append_to(const cp_redis_pipe_t *p, redisContext *c) {
  for (size_t i = 0; i < p->ncmds; i++)
    if (append_cmd(p, i, c, false) != REDIS_OK) return -1;
  return 0;
}

/* Read one reply; NULL (and the connection dropped) on failure. */
static redisReply *read_reply(cp_redis_t *r) {
  void *rep = NULL;
  if (redisGetReply(r->c, &rep) != REDIS_OK || rep == NULL) {
    cpr_drop(r, "pipeline");
    return NULL;
  }
  return rep;
}

/* Queue SCRIPT LOAD on r->c for each script of the pipe this connection has not loaded; the
 * scripts are listed in *todo (malloc'd, *ntodo of them). */
static int queue_loads(const cp_redis_pipe_t *p, cp_redis_t *r, cp_redis_script_t ***todo, size_t *ntodo) {
  *todo = NULL;
  *ntodo = 0;
  size_t cap = 0;
  for (size_t i = 0; i < p->ncmds; i++) {
    cp_redis_script_t *s = p->cmds[i].script;
    if (s == NULL || cpr_script_loaded(r, s)) continue;
    bool seen = false;
    for (size_t j = 0; j < *ntodo && !seen; j++) seen = (*todo)[j] == s;
    if (seen) continue;
    grow((void **)todo, &cap, *ntodo + 1, sizeof **todo, 4);
    (*todo)[(*ntodo)++] = s;
    const char *argv[] = {"SCRIPT", "LOAD", s->src};
    if (redisAppendCommandArgv(r->c, 3, argv, NULL) != REDIS_OK) return -1;
  }
  return 0;
}

/* Check SCRIPT LOAD's answer: the SHA-1 the server computed must be ours. */
static bool load_ok(cp_redis_t *r, cp_redis_script_t *s, const redisReply *rep) {
  if (rep->type == REDIS_REPLY_STRING && rep->len == 40 && memcmp(rep->str, cp_redis_script_sha(s), 40) == 0)
    return true;
  snprintf(r->errstr, sizeof r->errstr, "redis SCRIPT LOAD %s: %s", s->name,
           rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
  return false;
}

int cp_redis_pipe_load_scripts(cp_redis_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) {
  if (cpr_ensure(r) != 0) return cp_err(err, errlen, "%s", r->errstr);
  cp_redis_script_t **todo = NULL;
  size_t ntodo = 0;
  int rc = queue_loads(p, r, &todo, &ntodo);
  for (size_t j = 0; rc == 0 && j < ntodo; j++) {
    redisReply *rep = read_reply(r);
    if (rep == NULL) {
      rc = -1;
      break;
    }
    if (load_ok(r, todo[j], rep)) cpr_script_mark(r, todo[j]);
    else rc = -1;
    freeReplyObject(rep);
  }
  if (rc != 0 && r->c != NULL && r->c->err) cpr_drop(r, "script load");
  free(todo);
  if (rc != 0) cp_err(err, errlen, "%s", r->errstr);
  return rc;
}

cp_redis_handle_t cp_redis_pipe_tx_begin(cp_redis_pipe_t *p) {
  assert(!p->tx);   /* one transaction per round */
  cp_redis_handle_t h = cp_redis_pipe_cmd(p, "MULTI");
  p->tx = true;
  p->tx_multi = h.i;
  p->tx_exec = SIZE_MAX;
  return h;
}

cp_redis_handle_t cp_redis_pipe_tx_end(cp_redis_pipe_t *p) {
  assert(p->tx && p->tx_exec == SIZE_MAX);
  cp_redis_handle_t h = cp_redis_pipe_cmd(p, "EXEC");
  p->tx_exec = h.i;
  return h;
}

/* Give each command of the transaction its own reply: EXEC's array element k goes to the k-th
 * command after MULTI (which was answered QUEUED), so handles read the real replies. When EXEC
 * failed (EXECABORT: nothing ran) its error reply stays, and each command keeps QUEUED or the
 * error it was refused with. */
static void tx_unwrap(cp_redis_pipe_t *p) {
  if (!p->tx || p->tx_exec == SIZE_MAX || p->tx_exec >= p->nreplies) return;
  redisReply *ex = p->replies[p->tx_exec];
  size_t inside = p->tx_exec - p->tx_multi - 1;
  if (ex->type != REDIS_REPLY_ARRAY || ex->elements != inside) return;
  for (size_t k = 0; k < inside; k++) {
    size_t at = p->tx_multi + 1 + k;
    freeReplyObject(p->replies[at]);
    p->replies[at] = ex->element[k];
    ex->element[k] = NULL;   /* freeReplyObject(NULL) does nothing */
  }
}

void cp_redis_pipe_take_replies(cp_redis_pipe_t *p, redisReply **replies, size_t n) {
  assert(p->nreplies == 0 && n == p->ncmds);
  assert(!p->tx || p->tx_exec != SIZE_MAX);   /* a transaction is closed before it is sent */
  p->replies = replies;
  p->nreplies = n;
  tx_unwrap(p);
}

int cp_redis_pipe_fix_noscript(cp_redis_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) {
  /* The server's script cache was flushed (SCRIPT FLUSH, or a restart we did not see): run
   * those commands again with the script's source, in one round trip. Every other command of
   * the pipe has run already, so order across them is not kept here; it is rare, and loading
   * scripts ahead on each new connection (cp_redis_pipe_exec) avoids it otherwise. */
  size_t again = 0;
  for (size_t i = 0; i < p->nreplies; i++) again += cpr_is_noscript(p->replies[i]);
  if (again == 0) return 0;
  cpr_scripts_forget(r);
  if (cpr_ensure(r) != 0) return cp_err(err, errlen, "%s", r->errstr);
  for (size_t i = 0; i < p->nreplies; i++)
    if (cpr_is_noscript(p->replies[i]) && append_cmd(p, i, r->c, true) != REDIS_OK) {
      cpr_drop(r, "pipeline");
      return cp_err(err, errlen, "%s", r->errstr);
    }
  for (size_t i = 0; i < p->nreplies; i++) {
    if (!cpr_is_noscript(p->replies[i])) continue;
    redisReply *rep = read_reply(r);
    if (rep == NULL) return cp_err(err, errlen, "%s", r->errstr);
    freeReplyObject(p->replies[i]);
    p->replies[i] = rep;
    cpr_script_mark(r, p->cmds[i].script);
  }
  return 0;
}

int cp_redis_pipe_exec(cp_redis_pipe_t *p, cp_redis_t *r) {
  assert(p->nreplies == 0);   /* exec once per reset */
  if (p->ncmds == 0) return 0;
  /* A connection with replies still pending from an abandoned pipeline would hand them to
   * the next reader; start from a fresh one. */
  if (r->c != NULL && r->c->obuf != NULL && r->c->obuf[0] != '\0') cpr_drop(r, "stale pipeline");
  if (cpr_ensure(r) != 0) return -1;
  cp_redis_script_t **todo = NULL;
  size_t ntodo = 0;
  redisReply **reps = NULL;
  size_t got = 0;
  int rc = queue_loads(p, r, &todo, &ntodo);
  for (size_t i = 0; rc == 0 && i < p->ncmds; i++)
    if (append_cmd(p, i, r->c, false) != REDIS_OK) rc = -1;
  if (rc != 0) {
    snprintf(r->errstr, sizeof r->errstr, "redis append: %s", r->c->errstr);
    cpr_drop(r, "pipeline");
    goto out;
  }
  for (size_t j = 0; j < ntodo; j++) {   /* the loads' replies come first */
    redisReply *rep = read_reply(r);
    if (rep == NULL) {
      rc = -1;
      goto out;
    }
    if (load_ok(r, todo[j], rep)) cpr_script_mark(r, todo[j]);   /* else: its calls say NOSCRIPT */
    freeReplyObject(rep);
  }
  reps = cp_xcalloc(p->ncmds, sizeof *reps);
  for (got = 0; got < p->ncmds; got++) {
    reps[got] = read_reply(r);
    if (reps[got] == NULL) {
      rc = -1;
      goto out;
    }
  }
  cp_redis_pipe_take_replies(p, reps, p->ncmds);
  reps = NULL;
  char err[CP_ERRLEN];
  if (cp_redis_pipe_fix_noscript(p, r, err, sizeof err) != 0) {
    free_replies(p);
    rc = -1;
  }
out:
  if (reps != NULL) {
    for (size_t i = 0; i < got; i++) freeReplyObject(reps[i]);
    free(reps);
  }
  free(todo);
  return rc;
}

const redisReply *cp_redis_pipe_reply(const cp_redis_pipe_t *p, cp_redis_handle_t h) {
  assert(h.gen == p->gen && h.i < p->ncmds);   /* a handle of this round */
  return h.i < p->nreplies ? p->replies[h.i] : NULL;
}

int cp_redis_pipe_check(const cp_redis_pipe_t *p, const char *what, char *err, size_t errlen) {
  if (p->nreplies != p->ncmds) return cp_err(err, errlen, "%s: no replies", what);
  for (size_t i = 0; i < p->nreplies; i++)
    if (p->replies[i]->type == REDIS_REPLY_ERROR)
      return cp_err(err, errlen, "%s: %s", what, p->replies[i]->str ? p->replies[i]->str : "ERR");
  return 0;
}
