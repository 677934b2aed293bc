/* strv.c: the string list: growth by doubling, copy or take-over appends, lookup, sort, join. */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "strv.h"

void strv_done(struct strv *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
        *s = (struct strv) {};
}

int strv_consume(struct strv *s, char *x) {
        if (!x)
                return -ENOMEM;
        /* Room for x and the NULL after it. */
        if (s->n + 2 > s->alloc) {
                size_t na = s->alloc ? s->alloc * 2 : 8;
                char **nv;

                if (na < s->alloc || na < s->n + 2) {
                        free(x);
                        return -ENOMEM;
                }
                nv = reallocarray(s->v, na, sizeof(char *));
                if (!nv) {
                        free(x);
                        return -ENOMEM;
                }
                s->v = nv;
                s->alloc = na;
        }
        s->v[s->n++] = x;
        s->v[s->n] = NULL;
        return 0;
}

int strv_push(struct strv *s, const char *x) {
        return strv_consume(s, strdup(x));
}

bool strv_contains(const struct strv *s, const char *x) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->v[i], x))
                        return true;
        return false;
}

bool strv_fnmatch(const struct strv *s, const char *x) {
        for (size_t i = 0; i < s->n; i++)
                if (fnmatch(s->v[i], x, 0) == 0)
                        return true;
        return false;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

void strv_sort(struct strv *s) {
        if (s->n > 1)
                qsort(s->v, s->n, sizeof(char *), cmp_str);
}

char *strv_join(const struct strv *s, const char *sep) {
        size_t n = 1, k = strlen(sep);
        char *o, *p;

        for (size_t i = 0; i < s->n; i++)
                n += strlen(s->v[i]) + (i ? k : 0);
        o = p = malloc(n);
        if (!o)
                return NULL;
        for (size_t i = 0; i < s->n; i++) {
                if (i) {
                        memcpy(p, sep, k);
                        p += k;
                }
                size_t l = strlen(s->v[i]);
                memcpy(p, s->v[i], l);
                p += l;
        }
        *p = '\0';
        return o;
}
