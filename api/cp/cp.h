/*
 * The state of a running carve-cp, owned by its one event-loop thread and
 * handed to every request handler: the configuration, the store, the CA,
 * the tokens and the parked long polls.
 */
#ifndef CARVE_CP_H
#define CARVE_CP_H

#include <stdint.h>

#include "api/cp/cp_pki.h"
#include "common/ids.h"

#define CP_COMP			"cp"
#define CP_DB_FILE		"carve-cp.db"
#define CP_DEFAULT_CERT_DAYS	30
#define CP_DEFAULT_HEARTBEAT_S	10
#define CP_DEFAULT_POLL_TIMEOUT_S 30

/* Nodes one transaction may have to wake (a migration step: two). */
#define CP_WAKE_MAX		8

struct event;
struct event_base;
struct cp_http;
struct cp_polls;
struct cp_store;

struct cp_conf {
	const char	*cf_dir;
	const char	*cf_listen;		/* ADDR:PORT */
	int64_t		 cf_cert_lifetime_s;	/* of issued client certs */
	int		 cf_heartbeat_interval_s;
	int		 cf_poll_timeout_s;
	int		 cf_node_ttl_s;
};

struct cp {
	struct cp_conf		 cp_conf;
	struct event_base	*cp_base;
	struct cp_http		*cp_http;
	struct cp_store		*cp_store;
	struct cp_ca		*cp_ca;
	struct cp_polls		*cp_polls;
	/* Nodes with new commands, woken once their transaction commits. */
	char			 cp_wake[CP_WAKE_MAX][IDS_NAME_MAX + 1];
	size_t			 cp_nwake;
	struct event		*cp_mig_timer;	/* cp_mig_tick */
	char			 cp_admin_token[CP_PKI_TOKEN_HEX + 1];
	char			 cp_bootstrap_token[CP_PKI_TOKEN_HEX + 1];
};

#endif
