/* secap/bf16.h - bfloat16 <-> float32 (the upper half of the float32 bits). */
#ifndef SECAP_BF16_H
#define SECAP_BF16_H

#include <stdint.h>

/* Exact widening. */
static inline float secap_bf16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
    return v.f;
}

/* Round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t secap_f32_to_bf16(float f)
{
    union { uint32_t u; float f; } v = { .f = f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x0040u);
    uint32_t r = v.u + 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)(r >> 16);
}

#endif
