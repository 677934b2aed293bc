/* fleet-download.c: N concurrent bundle downloads from ringil-server over mTLS keep-alive (libcurl multi);
 * prints throughput. The check-in load client is fleet-load.c (epoll + OpenSSL). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONNS 256
#define MAX_SAMPLES 4000000

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t sink(char *p, size_t s, size_t n, void *u) {
        (void) p;
        *(unsigned long long *) u += s * n;
        return s * n;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

int main(int argc, char *argv[]) {
        static const char body[] = "{\"version\":\"1.0\",\"slot\":\"a\",\"boot\":\"good\",\"state\":\"idle\"}";
        CURL *h[MAX_CONNS];
        double start[MAX_CONNS];
        double *lat;
        size_t n_lat = 0;
        unsigned long long bytes = 0;
        struct curl_slist *hdr = NULL;
        CURLM *m;
        int conns, secs, running, errors = 0;
        double t0, t_end;
        char url[512];
        int download;

        if (argc != 9) {
                fprintf(stderr, "usage: fleet-load URL CA CERT KEY checkin|download CONNS SECONDS PATH\n");
                return 2;
        }
        download = strcmp(argv[5], "download") == 0;
        conns = atoi(argv[6]);
        secs = atoi(argv[7]);
        if (conns < 1 || conns > MAX_CONNS || secs < 1)
                return 2;
        snprintf(url, sizeof(url), "%s%s", argv[1], argv[8]);
        lat = malloc(sizeof(double) * MAX_SAMPLES);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        m = curl_multi_init();
        curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long) conns);
        hdr = curl_slist_append(NULL, "Content-Type: application/json");
        for (int i = 0; i < conns; i++) {
                h[i] = curl_easy_init();
                curl_easy_setopt(h[i], CURLOPT_URL, url);
                curl_easy_setopt(h[i], CURLOPT_CAINFO, argv[2]);
                curl_easy_setopt(h[i], CURLOPT_SSLCERT, argv[3]);
                curl_easy_setopt(h[i], CURLOPT_SSLKEY, argv[4]);
                curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, sink);
                curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &bytes);
                curl_easy_setopt(h[i], CURLOPT_PRIVATE, (void *) (long) i);
                if (!download) {
                        curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdr);
                        curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, body);
                }
                start[i] = now();
                curl_multi_add_handle(m, h[i]);
        }
        t0 = now();
        t_end = t0 + secs;
        do {
                CURLMsg *msg;
                int left;
                curl_multi_perform(m, &running);
                while ((msg = curl_multi_info_read(m, &left))) {
                        long i, code = 0;
                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &i);
                        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
                        if (msg->data.result != CURLE_OK || code != 200)
                                errors++;
                        else if (n_lat < MAX_SAMPLES)
                                lat[n_lat++] = now() - start[i];
                        curl_multi_remove_handle(m, msg->easy_handle);
                        if (now() < t_end) {
                                start[i] = now();
                                curl_multi_add_handle(m, msg->easy_handle);   /* same handle: keep-alive */
                        }
                }
                curl_multi_poll(m, NULL, 0, 100, NULL);
        } while (running > 0 || now() < t_end);
        t_end = now() - t0;
        qsort(lat, n_lat, sizeof(double), cmp);
        if (download)
                printf("downloads=%zu errors=%d seconds=%.2f MiB/s=%.1f\n", n_lat, errors, t_end,
                       bytes / t_end / 1048576.0);
        else
                printf("requests=%zu errors=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f\n", n_lat, errors,
                       t_end, n_lat / t_end, n_lat ? lat[n_lat / 2] * 1e3 : 0, n_lat ? lat[n_lat * 99 / 100] * 1e3 : 0);
        return errors ? 1 : 0;
}
