/* Error handling, allocation and the random number generator. */
#include "testutil.h"
#include "secap/rng.h"

static void test_fatal_message(void **st)
{
    (void)st;
    EXPECT_FATAL(secap_fatal("op %s: shapes [%d] vs [%d]", "add", 3, 4), "shapes [3] vs [4]");
}

/* Cleanups record their order into a string. */
static char order[16];
static void note(void *arg)
{
    size_t n = strlen(order);
    order[n] = *(const char *)arg;
    order[n + 1] = 0;
}

static void test_cleanups(void **st)
{
    (void)st;
    secap_cleanup a, b, c;
    /* run newest first by a caught fatal error, then forgotten */
    order[0] = 0;
    secap_cleanup_push(&a, note, "a");
    secap_cleanup_push(&b, note, "b");
    EXPECT_FATAL(secap_fatal("reader: bad input"), "reader: bad input");
    assert_string_equal(order, "ba");
    EXPECT_FATAL(secap_fatal("again"), "again");
    assert_string_equal(order, "ba");
    /* a popped cleanup does not run; the ones below it still do */
    order[0] = 0;
    secap_cleanup_push(&a, note, "a");
    secap_cleanup_push(&b, note, "b");
    secap_cleanup_pop(&b);
    EXPECT_FATAL(secap_fatal("late"), "late");
    assert_string_equal(order, "a");
    /* balanced pushes and pops leave nothing behind */
    order[0] = 0;
    secap_cleanup_push(&a, note, "a");
    secap_cleanup_push(&b, note, "b");
    secap_cleanup_pop(&b);
    secap_cleanup_pop(&a);
    EXPECT_FATAL(secap_fatal("none"), "none");
    assert_string_equal(order, "");
    /* popping out of order is refused (and runs what was registered) */
    secap_cleanup_push(&a, note, "a");
    secap_cleanup_push(&c, note, "c");
    EXPECT_FATAL(secap_cleanup_pop(&a), "not the innermost");
    assert_string_equal(order, "ca");
}

static void test_rng_deterministic(void **st)
{
    (void)st;
    secap_rng a, b, c;
    secap_rng_seed(&a, 42); secap_rng_seed(&b, 42); secap_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = secap_rng_u64(&a), y = secap_rng_u64(&b), z = secap_rng_u64(&c);
        assert_true(x == y);
        differ += x != z;
    }
    assert_true(differ > 990);
}

static void test_rng_distributions(void **st)
{
    (void)st;
    secap_rng r;
    secap_rng_seed(&r, 7);
    double s = 0, s2 = 0, u = 0;
    int n = 200000, counts[10] = {0};
    for (int i = 0; i < n; i++) {
        double x = secap_rng_normal(&r);
        s += x; s2 += x * x;
        float v = secap_rng_uniform(&r);
        assert_true(v >= 0.0f && v < 1.0f);
        u += v;
        counts[secap_rng_below(&r, 10)]++;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
    assert_true(fabs(u / n - 0.5) < 0.005);
    for (int k = 0; k < 10; k++) assert_true(abs(counts[k] - n / 10) < n / 100);
}

static void test_shuffle_is_permutation(void **st)
{
    (void)st;
    secap_rng r;
    secap_rng_seed(&r, 1);
    int a[100], seen[100] = {0};
    for (int i = 0; i < 100; i++) a[i] = i;
    secap_rng_shuffle(&r, a, 100);
    int moved = 0;
    for (int i = 0; i < 100; i++) { seen[a[i]]++; moved += a[i] != i; }
    for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > 80);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fatal_message),
        cmocka_unit_test(test_cleanups),
        cmocka_unit_test(test_rng_deterministic),
        cmocka_unit_test(test_rng_distributions),
        cmocka_unit_test(test_shuffle_is_permutation),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
