/* secap/fileutil.h - files as inputs and outputs: kinds, identity, and the
 * temporary files behind atomic writes.
 *
 * Writers never overwrite their inputs: secap_same_file compares two paths
 * by device and inode (so "x.h5" and "./dir/../x.h5" are the same file).
 *
 * Atomic writes go to "<path>.tmp.<pid>" and are renamed into place.  Each
 * such temporary is registered while it exists; secap_fatal's default exit,
 * SIGINT, SIGTERM and SIGHUP remove every registered one, so a failed or
 * interrupted run leaves none.  A run killed with SIGKILL cannot clean up:
 * secap_tmp_sweep, called before a new temporary is made, removes the
 * "<path>.tmp.<pid>" files whose process no longer exists and reports each
 * on stderr.
 */
#ifndef SECAP_FILEUTIL_H
#define SECAP_FILEUTIL_H

#include <stddef.h>

/* 1 when path names a directory (after symlinks). */
int secap_is_dir(const char *path);
/* The whole file at path, NUL-terminated, its length in *len (may be NULL);
 * fatal naming the path and `what` (e.g. "per-item scores") when it cannot
 * be opened or read.  The caller frees the result. */
char *secap_read_file(const char *path, size_t *len, const char *what);
/* 1 when both paths exist and are the same file (device and inode). */
int secap_same_file(const char *a, const char *b);

/* What kind of file path is, in a few words for messages ("a directory",
 * "an HDF5 file", "a WAV (RIFF) file", "a JSON file", "an empty file",
 * "a text file of 120 bytes", ...), from its first bytes; "nothing" when it
 * does not exist. */
const char *secap_describe_file(const char *path, char *buf, size_t cap);

/* Registers / forgets a temporary file to remove on a fatal exit or signal.
 * At most SECAP_TMP_MAX at once (more stops with an error). */
#define SECAP_TMP_MAX 64
void secap_tmp_register(const char *tmp_path);
void secap_tmp_unregister(const char *tmp_path);
/* Removes every registered temporary (what the fatal exit does). */
void secap_tmp_remove_all(void);
/* Removes "<path>.tmp.<pid>" files left by processes that no longer exist,
 * printing one line per file on stderr; returns how many. */
int secap_tmp_sweep(const char *path);

#endif
