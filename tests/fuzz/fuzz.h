/* tests/fuzz/fuzz.h - the harness shared by the libFuzzer targets.
 *
 * A target is one file tests/fuzz/<name>.c that includes this header and
 * defines
 *
 *     static void fuzz_one(const uint8_t *data, size_t size);
 *
 * which feeds the bytes to one reader.  Seeds live in tests/fuzz/<name>/,
 * an optional libFuzzer dictionary in tests/fuzz/<name>.dict; the Makefile
 * and tests/fuzz/run.sh find all three by name (README.md, "Fuzzing").
 *
 * The harness:
 *   - FUZZ_TRY(stmts) runs stmts with a secap_fatal handler that longjmps
 *     back: a reader refusing bad input is the expected outcome, not a crash.
 *     secap_fatal has run the cleanups registered with secap_cleanup_push by
 *     then, so nothing leaks; state a target keeps across the jump (a handle
 *     opened before the failing call) must be released by a cleanup the
 *     target registers itself inside the FUZZ_TRY.  A secap_fatal outside
 *     FUZZ_TRY exits, which libFuzzer reports as a crash.
 *   - fuzz_file(name, data, size) writes bytes to a file in a private
 *     directory (in /dev/shm when it exists) for readers that take a path;
 *     fuzz_parts splits one input into several files' contents.
 *   - after every input it checks that the file descriptors and HDF5
 *     objects open before the input are all that is open after it (a leaked
 *     FILE, SNDFILE or hid_t is reported like a memory leak), and
 *     LeakSanitizer (libFuzzer's -detect_leaks=1) catches leaked memory.
 */
#ifndef SECAP_FUZZ_H
#define SECAP_FUZZ_H

#include <dirent.h>
#include <hdf5.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secap/base.h"

static void fuzz_one(const uint8_t *data, size_t size);

static jmp_buf fuzz_jmp;
static int fuzz_armed;
static char fuzz_dir[256];
static FILE *fuzz_null;   /* /dev/null, for readers that print */

static void fuzz_on_fatal(const char *msg, void *ctx)
{
    (void)msg; (void)ctx;
    if (fuzz_armed) { fuzz_armed = 0; longjmp(fuzz_jmp, 1); }
}

/* Runs the statements; a secap_fatal inside ends them early.  Locals changed
 * inside and read after the jump must be volatile (C11 7.13.2.1).  The
 * statements must not leave by break, continue, return or goto (the check
 * after every input catches it): put early exits in a function called here. */
#define FUZZ_TRY(...)                                                          \
    do {                                                                       \
        fuzz_armed = 1;                                                        \
        if (setjmp(fuzz_jmp) == 0) { __VA_ARGS__; }                            \
        fuzz_armed = 0;                                                        \
    } while (0)

/* Stops the fuzzer with a message (libFuzzer saves the input as a crash).
 * The message goes where sanitizer reports go: with -close_fd_mask=2
 * libFuzzer has closed stderr and redirected those to a copy of it. */
void __sanitizer_report_error_summary(const char *error_summary);

__attribute__((noreturn, format(printf, 1, 2))) static void fuzz_die(const char *fmt, ...)
{
    char msg[2048] = "secap fuzz: ";
    va_list ap;
    va_start(ap, fmt);
    size_t k = strlen(msg);
    vsnprintf(msg + k, sizeof msg - k, fmt, ap);
    va_end(ap);
    __sanitizer_report_error_summary(msg);
    abort();
}

/* Path of `name` in the private directory, holding data[0..size). */
__attribute__((unused)) static const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(path[k], sizeof path[k], "%s/%s", fuzz_dir, name);
    FILE *f = fopen(path[k], "wb");
    if (!f) fuzz_die("cannot write %s", path[k]);
    if (size && fwrite(data, 1, size, f) != size) fuzz_die("cannot write %s", path[k]);
    if (fclose(f)) fuzz_die("cannot write %s", path[k]);
    return path[k];
}

/* The same directory's path of `name` without writing it. */
__attribute__((unused)) static const char *fuzz_path(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir, name);
    return path;
}

__attribute__((unused)) static void fuzz_remove(const char *name) { unlink(fuzz_path(name)); }

/* Splits data at every separator line "\n====\n" into at most max parts
 * (the last part takes the rest); returns the count.  Multi-file readers
 * take one input as the files' contents in a fixed order. */
#define FUZZ_SEP "\n====\n"
typedef struct { const uint8_t *p; size_t n; } fuzz_part;

__attribute__((unused)) static int fuzz_parts(const uint8_t *data, size_t size, fuzz_part *parts, int max)
{
    int n = 0;
    const size_t sl = sizeof FUZZ_SEP - 1;
    while (n < max - 1) {
        const uint8_t *hit = memmem(data, size, FUZZ_SEP, sl);
        if (!hit) break;
        parts[n++] = (fuzz_part){ data, (size_t)(hit - data) };
        size -= (size_t)(hit - data) + sl;
        data = hit + sl;
    }
    parts[n++] = (fuzz_part){ data, size };
    return n;
}

/* Lowest free file descriptor: it grows when an input leaks one. */
static int fuzz_lowest_fd(void)
{
    int fd = dup(0);
    if (fd >= 0) close(fd);
    return fd;
}

/* Removes the directories of fuzzers that died (crash, kill) under base. */
static void fuzz_sweep(const char *base)
{
    DIR *d = opendir(base);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        if (sscanf(e->d_name, "secap-fuzz-%ld", &pid) != 1 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0) continue;
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", base, e->d_name);
        if (system(cmd) != 0) fprintf(stderr, "secap fuzz: could not remove %s/%s\n", base, e->d_name);
    }
    closedir(d);
}

static void fuzz_cleanup_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "secap fuzz: could not remove %s\n", fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    struct stat st;
    const char *t = getenv("TMPDIR");
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : t && *t ? t : "/tmp";
    fuzz_sweep(base);
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/secap-fuzz-%ld", base, (long)getpid());
    if (mkdir(fuzz_dir, 0700) != 0 && !(stat(fuzz_dir, &st) == 0 && S_ISDIR(st.st_mode)))
        fuzz_die("cannot create %s", fuzz_dir);
    atexit(fuzz_cleanup_dir);
    fuzz_null = fopen("/dev/null", "w");
    if (!fuzz_null) fuzz_die("cannot open /dev/null");
    secap_set_error_handler(fuzz_on_fatal, NULL);
    secap_threads_init(1);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd0 = fuzz_lowest_fd();
    fuzz_one(data, size);
    if (fuzz_armed) fuzz_die("FUZZ_TRY left armed");
    int fd1 = fuzz_lowest_fd();
    if (fd1 != fd0) fuzz_die("file descriptor leak: lowest free descriptor %d before the input, %d after", fd0, fd1);
    ssize_t h5 = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (h5 != 0) fuzz_die("HDF5 leak: %zd file(s) or object(s) still open after the input", h5);
    return 0;
}

#endif
