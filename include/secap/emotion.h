/* secap/emotion.h - does a caption name the emotion class correctly?
 *
 * Keyword match: each class has a list of words; a caption names class c
 * when it contains (as a byte substring of its UTF-8 text) at least one of
 * c's words.  A caption naming exactly one class has that class; none names
 * "none" (SECAP_EMO_NONE), two or more "ambiguous" (SECAP_EMO_AMBIGUOUS).
 * A word contained in a longer word of another class (激动 in 情绪激动 is
 * the same class, fine; 惊 would hit both 惊讶 and 惊恐) is the keyword
 * file's author's to avoid; the built-in table has none.
 *
 * The built-in table (secap_emokw_default) covers the demo corpus' seven
 * classes (tools/make_demo_corpus.py): the class name and the distinctive
 * words of its emotion phrases, e.g. 悲伤: 悲伤 低落 难过 哀伤 伤感 伤心.
 * A keyword file replaces it: one class per line, `<class> <word> <word>...`
 * separated by spaces or tabs, `#` comments, the class name itself is NOT
 * implied (list it as a word if it should count).
 *
 * Accuracy (secap_emokw_accuracy) is the share of hypotheses whose matched
 * class equals their label; none and ambiguous count as wrong, and are also
 * reported apart.
 */
#ifndef SECAP_EMOTION_H
#define SECAP_EMOTION_H

#define SECAP_EMO_NONE      (-1)
#define SECAP_EMO_AMBIGUOUS (-2)

typedef struct secap_emokw secap_emokw;

/* The demo corpus' seven classes. */
secap_emokw *secap_emokw_default(void);
/* A keyword file (format above); errors name the file and line. */
secap_emokw *secap_emokw_load(const char *path);
void secap_emokw_free(secap_emokw *k);

int secap_emokw_nclass(const secap_emokw *k);
const char *secap_emokw_class(const secap_emokw *k, int c);
/* Index of a class name, -1 if unknown. */
int secap_emokw_find(const secap_emokw *k, const char *name);

/* The class a caption names: an index, SECAP_EMO_NONE or SECAP_EMO_AMBIGUOUS. */
int secap_emokw_match(const secap_emokw *k, const char *caption);

typedef struct {
    int n;           /* hypotheses */
    int correct;     /* matched class == label */
    int none;        /* no class named */
    int ambiguous;   /* several classes named */
    double accuracy; /* correct / n */
} secap_emo_acc;

/* label[i]: class index of hypothesis i's label (>= 0).  match (optional,
 * [n]) receives each hypothesis' matched class. */
void secap_emokw_accuracy(const secap_emokw *k, int n, const char *const *hyps, const int *label, int *match,
                          secap_emo_acc *acc);

#endif
