# Thin wrapper over CMake. The two commands a new user needs:
#   make run   — install missing packages, build (quietly), generate with the demo model or MODEL=...
#   make test  — install, build, run the whole suite, then list what was skipped and why
#
#   make run MODEL=m.gguf [PROMPT="..."] [N=64] [TOKENIZER=tokenizer.bin] [IDS=1,2,3] [ARGS="--temp 0"]
SHELL := /bin/bash
BUILD ?= build
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
MODEL ?=
TOKENIZER ?=
PROMPT ?= Once upon a time
IDS ?=
N ?= 64
ARGS ?=
FUZZ_SECONDS ?= 60
DEMO := $(BUILD)/demo-random-q8_0.gguf
VOCAB := ../shared/vocab/ggml-vocab-llama-spm.gguf

.PHONY: all setup build run test asan fuzz bench clean

all: build

setup:
	@./scripts/setup.sh

# Configure + build with the output in $(BUILD)/build.log, shown only when the build fails.
build: setup
	@mkdir -p $(BUILD)
	@if ! { cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release && cmake --build $(BUILD) -j$(JOBS); } \
	    >$(BUILD)/build.log 2>&1; then \
	  cat $(BUILD)/build.log; echo "make: the build failed (the output above is in $(BUILD)/build.log)" >&2; exit 1; \
	fi

# The command is shown as the shell runs it (set -x, PS4 "$ "), then its output.
# The prompt: IDS (token ids) if given, else PROMPT; TOKENIZER for models without one (llama2.c .bin).
RUN_INPUT = $(if $(IDS),--prompt-ids $(IDS),-p "$(PROMPT)")
RUN_TOK = $(if $(TOKENIZER),--tokenizer "$(TOKENIZER)")

run: build
ifeq ($(MODEL),)
	@if [ ! -f $(DEMO) ]; then \
	  echo "make run: no MODEL given; synthesizing the demo model (RANDOM weights$$([ -f $(VOCAB) ] && echo ', real Llama-2 vocab'))"; \
	  $(BUILD)/tinyvllm synth --preset demo --type Q8_0 $$([ -f $(VOCAB) ] && echo "--vocab $(VOCAB)") -o $(DEMO) >/dev/null || exit 1; \
	fi
	@echo "make run: the demo model's weights are random, so its text is gibberish; MODEL=path/to/model.gguf runs a real one"
	@PS4='$$ '; set -x; $(BUILD)/tinyvllm generate -m $(DEMO) $(RUN_INPUT) -n $(N) $(ARGS)
else
	@PS4='$$ '; (set -x; $(BUILD)/tinyvllm generate -m "$(MODEL)" $(RUN_TOK) $(RUN_INPUT) -n $(N) $(ARGS)) $(if \
	  $(filter %.bin,$(MODEL)),$(if $(TOKENIZER)$(IDS),,|| { echo "make run: a llama2.c checkpoint (.bin) keeps its \
	  tokenizer in a separate file: add TOKENIZER=path/to/tokenizer.bin, or give token ids with IDS=1,2,3" >&2; exit 1; }))
endif

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --output-junit Testing/ctest.xml; rc=$$?; \
	  python3 ../scripts/test_summary.py .; exit $$rc

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
