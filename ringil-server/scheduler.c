/* scheduler.c: the rollout scheduler's pass, run by the elected replica (leader.c) every scheduler-interval seconds. */
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "server.h"
#include "store-rollout.h"

/*
 * The whole scheduler is store_rollout_pass(store, now, not_before): it reads every rollout that can
 * still move from the store, decides with rollout_evaluate() and writes the decisions back. It keeps
 * no state between passes that the store does not hold, so a server killed mid-rollout continues from
 * the store after a restart, and with several replicas on one database only the elected one runs it
 * (leader.c); when that one dies the next holder continues from the store within an interval.
 * Reports move member states as they arrive; the pass adds what only time can decide: deadlines,
 * soak, scheduled starts, and the conditions that start the next group or pause the rollout.
 */
struct scheduler {
        int64_t started;                   /* this replica took the scheduler: silence before it is no drone's fault */
        struct rollout_pass_cache cache;   /* rollouts with nothing new are skipped */
};

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void log_change(int64_t id, enum rollout_state from, enum rollout_state to, const char *reason) {
        log_notice("rollout %" PRId64 ": %s -> %s: %s", id, rollout_state_to_string(from), rollout_state_to_string(to),
                   reason);
}

void scheduler_free(struct scheduler *sc) {
        free(sc);
}

int scheduler_new(int64_t now, struct scheduler **ret) {
        struct scheduler *sc = calloc(1, sizeof(*sc));

        if (!sc)
                return -ENOMEM;
        /* A new holder trusts no cache: the previous one may have changed any rollout meanwhile. */
        sc->started = now;
        *ret = sc;
        return 0;
}

int scheduler_pass(struct server *srv, struct scheduler *sc, int64_t now) {
        struct metrics *m = &srv->m;
        struct rollout_pass_stats st;
        uint64_t t0 = now_us(), us;
        int r = store_rollout_pass(srv->db, now, sc->started, &sc->cache, log_change, &st);

        us = now_us() - t0;
        if (r >= 0 && st.timed_out)
                log_notice("rollout scheduler: %u drones passed their deadline", st.timed_out);
        atomic_fetch_add(&m->rollout_passes, 1);
        atomic_store(&m->rollout_pass_us_last, us);
        if (us > atomic_load(&m->rollout_pass_us_max))
                atomic_store(&m->rollout_pass_us_max, us);
        return r;
}
