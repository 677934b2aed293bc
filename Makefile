# Makefile: the two commands (make demo, make check) and the usual targets, in front of Meson/Ninja.
# Each target installs the Debian packages it needs (scripts/deps.sh, as root) and works from a fresh clone.
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps build check check-vm demo install fuzz bench clean

all: build

deps:
	scripts/deps.sh build

# Unit tests are built when cmocka is installed (-Dtests=auto); make check installs it and requires them.
$(BUILD)/build.ninja:
	scripts/deps.sh build
	meson setup $(BUILD) --prefix=$(PREFIX)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

check:
	scripts/check.sh

# The VM suite alone (qemu + OVMF + Debian's kernel and systemd-boot versions), against the normal build.
check-vm:
	scripts/deps.sh test
	$(MAKE) build
	scripts/vm-loaders.sh
	RINGIL_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest tests/vm -q -rs -p no:cacheprovider -n 2 --basetemp=$(abspath $(BUILD))/vm-tmp

demo:
	scripts/deps.sh demo
	$(MAKE) build
	scripts/demo.sh $(BUILD)

install: $(BUILD)/build.ninja
	meson configure $(BUILD) --prefix=$(PREFIX)
	ninja -C $(BUILD)
	DESTDIR=$(DESTDIR) meson install -C $(BUILD) --no-rebuild --destdir "$(DESTDIR)"

fuzz:
	scripts/deps.sh test
	scripts/fuzz.sh $${FUZZ_SECONDS:-60}

bench:
	scripts/deps.sh bench
	$(MAKE) build
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz build-results
