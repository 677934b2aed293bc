/* log.h: leveled logging to stderr; under systemd, with <N> priority prefixes for journald. */
#pragma once

#include <syslog.h>

#include "macro.h"

/*
 * Programs log; library code only logs at debug level and otherwise returns errors (see err.h).
 * There is no file target on purpose: drones keep logs in RAM only (journald Storage=volatile).
 */
void log_setup(const char *ident);      /* picks up RINGIL_LOG_LEVEL and JOURNAL_STREAM */
void log_set_max_level(int level);      /* LOG_ERR … LOG_DEBUG */
int log_get_max_level(void);

/* Returns -abs(error) (or 0 when error is 0), so callers can `return log_error_errno(r, …)`. */
int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...) log_internal((level), (error), __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)
