/* fleet-client.c: libcurl with mutual TLS and a pinned CA for the agent and the operator commands. */
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

struct fleet_client {
        CURL *curl;
        char base[512];
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

int fleet_client_new(const char *base_url, const char *ca, const char *cert, const char *key, unsigned timeout_sec,
                     fleet_client **ret) {
        fleet_client *fc;
        size_t n = strlen(base_url);

        if (strncmp(base_url, "https://", 8) != 0)
                return ringil_fail(-EINVAL, "server URL '%s' is not https://", base_url);
        pthread_once(&curl_once, curl_init_once);
        fc = calloc(1, sizeof(*fc));
        if (!fc)
                return -ENOMEM;
        while (n > 0 && base_url[n - 1] == '/')
                n--;
        if (n >= sizeof(fc->base)) {
                free(fc);
                return -ENAMETOOLONG;
        }
        memcpy(fc->base, base_url, n);
        fc->curl = curl_easy_init();
        if (!fc->curl) {
                free(fc);
                return -ENOMEM;
        }
        curl_easy_setopt(fc->curl, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(fc->curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
        curl_easy_setopt(fc->curl, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(fc->curl, CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        curl_easy_setopt(fc->curl, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(fc->curl, CURLOPT_SSL_VERIFYHOST, 2L);
        /* Pin: only our CA file, never the system trust store. */
        curl_easy_setopt(fc->curl, CURLOPT_CAINFO, ca);
        curl_easy_setopt(fc->curl, CURLOPT_CAPATH, NULL);
        if (cert)
                curl_easy_setopt(fc->curl, CURLOPT_SSLCERT, cert);
        if (key)
                curl_easy_setopt(fc->curl, CURLOPT_SSLKEY, key);
        curl_easy_setopt(fc->curl, CURLOPT_CONNECTTIMEOUT, (long) MIN(timeout_sec, 30u));
        curl_easy_setopt(fc->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(fc->curl, CURLOPT_TCP_KEEPALIVE, 1L);
        /* Slow-retrieval defence: under 1 KiB/s for the whole timeout aborts the transfer. */
        curl_easy_setopt(fc->curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(fc->curl, CURLOPT_LOW_SPEED_TIME, (long) timeout_sec);
        curl_easy_setopt(fc->curl, CURLOPT_USERAGENT, "ringil/" "0.1");
        *ret = fc;
        return 0;
}

static int curl_to_errno(CURLcode c) {
        switch ((int) c) {   /* int: curl's enum has ~100 members we map to one default */
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
                return -EPROTO;
        case CURLE_WRITE_ERROR:
                return -EFBIG;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_ABORTED_BY_CALLBACK:
                return -EINTR;
        default:
                return -ECONNRESET;
        }
}

static size_t write_buf(char *p, size_t size, size_t n, void *userdata) {
        struct buf *b = userdata;

        if (buf_append(b, p, size * n) < 0)
                return 0;   /* over the cap: abort the transfer */
        return size * n;
}

static int perform(fleet_client *fc, const char *path, long *ret_status) {
        char url[1024];
        CURLcode cc;
        int n = snprintf(url, sizeof(url), "%s%s", fc->base, path);

        if (n < 0 || (size_t) n >= sizeof(url))
                return -ENAMETOOLONG;
        curl_easy_setopt(fc->curl, CURLOPT_URL, url);
        cc = curl_easy_perform(fc->curl);
        if (cc != CURLE_OK)
                return ringil_fail(curl_to_errno(cc), "%s: %s", url, curl_easy_strerror(cc));
        curl_easy_getinfo(fc->curl, CURLINFO_RESPONSE_CODE, ret_status);
        return 0;
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

int fleet_client_request(fleet_client *fc, const char *method, const char *path, const char *json_body,
                         size_t max_response, long *ret_status, struct buf *ret_body) {
        struct curl_slist *h = NULL;
        struct buf b = BUF_INIT(max_response);
        int r;

        reset_request(fc);
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
        curl_easy_setopt(fc->curl, CURLOPT_WRITEDATA, &b);
        r = perform(fc, path, ret_status);
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
        return fread(p, size, n, f);
}

int fleet_client_upload(fleet_client *fc, const char *path, const char *file, size_t max_response,
                        long *ret_status, struct buf *ret_body) {
        _cleanup_fclose_ FILE *f = fopen(file, "re");
        struct curl_slist *h = NULL;
        struct buf b = BUF_INIT(max_response);
        struct stat st;
        int r;

        if (!f)
                return ringil_fail(negative_errno(), "cannot open '%s'", file);
        if (fstat(fileno(f), &st) < 0)
                return negative_errno();
        reset_request(fc);
        h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(fc->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(fc->curl, CURLOPT_READFUNCTION, read_file_cb);
        curl_easy_setopt(fc->curl, CURLOPT_READDATA, f);
        curl_easy_setopt(fc->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) st.st_size);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEFUNCTION, write_buf);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEDATA, &b);
        r = perform(fc, path, ret_status);
        curl_easy_setopt(fc->curl, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(h);
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
        if (rc->sink(rc->userdata, p, len) < 0) {
                rc->error = -EIO;
                return 0;
        }
        rc->got += len;
        return len;
}

int64_t fleet_client_get_range(fleet_client *fc, const char *path, uint64_t offset, uint64_t len,
                               fleet_sink_t sink, void *userdata, long *ret_status) {
        struct range_ctx rc = { .offset = offset, .len = len, .sink = sink, .userdata = userdata, .curl = fc->curl };
        char range[64];
        long status = 0;
        int r;

        if (len == 0)
                return 0;
        reset_request(fc);
        snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
        curl_easy_setopt(fc->curl, CURLOPT_RANGE, range);
        curl_easy_setopt(fc->curl, CURLOPT_HEADERFUNCTION, range_header_cb);
        curl_easy_setopt(fc->curl, CURLOPT_HEADERDATA, &rc);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEFUNCTION, range_write_cb);
        curl_easy_setopt(fc->curl, CURLOPT_WRITEDATA, &rc);
        r = perform(fc, path, &status);
        curl_easy_setopt(fc->curl, CURLOPT_RANGE, NULL);
        curl_easy_getinfo(fc->curl, CURLINFO_RESPONSE_CODE, &status);
        if (ret_status)
                *ret_status = status;
        if (rc.error < 0)
                return ringil_fail(rc.error, "range %s: %s", range,
                                   rc.error == -EPROTO ? "server did not answer the range asked" :
                                   rc.error == -EFBIG ? "more bytes than asked" : "sink failed");
        if (r >= 0 && status != 206)
                return ringil_fail(-EPROTO, "server answered %ld to a range request", status);
        if (r < 0)
                return rc.got > 0 ? (int64_t) rc.got : r;
        return (int64_t) rc.got;
}
