/* store.c: the fleet server's store, written once for both backends: drones, releases, assignments, reports, views, copy. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "err.h"
#include "macro.h"
#include "store-internal.h"

/* ---- dispatch to the backend ---- */

bool row_null(const struct sql_row *q, int col) {
        return q->be->row_null(q, col);
}

int64_t row_int(const struct sql_row *q, int col) {
        return q->be->row_int(q, col);
}

const char *row_text(const struct sql_row *q, int col) {
        return q->be->row_text(q, col);
}

void row_text_copy(const struct sql_row *q, int col, char *dst, size_t cap) {
        const char *t = row_text(q, col);
        size_t n = strlen(t);

        if (cap == 0)
                return;
        if (n >= cap)
                n = cap - 1;
        memcpy(dst, t, n);
        dst[n] = '\0';
}

const void *row_blob(const struct sql_row *q, int col, size_t *ret_len) {
        return q->be->row_blob(q, col, ret_len);
}

int store_sql(struct sqlconn *c, const char *sql, const struct sql_arg *args, row_fn row, void *userdata) {
        return c->be->sql(c, sql, args, row, userdata);
}

int store_sql_changes(struct sqlconn *c) {
        return c->be->changes(c);
}

enum store_dialect store_sql_dialect(struct sqlconn *c) {
        return c->be->dialect;
}

int store_tx(store *s, bool durable, struct sqlconn **ret) {
        return s->be->tx(s, STORE_TX_ORDERED | (durable ? STORE_TX_DURABLE : 0), ret);
}

int store_tx_rows(store *s, struct sqlconn **ret) {
        return s->be->tx(s, STORE_TX_DURABLE, ret);
}

int store_tx_end(store *s, int r) {
        return s->be->tx_end(s, r);
}

struct sqlconn *store_reader(store *s) {
        return s->be->reader(s);
}

void store_reader_done(struct sqlconn *c) {
        c->be->reader_done(c);
}

int store_snapshot(store *s, struct sqlconn **ret) {
        return s->be->snapshot(s, ret);
}

void store_snapshot_done(store *s, struct sqlconn *c) {
        s->be->snapshot_done(s, c);
}

bool store_db_is_postgresql(const char *db) {
        return strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0;
}

void store_db_redact(const char *db, char *buf, size_t size) {
        const char *auth = strstr(db, "://"), *at, *colon;

        /* postgresql://USER:PASSWORD@HOST…: the password is replaced; a query's password= too */
        if (!store_db_is_postgresql(db) || !auth) {
                snprintf(buf, size, "%s", db);
                return;
        }
        auth += 3;
        at = strpbrk(auth, "@/?");
        colon = at && *at == '@' ? memchr(auth, ':', (size_t) (at - auth)) : NULL;
        if (colon)
                snprintf(buf, size, "%.*s***%s", (int) (colon + 1 - db), db, at);
        else
                snprintf(buf, size, "%s", db);
        {
                char *pw = strstr(buf, "password=");
                if (pw) {
                        char *end = strchr(pw, '&');
                        char rest[512];
                        snprintf(rest, sizeof(rest), "%s", end ? end : "");
                        snprintf(pw, size - (size_t) (pw - buf), "password=***%s", rest);
                }
        }
}

int store_open(const char *db, unsigned connections, store **ret) {
        store *s = NULL;
        int r;

        if (store_db_is_postgresql(db))
                r = store_pg_open(db, connections, &s);
        else if (db[0] != '/')
                return ringil_fail(-EPROTONOSUPPORT, "database '%s' is neither an absolute path (SQLite) nor a "
                                   "postgresql:// URL", db);
        else
                r = store_sqlite_open(db, connections, &s);
        if (r < 0)
                return r;
        r = store_compliance_open(s);
        if (r < 0) {
                store_close(s);
                return r;
        }
        *ret = s;
        return 0;
}

void store_close(store *s) {
        if (!s)
                return;
        store_compliance_close(s);
        s->be->close(s);
}

int store_schema_version(store *s) {
        return s->be->schema_version(s);
}

const char *store_backend_name(store *s) {
        return s->be->name;
}

/* ---- the statements (?N parameters; one text for both dialects unless SQL_DIALECT picks) ---- */

/* The drone's record and its assignment in one read: drone beats group beats fleet, each a primary-key
 * lookup (a check-in is then one read statement and one write statement). */
static const char Q_DRONE_AUTH[] =
        "SELECT d.status, d.grp, COALESCE(d.cert_serial, ''), r.id, r.version, r.compatible, r.size, "
        "r.sha256, r.path, COALESCE(r.meta_size, 0), COALESCE(r.meta_sha256, ''), COALESCE(r.mirrors, ''), "
        /* its latest rollout membership, windows and retry generation (store-rollout.c) */
        "m.rollout, m.ord, m.grp, m.state, ro.state, ro.current_group, ro.rate, ro.release, "
        "rr.version, (SELECT spec FROM windows WHERE target = 'drone:' || d.id), "
        "(SELECT spec FROM windows WHERE target = 'group:' || d.grp), "
        "(SELECT retry FROM drone_ctl WHERE drone = d.id) "
        "FROM drones d LEFT JOIN releases r ON r.id = COALESCE("
        "(SELECT release FROM assignments WHERE target = 'drone:' || d.id), "
        "(SELECT release FROM assignments WHERE target = 'group:' || d.grp), "
        "(SELECT release FROM assignments WHERE target = '*')) "
        "LEFT JOIN rollout_members m ON m.drone = d.id AND m.rollout = "
        "(SELECT max(rollout) FROM rollout_members WHERE drone = d.id) "
        "LEFT JOIN rollouts ro ON ro.id = m.rollout LEFT JOIN releases rr ON rr.id = ro.release "
        "WHERE d.id = ?1";
static const char Q_DRONE_ADD[] =
        "INSERT INTO drones(id, grp, status, token_hash, token_expires, created) VALUES (?1, ?2, 0, ?3, ?4, ?5)";
static const char Q_DRONE_TOKEN[] = "SELECT status, token_hash, token_expires FROM drones WHERE id = ?1";
static const char Q_DRONE_ENROLL[] =
        "UPDATE drones SET status = 1, token_hash = NULL, token_expires = NULL, cert_serial = ?2, enrolled = ?3 "
        "WHERE id = ?1";
static const char Q_DRONE_REVOKE[] = "UPDATE drones SET status = 2, token_hash = NULL WHERE id = ?1";
/* INVARIANT: a revoked drone never gets a token again (status 2 is never matched). */
static const char Q_DRONE_REISSUE[] = "UPDATE drones SET token_hash = ?2, token_expires = ?3 WHERE id = ?1 AND status != 2";
/* a check-in that names its compliance report by digest only keeps the audit counts stored */
static const char Q_CHECKIN[] =
        "UPDATE drones SET last_seen = ?2, version = ?3, slot = ?4, boot = ?5, audit_pass = COALESCE(?6, audit_pass), "
        "audit_fail = COALESCE(?7, audit_fail) WHERE id = ?1";
static const char Q_LAST_SEQ[] = "SELECT last_seq FROM drones WHERE id = ?1";
static const char Q_EVENT_ADD[] =
        "INSERT INTO events(drone, seq, time, state, release, version, target, error) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING";
static const char Q_DRONE_REPORT[] =
        "UPDATE drones SET last_seq = ?2, last_seen = ?3, state = ?4, release = ?5, "
        "version = CASE WHEN ?6 = '' THEN version ELSE ?6 END, target = ?7, error = ?8, "
        "bytes_fetched = CASE WHEN ?9 + ?10 > 0 THEN ?9 ELSE bytes_fetched END, "
        "bytes_reused = CASE WHEN ?9 + ?10 > 0 THEN ?10 ELSE bytes_reused END WHERE id = ?1 AND last_seq < ?2";
static const char Q_RELEASE_ADD[] =
        "INSERT INTO releases(version, compatible, size, sha256, path, signer, manifest_digest, created, meta_size, "
        "meta_sha256, mirrors) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id";
static const char Q_RELEASE_GET[] =
        "SELECT version, compatible, size, sha256, path, COALESCE(meta_size, 0), COALESCE(meta_sha256, ''), "
        "COALESCE(mirrors, '') FROM releases WHERE id = ?1";
static const char Q_RELEASE_MIRRORS[] = "UPDATE releases SET mirrors = ?2 WHERE id = ?1";
static const char Q_RELEASE_META[] = "UPDATE releases SET meta_size = ?2, meta_sha256 = ?3 WHERE id = ?1";
static const char Q_ASSIGN[] =
        "INSERT INTO assignments(target, release, created) VALUES (?1, ?2, ?3) "
        "ON CONFLICT(target) DO UPDATE SET release = excluded.release, created = excluded.created";
/* One primary-key lookup, run for drone:ID, group:G and * in turn: an IN list with ORDER BY CASE built
 * two temporary B-trees per check-in on SQLite (148 µs and 11 page faults each). */
static const char Q_ASSIGNMENT_GET[] = "SELECT release FROM assignments WHERE target = ?1";
static const char Q_RELEASE_EXISTS[] = "SELECT id FROM releases WHERE id = ?1";
#define DRONE_COLUMNS                                                                                        \
        "SELECT id, grp, status, COALESCE(last_seen, 0), COALESCE(version, ''), COALESCE(state, ''), "      \
        "COALESCE(release, 0), COALESCE(target, ''), COALESCE(error, ''), COALESCE(slot, ''), "            \
        "COALESCE(boot, ''), audit_pass, audit_fail, created, COALESCE(enrolled, 0), bytes_fetched, "        \
        "bytes_reused FROM drones "
static const char Q_DRONES[] = DRONE_COLUMNS "ORDER BY id";
static const char Q_DRONE[] = DRONE_COLUMNS "WHERE id = ?1";
static const char Q_HISTORY[] =
        "SELECT seq, time, state, release, version, target, error FROM events WHERE drone = ?1 ORDER BY seq DESC LIMIT 100";
#define RELEASES_SQL(agg)                                                                                    \
        "SELECT r.id, r.version, r.compatible, r.size, r.sha256, r.signer, r.created, "                      \
        "(SELECT " agg " FROM assignments a WHERE a.release = r.id), r.path, COALESCE(r.mirrors, ''), "    \
        "r.built, r.expires, r.payloads, COALESCE(d.n, 0), COALESCE(d.fetched, 0), COALESCE(d.reused, 0) "   \
        "FROM releases r LEFT JOIN (SELECT release, count(*) AS n, sum(bytes_fetched) AS fetched, "          \
        "sum(bytes_reused) AS reused FROM drones WHERE bytes_fetched IS NOT NULL GROUP BY release) d "      \
        "ON d.release = r.id ORDER BY r.id"
static const char Q_RELEASES_SQLITE[] = RELEASES_SQL("group_concat(target, ' ')");
static const char Q_RELEASES_PG[] = RELEASES_SQL("string_agg(target, ' ' ORDER BY target)");
static const char Q_STATE_COUNTS[] =
        "SELECT CASE status WHEN 2 THEN 'revoked' ELSE COALESCE(NULLIF(state, ''), 'unknown') END, count(*) "
        "FROM drones GROUP BY 1";
static const char Q_TOKENS_EXPIRE[] =
        "UPDATE drones SET token_hash = NULL, token_expires = NULL WHERE token_hash IS NOT NULL AND token_expires < ?1";
static const char Q_LEADER_NOTE[] =
        "INSERT INTO scheduler(id, holder, since, seen) VALUES (1, ?1, ?2, ?2) ON CONFLICT(id) DO UPDATE SET "
        "since = CASE WHEN scheduler.holder = excluded.holder THEN scheduler.since ELSE excluded.since END, "
        "holder = excluded.holder, seen = excluded.seen";
static const char Q_LEADER_GET[] = "SELECT holder, since, seen FROM scheduler WHERE id = 1";

/* ---- drones ---- */

static int int_row(const struct sql_row *q, void *userdata) {
        *(int64_t *) userdata = row_int(q, 0);
        return 1;
}

static int auth_row(const struct sql_row *q, void *userdata) {
        struct drone_auth *a = userdata;

        a->exists = true;
        a->status = (enum drone_status) row_int(q, 0);
        row_text_copy(q, 1, a->group, sizeof(a->group));
        row_text_copy(q, 2, a->cert_serial, sizeof(a->cert_serial));
        a->assigned = !row_null(q, 3);
        if (a->assigned) {
                a->release.id = row_int(q, 3);
                row_text_copy(q, 4, a->release.version, sizeof(a->release.version));
                row_text_copy(q, 5, a->release.compatible, sizeof(a->release.compatible));
                a->release.size = (uint64_t) row_int(q, 6);
                row_text_copy(q, 7, a->release.sha256, sizeof(a->release.sha256));
                row_text_copy(q, 8, a->release.path, sizeof(a->release.path));
                a->release.meta_size = (uint64_t) row_int(q, 9);
                row_text_copy(q, 10, a->release.meta_sha256, sizeof(a->release.meta_sha256));
                row_text_copy(q, 11, a->release.mirrors, sizeof(a->release.mirrors));
        }
        if (!row_null(q, 12)) {
                a->ro.rollout = row_int(q, 12);
                a->ro.ord = row_int(q, 13);
                a->ro.group = (uint32_t) row_int(q, 14);
                row_text_copy(q, 15, a->ro.member, sizeof(a->ro.member));
                row_text_copy(q, 16, a->ro.state, sizeof(a->ro.state));
                a->ro.current_group = (uint32_t) row_int(q, 17);
                a->ro.rate = (uint64_t) row_int(q, 18);
                a->ro.release = row_int(q, 19);
                row_text_copy(q, 20, a->ro.version, sizeof(a->ro.version));
        }
        row_text_copy(q, 21, a->ro.windows, sizeof(a->ro.windows));
        if (!a->ro.windows[0])
                row_text_copy(q, 22, a->ro.windows, sizeof(a->ro.windows));   /* a drone's own windows beat its group's */
        a->ro.retry = (uint32_t) row_int(q, 23);
        return 1;
}

int store_drone_auth(store *s, const char *id, struct drone_auth *ret) {
        struct drone_auth a = {};
        struct sqlconn *c = store_reader(s);
        int r = store_sql(c, Q_DRONE_AUTH, ARGS(TEXT(id)), auth_row, &a);

        store_reader_done(c);
        if (r < 0)
                return r;
        *ret = a;
        return 0;
}

int store_drone_add(store *s, const char *id, const char *group, const uint8_t token_hash[32], int64_t now,
                    int64_t token_expires) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, Q_DRONE_ADD, ARGS(TEXT(id), TEXT(group), BLOB(token_hash, 32), INT(token_expires), INT(now)),
                      NULL, NULL);
        return store_tx_end(s, r);
}

struct token_row {
        bool ok;
        const uint8_t *want;
        int64_t now;
};

static int token_row(const struct sql_row *q, void *userdata) {
        struct token_row *t = userdata;
        size_t n = 0;
        const void *h = row_blob(q, 1, &n);

        /* INVARIANT: a token works once (cleared on use), before expiry, for a drone that is not revoked.
         * An active drone has a token only when an operator re-issued one (store_drone_reissue);
         * enrolling with it records the new certificate's serial, which from then on is the only
         * certificate accepted for the id. */
        t->ok = row_int(q, 0) != DRONE_REVOKED && h && n == 32 && crypto_memcmp(h, t->want, 32) == 0 &&
                row_int(q, 2) >= t->now;
        return 1;
}

int store_drone_enroll(store *s, const char *id, const uint8_t token_hash[32], int64_t now, const char *cert_serial) {
        struct token_row t = { .want = token_hash, .now = now };
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, Q_DRONE_TOKEN, ARGS(TEXT(id)), token_row, &t);
        if (r == 0)
                r = -ENOENT;
        else if (r > 0 && !t.ok)
                r = -EACCES;
        if (r >= 0)
                r = store_sql(c, Q_DRONE_ENROLL, ARGS(TEXT(id), TEXT(cert_serial), INT(now)), NULL, NULL);
        return store_tx_end(s, r);
}

int store_drone_reissue(store *s, const char *id, const uint8_t token_hash[32], int64_t token_expires) {
        struct drone_auth a;
        struct sqlconn *c;
        int r;

        r = store_drone_auth(s, id, &a);
        if (r < 0)
                return r;
        if (!a.exists)
                return -ENOENT;
        if (a.status == DRONE_REVOKED)
                return -RINGIL_EREFUSED;
        r = store_tx(s, true, &c);
        if (r < 0)
                return r;
        r = store_sql(c, Q_DRONE_REISSUE, ARGS(TEXT(id), BLOB(token_hash, 32), INT(token_expires)), NULL, NULL);
        /* revoked between the lookup and here: the statement's own condition refused it */
        if (r >= 0 && store_sql_changes(c) == 0)
                r = -RINGIL_EREFUSED;
        return store_tx_end(s, r);
}

int store_drone_revoke(store *s, const char *id) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, Q_DRONE_REVOKE, ARGS(TEXT(id)), NULL, NULL);
        if (r >= 0 && store_sql_changes(c) == 0)
                r = -ENOENT;
        return store_tx_end(s, r);
}

int store_heartbeat_write(struct sqlconn *c, const struct heartbeat *h) {
        const struct fleet_status *st = h->st;

        if (st->audit.present)
                return store_sql(c, Q_CHECKIN, ARGS(TEXT(h->id), INT(h->now), TEXT(st->version), TEXT(st->slot),
                                                    TEXT(st->boot), INT(st->audit.pass), INT(st->audit.fail)),
                                 NULL, NULL);
        return store_sql(c, Q_CHECKIN, ARGS(TEXT(h->id), INT(h->now), TEXT(st->version), TEXT(st->slot), TEXT(st->boot),
                                            NUL, NUL),
                         NULL, NULL);
}

/* The answer is sent only after the commit that holds this check-in (the backends may group several). */
int store_checkin(store *s, const char *id, const struct fleet_status *st, int64_t now) {
        struct heartbeat me = { .id = id, .st = st, .now = now };

        return s->be->checkin(s, &me);
}

int store_report(store *s, const char *id, const struct fleet_status *st, int64_t now) {
        const char *state = fleet_state_to_string(st->state);
        struct sqlconn *c;
        int64_t last = 0;
        int r = store_tx_rows(s, &c);

        if (r < 0)
                return r;
        /* The decision is the UPDATE's own condition (seq above the last one stored), so two replicas
         * taking reports of one drone at once cannot both store, nor store an older one over a newer. */
        r = store_sql(c, Q_DRONE_REPORT,
                      ARGS(TEXT(id), INT(st->seq), INT(now), TEXT(state), INT(st->release), TEXT(st->version),
                           TEXT(st->target), TEXT(st->error), INT((int64_t) st->bytes_fetched),
                           INT((int64_t) st->bytes_reused)),
                      NULL, NULL);
        if (r >= 0 && store_sql_changes(c) == 1) {
                /* INVARIANT: the event and the drone's state change commit together, or neither does. */
                r = store_sql(c, Q_EVENT_ADD,
                              ARGS(TEXT(id), INT(st->seq), INT(now), TEXT(state), INT(st->release), TEXT(st->version),
                                   TEXT(st->target), TEXT(st->error)),
                              NULL, NULL);
                if (r >= 0)
                        r = 1;
        } else if (r >= 0) {
                r = store_sql(c, Q_LAST_SEQ, ARGS(TEXT(id)), int_row, &last);
                if (r == 0)
                        r = -ENOENT;
                else if (r > 0 && (int64_t) st->seq < last)
                        r = -ESTALE;
                else if (r > 0)
                        r = 0;   /* a retry of the report we already hold: acknowledge again */
        }
        return store_tx_end(s, r);
}

int store_tokens_expire(store *s, int64_t now) {
        struct sqlconn *c;
        int r = store_tx(s, false, &c);

        if (r < 0)
                return r;
        r = store_sql(c, Q_TOKENS_EXPIRE, ARGS(INT(now)), NULL, NULL);
        if (r >= 0)
                r = store_sql_changes(c);
        return store_tx_end(s, r);
}

/* ---- releases and assignments ---- */

int store_release_add(store *s, const struct release *rel, const char *signer, const char *manifest_digest,
                      int64_t *ret_id) {
        struct sqlconn *c;
        int64_t id = 0;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, Q_RELEASE_ADD,
                      ARGS(TEXT(rel->version), TEXT(rel->compatible), INT(rel->size), TEXT(rel->sha256), TEXT(rel->path),
                           TEXT(signer), TEXT(manifest_digest), INT(time(NULL)), INT(rel->meta_size),
                           TEXT(rel->meta_sha256), TEXT(rel->mirrors)),
                      int_row, &id);
        if (r >= 0 && id <= 0)
                r = ringil_fail(-EIO, "the database returned no release id");
        r = store_tx_end(s, r);
        if (r < 0)
                return r;
        *ret_id = id;
        return 0;
}

static int release_row(const struct sql_row *q, void *userdata) {
        struct release *rel = userdata;

        row_text_copy(q, 0, rel->version, sizeof(rel->version));
        row_text_copy(q, 1, rel->compatible, sizeof(rel->compatible));
        rel->size = (uint64_t) row_int(q, 2);
        row_text_copy(q, 3, rel->sha256, sizeof(rel->sha256));
        row_text_copy(q, 4, rel->path, sizeof(rel->path));
        rel->meta_size = (uint64_t) row_int(q, 5);
        row_text_copy(q, 6, rel->meta_sha256, sizeof(rel->meta_sha256));
        row_text_copy(q, 7, rel->mirrors, sizeof(rel->mirrors));
        return 1;
}

int store_release_get(store *s, int64_t id, struct release *ret) {
        struct release rel = { .id = id };
        struct sqlconn *c = store_reader(s);
        int r = store_sql(c, Q_RELEASE_GET, ARGS(INT(id)), release_row, &rel);

        store_reader_done(c);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        *ret = rel;
        return 0;
}

int store_release_set_mirrors(store *s, int64_t id, const char *mirrors, uint64_t meta_size, const char *meta_sha256) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, Q_RELEASE_MIRRORS, ARGS(INT(id), TEXT(mirrors)), NULL, NULL);
        if (r >= 0 && store_sql_changes(c) == 0)
                r = -ENOENT;
        if (r >= 0 && meta_size > 0)
                r = store_sql(c, Q_RELEASE_META, ARGS(INT(id), INT(meta_size), TEXT(meta_sha256)), NULL, NULL);
        return store_tx_end(s, r);
}

int store_assign(store *s, const char *target, int64_t release_id) {
        struct sqlconn *c;
        int r = store_tx(s, true, &c);

        if (r < 0)
                return r;
        r = store_sql(c, Q_RELEASE_EXISTS, ARGS(INT(release_id)), NULL, NULL);
        if (r == 0)
                r = -ENOENT;
        if (r > 0)
                r = store_sql(c, Q_ASSIGN, ARGS(TEXT(target), INT(release_id), INT(time(NULL))), NULL, NULL);
        return store_tx_end(s, r);
}

int store_assignment_for(store *s, const char *id, const char *group, int64_t *ret_id) {
        char drone[8 + 256], grp[8 + 256];
        const char *targets[] = { drone, grp, "*" };
        struct sqlconn *c;
        int64_t rel = 0;
        int r = 0;

        if (snprintf(drone, sizeof(drone), "drone:%s", id) >= (int) sizeof(drone) ||
            snprintf(grp, sizeof(grp), "group:%s", group) >= (int) sizeof(grp))
                return -EINVAL;
        /* drone beats group beats fleet: the first that exists wins */
        c = store_reader(s);
        for (size_t i = 0; i < ELEMENTSOF(targets) && r == 0; i++)
                r = store_sql(c, Q_ASSIGNMENT_GET, ARGS(TEXT(targets[i])), int_row, &rel);
        store_reader_done(c);
        if (r < 0)
                return r;
        *ret_id = rel;
        return 0;
}

/* ---- the scheduler's holder ---- */

int store_leader_acquire(store *s, const char *name, bool *ret_leader) {
        return s->be->leader(s, name, ret_leader);
}

int store_leader_note(store *s, const char *name, int64_t now) {
        struct sqlconn *c;
        int r = store_tx(s, false, &c);

        if (r < 0)
                return r;
        r = store_sql(c, Q_LEADER_NOTE, ARGS(TEXT(name), INT(now)), NULL, NULL);
        return store_tx_end(s, r);
}

static int leader_row(const struct sql_row *q, void *userdata) {
        *(json_t **) userdata = json_pack("{s:s, s:I, s:I}", "holder", row_text(q, 0), "since", (json_int_t) row_int(q, 1),
                                          "seen", (json_int_t) row_int(q, 2));
        return *(json_t **) userdata ? 1 : -ENOMEM;
}

int store_leader_json(store *s, json_t **ret) {
        struct sqlconn *c = store_reader(s);
        json_t *j = NULL;
        int r = store_sql(c, Q_LEADER_GET, NOARGS, leader_row, &j);

        store_reader_done(c);
        if (r < 0)
                return r;
        if (!j)
                j = json_pack("{s:s, s:I, s:I}", "holder", "", "since", (json_int_t) 0, "seen", (json_int_t) 0);
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

/* ---- JSON views ---- */

static const char *status_name(int64_t st) {
        return st == DRONE_REVOKED ? "revoked" : st == DRONE_ACTIVE ? "active" : "enrolled";
}

static json_t *drone_row(const struct sql_row *q) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I}",
                              "id", row_text(q, 0),
                              "group", row_text(q, 1),
                              "status", status_name(row_int(q, 2)),
                              "last_seen", (json_int_t) row_int(q, 3),
                              "version", row_text(q, 4),
                              "state", row_text(q, 5),
                              "release", (json_int_t) row_int(q, 6),
                              "target", row_text(q, 7),
                              "error", row_text(q, 8),
                              "slot", row_text(q, 9),
                              "boot", row_text(q, 10),
                              "created", (json_int_t) row_int(q, 13),
                              "enrolled", (json_int_t) row_int(q, 14));
        if (j && !row_null(q, 11))
                json_object_set_new(j, "audit", json_pack("{s:I, s:I}", "pass", (json_int_t) row_int(q, 11), "fail",
                                                          (json_int_t) row_int(q, 12)));
        /* what its last install downloaded and reused from its own slots (delta updates) */
        if (j && !row_null(q, 15))
                json_object_set_new(j, "delta", json_pack("{s:I, s:I}", "fetched", (json_int_t) row_int(q, 15), "reused",
                                                          (json_int_t) row_int(q, 16)));
        return j;
}

static int drones_row(const struct sql_row *q, void *userdata) {
        json_t *j = drone_row(q);
        return j && json_array_append_new(userdata, j) == 0 ? 0 : -ENOMEM;
}

/* A statement on a reader whose rows build a new JSON container. */
static int read_json(store *s, const char *sql, const struct sql_arg *args, row_fn row, json_t *container, json_t **ret) {
        struct sqlconn *c;
        int r;

        if (!container)
                return -ENOMEM;
        c = store_reader(s);
        r = store_sql(c, sql, args, row, container);
        store_reader_done(c);
        if (r < 0) {
                json_decref(container);
                return r;
        }
        *ret = container;
        return 0;
}

int store_drones_json(store *s, json_t **ret) {
        return read_json(s, Q_DRONES, NOARGS, drones_row, json_array(), ret);
}

static int one_drone_row(const struct sql_row *q, void *userdata) {
        *(json_t **) userdata = drone_row(q);
        return *(json_t **) userdata ? 1 : -ENOMEM;
}

static int history_row(const struct sql_row *q, void *userdata) {
        json_t *e = json_pack("{s:I, s:I, s:s, s:I, s:s, s:s, s:s}", "seq", (json_int_t) row_int(q, 0),
                              "time", (json_int_t) row_int(q, 1), "state", row_text(q, 2), "release",
                              (json_int_t) row_int(q, 3), "version", row_text(q, 4), "target", row_text(q, 5),
                              "error", row_text(q, 6));
        return e && json_array_append_new(userdata, e) == 0 ? 0 : -ENOMEM;
}

int store_drone_json(store *s, const char *id, json_t **ret) {
        struct sqlconn *c = store_reader(s);
        json_t *d = NULL, *h = NULL;
        int r;

        r = store_sql(c, Q_DRONE, ARGS(TEXT(id)), one_drone_row, &d);
        if (r > 0) {
                h = json_array();
                r = h ? store_sql(c, Q_HISTORY, ARGS(TEXT(id)), history_row, h) : -ENOMEM;
        } else if (r == 0)
                r = -ENOENT;
        store_reader_done(c);
        if (r < 0) {
                json_decref(d);
                json_decref(h);
                return r;
        }
        json_object_set_new(d, "history", h);
        *ret = d;
        return 0;
}

static json_t *mirror_list(const char *text) {
        json_t *a = json_array();
        const char *p = text;

        while (a && *p) {
                size_t n = strcspn(p, " ");
                if (n)
                        json_array_append_new(a, json_stringn(p, n));
                p += n;
                p += strspn(p, " ");
        }
        return a;
}

static int releases_row(const struct sql_row *q, void *userdata) {
        json_t *e = json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:b, s:o}", "id", (json_int_t) row_int(q, 0),
                              "version", row_text(q, 1), "compatible", row_text(q, 2), "size",
                              (json_int_t) row_int(q, 3), "sha256", row_text(q, 4), "signer", row_text(q, 5),
                              "created", (json_int_t) row_int(q, 6), "assigned", row_text(q, 7),
                              "stored", row_text(q, 8)[0] != '\0', "mirrors", mirror_list(row_text(q, 9)));
        /* What the drones now on this release downloaded and found on their own disks for it. */
        if (e)
                json_object_set_new(e, "delta", json_pack("{s:I, s:I, s:I}", "drones", (json_int_t) row_int(q, 13),
                                                          "fetched", (json_int_t) row_int(q, 14), "reused",
                                                          (json_int_t) row_int(q, 15)));
        /* what the signed manifest said, recorded at upload (store_release_details); a release uploaded
         * before it was recorded has none, and a row that does not hold a JSON array is left out */
        if (e && !row_null(q, 12)) {
                json_error_t err;
                json_t *p = json_loads(row_text(q, 12), JSON_REJECT_DUPLICATES, &err);
                if (json_is_array(p) && json_object_set_new(e, "payloads", p) == 0) {
                        json_object_set_new(e, "built", json_integer(row_int(q, 10)));
                        json_object_set_new(e, "expires", json_integer(row_int(q, 11)));
                } else
                        json_decref(p);
        }
        return e && json_array_append_new(userdata, e) == 0 ? 0 : -ENOMEM;
}

int store_releases_json(store *s, json_t **ret) {
        struct sqlconn *c = store_reader(s);
        const char *sql = SQL_DIALECT(c, Q_RELEASES_SQLITE, Q_RELEASES_PG);
        json_t *a = json_array();
        int r = a ? store_sql(c, sql, NOARGS, releases_row, a) : -ENOMEM;

        store_reader_done(c);
        if (r < 0) {
                json_decref(a);
                return r;
        }
        *ret = a;
        return 0;
}

static int count_row(const struct sql_row *q, void *userdata) {
        return json_object_set_new(userdata, row_text(q, 0), json_integer(row_int(q, 1))) == 0 ? 0 : -ENOMEM;
}

int store_state_counts(store *s, json_t **ret) {
        return read_json(s, Q_STATE_COUNTS, NOARGS, count_row, json_object(), ret);
}

/* ---- for the store's other files (store-internal.h) ---- */

bool store_backend_single(store *s) {
        return s->be->dialect == STORE_SQLITE;
}

struct store_cache **store_cache_slot(store *s) {
        return &s->cache;
}
