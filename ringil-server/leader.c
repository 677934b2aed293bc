/* leader.c: the work that must run once per fleet, on the one replica the store elects: the scheduler's passes. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "log.h"
#include "server.h"

/*
 * Every replica runs this thread; every scheduler-interval seconds it asks the store whether this
 * replica holds the scheduler (store_leader_acquire: PostgreSQL's session advisory lock, released by
 * the database when the holder's session ends; with SQLite always this server). The holder runs the
 * passes below; the others only keep asking, so when the holder dies the next replica to ask takes
 * over within one interval.
 *
 * The passes keep no state between runs that the store does not hold (the rollout pass's cache of
 * unchanged rollouts is dropped whenever this replica takes or loses the scheduler): everything is
 * read from the store and written back in store_tx() transactions, which are serialized fleet-wide. A replica cut off from the database loses
 * the lock with its session; if it still believed itself the holder for a moment and ran a pass
 * concurrently with the new one, the writer order would still run the two passes one after the other,
 * each deciding from what the other committed. The election avoids double work; correctness does not
 * rest on it.
 */
struct leader {
        struct server *srv;
        char name[128];
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        bool stop;
        bool leading;
        bool failing;   /* the last election or pass failed (logged once until it works again) */
        struct scheduler *rollouts;   /* scheduler.c, while this replica holds the scheduler */
};

/* The holder's record, for operators: who runs the scheduler, since when, last seen. */
static int pass_holder(struct leader *l, int64_t now) {
        return store_leader_note(l->srv->db, l->name, now);
}

/* Enrollment tokens past their expiry can never be used: their hashes are dropped. */
static int pass_tokens(struct leader *l, int64_t now) {
        int r = store_tokens_expire(l->srv->db, now);

        if (r > 0)
                log_info("cleared %d expired enrollment token%s", r, r == 1 ? "" : "s");
        return r;
}

/* The rollouts: deadlines, soak, scheduled starts, the next group, pauses (scheduler.c). */
static int pass_rollouts(struct leader *l, int64_t now) {
        if (!l->rollouts) {
                int r = scheduler_new(now, &l->rollouts);
                if (r < 0)
                        return r;
        }
        return scheduler_pass(l->srv, l->rollouts, now);
}

static const struct {
        const char *name;
        int (*run)(struct leader *l, int64_t now);
} passes[] = {
        { "holder", pass_holder },
        { "tokens", pass_tokens },
        { "rollouts", pass_rollouts },
};

static void round_once(struct leader *l) {
        struct metrics *m = &l->srv->m;
        bool leading = false;
        int r = store_leader_acquire(l->srv->db, l->name, &leading);

        if (leading != l->leading) {
                if (leading)
                        log_notice("this replica (%s) now runs the scheduler", l->name);
                else
                        log_notice("this replica (%s) no longer runs the scheduler%s%s", l->name, r < 0 ? ": " : "",
                                   r < 0 ? ringil_detail() : "");
                l->leading = leading;
                /* taken or lost: the next holder starts from the store alone */
                scheduler_free(l->rollouts);
                l->rollouts = NULL;
        }
        atomic_store(&m->scheduler_leader, leading ? 1 : 0);
        for (size_t i = 0; leading && r >= 0 && i < ELEMENTSOF(passes); i++) {
                r = passes[i].run(l, (int64_t) time(NULL));
                if (r < 0 && !l->failing)
                        log_warning_errno(r, "Scheduler pass '%s' failed: %s", passes[i].name, ringil_detail());
        }
        if (leading && r >= 0)
                atomic_fetch_add(&m->scheduler_passes, 1);
        if (r < 0 && !l->failing && !leading)
                log_warning_errno(r, "Scheduler election: %s", ringil_detail());
        if (r >= 0 && l->failing)
                log_notice("scheduler: the store answers again");
        l->failing = r < 0;
}

static void *leader_main(void *userdata) {
        struct leader *l = userdata;

        pthread_mutex_lock(&l->lock);
        while (!l->stop) {
                struct timespec until;

                pthread_mutex_unlock(&l->lock);
                round_once(l);
                pthread_mutex_lock(&l->lock);
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += l->srv->cfg.scheduler_interval;
                while (!l->stop && pthread_cond_timedwait(&l->wake, &l->lock, &until) == 0)
                        ;
        }
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

int leader_start(struct server *srv, const char *name) {
        struct leader *l = calloc(1, sizeof(*l));
        int r;

        if (!l)
                return -ENOMEM;
        l->srv = srv;
        snprintf(l->name, sizeof(l->name), "%s", name);
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->wake, NULL);
        r = -pthread_create(&l->thread, NULL, leader_main, l);
        if (r < 0) {
                pthread_cond_destroy(&l->wake);
                pthread_mutex_destroy(&l->lock);
                free(l);
                return r;
        }
        srv->leader = l;
        return 0;
}

void leader_stop(struct server *srv) {
        struct leader *l = srv->leader;

        if (!l)
                return;
        pthread_mutex_lock(&l->lock);
        l->stop = true;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->lock);
        scheduler_free(l->rollouts);
        free(l);
        srv->leader = NULL;
        atomic_store(&srv->m.scheduler_leader, 0);
}
