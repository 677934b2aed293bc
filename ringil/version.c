/* version.c: `ringil version`. */
#include <openssl/crypto.h>
#include <stdio.h>

#include "config.h"
#include "err.h"
#include "verbs.h"

int verb_version(int argc, char *argv[]) {
        (void) argc;
        (void) argv;
        printf("ringil %s (%s)\n", RINGIL_VERSION, OpenSSL_version(OPENSSL_VERSION));
        return EXIT_OK;
}
