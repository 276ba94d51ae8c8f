/* Non-finite value scans for the checks at the edges: weights read and
 * written, decoded audio, features before they are cached, losses. */
#include "secap/base.h"

#include <math.h>

int64_t secap_find_nonfinite(const float *x, int64_t n)
{
    /* x * 0 is 0 for every finite x and NaN for NaN and +-inf: a vectorised
     * sum per block says whether the block needs the scalar search. */
    for (int64_t j0 = 0; j0 < n; j0 += 4096) {
        int64_t len = n - j0 < 4096 ? n - j0 : 4096;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < len; j++) s += x[j0 + j] * 0.0f;
        if (s == 0.0f) continue;
        for (int64_t j = 0; j < len; j++)
            if (!isfinite(x[j0 + j])) return j0 + j;
    }
    return -1;
}

int64_t secap_find_nonfinite_bf16(const uint16_t *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if ((x[i] & 0x7F80u) == 0x7F80u) return i;   /* exponent all ones: inf or NaN */
    return -1;
}

const char *secap_nonfinite_name(float v)
{
    return isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf";
}
