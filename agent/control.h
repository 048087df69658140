/*
 * The local control socket carvectl talks to (protocol: ctl_proto.h).
 * Unix stream socket, mode 0660, group [agent] socket_group. Every
 * connection's peer is identified with SO_PEERCRED/SO_PEERGROUPS: reading
 * verbs are open to whoever can connect, mutating ones need root or the
 * socket group.
 */
#ifndef CARVE_CONTROL_H
#define CARVE_CONTROL_H

#include "common/error.h"

struct agent;
struct control;

/* Bind and listen on a->a_conf->socket. */
int control_open(struct agent *a, struct control **out, struct carve_error *err);
/* Stop listening, drop clients, unlink the socket; cb on the loop when done. */
void control_close(struct control *c, void (*cb)(void *arg), void *arg);

#endif
