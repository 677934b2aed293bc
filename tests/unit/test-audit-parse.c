/* test-audit-parse.c: the auditor's parsers: accounts, loader.conf, INI merge, udev, /proc/net, cmdline, LUKS2. */
#include "tests.h"

#include "audit-parse.h"
#include "crypto.h"
#include "err.h"
#include "macro.h"

#define S(x) x, sizeof(x) - 1

static void test_passwd_shadow(void **state) {
        struct pw_list l = {};
        (void) state;

        assert_int_equal(audit_parse_passwd(S("root:x:0:0:root:/root:/bin/bash\n# c\nnobody:x:65534:65534::/:/sbin/nologin\n"), &l), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.v[1].uid, 65534);
        assert_string_equal(l.v[1].shell, "/sbin/nologin");
        assert_non_null(pw_list_find(&l, "root"));
        pw_list_free(&l);
        assert_int_equal(audit_parse_passwd(S("root:x:0:0:/root:/bin/bash\n"), &l), -RINGIL_EMALFORMED);
        assert_int_equal(audit_parse_passwd(S("root:x:-1:0::/root:/bin/bash\n"), &l), -RINGIL_EMALFORMED);
        assert_int_equal(audit_parse_passwd(S("root:x:4294967296:0::/root:/bin/bash\n"), &l), -RINGIL_EMALFORMED);
        assert_int_equal(audit_parse_passwd("a:x:0:0::/:/b\0", 14, &l), -RINGIL_EMALFORMED);
        assert_int_equal(audit_parse_shadow(S("root:!:1::::::\npilot::1::::::\n"), &l), 0);
        assert_string_equal(l.v[0].passwd, "!");
        assert_string_equal(l.v[1].passwd, "");
        pw_list_free(&l);
        assert_int_equal(audit_parse_shadow(S("root\n"), &l), -RINGIL_EMALFORMED);
}

static void test_record_cap(void **state) {
        struct pw_list l = {};
        size_t n = (AUDIT_RECORDS_MAX + 1) * 2;
        char *big = malloc(n);
        (void) state;
        for (size_t i = 0; i < n; i += 2)
                memcpy(big + i, "#\n", 2);
        assert_int_equal(audit_parse_shadow(big, n, &l), -RINGIL_ETOOBIG);
        free(big);
        assert_int_equal(audit_parse_shadow("x", AUDIT_TEXT_MAX + 1, &l), -RINGIL_ETOOBIG);
}

static void test_loader_conf(void **state) {
        struct kvlist l = {};
        (void) state;
        assert_int_equal(audit_parse_loader_conf(S("# x\ntimeout 3\n  editor   no  \ntimeout 0\ndefault nixos-*\nauto-entries\n"), &l), 0);
        assert_string_equal(kvlist_get(&l, "timeout"), "0");   /* later wins */
        assert_string_equal(kvlist_get(&l, "editor"), "no");
        assert_string_equal(kvlist_get(&l, "auto-entries"), "");
        assert_null(kvlist_get(&l, "auto-firmware"));
        kvlist_free(&l);
}

static void test_ini(void **state) {
        struct kvlist l = {};
        (void) state;
        assert_int_equal(audit_parse_ini_section(S("[Journal]\nStorage=auto\n[Other]\nStorage=x\n"), "Journal", &l), 0);
        assert_int_equal(audit_parse_ini_section(S("# drop-in\n[Journal]\n Storage = volatile \nRuntimeMaxUse=50M\n"), "Journal", &l), 0);
        assert_string_equal(kvlist_get(&l, "Storage"), "volatile");
        assert_string_equal(kvlist_get(&l, "RuntimeMaxUse"), "50M");
        /* a malformed file adds nothing */
        assert_int_equal(audit_parse_ini_section(S("[Journal]\nStorage=persistent\njunk\n"), "Journal", &l), -RINGIL_EMALFORMED);
        assert_string_equal(kvlist_get(&l, "Storage"), "volatile");
        assert_int_equal(audit_parse_ini_section(S("Storage=x\n"), "Journal", &l), -RINGIL_EMALFORMED);
        assert_int_equal(audit_parse_ini_section(S("[Journal\n"), "Journal", &l), -RINGIL_EMALFORMED);
        kvlist_free(&l);
}

static void test_udev(void **state) {
        struct kvlist l = {};
        (void) state;
        assert_int_equal(audit_parse_udev_data(S("S:disk/by-id/x\nN:nvme0n1p2\nE:ID_FS_TYPE=crypto_LUKS\nE:ID_FS_VERSION=2\nG:systemd\n"), &l), 0);
        assert_string_equal(kvlist_get(&l, "N"), "nvme0n1p2");
        assert_string_equal(kvlist_get(&l, "ID_FS_TYPE"), "crypto_LUKS");
        kvlist_free(&l);
        assert_int_equal(audit_parse_udev_data(S("E:NOEQUALS\n"), &l), -RINGIL_EMALFORMED);
}

static void test_proc_net(void **state) {
        struct net_list l = {};
        static const char tcp[] =
                "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
                "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
                "   1: 0100007F:C350 0100007F:0016 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n";
        static const char tcp6[] =
                "  sl  local_address                         remote_address                        st\n"
                "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0\n";
        (void) state;
        assert_int_equal(audit_parse_proc_net(S(tcp), &l), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.v[0].port, 22);
        assert_int_equal(l.v[0].state, 0x0A);
        assert_int_equal(l.v[1].port, 0xC350);
        net_list_free(&l);
        assert_int_equal(audit_parse_proc_net(S(tcp6), &l), 0);
        assert_int_equal(l.v[0].port, 8080);
        net_list_free(&l);
        assert_int_equal(audit_parse_proc_net(S("hdr\n   0: 0000:0016 x 0A\n"), &l), -RINGIL_EMALFORMED);
        assert_int_equal(audit_parse_proc_net(S("hdr\n   0: 00000000:00G6 00000000:0000 0A\n"), &l), -RINGIL_EMALFORMED);
        assert_int_equal(audit_parse_proc_net(S("hdr\n   0: 00000000:0016 00000000:0000\n"), &l), -RINGIL_EMALFORMED);
        assert_int_equal(audit_parse_proc_net("", 0, &l), -RINGIL_ETRUNCATED);
}

static void test_route_lookup(void **state) {
        /* on this (little-endian) test host the kernel prints 10.77.0.1 as 01004D0A */
        static const char v4[] =
                "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
                "eth0\t00000000\t01020A0A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                "ringil0\t00004D0A\t00000000\t0001\t0\t0\t100\t0000FFFF\t0\t0\t0\n"
                "wwan0\t00004D0A\t00000000\t0001\t0\t0\t50\t0000FFFF\t0\t0\t0\n"
                "down0\t01004D0A\t00000000\t0000\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n";
        static const char v6[] =
                "fd770000000000000000000000000000 40 00000000000000000000000000000000 00 "
                "00000000000000000000000000000000 00000100 00000001 00000000 00000001  ringil0\n"
                "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                "fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n";
        uint8_t a4[16] = { 10, 77, 0, 1 }, other[16] = { 192, 0, 2, 1 };
        uint8_t a6[16] = { 0xfd, 0x77, [15] = 1 }, b6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
        struct audit_route r;
        (void) state;
        /* longest prefix, then lowest metric; a route that is not up does not count */
        assert_int_equal(audit_route_lookup(S(v4), 4, a4, &r), 0);
        assert_string_equal(r.iface, "wwan0");
        assert_int_equal(r.prefix, 16);
        assert_int_equal(r.metric, 50);
        assert_int_equal(audit_route_lookup(S(v4), 4, other, &r), 0);
        assert_string_equal(r.iface, "eth0");
        assert_int_equal(r.prefix, 0);
        assert_int_equal(audit_route_lookup(S(v6), 6, a6, &r), 0);
        assert_string_equal(r.iface, "ringil0");
        assert_int_equal(r.prefix, 64);
        assert_int_equal(audit_route_lookup(S(v6), 6, b6, &r), 0);
        assert_string_equal(r.iface, "eth0");
        /* no route; an empty ipv6_route is "no IPv6 routes"; /proc/net/route always has its header */
        assert_int_equal(audit_route_lookup(S("Iface\tDestination\n"), 4, a4, &r), -ENOENT);
        assert_int_equal(audit_route_lookup("", 0, 6, a6, &r), -ENOENT);
        assert_int_equal(audit_route_lookup("", 0, 4, a4, &r), -RINGIL_ETRUNCATED);
        /* malformed: no header, bad hex, a mask with holes, an interface name longer than IFNAMSIZ, NUL */
        assert_int_equal(audit_route_lookup(S("eth0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\n"), 4, a4, &r),
                         -RINGIL_EMALFORMED);
        assert_int_equal(audit_route_lookup(S("Iface\nx\t0000000G\t00000000\t0001\t0\t0\t0\t00000000\n"), 4, a4, &r),
                         -RINGIL_EMALFORMED);
        assert_int_equal(audit_route_lookup(S("Iface\nx\t00000000\t00000000\t0001\t0\t0\t0\tFF00FF00\n"), 4, a4, &r),
                         -RINGIL_EMALFORMED);
        assert_int_equal(audit_route_lookup(S("Iface\nabcdefghijklmnopq\t00000000\t00000000\t0001\t0\t0\t0\t00000000\n"), 4,
                                            a4, &r), -RINGIL_EMALFORMED);
        assert_int_equal(audit_route_lookup("Iface\n\0", 7, 4, a4, &r), -RINGIL_EMALFORMED);
        assert_int_equal(audit_route_lookup(S("fd77 40 x\n"), 6, a6, &r), -RINGIL_EMALFORMED);
}

static void test_cmdline(void **state) {
        struct strv s = {};
        (void) state;
        assert_int_equal(audit_parse_cmdline(S("quiet  loglevel=0 dyndbg=\"file x.c +p\" console=tty0\n"), &s), 0);
        assert_int_equal(s.n, 4);
        assert_string_equal(s.v[2], "dyndbg=file x.c +p");
        assert_true(strv_contains(&s, "console=tty0"));
        strv_done(&s);
        assert_int_equal(audit_parse_cmdline(S("a=\"b\n"), &s), -RINGIL_EMALFORMED);
}

/* A minimal valid LUKS2 header around json, with a correct checksum. */
static uint8_t *luks2(const char *json, size_t hs, bool fix_csum) {
        uint8_t *b = calloc(1, hs), d[SHA256_LEN];
        memcpy(b, "LUKS\xba\xbe\x00\x02", 8);
        for (int i = 0; i < 8; i++)
                b[8 + i] = (uint8_t) ((uint64_t) hs >> (56 - 8 * i));
        memcpy(b + 72, "sha256", 6);
        memcpy(b + 168, "6c1f0a9e-2b7d-4e35-8c4a-91d0f3b2e5a8", 36);
        memcpy(b + 4096, json, strlen(json));
        if (fix_csum) {
                crypto_sha256(b, hs, d);
                memcpy(b + 448, d, SHA256_LEN);
        }
        return b;
}

static void test_luks2(void **state) {
        static const char js[] =
                "{\"keyslots\":{\"0\":{\"type\":\"luks2\",\"key_size\":64,\"kdf\":{\"type\":\"argon2id\"}},"
                "\"1\":{\"type\":\"luks2\",\"key_size\":64,\"kdf\":{\"type\":\"pbkdf2\"}}},"
                "\"tokens\":{\"0\":{\"type\":\"systemd-tpm2\",\"keyslots\":[\"1\"],\"tpm2-pcrs\":[0,7],"
                "\"tpm2-pin\":true,\"tpm2_srk\":\"AA==\"}},"
                "\"segments\":{\"0\":{\"type\":\"crypt\",\"encryption\":\"aes-xts-plain64\",\"sector_size\":4096}},"
                "\"digests\":{},\"config\":{}}";
        struct luks2_info info;
        uint8_t *b = luks2(js, 16384, true);
        size_t hs;
        (void) state;

        assert_int_equal(audit_luks2_header_size(b, 4096, &hs), 0);
        assert_int_equal(hs, 16384);
        assert_int_equal(audit_parse_luks2(b, 16384, &info), 0);
        assert_string_equal(info.cipher, "aes-xts-plain64");
        assert_int_equal(info.sector_size, 4096);
        assert_int_equal(info.n_keyslots, 2);
        assert_int_equal(info.n_tokens, 1);
        assert_int_equal(info.tokens[0].pcr_mask, (1u << 0) | (1u << 7));
        assert_true(info.tokens[0].pin && info.tokens[0].srk && !info.tokens[0].pcrlock);
        assert_int_equal(info.keyslots[1].token, 0);
        assert_int_equal(info.keyslots[0].token, -1);
        assert_string_equal(info.uuid, "6c1f0a9e-2b7d-4e35-8c4a-91d0f3b2e5a8");
        /* truncated, tampered, bad sizes */
        assert_int_equal(audit_parse_luks2(b, 8192, &info), -RINGIL_ETRUNCATED);
        b[5000] ^= 1;
        assert_int_equal(audit_parse_luks2(b, 16384, &info), -RINGIL_EDIGEST);
        free(b);
        b = luks2("{\"keyslots\":{},\"tokens\":{},\"segments\":{}", 16384, true);
        assert_int_equal(audit_parse_luks2(b, 16384, &info), -RINGIL_EMALFORMED);
        free(b);
        b = luks2("{\"keyslots\":{},\"tokens\":{\"0\":{\"type\":\"systemd-tpm2\",\"keyslots\":[],\"tpm2-pcrs\":[24]}},\"segments\":{}}", 16384, true);
        assert_int_equal(audit_parse_luks2(b, 16384, &info), -RINGIL_EMALFORMED);
        free(b);
        b = luks2(js, 12288, false);
        assert_int_equal(audit_luks2_header_size(b, 4096, &hs), -RINGIL_EMALFORMED);
        b[7] = 1;
        assert_int_equal(audit_luks2_header_size(b, 4096, &hs), -RINGIL_EMALFORMED);
        assert_int_equal(audit_luks2_header_size(b, 100, &hs), -RINGIL_ETRUNCATED);
        free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_passwd_shadow),
                cmocka_unit_test(test_record_cap),
                cmocka_unit_test(test_loader_conf),
                cmocka_unit_test(test_ini),
                cmocka_unit_test(test_udev),
                cmocka_unit_test(test_proc_net),
                cmocka_unit_test(test_route_lookup),
                cmocka_unit_test(test_cmdline),
                cmocka_unit_test(test_luks2),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
