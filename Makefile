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
LDFLAGS  += $(SAN) -fopenmp -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -L/usr/lib/$(MA)/hdf5/serial
LDLIBS   += -lopenblas -lhdf5 -lsndfile -lsoxr -lcjson -lutf8proc -lz -lm -lpthread

SRC      := $(shell find src -name '*.c' | sort)
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
LIB      := $(BIN)/libsecap.a
PROGSRC  := $(wildcard train/*.c eval/*.c tools/*.c)
PROGS    := $(addprefix $(BIN)/,$(notdir $(PROGSRC:.c=)))
TESTSRC  := $(wildcard tests/test_*.c)
TESTS    := $(TESTSRC:tests/%.c=$(BIN)/tests/%)
BENCHSRC := $(wildcard tools/bench/bench_*.c)
BENCHES  := $(BENCHSRC:tools/bench/%.c=$(BIN)/bench/%)

.PHONY: all deps test asan bench demo clean
.SECONDARY:
all: $(LIB) $(PROGS) $(TESTS) $(BENCHES)

deps:
	@tools/deps.sh build

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

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

# Every test: the optimised build, then the same tests under ASan + UBSan.
test: all
	@tools/deps.sh test
	tests/run.sh $(BIN)
	$(MAKE) --no-print-directory asan

# Sanitizer build in its own tree; runs the same test binaries with
# LeakSanitizer on (tests/lsan.supp).  Works on its own: tests/run.sh makes
# the reference fixtures (build/ref) when they are missing.
asan:
	@tools/deps.sh build test
	$(MAKE) --no-print-directory BUILD=build/asan BIN=bin/asan \
	    OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all
	tests/run.sh bin/asan

# C benchmarks, then the PyTorch baselines they are compared with.
bench: all
	@tools/deps.sh test
	@for b in $(BENCHES); do echo "== $$b"; $$b || exit 1; done
	@for p in tools/bench/*.py; do [ -e "$$p" ] || continue; echo "== $$p"; /usr/bin/python3 $$p || exit 1; done

demo: all
	@tools/deps.sh demo
	BIN=$(BIN) tools/demo.sh

clean:
	rm -rf build bin

-include $(OBJ:.o=.d) $(wildcard $(BUILD)/tests/*.d $(BUILD)/train/*.d $(BUILD)/eval/*.d $(BUILD)/tools/*.d $(BUILD)/tools/bench/*.d)
