/* operator.h: the operator commands of ringil-server, HTTPS clients of the operator API. */
#pragma once

int op_drones(int argc, char *argv[]);
int op_enroll(int argc, char *argv[]);
int op_reissue_token(int argc, char *argv[]);
int op_revoke(int argc, char *argv[]);
int op_upload(int argc, char *argv[]);
int op_release(int argc, char *argv[]);
int op_status(int argc, char *argv[]);
int op_metrics(int argc, char *argv[]);
