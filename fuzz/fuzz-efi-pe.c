/* fuzz-efi-pe.c: the PE/COFF parser, the Authenticode hash, the certificate-table walk and the PKCS#7 checks. */
#include <openssl/pem.h>

#include "efi-authenticode.h"
#include "fuzz.h"
#include "efi-pe.h"

/* The certificate that signed the seeds in corpus/efi-pe/ (test key, public part only), so the full
 * verification path is reached from them. */
static const char seed_cert_pem[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIIC/zCCAeegAwIBAgIUFvUt1PrpgMGn1rKMegW1Vic59Q8wDQYJKoZIhvcNAQEL\n"
        "BQAwDzENMAsGA1UEAwwEdGVzdDAeFw0yNjExMjgwMjM4NDRaFw0yNjEyMjgwMjM4\n"
        "NDRaMA8xDTALBgNVBAMMBHRlc3QwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEK\n"
        "AoIBAQDQtq08Cl4QlXMw5KOv1nPM63JYhCZ1EN6Xml/NLmxfjoq2ewO6S9Y6ZGVJ\n"
        "bBKMvJEeNIs3ZR3USZSHry3LDNLAqsoHGaoPR7QJrx+JiMJc1LCr08MDEnSnxnJV\n"
        "dhikMy8nJxL9KDmljFGdjy9sKOFwoeCkokBLEWMEB3QxgS3UjwG3B3Y8eFyVMf0T\n"
        "gXWm/zPM7bLffGO3LCFF1oHhv4nyzxaqgNzhZ3fJFgrU+zKzeOwv0q9Nd705qmzB\n"
        "X0dxksT6z3SZESUOazsCkMVdNBlZ8k6gjQbZ5eDHNuBuYwUr90qOBXEJuGpIbzqy\n"
        "RpCpDcpe0jKDWGcNqtssurT/7fpBAgMBAAGjUzBRMB0GA1UdDgQWBBTMiiQqOJmk\n"
        "BeOEdaDxS8hAEuGApzAfBgNVHSMEGDAWgBTMiiQqOJmkBeOEdaDxS8hAEuGApzAP\n"
        "BgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQDGjJQydEtzt/bTqBhk\n"
        "eBV96/W4yZTfZZyMsH1tlBvk7L8DnnQ3RF5gk0Cp5zbOauHrWgjYNnyEwAX21EOn\n"
        "j6C58bWvBi1ZoUYRRCOwxQ5LKFSVXY3KTwN0GFy9G39yQXv/IrEx5BjPFBgdEup3\n"
        "mo2xBemNHhj+YskZ/cdn01m7v9c+E7Fd6ay9JURhR5V5rWclb50HuqAsARFrrjHw\n"
        "EQ/nc6nJfjj6TxLY4Pfbt7qjfFcpWZLePxGZ4RUKplp96ndm3ej74rLVqtsjrN8F\n"
        "/2D1RRT4wMS9/0VEmI8BCYKRsUhCiBRJCdpezhbVPKoRa7hjhJmLkDeGcUR1eiiO\n"
        "dqHp\n"
        "-----END CERTIFICATE-----\n";

static X509 *seed_cert(void) {
        static X509 *cert;
        BIO *bio;

        if (cert)
                return cert;
        bio = BIO_new_mem_buf(seed_cert_pem, (int) sizeof(seed_cert_pem) - 1);
        if (!bio)
                return NULL;
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
        return cert;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct pe_image pe;
        uint8_t hash[32];
        X509 *cert;

        if (size > (4u << 20))
                return 0;
        if (pe_parse(data, size, &pe) < 0)
                return 0;
        (void) pe_authenticode_sha256(&pe, hash);
        (void) pe_checksum(data, size, pe.checksum_offset);
        for (unsigned i = 0; i < pe.n_certs; i++) {
                struct pe_cert c;
                /* pe_parse vouched for every entry: each must be reachable and inside the input. */
                if (pe_cert_get(&pe, i, &c) < 0 || c.data + c.data_len > data + size)
                        __builtin_trap();
        }
        cert = seed_cert();
        if (cert && pe.n_certs > 0)
                (void) authenticode_verify(data, size, cert, NULL);
        return 0;
}
