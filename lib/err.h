/* err.h: the one table of ringil's error codes: negative errno inside, exit codes at the edges. */
#pragma once

#include <errno.h>

/*
 * Library functions return int: >= 0 on success, a negative errno on failure. Domain failures reuse
 * errno values that no system call on our paths returns for another reason, so a caller can tell a
 * forged signature from a missing file without a second channel:
 *
 *   RINGIL_EMALFORMED  -EBADMSG      input does not parse (bad magic, bad field, bad encoding)
 *   RINGIL_ETRUNCATED  -ENODATA      input ends before its declared length
 *   RINGIL_ETOOBIG     -EFBIG        input or a declared size exceeds a hard cap
 *   RINGIL_EBADSIG     -EKEYREJECTED signature does not verify over the signed bytes
 *   RINGIL_EUNTRUSTED  -ENOKEY       signer does not chain to the keyring, or fails EKU/name policy
 *   RINGIL_EEXPIRED    -EKEYEXPIRED  signed metadata is past its expiry (or not yet valid)
 *   RINGIL_EROLLBACK   -ESTALE       version is not above the anti-rollback floor
 *   RINGIL_EINCOMPAT   -EMEDIUMTYPE  'compatible' does not match this device
 *   RINGIL_EDIGEST     -EILSEQ       content hash does not match the signed hash
 *   RINGIL_EREFUSED    -ECANCELED    refused by policy/state (e.g. firmware not in setup mode)
 *
 * A verification function returns 0 only for "valid": every other path returns one of these.
 *
 * Talking to a server (lib/fleet-client.c) adds two classes: -ECONNREFUSED, -EHOSTUNREACH,
 * -ENETUNREACH, -ETIMEDOUT, -ECONNRESET, -ECONNABORTED: the server could not be reached or the
 * connection broke (EXIT_NETWORK; so does -ENOTCONN, the fleet server's PostgreSQL unreachable);
 * -EPROTO: TLS failed or the server answered outside the protocol (EXIT_PROTOCOL).
 */
#define RINGIL_EMALFORMED EBADMSG
#define RINGIL_ETRUNCATED ENODATA
#define RINGIL_ETOOBIG EFBIG
#define RINGIL_EBADSIG EKEYREJECTED
#define RINGIL_EUNTRUSTED ENOKEY
#define RINGIL_EEXPIRED EKEYEXPIRED
#define RINGIL_EROLLBACK ESTALE
#define RINGIL_EINCOMPAT EMEDIUMTYPE
#define RINGIL_EDIGEST EILSEQ
#define RINGIL_EREFUSED ECANCELED

/* Exit codes of the ringil programs (documented in docs/exit-codes.md and `ringil --help`). */
enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,        /* I/O, internal or unclassified error */
        EXIT_USAGE = 2,       /* bad command line */
        EXIT_MALFORMED = 3,   /* input malformed, truncated or over a size cap */
        EXIT_BADSIG = 4,      /* signature does not verify */
        EXIT_UNTRUSTED = 5,   /* signer not trusted (chain, EKU, signer name) */
        EXIT_EXPIRED = 6,     /* expired or not yet valid */
        EXIT_ROLLBACK = 7,    /* version not above the floor */
        EXIT_INCOMPAT = 8,    /* wrong 'compatible' */
        EXIT_DIGEST = 9,      /* payload/content hash mismatch */
        EXIT_EXISTS = 10,     /* refusing to overwrite existing material */
        EXIT_REFUSED = 11,    /* refused by state or policy */
        EXIT_NOTFOUND = 12,   /* a named input does not exist */
        EXIT_NETWORK = 13,    /* server unreachable: connection refused, name not resolved, timeout, cut */
        EXIT_PROTOCOL = 14,   /* TLS or protocol failure: peer not trusted, our certificate refused, an
                                 HTTP error or an answer that is not the protocol's */
};

/* Map a negative errno (or 0) to one of the exit codes above. */
int exit_code_from_errno(int r);

/* A short description of a ringil domain error or errno, never NULL. */
const char *ringil_strerror(int r);

/*
 * Detail for the last failure in this thread (e.g. which field was malformed). Library code records it
 * where it decides to fail; programs print it once. Empty string when nothing was recorded.
 */
void ringil_set_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *ringil_detail(void);
void ringil_clear_detail(void);

/* Record a detail and return r; for `return ringil_fail(-RINGIL_EMALFORMED, "bad magic")`. */
int ringil_fail(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
