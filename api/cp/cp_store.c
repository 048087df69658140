/*
 * carve-cp's SQLite store: see cp_store.h.
 *
 * The control plane is one thread on one event loop, so the store is a
 * plain synchronous connection: a write costs one fsync (synchronous=FULL
 * in WAL mode), a few milliseconds, and the loop is that much late. For a
 * reference control plane in front of hundreds of nodes that is the right
 * trade for code a reader can check at a glance.
 *
 * The spelling of statuses and desired states in the columns is this file's
 * own (store_cmd_status, store_desired): an on-disk format must not change
 * when a wire name does.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "api/command.h"
#include "api/cp/cp_store.h"
#include "api/vm.h"
#include "common/jsonx.h"
#include "common/xalloc.h"

#define STORE_SCHEMA_VERSION	2
#define STORE_BUSY_MS		5000

static const char store_schema[] =
	"CREATE TABLE nodes ("
	" name TEXT PRIMARY KEY,"
	" registered_at INTEGER NOT NULL,"
	" last_heartbeat INTEGER,"
	" agent_version TEXT NOT NULL,"
	" schedulable INTEGER NOT NULL,"
	" host TEXT NOT NULL,"
	" capacity TEXT NOT NULL,"
	" capacity_at INTEGER NOT NULL,"
	/* The last heartbeat seq applied; NULL: the next must be full. */
	" hb_seq INTEGER);"
	"CREATE TABLE vms ("
	" id TEXT PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" node TEXT NOT NULL,"
	" vcpus INTEGER NOT NULL,"
	" memory_mib INTEGER NOT NULL,"
	" disk_gib INTEGER NOT NULL,"
	" spec TEXT NOT NULL,"
	" desired_state TEXT NOT NULL,"
	" state TEXT,"
	" last_command_id TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" deleted_at INTEGER);"
	"CREATE UNIQUE INDEX vms_live_name ON vms(name) WHERE deleted_at IS NULL;"
	"CREATE INDEX vms_node ON vms(node);"
	"CREATE TABLE commands ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" id TEXT NOT NULL UNIQUE,"
	" node TEXT NOT NULL,"
	" vm_id TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" command TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" result TEXT,"
	" progress TEXT,"
	" created_at INTEGER NOT NULL,"
	" delivered_at INTEGER,"
	" finished_at INTEGER);"
	"CREATE INDEX commands_open ON commands(node, seq)"
	" WHERE finished_at IS NULL;"
	"CREATE INDEX commands_vm ON commands(vm_id);"
	/* What each node last said it runs (managed here or not). */
	"CREATE TABLE node_vms ("
	" node TEXT NOT NULL,"
	" vm_id TEXT NOT NULL,"
	" state TEXT NOT NULL,"
	" info TEXT NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" PRIMARY KEY (node, vm_id));"
	"PRAGMA user_version = 1;";

/*
 * Version 2: live migrations and node evacuations. A fresh database gets
 * version 1 and then this, so both paths run the same statements.
 */
static const char store_schema_v2[] =
	"CREATE TABLE migrations ("
	" id TEXT PRIMARY KEY,"
	" vm_id TEXT NOT NULL,"
	" source TEXT NOT NULL,"
	" target TEXT NOT NULL,"
	" state TEXT NOT NULL,"
	" evacuation INTEGER NOT NULL,"
	" max_downtime_ms INTEGER,"
	" bandwidth_mibps INTEGER,"
	" timeout_s INTEGER,"
	" prepare_command_id TEXT NOT NULL,"
	" migrate_command_id TEXT,"
	" finish_command_id TEXT,"
	" cancel_command_id TEXT,"
	" prepare_result TEXT,"
	" migrate_result TEXT,"
	" error TEXT,"
	" migrated INTEGER NOT NULL,"
	" cancel_requested INTEGER NOT NULL,"
	" finish_tries INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" finished_at INTEGER);"
	/* One migration at a time per VM, enforced where it is stored. */
	"CREATE UNIQUE INDEX migrations_active_vm ON migrations(vm_id)"
	" WHERE finished_at IS NULL;"
	"CREATE INDEX migrations_source ON migrations(source, created_at);"
	"ALTER TABLE nodes ADD COLUMN evac_reason TEXT;"
	"ALTER TABLE nodes ADD COLUMN evac_started_at INTEGER;"
	"ALTER TABLE nodes ADD COLUMN evac_finished_at INTEGER;"
	/* Why a running evacuation waits (no target has room, ...). */
	"ALTER TABLE nodes ADD COLUMN evac_note TEXT;"
	"PRAGMA user_version = 2;";

static const char *const store_cmd_status[PROTO_CMD_STATUS_MAX] = {
	[PROTO_CMD_PENDING] = "pending",
	[PROTO_CMD_DELIVERED] = "delivered",
	[PROTO_CMD_SUCCEEDED] = "succeeded",
	[PROTO_CMD_FAILED] = "failed",
};

static const char *const store_desired[PROTO_DESIRED_MAX] = {
	[PROTO_DESIRED_RUNNING] = "running",
	[PROTO_DESIRED_STOPPED] = "stopped",
	[PROTO_DESIRED_DELETED] = "deleted",
};

static const char *const store_mig_state[CP_MIG_NSTATES] = {
	[CP_MIG_PREPARING] = "preparing",
	[CP_MIG_MIGRATING] = "migrating",
	[CP_MIG_FINISHING] = "finishing",
	[CP_MIG_DONE] = "done",
	[CP_MIG_FAILED] = "failed",
};

static const char *const store_evac_reason[CP_EVAC_NREASONS] = {
	[CP_EVAC_NONE] = "none",
	[CP_EVAC_DRAIN] = "drain",
	[CP_EVAC_ADMIN] = "admin",
};

struct cp_store {
	sqlite3	*st_db;
	char	*st_path;
};

/* ------------------------------------------------------------ helpers */

static int
store_sqlerr(struct cp_store *st, const char *what, struct carve_error *err)
{
	int rc = sqlite3_extended_errcode(st->st_db);
	enum carve_errcode code = CARVE_EINTERNAL;

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		code = CARVE_EUNAVAIL;
	return error_set(err, code, "database %s: %s: %s", st->st_path, what,
	    sqlite3_errmsg(st->st_db));
}

static int
store_exec(struct cp_store *st, const char *sql, struct carve_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(st->st_db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		error_set(err, CARVE_EINTERNAL, "database %s: %s", st->st_path,
		    msg != NULL ? msg : sqlite3_errmsg(st->st_db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *
store_prepare(struct cp_store *st, const char *sql, struct carve_error *err)
{
	sqlite3_stmt *stmt = NULL;

	if (sqlite3_prepare_v2(st->st_db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		store_sqlerr(st, "prepare", err);
		return NULL;
	}
	return stmt;
}

static void
store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Step a statement that returns no row, then finalize it. */
static int
store_run(struct cp_store *st, sqlite3_stmt *s, const char *what,
    struct carve_error *err)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_sqlerr(st, what, err);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

static void
store_col_copy(sqlite3_stmt *s, int i, char *out, size_t size)
{
	const unsigned char *v = sqlite3_column_text(s, i);

	snprintf(out, size, "%s", v != NULL ? (const char *)v : "");
}

static char *
store_col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *v = sqlite3_column_text(s, i);

	return v != NULL ? xstrdup((const char *)v) : NULL;
}

static int
store_name_index(const char *const *names, size_t n, const char *v)
{
	for (size_t i = 0; i < n; i++)
		if (v != NULL && strcmp(names[i], v) == 0)
			return (int)i;
	return -1;
}

static int
store_tx_begin(struct cp_store *st, struct carve_error *err)
{
	return store_exec(st, "SAVEPOINT cp", err);
}

static int
store_tx_end(struct cp_store *st, int rc, struct carve_error *err)
{
	if (rc == 0)
		return store_exec(st, "RELEASE cp", err);
	(void)sqlite3_exec(st->st_db, "ROLLBACK TO cp; RELEASE cp", NULL, NULL,
	    NULL);
	return -1;
}

int
cp_store_begin(struct cp_store *st, struct carve_error *err)
{
	return store_tx_begin(st, err);
}

int
cp_store_commit(struct cp_store *st, struct carve_error *err)
{
	return store_exec(st, "RELEASE cp", err);
}

void
cp_store_rollback(struct cp_store *st)
{
	(void)sqlite3_exec(st->st_db, "ROLLBACK TO cp; RELEASE cp", NULL, NULL,
	    NULL);
}

json_object *
cp_store_json(const char *text, struct carve_error *err)
{
	struct carve_error perr = { 0 };
	json_object *o;

	if (text == NULL) {
		error_set(err, CARVE_EINTERNAL, "stored JSON is missing");
		return NULL;
	}
	if ((o = jsonx_parse(text, strlen(text), &perr)) == NULL)
		error_set(err, CARVE_EINTERNAL, "stored JSON is corrupt: %s",
		    perr.message);
	return o;
}

/* ------------------------------------------------------------ open */

/* The file exists 0600 before SQLite opens it (it would use the umask). */
static int
store_prepare_file(const char *path, struct carve_error *err)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return error_set(err, CARVE_EINTERNAL, "database %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) < 0) {
		close(fd);
		return error_set(err, CARVE_EINTERNAL, "database %s: %s", path,
		    strerror(errno));
	}
	close(fd);
	if (!S_ISREG(st.st_mode))
		return error_set(err, CARVE_EINVAL, "database %s: not a regular "
		    "file", path);
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return error_set(err, CARVE_EPERM, "database %s: writable by "
		    "group or others (mode %04o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
	return 0;
}

static int
store_user_version(struct cp_store *st, int64_t *out, struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "PRAGMA user_version", err);

	if (s == NULL)
		return -1;
	if (sqlite3_step(s) != SQLITE_ROW) {
		store_sqlerr(st, "user_version", err);
		sqlite3_finalize(s);
		return -1;
	}
	*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return 0;
}

struct cp_store *
cp_store_open(const char *path, struct carve_error *err)
{
	struct cp_store *st = xcalloc(1, sizeof(*st));
	int64_t version;

	st->st_path = xstrdup(path);
	if (store_prepare_file(path, err) < 0)
		goto fail;
	if (sqlite3_open_v2(path, &st->st_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		store_sqlerr(st, "open", err);
		goto fail;
	}
	sqlite3_extended_result_codes(st->st_db, 1);
	sqlite3_busy_timeout(st->st_db, STORE_BUSY_MS);
	if (store_exec(st, "PRAGMA journal_mode = WAL;"
	    "PRAGMA synchronous = FULL;"
	    "PRAGMA foreign_keys = ON;", err) < 0)
		goto fail;
	if (store_exec(st, "BEGIN IMMEDIATE", err) < 0)
		goto fail;
	if (store_user_version(st, &version, err) < 0) {
		(void)sqlite3_exec(st->st_db, "ROLLBACK", NULL, NULL, NULL);
		goto fail;
	}
	if (version == 0 && store_exec(st, store_schema, err) < 0) {
		(void)sqlite3_exec(st->st_db, "ROLLBACK", NULL, NULL, NULL);
		goto fail;
	}
	if (version < 2 && store_exec(st, store_schema_v2, err) < 0) {
		(void)sqlite3_exec(st->st_db, "ROLLBACK", NULL, NULL, NULL);
		goto fail;
	}
	if (version > STORE_SCHEMA_VERSION) {
		(void)sqlite3_exec(st->st_db, "ROLLBACK", NULL, NULL, NULL);
		error_set(err, CARVE_EINVAL, "database %s has schema version "
		    "%lld; this carve-cp knows %d", path, (long long)version,
		    STORE_SCHEMA_VERSION);
		goto fail;
	}
	if (store_exec(st, "COMMIT", err) < 0)
		goto fail;
	return st;
fail:
	cp_store_close(st);
	return NULL;
}

void
cp_store_close(struct cp_store *st)
{
	if (st == NULL)
		return;
	if (st->st_db != NULL)
		sqlite3_close(st->st_db);
	free(st->st_path);
	free(st);
}

/* ------------------------------------------------------------ nodes */

int
cp_store_node_register(struct cp_store *st, const char *name,
    const struct proto_register_req *reg, int64_t now_ms,
    struct carve_error *err)
{
	sqlite3_stmt *s;
	char *host = jsonx_to_string(reg->rg_host);
	char *cap = jsonx_to_string(reg->rg_capacity);
	int rc = -1;

	s = store_prepare(st,
	    "INSERT INTO nodes (name, registered_at, last_heartbeat,"
	    " agent_version, schedulable, host, capacity, capacity_at)"
	    " VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?2)"
	    " ON CONFLICT(name) DO UPDATE SET last_heartbeat = ?2,"
	    " agent_version = ?3, schedulable = ?4, host = ?5, capacity = ?6,"
	    " capacity_at = ?2", err);
	if (s != NULL) {
		store_bind_text(s, 1, name);
		sqlite3_bind_int64(s, 2, now_ms);
		store_bind_text(s, 3, reg->rg_agent_version);
		sqlite3_bind_int(s, 4, reg->rg_schedulable);
		store_bind_text(s, 5, host);
		store_bind_text(s, 6, cap);
		rc = store_run(st, s, "register node", err);
	}
	free(host);
	free(cap);
	return rc;
}

#define STORE_NODE_COLS \
	"n.name, n.registered_at, n.last_heartbeat, n.agent_version," \
	" n.schedulable, n.host, n.capacity, n.capacity_at," \
	" (SELECT COUNT(*) FROM node_vms nv WHERE nv.node = n.name)," \
	" n.evac_reason, n.evac_started_at, n.evac_finished_at, n.evac_note"

static void
store_node_row(sqlite3_stmt *s, struct cp_node_rec *r)
{
	int d;

	memset(r, 0, sizeof(*r));
	store_col_copy(s, 0, r->nr_name, sizeof(r->nr_name));
	r->nr_registered_at_ms = sqlite3_column_int64(s, 1);
	r->nr_last_heartbeat_ms = sqlite3_column_int64(s, 2);
	store_col_copy(s, 3, r->nr_agent_version, sizeof(r->nr_agent_version));
	r->nr_schedulable = sqlite3_column_int(s, 4) != 0;
	r->nr_host = store_col_dup(s, 5);
	r->nr_capacity = store_col_dup(s, 6);
	r->nr_capacity_at_ms = sqlite3_column_int64(s, 7);
	r->nr_vms = sqlite3_column_int64(s, 8);
	d = store_name_index(store_evac_reason, CP_EVAC_NREASONS,
	    (const char *)sqlite3_column_text(s, 9));
	r->nr_evac_reason = d > 0 ? (enum cp_evac_reason)d : CP_EVAC_NONE;
	r->nr_evac_started_at_ms = sqlite3_column_int64(s, 10);
	r->nr_evac_finished_at_ms = sqlite3_column_int64(s, 11);
	r->nr_evac_note = store_col_dup(s, 12);
}

/* Add a VM's resize growth (peak target over its size) to its node. */
static void
store_add_growth(struct cp_node_rec *recs, size_t n, const char *node,
    const int64_t cur[2], const int64_t peak[2])
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(recs[i].nr_name, node) != 0)
			continue;
		recs[i].nr_claimed[PROTO_CAP_VCPU] += peak[0] - cur[0];
		recs[i].nr_claimed[PROTO_CAP_MEMORY_MIB] += peak[1] - cur[1];
	}
}

/*
 * Claims of vm.resize commands without a result: per VM, how far the
 * largest target exceeds the size on record (shrinks claim nothing, queued
 * resizes their peak), like the agent's own claims (capacity_growth).
 * Once a result is in, the VM's record has the new size.
 */
static int
store_resize_claims(struct cp_store *st, struct cp_node_rec *recs, size_t n,
    struct carve_error *err)
{
	char vm[IDS_UUID_LEN + 1] = "", node[IDS_NAME_MAX + 1] = "";
	int64_t cur[2] = { 0, 0 }, peak[2] = { 0, 0 };
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st,
	    "SELECT c.node, c.vm_id, c.command, v.vcpus, v.memory_mib"
	    " FROM commands c JOIN vms v ON v.id = c.vm_id"
	    " WHERE c.type = 'vm.resize' AND c.finished_at IS NULL"
	    " ORDER BY c.vm_id", err);
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *cn = (const char *)sqlite3_column_text(s, 0);
		const char *cv = (const char *)sqlite3_column_text(s, 1);
		const char *js = (const char *)sqlite3_column_text(s, 2);
		struct carve_error derr = { 0 };
		struct command cmd;

		if (cn == NULL || cv == NULL || js == NULL)
			continue;
		if (strcmp(cv, vm) != 0) {
			if (vm[0] != '\0')
				store_add_growth(recs, n, node, cur, peak);
			snprintf(vm, sizeof(vm), "%s", cv);
			snprintf(node, sizeof(node), "%s", cn);
			peak[0] = cur[0] = sqlite3_column_int64(s, 3);
			peak[1] = cur[1] = sqlite3_column_int64(s, 4);
		}
		/* Stored by this process from a decoded command. */
		if (command_decode_buf(js, strlen(js), &cmd, &derr) < 0 ||
		    cmd.cmd_type != CMD_VM_RESIZE)
			continue;
		if ((int64_t)cmd.cmd_args.resize.vcpus > peak[0])
			peak[0] = cmd.cmd_args.resize.vcpus;
		if ((int64_t)cmd.cmd_args.resize.memory_mib > peak[1])
			peak[1] = (int64_t)cmd.cmd_args.resize.memory_mib;
		command_clear(&cmd);
	}
	if (vm[0] != '\0')
		store_add_growth(recs, n, node, cur, peak);
	if (rc != SQLITE_DONE) {
		store_sqlerr(st, "resize claims", err);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/*
 * Claims: vm.create and vm.migrate.prepare commands of the node without a
 * result, and those that succeeded after the node's capacity report
 * arrived (the report predates the VM or the prepare's reservation, so it
 * does not count it yet).
 */
static int
store_node_claims(struct cp_store *st, struct cp_node_rec *recs, size_t n,
    struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st,
	    "SELECT c.node, SUM(v.vcpus), SUM(v.memory_mib), SUM(v.disk_gib)"
	    " FROM commands c JOIN vms v ON v.id = c.vm_id"
	    " JOIN nodes n ON n.name = c.node"
	    " WHERE c.type IN ('vm.create', 'vm.migrate.prepare') AND"
	    " (c.finished_at IS NULL OR"
	    " (c.status = 'succeeded' AND c.finished_at >= n.capacity_at))"
	    " GROUP BY c.node", err);
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *node = (const char *)sqlite3_column_text(s, 0);

		for (size_t i = 0; i < n; i++) {
			if (node == NULL || strcmp(recs[i].nr_name, node) != 0)
				continue;
			recs[i].nr_claimed[PROTO_CAP_VCPU] =
			    sqlite3_column_int64(s, 1);
			recs[i].nr_claimed[PROTO_CAP_MEMORY_MIB] =
			    sqlite3_column_int64(s, 2);
			recs[i].nr_claimed[PROTO_CAP_DISK_GIB] =
			    sqlite3_column_int64(s, 3);
		}
	}
	if (rc != SQLITE_DONE) {
		store_sqlerr(st, "claims", err);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return store_resize_claims(st, recs, n, err);
}

int
cp_store_node_delete(struct cp_store *st, const char *name,
    struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc, live;

	s = store_prepare(st, "SELECT count(*) FROM vms WHERE node = ?1 AND "
	    "deleted_at IS NULL", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	live = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
	sqlite3_finalize(s);
	if (live < 0)
		return store_sqlerr(st, "count a node's VMs", err);
	if (live > 0)
		return error_set(err, CARVE_ECONFLICT, "node \"%s\" still has %d "
		    "VMs: destroy or move them first", name, live);
	s = store_prepare(st, "DELETE FROM nodes WHERE name = ?1", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return store_sqlerr(st, "delete a node", err);
	if (sqlite3_changes(st->st_db) == 0)
		return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not "
		    "registered", name);
	return 0;
}

int
cp_store_node_get(struct cp_store *st, const char *name,
    struct cp_node_rec *out, struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st, "SELECT " STORE_NODE_COLS
	    " FROM nodes n WHERE n.name = ?1", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(s);
		return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not "
		    "registered", name);
	}
	if (rc != SQLITE_ROW) {
		store_sqlerr(st, "get node", err);
		sqlite3_finalize(s);
		return -1;
	}
	store_node_row(s, out);
	sqlite3_finalize(s);
	if (store_node_claims(st, out, 1, err) < 0) {
		cp_node_rec_clear(out);
		return -1;
	}
	return 0;
}

int
cp_store_node_list(struct cp_store *st, struct cp_node_rec **out, size_t *n,
    struct carve_error *err)
{
	struct cp_node_rec *recs = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st, "SELECT " STORE_NODE_COLS
	    " FROM nodes n ORDER BY n.name", err);
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? 2 * cap : 8;
			recs = xreallocarray(recs, cap, sizeof(*recs));
		}
		store_node_row(s, &recs[count++]);
	}
	if (rc != SQLITE_DONE) {
		store_sqlerr(st, "list nodes", err);
		sqlite3_finalize(s);
		cp_node_list_free(recs, count);
		return -1;
	}
	sqlite3_finalize(s);
	if (store_node_claims(st, recs, count, err) < 0) {
		cp_node_list_free(recs, count);
		return -1;
	}
	*out = recs;
	*n = count;
	return 0;
}

void
cp_node_rec_clear(struct cp_node_rec *rec)
{
	if (rec == NULL)
		return;
	free(rec->nr_host);
	free(rec->nr_capacity);
	free(rec->nr_evac_note);
	rec->nr_host = rec->nr_capacity = rec->nr_evac_note = NULL;
}

void
cp_node_list_free(struct cp_node_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cp_node_rec_clear(&recs[i]);
	free(recs);
}

/* Upsert one reported VM into the node's list. */
static int
store_node_vm_put(struct cp_store *st, const char *node,
    const struct vm_info *vm, int64_t now_ms, struct carve_error *err)
{
	json_object *o = vm_info_encode(vm);
	char *info = jsonx_to_string(o);
	sqlite3_stmt *s;
	int rc = -1;

	json_object_put(o);
	s = store_prepare(st,
	    "INSERT INTO node_vms (node, vm_id, state, info, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(node, vm_id) DO UPDATE"
	    " SET state = ?3, info = ?4, updated_at = ?5", err);
	if (s != NULL) {
		store_bind_text(s, 1, node);
		store_bind_text(s, 2, vm->vm_id);
		store_bind_text(s, 3, vm_state_name(vm->vm_state));
		store_bind_text(s, 4, info);
		sqlite3_bind_int64(s, 5, now_ms);
		rc = store_run(st, s, "heartbeat vm", err);
	}
	free(info);
	return rc;
}

static int
store_node_vm_del(struct cp_store *st, const char *node, const char *vm_id,
    struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st,
	    "DELETE FROM node_vms WHERE node = ?1 AND vm_id = ?2", err);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, node);
	store_bind_text(s, 2, vm_id);
	return store_run(st, s, "heartbeat removed vm", err);
}

/*
 * The state of the node's VMs managed here follows its report, except
 * while a VM migrates.
 */
static int
store_sync_vm_states(struct cp_store *st, const char *node, int64_t now_ms,
    struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st,
	    "UPDATE vms SET state = (SELECT nv.state FROM node_vms nv"
	    " WHERE nv.node = vms.node AND nv.vm_id = vms.id), updated_at = ?2"
	    " WHERE node = ?1 AND deleted_at IS NULL AND state IS NOT"
	    " (SELECT nv.state FROM node_vms nv"
	    " WHERE nv.node = vms.node AND nv.vm_id = vms.id)"
	    /* Mid-migration the source's report may already lack it. */
	    " AND id NOT IN (SELECT vm_id FROM migrations"
	    " WHERE finished_at IS NULL)", err);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, node);
	sqlite3_bind_int64(s, 2, now_ms);
	return store_run(st, s, "sync vm states", err);
}

static int
store_heartbeat(struct cp_store *st, const char *name,
    const struct proto_heartbeat_req *hb, int64_t now_ms, bool *resync,
    bool *was_schedulable, struct carve_error *err)
{
	sqlite3_stmt *s;
	bool has_seq, apply;
	int64_t last = 0;
	char *cap;
	int rc;

	s = store_prepare(st, "SELECT hb_seq, schedulable FROM nodes"
	    " WHERE name = ?1", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(s);
		return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not "
		    "registered; PUT /v1/nodes/%s first", name, name);
	}
	if (rc != SQLITE_ROW) {
		store_sqlerr(st, "heartbeat", err);
		sqlite3_finalize(s);
		return -1;
	}
	has_seq = sqlite3_column_type(s, 0) != SQLITE_NULL;
	if (has_seq)
		last = sqlite3_column_int64(s, 0);
	if (was_schedulable != NULL)
		*was_schedulable = sqlite3_column_int(s, 1) != 0;
	sqlite3_finalize(s);

	apply = hb->hb_full || (has_seq && hb->hb_seq == last + 1);
	*resync = !apply;
	if (apply) {
		if (hb->hb_full) {
			s = store_prepare(st,
			    "DELETE FROM node_vms WHERE node = ?1", err);
			if (s == NULL)
				return -1;
			store_bind_text(s, 1, name);
			if (store_run(st, s, "full heartbeat", err) < 0)
				return -1;
		}
		for (size_t i = 0; i < hb->hb_nvms; i++)
			if (store_node_vm_put(st, name, &hb->hb_vms[i], now_ms,
			    err) < 0)
				return -1;
		for (size_t i = 0; i < hb->hb_nremoved; i++)
			if (store_node_vm_del(st, name, hb->hb_removed[i],
			    err) < 0)
				return -1;
		if (store_sync_vm_states(st, name, now_ms, err) < 0)
			return -1;
	}

	cap = jsonx_to_string(hb->hb_capacity);
	s = store_prepare(st, "UPDATE nodes SET last_heartbeat = ?2,"
	    " capacity = ?3, capacity_at = ?2, hb_seq = ?4, schedulable = ?5"
	    " WHERE name = ?1", err);
	if (s == NULL) {
		free(cap);
		return -1;
	}
	store_bind_text(s, 1, name);
	sqlite3_bind_int64(s, 2, now_ms);
	store_bind_text(s, 3, cap);
	if (apply)
		sqlite3_bind_int64(s, 4, hb->hb_seq);
	else
		sqlite3_bind_null(s, 4);
	sqlite3_bind_int(s, 5, hb->hb_schedulable);
	free(cap);
	return store_run(st, s, "heartbeat", err);
}

int
cp_store_node_heartbeat(struct cp_store *st, const char *name,
    const struct proto_heartbeat_req *hb, int64_t now_ms, bool *resync,
    bool *was_schedulable, struct carve_error *err)
{
	if (store_tx_begin(st, err) < 0)
		return -1;
	return store_tx_end(st, store_heartbeat(st, name, hb, now_ms, resync,
	    was_schedulable, err), err);
}

int
cp_store_node_evac_note(struct cp_store *st, const char *name,
    const char *note, struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "UPDATE nodes SET evac_note = ?2"
	    " WHERE name = ?1 AND evac_note IS NOT ?2", err);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	store_bind_text(s, 2, note);
	if (store_run(st, s, "evacuation note", err) < 0)
		return -1;
	return sqlite3_changes(st->st_db) > 0 ? 1 : 0;
}

int
cp_store_node_list_evacuating(struct cp_store *st, char (**out)[IDS_NAME_MAX + 1],
    size_t *n, struct carve_error *err)
{
	char (*names)[IDS_NAME_MAX + 1] = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st, "SELECT name FROM nodes WHERE evac_reason IS NOT"
	    " NULL AND evac_finished_at IS NULL ORDER BY name", err);
	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? 2 * cap : 4;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		store_col_copy(s, 0, names[count++], sizeof(names[0]));
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		free(names);
		return store_sqlerr(st, "list evacuating nodes", err);
	}
	*out = names;
	*n = count;
	return 0;
}

const char *
cp_evac_reason_name(enum cp_evac_reason r)
{
	if ((int)r < 0 || r >= CP_EVAC_NREASONS)
		return "unknown";
	return store_evac_reason[r];
}

int
cp_store_node_evac_start(struct cp_store *st, const char *name,
    enum cp_evac_reason reason, int64_t now_ms, struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	if (reason != CP_EVAC_DRAIN && reason != CP_EVAC_ADMIN)
		return error_set(err, CARVE_EINVAL, "unknown evacuation reason");
	s = store_prepare(st, "UPDATE nodes SET evac_reason = ?2,"
	    " evac_started_at = ?3, evac_finished_at = NULL, evac_note = NULL"
	    " WHERE name = ?1"
	    " AND (evac_reason IS NULL OR evac_finished_at IS NOT NULL)", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	store_bind_text(s, 2, store_evac_reason[reason]);
	sqlite3_bind_int64(s, 3, now_ms);
	if (store_run(st, s, "start evacuation", err) < 0)
		return -1;
	if (sqlite3_changes(st->st_db) > 0)
		return 1;
	/* Nothing changed: one runs already, or the node is unknown. */
	s = store_prepare(st, "SELECT 1 FROM nodes WHERE name = ?1", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not "
		    "registered", name);
	if (rc != SQLITE_ROW)
		return store_sqlerr(st, "start evacuation", err);
	return 0;
}

int
cp_store_node_evac_end(struct cp_store *st, const char *name, int64_t now_ms,
    struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "UPDATE nodes SET"
	    " evac_finished_at = ?2, evac_note = NULL WHERE name = ?1"
	    " AND evac_reason IS NOT NULL AND evac_finished_at IS NULL", err);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, name);
	sqlite3_bind_int64(s, 2, now_ms);
	return store_run(st, s, "end evacuation", err);
}

/* ------------------------------------------------------------ VMs */

int
cp_store_vm_insert(struct cp_store *st, const struct cp_vm_rec *vm,
    struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st,
	    "INSERT INTO vms (id, name, node, vcpus, memory_mib, disk_gib, spec,"
	    " desired_state, state, last_command_id, created_at, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, vm->vr_id);
	store_bind_text(s, 2, vm->vr_name);
	store_bind_text(s, 3, vm->vr_node);
	sqlite3_bind_int64(s, 4, vm->vr_vcpus);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)vm->vr_memory_mib);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)vm->vr_disk_gib);
	store_bind_text(s, 7, vm->vr_spec);
	store_bind_text(s, 8, store_desired[vm->vr_desired]);
	store_bind_text(s, 9, vm->vr_state[0] != '\0' ? vm->vr_state : NULL);
	store_bind_text(s, 10, vm->vr_last_command_id);
	sqlite3_bind_int64(s, 11, vm->vr_created_at_ms);
	sqlite3_bind_int64(s, 12, vm->vr_updated_at_ms);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return error_set(err, CARVE_ECONFLICT, "a VM named \"%s\" "
		    "already exists", vm->vr_name);
	if (rc != SQLITE_DONE)
		return store_sqlerr(st, "insert vm", err);
	return 0;
}

#define STORE_VM_COLS \
	"id, name, node, vcpus, memory_mib, disk_gib, spec, desired_state," \
	" state, last_command_id, created_at, updated_at, deleted_at"

static int
store_vm_row(struct cp_store *st, sqlite3_stmt *s, struct cp_vm_rec *r,
    struct carve_error *err)
{
	int d;

	memset(r, 0, sizeof(*r));
	store_col_copy(s, 0, r->vr_id, sizeof(r->vr_id));
	store_col_copy(s, 1, r->vr_name, sizeof(r->vr_name));
	store_col_copy(s, 2, r->vr_node, sizeof(r->vr_node));
	r->vr_vcpus = (unsigned)sqlite3_column_int64(s, 3);
	r->vr_memory_mib = (uint64_t)sqlite3_column_int64(s, 4);
	r->vr_disk_gib = (uint64_t)sqlite3_column_int64(s, 5);
	r->vr_spec = store_col_dup(s, 6);
	d = store_name_index(store_desired, PROTO_DESIRED_MAX,
	    (const char *)sqlite3_column_text(s, 7));
	store_col_copy(s, 8, r->vr_state, sizeof(r->vr_state));
	store_col_copy(s, 9, r->vr_last_command_id,
	    sizeof(r->vr_last_command_id));
	r->vr_created_at_ms = sqlite3_column_int64(s, 10);
	r->vr_updated_at_ms = sqlite3_column_int64(s, 11);
	r->vr_deleted_at_ms = sqlite3_column_int64(s, 12);
	if (d < 0) {
		cp_vm_rec_clear(r);
		return error_set(err, CARVE_EINTERNAL, "database %s: VM %s has "
		    "an unknown desired state", st->st_path, r->vr_id);
	}
	r->vr_desired = (enum proto_desired_state)d;
	return 0;
}

int
cp_store_vm_report(struct cp_store *st, const char *node, const char *id,
    char **info, struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	*info = NULL;
	s = store_prepare(st, "SELECT info FROM node_vms"
	    " WHERE node = ?1 AND vm_id = ?2", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, node);
	store_bind_text(s, 2, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*info = store_col_dup(s, 0);
	else if (rc != SQLITE_DONE) {
		store_sqlerr(st, "get vm report", err);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

int
cp_store_vm_get(struct cp_store *st, const char *id, struct cp_vm_rec *out,
    struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st, "SELECT " STORE_VM_COLS " FROM vms"
	    " WHERE id = ?1 AND deleted_at IS NULL", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(s);
		return error_set(err, CARVE_ENOTFOUND, "no VM with id %s", id);
	}
	if (rc != SQLITE_ROW) {
		store_sqlerr(st, "get vm", err);
		sqlite3_finalize(s);
		return -1;
	}
	rc = store_vm_row(st, s, out, err);
	sqlite3_finalize(s);
	return rc;
}

/*
 * Every row of s (a SELECT of STORE_VM_COLS, finalized here) into a new
 * array; what names the query in an error.
 */
static int
store_vm_rows(struct cp_store *st, sqlite3_stmt *s, const char *what,
    struct cp_vm_rec **out, size_t *n, struct carve_error *err)
{
	struct cp_vm_rec *recs = NULL;
	size_t count = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? 2 * cap : 16;
			recs = xreallocarray(recs, cap, sizeof(*recs));
		}
		if (store_vm_row(st, s, &recs[count], err) < 0) {
			sqlite3_finalize(s);
			cp_vm_list_free(recs, count);
			return -1;
		}
		count++;
	}
	if (rc != SQLITE_DONE) {
		store_sqlerr(st, what, err);
		sqlite3_finalize(s);
		cp_vm_list_free(recs, count);
		return -1;
	}
	sqlite3_finalize(s);
	*out = recs;
	*n = count;
	return 0;
}

int
cp_store_vm_list(struct cp_store *st, struct cp_vm_rec **out, size_t *n,
    struct carve_error *err)
{
	sqlite3_stmt *s;

	s = store_prepare(st, "SELECT " STORE_VM_COLS " FROM vms"
	    " WHERE deleted_at IS NULL ORDER BY created_at, rowid", err);
	if (s == NULL)
		return -1;
	return store_vm_rows(st, s, "list vms", out, n, err);
}

/* Run an UPDATE of one live VM; CARVE_ENOTFOUND when it changed nothing. */
static int
store_vm_update(struct cp_store *st, sqlite3_stmt *s, const char *id,
    struct carve_error *err)
{
	if (s == NULL || store_run(st, s, "update vm", err) < 0)
		return -1;
	if (sqlite3_changes(st->st_db) == 0)
		return error_set(err, CARVE_ENOTFOUND, "no VM with id %s", id);
	return 0;
}

int
cp_store_vm_set_desired(struct cp_store *st, const char *id,
    enum proto_desired_state desired, const char *command_id, int64_t now_ms,
    struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "UPDATE vms SET desired_state = ?2,"
	    " last_command_id = ?3, updated_at = ?4"
	    " WHERE id = ?1 AND deleted_at IS NULL", err);

	if (s != NULL) {
		store_bind_text(s, 1, id);
		store_bind_text(s, 2, store_desired[desired]);
		store_bind_text(s, 3, command_id);
		sqlite3_bind_int64(s, 4, now_ms);
	}
	return store_vm_update(st, s, id, err);
}

int
cp_store_vm_set_state(struct cp_store *st, const char *id, const char *state,
    int64_t now_ms, struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "UPDATE vms SET state = ?2,"
	    " updated_at = ?3 WHERE id = ?1 AND deleted_at IS NULL", err);

	if (s != NULL) {
		store_bind_text(s, 1, id);
		store_bind_text(s, 2, state);
		sqlite3_bind_int64(s, 3, now_ms);
	}
	return store_vm_update(st, s, id, err);
}

int
cp_store_vm_set_size(struct cp_store *st, const char *id, unsigned vcpus,
    uint64_t memory_mib, int64_t now_ms, struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "UPDATE vms SET vcpus = ?2,"
	    " memory_mib = ?3, updated_at = ?4"
	    " WHERE id = ?1 AND deleted_at IS NULL", err);

	if (s != NULL) {
		store_bind_text(s, 1, id);
		sqlite3_bind_int64(s, 2, vcpus);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)memory_mib);
		sqlite3_bind_int64(s, 4, now_ms);
	}
	return store_vm_update(st, s, id, err);
}

int
cp_store_vm_mark_deleted(struct cp_store *st, const char *id, int64_t now_ms,
    struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "UPDATE vms SET deleted_at = ?2,"
	    " updated_at = ?2, state = NULL WHERE id = ?1 AND deleted_at IS NULL",
	    err);

	if (s != NULL) {
		store_bind_text(s, 1, id);
		sqlite3_bind_int64(s, 2, now_ms);
	}
	return store_vm_update(st, s, id, err);
}

int
cp_store_vm_set_node(struct cp_store *st, const char *id, const char *node,
    int64_t now_ms, struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "UPDATE vms SET node = ?2,"
	    " updated_at = ?3 WHERE id = ?1 AND deleted_at IS NULL", err);

	if (s != NULL) {
		store_bind_text(s, 1, id);
		store_bind_text(s, 2, node);
		sqlite3_bind_int64(s, 3, now_ms);
	}
	return store_vm_update(st, s, id, err);
}

int
cp_store_vm_list_node(struct cp_store *st, const char *node,
    struct cp_vm_rec **out, size_t *n, struct carve_error *err)
{
	sqlite3_stmt *s;

	s = store_prepare(st, "SELECT " STORE_VM_COLS " FROM vms"
	    " WHERE node = ?1 AND deleted_at IS NULL ORDER BY created_at, rowid",
	    err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, node);
	return store_vm_rows(st, s, "list a node's vms", out, n, err);
}

void
cp_vm_rec_clear(struct cp_vm_rec *rec)
{
	if (rec == NULL)
		return;
	free(rec->vr_spec);
	rec->vr_spec = NULL;
}

void
cp_vm_list_free(struct cp_vm_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cp_vm_rec_clear(&recs[i]);
	free(recs);
}

/* ------------------------------------------------------------ commands */

int
cp_store_cmd_insert(struct cp_store *st, const struct cp_cmd_rec *cmd,
    int64_t now_ms, int64_t *seq, struct carve_error *err)
{
	sqlite3_stmt *s;

	s = store_prepare(st,
	    "INSERT INTO commands (id, node, vm_id, type, command, status,"
	    " created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, cmd->cr_id);
	store_bind_text(s, 2, cmd->cr_node);
	store_bind_text(s, 3, cmd->cr_vm_id);
	store_bind_text(s, 4, command_type_name(cmd->cr_type));
	store_bind_text(s, 5, cmd->cr_command);
	sqlite3_bind_int64(s, 6, now_ms);
	if (store_run(st, s, "insert command", err) < 0)
		return -1;
	*seq = sqlite3_last_insert_rowid(st->st_db);
	return 0;
}

#define STORE_CMD_COLS \
	"seq, id, node, vm_id, type, command, status, result, progress," \
	" created_at, delivered_at, finished_at"

static int
store_cmd_row(struct cp_store *st, sqlite3_stmt *s, struct cp_cmd_rec *r,
    struct carve_error *err)
{
	enum command_type type;
	const char *t = (const char *)sqlite3_column_text(s, 4);
	int status;

	memset(r, 0, sizeof(*r));
	r->cr_seq = sqlite3_column_int64(s, 0);
	store_col_copy(s, 1, r->cr_id, sizeof(r->cr_id));
	store_col_copy(s, 2, r->cr_node, sizeof(r->cr_node));
	store_col_copy(s, 3, r->cr_vm_id, sizeof(r->cr_vm_id));
	status = store_name_index(store_cmd_status, PROTO_CMD_STATUS_MAX,
	    (const char *)sqlite3_column_text(s, 6));
	if (status < 0)
		return error_set(err, CARVE_EINTERNAL, "database %s: command %s "
		    "has an unknown status", st->st_path, r->cr_id);
	/*
	 * A type this carve-cp does not know (a row written by hand, or by a
	 * newer carve-cp) is still delivered: the agent answers what it
	 * cannot run, and one bad row must not stop the node's queue.
	 */
	r->cr_type = t != NULL && command_type_parse(t, &type) == 0 ? type :
	    CMD_TYPE_MAX;
	r->cr_status = (enum proto_cmd_status)status;
	r->cr_command = store_col_dup(s, 5);
	r->cr_result = store_col_dup(s, 7);
	r->cr_progress = store_col_dup(s, 8);
	r->cr_created_at_ms = sqlite3_column_int64(s, 9);
	r->cr_delivered_at_ms = sqlite3_column_int64(s, 10);
	r->cr_finished_at_ms = sqlite3_column_int64(s, 11);
	return 0;
}

int
cp_store_cmd_get(struct cp_store *st, const char *id, struct cp_cmd_rec *out,
    struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st, "SELECT " STORE_CMD_COLS " FROM commands"
	    " WHERE id = ?1", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(s);
		return error_set(err, CARVE_ENOTFOUND, "no command with id %s",
		    id);
	}
	if (rc != SQLITE_ROW) {
		store_sqlerr(st, "get command", err);
		sqlite3_finalize(s);
		return -1;
	}
	rc = store_cmd_row(st, s, out, err);
	sqlite3_finalize(s);
	return rc;
}

static int
store_poll(struct cp_store *st, const char *node, int64_t cursor, size_t max,
    size_t max_bytes, int64_t now_ms, struct cp_cmd_rec **out, size_t *n,
    struct carve_error *err)
{
	struct cp_cmd_rec *recs = NULL;
	size_t count = 0, bytes = 0;
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st, "SELECT " STORE_CMD_COLS " FROM commands"
	    " WHERE node = ?1 AND seq > ?2 AND finished_at IS NULL"
	    " ORDER BY seq LIMIT ?3", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, node);
	sqlite3_bind_int64(s, 2, cursor);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)max);
	recs = xcalloc(max > 0 ? max : 1, sizeof(*recs));
	while (count < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(s, 5);

		if (count > 0 && bytes + len > max_bytes)
			break;
		if (store_cmd_row(st, s, &recs[count], err) < 0) {
			sqlite3_finalize(s);
			cp_cmd_list_free(recs, count + 1);
			return -1;
		}
		bytes += len;
		count++;
	}
	if (count < max && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_sqlerr(st, "poll", err);
		sqlite3_finalize(s);
		cp_cmd_list_free(recs, count);
		return -1;
	}
	sqlite3_finalize(s);
	for (size_t i = 0; i < count; i++) {
		if (recs[i].cr_status != PROTO_CMD_PENDING)
			continue;
		s = store_prepare(st, "UPDATE commands SET status = 'delivered',"
		    " delivered_at = ?2 WHERE seq = ?1 AND status = 'pending'",
		    err);
		if (s == NULL) {
			cp_cmd_list_free(recs, count);
			return -1;
		}
		sqlite3_bind_int64(s, 1, recs[i].cr_seq);
		sqlite3_bind_int64(s, 2, now_ms);
		if (store_run(st, s, "mark delivered", err) < 0) {
			cp_cmd_list_free(recs, count);
			return -1;
		}
		recs[i].cr_status = PROTO_CMD_DELIVERED;
		recs[i].cr_delivered_at_ms = now_ms;
	}
	*out = recs;
	*n = count;
	return 0;
}

int
cp_store_cmd_poll(struct cp_store *st, const char *node, int64_t cursor,
    size_t max, size_t max_bytes, int64_t now_ms, struct cp_cmd_rec **out,
    size_t *n, struct carve_error *err)
{
	if (store_tx_begin(st, err) < 0)
		return -1;
	return store_tx_end(st, store_poll(st, node, cursor, max, max_bytes,
	    now_ms, out, n, err), err);
}

int
cp_store_cmd_finish(struct cp_store *st, const char *id,
    enum command_status status, const char *result_json, int64_t now_ms,
    struct carve_error *err)
{
	sqlite3_stmt *s;

	if (status != CMD_STATUS_SUCCEEDED && status != CMD_STATUS_FAILED)
		return error_set(err, CARVE_EINVAL, "a result must have "
		    "succeeded or failed");
	s = store_prepare(st, "UPDATE commands SET status = ?2, result = ?3,"
	    " finished_at = ?4 WHERE id = ?1 AND finished_at IS NULL", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, id);
	store_bind_text(s, 2, store_cmd_status[status == CMD_STATUS_SUCCEEDED ?
	    PROTO_CMD_SUCCEEDED : PROTO_CMD_FAILED]);
	store_bind_text(s, 3, result_json);
	sqlite3_bind_int64(s, 4, now_ms);
	if (store_run(st, s, "finish command", err) < 0)
		return -1;
	return sqlite3_changes(st->st_db) > 0 ? 1 : 0;
}

int
cp_store_cmd_set_progress(struct cp_store *st, const char *id,
    const char *progress_json, struct carve_error *err)
{
	sqlite3_stmt *s = store_prepare(st, "UPDATE commands SET progress = ?2"
	    " WHERE id = ?1 AND finished_at IS NULL", err);

	if (s == NULL)
		return -1;
	store_bind_text(s, 1, id);
	store_bind_text(s, 2, progress_json);
	return store_run(st, s, "progress", err);
}

void
cp_cmd_rec_clear(struct cp_cmd_rec *rec)
{
	if (rec == NULL)
		return;
	free(rec->cr_command);
	free(rec->cr_result);
	free(rec->cr_progress);
	rec->cr_command = rec->cr_result = rec->cr_progress = NULL;
}

void
cp_cmd_list_free(struct cp_cmd_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cp_cmd_rec_clear(&recs[i]);
	free(recs);
}

/* ------------------------------------------------------------ migrations */

const char *
cp_mig_state_name(enum cp_mig_state st)
{
	if ((int)st < 0 || st >= CP_MIG_NSTATES)
		return "unknown";
	return store_mig_state[st];
}

int
cp_mig_state_parse(const char *name, enum cp_mig_state *out)
{
	int i = store_name_index(store_mig_state, CP_MIG_NSTATES, name);

	if (i < 0)
		return -1;
	*out = (enum cp_mig_state)i;
	return 0;
}

bool
cp_mig_state_final(enum cp_mig_state st)
{
	return st == CP_MIG_DONE || st == CP_MIG_FAILED;
}

static void
store_bind_id(sqlite3_stmt *s, int i, const char *id)
{
	store_bind_text(s, i, id[0] != '\0' ? id : NULL);
}

static void
store_bind_limit(sqlite3_stmt *s, int i, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_int64(s, i, v);
}

int
cp_store_mig_insert(struct cp_store *st, const struct cp_mig_rec *m,
    int64_t now_ms, struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st,
	    "INSERT INTO migrations (id, vm_id, source, target, state,"
	    " evacuation, max_downtime_ms, bandwidth_mibps, timeout_s,"
	    " prepare_command_id, migrated, cancel_requested, finish_tries,"
	    " created_at, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, 0, 0, ?11,"
	    " ?11)", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, m->mr_id);
	store_bind_text(s, 2, m->mr_vm_id);
	store_bind_text(s, 3, m->mr_source);
	store_bind_text(s, 4, m->mr_target);
	store_bind_text(s, 5, cp_mig_state_name(m->mr_state));
	sqlite3_bind_int(s, 6, m->mr_evacuation);
	store_bind_limit(s, 7, m->mr_max_downtime_ms);
	store_bind_limit(s, 8, m->mr_bandwidth_mibps);
	store_bind_limit(s, 9, m->mr_timeout_s);
	store_bind_text(s, 10, m->mr_prepare_cmd);
	sqlite3_bind_int64(s, 11, now_ms);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return error_set(err, CARVE_ECONFLICT, "VM %s is already being "
		    "migrated", m->mr_vm_id);
	if (rc != SQLITE_DONE)
		return store_sqlerr(st, "insert migration", err);
	return 0;
}

int
cp_store_mig_update(struct cp_store *st, const struct cp_mig_rec *m,
    int64_t now_ms, struct carve_error *err)
{
	sqlite3_stmt *s;

	s = store_prepare(st, "UPDATE migrations SET state = ?2,"
	    " migrate_command_id = ?3, finish_command_id = ?4,"
	    " cancel_command_id = ?5, prepare_result = ?6, migrate_result = ?7,"
	    " error = ?8, migrated = ?9, cancel_requested = ?10,"
	    " finish_tries = ?11, updated_at = ?12,"
	    " finished_at = CASE WHEN ?13 THEN coalesce(finished_at, ?12)"
	    " ELSE NULL END WHERE id = ?1", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, m->mr_id);
	store_bind_text(s, 2, cp_mig_state_name(m->mr_state));
	store_bind_id(s, 3, m->mr_migrate_cmd);
	store_bind_id(s, 4, m->mr_finish_cmd);
	store_bind_id(s, 5, m->mr_cancel_cmd);
	store_bind_text(s, 6, m->mr_prepare_result);
	store_bind_text(s, 7, m->mr_migrate_result);
	store_bind_text(s, 8, m->mr_error);
	sqlite3_bind_int(s, 9, m->mr_migrated);
	sqlite3_bind_int(s, 10, m->mr_cancel_requested);
	sqlite3_bind_int(s, 11, m->mr_finish_tries);
	sqlite3_bind_int64(s, 12, now_ms);
	sqlite3_bind_int(s, 13, cp_mig_state_final(m->mr_state));
	if (store_run(st, s, "update migration", err) < 0)
		return -1;
	if (sqlite3_changes(st->st_db) == 0)
		return error_set(err, CARVE_ENOTFOUND, "no migration with id %s",
		    m->mr_id);
	return 0;
}

#define STORE_MIG_COLS \
	"m.id, m.vm_id, m.source, m.target, m.state, m.evacuation," \
	" m.max_downtime_ms, m.bandwidth_mibps, m.timeout_s," \
	" m.prepare_command_id, m.migrate_command_id, m.finish_command_id," \
	" m.cancel_command_id, m.prepare_result, m.migrate_result, m.error," \
	" m.migrated, m.cancel_requested, m.finish_tries, m.created_at," \
	" m.updated_at, m.finished_at, c.progress"
#define STORE_MIG_FROM \
	" FROM migrations m LEFT JOIN commands c ON c.id = m.migrate_command_id"

static int64_t
store_col_limit(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? -1 :
	    sqlite3_column_int64(s, i);
}

static int
store_mig_row(struct cp_store *st, sqlite3_stmt *s, struct cp_mig_rec *r,
    struct carve_error *err)
{
	const char *state = (const char *)sqlite3_column_text(s, 4);

	memset(r, 0, sizeof(*r));
	store_col_copy(s, 0, r->mr_id, sizeof(r->mr_id));
	store_col_copy(s, 1, r->mr_vm_id, sizeof(r->mr_vm_id));
	store_col_copy(s, 2, r->mr_source, sizeof(r->mr_source));
	store_col_copy(s, 3, r->mr_target, sizeof(r->mr_target));
	if (state == NULL || cp_mig_state_parse(state, &r->mr_state) < 0)
		return error_set(err, CARVE_EINTERNAL, "database %s: migration "
		    "%s has an unknown state", st->st_path, r->mr_id);
	r->mr_evacuation = sqlite3_column_int(s, 5) != 0;
	r->mr_max_downtime_ms = store_col_limit(s, 6);
	r->mr_bandwidth_mibps = store_col_limit(s, 7);
	r->mr_timeout_s = store_col_limit(s, 8);
	store_col_copy(s, 9, r->mr_prepare_cmd, sizeof(r->mr_prepare_cmd));
	store_col_copy(s, 10, r->mr_migrate_cmd, sizeof(r->mr_migrate_cmd));
	store_col_copy(s, 11, r->mr_finish_cmd, sizeof(r->mr_finish_cmd));
	store_col_copy(s, 12, r->mr_cancel_cmd, sizeof(r->mr_cancel_cmd));
	r->mr_prepare_result = store_col_dup(s, 13);
	r->mr_migrate_result = store_col_dup(s, 14);
	r->mr_error = store_col_dup(s, 15);
	r->mr_migrated = sqlite3_column_int(s, 16) != 0;
	r->mr_cancel_requested = sqlite3_column_int(s, 17) != 0;
	r->mr_finish_tries = sqlite3_column_int(s, 18);
	r->mr_created_at_ms = sqlite3_column_int64(s, 19);
	r->mr_updated_at_ms = sqlite3_column_int64(s, 20);
	r->mr_finished_at_ms = sqlite3_column_int64(s, 21);
	r->mr_progress = store_col_dup(s, 22);
	return 0;
}

/* One migration by a WHERE clause on m with one text parameter. */
static int
store_mig_one(struct cp_store *st, const char *where, const char *arg,
    const char *what, struct cp_mig_rec *out, struct carve_error *err)
{
	sqlite3_stmt *s;
	char *sql = xasprintf("SELECT " STORE_MIG_COLS STORE_MIG_FROM
	    " WHERE %s", where);
	int rc;

	s = store_prepare(st, sql, err);
	free(sql);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, arg);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(s);
		return error_set(err, CARVE_ENOTFOUND, "%s %s", what, arg);
	}
	if (rc != SQLITE_ROW) {
		store_sqlerr(st, "get migration", err);
		sqlite3_finalize(s);
		return -1;
	}
	rc = store_mig_row(st, s, out, err);
	sqlite3_finalize(s);
	if (rc < 0)
		cp_mig_rec_clear(out);
	return rc;
}

int
cp_store_mig_get(struct cp_store *st, const char *id, struct cp_mig_rec *out,
    struct carve_error *err)
{
	return store_mig_one(st, "m.id = ?1", id, "no migration with id", out,
	    err);
}

int
cp_store_mig_active_for_vm(struct cp_store *st, const char *vm_id,
    struct cp_mig_rec *out, struct carve_error *err)
{
	return store_mig_one(st, "m.vm_id = ?1 AND m.finished_at IS NULL",
	    vm_id, "no migration under way for VM", out, err);
}

int
cp_store_mig_by_command(struct cp_store *st, const char *cmd_id,
    struct cp_mig_rec *out, struct carve_error *err)
{
	return store_mig_one(st, "?1 IN (m.prepare_command_id,"
	    " m.migrate_command_id, m.finish_command_id, m.cancel_command_id)",
	    cmd_id, "no migration sent command", out, err);
}

int
cp_store_mig_list(struct cp_store *st, bool active_only, size_t limit,
    struct cp_mig_rec **out, size_t *n, struct carve_error *err)
{
	struct cp_mig_rec *recs = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *s;
	int rc;

	/* Two statements: the unfinished ones come from the partial index. */
	s = store_prepare(st, active_only ?
	    "SELECT " STORE_MIG_COLS STORE_MIG_FROM
	    " WHERE m.finished_at IS NULL"
	    " ORDER BY m.created_at DESC, m.rowid DESC LIMIT ?1" :
	    "SELECT " STORE_MIG_COLS STORE_MIG_FROM
	    " ORDER BY m.created_at DESC, m.rowid DESC LIMIT ?1", err);
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, limit > 0 && limit < INT64_MAX ?
	    (sqlite3_int64)limit : -1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? 2 * cap : 16;
			recs = xreallocarray(recs, cap, sizeof(*recs));
		}
		if (store_mig_row(st, s, &recs[count], err) < 0) {
			cp_mig_rec_clear(&recs[count]);
			sqlite3_finalize(s);
			cp_mig_list_free(recs, count);
			return -1;
		}
		count++;
	}
	if (rc != SQLITE_DONE) {
		store_sqlerr(st, "list migrations", err);
		sqlite3_finalize(s);
		cp_mig_list_free(recs, count);
		return -1;
	}
	sqlite3_finalize(s);
	*out = recs;
	*n = count;
	return 0;
}

int
cp_store_mig_evac_counts(struct cp_store *st, const char *node,
    int64_t since_ms, struct cp_evac_counts *out, struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	memset(out, 0, sizeof(*out));
	s = store_prepare(st, "SELECT"
	    " coalesce(sum(state = 'done'), 0),"
	    " coalesce(sum(state = 'failed'), 0),"
	    " coalesce(sum(finished_at IS NULL), 0)"
	    " FROM migrations WHERE source = ?1 AND evacuation = 1"
	    " AND created_at >= ?2", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, node);
	sqlite3_bind_int64(s, 2, since_ms);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		store_sqlerr(st, "count evacuation migrations", err);
		sqlite3_finalize(s);
		return -1;
	}
	out->ec_done = sqlite3_column_int64(s, 0);
	out->ec_failed = sqlite3_column_int64(s, 1);
	out->ec_active = sqlite3_column_int64(s, 2);
	sqlite3_finalize(s);
	return 0;
}

int
cp_store_mig_evac_failed(struct cp_store *st, const char *node,
    const char *vm_id, int64_t since_ms, bool *out, struct carve_error *err)
{
	sqlite3_stmt *s;
	int rc;

	s = store_prepare(st, "SELECT count(*) FROM migrations"
	    " WHERE source = ?1 AND vm_id = ?2 AND evacuation = 1"
	    " AND state = 'failed' AND created_at >= ?3", err);
	if (s == NULL)
		return -1;
	store_bind_text(s, 1, node);
	store_bind_text(s, 2, vm_id);
	sqlite3_bind_int64(s, 3, since_ms);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		store_sqlerr(st, "evacuation failures", err);
		sqlite3_finalize(s);
		return -1;
	}
	*out = sqlite3_column_int64(s, 0) > 0;
	sqlite3_finalize(s);
	return 0;
}

void
cp_mig_rec_clear(struct cp_mig_rec *rec)
{
	if (rec == NULL)
		return;
	free(rec->mr_prepare_result);
	free(rec->mr_migrate_result);
	free(rec->mr_error);
	free(rec->mr_progress);
	rec->mr_prepare_result = rec->mr_migrate_result = NULL;
	rec->mr_error = rec->mr_progress = NULL;
}

void
cp_mig_list_free(struct cp_mig_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cp_mig_rec_clear(&recs[i]);
	free(recs);
}
