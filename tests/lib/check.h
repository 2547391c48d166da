/*
 * check.h — the assertions of the C unit tests (link resnetd_testlib, which
 * puts tests/lib on the include path).
 *
 *   CHECK(c)   on failure prints file:line and the expression, then exits 1
 *              (later checks depend on this one) — or, when the test defines
 *              CHECK_CONTINUE before including this file, increments the
 *              test's own `int check_failures` and goes on (the test returns
 *              non-zero at the end when check_failures > 0).
 */
#ifndef RESNETD_TEST_CHECK_H
#define RESNETD_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifdef CHECK_CONTINUE
#define CHECK_FAILED() check_failures++
#else
#define CHECK_FAILED() exit(1)
#endif

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
            CHECK_FAILED();                                                                        \
        }                                                                                          \
    } while (0)

#endif
