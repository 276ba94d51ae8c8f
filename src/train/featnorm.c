/* hubert.standardize: per-dimension standardisation of the HuBERT features.
 *
 *   x'[t, a] = (x[t, a] - mean[a]) / std[a]
 *   mean[a]  = (1/N) sum over every valid frame t of every train clip of x[t, a]
 *   std[a]   = sqrt(max(0, (1/N) sum x[t, a]^2 - mean[a]^2)) + 1e-5
 *
 * (N frames in all; sums in double.)  The statistics come from the train
 * split of the feature cache when a run starts and live in the checkpoint as
 * feature_norm.mean / feature_norm.std, so resuming, secap-caption,
 * secap-eval and secap-embed use the run's own values whatever data they see.
 * They are constants: no gradient, in no optimizer (the table is marked
 * trainable only so that the checkpoint code saves and reads it).
 *
 * Why: the demo's random-weight HuBERT gives frames that are mostly one
 * offset vector (per-dimension |mean| about the size of the spread); the
 * small differences that carry the prosody are then a small part of every
 * attention score.  Measured on the demo (BENCHMARKS.md, "Stage 1 on the
 * demo: the collapse and its fix"). */
#include "train_internal.h"

#include "secap/base.h"
#include "secap/featcache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void secap_featnorm_build(trainer *tr, int A)
{
    secap_params *p = secap_params_new("feature_norm");
    secap_params_default_trainable(p, 1);
    int im = secap_params_add(p, &tr->fn_mean, SECAP_SHAPE(A), "mean");
    int is = secap_params_add(p, &tr->fn_std, SECAP_SHAPE(A), "std");
    secap_params_set_init(p, im, SECAP_INIT_ZEROS, 0);
    secap_params_set_init(p, is, SECAP_INIT_ONES, 0);
    secap_params_load(p, tr->c, NULL, NULL, 0);
    tr->fn_mean->requires_grad = 0;
    tr->fn_std->requires_grad = 0;
    tr->fnorm = p;
}

void secap_featnorm_fit(trainer *tr)
{
    const secap_train_config *t = &tr->cfg;
    if (!tr->fc)
        secap_fatal("config hubert.standardize = true needs hubert.cache: the statistics come from the cached "
                    "features of the train split (hint: bin/secap-extract --hubert %s --data %s --layer %d --out "
                    "FILE, then hubert.cache = FILE)", t->hubert.weights, t->data_dir, t->hubert.layer);
    int64_t A = tr->fn_mean->n;
    double *s = secap_xcalloc((size_t)(2 * A), sizeof *s, "feature statistics");
    int *idx = NULL;
    int n = secap_split_indices(tr->d, SECAP_SPLIT_TRAIN, &idx);
    int64_t N = 0;
    for (int i = 0; i < n; i++) {
        const char *id = tr->d->items[idx[i]].id;
        int64_t T, dim;
        float *x = secap_featcache_get(tr->fc, id, &T, &dim);
        if (!x || dim != A) {
            free(x);
            free(s);
            free(idx);
            secap_fatal("hubert.cache %s: no features of width %lld for train clip %s (hint: re-run bin/secap-extract "
                        "on this dataset)", t->hubert.cache, (long long)A, id);
        }
        for (int64_t f = 0; f < T; f++)
            for (int64_t a = 0; a < A; a++) {
                double v = x[f * A + a];
                s[a] += v;
                s[A + a] += v * v;
            }
        N += T;
        free(x);
    }
    free(idx);
    float *mean = secap_f32(tr->fn_mean), *std = secap_f32(tr->fn_std);
    for (int64_t a = 0; a < A; a++) {
        double m = s[a] / (double)N, var = s[A + a] / (double)N - m * m;
        mean[a] = (float)m;
        std[a] = (float)(sqrt(var > 0 ? var : 0) + 1e-5);
    }
    free(s);
    fprintf(stderr, "secap-train: hubert.standardize: per-dimension mean / std of %lld frames of %d train clips "
            "(kept in the checkpoint as feature_norm.*)\n", (long long)N, n);
}

void secap_featnorm_apply(const trainer *tr, float *x, int64_t T, int64_t A)
{
    if (!tr->fnorm) return;
    if (A != tr->fn_mean->n)
        secap_fatal("hubert.standardize: features of width %lld, the statistics have %lld (hint: the HuBERT the run "
                    "was trained with)", (long long)A, (long long)tr->fn_mean->n);
    const float *mean = secap_f32(tr->fn_mean), *std = secap_f32(tr->fn_std);
    for (int64_t f = 0; f < T; f++)
        for (int64_t a = 0; a < A; a++) x[f * A + a] = (x[f * A + a] - mean[a]) / std[a];
}

void secap_featnorm_apply_batch(const trainer *tr, secap_tensor *x, const int32_t *frames)
{
    if (!tr->fnorm) return;
    int64_t B = x->shape[0], T = x->shape[1], A = x->shape[2];
    for (int64_t b = 0; b < B; b++)
        secap_featnorm_apply(tr, secap_f32(x) + (size_t)(b * T * A), frames ? frames[b] : T, A);
}
