/* Character classes shared by the BERT tokenizer (berttok.c) and the
 * vocab builder (bertvocab.c); definitions in berttok.c. */
#ifndef SECAP_BERT_INTERNAL_H
#define SECAP_BERT_INTERNAL_H

#include <stdint.h>

/* One of the CJK ideograph ranges BERT spaces out (each its own token). */
int secap_bert_is_cjk(int32_t c);
/* BERT punctuation: ASCII 33-47, 58-64, 91-96, 123-126, or a P* category. */
int secap_bert_is_punct(int32_t c);

#endif
