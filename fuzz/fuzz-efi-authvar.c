/* fuzz-efi-authvar.c: splitting hostile .auth payloads and decoding/verifying their PKCS#7 and signature lists. */
#include <stdlib.h>
#include <time.h>

#include "efi-authvar.h"
#include "fuzz.h"
#include "efi-keys.h"

static X509 *pinned;   /* generated once per process; nothing in the corpus is signed by it */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct auth_parts parts;
        struct esl_entry *e = NULL;
        size_t n;

        if (!pinned) {
                EVP_PKEY *key = NULL;
                if (keys_generate("fuzz", time(NULL), &key, &pinned) < 0)
                        abort();
                EVP_PKEY_free(key);
        }
        if (auth_parse(data, size, &parts) < 0)
                return 0;
        if (parts.sig < data || parts.sig + parts.sig_len > data + size || parts.esl + parts.esl_len != data + size)
                abort();
        if (esl_parse(parts.esl, parts.esl_len, &e, &n) >= 0)
                free(e);
        /* Decodes the PKCS#7 (bare SignedData or ContentInfo); must never accept a foreign signer. */
        if (auth_verify(data, size, "db", &EFI_IMAGE_SECURITY_DATABASE_GUID, AUTH_ATTRIBUTES, pinned) == 0)
                abort();
        return 0;
}
