/* secap-tokenize - SentencePiece BPE encode/decode with a tokenizer.model.
 *
 *   secap-tokenize --model tokenizer.model [--bos] [--eos]   < text  > ids
 *   secap-tokenize --model tokenizer.model --decode          < ids   > text
 *   secap-tokenize --model tokenizer.model --info
 *
 * Encoding reads UTF-8 lines from stdin (the '\n' ending a line is not part
 * of it; any other byte is, '\r' included) and prints one line of
 * space-separated ids per input line; an empty line gives an empty line.
 * Decoding reads lines of space-separated ids and prints the text of each on
 * its own line.  Ids match sentencepiece's (python: sp.encode(line)).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secap/base.h"
#include "secap/cli.h"
#include "secap/spm.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: secap-tokenize --model <tokenizer.model> [--decode] [--bos] [--eos] [--info]\n"
        "Encodes UTF-8 lines from stdin into lines of space-separated token ids (as\n"
        "sentencepiece does with the model), or with --decode reads lines of ids and\n"
        "writes their text, one line each.\n"
        "  --bos, --eos  add the model's BOS / EOS id to every encoded line\n"
        "  --info        describe the model (type, vocabulary, normaliser) and exit\n");
}

static void put_int(char **p, int32_t v)
{
    char tmp[12];
    int k = 0;
    uint32_t u = v < 0 ? (uint32_t)(-(int64_t)v) : (uint32_t)v;
    do { tmp[k++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *(*p)++ = '-';
    while (k) *(*p)++ = tmp[--k];
}

static void encode_stream(const secap_spm *m, unsigned flags)
{
    secap_spm_scratch *s = secap_spm_scratch_new();
    char *line = NULL, *out = NULL;
    size_t cap = 0, ocap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        const int32_t *ids;
        size_t k = secap_spm_encode(m, line, len, flags, s, &ids);
        if (ocap < 12 * k + 2) {
            ocap = 12 * k + 2;
            free(out);
            out = secap_xmalloc(ocap, "output line");
        }
        char *p = out;
        for (size_t i = 0; i < k; i++) {
            if (i) *p++ = ' ';
            put_int(&p, ids[i]);
        }
        *p++ = '\n';
        if (fwrite(out, 1, (size_t)(p - out), stdout) != (size_t)(p - out))
            secap_fatal("secap-tokenize: writing stdout: %s", strerror(errno));
    }
    if (ferror(stdin)) secap_fatal("secap-tokenize: reading stdin: %s", strerror(errno));
    free(line);
    free(out);
    secap_spm_scratch_free(s);
}

static void decode_stream(const secap_spm *m)
{
    char *line = NULL;
    size_t cap = 0, idcap = 0, lineno = 0;
    int32_t *ids = NULL;
    ssize_t n;
    const int vocab = secap_spm_vocab_size(m);
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t k = 0;
        char *p = line;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
            if (!*p) break;
            char *end;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno || (*end && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n'))
                secap_fatal("secap-tokenize: stdin line %zu: \"%.20s\" is not an integer id "
                            "(hint: --decode reads lines of space-separated ids)", lineno, p);
            if (v < 0 || v >= vocab)
                secap_fatal("secap-tokenize: stdin line %zu: id %ld is outside the vocabulary [0, %d) "
                            "(hint: ids from another tokenizer?)", lineno, v, vocab);
            if (k == idcap) {
                idcap = idcap ? 2 * idcap : 256;
                int32_t *ni = realloc(ids, idcap * sizeof *ni);
                if (!ni) secap_fatal("secap-tokenize: out of memory for %zu ids", idcap);
                ids = ni;
            }
            ids[k++] = (int32_t)v;
            p = end;
        }
        size_t len;
        char *text = secap_spm_decode(m, ids, k, &len);
        text[len] = '\n';
        if (fwrite(text, 1, len + 1, stdout) != len + 1)
            secap_fatal("secap-tokenize: writing stdout: %s", strerror(errno));
        free(text);
    }
    if (ferror(stdin)) secap_fatal("secap-tokenize: reading stdin: %s", strerror(errno));
    free(line);
    free(ids);
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    int decode = 0, info = 0;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (secap_cli_is(a, "--model")) model = secap_cli_value(argc, argv, &i, "--model", "secap-tokenize");
        else if (!strcmp(a, "--decode")) decode = 1;
        else if (!strcmp(a, "--bos")) flags |= SECAP_SPM_ADD_BOS;
        else if (!strcmp(a, "--eos")) flags |= SECAP_SPM_ADD_EOS;
        else if (!strcmp(a, "--info")) info = 1;
        else secap_fatal("secap-tokenize: unknown argument \"%s\" (hint: secap-tokenize --help)", a);
    }
    if (!model) { usage(stderr); secap_fatal("secap-tokenize: --model is required (hint: secap-tokenize --help)"); }
    if (decode && flags)
        secap_fatal("secap-tokenize: --bos/--eos apply to encoding, not --decode (hint: decoding drops BOS/EOS ids)");
    secap_spm *m = secap_spm_load(model);
    /* the '\n' appended to a decoded line needs one byte past the text: the
     * decoder's buffer always has it (NUL terminator) */
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    if (info) secap_spm_describe(m, stdout);
    else if (decode) decode_stream(m);
    else encode_stream(m, flags);
    if (fflush(stdout)) secap_fatal("secap-tokenize: writing stdout: %s", strerror(errno));
    secap_spm_free(m);
    return 0;
}
