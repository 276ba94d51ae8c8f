/* Errors, checked allocation, thread setup. */
#include "secap/base.h"
#include "secap/fileutil.h"

#include <cblas.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static secap_error_fn g_handler;
static void *g_handler_ctx;
static char g_last[4096];
/* Innermost registered cleanup of this thread; 1 while secap_fatal runs them. */
static _Thread_local secap_cleanup *g_cleanups;
static _Thread_local int g_in_cleanup;

secap_error_fn secap_set_error_handler(secap_error_fn fn, void *ctx)
{
    secap_error_fn old = g_handler;
    g_handler = fn;
    g_handler_ctx = ctx;
    return old;
}

const char *secap_last_error(void) { return g_last; }

void secap_cleanup_push(secap_cleanup *cl, void (*fn)(void *arg), void *arg)
{
    cl->fn = fn;
    cl->arg = arg;
    cl->prev = g_cleanups;
    g_cleanups = cl;
}

void secap_cleanup_pop(secap_cleanup *cl)
{
    if (g_cleanups != cl)
        secap_fatal("secap_cleanup_pop: popping a cleanup that is not the innermost one (hint: every return "
                    "path of the function that pushed it must pop it, in reverse order of the pushes)");
    g_cleanups = cl->prev;
}

void secap_fatal(const char *fmt, ...)
{
    char msg[sizeof g_last];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_in_cleanup) {
        fprintf(stderr, "secap: error: %s\nsecap: error: (raised by a cleanup after the error: %s)\n", msg, g_last);
        exit(1);
    }
    memcpy(g_last, msg, sizeof g_last);
    /* Detach the list first: a cleanup runs once even if the handler returns. */
    secap_cleanup *cl = g_cleanups;
    g_cleanups = NULL;
    g_in_cleanup = 1;
    while (cl) {
        secap_cleanup *prev = cl->prev;
        cl->fn(cl->arg);
        cl = prev;
    }
    g_in_cleanup = 0;
    if (g_handler) g_handler(g_last, g_handler_ctx);
    fprintf(stderr, "secap: error: %s\n", g_last);
    secap_tmp_remove_all();   /* no half-written output survives a failed run */
    exit(1);
}

void *secap_xmalloc(size_t n, const char *what)
{
    void *p = malloc(n ? n : 1);
    if (!p) secap_fatal("out of memory allocating %zu bytes for %s (hint: lower the batch size or model size)", n, what);
    return p;
}

void *secap_xcalloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) secap_fatal("out of memory allocating %zu x %zu bytes for %s (hint: lower the batch size or model size)", count, size, what);
    return p;
}

char *secap_xstrdup(const char *s, const char *what)
{
    size_t n = strlen(s) + 1;
    char *p = secap_xmalloc(n, what);
    memcpy(p, s, n);
    return p;
}

static int g_threads = 0;

void secap_threads_init(int n)
{
    if (n <= 0) {
        const char *env = getenv("SECAP_THREADS");
        if (env && *env) n = atoi(env);
    }
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int secap_threads(void)
{
    if (!g_threads) secap_threads_init(0);
    return g_threads;
}

double secap_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
