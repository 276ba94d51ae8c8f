/* tests/fixture.h - reading the HDF5 fixtures the PyTorch reference scripts
 * (tests/ref_*.py, run by tests/run.sh) write into build/ref.  Include after
 * testutil.h. */
#ifndef SECAP_TEST_FIXTURE_H
#define SECAP_TEST_FIXTURE_H

#include <hdf5.h>
#include <stdint.h>

/* One dataset: float32 values in x, or int32 in i (as_int). */
typedef struct {
    float *x;
    int32_t *i;
    int rank;
    int64_t dims[4];
    int64_t n;
} arr;

__attribute__((unused)) static hid_t h5open(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) fail_msg("cannot open %s (hint: tests/run.sh runs tests/ref_*.py, which write it)", path);
    return f;
}

/* Dataset `name` of f, rank at most 4. */
__attribute__((unused)) static arr h5get(hid_t f, const char *name, int as_int)
{
    arr a = {0};
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) {
        char file[1024] = "";
        H5Fget_name(f, file, sizeof file);
        fail_msg("%s lacks dataset %s (hint: re-run the tests/ref_*.py script that writes it)", file, name);
    }
    hid_t s = H5Dget_space(d);
    a.rank = H5Sget_simple_extent_ndims(s);
    assert_true(a.rank >= 0 && a.rank <= 4);
    hsize_t dims[4];
    H5Sget_simple_extent_dims(s, dims, NULL);
    a.n = 1;
    for (int i = 0; i < a.rank; i++) { a.dims[i] = (int64_t)dims[i]; a.n *= (int64_t)dims[i]; }
    if (as_int) {
        a.i = malloc((size_t)a.n * sizeof *a.i);
        assert_non_null(a.i);
        assert_true(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.i) >= 0);
    } else {
        a.x = malloc((size_t)a.n * sizeof *a.x);
        assert_non_null(a.x);
        assert_true(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.x) >= 0);
    }
    H5Sclose(s);
    H5Dclose(d);
    return a;
}

__attribute__((unused)) static void arr_free(arr *a) { free(a->x); free(a->i); }

#endif
