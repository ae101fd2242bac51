# kjump: `make demo` runs the round trip in a QEMU VM, `make test` runs the
# tests. Each installs and builds what it needs first.

TARGET  := x86_64-unknown-linux-musl
RELEASE := target/$(TARGET)/release
# Where the test kernel is cached (outside the checkout), keyed by its config.
export KJUMP_CACHE ?= $(HOME)/.cache/kjump

.PHONY: all deps kernel build initramfs test unit demo bench bench-host clean

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

# kjump against swsusp in QEMU (about half an hour; BENCH_REPS, BENCH_SIZES,
# BENCH_SYSTEMS narrow it). Writes bench/results.json and bench/results.md.
bench: deps
	cargo build --release
	kernel=$$(scripts/kernel.sh) && KJUMP_KERNEL=$$kernel KJUMP_BIN_DIR=$(RELEASE) cargo run --release --example bench

# kjump's encoder and decoder on the host against the lz4 and gzip tools.
bench-host: deps
	cargo bench --bench pipeline

clean:
	cargo clean
