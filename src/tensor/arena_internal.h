/* Arena internals shared by src/tensor only. */
#ifndef SECAP_ARENA_INTERNAL_H
#define SECAP_ARENA_INTERNAL_H

#include "secap/tensor.h"
#include <stdlib.h>

struct secap_arena {
    const char *name;
    char *base;             /* reserved mapping [cap] */
    size_t cap, used, peak; /* bytes */
    secap_tensor *headers;  /* ring [max_headers] */
    int max_headers, next_header, headers_this_epoch;
    uint64_t epoch;         /* bumped by every reset */
};

secap_tensor *secap_arena_header(secap_arena *a, const char *what);
uint64_t secap_arena_epoch(const secap_arena *a);

#endif
