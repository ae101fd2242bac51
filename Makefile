# kjump: `make demo` runs the round trip in a QEMU VM, `make test` runs the
# tests. Each installs and builds what it needs first. `make deb` builds a
# Debian package of kjump; `make stage` then `sudo make install` put kjump
# on this machine without one (see README).

TARGET  := x86_64-unknown-linux-musl
# Cargo's output; scripts/deb.sh builds in a target directory of its own.
RELEASE := $(or $(CARGO_TARGET_DIR),target)/$(TARGET)/release
# Where the test kernel is cached (outside the checkout), keyed by its config.
export KJUMP_CACHE ?= $(HOME)/.cache/kjump

# The test kernels (scripts/kernel.sh builds each from Debian's source
# package with kernel/kjump.config): `make test` runs the QEMU tests on every
# one of KERNELS; KERNEL=6.12 or KERNEL=7.3 picks one. demo, bench,
# test-distro and stage use KERNEL too, 6.12 unless told.
KERNELS := 6.12 7.3
KERNEL  ?=
ONE_KERNEL := $(or $(KERNEL),6.12)
# The integration tests (QEMU, and the host's own `kjump check`), run once
# per kernel; tests/distro.rs is `make test-distro`'s.
QEMU_TESTS := $(patsubst tests/%.rs,--test %,$(filter-out tests/distro.rs,$(wildcard tests/*.rs)))

# Seconds each fuzz target runs in `make fuzz` and in `make fuzz-ci`.
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 20


# Installation. PREFIX holds kjump, its hibernation files, man pages and
# systemd unit; DESTDIR stages the whole tree elsewhere (no root needed).
# The settings file is /etc/kjump.conf whatever PREFIX is (kjump reads it there).
PREFIX    ?= /usr/local
SBINDIR   = $(PREFIX)/sbin
LIBDIR    = $(PREFIX)/lib/kjump
# Nothing is installed here any more; uninstall still removes it if empty.
DATADIR   = $(PREFIX)/share/kjump
MANDIR    = $(PREFIX)/share/man
UNITDIR   = $(PREFIX)/lib/systemd/system
GENERATORDIR = $(PREFIX)/lib/systemd/system-generators
# Boot integration goes where initramfs-tools and dracut look, whatever PREFIX is.
INITRAMFS_TOOLS_DIR = /usr/share/initramfs-tools
DRACUT_MODULES_DIR  = /usr/lib/dracut/modules.d
# mkinitcpio's (Arch) install and runtime hooks, where its package keeps its own.
MKINITCPIO_DIR      = /usr/lib/initcpio
# Shell completions, where bash-completion, zsh and fish look under
# PREFIX: zsh's fpath has vendor-completions for packages in /usr, and
# site-functions elsewhere (/usr/local).
BASH_COMPLETION_DIR = $(PREFIX)/share/bash-completion/completions
ZSH_COMPLETION_DIR  = $(PREFIX)/share/zsh/$(if $(filter /usr,$(PREFIX)),vendor-completions,site-functions)
FISH_COMPLETION_DIR = $(PREFIX)/share/fish/vendor_completions.d
# The hibernation kernel to install: kjump's own small build by default
# (scripts/kernel.sh, kernel/kjump.config), or BZIMAGE=/path/to/bzImage.
BZIMAGE   ?=
STAGE     := target/stage

# kjump looks for its hibernation files in LIBDIR by default, baked in at
# build time; /usr/local/lib/kjump needs nothing (a plain cargo build agrees).
ifneq ($(LIBDIR),/usr/local/lib/kjump)
export KJUMP_LIBDIR := $(LIBDIR)
else
unexport KJUMP_LIBDIR
endif

# Fills in the installed paths in contrib/ files.
SUBST = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g'

.PHONY: all deps kernel build initramfs test lint test-distro unit demo bench bench-host fuzz fuzz-ci fuzz-seeds clean stage install uninstall deb

all: build

deps:
	@scripts/deps.sh

kernel: deps
	@for k in $(or $(KERNEL),$(KERNELS)); do scripts/kernel.sh $$k || exit 1; done

build: deps
	cargo build --release

initramfs: build
	$(RELEASE)/kjump initramfs --output target/kjump-initramfs.img

# Unit tests once, then the QEMU boot tests (at most two guests at once)
# on each test kernel in turn (every kernel is tested even when one fails;
# the make fails if any did).
test: deps lint
	cargo test --release --no-fail-fast --lib --bins --example bench
	@failed=""; for k in $(or $(KERNEL),$(KERNELS)); do \
	  echo "test: the QEMU tests on Linux $$k"; \
	  kernel=$$(scripts/kernel.sh $$k) && \
	  KJUMP_KERNEL=$$kernel cargo test --release --no-fail-fast $(QEMU_TESTS) -- --test-threads=2 || failed="$$failed $$k"; \
	done; \
	if [ -n "$$failed" ]; then echo "test: the QEMU tests failed on Linux$$failed" >&2; exit 1; fi

# The code's format (rustfmt.toml) and clippy's lints, as errors; the
# shell scripts kjump installs, parsed and shellcheck'd.
lint: deps
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings
	scripts/lint-shell.sh

# A Debian 12 system (debootstrap, cached in $(KJUMP_CACHE)) with kjump
# installed from `make deb`'s package: systemctl hibernate and
# suspend-then-hibernate, resume through Debian's initramfs-tools; and,
# alongside (two guests at once), the same system with Debian's dracut:
# systemctl hibernate, resume through kjump's dracut module. Needs root.
test-distro: deps
	kernel=$$(scripts/kernel.sh $(ONE_KERNEL) distro) && rootfs=$$(scripts/debian-rootfs.sh) && \
	  dracut_rootfs=$$(scripts/debian-rootfs.sh dracut) && \
	  KJUMP_KERNEL=$$kernel KJUMP_DEBIAN_ROOTFS=$$rootfs KJUMP_DEBIAN_DRACUT_ROOTFS=$$dracut_rootfs \
	  cargo test --release --test distro -- --nocapture

unit: deps
	cargo test --release --lib --bins --example bench

demo: deps
	cargo build --release
	kernel=$$(scripts/kernel.sh $(ONE_KERNEL)) && KJUMP_KERNEL=$$kernel KJUMP_BIN_DIR=$(RELEASE) cargo run --release --example demo

# kjump against swsusp in QEMU (over an hour; BENCH_REPS, BENCH_SIZES,
# BENCH_WARM, BENCH_SYSTEMS narrow it). Writes bench/results.json and
# bench/results.md, and copies the latter into README.md between its
# "bench results" markers (unless BENCH_OUT sends the results elsewhere).
# BENCH_SHAPE=large runs it on a 4 GiB, 4-CPU machine with 1-3 GiB
# workloads (hours) into bench/results-4g.{json,md} and the "bench results
# 4g" markers.
bench: deps
	cargo build --release
	kernel=$$(scripts/kernel.sh $(ONE_KERNEL)) && KJUMP_KERNEL=$$kernel KJUMP_BIN_DIR=$(RELEASE) cargo run --release --example bench

# kjump's encoder and decoder on the host against the lz4 and gzip tools.
bench-host: deps
	cargo bench --bench pipeline

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

# Everything `make install` copies, built as yourself into $(STAGE): the
# binaries, the hibernation kernel (the first time, scripts/kernel.sh builds
# it from linux-source-6.12, or KERNEL=7.3's: a few minutes on 2 cores) and
# its initramfs.
# Needs the musl target and the kernel build tools (`make deps` installs
# them, and QEMU for the tests).
stage:
	cargo build --release
	@mkdir -p $(STAGE)
	@if [ -n "$(BZIMAGE)" ]; then \
	  echo "stage: hibernation kernel: $(BZIMAGE)"; cp "$(BZIMAGE)" $(STAGE)/vmlinuz; \
	  rm -f $(STAGE)/vmlinuz.config; if [ -f "$(BZIMAGE).config" ]; then cp "$(BZIMAGE).config" $(STAGE)/vmlinuz.config; fi; \
	else \
	  echo "stage: hibernation kernel: kjump's own build (scripts/kernel.sh; if it is not cached in $(KJUMP_CACHE) yet, building it takes a few minutes)"; \
	  kernel=$$(scripts/kernel.sh $(ONE_KERNEL)) && echo "stage: using $$kernel" && cp "$$kernel" $(STAGE)/vmlinuz && \
	  cp "$$(dirname "$$kernel")/.config" $(STAGE)/vmlinuz.config; \
	fi
	cp $(RELEASE)/kjump $(RELEASE)/kjump-init $(STAGE)/
	$(STAGE)/kjump initramfs --init $(STAGE)/kjump-init --output $(STAGE)/initramfs.img
	@touch $(STAGE)/complete
	@echo "stage: ready in $(STAGE) for $(LIBDIR); now: sudo make install$(if $(filter /usr/local,$(PREFIX)),, PREFIX=$(PREFIX))"

# Copies the staged files (staging them first if there are none) and the
# boot integration. Never overwrites /etc/kjump.conf.
install: $(if $(wildcard $(STAGE)/complete),,stage)
	@staged=$$($(STAGE)/kjump config --config /dev/null | sed -n 's/^kernel = //p'); \
	if [ "$$staged" != "$(LIBDIR)/vmlinuz" ]; then \
	  echo "install: the kjump in $(STAGE) looks for $$staged, not $(LIBDIR)/vmlinuz: run 'make stage PREFIX=$(PREFIX)' first" >&2; exit 1; fi
	@echo "install: copying what 'make stage' built in $(STAGE) ($$(date -r $(STAGE)/complete '+%F %T'); 'make stage' again to refresh it)"
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR) \
	  $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(GENERATORDIR) $(DESTDIR)/etc \
	  $(DESTDIR)$(INITRAMFS_TOOLS_DIR)/hooks $(DESTDIR)$(INITRAMFS_TOOLS_DIR)/scripts/local-premount \
	  $(DESTDIR)$(DRACUT_MODULES_DIR)/90kjump
	install -m 755 $(STAGE)/kjump $(DESTDIR)$(SBINDIR)/kjump
	install -m 755 $(STAGE)/kjump-init $(DESTDIR)$(LIBDIR)/kjump-init
	install -m 644 $(STAGE)/vmlinuz $(STAGE)/initramfs.img $(DESTDIR)$(LIBDIR)/
	rm -f $(DESTDIR)$(LIBDIR)/vmlinuz.config; if [ -f $(STAGE)/vmlinuz.config ]; then install -m 644 $(STAGE)/vmlinuz.config $(DESTDIR)$(LIBDIR)/; fi
	for m in kjump.8 kjump-init.8; do $(SUBST) man/$$m > $(DESTDIR)$(MANDIR)/man8/$$m; done
	$(SUBST) man/kjump.conf.5 > $(DESTDIR)$(MANDIR)/man5/kjump.conf.5
	chmod 644 $(DESTDIR)$(MANDIR)/man8/kjump.8 $(DESTDIR)$(MANDIR)/man8/kjump-init.8 $(DESTDIR)$(MANDIR)/man5/kjump.conf.5
	$(SUBST) contrib/systemd/kjump-load.service > $(DESTDIR)$(UNITDIR)/kjump-load.service
	chmod 644 $(DESTDIR)$(UNITDIR)/kjump-load.service
	$(SUBST) contrib/systemd/kjump-generator > $(DESTDIR)$(GENERATORDIR)/kjump-generator
	chmod 755 $(DESTDIR)$(GENERATORDIR)/kjump-generator
	$(SUBST) contrib/initramfs-tools/hooks/kjump > $(DESTDIR)$(INITRAMFS_TOOLS_DIR)/hooks/kjump
	$(SUBST) contrib/initramfs-tools/scripts/local-premount/kjump > $(DESTDIR)$(INITRAMFS_TOOLS_DIR)/scripts/local-premount/kjump
	$(SUBST) contrib/dracut/90kjump/module-setup.sh > $(DESTDIR)$(DRACUT_MODULES_DIR)/90kjump/module-setup.sh
	$(SUBST) contrib/dracut/90kjump/kjump-resume.sh > $(DESTDIR)$(DRACUT_MODULES_DIR)/90kjump/kjump-resume.sh
	chmod 755 $(DESTDIR)$(INITRAMFS_TOOLS_DIR)/hooks/kjump $(DESTDIR)$(INITRAMFS_TOOLS_DIR)/scripts/local-premount/kjump \
	  $(DESTDIR)$(DRACUT_MODULES_DIR)/90kjump/module-setup.sh $(DESTDIR)$(DRACUT_MODULES_DIR)/90kjump/kjump-resume.sh
	install -d $(DESTDIR)$(MKINITCPIO_DIR)/install $(DESTDIR)$(MKINITCPIO_DIR)/hooks
	$(SUBST) contrib/mkinitcpio/install/kjump > $(DESTDIR)$(MKINITCPIO_DIR)/install/kjump
	$(SUBST) contrib/mkinitcpio/hooks/kjump > $(DESTDIR)$(MKINITCPIO_DIR)/hooks/kjump
	chmod 644 $(DESTDIR)$(MKINITCPIO_DIR)/install/kjump $(DESTDIR)$(MKINITCPIO_DIR)/hooks/kjump
	install -d $(DESTDIR)$(BASH_COMPLETION_DIR) $(DESTDIR)$(ZSH_COMPLETION_DIR) $(DESTDIR)$(FISH_COMPLETION_DIR)
	install -m 644 contrib/completions/kjump.bash $(DESTDIR)$(BASH_COMPLETION_DIR)/kjump
	install -m 644 contrib/completions/_kjump $(DESTDIR)$(ZSH_COMPLETION_DIR)/_kjump
	install -m 644 contrib/completions/kjump.fish $(DESTDIR)$(FISH_COMPLETION_DIR)/kjump.fish
	@if [ -e $(DESTDIR)/etc/kjump.conf ]; then \
	  echo "install: kept the existing $(DESTDIR)/etc/kjump.conf"; \
	else \
	  $(SUBST) contrib/kjump.conf > $(DESTDIR)/etc/kjump.conf && chmod 644 $(DESTDIR)/etc/kjump.conf && \
	  echo "install: wrote $(DESTDIR)/etc/kjump.conf"; \
	fi
	@echo "install: done. Next: set target= in /etc/kjump.conf, run 'kjump check',"
	@echo "  then 'update-initramfs -u' (or 'dracut -f') and 'systemctl daemon-reload'; see kjump(8)."

# kjump's Debian package, target/deb/kjump_VERSION_amd64.deb: what
# `make install PREFIX=/usr` puts in place, staged and packaged by
# scripts/deb.sh with contrib/debian/ (no root needed), then checked with
# lintian; prints its path. KERNEL or BZIMAGE pick the hibernation kernel,
# as for stage.
deb:
	@KERNEL=$(ONE_KERNEL) BZIMAGE=$(BZIMAGE) scripts/deb.sh

# Removes what `make install` put, except a kjump.conf that was changed
# since (it may hold your target): that one is kept, and said so.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/kjump
	rm -f $(DESTDIR)$(LIBDIR)/kjump-init $(DESTDIR)$(LIBDIR)/vmlinuz $(DESTDIR)$(LIBDIR)/vmlinuz.config $(DESTDIR)$(LIBDIR)/initramfs.img
	rm -f $(DESTDIR)$(MANDIR)/man8/kjump.8 $(DESTDIR)$(MANDIR)/man8/kjump-init.8 $(DESTDIR)$(MANDIR)/man5/kjump.conf.5
	rm -f $(DESTDIR)$(UNITDIR)/kjump-load.service $(DESTDIR)$(GENERATORDIR)/kjump-generator
	rm -f $(DESTDIR)$(INITRAMFS_TOOLS_DIR)/hooks/kjump $(DESTDIR)$(INITRAMFS_TOOLS_DIR)/scripts/local-premount/kjump
	rm -f $(DESTDIR)$(DRACUT_MODULES_DIR)/90kjump/module-setup.sh $(DESTDIR)$(DRACUT_MODULES_DIR)/90kjump/kjump-resume.sh
	rm -f $(DESTDIR)$(MKINITCPIO_DIR)/install/kjump $(DESTDIR)$(MKINITCPIO_DIR)/hooks/kjump
	@rmdir $(DESTDIR)$(MKINITCPIO_DIR)/install $(DESTDIR)$(MKINITCPIO_DIR)/hooks $(DESTDIR)$(MKINITCPIO_DIR) 2>/dev/null || true
	rm -f $(DESTDIR)$(BASH_COMPLETION_DIR)/kjump $(DESTDIR)$(ZSH_COMPLETION_DIR)/_kjump $(DESTDIR)$(FISH_COMPLETION_DIR)/kjump.fish
	rm -f $(DESTDIR)/var/lib/kjump/initramfs/*.digest
	@rmdir $(DESTDIR)/var/lib/kjump/initramfs 2>/dev/null || true
	@for d in $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DATADIR) $(DESTDIR)$(DRACUT_MODULES_DIR)/90kjump; do \
	  [ ! -d $$d ] || rmdir $$d 2>/dev/null || echo "uninstall: kept $$d: it holds files install did not put there"; done
	@conf=$(DESTDIR)/etc/kjump.conf; \
	if [ ! -e $$conf ]; then :; \
	elif $(SUBST) contrib/kjump.conf | cmp -s - $$conf; then rm -f $$conf && echo "uninstall: removed $$conf (unchanged since install)"; \
	else echo "uninstall: kept $$conf: it was changed since install (remove it yourself if you no longer need it)"; fi
	@echo "uninstall: done. Run 'update-initramfs -u' (or 'dracut -f') so the initramfs no longer holds kjump."
