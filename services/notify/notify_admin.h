/* notify_admin.h -- operator subcommands (notify dead-list / dead-replay). */
#ifndef NOTIFY_ADMIN_H
#define NOTIFY_ADMIN_H

#include <stdbool.h>
#include <stdio.h>

/* Is arg one of the operator subcommands? */
bool nt_admin_is_command(const char *arg);
/* Run one: argv[0] = "dead-list" [COUNT] | "dead-replay" ID|--all. Config must be
 * loaded. Prints JSON lines on out; returns the process exit code. */
int nt_admin_main(int argc, char **argv, FILE *out, FILE *errout);

#endif
