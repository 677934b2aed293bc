/* scheduler.c: the rollout scheduler: one pass over the store every scheduler-interval seconds. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "server.h"
#include "store-rollout.h"

/*
 * The whole scheduler is store_rollout_pass(store, now, not_before): it reads every rollout that can
 * still move from the store, decides with rollout_evaluate() and writes the decisions back. It keeps
 * no state between passes, so a server killed mid-rollout continues from the store after a restart,
 * and with several servers on one database exactly one of them (the elected one) needs to run it.
 * Reports move member states as they arrive; the pass adds what only time can decide: deadlines,
 * soak, scheduled starts, and the conditions that start the next group or pause the rollout.
 */
struct scheduler {
        struct server *srv;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool stop;
        int64_t started;   /* the server's start: silence before it is not a drone's fault */
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

static void *run(void *userdata) {
        struct scheduler *sc = userdata;
        struct metrics *m = &sc->srv->m;

        pthread_mutex_lock(&sc->lock);
        while (!sc->stop) {
                struct rollout_pass_stats st;
                struct timespec until;
                uint64_t t0, us;
                int r;

                pthread_mutex_unlock(&sc->lock);
                t0 = now_us();
                r = store_rollout_pass(sc->srv->db, (int64_t) time(NULL), sc->started, &sc->cache, log_change, &st);
                us = now_us() - t0;
                if (r < 0)
                        log_warning_errno(r, "Rollout scheduler pass failed: %s", ringil_detail());
                else if (st.timed_out)
                        log_notice("rollout scheduler: %u drones passed their deadline", st.timed_out);
                atomic_fetch_add(&m->rollout_passes, 1);
                atomic_store(&m->rollout_pass_us_last, us);
                if (us > atomic_load(&m->rollout_pass_us_max))
                        atomic_store(&m->rollout_pass_us_max, us);
                pthread_mutex_lock(&sc->lock);
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += sc->srv->cfg.scheduler_interval;
                while (!sc->stop && pthread_cond_timedwait(&sc->wake, &sc->lock, &until) == 0)
                        ;
        }
        pthread_mutex_unlock(&sc->lock);
        return NULL;
}

int scheduler_start(struct server *srv) {
        struct scheduler *sc = calloc(1, sizeof(*sc));
        int r;

        if (!sc)
                return -ENOMEM;
        sc->srv = srv;
        sc->started = (int64_t) time(NULL);
        pthread_mutex_init(&sc->lock, NULL);
        pthread_cond_init(&sc->wake, NULL);
        r = -pthread_create(&sc->thread, NULL, run, sc);
        if (r < 0) {
                pthread_cond_destroy(&sc->wake);
                pthread_mutex_destroy(&sc->lock);
                free(sc);
                return r;
        }
        srv->scheduler = sc;
        return 0;
}

void scheduler_stop(struct server *srv) {
        struct scheduler *sc = srv->scheduler;

        if (!sc)
                return;
        pthread_mutex_lock(&sc->lock);
        sc->stop = true;
        pthread_cond_signal(&sc->wake);
        pthread_mutex_unlock(&sc->lock);
        pthread_join(sc->thread, NULL);
        pthread_cond_destroy(&sc->wake);
        pthread_mutex_destroy(&sc->lock);
        free(sc);
        srv->scheduler = NULL;
}
