/* secap/base.h - errors, checked allocation, threads.
 *
 * Every fatal error in the project goes through secap_fatal(): it formats one
 * message ("secap: <where>: <what> (hint: <fix>)") and hands it to the error
 * handler.  The default handler prints to stderr and exits with status 1;
 * tests install one that longjmps so bad input can be checked without a crash.
 */
#ifndef SECAP_BASE_H
#define SECAP_BASE_H

#include <stddef.h>
#include <stdint.h>

typedef void (*secap_error_fn)(const char *msg, void *ctx);

/* Formats the message, runs the registered cleanups (below), calls the
 * handler; exits(1) if the handler returns. */
_Noreturn void secap_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Installs a handler (NULL restores the default).  Returns the previous one. */
secap_error_fn secap_set_error_handler(secap_error_fn fn, void *ctx);

/* The last message given to secap_fatal (for tests). */
const char *secap_last_error(void);

/* Cleanups on a caught error.  A function that owns memory, files or HDF5
 * handles across calls that may stop through secap_fatal registers how to
 * release them; secap_fatal runs the cleanups registered by its thread,
 * newest first, after formatting the message and before calling the
 * handler.  A handler that longjmps (tests, fuzz targets) then leaks
 * nothing, provided its setjmp point lies outside every registering call.
 *
 *   struct reading { FILE *f; char *buf; } r = { f, NULL };
 *   secap_cleanup cl;
 *   secap_cleanup_push(&cl, reading_free, &r);   // cl and r live in this frame
 *   ... work that may call secap_fatal ...
 *   secap_cleanup_pop(&cl);                       // every normal exit: unregister
 *   reading_free(&r);                             // (or hand the results out)
 *
 * Pops must mirror pushes (a pop out of order is a fatal error naming it).
 * A cleanup must not itself stop through secap_fatal: one that does ends the
 * program with both messages. */
typedef struct secap_cleanup {
    void (*fn)(void *arg);
    void *arg;
    struct secap_cleanup *prev;
} secap_cleanup;

void secap_cleanup_push(secap_cleanup *cl, void (*fn)(void *arg), void *arg);
void secap_cleanup_pop(secap_cleanup *cl);

/* malloc/calloc that stop with a message naming `what` on failure. */
void *secap_xmalloc(size_t n, const char *what);
void *secap_xcalloc(size_t count, size_t size, const char *what);
char *secap_xstrdup(const char *s, const char *what);

/* Thread count for OpenMP kernels and OpenBLAS, set once.  n <= 0 means:
 * $SECAP_THREADS if set, else the number of online cores.  Both libraries get
 * the same count and never run nested, so the cores are not oversubscribed. */
void secap_threads_init(int n);
int secap_threads(void);

/* Index of the first NaN or infinity in x [n], or -1 (vectorised scan). */
int64_t secap_find_nonfinite(const float *x, int64_t n);
/* The same for bfloat16 bits [n]. */
int64_t secap_find_nonfinite_bf16(const uint16_t *x, int64_t n);
/* "NaN", "+inf" or "-inf" for a non-finite v (for messages). */
const char *secap_nonfinite_name(float v);

/* Monotonic wall-clock seconds. */
double secap_now(void);

#define SECAP_CHECK(cond, ...) \
    do { if (!(cond)) secap_fatal(__VA_ARGS__); } while (0)

#endif
