/* tests/testutil.h - shared helpers for the cmocka tests.
 *
 * EXPECT_FATAL(stmt, "substring") runs stmt, requires it to stop through
 * secap_fatal() (not crash, not return) with a message containing the
 * substring, and restores the default error handler.
 */
#ifndef SECAP_TESTUTIL_H
#define SECAP_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "secap/base.h"

static jmp_buf tu_jmp;
static int tu_armed;

__attribute__((unused)) static void tu_handler(const char *msg, void *ctx)
{
    (void)msg; (void)ctx;
    if (tu_armed) longjmp(tu_jmp, 1);
}

#define EXPECT_FATAL(stmt, substr)                                             \
    do {                                                                       \
        secap_set_error_handler(tu_handler, NULL);                             \
        tu_armed = 1;                                                          \
        volatile int tu_hit = 0;                                               \
        if (setjmp(tu_jmp) == 0) { stmt; } else { tu_hit = 1; }                \
        tu_armed = 0;                                                          \
        secap_set_error_handler(NULL, NULL);                                   \
        if (!tu_hit) fail_msg("expected a fatal error from: %s", #stmt);       \
        if (!strstr(secap_last_error(), substr))                               \
            fail_msg("error message \"%s\" lacks \"%s\"",                      \
                     secap_last_error(), substr);                              \
    } while (0)

/* A private temporary directory per test program: tu_tmpdir_setup and
 * tu_tmpdir_teardown are cmocka group fixtures ($TMPDIR or /tmp). */
static char tu_dir[512];

__attribute__((unused)) static int tu_tmpdir_setup(void **st)
{
    (void)st;
    const char *t = getenv("TMPDIR");
    snprintf(tu_dir, sizeof tu_dir, "%s/secap_test_XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(tu_dir)) return 0;
    perror("mkdtemp");
    return -1;
}

__attribute__((unused)) static int tu_tmpdir_teardown(void **st)
{
    (void)st;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* printf-style path inside tu_dir; a ring of 8 buffers, so one expression
 * may hold several. */
__attribute__((unused, format(printf, 1, 2))) static const char *tu_tmp(const char *fmt, ...)
{
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    int n = snprintf(buf[k], sizeof buf[k], "%s/", tu_dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf[k] + n, sizeof buf[k] - (size_t)n, fmt, ap);
    va_end(ap);
    return buf[k];
}

/* Writes text into tu_tmp(name). */
__attribute__((unused)) static void tu_write_text(const char *name, const char *text)
{
    FILE *f = fopen(tu_tmp("%s", name), "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Path of a file under the reference-fixture directory (build/ref). */
static inline const char *tu_ref_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("SECAP_REF_DIR");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "build/ref", name);
    return buf;
}

#endif
