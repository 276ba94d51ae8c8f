/* Training checkpoints (secap/train.h, SECAP.md section 7).
 *
 * One HDF5 file per save, <out_dir>/ckpt-<global step, 10 digits>.h5,
 * written by the weight-file writer (to <path>.tmp.<pid>, flushed, renamed),
 * so a crash at any instant leaves every earlier checkpoint intact.
 *   tensors     qformer.bert.<BERT name>, qformer.<root name>,
 *               bridge.weight, bridge.bias (qformer.bridge = linear),
 *               mi_estimator.<p_mu.0.weight ...>, contrastive.temp,
 *               lora.<PEFT name>, llama.<HF name> (the base, when stage lm
 *               trains it)                (trainable entries, float32)
 *               optim.m.NNNNN / optim.v.NNNNN     the stage's AdamW moments,
 *               mi_optim.m.NNNNN / mi_optim.v.NNNNN  the estimator's, [n] each,
 *               in optimizer slot order
 *   attributes  format "secap-train-checkpoint", format_version, stage_index,
 *               stage (name), step (within the stage), gstep, loader_epoch,
 *               loader_step, bad_steps, rng_ctx [4], rng_train [4]
 *               (xoshiro states as int64 bits), opt_slots (0: the next stage
 *               starts with a fresh optimizer), opt_step, mi_opt_slots,
 *               mi_opt_step, config (the resolved config text).
 * Test hook: SECAP_TRAIN_SAVE_DELAY_MS=N sleeps N ms after the tensors are
 * written and before the rename (tests kill -9 a run inside a save). */
#include "train_internal.h"

#include "secap/base.h"
#include "secap/fileutil.h"
#include "secap/weights.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int is_ckpt_name(const char *n)
{
    size_t l = strlen(n);
    return l > 8 && !strncmp(n, "ckpt-", 5) && !strcmp(n + l - 3, ".h5");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted ckpt-*.h5 names of dir; also sweeps temporaries of killed saves. */
static int list_ckpts(const char *dir, char ***names)
{
    DIR *d = opendir(dir);
    int n = 0;
    *names = NULL;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) {
        char *t = strstr(e->d_name, ".h5.tmp.");
        if (!strncmp(e->d_name, "ckpt-", 5) && t) {
            char base[1200];
            snprintf(base, sizeof base, "%s/%.*s", dir, (int)(t + 3 - e->d_name), e->d_name);
            secap_tmp_sweep(base);
            continue;
        }
        if (!is_ckpt_name(e->d_name)) continue;
        *names = realloc(*names, (size_t)(n + 1) * sizeof **names);
        (*names)[n++] = secap_xstrdup(e->d_name, "checkpoint name");
    }
    closedir(d);
    if (n) qsort(*names, (size_t)n, sizeof **names, cmp_str);
    return n;
}

int secap_ckpt_has_any(const char *dir, char **newest)
{
    char **names;
    int n = list_ckpts(dir, &names);
    static char buf[256];
    if (n) snprintf(buf, sizeof buf, "%s", names[n - 1]);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    *newest = n ? buf : NULL;
    return n;
}

char *secap_ckpt_resolve(const char *what, const char *path)
{
    if (!secap_is_dir(path)) {
        if (access(path, R_OK) != 0)
            secap_fatal("%s %s: %s (hint: a checkpoint ckpt-*.h5 written by bin/secap-train, or its run directory, "
                        "e.g. build/demo/run)", what, path, strerror(errno));
        return secap_xstrdup(path, "checkpoint path");
    }
    char **names;
    int n = list_ckpts(path, &names);
    if (!n) secap_fatal("%s %s: the directory holds no checkpoint ckpt-*.h5 (hint: a run's train.out_dir after "
                        "bin/secap-train has saved; the demo's is build/demo/run)", what, path);
    size_t l = strlen(path) + strlen(names[n - 1]) + 2;
    char *r = secap_xmalloc(l, "checkpoint path");
    snprintf(r, l, "%s/%s", path, names[n - 1]);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return r;
}

void secap_ckpt_need_file(const char *ckpt, const char *key, const char *path)
{
    if (!path[0])
        secap_fatal("checkpoint %s: its config leaves %s empty (hint: a checkpoint of a run whose stages use it "
                    "names every model file)", ckpt, key);
    if (access(path, R_OK) != 0)
        secap_fatal("checkpoint %s: its config's %s \"%s\" cannot be read: %s (hint: run from the directory "
                    "bin/secap-train ran in, where the config's relative paths resolve; for the demo: make demo "
                    "remakes it)", ckpt, key, path, strerror(errno));
}

void secap_ckpt_open_models(trainer *tr, const char *ckpt, int threads)
{
    const secap_train_config *t = &tr->cfg;
    for (int i = 0; i < t->train.nstages; i++) tr->has_stage[t->train.stage[i]] = 1;
    secap_threads_init(threads ? threads : t->train.threads);
    tr->infer = 1;
    tr->c = secap_ctx_new(0, 0, t->train.seed);
    tr->c->training = 0;
    secap_train_build_models(tr, 0);
    secap_ckpt_load_params(tr, ckpt);
}

/* Opens a checkpoint and checks format and version. */
static secap_weights *ckpt_open(const char *path)
{
    secap_weights *w = secap_weights_open(path);
    if (!secap_weights_has_attr(w, "format") || strcmp(secap_weights_attr_string(w, "format"), SECAP_CKPT_FORMAT)) {
        secap_weights_discard(w);
        secap_fatal("checkpoint %s: not a secap-train checkpoint (no format attribute \"%s\") (hint: --resume takes "
                    "a ckpt-*.h5 written by secap-train, or its run directory)", path, SECAP_CKPT_FORMAT);
    }
    int64_t v = secap_weights_attr_int(w, "format_version");
    if (v != SECAP_CKPT_VERSION) {
        secap_weights_discard(w);
        secap_fatal("checkpoint %s: format version %lld, this build reads version %d (hint: resume with the "
                    "secap-train that wrote it)", path, (long long)v, SECAP_CKPT_VERSION);
    }
    return w;
}

char *secap_ckpt_config_text(const char *path)
{
    secap_weights *w = ckpt_open(path);
    char *s = secap_xstrdup(secap_weights_attr_string(w, "config"), "checkpoint config");
    secap_weights_discard(w);
    return s;
}

void secap_ckpt_read_config(const char *path, secap_train_config *cfg, int64_t *stage_idx, int64_t *step,
                            int64_t *gstep)
{
    char *text = secap_ckpt_config_text(path);   /* checks format and version */
    secap_cleanup cl;
    secap_cleanup_push(&cl, free, text);
    secap_weights *w = secap_weights_open(path);
    *stage_idx = secap_weights_attr_int(w, "stage_index");
    *step = secap_weights_attr_int(w, "step");
    *gstep = secap_weights_attr_int(w, "gstep");
    secap_weights_discard(w);
    secap_ini *ini = secap_ini_from_text(text, path);
    secap_train_config_default(cfg);
    secap_train_config_from_ini(cfg, ini);
    secap_ini_free(ini);
    secap_cleanup_pop(&cl);
    free(text);
}

secap_ini *secap_ini_from_text(const char *text, const char *origin)
{
    const char *td = getenv("TMPDIR");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/secap_ckpt_config_XXXXXX", td && *td ? td : "/tmp");
    int fd = mkstemp(tmp);
    if (fd < 0) secap_fatal("checkpoint %s: cannot make a temporary file for its config: %s", origin, strerror(errno));
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    if (!ok) { unlink(tmp); secap_fatal("checkpoint %s: cannot write %s", origin, tmp); }
    secap_ini *ini = secap_ini_load(tmp);
    unlink(tmp);
    for (int i = 0; i < ini->n; i++) {
        const char *colon = strrchr(ini->e[i].origin, ':');
        char o[1200];
        snprintf(o, sizeof o, "%s:%s", origin, colon ? colon + 1 : "?");
        free(ini->e[i].origin);
        ini->e[i].origin = secap_xstrdup(o, "config origin");
    }
    return ini;
}

/* Keys a resumed run may change: they do not change the computation. */
static const char *const MAY_CHANGE = "train.stop_at_step,train.save_every,train.keep,train.max_bad_steps,"
                                      "train.out_dir,train.threads,train.dist_timeout,train.dist_bucket_mb,"
                                      "train.dist_overlap,log.*,eval.*,decode.*,data.workers,data.prefetch";

/* "section.key" -> value lines of a resolved config text. */
static int next_kv(const char **p, char *sec, char *key, size_t kcap, char *val, size_t vcap)
{
    while (**p) {
        const char *l = *p, *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        *p = l + n + (nl != NULL);
        if (!n || l[0] == '#') continue;
        if (l[0] == '[') {
            snprintf(sec, 64, "%.*s", (int)(n - 2), l + 1);
            continue;
        }
        const char *eq = strstr(l, " = ");
        if (!eq || eq > l + n) continue;
        snprintf(key, kcap, "%s.%.*s", sec, (int)(eq - l), l);
        snprintf(val, vcap, "%.*s", (int)(n - (size_t)(eq + 3 - l)), eq + 3);
        return 1;
    }
    return 0;
}

void secap_ckpt_check_config(const char *path, const char *saved, const char *now)
{
    char msg[4096] = "";
    size_t ml = 0;
    int bad = 0;
    const char *p = saved;
    char sec[64] = "", key[256], val[2048];
    while (next_kv(&p, sec, key, sizeof key, val, sizeof val)) {
        const char *q = now;
        char sec2[64] = "", key2[256], val2[2048];
        int found = 0;
        while (next_kv(&q, sec2, key2, sizeof key2, val2, sizeof val2))
            if (!strcmp(key, key2)) { found = 1; break; }
        if (found && !strcmp(val, val2)) continue;
        if (secap_params_match(MAY_CHANGE, key)) continue;
        bad++;
        if (ml < sizeof msg - 300)
            ml += (size_t)snprintf(msg + ml, sizeof msg - ml, "%s%s: checkpoint \"%s\", now \"%s\"", bad > 1 ? "; " : "",
                                   key, val, found ? val2 : "(absent)");
    }
    if (bad)
        secap_fatal("checkpoint %s: the config differs in %d key%s: %s (hint: resume with the checkpoint's config, "
                    "i.e. --resume alone; only %s may change)", path, bad, bad > 1 ? "s" : "", msg, MAY_CHANGE);
}

/* The trainable tables and their prefixes in the file. */
static int tables(trainer *tr, const secap_params **t, const char **pre)
{
    int n = 0;
    if (tr->qf) {
        t[n] = secap_qformer_bert_params(tr->qf); pre[n++] = "qformer.bert.";
        t[n] = secap_qformer_root_params(tr->qf); pre[n++] = "qformer.";
    }
    if (tr->bridge) { t[n] = tr->bridge; pre[n++] = "bridge."; }
    if (tr->hub_top) { t[n] = secap_hubert_params(tr->hub_top); pre[n++] = "hubert."; }
    if (tr->fnorm) { t[n] = tr->fnorm; pre[n++] = "feature_norm."; }
    if (tr->est) { t[n] = secap_vclub_params(tr->est); pre[n++] = "mi_estimator."; }
    if (tr->temp) { t[n] = tr->temp; pre[n++] = "contrastive."; }
    if (tr->llm && secap_llama_lora_params(tr->llm)) { t[n] = secap_llama_lora_params(tr->llm); pre[n++] = "lora."; }
    if (tr->llm && secap_llama_train_base(tr->llm)) { t[n] = secap_llama_base_params(tr->llm); pre[n++] = "llama."; }
    return n;
}

static void write_moments(secap_weights *w, const secap_adamw *o, const char *pre)
{
    for (int i = 0; i < o->nslots; i++) {
        int64_t n = o->slots[i].param->n;
        char name[64];
        snprintf(name, sizeof name, "%s.m.%05d", pre, i);
        secap_weights_write(w, name, 1, &n, o->slots[i].m, SECAP_WDTYPE_F32);
        snprintf(name, sizeof name, "%s.v.%05d", pre, i);
        secap_weights_write(w, name, 1, &n, o->slots[i].v, SECAP_WDTYPE_F32);
    }
}

static void read_moments(secap_weights *w, secap_adamw *o, const char *pre, const char *path)
{
    char slots[64], stepn[64];
    snprintf(slots, sizeof slots, "%s_slots", pre);
    snprintf(stepn, sizeof stepn, "%s_step", pre);
    int64_t ns = secap_weights_attr_int(w, slots);
    if (ns != o->nslots)
        secap_fatal("checkpoint %s: %s holds %lld optimizer slots, this model has %d (hint: the checkpoint is of "
                    "another model or stage layout)", path, pre, (long long)ns, o->nslots);
    for (int i = 0; i < o->nslots; i++) {
        int64_t n = o->slots[i].param->n;
        char name[64];
        snprintf(name, sizeof name, "%s.m.%05d", pre, i);
        secap_weights_read(w, name, 1, &n, o->slots[i].m);
        snprintf(name, sizeof name, "%s.v.%05d", pre, i);
        secap_weights_read(w, name, 1, &n, o->slots[i].v);
    }
    o->step = secap_weights_attr_int(w, stepn);
}

static void rng_attr(secap_weights *w, const char *name, const secap_rng *r)
{
    int64_t v[4];
    for (int i = 0; i < 4; i++) v[i] = (int64_t)r->s[i];
    secap_weights_set_ints(w, name, v, 4);
}

static void rng_read(secap_weights *w, const char *name, secap_rng *r, const char *path)
{
    int64_t v[4];
    if (secap_weights_attr_ints(w, name, v, 4) != 4)
        secap_fatal("checkpoint %s: attribute %s must hold 4 integers (hint: a damaged checkpoint)", path, name);
    for (int i = 0; i < 4; i++) r->s[i] = (uint64_t)v[i];
}

void secap_ckpt_save(trainer *tr, int with_opt)
{
    const secap_train_config *t = &tr->cfg;
    char path[1200];
    snprintf(path, sizeof path, "%s/ckpt-%010lld.h5", t->train.out_dir, (long long)tr->gstep);
    secap_weights *w = secap_weights_create(path);
    secap_weights_set_string(w, "format", SECAP_CKPT_FORMAT);
    secap_weights_set_int(w, "format_version", SECAP_CKPT_VERSION);
    secap_weights_set_int(w, "stage_index", tr->stage_idx);
    secap_weights_set_string(w, "stage", tr->stage_idx < t->train.nstages ?
                             secap_stage_name(t->train.stage[tr->stage_idx]) : "done");
    secap_weights_set_int(w, "step", tr->step);
    secap_weights_set_int(w, "gstep", tr->gstep);
    secap_weights_set_int(w, "loader_epoch", tr->loader_epoch);
    secap_weights_set_int(w, "loader_step", tr->loader_step);
    secap_weights_set_int(w, "bad_steps", tr->bad);
    rng_attr(w, "rng_ctx", &tr->c->rng);
    rng_attr(w, "rng_train", &tr->rng);
    secap_train_config once = *t;   /* a resumed run does not stop again at the same step */
    once.train.stop_at_step = 0;
    char *text = secap_train_config_text(&once);
    secap_weights_set_string(w, "config", text);
    free(text);
    const secap_params *tab[12];
    const char *pre[12];
    int nt = tables(tr, tab, pre);
    for (int i = 0; i < nt; i++) secap_params_write(tab[i], w, pre[i], 1);
    secap_weights_set_int(w, "optim_slots", with_opt && tr->opt ? tr->opt->nslots : 0);
    secap_weights_set_int(w, "optim_step", with_opt && tr->opt ? tr->opt->step : 0);
    if (with_opt && tr->opt) write_moments(w, tr->opt, "optim");
    if (tr->est) {
        secap_adamw *mo = secap_vclub_optimizer(tr->est);
        secap_weights_set_int(w, "mi_optim_slots", mo->nslots);
        secap_weights_set_int(w, "mi_optim_step", mo->step);
        write_moments(w, mo, "mi_optim");
    }
    const char *delay = getenv("SECAP_TRAIN_SAVE_DELAY_MS");
    if (delay && atol(delay) > 0) {
        fprintf(stderr, "secap-train: saving %s (delayed %s ms)\n", path, delay);
        struct timespec ts = { atol(delay) / 1000, (atol(delay) % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    secap_weights_close(w);
    /* keep the newest train.keep */
    char **names;
    int n = list_ckpts(t->train.out_dir, &names);
    for (int i = 0; i < n; i++) {
        if (i < n - t->train.keep) {
            char old[1200];
            snprintf(old, sizeof old, "%s/%s", t->train.out_dir, names[i]);
            unlink(old);
        }
        free(names[i]);
    }
    free(names);
}

/* Reads the trainable tensors of tr's tables from checkpoint w (names
 * prefixed as tables() says); returns how many were read.  missing_ok: a
 * tensor w lacks keeps its value and counts in *kept; else it is an error
 * naming the file and tensor (secap_weights_read). */
static int read_trainable(trainer *tr, secap_weights *w, int missing_ok, int *kept)
{
    const secap_params *tab[12];
    const char *pre[12];
    int nt = tables(tr, tab, pre), loaded = 0;
    for (int i = 0; i < nt; i++)
        for (int k = secap_params_next(tab[i], NULL, -1); k >= 0; k = secap_params_next(tab[i], NULL, k)) {
            const secap_param_entry *e = secap_params_entry(tab[i], k);
            if (!e->trainable) continue;
            char name[600];
            snprintf(name, sizeof name, "%s%s", pre[i], e->name);
            if (missing_ok && !secap_weights_has(w, name)) { (*kept)++; continue; }
            secap_weights_read(w, name, e->ndim, e->shape, secap_f32(e->t));
            loaded++;
        }
    return loaded;
}

void secap_ckpt_load_params(trainer *tr, const char *path)
{
    secap_weights *w = ckpt_open(path);
    read_trainable(tr, w, 0, NULL);
    secap_weights_discard(w);
}

void secap_ckpt_load(trainer *tr, const char *path)
{
    secap_weights *w = ckpt_open(path);
    tr->stage_idx = (int)secap_weights_attr_int(w, "stage_index");
    if (tr->stage_idx < 0 || tr->stage_idx > tr->cfg.train.nstages) {
        secap_weights_discard(w);
        secap_fatal("checkpoint %s: stage_index %d outside 0..%d (hint: a damaged checkpoint)", path, tr->stage_idx,
                    tr->cfg.train.nstages);
    }
    tr->step = secap_weights_attr_int(w, "step");
    tr->gstep = secap_weights_attr_int(w, "gstep");
    tr->loader_epoch = secap_weights_attr_int(w, "loader_epoch");
    tr->loader_step = secap_weights_attr_int(w, "loader_step");
    tr->bad = (int)secap_weights_attr_int(w, "bad_steps");
    rng_read(w, "rng_ctx", &tr->c->rng, path);
    rng_read(w, "rng_train", &tr->rng, path);
    read_trainable(tr, w, 0, NULL);
    if (tr->est) read_moments(w, secap_vclub_optimizer(tr->est), "mi_optim", path);
    secap_loader_set_state(tr->L, (secap_loader_state){ tr->loader_epoch, tr->loader_step });
    if (tr->stage_idx < tr->cfg.train.nstages && secap_weights_attr_int(w, "optim_slots") > 0) {
        secap_train_stage_optimizer(tr, tr->cfg.train.stage[tr->stage_idx]);
        read_moments(w, tr->opt, "optim", path);
        tr->opt_loaded = 1;
    }
    secap_weights_close(w);
}

/* train.init_from (secap/train.h).  The run continues as the run that wrote
 * the checkpoint would have gone on with this config: tensors of this run's
 * tables found in the file are read (shape checked; the others keep their
 * init, e.g. the Q-Former after an lm-only run), then the global step, both
 * RNG streams, the loader position and the MI estimator's moments.  The
 * checkpoint must end a stage (step 0 of the next one; the newest checkpoint
 * of a finished run does), and the stages it finished must be the first of
 * this run's train.stages: those are skipped.  With the same config up to
 * that point, the run equals the uninterrupted one bit for bit
 * (tests/test_train.c, test_init_from). */
void secap_ckpt_init_from(trainer *tr, const char *arg)
{
    char *path = secap_ckpt_resolve("train.init_from", arg);
    secap_cleanup cp;
    secap_cleanup_push(&cp, free, path);
    char *text = secap_ckpt_config_text(path);   /* format and version */
    secap_cleanup ct;
    secap_cleanup_push(&ct, free, text);
    secap_ini *ini = secap_ini_from_text(text, path);
    secap_train_config *other = secap_xcalloc(1, sizeof *other, "config");
    secap_cleanup co;
    secap_cleanup_push(&co, free, other);
    secap_train_config_default(other);
    secap_train_config_from_ini(other, ini);
    secap_ini_free(ini);
    secap_weights *w = ckpt_open(path);
    int64_t si = secap_weights_attr_int(w, "stage_index"), step = secap_weights_attr_int(w, "step");
    if (si < 0 || si > other->train.nstages) {
        secap_weights_discard(w);
        secap_fatal("train.init_from %s: stage_index %lld outside 0..%d (hint: a damaged checkpoint)", path,
                    (long long)si, other->train.nstages);
    }
    if (step != 0) {
        secap_weights_discard(w);
        secap_fatal("train.init_from %s was saved inside stage %s at step %lld (hint: a checkpoint saved at the end "
                    "of a stage, e.g. the newest of a finished run; to continue a run use --resume)", path,
                    secap_stage_name(other->train.stage[si]), (long long)step);
    }
    if (si == 0 || si >= tr->cfg.train.nstages) {
        secap_weights_discard(w);
        secap_fatal("train.init_from %s finished %lld stages (train.stages = %s there), this run has %d (%s) (hint: "
                    "a checkpoint that ended at least one stage, and a run with more stages)", path, (long long)si,
                    other->train.stages, tr->cfg.train.nstages, tr->cfg.train.stages);
    }
    for (int i = 0; i < si; i++)
        if (other->train.stage[i] != tr->cfg.train.stage[i]) {
            secap_weights_discard(w);
            secap_fatal("train.init_from %s finished %lld stage%s of train.stages = %s there; this run's "
                        "train.stages = %s does not begin with %s (hint: init from a run whose finished stages are "
                        "the first of this run's, e.g. train.stages = lm there and lm,qformer,caption here)", path,
                        (long long)si, si > 1 ? "s" : "", other->train.stages, tr->cfg.train.stages,
                        si > 1 ? "them" : "it");
        }
    int kept = 0, loaded = read_trainable(tr, w, 1, &kept);
    if (!loaded) {
        secap_weights_discard(w);
        secap_fatal("train.init_from %s holds none of this run's trainable tensors (hint: a checkpoint of the same "
                    "models, e.g. the lm run of this config)", path);
    }
    tr->gstep = secap_weights_attr_int(w, "gstep");
    tr->loader_epoch = secap_weights_attr_int(w, "loader_epoch");
    tr->loader_step = secap_weights_attr_int(w, "loader_step");
    rng_read(w, "rng_ctx", &tr->c->rng, path);
    rng_read(w, "rng_train", &tr->rng, path);
    if (tr->est && secap_weights_has_attr(w, "mi_optim_slots"))
        read_moments(w, secap_vclub_optimizer(tr->est), "mi_optim", path);
    secap_loader_set_state(tr->L, (secap_loader_state){ tr->loader_epoch, tr->loader_step });
    secap_weights_discard(w);
    tr->stage_idx = (int)si;
    tr->step = 0;
    char done[64] = "";
    for (int i = 0; i < si; i++)
        snprintf(done + strlen(done), sizeof done - strlen(done), "%s%s", i ? "," : "",
                 secap_stage_name(other->train.stage[i]));
    fprintf(stderr, "secap-train: train.init_from %s: %d tensors read, %d kept at their init; stages %s done there "
            "(global step %lld), starting at stage %s\n", path, loaded, kept, done, (long long)tr->gstep,
            secap_stage_name(tr->cfg.train.stage[si]));
    secap_cleanup_pop(&co);
    free(other);
    secap_cleanup_pop(&ct);
    free(text);
    secap_cleanup_pop(&cp);
    free(path);
}
