# The two commands a newcomer needs (README.md):
#   make demo   set up, build, and show easgate letting one phone through and
#               blocking another, then stop
#   make test   set up, build (plain and ASan/UBSan) and run every test
# Everything else here serves those two.

MAKEFLAGS += --no-print-directory
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
# Tests run twice as many at once as there are CPUs: most of an integration
# test's time is spent waiting (for a port, a TTL, a timeout it provokes),
# not computing, so JOBS at a time left the CPUs half idle.
TEST_JOBS ?= $(shell echo $$(( $(JOBS) * 2 )))
BUILD  ?= build
SAN    ?= build-asan

.PHONY: all bootstrap build build-asan demo test test-plain test-asan fuzz bench clean format

all: build

bootstrap:
	@bash scripts/bootstrap

build: bootstrap
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: bootstrap
	@cmake -S . -B $(SAN) -DCMAKE_BUILD_TYPE=Debug -DEASGATE_SANITIZE=ON >/dev/null
	@cmake --build $(SAN) -j $(JOBS)

demo: build
	@bash scripts/demo $(BUILD)

test-plain: build
	@cd $(BUILD) && ctest --output-on-failure -j $(TEST_JOBS)

test-asan: build-asan
	@cd $(SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(TEST_JOBS)

test: test-plain test-asan

fuzz: bootstrap
	@CC=clang cmake -S . -B build-fuzz -DEASGATE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

bench: build
	@bash bench/run.sh $(BUILD)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(SAN) build-fuzz
