/* test-install-nix.c: NixOS-generation mode against fake nix-store/nix-env/nix programs (first in PATH) that
 * log their argv and environment and emulate profile generations: the exact Nix commands and their fixed
 * environment, the order (nothing written before the store has the signed closure), refusals, rollback on a
 * failed switch, blessing only the running generation, and the closure read back from `nix path-info`. */
#include "tests.h"

#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"
#include "err.h"
#include "install-nix.h"
#include "install-state.h"

#define TOP "/nix/store/w04b3gxp4pzhchgjibc6h9hc5xql0bcl-nixos-system-drone-1.0"
#define BASE "/nix/store/0qn246ynpxiyp58ag592h7r5iz0nr99w-base"
#define OLD "/nix/store/1111111111111111111111111111111a-nixos-system-drone-0.9"
#define TOP_HASH "sha256:107cdw0qfavh0vk5k56kld0ag12pk24c1nzj1nl05qbc5mlzy8g6"
#define BASE_HASH "sha256:0nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x"
#define KEYS "fleet-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM="

static const char closure_listing[] = "ringil-nix-closure 1\n"
        BASE " " BASE_HASH " 288\n"
        TOP " " TOP_HASH " 776\n";
static const char path_info[] = "[{\"path\":\"" TOP "\",\"narHash\":\"" TOP_HASH "\",\"narSize\":776},"
        "{\"path\":\"" BASE "\",\"narHash\":\"" BASE_HASH "\",\"narSize\":288}]";

/* Every fake logs "NAME ARGS" and its environment, then does what the files in fake/ say. */
static const char fake_common[] =
        "#!/bin/sh\n"
        "F=%s/fake\n"
        "echo \"$(basename \"$0\") $*\" >> $F/log\n"
        "echo \"env HOME=$HOME LC_ALL=$LC_ALL PATH=$PATH LEAK=${RINGIL_LEAK-unset}\" >> $F/env\n";

static const char fake_nix_store[] =
        "case \"$*\" in\n"
        "*--realise*) exit $(cat $F/realise-exit 2>/dev/null || echo 0) ;;\n"
        "*--check-validity*) exit $(cat $F/validity-exit 2>/dev/null || echo 0) ;;\n"
        "esac\n"
        "exit 9\n";

static const char fake_nix[] =
        "cat $F/path-info.json\n"
        "exit $(cat $F/path-info-exit 2>/dev/null || echo 0)\n";

/* nix-env --profile P --set S | --rollback: Nix's P -> P-N-link -> S generations. */
static const char fake_nix_env[] =
        "while [ $# -gt 0 ]; do case $1 in\n"
        "--store) shift ;;\n"
        "--profile) P=$2; shift ;;\n"
        "--set) S=$2; shift ;;\n"
        "--rollback) RB=1 ;;\n"
        "esac; shift; done\n"
        "cur=$(readlink \"$P\" 2>/dev/null | sed 's/.*-\\([0-9]*\\)-link$/\\1/')\n"
        "[ -n \"$cur\" ] || cur=0\n"
        "if [ -n \"$RB\" ]; then\n"
        "  [ $cur -gt 1 ] || exit 1\n"
        "  ln -sfn \"$(basename \"$P\")-$((cur - 1))-link\" \"$P\"; exit 0\n"
        "fi\n"
        "n=$((cur + 1))\n"
        "ln -sfn \"$S\" \"$P-$n-link\" && ln -sfn \"$(basename \"$P\")-$n-link\" \"$P\"\n";

static const char fake_stc[] =
        "#!/bin/sh\n"
        "echo \"switch-to-configuration %s $*\" >> %s/fake/log\n"
        "exit $(cat %s/fake/stc-exit 2>/dev/null || echo 0)\n";

struct fx {
        char *d, *old_path;
        char *key, *cert, *listing, *bundle;
        struct device_conf c;
};

static void write_fake(const char *d, const char *name, const char *body) {
        char *p = test_path(d, "bin/%s", name), *text = NULL;
        assert_true(asprintf(&text, fake_common, d) > 0);
        char *all = NULL;
        assert_true(asprintf(&all, "%s%s", text, body) > 0);
        test_write_file(p, all, 0755);
        free(all);
        free(text);
        free(p);
}

static void make_system(const char *d, const char *store_path) {
        char *p = test_path(d, "store%s/bin/switch-to-configuration", store_path), *text = NULL;
        assert_true(asprintf(&text, fake_stc, store_path, d, d) > 0);
        test_write_file(p, text, 0755);
        free(text);
        free(p);
}

static void fake_set(const char *d, const char *name, const char *value) {
        char *p = test_path(d, "fake/%s", name);
        test_write_file(p, value, 0644);
        free(p);
}

static char *fake_get(const char *d, const char *name) {
        char *p = test_path(d, "fake/%s", name), *t;
        if (access(p, F_OK) < 0) {
                free(p);
                return strdup("");
        }
        t = test_read_file(p, NULL);
        free(p);
        return t;
}

static void set_link(const char *d, const char *name, const char *target) {
        char *p = test_path(d, "%s", name);
        (void) unlink(p);
        test_symlink(target, p);
        free(p);
}

static int setup(void **state) {
        struct fx *f = calloc(1, sizeof(*f));
        EVP_PKEY *k = test_key_new(false);
        X509 *x = test_cert_new(k, "fleet signer", NULL, NULL, -3600, 86400L * 30, 0);
        char *conf = NULL, *p;
        const char *path = getenv("PATH");

        f->d = test_tmpdir();
        write_fake(f->d, "nix-store", fake_nix_store);
        write_fake(f->d, "nix", fake_nix);
        write_fake(f->d, "nix-env", fake_nix_env);
        fake_set(f->d, "path-info.json", path_info);
        make_system(f->d, TOP);
        make_system(f->d, OLD);
        /* The running system is generation 1 (OLD), installed before ringil. */
        p = test_path(f->d, "profiles/.keep");
        test_write_file(p, "", 0644);
        free(p);
        set_link(f->d, "profiles/system-1-link", OLD);
        set_link(f->d, "profiles/system", "system-1-link");
        set_link(f->d, "current-system", OLD);

        /* The fakes come first in the caller's PATH; the children themselves get ringil's fixed PATH. */
        f->old_path = strdup(path ? path : "/usr/bin:/bin");
        p = test_path(f->d, "bin:%s", f->old_path);
        assert_int_equal(setenv("PATH", p, 1), 0);
        free(p);
        assert_int_equal(setenv("RINGIL_LEAK", "operator secret", 1), 0);

        assert_true(asprintf(&conf, "[device]\ncompatible = t\nesp = %1$s/esp\nstate-dir = %1$s/state\nefivarfs = %1$s/efi\n"
                             "[nix]\ntrusted-public-keys = " KEYS "\nsubstituter = file://%1$s/cache\nprofile = %1$s/profiles/system\n"
                             "store = %1$s/store\ncurrent-system = %1$s/current-system\n", f->d) > 0);
        assert_int_equal(device_conf_parse(conf, strlen(conf), &f->c), 0);
        assert_true(f->c.nix_generation);
        free(conf);

        test_write_key_pem(f->key = test_path(f->d, "signer.key"), k);
        test_write_cert_pem(f->cert = test_path(f->d, "signer.pem"), x);
        f->listing = test_path(f->d, "closure");
        test_write_file(f->listing, closure_listing, 0644);
        f->bundle = test_path(f->d, "gen.rb");
        {
                int64_t now = (int64_t) time(NULL);
                struct bundle_create_payload pl = { .name = "system", .type = BUNDLE_PAYLOAD_NIXOS, .path = f->listing,
                                                    .store_path = TOP };
                struct bundle_create_opts o = { .key = f->key, .cert = f->cert, .compatible = "t", .version = "2.0",
                                                .created = now - 60, .expires = now + 86400, .payloads = &pl, .n_payloads = 1 };
                if (bundle_create(&o, f->bundle) < 0)
                        fail_msg("bundle_create: %s", ringil_detail());
        }
        EVP_PKEY_free(k);
        X509_free(x);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fx *f = *state;

        assert_int_equal(setenv("PATH", f->old_path, 1), 0);
        unsetenv("RINGIL_LEAK");
        device_conf_done(&f->c);
        test_tmpdir_done(f->d);
        free(f->old_path);
        free(f->key);
        free(f->cert);
        free(f->listing);
        free(f->bundle);
        free(f);
        return 0;
}

/* Open and verify the bundle, then run the generation install. */
static int install(struct fx *f, struct install_state *st) {
        _cleanup_bundle_ bundle *b = NULL;
        struct bundle_policy pol = { .keyring = f->cert, .compatible = "t" };

        assert_int_equal(bundle_open(f->bundle, &b), 0);
        assert_int_equal(bundle_verify_manifest(b, &pol), 0);
        return install_nix_generation(&f->c, b, bundle_get_manifest(b), st, 0);
}

static char *profile_target(struct fx *f) {
        char *t = NULL;
        assert_int_equal(install_nix_profile_target(&f->c, &t), 0);
        return t;
}

static void test_install_commands_and_env(void **state) {
        struct fx *f = *state;
        struct install_state st, saved;
        char *log, *env, *want, *t;

        install_state_init(&st);
        assert_int_equal(install(f, &st), 0);
        assert_int_equal(st.phase, PHASE_PENDING);
        assert_int_equal(st.slots[0].status, SLOT_PENDING);
        assert_string_equal(st.slots[0].version, "2.0");
        assert_int_equal(install_state_load(f->c.state_dir, &saved), 0);
        assert_int_equal(saved.phase, PHASE_PENDING);
        assert_string_equal(saved.version, "2.0");
        install_state_done(&saved);
        t = profile_target(f);
        assert_string_equal(t, TOP);
        free(t);

        /* Exactly these commands, in this order: substitute with the fleet key only and never build; read
         * the closure back; check validity; set the profile; switch-to-configuration boot. */
        log = fake_get(f->d, "log");
        assert_true(asprintf(&want,
                             "nix-store --store %1$s/store --option require-sigs true --option trusted-public-keys " KEYS
                             " --option substituters file://%1$s/cache --option fallback false --option max-jobs 0 --realise " TOP "\n"
                             "nix --extra-experimental-features nix-command --store %1$s/store path-info --json --recursive " TOP "\n"
                             "nix-store --store %1$s/store --check-validity " TOP "\n"
                             "nix-env --store %1$s/store --profile %1$s/profiles/system --set " TOP "\n"
                             "switch-to-configuration " TOP " boot\n", f->d) > 0);
        assert_string_equal(log, want);
        free(want);
        /* Every Nix child ran in ringil's fixed environment, nothing of the caller's leaked in. */
        env = fake_get(f->d, "env");
        assert_true(asprintf(&want, "env HOME=%s/state LC_ALL=C PATH=/run/current-system/sw/bin:/nix/var/nix/profiles/default/bin:/usr/bin:/bin LEAK=unset\n",
                             f->d) > 0);
        for (char *line = env; *line;) {
                char *nl = strchr(line, '\n');
                assert_non_null(nl);
                assert_memory_equal(line, want, strlen(want));
                line = nl + 1;
        }
        free(want);
        free(env);
        free(log);
        install_state_done(&st);
}

/* No install state on disk (a missing state loads as a fresh, idle one). */
static void assert_nothing_recorded(struct fx *f) {
        struct install_state saved;

        assert_int_equal(install_state_load(f->c.state_dir, &saved), 0);
        assert_int_equal(saved.phase, PHASE_IDLE);
        assert_null(saved.version);
        assert_int_equal(saved.slots[0].status, SLOT_EMPTY);
        install_state_done(&saved);
}

/* Nothing is recorded or switched unless Nix accepted the signed closure and it is exactly the bundle's. */
static void test_refusals_write_nothing(void **state) {
        struct fx *f = *state;
        struct install_state st;
        char *log, *t;

        install_state_init(&st);
        fake_set(f->d, "realise-exit", "1\n");   /* unsigned, other key, corrupt NAR */
        assert_int_equal(install(f, &st), -RINGIL_EBADSIG);
        assert_nothing_recorded(f);
        log = fake_get(f->d, "log");
        assert_null(strstr(log, "nix-env"));
        assert_null(strstr(log, "switch-to-configuration"));
        free(log);

        /* Nix has the path, but its closure differs from the signed listing (another NAR hash). */
        fake_set(f->d, "realise-exit", "0\n");
        {
                char *bad = test_replace(path_info, BASE_HASH, "sha256:1nv7mw0xsxaxji45plxw7j5sp85swnbiipi97gw1ylnkgzaq4m0x");
                fake_set(f->d, "path-info.json", bad);
                free(bad);
        }
        assert_int_equal(install(f, &st), -RINGIL_EDIGEST);
        assert_nothing_recorded(f);
        fake_set(f->d, "path-info.json", path_info);
        /* Not a valid store path after all. */
        fake_set(f->d, "validity-exit", "1\n");
        assert_int_equal(install(f, &st), -RINGIL_EREFUSED);
        fake_set(f->d, "validity-exit", "0\n");
        log = fake_get(f->d, "log");
        assert_null(strstr(log, "nix-env"));
        free(log);
        t = profile_target(f);
        assert_string_equal(t, OLD);
        free(t);

        /* A pending generation blocks the next install before any command runs. */
        fake_set(f->d, "log", "");
        st.phase = PHASE_PENDING;
        assert_int_equal(install(f, &st), -RINGIL_EREFUSED);
        log = fake_get(f->d, "log");
        assert_string_equal(log, "");
        free(log);
        install_state_done(&st);
}

static void test_failed_switch_rolls_back(void **state) {
        struct fx *f = *state;
        struct install_state st;
        char *log, *t;

        install_state_init(&st);
        fake_set(f->d, "stc-exit", "1\n");
        assert_int_equal(install(f, &st), -RINGIL_EREFUSED);
        assert_int_equal(st.phase, PHASE_IDLE);
        t = profile_target(f);
        assert_string_equal(t, OLD);   /* the boot menu is as it was */
        free(t);
        log = fake_get(f->d, "log");
        assert_non_null(strstr(log, "nix-env --store "));
        assert_non_null(strstr(log, " --rollback\n"));
        free(log);
        install_state_done(&st);
}

static void test_mark_good_only_the_running_generation(void **state) {
        struct fx *f = *state;
        struct install_state st, saved;
        char *v = NULL, *fl = NULL, *t, *log;

        install_state_init(&st);
        st.slots[0].status = SLOT_GOOD;
        st.slots[0].version = strdup("1.0");
        assert_int_equal(install(f, &st), 0);
        install_state_done(&st);
        /* Not booted into it yet (the loader fell back to the old system): marked bad, rolled back, 1. */
        assert_int_equal(install_nix_mark_good(&f->c, &v), 1);
        assert_null(v);
        assert_int_equal(install_state_load(f->c.state_dir, &saved), 0);
        assert_int_equal(saved.phase, PHASE_IDLE);
        assert_int_equal(saved.slots[0].status, SLOT_BAD);
        assert_int_equal(install_nix_running_version(&f->c, &saved, &v), 0);
        assert_string_equal(v, "1.0");   /* the previous good generation runs */
        free(TAKE_PTR(v));
        install_state_done(&saved);
        t = profile_target(f);
        assert_string_equal(t, OLD);
        free(t);
        log = fake_get(f->d, "log");
        assert_non_null(strstr(log, "switch-to-configuration " OLD " boot\n"));
        free(log);
        assert_int_equal(floor_read(f->c.state_dir, f->c.floor_copy, &fl, NULL), 0);
        assert_null(fl);   /* the floor did not move */

        /* Installed again and booted into: blessed, the floor raised to its version. */
        assert_int_equal(install_state_load(f->c.state_dir, &st), 0);
        assert_int_equal(install(f, &st), 0);
        install_state_done(&st);
        set_link(f->d, "current-system", TOP);
        assert_int_equal(install_nix_mark_good(&f->c, &v), 0);
        assert_string_equal(v, "2.0");
        free(v);
        assert_int_equal(floor_read(f->c.state_dir, f->c.floor_copy, &fl, NULL), 0);
        assert_string_equal(fl, "2.0");
        free(fl);
        assert_int_equal(install_state_load(f->c.state_dir, &saved), 0);
        assert_int_equal(saved.slots[0].status, SLOT_GOOD);
        assert_int_equal(install_nix_running_version(&f->c, &saved, &v), 0);
        assert_string_equal(v, "2.0");
        free(v);
        install_state_done(&saved);
        /* Nothing pending any more. */
        assert_int_equal(install_nix_mark_good(&f->c, &v), -RINGIL_EREFUSED);
        assert_int_equal(install_nix_mark_bad(&f->c), -RINGIL_EREFUSED);
}

static void test_profile_and_closure_readers(void **state) {
        struct fx *f = *state;
        struct nix_closure c = {};
        char *t = NULL;

        /* A profile pointing outside the store is not trusted as a generation. */
        set_link(f->d, "profiles/system-1-link", "/tmp/not-a-store-path");
        assert_int_equal(install_nix_profile_target(&f->c, &t), -RINGIL_EMALFORMED);
        set_link(f->d, "profiles/system", "nope-link");
        assert_int_equal(install_nix_profile_target(&f->c, &t), -ENOENT);
        assert_null(t);

        assert_int_equal(nix_store_closure(f->c.nix_store, f->c.state_dir, TOP, &c), 0);
        assert_int_equal(c.n, 2);
        assert_non_null(nix_closure_find(&c, BASE));
        nix_closure_done(&c);
        fake_set(f->d, "path-info-exit", "1\n");
        assert_int_equal(nix_store_closure(f->c.nix_store, f->c.state_dir, TOP, &c), -ENOENT);
        fake_set(f->d, "path-info-exit", "0\n");
        fake_set(f->d, "path-info.json", "[{\"path\":\"" TOP "\"}]");
        assert_int_equal(nix_store_closure(f->c.nix_store, f->c.state_dir, TOP, &c), -RINGIL_EMALFORMED);
        assert_int_equal(nix_store_closure(NULL, NULL, "/tmp/x", &c), -RINGIL_EMALFORMED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_install_commands_and_env, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusals_write_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failed_switch_rolls_back, setup, teardown),
                cmocka_unit_test_setup_teardown(test_mark_good_only_the_running_generation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_profile_and_closure_readers, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
