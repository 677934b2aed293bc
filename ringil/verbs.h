/* verbs.h: entry points of the top-level ringil verbs, one source file each. */
#pragma once

#include "verb.h"

int verb_version(int argc, char *argv[]);

/* keys */
extern const struct verb_group keys_group;

/* efi */
extern const struct verb_group efi_group;

/* bundle */
extern const struct verb_group bundle_group;

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
extern const struct verb_group ca_group;
int verb_release(int argc, char *argv[]);
extern char release_usage[];

