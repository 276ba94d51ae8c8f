/* Bump arenas with a ring of tensor headers and a generation counter.
 *
 * Data: one reserved mapping, bump-allocated in 64-byte steps.  Headers: a
 * separate ring so a reset does not immediately recycle the header of a
 * tensor still held by the caller; the ring keeps going around across resets,
 * and a tensor whose header still carries an old generation is stale. */
#include "secap/tensor.h"
#include "secap/base.h"
#include "arena_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

secap_arena *secap_arena_new(const char *name, size_t bytes, int max_tensors)
{
    secap_arena *a = secap_xcalloc(1, sizeof *a, "arena");
    a->name = name;
    a->cap = (bytes + 4095) & ~(size_t)4095;
    a->base = mmap(NULL, a->cap, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (a->base == MAP_FAILED)
        secap_fatal("arena '%s': cannot reserve %zu MiB of address space (hint: lower SECAP_STEP_MB/SECAP_PARAM_MB)",
                    name, a->cap >> 20);
    /* Transparent huge pages where the kernel grants them only on request
     * ("madvise" mode, Debian's default): 2 MiB pages cut the TLB misses of
     * products over large activations (HuBERT-base forward about 5 % faster
     * in the median, and steadier; BENCHMARKS.md).  SECAP_HUGEPAGES=0 keeps 4 KiB pages. */
    const char *hp = getenv("SECAP_HUGEPAGES");
    if (!(hp && !strcmp(hp, "0"))) (void)madvise(a->base, a->cap, MADV_HUGEPAGE);
    a->max_headers = max_tensors > 0 ? max_tensors : 1 << 16;
    a->headers = secap_xcalloc((size_t)a->max_headers, sizeof(secap_tensor), "arena tensor headers");
    a->epoch = 1;
    return a;
}

void secap_arena_free(secap_arena *a)
{
    if (!a) return;
    munmap(a->base, a->cap);
    free(a->headers);
    free(a);
}

void secap_arena_reset(secap_arena *a)
{
    a->used = 0;
    a->headers_this_epoch = 0;
    a->epoch++;
}

void *secap_arena_alloc(secap_arena *a, size_t bytes, int zero, const char *what)
{
    size_t need = (bytes + 63) & ~(size_t)63;
    if (need > a->cap - a->used)
        secap_fatal("%s: arena '%s' out of memory: need %zu bytes, %zu of %zu used "
                    "(hint: raise SECAP_%s_MB or lower the batch size; secap_arena_peak() after a dry-run step gives the size)",
                    what, a->name, bytes, a->used, a->cap,
                    strcmp(a->name, "param") == 0 ? "PARAM" : "STEP");
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    if (zero) memset(p, 0, bytes);
    return p;
}

secap_tensor *secap_arena_header(secap_arena *a, const char *what)
{
    if (a->headers_this_epoch >= a->max_headers)
        secap_fatal("%s: arena '%s' has no free tensor header (%d tensors made since the last reset; "
                    "hint: raise max_tensors or call secap_ctx_reset() after each step)",
                    what, a->name, a->max_headers);
    secap_tensor *t = &a->headers[a->next_header];
    a->next_header = (a->next_header + 1) % a->max_headers;
    a->headers_this_epoch++;
    memset(t, 0, sizeof *t);
    t->magic = SECAP_TENSOR_MAGIC;
    t->epoch = a->epoch;
    t->arena = a;
    return t;
}

size_t secap_arena_used(const secap_arena *a) { return a->used; }
size_t secap_arena_peak(const secap_arena *a) { return a->peak; }
size_t secap_arena_mark(const secap_arena *a) { return a->used; }

void secap_arena_rewind(secap_arena *a, size_t mark)
{
    if (mark > a->used)
        secap_fatal("arena '%s': rewind to %zu past the %zu bytes in use (hint: a mark taken before a "
                    "reset or another rewind is stale)", a->name, mark, a->used);
    a->used = mark;
}

size_t secap_arena_capacity(const secap_arena *a) { return a->cap; }
uint64_t secap_arena_epoch(const secap_arena *a) { return a->epoch; }
