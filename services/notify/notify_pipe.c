/* notify_pipe.c -- many Redis commands and cached Lua scripts (EVALSHA) in one round trip. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "notify_pipe.h"

/* One queued command: its arguments are args[first .. first + argc - 1]. */
typedef struct {
  nt_script_t *script;   // script to run (EVALSHA/EVAL prefix added at exec), NULL = plain command
  size_t first;          // index of the first argument in the pipe's argument table
  size_t argc;           // number of arguments (for a script: numkeys, keys, args)
} pipe_cmd_t;

struct nt_pipe {
  char *buf;             // every argument's bytes, each followed by a NUL
  size_t buflen;         // bytes used in buf
  size_t bufcap;         // bytes allocated for buf
  size_t *off;           // offset of each argument in buf
  size_t *len;           // length of each argument
  size_t nargs;          // arguments queued
  size_t argcap;         // entries allocated in off/len
  pipe_cmd_t *cmds;      // queued commands
  size_t ncmds;          // commands queued
  size_t cmdcap;         // entries allocated in cmds
  redisReply **replies;  // replies after nt_pipe_exec (one per command)
  size_t nreplies;       // number of replies held
};

nt_pipe_t *nt_pipe_new(void) { return cp_xcalloc(1, sizeof(nt_pipe_t)); }

void nt_pipe_reset(nt_pipe_t *p) {
  nt_pipe_reset_replies(p);
  p->buflen = 0;
  p->nargs = 0;
  p->ncmds = 0;
}

void nt_pipe_destroy(nt_pipe_t **pp) {
  nt_pipe_t *p = pp ? *pp : NULL;
  if (!p) return;
  nt_pipe_reset(p);
  free(p->buf);
  free(p->off);
  free(p->len);
  free(p->cmds);
  free(p);
  *pp = NULL;
}

size_t nt_pipe_count(const nt_pipe_t *p) { return p->ncmds; }

size_t nt_pipe_start(nt_pipe_t *p, nt_script_t *script) {
  assert(p->nreplies == 0);   /* reset before queueing again */
  if (p->ncmds == p->cmdcap) {
    p->cmdcap = p->cmdcap ? 2 * p->cmdcap : 64;
    p->cmds = cp_xrealloc(p->cmds, p->cmdcap * sizeof *p->cmds);
  }
  p->cmds[p->ncmds] = (pipe_cmd_t){.script = script, .first = p->nargs, .argc = 0};
  return p->ncmds++;
}

void nt_pipe_argn(nt_pipe_t *p, const char *s, size_t len) {
  assert(p->ncmds > 0);
  if (p->nargs == p->argcap) {
    p->argcap = p->argcap ? 2 * p->argcap : 256;
    p->off = cp_xrealloc(p->off, p->argcap * sizeof *p->off);
    p->len = cp_xrealloc(p->len, p->argcap * sizeof *p->len);
  }
  if (p->buflen + len + 1 > p->bufcap) {
    size_t cap = p->bufcap ? p->bufcap : 4096;
    while (cap < p->buflen + len + 1) cap *= 2;
    p->buf = cp_xrealloc(p->buf, cap);
    p->bufcap = cap;
  }
  if (len) memcpy(p->buf + p->buflen, s, len);
  p->buf[p->buflen + len] = '\0';
  p->off[p->nargs] = p->buflen;
  p->len[p->nargs] = len;
  p->buflen += len + 1;
  p->nargs++;
  p->cmds[p->ncmds - 1].argc++;
}

void nt_pipe_arg(nt_pipe_t *p, const char *s) { nt_pipe_argn(p, s ? s : "", s ? strlen(s) : 0); }

void nt_pipe_argf(nt_pipe_t *p, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  assert(n >= 0 && (size_t)n < sizeof tmp);   /* only short numbers and keys go through here */
  nt_pipe_argn(p, tmp, (size_t)n);
}

/* Build one command's argv (with the EVALSHA/EVAL prefix of a script). */
static int cmd_argv(const nt_pipe_t *p, const pipe_cmd_t *c, bool eval_src, const char **argv,
                    size_t *lens) {
  int k = 0;
  if (c->script) {
    argv[k] = eval_src ? "EVAL" : "EVALSHA";
    lens[k] = strlen(argv[k]);
    k++;
    argv[k] = eval_src ? c->script->src : c->script->sha;
    lens[k] = strlen(argv[k]);
    k++;
  }
  for (size_t i = 0; i < c->argc; i++, k++) {
    argv[k] = p->buf + p->off[c->first + i];
    lens[k] = p->len[c->first + i];
  }
  return k;
}

int nt_pipe_load_scripts(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) {
  for (size_t i = 0; i < p->ncmds; i++) {
    nt_script_t *s = p->cmds[i].script;
    if (!s || s->sha[0]) continue;
    redisReply *rep = cp_redis_cmd(r, "SCRIPT LOAD %s", s->src);
    if (!rep) return cp_err(err, errlen, "loading script %s: %s", s->name, cp_redis_errstr(r));
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
      freeReplyObject(rep);
      return cp_err(err, errlen, "loading script %s: unexpected reply", s->name);
    }
    memcpy(s->sha, rep->str, 40);
    s->sha[40] = '\0';
    freeReplyObject(rep);
  }
  return 0;
}

static bool is_noscript(const redisReply *rep) {
  return rep && rep->type == REDIS_REPLY_ERROR && rep->str && strncmp(rep->str, "NOSCRIPT", 8) == 0;
}

/* Longest argv of the queued commands (with the two-word script prefix). */
static size_t max_argc(const nt_pipe_t *p) {
  size_t m = 2;
  for (size_t i = 0; i < p->ncmds; i++)
    if (p->cmds[i].argc + 2 > m) m = p->cmds[i].argc + 2;
  return m;
}

int nt_pipe_append_to(nt_pipe_t *p, redisContext *c) {
  const char **argv = cp_xcalloc(max_argc(p), sizeof *argv);
  size_t *lens = cp_xcalloc(max_argc(p), sizeof *lens);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < p->ncmds; i++) {
    assert(!p->cmds[i].script || p->cmds[i].script->sha[0]);   /* nt_pipe_load_scripts first */
    int argc = cmd_argv(p, &p->cmds[i], false, argv, lens);
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) rc = -1;
  }
  free(argv);
  free(lens);
  return rc;
}

void nt_pipe_take_replies(nt_pipe_t *p, redisReply **replies, size_t n) {
  assert(p->nreplies == 0 && n == p->ncmds);
  p->replies = replies;
  p->nreplies = n;
}

int nt_pipe_fix_noscript(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) {
  const char **argv = cp_xcalloc(max_argc(p), sizeof *argv);
  size_t *lens = cp_xcalloc(max_argc(p), sizeof *lens);
  int rc = 0;
  /* Redis restarted or its script cache was flushed: run those once with the source
   * (which caches the script again). Rare, so one round trip each is fine. */
  for (size_t i = 0; i < p->nreplies; i++) {
    if (!is_noscript(p->replies[i])) continue;
    freeReplyObject(p->replies[i]);
    p->replies[i] = NULL;
    int argc = cmd_argv(p, &p->cmds[i], true, argv, lens);
    cp_redis_pipeline_begin(r);   /* raw replies: error replies stay replies */
    cp_redis_append_argv(r, argc, argv, lens);
    redisReply **one = NULL;
    int m = 0;
    if (cp_redis_pipeline_exec(r, &one, &m) < 0 || m != 1) {
      cp_redis_replies_free(one, m);
      rc = cp_err(err, errlen, "running script %s: %s", p->cmds[i].script->name, cp_redis_errstr(r));
      break;
    }
    p->replies[i] = one[0];
    free(one);
  }
  free(argv);
  free(lens);
  return rc;
}

int nt_pipe_exec(nt_pipe_t *p, cp_redis_t *r, char *err, size_t errlen) {
  assert(p->nreplies == 0);
  if (p->ncmds == 0) return 0;
  if (nt_pipe_load_scripts(p, r, err, errlen) < 0) return -1;
  const char **argv = cp_xcalloc(max_argc(p), sizeof *argv);
  size_t *lens = cp_xcalloc(max_argc(p), sizeof *lens);
  cp_redis_pipeline_begin(r);
  for (size_t i = 0; i < p->ncmds; i++) {
    int argc = cmd_argv(p, &p->cmds[i], false, argv, lens);
    cp_redis_append_argv(r, argc, argv, lens);
  }
  free(argv);
  free(lens);
  redisReply **reps = NULL;
  int n = 0;
  if (cp_redis_pipeline_exec(r, &reps, &n) < 0 || (size_t)n != p->ncmds) {
    cp_redis_replies_free(reps, n);
    return cp_err(err, errlen, "redis pipeline of %zu commands: %s", p->ncmds, cp_redis_errstr(r));
  }
  nt_pipe_take_replies(p, reps, (size_t)n);
  if (nt_pipe_fix_noscript(p, r, err, errlen) < 0) {
    nt_pipe_reset_replies(p);
    return -1;
  }
  return 0;
}

void nt_pipe_reset_replies(nt_pipe_t *p) {
  for (size_t i = 0; i < p->nreplies; i++)
    if (p->replies[i]) freeReplyObject(p->replies[i]);
  free(p->replies);
  p->replies = NULL;
  p->nreplies = 0;
}

const redisReply *nt_pipe_reply(const nt_pipe_t *p, size_t i) {
  return i < p->nreplies ? p->replies[i] : NULL;
}

int nt_pipe_reply_error(const nt_pipe_t *p, size_t i, const char *what, char *err, size_t errlen) {
  const redisReply *rep = nt_pipe_reply(p, i);
  if (!rep) return cp_err(err, errlen, "%s: no reply", what);
  if (rep->type == REDIS_REPLY_ERROR) return cp_err(err, errlen, "%s: %s", what, rep->str ? rep->str : "ERR");
  return 0;
}
