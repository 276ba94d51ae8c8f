/* xoshiro256** (Blackman & Vigna), seeded through splitmix64. */
#include "secap/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void secap_rng_seed(secap_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

void secap_rng_seed_stream(secap_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = stream;
    secap_rng_seed(r, seed ^ splitmix64(&x));
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t secap_rng_u64(secap_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

float secap_rng_uniform(secap_rng *r) { return (float)(secap_rng_u64(r) >> 40) * 0x1.0p-24f; }
double secap_rng_uniform_d(secap_rng *r) { return (double)(secap_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t secap_rng_below(secap_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = secap_rng_u64(r); while (x >= limit);
    return x % n;
}

float secap_rng_normal(secap_rng *r)
{
    double u1 = 1.0 - secap_rng_uniform_d(r); /* (0, 1] so log is finite */
    double u2 = secap_rng_uniform_d(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void secap_rng_shuffle(secap_rng *r, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)secap_rng_below(r, (uint64_t)i + 1);
        int t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

uint64_t secap_hash64(const void *data, uint64_t len, uint64_t seed)
{
    /* FNV-1a over the bytes, finished with splitmix64 for avalanche. */
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (uint64_t i = 0; i < len; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return splitmix64(&h);
}
