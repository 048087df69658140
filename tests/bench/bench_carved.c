/*
 * bench_carved SOCKET N CONNS: N vm.create requests to a running carved over
 * CONNS parallel control-socket connections (each sends its next request
 * when the previous is answered, like a busy control plane would), and
 * prints the wall time as carved_create_s=SECONDS, plus failures.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct worker {
	const char *sock;
	unsigned first, count;
	unsigned failed;
};

static int
connect_sock(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	int fd = connect_sock(w->sock);
	char req[256], buf[8192];

	for (unsigned i = w->first; i < w->first + w->count; i++) {
		size_t len = 0;
		int n = snprintf(req, sizeof(req),
		    "{\"verb\":\"vm.create\",\"args\":{\"name\":\"bench-%u\","
		    "\"vcpus\":1,\"memory_mib\":64}}\n", i);

		if (write(fd, req, (size_t)n) != n) {
			perror("write");
			exit(1);
		}
		for (;;) {
			ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
			if (r <= 0) {
				fprintf(stderr, "carved closed the connection\n");
				exit(1);
			}
			len += (size_t)r;
			if (memchr(buf, '\n', len) || len == sizeof(buf) - 1)
				break;
		}
		buf[len] = '\0';
		if (strstr(buf, "\"succeeded\"") == NULL)
			w->failed++;
	}
	close(fd);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct timespec t0, t1;
	unsigned n, conns, failed = 0;
	struct worker *ws;
	pthread_t *ts;

	if (argc != 4) {
		fprintf(stderr, "usage: bench_carved SOCKET N CONNS\n");
		return 2;
	}
	n = (unsigned)strtoul(argv[2], NULL, 10);
	conns = (unsigned)strtoul(argv[3], NULL, 10);
	if (n == 0 || conns == 0 || conns > n) {
		fprintf(stderr, "bad N or CONNS\n");
		return 2;
	}
	ws = calloc(conns, sizeof(*ws));
	ts = calloc(conns, sizeof(*ts));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 0, first = 0; i < conns; i++) {
		ws[i].sock = argv[1];
		ws[i].first = first;
		ws[i].count = n / conns + (i < n % conns);
		first += ws[i].count;
		pthread_create(&ts[i], NULL, worker_run, &ws[i]);
	}
	for (unsigned i = 0; i < conns; i++) {
		pthread_join(ts[i], NULL);
		failed += ws[i].failed;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("carved_create_s=%.3f\nfailed=%u\n", (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, failed);
	free(ws);
	free(ts);
	return failed ? 1 : 0;
}
