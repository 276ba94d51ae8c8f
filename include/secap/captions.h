/* secap/captions.h - SECap fid2captions.json files as raw text, in file order.
 *
 * {id: caption} or {id: [caption, ...]} (a list holds at least one caption).
 * The text is kept as written (secap/score.h tokenises its own copy); what
 * the similarity metric, the emotion keyword match and secap-report read.
 * Bad input (unreadable file, JSON the parser would pass silently, a
 * repeated id, a caption that is not a string) stops through secap_fatal()
 * naming the file, line/column and id.
 */
#ifndef SECAP_CAPTIONS_H
#define SECAP_CAPTIONS_H

typedef struct {
    int n;            /* ids */
    char **id;        /* [n] in file order */
    int *ncap;        /* [n] captions per id, >= 1 */
    char ***cap;      /* [n][ncap[i]] UTF-8 text */
    int *order;       /* [n] indices sorted by id (for secap_captions_find) */
} secap_captions;

secap_captions *secap_captions_load(const char *path);
/* Index of id, or -1. */
int secap_captions_find(const secap_captions *c, const char *id);
void secap_captions_free(secap_captions *c);

#endif
