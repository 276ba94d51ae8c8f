/* Long command-line options shared by the programs. */
#include "secap/cli.h"
#include "secap/base.h"

#include <stdlib.h>
#include <string.h>

int secap_cli_is(const char *arg, const char *key)
{
    size_t n = strlen(key);
    return !strncmp(arg, key, n) && (arg[n] == 0 || arg[n] == '=');
}

const char *secap_cli_value(int argc, char **argv, int *i, const char *key, const char *prog)
{
    size_t n = strlen(key);
    const char *v;
    if (argv[*i][n] == '=') v = argv[*i] + n + 1;
    else if (*i + 1 >= argc) secap_fatal("%s needs a value (hint: %s --help)", key, prog);
    else v = argv[++*i];
    if (!*v) secap_fatal("%s: the value is empty (hint: %s --help)", key, prog);
    return v;
}

long secap_cli_long(const char *s, const char *key, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        secap_fatal("%s: \"%s\" is not an integer in [%ld, %ld]", key, s, lo, hi);
    return v;
}
