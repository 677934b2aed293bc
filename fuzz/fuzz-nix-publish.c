/* fuzz-nix-publish.c: the publish envelope's header line and `nix path-info` records: parse, order, narinfo text read back. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nix-cache.h"
#include "nix-publish.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct nix_path_infos pi = {};
        size_t consumed, n;

        if (nix_upload_header_parse((const char *) data, size, &consumed, &n) == 0 &&
            (consumed > size || consumed > NIX_UPLOAD_HEADER_MAX || n == 0 || n > NARINFO_MAX))
                abort();
        if (nix_path_infos_parse((const char *) data, size, &pi) >= 0) {
                /* every record we keep formats into a narinfo our own strict parser accepts */
                for (size_t i = 0; i < pi.n && i < 8; i++) {
                        struct buf b = {};
                        struct narinfo ni;
                        if (nix_narinfo_format(&pi.v[i], &b) < 0)
                                continue;
                        if (narinfo_parse((const char *) b.data, b.len, &ni) < 0 || strcmp(ni.store_path, pi.v[i].path) != 0)
                                abort();
                        narinfo_done(&ni);
                        buf_free(&b);
                }
                (void) nix_path_infos_toposort(&pi);
                nix_path_infos_done(&pi);
        }
        return 0;
}
