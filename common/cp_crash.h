/* cp_crash.h -- test-only fault injection: kill the process at a named point, to test recovery. */
#ifndef CP_CRASH_H
#define CP_CRASH_H

/* CAREPASS_TEST_CRASH_POINT=<name>:<n> makes this SIGKILL the process the n-th time it reaches
 * point `name`. The variable is read once, on the first call (a malformed value is logged and
 * ignored); unset or empty, a call is a string compare away from nothing. Points in use:
 * the register writer's (cp_register.h) and verify's "verify.award_claimed". Call it from one
 * thread of a process only. */
void cp_test_crash_point(const char *name);

#endif
