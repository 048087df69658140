/*
 * bench_direct URI N: the baseline for carve's create benchmark.  Times N x
 * (virDomainDefineXML + virDomainCreate) of minimal test-driver domains
 * bench-0 .. bench-N-1 straight through libvirt, with no agent in the way,
 * and prints "direct_create_s=<seconds>".  The domains are left defined and
 * running: on test:///default they vanish with the connection; on a shared
 * test+unix:///default they vanish when its last connection closes.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#define BENCH_MAX 1000000UL

static const char bench_xml_fmt[] =
    "<domain type='test'>"
    "<name>bench-%lu</name>"
    "<memory unit='MiB'>64</memory>"
    "<vcpu>1</vcpu>"
    "<os><type>hvm</type></os>"
    "</domain>";

static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
bench_parse_count(const char *s, unsigned long *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' ||
	    n == 0 || n > BENCH_MAX)
		return -1;
	*out = n;
	return 0;
}

/* Errors are reported once, by us; NULL would restore libvirt's printer. */
static void
bench_quiet(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static const char *
bench_last_error(void)
{
	const char *msg = virGetLastErrorMessage();

	return msg != NULL ? msg : "unknown libvirt error";
}

int
main(int argc, char **argv)
{
	virConnectPtr conn;
	unsigned long n;
	double t0, t1;
	char xml[sizeof(bench_xml_fmt) + 32];
	int rc = EXIT_FAILURE;

	if (argc != 3 || bench_parse_count(argv[2], &n) < 0) {
		fprintf(stderr, "usage: bench_direct URI N   (1 <= N <= %lu)\n",
		    BENCH_MAX);
		return 2;
	}
	virSetErrorFunc(NULL, bench_quiet);
	conn = virConnectOpen(argv[1]);
	if (conn == NULL) {
		fprintf(stderr, "bench_direct: cannot open %s: %s\n", argv[1],
		    bench_last_error());
		return EXIT_FAILURE;
	}

	t0 = bench_now();
	for (unsigned long i = 0; i < n; i++) {
		virDomainPtr dom;

		snprintf(xml, sizeof(xml), bench_xml_fmt, i);
		dom = virDomainDefineXML(conn, xml);
		if (dom == NULL) {
			fprintf(stderr, "bench_direct: define bench-%lu: %s\n", i,
			    bench_last_error());
			goto cleanup;
		}
		if (virDomainCreate(dom) < 0) {
			fprintf(stderr, "bench_direct: start bench-%lu: %s\n", i,
			    bench_last_error());
			virDomainFree(dom);
			goto cleanup;
		}
		virDomainFree(dom);
	}
	t1 = bench_now();
	printf("direct_create_s=%.3f\n", t1 - t0);
	rc = EXIT_SUCCESS;

cleanup:
	virConnectClose(conn);
	return rc;
}
