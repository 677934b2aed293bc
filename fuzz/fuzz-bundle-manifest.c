/* fuzz-bundle-manifest.c: the strict JSON manifest parser of update bundles on arbitrary bytes. */
#include "bundle.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct bundle_manifest *m = NULL;

        if (size > (4u << 20))
                return 0;
        if (bundle_manifest_parse(data, size, &m) >= 0) {
                /* a parsed manifest is internally consistent: check the invariants the API promises */
                for (size_t i = 0; i < m->n_payloads; i++) {
                        const struct bundle_payload *p = &m->payloads[i];
                        if (!p->cdc && p->n_chunks != p->size / p->chunk_size + (p->size % p->chunk_size != 0))
                                __builtin_trap();
                        /* content-defined: the signed sizes tile the payload, none above max */
                        if (p->cdc && p->n_chunks > 0 && (p->chunk_end[p->n_chunks - 1] != p->size ||
                                                          bundle_chunk_len(p, 0) > p->cdc_max))
                                __builtin_trap();
                }
                if (version_valid(m->version) < 0 || m->expires <= m->created)
                        __builtin_trap();
                bundle_manifest_free(m);
        }
        return 0;
}
