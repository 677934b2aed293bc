/* verbs.h: entry points of the top-level ringil verbs, one source file each. */
#pragma once

int verb_version(int argc, char *argv[]);

/* keys */
int verb_keys(int argc, char *argv[]);

/* efi */
int verb_efi(int argc, char *argv[]);

/* bundle */
int verb_bundle(int argc, char *argv[]);
extern char bundle_usage[];

/* install */
int verb_install(int argc, char *argv[]);
int verb_mark_good(int argc, char *argv[]);
int verb_mark_bad(int argc, char *argv[]);
int verb_status(int argc, char *argv[]);
int verb_health(int argc, char *argv[]);
extern char install_usage[], mark_good_usage[], mark_bad_usage[], status_usage[], health_usage[];

/* audit */
int verb_audit(int argc, char *argv[]);
extern const char audit_usage[];

/* fleet */
int verb_ca(int argc, char *argv[]);
int verb_release(int argc, char *argv[]);
extern char release_usage[];

