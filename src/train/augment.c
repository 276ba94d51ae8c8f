/* [augment]: SpecAugment-style masking and noise on the speech features of a
 * training step (stages qformer and caption), after hubert.standardize and
 * before hubert.train_layers' top layers.
 *
 * For each clip i of a batch, with its T_i valid frames x[t, a] (a < A):
 *
 *   noise:          x[t, a] += noise * n,  n ~ N(0, 1) per element
 *   time masks:     time_masks times: w ~ U{0 .. floor(time_mask_width * T_i)},
 *                   t0 ~ U{0 .. T_i - w};  x[t0 .. t0+w-1, :] = fill
 *   feature masks:  feature_masks times: w ~ U{0 .. feature_mask_width},
 *                   a0 ~ U{0 .. A - w};   x[:, a0 .. a0+w-1] = fill
 *
 * fill is 0: the per-dimension mean once features are standardised (without
 * hubert.standardize it is still 0, which the docs say).  Padding frames stay
 * 0.  The masks are applied after the noise, so masked spans hold the fill
 * exactly.
 *
 * The draws of clip i come from an RNG stream keyed by (train.seed, global
 * step, the item's index in the dataset): a resumed run draws the same masks
 * as the uninterrupted one, and a clip gets the same masks whichever MPI rank
 * holds it.  Dev loss, probes, dev captions and inference never augment
 * (ctx->training is 0 there).
 *
 * Why: on the demo (1200 train clips) the caption stage memorises the
 * clips: its speech embeddings separate the emotions of the train clips
 * perfectly and of dev clips in 65 % of cases.  BENCHMARKS.md, "Augmenting
 * the features". */
#include "train_internal.h"

#include "secap/base.h"
#include "secap/rng.h"

#include <math.h>
#include <string.h>

int secap_augment_active(const secap_train_config *t)
{
    return t->augment.noise > 0 || (t->augment.time_masks > 0 && t->augment.time_mask_width > 0) ||
           (t->augment.feature_masks > 0 && t->augment.feature_mask_width > 0);
}

void secap_augment_clip(const secap_train_config *t, int64_t gstep, int item, float *x, int64_t T, int64_t A)
{
    secap_rng r;
    uint64_t key[2] = { (uint64_t)gstep, (uint64_t)(int64_t)item };
    secap_rng_seed_stream(&r, (uint64_t)t->train.seed, secap_hash64(key, sizeof key, 0x6175676d656e74ULL));   /* "augment" */
    if (t->augment.noise > 0) {
        float s = (float)t->augment.noise;
        for (int64_t k = 0; k < T * A; k++) x[k] += s * secap_rng_normal(&r);
    }
    int64_t tw = (int64_t)floor(t->augment.time_mask_width * (double)T);
    for (int m = 0; m < t->augment.time_masks && tw > 0; m++) {
        int64_t w = (int64_t)secap_rng_below(&r, (uint64_t)tw + 1);
        int64_t t0 = (int64_t)secap_rng_below(&r, (uint64_t)(T - w) + 1);
        memset(x + t0 * A, 0, (size_t)(w * A) * sizeof(float));
    }
    int64_t fw = t->augment.feature_mask_width < A ? t->augment.feature_mask_width : A;
    for (int m = 0; m < t->augment.feature_masks && fw > 0; m++) {
        int64_t w = (int64_t)secap_rng_below(&r, (uint64_t)fw + 1);
        int64_t a0 = (int64_t)secap_rng_below(&r, (uint64_t)(A - w) + 1);
        for (int64_t f = 0; f < T; f++) memset(x + f * A + a0, 0, (size_t)w * sizeof(float));
    }
}

void secap_augment_batch(trainer *tr, const secap_batch *b, secap_tensor *x, const int32_t *frames)
{
    if (!tr->c->training || !secap_augment_active(&tr->cfg)) return;
    int64_t Tm = x->shape[1], A = x->shape[2];
    float *p = secap_f32(x);
    for (int i = 0; i < b->B; i++)
        secap_augment_clip(&tr->cfg, tr->gstep, b->item[i], p + (size_t)(i * Tm * A), frames[i], A);
}
