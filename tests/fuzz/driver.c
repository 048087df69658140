/*
 * main() for fuzz targets built without libFuzzer: replays files through
 * LLVMFuzzerTestOneInput, so "make check" runs every target over its corpus
 * under the sanitizers and the targets never rot (tmux's fuzz/ does the
 * same). Each argument is a file, or a directory whose regular files are fed
 * in name order; arguments starting with '-' are libFuzzer options and are
 * ignored, so the same command line works for both builds.
 *
 * Every input is copied into a buffer of exactly its size, as libFuzzer
 * does, so a read one byte past the end is caught by AddressSanitizer.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *progname = "fuzz";

/* Read path into a malloc'd buffer of exactly its size. */
static int
driver_read(const char *path, uint8_t **out, size_t *outlen)
{
	uint8_t *buf = NULL, *nbuf;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		goto fail;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			if ((nbuf = realloc(buf, cap)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	/* Shrink to fit; a zero-length input still gets a valid pointer. */
	if ((nbuf = malloc(len ? len : 1)) == NULL)
		goto fail;
	memcpy(nbuf, buf, len);
	free(buf);
	*out = nbuf;
	*outlen = len;
	return 0;
fail:
	fprintf(stderr, "%s: %s: %s\n", progname, path, strerror(errno));
	if (fd != -1)
		close(fd);
	free(buf);
	return -1;
}

static int
driver_run_file(const char *path, size_t *count)
{
	uint8_t *data;
	size_t len;

	if (driver_read(path, &data, &len) == -1)
		return -1;
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	(*count)++;
	return 0;
}

static int
driver_run_dir(const char *dir, size_t *count)
{
	struct dirent **ents;
	struct stat st;
	char *path;
	int n, rc = 0;

	if ((n = scandir(dir, &ents, NULL, alphasort)) == -1) {
		fprintf(stderr, "%s: %s: %s\n", progname, dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (rc == 0 && asprintf(&path, "%s/%s", dir,
		    ents[i]->d_name) != -1) {
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				rc = driver_run_file(path, count);
			free(path);
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

int
main(int argc, char **argv)
{
	struct stat st;
	size_t count = 0;
	int rc = 0;

	if (argc > 0 && argv[0] != NULL) {
		const char *slash = strrchr(argv[0], '/');
		progname = slash != NULL ? slash + 1 : argv[0];
	}
	for (int i = 1; i < argc && rc == 0; i++) {
		if (argv[i][0] == '-')
			continue;
		if (stat(argv[i], &st) == -1) {
			fprintf(stderr, "%s: %s: %s\n", progname, argv[i],
			    strerror(errno));
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = driver_run_dir(argv[i], &count);
		} else {
			rc = driver_run_file(argv[i], &count);
		}
	}
	fprintf(stderr, "%s: %zu inputs\n", progname, count);
	return rc == 0 ? 0 : 1;
}
