/* vercmp.h: release versions ("1.2.10"): the one syntax every component accepts, and their numeric order. */
#pragma once

#define VERSION_MAX 64u          /* characters of a version string */
#define VERSION_MAX_COMPONENTS 16u
#define VERSION_MAX_DIGITS 18u   /* per component: always fits in a uint64_t */

/*
 * 0 when v is 1..VERSION_MAX_COMPONENTS dot-separated components of 1..VERSION_MAX_DIGITS decimal digits
 * (no sign, space, empty component or suffix; at most VERSION_MAX characters), else -RINGIL_EMALFORMED.
 * NULL is malformed.
 */
int version_valid(const char *v);

/*
 * Numeric order, component by component; a missing component counts as 0 ("1.2" == "1.2.0", "01" == "1").
 * Returns <0, 0 or >0. Both must be valid (version_valid() == 0): anti-rollback decisions rest on this.
 */
int version_compare(const char *a, const char *b);
