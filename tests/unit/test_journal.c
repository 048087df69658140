/*
 * The command journal: what is acknowledged is on disk after a reopen (and
 * after the process dies), results are never overwritten, concurrent writes
 * share transactions, retention never drops an unfinished command (nor a
 * control-plane result not reported yet), where a command came from and
 * whether its result was reported survive a reopen, a version-1 journal is
 * migrated in place, and files that are not ours are refused. Each test
 * owns a mkdtemp directory and a loop it drives with uv_run.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "agent/journal.h"

struct fix {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	uv_loop_t loop;
};

/* What a done callback saw. */
struct done {
	int calls;
	int status;
	int seq;	/* order among the callbacks sharing a counter */
	int *counter;
};

/* A copy of one loaded entry. */
struct row {
	char *id, *type, *vm_id, *command, *result;
	enum command_status status;
	int64_t accepted_at, finished_at;
	enum journal_origin origin;
	bool reported;
};

struct rows {
	size_t n;
	struct row r[256];
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(f);
	assert_true(snprintf(f->dir, sizeof(f->dir), "%s/test_journal.XXXXXX",
	    tmp != NULL ? tmp : "/tmp") < (int)sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	assert_true(snprintf(f->path, sizeof(f->path), "%s/journal.db",
	    f->dir) < (int)sizeof(f->path));
	assert_int_equal(uv_loop_init(&f->loop), 0);
	*state = f;
	return 0;
}

static void
remove_suffixed(const char *path, const char *suffix)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s%s", path, suffix) < (int)sizeof(p))
		unlink(p);
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	remove_suffixed(f->path, "");
	remove_suffixed(f->path, "-wal");
	remove_suffixed(f->path, "-shm");
	rmdir(f->path);	/* the test that puts a directory there */
	assert_int_equal(rmdir(f->dir), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static struct journal *
jopen(struct fix *f)
{
	struct carve_error err = { 0 };
	struct journal *j = NULL;

	if (journal_open(&f->loop, f->path, &j, &err) != 0)
		fail_msg("journal_open: %s", err.message);
	assert_non_null(j);
	return j;
}

static void
on_closed(void *arg)
{
	(*(int *)arg)++;
}

static void
jclose(struct fix *f, struct journal *j)
{
	int closed = 0;

	journal_close(j, on_closed, &closed);
	assert_int_equal(closed, 0);	/* never from inside journal_close */
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(closed, 1);
}

static void
on_done(struct journal *j, int status, void *arg)
{
	struct done *d = arg;

	assert_non_null(j);
	d->calls++;
	d->status = status;
	if (d->counter != NULL)
		d->seq = (*d->counter)++;
}

static void
collect(const struct journal_entry *e, void *arg)
{
	struct rows *rs = arg;
	struct row *r;

	assert_true(rs->n < sizeof(rs->r) / sizeof(rs->r[0]));
	r = &rs->r[rs->n++];
	r->id = strdup(e->je_id);
	r->type = strdup(e->je_type);
	r->vm_id = strdup(e->je_vm_id);
	r->command = strdup(e->je_command_json);
	r->result = e->je_result_json != NULL ? strdup(e->je_result_json) : NULL;
	r->status = e->je_status;
	r->accepted_at = e->je_accepted_at_ms;
	r->finished_at = e->je_finished_at_ms;
	r->origin = e->je_origin;
	r->reported = e->je_reported;
}

static void
rows_free(struct rows *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->r[i].id);
		free(rs->r[i].type);
		free(rs->r[i].vm_id);
		free(rs->r[i].command);
		free(rs->r[i].result);
	}
	rs->n = 0;
}

static void
jload(struct journal *j, int64_t now, int64_t retain, struct rows *rs)
{
	struct carve_error err = { 0 };

	rows_free(rs);
	if (journal_load(j, now, retain, collect, rs, &err) != 0)
		fail_msg("journal_load: %s", err.message);
}

/* Reopen the file and load everything. */
static void
reload(struct fix *f, struct rows *rs)
{
	struct journal *j = jopen(f);

	jload(j, 0, 0, rs);
	jclose(f, j);
}

/* Accept with made-up fields derived from id, and run the loop. */
static void
accept_now(struct fix *f, struct journal *j, const char *id, int64_t at)
{
	struct done d = { 0 };

	journal_accept(j, id, "vm.start", "vm-1", "{\"cmd\":1}",
	    JOURNAL_ORIGIN_LOCAL, at, on_done, &d);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, 0);
}

static void
finish_now(struct fix *f, struct journal *j, const char *id,
    enum command_status st, const char *result, int64_t at)
{
	struct done d = { 0 };

	journal_finish(j, id, st, result, at, on_done, &d);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, 0);
}

static void
test_roundtrip(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	struct journal *j = jopen(f);
	struct done d[4] = { { 0 } };

	journal_accept(j, "id-a", "vm.create", "vm-a", "{\"a\":1}",
	    JOURNAL_ORIGIN_LOCAL, 1000, on_done, &d[0]);
	journal_accept(j, "id-b", "vm.stop", "vm-b", "{\"b\":2}",
	    JOURNAL_ORIGIN_LOCAL, 2000, on_done, &d[1]);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	journal_finish(j, "id-a", CMD_STATUS_SUCCEEDED, "{\"ok\":true}", 1500,
	    on_done, &d[2]);
	journal_finish(j, "id-b", CMD_STATUS_FAILED, "{\"error\":\"x\"}", 2500,
	    on_done, &d[3]);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].status, 0);
	}
	/* Accepted later but earlier in time: loaded first. */
	accept_now(f, j, "id-c", 500);
	jclose(f, j);

	reload(f, &rs);
	assert_int_equal(rs.n, 3);
	assert_string_equal(rs.r[0].id, "id-c");
	assert_int_equal(rs.r[0].status, CMD_STATUS_ACCEPTED);

	assert_string_equal(rs.r[1].id, "id-a");
	assert_string_equal(rs.r[1].type, "vm.create");
	assert_string_equal(rs.r[1].vm_id, "vm-a");
	assert_string_equal(rs.r[1].command, "{\"a\":1}");
	assert_int_equal(rs.r[1].status, CMD_STATUS_SUCCEEDED);
	assert_string_equal(rs.r[1].result, "{\"ok\":true}");
	assert_int_equal(rs.r[1].accepted_at, 1000);
	assert_int_equal(rs.r[1].finished_at, 1500);

	assert_string_equal(rs.r[2].id, "id-b");
	assert_string_equal(rs.r[2].type, "vm.stop");
	assert_string_equal(rs.r[2].vm_id, "vm-b");
	assert_string_equal(rs.r[2].command, "{\"b\":2}");
	assert_int_equal(rs.r[2].status, CMD_STATUS_FAILED);
	assert_string_equal(rs.r[2].result, "{\"error\":\"x\"}");
	assert_int_equal(rs.r[2].accepted_at, 2000);
	assert_int_equal(rs.r[2].finished_at, 2500);
	rows_free(&rs);
}

/*
 * The agent dies after the accept is durable and before the finish: a child
 * accepts and _exits without closing (the row is only in the WAL); the
 * next open recovers it as accepted.
 */
static void
test_crash_leaves_accepted(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	int wstatus;
	pid_t pid;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct carve_error err = { 0 };
		struct journal *j;
		struct done d = { 0 };
		uv_loop_t loop;

		if (uv_loop_init(&loop) != 0 ||
		    journal_open(&loop, f->path, &j, &err) != 0)
			_exit(2);
		journal_accept(j, "id-crash", "vm.destroy", "vm-x", "{}",
		    JOURNAL_ORIGIN_LOCAL, 4242, on_done, &d);
		uv_run(&loop, UV_RUN_DEFAULT);
		_exit(d.calls == 1 && d.status == 0 ? 0 : 3);
	}
	assert_int_equal(waitpid(pid, &wstatus, 0), pid);
	assert_true(WIFEXITED(wstatus));
	assert_int_equal(WEXITSTATUS(wstatus), 0);

	reload(f, &rs);
	assert_int_equal(rs.n, 1);
	assert_string_equal(rs.r[0].id, "id-crash");
	assert_int_equal(rs.r[0].status, CMD_STATUS_ACCEPTED);
	assert_null(rs.r[0].result);
	assert_int_equal(rs.r[0].accepted_at, 4242);
	assert_int_equal(rs.r[0].finished_at, 0);
	rows_free(&rs);
}

#define NGROUP 200

static void
test_group_commit(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	struct journal *j = jopen(f);
	struct journal_stats stats;
	static struct done d[NGROUP];
	char id[32];
	int counter = 0;

	memset(d, 0, sizeof(d));
	for (int i = 0; i < NGROUP; i++) {
		snprintf(id, sizeof(id), "id-%03d", i);
		d[i].counter = &counter;
		journal_accept(j, id, "vm.start", "vm-1", "{}",
		    JOURNAL_ORIGIN_LOCAL, 1000 + i, on_done, &d[i]);
	}
	assert_int_equal(journal_pending(j), NGROUP);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(journal_pending(j), 0);
	for (int i = 0; i < NGROUP; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].status, 0);
		assert_int_equal(d[i].seq, i);	/* answered in order */
	}
	journal_get_stats(j, &stats);
	assert_int_equal(stats.records, NGROUP);
	/* The first accept starts a flush alone; the other 199 queue behind
	 * it and share the next transaction. */
	assert_true(stats.commits >= 1);
	assert_true(stats.commits <= 2);
	jclose(f, j);

	reload(f, &rs);
	assert_int_equal(rs.n, NGROUP);
	assert_string_equal(rs.r[NGROUP - 1].id, "id-199");
	rows_free(&rs);
}

static void
test_retention(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	struct journal *j = jopen(f);

	accept_now(f, j, "old-done", 1000);
	finish_now(f, j, "old-done", CMD_STATUS_SUCCEEDED, "{}", 2000);
	accept_now(f, j, "old-open", 1500);	/* never finished */
	accept_now(f, j, "edge", 3000);
	finish_now(f, j, "edge", CMD_STATUS_FAILED, "{}", 5000);
	accept_now(f, j, "new-done", 8000);
	finish_now(f, j, "new-done", CMD_STATUS_SUCCEEDED, "{}", 9000);

	/* retain 0 keeps everything, however old. */
	jload(j, INT64_MAX, 0, &rs);
	assert_int_equal(rs.n, 4);

	/* Cut-off 5000: finished before it goes, an unfinished command never. */
	jload(j, 10000, 5000, &rs);
	assert_int_equal(rs.n, 3);
	assert_string_equal(rs.r[0].id, "old-open");
	assert_string_equal(rs.r[1].id, "edge");
	assert_string_equal(rs.r[2].id, "new-done");
	jclose(f, j);

	reload(f, &rs);	/* deleted on disk, not just skipped */
	assert_int_equal(rs.n, 3);
	assert_string_equal(rs.r[0].id, "old-open");

	/* Far in the future, the unfinished one still stays. */
	j = jopen(f);
	jload(j, INT64_MAX, 1, &rs);
	assert_int_equal(rs.n, 1);
	assert_string_equal(rs.r[0].id, "old-open");
	assert_int_equal(rs.r[0].status, CMD_STATUS_ACCEPTED);
	jclose(f, j);
	rows_free(&rs);
}

static void
assert_mode_0600(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void
test_file_mode(void **state)
{
	struct fix *f = *state;
	char wal[PATH_MAX];
	struct journal *j;
	mode_t old;

	/* 0600 whatever the umask. */
	old = umask(0);
	j = jopen(f);
	accept_now(f, j, "id-1", 1);
	umask(old);
	assert_mode_0600(f->path);
	/* The WAL holds the same data: SQLite gives it the file's mode. */
	assert_true(snprintf(wal, sizeof(wal), "%s-wal", f->path) <
	    (int)sizeof(wal));
	assert_mode_0600(wal);
	jclose(f, j);
	assert_mode_0600(f->path);
}

/* ---------------------------------------------------------------- refusals */

static void
write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd != -1);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void
make_garbage(const char *path)
{
	char buf[4096];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 3);
	write_file(path, buf, sizeof(buf), 0600);
}

static void
make_world_writable(const char *path)
{
	write_file(path, "", 0, 0666);
}

static void
make_sqlite(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(chmod(path, 0600), 0);
}

static void
make_newer_schema(const char *path)
{
	make_sqlite(path, "CREATE TABLE commands(id TEXT); PRAGMA user_version = 3;");
}

static void
make_foreign_db(const char *path)
{
	make_sqlite(path, "CREATE TABLE photos(id INTEGER PRIMARY KEY, name TEXT);");
}

static void
make_directory(const char *path)
{
	assert_int_equal(mkdir(path, 0700), 0);
}

static void
make_symlink(const char *path)
{
	assert_int_equal(symlink("/dev/null", path), 0);
}

static const struct {
	const char *name;
	void (*make)(const char *path);
	enum carve_errcode code;
	const char *message;	/* a substring the operator sees */
} bad_files[] = {
	{ "garbage", make_garbage, CARVE_EINTERNAL, "not a database" },
	{ "world-writable", make_world_writable, CARVE_EPERM,
	    "writable by group or others" },
	{ "newer schema", make_newer_schema, CARVE_EINVAL, "schema version 3" },
	{ "foreign database", make_foreign_db, CARVE_EINVAL,
	    "not a carve journal" },
	{ "directory", make_directory, CARVE_EINTERNAL, "directory" },
	{ "symlink", make_symlink, CARVE_EPERM, "symbolic link" },
};

static void
test_bad_files(void **state)
{
	struct fix *f = *state;

	for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
		struct carve_error err = { 0 };
		struct journal *j = NULL;
		struct stat before, after;

		bad_files[i].make(f->path);
		assert_int_equal(lstat(f->path, &before), 0);
		if (journal_open(&f->loop, f->path, &j, &err) == 0)
			fail_msg("%s: journal_open succeeded", bad_files[i].name);
		if (err.code != bad_files[i].code ||
		    strstr(err.message, bad_files[i].message) == NULL)
			fail_msg("%s: got %s \"%s\"", bad_files[i].name,
			    error_code_name(err.code), err.message);
		assert_non_null(strstr(err.message, f->path));
		/* Refused files are left as they were. */
		assert_int_equal(lstat(f->path, &after), 0);
		assert_int_equal(after.st_size, before.st_size);
		assert_int_equal(after.st_mode, before.st_mode);
		assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
		assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
		remove_suffixed(f->path, "-wal");
		remove_suffixed(f->path, "-shm");
		if (S_ISDIR(after.st_mode))
			assert_int_equal(rmdir(f->path), 0);
		else
			assert_int_equal(unlink(f->path), 0);
	}
}

/* ---------------------------------------------------------------- close */

struct close_order {
	int done;
	int done_at_close;
	int closed;
};

static void
count_done(struct journal *j, int status, void *arg)
{
	struct close_order *o = arg;

	(void)j;
	assert_int_equal(status, 0);
	o->done++;
}

static void
record_close(void *arg)
{
	struct close_order *o = arg;

	o->closed++;
	o->done_at_close = o->done;
}

static void
test_close_flushes_pending(void **state)
{
	struct fix *f = *state;
	struct close_order o = { 0 };
	struct rows rs = { 0 };
	struct journal *j = jopen(f);
	char id[16];

	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "id-%d", i);
		journal_accept(j, id, "vm.start", "vm-1", "{}",
		    JOURNAL_ORIGIN_LOCAL, i, count_done, &o);
	}
	journal_close(j, record_close, &o);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(o.closed, 1);
	assert_int_equal(o.done, 10);
	assert_int_equal(o.done_at_close, 10);	/* every write answered first */

	reload(f, &rs);
	assert_int_equal(rs.n, 10);
	rows_free(&rs);
}

/* A callback closing the journal, and one writing after the close began. */
struct close_in_cb {
	struct journal *j;
	struct done late;
	int closed;
};

static void
close_from_cb(struct journal *j, int status, void *arg)
{
	struct close_in_cb *c = arg;

	assert_int_equal(status, 0);
	/* Queued before the close: still written by the last flush. */
	journal_finish(j, "id-1", CMD_STATUS_SUCCEEDED, "{}", 2, on_done,
	    &c->late);
	journal_close(j, on_closed, &c->closed);
}

static void
test_close_from_callback(void **state)
{
	struct fix *f = *state;
	struct close_in_cb c = { 0 };
	struct rows rs = { 0 };
	struct journal *j = jopen(f);

	journal_accept(j, "id-1", "vm.start", "vm-1", "{}", JOURNAL_ORIGIN_LOCAL,
	    1, close_from_cb, &c);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(c.closed, 1);
	assert_int_equal(c.late.calls, 1);
	assert_int_equal(c.late.status, 0);

	reload(f, &rs);
	assert_int_equal(rs.n, 1);
	assert_int_equal(rs.r[0].status, CMD_STATUS_SUCCEEDED);
	rows_free(&rs);
}

/* ---------------------------------------------------------------- errors */

/* Caller bugs are refused one record at a time; the rest of a batch stays. */
static void
test_caller_errors(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	struct journal *j = jopen(f);
	struct done d[7] = { { 0 } };
	static const int want[7] = {
		-EEXIST,	/* accept of a known id */
		0,		/* an unrelated accept in the same batch */
		-ENOENT,	/* finish of an unknown id */
		-EINVAL,	/* "finish" as accepted */
		0,		/* the real finish */
		-ENOENT,	/* a second finish must not overwrite */
		-EINVAL,	/* accept without a vm_id */
	};

	accept_now(f, j, "id-a", 1000);
	journal_accept(j, "id-a", "vm.stop", "vm-z", "{\"dup\":1}",
	    JOURNAL_ORIGIN_LOCAL, 1001, on_done, &d[0]);
	journal_accept(j, "id-b", "vm.start", "vm-1", "{}", JOURNAL_ORIGIN_LOCAL,
	    1002, on_done, &d[1]);
	journal_finish(j, "id-none", CMD_STATUS_FAILED, "{}", 1003, on_done,
	    &d[2]);
	journal_finish(j, "id-a", CMD_STATUS_ACCEPTED, NULL, 1004, on_done,
	    &d[3]);
	journal_finish(j, "id-a", CMD_STATUS_SUCCEEDED, "{\"first\":1}", 1005,
	    on_done, &d[4]);
	journal_finish(j, "id-a", CMD_STATUS_FAILED, "{\"second\":1}", 1006,
	    on_done, &d[5]);
	journal_accept(j, "id-c", "vm.start", NULL, "{}", JOURNAL_ORIGIN_LOCAL,
	    1007, on_done, &d[6]);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(d[i].calls, 1);
		if (d[i].status != want[i])
			fail_msg("record %d: status %d, want %d", i,
			    d[i].status, want[i]);
	}
	jclose(f, j);

	reload(f, &rs);
	assert_int_equal(rs.n, 2);
	assert_string_equal(rs.r[0].id, "id-a");
	assert_string_equal(rs.r[0].type, "vm.start");	/* not the duplicate's */
	assert_int_equal(rs.r[0].status, CMD_STATUS_SUCCEEDED);
	assert_string_equal(rs.r[0].result, "{\"first\":1}");
	assert_int_equal(rs.r[0].finished_at, 1005);
	assert_string_equal(rs.r[1].id, "id-b");
	rows_free(&rs);
}

/*
 * A transaction that fails is rolled back whole: every record of the batch
 * gets the error and none is on disk. A trigger added behind the journal's
 * back makes its update statement fail to compile.
 */
static void
test_failed_transaction(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	struct journal *j = jopen(f);
	struct journal_stats before, after;
	struct done first = { 0 }, d[2] = { { 0 } };
	sqlite3 *db;

	accept_now(f, j, "id-a", 1000);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TRIGGER boom BEFORE UPDATE "
	    "ON commands BEGIN INSERT INTO nowhere VALUES (1); END", NULL, NULL,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	journal_get_stats(j, &before);
	/* The first record flushes alone; the next two share a transaction. */
	journal_accept(j, "id-first", "vm.start", "vm-1", "{}",
	    JOURNAL_ORIGIN_LOCAL, 1001, on_done, &first);
	journal_accept(j, "id-b", "vm.start", "vm-1", "{}", JOURNAL_ORIGIN_LOCAL,
	    1002, on_done, &d[0]);
	journal_finish(j, "id-a", CMD_STATUS_SUCCEEDED, "{}", 1003, on_done,
	    &d[1]);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(first.status, 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].status, -EIO);
	}
	journal_get_stats(j, &after);
	assert_int_equal(after.commits - before.commits, 1);
	assert_int_equal(after.records - before.records, 1);
	assert_int_equal(journal_pending(j), 0);
	jclose(f, j);

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER boom", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	reload(f, &rs);
	assert_int_equal(rs.n, 2);
	assert_string_equal(rs.r[0].id, "id-a");
	assert_int_equal(rs.r[0].status, CMD_STATUS_ACCEPTED);
	assert_string_equal(rs.r[1].id, "id-first");	/* id-b rolled back */
	rows_free(&rs);
}

/* ---------------------------------------------------------------- v2 */

static void
accept_cp(struct fix *f, struct journal *j, const char *id, int64_t at)
{
	struct done d = { 0 };

	journal_accept(j, id, "vm.start", "vm-1", "{}", JOURNAL_ORIGIN_CP, at,
	    on_done, &d);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.status, 0);
}

static int
mark_now(struct fix *f, struct journal *j, const char *id)
{
	struct done d = { 0 };

	journal_mark_reported(j, id, on_done, &d);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(d.calls, 1);
	return d.status;
}

static const struct row *
find_row(const struct rows *rs, const char *id)
{
	for (size_t i = 0; i < rs->n; i++)
		if (strcmp(rs->r[i].id, id) == 0)
			return &rs->r[i];
	static const struct row none;

	fail_msg("no row %s", id);
	return &none;   /* not reached: fail_msg ends the test */
}

/* Where a command came from and whether its result was reported survive a
 * reopen; only a finished command can be marked. */
static void
test_origin_reported(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	struct journal *j = jopen(f);
	struct done d[3] = { { 0 } };

	accept_cp(f, j, "cp-done", 100);
	accept_cp(f, j, "cp-open", 200);
	accept_now(f, j, "local", 300);
	finish_now(f, j, "cp-done", CMD_STATUS_SUCCEEDED, "{}", 150);
	finish_now(f, j, "local", CMD_STATUS_SUCCEEDED, "{}", 350);
	assert_int_equal(mark_now(f, j, "cp-open"), -ENOENT);
	assert_int_equal(mark_now(f, j, "nobody"), -ENOENT);
	jclose(f, j);

	reload(f, &rs);
	assert_int_equal(rs.n, 3);
	assert_int_equal(find_row(&rs, "cp-done")->origin, JOURNAL_ORIGIN_CP);
	assert_false(find_row(&rs, "cp-done")->reported);
	assert_int_equal(find_row(&rs, "cp-open")->origin, JOURNAL_ORIGIN_CP);
	assert_false(find_row(&rs, "cp-open")->reported);
	assert_int_equal(find_row(&rs, "local")->origin, JOURNAL_ORIGIN_LOCAL);

	/* Marks are group-committed with other writes, and idempotent. */
	j = jopen(f);
	journal_mark_reported(j, "cp-done", on_done, &d[0]);
	journal_finish(j, "cp-open", CMD_STATUS_FAILED, "{}", 250, on_done,
	    &d[1]);
	journal_mark_reported(j, "cp-done", on_done, &d[2]);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 3; i++)
		assert_int_equal(d[i].status, 0);
	jclose(f, j);
	reload(f, &rs);
	assert_true(find_row(&rs, "cp-done")->reported);
	assert_false(find_row(&rs, "cp-open")->reported);
	assert_int_equal(find_row(&rs, "cp-open")->status, CMD_STATUS_FAILED);
	rows_free(&rs);
}

/* Retention never drops a result the control plane has not got. */
static void
test_retention_keeps_unreported(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	struct journal *j = jopen(f);

	accept_cp(f, j, "cp-unreported", 1000);
	finish_now(f, j, "cp-unreported", CMD_STATUS_SUCCEEDED, "{}", 1100);
	accept_cp(f, j, "cp-reported", 1000);
	finish_now(f, j, "cp-reported", CMD_STATUS_SUCCEEDED, "{}", 1100);
	assert_int_equal(mark_now(f, j, "cp-reported"), 0);
	accept_now(f, j, "local", 1000);
	finish_now(f, j, "local", CMD_STATUS_SUCCEEDED, "{}", 1100);

	jload(j, 100000, 1000, &rs);
	assert_int_equal(rs.n, 1);
	assert_string_equal(rs.r[0].id, "cp-unreported");
	assert_int_equal(mark_now(f, j, "cp-unreported"), 0);
	jload(j, 100000, 1000, &rs);
	assert_int_equal(rs.n, 0);
	jclose(f, j);
	rows_free(&rs);
}

/* What a version-1 carved wrote, exactly. */
static const char journal_v1_schema[] =
	"CREATE TABLE commands ("
	" id TEXT PRIMARY KEY,"
	" type TEXT NOT NULL,"
	" vm_id TEXT NOT NULL,"
	" command TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" result TEXT,"
	" accepted_at INTEGER NOT NULL,"
	" finished_at INTEGER);"
	"CREATE INDEX commands_finished_at ON commands(finished_at);"
	"INSERT INTO commands VALUES ('old-done', 'vm.create', 'vm-a', '{}',"
	" 'succeeded', '{\"ok\":1}', 10, 20);"
	"INSERT INTO commands VALUES ('old-open', 'vm.stop', 'vm-b', '{}',"
	" 'accepted', NULL, 30, NULL);"
	"PRAGMA user_version = 1;";

static int64_t
user_version(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return v;
}

/* A version-1 journal is migrated in place: its rows stay, all local, and
 * it takes control-plane commands afterwards. */
static void
test_migrate_v1(void **state)
{
	struct fix *f = *state;
	struct rows rs = { 0 };
	struct journal *j;

	make_sqlite(f->path, journal_v1_schema);
	j = jopen(f);
	assert_int_equal(user_version(f->path), 2);
	jload(j, 0, 0, &rs);
	assert_int_equal(rs.n, 2);
	assert_string_equal(rs.r[0].id, "old-done");
	assert_int_equal(rs.r[0].status, CMD_STATUS_SUCCEEDED);
	assert_string_equal(rs.r[0].result, "{\"ok\":1}");
	assert_int_equal(rs.r[0].origin, JOURNAL_ORIGIN_LOCAL);
	assert_false(rs.r[0].reported);
	assert_string_equal(rs.r[1].id, "old-open");
	assert_int_equal(rs.r[1].status, CMD_STATUS_ACCEPTED);
	assert_int_equal(rs.r[1].origin, JOURNAL_ORIGIN_LOCAL);
	/* The old unfinished command can still be finished. */
	finish_now(f, j, "old-open", CMD_STATUS_SUCCEEDED, "{}", 40);
	accept_cp(f, j, "new-cp", 50);
	jclose(f, j);

	/* Reopening a migrated journal changes nothing. */
	reload(f, &rs);
	assert_int_equal(user_version(f->path), 2);
	assert_int_equal(rs.n, 3);
	assert_int_equal(find_row(&rs, "old-open")->status,
	    CMD_STATUS_SUCCEEDED);
	assert_int_equal(find_row(&rs, "new-cp")->origin, JOURNAL_ORIGIN_CP);
	rows_free(&rs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_leaves_accepted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_flushes_pending,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_from_callback,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_caller_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failed_transaction, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_origin_reported, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_retention_keeps_unreported,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v1, setup,
		    teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
