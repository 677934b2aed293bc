/* fuzz-efi-uki.c: the kernel-image reader (format, machine, release) and the UKI builder on a fuzzed stub and kernel. */
#include <stdlib.h>
#include <string.h>

#include "efi-pe.h"
#include "efi-uki.h"
#include "fuzz.h"

/*
 * Input: u32 LE stub length N, N bytes of stub, the rest is the kernel. Inputs shorter than 4 bytes,
 * or with N past the end, are a kernel only. Fixed small initrd, command line and os-release.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t initrd[] = "070701 cpio";
        static const char osrel[] = "ID=fuzz\nVERSION_ID=1\n";
        struct uki_kernel k;
        struct uki_params p;
        struct uki_blob initrds[1] = { { initrd, sizeof(initrd), "initrd" } };
        struct uki_info info;
        uint8_t *img = NULL;
        size_t len, n;

        if (size > (8u << 20))
                return 0;
        if (size < 4 || (n = pe_get32(data)) > size - 4) {
                if (uki_kernel_inspect(data, size, &k) == 0 && strlen(k.uname) > UKI_MAX_UNAME)
                        __builtin_trap();
                return 0;
        }
        p = (struct uki_params){
                .stub = { data + 4, n, "stub" },
                .kernel = { data + 4 + n, size - 4 - n, "kernel" },
                .initrds = initrds,
                .n_initrds = 1,
                .cmdline = "console=ttyS0",
                .os_release = { (const uint8_t *) osrel, sizeof(osrel) - 1, "os-release" },
        };
        if (uki_build(&p, &img, &len, &info) == 0) {
                struct pe_image pe;
                /* what the builder returns must parse, and be larger than its parts */
                if (pe_parse(img, len, &pe) != 0 || len < p.kernel.size || pe.n_sections <= info.first_new_section)
                        __builtin_trap();
                free(img);
        }
        return 0;
}
