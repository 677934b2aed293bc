/* test-install-state.c: state file round trip and refusals, the two-copy floor that never goes down. */
#include <unistd.h>

#include "tests.h"

#include "buf.h"
#include "err.h"
#include "fileio.h"
#include "install-state.h"
#include "macro.h"

static void test_roundtrip(void **state) {
        struct install_state s, t;
        const char *d = *state;

        install_state_init(&s);
        s.phase = PHASE_WRITING;
        s.have_digest = true;
        memset(s.digest, 0xab, sizeof(s.digest));
        s.version = strdup("2.0.1");
        s.slot = 1;
        s.attempts = 2;
        s.stalls = 1;
        s.writes = 77;
        s.n_progress = 2;
        s.progress[0] = 40;
        s.progress[1] = 3;
        s.slots[0].version = strdup("1.0");
        s.slots[0].status = SLOT_GOOD;
        s.slots[1].status = SLOT_WRITING;
        s.time_floor = 1764300000;
        assert_int_equal(install_state_set_error(&s, "bad\nthing"), 0);
        assert_string_equal(s.last_error, "bad thing");
        assert_int_equal(install_state_save(d, &s), 0);
        assert_int_equal(install_state_load(d, &t), 0);
        assert_int_equal(t.phase, PHASE_WRITING);
        assert_memory_equal(t.digest, s.digest, sizeof(s.digest));
        assert_string_equal(t.version, "2.0.1");
        assert_int_equal(t.slot, 1);
        assert_int_equal(t.attempts, 2);
        assert_int_equal(t.stalls, 1);
        assert_int_equal(t.writes, 77);
        assert_int_equal(t.n_progress, 2);
        assert_int_equal(t.progress[0], 40);
        assert_int_equal(t.time_floor, 1764300000);
        assert_string_equal(t.last_error, "bad thing");
        assert_int_equal(t.slots[0].status, SLOT_GOOD);
        assert_string_equal(t.slots[0].version, "1.0");
        install_state_done(&s);
        install_state_done(&t);
}

static void test_missing_and_malformed(void **state) {
        struct install_state s;
        static const char *const bad[] = {
                "[install]\nphase = writing\n",   /* no digest/slot/version */
                "[install]\nphase = flying\n",
                "[install]\nslot = c\n",
                "[install]\ndigest = 00\n",
                "[install]\nprogress.16 = 1\n",
                "[install]\nversion = 1.x\n",
                "[slot.c]\nstatus = good\n",
                "[slot.a]\nstatus = great\n",
                "[install]\ntime-floor = -1\n",
                "[install]\ntime-floor = 9223372036854775808\n",
        };

        assert_int_equal(install_state_load(*state, &s), 0);
        assert_int_equal(s.phase, PHASE_IDLE);
        assert_int_equal(s.slot, -1);
        install_state_done(&s);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (install_state_parse(bad[i], strlen(bad[i]), &s) != -RINGIL_EMALFORMED)
                        fail_msg("case %zu accepted: %s", i, bad[i]);
}

static void test_floor_two_copies(void **state) {
        char sd[1024], copy[1024], f[1100];
        _cleanup_free_ char *fl = NULL;

        snprintf(sd, sizeof(sd), "%s/state", (char *) *state);
        snprintf(copy, sizeof(copy), "%s/esp/loader/ringil/floor", (char *) *state);
        assert_int_equal(floor_read(sd, copy, &fl, NULL), 0);
        assert_null(fl);
        assert_int_equal(floor_raise(sd, copy, "1.10", 0), 0);
        assert_int_equal(floor_raise(sd, copy, "1.9", 0), 0);   /* never lowers */
        assert_int_equal(floor_read(sd, copy, &fl, NULL), 0);
        assert_string_equal(fl, "1.10");
        free(TAKE_PTR(fl));

        /* Losing the state directory does not lose the floor. */
        test_rm_rf(sd);
        snprintf(f, sizeof(f), "%s/floor", sd);
        assert_int_equal(access(f, F_OK), -1);
        assert_int_equal(floor_read(sd, copy, &fl, NULL), 0);
        assert_string_equal(fl, "1.10");
        free(TAKE_PTR(fl));

        /* The trusted-time floor rides in both records, is never lowered, and survives the state dir. */
        int64_t t = -1;
        assert_int_equal(floor_read(sd, copy, &fl, &t), 0);
        assert_int_equal(t, 0);
        free(TAKE_PTR(fl));
        assert_int_equal(floor_raise(sd, copy, "1.10", 1764300000), 0);
        assert_int_equal(floor_raise(sd, copy, "1.11", 1600000000), 0);   /* version up, time never down */
        test_rm_rf(sd);
        assert_int_equal(floor_read(sd, copy, &fl, &t), 0);
        assert_string_equal(fl, "1.11");
        assert_int_equal(t, 1764300000);
        free(TAKE_PTR(fl));
        assert_int_equal(atomic_write_file(copy, "1.12\ntime-floor 42", 18, 0644, 0), 0);
        assert_int_equal(floor_read(sd, copy, &fl, &t), 0);
        assert_int_equal(t, 42);
        free(TAKE_PTR(fl));
        static const char *const bad_records[] = { "1.0\ntime-floor\n", "1.0\ntime-floor x\n", "1.0\ntime-floor 1\nmore\n",
                                                   "1.0\n\n", "1.0\nfloor 5\n", "\ntime-floor 5\n" };
        for (size_t i = 0; i < ELEMENTSOF(bad_records); i++) {
                assert_int_equal(atomic_write_file(copy, bad_records[i], strlen(bad_records[i]), 0644, 0), 0);
                if (floor_read(sd, copy, &fl, &t) != -RINGIL_EMALFORMED)
                        fail_msg("floor record %zu accepted: %s", i, bad_records[i]);
        }

        /* A corrupt record fails closed instead of reading as "no floor". */
        assert_int_equal(atomic_write_file(copy, "garbage\n", 8, 0644, 0), 0);
        assert_int_equal(floor_read(sd, copy, &fl, NULL), -RINGIL_EMALFORMED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_roundtrip, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_missing_and_malformed, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_floor_two_copies, test_setup_tmpdir, test_teardown_tmpdir),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
