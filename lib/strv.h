/* strv.h: a list of owned strings, the library's one string-list type (command lines, profile lists,
 * directory listings). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * v[0..n) are malloc'd strings owned by the list; v[n] is NULL whenever v is (so v can be handed to
 * anything taking a NULL-terminated array). A zeroed struct is the empty list. Callers cap n themselves
 * where the strings come from untrusted input.
 */
struct strv {
        char **v;
        size_t n;
        size_t alloc;   /* slots in v, the NULL terminator included */
};

/* Free every string and the array; leaves s empty (safe to call again, and on an empty list). */
void strv_done(struct strv *s);
static inline void strv_donep(struct strv *s) {
        strv_done(s);
}
#define _cleanup_strv_ __attribute__((cleanup(strv_donep)))

/* Append a copy of x. -ENOMEM leaves s as it was. */
int strv_push(struct strv *s, const char *x);
/* Append x itself, taking ownership (freed on failure too). -ENOMEM leaves s as it was. */
int strv_consume(struct strv *s, char *x);

/* Exact match of one element. */
bool strv_contains(const struct strv *s, const char *x);
/* x matches one element as an fnmatch(3) pattern (flags 0). */
bool strv_fnmatch(const struct strv *s, const char *x);

/* Sort the elements by strcmp(). */
void strv_sort(struct strv *s);

/* The elements joined with sep ("" for an empty list); malloc'd, NULL on -ENOMEM. */
char *strv_join(const struct strv *s, const char *sep);
