/* secap/cli.h - long command-line options for the programs.
 *
 * Options are `--key value` or `--key=value`; errors name the option and
 * point at the program's --help. */
#ifndef SECAP_CLI_H
#define SECAP_CLI_H

/* 1 if arg is `key` or `key=...`. */
int secap_cli_is(const char *arg, const char *key);
/* The value of option argv[*i] (`key=value`, or the next argument, then
 * *i advances); fails naming key and prog when there is none or it is
 * empty (no option takes an empty value). */
const char *secap_cli_value(int argc, char **argv, int *i, const char *key, const char *prog);
/* s as an integer in [lo, hi]; fails naming key otherwise. */
long secap_cli_long(const char *s, const char *key, long lo, long hi);

#endif
