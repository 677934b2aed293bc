/* verbs.h: entry points of the top-level ringil verbs, one source file each. */
#pragma once

int verb_version(int argc, char *argv[]);

/* keys (issue 3) */
int verb_keys(int argc, char *argv[]);

/* efi (issue 3) */
int verb_efi(int argc, char *argv[]);

/* bundle (issue 4) */

/* install (issue 5) */

/* audit (issue 6) */
int verb_audit(int argc, char *argv[]);
extern const char audit_usage[];

/* fleet (issue 7) */

