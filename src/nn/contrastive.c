/* Speech-caption contrastive loss with a learnable temperature (math in
 * include/secap/losses.h), from autograd ops: l2norm, matmul, div,
 * log_softmax, transpose, mul by a constant weight matrix, sum.
 *
 * The positives enter as a constant B x B weight matrix W, so paired,
 * same-class and label-free (CLIP) losses are one code path; W is symmetric
 * (the class relation is), so the caption->speech direction reuses it on
 * the transposed similarities. */
#include "secap/losses.h"
#include "secap/base.h"
#include "secap/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_cb(void *p) { secap_params_free(p); }

secap_params *secap_contrastive_params_new(secap_ctx *c, float init, secap_weights *w, const char *prefix)
{
    SECAP_CHECK(isfinite(init) && init > 0, "contrastive: temp_init must be positive, got %g", init);
    secap_params *p = secap_params_new("contrastive");
    secap_cleanup cl;   /* a refused file frees the table */
    secap_cleanup_push(&cl, free_cb, p);
    secap_params_default_trainable(p, 1);
    int i = secap_params_add(p, NULL, 0, (int64_t[]){1}, "temp");   /* shape [] */
    secap_params_set_init(p, i, SECAP_INIT_ONES, 0);
    secap_params_set_init(p, i, SECAP_INIT_FILE, 0);
    secap_params_load(p, c, w, prefix, 0);
    float *v = secap_f32(secap_params_get(p, "temp"));
    if (!w) v[0] = init;
    SECAP_CHECK(isfinite(v[0]) && v[0] > 0, "contrastive: temp read from the weight file is %g (hint: a "
                "diverged checkpoint; it must be positive)", v[0]);
    secap_cleanup_pop(&cl);
    return p;
}

/* W [B, B] (see the header). */
static secap_tensor *positive_weights(secap_ctx *c, int64_t B, const int32_t *labels, float w_pair, float w_class)
{
    secap_tensor *W = secap_zeros(c, 2, (int64_t[]){B, B});
    float *x = secap_f32(W);
    for (int64_t i = 0; i < B; i++) {
        x[i * B + i] = w_pair;
        if (!labels || w_class == 0.0f) continue;
        int64_t n = 0;
        for (int64_t p = 0; p < B; p++) n += p != i && labels[p] == labels[i];
        if (n == 0) continue;
        for (int64_t p = 0; p < B; p++)
            if (p != i && labels[p] == labels[i]) x[i * B + p] = w_class / (float)n;
    }
    return W;
}

secap_tensor *secap_contrastive_loss(secap_ctx *c, secap_tensor *q, secap_tensor *k, secap_tensor *temp,
                                     const int32_t *labels, float w_pair, float w_class, float tmin, float tmax)
{
    char b1[64], b2[64];
    secap_check_live(q, "contrastive_loss");
    secap_check_live(k, "contrastive_loss");
    secap_check_live(temp, "contrastive_loss");
    SECAP_CHECK(q->ndim == 2 && k->ndim == 2 && q->shape[0] == k->shape[0] && q->shape[1] == k->shape[1],
                "contrastive_loss: speech embeddings %s and caption embeddings %s must both be [B, E] "
                "(hint: one caption per clip, pooled)", secap_shape_str(q, b1, sizeof b1),
                secap_shape_str(k, b2, sizeof b2));
    SECAP_CHECK(temp->n == 1 && temp->ndim <= 1, "contrastive_loss: temp has shape %s, expected a scalar "
                "(hint: the \"temp\" entry of secap_contrastive_params_new)", secap_shape_str(temp, b1, sizeof b1));
    SECAP_CHECK(isfinite(w_pair) && isfinite(w_class) && w_pair >= 0 && w_class >= 0 &&
                    (w_pair > 0 || (labels && w_class > 0)),
                "contrastive_loss: w_pair %g, w_class %g: both must be >= 0 and some positive must weigh "
                "(hint: w_class needs labels)", w_pair, w_class);
    SECAP_CHECK(tmin > 0 && tmin <= tmax, "contrastive_loss: temperature range [%g, %g] is empty or not "
                "positive", tmin, tmax);
    int64_t B = q->shape[0];
    if (labels)
        for (int64_t i = 0; i < B; i++)
            SECAP_CHECK(labels[i] >= 0, "contrastive_loss: label of row %lld is %d (hint: class ids are >= 0; "
                        "pass labels = NULL for unlabelled batches)", (long long)i, labels[i]);

    /* BLIP-2: temp.clamp_(0.001, 0.5) under no_grad, on the stored value. */
    float *tv = secap_f32(temp);
    SECAP_CHECK(isfinite(tv[0]), "contrastive_loss: the temperature is %g (hint: a diverged run; restart "
                "from a checkpoint with a lower learning rate)", tv[0]);
    tv[0] = fminf(fmaxf(tv[0], tmin), tmax);

    secap_tensor *z = secap_l2norm(c, q, 1e-12f);
    secap_tensor *n = secap_l2norm(c, k, 1e-12f);
    secap_tensor *s = secap_div(c, secap_matmul(c, z, n, 0, 1), temp);    /* [B, B] */
    secap_tensor *W = positive_weights(c, B, labels, w_pair, w_class);
    secap_tensor *l1 = secap_sum_all(c, secap_mul(c, secap_log_softmax(c, s), W));
    secap_tensor *l2 = secap_sum_all(c, secap_mul(c, secap_log_softmax(c, secap_transpose(c, s, 0, 1)), W));
    return secap_scale(c, secap_add(c, l1, l2), -0.5f / (float)B, 0.0f);
}
