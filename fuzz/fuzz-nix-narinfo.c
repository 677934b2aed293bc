/* fuzz-nix-narinfo.c: narinfo text from a hostile cache: parse, fingerprint, signature check, nix32. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "nix-narinfo.h"

static const char *const known[] = {
        "le84IVF4uvW5g/tX0e3WaCSRDrd0aHfN8eykys+SmYAafF91Llc8tay2vEQx6f78IPfsfh6rf/i12Qk2yH2mDg==",
        "65PUccXF2Yuccr+D2pwIb2+JVwp6DsM5Kr7MmkOxfjdKsrc3lnO/Djca2Qhal0S08yZ8AK3Jb3Vyc+Z8F9x4Bg==",
        "4AZB891uMvaCwQ1HCh+vIxxNQjJJCXGR5TDOVNwvrl3lrPKB43W0CgnM6AAQRbACWr1FBI/R+CnUe/nY8T4PCg==",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct narinfo ni;
        char *fp = NULL;
        uint8_t h[32];

        if (narinfo_parse((const char *) data, size, &ni) >= 0) {
                /* What the parser promises the mirror: a store path, a relative nar/ URL, sane references. */
                if (!nix_store_path_valid(ni.store_path) || strncmp(ni.url, "nar/", 4) != 0 || ni.url[4] == '.' ||
                    ni.url[4] == '\0' || strchr(ni.url + 4, '/') || ni.nar_size == 0 || ni.n_refs > NARINFO_MAX_REFS)
                        abort();
                if (narinfo_fingerprint(&ni, &fp) >= 0)
                        free(fp);
                /* A fuzzer cannot forge ed25519: only the seeds' own signatures (made by Nix) may verify. */
                if (narinfo_verify(&ni, "fleet-1:GVNA7enkDDPlSaC+ycZSYJpmY8Jfk5x1qX11e5jSiSM=") == 0) {
                        bool seed = false;
                        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                                seed |= memmem(data, size, known[i], strlen(known[i])) != NULL;
                        if (!seed)
                                abort();
                }
                narinfo_done(&ni);
        }
        if (size >= 52) {
                char s[53];
                memcpy(s, data, 52);
                s[52] = '\0';
                if (nix32_decode(s, h, 32) >= 0) {
                        char back[53];
                        nix32_encode(h, 32, back);
                        if (strcmp(back, s) != 0)
                                abort();   /* decode accepts only canonical encodings */
                }
        }
        return 0;
}
