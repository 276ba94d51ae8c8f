/* secap/rng.h - deterministic random numbers (xoshiro256**, splitmix64 seed).
 *
 * Every random draw in the project comes from a secap_rng seeded from the
 * config, so two runs with the same seed see the same numbers.  The state is
 * four words and can be saved in a checkpoint and restored bit-exactly.
 */
#ifndef SECAP_RNG_H
#define SECAP_RNG_H

#include <stdint.h>

typedef struct { uint64_t s[4]; } secap_rng;

void     secap_rng_seed(secap_rng *r, uint64_t seed);
/* An independent stream: seed mixed with a stream id (e.g. a layer index). */
void     secap_rng_seed_stream(secap_rng *r, uint64_t seed, uint64_t stream);
uint64_t secap_rng_u64(secap_rng *r);
/* Uniform in [0, 1) with 24 bits (float) or 53 bits (double). */
float    secap_rng_uniform(secap_rng *r);
double   secap_rng_uniform_d(secap_rng *r);
/* Uniform integer in [0, n), unbiased. */
uint64_t secap_rng_below(secap_rng *r, uint64_t n);
/* Standard normal (Box-Muller, no cached second value so state is all). */
float    secap_rng_normal(secap_rng *r);
/* In-place Fisher-Yates shuffle of n ints. */
void     secap_rng_shuffle(secap_rng *r, int *a, int n);
/* 64-bit hash of bytes with a seed (for deterministic id-based splits). */
uint64_t secap_hash64(const void *data, uint64_t len, uint64_t seed);

#endif
