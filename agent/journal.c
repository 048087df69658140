/*
 * The command journal: see journal.h.
 *
 * Writes are records queued on the loop thread. At most one flush runs at a
 * time, on the libuv pool: it takes every queued record and writes them in
 * one transaction, so whatever arrives while an fsync is in flight shares the
 * next one (group commit). Only the loop thread touches the queue, the flag
 * and the counters; only the flush touches the connection while it runs, and
 * uv_queue_work orders the two.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agent/journal.h"
#include "common/log.h"
#include "common/xalloc.h"

#define JOURNAL_COMP		"journal"
#define JOURNAL_SCHEMA_VERSION	2
/* Only another process (the sqlite3 shell) can hold the lock. */
#define JOURNAL_BUSY_MS		5000

/*
 * Version 2 added origin and reported (the control plane's commands and
 * whether it has their results). The columns come last so that a migrated
 * version-1 table and a new one are the same table.
 */
static const char journal_schema[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE commands ("
	" id TEXT PRIMARY KEY,"
	" type TEXT NOT NULL,"
	" vm_id TEXT NOT NULL,"
	" command TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" result TEXT,"
	" accepted_at INTEGER NOT NULL,"
	" finished_at INTEGER,"
	" origin TEXT NOT NULL DEFAULT 'local',"
	" reported INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX commands_finished_at ON commands(finished_at);"
	"CREATE INDEX commands_unreported ON commands(accepted_at)"
	" WHERE origin = 'cp' AND reported = 0;"
	"PRAGMA user_version = 2;"
	"COMMIT;";

/*
 * In place and in one transaction: a crash leaves version 1 or version 2,
 * never half of it. A version-1 carved had no control plane, so every
 * existing row is 'local'.
 */
static const char journal_migrate_v1[] =
	"BEGIN IMMEDIATE;"
	"ALTER TABLE commands ADD COLUMN origin TEXT NOT NULL DEFAULT 'local';"
	"ALTER TABLE commands ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX commands_unreported ON commands(accepted_at)"
	" WHERE origin = 'cp' AND reported = 0;"
	"PRAGMA user_version = 2;"
	"COMMIT;";

static const char journal_sql_insert[] =
	"INSERT INTO commands (id, type, vm_id, command, status, accepted_at,"
	" origin) VALUES (?1, ?2, ?3, ?4, 'accepted', ?5, ?6)";
/* A result, once recorded, is the answer to every retry: never overwrite it. */
static const char journal_sql_update[] =
	"UPDATE commands SET status = ?2, result = ?3, finished_at = ?4"
	" WHERE id = ?1 AND finished_at IS NULL";
static const char journal_sql_reported[] =
	"UPDATE commands SET reported = 1 WHERE id = ?1 AND finished_at IS NOT NULL";
/* A result the control plane has not got yet is kept however old it is:
 * after a long outage it is still owed. */
static const char journal_sql_prune[] =
	"DELETE FROM commands WHERE finished_at IS NOT NULL AND finished_at < ?1"
	" AND (origin <> 'cp' OR reported <> 0)";
static const char journal_sql_select[] =
	"SELECT id, type, vm_id, command, status, result, accepted_at,"
	" finished_at, origin, reported FROM commands ORDER BY accepted_at, rowid";

/*
 * The stored spelling of a status, the same words as command_status_name().
 * Kept here because the column is an on-disk format that must outlive a
 * change of the wire names.
 */
static const char *const journal_status_names[] = {
	[CMD_STATUS_ACCEPTED] = "accepted",
	[CMD_STATUS_SUCCEEDED] = "succeeded",
	[CMD_STATUS_FAILED] = "failed",
};
#define JOURNAL_NSTATUS \
	(sizeof(journal_status_names) / sizeof(journal_status_names[0]))

/* The stored spelling of an origin (on-disk format, like the statuses). */
static const char *const journal_origin_names[] = {
	[JOURNAL_ORIGIN_LOCAL] = "local",
	[JOURNAL_ORIGIN_CP] = "cp",
};
#define JOURNAL_NORIGIN \
	(sizeof(journal_origin_names) / sizeof(journal_origin_names[0]))

/* How SQLite's primary result codes reach callbacks (errno) and err. */
static const struct {
	int		 sqlite;
	int		 errnum;
	enum carve_errcode code;
} journal_errmap[] = {
	{ SQLITE_BUSY,		EBUSY,	CARVE_EUNAVAIL },
	{ SQLITE_LOCKED,	EBUSY,	CARVE_EUNAVAIL },
	{ SQLITE_FULL,		ENOSPC,	CARVE_EINTERNAL },
	{ SQLITE_NOMEM,		ENOMEM,	CARVE_EINTERNAL },
	{ SQLITE_PERM,		EACCES,	CARVE_EPERM },
	{ SQLITE_READONLY,	EROFS,	CARVE_EPERM },
	{ SQLITE_AUTH,		EACCES,	CARVE_EPERM },
};

enum jrec_kind {
	JREC_ACCEPT,
	JREC_FINISH,
	JREC_REPORTED,
};

/* One submitted write; owns its strings. */
struct jrec {
	struct jrec	*jr_next;
	enum jrec_kind	 jr_kind;
	char		*jr_id;
	char		*jr_type;	/* accept */
	char		*jr_vm_id;	/* accept */
	char		*jr_command;	/* accept */
	enum journal_origin jr_origin;	/* accept */
	enum command_status jr_status;	/* finish */
	char		*jr_result;	/* finish, may be NULL */
	int64_t		 jr_at_ms;
	/* Set before the flush (refused) or by it (this record alone failed). */
	int		 jr_error;
	journal_done_cb	 jr_cb;
	void		*jr_arg;
};

/* What one flush writes; owned by the flush until its after-work callback. */
struct jbatch {
	uv_work_t	 jb_work;
	struct journal	*jb_journal;
	struct jrec	*jb_head;
	unsigned	 jb_count;
	bool		 jb_final;	/* close the database after writing */
	bool		 jb_committed;
	int		 jb_status;	/* 0 or -errno for the whole transaction */
};

struct journal {
	uv_loop_t	*j_loop;
	char		*j_path;
	sqlite3		*j_db;
	sqlite3_stmt	*j_insert;
	sqlite3_stmt	*j_update;
	sqlite3_stmt	*j_reported;

	/* Loop thread only. */
	struct jrec	*j_head;	/* queued, not yet in a flush */
	struct jrec    **j_tail;
	unsigned	 j_pending;	/* queued + in the running flush */
	bool		 j_flushing;
	bool		 j_closing;
	void		(*j_close_cb)(void *);
	void		*j_close_arg;
	struct journal_stats j_stats;
};

static int
journal_errno(int rc)
{
	for (size_t i = 0; i < sizeof(journal_errmap) / sizeof(journal_errmap[0]); i++)
		if (journal_errmap[i].sqlite == (rc & 0xff))
			return -journal_errmap[i].errnum;
	return -EIO;
}

static enum carve_errcode
journal_errcode(int rc)
{
	for (size_t i = 0; i < sizeof(journal_errmap) / sizeof(journal_errmap[0]); i++)
		if (journal_errmap[i].sqlite == (rc & 0xff))
			return journal_errmap[i].code;
	return CARVE_EINTERNAL;
}

/* Fill err from the connection's last error. */
static int
journal_sqlerr(struct journal *j, const char *what, struct carve_error *err)
{
	return error_set(err, journal_errcode(sqlite3_extended_errcode(j->j_db)),
	    "journal %s: %s: %s", j->j_path, what, sqlite3_errmsg(j->j_db));
}

static const char *
journal_status_name(enum command_status st)
{
	if ((unsigned)st >= JOURNAL_NSTATUS)
		return NULL;
	return journal_status_names[st];
}

static int
journal_status_parse(const char *name, enum command_status *out)
{
	for (size_t i = 0; i < JOURNAL_NSTATUS; i++) {
		if (name != NULL && strcmp(name, journal_status_names[i]) == 0) {
			*out = (enum command_status)i;
			return 0;
		}
	}
	return -1;
}

static const char *
journal_origin_name(enum journal_origin o)
{
	if ((unsigned)o >= JOURNAL_NORIGIN)
		return NULL;
	return journal_origin_names[o];
}

static int
journal_origin_parse(const char *name, enum journal_origin *out)
{
	for (size_t i = 0; i < JOURNAL_NORIGIN; i++) {
		if (name != NULL && strcmp(name, journal_origin_names[i]) == 0) {
			*out = (enum journal_origin)i;
			return 0;
		}
	}
	return -1;
}

static char *
journal_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/*
 * Make sure the file exists with mode 0600 before SQLite opens it (SQLite
 * would create it with the umask), and refuse one that someone else could
 * have written to: the journal decides which commands never run again.
 */
static int
journal_prepare_file(const char *path, struct carve_error *err)
{
	struct stat st;
	bool created = true;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1 && errno == EEXIST) {
		created = false;
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd == -1) {
		if (errno == ELOOP)
			return error_set(err, CARVE_EPERM,
			    "journal %s: is a symbolic link", path);
		return error_set(err, errno == EACCES || errno == EPERM ?
		    CARVE_EPERM : CARVE_EINTERNAL, "journal %s: %s", path,
		    strerror(errno));
	}
	if (created) {
		char *dir = xstrdup(path);
		int dfd;

		/* Exactly 0600 whatever the umask; the entry survives a crash. */
		if (fchmod(fd, 0600) == -1 || fsync(fd) == -1) {
			error_set(err, CARVE_EINTERNAL, "journal %s: %s", path,
			    strerror(errno));
			free(dir);
			close(fd);
			return -1;
		}
		dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd != -1) {
			(void)fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
	if (fstat(fd, &st) == -1) {
		error_set(err, CARVE_EINTERNAL, "journal %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (!S_ISREG(st.st_mode))
		return error_set(err, CARVE_EINVAL,
		    "journal %s: not a regular file", path);
	if (st.st_uid != geteuid())
		return error_set(err, CARVE_EPERM,
		    "journal %s: owned by uid %u, not by this process (uid %u)",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return error_set(err, CARVE_EPERM,
		    "journal %s: writable by group or others (mode %04o); "
		    "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* Run a statement that returns one integer. */
static int
journal_sql_int(struct journal *j, const char *sql, int64_t *out,
    struct carve_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(j->j_db, sql, -1, &st, NULL) != SQLITE_OK)
		return journal_sqlerr(j, sql, err);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		journal_sqlerr(j, sql, err);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
journal_set_wal(struct journal *j, struct carve_error *err)
{
	static const char sql[] = "PRAGMA journal_mode = WAL";
	sqlite3_stmt *st;
	const char *mode;
	int rc, ret = -1;

	if (sqlite3_prepare_v2(j->j_db, sql, -1, &st, NULL) != SQLITE_OK)
		return journal_sqlerr(j, sql, err);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		journal_sqlerr(j, sql, err);
		goto cleanup;
	}
	/* SQLite answers with the mode it kept, e.g. on a file system without
	 * shared memory. */
	mode = (const char *)sqlite3_column_text(st, 0);
	if (mode == NULL || strcasecmp(mode, "wal") != 0) {
		error_set(err, CARVE_EINTERNAL,
		    "journal %s: cannot use WAL mode here (got %s)", j->j_path,
		    mode != NULL ? mode : "nothing");
		goto cleanup;
	}
	ret = 0;
cleanup:
	sqlite3_finalize(st);
	return ret;
}

static int
journal_setup(struct journal *j, struct carve_error *err)
{
	int64_t version, nobjects = 0;

	/*
	 * Look before changing anything: switching to WAL rewrites the header,
	 * and a file that is not ours must be left as it was. This is the
	 * first read of the file: garbage shows up here.
	 */
	if (journal_sql_int(j, "PRAGMA user_version", &version, err) == -1)
		return -1;
	if (version == 0 && journal_sql_int(j,
	    "SELECT count(*) FROM sqlite_master", &nobjects, err) == -1)
		return -1;
	if (version == 0 && nobjects != 0)
		return error_set(err, CARVE_EINVAL, "journal %s: an SQLite "
		    "database, but not a carve journal (no schema version)",
		    j->j_path);
	if (version > JOURNAL_SCHEMA_VERSION)
		return error_set(err, CARVE_EINVAL,
		    "journal %s: schema version %lld, this carved knows %d",
		    j->j_path, (long long)version, JOURNAL_SCHEMA_VERSION);

	if (journal_set_wal(j, err) == -1)
		return -1;
	if (sqlite3_exec(j->j_db, "PRAGMA synchronous = FULL", NULL, NULL,
	    NULL) != SQLITE_OK)
		return journal_sqlerr(j, "PRAGMA synchronous", err);
	if (version == 0 && sqlite3_exec(j->j_db, journal_schema, NULL, NULL,
	    NULL) != SQLITE_OK) {
		journal_sqlerr(j, "creating the schema", err);
		if (!sqlite3_get_autocommit(j->j_db))
			sqlite3_exec(j->j_db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (version == 1) {
		if (sqlite3_exec(j->j_db, journal_migrate_v1, NULL, NULL,
		    NULL) != SQLITE_OK) {
			journal_sqlerr(j, "migrating from schema version 1", err);
			if (!sqlite3_get_autocommit(j->j_db))
				sqlite3_exec(j->j_db, "ROLLBACK", NULL, NULL,
				    NULL);
			return -1;
		}
		log_info(JOURNAL_COMP, "journal %s migrated from schema version "
		    "1 to 2", j->j_path);
	}
	if (sqlite3_prepare_v3(j->j_db, journal_sql_insert, -1,
	    SQLITE_PREPARE_PERSISTENT, &j->j_insert, NULL) != SQLITE_OK)
		return journal_sqlerr(j, "preparing the insert", err);
	if (sqlite3_prepare_v3(j->j_db, journal_sql_update, -1,
	    SQLITE_PREPARE_PERSISTENT, &j->j_update, NULL) != SQLITE_OK)
		return journal_sqlerr(j, "preparing the update", err);
	if (sqlite3_prepare_v3(j->j_db, journal_sql_reported, -1,
	    SQLITE_PREPARE_PERSISTENT, &j->j_reported, NULL) != SQLITE_OK)
		return journal_sqlerr(j, "preparing the reported update", err);
	return 0;
}

/* Any thread, while no flush runs (or from the last one). */
static void
journal_db_close(struct journal *j)
{
	int rc;

	if (j->j_db == NULL)
		return;
	sqlite3_finalize(j->j_insert);
	sqlite3_finalize(j->j_update);
	sqlite3_finalize(j->j_reported);
	j->j_insert = j->j_update = j->j_reported = NULL;
	/* The last connection checkpoints the WAL into the file here. */
	rc = sqlite3_close(j->j_db);
	if (rc != SQLITE_OK)
		log_kv(LOG_LVL_ERROR, JOURNAL_COMP, "close failed", "path",
		    j->j_path, "error", sqlite3_errstr(rc), NULL);
	j->j_db = NULL;
}

static void
journal_free(struct journal *j)
{
	journal_db_close(j);
	free(j->j_path);
	free(j);
}

int
journal_open(uv_loop_t *loop, const char *path, struct journal **out,
    struct carve_error *err)
{
	struct journal *j;
	int rc;

	*out = NULL;
	if (journal_prepare_file(path, err) == -1)
		return -1;
	j = xcalloc(1, sizeof(*j));
	j->j_loop = loop;
	j->j_path = xstrdup(path);
	j->j_tail = &j->j_head;
	rc = sqlite3_open_v2(path, &j->j_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
	    NULL);
	if (rc != SQLITE_OK) {
		if (j->j_db != NULL)
			journal_sqlerr(j, "open", err);
		else
			error_set(err, CARVE_EINTERNAL, "journal %s: open: %s",
			    path, sqlite3_errstr(rc));
		journal_free(j);
		return -1;
	}
	sqlite3_extended_result_codes(j->j_db, 1);
	sqlite3_busy_timeout(j->j_db, JOURNAL_BUSY_MS);
	if (journal_setup(j, err) == -1) {
		journal_free(j);
		return -1;
	}
	*out = j;
	return 0;
}

int
journal_load(struct journal *j, int64_t now_ms, int64_t retain_ms,
    journal_entry_cb cb, void *arg, struct carve_error *err)
{
	struct journal_entry e;
	sqlite3_stmt *st = NULL;
	const char *status, *origin;
	int64_t cutoff;
	int rc, ret = -1;

	if (j->j_flushing || j->j_head != NULL)
		return error_set(err, CARVE_EINTERNAL,
		    "journal %s: load while writes are in flight", j->j_path);
	if (retain_ms > 0) {
		if (__builtin_sub_overflow(now_ms, retain_ms, &cutoff))
			cutoff = INT64_MIN;
		if (sqlite3_prepare_v2(j->j_db, journal_sql_prune, -1, &st,
		    NULL) != SQLITE_OK)
			return journal_sqlerr(j, "preparing the prune", err);
		sqlite3_bind_int64(st, 1, cutoff);
		if (sqlite3_step(st) != SQLITE_DONE) {
			journal_sqlerr(j, "pruning old entries", err);
			goto cleanup;
		}
		if (sqlite3_changes(j->j_db) > 0)
			log_info(JOURNAL_COMP, "pruned %d entries finished "
			    "before %lld", sqlite3_changes(j->j_db),
			    (long long)cutoff);
		sqlite3_finalize(st);
		st = NULL;
	}

	if (sqlite3_prepare_v2(j->j_db, journal_sql_select, -1, &st,
	    NULL) != SQLITE_OK)
		return journal_sqlerr(j, "preparing the load", err);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&e, 0, sizeof(e));
		e.je_id = (const char *)sqlite3_column_text(st, 0);
		e.je_type = (const char *)sqlite3_column_text(st, 1);
		e.je_vm_id = (const char *)sqlite3_column_text(st, 2);
		e.je_command_json = (const char *)sqlite3_column_text(st, 3);
		status = (const char *)sqlite3_column_text(st, 4);
		e.je_result_json = (const char *)sqlite3_column_text(st, 5);
		e.je_accepted_at_ms = sqlite3_column_int64(st, 6);
		e.je_finished_at_ms = sqlite3_column_int64(st, 7);
		origin = (const char *)sqlite3_column_text(st, 8);
		e.je_reported = sqlite3_column_int64(st, 9) != 0;
		if (journal_origin_parse(origin, &e.je_origin) == -1) {
			error_set(err, CARVE_EINTERNAL,
			    "journal %s: command %s has unknown origin \"%s\"",
			    j->j_path, e.je_id != NULL ? e.je_id : "(null)",
			    origin != NULL ? origin : "(null)");
			goto cleanup;
		}
		if (journal_status_parse(status, &e.je_status) == -1) {
			error_set(err, CARVE_EINTERNAL,
			    "journal %s: command %s has unknown status \"%s\"",
			    j->j_path, e.je_id != NULL ? e.je_id : "(null)",
			    status != NULL ? status : "(null)");
			goto cleanup;
		}
		cb(&e, arg);
	}
	if (rc != SQLITE_DONE) {
		journal_sqlerr(j, "loading", err);
		goto cleanup;
	}
	ret = 0;
cleanup:
	sqlite3_finalize(st);
	return ret;
}

/*
 * Pool thread. Write one record inside the open transaction. Returns
 * SQLITE_OK when the transaction can go on, even if this record alone was
 * refused (a caller bug: jr_error says why); any other result fails the
 * whole batch.
 */
static int
journal_write_one(struct journal *j, struct jrec *r)
{
	sqlite3_stmt *st;
	int rc;

	if (r->jr_kind == JREC_ACCEPT) {
		st = j->j_insert;
		sqlite3_bind_text(st, 1, r->jr_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, r->jr_type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->jr_vm_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, r->jr_command, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, r->jr_at_ms);
		sqlite3_bind_text(st, 6, journal_origin_name(r->jr_origin), -1,
		    SQLITE_STATIC);
	} else if (r->jr_kind == JREC_REPORTED) {
		st = j->j_reported;
		sqlite3_bind_text(st, 1, r->jr_id, -1, SQLITE_STATIC);
	} else {
		st = j->j_update;
		sqlite3_bind_text(st, 1, r->jr_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, journal_status_name(r->jr_status), -1,
		    SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->jr_result, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, r->jr_at_ms);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
		if (r->jr_kind == JREC_FINISH && sqlite3_changes(j->j_db) == 0) {
			r->jr_error = -ENOENT;
			log_kv(LOG_LVL_ERROR, JOURNAL_COMP,
			    "finish for a command not accepted or already "
			    "finished", "id", r->jr_id, NULL);
		} else if (r->jr_kind == JREC_REPORTED &&
		    sqlite3_changes(j->j_db) == 0) {
			/* Results never journaled (rejections) are reported
			 * too; the caller decides whether that matters. */
			r->jr_error = -ENOENT;
		}
	} else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		/* SQLite undid this statement only; the rest of the batch stays. */
		r->jr_error = rc == SQLITE_CONSTRAINT_PRIMARYKEY ? -EEXIST :
		    -EINVAL;
		log_kv(LOG_LVL_ERROR, JOURNAL_COMP, "record refused", "id",
		    r->jr_id, "error", sqlite3_errmsg(j->j_db), NULL);
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* Pool thread: log why the transaction failed, then undo it. */
static int
journal_write_failed(struct journal *j, struct jbatch *b, const char *step)
{
	int rc = sqlite3_extended_errcode(j->j_db);
	char n[16];

	snprintf(n, sizeof(n), "%u", b->jb_count);
	log_kv(LOG_LVL_ERROR, JOURNAL_COMP, "write failed, nothing recorded",
	    "path", j->j_path, "step", step, "records", n, "error",
	    sqlite3_errmsg(j->j_db), NULL);
	if (!sqlite3_get_autocommit(j->j_db))
		sqlite3_exec(j->j_db, "ROLLBACK", NULL, NULL, NULL);
	return journal_errno(rc);
}

/* Pool thread. */
static int
journal_write(struct journal *j, struct jbatch *b)
{
	if (sqlite3_exec(j->j_db, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL) != SQLITE_OK)
		return journal_write_failed(j, b, "begin");
	for (struct jrec *r = b->jb_head; r != NULL; r = r->jr_next) {
		if (r->jr_error != 0)
			continue;
		if (journal_write_one(j, r) != SQLITE_OK)
			return journal_write_failed(j, b, r->jr_kind ==
			    JREC_ACCEPT ? "insert" : "update");
	}
	if (sqlite3_exec(j->j_db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return journal_write_failed(j, b, "commit");
	b->jb_committed = true;
	return 0;
}

static void
journal_work(uv_work_t *req)
{
	struct jbatch *b = req->data;

	if (b->jb_head != NULL)
		b->jb_status = journal_write(b->jb_journal, b);
	if (b->jb_final)
		journal_db_close(b->jb_journal);
}

static void
journal_rec_free(struct jrec *r)
{
	free(r->jr_id);
	free(r->jr_type);
	free(r->jr_vm_id);
	free(r->jr_command);
	free(r->jr_result);
	free(r);
}

/* Loop thread: answer and free a list of records. */
static void
journal_complete(struct journal *j, struct jrec *list, int status)
{
	struct jrec *r, *next;
	int st;

	for (r = list; r != NULL; r = next) {
		next = r->jr_next;
		st = r->jr_error != 0 ? r->jr_error : status;
		if (st == 0)
			j->j_stats.records++;
		j->j_pending--;
		if (r->jr_cb != NULL)
			r->jr_cb(j, st, r->jr_arg);
		journal_rec_free(r);
	}
}

/* Loop thread: the database is closed; answer the stragglers and free j. */
static void
journal_closed(struct journal *j)
{
	void (*cb)(void *) = j->j_close_cb;
	void *arg = j->j_close_arg;
	struct jrec *list;

	/* Submitted by callbacks after the last flush began (a caller bug):
	 * refuse them, so their commands never run unrecorded. */
	while ((list = j->j_head) != NULL) {
		j->j_head = NULL;
		j->j_tail = &j->j_head;
		journal_complete(j, list, -ECANCELED);
	}
	journal_free(j);
	if (cb != NULL)
		cb(arg);
}

static void journal_kick(struct journal *j);

static void
journal_work_done(uv_work_t *req, int status)
{
	struct jbatch *b = req->data;
	struct journal *j = b->jb_journal;
	bool final = b->jb_final;

	if (status == 0)
		status = b->jb_status;
	if (b->jb_committed)
		j->j_stats.commits++;
	/* Still flushing while the callbacks run: what they submit queues up
	 * and goes out together in the next flush. */
	journal_complete(j, b->jb_head, status);
	free(b);
	j->j_flushing = false;
	if (final)
		journal_closed(j);
	else
		journal_kick(j);
}

/* Loop thread: start a flush of everything queued, unless one runs. */
static void
journal_kick(struct journal *j)
{
	struct jbatch *b;

	if (j->j_flushing || (j->j_head == NULL && !j->j_closing))
		return;
	b = xcalloc(1, sizeof(*b));
	b->jb_journal = j;
	b->jb_head = j->j_head;
	for (struct jrec *r = b->jb_head; r != NULL; r = r->jr_next)
		b->jb_count++;
	b->jb_final = j->j_closing;
	b->jb_work.data = b;
	j->j_head = NULL;
	j->j_tail = &j->j_head;
	j->j_flushing = true;
	/* Fails only without a work callback. */
	if (uv_queue_work(j->j_loop, &b->jb_work, journal_work,
	    journal_work_done) != 0)
		abort();
}

static void
journal_submit(struct journal *j, struct jrec *r)
{
	*j->j_tail = r;
	j->j_tail = &r->jr_next;
	j->j_pending++;
	journal_kick(j);
}

void
journal_accept(struct journal *j, const char *id, const char *type,
    const char *vm_id, const char *command_json, enum journal_origin origin,
    int64_t accepted_at_ms, journal_done_cb cb, void *arg)
{
	struct jrec *r = xcalloc(1, sizeof(*r));

	r->jr_kind = JREC_ACCEPT;
	r->jr_origin = origin;
	/* NULLs are kept: the NOT NULL constraints refuse the record. */
	r->jr_id = journal_strdup(id);
	r->jr_type = journal_strdup(type);
	r->jr_vm_id = journal_strdup(vm_id);
	r->jr_command = journal_strdup(command_json);
	r->jr_at_ms = accepted_at_ms;
	r->jr_cb = cb;
	r->jr_arg = arg;
	if (journal_origin_name(origin) == NULL) {
		r->jr_error = -EINVAL;
		log_kv(LOG_LVL_ERROR, JOURNAL_COMP, "accept with a bad origin",
		    "id", id != NULL ? id : "(null)", NULL);
	}
	journal_submit(j, r);
}

void
journal_finish(struct journal *j, const char *id, enum command_status st,
    const char *result_json, int64_t finished_at_ms, journal_done_cb cb,
    void *arg)
{
	struct jrec *r = xcalloc(1, sizeof(*r));

	r->jr_kind = JREC_FINISH;
	r->jr_id = journal_strdup(id);
	r->jr_status = st;
	r->jr_result = journal_strdup(result_json);
	r->jr_at_ms = finished_at_ms;
	r->jr_cb = cb;
	r->jr_arg = arg;
	if (id == NULL || (st != CMD_STATUS_SUCCEEDED && st != CMD_STATUS_FAILED)) {
		/* Answered in order with its batch, never from inside this call. */
		r->jr_error = -EINVAL;
		log_kv(LOG_LVL_ERROR, JOURNAL_COMP,
		    "finish without an id or a final status", "id",
		    id != NULL ? id : "(null)", NULL);
	}
	journal_submit(j, r);
}

void
journal_mark_reported(struct journal *j, const char *id, journal_done_cb cb,
    void *arg)
{
	struct jrec *r = xcalloc(1, sizeof(*r));

	r->jr_kind = JREC_REPORTED;
	r->jr_id = journal_strdup(id);
	r->jr_cb = cb;
	r->jr_arg = arg;
	if (id == NULL)
		r->jr_error = -EINVAL;
	journal_submit(j, r);
}

unsigned
journal_pending(const struct journal *j)
{
	return j->j_pending;
}

void
journal_get_stats(const struct journal *j, struct journal_stats *out)
{
	*out = j->j_stats;
}

void
journal_close(struct journal *j, void (*cb)(void *arg), void *arg)
{
	if (j->j_closing) {
		log_error(JOURNAL_COMP, "journal %s closed twice", j->j_path);
		return;
	}
	j->j_closing = true;
	j->j_close_cb = cb;
	j->j_close_arg = arg;
	/* Starts the last flush now, or the running one's completion will. */
	journal_kick(j);
}
