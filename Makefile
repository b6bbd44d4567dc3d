# Thin wrapper over CMake. The two commands a new user needs:
#   make run   — install missing packages, build, generate with the demo model (or MODEL=path)
#   make test  — install, build, run the whole suite
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
MODEL ?=
PROMPT ?= Once upon a time
N ?= 64
FUZZ_SECONDS ?= 60
DEMO := $(BUILD)/demo-random-q8_0.gguf

.PHONY: all setup build run test asan fuzz bench clean demo

all: build

setup:
	@./scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

$(DEMO): build
	@echo "make run: no MODEL given; synthesizing the built-in demo model (RANDOM weights, real Llama-2 vocab if ../shared is present)"
	@if [ -f ../shared/vocab/ggml-vocab-llama-spm.gguf ]; then \
	  $(BUILD)/tinyvllm synth --preset demo --type Q8_0 --vocab ../shared/vocab/ggml-vocab-llama-spm.gguf -o $(DEMO); \
	else $(BUILD)/tinyvllm synth --preset demo --type Q8_0 -o $(DEMO); fi

run: build
ifeq ($(MODEL),)
	@$(MAKE) --no-print-directory $(DEMO)
	@echo "== demo model: its weights are random, so the text is gibberish; pass MODEL=path/to/model.gguf for a real one =="
	@$(BUILD)/tinyvllm generate -m $(DEMO) -p "$(PROMPT)" -n $(N)
else
	@$(BUILD)/tinyvllm generate -m "$(MODEL)" -p "$(PROMPT)" -n $(N)
endif

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

asan: setup
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DTV_SANITIZE=ON -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j$(JOBS)

fuzz: setup
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTV_FUZZ=ON -DCMAKE_C_COMPILER=clang >/dev/null
	@cmake --build build-fuzz -j$(JOBS)
	@for f in build-fuzz/fuzz_*; do \
	  name=$$(basename $$f); mkdir -p build-fuzz/corpus-$$name; \
	  seeds=fuzz/corpus/$${name#fuzz_}; [ -d $$seeds ] || seeds=; \
	  echo "== $$name for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/corpus-$$name $$seeds || exit 1; done

bench: build
	@$(BUILD)/tinyvllm bench $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
