# secap-c build.  `make` builds bin/libsecap.a and every program; `make test`
# runs every test (plain and sanitizer builds); `make bench` the benchmarks;
# `make demo` the main job on the generated demo corpus.  Missing Debian
# packages are installed by tools/deps.sh (as root) before anything builds.

CC       ?= cc
BUILD    ?= build
BIN      ?= bin
OPT      ?= -O3 -march=native
SAN      ?=
MA       := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLASDIR  := /usr/lib/$(MA)/openblas-openmp

CPPFLAGS += -Iinclude -I/usr/include/$(MA)/openblas-openmp -I/usr/include/hdf5/serial \
            -I/usr/include/cjson -D_GNU_SOURCE -DH5_USE_110_API
CFLAGS   += -std=c11 -g $(OPT) $(SAN) -fopenmp -fno-fast-math -Wall -Wextra \
            -Wno-unused-parameter -MMD -MP
LIBPATHS := -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -L/usr/lib/$(MA)/hdf5/serial
LDFLAGS  += $(SAN) -fopenmp $(LIBPATHS)
LDLIBS   += -lopenblas -lhdf5 -lsndfile -lsoxr -lcjson -lutf8proc -lz -lm -lpthread

# MPI data parallelism (README.md, "Distributed training (MPI)"): with
# OpenMPI's mpicc on the PATH (or MPI=1) src/train/dist.c is compiled with
# -DSECAP_MPI and mpicc's include flags and every program links libmpi;
# MPI=0 (or no mpicc) builds the same sources as a single-process stub.
# tests/test_dist fails on a stub build unless MPI=0 was asked for
# (SECAP_MPI_OFF): make test installs OpenMPI, so a missing one is an error.
MPI_ASKED := $(if $(filter command line environment,$(origin MPI)),x,)
MPI      ?= $(if $(shell command -v mpicc 2>/dev/null),1,0)
ifeq ($(MPI),1)
MPI_CFLAGS := -DSECAP_MPI $(shell mpicc --showme:compile)
MPI_LIBS   := $(shell mpicc --showme:link)
ifeq ($(strip $(MPI_LIBS)),)
$(error MPI=1 but mpicc --showme:link printed nothing (hint: apt-get install libopenmpi-dev openmpi-bin, or MPI=0))
endif
endif
LDLIBS   += $(MPI_LIBS)

SRC      := $(shell find src -name '*.c' | sort)
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
LIB      := $(BIN)/libsecap.a
PROGSRC  := $(wildcard train/*.c eval/*.c tools/*.c)
PROGS    := $(addprefix $(BIN)/,$(notdir $(PROGSRC:.c=)))
TESTSRC  := $(wildcard tests/test_*.c)
TESTS    := $(TESTSRC:tests/%.c=$(BIN)/tests/%)
BENCHSRC := $(wildcard tools/bench/bench_*.c)
BENCHES  := $(BENCHSRC:tools/bench/%.c=$(BIN)/bench/%)

# Fuzzing (README.md, "Fuzzing"): every tests/fuzz/<name>.c is a libFuzzer
# target bin/fuzz/<name>, built with Debian's clang over the sources compiled
# with the same sanitizers into build/fuzz/.  OpenMP pragmas are off there
# (-fopenmp=libgomp: serial code, libgomp for omp_* calls, as OpenBLAS;
# variables read only by omp clauses are then unused, hence -Wno-unused-variable).
FUZZCC     ?= clang
FUZZSAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZCFLAGS := -std=c11 -g -O1 -fno-omit-frame-pointer -fopenmp=libgomp -fno-fast-math -Wall -Wextra \
              -Wno-unused-parameter -Wno-unused-variable -MMD -MP
FUZZSRC    := $(wildcard tests/fuzz/*.c)
FUZZERS    := $(FUZZSRC:tests/fuzz/%.c=bin/fuzz/%)
FUZZOBJ    := $(SRC:%.c=build/fuzz/%.o)
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?=

.PHONY: all deps fuzzdeps test asan fuzz fuzz-build fuzz-short bench bench-each demo clean test-browser
.SECONDARY:
all: $(LIB) $(PROGS) $(TESTS) $(BENCHES)

deps:
	@tools/deps.sh build

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# only the distributed layer sees mpi.h
$(BUILD)/src/train/dist.o: CPPFLAGS += $(MPI_CFLAGS)
$(BUILD)/tests/test_dist.o: CPPFLAGS += $(if $(MPI_ASKED),$(if $(filter 0,$(MPI)),-DSECAP_MPI_OFF,),)
# a build switched between MPI=0 and MPI=1 rebuilds dist.o and test_dist.o
$(BUILD)/src/train/dist.o $(BUILD)/tests/test_dist.o: $(BUILD)/.mpi-$(MPI)$(MPI_ASKED)
$(BUILD)/.mpi-$(MPI)$(MPI_ASKED):
	@mkdir -p $(dir $@)
	@rm -f $(BUILD)/.mpi-*
	@touch $@

$(LIB): $(OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

$(BIN)/%: $(BUILD)/train/%.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BIN)/%: $(BUILD)/eval/%.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BIN)/%: $(BUILD)/tools/%.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BIN)/tests/%: $(BUILD)/tests/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@
$(BIN)/bench/%: $(BUILD)/tools/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Every test: the optimised build, the same tests under ASan + UBSan, then
# 30 s of every fuzz target.  The test packages (OpenMPI among them) are
# installed before the build, which a sub-make then runs with mpicc found.
test:
	@tools/deps.sh build test
	$(MAKE) --no-print-directory all
	tests/run.sh $(BIN)
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory fuzz-short

# secap-report's page in headless Chromium (sorting, filtering, rendering);
# apart from make test because Debian's chromium is a large install.
test-browser: all
	@tools/deps.sh browser
	tests/browser/report.sh $(BIN)

# Sanitizer build in its own tree; runs the same test binaries with
# LeakSanitizer on (tests/lsan.supp).  Works on its own: tests/run.sh makes
# the reference fixtures (build/ref) when they are missing.
asan:
	@tools/deps.sh build test
	$(MAKE) --no-print-directory BUILD=build/asan BIN=bin/asan \
	    OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	tests/run.sh bin/asan

fuzzdeps:
	@tools/deps.sh build fuzz

build/fuzz/src/%.o: src/%.c | fuzzdeps
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CPPFLAGS) $(FUZZCFLAGS) $(FUZZSAN) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/tests/fuzz/%.o: tests/fuzz/%.c | fuzzdeps
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CPPFLAGS) $(FUZZCFLAGS) $(FUZZSAN) -fsanitize=fuzzer -c $< -o $@

bin/fuzz/libsecap.a: $(FUZZOBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^

bin/fuzz/%: build/fuzz/tests/fuzz/%.o bin/fuzz/libsecap.a
	$(FUZZCC) $(FUZZSAN) -fsanitize=fuzzer -fopenmp=libgomp $(LIBPATHS) $^ $(LDLIBS) -o $@

fuzz-build: $(FUZZERS)

# Every fuzz target for FUZZ_SECONDS (default 300) each, one after another;
# FUZZ_TARGETS="a b" picks some.  The corpus grows in build/fuzz/corpus/.
fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The short run of make test: at most 20000 inputs per target from a fixed
# libFuzzer seed (capped at 30 s), so a clean checkout explores the same
# inputs on every machine and CI does not turn red on a new random find.
FUZZ_SHORT_RUNS ?= 20000
fuzz-short: fuzz-build
	FUZZ_RUNS=$(FUZZ_SHORT_RUNS) tests/fuzz/run.sh 30 $(FUZZ_TARGETS)

# The benchmark suite (tools/bench/run.py, BENCHMARKS.md): every benchmark
# interleaved with its reference, one table in build/bench/table.md.
# BENCH_RUNS=N (default 3), BENCH_QUICK=1 (smoke), BENCH_ROWS=ops,hubert,...,
# LLAMA2C=/path/run, BENCH_7B=0, BENCH_DEMO=<checkout with make demo done>;
# BENCH_APPEND=BENCHMARKS.md also appends the table there as a dated section.
bench: all
	@tools/deps.sh test
	SECAP_THREADS=$${SECAP_THREADS:-2} OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} \
	    /usr/bin/python3 tools/bench/run.py --bin $(BIN) $(if $(BENCH_APPEND),--append $(BENCH_APPEND))

# Every C benchmark binary with its defaults, then every PyTorch script (the
# old `make bench`: also data loading, metrics, tokenizer, weight loading).
bench-each: all
	@tools/deps.sh test
	@for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done
	@for p in tools/bench/*.py; do [ -e "$$p" ] || continue; [ "$$p" = tools/bench/run.py ] && continue; \
	    echo "== $$p"; /usr/bin/python3 $$p || exit 1; done

demo: all
	@tools/deps.sh demo
	BIN=$(BIN) tools/demo.sh

clean:
	rm -rf build bin

-include $(OBJ:.o=.d) $(wildcard $(BUILD)/tests/*.d $(BUILD)/train/*.d $(BUILD)/eval/*.d $(BUILD)/tools/*.d $(BUILD)/tools/bench/*.d)
-include $(wildcard build/fuzz/src/*/*.d build/fuzz/tests/fuzz/*.d)
