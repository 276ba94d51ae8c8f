/* File kinds, identity, registered temporaries; see include/secap/fileutil.h. */
#include "secap/fileutil.h"
#include "secap/base.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int secap_is_dir(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int secap_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

const char *secap_describe_file(const char *path, char *buf, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0) { snprintf(buf, cap, "nothing"); return buf; }
    if (S_ISDIR(st.st_mode)) { snprintf(buf, cap, "a directory"); return buf; }
    if (!S_ISREG(st.st_mode)) { snprintf(buf, cap, "not a regular file (a device, pipe or socket)"); return buf; }
    if (st.st_size == 0) { snprintf(buf, cap, "an empty file"); return buf; }
    unsigned char h[16] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(h, 1, sizeof h, f) : 0;
    if (f) fclose(f);
    const char *kind = NULL;
    if (n >= 8 && !memcmp(h, "\x89HDF\r\n\x1a\n", 8)) kind = "an HDF5 file";
    else if (n >= 4 && !memcmp(h, "RIFF", 4)) kind = "a WAV (RIFF) file";
    else if (n >= 4 && !memcmp(h, "fLaC", 4)) kind = "a FLAC file";
    else if (n >= 4 && !memcmp(h, "OggS", 4)) kind = "an Ogg file";
    else if (n >= 1 && (h[0] == '{' || h[0] == '[')) kind = "a JSON file";
    int text = 1;
    for (size_t i = 0; i < n; i++) if (h[i] < 0x09 || (h[i] > 0x0d && h[i] < 0x20)) text = 0;
    if (!kind) kind = text ? "a text file" : "a binary file";
    snprintf(buf, cap, "%s of %lld bytes", kind, (long long)st.st_size);
    return buf;
}

/* ---- registered temporaries ---------------------------------------------
 * Fixed slots, so the signal handler only reads static memory and calls
 * unlink (async-signal-safe).  A slot is live while its first byte is set. */

static char g_tmp[SECAP_TMP_MAX][4096];
static volatile sig_atomic_t g_handlers_set;

static void on_signal(int sig)
{
    secap_tmp_remove_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

void secap_tmp_register(const char *tmp_path)
{
    if (!g_handlers_set) {
        g_handlers_set = 1;
        int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
        for (int i = 0; i < 3; i++) {
            struct sigaction sa, old;
            if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_DFL) continue;  /* keep the caller's */
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_signal;
            sigemptyset(&sa.sa_mask);
            sigaction(sigs[i], &sa, NULL);
        }
    }
    if (strlen(tmp_path) >= sizeof g_tmp[0])
        secap_fatal("%s: temporary file name longer than %zu bytes (hint: use a shorter output path)",
                    tmp_path, sizeof g_tmp[0] - 1);
    for (int i = 0; i < SECAP_TMP_MAX; i++)
        if (!g_tmp[i][0]) {
            memcpy(g_tmp[i] + 1, tmp_path + 1, strlen(tmp_path));   /* first byte last: the slot goes live */
            g_tmp[i][0] = tmp_path[0];
            return;
        }
    secap_fatal("%s: more than %d temporary files open at once (hint: close outputs before opening more)",
                tmp_path, SECAP_TMP_MAX);
}

void secap_tmp_unregister(const char *tmp_path)
{
    for (int i = 0; i < SECAP_TMP_MAX; i++)
        if (g_tmp[i][0] && !strcmp(g_tmp[i], tmp_path)) { g_tmp[i][0] = 0; return; }
}

void secap_tmp_remove_all(void)
{
    for (int i = 0; i < SECAP_TMP_MAX; i++)
        if (g_tmp[i][0]) { unlink(g_tmp[i]); g_tmp[i][0] = 0; }
}

int secap_tmp_sweep(const char *path)
{
    char *d = secap_xstrdup(path, "path"), *b = secap_xstrdup(path, "path");
    const char *dir = dirname(d), *base = basename(b);
    size_t bl = strlen(base);
    int removed = 0;
    DIR *dh = opendir(dir);
    for (struct dirent *e; dh && (e = readdir(dh));) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5)) continue;
        char *end;
        long pid = strtol(n + bl + 5, &end, 10);
        if (*end || end == n + bl + 5 || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* alive (or not ours to judge) */
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", dir, n);
        if (unlink(full) == 0) {
            fprintf(stderr, "secap: removed %s, a temporary file left by process %ld, which no longer runs "
                    "(it was killed or crashed before finishing)\n", full, pid);
            removed++;
        }
    }
    if (dh) closedir(dh);
    free(d);
    free(b);
    return removed;
}

char *secap_read_file(const char *path, size_t *len, const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) secap_fatal("%s: cannot open %s: %s (hint: check the path)", path, what, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) { free(buf); buf = NULL; break; }
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
    }
    int err = !buf || ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        secap_fatal("%s: cannot read %s (read error or out of memory after %zu bytes)", path, what, n);
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
