/*
 * The NoCloud seed ISO (see seed.h). The two small YAML files are written
 * into a private mkdtemp directory and packed by genisoimage: the tool
 * cloud-image-utils' cloud-localds uses for exactly this, with the same
 * options, so the volume is what cloud-init has always been tested with.
 * genisoimage runs with posix_spawn (no shell: nothing in the inputs is
 * ever interpreted), its output is collected for the error message, and it
 * is killed if it runs longer than SEED_TIMEOUT_MS.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/seed.h"
#include "common/text.h"
#include "common/xalloc.h"

#define SEED_TOOL "genisoimage"
/* The tail of genisoimage's output kept for an error message. */
#define SEED_OUT_MAX 4096
/* How much of it goes into the message. */
#define SEED_MSG_MAX 360

/* A growing string for the YAML files. */
struct seed_buf {
	char *b_data;
	size_t b_len;
	size_t b_cap;
};

static void
seed_buf_add(struct seed_buf *b, const char *s, size_t n)
{
	if (b->b_len + n + 1 > b->b_cap) {
		b->b_cap = (b->b_len + n + 1) * 2;
		b->b_data = xrealloc(b->b_data, b->b_cap);
	}
	memcpy(b->b_data + b->b_len, s, n);
	b->b_len += n;
	b->b_data[b->b_len] = '\0';
}

static void
seed_buf_str(struct seed_buf *b, const char *s)
{
	seed_buf_add(b, s, strlen(s));
}

/*
 * s as a YAML double-quoted scalar: the only form in which no byte can end
 * the value early, start a comment or a new key, or turn it into a number,
 * boolean or null ("yes", "123", "~"). Control characters are escaped;
 * UTF-8 passes through (YAML is Unicode), bytes that are not UTF-8 become
 * '?' since a YAML parser would refuse the whole file over them.
 */
static void
seed_buf_quoted(struct seed_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, len;
	char esc[8];

	seed_buf_add(b, "\"", 1);
	while (i < n) {
		if (p[i] == '"' || p[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)p[i];
			seed_buf_add(b, esc, 2);
			i++;
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
			seed_buf_str(b, esc);
			i++;
		} else if (p[i] < 0x80) {
			seed_buf_add(b, (const char *)p + i, 1);
			i++;
		} else if ((len = text_utf8_seq(p + i, n - i)) > 0) {
			seed_buf_add(b, (const char *)p + i, len);
			i += len;
		} else {
			seed_buf_add(b, "?", 1);
			i++;
		}
	}
	seed_buf_add(b, "\"", 1);
}

/* "  - "<key>"\n" for every key. */
static void
seed_buf_keys(struct seed_buf *b, const char *const *keys, size_t nkeys)
{
	for (size_t i = 0; i < nkeys; i++) {
		seed_buf_str(b, "  - ");
		seed_buf_quoted(b, keys[i]);
		seed_buf_str(b, "\n");
	}
}

static char *
seed_meta_data(const char *vm_id, const char *hostname,
    const char *const *keys, size_t nkeys)
{
	struct seed_buf b = { 0 };

	seed_buf_str(&b, "instance-id: ");
	seed_buf_quoted(&b, vm_id);
	seed_buf_str(&b, "\nlocal-hostname: ");
	seed_buf_quoted(&b, hostname);
	seed_buf_str(&b, "\n");
	/* NoCloud reads public-keys from meta-data too: the keys reach the
	 * guest even when user_data is the caller's own. */
	if (nkeys > 0) {
		seed_buf_str(&b, "public-keys:\n");
		seed_buf_keys(&b, keys, nkeys);
	}
	return b.b_data;
}

static char *
seed_user_data(const char *hostname, const char *const *keys, size_t nkeys)
{
	struct seed_buf b = { 0 };

	seed_buf_str(&b, "#cloud-config\nhostname: ");
	seed_buf_quoted(&b, hostname);
	seed_buf_str(&b, "\n");
	if (nkeys > 0) {
		seed_buf_str(&b, "ssh_authorized_keys:\n");
		seed_buf_keys(&b, keys, nkeys);
	}
	return b.b_data;
}

static int
seed_write_new(const char *path, const char *data, struct carve_error *err)
{
	size_t len = strlen(data), off = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1)
		goto fail;
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		off += (size_t)n;
	}
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	error_set(err, CARVE_EINTERNAL, "cannot write %s: %s", path,
	    strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

static int64_t
seed_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * What the tool said, for an error message: its last SEED_MSG_MAX bytes
 * (the error comes last, after any warnings), lines joined with "; ",
 * anything but printable ASCII as '?'.
 */
static void
seed_tool_text(const char *out, size_t len, char *msg, size_t msgsz)
{
	size_t i, j = 0;
	bool sep = false;

	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
		len--;
	i = len > SEED_MSG_MAX ? len - SEED_MSG_MAX : 0;
	for (; i < len && j + 3 < msgsz; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c == '\n') {
			sep = j > 0;
			continue;
		}
		if (sep) {
			msg[j++] = ';';
			msg[j++] = ' ';
			sep = false;
			if (j + 3 >= msgsz)
				break;
		}
		msg[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	msg[j] = '\0';
	if (j == 0)
		snprintf(msg, msgsz, "no output");
}

/*
 * Run argv (argv[0] looked up in PATH) with stdin from /dev/null and
 * stdout+stderr collected, for at most SEED_TIMEOUT_MS. 0 when it exited
 * with status 0.
 */
static int
seed_run(const char *const argv[], struct carve_error *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	char out[SEED_OUT_MAX], msg[SEED_MSG_MAX + 64];
	size_t outlen = 0;
	int64_t deadline;
	int pfd[2], status = 0, rc, ret = -1;
	bool timedout = false, reaped = false;
	pid_t pid;
	ssize_t n;

	/* O_CLOEXEC: a process another thread spawns meanwhile must not
	 * inherit the write end, or our read would wait for it too. */
	if (pipe2(pfd, O_CLOEXEC) == -1)
		return error_set(err, CARVE_EINTERNAL, "pipe: %s",
		    strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	/* The calling thread's signal mask and carved's ignored SIGPIPE are
	 * inherited across exec: give the tool a normal start. */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr,
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	/* posix_spawn's argv is not const for historical reasons only: it
	 * is never written. */
	rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		return error_set(err, CARVE_EINTERNAL, "cannot run %s: %s%s",
		    argv[0], strerror(rc), rc == ENOENT ?
		    " (is the genisoimage package installed?)" : "");
	}

	deadline = seed_now_ms() + SEED_TIMEOUT_MS;
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int64_t left = deadline - seed_now_ms();
		char chunk[1024];

		if (left <= 0) {
			timedout = true;
			break;
		}
		rc = poll(&p, 1, (int)left);
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc == -1) {
			error_set(err, CARVE_EINTERNAL, "poll: %s",
			    strerror(errno));
			goto kill;
		}
		if (rc == 0)
			continue;
		n = read(pfd[0], chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Keep the tail (chunk is smaller than out): drop the oldest
		 * bytes when full. */
		if (outlen + (size_t)n > sizeof(out)) {
			size_t drop = outlen + (size_t)n - sizeof(out);

			memmove(out, out + drop, outlen - drop);
			outlen -= drop;
		}
		memcpy(out + outlen, chunk, (size_t)n);
		outlen += (size_t)n;
	}
	/* Output closed: the tool is exiting; wait for it, still bounded. */
	while (!timedout) {
		rc = waitpid(pid, &status, WNOHANG);
		if (rc == pid) {
			reaped = true;
			break;
		}
		if (rc == -1 && errno != EINTR) {
			error_set(err, CARVE_EINTERNAL, "waitpid: %s",
			    strerror(errno));
			reaped = true;	/* nothing left to reap */
			goto done;
		}
		if (seed_now_ms() >= deadline)
			timedout = true;
		else
			usleep(5000);
	}
kill:
	if (!reaped) {
		(void)kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	if (error_isset(err))
		goto done;
	seed_tool_text(out, outlen, msg, sizeof(msg));
	if (timedout)
		error_set(err, CARVE_EINTERNAL, "%s did not finish within "
		    "%d s (killed): %s", argv[0], SEED_TIMEOUT_MS / 1000, msg);
	else if (WIFSIGNALED(status))
		error_set(err, CARVE_EINTERNAL, "%s killed by signal %d: %s",
		    argv[0], WTERMSIG(status), msg);
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		error_set(err, CARVE_EINTERNAL, "%s failed (exit status %d): "
		    "%s", argv[0], WEXITSTATUS(status), msg);
	else
		ret = 0;
done:
	close(pfd[0]);
	return ret;
}

/* Make what genisoimage wrote durable and 0600 (whatever the tool did). */
static int
seed_sync(const char *path, struct carve_error *err)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1 || fchmod(fd, 0600) == -1 ||
	    fsync(fd) == -1) {
		error_set(err, CARVE_EINTERNAL, "cannot sync %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	if (st.st_size == 0)
		return error_set(err, CARVE_EINTERNAL, "%s wrote an empty "
		    "image", SEED_TOOL);
	return 0;
}

static int
seed_sync_dir(const char *dir, struct carve_error *err)
{
	int fd;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || fsync(fd) == -1) {
		error_set(err, CARVE_EINTERNAL, "cannot sync directory %s: %s",
		    dir, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
seed_build(const char *path, const char *vm_id, const char *hostname,
    const char *const *ssh_keys, size_t nkeys, const char *user_data,
    struct carve_error *err)
{
	const char *tmpdir = getenv("TMPDIR"), *slash;
	char *dir, *tmp = NULL;
	char *meta_path = NULL, *user_path = NULL, *parent = NULL;
	char *meta_text = NULL, *user_text = NULL;
	int fd, ret = -1;

	if (path == NULL || vm_id == NULL || hostname == NULL ||
	    (nkeys > 0 && ssh_keys == NULL))
		return error_set(err, CARVE_EINVAL, "seed: path, VM id and "
		    "hostname are required");

	/* The output's temporary name sits next to it (rename is atomic
	 * only within one file system), hidden, unique per call. */
	slash = strrchr(path, '/');
	if (slash == NULL) {
		parent = xstrdup(".");
		tmp = xasprintf(".%s.XXXXXX", path);
	} else {
		parent = slash == path ? xstrdup("/") :
		    xstrndup(path, (size_t)(slash - path));
		tmp = xasprintf("%s/.%s.XXXXXX", parent, slash + 1);
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		error_set(err, CARVE_EINTERNAL, "cannot create a file next to "
		    "%s: %s", path, strerror(errno));
		free(tmp);
		free(parent);
		return -1;
	}
	close(fd);

	dir = xasprintf("%s/carve-seed.XXXXXX",
	    tmpdir != NULL && *tmpdir != '\0' ? tmpdir : "/tmp");
	if (mkdtemp(dir) == NULL) {
		error_set(err, CARVE_EINTERNAL, "cannot create a temporary "
		    "directory %s: %s", dir, strerror(errno));
		free(dir);
		dir = NULL;
		goto cleanup;
	}
	meta_path = xasprintf("%s/meta-data", dir);
	user_path = xasprintf("%s/user-data", dir);
	meta_text = seed_meta_data(vm_id, hostname, ssh_keys, nkeys);
	user_text = user_data != NULL ? xstrdup(user_data) :
	    seed_user_data(hostname, ssh_keys, nkeys);
	if (seed_write_new(meta_path, meta_text, err) == -1 ||
	    seed_write_new(user_path, user_text, err) == -1)
		goto cleanup;

	{
		/* cloud-localds' options: Joliet and Rock Ridge keep the
		 * lower-case, hyphenated names cloud-init looks for. */
		const char *const argv[] = {
			SEED_TOOL, "-output", tmp, "-volid", "cidata",
			"-joliet", "-rock", "-input-charset", "utf-8",
			meta_path, user_path, NULL
		};

		if (seed_run(argv, err) == -1)
			goto cleanup;
	}
	if (seed_sync(tmp, err) == -1)
		goto cleanup;
	if (rename(tmp, path) == -1) {
		error_set(err, CARVE_EINTERNAL, "cannot rename %s to %s: %s",
		    tmp, path, strerror(errno));
		goto cleanup;
	}
	free(tmp);
	tmp = NULL;
	/* The rename itself must survive a crash: QEMU is told to use path. */
	if (seed_sync_dir(parent, err) == -1)
		goto cleanup;
	ret = 0;
cleanup:
	if (tmp != NULL)
		(void)unlink(tmp);
	if (dir != NULL) {
		(void)unlink(meta_path);
		(void)unlink(user_path);
		(void)rmdir(dir);
	}
	free(tmp);
	free(dir);
	free(meta_path);
	free(user_path);
	free(meta_text);
	free(user_text);
	free(parent);
	return ret;
}
