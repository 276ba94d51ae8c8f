/* The key/value cache of one generation (secap/kvcache.h).
 *
 * It lives in src/nn rather than src/ops because it is run state of a
 * decoding model, not an op: it records nothing on the tape, takes no
 * gradient, and its memory outlives the step arena that every op allocates
 * from.  Layout, one block:
 *   buf [L][2][B][Tmax][W]   (K then V of each layer; row b of a layer is
 *                             one contiguous [Tmax, W] slab)
 *   len, start [L][B]        valid lengths, start of the last append
 * so a layer's K is exactly the [B, Tmax, W] tensor secap_attention_ex reads
 * with key_len = len. */
#include "secap/kvcache.h"
#include "secap/base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct secap_kvcache {
    int L;
    int64_t B, Tmax, W;
    float *buf;       /* [L][2][B][Tmax][W] */
    int32_t *len;     /* [L][B] */
    int32_t *start;   /* [L][B] */
    float *scratch;   /* [B][Tmax][W], made by the first reorder that needs it */
    int32_t *newlen;  /* [B] reorder: new lengths or starts */
    uint8_t *saved;   /* [B] reorder: the row's old content is in scratch */
};

secap_kvcache *secap_kvcache_new(int layers, int64_t batch, int64_t tmax, int64_t width)
{
    if (layers <= 0 || batch <= 0 || tmax <= 0 || width <= 0)
        secap_fatal("kvcache: %d layers, %lld rows, Tmax %lld, width %lld: every size must be positive "
                    "(hint: width is kv_heads * head_dim, Tmax the prompt length plus the new tokens)",
                    layers, (long long)batch, (long long)tmax, (long long)width);
    if (tmax > INT32_MAX)
        secap_fatal("kvcache: Tmax %lld exceeds the int32 lengths the ops take (hint: at most %d)",
                    (long long)tmax, INT32_MAX);
    /* floats = L * 2 * B * Tmax * W, refused before it overflows size_t */
    size_t floats = (size_t)layers * 2;
    const int64_t f[3] = {batch, tmax, width};
    for (int i = 0; i < 3; i++) {
        if ((size_t)f[i] > SIZE_MAX / sizeof(float) / floats)
            secap_fatal("kvcache: %d layers x 2 x %lld rows x %lld positions x %lld floats does not fit in "
                        "memory (hint: lower the batch, beams or Tmax)",
                        layers, (long long)batch, (long long)tmax, (long long)width);
        floats *= (size_t)f[i];
    }
    secap_kvcache *kc = secap_xcalloc(1, sizeof *kc, "kvcache");
    kc->L = layers;
    kc->B = batch;
    kc->Tmax = tmax;
    kc->W = width;
    kc->buf = secap_xcalloc(floats, sizeof(float), "kvcache buffers");
    kc->len = secap_xcalloc((size_t)layers * (size_t)batch, sizeof(int32_t), "kvcache lengths");
    kc->start = secap_xcalloc((size_t)layers * (size_t)batch, sizeof(int32_t), "kvcache lengths");
    kc->newlen = secap_xcalloc((size_t)batch, sizeof(int32_t), "kvcache reorder");
    kc->saved = secap_xcalloc((size_t)batch, 1, "kvcache reorder");
    return kc;
}

void secap_kvcache_free(secap_kvcache *kc)
{
    if (!kc) return;
    free(kc->buf);
    free(kc->len);
    free(kc->start);
    free(kc->scratch);
    free(kc->newlen);
    free(kc->saved);
    free(kc);
}

void secap_kvcache_reset(secap_kvcache *kc)
{
    memset(kc->len, 0, (size_t)kc->L * (size_t)kc->B * sizeof(int32_t));
    memset(kc->start, 0, (size_t)kc->L * (size_t)kc->B * sizeof(int32_t));
}

secap_kvcache_dims secap_kvcache_shape(const secap_kvcache *kc)
{
    secap_kvcache_dims d = {.layers = kc->L, .batch = kc->B, .tmax = kc->Tmax, .width = kc->W};
    d.bytes = (size_t)kc->L * 2 * (size_t)kc->B * (size_t)kc->Tmax * (size_t)kc->W * sizeof(float);
    return d;
}

static void check_layer(const secap_kvcache *kc, int layer, const char *what)
{
    if (layer < 0 || layer >= kc->L)
        secap_fatal("kvcache %s: layer %d outside [0, %d) (hint: the cache was made for %d layers)", what, layer,
                    kc->L, kc->L);
}

/* Layer l's K (kv 0) or V (kv 1) buffer [B, Tmax, W]. */
static float *layer_buf(const secap_kvcache *kc, int layer, int kv)
{
    return kc->buf + ((size_t)layer * 2 + (size_t)kv) * (size_t)kc->B * (size_t)kc->Tmax * (size_t)kc->W;
}

const int32_t *secap_kvcache_len(const secap_kvcache *kc, int layer)
{
    check_layer(kc, layer, "len");
    return kc->len + (size_t)layer * (size_t)kc->B;
}

void secap_kvcache_positions(const secap_kvcache *kc, int layer, int64_t T, int32_t *pos_bt)
{
    check_layer(kc, layer, "positions");
    const int32_t *len = kc->len + (size_t)layer * (size_t)kc->B;
    for (int64_t b = 0; b < kc->B; b++)
        for (int64_t t = 0; t < T; t++) pos_bt[b * T + t] = (int32_t)(len[b] + t);
}

static void check_input(const secap_kvcache *kc, int layer, const secap_tensor *x, const char *arg)
{
    char s[96];
    secap_check_live(x, "kvcache append");
    if (x->dtype != SECAP_F32)
        secap_fatal("kvcache append: layer %d: %s is bf16 (hint: the cache holds float32 keys and values)",
                    layer, arg);
    if (x->ndim != 3 || x->shape[0] != kc->B || x->shape[2] != kc->W)
        secap_fatal("kvcache append: layer %d: %s is %s but the cache holds rows [%lld, T, %lld] "
                    "(hint: k and v are [batch, new steps, kv_heads * head_dim] as the cache was made)",
                    layer, arg, secap_shape_str(x, s, sizeof s), (long long)kc->B, (long long)kc->W);
}

const int32_t *secap_kvcache_append(secap_kvcache *kc, int layer, const secap_tensor *k, const secap_tensor *v,
                                    const int32_t *n)
{
    check_layer(kc, layer, "append");
    check_input(kc, layer, k, "k");
    check_input(kc, layer, v, "v");
    int64_t T = k->shape[1], B = kc->B, W = kc->W, Tmax = kc->Tmax;
    if (v->shape[1] != T)
        secap_fatal("kvcache append: layer %d: k has %lld steps but v has %lld (hint: append the k and v of "
                    "the same steps)", layer, (long long)T, (long long)v->shape[1]);
    int32_t *len = kc->len + (size_t)layer * (size_t)B, *start = kc->start + (size_t)layer * (size_t)B;
    /* every row is checked before anything is written: a refused append
     * leaves the cache as it was */
    for (int64_t b = 0; b < B; b++) {
        int64_t nb = n ? n[b] : T;
        if (nb < 0 || nb > T)
            secap_fatal("kvcache append: layer %d row %lld: %lld new steps outside [0, %lld] (hint: n[b] counts "
                        "the valid steps of row b in k and v)", layer, (long long)b, (long long)nb, (long long)T);
        if (len[b] + nb > Tmax)
            secap_fatal("kvcache append: layer %d row %lld: %lld new steps at position %d would end at %lld, past "
                        "Tmax %lld (hint: make the cache with Tmax >= prompt length + new tokens, or stop the "
                        "row, n[b] = 0, once it is full)",
                        layer, (long long)b, (long long)nb, len[b], (long long)(len[b] + nb), (long long)Tmax);
    }
    float *K = layer_buf(kc, layer, 0), *V = layer_buf(kc, layer, 1);
    const float *k_in = secap_f32(k), *v_in = secap_f32(v);
    for (int64_t b = 0; b < B; b++) {
        int64_t nb = n ? n[b] : T;
        size_t dst = ((size_t)b * (size_t)Tmax + (size_t)len[b]) * (size_t)W, src = (size_t)b * (size_t)(T * W);
        memcpy(K + dst, k_in + src, (size_t)(nb * W) * sizeof(float));
        memcpy(V + dst, v_in + src, (size_t)(nb * W) * sizeof(float));
        start[b] = len[b];
        len[b] += (int32_t)nb;
    }
    return start;
}

static secap_tensor *view(secap_ctx *c, secap_kvcache *kc, int layer, int kv)
{
    check_layer(kc, layer, kv ? "v" : "k");
    int64_t shape[3] = {kc->B, kc->Tmax, kc->W};
    return secap_wrap_f32(c, kv ? "kvcache v" : "kvcache k", 3, shape, layer_buf(kc, layer, kv));
}

secap_tensor *secap_kvcache_k(secap_ctx *c, secap_kvcache *kc, int layer) { return view(c, kc, layer, 0); }
secap_tensor *secap_kvcache_v(secap_ctx *c, secap_kvcache *kc, int layer) { return view(c, kc, layer, 1); }

/* Row b takes old row src[b].  Only a row that is overwritten (src[r] != r)
 * and also read by another row needs its old content saved first; every
 * other source is read in place. */
void secap_kvcache_reorder(secap_kvcache *kc, const int32_t *src)
{
    int64_t B = kc->B, W = kc->W, Tmax = kc->Tmax;
    for (int64_t b = 0; b < B; b++)
        if (src[b] < 0 || src[b] >= B)
            secap_fatal("kvcache reorder: src[%lld] = %d outside [0, %lld) (hint: src[b] is the old row that row "
                        "b continues, e.g. the beam index of its best candidate)",
                        (long long)b, src[b], (long long)B);
    int any = 0;
    for (int64_t b = 0; b < B; b++) kc->saved[b] = 0;
    for (int64_t b = 0; b < B; b++)
        if (src[b] != b) {
            any = 1;
            if (src[src[b]] != src[b]) kc->saved[src[b]] = 1;
        }
    if (!any) return;
    for (int64_t b = 0; b < B && !kc->scratch; b++)
        if (kc->saved[b]) kc->scratch = secap_xmalloc((size_t)B * (size_t)Tmax * (size_t)W * sizeof(float),
                                                      "kvcache reorder scratch");
    size_t row = (size_t)Tmax * (size_t)W;
    for (int l = 0; l < kc->L; l++) {
        int32_t *len = kc->len + (size_t)l * (size_t)B, *start = kc->start + (size_t)l * (size_t)B;
        for (int kv = 0; kv < 2; kv++) {
            float *X = layer_buf(kc, l, kv);
            for (int64_t r = 0; r < B; r++)
                if (kc->saved[r]) memcpy(kc->scratch + (size_t)r * row, X + (size_t)r * row, (size_t)len[r] * (size_t)W * sizeof(float));
            for (int64_t b = 0; b < B; b++) {
                if (src[b] == b) continue;
                const float *from = (kc->saved[src[b]] ? kc->scratch : X) + (size_t)src[b] * row;
                memcpy(X + (size_t)b * row, from, (size_t)len[src[b]] * (size_t)W * sizeof(float));
            }
        }
        for (int64_t b = 0; b < B; b++) kc->newlen[b] = start[src[b]];
        memcpy(start, kc->newlen, (size_t)B * sizeof(int32_t));
        for (int64_t b = 0; b < B; b++) kc->newlen[b] = len[src[b]];
        memcpy(len, kc->newlen, (size_t)B * sizeof(int32_t));
    }
}
