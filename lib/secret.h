/* secret.h: wiping key material so it does not outlive its use in memory (cold-boot threat). */
#pragma once

#include <stddef.h>

/* Overwrite n bytes in a way the compiler may not elide (explicit_bzero). NULL-safe. */
void secret_wipe(void *p, size_t n);
/* Wipe n bytes, then free. NULL-safe. */
void secret_free(void *p, size_t n);
/* Wipe a NUL-terminated string, then free it. NULL-safe. */
void secret_free_str(char *s);

static inline void secret_free_strp(char **s) {
        secret_free_str(*s);
}
#define _cleanup_secret_str_ __attribute__((cleanup(secret_free_strp)))
