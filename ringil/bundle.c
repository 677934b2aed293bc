/* bundle.c: `ringil bundle create|verify|info`: make, check and inspect signed update bundles. */
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bundle.h"
#include "cdc.h"
#include "install-delta.h"
#include "crypto.h"
#include "err.h"
#include "escape.h"
#include "fileio.h"
#include "install-nix.h"
#include "log.h"
#include "parse.h"
#include "progress.h"
#include "verb.h"
#include "verbs.h"

#define MAX_LIST 64

/* The default chunking of raw payloads, chosen from the delta bench (docs/install.md "Delta updates"). */
#define DEFAULT_CHUNKING_CDC 1
#define DEFAULT_CHUNKING_NAME "cdc"

#define CREATE_USAGE \
        "Usage: ringil bundle create --key KEY --cert CERT [--intermediate PEM]... --compatible ID\n" \
        "                            --version V [--expires TIME | --valid-for DAYS] [--created TIME]\n" \
        "                            [--chunk-size N] --payload NAME:TYPE=FILE... --output OUT\n\n" \
        "Make a signed update bundle: a header, the JSON manifest, a detached CMS signature over the\n" \
        "manifest (signer certificate and intermediates embedded), then the payloads.\n\n" \
        "Options:\n" \
        "  --key KEY            PEM private key of the signer (e.g. the fleet's db key)\n" \
        "  --cert CERT          PEM certificate of the signer\n" \
        "  --intermediate PEM   intermediate CA certificate(s) to embed; repeatable\n" \
        "  --compatible ID      hardware/fleet identifier a drone must match\n" \
        "  --version V          dot-numeric version (1.2.10); drones require it above their floor\n" \
        "  --expires TIME       expiry: @SECONDS, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ\n" \
        "  --valid-for DAYS     expiry relative to creation (default 30)\n" \
        "  --created TIME       creation time (default: now)\n" \
        "  --chunk-size N       fixed chunking: per-chunk hash granularity, power of two 4K..64M\n" \
        "                       (default 1M)\n" \
        "  --chunking fixed|cdc|cdc:MIN:AVG:MAX\n" \
        "                       how raw payloads are cut into chunks: fixed-size, or content-defined\n" \
        "                       (gear rolling hash; default sizes 16K:64K:256K), which lets a drone\n" \
        "                       find shifted content in its slots; cdc makes a format-2 manifest that\n" \
        "                       ringil before 0.2 refuses (docs/bundle-format.md). Default: " DEFAULT_CHUNKING_NAME "\n" \
        "  --payload NAME:TYPE=FILE\n" \
        "                       a payload; TYPE is raw (slot image) or efi (EFI binary/UKI)\n" \
        "  --payload NAME:nixos=STOREPATH[@CACHEURL]\n" \
        "                       a NixOS system closure: its bytes are the closure listing (every path\n" \
        "                       with its NAR hash, from `nix path-info --json --recursive`), so the\n" \
        "                       signature pins the exact contents drones install\n" \
        "  --nix-store STORE    where the closure is looked up (nix --store: a store dir or a cache\n" \
        "                       URL such as file:///srv/ringil/nix-cache; default: the local store)\n" \
        "  --closure FILE       use this closure listing instead of asking Nix (format in\n" \
        "                       docs/bundle-format.md); for one nixos payload\n" \
        "  --output OUT         bundle to write (atomically)\n" \
        "  -q, --quiet          no progress on stderr (shown by default: bytes, rate and time left\n" \
        "                       on a terminal, a line per step otherwise)\n\n"

#define VERIFY_USAGE \
        "Usage: ringil bundle verify --keyring PEM|DIR [--compatible ID] [--min-version V] [--now TIME]\n" \
        "                            [--require-codesigning] [--allowed-signer CN]... FILE|-\n\n" \
        "Verify a bundle completely: CMS signature over the manifest, signer chain to the keyring, every\n" \
        "payload byte against the signed chunk hashes and SHA-256, no bytes appended, then the policy.\n" \
        "Exit 0 only when all of it holds. '-' reads the bundle from stdin as a stream.\n\n" \
        "Options:\n" \
        "  --keyring PEM|DIR       trust anchors (every certificate in it is an anchor)\n" \
        "  --compatible ID         required 'compatible' of this device\n" \
        "  --min-version V         the version must be strictly above V (anti-rollback)\n" \
        "  --now TIME              time for expiry and certificate checks (default: the clock)\n" \
        "  --require-codesigning   the signer certificate must carry the codeSigning EKU\n" \
        "  --allowed-signer CN     the signer's common name must be one of these; repeatable\n\n"

#define INFO_USAGE \
        "Usage: ringil bundle info [--json] FILE|-\n\n" \
        "Show a bundle's manifest WITHOUT checking its signature (the output says \"unverified\").\n" \
        "Checked: the header, the manifest's syntax and that the container is exactly as long as the\n" \
        "manifest declares (a stream is read to its end for that). Not checked, and listed as such: the\n" \
        "signature and signer chain, the payload hashes and the policy (compatible, expiry, floor).\n" \
        "Use `ringil bundle verify` to decide whether to trust it.\n" \
        "A truncated bundle, or one with bytes after its last payload, is shown and then refused (exit 3).\n\n" \
        "Options:\n" \
        "  --json   machine-readable output\n\n"

/* A failure about the bundle at path: says which bundle and what happened to it. */
static int fail_bundle(int r, const char *path, const char *what) {
        const char *d = ringil_detail();

        log_error_errno(r, "Bundle '%s' %s: %m%s%s", path, what, *d ? ": " : "", d);
        return exit_code_from_errno(r);
}

static int open_bundle(const char *path, bundle **ret) {
        int r = bundle_open(path, ret);

        if (r < 0) {
                log_error_errno(r, "Cannot open bundle '%s': %m", path);
                return exit_code_from_errno(r);
        }
        return -1;
}

static int fail(int r, const char *what) {
        const char *d = ringil_detail();

        log_error_errno(r, "%s: %m%s%s", what, *d ? ": " : "", d);
        return exit_code_from_errno(r);
}

static int parse_payload_arg(char *arg, struct bundle_create_payload *p) {
        char *colon = strchr(arg, ':'), *eq;

        if (!colon || !(eq = strchr(colon, '=')))
                return -EINVAL;
        *colon = '\0';
        *eq = '\0';
        p->name = arg;
        if (bundle_payload_type_from_string(colon + 1, &p->type) < 0)
                return -EINVAL;
        if (p->type == BUNDLE_PAYLOAD_NIXOS) {
                char *at = strchr(eq + 1, '@');
                if (at) {
                        *at = '\0';
                        p->cache_url = at + 1;
                }
                p->store_path = eq + 1;
        } else
                p->path = eq + 1;
        return 0;
}

/* --chunking: 0 fixed, 1 cdc (sizes set in o when given), or -EINVAL. */
static int parse_chunking(const char *arg, struct bundle_create_opts *o) {
        uint64_t v[3];
        char buf[128], *p, *save = NULL;
        struct cdc c;
        size_t n = 0;

        if (streq(arg, "fixed")) {
                o->cdc_min = o->cdc_avg = o->cdc_max = 0;
                return 0;
        }
        if (streq(arg, "cdc"))
                return 1;
        if (strncmp(arg, "cdc:", 4) != 0 || strlen(arg) >= sizeof(buf))
                return -EINVAL;
        snprintf(buf, sizeof(buf), "%s", arg + 4);
        for (p = strtok_r(buf, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
                if (n == 3 || parse_size(p, &v[n]) < 0 || v[n] > UINT32_MAX)
                        return -EINVAL;
                n++;
        }
        if (n != 3 || cdc_init(&c, (uint32_t) v[0], (uint32_t) v[1], (uint32_t) v[2]) < 0)
                return -EINVAL;
        o->cdc_min = c.min;
        o->cdc_avg = c.avg;
        o->cdc_max = c.max;
        return 1;
}

static void close_listings(int (*fds)[BUNDLE_MAX_PAYLOADS]) {
        for (size_t i = 0; i < BUNDLE_MAX_PAYLOADS; i++)
                if ((*fds)[i] >= 0)
                        (void) close((*fds)[i]);
}

/*
 * A nixos payload's bytes: its closure listing, from --closure FILE (checked) or from Nix. Kept in a
 * memfd that bundle_create() reads through /proc/self/fd/N.
 */
static int closure_listing(struct bundle_create_payload *p, const char *nix_store, const char *file, int *ret_fd,
                           char path[static 32]) {
        _cleanup_(nix_closure_done) struct nix_closure c = {};
        _cleanup_buf_ struct buf text = {};
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len;
        int r;

        if (file) {
                r = read_full_file(file, 0, NIX_CLOSURE_LIST_MAX, &data, &len);
                if (r < 0)
                        return ringil_fail(r, "cannot read %s", file);
                r = nix_closure_parse((const char *) data, len, &c);
        } else
                r = nix_store_closure(nix_store, NULL, p->store_path, &c);
        if (r < 0)
                return r;
        if (!nix_closure_find(&c, p->store_path))
                return ringil_fail(-RINGIL_EMALFORMED, "the closure listing does not contain %s", p->store_path);
        r = nix_closure_format(&c, &text);
        if (r < 0)
                return r;
        fd = memfd_create("ringil-closure", MFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = write_all(fd, text.data, text.len);
        if (r < 0)
                return r;
        (void) snprintf(path, 32, "/proc/self/fd/%d", fd);
        p->path = path;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int verb_bundle_create(int argc, char *argv[]) {
        enum { ARG_KEY = 0x100, ARG_CERT, ARG_INTERMEDIATE, ARG_COMPATIBLE, ARG_VERSION, ARG_EXPIRES, ARG_VALID_FOR,
               ARG_CREATED, ARG_CHUNK_SIZE, ARG_PAYLOAD, ARG_OUTPUT, ARG_NIX_STORE, ARG_CLOSURE, ARG_CHUNKING };
        static const struct option options[] = {
                { "key", required_argument, NULL, ARG_KEY },
                { "cert", required_argument, NULL, ARG_CERT },
                { "intermediate", required_argument, NULL, ARG_INTERMEDIATE },
                { "compatible", required_argument, NULL, ARG_COMPATIBLE },
                { "version", required_argument, NULL, ARG_VERSION },
                { "expires", required_argument, NULL, ARG_EXPIRES },
                { "valid-for", required_argument, NULL, ARG_VALID_FOR },
                { "created", required_argument, NULL, ARG_CREATED },
                { "chunk-size", required_argument, NULL, ARG_CHUNK_SIZE },
                { "chunking", required_argument, NULL, ARG_CHUNKING },
                { "payload", required_argument, NULL, ARG_PAYLOAD },
                { "output", required_argument, NULL, ARG_OUTPUT },
                { "nix-store", required_argument, NULL, ARG_NIX_STORE },
                { "closure", required_argument, NULL, ARG_CLOSURE },
                { "quiet", no_argument, NULL, 'q' },
                {},
        };
        __attribute__((cleanup(close_listings))) int listing_fd[BUNDLE_MAX_PAYLOADS] = { [0 ... BUNDLE_MAX_PAYLOADS - 1] = -EBADF };   /* memfds */
        char listing_path[BUNDLE_MAX_PAYLOADS][32];
        const char *nix_store = NULL, *closure_file = NULL;
        const char *intermediates[MAX_LIST + 1] = {};
        struct bundle_create_payload payloads[BUNDLE_MAX_PAYLOADS] = {};
        struct bundle_create_opts o = {};
        const char *output = NULL;
        size_t n_inter = 0;
        unsigned valid_days = 30;
        bool have_expires = false, have_valid = false, have_chunk_size = false;
        int chunking = -1;   /* -1: default, 0: fixed, 1: cdc */
        uint64_t u;
        int c, r;

        while ((c = getopt_long(argc, argv, "q", options, NULL)) >= 0)
                switch (c) {
                case 'q':
                        progress_setup(NULL, PROGRESS_QUIET);
                        break;
                case ARG_KEY:
                        o.key = optarg;
                        break;
                case ARG_CERT:
                        o.cert = optarg;
                        break;
                case ARG_INTERMEDIATE:
                        if (n_inter >= MAX_LIST)
                                return usage_error("too many --intermediate");
                        intermediates[n_inter++] = optarg;
                        break;
                case ARG_COMPATIBLE:
                        o.compatible = optarg;
                        break;
                case ARG_VERSION:
                        o.version = optarg;
                        break;
                case ARG_EXPIRES:
                        if (parse_time(optarg, &o.expires) < 0)
                                return usage_error("bad --expires '%s'", optarg);
                        have_expires = true;
                        break;
                case ARG_VALID_FOR:
                        if (parse_uint(optarg, &valid_days) < 0 || valid_days == 0 || valid_days > 3660)
                                return usage_error("bad --valid-for '%s' (1..3660 days)", optarg);
                        have_valid = true;
                        break;
                case ARG_CREATED:
                        if (parse_time(optarg, &o.created) < 0 || o.created <= 0)
                                return usage_error("bad --created '%s'", optarg);
                        break;
                case ARG_CHUNK_SIZE:
                        if (parse_size(optarg, &u) < 0 || u > UINT32_MAX)
                                return usage_error("bad --chunk-size '%s'", optarg);
                        o.chunk_size = (uint32_t) u;
                        have_chunk_size = true;
                        break;
                case ARG_CHUNKING:
                        r = parse_chunking(optarg, &o);
                        if (r < 0)
                                return usage_error("bad --chunking '%s' (fixed, cdc or cdc:MIN:AVG:MAX, powers of two "
                                                   "4K <= MIN < AVG < MAX <= 64M)", optarg);
                        chunking = r;
                        break;
                case ARG_PAYLOAD:
                        if (o.n_payloads >= BUNDLE_MAX_PAYLOADS)
                                return usage_error("more than %u payloads", BUNDLE_MAX_PAYLOADS);
                        if (parse_payload_arg(optarg, &payloads[o.n_payloads]) < 0)
                                return usage_error("bad --payload '%s' (NAME:raw|efi=FILE or NAME:nixos=STOREPATH[@URL])", optarg);
                        o.n_payloads++;
                        break;
                case ARG_OUTPUT:
                        output = optarg;
                        break;
                case ARG_NIX_STORE:
                        nix_store = optarg;
                        break;
                case ARG_CLOSURE:
                        closure_file = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        if (!o.key || !o.cert || !o.compatible || !o.version || !output || o.n_payloads == 0)
                return usage_error("--key, --cert, --compatible, --version, --payload and --output are required");
        for (size_t i = 0, k = 0; i < o.n_payloads; i++) {
                if (payloads[i].type != BUNDLE_PAYLOAD_NIXOS)
                        continue;
                if (k++ > 0 && closure_file)
                        return usage_error("--closure names the listing of one nixos payload only");
                r = closure_listing(&payloads[i], nix_store, closure_file, &listing_fd[i], listing_path[i]);
                if (r < 0)
                        return fail(r, "cannot list a nixos payload's closure");
        }
        if (have_expires && have_valid)
                return usage_error("--expires and --valid-for are exclusive");
        if (chunking == 1 && have_chunk_size)
                return usage_error("--chunk-size is for fixed chunking; content-defined sizes go in --chunking cdc:MIN:AVG:MAX");
        /* --chunk-size alone asks for fixed chunks (as it always did). */
        if (chunking < 0)
                chunking = have_chunk_size ? 0 : DEFAULT_CHUNKING_CDC;
        if (chunking == 1 && !o.cdc_avg) {
                o.cdc_min = CDC_DEFAULT_MIN;
                o.cdc_avg = CDC_DEFAULT_AVG;
                o.cdc_max = CDC_DEFAULT_MAX;
        }
        if (!o.created)
                o.created = (int64_t) time(NULL);
        if (!have_expires)
                o.expires = o.created + (int64_t) valid_days * 86400;
        o.intermediates = intermediates;
        o.payloads = payloads;
        r = bundle_create(&o, output);
        if (r < 0)
                return fail(r, "cannot create bundle");
        printf("wrote %s\n", ESCAPED(output));
        return EXIT_OK;
}

static int verb_bundle_verify(int argc, char *argv[]) {
        enum { ARG_KEYRING = 0x100, ARG_COMPATIBLE, ARG_MIN_VERSION, ARG_NOW, ARG_CODESIGN, ARG_SIGNER };
        static const struct option options[] = {
                { "keyring", required_argument, NULL, ARG_KEYRING },
                { "compatible", required_argument, NULL, ARG_COMPATIBLE },
                { "min-version", required_argument, NULL, ARG_MIN_VERSION },
                { "now", required_argument, NULL, ARG_NOW },
                { "require-codesigning", no_argument, NULL, ARG_CODESIGN },
                { "allowed-signer", required_argument, NULL, ARG_SIGNER },
                {},
        };
        const char *signers[MAX_LIST + 1] = {};
        _cleanup_x509_stack_ STACK_OF(X509) *anchors = NULL;
        struct bundle_policy policy = {};
        _cleanup_bundle_ bundle *b = NULL;
        const struct bundle_manifest *m;
        size_t n_signers = 0;
        const char *path;
        char t[21];
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_KEYRING:
                        policy.keyring = optarg;
                        break;
                case ARG_COMPATIBLE:
                        policy.compatible = optarg;
                        break;
                case ARG_MIN_VERSION:
                        if (version_valid(optarg) < 0)
                                return usage_error("bad --min-version '%s' (dot-numeric)", optarg);
                        policy.min_version = optarg;
                        break;
                case ARG_NOW:
                        if (parse_time(optarg, &policy.now) < 0 || policy.now <= 0)
                                return usage_error("bad --now '%s'", optarg);
                        break;
                case ARG_CODESIGN:
                        policy.require_codesigning = true;
                        break;
                case ARG_SIGNER:
                        if (n_signers >= MAX_LIST)
                                return usage_error("too many --allowed-signer");
                        signers[n_signers++] = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (!policy.keyring)
                return usage_error("--keyring is required");
        if (argc - optind != 1)
                return usage_error("exactly one bundle FILE (or '-') expected");
        path = argv[optind];
        if (n_signers > 0)
                policy.allowed_signers = signers;

        /* The keyring is the operator's input, not the bundle's: a problem with it is reported as such,
         * before the bundle is looked at. */
        r = crypto_load_certs(policy.keyring, &anchors);
        if (r < 0)
                return fail(r, "Cannot load the keyring (--keyring)");
        r = open_bundle(path, &b);
        if (r >= 0)
                return r;
        r = bundle_verify_manifest(b, &policy);
        if (r < 0)
                return fail_bundle(r, path, "refused");
        r = bundle_verify_payloads(b);
        if (r < 0)
                return fail_bundle(r, path, "refused");
        m = bundle_get_manifest(b);
        printf("OK: %s: version %s for '%s', %zu payload%s, expires %s, signed by %s\n", ESCAPED(path), m->version,
               m->compatible, m->n_payloads, m->n_payloads == 1 ? "" : "s", format_time(m->expires, t), ESCAPED(m->signer));
        return EXIT_OK;
}

/* What `bundle info` can say about the container without a keyring. */
struct container_check {
        uint64_t declared;      /* header + manifest + signature + payloads, from the unverified manifest */
        uint64_t actual;        /* bytes the file or stream holds; UINT64_MAX: unknown */
        int error;              /* 0, -RINGIL_ETRUNCATED or -RINGIL_EMALFORMED (bytes appended) */
        char problem[160];
};

static const char *const info_not_checked[] = {
        "signature", "signer chain", "payload hashes", "policy (compatible, expiry, floor)",
};

/* A pipe: the metadata has been consumed, so what is left on stdin is the payloads (and anything
 * appended). Read it to the end, but no further than one byte past what the manifest declares. */
static int count_stream(const struct bundle_manifest *m, uint64_t declared, uint64_t *ret_actual) {
        uint64_t payloads = 0, got = 0;
        uint8_t buf[65536];

        for (size_t i = 0; i < m->n_payloads; i++)
                payloads += m->payloads[i].size;   /* bounded: bundle_unverified_size() checked the sum */
        for (;;) {
                ssize_t k = read(STDIN_FILENO, buf, sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        break;
                got += (uint64_t) k;
                if (got > payloads)
                        break;
        }
        *ret_actual = declared - payloads + got;
        return 0;
}

static int check_container(bundle *b, const char *path, const struct bundle_manifest *m, struct container_check *ret) {
        struct container_check cc = {};
        int r;

        r = bundle_unverified_size(b, &cc.declared, &cc.actual);
        if (r < 0)
                return r;
        if (cc.actual == UINT64_MAX && streq(path, "-")) {
                r = count_stream(m, cc.declared, &cc.actual);
                if (r < 0)
                        return r;
        }
        if (cc.actual != UINT64_MAX && cc.actual < cc.declared) {
                cc.error = -RINGIL_ETRUNCATED;
                snprintf(cc.problem, sizeof(cc.problem), "truncated: %llu bytes, the manifest declares %llu",
                         (unsigned long long) cc.actual, (unsigned long long) cc.declared);
        } else if (cc.actual != UINT64_MAX && cc.actual > cc.declared) {
                cc.error = -RINGIL_EMALFORMED;
                snprintf(cc.problem, sizeof(cc.problem), "%s%llu bytes appended after the last payload",
                         streq(path, "-") ? "at least " : "", (unsigned long long) (cc.actual - cc.declared));
        }
        *ret = cc;
        return 0;
}

/* Chunk statistics of a payload, from its signed chunk list (for an operator sizing deltas). */
struct chunk_stats {
        uint64_t smallest, largest, mean;
};

static struct chunk_stats chunk_stats(const struct bundle_payload *p) {
        struct chunk_stats s = { .smallest = p->n_chunks ? UINT64_MAX : 0 };

        for (uint64_t c = 0; c < p->n_chunks; c++) {
                uint64_t len = bundle_chunk_len(p, c);
                s.smallest = MIN(s.smallest, len);
                s.largest = MAX(s.largest, len);
        }
        if (p->n_chunks)
                s.mean = p->size / p->n_chunks;
        return s;
}

static int info_json(const struct bundle_manifest *m, uint32_t sig_len, const struct container_check *cc) {
        json_t *root = json_object(), *pls = json_array(), *cont = json_object(), *nc = json_array();
        char hex[2 * SHA256_LEN + 1], t[21];
        int r = EXIT_OK;

        if (!root || !pls || !cont || !nc) {
                json_decref(root);
                json_decref(pls);
                json_decref(cont);
                json_decref(nc);
                return EXIT_FAIL;
        }
        json_object_set_new(root, "verified", json_false());
        json_object_set_new(root, "format", json_integer(m->format));
        json_object_set_new(root, "compatible", json_string(m->compatible));
        json_object_set_new(root, "version", json_string(m->version));
        json_object_set_new(root, "created", json_string(format_time(m->created, t)));
        json_object_set_new(root, "expires", json_string(format_time(m->expires, t)));
        json_object_set_new(root, "manifest_sha256", json_string(hex_encode(m->digest, SHA256_LEN, hex)));
        json_object_set_new(root, "signature_bytes", json_integer(sig_len));
        for (size_t i = 0; i < m->n_payloads; i++) {
                const struct bundle_payload *p = &m->payloads[i];
                json_t *o = json_object();
                if (!o)
                        continue;
                json_object_set_new(o, "name", json_string(p->name));
                json_object_set_new(o, "type", json_string(bundle_payload_type_to_string(p->type)));
                json_object_set_new(o, "size", json_integer((json_int_t) p->size));
                json_object_set_new(o, "sha256", json_string(hex_encode(p->sha256, SHA256_LEN, hex)));
                json_object_set_new(o, "chunk_size", json_integer(p->chunk_size));
                json_object_set_new(o, "chunks", json_integer((json_int_t) p->n_chunks));
                {
                        struct chunk_stats cs = chunk_stats(p);
                        json_t *ch = json_object();
                        if (ch) {
                                json_object_set_new(ch, "chunker", json_string(p->cdc ? "cdc" : "fixed"));
                                if (p->cdc) {
                                        json_object_set_new(ch, "min", json_integer(p->cdc_min));
                                        json_object_set_new(ch, "avg", json_integer(p->cdc_avg));
                                        json_object_set_new(ch, "max", json_integer(p->cdc_max));
                                } else
                                        json_object_set_new(ch, "size", json_integer(p->chunk_size));
                                json_object_set_new(ch, "count", json_integer((json_int_t) p->n_chunks));
                                json_object_set_new(ch, "smallest", json_integer((json_int_t) cs.smallest));
                                json_object_set_new(ch, "mean", json_integer((json_int_t) cs.mean));
                                json_object_set_new(ch, "largest", json_integer((json_int_t) cs.largest));
                                json_object_set_new(o, "chunking", ch);
                        }
                }
                if (p->store_path)
                        json_object_set_new(o, "store_path", json_string(p->store_path));
                if (p->cache_url)
                        json_object_set_new(o, "cache_url", json_string(p->cache_url));
                json_array_append_new(pls, o);
        }
        json_object_set_new(root, "payloads", pls);
        json_object_set_new(cont, "declared_bytes", json_integer((json_int_t) cc->declared));
        json_object_set_new(cont, "bytes", cc->actual == UINT64_MAX ? json_null() : json_integer((json_int_t) cc->actual));
        json_object_set_new(cont, "complete", json_boolean(cc->actual == cc->declared));
        json_object_set_new(cont, "problem", cc->error < 0 ? json_string(cc->problem) : json_null());
        json_object_set_new(root, "container", cont);
        for (size_t i = 0; i < ELEMENTSOF(info_not_checked); i++)
                json_array_append_new(nc, json_string(info_not_checked[i]));
        json_object_set_new(root, "not_checked", nc);
        if (json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
                r = EXIT_FAIL;
        putchar('\n');
        json_decref(root);
        return r;
}

static int verb_bundle_info(int argc, char *argv[]) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                {},
        };
        _cleanup_bundle_ bundle *b = NULL;
        const struct bundle_manifest *m;
        struct container_check cc;
        const char *path;
        bool json = false;
        uint32_t sig_len;
        char hex[2 * SHA256_LEN + 1], t[21];
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        json = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (argc - optind != 1)
                return usage_error("exactly one bundle FILE expected");
        path = argv[optind];
        r = open_bundle(path, &b);
        if (r >= 0)
                return r;
        r = bundle_read_unverified(b, &m, &sig_len);
        if (r < 0)
                return fail_bundle(r, path, "is malformed");
        r = check_container(b, path, m, &cc);
        if (r < 0)
                return fail_bundle(r, path, "cannot be measured");
        if (json)
                r = info_json(m, sig_len, &cc);
        else {
                printf("Bundle:      %s (UNVERIFIED: signature not checked; use `ringil bundle verify`)\n", ESCAPED(path));
                printf("Format:      %u\n", m->format);
                printf("Compatible:  %s\n", m->compatible);
                printf("Version:     %s\n", m->version);
                printf("Created:     %s\n", format_time(m->created, t));
                printf("Expires:     %s\n", format_time(m->expires, t));
                printf("Manifest:    sha256 %s\n", hex_encode(m->digest, SHA256_LEN, hex));
                printf("Signature:   %u bytes CMS\n", sig_len);
                for (size_t i = 0; i < m->n_payloads; i++) {
                        const struct bundle_payload *p = &m->payloads[i];
                        struct chunk_stats cs = chunk_stats(p);
                        printf("Payload %zu:   %s (%s) %llu bytes, %llu chunks of %u, sha256 %s\n", i, p->name,
                               bundle_payload_type_to_string(p->type), (unsigned long long) p->size,
                               (unsigned long long) p->n_chunks, p->chunk_size, hex_encode(p->sha256, SHA256_LEN, hex));
                        if (p->cdc)
                                printf("             chunker cdc %u:%u:%u; chunk sizes smallest %llu, mean %llu, largest %llu\n",
                                       p->cdc_min, p->cdc_avg, p->cdc_max, (unsigned long long) cs.smallest,
                                       (unsigned long long) cs.mean, (unsigned long long) cs.largest);
                        else
                                printf("             chunker fixed %u; chunk sizes smallest %llu, mean %llu, largest %llu\n",
                                       p->chunk_size, (unsigned long long) cs.smallest, (unsigned long long) cs.mean,
                                       (unsigned long long) cs.largest);
                        if (p->store_path)
                                printf("             store path %s%s%s\n", p->store_path, p->cache_url ? " from " : "",
                                       p->cache_url ? p->cache_url : "");
                }
                if (cc.error < 0)
                        printf("Container:   MALFORMED: %s\n", cc.problem);
                else if (cc.actual == UINT64_MAX)
                        printf("Container:   %llu bytes declared; length not checked (unknown size)\n",
                               (unsigned long long) cc.declared);
                else
                        printf("Container:   complete (%llu bytes, as declared)\n", (unsigned long long) cc.actual);
                printf("Not checked: signature, signer chain, payload hashes, policy (compatible, expiry, floor)\n");
                r = EXIT_OK;
        }
        fflush(stdout);
        /* INVARIANT: info exits 0 only for a well-formed container; what it showed is still unverified. */
        if (cc.error < 0) {
                log_error_errno(cc.error, "Bundle '%s' is malformed: %s", path, cc.problem);
                return exit_code_from_errno(cc.error);
        }
        return r;
}

#define ESTIMATE_USAGE \
        "Usage: ringil bundle delta-estimate [--json] [--full-above PCT] --from OLD NEW\n\n" \
        "How many bytes a drone fetches to install bundle NEW when its slots hold OLD: OLD is the bundle\n" \
        "the drone installed (its payloads are used as slot contents) or a slot image; repeat --from for\n" \
        "both slots. Runs the drone's own chunk search (fixed or content-defined, as NEW's manifest says)\n" \
        "and adds the metadata the drone fetches first. Unverified: it reads NEW's manifest without a keyring.\n\n" \
        "Options:\n" \
        "  --from FILE        an old bundle or image (repeatable, at most 6)\n" \
        "  --full-above PCT   the drone's threshold for one sequential download (default 80)\n" \
        "  --json             machine-readable output\n\n"

/* A source for the estimate: an image, or the raw payload of the same name inside an old bundle. */
struct est_source {
        int fd;
        uint64_t offset, size;   /* where the bytes are in the file */
};

static int est_open(const char *path, const char *payload, struct est_source *ret) {
        _cleanup_bundle_ bundle *b = NULL;
        const struct bundle_manifest *m;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        uint32_t sig_len;

        if (fd < 0 || fstat(fd, &st) < 0)
                return fd < 0 ? negative_errno() : -EIO;
        *ret = (struct est_source){ .fd = fd, .offset = 0, .size = (uint64_t) st.st_size };
        if (bundle_open(path, &b) < 0 || bundle_read_unverified(b, &m, &sig_len) < 0)
                return 0;   /* not a bundle: an image */
        {
                uint64_t off = 0, declared, actual;
                if (bundle_unverified_size(b, &declared, &actual) < 0)
                        return 0;
                off = declared;
                for (size_t i = m->n_payloads; i-- > 0;) {
                        off -= m->payloads[i].size;
                        if (streq(m->payloads[i].name, payload)) {
                                ret->offset = off;
                                ret->size = m->payloads[i].size;
                                return 0;
                        }
                }
        }
        ret->size = 0;   /* a bundle without this payload: nothing to find */
        return 0;
}

static int verb_bundle_delta_estimate(int argc, char *argv[]) {
        enum { ARG_FROM = 0x100, ARG_FULL_ABOVE, ARG_JSON };
        static const struct option options[] = {
                { "from", required_argument, NULL, ARG_FROM },
                { "full-above", required_argument, NULL, ARG_FULL_ABOVE },
                { "json", no_argument, NULL, ARG_JSON },
                {},
        };
        const char *from[7] = {};
        size_t n_from = 0;
        unsigned full_above = 80;
        bool json = false;
        _cleanup_bundle_ bundle *b = NULL;
        const struct bundle_manifest *m;
        uint64_t declared, actual, meta, fetch = 0, local = 0, total = 0;
        uint32_t sig_len;
        json_t *pls = json_array();
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_FROM:
                        if (n_from == 6)
                                return usage_error("at most 6 --from");
                        from[n_from++] = optarg;
                        break;
                case ARG_FULL_ABOVE:
                        if (parse_uint(optarg, &full_above) < 0 || full_above > 100)
                                return usage_error("bad --full-above '%s' (0..100)", optarg);
                        break;
                case ARG_JSON:
                        json = true;
                        break;
                default:
                        json_decref(pls);
                        return EXIT_USAGE;
                }
        if (argc - optind != 1 || n_from == 0) {
                json_decref(pls);
                return usage_error("--from OLD and one NEW bundle expected");
        }
        r = open_bundle(argv[optind], &b);
        if (r >= 0) {
                json_decref(pls);
                return r;
        }
        r = bundle_read_unverified(b, &m, &sig_len);
        if (r >= 0)
                r = bundle_unverified_size(b, &declared, &actual);
        if (r < 0) {
                json_decref(pls);
                return fail_bundle(r, argv[optind], "is malformed");
        }
        meta = declared;
        for (size_t i = 0; i < m->n_payloads; i++)
                meta -= m->payloads[i].size;
        for (size_t i = 0; i < m->n_payloads; i++) {
                const struct bundle_payload *p = &m->payloads[i];
                struct delta_source srcs[DELTA_MAX_SOURCES];
                struct est_source es[6];
                struct delta_plan plan = {};
                size_t n = 0;

                total += p->size;
                for (size_t k = 0; k < n_from; k++) {
                        r = est_open(from[k], p->name, &es[n]);
                        if (r < 0) {
                                json_decref(pls);
                                return fail(r, "cannot read --from file");
                        }
                        /* a view of the payload inside the old bundle: a memfd would copy; pread offsets
                         * are what the scanner uses, so shift through /proc/self/fd with an offset instead */
                        n++;
                }
                for (size_t k = 0; k < n; k++) {
                        if (es[k].offset) {
                                /* copy-free view: a sparse memfd is not possible; read through a dup at an offset */
                                int fd = memfd_create("ringil-estimate", MFD_CLOEXEC);
                                if (fd < 0 || copy_file_range(es[k].fd, &(loff_t){ (loff_t) es[k].offset }, fd, NULL,
                                                              (size_t) es[k].size, 0) != (ssize_t) es[k].size) {
                                        /* fall back to a plain copy */
                                        uint8_t buf[1 << 16];
                                        uint64_t done = 0;
                                        if (fd >= 0 && ftruncate(fd, 0) == 0)
                                                while (done < es[k].size) {
                                                        ssize_t got = pread(es[k].fd, buf, (size_t) MIN((uint64_t) sizeof(buf), es[k].size - done),
                                                                            (off_t) (es[k].offset + done));
                                                        if (got <= 0 || write_all(fd, buf, (size_t) got) < 0)
                                                                break;
                                                        done += (uint64_t) got;
                                                }
                                }
                                close(es[k].fd);
                                es[k].fd = fd;
                        }
                        srcs[k] = (struct delta_source){ .fd = es[k].fd, .label = from[k], .size = es[k].size };
                }
                r = p->n_chunks && p->type == BUNDLE_PAYLOAD_RAW ? delta_plan_payload(p, 0, srcs, n, &plan) : 0;
                for (size_t k = 0; k < n; k++)
                        safe_close(es[k].fd);
                if (r < 0) {
                        json_decref(pls);
                        return fail(r, "cannot plan the delta");
                }
                if (!plan.src)
                        plan.bytes_fetch = p->size;
                fetch += plan.bytes_fetch;
                local += plan.bytes_local;
                json_array_append_new(pls, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "name", p->name, "chunking",
                                                     p->cdc ? "cdc" : "fixed", "size", (json_int_t) p->size, "chunks",
                                                     (json_int_t) p->n_chunks, "reused", (json_int_t) plan.bytes_local,
                                                     "fetch", (json_int_t) plan.bytes_fetch));
                if (!json)
                        printf("%s: %llu bytes (%llu %s chunks): %llu found, %llu to fetch (%.1f %%)\n", p->name,
                               (unsigned long long) p->size, (unsigned long long) p->n_chunks, p->cdc ? "content-defined" : "fixed",
                               (unsigned long long) plan.bytes_local, (unsigned long long) plan.bytes_fetch,
                               p->size ? 100.0 * (double) plan.bytes_fetch / (double) p->size : 0.0);
                delta_plan_done(&plan);
        }
        {
                bool full = total > 0 && fetch * 100 > (uint64_t) full_above * total;
                uint64_t wire = meta + (full ? total : fetch);
                if (json) {
                        json_t *o = json_pack("{s:o, s:I, s:I, s:I, s:I, s:s, s:I}", "payloads", pls, "metadata", (json_int_t) meta,
                                              "payload_bytes", (json_int_t) total, "reused", (json_int_t) local, "fetch",
                                              (json_int_t) fetch, "mode", full ? "full" : "delta", "bytes", (json_int_t) wire);
                        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
                        putchar('\n');
                        json_decref(o);
                } else {
                        json_decref(pls);
                        printf("total: %llu bytes over the wire (%s; metadata %llu) of a %llu-byte bundle: %.1f %%\n",
                               (unsigned long long) wire, full ? "one sequential download: more than the threshold would be fetched"
                                                             : "delta", (unsigned long long) meta,
                               (unsigned long long) declared, 100.0 * (double) wire / (double) declared);
                }
        }
        return EXIT_OK;
}

/* Help texts with the shared exit-code table appended. */
static const char create_help[] = CREATE_USAGE EXIT_CODES_HELP, verify_help[] = VERIFY_USAGE EXIT_CODES_HELP,
                  info_help[] = INFO_USAGE EXIT_CODES_HELP, estimate_help[] = ESTIMATE_USAGE EXIT_CODES_HELP;

static const struct verb bundle_verbs[] = {
        VERB("create", verb_bundle_create, "make a signed update bundle", create_help),
        VERB("verify", verb_bundle_verify, "verify a bundle completely (signature, chain, payloads, policy)", verify_help),
        VERB("info", verb_bundle_info, "show a bundle's manifest (unverified)", info_help),
        VERB("delta-estimate", verb_bundle_delta_estimate, "bytes a drone holding OLD fetches to install NEW", estimate_help),
};

const struct verb_group bundle_group = {
        .usage = "Usage: ringil bundle COMMAND [OPTIONS…]\n\n"
                 "Signed update bundles (docs/bundle-format.md).\n\n",
        .verbs = bundle_verbs,
        .n = ELEMENTSOF(bundle_verbs),
};
