# luacrawl: a thin wrapper over CMake, so a fresh Debian machine needs two commands:
#   make run    install what is missing, build, crawl the bundled site
#   make test   install what is missing, build with ASan+UBSan, run every test
#               (a failing test is run once more and both runs are shown: the browser specs
#               measure real time on a shared machine; a real defect fails twice)
#   make fuzz   build the libFuzzer targets of spec/fuzz with clang and run each for
#               FUZZ_SECONDS (60); `make test` replays their corpora (with gcc too)
# Plain `make` builds build/luacrawl.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all deps build run test test-unit fuzz valgrind bench clean format

all: build

deps:
	@bash tools/deps.sh

# Build output goes to stderr, so `make run | jq` sees only records.
build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory 1>&2

# The main job on the bundled default: the example site served on 127.0.0.1 for the run.
run: build
	@bash tools/run-default.sh $(ARGS)

test: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DLC_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD_ASAN) --output-on-failure -j 2 --repeat until-pass:2 $(CTEST_ARGS)

test-unit: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DLC_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@ctest --test-dir $(BUILD_ASAN) --output-on-failure -L unit

# Each fuzz target for FUZZ_SECONDS, one at a time (FUZZ_TARGETS="url robots" for some only).
fuzz:
	@bash tools/deps.sh fuzz
	@BUILD_FUZZ=$(BUILD_FUZZ) FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) bash tools/fuzz.sh $(FUZZ_TARGETS)

# The unit tests and one real crawl under valgrind (a plain build: valgrind and ASan do not mix).
valgrind: build
	@bash tools/valgrind.sh $(BUILD)

bench: build
	@bash bench/run.sh

format:
	@clang-format -i engine/*.[ch] engine/*/*.[ch] spec/c/*.[ch]

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
