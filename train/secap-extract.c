/* secap-extract - HuBERT features for a list of files or a dataset.
 *
 *   secap-extract --hubert <weights.h5> (--wav <file>... | --data <dataset>)
 *                 --out <features.h5> [--layer N] [--threads N]
 *                 [--batch-seconds S] [--on-error fail|skip] [--recompute]
 *
 * Writes one float32 dataset [frames x hidden] per utterance, named by its id
 * (a --wav file's basename without extension, or the dataset's id), into
 * --out, which is the training feature cache (secap/dataset.h): its root
 * attributes name the weights and the settings, so training reuses it and a
 * change of weights or layer rebuilds it.  Utterances already in a valid
 * cache are skipped unless --recompute.  Utterances are sorted by length and
 * batched up to --batch-seconds of padded audio; each utterance's features
 * equal those it gets alone.
 */
#include "secap/audio.h"
#include "secap/base.h"
#include "secap/cli.h"
#include "secap/dataset.h"
#include "secap/featcache.h"
#include "secap/hubert.h"
#include "secap/tensor.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *hubert, *data, *out;
    const char **wavs;
    int nwav;
    int layer;             /* -1: last hidden state */
    int threads;           /* 0: all cores / $SECAP_THREADS */
    double batch_seconds;  /* cap on B x longest, in seconds of audio */
    int on_error;          /* SECAP_ON_ERROR_* (datasets) */
    int recompute;
} options;

typedef struct {
    char *id;
    char *path;
    int64_t n;    /* samples at 16 kHz (header estimate until loaded) */
} utt;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: secap-extract --hubert <weights.h5> (--wav <file>... | --data <dataset>) --out <features.h5>\n"
        "                     [--layer N] [--threads N] [--batch-seconds S] [--on-error fail|skip] [--recompute]\n"
        "\n"
        "Runs the frozen HuBERT encoder over every utterance and stores its features, one float32\n"
        "dataset [frames x hidden] per utterance id, in the training feature cache --out.\n"
        "\n"
        "  --hubert FILE         HuBERT weight file (tools/convert_hf.py); its do_normalize attribute\n"
        "                        (absent = 0) normalises each utterance to zero mean, unit variance\n"
        "  --wav FILE...         audio files (any libsndfile format, resampled to 16 kHz, downmixed);\n"
        "                        every following argument up to the next --option is a file; the id\n"
        "                        is the file's basename without extension\n"
        "  --data PATH           a dataset: a directory in SECap's layout (wav.scp, ...) or a .jsonl\n"
        "                        manifest; ids from the dataset\n"
        "  --out FILE            the feature file / cache (HDF5).  An existing cache made with the\n"
        "                        same weights and settings is extended (cached ids are skipped); one\n"
        "                        made otherwise is rebuilt\n"
        "  --layer N             -1 (default): the last hidden state; 0..L: HF hidden_states[N]\n"
        "  --threads N           threads for the kernels (default: $SECAP_THREADS, else all cores)\n"
        "  --batch-seconds S     padded audio per batch, utterances x longest (default 60); a longer\n"
        "                        utterance runs alone\n"
        "  --on-error fail|skip  --data: stop on the first bad item (default, listing every problem)\n"
        "                        or skip bad items\n"
        "  --recompute           recompute utterances already in the cache\n"
        "  --help                this text\n"
        "\n"
        "Progress (utterances/s, audio seconds/s) goes to stderr.\n");
}

static options parse_args(int argc, char **argv)
{
    options o = {.layer = -1, .batch_seconds = 60, .on_error = SECAP_ON_ERROR_FAIL};
    o.wavs = secap_xcalloc((size_t)argc, sizeof *o.wavs, "wav list");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (secap_cli_is(a, "--hubert")) o.hubert = secap_cli_value(argc, argv, &i, "--hubert", "secap-extract");
        else if (secap_cli_is(a, "--data")) o.data = secap_cli_value(argc, argv, &i, "--data", "secap-extract");
        else if (secap_cli_is(a, "--out")) o.out = secap_cli_value(argc, argv, &i, "--out", "secap-extract");
        else if (secap_cli_is(a, "--layer")) o.layer = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--layer", "secap-extract"), "--layer", -1, 4096);
        else if (secap_cli_is(a, "--threads")) o.threads = (int)secap_cli_long(secap_cli_value(argc, argv, &i, "--threads", "secap-extract"), "--threads", 0, 4096);
        else if (secap_cli_is(a, "--batch-seconds")) {
            const char *v = secap_cli_value(argc, argv, &i, "--batch-seconds", "secap-extract");
            char *end;
            o.batch_seconds = strtod(v, &end);
            if (!*v || *end || !(o.batch_seconds > 0))
                secap_fatal("--batch-seconds: \"%s\" is not a positive number of seconds", v);
        } else if (secap_cli_is(a, "--on-error")) {
            const char *v = secap_cli_value(argc, argv, &i, "--on-error", "secap-extract");
            if (!strcmp(v, "fail")) o.on_error = SECAP_ON_ERROR_FAIL;
            else if (!strcmp(v, "skip")) o.on_error = SECAP_ON_ERROR_SKIP;
            else secap_fatal("--on-error: \"%s\" (hint: fail or skip)", v);
        } else if (!strcmp(a, "--recompute")) o.recompute = 1;
        else if (secap_cli_is(a, "--wav")) {
            if (a[5] == '=') o.wavs[o.nwav++] = a + 6;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) o.wavs[o.nwav++] = argv[++i];
        } else {
            usage(stderr);
            secap_fatal("unknown argument \"%s\" (hint: secap-extract --help)", a);
        }
    }
    if (!o.hubert) secap_fatal("--hubert <weights.h5> is required (hint: secap-extract --help)");
    if (!o.out) secap_fatal("--out <features.h5> is required (hint: secap-extract --help)");
    if (!o.data == !o.nwav)
        secap_fatal("give either --wav <file>... or --data <dataset>, not %s (hint: secap-extract --help)",
                    o.data ? "both" : "neither");
    return o;
}

/* "dir/name.wav" -> "name". */
static char *basename_id(const char *path)
{
    char *copy = secap_xstrdup(path, "path"), *b = basename(copy), *id = secap_xstrdup(b, "utterance id");
    free(copy);
    char *dot = strrchr(id, '.');
    if (dot && dot != id) *dot = 0;
    return id;
}

static utt *wav_list(const options *o, int *n)
{
    utt *u = secap_xcalloc((size_t)o->nwav, sizeof *u, "utterances");
    for (int i = 0; i < o->nwav; i++) {
        secap_audio_info info;
        char err[1024];
        if (secap_audio_probe(o->wavs[i], &info, err, sizeof err))
            secap_fatal("%s", err);
        u[i].path = secap_xstrdup(o->wavs[i], "path");
        u[i].id = basename_id(o->wavs[i]);
        u[i].n = info.frames * SECAP_SAMPLE_RATE / info.rate;
        for (int j = 0; j < i; j++)
            if (!strcmp(u[j].id, u[i].id))
                secap_fatal("--wav: %s and %s both have the id \"%s\" (hint: ids are basenames without "
                            "extension; rename one, or use a dataset with explicit ids)",
                            u[j].path, u[i].path, u[i].id);
    }
    *n = o->nwav;
    return u;
}

static utt *data_list(const options *o, int *n)
{
    secap_data_config dc;
    secap_data_config_default(&dc);
    secap_problems probs = {0};
    secap_dataset *d = secap_dataset_read(o->data, &dc, &probs);
    if (d) secap_dataset_validate(d, &probs);
    if (!d) {
        secap_problems_print(&probs, stderr);
        secap_fatal("--data %s: cannot read the dataset (hint: a directory with wav.scp, or a .jsonl manifest)",
                    o->data);
    }
    secap_dataset_apply_policy(d, &probs, o->on_error);
    secap_problems_free(&probs);
    utt *u = secap_xcalloc((size_t)(d->n ? d->n : 1), sizeof *u, "utterances");
    for (int i = 0; i < d->n; i++) {
        u[i].id = secap_xstrdup(d->items[i].id, "id");
        u[i].path = secap_xstrdup(d->items[i].audio, "path");
        u[i].n = d->items[i].n_samples;
    }
    *n = d->n;
    secap_dataset_free(d);
    return u;
}

static int by_length_desc(const void *a, const void *b)
{
    const utt *x = a, *y = b;
    return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->id, y->id);
}

/* ---------------------------------------------------------------- progress */

typedef struct {
    int total, done, tty;
    double audio_total, audio_done, t0, last;
} progress;

static void progress_show(progress *p, int final)
{
    double now = secap_now(), el = now - p->t0;
    if (!final && !p->tty && now - p->last < 10) return;   /* logs: a line every 10 s */
    if (!final && p->tty && now - p->last < 0.2) return;
    p->last = now;
    double ups = el > 0 ? p->done / el : 0, aps = el > 0 ? p->audio_done / el : 0;
    double eta = aps > 0 ? (p->audio_total - p->audio_done) / aps : 0;
    int w = 30, fill = p->total ? (int)((double)w * p->done / p->total) : w;
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "%s[%s] %d/%d utt  %.1f utt/s  %.1f audio-s/s  %s %d:%02d%s", p->tty ? "\r" : "", bar, p->done,
            p->total, ups, aps, final ? "elapsed" : "ETA", (int)(final ? el : eta) / 60, (int)(final ? el : eta) % 60,
            p->tty && !final ? "" : "\n");
    fflush(stderr);
}

/* ------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    options o = parse_args(argc, argv);
    secap_threads_init(o.threads);
    int n = 0;
    utt *u = o.data ? data_list(&o, &n) : wav_list(&o, &n);
    if (n == 0) secap_fatal("secap-extract: no utterances to process");

    secap_ctx *c = secap_ctx_new(0, 0, 1);
    c->training = 0;
    secap_hubert *m = secap_hubert_load(c, o.hubert, 0);
    const secap_hubert_config *cf = secap_hubert_cfg(m);
    if (o.layer > cf->num_hidden_layers)
        secap_fatal("--layer %d: %s has %d layers (hint: -1 for the last hidden state, or 0..%d)", o.layer,
                    o.hubert, cf->num_hidden_layers, cf->num_hidden_layers);
    char enc[1024], set[256];
    secap_hubert_cache_key(m, o.hubert, o.layer, enc, sizeof enc, set, sizeof set);
    secap_featcache_key key = { enc, set };
    int rebuilt = 0;
    secap_featcache *fc = secap_featcache_open(o.out, &key, &rebuilt);

    /* the work: utterances not cached yet, longest first */
    int todo = 0, cached = 0;
    for (int i = 0; i < n; i++) {
        if (!o.recompute && !rebuilt && secap_featcache_has(fc, u[i].id)) {
            cached++;
            free(u[i].id);
            free(u[i].path);
            continue;
        }
        u[todo++] = u[i];
    }
    qsort(u, (size_t)todo, sizeof *u, by_length_desc);
    progress p = { .total = todo, .tty = isatty(2), .t0 = secap_now() };
    for (int i = 0; i < todo; i++) p.audio_total += u[i].n / (double)SECAP_SAMPLE_RATE;
    fprintf(stderr, "secap-extract: %d utterances (%.2f h) with %s (L=%d, H=%d, layer %d, %d threads) -> %s%s\n",
            todo, p.audio_total / 3600, o.hubert, cf->num_hidden_layers, cf->hidden_size, o.layer, secap_threads(),
            o.out, cached ? "" : rebuilt ? " (new)" : "");
    if (cached) fprintf(stderr, "secap-extract: %d utterances already in %s, skipped\n", cached, o.out);

    int64_t cap = (int64_t)(o.batch_seconds * SECAP_SAMPLE_RATE);
    int64_t maxH = cf->hidden_size;
    int b0 = 0;
    while (b0 < todo) {
        /* longest first: the batch's padded length is its first item's */
        int B = 1;
        while (b0 + B < todo && (int64_t)(B + 1) * u[b0].n <= cap) B++;
        secap_audio *a = secap_xcalloc((size_t)B, sizeof *a, "batch audio");
        int64_t Nmax = 0;
        for (int b = 0; b < B; b++) {
            char err[1024];
            const utt *it = &u[b0 + b];
            if (secap_audio_load(it->path, SECAP_SAMPLE_RATE, &a[b], err, sizeof err))
                secap_fatal("%s: utterance %s: %s", it->path, it->id, err);
            if (a[b].n < SECAP_MIN_SAMPLES)
                secap_fatal("%s: utterance %s has %lld samples at 16 kHz, fewer than the %d one HuBERT frame needs "
                            "(hint: remove it, or use --data with --on-error skip)", it->path, it->id,
                            (long long)a[b].n, SECAP_MIN_SAMPLES);
            if (a[b].n > Nmax) Nmax = a[b].n;
        }
        float *wave = secap_xcalloc((size_t)(B * Nmax), sizeof(float), "batch waveform");
        int64_t *ns = secap_xmalloc((size_t)B * sizeof *ns, "batch lengths");
        int32_t *frames = secap_xmalloc((size_t)B * sizeof *frames, "batch frames");
        for (int b = 0; b < B; b++) {
            memcpy(wave + (size_t)b * (size_t)Nmax, a[b].x, (size_t)a[b].n * sizeof(float));
            ns[b] = a[b].n;
        }
        int prev = secap_no_grad_begin(c);
        secap_tensor *y = secap_hubert_forward(c, m, wave, ns, B, Nmax, o.layer, frames);
        secap_no_grad_end(c, prev);
        int64_t Fmax = y->shape[1];
        for (int b = 0; b < B; b++) {
            secap_featcache_put(fc, u[b0 + b].id, secap_f32(y) + (size_t)b * (size_t)(Fmax * maxH), frames[b], maxH);
            p.done++;
            p.audio_done += ns[b] / (double)SECAP_SAMPLE_RATE;
        }
        secap_ctx_reset(c);
        for (int b = 0; b < B; b++) secap_audio_free(&a[b]);
        free(a); free(wave); free(ns); free(frames);
        b0 += B;
        progress_show(&p, 0);
    }
    if (todo) progress_show(&p, 1);
    secap_featcache_close(fc);
    fprintf(stderr, "secap-extract: wrote %d utterances ([frames x %lld] float32, layer %d) to %s\n", todo,
            (long long)maxH, o.layer, o.out);
    secap_hubert_free(m);
    secap_ctx_free(c);
    for (int i = 0; i < todo; i++) { free(u[i].id); free(u[i].path); }
    free(u);
    free(o.wavs);
    return 0;
}
