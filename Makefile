# The two commands of the README, and the named long runs.
#   make run   build and start the service on the embedded store, with demo data
#   make test  build (ASan + UBSan) and run the whole suite through ctest
#   make check-builds  every build type with gcc and clang compiles clean (CI)
# Each target installs the Debian packages it needs first (scripts/deps.sh) and
# configures only what it builds: every configure below passes SIGHTLINE_TESTS
# and SIGHTLINE_BENCH explicitly, so a build directory's cache (say one a
# developer configured by hand) never decides it.  `make build` / `make run`
# need only scripts/packages/build.txt; the tests and benchmarks add libcurl.
BUILD      ?= build
TEST_BUILD ?= build-test
FUZZ_BUILD ?= build-fuzz
STORE      ?= sqlite:data/sightline.db
LISTEN     ?= 127.0.0.1:8080
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# Quiet nested makes (cmake --build) about entering directories.
export MAKEFLAGS += --no-print-directory

.PHONY: all build configure run test check-builds deps bench fuzz format clean

all: build

deps:
	@scripts/deps.sh build

build: configure
	@cmake --build $(BUILD) -j $(JOBS) --target sightline

# The release build folder for the binary alone (what `make build` does first;
# the test make_configure_test runs it without libcurl).
configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DSIGHTLINE_TESTS=OFF -DSIGHTLINE_BENCH=OFF >/dev/null

run: build
	@mkdir -p data
	@scripts/run.sh $(BUILD)/sightline "$(STORE)" "$(LISTEN)"

# The suite: every test under ASan + UBSan (gcc), then every fuzz target for
# FUZZ_SECONDS each (clang + libFuzzer).  The benchmarks are built too (never
# run), so they keep compiling.  A test that cannot run here (no
# ../shared/realdata, no SIGHTLINE_TEST_MONGO_URI, too few descriptors) is
# reported skipped by ctest, and listed again by name, with its reason, as
# the last lines (tests/skipped.sh).
test:
	@scripts/deps.sh build test
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSIGHTLINE_SANITIZE=ON \
	    -DSIGHTLINE_TESTS=ON -DSIGHTLINE_BENCH=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j $(JOBS)
	@rm -f $(TEST_BUILD)/ctest-junit.xml
	@cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900 \
	    --output-junit ctest-junit.xml
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)
	@tests/skipped.sh $(TEST_BUILD)/ctest-junit.xml

# The whole tree (binary, tests, benchmarks) with gcc and clang, in Release,
# RelWithDebInfo and Debug, each in build-check-<cc>-<type> with -Werror;
# reports which failed (scripts/check-builds.sh).  .ci/run calls it; `make
# test` does not (it builds the sanitizer build only).  CHECK_CCS and
# CHECK_TYPES narrow it: make check-builds CHECK_CCS=clang CHECK_TYPES=Debug
CHECK_CCS   ?= gcc clang
CHECK_TYPES ?= Release RelWithDebInfo Debug
check-builds:
	@scripts/deps.sh build test
	@scripts/check-builds.sh -j $(JOBS) $(CHECK_CCS) -- $(CHECK_TYPES)

FUZZ_SECONDS ?= 60
# Fuzzing for longer: make fuzz FUZZ_SECONDS=3600.  Each target grows its own
# corpus in ~/.cache/sightline-fuzz/<target> and keeps what it finds in
# ~/.cache/sightline-fuzz/artifacts/<target> (SIGHTLINE_FUZZ_CORPUS= and
# SIGHTLINE_FUZZ_ARTIFACTS= move them; README.md "Fuzzing").
fuzz:
	@scripts/deps.sh build test
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSIGHTLINE_FUZZ=ON \
	    -DSIGHTLINE_SANITIZE=ON -DSL_FUZZ_SECONDS=$(FUZZ_SECONDS) \
	    -DSIGHTLINE_TESTS=ON -DSIGHTLINE_BENCH=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@cd $(FUZZ_BUILD) && ctest --output-on-failure -j $(JOBS) -L fuzz --timeout $$(( $(FUZZ_SECONDS) * 3 + 120 ))

# The benchmarks share the release build directory with `make build` (figures
# from an optimised binary); each of the two targets configures it its way.
bench:
	@scripts/deps.sh build bench
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DSIGHTLINE_TESTS=OFF -DSIGHTLINE_BENCH=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target benchmarks
	@bench/run_all.sh $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD) build-fuzz build-check-*
