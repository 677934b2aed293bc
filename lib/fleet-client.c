/* fleet-client.c: libcurl with mutual TLS and a pinned CA for the agent and the operator commands; server failover; mirror clients. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "fileio.h"
#include "fleet-client.h"
#include "fleet-http.h"
#include "macro.h"
#include "progress.h"

struct fleet_client {
        CURL *curl;
        char bases[FLEET_CLIENT_MAX_SERVERS][512];
        size_t n_bases, cur;                 /* the server in use: the last that answered */
        char ca[256], cert[256], key[256];   /* for messages: which file to look at */
        unsigned timeout;
        char errbuf[CURL_ERROR_SIZE];
        bool over_cap;                       /* the last answer was cut at its cap by write_buf */
        size_t cap;
        bool mirror;                         /* a static host: no client certificate, the system's or a given CA */
        long retry_after;                    /* seconds, from the last answer's Retry-After; 0: none */
        const volatile sig_atomic_t *abort;   /* set (by a signal handler): the transfer stops */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) {
        (void) curl_global_init(CURL_GLOBAL_DEFAULT);
}

void fleet_client_free(fleet_client *fc) {
        if (!fc)
                return;
        curl_easy_cleanup(fc->curl);
        free(fc);
}

/*
 * The TLS and transfer settings every request of ours uses (fleet clients and lib/fleet-fetch.c's
 * handles). The fleet server: pinned to `ca`, never the system trust store, with the drone's or
 * operator's certificate. A mirror: no client certificate ever, `ca` if given else the system's trust
 * store, https redirects followed (a CDN or object store may redirect to where the file is).
 */
static void easy_setup(CURL *curl, const char *ca, const char *cert, const char *key, unsigned timeout_sec, bool mirror) {
        pthread_once(&curl_once, curl_init_once);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, mirror ? 1L : 0L);
        curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
        curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
        if (!mirror || ca) {
                /* Pin: only our CA file, never the system trust store. */
                curl_easy_setopt(curl, CURLOPT_CAINFO, ca);
                curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
        }
        /* else: libcurl's default, the system's trust store. A mirror is not trusted for anything: every
         * byte from it is checked against hashes the server gave us. */
        /* INVARIANT: a mirror's handle never holds the drone's certificate or key. */
        if (cert && !mirror)
                curl_easy_setopt(curl, CURLOPT_SSLCERT, cert);
        if (key && !mirror)
                curl_easy_setopt(curl, CURLOPT_SSLKEY, key);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long) MIN(timeout_sec, 30u));
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
        /* Slow-retrieval defence: under 1 KiB/s for the whole timeout aborts the transfer. */
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long) timeout_sec);
        curl_easy_setopt(curl, CURLOPT_USERAGENT, "ringil/" "0.1");
}

void fleet_client_easy_setup(void *handle, const char *ca, const char *cert, const char *key, unsigned timeout_sec) {
        easy_setup(handle, ca, cert, key, timeout_sec, false);
}

void fleet_client_easy_setup_mirror(void *handle, const char *ca, unsigned timeout_sec) {
        easy_setup(handle, ca, NULL, NULL, timeout_sec, true);
}

/* Split "URL[,URL…]" (commas and blanks between) into fc->bases; each must be https://. */
static int set_bases(fleet_client *fc, const char *list) {
        const char *p = list;

        while (*p) {
                size_t n;
                p += strspn(p, ", \t");
                n = strcspn(p, ", \t");
                if (n == 0)
                        break;
                if (fc->n_bases == FLEET_CLIENT_MAX_SERVERS)
                        return ringil_fail(-E2BIG, "more than %d server URLs in '%s'", FLEET_CLIENT_MAX_SERVERS, list);
                if (n < 8 || strncmp(p, "https://", 8) != 0)
                        return ringil_fail(-EINVAL, "server URL '%.*s' is not https://", (int) MIN(n, (size_t) 255), p);
                if (n >= sizeof(fc->bases[0]))
                        return -ENAMETOOLONG;
                while (n > 8 && p[n - 1] == '/')
                        n--;
                memcpy(fc->bases[fc->n_bases], p, n);
                fc->bases[fc->n_bases++][n] = '\0';
                p += strcspn(p, ", \t");
        }
        if (fc->n_bases == 0)
                return ringil_fail(-EINVAL, "no server URL in '%s'", list);
        return 0;
}

static int client_new(const char *base_urls, const char *ca, const char *cert, const char *key, unsigned timeout_sec,
                      bool mirror, fleet_client **ret) {
        fleet_client *fc;
        int r;

        pthread_once(&curl_once, curl_init_once);
        fc = calloc(1, sizeof(*fc));
        if (!fc)
                return -ENOMEM;
        fc->mirror = mirror;
        r = mirror ? (strlen(base_urls) < sizeof(fc->bases[0]) && strncmp(base_urls, "https://", 8) == 0
                              ? (snprintf(fc->bases[0], sizeof(fc->bases[0]), "%s", base_urls), fc->n_bases = 1, 0)
                              : ringil_fail(-EINVAL, "mirror URL '%.255s' is not https://", base_urls))
                   : set_bases(fc, base_urls);
        if (r < 0) {
                free(fc);
                return r;
        }
        (void) snprintf(fc->ca, sizeof(fc->ca), "%s", ca ? ca : "");
        (void) snprintf(fc->cert, sizeof(fc->cert), "%s", cert ? cert : "");
        (void) snprintf(fc->key, sizeof(fc->key), "%s", key ? key : "");
        fc->timeout = timeout_sec;
        fc->curl = curl_easy_init();
        if (!fc->curl) {
                free(fc);
                return -ENOMEM;
        }
        easy_setup(fc->curl, ca, cert, key, timeout_sec, mirror);
        curl_easy_setopt(fc->curl, CURLOPT_ERRORBUFFER, fc->errbuf);
        *ret = fc;
        return 0;
}

int fleet_client_new(const char *base_urls, const char *ca, const char *cert, const char *key, unsigned timeout_sec,
                     fleet_client **ret) {
        return client_new(base_urls, ca, cert, key, timeout_sec, false, ret);
}

int fleet_client_new_mirror(const char *url, const char *ca, unsigned timeout_sec, fleet_client **ret) {
        return client_new(url, ca, NULL, NULL, timeout_sec, true, ret);
}

const char *fleet_client_url(const fleet_client *fc) {
        return fc->bases[fc->cur];
}

size_t fleet_client_servers(const fleet_client *fc, const char **ret, size_t max) {
        size_t n = MIN(fc->n_bases, max);

        for (size_t i = 0; i < n; i++)
                ret[i] = fc->bases[(fc->cur + i) % fc->n_bases];
        return n;
}

long fleet_client_retry_after(const fleet_client *fc) {
        return fc->retry_after;
}

/* The host:port part of a URL, for messages ("https://h:p/api/…" → "h:p"). */
static void url_authority(const char *url, char *out, size_t size) {
        const char *h = strstr(url, "://"), *e;

        h = h ? h + 3 : url;
        e = strchr(h, '/');
        (void) snprintf(out, size, "%.*s", (int) (e ? (size_t) (e - h) : strlen(h)), h);
}

/*
 * Turn a libcurl failure into an errno (err.h: EXIT_NETWORK / EXIT_PROTOCOL classes) and a detail in our
 * words: what failed, with which URL or file, and what to look at. libcurl's own text is shown only for
 * TLS failures, where it carries the verifier's reason.
 */
static int transport_error(fleet_client *fc, CURLcode cc, const char *url) {
        char host[256];
        long os_errno = 0;
        const char *tls = fc->errbuf[0] ? fc->errbuf : curl_easy_strerror(cc);

        url_authority(url, host, sizeof(host));
        (void) curl_easy_getinfo(fc->curl, CURLINFO_OS_ERRNO, &os_errno);
        switch ((int) cc) {   /* int: curl's enum has ~100 members; the rest share the default */
        case CURLE_COULDNT_CONNECT:
                if (os_errno == ENETUNREACH || os_errno == EHOSTUNREACH)
                        return ringil_fail(-(int) os_errno, "cannot reach %s (%s): no route to the server; check the "
                                           "network or tunnel", url, strerror((int) os_errno));
                return ringil_fail(-ECONNREFUSED, "cannot connect to %s (%s): is %s running and listening on %s, and "
                                   "is the URL right?", url, os_errno > 0 ? strerror((int) os_errno) : "connection refused",
                                   fc->mirror ? "the mirror" : "ringil-server", host);
        case CURLE_COULDNT_RESOLVE_HOST:
                return ringil_fail(-EHOSTUNREACH, "cannot resolve the host of %s: check the server URL and DNS", url);
        case CURLE_OPERATION_TIMEDOUT:
                return ringil_fail(-ETIMEDOUT, "no answer from %s within %u s (or slower than 1 KiB/s): the network "
                                   "or the server is down or overloaded; try again later", url, fc->timeout);
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return ringil_fail(-ECONNRESET, "the connection to %s broke off before the answer was complete; "
                                   "try again", url);
        case CURLE_PEER_FAILED_VERIFICATION: {
                /* the name the certificate must carry: the host without the port */
                char name[256];
                const char *colon = strrchr(host, ':');
                (void) snprintf(name, sizeof(name), "%.*s", (int) (colon && !strchr(colon, ']') ? (size_t) (colon - host)
                                                                                                  : strlen(host)), host);
                if (fc->mirror)
                        return ringil_fail(-EPROTO, "the mirror at %s is not trusted: its certificate does not chain to "
                                           "%s%s%s or does not name %s (TLS: %s)", host, fc->ca[0] ? "'" : "the system's "
                                           "trust store", fc->ca, fc->ca[0] ? "'" : "", name, tls);
                return ringil_fail(-EPROTO, "the server at %s is not trusted: its certificate does not chain to the "
                                   "pinned CA '%s' or does not name %s (TLS: %s)", host, fc->ca, name, tls);
        }
        case CURLE_SSL_CACERT_BADFILE:
                if (access(fc->ca, R_OK) < 0)
                        return ringil_fail(negative_errno(), "cannot read the pinned CA file '%s': %s", fc->ca,
                                           strerror(errno));
                return ringil_fail(-RINGIL_EMALFORMED, "the pinned CA file '%s' holds no usable certificate", fc->ca);
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ENGINE_INITFAILED:
                if (fc->cert[0] && access(fc->cert, R_OK) < 0)
                        return ringil_fail(negative_errno(), "cannot read our certificate '%s': %s", fc->cert,
                                           strerror(errno));
                if (fc->key[0] && access(fc->key, R_OK) < 0)
                        return ringil_fail(negative_errno(), "cannot read our key '%s': %s", fc->key, strerror(errno));
                return ringil_fail(-RINGIL_EMALFORMED, "cannot use our certificate '%s' with key '%s' (TLS: %s)",
                                   fc->cert, fc->key, tls);
        case CURLE_SSL_CONNECT_ERROR:
                return ringil_fail(-EPROTO, "TLS handshake with %s failed: the server refused our certificate, or "
                                   "it does not speak TLS on that port (TLS: %s)", host, tls);
        case CURLE_WRITE_ERROR:
                if (fc->over_cap)
                        return ringil_fail(-EPROTO, "the answer from %s is larger than %zu bytes: not a ringil-server, "
                                           "or a misbehaving one", url, fc->cap);
                return ringil_fail(-EIO, "stopped receiving from %s: the data could not be handed on", url);
        case CURLE_READ_ERROR:
                return ringil_fail(-EIO, "cannot read the file being sent to %s", url);
        case CURLE_ABORTED_BY_CALLBACK:
                /* our progress callback saw the abort flag (a signal): the caller stops, nothing failed */
                if (fc->abort && *fc->abort)
                        return ringil_fail(-EINTR, "transfer from %s stopped: the agent is stopping", url);
                return ringil_fail(-ECANCELED, "transfer to %s cancelled", url);
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return ringil_fail(-EINVAL, "'%s' is not a usable https:// URL", url);
        default:
                return ringil_fail(-ECONNRESET, "request to %s failed: %s", url, curl_easy_strerror(cc));
        }
}

struct body_sink {
        fleet_client *fc;
        struct buf *b;
};

static size_t write_buf(char *p, size_t size, size_t n, void *userdata) {
        struct body_sink *s = userdata;

        if (buf_append(s->b, p, size * n) < 0) {
                s->fc->over_cap = true;   /* over the cap: abort the transfer, and say why */
                return 0;
        }
        return size * n;
}

/* Failures after which the next server of the list is tried: it may answer where this one cannot. */
static bool failover_error(int r) {
        return r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ENETUNREACH || r == -ETIMEDOUT || r == -ECONNRESET ||
               r == -ECONNABORTED || r == -EPROTO;
}

static bool failover_status(long status) {
        return status == 502 || status == 503 || status == 504;
}

static int perform_one(fleet_client *fc, const char *path, long *ret_status) {
        char url[1024];
        CURLcode cc;
        curl_off_t ra = -1;
        int n = snprintf(url, sizeof(url), "%s%s", fc->bases[fc->cur], path);

        if (n < 0 || (size_t) n >= sizeof(url))
                return -ENAMETOOLONG;
        curl_easy_setopt(fc->curl, CURLOPT_URL, url);
        fc->errbuf[0] = '\0';
        fc->over_cap = false;
        fc->retry_after = 0;
        cc = curl_easy_perform(fc->curl);
        if (cc != CURLE_OK)
                return transport_error(fc, cc, url);
        curl_easy_getinfo(fc->curl, CURLINFO_RESPONSE_CODE, ret_status);
        if (curl_easy_getinfo(fc->curl, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
                fc->retry_after = (long) MIN(ra, (curl_off_t) 86400);
        return 0;
}

/*
 * One request, to the server in use and, when it cannot answer (unreachable, cut, TLS refused, or
 * 502/503/504), to each other server of the list in turn, once. The server that answers stays in use.
 * reset (may be NULL) runs before each retry, to clear what the failed attempt collected.
 */
static int perform(fleet_client *fc, const char *path, long *ret_status, void (*reset)(void *userdata), void *userdata) {
        int r = 0;

        for (size_t tried = 0; tried < fc->n_bases; tried++) {
                if (tried > 0) {
                        fc->cur = (fc->cur + 1) % fc->n_bases;
                        if (reset)
                                reset(userdata);
                }
                *ret_status = 0;
                r = perform_one(fc, path, ret_status);
                if (tried + 1 < fc->n_bases && (r < 0 ? failover_error(r) : failover_status(*ret_status)))
                        continue;
                break;
        }
        return r;
}

static int progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
        const fleet_client *fc = userdata;
        (void) dltotal;
        (void) dlnow;
        (void) ultotal;
        (void) ulnow;
        return fc->abort && *fc->abort ? 1 : 0;
}

void fleet_client_set_abort(fleet_client *fc, const volatile sig_atomic_t *flag) {
        fc->abort = flag;
        curl_easy_setopt(fc->curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
        curl_easy_setopt(fc->curl, CURLOPT_XFERINFODATA, fc);
        curl_easy_setopt(fc->curl, CURLOPT_NOPROGRESS, flag ? 0L : 1L);
}

static void reset_request(fleet_client *fc) {
        curl_easy_setopt(fc->curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(fc->curl, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(fc->curl, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(fc->curl, CURLOPT_RANGE, NULL);
        curl_easy_setopt(fc->curl, CURLOPT_HEADERFUNCTION, NULL);
        curl_easy_setopt(fc->curl, CURLOPT_HEADERDATA, NULL);
        curl_easy_setopt(fc->curl, CURLOPT_READFUNCTION, NULL);
        curl_easy_setopt(fc->curl, CURLOPT_UPLOAD, 0L);
}

/* What a failed attempt received is not the answer. */
static void buf_forget(void *userdata) {
        ((struct buf *) userdata)->len = 0;
}

static void file_rewind(void *userdata) {
        rewind(userdata);
}

int fleet_client_request(fleet_client *fc, const char *method, const char *path, const char *json_body,
                         size_t max_response, long *ret_status, struct buf *ret_body) {
        struct curl_slist *h = NULL;
        struct buf b = BUF_INIT(max_response);
        struct body_sink sink = { .fc = fc, .b = &b };
        int r;

        reset_request(fc);
        fc->cap = max_response;
        if (json_body) {
                h = curl_slist_append(NULL, "Content-Type: application/json");
                curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, h);
                curl_easy_setopt(fc->curl, CURLOPT_POSTFIELDS, json_body);
                curl_easy_setopt(fc->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(json_body));
        } else if (streq(method, "POST")) {
                curl_easy_setopt(fc->curl, CURLOPT_POSTFIELDS, "");
                curl_easy_setopt(fc->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
        }
        if (!streq(method, "GET") && !streq(method, "POST"))
                curl_easy_setopt(fc->curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEFUNCTION, write_buf);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEDATA, &sink);
        r = perform(fc, path, ret_status, buf_forget, &b);
        curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(fc->curl, CURLOPT_POSTFIELDS, NULL);
        curl_slist_free_all(h);
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        (void) buf_reserve(&b, 0);
        *ret_body = b;
        return 0;
}

static size_t read_file_cb(char *p, size_t size, size_t n, void *userdata) {
        FILE *f = userdata;
        size_t k = fread(p, size, n, f);

        progress_add((uint64_t) k * size);
        return k;
}

int fleet_client_upload(fleet_client *fc, const char *path, const char *file, size_t max_response,
                        long *ret_status, struct buf *ret_body) {
        _cleanup_fclose_ FILE *f = fopen(file, "re");
        struct curl_slist *h = NULL;
        struct buf b = BUF_INIT(max_response);
        struct body_sink sink = { .fc = fc, .b = &b };
        struct stat st;
        char what[300];
        int r;

        if (!f)
                return ringil_fail(negative_errno(), "cannot open '%s'", file);
        if (fstat(fileno(f), &st) < 0)
                return negative_errno();
        reset_request(fc);
        fc->cap = max_response;
        (void) snprintf(what, sizeof(what), "uploading '%s'", file);
        progress_step(what, (uint64_t) st.st_size);
        h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(fc->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(fc->curl, CURLOPT_READFUNCTION, read_file_cb);
        curl_easy_setopt(fc->curl, CURLOPT_READDATA, f);
        curl_easy_setopt(fc->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) st.st_size);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEFUNCTION, write_buf);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEDATA, &sink);
        r = perform(fc, path, ret_status, file_rewind, f);
        curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(h);
        if (r < 0) {
                progress_abort();
                buf_free(&b);
                return r;
        }
        progress_done();
        (void) buf_reserve(&b, 0);
        *ret_body = b;
        return 0;
}

struct send_ctx {
        fleet_source_t source;
        void *userdata;
        uint64_t left;
        int error;
};

static size_t send_read_cb(char *p, size_t size, size_t n, void *userdata) {
        struct send_ctx *sc = userdata;
        size_t want = (size_t) MIN((uint64_t) size * n, sc->left);
        ssize_t k;

        if (want == 0)
                return 0;
        k = sc->source(sc->userdata, p, want);
        if (k <= 0 || (size_t) k > want) {
                /* INVARIANT: a body shorter than announced is aborted, never completed with what we have */
                sc->error = k < 0 ? (int) k : -EPIPE;
                return CURL_READFUNC_ABORT;
        }
        sc->left -= (uint64_t) k;
        return (size_t) k;
}

int fleet_client_send(fleet_client *fc, const char *method, const char *path, uint64_t length, fleet_source_t source,
                      void *userdata, size_t max_response, long *ret_status, struct buf *ret_body) {
        struct send_ctx sc = { .source = source, .userdata = userdata, .left = length };
        struct curl_slist *h = NULL;
        struct buf b = BUF_INIT(max_response);
        struct body_sink sink = { .fc = fc, .b = &b };
        int r;

        reset_request(fc);
        fc->cap = max_response;
        h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(fc->curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(fc->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t) length);
        if (!streq(method, "PUT"))
                curl_easy_setopt(fc->curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(fc->curl, CURLOPT_READFUNCTION, send_read_cb);
        curl_easy_setopt(fc->curl, CURLOPT_READDATA, &sc);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEFUNCTION, write_buf);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEDATA, &sink);
        /* The server in use only: a streamed body cannot be sent again to the next one. */
        r = perform_one(fc, path, ret_status);
        curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(fc->curl, CURLOPT_UPLOAD, 0L);
        curl_slist_free_all(h);
        if (sc.error < 0) {
                buf_free(&b);
                return ringil_fail(sc.error, "%s %s: the body ended or failed before %" PRIu64 " bytes", method, path, length);
        }
        if (r < 0) {
                buf_free(&b);
                return r;
        }
        (void) buf_reserve(&b, 0);
        *ret_body = b;
        return 0;
}

struct range_ctx {
        uint64_t offset, len, got;
        bool range_ok;
        int status_checked;
        bool sink_failed;
        fleet_sink_t sink;
        void *userdata;
        int error;
        CURL *curl;
};

static size_t range_header_cb(char *p, size_t size, size_t n, void *userdata) {
        struct range_ctx *rc = userdata;
        size_t len = size * n;
        char v[128];

        if (len > 14 && strncasecmp(p, "Content-Range:", 14) == 0) {
                size_t vl = len - 14;
                const char *s = p + 14;
                uint64_t a, b, t;
                while (vl > 0 && (*s == ' ' || *s == '\t')) {
                        s++;
                        vl--;
                }
                while (vl > 0 && (s[vl - 1] == '\r' || s[vl - 1] == '\n' || s[vl - 1] == ' '))
                        vl--;
                if (vl < sizeof(v)) {
                        memcpy(v, s, vl);
                        v[vl] = '\0';
                        if (http_parse_content_range(v, &a, &b, &t) >= 0 && a == rc->offset &&
                            b == rc->offset + rc->len - 1)
                                rc->range_ok = true;
                }
        }
        return len;
}

static size_t range_write_cb(char *p, size_t size, size_t n, void *userdata) {
        struct range_ctx *rc = userdata;
        size_t len = size * n;
        long status = 0;

        /* INVARIANT: nothing reaches the sink unless the server answered exactly our range (206). */
        curl_easy_getinfo(rc->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status != 206 || !rc->range_ok) {
                rc->error = -EPROTO;
                return 0;
        }
        if (rc->got + len > rc->len) {
                rc->error = -EFBIG;   /* more than asked for: endless-data defence */
                return 0;
        }
        {
                int k = rc->sink(rc->userdata, p, len);
                if (k < 0) {
                        rc->error = k;   /* the sink's own reason (e.g. a chunk that failed its hash) */
                        rc->sink_failed = true;
                        return 0;
                }
        }
        rc->got += len;
        return len;
}

int64_t fleet_client_get_range(fleet_client *fc, const char *path, uint64_t offset, uint64_t len,
                               fleet_sink_t sink, void *userdata, long *ret_status) {
        struct range_ctx rc;
        char range[64];
        long status = 0;
        int r = 0;

        if (len == 0)
                return 0;
        reset_request(fc);
        snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
        curl_easy_setopt(fc->curl, CURLOPT_RANGE, range);
        curl_easy_setopt(fc->curl, CURLOPT_HEADERFUNCTION, range_header_cb);
        curl_easy_setopt(fc->curl, CURLOPT_HEADERDATA, &rc);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEFUNCTION, range_write_cb);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEDATA, &rc);
        /* The next server only while nothing reached the sink: bytes handed on are never sent twice. */
        for (size_t tried = 0; tried < fc->n_bases; tried++) {
                if (tried > 0)
                        fc->cur = (fc->cur + 1) % fc->n_bases;
                rc = (struct range_ctx) { .offset = offset, .len = len, .sink = sink, .userdata = userdata,
                                          .curl = fc->curl };
                status = 0;
                r = perform_one(fc, path, &status);
                curl_easy_getinfo(fc->curl, CURLINFO_RESPONSE_CODE, &status);
                if (rc.got == 0 && !rc.sink_failed && tried + 1 < fc->n_bases &&
                    ((r < 0 && rc.error == 0 && failover_error(r)) || failover_status(status)))
                        continue;
                break;
        }
        curl_easy_setopt(fc->curl, CURLOPT_RANGE, NULL);
        if (ret_status)
                *ret_status = status;
        if (rc.error < 0)
                return ringil_fail(rc.error, "range %s of %s%s: %s", range, fc->bases[fc->cur], path,
                                   rc.sink_failed ? ringil_detail() :
                                   rc.error == -EPROTO ? (status == 206 ? "the answer is not the range asked"
                                                                        : "not a 206 answer to a range request")
                                                       : "more bytes than asked");
        if (r >= 0 && status != 206)
                return ringil_fail(-EPROTO, "%s%s answered %ld to a range request", fc->bases[fc->cur], path, status);
        if (r < 0)
                return rc.got > 0 ? (int64_t) rc.got : r;
        return (int64_t) rc.got;
}
