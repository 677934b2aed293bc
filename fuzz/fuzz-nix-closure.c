/* fuzz-nix-closure.c: the closure listing a bundle carries, and `nix path-info --json` output read back. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "nix-closure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct nix_closure c, d;
        struct buf out;

        if (nix_closure_parse((const char *) data, size, &c) >= 0) {
                /* Canonical: formatting what parsed gives back exactly the input. */
                if (nix_closure_format(&c, &out) < 0)
                        abort();
                if (out.len != size || memcmp(out.data, data, size) != 0)
                        abort();
                buf_free(&out);
                for (size_t i = 0; i < c.n; i++)
                        if (nix_closure_find(&c, c.v[i].path) != &c.v[i] || !nix_store_path_valid(c.v[i].path))
                                abort();
                if (nix_closure_compare(&c, &c) != 0)
                        abort();
                nix_closure_done(&c);
        }
        if (nix_closure_from_path_info((const char *) data, size, &d) >= 0) {
                for (size_t i = 1; i < d.n; i++)
                        if (strcmp(d.v[i - 1].path, d.v[i].path) >= 0)
                                abort();
                nix_closure_done(&d);
        }
        return 0;
}
