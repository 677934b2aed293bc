/* operator.h: the operator commands of ringil-server, HTTPS clients of the operator API. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

/* Where and as whom: --server/--ca/--cert/--key, or RINGIL_FLEET_SERVER, _CA, _CERT, _KEY. */
struct op_conn {
        const char *server, *ca, *cert, *key;
};

/*
 * One request to the operator API (upload: a file to POST instead of body). Prints the server's error
 * and returns an exit code unless it answered 2xx; the JSON answer in *ret (or printed when ret is NULL).
 */
int op_call(const struct op_conn *o, const char *method, const char *path, const char *body, const char *upload,
            json_t **ret);
void op_print_json(json_t *j);

/* operator-rollout.c */
int op_rollout(int argc, char *argv[]);
int op_tag(int argc, char *argv[]);
int op_window(int argc, char *argv[]);
int op_retry(int argc, char *argv[]);
int op_clear(int argc, char *argv[]);
int op_drift(int argc, char *argv[]);

int op_drones(int argc, char *argv[]);
int op_enroll(int argc, char *argv[]);
int op_reissue_token(int argc, char *argv[]);
int op_revoke(int argc, char *argv[]);
int op_upload(int argc, char *argv[]);
int op_mirrors(int argc, char *argv[]);
int op_release(int argc, char *argv[]);
int op_status(int argc, char *argv[]);
int op_metrics(int argc, char *argv[]);
