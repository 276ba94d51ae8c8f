/* Fuzz target: the raw-text readers of the similarity / emotion / report
 * code: fid2captions.json files through secap_captions_load, emotion keyword
 * files through secap_emokw_load, and the keyword match on every caption.
 *
 * Input: <captions JSON> "\n====\n" <keyword file>; without a separator the
 * built-in keyword table is used. */
#include "fuzz.h"
#include "secap/captions.h"
#include "secap/emotion.h"

typedef struct { secap_captions *c; secap_emokw *k; } held;

static void release(void *arg)
{
    held *h = arg;
    secap_captions_free(h->c);
    secap_emokw_free(h->k);
    h->c = NULL;
    h->k = NULL;
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    fuzz_part p[2];
    int n = fuzz_parts(data, size, p, 2);
    const char *caps = fuzz_file("caps.json", p[0].p, p[0].n);
    const char *kw = n > 1 ? fuzz_file("kw.txt", p[1].p, p[1].n) : NULL;
    FUZZ_TRY({
        held h = { NULL, NULL };
        secap_cleanup cl;
        secap_cleanup_push(&cl, release, &h);
        h.k = kw ? secap_emokw_load(kw) : secap_emokw_default();
        int nc = secap_emokw_nclass(h.k);
        if (nc < 1) fuzz_die("keyword table with %d classes", nc);
        for (int c = 0; c < nc; c++)
            if (secap_emokw_find(h.k, secap_emokw_class(h.k, c)) != c) fuzz_die("class %d not found by name", c);
        secap_captions *c = h.c = secap_captions_load(caps);
        for (int i = 0; i < c->n; i++) {
            if (secap_captions_find(c, c->id[i]) != i) fuzz_die("id %d not found by name", i);
            if (c->ncap[i] < 1) fuzz_die("id %d has %d captions", i, c->ncap[i]);
            for (int j = 0; j < c->ncap[i]; j++) {
                int m = secap_emokw_match(h.k, c->cap[i][j]);
                if (m < SECAP_EMO_AMBIGUOUS || m >= nc) fuzz_die("match %d outside the table", m);
            }
        }
        secap_cleanup_pop(&cl);
        release(&h);
    });
}
