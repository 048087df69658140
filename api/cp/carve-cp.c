/*
 * carve-cp: the reference control plane. `init` makes a directory with a CA,
 * a server certificate and the admin and bootstrap tokens; `serve` runs the
 * HTTPS API (agents and admin) from it on one event loop until SIGTERM or
 * SIGINT, keeping its state in DIR/carve-cp.db.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "api/cp/cp.h"
#include "api/cp/cp_agent.h"
#include "api/cp/cp_http.h"
#include "api/cp/cp_mig.h"
#include "api/cp/cp_pki.h"
#include "api/cp/cp_store.h"
#include "api/proto.h"
#include "common/log.h"
#include "common/xalloc.h"

#define CP_LOCK_FILE		"carve-cp.lock"
#define CP_CERT_DAYS_MAX	CP_PKI_CA_DAYS

struct cp_cmd {
	const char	*name;
	int		(*run)(int argc, char **argv);
	const char	*usage;
};

static int cmd_init(int argc, char **argv);
static int cmd_serve(int argc, char **argv);

static const struct cp_cmd cp_cmds[] = {
	{ "init", cmd_init,
	    "init --dir DIR [--name DNS-NAME-OR-IP]... [--force]" },
	{ "serve", cmd_serve,
	    "serve --dir DIR --listen ADDR:PORT [--cert-days N | --cert-seconds N]\n"
	    "        [--heartbeat-interval S] [--poll-timeout S] [--node-ttl S]\n"
	    "        [--log-level debug|info|warn|error]" },
};

#define CP_NCMDS (sizeof(cp_cmds) / sizeof(cp_cmds[0]))

static void
usage(FILE *f)
{
	fprintf(f, "usage:\n");
	for (size_t i = 0; i < CP_NCMDS; i++)
		fprintf(f, "  carve-cp %s\n", cp_cmds[i].usage);
	fprintf(f, "  carve-cp --version\n");
}

/* A decimal option value in [min, max]. */
static int
parse_num(const char *opt, const char *s, long long min, long long max,
    long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "carve-cp: --%s \"%s\": expected a number from "
		    "%lld to %lld\n", opt, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* ------------------------------------------------------------ init */

static int
cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "name", required_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *names[CP_PKI_MAX_NAMES], *dir = NULL;
	struct carve_error err = { 0 };
	size_t nnames = 0;
	bool force = false;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			if (nnames == CP_PKI_MAX_NAMES) {
				fprintf(stderr, "carve-cp: at most %d --name\n",
				    CP_PKI_MAX_NAMES);
				return 2;
			}
			names[nnames++] = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (dir == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (cp_pki_init(dir, names, nnames, force, &err) < 0) {
		fprintf(stderr, "carve-cp init: %s\n", err.message);
		return 1;
	}
	printf("carve-cp: initialised %s: ca.crt ca.key server.crt server.key "
	    "admin.token bootstrap.token\n", dir);
	return 0;
}

/* ------------------------------------------------------------ serve */

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct cp *cp = arg;

	(void)what;
	log_kv(LOG_LVL_INFO, CP_COMP, "shutting down", "signal",
	    sig == SIGTERM ? "TERM" : "INT", NULL);
	event_base_loopexit(cp->cp_base, NULL);
}

static void
on_mig_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cp_mig_tick(arg);
}

/* One carve-cp per directory: the lock lives as long as the process. */
static int
take_lock(const char *dir, struct carve_error *err)
{
	char *path = xasprintf("%s/%s", dir, CP_LOCK_FILE);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0) {
		error_set(err, CARVE_EINTERNAL, "cannot open %s: %s", path,
		    strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		error_set(err, CARVE_ECONFLICT, "%s is locked: another carve-cp "
		    "serves %s", path, dir);
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	return fd;
}

static int
serve_conf(int argc, char **argv, struct cp_conf *cf)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "cert-days", required_argument, NULL, 'c' },
		{ "cert-seconds", required_argument, NULL, 's' },
		{ "heartbeat-interval", required_argument, NULL, 'b' },
		{ "poll-timeout", required_argument, NULL, 'p' },
		{ "node-ttl", required_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum log_level level;
	bool lifetime_set = false;
	long long v;
	int c;

	memset(cf, 0, sizeof(*cf));
	cf->cf_cert_lifetime_s = (int64_t)CP_DEFAULT_CERT_DAYS * 86400;
	cf->cf_heartbeat_interval_s = CP_DEFAULT_HEARTBEAT_S;
	cf->cf_poll_timeout_s = CP_DEFAULT_POLL_TIMEOUT_S;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			cf->cf_dir = optarg;
			break;
		case 'l':
			cf->cf_listen = optarg;
			break;
		case 'c':
		case 's':
			if (lifetime_set) {
				fprintf(stderr, "carve-cp: give one of "
				    "--cert-days and --cert-seconds\n");
				return -1;
			}
			lifetime_set = true;
			if (c == 'c') {
				if (parse_num("cert-days", optarg, 1,
				    CP_CERT_DAYS_MAX, &v) < 0)
					return -1;
				cf->cf_cert_lifetime_s = v * 86400;
			} else {
				if (parse_num("cert-seconds", optarg, 1,
				    (long long)CP_CERT_DAYS_MAX * 86400, &v) < 0)
					return -1;
				cf->cf_cert_lifetime_s = v;
			}
			break;
		case 'b':
			if (parse_num("heartbeat-interval", optarg,
			    PROTO_INTERVAL_MIN_S, PROTO_INTERVAL_MAX_S, &v) < 0)
				return -1;
			cf->cf_heartbeat_interval_s = (int)v;
			break;
		case 'p':
			if (parse_num("poll-timeout", optarg,
			    PROTO_INTERVAL_MIN_S, PROTO_INTERVAL_MAX_S, &v) < 0)
				return -1;
			cf->cf_poll_timeout_s = (int)v;
			break;
		case 't':
			if (parse_num("node-ttl", optarg, PROTO_INTERVAL_MIN_S,
			    PROTO_INTERVAL_MAX_S, &v) < 0)
				return -1;
			cf->cf_node_ttl_s = (int)v;
			break;
		case 'L':
			if (log_level_parse(optarg, &level) < 0) {
				fprintf(stderr, "carve-cp: --log-level: debug, "
				    "info, warn or error\n");
				return -1;
			}
			log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (cf->cf_dir == NULL || cf->cf_listen == NULL || optind != argc) {
		usage(stderr);
		return -1;
	}
	if (cf->cf_node_ttl_s == 0) {
		cf->cf_node_ttl_s = 3 * cf->cf_heartbeat_interval_s;
		if (cf->cf_node_ttl_s > PROTO_INTERVAL_MAX_S)
			cf->cf_node_ttl_s = PROTO_INTERVAL_MAX_S;
	}
	if (cf->cf_node_ttl_s < cf->cf_heartbeat_interval_s) {
		fprintf(stderr, "carve-cp: --node-ttl (%d s) shorter than "
		    "--heartbeat-interval (%d s) would mark every node down\n",
		    cf->cf_node_ttl_s, cf->cf_heartbeat_interval_s);
		return -1;
	}
	return 0;
}

static int
cmd_serve(int argc, char **argv)
{
	struct cp cp;
	struct carve_error err = { 0 };
	struct event *sigterm = NULL, *sigint = NULL;
	char *path;
	int lock_fd = -1, rc = 1;

	memset(&cp, 0, sizeof(cp));
	if (serve_conf(argc, argv, &cp.cp_conf) < 0)
		return 2;
	/* A client that hangs up mid-write must not kill the server. */
	signal(SIGPIPE, SIG_IGN);

	if ((lock_fd = take_lock(cp.cp_conf.cf_dir, &err)) < 0)
		goto fail;
	path = xasprintf("%s/%s", cp.cp_conf.cf_dir, CP_PKI_ADMIN_TOKEN);
	rc = cp_pki_token_load(path, cp.cp_admin_token, &err);
	free(path);
	if (rc < 0)
		goto fail;
	path = xasprintf("%s/%s", cp.cp_conf.cf_dir, CP_PKI_BOOTSTRAP_TOKEN);
	rc = cp_pki_token_load(path, cp.cp_bootstrap_token, &err);
	free(path);
	if (rc < 0)
		goto fail;
	rc = 1;
	if ((cp.cp_ca = cp_ca_load(cp.cp_conf.cf_dir, &err)) == NULL)
		goto fail;
	path = xasprintf("%s/%s", cp.cp_conf.cf_dir, CP_DB_FILE);
	cp.cp_store = cp_store_open(path, &err);
	free(path);
	if (cp.cp_store == NULL)
		goto fail;
	if ((cp.cp_base = event_base_new()) == NULL) {
		error_set(&err, CARVE_EINTERNAL, "event_base_new failed");
		goto fail;
	}
	cp.cp_polls = cp_polls_new();
	if (cp_http_start(&cp, &err) < 0)
		goto fail;
	{
		struct timeval tv = { .tv_sec = CP_MIG_TICK_MS / 1000,
		    .tv_usec = (CP_MIG_TICK_MS % 1000) * 1000 };

		cp.cp_mig_timer = event_new(cp.cp_base, -1, EV_PERSIST,
		    on_mig_timer, &cp);
		if (cp.cp_mig_timer == NULL ||
		    event_add(cp.cp_mig_timer, &tv) < 0) {
			error_set(&err, CARVE_EINTERNAL, "cannot start the "
			    "migration timer");
			goto fail;
		}
	}
	/* Unfinished migrations and evacuations carry on where they were. */
	cp_mig_tick(&cp);
	sigterm = evsignal_new(cp.cp_base, SIGTERM, on_signal, &cp);
	sigint = evsignal_new(cp.cp_base, SIGINT, on_signal, &cp);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sigint, NULL) < 0) {
		error_set(&err, CARVE_EINTERNAL, "cannot watch SIGTERM/SIGINT");
		goto fail;
	}
	{
		char hb[16], pt[16], ttl[16], life[24];

		snprintf(hb, sizeof(hb), "%d", cp.cp_conf.cf_heartbeat_interval_s);
		snprintf(pt, sizeof(pt), "%d", cp.cp_conf.cf_poll_timeout_s);
		snprintf(ttl, sizeof(ttl), "%d", cp.cp_conf.cf_node_ttl_s);
		snprintf(life, sizeof(life), "%lld",
		    (long long)cp.cp_conf.cf_cert_lifetime_s);
		log_kv(LOG_LVL_INFO, CP_COMP, "serving", "dir",
		    cp.cp_conf.cf_dir, "heartbeat_interval_s", hb,
		    "poll_timeout_s", pt, "node_ttl_s", ttl, "cert_lifetime_s",
		    life, NULL);
	}
	if (event_base_dispatch(cp.cp_base) < 0) {
		error_set(&err, CARVE_EINTERNAL, "event loop failed");
		goto fail;
	}
	rc = 0;
fail:
	if (rc != 0)
		log_kv(LOG_LVL_ERROR, CP_COMP, "cannot serve", "error",
		    err.message, NULL);
	if (sigterm != NULL)
		event_free(sigterm);
	if (sigint != NULL)
		event_free(sigint);
	if (cp.cp_mig_timer != NULL)
		event_free(cp.cp_mig_timer);
	/* Parked polls first: their requests go with the connections. */
	cp_polls_free(cp.cp_polls);
	cp_http_free(cp.cp_http);
	cp_store_close(cp.cp_store);
	cp_ca_free(cp.cp_ca);
	if (cp.cp_base != NULL)
		event_base_free(cp.cp_base);
	OPENSSL_cleanse(cp.cp_admin_token, sizeof(cp.cp_admin_token));
	OPENSSL_cleanse(cp.cp_bootstrap_token, sizeof(cp.cp_bootstrap_token));
	if (lock_fd >= 0)
		close(lock_fd);
	if (rc == 0)
		log_kv(LOG_LVL_INFO, CP_COMP, "stopped", NULL);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("carve-cp %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < CP_NCMDS; i++)
		if (strcmp(argv[1], cp_cmds[i].name) == 0)
			return cp_cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "carve-cp: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
