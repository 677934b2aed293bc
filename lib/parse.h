/* parse.h: checked number parsing: whole string, no sign surprises, range-checked. */
#pragma once

#include <stdint.h>
#include <time.h>

/*
 * All return 0 and set *ret only on success; -EINVAL for anything that is not exactly a number
 * (empty, leading space or '+'/'-', trailing junk), -ERANGE when it does not fit.
 */
int parse_u64(const char *s, uint64_t *ret);
int parse_uint(const char *s, unsigned *ret);
int parse_u32_range(const char *s, uint32_t min, uint32_t max, uint32_t *ret);

/* Decimal with optional K/M/G/T suffix (powers of 1024). */
int parse_size(const char *s, uint64_t *ret);

/*
 * A point in time: "@SECONDS" (Unix epoch), "YYYY-MM-DD" (00:00 UTC) or "YYYY-MM-DDTHH:MM:SSZ".
 * Always UTC.
 */
int parse_time(const char *s, int64_t *ret);

/* Value of one hex digit (either case), or -1. */
int unhexchar(char c);

/* Format a Unix time as "YYYY-MM-DDTHH:MM:SSZ"; buf must hold 21 bytes. */
char *format_time(int64_t t, char buf[static 21]);
