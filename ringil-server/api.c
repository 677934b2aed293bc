/* api.c: the fleet server's route table, its dispatcher (roles first), and the handlers. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "fleet-msg.h"
#include "log.h"
#include "parse.h"
#include "secret.h"
#include "server.h"
#include "store-rollout.h"
#include "ui.h"

static int respond_json(struct route_ctx *x, int status, json_t *j) {
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

        if (!s)
                return tp_respond_error(x->resp, 500, "out of memory");
        if (tp_respond(x->resp, status, "application/json", s, strlen(s)) < 0)
                tp_respond_error(x->resp, 500, "out of memory");
        free(s);
        return status;
}

static int respond_text(struct route_ctx *x, int status, const char *ctype, const char *s) {
        if (tp_respond(x->resp, status, ctype, s, strlen(s)) < 0)
                return tp_respond_error(x->resp, 500, "out of memory");
        return status;
}

/*
 * A store failure: 503 with Retry-After. The database may be restarting, unreachable or busy; the
 * request changed nothing (a transaction cut in the middle is rolled back) and the client retries
 * (the agent keeps an unacknowledged report and sends it again).
 */
int api_store_error(struct route_ctx *x, int r) {
        atomic_fetch_add(&x->srv->m.store_errors, 1);
        tp_respond_error(x->resp, 503, "store: %s", r == -ENOTCONN ? "the database is unreachable, try again later"
                                                                   : ringil_detail());
        tp_header(x->resp, "Retry-After", "%u", SERVER_STORE_RETRY_AFTER);
        return 503;
}

/* ---- drones ---- */

static int route_checkin(struct route_ctx *x) {
        _cleanup_free_ char *out = NULL;
        struct server *srv = x->srv;
        struct fleet_status st;
        struct fleet_assignment a = { .poll_interval = srv->cfg.poll_interval };
        struct release rel;
        bool held = false;
        int r;

        if (fleet_status_parse(x->req->body, x->req->body_len, &st) < 0)
                return tp_respond_error(x->resp, 400, "check-in: %s", ringil_detail());
        r = store_checkin(srv->db, x->req->peer, &st, (int64_t) time(NULL));
        if (r < 0)
                return api_store_error(x, r);
        /* a rollout may hand its release now, or hold the drone: then it has no assignment at all */
        r = api_rollout_checkin(x, &st, &held, &a);
        if (r < 0)
                return api_store_error(x, r);
        /* the assignment came with the drone's record, read by the dispatcher just before (or, when a
         * rollout just handed its release, from api_rollout_checkin()) */
        rel = x->auth.release;
        if (x->auth.assigned && !held) {
                a.assigned = true;
                a.release = rel.id;
                a.size = rel.size;
                snprintf(a.version, sizeof(a.version), "%s", rel.version);
                snprintf(a.sha256, sizeof(a.sha256), "%s", rel.sha256);
                if (rel.meta_size > 0 && rel.meta_sha256[0]) {
                        a.meta_size = rel.meta_size;
                        snprintf(a.meta_sha256, sizeof(a.meta_sha256), "%s", rel.meta_sha256);
                        /* mirrors only with the metadata hash: without it the agent could not check them */
                        a.n_mirrors = release_mirrors_split(rel.mirrors, a.mirrors);
                }
        }
        atomic_fetch_add(&srv->m.checkins, 1);
        if (fleet_assignment_format(&a, &out) < 0)
                return tp_respond_error(x->resp, 500, "out of memory");
        return respond_text(x, 200, "application/json", out);
}

static int route_report(struct route_ctx *x) {
        struct fleet_status st;
        char out[64];
        int r;

        if (fleet_status_parse(x->req->body, x->req->body_len, &st) < 0)
                return tp_respond_error(x->resp, 400, "report: %s", ringil_detail());
        if (st.seq == 0)
                return tp_respond_error(x->resp, 400, "report: 'seq' must be > 0");
        r = store_report(x->srv->db, x->req->peer, &st, (int64_t) time(NULL));
        if (r == -ESTALE)
                return tp_respond_error(x->resp, 409, "report seq %" PRIu64 " is older than the last one stored", st.seq);
        if (r < 0)
                /* No acknowledgement unless committed: the agent keeps the report and retries. */
                return api_store_error(x, r);
        /* Its rollout and compliance parts, also for a repeated report (the first attempt may have
         * stopped between the commits): both are idempotent, and the acknowledgement waits for them. */
        r = store_rollout_report(x->srv->db, x->req->peer, &st, (int64_t) time(NULL));
        if (r >= 0)
                r = store_compliance_update(x->srv->db, x->req->peer, &st, (int64_t) time(NULL), &(bool) { false });
        if (r < 0)
                return api_store_error(x, r);
        atomic_fetch_add(&x->srv->m.reports, 1);
        log_info("drone %s: %s (release %" PRId64 ", version '%s')%s%s", x->req->peer,
                 fleet_state_to_string(st.state), st.release, st.version, st.error[0] ? ": " : "", st.error);
        snprintf(out, sizeof(out), "{\"ack\":%" PRIu64 "}", st.seq);
        return respond_text(x, 200, "application/json", out);
}

static int route_drone_get(struct route_ctx *x) {
        json_t *j = NULL;
        int r;

        if (ca_name_valid(x->param) < 0)
                return tp_respond_error(x->resp, 404, "no such drone");
        r = store_drone_json(x->srv->db, x->param, &j);
        if (r == -ENOENT)
                return tp_respond_error(x->resp, 404, "no drone '%s'", x->param);
        if (r >= 0)
                r = store_drone_decorate(x->srv->db, x->param, j);   /* tags, compliance, rollout */
        if (r < 0) {
                json_decref(j);
                return api_store_error(x, r);
        }
        r = respond_json(x, 200, j);
        json_decref(j);
        return r;
}

static int route_drones_list(struct route_ctx *x) {
        json_t *j = NULL;
        int r;

        r = store_drones_json(x->srv->db, &j);
        if (r < 0)
                return api_store_error(x, r);
        r = respond_json(x, 200, j);
        json_decref(j);
        return r;
}

static int route_drone_add(struct route_ctx *x) {
        const char *id = NULL, *group = "default";
        json_t *j, *out;
        json_error_t e;
        uint8_t raw[32], hash[SHA256_LEN];
        char token[65];
        int64_t now = (int64_t) time(NULL), expires = now + x->srv->cfg.token_ttl;
        int r;

        j = json_loadb(x->req->body, x->req->body_len, JSON_REJECT_DUPLICATES, &e);
        if (!j || json_unpack(j, "{s:s, s?s !}", "id", &id, "group", &group) < 0 || ca_name_valid(id) < 0 ||
            ca_name_valid(group) < 0) {
                json_decref(j);
                return tp_respond_error(x->resp, 400, "expected {\"id\": NAME, \"group\": NAME}");
        }
        if (crypto_random(raw, sizeof(raw)) < 0 || crypto_sha256(raw, sizeof(raw), hash) < 0) {
                json_decref(j);
                return tp_respond_error(x->resp, 500, "random");
        }
        hex_encode(raw, sizeof(raw), token);
        secret_wipe(raw, sizeof(raw));
        r = store_drone_add(x->srv->db, id, group, hash, now, expires);
        if (r < 0) {
                secret_wipe(token, sizeof(token));
                r = r == -EEXIST ? tp_respond_error(x->resp, 409, "drone '%s' exists (a new token for it: ringil-server "
                                                    "reissue-token %s)", id, id)
                                 : api_store_error(x, r);
                json_decref(j);
                return r;
        }
        log_info("registered drone '%s' in group '%s'", id, group);
        snprintf(x->log_target, sizeof(x->log_target), "drone:%s", id);
        snprintf(x->log_detail, sizeof(x->log_detail), "register drone in group %s", group);
        out = json_pack("{s:s, s:s, s:s, s:I}", "id", id, "group", group, "token", token, "expires",
                        (json_int_t) expires);
        secret_wipe(token, sizeof(token));
        json_decref(j);
        r = respond_json(x, 201, out);
        json_decref(out);
        return r;
}

/* POST /api/v1/drones/ID/token (operator): a new one-time enrollment token for an existing drone, for a
 * token that was lost or expired. Revoked drones get none (409); see store_drone_reissue(). */
static int route_drone_token(struct route_ctx *x) {
        const char *id = x->param;
        uint8_t raw[32], hash[SHA256_LEN];
        char token[65];
        int64_t expires = (int64_t) time(NULL) + x->srv->cfg.token_ttl;
        json_t *out;
        int r;

        if (ca_name_valid(id) < 0)
                return tp_respond_error(x->resp, 404, "no drone '%s'", id);
        if (crypto_random(raw, sizeof(raw)) < 0 || crypto_sha256(raw, sizeof(raw), hash) < 0)
                return tp_respond_error(x->resp, 500, "random");
        hex_encode(raw, sizeof(raw), token);
        secret_wipe(raw, sizeof(raw));
        r = store_drone_reissue(x->srv->db, id, hash, expires);
        if (r < 0) {
                secret_wipe(token, sizeof(token));
                if (r == -ENOENT)
                        return tp_respond_error(x->resp, 404, "no drone '%s'", id);
                if (r == -RINGIL_EREFUSED)
                        return tp_respond_error(x->resp, 409, "drone '%s' is revoked, and revoked identities stay "
                                                "revoked: register the drone under a new id", id);
                return api_store_error(x, r);
        }
        log_notice("re-issued the enrollment token of drone '%s'", id);
        snprintf(x->log_target, sizeof(x->log_target), "drone:%s", id);
        snprintf(x->log_detail, sizeof(x->log_detail), "re-issue enrollment token");
        out = json_pack("{s:s, s:s, s:I}", "id", id, "token", token, "expires", (json_int_t) expires);
        secret_wipe(token, sizeof(token));
        r = respond_json(x, 201, out);
        json_decref(out);
        return r;
}

static int route_drone_revoke(struct route_ctx *x) {
        int r = ca_name_valid(x->param) < 0 ? -ENOENT : store_drone_revoke(x->srv->db, x->param);

        snprintf(x->log_target, sizeof(x->log_target), "drone:%s", x->param);

        if (r == -ENOENT)
                return tp_respond_error(x->resp, 404, "no drone '%s'", x->param);
        if (r < 0)
                return api_store_error(x, r);
        log_notice("revoked drone '%s'", x->param);
        snprintf(x->log_detail, sizeof(x->log_detail), "revoke drone");
        return respond_text(x, 200, "application/json", "{\"revoked\":true}");
}

/* ---- enrollment (the enrollment port) ---- */

static int route_enroll(struct route_ctx *x) {
        _cleanup_free_ char *pem = NULL, *ca = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        struct server *srv = x->srv;
        json_t *j;
        json_error_t e;
        const char *id = NULL, *token = NULL, *csr = NULL;
        uint8_t raw[32], hash[SHA256_LEN];
        char serial[65] = "";
        int64_t not_after;
        int r;

        if (!srv->device_ca_key)
                return tp_respond_error(x->resp, 501, "enrollment is disabled (no CA key on this server)");
        j = json_loadb(x->req->body, x->req->body_len, JSON_REJECT_DUPLICATES, &e);
        if (!j || json_unpack(j, "{s:s, s:s, s:s !}", "id", &id, "token", &token, "csr", &csr) < 0 ||
            ca_name_valid(id) < 0 || strlen(token) != 64 || hex_decode(token, raw, sizeof(raw)) < 0) {
                json_decref(j);
                return tp_respond_error(x->resp, 400, "enroll: expected {\"id\", \"token\", \"csr\"}");
        }
        r = ca_csr_pubkey(csr, strlen(csr), &pub);
        if (r >= 0)
                r = ca_sign(srv->device_ca_key, srv->device_ca_cert, pub, id, CA_PROFILE_DEVICE, NULL, CA_DEFAULT_DAYS,
                            &cert);
        if (r < 0) {
                json_decref(j);
                secret_wipe(raw, sizeof(raw));
                return tp_respond_error(x->resp, 400, "enroll: %s", ringil_detail());
        }
        (void) ca_cert_serial_hex(cert, serial);   /* "" (offline-issued) if it cannot be had */
        if (ca_cert_not_after(cert, &not_after) < 0)
                not_after = 0;
        (void) crypto_sha256(raw, sizeof(raw), hash);
        secret_wipe(raw, sizeof(raw));
        r = store_drone_enroll(srv->db, id, hash, (int64_t) time(NULL), serial);
        if (r < 0 && r != -ENOENT && r != -EACCES) {
                json_decref(j);
                return api_store_error(x, r);
        }
        if (r < 0) {
                atomic_fetch_add(&srv->m.auth_refused, 1);
                log_notice("enrollment of '%s' from %s refused", id, x->req->addr);
                json_decref(j);
                return tp_respond_error(x->resp, 403, "enrollment refused");
        }
        if (ca_cert_to_pem(cert, &pem) < 0 || ca_cert_to_pem(srv->device_ca_cert, &ca) < 0) {
                json_decref(j);
                return tp_respond_error(x->resp, 500, "out of memory");
        }
        /* for the dashboard's identity view; the enrollment stands without it */
        if (not_after > 0 && serial[0] && store_drone_cert_expiry(srv->db, id, serial, not_after) < 0)
                log_warning("drone '%s': certificate expiry not recorded: %s", id, ringil_detail());
        atomic_fetch_add(&srv->m.enrollments, 1);
        log_info("enrolled drone '%s' (certificate serial %s)", id, serial);
        {
                json_t *o = json_pack("{s:s, s:s, s:s}", "id", id, "cert", pem, "ca", ca);
                json_decref(j);   /* id points into j */
                r = respond_json(x, 200, o);
                json_decref(o);
        }
        return r;
}

/* ---- releases and files ---- */

/*
 * Answer GET or HEAD with fd, an open regular file of `size` bytes: 200 with all of it, or for a Range
 * header 206 with that single range (416 when unsatisfiable, 400 when malformed); Accept-Ranges and
 * Content-Length always, ETag when etag is not NULL. fd is taken over.
 */
static int respond_file(struct route_ctx *x, int fd, uint64_t size, const char *ctype, const char *etag,
                        atomic_uint_fast64_t *sent) {
        const struct http_request *h = x->http;
        uint64_t first = 0, last = size - 1, len = size;   /* size 0: len 0 and no body is sent */
        int r;

        if (h->has_range) {
                r = http_parse_range(h->range, size, &first, &last);
                if (r == -ERANGE) {
                        safe_close(fd);
                        tp_respond_error(x->resp, 416, "range not satisfiable: the resource has %" PRIu64 " bytes", size);
                        tp_header(x->resp, "Content-Range", "bytes */%" PRIu64, size);
                        return 416;
                }
                if (r < 0) {
                        safe_close(fd);
                        return tp_respond_error(x->resp, 400, "malformed Range");
                }
                len = last - first + 1;
                tp_header(x->resp, "Content-Range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
        }
        tp_header(x->resp, "Accept-Ranges", "bytes");
        if (etag)
                tp_header(x->resp, "ETag", "\"%s\"", etag);
        tp_respond_file(x->resp, h->has_range ? 206 : 200, ctype, fd, first, len, sent);
        return x->resp->status;
}

static int route_bundle(struct route_ctx *x) {
        struct server *srv = x->srv;
        struct release rel;
        struct stat st;
        uint64_t rid;
        int fd;

        if (parse_u64(x->param, &rid) < 0 || rid == 0 || rid > INT64_MAX)
                return tp_respond_error(x->resp, 404, "no such release");
        if (x->req->role == PEER_DRONE) {
                /* INVARIANT: a drone downloads only the release currently assigned to it (read with its
                 * record, in the same statement that checked it is allowed); a member a rollout holds
                 * has none. */
                rel = x->auth.release;
                if (!x->auth.assigned || rel.id != (int64_t) rid || store_rollout_holds(&x->auth)) {
                        atomic_fetch_add(&srv->m.auth_refused, 1);
                        return tp_respond_error(x->resp, 403, "release %" PRIu64 " is not assigned to '%s'", rid,
                                                x->req->peer);
                }
        } else {
                int r = store_release_get(srv->db, (int64_t) rid, &rel);
                if (r == -ENOENT)
                        return tp_respond_error(x->resp, 404, "no release %" PRIu64, rid);
                if (r < 0)
                        return api_store_error(x, r);
        }
        if (!rel.path[0])
                return tp_respond_error(x->resp, 404, "release %" PRIu64 " is served by its mirrors only", rid);

        fd = open(rel.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size != rel.size || rel.size == 0) {
                safe_close(fd);
                /* Another replica may hold it (a store directory that is not shared): a client with a
                 * list of servers tries the next one on 503. */
                log_warning("bundle of release %" PRIu64 " is missing or changed: '%s'", rid, rel.path);
                tp_respond_error(x->resp, 503, "the bundle of release %" PRIu64 " is not on this server", rid);
                tp_header(x->resp, "Retry-After", "%u", SERVER_STORE_RETRY_AFTER);
                return 503;
        }
        return respond_file(x, fd, rel.size, "application/octet-stream", rel.sha256, &srv->m.bundle_bytes);
}

static int route_releases_list(struct route_ctx *x) {
        json_t *j = NULL;
        int r;

        r = store_releases_json(x->srv->db, &j);
        if (r < 0)
                return api_store_error(x, r);
        r = respond_json(x, 200, j);
        json_decref(j);
        return r;
}

static int route_assign(struct route_ctx *x) {
        const char *target = NULL;
        int force = 0;
        uint64_t rid;
        json_t *j;
        json_error_t e;
        int r;

        if (parse_u64(x->param, &rid) < 0 || rid == 0 || rid > INT64_MAX)
                return tp_respond_error(x->resp, 404, "no such release");
        j = json_loadb(x->req->body, x->req->body_len, JSON_REJECT_DUPLICATES, &e);
        if (!j || json_unpack(j, "{s:s, s?b !}", "target", &target, "force", &force) < 0 ||
            !(streq(target, "*") || (strncmp(target, "group:", 6) == 0 && ca_name_valid(target + 6) >= 0) ||
              (strncmp(target, "drone:", 6) == 0 && ca_name_valid(target + 6) >= 0))) {
                json_decref(j);
                return tp_respond_error(x->resp, 400, "expected {\"target\": \"*\" | \"group:NAME\" | \"drone:ID\", "
                                        "\"force\": BOOL}");
        }
        {
                struct release rel;
                r = store_release_get(x->srv->db, (int64_t) rid, &rel);
                if (r >= 0 && !rel.path[0] && !rel.mirrors[0]) {
                        json_decref(j);
                        return tp_respond_error(x->resp, 409, "release %" PRIu64 " has no bytes on this server and no "
                                                "mirrors: no drone could fetch it", rid);
                }
        }
        /* One rollout per drone: a static assignment of a drone a rollout holds is refused, or, with
         * force, takes the drone out of the rollout. */
        r = strncmp(target, "drone:", 6) == 0 ? store_rollout_assign_check(x->srv->db, target + 6, force, (int64_t) time(NULL))
                                             : 0;
        if (r == -EEXIST) {
                r = tp_respond_error(x->resp, 409, "%s", ringil_detail());
                json_decref(j);
                return r;
        }
        if (r >= 0)
                r = store_assign(x->srv->db, target, (int64_t) rid);
        if (r < 0) {
                json_decref(j);
                return r == -ENOENT ? tp_respond_error(x->resp, 404, "no release %" PRIu64, rid) : api_store_error(x, r);
        }
        log_info("release %" PRIu64 " assigned to %s", rid, target);
        snprintf(x->log_target, sizeof(x->log_target), "release:%" PRIu64, rid);
        snprintf(x->log_detail, sizeof(x->log_detail), "assign release %" PRIu64 " to %s", rid, target);
        {
                json_t *o = json_pack("{s:I, s:s}", "release", (json_int_t) rid, "target", target);
                json_decref(j);   /* target points into j */
                r = respond_json(x, 200, o);
                json_decref(o);
        }
        return r;
}

/*
 * POST /api/v1/releases/ID/mirrors {"mirrors": ["https://…", …]} (operator): replace the release's
 * mirror list ([] clears it). Each URL names the whole bundle file on a static host. A release from
 * before the server recorded the metadata hash gets it now, from its bundle on disk: without it the
 * agents would not use mirrors.
 */
static int route_mirrors(struct route_ctx *x) {
        char text[FLEET_MIRRORS_TEXT_MAX] = "", sha[65] = "";
        struct release rel;
        uint64_t rid, meta = 0;
        json_t *j, *list, *u;
        json_error_t e;
        size_t i, o = 0, n;
        int r;

        if (parse_u64(x->param, &rid) < 0 || rid == 0 || rid > INT64_MAX)
                return tp_respond_error(x->resp, 404, "no such release");
        j = json_loadb(x->req->body, x->req->body_len, JSON_REJECT_DUPLICATES, &e);
        if (!j || json_unpack(j, "{s:o !}", "mirrors", &list) < 0 || !json_is_array(list)) {
                json_decref(j);
                return tp_respond_error(x->resp, 400, "expected {\"mirrors\": [\"https://…\", …]}");
        }
        if (json_array_size(list) > FLEET_MIRRORS_MAX) {
                json_decref(j);
                return tp_respond_error(x->resp, 400, "at most %d mirrors", FLEET_MIRRORS_MAX);
        }
        json_array_foreach(list, i, u) {
                const char *url = json_string_value(u);
                if (!url || !fleet_mirror_url_valid(url) || strstr(text, url)) {
                        json_decref(j);
                        return tp_respond_error(x->resp, 400, "mirror %zu is not an https:// URL of URL characters "
                                                "(at most %d bytes), or is listed twice", i + 1, FLEET_URL_MAX);
                }
                o += (size_t) snprintf(text + o, sizeof(text) - o, "%s%s", o ? " " : "", url);
        }
        n = json_array_size(list);
        json_decref(j);   /* list and its strings were j's */
        r = store_release_get(x->srv->db, (int64_t) rid, &rel);
        if (r == -ENOENT)
                return tp_respond_error(x->resp, 404, "no release %" PRIu64, rid);
        if (r < 0)
                return api_store_error(x, r);
        if (!text[0] && !rel.path[0])
                return tp_respond_error(x->resp, 409, "release %" PRIu64 " is not on this server: its mirrors are the "
                                        "only way to it", rid);
        if (rel.meta_size == 0 && text[0]) {
                _cleanup_close_ int fd = rel.path[0] ? open(rel.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -EBADF;
                if (fd < 0 || release_meta(fd, rel.size, &meta, sha) < 0)
                        return tp_respond_error(x->resp, 503, "cannot read the bundle of release %" PRIu64
                                                " for its metadata hash", rid);
        }
        r = store_release_set_mirrors(x->srv->db, (int64_t) rid, text, meta, sha);
        if (r == -ENOENT)
                return tp_respond_error(x->resp, 404, "no release %" PRIu64, rid);
        if (r < 0)
                return api_store_error(x, r);
        log_info("release %" PRIu64 ": %zu mirror%s", rid, n, n == 1 ? "" : "s");
        return respond_text(x, 200, "application/json", "{\"mirrors\":true}");
}

/* A file of the Nix cache could not be opened: what is absent, or a symlink, is not in this cache. */
static int nix_cache_open_failed(struct route_ctx *x, int r, const char *rel) {
        if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP) {
                atomic_fetch_add(&x->srv->m.nix_cache_misses, 1);
                return tp_respond_error(x->resp, 404, "'%s' is not in this cache", rel);
        }
        /* Anything else (unreadable, I/O) is the server's problem: Nix must not read it as a miss. */
        log_warning_errno(r, "nix-cache: cannot open '%s': %m", rel);
        return tp_respond_error(x->resp, 500, "cannot open '%s' in the cache", rel);
}

/*
 * GET/HEAD /nix-cache/REL: a file of the configured Nix binary cache, for an operator or an allowed
 * drone (the narinfos carry Nix's own ed25519 signatures; docs/fleet.md). 404 is exact: Nix reads it as
 * "this path is not in the cache", so every name outside the three shapes and every non-file is 404.
 */
static int route_nix_cache(struct route_ctx *x) {
        static const char *const types[] = {
                [FLEET_NIX_CACHE_INFO] = "text/x-nix-cache-info",
                [FLEET_NIX_NARINFO] = "text/x-nix-narinfo",
                [FLEET_NIX_NAR] = "application/x-nix-nar",
        };
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        struct server *srv = x->srv;
        const char *rel = x->param, *name = rel;
        struct stat st;
        int kind;

        kind = fleet_nix_cache_file(rel);
        if (kind < 0 || x->http->query[0] || srv->nix_cache_fd < 0) {
                atomic_fetch_add(&srv->m.nix_cache_misses, 1);
                return tp_respond_error(x->resp, 404, "not in this cache");
        }
        /* INVARIANT: no symlink is followed below the cache directory, neither nar/ nor the file; the
         * name itself was checked to be one plain component (fleet_nix_cache_file). O_NONBLOCK: a FIFO
         * planted in the cache must not block this thread in open(); fstat() below refuses it. */
        if (kind == FLEET_NIX_NAR) {
                dfd = openat(srv->nix_cache_fd, "nar", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dfd < 0)
                        return nix_cache_open_failed(x, negative_errno(), rel);
                name = rel + strlen("nar/");
        }
        fd = openat(dfd >= 0 ? dfd : srv->nix_cache_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return nix_cache_open_failed(x, negative_errno(), rel);
        if (fstat(fd, &st) < 0)
                return tp_respond_error(x->resp, 500, "cannot stat '%s' in the cache", rel);
        if (!S_ISREG(st.st_mode)) {
                atomic_fetch_add(&srv->m.nix_cache_misses, 1);
                return tp_respond_error(x->resp, 404, "'%s' is not in this cache", rel);
        }
        atomic_fetch_add(&srv->m.nix_cache_hits, 1);
        return respond_file(x, TAKE_FD(fd), (uint64_t) st.st_size, types[kind], NULL, &srv->m.nix_cache_bytes);
}

/* ---- metrics ---- */

static int route_metrics(struct route_ctx *x) {
        struct metrics *m = &x->srv->m;
        struct tp_stats *t = tp_get_stats(x->srv->tp);
        _cleanup_buf_ struct buf b = BUF_INIT(1 << 16);
        json_t *counts = NULL, *v;
        const char *k;
        uint64_t tls_failed = atomic_load(&t->refused[TP_REFUSED_NO_CERTIFICATE]) + atomic_load(&t->refused[TP_REFUSED_TLS]) +
                              atomic_load(&t->refused[TP_REFUSED_HANDSHAKE_TIMEOUT]);

        buf_printf(&b,
                   "# HELP ringil_http_requests_total HTTP requests parsed.\n# TYPE ringil_http_requests_total counter\n"
                   "ringil_http_requests_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_http_errors_total counter\n"
                   "ringil_http_errors_total{class=\"4xx\"} %" PRIuFAST64 "\n"
                   "ringil_http_errors_total{class=\"5xx\"} %" PRIuFAST64 "\n"
                   "# TYPE ringil_checkins_total counter\nringil_checkins_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_reports_total counter\nringil_reports_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_enrollments_total counter\nringil_enrollments_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_bundle_bytes_sent_total counter\nringil_bundle_bytes_sent_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_uploads_total counter\nringil_uploads_total{result=\"accepted\"} %" PRIuFAST64 "\n"
                   "ringil_uploads_total{result=\"refused\"} %" PRIuFAST64 "\n"
                   "# TYPE ringil_tls_handshake_failures_total counter\nringil_tls_handshake_failures_total %" PRIu64 "\n"
                   "# TYPE ringil_auth_refused_total counter\nringil_auth_refused_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_connections_total counter\nringil_connections_total %" PRIuFAST64 "\n"
                   "# HELP ringil_connections_active Open connections by listener.\n"
                   "# TYPE ringil_connections_active gauge\n"
                   "ringil_connections_active{listener=\"fleet\"} %d\n"
                   "ringil_connections_active{listener=\"enroll\"} %d\n"
                   "# HELP ringil_connections_idle_closed_total Keep-alive connections closed idle (timeout, or to make room).\n"
                   "# TYPE ringil_connections_idle_closed_total counter\n"
                   "ringil_connections_idle_closed_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_nix_cache_requests_total counter\n"
                   "ringil_nix_cache_requests_total{result=\"hit\"} %" PRIuFAST64 "\n"
                   "ringil_nix_cache_requests_total{result=\"miss\"} %" PRIuFAST64 "\n"
                   "# TYPE ringil_nix_cache_bytes_sent_total counter\nringil_nix_cache_bytes_sent_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_nix_cache_uploads_total counter\n"
                   "ringil_nix_cache_uploads_total{result=\"accepted\"} %" PRIuFAST64 "\n"
                   "ringil_nix_cache_uploads_total{result=\"refused\"} %" PRIuFAST64 "\n",
                   atomic_load(&t->requests), atomic_load(&t->responses_4xx), atomic_load(&t->responses_5xx),
                   atomic_load(&m->checkins), atomic_load(&m->reports), atomic_load(&m->enrollments),
                   atomic_load(&m->bundle_bytes), atomic_load(&m->uploads), atomic_load(&m->uploads_refused),
                   tls_failed, atomic_load(&m->auth_refused), atomic_load(&t->connections_total),
                   atomic_load(&t->active[TP_FLEET]), atomic_load(&t->active[TP_ENROLL]), atomic_load(&t->idle_closed),
                   atomic_load(&m->nix_cache_hits), atomic_load(&m->nix_cache_misses), atomic_load(&m->nix_cache_bytes),
                   atomic_load(&m->nix_uploads), atomic_load(&m->nix_uploads_refused));
        buf_printf(&b, "# HELP ringil_store_errors_total Requests answered 503 because the store (database) failed.\n"
                       "# TYPE ringil_store_errors_total counter\nringil_store_errors_total %" PRIuFAST64 "\n"
                       "# HELP ringil_scheduler_leader 1 while this replica runs the scheduler (the elected one).\n"
                       "# TYPE ringil_scheduler_leader gauge\nringil_scheduler_leader %d\n"
                       "# TYPE ringil_scheduler_passes_total counter\nringil_scheduler_passes_total %" PRIuFAST64 "\n",
                   atomic_load(&m->store_errors), atomic_load(&m->scheduler_leader), atomic_load(&m->scheduler_passes));
        buf_printf(&b, "# HELP ringil_connections_refused_total Connections refused at admission or cut at a deadline.\n"
                       "# TYPE ringil_connections_refused_total counter\n");
        for (int i = 0; i < _TP_REFUSED_MAX; i++)
                buf_printf(&b, "ringil_connections_refused_total{reason=\"%s\"} %" PRIuFAST64 "\n",
                           tp_refusal_to_string((enum tp_refusal) i), atomic_load(&t->refused[i]));
        if (store_state_counts(x->srv->db, &counts) >= 0) {
                buf_printf(&b, "# HELP ringil_drones Drones by update state.\n# TYPE ringil_drones gauge\n");
                json_object_foreach(counts, k, v)
                        buf_printf(&b, "ringil_drones{state=\"%s\"} %" JSON_INTEGER_FORMAT "\n", k, json_integer_value(v));
                json_decref(counts);
        }
        buf_printf(&b,
                   "# TYPE ringil_rollout_scheduler_passes_total counter\nringil_rollout_scheduler_passes_total %" PRIuFAST64 "\n"
                   "# TYPE ringil_rollout_hands_total counter\nringil_rollout_hands_total %" PRIuFAST64 "\n"
                   "# HELP ringil_rollout_scheduler_pass_seconds Duration of the last scheduler pass.\n"
                   "# TYPE ringil_rollout_scheduler_pass_seconds gauge\nringil_rollout_scheduler_pass_seconds %.6f\n"
                   "# TYPE ringil_rollout_scheduler_pass_seconds_max gauge\nringil_rollout_scheduler_pass_seconds_max %.6f\n",
                   atomic_load(&m->rollout_passes), atomic_load(&m->rollout_hands),
                   (double) atomic_load(&m->rollout_pass_us_last) / 1e6, (double) atomic_load(&m->rollout_pass_us_max) / 1e6);
        (void) store_rollout_metrics(x->srv->db, (int64_t) time(NULL),
                                     x->srv->cfg.silent_polls * x->srv->cfg.poll_interval, &b);
        if (tp_respond(x->resp, 200, "text/plain; version=0.0.4", b.data, b.len) < 0)
                return tp_respond_error(x->resp, 500, "out of memory");
        return 200;
}

/* ---- the table and its dispatcher ---- */

int api_routes_register(struct route_table *t, uint64_t max_upload) {
        const struct route routes[] = {
                ROUTE(ROUTE_POST, "/api/v1/enroll", ROLE_ENROLLING, route_enroll, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_ENROLL_MAX_BODY),
                ROUTE(ROUTE_POST, "/api/v1/checkin", ROLE_DRONE, route_checkin, .body = TP_BODY_MEMORY,
                      .max_body = FLEET_MAX_MESSAGE),
                ROUTE(ROUTE_POST, "/api/v1/report", ROLE_DRONE, route_report, .body = TP_BODY_MEMORY,
                      .max_body = FLEET_MAX_MESSAGE),
                ROUTE(ROUTE_GET, "/api/v1/releases/*/bundle", ROLE_DRONE_OR_OPERATOR, route_bundle),
                ROUTE(ROUTE_GET, "/nix-cache/**", ROLE_DRONE_OR_OPERATOR, route_nix_cache),
                ROUTE(ROUTE_GET, "/api/v1/drones/*", ROLE_SELF_OR_OPERATOR, route_drone_get),
                ROUTE(ROUTE_GET, "/api/v1/drones", ROLE_OPERATOR, route_drones_list),
                ROUTE(ROUTE_POST, "/api/v1/drones", ROLE_OPERATOR, route_drone_add, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/drones/*/revoke", ROLE_OPERATOR, route_drone_revoke),
                ROUTE(ROUTE_POST, "/api/v1/drones/*/token", ROLE_OPERATOR, route_drone_token),
                ROUTE(ROUTE_GET, "/api/v1/releases", ROLE_OPERATOR, route_releases_list),
                ROUTE(ROUTE_POST, "/api/v1/releases", ROLE_OPERATOR, api_upload, .body = TP_BODY_SPOOL,
                      .max_body = max_upload),
                ROUTE(ROUTE_POST, "/api/v1/releases/*/assign", ROLE_OPERATOR, route_assign, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/releases/*/mirrors", ROLE_OPERATOR, route_mirrors, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_MAX_JSON_BODY),
                ROUTE(ROUTE_POST, "/api/v1/nix-cache/missing", ROLE_OPERATOR, api_nix_missing, .body = TP_BODY_MEMORY,
                      .max_body = SERVER_NIX_MISSING_MAX_BODY),
                ROUTE(ROUTE_PUT, "/api/v1/nix-cache/*", ROLE_OPERATOR, api_nix_upload, .body = TP_BODY_SPOOL,
                      .max_body = api_nix_upload_max_body(max_upload)),
                ROUTE(ROUTE_GET, "/metrics", ROLE_OPERATOR, route_metrics),
        };

        for (size_t i = 0; i < ELEMENTSOF(routes); i++) {
                int r = route_table_add(t, &routes[i]);
                if (r < 0)
                        return ringil_fail(r, "route '%s' cannot be registered", routes[i].path);
        }
        int r = api_rollout_routes_register(t);
        return r < 0 ? r : ui_routes_register(t);   /* the dashboard (ui.c): its pages and POST routes */
}

static bool role_admits(enum route_role role, enum peer_role peer) {
        switch (role) {
        case ROLE_ENROLLING:
                return true;
        case ROLE_DRONE:
                return peer == PEER_DRONE;
        case ROLE_OPERATOR:
        case ROLE_APPROVER:   /* and named in `approvers`: checked in api_handle() */
                return peer == PEER_OPERATOR;
        case ROLE_DRONE_OR_OPERATOR:
        case ROLE_SELF_OR_OPERATOR:
                return peer == PEER_DRONE || peer == PEER_OPERATOR;
        case ROLE_UNSET:
        case _ROLE_MAX:
                break;
        }
        return false;
}

static void plan_error(struct tp_plan *p, int status, const char *fmt, ...) _printf_(3, 4);
static void plan_error(struct tp_plan *p, int status, const char *fmt, ...) {
        va_list ap;

        p->status = status;
        va_start(ap, fmt);
        vsnprintf(p->message, sizeof(p->message), fmt, ap);
        va_end(ap);
}

/*
 * In the event loop, before any body is read: the route, the listener, and the certificate's role.
 * Nothing here touches the store; the drone's record is checked in api_handle() before the handler.
 */
void api_admit(void *userdata, const struct tp_request *req, struct tp_plan *ret) {
        struct server *srv = userdata;
        const struct http_request *h = req->http;
        const struct route *rt;
        char param[ROUTE_PARAM_MAX];
        unsigned methods = 0;

        *ret = (struct tp_plan) {};
        /* a method no route takes is not implemented here at all (501); one that another path takes is 405 */
        if (!(route_method_bit(h->method) & route_table_methods(&srv->routes)))
                return plan_error(ret, 501, "method not implemented");
        rt = route_match(&srv->routes, h->method, h->path, param, &methods);
        if (!rt && methods) {
                route_methods_allow(methods, ret->allow, sizeof(ret->allow));
                return plan_error(ret, 405, "method not allowed for %s", h->path);
        }
        /* INVARIANT: the enrollment port serves enrollment and nothing else; enrollment is not served
         * on the fleet port (a certificate holder has no use for it). A route that needs an identity is
         * forbidden here (no client certificate is asked for on this port: an anonymous browser opening
         * the dashboard gets 403), anything else is not found. */
        if (req->listener == TP_ENROLL && rt && rt->role != ROLE_ENROLLING) {
                atomic_fetch_add(&srv->m.auth_refused, 1);
                return plan_error(ret, 403, "%s needs a client certificate, on the fleet port; this port only enrolls",
                                  h->path);
        }
        if (req->listener == TP_ENROLL && !rt)
                return plan_error(ret, 404, "only enrollment is served on this port");
        if (!rt)
                return plan_error(ret, 404, "no route for %s", h->path);
        if (rt->role == ROLE_ENROLLING && req->listener != TP_ENROLL)
                return plan_error(ret, 403, "enrollment is served on the enrollment port only");
        if (!role_admits(rt->role, req->role)) {
                atomic_fetch_add(&srv->m.auth_refused, 1);
                if (req->role == PEER_NONE)
                        return plan_error(ret, 401, "client certificate required");
                return plan_error(ret, 403, rt->role == ROLE_DRONE ? "not a drone identity" : "operator credential required");
        }
        ret->route = rt;
        ret->body = rt->body;
        ret->max_body = rt->body == TP_BODY_SPOOL && rt->max_body == 0 ? srv->cfg.max_upload : rt->max_body;
}

/*
 * The drone behind this connection, re-checked on every request so a revocation takes effect on open
 * keep-alive connections too. Answers 403 itself and returns < 0 when refused.
 */
static int authorize_drone(struct route_ctx *x) {
        struct drone_auth a;
        int r;

        r = store_drone_auth(x->srv->db, x->req->peer, &a);
        if (r < 0)
                return -api_store_error(x, r);
        /* INVARIANT: CA-valid is not enough: the drone must be registered, not revoked, and present
         * the certificate we issued it when we issued one. */
        if (!a.exists || a.status == DRONE_REVOKED || (a.cert_serial[0] && !streq(a.cert_serial, x->req->serial))) {
                atomic_fetch_add(&x->srv->m.auth_refused, 1);
                log_notice("refused drone '%s': %s", x->req->peer,
                           !a.exists ? "not registered" : a.status == DRONE_REVOKED ? "revoked" : "certificate replaced");
                return -tp_respond_error(x->resp, 403, "drone '%s' is not allowed", x->req->peer);
        }
        x->auth = a;
        return 0;
}

/*
 * INVARIANT: every operator request that may change state (any method but GET and HEAD), from the
 * dashboard or the command line, refused or not, lands in the operator action log with the
 * certificate that made it. Written after the handler, with its answer; a failed write is logged.
 */
static void record_action(struct route_ctx *x) {
        static const char *const methods[] = { [HTTP_GET] = "GET", [HTTP_HEAD] = "HEAD", [HTTP_POST] = "POST",
                                               [HTTP_PUT] = "PUT", [HTTP_DELETE] = "DELETE" };
        char target[sizeof(x->log_target)];
        int r;

        /* without a target named by the handler, the path's '*' segment names it */
        snprintf(target, sizeof(target), "%s", x->log_target[0] ? x->log_target : x->param);
        r = store_action_add(x->srv->db, &(struct operator_action) {
                .time = (int64_t) time(NULL),
                .operator_name = x->req->peer,
                .serial = x->req->serial,
                .method = (unsigned) x->http->method < ELEMENTSOF(methods) ? methods[x->http->method] : "?",
                .path = x->http->path,
                .target = target,
                .detail = x->log_detail,
                .status = x->resp->status,
        });
        if (r < 0)
                log_warning("operator '%s' %s: not recorded in the action log: %s", x->req->peer, x->http->path,
                            ringil_detail());
}

void api_handle(void *userdata, const struct tp_request *req, struct tp_response *resp) {
        struct server *srv = userdata;
        const struct route *rt = req->route;
        char param[ROUTE_PARAM_MAX];
        unsigned methods;
        struct route_ctx x = { .srv = srv, .req = req, .http = req->http, .resp = resp, .param = param };

        /* the same match as in api_admit(), for the path parameter */
        if (route_match(&srv->routes, req->http->method, req->http->path, param, &methods) != rt || !rt) {
                tp_respond_error(resp, 500, "route changed");
                return;
        }
        /* INVARIANT: the role is checked here, before any handler runs, for every route. */
        if (!role_admits(rt->role, req->role)) {
                tp_respond_error(resp, 403, "not allowed");
                return;
        }
        if (rt->role == ROLE_APPROVER && !api_is_approver(srv, req->peer)) {
                atomic_fetch_add(&srv->m.auth_refused, 1);
                log_notice("operator '%s' tried to approve without approval rights", req->peer);
                tp_respond_error(resp, 403, "operator '%s' may not approve rollouts", req->peer);
                return;
        }
        if (req->role == PEER_DRONE && rt->role != ROLE_ENROLLING) {
                if (authorize_drone(&x) < 0)
                        return;
                if (rt->role == ROLE_SELF_OR_OPERATOR && !streq(req->peer, param)) {
                        atomic_fetch_add(&srv->m.auth_refused, 1);
                        tp_respond_error(resp, 403, "a drone may only see itself");
                        return;
                }
        }
        (void) rt->handler(&x);
        if (req->role == PEER_OPERATOR && req->http->method != HTTP_GET && req->http->method != HTTP_HEAD)
                record_action(&x);
}
