/* bench_load: loading a frozen bf16 weight file, mapped against read.
 *
 *   bin/bench/bench_load [--small] [--reps=N] [--cold] [--keep] [--anon]
 *
 * 1. Writes (once per run, or reused with --keep) a LLaMA-7B-shape bf16
 *    weight file into $SECAP_BENCH_DIR (default /tmp): vocab V = 32000,
 *    hidden H = 4096, 32 layers, intermediate I = 11008, HF names
 *    (model.embed_tokens, per layer q/k/v/o_proj [H, H], gate/up_proj [I, H],
 *    down_proj [H, I], input/post_attention_layernorm [H], model.norm,
 *    lm_head [V, H]): 6,738,415,616 parameters, 13.48 GB.  Free disk space
 *    is checked first; without room it says so and skips (exit 0).
 *    --small: the same layout with H = 1024, 4 layers, I = 2752 (0.23 GB).
 * 2. Measures each method in a fresh process (this program re-run with
 *    --child=METHOD), N = 3 interleaved rounds, medians reported:
 *      map:  open + secap_weights_mmap + secap_wmap_tensor for every tensor,
 *            then touch every 4 KiB page of every tensor once (one load per
 *            page, as a forward's first pass would fault them in);
 *      read: open + malloc (no zero-fill) + secap_weights_read_bf16 of every
 *            tensor into place;
 *      anon (with --anon): no file, malloc the same buffers and write one
 *            byte per page: what fresh private memory costs on this machine,
 *            the floor under any read into place.
 *    Each child reports its wall time and VmHWM (peak resident set, from
 *    /proc/self/status), and RssAnon / RssFile at its end: mapped pages are
 *    file pages shared with the page cache, read pages are private copies.
 *    After the load it times one more pass over every page (not part of the
 *    load): what the next forward pays to reach the weights.
 *    Warm: the parent reads the whole file through the page cache before
 *    each child.  --cold: instead, sync and `echo 3 > /proc/sys/vm/drop_caches`
 *    before each child (needs root; says so when it cannot).
 * 3. Deletes the file unless --keep (it is large; disks are shared). */
#include "secap/base.h"
#include "secap/rng.h"
#include "secap/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

typedef struct { int64_t vocab, hidden, layers, inter; } shape_cfg;

static const shape_cfg LLAMA7B = { 32000, 4096, 32, 11008 };
static const shape_cfg SMALL = { 32000, 1024, 4, 2752 };

#define MAX_TENSORS 512

typedef struct { char name[96]; int64_t shape[2]; int ndim; } tensor_spec;

/* Every tensor of the LLaMA layout; returns the count. */
static int layout(const shape_cfg *c, tensor_spec *t)
{
    int n = 0;
#define ADD(nd, d0, d1, ...)                                                  \
    do {                                                                      \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                   \
        t[n].ndim = nd; t[n].shape[0] = d0; t[n].shape[1] = d1; n++;          \
    } while (0)
    ADD(2, c->vocab, c->hidden, "model.embed_tokens.weight");
    static const char *const attn[4] = { "q_proj", "k_proj", "v_proj", "o_proj" };
    for (int l = 0; l < c->layers; l++) {
        for (int p = 0; p < 4; p++) ADD(2, c->hidden, c->hidden, "model.layers.%d.self_attn.%s.weight", l, attn[p]);
        ADD(2, c->inter, c->hidden, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(2, c->inter, c->hidden, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(2, c->hidden, c->inter, "model.layers.%d.mlp.down_proj.weight", l);
        ADD(1, c->hidden, 0, "model.layers.%d.input_layernorm.weight", l);
        ADD(1, c->hidden, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    }
    ADD(1, c->hidden, 0, "model.norm.weight");
    ADD(2, c->vocab, c->hidden, "lm_head.weight");
#undef ADD
    return n;
}

static int64_t count(const tensor_spec *t)
{
    return t->ndim == 1 ? t->shape[0] : t->shape[0] * t->shape[1];
}

static int64_t total_params(const tensor_spec *t, int n)
{
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += count(&t[i]);
    return s;
}

static const char *shape_tag(const shape_cfg *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "llama V=%lld H=%lld L=%lld I=%lld bf16", (long long)c->vocab, (long long)c->hidden,
             (long long)c->layers, (long long)c->inter);
    return buf;
}

/* 1 when `path` is a complete bench file of this shape (its tag attribute is
 * written last, just before the atomic rename). */
static int usable(const char *path, const char *tag)
{
    if (access(path, R_OK) != 0) return 0;
    secap_weights *w = secap_weights_open(path);
    int ok = secap_weights_has_attr(w, "bench_shape") && !strcmp(secap_weights_attr_string(w, "bench_shape"), tag);
    secap_weights_close(w);
    return ok;
}

/* Random bf16 weights of magnitude 2^-8 .. 2^-4, any sign. */
static void write_file(const char *path, const tensor_spec *t, int n, const char *tag)
{
    int64_t maxc = 0;
    for (int i = 0; i < n; i++) maxc = count(&t[i]) > maxc ? count(&t[i]) : maxc;
    uint16_t *buf = secap_xmalloc((size_t)maxc * sizeof *buf, "bench weights");
    secap_rng r;
    secap_rng_seed(&r, 1);
    secap_weights *w = secap_weights_create(path);
    double t0 = secap_now();
    for (int i = 0; i < n; i++) {
        int64_t c = count(&t[i]);
        for (int64_t j = 0; j < c; j += 4) {
            uint64_t x = secap_rng_u64(&r);
            for (int k = 0; k < 4 && j + k < c; k++, x >>= 16)
                buf[j + k] = (uint16_t)((x & 0x8000) | ((0x77 + ((x >> 7) & 3)) << 7) | (x & 0x7f));
        }
        secap_weights_write_bf16(w, t[i].name, t[i].ndim, t[i].shape, buf);
        if (i % 16 == 15) fprintf(stderr, "\rbench_load: writing %s: %d/%d tensors", path, i + 1, n);
    }
    secap_weights_set_string(w, "model_type", "llama");
    secap_weights_set_string(w, "bench_shape", tag);
    secap_weights_close(w);
    fprintf(stderr, "\rbench_load: wrote %s in %.1f s%30s\n", path, secap_now() - t0, "");
    free(buf);
}

/* kB value of a "Key:   123 kB" line of /proc/self/status, or -1. */
static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, k) && line[k] == ':') { v = atol(line + k + 1); break; }
    fclose(f);
    return v;
}

/* One load per 4 KiB page of every tensor; returns a sum so it is not
 * optimised away. */
static uint32_t touch_pages(const unsigned char *const *p, const tensor_spec *t, int n)
{
    uint32_t s = 0;
    for (int i = 0; i < n; i++)
        for (int64_t b = 0; b < count(&t[i]) * 2; b += 4096) s += p[i][b];
    return s;
}

/* One measurement in this (fresh) process; prints the RESULT line. */
static int child(const char *method, const char *path, const shape_cfg *c)
{
    static tensor_spec t[MAX_TENSORS];
    int n = layout(c, t);
    int anon = !strcmp(method, "anon");
    double t0 = secap_now();
    secap_weights *w = anon ? NULL : secap_weights_open(path);
    double t_open = secap_now() - t0, t_touch = 0;
    volatile uint32_t sink = 0;
    long fallback = 0;
    void **bufs = secap_xcalloc((size_t)n, sizeof *bufs, "buffers");
    secap_wmap *m = NULL;
    static const unsigned char *mapped[MAX_TENSORS];
    if (!strcmp(method, "map")) {
        m = secap_weights_mmap(w);
        const unsigned char **p = mapped;
        for (int i = 0; i < n; i++) {
            p[i] = secap_wmap_tensor(m, w, t[i].name, t[i].ndim, t[i].shape, SECAP_WDTYPE_BF16);
            if (!p[i]) {   /* not mappable: read into place (counted; none expected) */
                bufs[i] = secap_xmalloc((size_t)count(&t[i]) * 2, "tensor");
                secap_weights_read_bf16(w, t[i].name, t[i].ndim, t[i].shape, bufs[i]);
                p[i] = bufs[i];
                fallback++;
            }
        }
        double t1 = secap_now();
        sink = touch_pages(p, t, n);
        t_touch = secap_now() - t1;
    } else if (!strcmp(method, "read")) {
        for (int i = 0; i < n; i++) {
            bufs[i] = malloc((size_t)count(&t[i]) * 2);   /* no zero-fill: the read writes every byte */
            if (!bufs[i]) secap_fatal("bench_load: out of memory for %s", t[i].name);
            secap_weights_read_bf16(w, t[i].name, t[i].ndim, t[i].shape, bufs[i]);
        }
    } else if (anon) {
        /* the floor of any copy: fresh private memory, one write per page */
        for (int i = 0; i < n; i++) {
            unsigned char *b = malloc((size_t)count(&t[i]) * 2);
            if (!b) secap_fatal("bench_load: out of memory for %s", t[i].name);
            for (int64_t j = 0; j < count(&t[i]) * 2; j += 4096) b[j] = (unsigned char)j;
            bufs[i] = b;
        }
    } else {
        secap_fatal("bench_load: unknown method %s (map, read or anon)", method);
    }
    if (w) secap_weights_close_checked(w, NULL);
    double wall = secap_now() - t0;
    /* after the load: one more pass over every page, as the next forward */
    const unsigned char *q[MAX_TENSORS] = { 0 };
    for (int i = 0; i < n; i++) q[i] = bufs[i] ? bufs[i] : m ? mapped[i] : NULL;
    double t2 = secap_now();
    sink += touch_pages(q, t, n);
    double t_again = secap_now() - t2;
    printf("RESULT %s %.3f %.3f %.3f %.3f %ld %ld %ld %ld\n", method, wall, t_open, t_touch, t_again,
           status_kb("VmHWM"), status_kb("RssAnon"), status_kb("RssFile"), fallback);
    (void)sink;
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    secap_wmap_free(m);
    return 0;
}

typedef struct { double wall, open, touch, again; long hwm, anon, file, fallback; } result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* MemAvailable of /proc/meminfo in bytes, or -1. */
static double mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "MemAvailable:", 13)) { v = atof(line + 13) * 1024; break; }
    fclose(f);
    return v;
}

/* Reads the file through the page cache (warm runs). */
static void prime(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) secap_fatal("bench_load: %s: %s", path, strerror(errno));
    static char buf[1 << 20];
    while (read(fd, buf, sizeof buf) > 0) {}
    close(fd);
}

/* 0, or -1 with *why set when the page cache cannot be dropped here. */
static int drop_caches(const char **why)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0 || write(fd, "3\n", 2) != 2) {
        *why = strerror(errno);
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int run_child(const char *self, const char *method, const char *path, int small, result *r)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "'%s' --child=%s --file='%s'%s", self, method, path, small ? " --small" : "");
    FILE *p = popen(cmd, "r");
    if (!p) secap_fatal("bench_load: cannot run %s: %s", cmd, strerror(errno));
    char line[512], m[16];
    int ok = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "RESULT %15s %lf %lf %lf %lf %ld %ld %ld %ld", m, &r->wall, &r->open, &r->touch, &r->again,
                   &r->hwm, &r->anon, &r->file, &r->fallback) == 9)
            ok = 1;
    int st = pclose(p);
    if (!ok || st != 0) secap_fatal("bench_load: child '%s' failed (status %d)", cmd, st);
    return 0;
}

int main(int argc, char **argv)
{
    int small = 0, reps = 3, cold = 0, keep = 0, anon = 0;
    const char *child_method = NULL, *child_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--small")) small = 1;
        else if (!strncmp(argv[i], "--reps=", 7)) reps = atoi(argv[i] + 7);
        else if (!strcmp(argv[i], "--cold")) cold = 1;
        else if (!strcmp(argv[i], "--keep")) keep = 1;
        else if (!strcmp(argv[i], "--anon")) anon = 1;
        else if (!strncmp(argv[i], "--child=", 8)) child_method = argv[i] + 8;
        else if (!strncmp(argv[i], "--file=", 7)) child_file = argv[i] + 7;
        else {
            fprintf(stderr, "usage: bench_load [--small] [--reps=3] [--cold] [--keep] [--anon]   "
                            "(file in $SECAP_BENCH_DIR, default /tmp)\n");
            return 2;
        }
    }
    const shape_cfg *c = small ? &SMALL : &LLAMA7B;
    if (child_method) return child(child_method, child_file, c);
    if (reps < 1) reps = 1;

    static tensor_spec t[MAX_TENSORS];
    int n = layout(c, t);
    int64_t params = total_params(t, n), bytes = 2 * params;
    const char *dir = getenv("SECAP_BENCH_DIR");
    if (!dir || !*dir) dir = "/tmp";
    char path[4096], tag[128];
    snprintf(path, sizeof path, "%s/secap_bench_load_%s.h5", dir, small ? "small" : "llama7b");
    shape_tag(c, tag, sizeof tag);
    printf("bench_load: %s, %d tensors, %lld parameters, %.2f GB bf16, file %s\n", tag, n, (long long)params,
           bytes / 1e9, path);
    if (!usable(path, tag)) {
        struct statvfs vs;
        if (statvfs(dir, &vs) != 0)
            secap_fatal("bench_load: %s: %s (hint: set SECAP_BENCH_DIR to an existing directory)", dir,
                        strerror(errno));
        double avail = (double)vs.f_bavail * (double)vs.f_frsize, need = (double)bytes + (256 << 20);
        if (avail < need) {
            printf("bench_load: skipped: %s has %.1f GB free, the file needs %.1f GB (hint: set SECAP_BENCH_DIR "
                   "to a directory with room, or run with --small)\n", dir, avail / 1e9, need / 1e9);
            return 0;
        }
        write_file(path, t, n, tag);
    }
    double memav = mem_available();
    if (memav > 0 && memav < 1.05 * (double)bytes)
        printf("bench_load: note: %.1f GB of memory available, read needs %.1f GB of private memory: it will "
               "push the file out of the page cache (and may be killed)\n", memav / 1e9, bytes / 1e9);
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) secap_fatal("bench_load: cannot find its own executable (/proc/self/exe)");
    self[k] = 0;

    const char *why = NULL;
    if (cold && drop_caches(&why) != 0) {
        printf("bench_load: --cold: cannot drop the page cache here (/proc/sys/vm/drop_caches: %s); "
               "measuring warm only\n", why);
        cold = 0;
    }
    static const char *const methods[3] = { "map", "read", "anon" };
    int nm = anon ? 3 : 2;
    result *res = secap_xcalloc((size_t)(3 * reps), sizeof *res, "results");
    for (int r = 0; r < reps; r++)
        for (int mi = 0; mi < nm; mi++) {
            if (cold) drop_caches(&why);
            else prime(path);
            result *x = &res[mi * reps + r];
            run_child(self, methods[mi], path, small, x);
            printf("  round %d %-4s %s: %7.2f s, then %5.2f s  VmHWM %6.2f GB  (RssAnon %6.2f GB, RssFile %6.2f GB)%s\n",
                   r + 1, methods[mi], cold ? "cold" : "warm", x->wall, x->again, x->hwm * 1024e-9,
                   x->anon * 1024e-9, x->file * 1024e-9, x->fallback ? "  (some tensors read, not mapped)" : "");
            fflush(stdout);
        }
    printf("\n| method (%s, %s page cache, median of %d) | load: wall | of which open | of which first page "
           "touch | then one more pass over every page | VmHWM | RssAnon | RssFile |\n"
           "|---|---|---|---|---|---|---|---|\n", small ? "small shape" : "LLaMA-7B shape", cold ? "cold" : "warm",
           reps);
    for (int mi = 0; mi < nm; mi++) {
        double w[64], o[64], tt[64], ag[64], h[64], a[64], f[64];
        int nr = reps < 64 ? reps : 64;
        long fb = 0;
        for (int r = 0; r < nr; r++) {
            result *x = &res[mi * reps + r];
            w[r] = x->wall; o[r] = x->open; tt[r] = x->touch; ag[r] = x->again;
            h[r] = x->hwm * 1024e-9; a[r] = x->anon * 1024e-9; f[r] = x->file * 1024e-9;
            fb += x->fallback;
        }
        char touch[32] = "-";
        if (mi == 0) snprintf(touch, sizeof touch, "%.2f s", median(tt, nr));
        printf("| %s | %.2f s | %.3f s | %s | %.2f s | %.2f GB | %.2f GB | %.2f GB |%s\n", methods[mi],
               median(w, nr), median(o, nr), touch, median(ag, nr), median(h, nr), median(a, nr), median(f, nr),
               fb ? " some tensors were read, not mapped" : "");
    }
    printf("file: %.2f GB\n", bytes / 1e9);
    free(res);
    if (!keep) {
        if (unlink(path) != 0) fprintf(stderr, "bench_load: cannot remove %s: %s\n", path, strerror(errno));
        else printf("bench_load: removed %s (--keep keeps it for the next run)\n", path);
    }
    return 0;
}
