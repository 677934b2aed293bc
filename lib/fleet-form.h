/* fleet-form.h: HTML form bodies and URL query strings (application/x-www-form-urlencoded), decoded strictly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * The dashboard's forms and query strings: "name=value&name=value", '+' a space, "%XX" one byte.
 * Limits: at most FORM_MAX_INPUT bytes, FORM_MAX_FIELDS fields, names of [A-Za-z0-9_-] up to
 * FORM_MAX_NAME bytes, values up to FORM_MAX_VALUE bytes once decoded. Refused with
 * -RINGIL_EMALFORMED: a '%' not followed by two hex digits, an empty or invalid name, a field without
 * '=', a repeated name (one meaning per name: no parameter pollution), and a decoded value that
 * escape_needed() would change (control bytes, invalid UTF-8, line and bidi controls); over a
 * limit: -RINGIL_ETOOBIG. Empty fields ("a=1&&b=2", a trailing '&') are skipped.
 */
#define FORM_MAX_INPUT 16384
#define FORM_MAX_FIELDS 32
#define FORM_MAX_NAME 32
#define FORM_MAX_VALUE 1024

struct form_field {
        const char *name;
        const char *value;
};

struct form {
        struct form_field f[FORM_MAX_FIELDS];
        size_t n;
        char *storage;   /* the decoded names and values point into it */
};

/* On failure *ret is left empty (form_done() is still safe on it). */
int form_parse(const char *data, size_t len, struct form *ret);
void form_done(struct form *f);
/* The value of name, or NULL when the form has no such field. */
const char *form_get(const struct form *f, const char *name);

/*
 * Percent-encode s for a query value into out (size bytes, NUL-terminated): [A-Za-z0-9._~-] kept,
 * everything else %XX. Returns out, or NULL when it does not fit (out is then "").
 */
char *form_encode(const char *s, char *out, size_t size);
