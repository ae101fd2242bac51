# kjump: `make demo` runs the round trip in a QEMU VM, `make test` runs the
# tests. Each installs and builds what it needs first.

TARGET  := x86_64-unknown-linux-musl
RELEASE := target/$(TARGET)/release
# Where the test kernel is cached (outside the checkout), keyed by its config.
export KJUMP_CACHE ?= $(HOME)/.cache/kjump

# Seconds each fuzz target runs in `make fuzz` and in `make fuzz-ci`.
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 20

.PHONY: all deps kernel build initramfs test unit demo fuzz fuzz-ci fuzz-seeds clean

all: build

deps:
	@scripts/deps.sh

kernel: deps
	@scripts/kernel.sh

build: deps
	cargo build --release

initramfs: build
	$(RELEASE)/kjump initramfs --output target/kjump-initramfs.img

# Unit tests, then the QEMU boot tests (at most two guests at once).
test: deps
	kernel=$$(scripts/kernel.sh) && KJUMP_KERNEL=$$kernel cargo test --release --no-fail-fast -- --test-threads=2

unit: deps
	cargo test --release --lib --bins

demo: deps
	cargo build --release
	kernel=$$(scripts/kernel.sh) && KJUMP_KERNEL=$$kernel KJUMP_BIN_DIR=$(RELEASE) cargo run --release --example demo

# Coverage-guided fuzzing of the parsers (cargo-fuzz, installed if missing):
# each target for FUZZ_SECONDS, from the seeds in fuzz/corpus/.
fuzz:
	@scripts/fuzz.sh run $(FUZZ_SECONDS)

# The same, briefly: what CI runs after the tests.
fuzz-ci:
	@scripts/fuzz.sh run $(FUZZ_CI_SECONDS)

# Rewrites the committed seed corpus from kjump's own encoders.
fuzz-seeds:
	@scripts/fuzz.sh seeds

clean:
	cargo clean
