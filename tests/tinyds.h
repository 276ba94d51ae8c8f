/* tests/tinyds.h - the tiny emotion dataset of the program tests
 * (test_train, test_dist, test_eval): n clips of 0.4-0.6 s of a gliding
 * sine in tu_dir/ds (SECap's layout: wav/, wav.scp, text.txt, emotion.txt,
 * fid2captions.json), emotion i % 4 out of TDS_EMO (secap/emotion.h's
 * class names, so emotion accuracy is scored), two captions per clip.
 * Include after testutil.h. */
#ifndef SECAP_TINYDS_H
#define SECAP_TINYDS_H

#include <libgen.h>
#include <sndfile.h>
#include <sys/stat.h>

static const char *const TDS_EMO[4] = { "开心", "悲伤", "生气", "平静" };

/* tu_dir/<name>: n samples at 16 kHz of 0.3 sin(f0 i (1 + 1e-4 i)). */
static void tds_write_wav(const char *name, int64_t n, double f0)
{
    SF_INFO si = { .samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16 };
    SNDFILE *sf = sf_open(tu_tmp("%s", name), SFM_WRITE, &si);
    assert_non_null(sf);
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = 0.3f * (float)sin(f0 * (double)i * (1.0 + 1e-4 * (double)i));
    sf_writef_float(sf, x, n);
    sf_close(sf);
    free(x);
}

/* Caption k (0 or 1) of clip i into buf. */
typedef void (*tds_caption_fn)(int i, int k, char *buf, size_t cap);

static void tds_default_caption(int i, int k, char *buf, size_t cap)
{
    if (k == 0) snprintf(buf, cap, "说话人语气%s，声音较高", TDS_EMO[i % 4]);
    else snprintf(buf, cap, "她听起来很%s", TDS_EMO[i % 4]);
}

/* Writes the dataset of n clips u00, u01, ... into tu_dir/ds; caption NULL:
 * tds_default_caption; train_below > 0: train.list holds the clips
 * i < train_below and test.list the rest (else no lists: hash splits). */
static void tds_write(int n, tds_caption_fn caption, int train_below)
{
    if (!caption) caption = tds_default_caption;
    mkdir(tu_tmp("ds"), 0777);
    mkdir(tu_tmp("ds/wav"), 0777);
    FILE *scp = fopen(tu_tmp("ds/wav.scp"), "w"), *txt = fopen(tu_tmp("ds/text.txt"), "w");
    FILE *emo = fopen(tu_tmp("ds/emotion.txt"), "w"), *cap = fopen(tu_tmp("ds/fid2captions.json"), "w");
    FILE *tl = train_below > 0 ? fopen(tu_tmp("ds/train.list"), "w") : NULL;
    FILE *te = train_below > 0 ? fopen(tu_tmp("ds/test.list"), "w") : NULL;
    assert_true(scp && txt && emo && cap && (train_below <= 0 || (tl && te)));
    fputs("{", cap);
    for (int i = 0; i < n; i++) {
        char w[64], c0[256], c1[256];
        snprintf(w, sizeof w, "ds/wav/u%02d.wav", i);
        tds_write_wav(w, 6400 + (i * 397) % 3200, 0.03 + 0.02 * (i % 4));
        fprintf(scp, "u%02d wav/u%02d.wav\n", i, i);
        fprintf(txt, "u%02d 今天天气很好%d\n", i, i);
        fprintf(emo, "u%02d %s\n", i, TDS_EMO[i % 4]);
        caption(i, 0, c0, sizeof c0);
        caption(i, 1, c1, sizeof c1);
        fprintf(cap, "%s\"u%02d\": [\"%s\", \"%s\"]", i ? ", " : "", i, c0, c1);
        if (tl) fprintf(i < train_below ? tl : te, "u%02d\n", i);
    }
    fputs("}\n", cap);
    fclose(scp); fclose(txt); fclose(emo); fclose(cap);
    if (tl) { fclose(tl); fclose(te); }
}

/* The directory of the programs: the parent of the test binary's (bin/ for
 * bin/tests/, bin/asan/ for bin/asan/tests/). */
static int tds_bin_dir(char *out, size_t cap)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    snprintf(out, cap, "%s/..", dirname(self));
    return 0;
}

#endif
