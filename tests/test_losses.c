/* Stage-1 losses (include/secap/losses.h): PyTorch parity, finite
 * differences and properties.
 *
 *   parity      against tests/ref_losses.py (same weights and inputs): the
 *               vCLUB bound (full; sampled with the reference's
 *               permutation), L_est, the contrastive loss with and without
 *               labels, the stage-1 objective: values and every gradient
 *               (inputs, estimator parameters, temperature) within 1e-4
 *               relative, largest difference printed per tensor; one
 *               estimator step against torch.optim.AdamW; the temperature
 *               clamp.
 *   gradients   central differences for the contrastive loss (no labels;
 *               N x K labels with several positives per row and a row with
 *               none; the temperature), the bound (both variants) and L_est
 *               with respect to every estimator parameter.
 *   contracts   U reaches q only (t and the estimator get nothing);
 *               the estimator step leaves the tape and q's gradient alone;
 *               a zero weight builds no branch; bad inputs are refused.
 *   property    estimator steps lower L_est on a batch where t depends on
 *               q, and after fitting U is larger for dependent than for
 *               independent pairs. */
#pragma GCC diagnostic ignored "-Wclobbered"
#include "gradcheck.h"

#include "secap/autograd.h"
#include "secap/ini.h"
#include "secap/losses.h"
#include "secap/ops.h"

#include "fixture.h"

#define TOL 1e-4
#define FIX "losses_io.h5"

/* ---- fixture reading ----------------------------------------------------- */

static float h5scalar(hid_t f, const char *name)
{
    arr a = h5get(f, name, 0);
    float v = a.x[0];
    free(a.x);
    return v;
}

/* max|c - ref| / max|ref|, printed; counts a failure past TOL in *bad. */
static void compare(const char *what, const float *c, const float *ref, int64_t n, int *bad)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)c[i] - (double)ref[i]), r = fabs((double)ref[i]);
        if (!(e <= d)) d = e;   /* NaN propagates */
        if (r > m) m = r;
    }
    double rel = m > 0 ? d / m : d;
    int fail = !(rel <= TOL);
    printf("  %-36s max |diff| %.3g  rel %.3g%s\n", what, d, rel, fail ? "  <-- FAIL" : "");
    if (fail) (*bad)++;
}

/* Compares c's tensor (its gradient when grad) with dataset `name`. */
static void compare_ds(hid_t h, const char *name, const secap_tensor *t, int grad, int *bad)
{
    arr r = h5get(h, name, 0);
    if (r.n != t->n) fail_msg("%s: %s holds %lld values, the C tensor %lld", FIX, name, (long long)r.n, (long long)t->n);
    if (grad && !t->grad) fail_msg("%s: the C tensor received no gradient", name);
    compare(name, grad ? t->grad : secap_f32(t), r.x, r.n, bad);
    free(r.x);
}

static secap_ctx *new_ctx(void) { return secap_ctx_new((size_t)256 << 20, (size_t)512 << 20, 1); }

static secap_vclub_config small_cfg(int x, int y, int hm)
{
    secap_vclub_config cfg;
    secap_vclub_config_default(&cfg);
    cfg.x_dim = x;
    cfg.y_dim = y;
    cfg.hidden = hm;
    return cfg;
}

/* The reference's estimator: sizes from the fixture, weights from /est. */
static secap_vclub *ref_estimator(secap_ctx *c, hid_t h, float lr, float wd)
{
    int32_t dims[4];
    hid_t a = H5Aopen(h, "dims", H5P_DEFAULT);
    assert_true(a >= 0 && H5Aread(a, H5T_NATIVE_INT32, dims) >= 0);
    H5Aclose(a);
    secap_vclub_config cfg = small_cfg(dims[1], dims[2], dims[3]);
    cfg.lr = lr;
    cfg.weight_decay = wd;
    secap_vclub *e = secap_vclub_new(c, &cfg, NULL, NULL, 1);
    secap_params *p = secap_vclub_params(e);
    assert_int_equal(secap_params_count(p), 8);
    for (int i = 0; i < secap_params_count(p); i++) {
        const secap_param_entry *en = secap_params_entry(p, i);
        char name[256];
        snprintf(name, sizeof name, "est/%s", en->name);
        arr w = h5get(h, name, 0);
        if (w.n != en->t->n) fail_msg("%s: %s has %lld values, the C entry %lld", FIX, name, (long long)w.n, (long long)en->t->n);
        memcpy(secap_f32(en->t), w.x, (size_t)w.n * sizeof(float));
        free(w.x);
    }
    return e;
}

typedef struct {
    arr q, t, k, labels, perm;
    int64_t B, X, Y;
} fixture;

static fixture read_fixture(hid_t h)
{
    fixture f = { .q = h5get(h, "q", 0), .t = h5get(h, "t", 0), .k = h5get(h, "k", 0),
                  .labels = h5get(h, "labels", 1), .perm = h5get(h, "perm", 1) };
    f.B = f.labels.n;
    f.X = f.q.n / f.B;
    f.Y = f.t.n / f.B;
    return f;
}

static void fixture_free(fixture *f)
{
    free(f->q.x); free(f->t.x); free(f->k.x); free(f->labels.i); free(f->perm.i);
}

static secap_tensor *leaf(secap_ctx *c, int64_t r, int64_t d, const float *x)
{
    return secap_leaf(c, 2, (int64_t[]){r, d}, x);
}

static void expect_no_grad(const secap_tensor *t, const char *what)
{
    if (!t->grad) return;
    for (int64_t i = 0; i < t->n; i++)
        if (t->grad[i] != 0.0f) fail_msg("%s received gradient %g at %lld; it must be stop-gradient here", what, t->grad[i], (long long)i);
}

/* ---- parity -------------------------------------------------------------- */

static void test_vclub_parity(void **st)
{
    (void)st;
    hid_t h = h5open(tu_ref_path(FIX));
    fixture f = read_fixture(h);
    secap_ctx *c = new_ctx();
    secap_vclub *e = ref_estimator(c, h, 0.01f, 0.0f);
    secap_params *p = secap_vclub_params(e);
    int bad = 0;

    const char *tags[2] = {"U_full", "U_sampled"};
    for (int v = 0; v < 2; v++) {
        secap_tensor *q = leaf(c, f.B, f.X, f.q.x), *t = leaf(c, f.B, f.Y, f.t.x);
        secap_adamw_zero_grad(secap_vclub_optimizer(e));
        secap_tensor *u = secap_vclub_bound(c, e, q, t, v ? f.perm.i : NULL);
        secap_backward(c, u);
        char name[64];
        snprintf(name, sizeof name, "val/%s", tags[v]);
        compare_ds(h, name, u, 0, &bad);
        snprintf(name, sizeof name, "grad/%s/q", tags[v]);
        compare_ds(h, name, q, 1, &bad);
        expect_no_grad(t, "vclub_bound: t");
        for (int i = 0; i < secap_params_count(p); i++)
            expect_no_grad(secap_params_entry(p, i)->t, "vclub_bound: an estimator parameter");
        secap_ctx_reset(c);
    }

    secap_tensor *q = leaf(c, f.B, f.X, f.q.x), *t = leaf(c, f.B, f.Y, f.t.x);
    secap_adamw_zero_grad(secap_vclub_optimizer(e));
    secap_tensor *le = secap_vclub_est_loss(c, e, q, t);
    secap_backward(c, le);
    compare_ds(h, "val/L_est", le, 0, &bad);
    expect_no_grad(q, "vclub_est_loss: q");
    expect_no_grad(t, "vclub_est_loss: t");
    for (int i = 0; i < secap_params_count(p); i++) {
        char name[256];
        snprintf(name, sizeof name, "grad/L_est/%s", secap_params_entry(p, i)->name);
        compare_ds(h, name, secap_params_entry(p, i)->t, 1, &bad);
    }
    secap_ctx_reset(c);
    secap_vclub_free(e);

    /* One estimator step against torch.optim.AdamW. */
    e = ref_estimator(c, h, h5scalar(h, "step_lr"), h5scalar(h, "step_wd"));
    p = secap_vclub_params(e);
    q = leaf(c, f.B, f.X, f.q.x);
    t = leaf(c, f.B, f.Y, f.t.x);
    secap_node *tape = c->tape;
    int64_t ntape = c->ntape;
    float v = secap_vclub_step(c, e, q, t, h5scalar(h, "step_lr"));
    if (c->tape != tape || c->ntape != ntape) fail_msg("vclub_step: the tape changed (%lld -> %lld nodes)", (long long)ntape, (long long)c->ntape);
    if (q->grad || t->grad) fail_msg("vclub_step: a gradient reached the embeddings");
    compare("vclub_step: returned L_est", &v, (float[]){h5scalar(h, "val/L_est")}, 1, &bad);
    for (int i = 0; i < secap_params_count(p); i++) {
        char name[256];
        snprintf(name, sizeof name, "step/%s", secap_params_entry(p, i)->name);
        compare_ds(h, name, secap_params_entry(p, i)->t, 0, &bad);
    }
    secap_vclub_free(e);
    secap_ctx_free(c);
    fixture_free(&f);
    H5Fclose(h);
    if (bad) fail_msg("vclub: %d tensors differ from PyTorch past %g relative (see above)", bad, TOL);
}

static void test_contrastive_parity(void **st)
{
    (void)st;
    hid_t h = h5open(tu_ref_path(FIX));
    fixture f = read_fixture(h);
    float wp = h5scalar(h, "w_pair"), wc = h5scalar(h, "w_class");
    secap_ctx *c = new_ctx();
    secap_params *tp = secap_contrastive_params_new(c, SECAP_TEMP_INIT, NULL, NULL);
    secap_tensor *temp = secap_params_get(tp, "temp");
    assert_non_null(temp);
    assert_true(temp->requires_grad);
    int bad = 0;

    for (int lab = 0; lab < 2; lab++) {
        const char *tag = lab ? "con_lab" : "con_nolab";
        secap_f32(temp)[0] = h5scalar(h, "temp");
        temp->grad[0] = 0;
        secap_tensor *q = leaf(c, f.B, f.X, f.q.x), *k = leaf(c, f.B, f.X, f.k.x);
        secap_tensor *l = secap_contrastive_loss(c, q, k, temp, lab ? f.labels.i : NULL, wp, lab ? wc : 0.0f,
                                                 SECAP_TEMP_MIN, SECAP_TEMP_MAX);
        secap_backward(c, l);
        char name[64];
        snprintf(name, sizeof name, "val/%s", tag);
        compare_ds(h, name, l, 0, &bad);
        snprintf(name, sizeof name, "grad/%s/q", tag);
        compare_ds(h, name, q, 1, &bad);
        snprintf(name, sizeof name, "grad/%s/k", tag);
        compare_ds(h, name, k, 1, &bad);
        snprintf(name, sizeof name, "grad/%s/temp", tag);
        compare_ds(h, name, temp, 1, &bad);
        secap_ctx_reset(c);
    }

    /* A stored value below the range is raised to temp_min, as BLIP-2's clamp_. */
    secap_f32(temp)[0] = h5scalar(h, "temp_low");
    int prev = secap_no_grad_begin(c);
    secap_tensor *l = secap_contrastive_loss(c, secap_from_data(c, 2, (int64_t[]){f.B, f.X}, f.q.x),
                                             secap_from_data(c, 2, (int64_t[]){f.B, f.X}, f.k.x), temp, f.labels.i,
                                             wp, wc, SECAP_TEMP_MIN, SECAP_TEMP_MAX);
    secap_no_grad_end(c, prev);
    compare_ds(h, "val/con_low", l, 0, &bad);
    if (secap_f32(temp)[0] != SECAP_TEMP_MIN) fail_msg("contrastive: stored temperature %g was not clamped to %g", secap_f32(temp)[0], SECAP_TEMP_MIN);
    secap_ctx_reset(c);

    /* The objective, with the estimator of the fixture. */
    secap_vclub *e = ref_estimator(c, h, 0.01f, 0.0f);
    secap_stage1_config s;
    secap_stage1_config_default(&s);
    s.w_mi = h5scalar(h, "w_mi");
    s.w_con = h5scalar(h, "w_con");
    s.w_pair = wp;
    s.w_class = wc;
    secap_f32(temp)[0] = h5scalar(h, "temp");
    temp->grad[0] = 0;
    secap_tensor *q = leaf(c, f.B, f.X, f.q.x), *k = leaf(c, f.B, f.X, f.k.x);
    secap_tensor *t = leaf(c, f.B, f.Y, f.t.x);
    secap_stage1_terms terms;
    secap_tensor *obj = secap_stage1_objective(c, &s, e, temp, q, t, k, f.labels.i, NULL, &terms);
    secap_backward(c, obj);
    compare_ds(h, "val/objective", obj, 0, &bad);
    compare("objective: terms.mi", &terms.mi, (float[]){h5scalar(h, "val/U_full")}, 1, &bad);
    compare("objective: terms.con", &terms.con, (float[]){h5scalar(h, "val/con_lab")}, 1, &bad);
    compare_ds(h, "grad/objective/q", q, 1, &bad);
    compare_ds(h, "grad/objective/k", k, 1, &bad);
    compare_ds(h, "grad/objective/temp", temp, 1, &bad);
    expect_no_grad(t, "objective: t");

    secap_vclub_free(e);
    secap_params_free(tp);
    secap_ctx_free(c);
    fixture_free(&f);
    H5Fclose(h);
    if (bad) fail_msg("contrastive: %d tensors differ from PyTorch past %g relative (see above)", bad, TOL);
}

/* ---- finite differences -------------------------------------------------- */

typedef struct {
    const int32_t *labels;
    float w_pair, w_class;
} con_arg;

static secap_tensor *b_con(secap_ctx *c, secap_tensor **in, void *arg)
{
    const con_arg *a = arg;
    return secap_contrastive_loss(c, in[0], in[1], in[2], a->labels, a->w_pair, a->w_class, SECAP_TEMP_MIN,
                                  SECAP_TEMP_MAX);
}

static void test_contrastive_grad(void **st)
{
    (void)st;
    const gc_input in[3] = { GC_IN(-1, 1, 8, 5), GC_IN(-1, 1, 8, 5), GC_IN(0.05f, 0.3f, 1) };
    /* N x K = 3 x 2 plus a class of 2 with an odd member, and a singleton. */
    static const int32_t nk[8] = {0, 1, 2, 0, 1, 2, 3, 3};
    static const int32_t several[8] = {1, 1, 1, 1, 0, 2, 0, 5};
    con_arg a0 = {NULL, 1.0f, 0.0f}, a1 = {nk, 1.0f, 1.0f}, a2 = {several, 0.6f, 0.9f}, a3 = {several, 0.0f, 1.0f};
    gradcheck("contrastive (CLIP)", b_con, &a0, 3, in, 1e-3f, 5e-3f);
    gradcheck("contrastive N x K", b_con, &a1, 3, in, 1e-3f, 5e-3f);
    gradcheck("contrastive 3 positives", b_con, &a2, 3, in, 1e-3f, 5e-3f);
    gradcheck("contrastive class only", b_con, &a3, 3, in, 1e-3f, 5e-3f);
}

typedef struct {
    secap_vclub *e;
    const int32_t *perm;
} bound_arg;

static secap_tensor *b_bound(secap_ctx *c, secap_tensor **in, void *arg)
{
    const bound_arg *a = arg;
    return secap_vclub_bound(c, a->e, in[0], in[1], a->perm);
}

static void test_vclub_grad(void **st)
{
    (void)st;
    secap_ctx *ec = new_ctx();
    secap_vclub_config cfg = small_cfg(5, 4, 6);
    secap_vclub *e = secap_vclub_new(ec, &cfg, NULL, NULL, 7);
    /* Non-zero biases, so logvar is not centred by construction. */
    secap_params *p = secap_vclub_params(e);
    secap_rng r;
    secap_rng_seed(&r, 3);
    for (int i = 0; i < secap_params_count(p); i++) {
        secap_tensor *t = secap_params_entry(p, i)->t;
        for (int64_t j = 0; j < t->n; j++) secap_f32(t)[j] += 0.3f * secap_rng_normal(&r);
    }
    /* t frozen: the check also requires that no gradient buffer reaches it. */
    gc_input in[2] = { GC_IN(-1, 1, 7, 5), GC_IN(-1, 1, 7, 4) };
    in[1].frozen = 1;
    static const int32_t perm[7] = {3, 0, 6, 1, 5, 2, 4};
    bound_arg full = {e, NULL}, sampled = {e, perm};
    gradcheck("vclub bound full", b_bound, &full, 2, in, 1e-3f, 5e-3f);
    gradcheck("vclub bound sampled", b_bound, &sampled, 2, in, 1e-3f, 5e-3f);

    /* L_est with respect to every estimator parameter (central differences
     * on the parameters themselves). */
    secap_ctx *c = new_ctx();
    float q[7 * 5], t[7 * 4];
    for (int i = 0; i < 35; i++) q[i] = secap_rng_uniform(&r) * 2 - 1;
    for (int i = 0; i < 28; i++) t[i] = secap_rng_uniform(&r) * 2 - 1;
    secap_adamw_zero_grad(secap_vclub_optimizer(e));
    secap_tensor *qt = secap_from_data(c, 2, (int64_t[]){7, 5}, q), *tt = secap_from_data(c, 2, (int64_t[]){7, 4}, t);
    secap_backward(c, secap_vclub_est_loss(c, e, qt, tt));
    const float h = 1e-3f;
    double worst = 0;
    for (int i = 0; i < secap_params_count(p); i++) {
        const secap_param_entry *en = secap_params_entry(p, i);
        float *x = secap_f32(en->t);
        for (int64_t j = 0; j < en->t->n; j++) {
            float v = x[j];
            int prev = secap_no_grad_begin(c);
            secap_ctx_reset(c);
            qt = secap_from_data(c, 2, (int64_t[]){7, 5}, q);
            tt = secap_from_data(c, 2, (int64_t[]){7, 4}, t);
            x[j] = v + h;
            double lp = secap_f32(secap_vclub_est_loss(c, e, qt, tt))[0];
            x[j] = v - h;
            double lm = secap_f32(secap_vclub_est_loss(c, e, qt, tt))[0];
            x[j] = v;
            secap_no_grad_end(c, prev);
            double num = (lp - lm) / (2.0 * h), ana = en->t->grad[j];
            double err = fabs(num - ana) / fmax(1.0, fmax(fabs(num), fabs(ana)));
            if (err > worst) worst = err;
            if (err > 5e-3)
                fail_msg("vclub L_est: %s element %lld: analytic %.6g numeric %.6g (rel err %.3g)", en->name,
                         (long long)j, ana, num, err);
        }
    }
    print_message("  %-28s max rel err %.2e (tol %.0e)\n", "vclub L_est (parameters)", worst, 5e-3);
    secap_ctx_free(c);
    secap_vclub_free(e);
    secap_ctx_free(ec);
}

/* ---- contracts ----------------------------------------------------------- */

static void test_objective_branches(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_params *tp = secap_contrastive_params_new(c, 0.1f, NULL, NULL);
    secap_tensor *temp = secap_params_get(tp, "temp");
    secap_vclub_config cfg = small_cfg(4, 4, 5);
    secap_vclub *e = secap_vclub_new(c, &cfg, NULL, NULL, 2);
    float x[6 * 4];
    secap_rng r;
    secap_rng_seed(&r, 11);
    for (int i = 0; i < 24; i++) x[i] = secap_rng_normal(&r);
    secap_tensor *q = leaf(c, 6, 4, x), *t = leaf(c, 6, 4, x), *k = leaf(c, 6, 4, x);
    secap_stage1_config s;
    secap_stage1_config_default(&s);

    /* w_con = 0: the contrastive branch is not built (no temperature needed). */
    s.w_con = 0;
    int64_t n0 = c->ntape;
    secap_stage1_terms terms;
    secap_tensor *l = secap_stage1_objective(c, &s, e, NULL, q, t, NULL, NULL, NULL, &terms);
    assert_true(terms.con == 0.0f && terms.mi == secap_f32(l)[0]);
    int64_t n_mi = c->ntape - n0;
    /* w_mi = 0: no estimator, no T-embeddings. */
    s.w_con = 1;
    s.w_mi = 0;
    n0 = c->ntape;
    l = secap_stage1_objective(c, &s, NULL, temp, q, NULL, k, NULL, NULL, &terms);
    assert_true(terms.mi == 0.0f && terms.con == secap_f32(l)[0]);
    int64_t n_con = c->ntape - n0;
    s.w_mi = 1;
    n0 = c->ntape;
    secap_stage1_objective(c, &s, e, temp, q, t, k, NULL, NULL, &terms);
    if (c->ntape - n0 != n_mi + n_con + 1)
        fail_msg("objective: %lld nodes with both branches, %lld + %lld apart (+1 add)", (long long)(c->ntape - n0),
                 (long long)n_mi, (long long)n_con);
    /* The sampled variant draws its permutation from the rng, reproducibly. */
    s.mi_variant = SECAP_VCLUB_SAMPLED;
    s.w_con = 0;
    secap_rng r1, r2;
    secap_rng_seed(&r1, 5);
    secap_rng_seed(&r2, 5);
    float u1 = secap_f32(secap_stage1_objective(c, &s, e, NULL, q, t, NULL, NULL, &r1, NULL))[0];
    float u2 = secap_f32(secap_stage1_objective(c, &s, e, NULL, q, t, NULL, NULL, &r2, NULL))[0];
    assert_true(u1 == u2);

    int32_t perm[9];
    secap_vclub_perm(&r, perm, 9);
    int seen[9] = {0};
    for (int i = 0; i < 9; i++) { assert_true(perm[i] >= 0 && perm[i] < 9); seen[perm[i]]++; }
    for (int i = 0; i < 9; i++) assert_int_equal(seen[i], 1);

    EXPECT_FATAL(secap_stage1_objective(c, &s, NULL, NULL, q, t, NULL, NULL, &r, NULL), "needs the estimator");
    s.w_mi = 0;
    EXPECT_FATAL(secap_stage1_objective(c, &s, e, temp, q, t, k, NULL, NULL, NULL), "both 0");
    s.w_con = 1;
    EXPECT_FATAL(secap_stage1_objective(c, &s, e, NULL, q, t, k, NULL, NULL, NULL), "needs C-embeddings");
    s.temp_min = 0;
    EXPECT_FATAL(secap_stage1_config_validate(&s, "stage1.ini"), "temp_min");
    int32_t badlab[6] = {0, 1, -1, 0, 1, 2};
    EXPECT_FATAL(secap_contrastive_loss(c, q, k, temp, badlab, 1, 1, 0.001f, 0.5f), "label of row 2");
    EXPECT_FATAL(secap_contrastive_loss(c, q, k, temp, NULL, 0, 1, 0.001f, 0.5f), "w_class needs labels");
    secap_tensor *k3 = leaf(c, 6, 3, x);
    EXPECT_FATAL(secap_contrastive_loss(c, q, k3, temp, NULL, 1, 0, 0.001f, 0.5f), "[6, 3]");
    EXPECT_FATAL(secap_vclub_bound(c, e, q, k3, NULL), "t has shape [6, 3]");
    int32_t badperm[6] = {0, 1, 2, 3, 4, 6};
    EXPECT_FATAL(secap_vclub_bound(c, e, q, t, badperm), "perm[5] = 6");
    cfg.hidden = 0;
    EXPECT_FATAL(secap_vclub_new(c, &cfg, NULL, NULL, 1), "mi_hidden");
    secap_vclub_free(e);
    secap_params_free(tp);
    secap_ctx_free(c);
}

/* Random init rules, and a checkpoint round trip of both tables under
 * prefixes in one file (what a trainer writes), plus a refused file. */
static void test_tables_and_checkpoint(void **st)
{
    (void)st;
    secap_ctx *c = new_ctx();
    secap_vclub_config cfg = small_cfg(6, 5, 9);
    secap_vclub *e = secap_vclub_new(c, &cfg, NULL, NULL, 4);
    secap_params *tp = secap_contrastive_params_new(c, 0.07f, NULL, NULL);
    secap_tensor *temp = secap_params_get(tp, "temp");
    assert_int_equal(temp->ndim, 0);
    assert_true(temp->requires_grad && secap_f32(temp)[0] == 0.07f);
    secap_params *p = secap_vclub_params(e);
    assert_true(secap_params_numel(p, 1) == 2 * (9 * 6 + 9 + 5 * 9 + 5));
    for (int i = 0; i < secap_params_count(p); i++) {
        const secap_param_entry *en = secap_params_entry(p, i);
        const float *x = secap_f32(en->t);
        int is_w = en->ndim == 2;
        float bound = is_w ? 1.0f / sqrtf((float)en->shape[1]) : 0.0f, amax = 0;
        for (int64_t j = 0; j < en->t->n; j++) amax = fmaxf(amax, fabsf(x[j]));
        if (amax > bound || (is_w && amax < 0.5f * bound))
            fail_msg("vclub init: %s has max |x| %g, expected %s %g", en->name, amax, is_w ? "about" : "exactly",
                     bound);
        assert_true(en->trainable && en->t->requires_grad);
    }
    secap_f32(temp)[0] = 0.123f;

    secap_weights *w = secap_weights_create(tu_tmp("stage1.h5"));
    secap_params_write(p, w, "mi_estimator.", 0);
    secap_params_write(tp, w, NULL, 0);
    secap_weights_close(w);

    w = secap_weights_open(tu_tmp("stage1.h5"));
    secap_vclub *e2 = secap_vclub_new(c, &cfg, w, "mi_estimator.", 99);
    secap_params *tp2 = secap_contrastive_params_new(c, 0.07f, w, NULL);
    secap_weights_close_checked(w, NULL);
    assert_true(secap_f32(secap_params_get(tp2, "temp"))[0] == 0.123f);
    for (int i = 0; i < secap_params_count(p); i++) {
        const secap_param_entry *a = secap_params_entry(p, i);
        secap_tensor *b = secap_params_get(secap_vclub_params(e2), a->name);
        assert_non_null(b);
        if (memcmp(a->t->data, b->data, (size_t)a->t->n * sizeof(float)))
            fail_msg("vclub checkpoint: %s differs after the round trip", a->name);
    }
    /* A file without the estimator (wrong prefix) is refused naming a tensor. */
    w = secap_weights_open(tu_tmp("stage1.h5"));
    EXPECT_FATAL(secap_vclub_new(c, &cfg, w, "vclub.", 1), "vclub.p_mu.0.weight");
    secap_weights_close(w);
    /* A different hidden width is refused naming the shape. */
    w = secap_weights_open(tu_tmp("stage1.h5"));
    secap_vclub_config cfg2 = small_cfg(6, 5, 8);
    EXPECT_FATAL(secap_vclub_new(c, &cfg2, w, "mi_estimator.", 1), "p_mu.0.weight");
    secap_weights_close(w);
    secap_vclub_free(e2);
    secap_params_free(tp2);
    secap_vclub_free(e);
    secap_params_free(tp);
    secap_ctx_free(c);
}

static int loss_set(void *cfg, const char *key, const char *value)
{
    return secap_stage1_config_set(cfg, key, value);
}

static void test_config_keys(void **st)
{
    (void)st;
    secap_stage1_config s, d;
    secap_stage1_config_default(&s);
    secap_stage1_config_default(&d);
    secap_stage1_config_validate(&d, "defaults");
    assert_true(d.temp_init == 0.07f && d.temp_min == 0.001f && d.temp_max == 0.5f);
    assert_int_equal(d.mi_monitor, 1);
    secap_ini *ini = secap_ini_new();
    const char *args[] = {"--loss.w_mi=0", "--loss.w_con=2.5", "--loss.w_pair=0.5", "--loss.w_class=0.25",
                          "--loss.mi_variant=sampled", "--loss.mi_hidden=128", "--loss.mi_lr=3e-4",
                          "--loss.mi_weight_decay=0.01", "--loss.temp_init=0.1", "--loss.temp_min=0.01",
                          "--loss.temp_max=0.4", "--loss.mi_monitor=false",
                          "--loss.caption_w_mi=0.125", "--loss.caption_w_con=0.75", "--loss.mi_warmup=300"};
    for (size_t i = 0; i < sizeof args / sizeof *args; i++) assert_true(secap_ini_set_arg(ini, args[i]));
    secap_ini_apply(ini, "loss", &s, loss_set);
    secap_ini_check_used(ini, "loss");
    secap_ini_free(ini);
    assert_true(s.w_mi == 0 && s.w_con == 2.5f && s.w_pair == 0.5f && s.w_class == 0.25f);
    assert_true(s.mi_variant == SECAP_VCLUB_SAMPLED && s.mi.hidden == 128 && s.mi.lr == 3e-4f);
    assert_true(s.mi.weight_decay == 0.01f && s.temp_init == 0.1f && s.temp_min == 0.01f && s.temp_max == 0.4f);
    assert_int_equal(s.mi_monitor, 0);
    assert_true(s.caption_w_mi == 0.125f && s.caption_w_con == 0.75f);
    assert_int_equal(s.mi_warmup, 300);
    assert_int_equal(d.mi_warmup, 0);
    secap_stage1_config_validate(&s, "overrides");
    /* print -> set gives the same config back */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    secap_stage1_config_print(&s, f);
    fclose(f);
    secap_stage1_config r;
    secap_stage1_config_default(&r);
    int lines = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        char key[64], val[64];
        assert_int_equal(sscanf(line, "%63s = %63s", key, val), 2);
        assert_int_equal(secap_stage1_config_set(&r, key, val), 0);
    }
    free(buf);
    assert_int_equal(lines, 15);
    assert_memory_equal(&r, &s, sizeof s);
    assert_int_equal(secap_stage1_config_set(&r, "loss.w_mii", "1"), -1);
    EXPECT_FATAL(secap_stage1_config_set(&r, "w_mi", "-1"), "loss.w_mi");
    EXPECT_FATAL(secap_stage1_config_set(&r, "mi_variant", "pairs"), "full or sampled");
    EXPECT_FATAL(secap_stage1_config_set(&r, "mi_hidden", "12.5"), "whole number");
    EXPECT_FATAL(secap_stage1_config_set(&r, "mi_monitor", "maybe"), "true or false");
    EXPECT_FATAL(secap_stage1_config_set(&r, "mi_warmup", "12.5"), "whole number of steps");
    EXPECT_FATAL(secap_stage1_config_set(&r, "mi_warmup", "-1"), "loss.mi_warmup");
    EXPECT_FATAL(secap_stage1_config_set(&r, "caption_w_con", "-0.5"), "loss.caption_w_con");
}

/* ---- property: the estimator learns, U sees dependence ------------------- */

/* t = A q + sigma noise ([B, Y]); A fixed random. */
static void make_pairs(secap_rng *r, float *q, float *t, int B, int X, int Y, const float *A, float sigma)
{
    for (int i = 0; i < B * X; i++) q[i] = secap_rng_normal(r);
    for (int b = 0; b < B; b++)
        for (int y = 0; y < Y; y++) {
            float s = 0;
            for (int x = 0; x < X; x++) s += A[y * X + x] * q[b * X + x];
            t[b * Y + y] = s + sigma * secap_rng_normal(r);
        }
}

/* Fits a fresh estimator for `steps` steps, each on a fresh batch of B
 * pairs (dependent: t = A q + noise; independent: t = A q' + noise for an
 * unrelated q'), then measures U (full) on a held-out batch of the same
 * kind.  Fresh batches keep the estimator from memorising a batch, which
 * would make U large for independent pairs too. */
static float fit_and_measure(int dependent, const float *A, int B, int X, int Y, int steps, uint64_t seed)
{
    secap_ctx *c = new_ctx();
    secap_vclub_config cfg = small_cfg(X, Y, 32);
    cfg.lr = 1e-2f;
    secap_vclub *e = secap_vclub_new(c, &cfg, NULL, NULL, 9);
    secap_rng r;
    secap_rng_seed(&r, seed);
    float *q = secap_xmalloc((size_t)B * X * sizeof *q, "q"), *t = secap_xmalloc((size_t)B * Y * sizeof *t, "t");
    float u = 0;
    for (int s = 0; s <= steps; s++) {
        make_pairs(&r, q, t, B, X, Y, A, 0.3f);
        if (!dependent)   /* a new q, unrelated to the t just made */
            for (int i = 0; i < B * X; i++) q[i] = secap_rng_normal(&r);
        secap_tensor *qt = secap_from_data(c, 2, (int64_t[]){B, X}, q), *tt = secap_from_data(c, 2, (int64_t[]){B, Y}, t);
        if (s < steps) {
            secap_vclub_step(c, e, qt, tt, cfg.lr);
        } else {
            int prev = secap_no_grad_begin(c);
            u = secap_f32(secap_vclub_bound(c, e, qt, tt, NULL))[0];
            secap_no_grad_end(c, prev);
        }
        secap_ctx_reset(c);
    }
    free(q); free(t);
    secap_vclub_free(e);
    secap_ctx_free(c);
    return u;
}

static void test_vclub_learns(void **st)
{
    (void)st;
    enum { B = 64, X = 6, Y = 4, STEPS = 300 };
    secap_rng r;
    secap_rng_seed(&r, 21);
    float A[Y * X], q[B * X], t[B * Y];
    for (int i = 0; i < Y * X; i++) A[i] = 0.6f * secap_rng_normal(&r);

    /* L_est on one fixed batch where t depends on q. */
    make_pairs(&r, q, t, B, X, Y, A, 0.3f);
    secap_ctx *c = new_ctx();
    secap_vclub_config cfg = small_cfg(X, Y, 32);
    cfg.lr = 1e-2f;
    secap_vclub *e = secap_vclub_new(c, &cfg, NULL, NULL, 9);
    float l0 = 0, l1 = 0;
    for (int s = 0; s <= STEPS; s++) {
        secap_tensor *qt = secap_from_data(c, 2, (int64_t[]){B, X}, q), *tt = secap_from_data(c, 2, (int64_t[]){B, Y}, t);
        float v = secap_vclub_step(c, e, qt, tt, cfg.lr);
        if (s == 0) l0 = v;
        l1 = v;
        secap_ctx_reset(c);
    }
    secap_vclub_free(e);
    secap_ctx_free(c);
    print_message("  fixed batch: L_est %.3f -> %.3f in %d steps\n", l0, l1, STEPS);
    /* Noise 0.3 allows L_est near Y (log 0.09 + 1) = -5.6; a start near the
     * marginal variance sits around +10. */
    if (!(l1 < l0 - 5.0f))
        fail_msg("vclub_step: L_est went %.4g -> %.4g in %d steps on a fixed dependent batch (expected a drop "
                 "of more than 5 nats)", l0, l1, STEPS);

    float ud = fit_and_measure(1, A, B, X, Y, STEPS, 31), ui = fit_and_measure(0, A, B, X, Y, STEPS, 31);
    print_message("  held-out U: dependent %.3f, independent %.3f\n", ud, ui);
    if (!(ud > 2.0f)) fail_msg("vclub: U is %.4g on dependent pairs after fitting (expected > 2 nats)", ud);
    if (!(ud > ui + 2.0f)) fail_msg("vclub: U dependent %.4g is not clearly above U independent %.4g", ud, ui);
    if (!(fabsf(ui) < 0.25f * ud)) fail_msg("vclub: U on independent pairs %.4g is not small next to %.4g", ui, ud);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vclub_parity),
        cmocka_unit_test(test_contrastive_parity),
        cmocka_unit_test(test_contrastive_grad),
        cmocka_unit_test(test_vclub_grad),
        cmocka_unit_test(test_objective_branches),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_tables_and_checkpoint),
        cmocka_unit_test(test_vclub_learns),
    };
    return cmocka_run_group_tests(tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
