/* secap-embed - joint-space embeddings of speech and text from a stage-1
 * Q-Former, and speech -> caption retrieval.
 *
 *   secap-embed --model <stage1.h5 | ckpt-*.h5 | best.h5 | RUN_DIR> (--wav FILE... | --data DIR | --text-file FILE)
 *               --out <embeddings.h5> [--hubert <weights.h5> [--layer N] | --features <cache.h5>]
 *               [--vocab vocab.txt] [--cased] [--retrieve K --captions fid2captions.json]
 *               [--threads N]
 *
 * Speech (--wav, --data): the features of one utterance, x [1, T, A] (HuBERT
 * run here with --hubert at --layer, or read from a secap-extract cache with
 * --features), go through the Q-Former's query mode and speech_proj of the
 * mean query output (the Q-embedding, SECAP.md section 3):
 *     e = speech_proj(mean_q Qformer(x)_q) / |.|                [E]
 * Text (--text-file, lines "<id> <text>"): [CLS] text [SEP] through the text
 * mode and text_proj of the [CLS] output (the C-/T-embedding):
 *     e = text_proj(Qformer_text(ids)_0) / |.|                   [E]
 * Each utterance or line runs alone (batch 1: no padding), in eval mode
 * (no dropout), so an embedding is exactly what the library gives for that
 * input.  --out gets one float32 dataset [E] per id ("/" in an id written
 * "%2F", "%" as "%25", as in the feature cache), root attributes kind
 * ("speech" | "text"), model, embed_dim, count; written to a temporary file
 * renamed into place at the end (a failed run leaves nothing).
 *
 * --retrieve K --captions fid2captions.json (speech only): every caption of
 * the JSON ({id: [caption, ...]}) is embedded as text, and for each clip the
 * K captions of highest cosine similarity are printed to stdout,
 *     <clip id> \t <rank> \t <similarity> \t <caption id>#<index> \t <caption>
 * followed by recall@1 and recall@K over the clips that have captions of
 * their own in the JSON (a hit: one of the clip's own captions ranks in).
 *
 * --model may also be a secap-train checkpoint (ckpt-*.h5, best.h5) or a
 * run directory (its newest checkpoint): the Q-Former is rebuilt from the
 * checkpoint's stored config with the trainer's builder and its trained
 * tensors (secap/ckpt_qformer.h).  Then --vocab and the lower-casing default
 * to the config's qformer.vocab / qformer.lower_case, and speech without
 * --hubert / --features runs the config's HuBERT (hubert.weights at
 * hubert.layer) on the audio.
 */
#include "secap/audio.h"
#include "secap/base.h"
#include "secap/berttok.h"
#include "secap/ckpt_qformer.h"
#include "secap/cli.h"
#include "secap/dataset.h"
#include "secap/featcache.h"
#include "secap/fileutil.h"
#include "secap/h5io.h"
#include "secap/hubert.h"
#include "secap/ops.h"
#include "secap/qformer.h"
#include "secap/tensor.h"

#include <cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "secap-embed"

static void *xrealloc(void *p, size_t n, const char *what)
{
    void *q = realloc(p, n);
    if (!q) secap_fatal(PROG ": out of memory growing %s to %zu bytes", what, n);
    return q;
}

typedef struct {
    const char *model, *data, *text_file, *out;
    const char **wavs;
    int nwav;
    const char *hubert, *features, *vocab, *captions;
    int layer;       /* HuBERT layer, -1 = last hidden state */
    int lower_case;  /* the tokenizer's setting (1 unless --cased) */
    int cased;       /* --cased given */
    int ckpt;        /* --model is a secap-train checkpoint or run directory */
    int retrieve;    /* K, 0 = off */
    int threads;
} options;

typedef struct {
    char *id;
    char *path;   /* audio (speech) or NULL */
    char *text;   /* text (text mode) or NULL */
} item;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: secap-embed --model <stage1.h5|ckpt.h5|run dir> (--wav FILE... | --data DIR | --text-file FILE) --out <emb.h5>\n"
        "                   [--hubert <weights.h5> [--layer N] | --features <cache.h5>] [--vocab vocab.txt]\n"
        "                   [--cased] [--retrieve K --captions fid2captions.json] [--threads N]\n"
        "\n"
        "Writes L2-normalised joint-space embeddings [embed_dim], one float32 dataset per id, into --out.\n"
        "\n"
        "  --model FILE        a stage-1 Q-Former file (secap_qformer_save; speech_proj and, for text,\n"
        "                      text_proj and the text mode), or a secap-train checkpoint (ckpt-*.h5,\n"
        "                      best.h5) or run directory (its newest checkpoint); with a checkpoint,\n"
        "                      --vocab, the casing and (speech) the HuBERT default to its config's\n"
        "                      qformer.vocab, qformer.lower_case, hubert.weights at hubert.layer;\n"
        "                      a run with hubert.train_layers also runs its trained top HuBERT\n"
        "                      layers on those features\n"
        "  --wav FILE...       audio files; the id is the basename without extension\n"
        "  --data DIR          a dataset (SECap layout or .jsonl manifest): every utterance\n"
        "  --text-file FILE    lines \"<id> <text>\" (e.g. a dataset's text.txt): text embeddings\n"
        "  --hubert FILE       speech: the HuBERT weights run on the audio (--layer N: -1 = last, default)\n"
        "  --features FILE     speech: a secap-extract feature cache holding every id instead\n"
        "  --vocab FILE        the BERT vocab.txt (text, and --retrieve)\n"
        "  --cased             tokenize without lower-casing (default: lower-case, strip accents)\n"
        "  --retrieve K        speech: print the K captions nearest to each clip (needs --captions, --vocab)\n"
        "  --captions FILE     fid2captions.json, {id: [caption, ...]}\n"
        "  --threads N         kernel threads (default: $SECAP_THREADS, else all cores)\n"
        "  --help              this text\n");
}

static options parse_args(int argc, char **argv)
{
    options o = {.layer = -1, .lower_case = 1};
    o.wavs = secap_xcalloc((size_t)argc, sizeof *o.wavs, "wav list");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); free(o.wavs); exit(0); }
        else if (secap_cli_is(a, "--model")) o.model = secap_cli_value(argc, argv, &i, "--model", PROG);
        else if (secap_cli_is(a, "--data")) o.data = secap_cli_value(argc, argv, &i, "--data", PROG);
        else if (secap_cli_is(a, "--text-file")) o.text_file = secap_cli_value(argc, argv, &i, "--text-file", PROG);
        else if (secap_cli_is(a, "--out")) o.out = secap_cli_value(argc, argv, &i, "--out", PROG);
        else if (secap_cli_is(a, "--hubert")) o.hubert = secap_cli_value(argc, argv, &i, "--hubert", PROG);
        else if (secap_cli_is(a, "--features")) o.features = secap_cli_value(argc, argv, &i, "--features", PROG);
        else if (secap_cli_is(a, "--vocab")) o.vocab = secap_cli_value(argc, argv, &i, "--vocab", PROG);
        else if (secap_cli_is(a, "--captions")) o.captions = secap_cli_value(argc, argv, &i, "--captions", PROG);
        else if (secap_cli_is(a, "--layer"))
            o.layer = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--layer", PROG), "--layer", -1, 4096);
        else if (secap_cli_is(a, "--retrieve"))
            o.retrieve = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--retrieve", PROG), "--retrieve", 1,
                                             1000000);
        else if (secap_cli_is(a, "--threads"))
            o.threads = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--threads", PROG), "--threads", 0, 4096);
        else if (!strcmp(a, "--cased")) o.lower_case = 0, o.cased = 1;
        else if (secap_cli_is(a, "--wav")) {
            if (a[5] == '=') o.wavs[o.nwav++] = a + 6;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) o.wavs[o.nwav++] = argv[++i];
        } else {
            usage(stderr);
            secap_fatal("unknown argument \"%s\" (hint: " PROG " --help)", a);
        }
    }
    if (!o.model) secap_fatal("--model <stage1.h5> is required (hint: " PROG " --help)");
    o.ckpt = secap_is_train_checkpoint(o.model);
    if (!o.out) secap_fatal("--out <embeddings.h5> is required (hint: " PROG " --help)");
    int inputs = (o.nwav > 0) + (o.data != NULL) + (o.text_file != NULL);
    if (inputs != 1)
        secap_fatal("give exactly one of --wav <file>..., --data <dataset>, --text-file <file> (got %s) "
                    "(hint: " PROG " --help)", inputs ? "several" : "none");
    int speech = !o.text_file;
    if (speech && o.hubert && o.features)
        secap_fatal("give --hubert <weights.h5> or --features <cache.h5>, not both (hint: " PROG " --help)");
    if (speech && !o.ckpt && !o.hubert && !o.features)
        secap_fatal("speech embeddings need the features: give --hubert <weights.h5> or --features <cache.h5>, "
                    "not %s (hint: a cache from bin/secap-extract --data ... --out features.h5)",
                    "neither");
    if (!speech && (o.hubert || o.features))
        secap_fatal("--text-file takes no %s (hint: the text side needs only --model and --vocab)",
                    o.hubert ? "--hubert" : "--features");
    if (!speech && !o.vocab && !o.ckpt)
        secap_fatal("--text-file %s: text embeddings need --vocab <vocab.txt> (hint: the vocab the model was "
                    "trained with, e.g. build/demo/vocab.txt from bin/secap-vocab)", o.text_file);
    if (o.retrieve && !speech)
        secap_fatal("--retrieve ranks captions for speech clips (hint: use it with --wav or --data)");
    if (o.retrieve && (!o.captions || (!o.vocab && !o.ckpt)))
        secap_fatal("--retrieve %d needs --captions <fid2captions.json> and --vocab <vocab.txt> (hint: "
                    PROG " --help)", o.retrieve);
    if (o.captions && !o.retrieve)
        secap_fatal("--captions %s is only read with --retrieve K (hint: add --retrieve 5)", o.captions);
    if (o.layer != -1 && !o.hubert)
        secap_fatal("--layer %d selects a HuBERT layer: it needs --hubert (hint: a --features cache was made at "
                    "its own layer)", o.layer);
    return o;
}

/* "dir/name.wav" -> "name". */
static char *basename_id(const char *path)
{
    char *copy = secap_xstrdup(path, "path"), *b = basename(copy), *id = secap_xstrdup(b, "id");
    free(copy);
    char *dot = strrchr(id, '.');
    if (dot && dot != id) *dot = 0;
    return id;
}

static void check_unique(const item *it, int n, const char *src)
{
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(it[i].id, it[j].id))
                secap_fatal("%s: the id \"%s\" occurs twice%s (hint: ids name the output datasets; make them unique)",
                            src, it[i].id, it[i].path ? " (file basenames without extension)" : "");
}

static item *wav_items(const options *o, int *n)
{
    item *u = secap_xcalloc((size_t)o->nwav, sizeof *u, "items");
    for (int i = 0; i < o->nwav; i++) {
        u[i].path = secap_xstrdup(o->wavs[i], "path");
        u[i].id = basename_id(o->wavs[i]);
    }
    *n = o->nwav;
    check_unique(u, *n, "--wav");
    return u;
}

static item *data_items(const options *o, int *n)
{
    secap_data_config dc;
    secap_data_config_default(&dc);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(o->data, &dc, &probs);
    if (!d) {
        secap_problems_print(&probs, stderr);
        secap_problems_free(&probs);
        secap_fatal("--data %s: cannot read the dataset (hint: a directory with wav.scp, or a .jsonl manifest)",
                    o->data);
    }
    secap_problems_free(&probs);
    item *u = secap_xcalloc((size_t)(d->n ? d->n : 1), sizeof *u, "items");
    for (int i = 0; i < d->n; i++) {
        u[i].id = secap_xstrdup(d->items[i].id, "id");
        u[i].path = secap_xstrdup(d->items[i].audio, "path");
    }
    *n = d->n;
    secap_dataset_free(d);
    return u;
}

/* Lines "<id> <text>"; blank lines skipped. */
static item *text_items(const char *path, int *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) secap_fatal("--text-file %s: %s (hint: lines \"<id> <text>\", e.g. a dataset's text.txt)", path,
                        strerror(errno));
    int cap = 64, k = 0, lineno = 0;
    item *u = secap_xcalloc((size_t)cap, sizeof *u, "items");
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) continue;
        char *sp = p + strcspn(p, " \t");
        if (!*sp) {
            char shown[120];
            snprintf(shown, sizeof shown, "%s", p);
            free(line);
            fclose(f);
            for (int i = 0; i < k; i++) { free(u[i].id); free(u[i].text); }
            free(u);
            secap_fatal("--text-file %s:%d: \"%s\" has an id but no text (hint: lines \"<id> <text>\")", path, lineno,
                        shown);
        }
        *sp++ = 0;
        while (*sp == ' ' || *sp == '\t') sp++;
        if (k == cap) {
            cap *= 2;
            u = xrealloc(u, (size_t)cap * sizeof *u, "items");
        }
        u[k].id = secap_xstrdup(p, "id");
        u[k].text = secap_xstrdup(sp, "text");
        k++;
    }
    free(line);
    fclose(f);
    *n = k;
    check_unique(u, k, path);
    return u;
}

static void items_free(item *u, int n)
{
    for (int i = 0; i < n; i++) { free(u[i].id); free(u[i].path); free(u[i].text); }
    free(u);
}

/* --out: never an input, never a directory, in a writable directory. */
static void check_out(const options *o)
{
    const char *ins[] = { o->model, o->hubert, o->features, o->vocab, o->captions, o->text_file, o->data };
    const char *names[] = { "--model", "--hubert", "--features", "--vocab", "--captions", "--text-file", "--data" };
    for (int i = 0; i < 7; i++)
        if (ins[i] && secap_same_file(o->out, ins[i]))
            secap_fatal("--out %s is the file given to %s (hint: embeddings go to a file of their own; inputs are "
                        "never overwritten)", o->out, names[i]);
    for (int i = 0; i < o->nwav; i++)
        if (secap_same_file(o->out, o->wavs[i]))
            secap_fatal("--out %s is the input audio file %s (hint: choose another path)", o->out, o->wavs[i]);
    if (secap_is_dir(o->out))
        secap_fatal("--out %s is a directory (hint: give a file name, e.g. %s/embeddings.h5)", o->out, o->out);
    char *copy = secap_xstrdup(o->out, "path");
    const char *dir = dirname(copy);
    if (!secap_is_dir(dir) || access(dir, W_OK | X_OK) != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "--out %s: its directory %s %s (hint: create it, or choose a writable place)",
                 o->out, dir, !secap_is_dir(dir) ? "does not exist" : strerror(errno));
        free(copy);
        secap_fatal("%s", msg);
    }
    free(copy);
}

/* ---------------------------------------------------------------- progress */

typedef struct {
    const char *what;
    int total, done, tty;
    double t0, last;
} progress;

static void progress_show(progress *p, int final)
{
    double now = secap_now(), el = now - p->t0;
    if (!final && !p->tty && now - p->last < 10) return;
    if (!final && p->tty && now - p->last < 0.2) return;
    p->last = now;
    double rate = el > 0 ? p->done / el : 0, eta = rate > 0 ? (p->total - p->done) / rate : 0;
    int w = 30, fill = p->total ? (int)((double)w * p->done / p->total) : w;
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "%s" PROG ": %s [%s] %d/%d  %.1f/s  %s %d:%02d%s", p->tty ? "\r" : "", p->what, bar, p->done,
            p->total, rate, final ? "elapsed" : "ETA", (int)(final ? el : eta) / 60, (int)(final ? el : eta) % 60,
            p->tty && !final ? "" : "\n");
    fflush(stderr);
}

/* ------------------------------------------------------------- embeddings */

/* Copies the normalised [E] row of e [1, E] into dst. */
static void take_row(secap_ctx *c, secap_tensor *e, float *dst, int E)
{
    secap_tensor *z = secap_l2norm(c, e, 1e-12f);
    memcpy(dst, secap_f32(z), (size_t)E * sizeof *dst);
}

/* top / from: a checkpoint of a run with hubert.train_layers: its trained top
 * HuBERT layers run on x = hidden_states[from] first (NULL: none). */
static void speech_embed(secap_ctx *c, const secap_qformer *m, const secap_hubert *top, int from, const float *x,
                         int64_t T, int64_t A, float *dst)
{
    int E = secap_qformer_cfg(m)->embed_dim;
    int prev = secap_no_grad_begin(c);
    secap_tensor *a = secap_from_data(c, SECAP_SHAPE(1, T, A), x);
    if (top) a = secap_hubert_layers(c, top, a, NULL, from);
    secap_tensor *q = secap_qformer_query(c, m, a, NULL);
    take_row(c, secap_qformer_speech_embed(c, m, q, SECAP_QFORMER_POOL_MEAN), dst, E);
    secap_no_grad_end(c, prev);
    secap_ctx_reset(c);
}

static void text_embed(secap_ctx *c, const secap_qformer *m, const secap_berttok *tok, const char *text,
                       const char *what, float *dst)
{
    const secap_qformer_config *cf = secap_qformer_cfg(m);
    int P = cf->max_position_embeddings;
    int32_t *ids = secap_xmalloc((size_t)P * sizeof *ids, "token ids");
    int S = secap_berttok_encode(tok, text, NULL, P, ids, NULL);
    for (int s = 0; s < S; s++)
        if (ids[s] >= cf->vocab_size) {
            int32_t bad = ids[s];
            free(ids);
            secap_fatal("%s: token id %d (\"%s\") of vocab %s is outside the model's vocab_size %d (hint: use the "
                        "vocab.txt the model was trained with)", what, bad, secap_berttok_token(tok, bad, NULL),
                        secap_berttok_path(tok), cf->vocab_size);
        }
    int prev = secap_no_grad_begin(c);
    secap_tensor *y = secap_qformer_text(c, m, ids, NULL, NULL, 1, S);
    take_row(c, secap_qformer_text_embed(c, m, y), dst, cf->embed_dim);
    secap_no_grad_end(c, prev);
    secap_ctx_reset(c);
    free(ids);
}

/* The features of one utterance [*T, *A] (malloc'ed), from the cache or
 * from HuBERT run on its audio. */
static float *utterance_features(secap_ctx *c, const secap_hubert *hub, int layer, secap_featcache *fc,
                                 const options *o, const item *it, int64_t *T, int64_t *A)
{
    if (fc) {
        float *x = secap_featcache_get(fc, it->id, T, A);
        if (!x)
            secap_fatal("--features %s: no features for utterance %s (hint: extract them with bin/secap-extract "
                        "--hubert ... %s --out %s)", o->features, it->id, o->data ? "--data <the same dataset>" :
                        "--wav <the same files>", o->features);
        return x;
    }
    secap_audio a;
    char err[1024];
    if (secap_audio_load(it->path, SECAP_SAMPLE_RATE, &a, err, sizeof err))
        secap_fatal("utterance %s: %s", it->id, err);
    if (a.n < SECAP_MIN_SAMPLES) {
        int64_t n = a.n;
        secap_audio_free(&a);
        secap_fatal("%s: utterance %s has %lld samples at 16 kHz, fewer than the %d one HuBERT frame needs (hint: "
                    "remove it from the input)", it->path, it->id, (long long)n, SECAP_MIN_SAMPLES);
    }
    int64_t ns = a.n;
    int32_t frames;
    int prev = secap_no_grad_begin(c);
    secap_tensor *y = secap_hubert_forward(c, hub, a.x, &ns, 1, a.n, layer, &frames);
    secap_no_grad_end(c, prev);
    *T = frames;
    *A = y->shape[2];
    float *x = secap_xmalloc((size_t)(*T * *A) * sizeof *x, "features");
    memcpy(x, secap_f32(y), (size_t)(*T * *A) * sizeof *x);
    secap_ctx_reset(c);
    secap_audio_free(&a);
    return x;
}

/* ---------------------------------------------------------------- captions */

typedef struct {
    char *fid;   /* the caption's utterance id */
    int k;       /* its index in that id's list */
    char *text;
} caption;

static caption *read_captions(const char *path, int *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) secap_fatal("--captions %s: %s (hint: a fid2captions.json, {id: [caption, ...]})", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = secap_xmalloc((size_t)(len > 0 ? len : 0) + 1, "captions");
    size_t got = fread(buf, 1, (size_t)(len > 0 ? len : 0), f);
    fclose(f);
    buf[got] = 0;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        secap_fatal("--captions %s: not a JSON object (hint: fid2captions.json maps each id to a list of captions)",
                    path);
    }
    int cap = 256, k = 0;
    caption *v = secap_xcalloc((size_t)cap, sizeof *v, "captions");
    for (cJSON *e = root->child; e; e = e->next) {
        int m = cJSON_IsArray(e) ? cJSON_GetArraySize(e) : 1;
        for (int j = 0; j < m; j++) {
            cJSON *s = cJSON_IsArray(e) ? cJSON_GetArrayItem(e, j) : e;
            if (!cJSON_IsString(s) || !s->valuestring[0]) {
                char id[200];
                snprintf(id, sizeof id, "%s", e->string ? e->string : "?");
                for (int i = 0; i < k; i++) { free(v[i].fid); free(v[i].text); }
                free(v);
                cJSON_Delete(root);
                secap_fatal("--captions %s: id %s, caption %d is not a non-empty string (hint: {id: [\"caption\", "
                            "...]})", path, id, j);
            }
            if (k == cap) {
                cap *= 2;
                v = xrealloc(v, (size_t)cap * sizeof *v, "captions");
            }
            v[k].fid = secap_xstrdup(e->string, "caption id");
            v[k].k = j;
            v[k].text = secap_xstrdup(s->valuestring, "caption");
            k++;
        }
    }
    cJSON_Delete(root);
    if (!k) {
        free(v);
        secap_fatal("--captions %s: holds no captions (hint: {id: [\"caption\", ...]})", path);
    }
    *n = k;
    return v;
}

typedef struct { float s; int i; } scored;

static int by_score_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    return x->s < y->s ? 1 : x->s > y->s ? -1 : x->i - y->i;
}

static void retrieve(const options *o, const item *u, int n, const float *emb, int E, const caption *cap, int nc,
                     const float *cemb)
{
    int K = o->retrieve < nc ? o->retrieve : nc;
    scored *s = secap_xmalloc((size_t)nc * sizeof *s, "scores");
    int with_own = 0, hit1 = 0, hitk = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < nc; j++) {
            double d = 0;
            for (int e = 0; e < E; e++) d += (double)emb[(size_t)i * E + e] * cemb[(size_t)j * E + e];
            s[j].s = (float)d;
            s[j].i = j;
        }
        qsort(s, (size_t)nc, sizeof *s, by_score_desc);
        int own = 0, h1 = 0, hk = 0;
        for (int j = 0; j < nc; j++) own |= !strcmp(cap[j].fid, u[i].id);
        for (int r = 0; r < K; r++) {
            const caption *c = &cap[s[r].i];
            int mine = !strcmp(c->fid, u[i].id);
            if (mine && r == 0) h1 = 1;
            if (mine) hk = 1;
            printf("%s\t%d\t%.4f\t%s#%d\t%s\n", u[i].id, r + 1, s[r].s, c->fid, c->k, c->text);
        }
        with_own += own;
        hit1 += own && h1;
        hitk += own && hk;
    }
    if (with_own)
        printf("# recall@1 %.4f  recall@%d %.4f  over %d clips with captions of their own (%d captions ranked)\n",
               (double)hit1 / with_own, K, (double)hitk / with_own, with_own, nc);
    else
        printf("# no clip has captions of its own in %s: recall not computed (%d captions ranked)\n", o->captions, nc);
    fflush(stdout);
    free(s);
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    options o = parse_args(argc, argv);
    check_out(&o);
    if (o.features) secap_featcache_check_path(o.features);
    secap_threads_init(o.threads);
    int speech = !o.text_file, n = 0;
    item *u = o.text_file ? text_items(o.text_file, &n) : o.data ? data_items(&o, &n) : wav_items(&o, &n);
    if (n == 0) secap_fatal(PROG ": no %s to embed in %s", speech ? "utterances" : "lines",
                            o.text_file ? o.text_file : o.data ? o.data : "--wav");

    secap_ckpt_qformer *ck = NULL;
    secap_qformer *own = NULL;
    const secap_qformer *m;
    const secap_hubert *ck_hub = NULL, *ck_top = NULL;
    int top_from = 0;
    secap_ctx *c;
    if (o.ckpt) {
        ck = secap_ckpt_qformer_open(o.model, o.threads);
        c = secap_ckpt_qformer_ctx(ck);
        m = secap_ckpt_qformer_model(ck);
        const secap_train_config *tc = secap_ckpt_qformer_config(ck);
        if (!o.vocab) o.vocab = tc->qformer.vocab;
        if (!o.cased) o.lower_case = tc->qformer.lower_case;
        if (speech && !o.hubert && !o.features) {
            ck_hub = secap_ckpt_qformer_hubert(ck);
            o.layer = tc->hubert.layer;
        }
        /* hubert.train_layers: the run's trained top layers take the features (hidden_states[hubert.layer]) */
        ck_top = secap_ckpt_qformer_hubert_top(ck);
        top_from = tc->hubert.layer;
        fprintf(stderr, PROG ": --model %s: checkpoint %s (global step %lld), vocab %s%s%s\n", o.model,
                secap_ckpt_qformer_path(ck), secap_ckpt_qformer_step(ck), o.vocab, ck_hub ? ", HuBERT " : "",
                ck_hub ? tc->hubert.weights : "");
    } else {
        c = secap_ctx_new(0, 0, 1);
        c->training = 0;
        own = secap_qformer_load(c, o.model, 0);
        m = own;
    }
    const secap_qformer_config *cf = secap_qformer_cfg(m);
    int E = cf->embed_dim;
    if (E <= 0)
        secap_fatal("--model %s: embed_dim is 0, the file has no speech_proj / text_proj (hint: give a stage-1 "
                    "Q-Former, one trained with the contrastive loss)", o.model);
    if ((!speech || o.retrieve) && !cf->text_mode)
        secap_fatal("--model %s: has no text mode (text_mode = 0: SECap's released bridge, without word embeddings "
                    "and text_proj), so it cannot embed text%s (hint: use a stage-1 file with the text side)",
                    o.model, o.retrieve ? " for --retrieve" : "");
    int A = cf->audio_width > 0 ? cf->audio_width : cf->encoder_width;
    secap_hubert *hub = NULL;
    secap_featcache *fc = NULL;
    if (speech && o.hubert) {
        hub = secap_hubert_load(c, o.hubert, 0);
        const secap_hubert_config *hc = secap_hubert_cfg(hub);
        if (o.layer > hc->num_hidden_layers)
            secap_fatal("--layer %d: %s has %d layers (hint: -1 for the last hidden state, or 0..%d)", o.layer,
                        o.hubert, hc->num_hidden_layers, hc->num_hidden_layers);
        if (hc->hidden_size != A)
            secap_fatal("--hubert %s has hidden_size %d but --model %s takes audio of width %d (%s) (hint: the "
                        "HuBERT the Q-Former was trained on)", o.hubert, hc->hidden_size, o.model, A,
                        cf->audio_width > 0 ? "audio_width" : "encoder_width");
    }
    if (speech && o.features) fc = secap_featcache_open_read(o.features);
    secap_berttok *tok = o.vocab ? secap_berttok_load(o.vocab, o.lower_case) : NULL;
    if (tok && secap_berttok_size(tok) > cf->vocab_size)
        secap_fatal("--vocab %s has %d entries but --model %s has vocab_size %d (hint: the vocab.txt the model was "
                    "trained with)", o.vocab, secap_berttok_size(tok), o.model, cf->vocab_size);

    float *emb = secap_xmalloc((size_t)n * (size_t)E * sizeof *emb, "embeddings");
    progress p = { speech ? "speech" : "text", n, 0, isatty(2), secap_now(), 0 };
    fprintf(stderr, PROG ": %d %s with %s (L=%d, H=%d, E=%d, %d threads) -> %s\n", n,
            speech ? "utterances" : "texts", o.model, cf->num_hidden_layers, cf->hidden_size, E, secap_threads(),
            o.out);
    for (int i = 0; i < n; i++) {
        if (speech) {
            int64_t T, Ad;
            float *x = utterance_features(c, hub ? hub : ck_hub, o.layer, fc, &o, &u[i], &T, &Ad);
            if (Ad != A) {
                free(x);
                secap_fatal("%s: utterance %s has features of width %lld, --model %s takes %d (hint: features of the "
                            "HuBERT the Q-Former was trained on)", o.features ? o.features : o.hubert, u[i].id,
                            (long long)Ad, o.model, A);
            }
            if (ck) secap_ckpt_qformer_normalize(ck, x, T, A);   /* hubert.standardize runs */
            speech_embed(c, m, ck_top, top_from, x, T, A, emb + (size_t)i * E);
            free(x);
        } else {
            char what[300];
            snprintf(what, sizeof what, "--text-file %s, id %s", o.text_file, u[i].id);
            text_embed(c, m, tok, u[i].text, what, emb + (size_t)i * E);
        }
        p.done++;
        progress_show(&p, 0);
    }
    progress_show(&p, 1);

    float *cemb = NULL;
    caption *caps = NULL;
    int nc = 0;
    if (o.retrieve) {
        caps = read_captions(o.captions, &nc);
        cemb = secap_xmalloc((size_t)nc * (size_t)E * sizeof *cemb, "caption embeddings");
        progress pc = { "captions", nc, 0, isatty(2), secap_now(), 0 };
        for (int j = 0; j < nc; j++) {
            char what[300];
            snprintf(what, sizeof what, "--captions %s, id %s caption %d", o.captions, caps[j].fid, caps[j].k);
            text_embed(c, m, tok, caps[j].text, what, cemb + (size_t)j * E);
            pc.done++;
            progress_show(&pc, 0);
        }
        progress_show(&pc, 1);
    }

    /* the output, atomically: a temporary file renamed into place */
    secap_h5 *h = secap_h5_create(o.out);
    secap_h5_set_attr_str(h, NULL, "format", "secap-embeddings-1");
    secap_h5_set_attr_str(h, NULL, "kind", speech ? "speech" : "text");
    secap_h5_set_attr_str(h, NULL, "model", o.model);
    secap_h5_set_attr_int(h, NULL, "embed_dim", E);
    secap_h5_set_attr_int(h, NULL, "count", n);
    for (int i = 0; i < n; i++) {
        char *name = secap_featcache_name(u[i].id);
        secap_h5_write_f32(h, name, emb + (size_t)i * E, SECAP_SHAPE(E), 0);
        free(name);
    }
    secap_h5_commit(h);
    fprintf(stderr, PROG ": wrote %d L2-normalised %s embeddings [%d] to %s\n", n, speech ? "speech" : "text", E,
            o.out);

    if (o.retrieve) retrieve(&o, u, n, emb, E, caps, nc, cemb);

    for (int j = 0; j < nc; j++) { free(caps[j].fid); free(caps[j].text); }
    free(caps);
    free(cemb);
    free(emb);
    if (fc) secap_featcache_close(fc);
    if (tok) secap_berttok_free(tok);
    if (hub) secap_hubert_free(hub);
    if (ck) secap_ckpt_qformer_free(ck);
    else {
        secap_qformer_free(own);
        secap_ctx_free(c);
    }
    items_free(u, n);
    free(o.wavs);
    return 0;
}
