/* INI configuration files: parse, override, apply, check, write back. */
#include "secap/ini.h"
#include "secap/base.h"
#include "secap/fileutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

secap_ini *secap_ini_new(void) { return secap_xcalloc(1, sizeof(secap_ini), "config"); }

void secap_ini_free(secap_ini *ini)
{
    if (!ini) return;
    for (int i = 0; i < ini->n; i++) {
        free(ini->e[i].key);
        free(ini->e[i].value);
        free(ini->e[i].origin);
    }
    free(ini->e);
    free(ini);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

void secap_ini_set(secap_ini *ini, const char *key, const char *value, const char *origin)
{
    for (int i = 0; i < ini->n; i++)
        if (!strcmp(ini->e[i].key, key)) {
            free(ini->e[i].value);
            free(ini->e[i].origin);
            ini->e[i].value = secap_xstrdup(value, "config value");
            ini->e[i].origin = secap_xstrdup(origin, "config origin");
            return;
        }
    if (ini->n == ini->cap) {
        int cap = ini->cap ? 2 * ini->cap : 32;
        secap_ini_entry *e = realloc(ini->e, (size_t)cap * sizeof *e);
        if (!e) secap_fatal("config: out of memory for %d entries", cap);
        ini->e = e;
        ini->cap = cap;
    }
    ini->e[ini->n++] = (secap_ini_entry){
        .key = secap_xstrdup(key, "config key"),
        .value = secap_xstrdup(value, "config value"),
        .origin = secap_xstrdup(origin, "config origin"),
    };
}

/* What secap_ini_load holds while it parses, released on every exit. */
typedef struct {
    FILE *f;
    char *line;
    secap_ini *ini;   /* handed out on success */
} ini_reading;

static void ini_reading_free(void *arg)
{
    ini_reading *r = arg;
    fclose(r->f);
    free(r->line);
    secap_ini_free(r->ini);
}

secap_ini *secap_ini_load(const char *path)
{
    if (secap_is_dir(path))
        secap_fatal("config %s: is a directory, not a config file (hint: give an .ini file, e.g. configs/q7x2.ini)", path);
    FILE *f = fopen(path, "r");
    if (!f) secap_fatal("config %s: cannot open: %s (hint: check the path given to --config)", path,
                        strerror(errno));
    ini_reading r = { f, NULL, secap_ini_new() };
    secap_cleanup cl;
    secap_cleanup_push(&cl, ini_reading_free, &r);
    secap_ini *ini = r.ini;
    char section[128] = "", key[256], origin[4200];
    size_t cap = 0;
    ssize_t got;
    for (int ln = 1; (got = getline(&r.line, &cap, f)) >= 0; ln++) {
        char *line = r.line;
        if ((size_t)got != strlen(line))
            secap_fatal("%s:%d: NUL byte in a text line (hint: is this a binary file?)", path, ln);
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close || close[1] != '\0')
                secap_fatal("%s:%d: malformed section header '%s' (hint: write [name])", path, ln, s);
            *close = '\0';
            char *name = trim(s + 1);
            if (!*name || strlen(name) >= sizeof section || strchr(name, '.'))
                secap_fatal("%s:%d: bad section name '%s'", path, ln, name);
            strcpy(section, name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) secap_fatal("%s:%d: expected 'key = value', got '%s'", path, ln, s);
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        for (char *c = v; *c; c++) /* an inline comment needs a space before it */
            if ((*c == '#' || *c == ';') && c > v && isspace((unsigned char)c[-1])) { *c = '\0'; break; }
        v = trim(v);
        if (!*k) secap_fatal("%s:%d: empty key", path, ln);
        if (!*section) secap_fatal("%s:%d: key '%s' before any [section] (hint: put it under e.g. [train])", path, ln, k);
        if (snprintf(key, sizeof key, "%s.%s", section, k) >= (int)sizeof key) /* cut, it would not read back */
            secap_fatal("%s:%d: key '%.40s...' is %zu bytes long; section and key are at most %zu (hint: is this a "
                        "config file?)", path, ln, k, strlen(k), sizeof key - 2);
        snprintf(origin, sizeof origin, "%s:%d", path, ln);
        secap_ini_set(ini, key, v, origin);
    }
    secap_cleanup_pop(&cl);
    r.ini = NULL;
    ini_reading_free(&r);
    return ini;
}

int secap_ini_set_arg(secap_ini *ini, const char *arg)
{
    if (strncmp(arg, "--", 2)) return 0;
    const char *eq = strchr(arg, '='), *dot = strchr(arg, '.');
    if (!eq || !dot || dot > eq) return 0;
    char key[256];
    if (eq - arg - 2 >= (ptrdiff_t)sizeof key)
        secap_fatal("command line: key of '%.60s...' is longer than %zu bytes", arg, sizeof key - 1);
    snprintf(key, sizeof key, "%.*s", (int)(eq - arg - 2), arg + 2);
    secap_ini_set(ini, key, eq + 1, "command line");
    return 1;
}

const char *secap_ini_get(secap_ini *ini, const char *key)
{
    for (int i = 0; i < ini->n; i++)
        if (!strcmp(ini->e[i].key, key)) {
            ini->e[i].used = 1;
            return ini->e[i].value;
        }
    return NULL;
}

void secap_ini_apply(secap_ini *ini, const char *section, void *cfg,
                     int (*set)(void *cfg, const char *key, const char *value))
{
    size_t sl = strlen(section);
    for (int i = 0; i < ini->n; i++) {
        secap_ini_entry *e = &ini->e[i];
        if (strncmp(e->key, section, sl) || e->key[sl] != '.') continue;
        if (set(cfg, e->key, e->value) == 0) e->used = 1;
    }
}

void secap_ini_check_used(const secap_ini *ini, const char *section)
{
    char msg[2048] = "";
    size_t len = 0, sl = section ? strlen(section) : 0;
    int bad = 0;
    for (int i = 0; i < ini->n; i++) {
        if (ini->e[i].used) continue;
        if (section && (strncmp(ini->e[i].key, section, sl) || ini->e[i].key[sl] != '.')) continue;
        bad++;
        if (len < sizeof msg - 200)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s (%s)", bad > 1 ? ", " : "",
                                    ini->e[i].key, ini->e[i].origin);
    }
    if (bad)
        secap_fatal("config: %d unknown key%s: %s (hint: check the spelling against README.md, "
                    "or the section the key belongs to)", bad, bad > 1 ? "s" : "", msg);
}

void secap_ini_write(const secap_ini *ini, FILE *f)
{
    /* entries grouped by section, in first-seen order */
    for (int i = 0; i < ini->n; i++) {
        const char *dot = strchr(ini->e[i].key, '.');
        int sl = (int)(dot - ini->e[i].key), seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !strncmp(ini->e[j].key, ini->e[i].key, (size_t)sl + 1);
        if (seen) continue;
        fprintf(f, "[%.*s]\n", sl, ini->e[i].key);
        for (int j = i; j < ini->n; j++)
            if (!strncmp(ini->e[j].key, ini->e[i].key, (size_t)sl + 1))
                fprintf(f, "%s = %s\n", ini->e[j].key + sl + 1, ini->e[j].value);
        fputc('\n', f);
    }
}
