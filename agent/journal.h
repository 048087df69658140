/*
 * The command journal: a durable local record that a command was accepted
 * (before its effect) and of its result (after), so that a command id seen
 * again is answered from here and never run twice, and a command accepted
 * but never finished (the agent died) is recovered at start-up.
 *
 * SQLite in WAL mode with synchronous=FULL: each commit is fsync'd; one
 * file, crash-safe, inspectable with the sqlite3 shell. Writes are submitted
 * from the loop thread and run on the libuv thread pool; everything submitted
 * while a write is in progress is committed together in the next transaction
 * (group commit), so N concurrent commands cost one fsync, not N.
 *
 * Reads happen once, at start-up (journal_load), before the loop runs: the
 * agent keeps the retained entries in memory for lookups.
 *
 * Each command records where it came from (carvectl or the control plane)
 * and, for the control plane's, whether its result has been reported: a
 * result stays "unreported" until the control plane acknowledged it, across
 * restarts and outages, and is never pruned before.
 */
#ifndef CARVE_JOURNAL_H
#define CARVE_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "api/command.h"
#include "common/error.h"

struct journal;

/* Where a command came from; stored as 'local' or 'cp'. */
enum journal_origin {
	JOURNAL_ORIGIN_LOCAL = 0,   /* carvectl, over the control socket */
	JOURNAL_ORIGIN_CP,          /* the control plane */
};

/* One record as stored. Strings are borrowed for the duration of a callback. */
struct journal_entry {
	const char *je_id;            /* command id */
	const char *je_type;          /* "vm.create" ... */
	const char *je_vm_id;
	const char *je_command_json;  /* the command's wire form */
	enum command_status je_status;
	const char *je_result_json;   /* NULL while accepted */
	int64_t je_accepted_at_ms;
	int64_t je_finished_at_ms;    /* 0 while accepted */
	enum journal_origin je_origin;
	bool je_reported;             /* the control plane has the result */
};

/* Called on the loop thread once the write is durable (status 0) or failed (<0). */
typedef void (*journal_done_cb)(struct journal *j, int status, void *arg);
typedef void (*journal_entry_cb)(const struct journal_entry *e, void *arg);

/*
 * Open (creating if needed) the journal at path, 0600. Blocking: call before
 * the loop runs.
 */
int journal_open(uv_loop_t *loop, const char *path, struct journal **out,
    struct carve_error *err);

/*
 * Call cb for every entry, oldest first (blocking, start-up only). Entries
 * finished more than retain_ms ago are deleted first (0 = keep all), except
 * results of control-plane commands not reported yet.
 */
int journal_load(struct journal *j, int64_t now_ms, int64_t retain_ms,
    journal_entry_cb cb, void *arg, struct carve_error *err);

/*
 * Record that a command was accepted. The strings are copied. cb runs on the
 * loop once durable; if status < 0, nothing was recorded and the command
 * must not run.
 */
void journal_accept(struct journal *j, const char *id, const char *type,
    const char *vm_id, const char *command_json, enum journal_origin origin,
    int64_t accepted_at_ms, journal_done_cb cb, void *arg);

/* Record a command's final result (the copy of result_json is stored). */
void journal_finish(struct journal *j, const char *id, enum command_status st,
    const char *result_json, int64_t finished_at_ms, journal_done_cb cb,
    void *arg);

/*
 * Record that the control plane acknowledged a command's result (written in
 * the same group commits as the rest). status -ENOENT: no finished command
 * with that id.
 */
void journal_mark_reported(struct journal *j, const char *id,
    journal_done_cb cb, void *arg);

/* Number of writes submitted and not yet durable. */
unsigned journal_pending(const struct journal *j);

/* Counters since open, for metrics and tests: group commit shows as
 * commits far below records. */
struct journal_stats {
	uint64_t commits;   /* transactions committed */
	uint64_t records;   /* records written by them */
};

void journal_get_stats(const struct journal *j, struct journal_stats *out);

/*
 * Flush what is pending, then close the database and free j; cb (may be
 * NULL) runs on the loop when done. No journal call may follow.
 */
void journal_close(struct journal *j, void (*cb)(void *arg), void *arg);

#endif
