/* verbs.h: entry points of the top-level ringil verbs, one source file each. */
#pragma once

int verb_version(int argc, char *argv[]);
