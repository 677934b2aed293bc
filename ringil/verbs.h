/* verbs.h: entry points of the top-level ringil verbs, one source file each. */
#pragma once

int verb_version(int argc, char *argv[]);

/* keys (issue 3) */
int verb_keys(int argc, char *argv[]);

/* efi (issue 3) */
int verb_efi(int argc, char *argv[]);

/* bundle (issue 4) */
int verb_bundle(int argc, char *argv[]);
extern char bundle_usage[];

/* install (issue 5) */
int verb_install(int argc, char *argv[]);
int verb_mark_good(int argc, char *argv[]);
int verb_mark_bad(int argc, char *argv[]);
int verb_status(int argc, char *argv[]);
int verb_health(int argc, char *argv[]);
extern char install_usage[], mark_good_usage[], mark_bad_usage[], status_usage[], health_usage[];

/* audit (issue 6) */
int verb_audit(int argc, char *argv[]);
extern const char audit_usage[];

/* fleet (issue 7) */
int verb_ca(int argc, char *argv[]);

