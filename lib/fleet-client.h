/* fleet-client.h: the HTTPS client side of the fleet protocol (libcurl): mutual TLS, pinned CA, caps. */
#pragma once

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "macro.h"

/*
 * Used by ringild and by the operator commands of ringil-server. Only this module and its users link
 * libcurl. TLS: at least 1.2, the server must chain to `ca` (nothing from the system store), its name
 * must match the URL host, and we present `cert`/`key`. One connection is kept alive across calls.
 *
 * Several servers (replicas of one fleet): base_urls is "URL[,URL…]". A request goes to the server in
 * use; when that one cannot answer (unreachable, cut, TLS refused, or 502/503/504) the others are tried
 * in turn, once each, and the one that answers stays in use. Waiting between rounds (backoff) is the
 * caller's: fleet_client_retry_after() has the last answer's Retry-After.
 */
typedef struct fleet_client fleet_client;

#define FLEET_CLIENT_MAX_SERVERS 8

int fleet_client_new(const char *base_urls, const char *ca, const char *cert, const char *key, unsigned timeout_sec,
                     fleet_client **ret);
/*
 * A client for a bundle mirror (any static HTTPS host): url is the file's whole URL (requests use path
 * ""). No client certificate is ever sent. ca: a PEM file, or NULL for the system's trust store.
 * Redirects to https:// are followed (object stores, CDNs), at most 3.
 */
int fleet_client_new_mirror(const char *url, const char *ca, unsigned timeout_sec, fleet_client **ret);
/* The base URL in use (for messages). */
const char *fleet_client_url(const fleet_client *fc);
/* The client's server URLs, the one in use first, at most max of them into ret; their number. */
size_t fleet_client_servers(const fleet_client *fc, const char **ret, size_t max);
/* Seconds the last answer asked to wait (Retry-After), 0 when it did not. */
long fleet_client_retry_after(const fleet_client *fc);
void fleet_client_free(fleet_client *fc);
DEFINE_TRIVIAL_CLEANUP_FUNC(fleet_client *, fleet_client_free)

/* When *flag becomes non-zero (a SIGTERM handler sets it) a running transfer stops with -EINTR. */
void fleet_client_set_abort(fleet_client *fc, const volatile sig_atomic_t *flag);

/*
 * One request to base_url + path. The response body (at most max_response bytes, else -EPROTO: an
 * answer that big is not the protocol's) goes to *ret_body (a capped buf the caller frees). Returns 0 with
 * *ret_status set for any HTTP answer; otherwise a negative errno with a detail in our words that names
 * the URL (or the file) and what to check: -ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH, -ETIMEDOUT,
 * -ECONNRESET (network: EXIT_NETWORK), -EPROTO (TLS: server not trusted by the pinned CA, handshake
 * refused; EXIT_PROTOCOL), -ENOENT / -RINGIL_EMALFORMED (our CA, certificate or key file unusable).
 */
int fleet_client_request(fleet_client *fc, const char *method, const char *path, const char *json_body,
                         size_t max_response, long *ret_status, struct buf *ret_body);

/* POST a file's bytes (e.g. a bundle upload) to path; a progress step (progress.h) while it goes. */
int fleet_client_upload(fleet_client *fc, const char *path, const char *file, size_t max_response,
                        long *ret_status, struct buf *ret_body);

/*
 * Send a body of exactly `length` bytes produced as it goes (e.g. a NAR piped from `nix store dump-path`)
 * with method (PUT or POST) to path. source fills up to n bytes and returns how many, 0 only at the end,
 * or a negative errno to abort; a source that ends before `length` bytes aborts the request (-EPIPE): the
 * server never sees a complete body it did not get. Otherwise as fleet_client_request().
 */
typedef ssize_t (*fleet_source_t)(void *userdata, void *p, size_t n);
int fleet_client_send(fleet_client *fc, const char *method, const char *path, uint64_t length, fleet_source_t source,
                      void *userdata, size_t max_response, long *ret_status, struct buf *ret_body);

/*
 * GET bytes [offset, offset+len) of path with a Range request, handing them to sink as they arrive.
 * Returns the number of bytes delivered (which may be short when the connection is cut: the caller
 * resumes from there). A server that ignores the Range (200) or answers another range is refused
 * with -EPROTO before any byte reaches sink. A sink's negative return stops the transfer and is
 * returned (its detail kept). Another server of the list is tried only while no byte reached sink.
 */
typedef int (*fleet_sink_t)(void *userdata, const void *p, size_t n);
int64_t fleet_client_get_range(fleet_client *fc, const char *path, uint64_t offset, uint64_t len,
                               fleet_sink_t sink, void *userdata, long *ret_status);

/* Apply our TLS settings (pinned CA, client certificate, TLS >= 1.2, timeouts, https only) to a libcurl
 * easy handle (CURL *); for the range fetcher's parallel handles (lib/fleet-fetch.h). */
void fleet_client_easy_setup(void *curl, const char *ca, const char *cert, const char *key, unsigned timeout_sec);
/* The same for a bundle mirror: no client certificate ever; ca, or the system's trust store when NULL;
 * https redirects followed. */
void fleet_client_easy_setup_mirror(void *curl, const char *ca, unsigned timeout_sec);
