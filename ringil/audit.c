/* audit.c: `ringil audit`: check a running drone, or a mounted image with --root, against a profile. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "err.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "verb.h"
#include "verbs.h"

const char audit_usage[] =
        "Usage: ringil audit [OPTIONS]\n"
        "       ringil audit --list\n"
        "       ringil audit --print-profile prod|dev|FILE\n\n"
        "Check a running drone (or a mounted image) against the prod or dev hardening profile: Secure Boot\n"
        "state and enrolled keys, boot loader, kernel command line and sysctls, LUKS2/TPM2 disks, cold-boot\n"
        "mitigations, accounts, services, logs and NixOS drift. Every file is read inside --root (absolute\n"
        "symlinks included); no external program is run.\n\n"
        "Options:\n"
        "  -r, --root DIR        audit the tree at DIR instead of / (a mounted image or a fixture)\n"
        "  -m, --mode MODE       live|offline|auto (default auto: live when DIR/proc/cmdline exists)\n"
        "  -p, --profile P       prod (default), dev, or a JSON profile file (may set \"base\")\n"
        "  -f, --format F        text (default), json, junit, sarif\n"
        "      --fail-on SEV     exit 2 on a fail at or above SEV: info|low|medium|high|critical (default high)\n"
        "  -w, --waivers FILE    JSON waivers: {\"waivers\":[{\"id\",\"rationale\",\"expires\"}]}\n"
        "  -o, --output FILE     write the report to FILE (atomically) instead of stdout\n"
        "      --list            print the check catalogue and exit\n"
        "      --print-profile P print the merged profile P as JSON and exit\n\n"
        "Exit codes (ringil audit only):\n"
        "  0  compliant: no fail at or above --fail-on, nothing left unchecked\n"
        "  1  usage or internal error (bad option, unreadable profile or waivers, unknown check id)\n"
        "  2  at least one check failed at or above --fail-on\n"
        "  3  nothing failed, but at least one check could not be evaluated (error)\n";

static int list_checks(void) {
        for (size_t i = 0; i < audit_n_checks; i++) {
                const struct audit_check *c = &audit_checks[i];
                printf("%-8s %-10s %-8s %-7s %s  [%s]\n", c->id, c->area, audit_severity_to_string(c->severity),
                       audit_scope_to_string(c->scope), c->title, c->serves);
        }
        return AUDIT_EXIT_OK;
}

int verb_audit(int argc, char *argv[]) {
        enum { ARG_FAIL_ON = 0x100, ARG_LIST, ARG_PRINT_PROFILE };
        static const struct option options[] = {
                { "root", required_argument, NULL, 'r' },
                { "mode", required_argument, NULL, 'm' },
                { "profile", required_argument, NULL, 'p' },
                { "format", required_argument, NULL, 'f' },
                { "fail-on", required_argument, NULL, ARG_FAIL_ON },
                { "waivers", required_argument, NULL, 'w' },
                { "output", required_argument, NULL, 'o' },
                { "list", no_argument, NULL, ARG_LIST },
                { "print-profile", required_argument, NULL, ARG_PRINT_PROFILE },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *root = NULL, *profile_name = "prod", *waivers_path = NULL, *output = NULL, *print_profile = NULL;
        enum audit_format fmt = AUDIT_FORMAT_TEXT;
        enum audit_severity fail_on = AUDIT_SEV_HIGH;
        enum audit_mode mode = AUDIT_MODE_AUTO;
        struct audit_profile profile = {};
        struct audit_waivers waivers = {};
        struct audit_run run = {};
        _cleanup_free_ char *report = NULL;
        int c, r, code;

        while ((c = getopt_long(argc, argv, "hr:m:p:f:w:o:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        fputs(audit_usage, stdout);
                        return AUDIT_EXIT_OK;
                case 'r':
                        root = optarg;
                        break;
                case 'm':
                        if (streq(optarg, "live"))
                                mode = AUDIT_MODE_LIVE;
                        else if (streq(optarg, "offline"))
                                mode = AUDIT_MODE_OFFLINE;
                        else if (streq(optarg, "auto"))
                                mode = AUDIT_MODE_AUTO;
                        else
                                return usage_error("audit: unknown mode '%s'", optarg), AUDIT_EXIT_USAGE;
                        break;
                case 'p':
                        profile_name = optarg;
                        break;
                case 'f':
                        if (streq(optarg, "text"))
                                fmt = AUDIT_FORMAT_TEXT;
                        else if (streq(optarg, "json"))
                                fmt = AUDIT_FORMAT_JSON;
                        else if (streq(optarg, "junit"))
                                fmt = AUDIT_FORMAT_JUNIT;
                        else if (streq(optarg, "sarif"))
                                fmt = AUDIT_FORMAT_SARIF;
                        else
                                return usage_error("audit: unknown format '%s'", optarg), AUDIT_EXIT_USAGE;
                        break;
                case ARG_FAIL_ON:
                        if (audit_severity_from_string(optarg, &fail_on) < 0)
                                return usage_error("audit: unknown severity '%s'", optarg), AUDIT_EXIT_USAGE;
                        break;
                case 'w':
                        waivers_path = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case ARG_LIST:
                        return list_checks();
                case ARG_PRINT_PROFILE:
                        print_profile = optarg;
                        break;
                default:
                        return AUDIT_EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("audit: unexpected argument '%s'", argv[optind]), AUDIT_EXIT_USAGE;

        r = audit_profile_load(print_profile ? print_profile : profile_name, &profile);
        if (r < 0) {
                log_error_errno(r, "audit: profile '%s': %s%s%s", print_profile ? print_profile : profile_name,
                                ringil_strerror(r), *ringil_detail() ? ": " : "", ringil_detail());
                return AUDIT_EXIT_USAGE;
        }
        if (print_profile) {
                char *s = json_dumps(profile.doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
                if (s)
                        puts(s);
                free(s);
                audit_profile_done(&profile);
                return AUDIT_EXIT_OK;
        }
        if (waivers_path) {
                _cleanup_free_ uint8_t *w = NULL;
                size_t len;
                r = read_full_file(waivers_path, 0, AUDIT_WAIVERS_MAX_SIZE, &w, &len);
                if (r >= 0)
                        r = audit_waivers_parse((const char *) w, len, &waivers);
                if (r < 0) {
                        log_error_errno(r, "audit: waivers '%s': %s%s%s", waivers_path, ringil_strerror(r),
                                        *ringil_detail() ? ": " : "", ringil_detail());
                        audit_profile_done(&profile);
                        return AUDIT_EXIT_USAGE;
                }
        }
        r = audit_run(root, mode, &profile, waivers_path ? &waivers : NULL, (int64_t) time(NULL), &run);
        audit_profile_done(&profile);
        audit_waivers_done(&waivers);
        if (r < 0) {
                log_error_errno(r, "audit: %s%s%s", ringil_strerror(r), *ringil_detail() ? ": " : "", ringil_detail());
                return AUDIT_EXIT_USAGE;
        }
        code = audit_exit_code(&run, fail_on);
        r = audit_report(&run, fmt, fail_on, &report);
        audit_run_done(&run);
        if (r < 0) {
                log_error_errno(r, "audit: cannot render report: %s", ringil_strerror(r));
                return AUDIT_EXIT_USAGE;
        }
        if (output) {
                size_t n = strlen(report);
                r = atomic_write_file(output, report, n, 0644, 0);
                if (r < 0) {
                        log_error_errno(r, "audit: cannot write '%s': %s", output, ringil_strerror(r));
                        return AUDIT_EXIT_USAGE;
                }
        } else {
                fputs(report, stdout);
                if (fmt != AUDIT_FORMAT_TEXT)
                        fputc('\n', stdout);
        }
        return code;
}
