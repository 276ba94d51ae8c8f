/* secap/ini.h - configuration files.
 *
 * A config is an INI file: `[section]` headers, `key = value` lines, `#` or
 * `;` comments on their own line or after a value (preceded by a space).
 * Keys are addressed as "section.key".  Command-line overrides
 * `--section.key=value` are applied on top with secap_ini_set.  Consumers
 * take their section with secap_ini_apply and must mark every key used;
 * secap_ini_check_used then fails naming any key nobody recognised (a typo
 * in a config never passes silently).  Errors name the file and line.
 */
#ifndef SECAP_INI_H
#define SECAP_INI_H

#include <stdio.h>

typedef struct {
    char *key;     /* "section.key" */
    char *value;
    char *origin;  /* "file:line" or "command line" */
    int used;
} secap_ini_entry;

typedef struct {
    secap_ini_entry *e;
    int n, cap;
} secap_ini;

/* An empty config. */
secap_ini *secap_ini_new(void);
/* Parses path into a new config (fatal on unreadable file or bad syntax). */
secap_ini *secap_ini_load(const char *path);
void secap_ini_free(secap_ini *ini);
/* Sets (or overrides) "section.key"; origin is copied. */
void secap_ini_set(secap_ini *ini, const char *key, const char *value, const char *origin);
/* Parses "--section.key=value"; returns 0 if arg is not of that form. */
int secap_ini_set_arg(secap_ini *ini, const char *arg);
/* The value of "section.key" (marked used), or NULL. */
const char *secap_ini_get(secap_ini *ini, const char *key);
/* Calls set(cfg, "section.key", value) for every key of `section`; set
 * returns non-zero for a key it does not know, which is then left unused. */
void secap_ini_apply(secap_ini *ini, const char *section, void *cfg,
                     int (*set)(void *cfg, const char *key, const char *value));
/* Fails listing every entry of `section` (NULL: of any section) that no
 * consumer used, with its origin. */
void secap_ini_check_used(const secap_ini *ini, const char *section);
/* Writes the config back as INI text (for logs and checkpoints). */
void secap_ini_write(const secap_ini *ini, FILE *f);

#endif
