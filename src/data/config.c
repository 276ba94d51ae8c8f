/* The data.* config section: defaults, setting a key from text, printing. */
#include "secap/dataset.h"
#include "secap/audio.h"
#include "secap/base.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void secap_data_config_default(secap_data_config *c)
{
    memset(c, 0, sizeof *c);
    c->on_error = SECAP_ON_ERROR_FAIL;
    c->max_seconds = 0.0;
    c->normalize = 0;
    c->seed = 1;
    c->split_ratios[0] = 0.9;
    c->split_ratios[1] = 0.05;
    c->split_ratios[2] = 0.05;
    c->batch_size = 8;
    c->max_batch_seconds = 0.0;
    c->bucket_batches = 16;
    c->classes_per_batch = 0;
    c->per_class = 2;
    c->prefetch = 4;
    c->workers = 2;
    snprintf(c->label_file, sizeof c->label_file, "emotion.txt");
    c->min_sample_rate = SECAP_AUDIO_MIN_RATE;
    c->max_sample_rate = SECAP_AUDIO_MAX_RATE;
    c->max_audio_seconds = SECAP_AUDIO_MAX_SECONDS;
}

static double parse_double(const char *key, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))   /* NaN fails too */
        secap_fatal("config data.%s = '%s': not a number in [%g, %g] (hint: e.g. data.%s = %g)",
                    key, v, lo, hi, key, lo);
    return x;
}

static int parse_int(const char *key, const char *v, int lo, int hi)
{
    double x = parse_double(key, v, lo, hi);
    if (x != (double)(int)x)
        secap_fatal("config data.%s = '%s': not an integer (hint: e.g. data.%s = %d)", key, v, key, lo);
    return (int)x;
}

static int parse_bool(const char *key, const char *v)
{
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) return 1;
    if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) return 0;
    secap_fatal("config data.%s = '%s': not a boolean (hint: use true or false)", key, v);
}

static void parse_ratios(double r[3], const char *v)
{
    double x[3];
    char *end;
    const char *p = v;
    for (int i = 0; i < 3; i++) {
        x[i] = strtod(p, &end);
        if (end == p || !(x[i] >= 0)) goto bad;   /* NaN fails too */
        p = end;
        if (i < 2) { if (*p != ',') goto bad; p++; }
    }
    if (*p || !(x[0] + x[1] + x[2] >= 0.999999 && x[0] + x[1] + x[2] <= 1.000001)) goto bad;
    memcpy(r, x, sizeof x);
    return;
bad:
    secap_fatal("config data.split_ratios = '%s': need three non-negative ratios train,dev,test "
                "summing to 1 (hint: data.split_ratios = 0.9,0.05,0.05)", v);
}

int secap_data_config_set(secap_data_config *c, const char *key, const char *v)
{
    if (!strncmp(key, "data.", 5)) key += 5;
    if (!strcmp(key, "on_error")) {
        if (!strcmp(v, "fail")) c->on_error = SECAP_ON_ERROR_FAIL;
        else if (!strcmp(v, "skip")) c->on_error = SECAP_ON_ERROR_SKIP;
        else secap_fatal("config data.on_error = '%s': use fail or skip", v);
    } else if (!strcmp(key, "max_seconds")) c->max_seconds = parse_double(key, v, 0, 1e6);
    else if (!strcmp(key, "normalize")) c->normalize = parse_bool(key, v);
    else if (!strcmp(key, "seed")) c->seed = (uint64_t)parse_double(key, v, 0, 9007199254740992.0);
    else if (!strcmp(key, "split_ratios")) parse_ratios(c->split_ratios, v);
    else if (!strcmp(key, "batch_size")) c->batch_size = parse_int(key, v, 1, 1 << 20);
    else if (!strcmp(key, "max_batch_seconds")) c->max_batch_seconds = parse_double(key, v, 0, 1e9);
    else if (!strcmp(key, "bucket_batches")) c->bucket_batches = parse_int(key, v, 1, 1 << 20);
    else if (!strcmp(key, "classes_per_batch")) c->classes_per_batch = parse_int(key, v, 0, 1 << 20);
    else if (!strcmp(key, "per_class")) c->per_class = parse_int(key, v, 1, 1 << 20);
    else if (!strcmp(key, "prefetch")) c->prefetch = parse_int(key, v, 1, 1024);
    else if (!strcmp(key, "workers")) c->workers = parse_int(key, v, 1, 256);
    else if (!strcmp(key, "min_sample_rate")) c->min_sample_rate = parse_int(key, v, 1, 100000000);
    else if (!strcmp(key, "max_sample_rate")) c->max_sample_rate = parse_int(key, v, 1, 100000000);
    else if (!strcmp(key, "max_audio_seconds")) c->max_audio_seconds = parse_double(key, v, 0.001, 1e9);
    else if (!strcmp(key, "label_file")) {
        if (strlen(v) >= sizeof c->label_file)
            secap_fatal("config data.label_file: name longer than %zu bytes", sizeof c->label_file - 1);
        snprintf(c->label_file, sizeof c->label_file, "%s", v);
    } else return -1;
    return 0;
}

void secap_data_config_print(const secap_data_config *c, FILE *f)
{
    fprintf(f, "data.on_error = %s\n", c->on_error == SECAP_ON_ERROR_SKIP ? "skip" : "fail");
    fprintf(f, "data.max_seconds = %g\n", c->max_seconds);
    fprintf(f, "data.normalize = %s\n", c->normalize ? "true" : "false");
    fprintf(f, "data.seed = %llu\n", (unsigned long long)c->seed);
    fprintf(f, "data.split_ratios = %g,%g,%g\n", c->split_ratios[0], c->split_ratios[1], c->split_ratios[2]);
    fprintf(f, "data.batch_size = %d\n", c->batch_size);
    fprintf(f, "data.max_batch_seconds = %g\n", c->max_batch_seconds);
    fprintf(f, "data.bucket_batches = %d\n", c->bucket_batches);
    fprintf(f, "data.classes_per_batch = %d\n", c->classes_per_batch);
    fprintf(f, "data.per_class = %d\n", c->per_class);
    fprintf(f, "data.prefetch = %d\n", c->prefetch);
    fprintf(f, "data.workers = %d\n", c->workers);
    fprintf(f, "data.label_file = %s\n", c->label_file);
    fprintf(f, "data.min_sample_rate = %d\n", c->min_sample_rate);
    fprintf(f, "data.max_sample_rate = %d\n", c->max_sample_rate);
    fprintf(f, "data.max_audio_seconds = %g\n", c->max_audio_seconds);
}
