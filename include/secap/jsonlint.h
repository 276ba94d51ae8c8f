/* secap/jsonlint.h - what a JSON parser accepts silently or reports only as
 * "syntax error", found in the text before parsing, for messages that say
 * what is wrong and where.
 *
 * cJSON (like most C parsers) returns NUL-terminated strings, so "x\u0000y"
 * parses as "x" and the rest is lost without a word; a lone UTF-16
 * surrogate escape and nesting past its depth limit are reported as a plain
 * syntax error.  secap_json_lint finds these three; every JSON reader runs it
 * before cJSON.  secap_json_describe_error turns cJSON's error position into
 * a line, a column, an excerpt and a diagnosis.
 */
#ifndef SECAP_JSONLINT_H
#define SECAP_JSONLINT_H

/* cJSON's CJSON_NESTING_LIMIT. */
#define SECAP_JSON_MAX_DEPTH 1000

typedef enum {
    SECAP_JSON_SYNTAX = 0,     /* a parse failure (secap_json_describe_error) */
    SECAP_JSON_NUL,            /* \u0000 in a string value */
    SECAP_JSON_NUL_IN_KEY,     /* \u0000 in a member name */
    SECAP_JSON_SURROGATE,      /* lone surrogate escape (the parse fails) */
    SECAP_JSON_DEPTH,          /* nesting too deep (the parse fails) */
} secap_json_kind;

typedef struct {
    secap_json_kind kind;
    int line, col;    /* 1-based position (col in bytes) */
    char key[128];    /* member name of the top-level object the problem lies
                         in (the id in {id: caption} files), as written; ""
                         when none */
    char what[200];   /* what is wrong */
    char hint[200];   /* how to fix it */
    char near[64];    /* a one-line excerpt at the position (syntax errors) */
} secap_json_issue;

/* Scans buf for escaped NULs (\u0000), a lone surrogate escape (\uD800-
 * \uDFFF not in a high-low pair) and nesting deeper than SECAP_JSON_MAX_DEPTH.
 * Fills is [cap] in text order and returns how many were found (at most
 * cap); the scan goes on past NULs (the text still parses, so a reader may
 * report each item) and stops at the first surrogate or depth issue (the
 * parse fails there).  Only strings and brackets are looked at; other syntax
 * is left to the parser. */
int secap_json_lint(const char *buf, secap_json_issue *is, int cap);

/* Fills *is for a parse failure at `at` (cJSON's error pointer, NULL = start
 * of buf): line, column, an excerpt that is never blank (an empty error line
 * shows the end of the previous non-blank one, control characters as spaces)
 * and a diagnosis: a trailing comma before '}' or ']', the input ending
 * inside a string or an open bracket, or a general syntax error. */
void secap_json_describe_error(const char *buf, const char *at, secap_json_issue *is);

#endif
