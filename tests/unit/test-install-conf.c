/* test-install-conf.c: the strict INI reader and device.conf defaults, caps and refusals. */
#include "tests.h"

#include <fcntl.h>
#include <unistd.h>

#include "conf.h"
#include "err.h"
#include "install-conf.h"
#include "install-nix.h"
#include "macro.h"

static const char valid[] = "# drone\n[device]\ncompatible = drone-x1\nstate-dir = /var/lib/ringil\n"
                            "boot-tries = 4\ncheckpoint = 1M\n[boot]\nentry-name = os\nlinux = /EFI/os/vmlinuz\n"
                            "options = root=PARTLABEL=root-@SLOT@ ro\n"
                            "[slot.rootfs.a]\ndevice = /dev/vda2\n[slot.rootfs.b]\r\ndevice = /dev/vda3\n";

static int parse(const char *s, struct device_conf *c) {
        return device_conf_parse(s, strlen(s), c);
}

static void test_valid_and_defaults(void **state) {
        struct device_conf c;
        (void) state;

        assert_int_equal(parse(valid, &c), 0);
        assert_string_equal(c.compatible, "drone-x1");
        assert_string_equal(c.keyring, "/etc/secure/keys/keys/db/db.pem");
        assert_string_equal(c.esp, "/boot");
        assert_string_equal(c.floor_copy, "/boot/loader/ringil/floor");
        assert_string_equal(c.entry_name, "os");
        assert_int_equal(c.boot_tries, 4);
        assert_int_equal(c.max_attempts, 5);
        assert_int_equal(c.checkpoint_bytes, 1u << 20);
        assert_int_equal(c.n_classes, 1);
        assert_string_equal(device_conf_find_class(&c, "rootfs")->device[1], "/dev/vda3");
        assert_null(device_conf_find_class(&c, "home"));
        assert_false(c.require_codesigning);
        assert_null(c.allowed_signers[0]);
        device_conf_done(&c);
}

static void test_signer_policy(void **state) {
        struct device_conf c;
        (void) state;

        assert_int_equal(parse("[device]\ncompatible = x\nrequire-codesigning = yes\n"
                               "allowed-signer = Release Key 2026 ,  CI key,x\n", &c), 0);
        assert_true(c.require_codesigning);
        assert_string_equal(c.allowed_signers[0], "Release Key 2026");
        assert_string_equal(c.allowed_signers[1], "CI key");
        assert_string_equal(c.allowed_signers[2], "x");
        assert_null(c.allowed_signers[3]);
        device_conf_done(&c);
        assert_int_equal(parse("[device]\ncompatible = x\nrequire-codesigning = no\n", &c), 0);
        assert_false(c.require_codesigning);
        device_conf_done(&c);

        static const char *const bad[] = {
                "[device]\ncompatible = x\nrequire-codesigning = maybe\n",
                "[device]\ncompatible = x\nrequire-codesigning =\n",
                "[device]\ncompatible = x\nallowed-signer =\n",
                "[device]\ncompatible = x\nallowed-signer = a,,b\n",
                "[device]\ncompatible = x\nallowed-signer = a, \n",
                "[device]\ncompatible = x\nallowed-signer = a, b, a\n",
                "[device]\ncompatible = x\nallowed-signer = a\nallowed-signer = b\n",   /* duplicate key */
                ("[device]\ncompatible = x\nallowed-signer = "
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"),   /* 65 > ub-common-name */
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse(bad[i], &c) != -RINGIL_EMALFORMED)
                        fail_msg("case %zu accepted or wrong error: %s", i, bad[i]);
        assert_int_equal(parse("[device]\ncompatible = x\nallowed-signer = "
                               "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n", &c), -RINGIL_ETOOBIG);
}

static void test_refusals(void **state) {
        static const char *const bad[] = {
                "[device]\n",                                                      /* no compatible */
                "[device]\ncompatible = x\ncompatible = y\n",                      /* duplicate key */
                "[device]\ncompatible = x\n[device]\n",                            /* duplicate section */
                "[device]\ncompatible = x\nboot-tries = 0\n",                      /* range */
                "[device]\ncompatible = x\nboot-tries = 3x\n",
                "[device]\ncompatible = x\nesp = boot\n",                          /* relative path */
                "[device]\ncompatible = x\nesp = /boot/../etc\n",                  /* .. */
                "[device]\ncompatible = x\nfrobnicate = 1\n",                      /* unknown key */
                "[device]\ncompatible = x\n[slot.r.a]\ndevice = /a\n",             /* b missing */
                "[device]\ncompatible = x\n[slot.r.c]\ndevice = /a\n",             /* slot letter */
                "[device]\ncompatible = x\n[slot.r.a]\ndevice = /a\n[slot.r.b]\ndevice = /a\n",
                "[device]\ncompatible = x\nstate-dir = /data\n[slot.r.a]\ndevice = /data/a\n[slot.r.b]\ndevice = /b\n",
                "[device]\ncompatible = x\njunk\n",
                "[dev ice]\n",
                "[device]\ncompatible = x\n[boot]\nentry-name = Bad-Name\n",
                "[device]\ncompatible\x01 = x\n",
        };
        struct device_conf c;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = parse(bad[i], &c);
                if (r != -RINGIL_EMALFORMED)
                        fail_msg("case %zu accepted or wrong error (%d): %s", i, r, bad[i]);
                assert_true(ringil_detail()[0] != '\0');
        }
}

static void test_caps(void **state) {
        _cleanup_free_ char *big = malloc(CONF_MAX_SIZE + 2), *longline = malloc(CONF_MAX_LINE + 64);
        struct device_conf c;
        (void) state;

        assert_non_null(big);
        memset(big, '#', CONF_MAX_SIZE + 1);
        big[CONF_MAX_SIZE + 1] = '\0';
        assert_int_equal(device_conf_parse(big, CONF_MAX_SIZE + 1, &c), -RINGIL_ETOOBIG);
        memset(longline, 'x', CONF_MAX_LINE + 10);
        memcpy(longline, "# ", 2);
        longline[CONF_MAX_LINE + 10] = '\0';
        assert_int_equal(parse(longline, &c), -RINGIL_ETOOBIG);
        assert_int_equal(device_conf_parse("[device]\ncompatible = a\0b\n", 25, &c), -RINGIL_EMALFORMED);
}

static void test_nix_section(void **state) {
        struct device_conf c;
        (void) state;

        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = fleet-1:AbC+/= fleet-2:xyz=\n"
                               "substituter = https://fleet:8443/nix-cache\n", &c), 0);
        assert_true(c.nix_generation);
        assert_string_equal(c.nix_profile, "/nix/var/nix/profiles/system");
        assert_string_equal(c.nix_current_system, "/run/current-system");
        assert_string_equal(c.nix_substituter, "https://fleet:8443/nix-cache");
        assert_null(c.nix_store);
        device_conf_done(&c);
        assert_int_equal(parse("[device]\ncompatible = x\n", &c), 0);
        assert_false(c.nix_generation);
        device_conf_done(&c);

        /* Generation mode without the fleet key, bad keys or URLs, or mixed with slots: refused. */
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\nprofile = /p\n", &c), -RINGIL_EMALFORMED);
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = k\n", &c), -RINGIL_EMALFORMED);
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = k:\n", &c), -RINGIL_EMALFORMED);
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = :abc\n", &c), -RINGIL_EMALFORMED);
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = k:a;b\n", &c), -RINGIL_EMALFORMED);
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = k:a\nsubstituter = ftp://x\n", &c),
                         -RINGIL_EMALFORMED);
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = k:a\nsubstituter = https://a b\n", &c),
                         -RINGIL_EMALFORMED);
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = k:a\nbogus = 1\n", &c),
                         -RINGIL_EMALFORMED);
        assert_int_equal(parse("[device]\ncompatible = x\n[nix]\ntrusted-public-keys = k:a\n"
                               "[slot.r.a]\ndevice = /a\n[slot.r.b]\ndevice = /b\n", &c), -RINGIL_EMALFORMED);
}

static void test_nix_store_path(void **state) {
        (void) state;

        assert_true(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6fallz-nixos-system-drone-25.05"));
        assert_true(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6fallz-a+b_c?d=e"));
        assert_false(nix_store_path_valid(NULL));
        assert_false(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6fallz"));
        assert_false(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6fallz-"));
        assert_false(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6falle-x"));   /* 'e' is not Nix base32 */
        assert_false(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6fal-x"));     /* 30 characters */
        assert_false(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6fallz-x/bin"));
        assert_false(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6fallz-x y"));
        assert_false(nix_store_path_valid("/nix/store/b7kfaxnzfqlvflvgixljjf5agk6fallz-.."));
        assert_false(nix_store_path_valid("/tmp/store/b7kfaxnzfqlvflvgixljjf5agk6fallz-x"));
        assert_false(nix_store_path_valid("/nix/store/B7KFAXNZFQLVFLVGIXLJJF5AGK6FALLZ-x"));
}

/* What services.ringild (nix/modules/ringild.nix) writes, as evaluated by nix-instantiate (tests/integration/test_nix.py). */
static const char nixos_slots[] =
        "# Generated by services.ringild (nix/modules/ringild.nix); edit the NixOS options instead.\n"
        "[device]\ncompatible = orin-agx-drone\nkeyring = /etc/secure/keys/keys/db/db.pem\nesp = /boot\n"
        "state-dir = /var/lib/ringil\nboot-tries = 3\n"
        "health-hook = /nix/store/00000000000000000000000000000000-ringil-health-commands\n\n"
        "[boot]\nentry-name = ringil\ntitle = ringil\n\n"
        "[slot.payload.a]\ndevice = /dev/zvol/zroot/payload-a\n\n[slot.payload.b]\ndevice = /dev/zvol/zroot/payload-b\n";
static const char nixos_generation[] =
        "# Generated by services.ringild (nix/modules/ringild.nix); edit the NixOS options instead.\n"
        "[device]\ncompatible = orin-agx-drone\nkeyring = /etc/secure/keys/keys/db/db.pem\nesp = /boot\n"
        "state-dir = /var/lib/ringil\nboot-tries = 3\n\n"
        "[boot]\nentry-name = ringil\ntitle = ringil\n\n"
        "[nix]\nprofile = /nix/var/nix/profiles/system\nsubstituter = https://fleet.example:8443/nix-cache\n"
        "trusted-public-keys = fleet-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        "tls-ca = /etc/secure/ringil/fleet-ca.pem\ntls-cert = /etc/secure/ringil/device.pem\n"
        "tls-key = /etc/secure/ringil/device.key\n";

static void test_nixos_module_output(void **state) {
        struct device_conf c;
        (void) state;

        assert_int_equal(parse(nixos_slots, &c), 0);
        assert_string_equal(c.compatible, "orin-agx-drone");
        assert_string_equal(c.health_hook, "/nix/store/00000000000000000000000000000000-ringil-health-commands");
        assert_string_equal(device_conf_find_class(&c, "payload")->device[0], "/dev/zvol/zroot/payload-a");
        assert_false(c.nix_generation);
        device_conf_done(&c);
        assert_int_equal(parse(nixos_generation, &c), 0);
        assert_true(c.nix_generation);
        assert_int_equal(c.n_classes, 0);
        assert_string_equal(c.nix_tls_key, "/etc/secure/ringil/device.key");
        assert_string_equal(c.nix_current_system, "/run/current-system");
        device_conf_done(&c);
}

/* The shipped example must parse as it is (RINGIL_SOURCE_ROOT is set by the test runner). */
static void test_example_file(void **state) {
        const char *root = getenv("RINGIL_SOURCE_ROOT");
        char path[1024];
        struct device_conf c;
        (void) state;

        if (!root)
                skip();
        snprintf(path, sizeof(path), "%s/data/device.conf.example", root);
        if (device_conf_load(path, &c) != 0)
                fail_msg("%s", ringil_detail());
        assert_string_equal(c.compatible, "drone-x1");
        assert_string_equal(c.title, "Drone OS");
        assert_string_equal(c.options, "root=PARTLABEL=root-@SLOT@ ro quiet loglevel=0");
        assert_non_null(device_conf_find_class(&c, "rootfs"));
        device_conf_done(&c);
}

/* Each refusal is one line that says where and what, with the offending name or value quoted. */
static void test_messages(void **state) {
        static const struct {
                const char *text;
                const char *detail;
        } bad[] = {
                { "[device]\ncompatible = x\nboot-tries = 0\n", "line 3: [device] boot-tries: `0' is not a number in 1..32" },
                { "[device]\ncompatible = x\nfrobnicate = 1\n", "line 3: unknown key `frobnicate' in [device]" },
                { "[device]\ncompatible = x\n[devise]\n", "line 3: unknown section [devise]" },
                { "[device]\ncompatible = x\ncompatible = y\n", "line 3: duplicate key `compatible' in [device] (first on line 2)" },
                { "[device]\n", "missing `compatible' in [device]" },
                { "[device]\ncompatible = drone x1\n", "line 2: [device] compatible: `drone x1' may only hold A-Z a-z 0-9 . _ : + -" },
                { "[device]\ncompatible = x\nesp = boot\n", "line 3: [device] esp: `boot' is not an absolute path without `..'" },
                { "[device]\ncompatible = x\ncheckpoint = 0\n", "line 3: [device] checkpoint: `0' is not a size in 1..1T (suffixes K, M, G, T)" },
                { "[device]\ncompatible = x\n[boot]\nentry-name = Bad-Name\n", "line 4: [boot] entry-name: `Bad-Name' may only hold a-z 0-9 _" },
                { "[device]\ncompatible = x\n[slot.r.c]\ndevice = /a\n", "line 3: section [slot.r.c] is not [slot.NAME.a] or [slot.NAME.b]" },
                { "[device]\ncompatible = x\n[slot.r.a]\n[slot.r.b]\ndevice = /b\n", "line 3: missing `device' in [slot.r.a]" },
                { "[device]\ncompatible = x\n[slot.r.a]\ndevice = /a\n", "slot class `r' needs both [slot.r.a] and [slot.r.b]" },
                { "[device]\ncompatible = x\n[slot.r.a]\nsize = 1\n", "line 4: unknown key `size' in [slot.r.a]" },
                /* The section alone selects generation mode, so it cannot be left half-written. */
                { "[device]\ncompatible = x\n[nix]\n", "[nix] trusted-public-keys is required" },
                { "[device]\ncompatible = x\n[nix]\ntrusted-public-keys = k:a\ntls-ca = /ca\n", "[nix] tls-ca, tls-cert and tls-key go together" },
        };
        struct device_conf c;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = parse(bad[i].text, &c);
                if (r != -RINGIL_EMALFORMED || !streq(ringil_detail(), bad[i].detail))
                        fail_msg("case %zu: %d `%s', want `%s'", i, r, ringil_detail(), bad[i].detail);
        }
}

static void test_load(void **state) {
        _cleanup_free_ char *dir = test_tmpdir();
        char path[512], link[512], want[1024];
        struct device_conf c;
        int fd;
        (void) state;

        assert_non_null(dir);
        snprintf(path, sizeof(path), "%s/device.conf", dir);
        snprintf(link, sizeof(link), "%s/etc-link.conf", dir);
        /* The path once, and why. */
        assert_int_equal(device_conf_load(path, &c), -ENOENT);
        snprintf(want, sizeof(want), "cannot read configuration `%s': No such file or directory", path);
        assert_string_equal(ringil_detail(), want);

        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, nixos_slots, strlen(nixos_slots)), (ssize_t) strlen(nixos_slots));
        close(fd);
        /* NixOS makes /etc/ringil/device.conf a link into the store: it must be followed. */
        assert_int_equal(symlink(path, link), 0);
        assert_int_equal(device_conf_load(link, &c), 0);
        assert_string_equal(c.compatible, "orin-agx-drone");
        device_conf_done(&c);

        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "[slot.payload.b]\n", 17), 17);
        close(fd);
        assert_int_equal(device_conf_load(path, &c), -RINGIL_EMALFORMED);
        snprintf(want, sizeof(want), "%s:19: duplicate section [slot.payload.b] (first on line 17)", path);
        assert_string_equal(ringil_detail(), want);
        test_rm_rf(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_and_defaults),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_signer_policy),
                cmocka_unit_test(test_caps),
                cmocka_unit_test(test_nix_section),
                cmocka_unit_test(test_nix_store_path),
                cmocka_unit_test(test_nixos_module_output),
                cmocka_unit_test(test_example_file),
                cmocka_unit_test(test_messages),
                cmocka_unit_test(test_load),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
