/* test-server-config.c: ringil-server's config: every key, its defaults and bounds, refusals with their line. */
#include "tests.h"

#include "err.h"
#include "macro.h"
#include "server.h"

#define REQUIRED "db = /var/lib/rs/fleet.db\nstore = /var/lib/rs/store\ncert = /etc/rs/s.pem\nkey = /etc/rs/s.key\n" \
                 "device-ca = /etc/rs/ca\nkeyring = /etc/rs/keyring.pem\n"

static int sc(const char *s, struct server_config *c) {
        return server_config_parse(s, strlen(s), c);
}

static void test_defaults_and_values(void **state) {
        struct server_config c;
        (void) state;

        assert_int_equal(sc(REQUIRED, &c), 0);
        assert_string_equal(c.listen, "127.0.0.1:8443");
        assert_string_equal(c.db, "/var/lib/rs/fleet.db");
        assert_string_equal(c.store_dir, "/var/lib/rs/store");
        assert_string_equal(c.device_ca, "/etc/rs/ca");
        assert_null(c.operator_ca);
        assert_null(c.nix_cache);
        assert_int_equal(c.max_upload, 2ull << 30);
        assert_int_equal(c.max_connections, 4096);
        assert_int_equal(c.poll_interval, 300);
        assert_int_equal(c.token_ttl, 86400);
        /* admission and deadlines */
        assert_null(c.enroll_listen);
        assert_int_equal(c.enroll_max_connections, 64);
        assert_int_equal(c.enroll_per_address, 4);
        assert_int_equal(c.enroll_rate, 30);
        assert_int_equal(c.enroll_timeout, 10);
        assert_int_equal(c.handshake_timeout, 10);
        assert_int_equal(c.request_timeout, 30);
        assert_int_equal(c.keepalive_timeout, 120);
        assert_int_equal(c.min_body_rate, 4096);
        assert_int_equal(c.workers, 4);
        /* rollouts */
        assert_null(c.approvers);
        assert_int_equal(c.scheduler_interval, 5);
        assert_int_equal(c.silent_polls, 3);
        server_config_free(&c);

        assert_int_equal(sc(REQUIRED "approvers =  alice ,carol\t\nscheduler-interval = 1min\nsilent-polls = 10\n", &c), 0);
        assert_string_equal(c.approvers, "alice,carol");
        assert_int_equal(c.scheduler_interval, 60);
        assert_int_equal(c.silent_polls, 10);
        server_config_free(&c);

        assert_int_equal(sc("# fleet\nlisten = [::1]:0\n" REQUIRED "operator-ca = /etc/rs/op.pem\nnix-cache = /srv/cache\n"
                            "max-upload = 512M\nmax-connections = 65536\npoll-interval = 1\ntoken-ttl = 30d\n"
                            "enroll-listen = 0.0.0.0:8444\nrequest-timeout = 1min\nkeepalive-timeout = 1h\nworkers = 8\n", &c), 0);
        assert_string_equal(c.enroll_listen, "0.0.0.0:8444");
        assert_int_equal(c.request_timeout, 60);
        assert_int_equal(c.keepalive_timeout, 3600);
        assert_int_equal(c.workers, 8);
        assert_string_equal(c.listen, "[::1]:0");
        assert_string_equal(c.operator_ca, "/etc/rs/op.pem");
        assert_string_equal(c.nix_cache, "/srv/cache");
        assert_int_equal(c.max_upload, 512u << 20);
        assert_int_equal(c.max_connections, 65536);
        assert_int_equal(c.poll_interval, 1);
        assert_int_equal(c.token_ttl, 30 * 86400);
        server_config_free(&c);
}

static void test_refusals(void **state) {
        static const struct {
                const char *text;
                const char *detail;
        } bad[] = {
                { "db = /x\n", "missing `store'" },
                { REQUIRED "colour = blue\n", "line 7: unknown key `colour'" },
                { REQUIRED "db = /other.db\n", "line 7: duplicate key `db' (first on line 1)" },
                { REQUIRED "max-upload = 0\n", "line 7: max-upload: `0' is not a size of at least 1 (suffixes K, M, G, T)" },
                { REQUIRED "max-connections = 1000001\n", "line 7: max-connections: `1000001' is not a number in 1..1000000" },
                { REQUIRED "workers = 0\n", "line 7: workers: `0' is not a number in 1..256" },
                { REQUIRED "enroll-timeout = 2h\n",
                  "line 7: enroll-timeout: `2h' is not a duration in 1s..1h (seconds, or a unit s, min, h, d)" },
                { REQUIRED "poll-interval = 2d\n",
                  "line 7: poll-interval: `2d' is not a duration in 1s..1d (seconds, or a unit s, min, h, d)" },
                { REQUIRED "token-ttl = 59\n",
                  "line 7: token-ttl: `59' is not a duration in 1min..30d (seconds, or a unit s, min, h, d)" },
                { REQUIRED "nix-cache = cache\n", "line 7: nix-cache: `cache' is not an absolute path without `..'" },
                { REQUIRED "listen =\n", "line 7: listen: empty value" },
                { "[server]\n" REQUIRED, "line 1: unknown section [server]" },
                { REQUIRED "approvers = alice, bob smith\n", "line 7: approvers: `bob smith' is not a certificate name" },
                { REQUIRED "approvers = ,\n", "line 7: approvers: empty value" },
                { REQUIRED "scheduler-interval = 0\n",
                  "line 7: scheduler-interval: `0' is not a duration in 1s..1h (seconds, or a unit s, min, h, d)" },
                { REQUIRED "silent-polls = 0\n", "line 7: silent-polls: `0' is not a number in 1..10000" },
        };
        struct server_config c;
        (void) state;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int r = sc(bad[i].text, &c);
                if (r != -RINGIL_EMALFORMED || !streq(ringil_detail(), bad[i].detail))
                        fail_msg("case %zu: %d `%s', want `%s'", i, r, ringil_detail(), bad[i].detail);
                assert_null(c.db);   /* freed and zeroed on failure */
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults_and_values),
                cmocka_unit_test(test_refusals),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
