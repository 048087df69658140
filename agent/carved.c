/*
 * carved: the compute-node agent. Parses the command line and the
 * configuration, takes the state directory's lock, sets up the agent on a
 * libuv loop and runs it until SIGTERM/SIGINT.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "agent/agent.h"
#include "agent/conf.h"
#include "agent/virt.h"
#include "common/log.h"
#include "common/xalloc.h"

/* Threads beyond max_concurrent_ops: journal, connects, view refreshes. */
#define CARVED_EXTRA_THREADS 4

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: carved [-f] [-c FILE] [-t] [-V]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -f       stay in the foreground (as under systemd)\n"
	    "  -t       check the configuration and exit\n"
	    "  -r       print the configuration reference (Markdown) and exit\n"
	    "  -V       print the version and exit\n", CONF_DEFAULT_PATH);
}

/* Tell systemd (Type=notify) how we are; no-op without NOTIFY_SOCKET. */
static void
sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sa.sun_path))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	    len);
	close(fd);
}

/* Create the state dir (0750) and hold an exclusive lock on it for life. */
static int
take_state_lock(const char *dir)
{
	char *path;
	int fd;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		log_error("carved", "cannot create state directory %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	path = xasprintf("%s/carved.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("carved", "cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("carved", "another carved is running with state "
		    "directory %s (%s is locked)", dir, path);
		free(path);
		close(fd);
		return -1;
	}
	free(path);
	return fd;  /* kept open: the lock lives as long as the process */
}

static int
daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return chdir("/");
}

int
main(int argc, char **argv)
{
	const char *conf_path = CONF_DEFAULT_PATH;
	bool foreground = false, check_only = false;
	struct carved_conf conf;
	struct carve_error err = { 0 };
	struct agent agent;
	uv_loop_t loop;
	char threads[16];
	int ch, lockfd;

	while ((ch = getopt(argc, argv, "c:fhrtV")) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'f': foreground = true; break;
		case 't': check_only = true; break;
		case 'r': conf_print_reference(stdout); return 0;
		case 'V': printf("carved %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	conf_defaults(&conf);
	if (conf_load(conf_path, &conf, &err) < 0) {
		log_error("carved", "%s", err.message);
		conf_free(&conf);
		return 1;
	}
	log_set_level(conf.log_level);
	if (check_only) {
		printf("%s: configuration OK\n", conf_path);
		conf_free(&conf);
		return 0;
	}

	lockfd = take_state_lock(conf.state_dir);
	if (lockfd < 0) {
		conf_free(&conf);
		return 1;
	}
	if (!foreground && daemonize() < 0) {
		log_error("carved", "cannot daemonize: %s", strerror(errno));
		return 1;
	}
	/* libuv reads this once, at the first uv_queue_work. */
	/* Migrations and cancels run beside max_concurrent_ops. */
	snprintf(threads, sizeof(threads), "%u",
	    conf.max_concurrent_ops + conf.mig_max_outgoing + 1 +
	    CARVED_EXTRA_THREADS);
	setenv("UV_THREADPOOL_SIZE", threads, 1);
	/* A client that hangs up before its answer must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	/* Once, before any thread exists (libcurl's rule). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("carved", "cannot initialise libcurl");
		return 1;
	}
	if (virt_global_init() < 0)
		return 1;

	uv_loop_init(&loop);
	if (agent_init(&agent, &loop, &conf, &err) < 0) {
		log_error("carved", "cannot start: %s", err.message);
		return 1;
	}
	log_info("carved", "carved %s started: node %s, libvirt %s, state %s",
	    PACKAGE_VERSION, conf.node_name, conf.uri, conf.state_dir);
	sd_notify_msg("READY=1\nSTATUS=running");
	uv_run(&loop, UV_RUN_DEFAULT);
	sd_notify_msg("STOPPING=1");
	agent_fini(&agent);
	(void)uv_loop_close(&loop);
	curl_global_cleanup();
	conf_free(&conf);
	close(lockfd);
	return agent.a_exit_code;
}
